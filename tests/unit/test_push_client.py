"""PushClient against a tiny in-process IngestService on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import datetime
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent.push_client import PushClient, RetryPolicy
from contracts.argus.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import InvalidArgument, Unauthenticated, Unavailable

API_KEY = "test-key"
FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.005)


def make_batch(i: int, samples: int = 3) -> metrics_pb2.SampleBatch:
    batch = metrics_pb2.SampleBatch(batch_id=f"b{i}", source="test")
    series = batch.series.add(metric="m", kind=metrics_pb2.METRIC_KIND_GAUGE, region="local")
    series.timestamps_ms.extend(range(1, samples + 1))
    series.values.extend([float(i)] * samples)
    return batch


@dataclass
class FakeIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Accepts every sample; answers in windows of `window` batches, newest first."""

    window: int = 1
    # Abort the first stream with this code after it received this many batches.
    break_first_stream: tuple[grpc.StatusCode, int] | None = None
    # Answer this many of the batches received before the break.
    answer_before_break: int = 0
    permanent: tuple[grpc.StatusCode, str] | None = None
    unary_failures: int = 0
    never_answer: bool = False
    durable: set[str] = field(default_factory=set)
    received: list[str] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)  # of every sample received
    streams: int = 0

    async def _check(self, context: Any) -> None:
        metadata = dict(context.invocation_metadata())
        if metadata.get("authorization") != f"Bearer {API_KEY}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown API key")
        if self.permanent is not None:
            await context.abort(*self.permanent)

    def _accept(self, batch: metrics_pb2.SampleBatch) -> ingest_pb2.BatchResult:
        self.received.append(batch.batch_id)
        self.timestamps.extend(ts for s in batch.series for ts in s.timestamps_ms)
        duplicate = batch.batch_id in self.durable
        self.durable.add(batch.batch_id)
        samples = sum(len(s.timestamps_ms) for s in batch.series)
        return ingest_pb2.BatchResult(
            batch_id=batch.batch_id,
            status=ingest_pb2.BATCH_STATUS_ACCEPTED,
            accepted_samples=samples,
            duplicate=duplicate,
        )

    async def Push(self, request_iterator: Any, context: Any) -> AsyncIterator[ingest_pb2.PushResponse]:
        await self._check(context)
        self.streams += 1
        first = self.streams == 1
        held: list[ingest_pb2.BatchResult] = []
        count = 0
        async for request in request_iterator:
            count += 1
            result = self._accept(request.batch)
            if self.never_answer:
                await asyncio.Event().wait()  # hang until the server stops
            if first and self.break_first_stream is not None:
                code, after = self.break_first_stream
                if count <= self.answer_before_break:
                    yield ingest_pb2.PushResponse(result=result)
                if count >= after:
                    await context.abort(code, "ingest is restarting")
                continue
            held.append(result)
            if len(held) >= self.window:
                for r in reversed(held):
                    yield ingest_pb2.PushResponse(result=r)
                held.clear()
        for r in reversed(held):
            yield ingest_pb2.PushResponse(result=r)

    async def PushBatch(self, request: Any, context: Any) -> ingest_pb2.PushBatchResponse:
        await self._check(context)
        if self.unary_failures > 0:
            self.unary_failures -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return ingest_pb2.PushBatchResponse(result=self._accept(request.batch))


async def test_in_order_answers_are_summarised(serve: Any) -> None:
    target = await serve(FakeIngest(window=1))
    async with PushClient(target, API_KEY, retry=FAST_RETRY) as client:
        summary = await client.push_stream([make_batch(i) for i in range(20)])
    assert summary.batches == 20
    assert summary.accepted_batches == 20
    assert summary.accepted == 60
    assert summary.rejected == 0
    assert summary.duplicates == 0
    assert summary.retries == 0


async def test_out_of_order_answers_are_matched_by_batch_id(serve: Any) -> None:
    target = await serve(FakeIngest(window=4))
    answered: list[str] = []
    async with PushClient(target, API_KEY, max_in_flight=4, retry=FAST_RETRY) as client:
        summary = await client.push_stream(
            (make_batch(i) for i in range(10)), on_result=lambda r: answered.append(r.batch_id)
        )
    assert summary.batches == 10
    assert sorted(answered) == sorted(f"b{i}" for i in range(10))
    assert answered[:4] == ["b3", "b2", "b1", "b0"]


