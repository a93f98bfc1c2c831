"""Async gRPC client of argus.ingest.v1.IngestService, used by `argus push` and the collectors.

Guarantees:
- Every batch handed to `push_stream` is answered exactly once in the summary, or the call
  raises. Results are matched by batch id, so the server may answer in any order.
- At most `max_in_flight` batches are unanswered at any time (memory and server load stay
  bounded however long the input).
- UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED (and grpc-core's local INTERNAL when
  a send races the end of the stream) are retried with exponential backoff and jitter; the
  unanswered batches are sent again on a new stream. That is safe because
  ingest is idempotent per (source, batch id, content): a batch whose answer was lost comes
  back `duplicate = true` and is counted once.
- Any other status (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, ...) is raised at
  once as the matching `core.errors` exception, carrying the server's message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import grpc

from contracts.argus.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import (
    ArgusError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from core.tls import ClientTls

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
RETRYABLE_CODES: Final = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
_MAX_EXAMPLES: Final = 5
# What grpc-core reports when a send races the server ending the stream: the server's status
# is lost and the call fails locally. It says nothing about the batch, so it is retried like
# UNAVAILABLE; an INTERNAL sent by the server carries its own details and is not retried.
_LOCAL_CORE_FAILURE: Final = "Internal error from Core"


def is_retryable(exc: grpc.aio.AioRpcError) -> bool:
    """Whether sending the same batches again on a new call may succeed."""
    code = exc.code()
    return code in RETRYABLE_CODES or (code == grpc.StatusCode.INTERNAL and exc.details() == _LOCAL_CORE_FAILURE)


OnResult = Callable[[ingest_pb2.BatchResult], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Backoff between attempts: the n-th consecutive failure waits a random time in
    [d/2, d] with d = min(max_backoff_s, initial_backoff_s * multiplier**(n-1)).

    `max_attempts` bounds consecutive failures without progress; an answered batch resets
    the count, so a long push survives any number of separate outages.
    """

    max_attempts: int = 8
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    multiplier: float = 2.0

    def delay_s(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** max(failures - 1, 0))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class PushSummary:
    """What ingest answered for every batch of one push.

    `accepted` / `rejected` count samples (a timer or distinct sample counts once);
    `rejection_reasons` maps a reason (e.g. "invalid_label", "batch_rejected") to the samples
    it rejected; `rejection_examples` holds the first few server messages.
    """

    batches: int
    accepted_batches: int
    partial_batches: int
    rejected_batches: int
    duplicates: int
    accepted: int
    rejected: int
    rejection_reasons: Mapping[str, int]
    rejection_examples: tuple[str, ...]
    retries: int
    elapsed_s: float

    @property
    def samples_per_s(self) -> float:
        return (self.accepted + self.rejected) / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(slots=True)
class _SummaryBuilder:
    batches: int = 0
    accepted_batches: int = 0
    partial_batches: int = 0
    rejected_batches: int = 0
    duplicates: int = 0
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, result: ingest_pb2.BatchResult) -> None:
        self.batches += 1
        self.accepted += result.accepted_samples
        self.rejected += result.rejected_samples
        self.duplicates += int(result.duplicate)
        if result.status == ingest_pb2.BATCH_STATUS_ACCEPTED:
            self.accepted_batches += 1
        elif result.status == ingest_pb2.BATCH_STATUS_PARTIAL:
            self.partial_batches += 1
        elif result.status == ingest_pb2.BATCH_STATUS_REJECTED:
            self.rejected_batches += 1
        listed = 0
        for rejection in result.rejections:
            reason = reason_name(rejection.reason)
            self.reasons[reason] = self.reasons.get(reason, 0) + rejection.samples
            listed += rejection.samples
            self._example(f"{result.batch_id}: {rejection.message or reason}")
        unlisted = result.rejected_samples - listed
        if unlisted > 0:
            # The server lists at most 100 rejections per batch; the rest keep only a count.
            reason = "batch_rejected" if result.error or not result.rejections else "unlisted"
            self.reasons[reason] = self.reasons.get(reason, 0) + unlisted
        if result.error:
            self._example(f"{result.batch_id}: {result.error}")

    def _example(self, text: str) -> None:
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(text)

    def build(self, elapsed_s: float) -> PushSummary:
        return PushSummary(
            batches=self.batches,
            accepted_batches=self.accepted_batches,
            partial_batches=self.partial_batches,
            rejected_batches=self.rejected_batches,
            duplicates=self.duplicates,
            accepted=self.accepted,
            rejected=self.rejected,
            rejection_reasons=dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            rejection_examples=tuple(self.examples),
            retries=self.retries,
            elapsed_s=elapsed_s,
        )


