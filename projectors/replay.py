"""Replay: rebuild the hot read model into a fresh version, then activate it.

The rollup and series-index projectors run unchanged, on a new store (version N+1 of the
hot read model) and under new consumer groups, from the beginning of the samples topic (or
keeping only events appended since a time). When both have read everything the log held at
the previous check, they flush, commit and stop; then `ReadModelActivated` tells every
reader and live projector to switch (core/read_models.py). The live projectors continue
the new version's groups from the offsets the replay committed, so nothing is applied twice
or skipped across the hand-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from core.adapters.urls import open_hot_store
from core.events import SAMPLES_TOPIC
from core.model import Tier
from core.ports import AppendResult, Event, EventLog, EventLogConsumer, HotStore, LogRecord, RebalanceListener
from core.read_models import HOT_READ_MODEL, VERSIONED_GROUPS, activate_version, versioned_group
from projectors.rollups import RollupProjector
from projectors.series_index import SeriesIndexProjector


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayProgress:
    """Events of the samples topic read by the rollups replay out of those in the log."""

    events_done: int
    events_total: int
    samples_applied: int
    caught_up: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    version: int
    store_url: str
    events: int
    events_skipped: int  # appended before --since
    samples_applied: int
    seconds: float
    activated: bool


class _FilteringConsumer:
    """A consumer that drops records appended before `since_ms` and counts what it read.

    Dropped records still advance the position: when the projector has committed everything
    it kept, `close()` commits past a dropped tail, so the next member of the group (a live
    projector after the switch) does not read those records again.
    """

    def __init__(self, inner: EventLogConsumer, since_ms: int | None) -> None:
        self._inner = inner
        self._since_ms = since_ms
        self.read_through: dict[int, int] = {}
        self.committed_through: dict[int, int] = {}
        self.records = 0
        self.skipped = 0

    @property
    def assigned(self) -> frozenset[int]:
        return self._inner.assigned

    async def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        records = await self._inner.poll(max_records, timeout_s)
        for record in records:
            self.read_through[record.partition] = record.offset + 1
        self.records += len(records)
        if self._since_ms is None:
            return records
        kept = [r for r in records if r.event.time_ms >= self._since_ms]
        self.skipped += len(records) - len(kept)
        return kept

    async def commit(self, next_offsets: Mapping[int, int]) -> None:
        await self._inner.commit(next_offsets)
        self.committed_through.update(next_offsets)

    async def committed(self) -> dict[int, int]:
        return await self._inner.committed()

    async def lag(self) -> dict[int, int]:
        return await self._inner.lag()

    async def close(self) -> None:
        # Called by the projector after its final flush and commit: every position past the
        # last commit holds only dropped records.
        tail = {p: o for p, o in self.read_through.items() if o > self.committed_through.get(p, 0)}
        if tail and self._since_ms is not None:
            with contextlib.suppress(Exception):
                await self._inner.commit(tail)
        await self._inner.close()


class _ReplayLog:
    """The event log as the replay's projectors see it: consumers filtered and observed."""

    def __init__(self, inner: EventLog, since_ms: int | None) -> None:
        self._inner = inner
        self._since_ms = since_ms
        self.consumers: dict[str, _FilteringConsumer] = {}

    @property
    def dedups_on_append(self) -> bool:
        return self._inner.dedups_on_append

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        return await self._inner.append(topic, events)

    async def ensure_topic(self, topic: str, partitions: int) -> int:
        return await self._inner.ensure_topic(topic, partitions)

    async def partitions(self, topic: str) -> int:
        return await self._inner.partitions(topic)

    async def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[LogRecord]:
        return await self._inner.read(topic, partition, offset, max_records)

    async def end_offset(self, topic: str, partition: int) -> int:
        return await self._inner.end_offset(topic, partition)

    def consumer(
        self,
        group: str,
        topic: str,
        *,
        listener: RebalanceListener | None = None,
        session_timeout_ms: int | None = None,
    ) -> EventLogConsumer:
        inner = self._inner.consumer(group, topic, listener=listener, session_timeout_ms=session_timeout_ms)
        consumer = _FilteringConsumer(inner, self._since_ms)
        previous = self.consumers.get(group)
        if previous is not None:  # a projector restarted its consumer: keep the counts
            consumer.records, consumer.skipped = previous.records, previous.skipped
        self.consumers[group] = consumer
        return consumer


