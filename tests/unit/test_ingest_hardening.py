"""Ingest's hardened edges: forged identities, memory held by rejected input, series of failed
appends, rate and series limits, and hostile batches answered with reasons, never a crash."""

from __future__ import annotations

import asyncio
import math
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from command_side.ingest.accept import BatchAcceptor
from command_side.ingest.grpc_service import IngestService, add_to_server
from command_side.ingest.identity_cache import IdentityCache
from command_side.ingest.registry import TenantRegistry
from contracts.argus.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import ResourceExhausted, StorageError
from core.ports import AppendResult, Event
from core.settings import IngestLimits, load_config_file
from tests.unit.test_ingest_accept import NOW, MemoryLog, batch, gauge, sketch_series

R = ingest_pb2.RejectReason


class Clock:
    def __init__(self) -> None:
        self.now_ms = NOW

    def __call__(self) -> int:
        return self.now_ms


def make(
    *,
    per_tenant: int = 100,
    overall: int = 0,
    log: MemoryLog | None = None,
    clock: Clock | None = None,
    **limits: float,
) -> tuple[BatchAcceptor, MemoryLog, TenantRegistry]:
    log = log or MemoryLog()
    registry = TenantRegistry(max_series_per_tenant=per_tenant, max_active_series=overall)
    acceptor = BatchAcceptor(
        log_writer=log,
        registry=registry,
        limits=IngestLimits(max_batch_samples=1000, **limits),  # type: ignore[arg-type]
        partitions=12,
        clock_ms=clock or Clock(),
    )
    return acceptor, log, registry


# ------------------------------------------------------------------ forged identities


async def test_a_nul_in_a_label_value_cannot_merge_two_series() -> None:
    acceptor, log, _ = make()
    honest = gauge(labels={"a": "x", "b": "y"}, values=[1.0])
    forged = gauge(labels={"a": "x\x00b=y"}, values=[10.0])
    result = await acceptor.accept("t1", batch(honest, forged))
    assert (result.accepted_samples, result.rejected_samples) == (1, 1)
    (rejection,) = result.rejections
    assert (rejection.series_index, rejection.reason) == (1, R.REJECT_REASON_INVALID_LABEL)
    assert "control character" in rejection.message
    (payload,) = log.accepted()
    assert [list(s.values) for s in payload.series] == [[1.0]]


async def test_a_metric_name_with_a_trailing_newline_is_rejected() -> None:
    acceptor, _, _ = make()
    result = await acceptor.accept("t1", batch(gauge(metric="cpu\n")))
    (rejection,) = result.rejections
    assert rejection.reason == R.REJECT_REASON_INVALID_METRIC_NAME


# ------------------------------------------------------------------ memory held by rejected input


async def test_rejected_identities_are_not_cached_and_their_memory_is_released() -> None:
    acceptor, log, _ = make()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(10):  # 10 batches of 15 series, each with a 1 MB label value
            value = f"{number}" + "v" * (1 << 20)
            series = [gauge(host=f"{value}{i}") for i in range(15)]
            result = await acceptor.accept("t1", batch(*series, batch_id=f"b{number}"))
            assert result.status == ingest_pb2.BATCH_STATUS_REJECTED
            assert {r.reason for r in result.rejections} == {R.REJECT_REASON_INVALID_LABEL}
            del series, value
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(acceptor.identities) == 0 and acceptor.identities.bytes == 0
    assert held < 4 << 20, f"{held} bytes held after rejected batches"
    assert log.events == []


async def test_the_identity_cache_stays_within_its_byte_budget_and_answers_stay_right() -> None:
    acceptor, log, _ = make(per_tenant=10_000, identity_cache_bytes=64 * 1024)
    for number in range(20):
        series = [gauge(host=f"h{number}-{i}", values=[1.0]) for i in range(100)]
        result = await acceptor.accept("t1", batch(*series, batch_id=f"b{number}"))
        assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED
        assert acceptor.identities.bytes <= 64 * 1024
    assert 0 < len(acceptor.identities) < 2000
    # Series that left the cache are validated again and keep their ids.
    again = await acceptor.accept("t1", batch(gauge(host="h0-0", values=[2.0]), batch_id="again"))
    assert again.status == ingest_pb2.BATCH_STATUS_ACCEPTED
    first_ids = {sid for p in log.accepted()[:-1] for sid in p.series_ids}
    assert set(log.accepted()[-1].series_ids) <= first_ids


