"""Per-interval aggregation of StatsD metrics into SeriesSamples ready to push.

Every metric lands in the interval that holds its arrival time (`now_s`); intervals are
aligned to multiples of `interval_s` since the epoch, and a sample's timestamp is its
interval's start. Per series and interval:

- counter: the sum of the values, each scaled by 1 / sample rate.
- gauge: the last value. The interval's min and max are kept too and, with
  `gauge_extremes=True`, travel as two more gauges `<name>.min` and `<name>.max` (off by
  default: it triples the series of every gauge, and most gauges are set once per interval).
- timer: a DDSketch (`core.sketches` keys, so it merges exactly with sketches built anywhere
  else) plus exact count/sum/min/max/last, sent in the sketch columns of
  argus.metrics.v1.SeriesSamples. Observations are buffered and folded into the sketch every
  `_COMPACT_AT` values, so memory per series stays bounded however high the rate. A sample
  rate weighs each observation 1 / rate; a bucket's weighted count is rounded (at least 1).
- distinct: the set of values seen, sent as `distinct_hashes` (exact per interval; the HLL
  is built server side). `count` of the point is the number of distinct values.

Not thread-safe: one thread (the daemon's loop, the client's drain thread) owns it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from agent.statsd import StatsdMetric
from contracts.argus.metrics.v1 import metrics_pb2
from core.model import Labels, MetricKind, canonical_labels
from core.sketches import ddsketch_keys, hash_strings

_COMPACT_AT: Final = 4_096
_PB_KINDS: Final = {
    MetricKind.COUNTER: metrics_pb2.METRIC_KIND_COUNTER,
    MetricKind.GAUGE: metrics_pb2.METRIC_KIND_GAUGE,
    MetricKind.TIMER: metrics_pb2.METRIC_KIND_TIMER,
    MetricKind.DISTINCT: metrics_pb2.METRIC_KIND_DISTINCT,
}
_LABEL_CACHE_MAX: Final = 100_000


@dataclass(slots=True)
class _Counter:
    total: float = 0.0


@dataclass(slots=True)
class _Gauge:
    last: float
    min: float
    max: float


@dataclass(slots=True)
class _Timer:
    values: list[float] = field(default_factory=list)
    weights: list[float] | None = None  # set once an observation weighs other than 1
    buckets: dict[int, float] = field(default_factory=dict)  # key -> weighted count
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    last: float = 0.0

    def add(self, value: float, weight: float) -> None:
        self.values.append(value)
        if weight != 1.0 and self.weights is None:
            self.weights = [1.0] * (len(self.values) - 1)
        if self.weights is not None:
            self.weights.append(weight)
        self.last = value
        if len(self.values) >= _COMPACT_AT:
            self.compact()

    def compact(self) -> None:
        if not self.values:
            return
        v = np.array(self.values, dtype=np.float64)
        w = np.ones(len(v)) if self.weights is None else np.array(self.weights, dtype=np.float64)
        keys, inverse = np.unique(ddsketch_keys(v), return_inverse=True)
        counts = np.bincount(inverse.reshape(-1), weights=w, minlength=len(keys))
        buckets = self.buckets
        for k, c in zip(keys.tolist(), counts.tolist(), strict=True):
            buckets[k] = buckets.get(k, 0.0) + c
        self.sum += float(np.sum(v * w)) if self.weights is not None else float(np.sum(v))
        self.min = min(self.min, float(v.min()))
        self.max = max(self.max, float(v.max()))
        self.values = []
        self.weights = None


@dataclass(slots=True)
class _Distinct:
    values: set[str] = field(default_factory=set)


_State = _Counter | _Gauge | _Timer | _Distinct
_SeriesKey = tuple[str, MetricKind, Labels]


class IntervalAggregator:
    """Aggregates metrics per `interval_s` per series; `drain` turns closed intervals into
    SeriesSamples (one per series, a sample per interval) for a SampleBatch."""

    def __init__(
        self,
        *,
        interval_s: float = 5.0,
        region: str,
        default_labels: Mapping[str, str] | None = None,
        gauge_extremes: bool = False,
        max_series: int = 100_000,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_ms = round(interval_s * 1000)
        if self.interval_ms < 1:
            raise ValueError(f"interval_s must be at least 0.001, got {interval_s}")
        self.region = region
        self._defaults = canonical_labels(default_labels or {})
        self._gauge_extremes = gauge_extremes
        self._max_series = max_series
        self._intervals: dict[int, dict[_SeriesKey, _State]] = {}
        self._labels: dict[Labels, Labels] = {}
        self._cur_start = -1
        self._cur: dict[_SeriesKey, _State] = {}
        self.dropped_series = 0
        """Metrics dropped because an interval already held `max_series` series."""

    @property
    def series_count(self) -> int:
        """Distinct series with data in any pending interval."""
        seen: set[_SeriesKey] = set()
        for states in self._intervals.values():
            seen.update(states)
        return len(seen)

    @property
    def pending_intervals(self) -> int:
        return len(self._intervals)

    def _merged(self, labels: Labels) -> Labels:
        merged = self._labels.get(labels)
        if merged is None:
            merged = canonical_labels({**dict(self._defaults), **dict(labels)}) if self._defaults else labels
            if len(self._labels) >= _LABEL_CACHE_MAX:
                self._labels.clear()
            self._labels[labels] = merged
        return merged

    def _states(self, now_s: float) -> dict[_SeriesKey, _State]:
        now_ms = int(now_s * 1000)
        start = now_ms - now_ms % self.interval_ms
        if start != self._cur_start:
            self._cur_start = start
            self._cur = self._intervals.setdefault(start, {})
        return self._cur

    def add(self, metric: StatsdMetric, now_s: float) -> None:
        """Aggregate one metric arriving at `now_s` (seconds since the epoch)."""
        self.add_value(metric.name, metric.kind, metric.labels, metric.value, now_s, metric.sample_rate)

    def add_many(self, metrics: Iterable[StatsdMetric], now_s: float) -> None:
        for m in metrics:
            self.add_value(m.name, m.kind, m.labels, m.value, now_s, m.sample_rate)

    def add_value(
        self,
        name: str,
        kind: MetricKind,
        labels: Labels,
        value: float | str,
        now_s: float,
        sample_rate: float = 1.0,
    ) -> None:
        """Like `add` without a StatsdMetric. `labels` must be sorted by name (canonical)."""
        states = self._states(now_s)
        key = (name, kind, self._merged(labels))
        state = states.get(key)
        if kind is MetricKind.COUNTER:
            if state is None:
                if len(states) >= self._max_series:
                    self.dropped_series += 1
                    return
                state = states[key] = _Counter()
            assert isinstance(state, _Counter)
            state.total += float(value) / sample_rate
        elif kind is MetricKind.GAUGE:
            v = float(value)
            if state is None:
                if len(states) >= self._max_series:
                    self.dropped_series += 1
                    return
                states[key] = _Gauge(last=v, min=v, max=v)
                return
            assert isinstance(state, _Gauge)
            state.last = v
            if v < state.min:
                state.min = v
            elif v > state.max:
                state.max = v
        elif kind is MetricKind.TIMER:
            if state is None:
                if len(states) >= self._max_series:
                    self.dropped_series += 1
                    return
                state = states[key] = _Timer()
            assert isinstance(state, _Timer)
            state.add(float(value), 1.0 / sample_rate)
        else:
            if state is None:
                if len(states) >= self._max_series:
                    self.dropped_series += 1
                    return
                state = states[key] = _Distinct()
            assert isinstance(state, _Distinct)
            state.values.add(str(value))

    def drain(self, now_s: float, *, force: bool = False) -> list[metrics_pb2.SeriesSamples]:
        """SeriesSamples of every interval that has ended by `now_s` (all of them with
        `force`, e.g. at exit), removed from the aggregator. One SeriesSamples per series,
        its samples in time order; series in first-seen order."""
        now_ms = int(now_s * 1000)
        closed = sorted(s for s in self._intervals if force or s + self.interval_ms <= now_ms)
        out: dict[tuple[str, MetricKind, Labels], metrics_pb2.SeriesSamples] = {}
        for start in closed:
            states = self._intervals.pop(start)
            if start == self._cur_start:
                self._cur_start, self._cur = -1, {}
            for (name, kind, labels), state in states.items():
                self._emit(out, name, kind, labels, start, state)
        return list(out.values())

    def _series(
        self, out: dict[_SeriesKey, metrics_pb2.SeriesSamples], name: str, kind: MetricKind, labels: Labels
    ) -> metrics_pb2.SeriesSamples:
        key = (name, kind, labels)
        series = out.get(key)
        if series is None:
            series = out[key] = metrics_pb2.SeriesSamples(metric=name, kind=_PB_KINDS[kind], region=self.region)
            series.labels.extend(metrics_pb2.Label(name=k, value=v) for k, v in labels)
        return series

    def _emit(
        self,
        out: dict[_SeriesKey, metrics_pb2.SeriesSamples],
        name: str,
        kind: MetricKind,
        labels: Labels,
        start: int,
        state: _State,
    ) -> None:
        if isinstance(state, _Counter | _Gauge):
            value = state.total if isinstance(state, _Counter) else state.last
            series = self._series(out, name, kind, labels)
            series.timestamps_ms.append(start)
            series.values.append(value)
            if isinstance(state, _Gauge) and self._gauge_extremes:
                for suffix, extreme in ((".min", state.min), (".max", state.max)):
                    extra = self._series(out, name + suffix, kind, labels)
                    extra.timestamps_ms.append(start)
                    extra.values.append(extreme)
        elif isinstance(state, _Timer):
            state.compact()
            keys = sorted(state.buckets)
            counts = [max(1, round(state.buckets[k])) for k in keys]
            series = self._series(out, name, kind, labels)
            series.timestamps_ms.append(start)
            series.sketch_sums.append(state.sum)
            series.sketch_mins.append(state.min)
            series.sketch_maxs.append(state.max)
            series.sketch_lasts.append(state.last)
            series.sketch_sizes.append(len(keys))
            series.sketch_keys.extend(keys)
            series.sketch_counts.extend(counts)
        else:
            values = sorted(state.values)  # sorted: the same interval always encodes the same
            series = self._series(out, name, kind, labels)
            series.timestamps_ms.append(start)
            series.observation_counts.append(len(values))
            series.distinct_hashes.extend(hash_strings(values).tolist())
