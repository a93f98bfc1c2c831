"""One runner for every consumer group of the event log.

Projectors (and, next, the alert evaluator and live dashboard views) plug a
`ConsumerHandler` into a `ConsumerRunner`, which owns the loop they all need:

    poll -> drop records of lost partitions -> decode (quarantine / halt) -> apply
         -> settle (the handler's durable writes) -> commit -> rebalance

Guarantees the runner gives every handler:

- **Ownership.** `apply` only sees records of partitions the member owns at that moment,
  in offset order per partition. A rebalance waits for the runner: before partitions move,
  the handler settles everything (`settle(force=True)`) and the runner commits it; after,
  the handler hears the new assignment (`reassigned`) under the same lock.
- **Commit last.** Offsets are committed only as `settle` returns them, after the handler
  made their effects durable, and only for partitions still owned.
- **No poison records.** A record that will not decode (`decode` raises CorruptData: a
  corrupt payload, a Kafka record without the Argus envelope) is quarantined: written to
  the quarantine topic (core/quarantine.py) with its group, topic, partition, offset and
  error, durably, *before* the handler is told to `skip` it, so its offset can be committed
  past only once the quarantine holds it. It is counted (`records_quarantined`) and the
  partition goes on with the next record. Meeting it again after a restart records
  nothing new (the quarantine entry's id is its position).
- **Newer schema versions halt the partition, loudly.** A record whose `decode` raises
  UpgradeNeeded is valid, just not for this build: the runner logs an error, records the
  halt on the quarantine topic, and applies and commits nothing of that partition from it
  on (the other partitions go on). `status()` and the admin view show it; a newer build
  resumes from the last commit, applies it, and records the halt as resumed.
- **Failures restart from the last commit.** Any other error of a poll, apply, settle or
  commit drops the handler's in-memory state (`reset`) and the consumer, and resumes from
  the committed offsets after `retry_delay_s`: handlers make re-delivery harmless
  (docs/decisions/0004-projector-exactly-once.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from core.errors import ArgusError, CorruptData, UpgradeNeeded
from core.ports import EventLog, EventLogConsumer, LogRecord
from core.quarantine import HaltedPartition, Quarantine, QuarantinedRecord, read_quarantine
from core.telemetry import REGISTRY

FLUSH_SECONDS = REGISTRY.histogram(
    "argus_consumer_flush_seconds", "Time of one settle-and-commit (a projector's flush), by consumer group.", ["group"]
)
RECORDS = REGISTRY.counter("argus_consumer_records_total", "Event-log records taken, by consumer group.", ["group"])
QUARANTINED = REGISTRY.counter(
    "argus_quarantined_records_total", "Undecodable records set aside to the quarantine topic.", ["group"]
)
LAG = REGISTRY.gauge(
    "argus_consumer_lag_records",
    "Records of the log not yet read by the group, per partition (projector lag).",
    ["group", "partition"],
)
LAG_EVERY_S = 5.0
"""How often a runner reads its lag (a broker round trip on Kafka)."""

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery(Generic[T]):
    """A record and what `decode` made of it."""

    record: LogRecord
    value: T


class ConsumerHandler(Protocol[T]):
    """What a consumer plugs into the runner. Every call but `decode` runs under the
    runner's lock, never concurrently with another."""

    def decode(self, record: LogRecord) -> T:
        """The record's payload as the handler wants it. Pure. Raises CorruptData for what
        will never decode (the record is quarantined) and UpgradeNeeded for a newer schema
        version (the partition halts)."""
        ...

    async def apply(self, deliveries: Sequence[Delivery[T]]) -> None:
        """Take decoded records (owned partitions, offset order per partition) into memory or
        the read model. Duplicates (the same event id at another offset) are the handler's
        to drop, as only it knows what is durable."""
        ...

    def skip(self, partition: int, offset: int) -> None:
        """The record at this position never reaches `apply` (it is quarantined, durably):
        count it read, so that a later `settle` may commit past it."""
        ...

    def buffer_full(self) -> bool:
        """Settle now rather than at the next interval (a memory bound was reached)."""
        ...

    async def settle(self, *, force: bool) -> Mapping[int, int]:
        """Make applied records durable (all of them when `force`, else as the handler's own
        cadence says) and return, per partition, the next offset whose predecessors' effects
        are all durable: the runner commits exactly these."""
        ...

    def reset(self) -> None:
        """Drop every in-memory state: the runner resumes from the committed offsets."""
        ...

    async def reassigned(self, partitions: frozenset[int]) -> None:
        """The member now owns exactly `partitions` (RebalanceListener.partitions_assigned)."""
        ...

    async def housekeeping(self) -> None:
        """Called once per loop turn of `run` (retention and the like; keep it cheap)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerStatus:
    """What a runner reports for readiness and the admin view."""

    name: str
    group: str
    topic: str
    assigned: frozenset[int]
    halted: Mapping[int, HaltedPartition]
    records_quarantined: int
    restarts: int

    @property
    def healthy(self) -> bool:
        """False while a partition is halted (an upgrade is needed)."""
        return not self.halted


class ConsumerRunner(Generic[T]):
    """Runs one member of consumer group `group` on `topic` for `handler` (see the module
    docstring). `run` for services, `catch_up` for replays and tests; the runner is the
    consumer's RebalanceListener."""

    def __init__(
        self,
        *,
        name: str,
        log: EventLog,
        topic: str,
        group: str,
        handler: ConsumerHandler[T],
        clock_ms: Callable[[], int],
        flush_interval_ms: int = 500,
        poll_records: int = 512,
        quarantine: Quarantine | None = None,
        retry_delay_s: float = 1.0,
        monotonic_s: Callable[[], float] = time.monotonic,
        session_timeout_ms: int | None = None,
    ) -> None:
        self.name = name
        self._session_timeout_ms = session_timeout_ms
        self.group = group
        self.topic = topic
        self._log = log
        self._handler = handler
        self._clock_ms = clock_ms
        self._flush_interval_s = flush_interval_ms / 1000
        self._poll_records = poll_records
        self._quarantine = quarantine if quarantine is not None else Quarantine(log)
        self._retry_delay_s = retry_delay_s
        self._monotonic = monotonic_s
        self.consumer: EventLogConsumer | None = None
        # take / settle+commit exclude each other and the rebalance callbacks (which run in
        # the consumer's own task on Kafka).
        self._lock = asyncio.Lock()
        self._halted: dict[int, HaltedPartition] = {}
        # Halts recorded by an earlier (older) build, ended once this one commits past them.
        self._resumable: dict[int, HaltedPartition] | None = None
        self.records_quarantined = 0
        self._lag_shown: set[int] = set()
        self.restarts = 0
        self.ready = asyncio.Event()

    # -- driving ------------------------------------------------------------------------

    def _open_consumer(self) -> EventLogConsumer:
        if self.consumer is None:
            self.consumer = self._log.consumer(
                self.group, self.topic, listener=self, session_timeout_ms=self._session_timeout_ms
            )
        return self.consumer

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, settling every `flush_interval_ms` (or when the
        handler's buffer is full); then settle everything and commit."""
        clock = self._monotonic
        last_flush = clock()
        last_lag = -LAG_EVERY_S
        self._open_consumer()
        self.ready.set()
        try:
            while not stop.is_set():
                wait = max(0.0, min(0.1, self._flush_interval_s - (clock() - last_flush)))
                try:
                    await self._load_resumable()
                    records = await self._open_consumer().poll(max_records=self._poll_records, timeout_s=wait)
                    await self.take(records)
                    if clock() - last_flush >= self._flush_interval_s or self._handler.buffer_full():
                        await self.flush(force=False)
                        last_flush = clock()
                    if clock() - last_lag >= LAG_EVERY_S:
                        last_lag = clock()
                        await self._record_lag()
                    await self._handler.housekeeping()
                except Exception as exc:
                    # Our own errors say what failed; anything else needs its traceback.
                    log.log(
                        logging.WARNING if isinstance(exc, ArgusError) else logging.ERROR,
                        "%s: %s; restarting from the last committed offsets in %.0f s",
                        self.name,
                        exc,
                        self._retry_delay_s,
                        exc_info=not isinstance(exc, ArgusError),
                    )
                    await self._restart()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self._retry_delay_s)
            await self.flush(force=True)
        finally:
            await self.close()

    async def catch_up(self, *, idle_timeout_s: float = 0.05, force: bool = True) -> None:
        """Consume until a poll finds nothing new, then settle (everything with `force`, else
        as the handler's cadence says) and commit: `run`'s path, driven to a definite end."""
        consumer = self._open_consumer()
        await self._load_resumable()
        while records := await consumer.poll(max_records=self._poll_records, timeout_s=idle_timeout_s):
            await self.take(records)
            if self._handler.buffer_full():
                await self.flush(force=False)
        await self.flush(force=force)

    async def close(self) -> None:
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            await consumer.close()

    async def _restart(self) -> None:
        self.restarts += 1
        await self.close()
        self._handler.reset()
        self._open_consumer()

    # -- the steps ----------------------------------------------------------------------

    async def take(self, records: Sequence[LogRecord]) -> None:
        """Decode polled records and hand them to the handler: records of partitions not
        owned (polled just before a rebalance) or halted are dropped, undecodable ones
        quarantined, a newer schema version halts its partition."""
        if not records:
            return
        RECORDS.inc(self.group, by=len(records))
        async with self._lock:
            owned = self.consumer.assigned if self.consumer is not None else frozenset()
            pending: list[Delivery[T]] = []
            for record in records:
                partition = record.partition
                if partition not in owned or partition in self._halted:
                    continue
                try:
                    pending.append(Delivery(record=record, value=self._handler.decode(record)))
                except UpgradeNeeded as exc:
                    await self._halt(record, exc)
                except CorruptData as exc:
                    # Apply what came before first: `skip` moves the partition's position.
                    await self._handler.apply(pending)
                    pending = []
                    await self._set_aside(record, exc)
                    self._handler.skip(partition, record.offset)
            await self._handler.apply(pending)

    async def flush(self, *, force: bool = True) -> None:
        """Settle (see ConsumerHandler.settle) and commit what the handler returns."""
        async with self._lock:
            with FLUSH_SECONDS.time(self.group):
                await self._settle_and_commit(force=force)

    async def _record_lag(self) -> None:
        """Our partitions' lag on /metrics; those another member took leave it."""
        if self.consumer is None:
            return
        try:
            lags = await self.consumer.lag()
        except ArgusError as exc:  # a figure, not a reason to restart the consumer
            log.debug("%s: lag not read: %s", self.name, exc)
            return
        for partition in self._lag_shown - lags.keys():
            LAG.remove(self.group, str(partition))
        for partition, lag in lags.items():
            LAG.set(lag, self.group, str(partition))
        self._lag_shown = set(lags)

    async def _settle_and_commit(self, *, force: bool) -> None:
        offsets = await self._handler.settle(force=force)
        if not offsets or self.consumer is None:
            return
        owned = self.consumer.assigned
        committed = {p: o for p, o in offsets.items() if p in owned}
        await self.consumer.commit(committed)
        if self._resumable:
            for partition, next_offset in committed.items():
                halt = self._resumable.get(partition)
                if halt is not None and next_offset > halt.offset:
                    await self._quarantine.resume(halt, now_ms=self._clock_ms())
                    del self._resumable[partition]
                    log.warning(
                        "%s: partition %d of %s resumed past offset %d (halted by an older build)",
                        self.name,
                        partition,
                        self.topic,
                        halt.offset,
                    )

    async def _set_aside(self, record: LogRecord, exc: CorruptData) -> QuarantinedRecord:
        entry = await self._quarantine.set_aside(self.group, record, str(exc), now_ms=self._clock_ms())
        self.records_quarantined += 1
        QUARANTINED.inc(self.group)
        log.error(
            "%s: quarantined record %s/%d@%d of group %s (%s); moving past it",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            self.group,
            exc,
        )
        return entry

    async def _halt(self, record: LogRecord, exc: UpgradeNeeded) -> None:
        self._halted[record.partition] = await self._quarantine.halt(
            self.group, record, str(exc), now_ms=self._clock_ms()
        )
        log.error(
            "%s: partition %d of %s halted at offset %d: UPGRADE NEEDED: %s. Nothing of this partition is "
            "applied from there on until a newer Argus runs; the other partitions go on",
            self.name,
            record.partition,
            record.topic,
            record.offset,
            exc,
        )

    async def _load_resumable(self) -> None:
        if self._resumable is not None:
            return
        try:
            self._resumable = (await read_quarantine(self._log)).open_halts(self.group, self.topic)
        except ArgusError as exc:
            # Only the "resumed" marks depend on it: never hold consumption up for them.
            log.warning("%s: cannot read the quarantine topic (%s); halts of older builds stay listed", self.name, exc)
            self._resumable = {}

    # -- RebalanceListener --------------------------------------------------------------

    async def partitions_revoked(self, partitions: frozenset[int]) -> None:
        """Before partitions move to another member: settle everything and commit it, so the
        next owner starts exactly where this one stopped."""
        async with self._lock:
            try:
                await self._settle_and_commit(force=True)
            except Exception as exc:
                # Nothing uncommitted survives: every owner (this one included) replays
                # from the committed offsets, which handlers make harmless.
                log.warning("%s: settle before rebalance failed (%s); dropping in-memory state", self.name, exc)
                self._handler.reset()

    async def partitions_assigned(self, partitions: frozenset[int]) -> None:
        async with self._lock:
            # A halted partition that moved is the new owner's to halt (or apply).
            self._halted = {p: h for p, h in self._halted.items() if p in partitions}
            await self._handler.reassigned(partitions)

    # -- status -------------------------------------------------------------------------

    def status(self) -> RunnerStatus:
        return RunnerStatus(
            name=self.name,
            group=self.group,
            topic=self.topic,
            assigned=self.consumer.assigned if self.consumer is not None else frozenset(),
            halted=dict(self._halted),
            records_quarantined=self.records_quarantined,
            restarts=self.restarts,
        )


async def run_periodically(
    stop: asyncio.Event, interval_s: float, work: Callable[[], Awaitable[None]], *, name: str
) -> None:
    """Call `work` at once and then every `interval_s` until `stop` is set: the loop of jobs
    that follow a read model rather than the log (the cold archiver). A failed pass is
    logged and the next pass retries; it never ends the loop."""
    while not stop.is_set():
        try:
            await work()
        except Exception as exc:
            log.log(
                logging.WARNING if isinstance(exc, ArgusError) else logging.ERROR,
                "%s: %s; retrying at the next pass",
                name,
                exc,
                exc_info=not isinstance(exc, ArgusError),
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