def test_identity_cache_keeps_recently_used_entries_across_generations() -> None:
    cache: IdentityCache[int] = IdentityCache(budget_bytes=4000)
    keys = [("t", "m", 1, "r", (("host", f"h{i}"),)) for i in range(40)]
    cache.put(keys[0], 0)
    for i, key in enumerate(keys[1:], start=1):
        assert cache.get(keys[0]) == 0  # used all along: promoted before it can be dropped
        cache.put(key, i)
        assert cache.bytes <= 4000
    assert cache.get(keys[1]) is None  # used once, long ago: dropped
    assert cache.get(keys[-1]) == 39


# ------------------------------------------------------------------ failed appends


class FailingLog(MemoryLog):
    """Fails appends while `failing` (as read when the append starts); an append may be held
    until the `hold` event it found is set. `entered` is set when an append starts."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        failing, hold = self.failing, self.hold
        self.entered.set()
        if hold is not None:
            await hold.wait()
        if failing:
            raise StorageError("append batch: disk full")
        return await super().append(topic, events)


async def test_series_of_a_failed_append_do_not_count_toward_the_series_limit() -> None:
    log = FailingLog()
    acceptor, _, registry = make(per_tenant=2, log=log)
    log.failing = True
    with pytest.raises(StorageError):
        await acceptor.accept("t1", batch(gauge(host="a"), gauge(metric="load", host="b")))
    assert registry.active_series("t1") == 0 and registry.active_series() == 0
    assert registry.kind_of("t1", "load") is None  # the kind it claimed is released too
    log.failing = False
    counter = gauge(metric="load", host="c")
    counter.kind = metrics_pb2.METRIC_KIND_COUNTER
    result = await acceptor.accept("t1", batch(gauge(host="d"), counter, batch_id="b2"))
    assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED, result.rejections
    assert registry.active_series("t1") == 2


@pytest.mark.parametrize("failure_first", [True, False])
async def test_a_series_stays_counted_when_one_of_two_concurrent_appends_fails(failure_first: bool) -> None:
    log = FailingLog()
    acceptor, _, registry = make(per_tenant=5, log=log)
    held = asyncio.Event()
    # The first batch brings series "a" and waits in its append; the second relies on "a" too.
    log.failing, log.hold = failure_first, held
    first = asyncio.create_task(acceptor.accept("t1", batch(gauge(host="a"), batch_id="b1")))
    await log.entered.wait()
    log.failing, log.hold = not failure_first, None
    second = acceptor.accept("t1", batch(gauge(host="a"), gauge(host="b"), batch_id="b2"))
    if failure_first:
        assert (await second).status == ingest_pb2.BATCH_STATUS_ACCEPTED
        held.set()
        with pytest.raises(StorageError):
            await first
    else:
        with pytest.raises(StorageError):
            await second
        assert registry.active_series("t1") == 1  # "a" still in flight, "b" released
        held.set()
        assert (await first).status == ingest_pb2.BATCH_STATUS_ACCEPTED
    assert registry.active_series("t1") == (2 if failure_first else 1)


async def test_a_series_whose_samples_are_all_rejected_takes_no_room() -> None:
    acceptor, _, registry = make(per_tenant=1)
    result = await acceptor.accept("t1", batch(gauge(host="nan", values=[math.nan])))
    assert [r.reason for r in result.rejections] == [R.REJECT_REASON_NON_FINITE_VALUE]
    assert registry.active_series("t1") == 0
    ok = await acceptor.accept("t1", batch(gauge(host="ok"), batch_id="b2"))
    assert ok.status == ingest_pb2.BATCH_STATUS_ACCEPTED


# ------------------------------------------------------------------ limits


async def test_over_the_ingest_rate_a_batch_is_refused_whole_and_accepted_later() -> None:
    clock = Clock()
    acceptor, log, _ = make(clock=clock, ingest_rate_samples_per_s=10.0, ingest_burst_samples=20)
    first = await acceptor.accept("t1", batch(gauge(host="a", values=[1.0] * 20)))
    assert first.status == ingest_pb2.BATCH_STATUS_ACCEPTED
    appended = list(log.events)
    with pytest.raises(ResourceExhausted) as refused:
        await acceptor.accept("t1", batch(gauge(host="a", values=[1.0] * 4), batch_id="b2"))
    message = str(refused.value)
    assert "limits.ingest_rate_samples_per_s" in message and "10 samples" in message and "'t1'" in message
    assert "retry in 0.4 s" in message
    assert log.events == appended  # nothing accepted before is lost, nothing of the refused batch added
    other = await acceptor.accept("t2", batch(gauge(host="a", values=[1.0] * 4), batch_id="b3"))
    assert other.status == ingest_pb2.BATCH_STATUS_ACCEPTED  # per tenant
    clock.now_ms += 400
    later = await acceptor.accept("t1", batch(gauge(host="a", values=[1.0] * 4), batch_id="b2"))
    assert later.status == ingest_pb2.BATCH_STATUS_ACCEPTED


async def test_a_batch_larger_than_the_burst_is_rejected_naming_the_setting() -> None:
    acceptor, log, _ = make(ingest_rate_samples_per_s=10.0, ingest_burst_samples=20)
    result = await acceptor.accept("t1", batch(gauge(values=[1.0] * 21)))
    assert result.status == ingest_pb2.BATCH_STATUS_REJECTED
    assert result.rejected_samples == 21
    assert [r.reason for r in result.rejections] == [R.REJECT_REASON_BATCH_TOO_LARGE]
    assert "limits.ingest_burst_samples" in result.error and "20" in result.error
    assert log.events == []


async def test_no_rate_limit_by_default() -> None:
    acceptor, _, _ = make()
    for number in range(50):
        result = await acceptor.accept("t1", batch(gauge(values=[1.0] * 100), batch_id=f"b{number}"))
        assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED


async def test_the_global_series_ceiling_holds_across_tenants() -> None:
    acceptor, _, registry = make(per_tenant=10, overall=3)
    await acceptor.accept("t1", batch(gauge(host="a"), gauge(host="b")))
    result = await acceptor.accept("t2", batch(gauge(host="a"), gauge(host="b"), batch_id="b2"))
    assert (result.accepted_samples, result.rejected_samples) == (2, 2)
    (rejection,) = result.rejections
    assert rejection.reason == R.REJECT_REASON_SERIES_LIMIT
    assert "ceiling of 3" in rejection.message and "limits.max_active_series" in rejection.message
    known = await acceptor.accept("t1", batch(gauge(host="a"), batch_id="b3"))
    assert known.status == ingest_pb2.BATCH_STATUS_ACCEPTED  # known series keep flowing
    assert registry.active_series() == 3


async def test_the_per_tenant_limit_names_its_setting() -> None:
    acceptor, _, _ = make(per_tenant=1)
    result = await acceptor.accept("t1", batch(gauge(host="a"), gauge(host="b")))
    (rejection,) = result.rejections
    assert "limit of 1 " in rejection.message and "limits.max_series_per_tenant" in rejection.message


# ------------------------------------------------------------------ hostile batches


async def test_too_many_series_in_a_batch_are_refused_before_looking_at_them() -> None:
    acceptor, log, _ = make(max_batch_series=10)
    result = await acceptor.accept("t1", batch(*[gauge(host=f"h{i}") for i in range(11)]))
    assert result.status == ingest_pb2.BATCH_STATUS_REJECTED
    assert "11 series" in result.error and "limits.max_batch_series" in result.error
    assert log.events == []


@pytest.mark.parametrize(
    ("batch_id", "source", "needle"),
    [
        ("b" * 257, "host", "batch_id"),
        ("b1", "s" * 10_000, "source"),
        ("b1", "host\nforged log line", "control character"),
        ("b1\x00", "host", "control character"),
    ],
)
async def test_a_batch_id_or_source_that_is_huge_or_holds_controls_is_refused(
    batch_id: str, source: str, needle: str
) -> None:
    acceptor, log, _ = make()
    b = batch(gauge())
    b.batch_id, b.source = batch_id, source
    result = await acceptor.accept("t1", b)
    assert result.status == ingest_pb2.BATCH_STATUS_REJECTED
    assert needle in result.error and len(result.error) < 400
    assert log.events == []


async def test_huge_names_are_rejected_with_short_messages() -> None:
    acceptor, _, _ = make()
    s = gauge()
    s.labels.add(name="n" * 1_000_000, value="v")
    many = gauge(metric="mem")
    many.labels.extend(metrics_pb2.Label(name=f"l{i}", value="v") for i in range(100_000))
    result = await acceptor.accept("t1", batch(s, many, gauge(metric="m" * 1_000_000)))
    assert result.status == ingest_pb2.BATCH_STATUS_REJECTED
    reasons = [r.reason for r in result.rejections]
    assert reasons == [
        R.REJECT_REASON_INVALID_LABEL,
        R.REJECT_REASON_TOO_MANY_LABELS,
        R.REJECT_REASON_INVALID_METRIC_NAME,
    ]
    assert all(len(r.message) < 300 for r in result.rejections), [r.message[:300] for r in result.rejections]


async def test_timestamps_at_the_ends_of_int64_are_rejected_with_a_reason() -> None:
    acceptor, _, _ = make()
    s = gauge(values=[1.0, 2.0, 3.0])
    s.timestamps_ms[0] = -(2**63)
    s.timestamps_ms[1] = 2**63 - 1
    result = await acceptor.accept("t1", batch(s))
    assert (result.accepted_samples, result.rejected_samples) == (1, 2)
    reasons = {r.reason for r in result.rejections}
    assert reasons == {R.REJECT_REASON_TIMESTAMP_TOO_OLD, R.REJECT_REASON_TIMESTAMP_TOO_NEW}


async def test_sketch_bucket_counts_that_add_up_past_2_62_are_rejected() -> None:
    acceptor, _, _ = make()
    s = sketch_series([1.0, 2.0, 300.0], [5.0])
    s.sketch_counts[0] = 2**61
    s.sketch_counts[1] = 2**61
    s.sketch_counts[2] = 2**61  # each below 2**62, together above: would wrap an int64 count
    result = await acceptor.accept("t1", batch(s))
    assert (result.accepted_samples, result.rejected_samples) == (1, 1)
    (rejection,) = result.rejections
    assert (rejection.sample_index, rejection.reason) == (0, R.REJECT_REASON_MALFORMED_SERIES)
    assert "add up" in rejection.message


async def test_absurd_observation_counts_are_rejected_without_allocating_them() -> None:
    acceptor, _, _ = make()
    timer = metrics_pb2.SeriesSamples(metric="lat", kind=metrics_pb2.METRIC_KIND_TIMER, region="eu")
    timer.timestamps_ms.extend([NOW, NOW])
    timer.observation_counts.extend([2**32 - 1, 2**32 - 1])
    timer.observations.append(1.0)
    users = metrics_pb2.SeriesSamples(metric="users", kind=metrics_pb2.METRIC_KIND_DISTINCT, region="eu")
    users.timestamps_ms.append(NOW)
    users.observation_counts.append(2**32 - 1)
    users.distinct_hashes.append(7)
    result = await acceptor.accept("t1", batch(timer, users))
    assert [r.reason for r in result.rejections] == [R.REJECT_REASON_MALFORMED_SERIES] * 2
    assert "add up to 8589934590" in result.rejections[0].message


TEXT = st.text(max_size=8) | st.sampled_from(["cpu", "host", "a\x00b", "x\n", "é", ""])
NUMBER = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -1.0, 1e308])
TIME = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([NOW, NOW - 1000])


@st.composite
def hostile_series(draw: st.DrawFn) -> metrics_pb2.SeriesSamples:
    s = metrics_pb2.SeriesSamples(metric=draw(TEXT), region=draw(TEXT))
    s.kind = draw(st.integers(0, 6))  # type: ignore[assignment]
    s.labels.extend(metrics_pb2.Label(name=draw(TEXT), value=draw(TEXT)) for _ in range(draw(st.integers(0, 3))))
    s.timestamps_ms.extend(draw(st.lists(TIME, max_size=4)))
    s.values.extend(draw(st.lists(NUMBER, max_size=4)))
    s.observation_counts.extend(draw(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 3), max_size=4)))
    s.observations.extend(draw(st.lists(NUMBER, max_size=6)))
    s.distinct_values.extend(draw(st.lists(TEXT, max_size=3)))
    s.distinct_hashes.extend(draw(st.lists(st.integers(0, 2**64 - 1), max_size=3)))
    if draw(st.booleans()):
        size = draw(st.integers(0, 3))
        s.sketch_sizes.extend(draw(st.lists(st.integers(0, 3) | st.just(2**32 - 1), max_size=3)))
        for column in ("sketch_sums", "sketch_mins", "sketch_maxs", "sketch_lasts"):
            getattr(s, column).extend(draw(st.lists(NUMBER, min_size=size, max_size=size)))
        s.sketch_keys.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4)))
        s.sketch_counts.extend(draw(st.lists(st.integers(0, 2**64 - 1), max_size=4)))
    return s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile_series(), max_size=6), TEXT, TEXT)
async def test_any_batch_is_answered_with_reasons_never_an_exception(
    series: list[metrics_pb2.SeriesSamples], batch_id: str, source: str
) -> None:
    acceptor, _, _ = make()
    b = metrics_pb2.SampleBatch(batch_id=batch_id, source=source)
    b.series.extend(series)
    result = await acceptor.accept("t1", b)
    sent = sum(len(s.timestamps_ms) for s in series)
    assert result.status != ingest_pb2.BATCH_STATUS_UNSPECIFIED
    if result.rejections and result.rejections[0].sample_index == -1 and result.error:
        return  # refused whole before counting
    assert result.accepted_samples + result.rejected_samples == sent
    assert all(r.message for r in result.rejections)


def test_the_new_limits_are_read_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "argus.toml"
    path.write_text(
        "[limits]\n"
        "ingest_rate_samples_per_s = 500\n"
        "ingest_burst_samples = 2_000\n"
        "max_active_series = 50\n"
        "identity_cache_bytes = 1048576\n"
        "max_batch_series = 10\n"
    )
    limits = load_config_file(path)["limits"]
    assert limits == IngestLimits(
        ingest_rate_samples_per_s=500.0,
        ingest_burst_samples=2000,
        max_active_series=50,
        identity_cache_bytes=1 << 20,
        max_batch_series=10,
    )


class OneTenant:
    def tenant_for(self, api_key: str | None) -> str:
        return "t1"


async def test_over_the_rate_the_grpc_answer_is_resource_exhausted_naming_the_setting() -> None:
    acceptor, _, _ = make(ingest_rate_samples_per_s=1.0, ingest_burst_samples=2)
    server = grpc.aio.server()
    add_to_server(server, IngestService(acceptor, OneTenant()))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
            first = await stub.PushBatch(ingest_pb2.PushBatchRequest(batch=batch(gauge())), timeout=10.0)
            assert first.result.status == ingest_pb2.BATCH_STATUS_ACCEPTED
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.PushBatch(ingest_pb2.PushBatchRequest(batch=batch(gauge(), batch_id="b2")), timeout=10.0)
    finally:
        await server.stop(grace=None)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limits.ingest_rate_samples_per_s" in (refused.value.details() or "")
