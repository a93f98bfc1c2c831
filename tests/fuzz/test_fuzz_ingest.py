"""Fuzz the ingest edge: serialized PushBatchRequest bytes (random, and mutations of valid
ones) and structurally valid but hostile batches, through BatchAcceptor.

Properties: bytes either fail to decode (DecodeError, which the gRPC service answers with
INVALID_ARGUMENT) or give a batch that `accept` answers with a BatchResult, never raises;
every sample is either accepted or rejected; every rejection carries a reason; a resend of
an accepted batch is a duplicate; each call is under a wall-clock bound."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import DecodeError
from hypothesis import event, example, given
from hypothesis import strategies as st

from command_side.ingest.accept import MAX_REPORTED_REJECTIONS, BatchAcceptor
from command_side.ingest.registry import TenantRegistry
from contracts.argus.events.v1 import events_pb2
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.events import SAMPLES_TOPIC
from core.ports import AppendResult, Event
from core.settings import IngestLimits
from tests.fuzz.bounds import bounded, fuzz

NOW = 1_764_000_000_000
T = TypeVar("T")
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UINT32 = st.integers(min_value=0, max_value=2**32 - 1)
NEAR_NOW = st.integers(min_value=NOW - 10 * 86_400_000, max_value=NOW + 3_600_000)


class MemoryLog:
    """The EventLogWriter contract in memory (dedup on append by event id)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, Event]] = []
        self._ids: set[bytes] = set()

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        assert topic == SAMPLES_TOPIC
        offsets: list[int | None] = []
        for partition, appended in events:
            if appended.event_id in self._ids:
                offsets.append(None)
                continue
            self._ids.add(appended.event_id)
            self.events.append((partition, appended))
            offsets.append(len(self.events))
        return AppendResult(offsets=tuple(offsets))


def acceptor(log: MemoryLog) -> BatchAcceptor:
    return BatchAcceptor(
        log_writer=log,
        registry=TenantRegistry(max_series_per_tenant=50),
        limits=IngestLimits(max_batch_samples=5_000, max_labels=4, max_label_value_bytes=64),
        partitions=4,
        clock_ms=lambda: NOW,
    )


# Text that is likely to hit the edges: NUL and control characters, '=' and ',' (label
# syntax), newlines before the end ("metric\n"), non-BMP characters, long runs.
EDGY_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="ab_.:=,\x00\n\t \u00e9\U0001f600", max_size=20),
    st.sampled_from(["cpu", "cpu\n", "a.b_c", "", "_", "1abc", "x" * 300, "host", "region", "le", "__name__"]),
)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e308, -1e308, 5e-324]),
)


VALID_NAME = st.sampled_from(["cpu", "http.requests", "a.b_c", "disk_used"])
VALID_VALUE = st.sampled_from(["web-1", "eu", "x", "0"])


SPOILABLE = ("metric", "region", "kind", "labels", "timestamps", "values", "shape")


