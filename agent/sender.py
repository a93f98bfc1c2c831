"""Sends what the spool holds to ingest over the bidirectional Push stream, and deletes each
batch from the spool once ingest has answered for it.

- Order and flow control: batches go out oldest first, at most `max_in_flight` unanswered
  (the PushClient's bound); the rest wait on disk, not in memory.
- Answers: every answered batch is acknowledged in the spool, whatever the answer:
  accepted, partial, or rejected. A rejection is permanent by the contract (retrying the
  same batch cannot help), so it is logged with ingest's reasons, counted, and removed, and
  never blocks the batches behind it.
- Failures: a stream that breaks with UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED
  is retried on a new connection after a backoff with jitter (`RetryPolicy`: doubling from
  `initial_backoff_s` to `max_backoff_s`, reset by any answer), resending every unanswered
  batch: ingest is idempotent per (source, batch id, content), so a batch answered before
  the break but whose answer was lost is counted once. A refused API key keeps everything
  spooled and retries at the longest backoff (the operator fixes the key; nothing is lost
  meanwhile, within the spool cap). Any other stream error is narrowed down by sending the
  oldest unanswered batch alone: if ingest refuses that batch as invalid, it is dropped as
  a permanent rejection, so one poisoned batch cannot stop the agent.
- A spooled batch that no longer reads back (disk corruption) is logged, counted and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from google.protobuf.message import DecodeError

from agent.push_client import PushClient, RetryPolicy, reason_name
from agent.spool import Spool, SpoolRecord
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import (
    ArgusError,
    CorruptData,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

_MAX_LATENCIES: Final = 10_000
# Caps the backoff exponent (2**1024 overflows a float); the delay is capped long before.
_MAX_FAILURES: Final = 32
_TRANSIENT: Final = (Unavailable, ResourceExhausted)
_AUTH: Final = (Unauthenticated, PermissionDenied)


@dataclass(slots=True)
class SenderStats:
    """Totals since start (the daemon reports them as its own metrics)."""

    answered_batches: int = 0
    accepted_samples: int = 0
    rejected_samples: int = 0
    partial_batches: int = 0
    rejected_batches: int = 0
    duplicate_batches: int = 0
    corrupt_batches: int = 0
    stream_failures: int = 0
    auth_failures: int = 0
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    last_error: str = ""


class SpoolSender:
    """Drains a Spool into a PushClient until `stop()`. Call `notify()` after each append."""

    def __init__(
        self,
        spool: Spool,
        client: PushClient,
        *,
        retry: RetryPolicy | None = None,
        drain_timeout_s: float = 5.0,
        max_in_flight: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        self._spool = spool
        self._client = client
        self._retry = retry or RetryPolicy(initial_backoff_s=0.5, max_backoff_s=30.0)
        self._drain_timeout_s = drain_timeout_s
        self._max_in_flight = max_in_flight
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent_at: dict[str, float] = {}
        self._latencies: deque[float] = deque(maxlen=_MAX_LATENCIES)
        self._failures = 0
        self.stats = SenderStats()

    @property
    def in_flight(self) -> int:
        return len(self._sent_at)

    @property
    def backed_up(self) -> bool:
        """True while ingest is unreachable (no answer since the last failure) or the spool
        holds more than two windows of in-flight batches."""
        return self._failures > 0 or self._spool.pending_batches > 2 * self._max_in_flight

    def notify(self) -> None:
        """New records are in the spool."""
        self._wake.set()

    def take_latencies_ms(self) -> list[float]:
        """Send latencies (handed to the stream -> answered) since the last call."""
        out = list(self._latencies)
        self._latencies.clear()
        return out

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="spool-sender")

    async def stop(self) -> None:
        """Stop feeding new batches, wait up to `drain_timeout_s` for the answers of those in
        flight, then stop. What is unanswered stays spooled for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self._drain_timeout_s)
        except TimeoutError:
            log.warning("sender stopped with batches unanswered; they stay spooled: in_flight=%d", self.in_flight)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._client.push_stream(_SpoolFeed(self), on_result=self._on_result)
                continue  # the feed ended: only on stop
            except _AUTH as exc:
                self.stats.auth_failures += 1
                self.stats.last_error = str(exc)
                self._failures = _MAX_FAILURES  # the longest backoff
                log.error("ingest refused the API key; batches stay spooled: error=%s", exc)
            except _TRANSIENT as exc:
                self.stats.stream_failures += 1
                self.stats.last_error = str(exc)
                self._failures = min(self._failures + 1, _MAX_FAILURES)
                log.warning(
                    "push stream failed, will reconnect: unanswered=%d failures=%d error=%s",
                    self.in_flight,
                    self._failures,
                    exc,
                )
            except ArgusError as exc:
                self.stats.stream_failures += 1
                self.stats.last_error = str(exc)
                self._failures = min(self._failures + 1, _MAX_FAILURES)
                log.warning("push stream ended with an error, checking the oldest batch alone: error=%s", exc)
                await self._isolate_oldest()
            finally:
                self._sent_at.clear()
            await self._client.close()  # a new channel: no waiting out grpc's own reconnect backoff
            await self._sleep(self._retry.delay_s(self._failures, self._rng))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _on_result(self, result: ingest_pb2.BatchResult) -> None:
        started = self._sent_at.pop(result.batch_id, None)
        if started is not None:
            self._latencies.append(1000.0 * (time.monotonic() - started))
        self._account(result)
        self._spool.ack(result.batch_id)
        self._failures = 0

    def _account(self, result: ingest_pb2.BatchResult) -> None:
        stats = self.stats
        stats.answered_batches += 1
        stats.accepted_samples += result.accepted_samples
        stats.rejected_samples += result.rejected_samples
        stats.duplicate_batches += int(result.duplicate)
        for rejection in result.rejections:
            reason = reason_name(rejection.reason)
            stats.rejection_reasons[reason] = stats.rejection_reasons.get(reason, 0) + rejection.samples
        if result.status == ingest_pb2.BATCH_STATUS_REJECTED:
            stats.rejected_batches += 1
            log.error(
                "ingest rejected a batch for good, removed it from the spool: batch_id=%s samples=%d error=%s",
                result.batch_id,
                result.rejected_samples,
                result.error or _first_message(result),
            )
        elif result.rejected_samples:
            stats.partial_batches += 1
            log.warning(
                "ingest rejected samples of a batch: batch_id=%s accepted=%d rejected=%d first=%s",
                result.batch_id,
                result.accepted_samples,
                result.rejected_samples,
                _first_message(result),
            )

    async def _isolate_oldest(self) -> None:
        record = self._spool.next_pending()
        if record is None:
            return
        batch = await self._load(record)
        if batch is None:
            return
        try:
            result = await self._client.push_one(batch)
        except (*_TRANSIENT, *_AUTH) as exc:
            log.warning("sending the oldest batch alone failed too; will retry: error=%s", exc)
            return
        except ArgusError as exc:
            self.stats.rejected_batches += 1
            self.stats.rejected_samples += record.samples
            self.stats.rejection_reasons["batch_refused"] = (
                self.stats.rejection_reasons.get("batch_refused", 0) + record.samples
            )
            self._spool.ack(record.batch_id)
            log.error(
                "ingest refused a batch for good, removed it from the spool: batch_id=%s samples=%d error=%s",
                record.batch_id,
                record.samples,
                exc,
            )
            return
        self._on_result(result)

    async def _load(self, record: SpoolRecord) -> metrics_pb2.SampleBatch | None:
        """The batch of a record; None (and the record removed) if it does not read back."""
        try:
            data = await asyncio.to_thread(self._spool.read, record)
            if data is None:
                return None
            batch = metrics_pb2.SampleBatch.FromString(data)
            if batch.batch_id != record.batch_id:
                raise CorruptData(f"spooled batch {record.batch_id} holds batch id {batch.batch_id!r}")
        except (CorruptData, DecodeError, OSError) as exc:
            self.stats.corrupt_batches += 1
            self._spool.ack(record.batch_id)
            log.error("spooled batch does not read back, removed it: batch_id=%s error=%s", record.batch_id, exc)
            return None
        return batch


class _SpoolFeed:
    """The batches of one push stream: the spool's pending records from the oldest, then new
    ones as they are appended; ends when the sender stops."""

    def __init__(self, sender: SpoolSender) -> None:
        self._sender = sender
        self._cursor = -1

    def __aiter__(self) -> _SpoolFeed:
        return self

    async def __anext__(self) -> metrics_pb2.SampleBatch:
        sender = self._sender
        spool = sender._spool
        while True:
            if sender._stopping.is_set():
                raise StopAsyncIteration
            record = spool.next_pending(self._cursor)
            if record is None:
                sender._wake.clear()
                record = spool.next_pending(self._cursor)  # appended between the look and the clear
            if record is None:
                await sender._wake.wait()
                continue
            self._cursor = record.seq
            batch = await sender._load(record)
            if batch is None:
                continue
            sender._sent_at[record.batch_id] = time.monotonic()
            return batch


def _first_message(result: ingest_pb2.BatchResult) -> str:
    if result.rejections:
        first = result.rejections[0]
        return f"{reason_name(first.reason)}: {first.message}"
    return result.error
