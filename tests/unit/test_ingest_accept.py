"""The ingest use case: validation reasons, partial success, idempotent resends."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from command_side.ingest.accept import BatchAcceptor, _sample_count, _scan
from command_side.ingest.registry import TenantRegistry
from contracts.argus.events.v1 import events_pb2
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.events import SAMPLES_TOPIC
from core.model import DAY_MS, partition_of, series_id
from core.ports import AppendResult, Event
from core.settings import IngestLimits

NOW = 1_764_000_000_000
R = ingest_pb2.RejectReason


class MemoryLog:
    """An in-memory log writer for pure unit tests (the real adapters run the contract suite)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, Event]] = []
        self.ids: set[bytes] = set()

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        offsets: list[int | None] = []
        for partition, event in events:
            if event.event_id in self.ids:
                offsets.append(None)
                continue
            self.ids.add(event.event_id)
            self.events.append((topic, partition, event))
            offsets.append(len(self.events))
        return AppendResult(offsets=tuple(offsets))

    def accepted(self) -> list[events_pb2.SampleBatchAccepted]:
        return [events_pb2.SampleBatchAccepted.FromString(e.payload) for _, _, e in self.events]


def make(limit: int = 100, *, columnar: bool = True) -> tuple[BatchAcceptor, MemoryLog]:
    log = MemoryLog()
    acceptor = BatchAcceptor(
        log_writer=log,
        registry=TenantRegistry(max_series_per_tenant=limit),
        limits=IngestLimits(max_batch_samples=1000),
        partitions=12,
        clock_ms=lambda: NOW,
        columnar=columnar,
    )
    return acceptor, log


def gauge(
    metric: str = "cpu", values: Sequence[float] = (1.0, 2.0), labels: Mapping[str, str] | None = None, **more: str
) -> metrics_pb2.SeriesSamples:
    s = metrics_pb2.SeriesSamples(metric=metric, kind=metrics_pb2.METRIC_KIND_GAUGE, region="eu-west-1")
    s.labels.extend(metrics_pb2.Label(name=k, value=v) for k, v in {**(labels or {}), **more}.items())
    s.timestamps_ms.extend(NOW - 10_000 + 5000 * i for i in range(len(values)))
    s.values.extend(values)
    return s


def batch(*series: metrics_pb2.SeriesSamples, batch_id: str = "b1") -> metrics_pb2.SampleBatch:
    b = metrics_pb2.SampleBatch(batch_id=batch_id, source="host-a")
    b.series.extend(series)
    return b


async def test_valid_batch_is_accepted_and_split_by_series_partition() -> None:
    acceptor, log = make()
    many = [gauge(host=f"h{i}") for i in range(20)]
    result = await acceptor.accept("t1", batch(*many))
    assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED
    assert (result.accepted_samples, result.rejected_samples) == (40, 0)
    for topic, partition, event in log.events:
        payload = events_pb2.SampleBatchAccepted.FromString(event.payload)
        assert topic == SAMPLES_TOPIC
        assert payload.tenant == "t1"
        assert list(payload.series_ids) == sorted(payload.series_ids)
        for sid, s in zip(payload.series_ids, payload.series, strict=True):
            labels = tuple((label.name, label.value) for label in s.labels)
            assert sid == series_id("t1", "eu-west-1", "cpu", labels)
            assert partition_of(sid, 12) == partition
    assert sum(len(p.series) for p in log.accepted()) == 20


async def test_resending_a_batch_appends_nothing_and_says_duplicate() -> None:
    acceptor, log = make()
    first = await acceptor.accept("t1", batch(gauge(host="a"), gauge(host="b")))
    again = await acceptor.accept("t1", batch(gauge(host="a"), gauge(host="b")))
    assert not first.duplicate
    assert again.duplicate
    assert again.accepted_samples == 4
    assert len(log.events) == len({e.event_id for _, _, e in log.events})
    other_id = await acceptor.accept("t1", batch(gauge(host="a"), batch_id="b2"))
    assert not other_id.duplicate