@st.composite
def hostile_series(draw: st.DrawFn) -> metrics_pb2.SeriesSamples:
    """A series valid but for a few spoiled fields, so every check is reached, not only the first."""
    spoil = draw(st.sets(st.sampled_from(SPOILABLE), max_size=3))

    def pick(field: str, valid: st.SearchStrategy[T], hostile: st.SearchStrategy[T]) -> T:
        return draw(hostile if field in spoil else valid)

    s = metrics_pb2.SeriesSamples(
        metric=pick("metric", VALID_NAME, EDGY_TEXT), region=pick("region", st.just(""), EDGY_TEXT)
    )
    # Unknown enum values travel as their number in proto3.
    s.kind = pick("kind", st.integers(1, 4), st.integers(-5, 1000))  # type: ignore[assignment]
    for _ in range(draw(st.integers(0, 5 if "labels" in spoil else 3))):
        s.labels.add(
            name=pick("labels", st.sampled_from(["host", "dc", "env"]), EDGY_TEXT),
            value=pick("labels", VALID_VALUE, EDGY_TEXT),
        )
    n = draw(st.integers(0, 6))
    s.timestamps_ms.extend(pick("timestamps", st.lists(NEAR_NOW, min_size=n, max_size=n), st.lists(INT64, max_size=n)))
    # Column lengths deliberately do not always match the timestamps.
    s.values.extend(
        pick("values", st.lists(st.floats(0, 1e6), min_size=n, max_size=n), st.lists(FLOATS, max_size=n + 2))
    )
    hostile = "shape" in spoil
    if s.kind == metrics_pb2.METRIC_KIND_TIMER and draw(st.booleans()):
        counts = pick("shape", st.lists(st.integers(0, 4), min_size=n, max_size=n), st.lists(UINT32, max_size=n + 1))
        s.observation_counts.extend(counts)
        total = sum(counts) if sum(counts) < 64 else 3
        s.observations.extend(
            pick(
                "values",
                st.lists(st.floats(0, 10), min_size=total, max_size=total),
                st.lists(FLOATS, max_size=total + 1),
            )
        )
    elif s.kind == metrics_pb2.METRIC_KIND_DISTINCT or (hostile and draw(st.booleans())):
        counts = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n + int(hostile)))
        s.observation_counts.extend(counts)
        extra = int(hostile and draw(st.booleans()))
        if draw(st.booleans()):
            s.distinct_values.extend(
                draw(st.lists(EDGY_TEXT, min_size=sum(counts) + extra, max_size=sum(counts) + extra))
            )
        else:
            hashes = st.integers(0, 2**64 - 1)
            s.distinct_hashes.extend(draw(st.lists(hashes, min_size=sum(counts) + extra, max_size=sum(counts) + extra)))
    elif s.kind == metrics_pb2.METRIC_KIND_TIMER:
        sizes = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n + int(hostile)))
        s.sketch_sizes.extend(sizes)
        total = max(0, sum(sizes) + (draw(st.integers(-1, 1)) if hostile else 0))
        key = st.integers(-(2**31), 2**31 - 1) if hostile else st.integers(-2000, 2000)
        s.sketch_keys.extend(draw(st.lists(key, min_size=total, max_size=total)))
        s.sketch_counts.extend(
            draw(st.lists(st.integers(0 if hostile else 1, 2**64 - 1), min_size=total, max_size=total))
        )
        for column in (s.sketch_sums, s.sketch_mins, s.sketch_maxs, s.sketch_lasts):
            column.extend(
                pick("shape", st.lists(st.floats(0, 10), min_size=n, max_size=n), st.lists(FLOATS, max_size=n + 1))
            )
    return s


@st.composite
def hostile_batches(draw: st.DrawFn) -> metrics_pb2.SampleBatch:
    batch = metrics_pb2.SampleBatch(batch_id=draw(EDGY_TEXT), source=draw(EDGY_TEXT))
    batch.series.extend(draw(st.lists(hostile_series(), max_size=6)))
    return batch


def oversized_batch() -> metrics_pb2.SampleBatch:
    """More samples than the limit (5,000), with observations making up most of the weight."""
    batch = metrics_pb2.SampleBatch(batch_id="big", source="host-a")
    timer = batch.series.add(metric="latency", kind=metrics_pb2.METRIC_KIND_TIMER)
    timer.timestamps_ms.extend([NOW] * 10)
    timer.observation_counts.extend([600] * 10)
    timer.observations.extend([0.5] * 6_000)
    return batch


