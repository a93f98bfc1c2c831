"""The StatsD / DogStatsD line format the agent speaks (see docs/client.md).

    <name>:<value>[:<value>...]|<type>[|@<sample rate>][|#<tag>:<value>,...][|<ignored>...]

| type | kind | value |
|---|---|---|
| `c` | counter | a non-negative delta; with `|@r` it stands for value / r |
| `g` | gauge | the absolute value; a sign is just a sign (no Etsy relative gauges) |
| `ms`, `h`, `d` | timer | one observation; with `|@r` it weighs 1 / r |
| `s` | distinct | any text (it may contain `:`); the sample rate is ignored |

- DogStatsD tags become labels; every tag needs a value (`name:value`). Names, labels and
  label values follow `core.validation` (the rules ingest applies), so a bad line is
  rejected here with its reason and never reaches ingest.
- Several values in one line (`lat:1:2.5:3|ms`, DogStatsD 1.1) are for counters, gauges and
  timers; `parse_packet` expands them, `parse_line` takes lines with one value.
- Other `|` sections (DogStatsD container ids `|c:...`, timestamps `|T...`) are ignored;
  events (`_e{`) and service checks (`_sc|`) are rejected.
- Counter values must not be negative: Argus counters are deltas that only go up (a
  decrement is rejected with a reason; use a gauge).

Parsing is cached by the (name, tags) bytes of a line, so a steady stream of known series
validates each name and tag set once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from core import validation
from core.errors import InvalidArgument
from core.model import Labels, MetricKind
from core.settings import IngestLimits

TYPE_KINDS: Final[dict[bytes, MetricKind]] = {
    b"c": MetricKind.COUNTER,
    b"g": MetricKind.GAUGE,
    b"ms": MetricKind.TIMER,
    b"h": MetricKind.TIMER,
    b"d": MetricKind.TIMER,
    b"s": MetricKind.DISTINCT,
}
KIND_TYPES: Final[dict[MetricKind, str]] = {
    MetricKind.COUNTER: "c",
    MetricKind.GAUGE: "g",
    MetricKind.TIMER: "ms",
    MetricKind.DISTINCT: "s",
}
MAX_LINE_BYTES: Final = 8_192
_LIMITS: Final = IngestLimits()
# Valid identities are cached by the bytes of their key; rejected ones never are, so a stream
# of distinct bad lines costs nothing after it is answered.
_CACHE_MAX_BYTES: Final = 16 * 1024 * 1024
# Characters that would split a line, a section or a tag list.
_UNSAFE_TAG_VALUE: Final = frozenset("|,\n\r")


@dataclass(frozen=True, slots=True)
class StatsdMetric:
    """One parsed line. `value` is as sent (a float, or the text of a distinct value); the
    sample rate is applied when aggregating. `labels` are sorted by name."""

    name: str
    kind: MetricKind
    value: float | str
    labels: Labels
    sample_rate: float = 1.0


class StatsdParseError(InvalidArgument, ValueError):
    """A line that is not valid; the message says why (and names the line's metric)."""


# (name bytes, tags bytes) -> (name, labels) or the reason they are invalid.
_identity_cache: dict[tuple[bytes, bytes], tuple[str, Labels]] = {}
_identity_cache_bytes = 0


def _identity(name_b: bytes, tags_b: bytes) -> tuple[str, Labels]:
    global _identity_cache_bytes
    key = (name_b, tags_b)
    found = _identity_cache.get(key)
    if found is not None:
        return found
    checked = _validate_identity(name_b, tags_b)
    if isinstance(checked, str):
        raise StatsdParseError(checked)
    # Key bytes twice: the key and the decoded name and labels are about as large again.
    cost = 2 * (len(name_b) + len(tags_b)) + 200
    if _identity_cache_bytes + cost > _CACHE_MAX_BYTES:
        _identity_cache.clear()
        _identity_cache_bytes = 0
    _identity_cache[key] = checked
    _identity_cache_bytes += cost
    return checked


def _validate_identity(name_b: bytes, tags_b: bytes) -> tuple[str, Labels] | str:
    try:
        name = name_b.decode()
        tags = tags_b.decode()
    except UnicodeDecodeError:
        return f"metric {name_b[:60]!r}: not valid UTF-8"
    problem = validation.metric_name_problem(name, _LIMITS)
    if problem:
        return problem
    labels: list[tuple[str, str]] = []
    if tags:
        for tag in tags.split(","):
            label, sep, value = tag.partition(":")
            if not sep:
                return f"metric {name!r}: tag {tag!r} has no value (Argus labels are name:value)"
            labels.append((label, value))
    labels.sort()
    label_problem = validation.labels_problem(labels, _LIMITS)
    if label_problem:
        return f"metric {name!r}: {label_problem[0]}"
    return name, tuple(labels)


def _number(text: bytes, name: bytes) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StatsdParseError(
            f"metric {name.decode(errors='replace')!r}: value {text[:40]!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise StatsdParseError(f"metric {name.decode(errors='replace')!r}: value is NaN or infinite")
    return value


def _parse(line: bytes) -> list[StatsdMetric]:
    if len(line) > MAX_LINE_BYTES:
        raise StatsdParseError(f"line is {len(line)} bytes, more than {MAX_LINE_BYTES}")
    if line.startswith((b"_e{", b"_sc|")):
        raise StatsdParseError("DogStatsD events and service checks are not supported")
    head, _, rest = line.partition(b"|")
    name_b, colon, value_b = head.partition(b":")
    if not colon:
        raise StatsdParseError(f"line {line[:60]!r} has no ':' between name and value")
    if not rest:
        raise StatsdParseError(f"metric {name_b[:60]!r}: no '|<type>' after the value")
    type_b, _, sections = rest.partition(b"|")
    kind = TYPE_KINDS.get(type_b)
    if kind is None:
        raise StatsdParseError(f"metric {name_b[:60]!r}: unknown type {type_b[:10]!r} (expected c, g, ms, h, d or s)")
    rate = 1.0
    tags_b = b""
    if sections:
        for section in sections.split(b"|"):
            if section[:1] == b"@":
                rate = _number(section[1:], name_b)
                if not 0.0 < rate <= 1.0:
                    raise StatsdParseError(
                        f"metric {name_b.decode(errors='replace')!r}: sample rate {rate} is not in (0, 1]"
                    )
            elif section[:1] == b"#":
                tags_b = section[1:]
            # Any other section (container id, timestamp, ...) does not change the value.
    name, labels = _identity(name_b, tags_b)
    if kind is MetricKind.DISTINCT:
        if not value_b:
            raise StatsdParseError(f"metric {name!r}: empty set value")
        try:
            return [StatsdMetric(name, kind, value_b.decode(), labels, rate)]
        except UnicodeDecodeError:
            raise StatsdParseError(f"metric {name!r}: set value is not valid UTF-8") from None
    out = []
    for part in value_b.split(b":"):
        value = _number(part, name_b)
        if kind is MetricKind.COUNTER and value < 0:
            raise StatsdParseError(f"metric {name!r}: counter value {value:g} is negative (counters only go up)")
        out.append(StatsdMetric(name, kind, value, labels, rate))
    return out


def parse_line(line: bytes) -> StatsdMetric:
    """One metric from one line (without its newline). Raises StatsdParseError with the reason;
    a line with several values must go through `parse_packet`."""
    metrics = _parse(line.rstrip(b"\r"))
    if len(metrics) != 1:
        raise StatsdParseError(f"metric {metrics[0].name!r}: {len(metrics)} values in one line; use parse_packet")
    return metrics[0]


def parse_packet(packet: bytes, *, errors: list[str] | None = None) -> tuple[list[StatsdMetric], int]:
    """All metrics of a datagram (lines separated by newlines; empty lines are skipped) and
    how many lines were malformed. A bad line never affects the others. When `errors` is
    given, the reason of each malformed line is appended to it."""
    metrics: list[StatsdMetric] = []
    bad = 0
    for line in packet.split(b"\n"):
        if not line or line == b"\r":
            continue
        try:
            metrics.extend(_parse(line.rstrip(b"\r")))
        except StatsdParseError as exc:
            bad += 1
            if errors is not None:
                errors.append(str(exc))
    return metrics, bad


def format_number(value: float) -> str:
    """Shortest text that parses back to exactly `value` (integers without '.0'; -0.0 keeps
    its sign, which `int()` would drop)."""
    if value.is_integer() and abs(value) < 1e16 and not (value == 0 and math.copysign(1.0, value) < 0):
        return str(int(value))
    return repr(value)


def format_tags(labels: Labels) -> str:
    """`|#k:v,...` for a label set ('' for none). Raises ValueError for a value that would
    break the line (a '|', ',' or newline)."""
    if not labels:
        return ""
    for name, value in labels:
        if _UNSAFE_TAG_VALUE.intersection(value):
            raise ValueError(
                f"label {name!r} value {value!r} contains '|', ',' or a newline: it cannot travel as a tag"
            )
    return "|#" + ",".join(f"{k}:{v}" for k, v in labels)


def format_line(metric: StatsdMetric) -> bytes:
    """The line (without newline) that `parse_line` reads back as `metric`.

    Raises ValueError for what the format cannot carry: a name with ':', a non-finite value,
    a set value with a newline, a label value with '|', ',' or a newline."""
    if ":" in metric.name or "|" in metric.name or "\n" in metric.name:
        raise ValueError(f"metric name {metric.name!r} cannot travel in a StatsD line (':', '|' or newline)")
    if isinstance(metric.value, str):
        if metric.kind is not MetricKind.DISTINCT:
            raise ValueError(f"metric {metric.name!r}: a text value needs kind distinct")
        if "\n" in metric.value or "|" in metric.value or not metric.value:
            raise ValueError(f"metric {metric.name!r}: set value must be non-empty without '|' or newline")
        text = metric.value
    else:
        if not math.isfinite(metric.value):
            raise ValueError(f"metric {metric.name!r}: value is NaN or infinite")
        text = format_number(float(metric.value))
    rate = "" if metric.sample_rate == 1.0 else f"|@{metric.sample_rate!r}"
    return f"{metric.name}:{text}|{KIND_TYPES[metric.kind]}{rate}{format_tags(metric.labels)}".encode()