@pytest.mark.parametrize(
    ("series", "reason", "needle"),
    [
        (gauge(metric="9bad"), R.REJECT_REASON_INVALID_METRIC_NAME, "9bad"),
        (gauge(metric="x" * 201), R.REJECT_REASON_INVALID_METRIC_NAME, "201 chars"),
        (gauge(labels={"bad-name": "v"}), R.REJECT_REASON_INVALID_LABEL, "bad-name"),
        (gauge(labels={"__x": "v"}), R.REJECT_REASON_INVALID_LABEL, "__x"),
        (gauge(region="x"), R.REJECT_REASON_INVALID_LABEL, "reserved"),
        (gauge(host="v" * 257), R.REJECT_REASON_INVALID_LABEL, "257 bytes"),
        (gauge(host=""), R.REJECT_REASON_INVALID_LABEL, "empty value"),
        (gauge(labels={f"l{i}": "v" for i in range(17)}), R.REJECT_REASON_TOO_MANY_LABELS, "17 labels"),
    ],
)
async def test_bad_series_is_rejected_whole_with_a_reason_naming_it(
    series: metrics_pb2.SeriesSamples, reason: int, needle: str
) -> None:
    acceptor, log = make()
    result = await acceptor.accept("t1", batch(gauge(host="ok"), series))
    assert result.status == ingest_pb2.BATCH_STATUS_PARTIAL
    assert (result.accepted_samples, result.rejected_samples) == (2, 2)
    (rejection,) = result.rejections
    assert (rejection.series_index, rejection.sample_index, rejection.reason) == (1, -1, reason)
    assert needle in rejection.message
    assert sum(len(p.series) for p in log.accepted()) == 1


async def test_non_finite_and_out_of_window_samples_are_dropped_and_the_rest_kept() -> None:
    acceptor, log = make()
    s = gauge(values=[1.0, math.nan, math.inf, 4.0, 5.0, 6.0])
    s.timestamps_ms[4] = NOW + 11 * 60_000
    s.timestamps_ms[5] = NOW - 6 * 365 * DAY_MS
    result = await acceptor.accept("t1", batch(s))
    assert result.status == ingest_pb2.BATCH_STATUS_PARTIAL
    assert (result.accepted_samples, result.rejected_samples) == (2, 4)
    reasons = {r.reason: r for r in result.rejections}
    assert reasons[R.REJECT_REASON_NON_FINITE_VALUE].samples == 2
    assert reasons[R.REJECT_REASON_NON_FINITE_VALUE].sample_index == 1
    assert "future" in reasons[R.REJECT_REASON_TIMESTAMP_TOO_NEW].message
    assert reasons[R.REJECT_REASON_TIMESTAMP_TOO_OLD].sample_index == 5
    (payload,) = log.accepted()
    assert list(payload.series[0].values) == [1.0, 4.0]


async def test_negative_counter_delta_is_rejected() -> None:
    acceptor, _ = make()
    s = gauge(values=[1.0, -2.0])
    s.kind = metrics_pb2.METRIC_KIND_COUNTER
    result = await acceptor.accept("t1", batch(s))
    assert [r.reason for r in result.rejections] == [R.REJECT_REASON_NEGATIVE_COUNTER_DELTA]
    assert result.accepted_samples == 1


async def test_a_metric_keeps_its_first_kind_per_tenant() -> None:
    acceptor, _ = make()
    await acceptor.accept("t1", batch(gauge(metric="requests", host="a")))
    counter = gauge(metric="requests", host="b")
    counter.kind = metrics_pb2.METRIC_KIND_COUNTER
    result = await acceptor.accept("t1", batch(counter, batch_id="b2"))
    (rejection,) = result.rejections
    assert rejection.reason == R.REJECT_REASON_KIND_CONFLICT
    assert "is a gauge" in rejection.message
    other_tenant = await acceptor.accept("t2", batch(counter, batch_id="b3"))
    assert other_tenant.status == ingest_pb2.BATCH_STATUS_ACCEPTED


async def test_series_limit_rejects_new_series_but_keeps_known_ones() -> None:
    acceptor, _ = make(limit=2)
    await acceptor.accept("t1", batch(gauge(host="a"), gauge(host="b")))
    result = await acceptor.accept("t1", batch(gauge(host="a"), gauge(host="c"), batch_id="b2"))
    assert result.accepted_samples == 2
    (rejection,) = result.rejections
    assert rejection.reason == R.REJECT_REASON_SERIES_LIMIT
    assert "limit of 2" in rejection.message and "'cpu'" in rejection.message