async def test_never_more_than_max_in_flight_batches_unanswered(serve: Any) -> None:
    target = await serve(FakeIngest(window=3))
    answered = 0
    most_in_flight = 0

    async def source() -> AsyncIterator[metrics_pb2.SampleBatch]:
        nonlocal most_in_flight
        for i in range(12):
            # Batches 0..i-1 were sent before this pull; batch i is about to be.
            most_in_flight = max(most_in_flight, i - answered + 1)
            yield make_batch(i)

    def on_result(_: ingest_pb2.BatchResult) -> None:
        nonlocal answered
        answered += 1

    async with PushClient(target, API_KEY, max_in_flight=3, retry=FAST_RETRY) as client:
        summary = await client.push_stream(source(), on_result=on_result)
    assert summary.batches == 12
    assert most_in_flight == 3


async def test_unavailable_stream_is_retried_and_unanswered_batches_resent(serve: Any) -> None:
    fake = FakeIngest(break_first_stream=(grpc.StatusCode.UNAVAILABLE, 3), answer_before_break=1)
    target = await serve(fake)
    async with PushClient(target, API_KEY, max_in_flight=4, retry=FAST_RETRY) as client:
        summary = await client.push_stream([make_batch(i) for i in range(6)])
    assert fake.streams == 2
    assert summary.batches == 6
    assert summary.retries == 1
    # b1 and b2 were durable but unanswered when the stream broke: resent, counted once.
    assert summary.duplicates == 2
    assert summary.accepted == 18
    assert fake.durable == {f"b{i}" for i in range(6)}


async def test_resource_exhausted_is_retried(serve: Any) -> None:
    fake = FakeIngest(break_first_stream=(grpc.StatusCode.RESOURCE_EXHAUSTED, 1))
    target = await serve(fake)
    async with PushClient(target, API_KEY, retry=FAST_RETRY) as client:
        summary = await client.push_stream([make_batch(0), make_batch(1)])
    assert summary.batches == 2
    assert fake.streams == 2


async def test_wrong_api_key_raises_unauthenticated_with_server_message(serve: Any) -> None:
    target = await serve(FakeIngest())
    async with PushClient(target, "wrong", retry=FAST_RETRY) as client:
        with pytest.raises(Unauthenticated, match="unknown API key"):
            await client.push_stream([make_batch(0)])


async def test_invalid_argument_is_not_retried(serve: Any) -> None:
    fake = FakeIngest(permanent=(grpc.StatusCode.INVALID_ARGUMENT, "malformed protobuf"))
    target = await serve(fake)
    async with PushClient(target, API_KEY, retry=FAST_RETRY) as client:
        with pytest.raises(InvalidArgument, match="malformed protobuf"):
            await client.push_stream([make_batch(0)])


async def test_unreachable_ingest_gives_up_as_unavailable() -> None:
    retry = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.001)
    # Port 1 on loopback refuses connections.
    async with PushClient("127.0.0.1:1", API_KEY, retry=retry, timeout_s=5) as client:
        with pytest.raises(Unavailable, match="gave up after 2 attempts"):
            await client.push_stream([make_batch(0)])


async def test_silent_server_breaks_the_stream_after_timeout(serve: Any) -> None:
    fake = FakeIngest(never_answer=True)
    target = await serve(fake)
    retry = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, max_backoff_s=0.001)
    async with PushClient(target, API_KEY, retry=retry, timeout_s=0.2) as client:
        with pytest.raises(Unavailable, match="no answer from ingest"):
            await client.push_stream([make_batch(0)])
    assert fake.received == ["b0", "b0"]  # sent again on the second stream


async def test_empty_input_pushes_nothing(serve: Any) -> None:
    target = await serve(FakeIngest())
    async with PushClient(target, API_KEY, retry=FAST_RETRY) as client:
        summary = await client.push_stream([])
    assert summary.batches == 0


async def test_duplicate_batch_id_in_flight_is_refused(serve: Any) -> None:
    target = await serve(FakeIngest(window=2))
    async with PushClient(target, API_KEY, retry=FAST_RETRY) as client:
        with pytest.raises(InvalidArgument, match="already in flight"):
            await client.push_stream([make_batch(0), make_batch(0)])


async def test_a_failing_source_ends_the_push_with_its_own_error(serve: Any) -> None:
    fake = FakeIngest()
    target = await serve(fake)

    def source() -> Iterator[metrics_pb2.SampleBatch]:
        yield make_batch(0)
        raise OSError("disk went away")

    async with PushClient(target, API_KEY, retry=FAST_RETRY) as client:
        with pytest.raises(OSError, match="disk went away"):
            await client.push_stream(source())
    assert fake.streams == 1