async def replay_hot_model(
    events: EventLog,
    *,
    version: int,
    store_url: str,
    tiers: Sequence[Tier],
    clock_ms: Callable[[], int],
    since_ms: int | None = None,
    flush_interval_ms: int = 500,
    retention_check_interval_ms: int = 600_000,
    applied_event_memory_ms: int = 7 * 86_400_000,
    max_lag_events: int = 0,
    check_interval_s: float = 0.2,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    activate: bool = True,
    store: HotStore | None = None,
) -> ReplayResult:
    """Build `version` of the hot read model at `store_url` and (unless `activate` is False)
    activate it once caught up: both projectors have read up to where the log ended at the
    previous check, with at most `max_lag_events` appended since."""
    started = time.perf_counter()
    own_store = store is None
    target = store if store is not None else open_hot_store(store_url, tiers=tiers)
    if own_store:
        await target.start()
    log = _ReplayLog(events, since_ms)
    rollups = RollupProjector(
        log=log,
        store=target,
        tiers=tiers,
        flush_interval_ms=flush_interval_ms,
        retention_check_interval_ms=retention_check_interval_ms,
        applied_event_memory_ms=applied_event_memory_ms,
        clock_ms=clock_ms,
        group=versioned_group("rollups", version),
    )
    index = SeriesIndexProjector(
        log=log, index=target, flush_interval_ms=flush_interval_ms, group=versioned_group("series-index", version)
    )
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(rollups.run(stop), name="replay-rollups"),
        asyncio.create_task(index.run(stop), name="replay-series-index"),
    ]
    partitions = await events.partitions(SAMPLES_TOPIC)
    try:
        previous_end: dict[int, int] | None = None
        while True:
            failed = [t for t in tasks if t.done()]
            if failed:
                await failed[0]  # raises what ended it
                raise RuntimeError(f"replay projector {failed[0].get_name()} stopped early")
            end = {p: await events.end_offset(SAMPLES_TOPIC, p) for p in range(partitions)}
            groups = [log.consumers.get(group) for group in _groups(version)]
            caught_up = previous_end is not None and all(
                c is not None and all(c.read_through.get(p, 0) >= previous_end[p] for p in range(partitions))
                for c in groups
            )
            if caught_up:
                behind = sum(
                    end[p] - min(c.read_through.get(p, 0) for c in groups if c is not None) for p in range(partitions)
                )
                caught_up = behind <= max_lag_events
            main = groups[0]
            done = sum(main.read_through.values()) if main is not None else 0
            if on_progress is not None:
                on_progress(
                    ReplayProgress(
                        events_done=done,
                        events_total=max(done, sum(end.values())),
                        samples_applied=rollups.samples_applied,
                        caught_up=caught_up,
                    )
                )
            if caught_up:
                break
            previous_end = end
            await asyncio.sleep(check_interval_s)
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        if own_store:
            await target.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    if activate:
        await activate_version(events, model=HOT_READ_MODEL, version=version, store_url=store_url, now_ms=clock_ms())
    main = log.consumers[versioned_group("rollups", version)]
    return ReplayResult(
        version=version,
        store_url=store_url,
        events=main.records,
        events_skipped=main.skipped,
        samples_applied=rollups.samples_applied,
        seconds=time.perf_counter() - started,
        activated=activate,
    )


def _groups(version: int) -> list[str]:
    return [versioned_group(group, version) for group in VERSIONED_GROUPS]