def reason_name(reason: int) -> str:
    """`REJECT_REASON_INVALID_LABEL` -> "invalid_label" (unknown numbers stay readable)."""
    try:
        name = ingest_pb2.RejectReason.Name(reason)
    except ValueError:
        return f"reason_{reason}"
    return name.removeprefix("REJECT_REASON_").lower()


_ERRORS: Final[dict[grpc.StatusCode, type[ArgusError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def error_from_status(code: grpc.StatusCode, details: str | None, doing: str) -> ArgusError:
    """The `core.errors` exception for a gRPC status, its message naming what was being done."""
    cls = _ERRORS.get(code, ArgusError)
    return cls(f"{doing}: {details or code.name.lower()} ({code.name})")


class _RetryableStreamError(Unavailable):
    """The stream broke in a way a new stream may mend (the code says how)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class PushClient:
    """A connection to one ingest endpoint with one API key.

    Use as `async with PushClient(...) as client:` or call `close()`. The channel is opened
    on first use and bound to that event loop; use one client from one loop.
    """

    def __init__(
        self,
        target: str,
        api_key: str,
        *,
        max_in_flight: int = 8,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        compression: bool = True,
        rng: random.Random | None = None,
        tls: ClientTls | None = None,
        tls_server_name: str = "",
    ) -> None:
        """`tls`: connect over TLS (None: plaintext). `tls_server_name`: the name the server's
        certificate must carry when it is not the target's host (e.g. connecting to 127.0.0.1)."""
        if max_in_flight < 1:
            raise InvalidArgument("max_in_flight must be >= 1", parameter="max_in_flight")
        self.target = target
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._max_in_flight = max_in_flight
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._compression = grpc.Compression.Gzip if compression else grpc.Compression.NoCompression
        self._rng = rng or random.Random()
        self._tls = tls
        self._tls_server_name = tls_server_name
        self._channel: grpc.aio.Channel | None = None
        self._stub_: ingest_pb2_grpc.IngestServiceStub | None = None

    async def __aenter__(self) -> PushClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._stub_ = self._channel, None, None
            await channel.close()

    def _stub(self) -> ingest_pb2_grpc.IngestServiceStub:
        if self._stub_ is None:
            options: list[tuple[str, str | int]] = [
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 30_000),
            ]
            if self._tls is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=options, compression=self._compression)
            else:
                if self._tls_server_name:
                    options.append(("grpc.ssl_target_name_override", self._tls_server_name))
                self._channel = grpc.aio.secure_channel(
                    self.target, self._tls.grpc_credentials(), options=options, compression=self._compression
                )
            self._stub_ = ingest_pb2_grpc.IngestServiceStub(self._channel)  # type: ignore[no-untyped-call]
        return self._stub_

    async def push_one(self, batch: metrics_pb2.SampleBatch) -> ingest_pb2.BatchResult:
        """Send one batch with the unary PushBatch and return its result, retrying transient
        failures (idempotent: a retried batch is counted once)."""
        doing = f"push batch {batch.batch_id} to {self.target}"
        request = ingest_pb2.PushBatchRequest(batch=batch)
        failures = 0
        while True:
            try:
                response: ingest_pb2.PushBatchResponse = await self._stub().PushBatch(
                    request, metadata=self._metadata, timeout=self._timeout_s
                )
                return response.result
            except grpc.aio.AioRpcError as exc:
                if not is_retryable(exc):
                    raise error_from_status(exc.code(), exc.details(), doing) from exc
                failures += 1
                if failures >= self._retry.max_attempts:
                    raise error_from_status(
                        exc.code(), exc.details(), f"{doing} (gave up after {failures} attempts)"
                    ) from exc
                delay = self._retry.delay_s(failures, self._rng)
                log.warning(
                    "push batch failed, retrying: batch_id=%s code=%s delay_s=%.2f",
                    batch.batch_id,
                    exc.code().name,
                    delay,
                )
                await asyncio.sleep(delay)

    async def push_stream(
        self,
        batches: AsyncIterable[metrics_pb2.SampleBatch] | Iterable[metrics_pb2.SampleBatch],
        *,
        on_result: OnResult | None = None,
    ) -> PushSummary:
        """Send every batch over the bidirectional Push stream and return what ingest answered.

        A synchronous iterable is advanced in a worker thread, so building the next batch
        does not hold up answers. Batch ids must be unique among the batches in flight.
        `on_result` is called once per batch, in the order answers arrive.
        """
        started = time.perf_counter()
        source = _BatchSource(batches)
        summary = _SummaryBuilder()
        pending: dict[str, metrics_pb2.SampleBatch] = {}
        failures = 0
        try:
            while not (source.exhausted and not pending):
                attempt = _StreamAttempt(
                    stub=self._stub(),
                    metadata=self._metadata,
                    source=source,
                    pending=pending,
                    summary=summary,
                    on_result=on_result,
                    max_in_flight=self._max_in_flight,
                    timeout_s=self._timeout_s,
                )
                try:
                    await attempt.run()
                    break
                except _RetryableStreamError as exc:
                    failures = 1 if attempt.answered else failures + 1
                    doing = f"push stream to {self.target}"
                    if failures >= self._retry.max_attempts:
                        raise error_from_status(
                            exc.code, exc.details, f"{doing} (gave up after {failures} attempts)"
                        ) from exc
                    summary.retries += 1
                    delay = self._retry.delay_s(failures, self._rng)
                    log.warning(
                        "push stream broke, resending unanswered batches: code=%s unanswered=%d delay_s=%.2f detail=%s",
                        exc.code.name,
                        len(pending),
                        delay,
                        exc.details,
                    )
                    await asyncio.sleep(delay)
        finally:
            source.close()
        return summary.build(time.perf_counter() - started)


class _BatchSource:
    """The batches to send, pulled one at a time. A pull interrupted by a broken stream is
    not lost: the next `next()` returns its result."""

    def __init__(self, batches: AsyncIterable[metrics_pb2.SampleBatch] | Iterable[metrics_pb2.SampleBatch]) -> None:
        self._async = aiter(batches) if isinstance(batches, AsyncIterable) else None
        self._sync = iter(batches) if not isinstance(batches, AsyncIterable) else None
        self._pull: asyncio.Future[metrics_pb2.SampleBatch | None] | None = None
        self.exhausted = False

    async def next(self) -> metrics_pb2.SampleBatch | None:
        if self.exhausted:
            return None
        if self._pull is None:
            self._pull = asyncio.ensure_future(self._fetch())
        batch = await asyncio.shield(self._pull)
        self._pull = None
        if batch is None:
            self.exhausted = True
        return batch

    async def _fetch(self) -> metrics_pb2.SampleBatch | None:
        if self._sync is not None:
            return await asyncio.to_thread(next, self._sync, None)
        assert self._async is not None
        try:
            return await anext(self._async)
        except StopAsyncIteration:
            return None

    def close(self) -> None:
        if self._pull is not None and not self._pull.done():
            self._pull.cancel()


class _StreamAttempt:
    """One Push stream: re-send what is unanswered, then feed new batches, while a reader
    matches answers. Raises _RetryableStreamError when a new stream may help."""

    def __init__(
        self,
        *,
        stub: ingest_pb2_grpc.IngestServiceStub,
        metadata: tuple[tuple[str, str], ...],
        source: _BatchSource,
        pending: dict[str, metrics_pb2.SampleBatch],
        summary: _SummaryBuilder,
        on_result: OnResult | None,
        max_in_flight: int,
        timeout_s: float,
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._source = source
        self._pending = pending
        self._summary = summary
        self._on_result = on_result
        self._max_in_flight = max_in_flight
        self._timeout_s = timeout_s
        self._slot_free = asyncio.Event()
        self._deadline: asyncio.Timeout | None = None
        self._done_writing = False
        self.answered = False

    async def run(self) -> None:
        call: Any = self._stub.Push(metadata=self._metadata)
        writer = asyncio.create_task(self._write(call), name="push-writer")
        reader = asyncio.create_task(self._read(call), name="push-reader")
        try:
            done, _ = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_EXCEPTION)
            if reader not in done:
                writer.result()  # the writer finished or failed; raise if it failed
                await reader
            else:
                reader.result()
        except grpc.aio.AioRpcError as exc:
            if is_retryable(exc):
                raise _RetryableStreamError(exc.code(), exc.details() or "") from exc
            raise error_from_status(exc.code(), exc.details(), "push stream") from exc
        finally:
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)
            call.cancel()

    def _arm(self, *, reset: bool) -> None:
        """Keep a deadline while we wait on the server: `timeout_s` without any answer while
        batches are unanswered (or while waiting for the end of stream) breaks the stream."""
        if self._deadline is None:
            return
        loop = asyncio.get_running_loop()
        waiting = bool(self._pending) or self._done_writing
        if not waiting:
            self._deadline.reschedule(None)
        elif reset or self._deadline.when() is None:
            self._deadline.reschedule(loop.time() + self._timeout_s)

    async def _write(self, call: Any) -> None:
        try:
            for batch in list(self._pending.values()):
                await call.write(ingest_pb2.PushRequest(batch=batch))
            self._arm(reset=False)
            while True:
                while len(self._pending) >= self._max_in_flight:
                    self._slot_free.clear()
                    await self._slot_free.wait()
                fetched = await self._source.next()
                if fetched is None:
                    break
                batch = fetched
                if not batch.batch_id:
                    raise InvalidArgument("every batch needs a batch_id", parameter="batch_id")
                if batch.batch_id in self._pending:
                    raise InvalidArgument(f"batch id {batch.batch_id!r} is already in flight", parameter="batch_id")
                self._pending[batch.batch_id] = batch
                self._arm(reset=False)
                await call.write(ingest_pb2.PushRequest(batch=batch))
            self._done_writing = True
            await call.done_writing()
            self._arm(reset=False)
        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
            # The call ended under us (a write racing the server's abort fails with a generic
            # INTERNAL status); the reader gets the real status from the call.
            return

    async def _read(self, call: Any) -> None:
        try:
            async with asyncio.timeout(None) as deadline:
                self._deadline = deadline
                self._arm(reset=True)
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        if self._pending or not self._done_writing:
                            raise _RetryableStreamError(
                                grpc.StatusCode.UNAVAILABLE,
                                f"ingest ended the stream with {len(self._pending)} batches unanswered",
                            )
                        return
                    result: ingest_pb2.BatchResult = response.result
                    if self._pending.pop(result.batch_id, None) is None:
                        log.warning("answer for a batch not in flight: batch_id=%s", result.batch_id)
                        continue
                    self.answered = True
                    self._summary.add(result)
                    self._slot_free.set()
                    self._arm(reset=True)
                    if self._on_result is not None:
                        self._on_result(result)
        except TimeoutError:
            raise _RetryableStreamError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer from ingest within {self._timeout_s:g}s"
            ) from None
        finally:
            self._deadline = None