async def test_push_one_retries_unavailable_then_succeeds(serve: Any) -> None:
    fake = FakeIngest(unary_failures=2)
    target = await serve(fake)
    async with PushClient(target, API_KEY, retry=FAST_RETRY) as client:
        result = await client.push_one(make_batch(7))
    assert result.batch_id == "b7"
    assert result.accepted_samples == 3
    assert fake.unary_failures == 0


async def test_push_one_surfaces_permission_denied(serve: Any) -> None:
    from core.errors import PermissionDenied

    target = await serve(FakeIngest(permanent=(grpc.StatusCode.PERMISSION_DENIED, "key may not push")))
    async with PushClient(target, API_KEY, retry=FAST_RETRY) as client:
        with pytest.raises(PermissionDenied, match="key may not push"):
            await client.push_one(make_batch(0))


def test_rejections_are_aggregated_by_reason() -> None:
    from agent.push_client import _SummaryBuilder

    builder = _SummaryBuilder()
    builder.add(
        ingest_pb2.BatchResult(
            batch_id="b1",
            status=ingest_pb2.BATCH_STATUS_PARTIAL,
            accepted_samples=5,
            rejected_samples=7,
            rejections=[
                ingest_pb2.SampleRejection(
                    series_index=0, samples=2, reason=ingest_pb2.REJECT_REASON_INVALID_LABEL, message="bad label"
                ),
                ingest_pb2.SampleRejection(
                    series_index=1, samples=3, reason=ingest_pb2.REJECT_REASON_INVALID_LABEL, message="bad label 2"
                ),
            ],
        )
    )
    builder.add(
        ingest_pb2.BatchResult(
            batch_id="b2", status=ingest_pb2.BATCH_STATUS_REJECTED, rejected_samples=4, error="batch too large"
        )
    )
    summary = builder.build(1.0)
    assert summary.rejection_reasons == {"invalid_label": 5, "batch_rejected": 4, "unlisted": 2}
    assert summary.rejection_examples == ("b1: bad label", "b1: bad label 2", "b2: batch too large")
    assert (summary.partial_batches, summary.rejected_batches, summary.rejected) == (1, 1, 11)


# ---------------------------------------------------------------------------- `argus push`


@pytest.fixture
def threaded_ingest() -> Iterator[Callable[[FakeIngest], str]]:
    """A fake ingest on its own event loop thread, for commands that run asyncio.run()."""
    running: list[tuple[threading.Thread, asyncio.AbstractEventLoop, asyncio.Event]] = []

    def start(fake: FakeIngest) -> str:
        ready = threading.Event()
        found: dict[str, Any] = {}

        async def serve_until_stopped() -> None:
            server = grpc.aio.server()
            ingest_pb2_grpc.add_IngestServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
            found["port"] = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            found["loop"], found["stop"] = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await found["stop"].wait()
            await server.stop(grace=None)

        thread = threading.Thread(target=asyncio.run, args=(serve_until_stopped(),), daemon=True)
        thread.start()
        assert ready.wait(10), "fake ingest did not start"
        running.append((thread, found["loop"], found["stop"]))
        return f"127.0.0.1:{found['port']}"

    yield start
    for thread, loop, stop in running:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def _push_cli(*args: str) -> Any:
    from click.testing import CliRunner

    from argus.commands.push_cmd import push

    return CliRunner().invoke(push, [*args, "--no-progress"], catch_exceptions=False)


def test_push_command_sends_a_file_and_exits_zero(tmp_path: Path, threaded_ingest: Any) -> None:
    fake = FakeIngest()
    target = threaded_ingest(fake)
    data = tmp_path / "in.ndjson"
    data.write_text("".join(f'{{"metric":"m","ts":{1732530000000 + i},"value":{i}}}\n' for i in range(100)))
    (tmp_path / "api_key").write_text(API_KEY + "\n")
    result = _push_cli(str(data), "--ingest", target, "--data-dir", str(tmp_path), "--batch-samples", "30")
    assert result.exit_code == 0, result.output
    assert "100 accepted, 0 rejected" in result.output
    assert len(fake.durable) == 4
    assert all(bid.startswith("push-") for bid in fake.durable)


