"""Influx line protocol -> foreign series (gauges).

`measurement[,tag=value...] field=value[,field=value...] [timestamp]`, one point a line;
blank lines and `#` comments are skipped. Mapping (docs/ingest-protocols.md):
- each numeric field is a series: metric `<measurement>_<field>` (the field `value` gives
  `<measurement>` alone), tags become labels (a `region` tag is the Argus region);
  characters a metric or label name cannot hold become `_`;
- floats, integers (`1i`), unsigned (`1u`) and booleans (1/0) are gauge values (line
  protocol carries no counter type); string fields are skipped (Argus keeps numbers);
- the timestamp is in `precision` units (default nanoseconds); none means the server's time.
A line that cannot be parsed is a point error: the other lines are still accepted, and the
answer is a 400 in Influx's error shape naming the first bad lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from command_side.ingest.protocols.foreign import ForeignSeries, Temporality
from core.errors import InvalidArgument

# Nanoseconds per unit, by every spelling the v1 and v2 write APIs accept.
PRECISION_NS = {
    "ns": 1,
    "n": 1,
    "us": 1_000,
    "u": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
MAX_REPORTED_ERRORS = 5
_BAD_METRIC = re.compile(r"[^a-zA-Z0-9_:.]")
_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_BOOLS = {"t": 1.0, "T": 1.0, "true": 1.0, "True": 1.0, "TRUE": 1.0, "f": 0.0, "F": 0.0, "false": 0.0}
_BOOLS.update({"False": 0.0, "FALSE": 0.0})


class LineError(InvalidArgument):
    """One bad line (reported with its number; the other lines go on)."""


@dataclass(slots=True)
class ParsedLines:
    series: list[ForeignSeries] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """The first bad lines ("line N: why")."""
    bad_points: int = 0


def precision_ns(text: str | None) -> int:
    if not text:
        return 1
    found = PRECISION_NS.get(text)
    if found is None:
        raise InvalidArgument(f"precision {text[:16]!r} is not one of {', '.join(PRECISION_NS)}", parameter="precision")
    return found


def metric_name(text: str) -> str:
    name = _BAD_METRIC.sub("_", text)
    return name if name[:1].isalpha() or name[:1] in "_:" else "_" + name


def label_name(text: str) -> str:
    name = _BAD_LABEL.sub("_", text)
    return name if name[:1].isalpha() or name[:1] == "_" else "_" + name


def parse(body: str, *, unit_ns: int, now_ms: int) -> ParsedLines:
    out = ParsedLines()
    by_key: dict[tuple[str, tuple[tuple[str, str], ...]], ForeignSeries] = {}
    for number, line in enumerate(body.split("\n"), start=1):
        line = line.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        try:
            measurement, tags, fields, ts = _parse_line(line)
        except LineError as exc:
            out.bad_points += 1
            if len(out.errors) < MAX_REPORTED_ERRORS:
                out.errors.append(f"line {number}: {exc}")
            continue
        ts_ms = now_ms if ts is None else (ts * unit_ns) // 1_000_000
        if not -(2**63) <= ts_ms < 2**63:
            out.bad_points += 1
            if len(out.errors) < MAX_REPORTED_ERRORS:
                out.errors.append(f"line {number}: timestamp {ts} is out of range")
            continue
        labels = tuple(sorted((label_name(k), v) for k, v in tags.items() if v))
        for field_name, value in fields:
            metric = metric_name(measurement if field_name == "value" else f"{measurement}_{field_name}")
            key = (metric, labels)
            series = by_key.get(key)
            if series is None:
                series = by_key[key] = ForeignSeries(metric=metric, labels=dict(labels), temporality=Temporality.GAUGE)
                out.series.append(series)
            series.timestamps_ms.append(ts_ms)
            series.values.append(value)
    return out


def _split(text: str, sep: str, *, quotes: bool = False) -> list[str]:
    """Split on unescaped `sep` (outside double quotes when `quotes`)."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    in_quotes = False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if quotes and ch == '"':
            in_quotes = not in_quotes
        elif ch == sep and not in_quotes:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if in_quotes:
        raise LineError("unterminated string field")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _parse_line(line: str) -> tuple[str, dict[str, str], list[tuple[str, float]], int | None]:
    sections = [s for s in _split(line, " ", quotes=True) if s]
    if len(sections) not in (2, 3):
        raise LineError("want `measurement[,tags] fields [timestamp]`")
    head = _split(sections[0], ",")
    measurement = _unescape(head[0])
    if not measurement:
        raise LineError("missing measurement")
    tags: dict[str, str] = {}
    for pair in head[1:]:
        kv = _split(pair, "=")
        if len(kv) != 2 or not kv[0]:
            raise LineError(f"tag {pair[:40]!r} is not key=value")
        tags[_unescape(kv[0])] = _unescape(kv[1])
    fields: list[tuple[str, float]] = []
    for pair in _split(sections[1], ",", quotes=True):
        kv = _split(pair, "=", quotes=True)
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise LineError(f"field {pair[:40]!r} is not key=value")
        value = _field_value(kv[1])
        if value is not None:
            fields.append((_unescape(kv[0]), value))
    ts: int | None = None
    if len(sections) == 3:
        try:
            ts = int(sections[2])
        except ValueError:
            raise LineError(f"timestamp {sections[2][:40]!r} is not an integer") from None
    return measurement, tags, fields, ts


def _field_value(text: str) -> float | None:
    """The field's number; None for a string field (skipped)."""
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise LineError("unterminated string field")
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    try:
        if text[-1] in "iu":
            return float(int(text[:-1]))
        return float(text)
    except ValueError:
        raise LineError(f"field value {text[:40]!r} is not a number") from None
