"""SpoolSender against a tiny in-process IngestService on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from agent.push_client import PushClient, RetryPolicy
from agent.sender import SpoolSender
from agent.spool import Codec, Spool
from contracts.argus.ingest.v1 import ingest_pb2
from tests.unit.test_push_client import API_KEY, FakeIngest, make_batch

FAST = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05)


class PoisonIngest(FakeIngest):
    """Ends a stream with INVALID_ARGUMENT when it meets batch `poison` (PushBatch too)."""

    async def Push(self, request_iterator: Any, context: Any) -> AsyncIterator[ingest_pb2.PushResponse]:
        await self._check(context)
        self.streams += 1
        async for request in request_iterator:
            if request.batch.batch_id == "poison":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch poison: malformed series")
            yield ingest_pb2.PushResponse(result=self._accept(request.batch))

    async def PushBatch(self, request: Any, context: Any) -> ingest_pb2.PushBatchResponse:
        await self._check(context)
        if request.batch.batch_id == "poison":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch poison: malformed series")
        return ingest_pb2.PushBatchResponse(result=self._accept(request.batch))


async def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def spool_with(directory: Path, ids: list[str]) -> Spool:
    spool = Spool.open(directory, codec=Codec.ZSTD, fsync=False)
    for i, batch_id in enumerate(ids):
        batch = make_batch(i)
        batch.batch_id = batch_id
        spool.append(batch_id, batch.SerializeToString(deterministic=True), samples=3)
    return spool


async def run_sender(
    target: str, spool: Spool, *, key: str = API_KEY, until: Callable[[SpoolSender], bool]
) -> SpoolSender:
    client = PushClient(target, key, max_in_flight=2, timeout_s=5.0, retry=RetryPolicy(max_attempts=1))
    sender = SpoolSender(spool, client, retry=FAST, drain_timeout_s=2.0)
    await sender.start()
    sender.notify()
    try:
        await wait_until("the sender", lambda: until(sender))
    finally:
        await sender.stop()
        await client.close()
    return sender


async def test_every_spooled_batch_is_sent_once_and_then_removed(serve: Any, tmp_path: Path) -> None:
    fake = FakeIngest(window=1)
    spool = spool_with(tmp_path, [f"b{i}" for i in range(10)])
    sender = await run_sender(await serve(fake), spool, until=lambda s: spool.pending_batches == 0)
    assert sorted(fake.received) == sorted(f"b{i}" for i in range(10))
    assert (sender.stats.answered_batches, sender.stats.accepted_samples) == (10, 30)
    spool.close()


async def test_a_broken_stream_resends_only_what_is_unanswered(serve: Any, tmp_path: Path) -> None:
    fake = FakeIngest(break_first_stream=(grpc.StatusCode.UNAVAILABLE, 3), answer_before_break=1)
    spool = spool_with(tmp_path, [f"b{i}" for i in range(6)])
    sender = await run_sender(await serve(fake), spool, until=lambda s: spool.pending_batches == 0)
    assert sender.stats.stream_failures == 1
    assert set(fake.durable) == {f"b{i}" for i in range(6)}
    assert fake.received.count("b0") == 1, "the answered batch is not sent again"
    assert sender.stats.duplicate_batches >= 1, "batches ingest had but did not answer come back as duplicates"
    spool.close()


async def test_a_batch_ingest_refuses_for_good_is_dropped_and_the_rest_flows(serve: Any, tmp_path: Path) -> None:
    fake = PoisonIngest()
    spool = spool_with(tmp_path, ["b0", "poison", "b2", "b3"])
    sender = await run_sender(await serve(fake), spool, until=lambda s: spool.pending_batches == 0)
    assert set(fake.durable) == {"b0", "b2", "b3"}
    assert sender.stats.rejected_batches == 1
    assert sender.stats.rejection_reasons == {"batch_refused": 3}
    spool.close()


async def test_a_refused_api_key_keeps_every_batch_spooled(serve: Any, tmp_path: Path) -> None:
    fake = FakeIngest()
    spool = spool_with(tmp_path, ["b0", "b1"])
    sender = await run_sender(await serve(fake), spool, key="wrong-key", until=lambda s: s.stats.auth_failures >= 1)
    assert spool.pending_batches == 2
    assert "UNAUTHENTICATED" in sender.stats.last_error
    spool.close()