def test_push_command_cumulative_sends_deltas(tmp_path: Path, threaded_ingest: Any) -> None:
    fake = FakeIngest()
    target = threaded_ingest(fake)
    data = tmp_path / "in.ndjson"
    totals = [10, 15, 15, 40, 2]  # reset after 40
    data.write_text(
        "".join(
            f'{{"metric":"m","kind":"counter","ts":{1732530000000 + i},"value":{v}}}\n' for i, v in enumerate(totals)
        )
    )
    result = _push_cli(str(data), "--ingest", target, "--api-key", API_KEY, "--cumulative")
    assert result.exit_code == 0, result.output
    # the first point is a baseline: 4 deltas (5, 0, 25, 2) sent, 1 kept back
    assert "4 accepted, 0 rejected" in result.output
    assert "1 first points kept as baselines" in result.output
    assert sorted(fake.timestamps) == [1732530000000 + i for i in range(1, 5)]


def test_push_command_reports_unreadable_lines_and_exits_one(tmp_path: Path, threaded_ingest: Any) -> None:
    target = threaded_ingest(FakeIngest())
    data = tmp_path / "in.csv"
    data.write_text("metric,value\nm,1\nm,not-a-number\n,3\n")
    result = _push_cli(str(data), "--ingest", target, "--api-key", API_KEY)
    assert result.exit_code == 1, result.output
    assert "2 of 3 skipped" in result.output
    assert "line 3: value is not a number: 'not-a-number'" in result.output
    assert "line 4: missing metric" in result.output


def test_push_command_exits_three_on_a_refused_key(tmp_path: Path, threaded_ingest: Any) -> None:
    target = threaded_ingest(FakeIngest())
    data = tmp_path / "in.ndjson"
    data.write_text('{"metric":"m","value":1}\n')
    result = _push_cli(str(data), "--ingest", target, "--api-key", "wrong")
    assert result.exit_code == 3
    assert "unknown API key" in result.output


def test_push_command_without_any_key_is_a_usage_error(tmp_path: Path) -> None:
    data = tmp_path / "in.ndjson"
    data.write_text('{"metric":"m","value":1}\n')
    result = _push_cli(str(data), "--data-dir", str(tmp_path / "nothing"))
    assert result.exit_code == 2
    assert "no API key" in result.output


# A timestamp beyond int64 epoch ms once crashed `argus push` (OverflowError, or numpy's
# invalid-cast warning) before anything was sent; now its line is skipped with the reason.
BEYOND_INT64 = {
    "ndjson": (
        '{"metric":"m","ts":1732530000000,"value":1}\n'
        '{"metric":"m","ts":99999999999999999999,"value":2}\n'
        '{"metric":"m","ts":"2024-11-25T10:20:00Z","value":3}\n'  # mixed ts types: the line-by-line parser
        '{"metric":"m","ts":-1e30,"value":4}\n'
        '{"metric":"m","ts":"99999999999999999999","value":5}\n'
        '{"metric":"m","ts":1732530001000,"value":6}\n'
    ),
    "csv": (
        "metric,ts,value\n"
        "m,1732530000000,1\n"
        "m,99999999999999999999,2\n"
        "m,2024-11-25T10:20:00Z,3\n"
        "m,-1e30,4\n"
        "m,-9300000000000000,5\n"  # seconds: times 1000 wraps around int64
        "m,1732530001000,6\n"
    ),
}


@pytest.mark.parametrize("fmt", sorted(BEYOND_INT64))
def test_push_command_rejects_timestamps_beyond_int64_by_line_and_pushes_the_rest(
    tmp_path: Path, threaded_ingest: Any, fmt: str
) -> None:
    fake = FakeIngest()
    target = threaded_ingest(fake)
    data = tmp_path / f"in.{fmt}"
    data.write_text(BEYOND_INT64[fmt])
    result = _push_cli(str(data), "--ingest", target, "--api-key", API_KEY)
    assert result.exit_code == 1, result.output  # incomplete, not a crash
    assert "3 accepted, 0 rejected" in result.output
    rfc3339_ms = int(datetime.datetime(2024, 11, 25, 10, 20, tzinfo=datetime.UTC).timestamp() * 1000)
    assert sorted(fake.timestamps) == sorted([1732530000000, rfc3339_ms, 1732530001000])
    assert "3 of 6 skipped" in result.output
    for line in (2, 4, 5) if fmt == "ndjson" else (3, 5, 6):
        assert re.search(rf"line {line}: ts \S+ is out of range", result.output), result.output