async def test_oversize_batch_is_rejected_whole() -> None:
    acceptor, log = make()
    result = await acceptor.accept("t1", batch(gauge(values=[1.0] * 1001)))
    assert result.status == ingest_pb2.BATCH_STATUS_REJECTED
    assert "limit of 1000" in result.error
    assert log.events == []


async def test_malformed_columns_are_rejected_with_the_mismatch() -> None:
    acceptor, _ = make()
    s = gauge()
    s.values.append(3.0)
    timer = metrics_pb2.SeriesSamples(metric="lat", kind=metrics_pb2.METRIC_KIND_TIMER, region="eu")
    timer.timestamps_ms.append(NOW)
    timer.observation_counts.append(3)
    timer.observations.extend([1.0, 2.0])
    result = await acceptor.accept("t1", batch(s, timer))
    messages = [r.message for r in result.rejections]
    assert result.status == ingest_pb2.BATCH_STATUS_REJECTED
    assert "3 values for 2 timestamps" in messages[0]
    assert "add up to 3 but 2" in messages[1]


async def test_distinct_values_reach_the_log_as_hashes() -> None:
    acceptor, log = make()
    s = metrics_pb2.SeriesSamples(metric="users", kind=metrics_pb2.METRIC_KIND_DISTINCT, region="eu")
    s.timestamps_ms.extend([NOW, NOW])
    s.observation_counts.extend([2, 1])
    s.distinct_values.extend(["u1", "u2", "u1"])
    result = await acceptor.accept("t1", batch(s))
    assert result.accepted_samples == 2
    (payload,) = log.accepted()
    stored = payload.series[0]
    assert list(stored.distinct_values) == []
    assert len(stored.distinct_hashes) == 3
    assert stored.distinct_hashes[0] == stored.distinct_hashes[2] != stored.distinct_hashes[1]


async def test_timer_sample_with_a_nan_observation_is_dropped() -> None:
    acceptor, log = make()
    s = metrics_pb2.SeriesSamples(metric="lat", kind=metrics_pb2.METRIC_KIND_TIMER, region="eu")
    s.timestamps_ms.extend([NOW, NOW + 1])
    s.observation_counts.extend([2, 2])
    s.observations.extend([1.0, math.nan, 3.0, 4.0])
    result = await acceptor.accept("t1", batch(s))
    assert (result.accepted_samples, result.rejected_samples) == (1, 1)
    (payload,) = log.accepted()
    assert list(payload.series[0].observations) == [3.0, 4.0]
    assert list(payload.series[0].observation_counts) == [2]


def sketch_series(*samples: Sequence[float]) -> metrics_pb2.SeriesSamples:
    """A timer series in sketch columns, as agent.aggregate sends it."""
    from agent.aggregate import IntervalAggregator
    from agent.statsd import StatsdMetric
    from core.model import MetricKind

    agg = IntervalAggregator(region="eu")
    for i, values in enumerate(samples):
        for v in values:
            agg.add(StatsdMetric("lat", MetricKind.TIMER, v, ()), (NOW - 60_000 + 5_000 * i) / 1000)
    (s,) = agg.drain(NOW / 1000, force=True)
    return s


async def test_timer_sketches_are_accepted_and_logged_as_sent() -> None:
    acceptor, log = make()
    s = sketch_series([1.0, 2.0, 300.0], [5.0])
    result = await acceptor.accept("t1", batch(s))
    assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED
    assert result.accepted_samples == 2
    (payload,) = log.accepted()
    assert payload.series[0].sketch_keys == s.sketch_keys
    assert list(payload.series[0].sketch_counts) == list(s.sketch_counts)
    assert list(payload.series[0].sketch_maxs) == [300.0, 5.0]


def _broken(change: str) -> metrics_pb2.SeriesSamples:
    s = sketch_series([1.0, 2.0, 300.0], [5.0, 6.0])
    if change == "unsorted":
        s.sketch_keys[0], s.sketch_keys[1] = s.sketch_keys[1], s.sketch_keys[0]
    elif change == "zero count":
        s.sketch_counts[0] = 0
    elif change == "key range":
        s.sketch_keys[2] = 10**6
    elif change == "nan":
        s.sketch_sums[0] = math.nan
    elif change == "min above max":
        s.sketch_mins[0] = 400.0
    elif change == "max outside last bucket":
        s.sketch_maxs[0] = 301.0 * 1.5
        s.sketch_lasts[0] = 301.0 * 1.5
    elif change == "empty sketch":
        del s.sketch_keys[:3]
        del s.sketch_counts[:3]
        s.sketch_sizes[0] = 0
    return s


