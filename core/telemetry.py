"""Argus's own metrics: one process-wide registry, rendered at `/metrics` in the Prometheus
text exposition format (version 0.0.4) and fed into Argus itself by `argus up`.

A small registry of our own rather than `prometheus-client` (decision 0048): three metric
types, bounded label sets, a JSON snapshot the projector child sends its parent, and a
reader the self-feed turns into samples, in about 250 lines without a new dependency.

Names follow the Prometheus conventions (`argus_` prefix, `_total` counters, `_seconds`
and `_bytes` units) and are listed in docs/metrics.md. No label carries a tenant: the
figures are per process, so `/metrics` shows nothing of any tenant's data, and every
metric holds at most `MAX_LABEL_SETS` label sets (later ones fold into `"_other"`).
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiohttp import web

Kind = Literal["counter", "gauge", "histogram"]

MAX_LABEL_SETS: Final = 200
OVERFLOW: Final = "_other"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

LabelValues = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of the exposition: `name{labels} value`."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: Kind
    help: str
    samples: tuple[Sample, ...]


class _Metric:
    kind: Kind

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, values: Sequence[str], known: Mapping[LabelValues, object]) -> LabelValues:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {tuple(values)}")
        key = tuple(str(v) for v in values)
        if key not in known and len(known) >= MAX_LABEL_SETS:
            return (OVERFLOW,) * len(key)  # bounded cardinality, whatever the input
        return key

    def samples(self) -> list[Sample]:
        raise NotImplementedError


class Counter(_Metric):
    """Only goes up. `name` ends in `_total`."""

    kind: Kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {} if labelnames else {(): 0.0}

    def inc(self, *labels: str, by: float = 1.0) -> None:
        if by < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            key = self._key(labels, self._values)
            self._values[key] = self._values.get(key, 0.0) + by

    def value(self, *labels: str) -> float:
        return self._values.get(tuple(labels), 0.0)

    def samples(self) -> list[Sample]:
        with self._lock:
            items = sorted(self._values.items())
        return [Sample(self.name, tuple(zip(self.labelnames, k, strict=True)), v) for k, v in items]


class Gauge(_Metric):
    """Goes up and down; or read at collect time from `set_function` (sizes of caches)."""

    kind: Kind = "gauge"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {}
        self._functions: dict[LabelValues, Callable[[], float]] = {}

    def set(self, value: float, *labels: str) -> None:
        with self._lock:
            self._values[self._key(labels, self._values)] = float(value)

    def inc(self, *labels: str, by: float = 1.0) -> None:
        with self._lock:
            key = self._key(labels, self._values)
            self._values[key] = self._values.get(key, 0.0) + by

    def remove(self, *labels: str) -> None:
        """Stop showing these labels (a partition this process no longer owns)."""
        with self._lock:
            self._values.pop(tuple(labels), None)
            self._functions.pop(tuple(labels), None)

    def set_function(self, function: Callable[[], float], *labels: str) -> None:
        """Read `function` at every collect (the latest one set for these labels wins)."""
        with self._lock:
            self._functions[self._key(labels, self._functions)] = function

    def value(self, *labels: str) -> float:
        key = tuple(labels)
        function = self._functions.get(key)
        return float(function()) if function is not None else self._values.get(key, 0.0)

    def samples(self) -> list[Sample]:
        with self._lock:
            values = dict(self._values)
            functions = dict(self._functions)
        for key, function in functions.items():
            try:
                values[key] = float(function())
            except Exception:  # a closed cache must not break the scrape
                values.pop(key, None)
        return [Sample(self.name, tuple(zip(self.labelnames, k, strict=True)), v) for k, v in sorted(values.items())]


class ObservedCounter(Gauge):
    """A counter whose value is read at collect time from `set_function` (a total an object
    already keeps, e.g. the live hub's)."""

    kind: Kind = "counter"


class Histogram(_Metric):
    """Observations in cumulative buckets (`_bucket{le=...}`, `_sum`, `_count`)."""

    kind: Kind = "histogram"

    def __init__(
        self, name: str, help: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        super().__init__(name, help, labelnames)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[LabelValues, list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            key = self._key(labels, self._series)
            row = self._series.get(key)
            if row is None:
                row = self._series[key] = [0.0] * (len(self.buckets) + 2)
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    row[i] += 1
                    break
            row[-2] += value
            row[-1] += 1

    @contextmanager
    def time(self, *labels: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started, *labels)

    def count(self, *labels: str) -> float:
        row = self._series.get(tuple(labels))
        return row[-1] if row else 0.0

    def samples(self) -> list[Sample]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        out: list[Sample] = []
        for key, row in items:
            labels = tuple(zip(self.labelnames, key, strict=True))
            running = 0.0
            for bound, n in zip(self.buckets, row, strict=False):
                running += n
                out.append(Sample(self.name + "_bucket", (*labels, ("le", _number(bound))), running))
            out.append(Sample(self.name + "_bucket", (*labels, ("le", "+Inf")), row[-1]))
            out.append(Sample(self.name + "_sum", labels, row[-2]))
            out.append(Sample(self.name + "_count", labels, row[-1]))
        return out


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._external: dict[str, tuple[Family, ...]] = {}
        self._lock = threading.Lock()

    def _add(self, metric: _Metric) -> Any:
        with self._lock:
            existing = self._metrics.get(metric.name)
            if existing is not None:
                if type(existing) is not type(metric) or existing.labelnames != metric.labelnames:
                    raise ValueError(f"metric {metric.name} registered twice with different shapes")
                return existing  # module reloads (tests) get the same metric
            self._metrics[metric.name] = metric
            return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        result: Counter = self._add(Counter(name, help, labelnames))
        return result

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        result: Gauge = self._add(Gauge(name, help, labelnames))
        return result

    def observed_counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> ObservedCounter:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        result: ObservedCounter = self._add(ObservedCounter(name, help, labelnames))
        return result

    def histogram(
        self, name: str, help: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        result: Histogram = self._add(Histogram(name, help, labelnames, buckets))
        return result

    def set_external(self, source: str, families: Sequence[Family]) -> None:
        """Families another process collected (the projector child of `argus up`), shown
        beside this process's own until replaced."""
        with self._lock:
            self._external[source] = tuple(families)

    def collect(self) -> list[Family]:
        with self._lock:
            metrics = sorted(self._metrics.values(), key=lambda m: m.name)
            external = [f for families in self._external.values() for f in families]
        by_name = {m.name: Family(m.name, m.kind, m.help, tuple(m.samples())) for m in metrics}
        # Another process's figures join ours family by family (the projector child's
        # consumer groups beside this process's); a series both have keeps our value.
        for family in external:
            mine = by_name.get(family.name)
            if mine is None:
                by_name[family.name] = family
            elif mine.kind == family.kind:
                seen = {(s.name, s.labels) for s in mine.samples}
                extra = tuple(s for s in family.samples if (s.name, s.labels) not in seen)
                by_name[family.name] = Family(mine.name, mine.kind, mine.help, mine.samples + extra)
        return [by_name[name] for name in sorted(by_name)]

    def render(self) -> bytes:
        return render(self.collect())


def render(families: Sequence[Family]) -> bytes:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for s in family.samples:
            if s.labels:
                body = ",".join(f'{k}="{_escape_value(v)}"' for k, v in s.labels)
                lines.append(f"{s.name}{{{body}}} {_number(s.value)}")
            else:
                lines.append(f"{s.name} {_number(s.value)}")
    return ("\n".join(lines) + "\n").encode()


def to_json(families: Sequence[Family]) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "kind": f.kind,
            "help": f.help,
            "samples": [[s.name, [list(p) for p in s.labels], s.value] for s in f.samples],
        }
        for f in families
    ]


def from_json(data: Any) -> list[Family]:
    """Families from `to_json` (sent by a child process); ValueError when malformed."""
    if not isinstance(data, list):
        raise ValueError("expected a list of families")
    families: list[Family] = []
    for item in data:
        kind = item["kind"]
        if kind not in ("counter", "gauge", "histogram") or not str(item["name"]).startswith("argus_"):
            raise ValueError(f"unexpected family {item.get('name')!r}")
        samples = tuple(
            Sample(str(name), tuple((str(k), str(v)) for k, v in labels), float(value))
            for name, labels, value in item["samples"]
        )
        families.append(Family(str(item["name"]), kind, str(item["help"]), samples))
    return families


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


REGISTRY: Final = Registry()
"""This process's metrics (one per process, as `/metrics` is per process)."""


def add_metrics_route(app: web.Application, *, token: str = "") -> None:
    """`GET /metrics` on `app`: this process's figures. Open unless `token` (setting
    `metrics_token`) is set; then it wants `Authorization: Bearer <token>` (a scraper's
    `authorization` / `bearer_token_file`)."""
    expected = f"Bearer {token}".encode()

    async def metrics(request: web.Request) -> web.Response:
        if token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            return web.Response(
                status=401,
                text="/metrics wants Authorization: Bearer <metrics_token>\n",
                headers={"WWW-Authenticate": 'Bearer realm="argus-metrics"'},
            )
        # On the loop: the read-at-collect figures walk structures the loop changes, and a
        # few hundred lines take about 1.5 ms (decision 0048).
        body = REGISTRY.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/metrics", metrics)
