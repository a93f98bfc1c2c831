"""Interval aggregation at the agent: sums, gauges, timer sketches, distinct sets, and that
what it sends becomes the same points as raw observations would."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.aggregate import IntervalAggregator
from agent.statsd import StatsdMetric, parse_packet
from contracts.argus.metrics.v1 import metrics_pb2
from core import points as pts
from core.model import MetricKind
from core.samples import SampleBuffer
from core.sketches import hash_strings

T0 = 1_764_000_000.0  # a multiple of 5 s


def m(name: str, kind: MetricKind, value: float | str, rate: float = 1.0, **labels: str) -> StatsdMetric:
    return StatsdMetric(name, kind, value, tuple(sorted(labels.items())), rate)


def test_counters_sum_per_interval_and_timestamps_are_interval_starts() -> None:
    agg = IntervalAggregator(region="eu-west-1")
    agg.add_many([m("hits", MetricKind.COUNTER, 1), m("hits", MetricKind.COUNTER, 2)], T0 + 0.1)
    agg.add(m("hits", MetricKind.COUNTER, 5, rate=0.5), T0 + 4.9)
    agg.add(m("hits", MetricKind.COUNTER, 7), T0 + 5.0)
    assert (agg.pending_intervals, agg.series_count) == (2, 1)
    assert agg.drain(T0 + 4.999) == []
    (series,) = agg.drain(T0 + 5.0)
    assert (series.metric, series.kind, series.region) == ("hits", metrics_pb2.METRIC_KIND_COUNTER, "eu-west-1")
    assert list(series.timestamps_ms) == [int(T0 * 1000)]
    assert list(series.values) == [13.0]
    assert agg.pending_intervals == 1
    (rest,) = agg.drain(T0 + 5.0, force=True)
    assert list(rest.timestamps_ms) == [int(T0 * 1000) + 5000]
    assert list(rest.values) == [7.0]
    assert agg.pending_intervals == 0


@given(st.lists(st.tuples(st.integers(0, 10**9), st.floats(0, 14.99)), max_size=200))
def test_counter_sums_are_exact(adds: list[tuple[int, float]]) -> None:
    agg = IntervalAggregator(region="r")
    for value, offset in adds:
        agg.add(m("c", MetricKind.COUNTER, float(value)), T0 + offset)
    out = agg.drain(T0 + 100)
    got = {ts: v for s in out for ts, v in zip(s.timestamps_ms, s.values, strict=True)}
    want: dict[int, float] = {}
    for value, offset in adds:
        start = int(T0 * 1000) + int(offset // 5) * 5000
        want[start] = want.get(start, 0) + value
    assert got == want


def test_default_labels_are_added_and_the_metrics_own_labels_win() -> None:
    agg = IntervalAggregator(region="r", default_labels={"host": "h1", "env": "prod"})
    agg.add(m("g", MetricKind.GAUGE, 1, env="dev"), T0)
    (series,) = agg.drain(T0, force=True)
    assert [(label.name, label.value) for label in series.labels] == [("env", "dev"), ("host", "h1")]


def test_gauges_send_the_last_value_and_optionally_min_and_max() -> None:
    for extremes in (False, True):
        agg = IntervalAggregator(region="r", gauge_extremes=extremes)
        for v in (3.0, -1.0, 9.0, 4.0):
            agg.add(m("temp", MetricKind.GAUGE, v), T0 + 1)
        got = {s.metric: list(s.values) for s in agg.drain(T0 + 5)}
        assert got == ({"temp": [4.0], "temp.min": [-1.0], "temp.max": [9.0]} if extremes else {"temp": [4.0]})


def test_distinct_sends_the_intervals_unique_hashes() -> None:
    agg = IntervalAggregator(region="r")
    for user in ("a", "b", "a", "c", "b"):
        agg.add(m("users", MetricKind.DISTINCT, user), T0)
    (series,) = agg.drain(T0 + 5)
    assert list(series.observation_counts) == [3]
    assert sorted(series.distinct_hashes) == sorted(hash_strings(["a", "b", "c"]).tolist())


def test_series_beyond_the_limit_are_dropped_and_counted() -> None:
    agg = IntervalAggregator(region="r", max_series=2)
    for i in range(4):
        agg.add(m("g", MetricKind.GAUGE, 1, i=str(i)), T0)
    assert agg.series_count == 2
    assert agg.dropped_series == 2


def _timer_points_via_projector(series: list[metrics_pb2.SeriesSamples], step_ms: int) -> pts.Points:
    from contracts.argus.events.v1 import events_pb2

    event = events_pb2.SampleBatchAccepted(tenant="t", source="s", batch_id="b")
    event.series_ids.extend(range(len(series)))
    event.series.extend(series)
    buffer = SampleBuffer()
    buffer.add(event, partition=0, offset=1)
    (family,) = buffer.drain()
    return family.to_points(None, step_ms)


_obs = st.lists(st.integers(-(10**6), 10**6).map(lambda i: i / 8), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(_obs, st.integers(1, 3))
def test_agent_sketch_gives_the_points_raw_observations_give(values: list[float], intervals: int) -> None:
    agg = IntervalAggregator(region="r")
    offsets = [(i * intervals * 5.0) / len(values) for i in range(len(values))]
    for v, off in zip(values, offsets, strict=True):
        agg.add(m("lat", MetricKind.TIMER, v), T0 + off)
    series = agg.drain(T0 + 100)
    for step in (5_000, 60_000):
        got = _timer_points_via_projector(series, step)
        ts = [int((T0 + off) * 1000) for off in offsets]
        want = pts.from_observations(np.zeros(len(ts)), ts, np.ones(len(ts)), values, step)
        assert got.count.tolist() == want.count.tolist()
        assert got.sum.tolist() == want.sum.tolist()  # multiples of 1/8: exact in any order
        assert got.min.tolist() == want.min.tolist()
        assert got.max.tolist() == want.max.tolist()
        assert got.last.tolist() == want.last.tolist()
        assert got.sketch.index.tolist() == want.sketch.index.tolist()
        assert got.sketch.value.tolist() == want.sketch.value.tolist()
        for q in (0.5, 0.99):
            np.testing.assert_array_equal(pts.quantiles(got, q), pts.quantiles(want, q))


def test_many_observations_are_compacted_and_stay_exact() -> None:
    rng = np.random.default_rng(7)
    values = np.round(rng.lognormal(3, 1, 20_000), 3)
    agg = IntervalAggregator(region="r")
    for v in values.tolist():
        agg.add(m("lat", MetricKind.TIMER, v), T0 + 1)
    (series,) = agg.drain(T0 + 5)
    assert len(series.sketch_keys) < 1_000
    got = _timer_points_via_projector([series], 5_000)
    want = pts.from_observations([0], [int(T0 * 1000)], [len(values)], values, 5_000)
    assert got.count.tolist() == [20_000]
    assert (got.min.tolist(), got.max.tolist(), got.last.tolist()) == (
        want.min.tolist(),
        want.max.tolist(),
        want.last.tolist(),
    )
    np.testing.assert_allclose(got.sum, want.sum, rtol=1e-12)
    assert got.sketch.value.tolist() == want.sketch.value.tolist()


def test_sampled_timer_observations_are_weighted() -> None:
    agg = IntervalAggregator(region="r")
    metrics, bad = parse_packet(b"lat:10|ms|@0.25\nlat:20|ms")
    assert bad == 0
    agg.add_many(metrics, T0)
    (series,) = agg.drain(T0 + 5)
    assert sum(series.sketch_counts) == 5
    assert list(series.sketch_sums) == [60.0]
    assert (list(series.sketch_mins), list(series.sketch_maxs), list(series.sketch_lasts)) == ([10.0], [20.0], [20.0])