def valid_request() -> bytes:
    batch = metrics_pb2.SampleBatch(batch_id="b-1", source="host-a")
    for kind, host in ((metrics_pb2.METRIC_KIND_COUNTER, "a"), (metrics_pb2.METRIC_KIND_GAUGE, "b")):
        s = batch.series.add(metric="http.requests", kind=kind, region="eu")
        s.labels.add(name="host", value=host)
        s.timestamps_ms.extend([NOW - 10_000, NOW - 5_000])
        s.values.extend([1.0, 2.0])
    t = batch.series.add(metric="latency", kind=metrics_pb2.METRIC_KIND_TIMER)
    t.timestamps_ms.append(NOW - 1_000)
    t.observation_counts.append(3)
    t.observations.extend([0.1, 0.2, 0.3])
    return ingest_pb2.PushBatchRequest(batch=batch).SerializeToString()


def check_result(batch: metrics_pb2.SampleBatch, result: ingest_pb2.BatchResult) -> None:
    total = sum(len(s.timestamps_ms) for s in batch.series)
    assert result.accepted_samples + result.rejected_samples == total
    assert len(result.rejections) <= MAX_REPORTED_REJECTIONS
    assert result.status in (
        ingest_pb2.BATCH_STATUS_ACCEPTED,
        ingest_pb2.BATCH_STATUS_PARTIAL,
        ingest_pb2.BATCH_STATUS_REJECTED,
    )
    if result.rejected_samples:
        assert result.rejections, "samples rejected without a reported reason"
    for r in result.rejections:
        assert r.reason != ingest_pb2.REJECT_REASON_UNSPECIFIED and r.message.strip(), r
    if result.status == ingest_pb2.BATCH_STATUS_REJECTED and result.error:
        assert result.error.strip()


async def accept_twice(batch: metrics_pb2.SampleBatch) -> None:
    log = MemoryLog()
    ingest = acceptor(log)
    with bounded("accept a batch"):
        result = await ingest.accept("tenant-a", batch)
    check_result(batch, result)
    event("accepted some" if result.accepted_samples else "accepted none")
    for _, appended_event in log.events:
        payload = events_pb2.SampleBatchAccepted.FromString(appended_event.payload)
        assert all(math.isfinite(v) for s in payload.series if s.kind != 3 for v in s.values)
    if result.accepted_samples:
        appended = len(log.events)
        with bounded("accept a resent batch"):
            again = await ingest.accept("tenant-a", batch)
        assert again.duplicate and len(log.events) == appended
        assert (again.accepted_samples, again.rejected_samples) == (result.accepted_samples, result.rejected_samples)


def decode_and_accept(runner: asyncio.Runner, raw: bytes) -> None:
    try:
        request = ingest_pb2.PushBatchRequest.FromString(raw)
    except DecodeError as exc:
        assert str(exc).strip()
        return
    runner.run(accept_twice(request.batch))


def test_random_bytes_decode_or_are_refused() -> None:
    with asyncio.Runner() as runner:

        @fuzz()
        @given(raw=st.binary(max_size=400))
        def check(raw: bytes) -> None:
            decode_and_accept(runner, raw)

        check()


EDITS = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "insert", "repeat"]), st.integers(0, 10_000), st.binary(max_size=8)),
    min_size=1,
    max_size=4,
)


def test_mutated_valid_requests_decode_or_are_refused() -> None:
    valid = valid_request()
    with asyncio.Runner() as runner:

        @fuzz()
        @given(edits=EDITS)
        def check(edits: list[tuple[str, int, bytes]]) -> None:
            raw = bytearray(valid)
            for op, at, data in edits:
                i = at % (len(raw) + 1)
                if op == "flip" and raw:
                    raw[i % len(raw)] ^= 1 << (at % 8)
                elif op == "cut":
                    del raw[i:]
                elif op == "insert":
                    raw[i:i] = data
                else:
                    raw += raw[i:]
            decode_and_accept(runner, bytes(raw))

        check()


def test_hostile_batches_are_answered_with_reasons() -> None:
    with asyncio.Runner() as runner:

        @fuzz()
        @given(batch=hostile_batches())
        @example(batch=oversized_batch())
        def check(batch: metrics_pb2.SampleBatch) -> None:
            runner.run(accept_twice(batch))

        check()