@pytest.mark.parametrize(
    ("change", "reason", "needle"),
    [
        ("unsorted", R.REJECT_REASON_MALFORMED_SERIES, "strictly increasing"),
        ("zero count", R.REJECT_REASON_MALFORMED_SERIES, "count is 0"),
        ("key range", R.REJECT_REASON_MALFORMED_SERIES, "outside"),
        ("nan", R.REJECT_REASON_NON_FINITE_VALUE, "NaN"),
        ("min above max", R.REJECT_REASON_MALFORMED_SERIES, "min <= last <= max"),
        ("max outside last bucket", R.REJECT_REASON_MALFORMED_SERIES, "first/last bucket"),
        ("empty sketch", R.REJECT_REASON_MALFORMED_SERIES, "no buckets"),
    ],
)
async def test_a_bad_sketch_sample_is_dropped_with_a_reason_and_the_rest_kept(
    change: str, reason: int, needle: str
) -> None:
    acceptor, log = make()
    result = await acceptor.accept("t1", batch(_broken(change)))
    assert (result.accepted_samples, result.rejected_samples) == (1, 1)
    (rejection,) = result.rejections
    assert (rejection.sample_index, rejection.reason) == (0, reason)
    assert needle in rejection.message
    (payload,) = log.accepted()
    kept = payload.series[0]
    assert (list(kept.sketch_mins), list(kept.sketch_sizes)) == ([5.0], [2])
    assert len(kept.sketch_keys) == len(kept.sketch_counts) == 2


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("missing column", "1 sketch_lasts for 2 timestamps"),
        ("bucket mismatch", "sketch_sizes add up to"),
        ("both", "observations or sketches, not both"),
        ("gauge", "not sketches"),
    ],
)
async def test_a_badly_shaped_sketch_series_is_rejected_whole(change: str, needle: str) -> None:
    acceptor, _ = make()
    s = sketch_series([1.0], [2.0])
    if change == "missing column":
        del s.sketch_lasts[1:]
    elif change == "bucket mismatch":
        s.sketch_keys.append(99)
    elif change == "both":
        s.observation_counts.extend([1, 1])
        s.observations.extend([1.0, 2.0])
    else:
        s.kind = metrics_pb2.METRIC_KIND_GAUGE
        s.metric = "other"
        s.values.extend([1.0, 2.0])
    result = await acceptor.accept("t1", batch(s))
    (rejection,) = result.rejections
    assert (rejection.sample_index, rejection.reason, rejection.samples) == (-1, R.REJECT_REASON_MALFORMED_SERIES, 2)
    assert needle in rejection.message


# Fast (columnar) path vs the per-series reference: random batches mixing valid series with
# every way a series or a sample can be wrong, sent in turn to two acceptors.
def rarely(draw: st.DrawFn, one_in: int = 12) -> bool:
    return draw(st.integers(1, one_in)) == 1


GOOD_TIMES = st.sampled_from([NOW - 10_000, NOW - 5_000, NOW, NOW + 60_000])
BAD_TIMES = st.sampled_from([NOW + 11 * 60_000, NOW - 6 * 365 * DAY_MS])
GOOD_NUMBERS = st.sampled_from([1.0, 2.5, 0.0, -0.0, 1e300])
BAD_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, -2.0, -0.5])
METRIC_OF_KIND = {1: "reqs", 2: "cpu", 3: "lat", 4: "users"}
_SKETCHES = [sketch_series([1.0, 2.0, 300.0], [5.0, 6.0])] + [
    _broken(change) for change in ("unsorted", "zero count", "nan", "min above max", "empty sketch")
]


@st.composite
def column(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], n: int) -> list[Any]:
    """n entries, mostly good; sometimes one more or one less than asked."""
    n = max(0, n + (draw(st.sampled_from([-1, 1])) if rarely(draw, 10) else 0))
    return [draw(bad) if rarely(draw, 10) else draw(good) for _ in range(n)]


