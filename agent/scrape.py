"""Scraping Prometheus `/metrics` endpoints on the host (text exposition format 0.0.4 and the
OpenMetrics text it resembles).

What each family becomes (Argus counters are deltas; Prometheus counters are cumulative):

| Prometheus | Argus series | kind |
|---|---|---|
| counter `x` (samples `x` or `x_total`) | same sample name | counter (delta) |
| gauge, untyped (or no `# TYPE`) | same name | gauge |
| histogram `x` | `x_bucket{le=...}`, `x_sum`, `x_count` | counter (delta) each |
| summary `x` | `x{quantile=...}` | gauge (the quantile as exported) |
|  | `x_sum`, `x_count` | counter (delta) |

- Cumulative values become deltas between two scrapes of the same target: the first scrape
  of a series only sets its baseline, and a value below the previous one is a counter
  reset (the process restarted), so the new value itself is the delta.
- Histograms stay as their buckets: a bucket count is exact and merges across hosts by
  addition; turning buckets into a quantile sketch would invent observations.
  Summary quantiles are kept as gauges because precomputed quantiles cannot be merged.
- `_created` samples (OpenMetrics) are skipped; NaN values are skipped; exposition
  timestamps are ignored (samples are stamped with the scrape time).
- Every series gets `instance=<host:port>` of the target plus the target's labels. A
  scraped label named `region` (reserved in Argus) is renamed `exported_region`.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from contracts.argus.metrics.v1 import metrics_pb2
from core.cumulative import CumulativeDeltas
from core.errors import InvalidArgument, Unavailable
from core.model import Labels

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 32 * 1024 * 1024
ACCEPT: Final = "text/plain;version=0.0.4;q=0.9,*/*;q=0.1"
_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FAMILY_TYPES: Final = frozenset({"counter", "gauge", "histogram", "summary", "untyped", "unknown", "gaugehistogram"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ScrapeTarget:
    """One endpoint to scrape. `labels` are added to every series it exports."""

    url: str
    interval_s: float = 15.0
    timeout_s: float = 5.0
    labels: Labels = ()

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidArgument(f"scrape url {self.url!r} must be http(s)://host:port/path", parameter="scrape.url")
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise InvalidArgument(f"scrape {self.url}: interval_s and timeout_s must be > 0", parameter="scrape")

    @property
    def instance(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True, slots=True)
class ExpositionSample:
    """One sample line, with the type of the family it belongs to."""

    name: str
    labels: Labels
    value: float
    family_type: str


class ExpositionError(InvalidArgument, ValueError):
    """A line of the exposition that cannot be read; the message names the line."""


def parse_exposition(text: str) -> tuple[list[ExpositionSample], list[str]]:
    """The samples of a text exposition, and one message per line that did not parse (a bad
    line is skipped; the others are kept)."""
    types: dict[str, str] = {}
    samples: list[ExpositionSample] = []
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                family_type = parts[3].strip().lower()
                if family_type in _FAMILY_TYPES:
                    types[parts[2]] = family_type
            continue
        try:
            name, labels, value = _parse_sample_line(line)
        except ExpositionError as exc:
            errors.append(f"line {number}: {exc}")
            continue
        samples.append(ExpositionSample(name, labels, value, _family_type(name, types)))
    return samples, errors


def _family_type(name: str, types: Mapping[str, str]) -> str:
    if name in types:
        return types[name]
    for suffix in ("_total", "_bucket", "_count", "_sum", "_created"):
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return types[name[: -len(suffix)]]
    return "untyped"


def _parse_sample_line(line: str) -> tuple[str, Labels, float]:
    match = _NAME.match(line)
    if match is None:
        raise ExpositionError(f"no metric name at the start of {line[:60]!r}")
    name = match.group()
    pos = match.end()
    labels: list[tuple[str, str]] = []
    if pos < len(line) and line[pos] == "{":
        pos = _parse_labels(line, pos + 1, labels)
    rest = line[pos:].split()
    if not rest:
        raise ExpositionError(f"{name}: no value")
    value = _parse_value(rest[0], name)
    return name, tuple(sorted(labels)), value


def _parse_labels(line: str, pos: int, out: list[tuple[str, str]]) -> int:
    """Read `name="value",...}` from `pos`; returns the position after the `}`."""
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return pos + 1
        match = _LABEL_NAME.match(line, pos)
        if match is None:
            raise ExpositionError(f"bad label name at column {pos + 1} of {line[:80]!r}")
        label = match.group()
        pos = match.end()
        if line[pos : pos + 2] != '="':
            raise ExpositionError(f'label {label!r} is not followed by ="')
        pos += 2
        chars: list[str] = []
        while True:
            if pos >= len(line):
                raise ExpositionError(f"label {label!r} value has no closing quote")
            char = line[pos]
            if char == "\\" and pos + 1 < len(line):
                escaped = line[pos + 1]
                chars.append("\n" if escaped == "n" else escaped)
                pos += 2
            elif char == '"':
                pos += 1
                break
            else:
                chars.append(char)
                pos += 1
        out.append((label, "".join(chars)))
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == ",":
            pos += 1
        elif pos < len(line) and line[pos] == "}":
            return pos + 1
        else:
            raise ExpositionError(f"expected ',' or '}}' after label {label!r}")


def _parse_value(text: str, name: str) -> float:
    lowered = text.lower()
    if lowered in ("+inf", "inf"):
        return math.inf
    if lowered == "-inf":
        return -math.inf
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(f"{name}: value {text[:40]!r} is not a number") from None


_SeriesKey = tuple[str, Labels]


class ExpositionConverter:
    """Turns successive scrapes of one target into Argus series (cumulative -> delta).

    Not thread-safe; one per target."""

    def __init__(self, *, region: str, labels: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self.region = region
        self._extra = dict(labels.items() if isinstance(labels, Mapping) else labels)
        self._deltas: CumulativeDeltas[_SeriesKey] = CumulativeDeltas()

    def convert(self, samples: Iterable[ExpositionSample], now_ms: int) -> list[metrics_pb2.SeriesSamples]:
        gauges: dict[_SeriesKey, float] = {}
        cumulative: dict[_SeriesKey, float] = {}
        for sample in samples:
            if math.isnan(sample.value) or _is_created(sample):
                continue
            labels = self._labels(sample.labels)
            key = (sample.name, labels)
            if _is_cumulative(sample):
                if math.isfinite(sample.value):
                    cumulative[key] = sample.value
            elif math.isfinite(sample.value):
                gauges[key] = sample.value
        out: list[metrics_pb2.SeriesSamples] = []
        for (name, labels), value in gauges.items():
            out.append(self._series(name, labels, metrics_pb2.METRIC_KIND_GAUGE, value, now_ms))
        for (name, labels), delta in self._deltas.update(cumulative, now_ms, forget_missing=True).items():
            out.append(self._series(name, labels, metrics_pb2.METRIC_KIND_COUNTER, delta, now_ms))
        return out

    def _labels(self, scraped: Labels) -> Labels:
        merged = dict(self._extra)
        for name, value in scraped:
            merged["exported_region" if name == "region" else name] = value
        return tuple(sorted((k, v) for k, v in merged.items() if v))

    def _series(
        self, name: str, labels: Labels, kind: metrics_pb2.MetricKind, value: float, ts_ms: int
    ) -> metrics_pb2.SeriesSamples:
        series = metrics_pb2.SeriesSamples(metric=name, kind=kind, region=self.region)
        for label, text in labels:
            series.labels.add(name=label, value=text)
        series.timestamps_ms.append(ts_ms)
        series.values.append(value)
        return series


def _is_created(sample: ExpositionSample) -> bool:
    """OpenMetrics `x_created`: when a counter started, not a value to chart."""
    return sample.name.endswith("_created") and sample.family_type in ("counter", "histogram", "summary")


def _is_cumulative(sample: ExpositionSample) -> bool:
    family = sample.family_type
    if family == "counter":
        return True
    if family == "histogram":
        return sample.name.endswith(("_bucket", "_sum", "_count"))
    if family == "summary":
        return sample.name.endswith(("_sum", "_count"))
    return False


class Scraper:
    """Scrapes one target with an aiohttp session and converts what it reads."""

    def __init__(
        self, target: ScrapeTarget, *, region: str, default_labels: Mapping[str, str], session: aiohttp.ClientSession
    ) -> None:
        self.target = target
        self._session = session
        labels = {**default_labels, "instance": target.instance, **dict(target.labels)}
        self._converter = ExpositionConverter(region=region, labels=labels)
        self.scrapes = 0
        self.failures = 0
        self.bad_lines = 0

    async def scrape(self, now_ms: int | None = None) -> list[metrics_pb2.SeriesSamples]:
        """Fetch and convert once. Raises Unavailable when the endpoint cannot be read."""
        doing = f"scrape {self.target.url}"
        started = time.perf_counter()
        try:
            timeout = aiohttp.ClientTimeout(total=self.target.timeout_s)
            async with self._session.get(self.target.url, timeout=timeout, headers={"Accept": ACCEPT}) as response:
                if response.status != 200:
                    raise Unavailable(f"{doing}: HTTP {response.status}")
                body = await response.content.read(MAX_BODY_BYTES + 1)
                if len(body) > MAX_BODY_BYTES:
                    raise Unavailable(f"{doing}: body is larger than {MAX_BODY_BYTES} bytes")
                text = body.decode(response.charset or "utf-8", errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failures += 1
            raise Unavailable(f"{doing}: {type(exc).__name__}: {exc}") from exc
        except Unavailable:
            self.failures += 1
            raise
        samples, errors = parse_exposition(text)
        if errors:
            self.bad_lines += len(errors)
            log.warning(
                "scrape skipped unreadable lines: url=%s count=%d first=%s", self.target.url, len(errors), errors[0]
            )
        self.scrapes += 1
        log.debug(
            "scraped: url=%s samples=%d elapsed_ms=%.1f",
            self.target.url,
            len(samples),
            1000 * (time.perf_counter() - started),
        )
        return self._converter.convert(samples, int(time.time() * 1000) if now_ms is None else now_ms)