@st.composite
def any_series(draw: st.DrawFn) -> metrics_pb2.SeriesSamples:
    """Mostly valid series of every kind; now and then one thing wrong with the series or a sample."""
    if rarely(draw, 10):
        return draw(st.sampled_from(_SKETCHES))
    kind = draw(st.sampled_from([1, 1, 2, 2, 2, 3, 3, 4]))
    s = metrics_pb2.SeriesSamples(
        metric=draw(st.sampled_from(["cpu", "9bad", ""])) if rarely(draw) else METRIC_OF_KIND[kind],
        region=draw(st.sampled_from(["", "eu", "us"])) if not rarely(draw, 20) else "bad region",
    )
    s.kind = draw(st.sampled_from([0, 9])) if rarely(draw, 30) else kind  # type: ignore[assignment]
    names = draw(st.lists(st.sampled_from(["host", "dc", "az"]), unique=True, max_size=3))
    if rarely(draw, 20):
        names.append(draw(st.sampled_from(["host", "region", "bad-name"])))
    s.labels.extend(metrics_pb2.Label(name=name, value=draw(st.sampled_from(["a", "b"]))) for name in names)
    if names and rarely(draw, 30):
        s.labels[0].value = ""
    n = draw(st.integers(0, 5))
    s.timestamps_ms.extend(draw(column(GOOD_TIMES, BAD_TIMES, n)))
    if kind in (1, 2):
        s.values.extend(draw(column(GOOD_NUMBERS, BAD_NUMBERS, n)))
    else:
        counts = draw(column(st.integers(0, 3), st.integers(0, 3), n))
        s.observation_counts.extend(counts)
        if kind == 3:
            s.observations.extend(draw(column(GOOD_NUMBERS, BAD_NUMBERS, sum(counts))))
        else:
            s.distinct_values.extend(draw(column(st.sampled_from(["u1", "u2"]), st.just("u3"), sum(counts))))
    if rarely(draw, 30):
        (s.values if kind > 2 else s.observations).append(1.0)
    if rarely(draw, 30):
        s.sketch_sizes.append(1)
    if rarely(draw, 20):  # a field this version does not know (number 99, varint)
        s = metrics_pb2.SeriesSamples.FromString(s.SerializeToString() + b"\x98\x06\x01")
    return s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(any_series(), max_size=10), min_size=1, max_size=3))
async def test_columnar_and_per_series_paths_agree(batches: list[list[metrics_pb2.SeriesSamples]]) -> None:
    fast, fast_log = make(limit=12)
    slow, slow_log = make(limit=12, columnar=False)
    for number, series in enumerate(batches):
        b = batch(*series, batch_id=f"b{number}")
        assert _scan(b.series).total == _sample_count(b)
        got = await fast.accept("t1", b)
        want = await slow.accept("t1", b)
        assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
    assert [(p, e.event_id, e.payload) for _, p, e in fast_log.events] == [
        (p, e.event_id, e.payload) for _, p, e in slow_log.events
    ]


async def test_columnar_path_copies_whole_series_as_the_per_series_path_does() -> None:
    """Labels out of order, no region and an unknown field: the copy in the log is the same."""
    s = gauge(zone="z", host="h", values=[1.0, 2.0, 3.0])
    s.ClearField("region")
    odd = metrics_pb2.SeriesSamples.FromString(gauge(metric="mem").SerializeToString() + b"\x98\x06\x01")
    counter = gauge(metric="reqs", values=[0.0, 5.0])
    counter.kind = metrics_pb2.METRIC_KIND_COUNTER
    logs = []
    for columnar in (True, False):
        acceptor, log = make(columnar=columnar)
        result = await acceptor.accept("t1", batch(s, odd, counter, sketch_series([1.0], [2.0])))
        assert (result.status, result.accepted_samples) == (ingest_pb2.BATCH_STATUS_ACCEPTED, 9)
        logs.append([e.payload for _, _, e in log.events])
    assert logs[0] == logs[1]
    payloads = [events_pb2.SampleBatchAccepted.FromString(payload) for payload in logs[0]]
    stored = {series.metric: series for payload in payloads for series in payload.series}
    assert [label.name for label in stored["cpu"].labels] == ["host", "zone"]
    assert stored["cpu"].region == "local"
    assert stored["mem"].SerializeToString() == gauge(metric="mem").SerializeToString()
