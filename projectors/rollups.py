"""The rollup projector: accepted samples -> points in every tier, stored as chunks.

Exactly-once effect: every chunk item stores the last samples-topic offset applied to it
(one series lives in one partition, so one offset suffices). Samples at or below it are
skipped, so re-delivery after a crash or a replay never double-counts. Duplicate event ids
(a producer retry appended twice) are dropped through the projector's applied-event memory.
Order of a flush: chunk writes (durable) -> applied event ids -> consumer offsets.

Rebalances (Kafka): before partitions move, the projector flushes and commits everything
buffered, so their next owner resumes exactly at the commit; afterwards it drops the open
chunks of partitions it lost (their next owner moves them on) and never buffers or commits
records of a partition it does not own. See docs/decisions/0005-kafka-event-log.md. That
loop (poll, ownership, quarantine of undecodable records, commit, rebalances) is the shared
`core.consumer.ConsumerRunner`; this class is its handler.

Between flushes, samples wait in a columnar buffer; at a flush each tier's new points are
computed for the whole buffer at once and merged into the open chunks kept decoded in
memory, so a chunk is re-encoded at most once per flush.

Per-tier cadence: every flush merges the buffer into every tier's open chunks, but a tier
writes its changed chunks only when its own minimum write interval has passed
(`tier_flush_interval_ms`; by default every flush). Which events and offsets every tier has
written is tracked by `Settlement`: event ids are recorded and offsets committed only for
what all tiers hold durably, and a rebalance or a stop writes every tier first. Dirty chunks
are never evicted (see docs/decisions/0004-projector-exactly-once.md).

Memory: the open-chunk cache holds at most `max_cached_points` points. A chunk is *closed*
once its series has points `closed_chunk_grace_ms` past the chunk's end; a closed chunk is
dropped as soon as it is written (late data re-loads it from the store: correct, slower).
Over the budget, clean chunks go least recently touched first, and if dirty ones still hold
too much, every tier writes so that they can go too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from contracts.argus.events.v1 import events_pb2
from core import points as pts
from core.chunks import decode_chunk, encode_chunks
from core.consumer import ConsumerRunner, Delivery, RunnerStatus
from core.events import SAMPLES_TOPIC
from core.model import Tier
from core.ports import EventLog, EventLogConsumer, HotStore, LogRecord, StoredChunk
from core.samples import FamilyColumns, SampleBuffer, decode_sample_batch

log = logging.getLogger(__name__)

ItemKey = tuple[int, int]  # (series id, chunk start)
_Run = tuple[ItemKey, pts.Points, bool]  # an item's points and whether its chunk is closed


@dataclass(slots=True)
class OpenChunk:
    points: pts.Points
    kind: int
    partition: int
    applied_offset: int
    last_flush: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FlushStats:
    samples: int
    chunks_written: int
    seconds: float
    tiers_written: tuple[str, ...] = ()


_IDLE = FlushStats(samples=0, chunks_written=0, seconds=0.0)


@dataclass(slots=True)
class _Generation:
    tick: int
    event_ids: list[bytes] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)


class Settlement:
    """Which read events every tier holds durably: pure bookkeeping, no I/O.

    Events read between two flush ticks form a generation (their ids and, per partition, the
    offset after the last one read). A tier *holds* tick k once it has nothing unwritten that
    it merged at or before tick k (it wrote all its changed chunks then, or had none). A
    generation held by every tier is settled: only then may its event ids be recorded as
    applied and its offsets committed. Recording an id earlier would make a re-delivery of
    it look like a duplicate to a tier that never wrote it; committing earlier would skip
    records a tier has not written. Ids of unsettled generations still drop duplicates
    (`seen`), since every tier's open chunks already contain them.
    """

    def __init__(self, tiers: Iterable[str]) -> None:
        self._tick = 0
        self._open = _Generation(tick=1)
        self._unsettled: set[bytes] = set()
        self._generations: deque[_Generation] = deque()
        self._held = dict.fromkeys(tiers, 0)

    @property
    def tick(self) -> int:
        """The last closed tick."""
        return self._tick

    @property
    def pending(self) -> bool:
        """Anything read that is not settled yet."""
        return bool(self._generations or self._open.next_offsets or self._open.event_ids)

    def seen(self, event_id: bytes) -> bool:
        """Read before and not settled yet (a settled id is in the projector state)."""
        return event_id in self._unsettled

    def read(self, partition: int, offset: int, event_id: bytes | None) -> None:
        """A record was read; `event_id` when it is applied (None when it was dropped)."""
        self._open.next_offsets[partition] = offset + 1
        if event_id is not None:
            self._open.event_ids.append(event_id)
            self._unsettled.add(event_id)

    def close_tick(self) -> int:
        """End the current tick (everything read so far is merged into every tier's open
        chunks); return its number for `hold`."""
        self._tick += 1
        if self._open.next_offsets or self._open.event_ids:
            self._generations.append(self._open)
        self._open = _Generation(tick=self._tick + 1)
        return self._tick

    def hold(self, tier: str, tick: int) -> None:
        """`tier` has durably written everything merged into it up to `tick`."""
        self._held[tier] = max(self._held[tier], tick)

    def held(self, tier: str) -> int:
        return self._held[tier]

    def settle(self) -> tuple[list[bytes], dict[int, int]]:
        """Take the generations every tier holds: (event ids to record, offsets to commit)."""
        through = min(self._held.values(), default=self._tick)
        ids: list[bytes] = []
        offsets: dict[int, int] = {}
        while self._generations and self._generations[0].tick <= through:
            generation = self._generations.popleft()
            ids.extend(generation.event_ids)
            offsets.update(generation.next_offsets)  # later generations read further
        self._unsettled.difference_update(ids)
        return ids, offsets

    def partitions(self) -> set[int]:
        """Partitions with something read and not settled."""
        out = set(self._open.next_offsets)
        for generation in self._generations:
            out.update(generation.next_offsets)
        return out


class RollupProjector:
    """Consumer group `rollups` of the samples topic -> the tier chunks of the hot store."""

    name = "rollups"

    def __init__(
        self,
        *,
        log: EventLog,
        store: HotStore,
        tiers: Sequence[Tier],
        flush_interval_ms: int = 500,
        max_buffer_samples: int = 2_000_000,
        poll_records: int = 512,
        max_cached_points: int = 3_000_000,
        closed_chunk_grace_ms: int = 300_000,
        retention_check_interval_ms: int = 600_000,
        applied_event_memory_ms: int = 7 * 86_400_000,
        clock_ms: Callable[[], int],
        group: str = "rollups",
        tier_flush_interval_ms: Mapping[str, int] | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._store = store
        self._tiers = tuple(tiers)
        finest = min(t.chunk_span_ms for t in self._tiers)
        if any(t.chunk_span_ms % finest for t in self._tiers):
            raise ValueError("every tier's chunk span must be a multiple of the finest tier's chunk span")
        # A tier writes its changed chunks at most this often (a flush tick is the floor).
        self._tier_interval_s = tier_intervals_s(self._tiers, flush_interval_ms, tier_flush_interval_ms or {})
        self._monotonic = monotonic_s
        self._max_buffer_samples = max_buffer_samples
        if max_cached_points < 0 or closed_chunk_grace_ms < 0:
            raise ValueError(
                f"max_cached_points and closed_chunk_grace_ms must be >= 0, got {max_cached_points}"
                f" and {closed_chunk_grace_ms}"
            )
        self._max_cached_points = max_cached_points
        self._closed_grace_ms = closed_chunk_grace_ms
        self._retention_check_s = retention_check_interval_ms / 1000
        self._applied_memory_ms = applied_event_memory_ms
        self._clock_ms = clock_ms
        self._group = group
        self._reset_state()
        self.samples_applied = 0
        self._last_flush = _IDLE
        self._last_retention = -self._retention_check_s
        # The loop (poll, ownership, quarantine, commit, rebalances) is the shared runner's;
        # this class is its handler.
        self._runner: ConsumerRunner[events_pb2.SampleBatchAccepted] = ConsumerRunner(
            name=self.name,
            log=log,
            topic=SAMPLES_TOPIC,
            group=group,
            handler=self,
            clock_ms=clock_ms,
            flush_interval_ms=flush_interval_ms,
            poll_records=poll_records,
            monotonic_s=monotonic_s,
        )

    def _reset_state(self) -> None:
        self._buffer = SampleBuffer()
        self._cache: dict[str, dict[ItemKey, OpenChunk]] = {t.name: {} for t in self._tiers}
        # Chunks changed since the last flush, so a flush never walks the whole cache.
        self._dirty: dict[str, set[ItemKey]] = {t.name: set() for t in self._tiers}
        # Closed chunks (their series moved on), dropped once written.
        self._closed: dict[str, set[ItemKey]] = {t.name: set() for t in self._tiers}
        self._cached_points = 0  # over every tier's cache, kept current by _put / _drop
        self._settlement = Settlement(t.name for t in self._tiers)
        self._last_write_s = dict.fromkeys(self._tier_interval_s, self._monotonic())
        self._flushes = 0

    @property
    def ready(self) -> asyncio.Event:
        return self._runner.ready

    @property
    def _consumer(self) -> EventLogConsumer | None:
        return self._runner.consumer

    @_consumer.setter
    def _consumer(self, consumer: EventLogConsumer | None) -> None:
        self._runner.consumer = consumer

    def status(self) -> RunnerStatus:
        return self._runner.status()

    def tier_written_at(self, tier: str) -> float:
        """The monotonic time (`monotonic_s`) of the tier's last write to the store (its
        start-up time before any): benchmarks measure freshness from it."""
        return self._last_write_s[tier]

    async def run(self, stop: asyncio.Event) -> None:
        """Project until `stop` is set, then flush what is buffered (core.consumer)."""
        await self._runner.run(stop)

    async def catch_up(self, *, idle_timeout_s: float = 0.05, force: bool = True) -> int:
        """Project until the log has nothing new, then flush; return the samples applied.

        For replays and tests: the same path as `run`, driven to a definite end. With
        `force=False` the last flush is a tick like `run`'s: tiers whose write interval has
        not passed keep their changes in memory (and their events unsettled).
        """
        before = self.samples_applied
        await self._runner.catch_up(idle_timeout_s=idle_timeout_s, force=force)
        return self.samples_applied - before

    async def close(self) -> None:
        await self._runner.close()

    async def _buffer_records(self, records: Sequence[LogRecord]) -> None:
        await self._runner.take(records)

    async def flush(self, *, force: bool = True) -> FlushStats:
        """Merge the buffer into every tier; write the changed chunks of every tier (`force`)
        or of the tiers whose write interval has passed; then record the event ids and commit
        the offsets that every tier now holds durably."""
        self._last_flush = _IDLE
        await self._runner.flush(force=force)
        return self._last_flush

    # -- ConsumerHandler (called by the runner, under its lock) -------------------------

    def decode(self, record: LogRecord) -> events_pb2.SampleBatchAccepted:
        return decode_sample_batch(record)

    async def apply(self, deliveries: Sequence[Delivery[events_pb2.SampleBatchAccepted]]) -> None:
        if not deliveries:
            return
        fresh = await self._store.filter_new_events(self.name, [d.record.event.event_id for d in deliveries])
        for delivery in deliveries:
            record = delivery.record
            event_id = record.event.event_id
            if event_id not in fresh or self._settlement.seen(event_id):
                log.debug("rollups: dropping duplicate event %s", event_id.hex()[:16])
                self._settlement.read(record.partition, record.offset, None)
                continue
            self._buffer.add(delivery.value, record.partition, record.offset)
            self._settlement.read(record.partition, record.offset, event_id)

    def skip(self, partition: int, offset: int) -> None:
        self._settlement.read(partition, offset, None)

    def buffer_full(self) -> bool:
        return self._buffer.samples >= self._max_buffer_samples

    def reset(self) -> None:
        self._reset_state()

    async def reassigned(self, partitions: frozenset[int]) -> None:
        """Forget what belongs to partitions no longer owned: another member moves them on,
        so open chunks of them would be stale if they came back."""
        unsettled = self._settlement.partitions()
        if any(p not in partitions for p in (*self._buffer.partitions.values(), *unsettled)):
            self._reset_state()  # only after a failed flush; positions restart at the commits
            return
        for tier, cache in self._cache.items():
            for key in [k for k, c in cache.items() if c.partition not in partitions]:
                self._drop(tier, key)
                self._dirty[tier].discard(key)

    async def housekeeping(self) -> None:
        if self._monotonic() - self._last_retention >= self._retention_check_s:
            await self.apply_retention()
            self._last_retention = self._monotonic()

    async def settle(self, *, force: bool) -> dict[int, int]:
        """One flush tick; returns the offsets every tier now holds durably (the runner
        commits them, after the event ids are recorded here)."""
        stats, offsets = await self._flush(force=force)
        self._last_flush = stats
        return offsets

    async def _flush(self, *, force: bool) -> tuple[FlushStats, dict[int, int]]:
        started = time.perf_counter()
        if not self._buffer.samples and not self._settlement.pending and not any(self._dirty.values()):
            return _IDLE, {}  # idle: touch nothing
        samples = self._buffer.samples
        kinds, partitions = self._buffer.kinds, self._buffer.partitions
        columns = self._buffer.drain()
        self._flushes += 1
        tick = self._settlement.close_tick()
        now_ms = self._clock_ms()
        finest = min(t.chunk_span_ms for t in self._tiers)
        for family in columns:
            base = _BaseItems.of(family.key, family.ts, finest)
            previous: tuple[np.ndarray, pts.Points] | None = None
            for tier in self._tiers:
                keys, inverse = base.coarsen(tier.chunk_span_ms)
                previous = await self._apply(tier, family, keys, inverse, kinds, partitions, now_ms, previous)
        tiers_written: list[str] = []
        now_s = self._monotonic()
        due = [t for t in self._tiers if force or now_s - self._last_write_s[t.name] >= self._tier_interval_s[t.name]]
        written = await self._write_tiers(due, now_s, tiers_written)
        self._evict_clean()
        if self._cached_points > self._max_cached_points:
            # Dirty chunks hold the rest: write every tier early so that they can go too.
            written += await self._write_tiers(self._tiers, now_s, tiers_written)
            self._evict_clean()
        for tier in self._tiers:
            if not self._dirty[tier.name]:
                self._settlement.hold(tier.name, tick)
        # Only what every tier holds durably: ids first, offsets last (decision 0004); the
        # runner commits the offsets.
        event_ids, offsets = self._settlement.settle()
        if event_ids:
            await self._store.record_events(self.name, event_ids, now_ms)
        self.samples_applied += samples
        stats = FlushStats(
            samples=samples,
            chunks_written=written,
            seconds=time.perf_counter() - started,
            tiers_written=tuple(tiers_written),
        )
        if samples or written:
            log.debug(
                "rollups: flushed %d samples, wrote %d chunks of tiers %s in %.3f s",
                samples,
                written,
                ",".join(tiers_written) or "-",
                stats.seconds,
            )
        return stats, offsets

    async def _apply(
        self,
        tier: Tier,
        family: FamilyColumns,
        keys: list[ItemKey],
        inverse: np.ndarray,
        kinds: dict[int, int],
        partitions: dict[int, int],
        now_ms: int,
        previous: tuple[np.ndarray, pts.Points] | None,
    ) -> tuple[np.ndarray, pts.Points] | None:
        """Merge this family's samples into `tier`; return (mask, new points) for the next tier."""
        cache = self._cache[tier.name]
        span = tier.chunk_span_ms
        keep = family.ts >= now_ms - tier.retention_ms
        await self._load(tier, [k for k in keys if k not in cache])

        applied = np.array([cache[k].applied_offset if k in cache else -1 for k in keys], dtype=np.int64)
        keep &= family.offset > applied[inverse]
        if not keep.any():
            return None
        # Every tier is the merge of the tier below: when the same samples feed both,
        # roll the finer tier's new points up instead of re-reading the samples.
        if previous is not None and np.array_equal(previous[0], keep):
            new = pts.rollup(previous[1], tier.step_ms)
        else:
            new = family.to_points(None if keep.all() else keep, tier.step_ms)
        latest = np.full(len(keys), -1, dtype=np.int64)
        np.maximum.at(latest, inverse[keep], family.offset[keep])

        # Items with a new sample, and the latest offset applied to each.
        top_by_key = {k: top for k, top in zip(keys, latest.tolist(), strict=True) if top >= 0}
        merged = pts.merge(new, *(cache[k].points for k in top_by_key if k in cache))
        runs, closed_before = _split_items(merged, span, self._closed_grace_ms)
        closed, dirty = self._closed[tier.name], self._dirty[tier.name]
        closed.update(k for k in closed_before if k in cache)
        for key, part, is_closed in runs:
            chunk = cache.get(key)
            top = top_by_key[key]
            if chunk is None:
                sid = key[0]
                self._put(
                    tier.name,
                    key,
                    OpenChunk(
                        points=part,
                        kind=kinds[sid],
                        partition=partitions[sid],
                        applied_offset=top,
                        last_flush=self._flushes,
                    ),
                )
            else:
                self._cached_points += len(part) - len(chunk.points)
                chunk.points = part
                chunk.applied_offset = max(chunk.applied_offset, top)
                chunk.last_flush = self._flushes
            dirty.add(key)
            if is_closed:
                closed.add(key)
        return keep, new

    def _put(self, tier: str, key: ItemKey, chunk: OpenChunk) -> None:
        cache = self._cache[tier]
        old = cache.get(key)
        self._cached_points += len(chunk.points) - (len(old.points) if old is not None else 0)
        cache[key] = chunk

    def _drop(self, tier: str, key: ItemKey) -> None:
        chunk = self._cache[tier].pop(key, None)
        if chunk is not None:
            self._cached_points -= len(chunk.points)

    async def _load(self, tier: Tier, keys: list[ItemKey]) -> None:
        """Bring stored chunks into the open-chunk cache."""
        if not keys:
            return
        for key, stored in (await self._store.get_chunks(tier.name, keys)).items():
            decoded = decode_chunk(stored.data, key=stored.series_id)
            self._put(
                tier.name,
                key,
                OpenChunk(
                    points=decoded.points,
                    kind=int(decoded.kind),
                    partition=stored.partition,
                    applied_offset=stored.applied_offset,
                    last_flush=self._flushes,
                ),
            )

    async def _write_tiers(self, tiers: Iterable[Tier], now_s: float, names: list[str]) -> int:
        """Write the dirty chunks of `tiers`; append the names of those written to `names`."""
        written = 0
        for tier in tiers:
            if self._dirty[tier.name]:
                written += await self._write_dirty(tier)
                self._last_write_s[tier.name] = now_s
                names.append(tier.name)
        return written

    async def _write_dirty(self, tier: Tier) -> int:
        cache = self._cache[tier.name]
        dirty = self._dirty[tier.name]
        keys = list(dirty)
        open_chunks = [cache[key] for key in keys]
        # One batched call: encoding chunk by chunk was most of the projector's CPU.
        datas = encode_chunks(
            [(c.points, c.kind, tier.step_ms, start) for c, (_, start) in zip(open_chunks, keys, strict=True)]
        )
        chunks = [
            StoredChunk(
                series_id=sid,
                chunk_start_ms=start,
                data=data,
                partition=chunk.partition,
                applied_offset=chunk.applied_offset,
            )
            for (sid, start), chunk, data in zip(keys, open_chunks, datas, strict=True)
        ]
        await self._store.write_chunks(tier.name, chunks)
        dirty.clear()
        return len(chunks)

    def _evict_clean(self) -> None:
        """Drop clean chunks that are closed; every 20 flushes, also those untouched for 120
        flushes; then, while over the point budget, the least recently touched down to 3/4
        of it. A dirty chunk holds merged samples its tier has not written: never dropped."""
        for tier, closed in self._closed.items():
            dirty = self._dirty[tier]
            for key in [k for k in closed if k not in dirty]:
                self._drop(tier, key)
                closed.discard(key)
        if self._flushes % 20 == 0:
            for tier, cache in self._cache.items():
                dirty = self._dirty[tier]
                for key in [k for k, c in cache.items() if self._flushes - c.last_flush > 120 and k not in dirty]:
                    self._drop(tier, key)
        if self._cached_points <= self._max_cached_points:
            return
        clean = [
            (chunk.last_flush, tier, key)
            for tier, cache in self._cache.items()
            for key, chunk in cache.items()
            if key not in self._dirty[tier]
        ]
        clean.sort(key=lambda c: c[0])
        target = self._max_cached_points * 3 // 4
        for _, tier, key in clean:
            if self._cached_points <= target:
                break
            self._drop(tier, key)

    async def apply_retention(self) -> None:
        now_ms = self._clock_ms()
        for tier in self._tiers:
            removed = await self._store.delete_before(tier.name, now_ms - tier.retention_ms, tier.chunk_span_ms)
            if removed:
                log.info("rollups: retention removed %d chunks of tier %s", removed, tier.name)
            for key in [k for k in self._cache[tier.name] if k[1] + tier.chunk_span_ms <= now_ms - tier.retention_ms]:
                self._drop(tier.name, key)
                self._dirty[tier.name].discard(key)
        await self._store.forget_events_before(self.name, now_ms - self._applied_memory_ms)


def tier_intervals_s(
    tiers: Sequence[Tier], flush_interval_ms: int, tier_flush_interval_ms: Mapping[str, int]
) -> dict[str, float]:
    """Each tier's minimum write interval in seconds: its entry of `tier_flush_interval_ms`,
    else `flush_interval_ms`. 0 for a tier that writes at every flush tick (an interval not
    above the tick's), so the default writes every tier at every flush, buffer-full ones too."""
    names = {t.name for t in tiers}
    for name, ms in tier_flush_interval_ms.items():
        if name not in names:
            raise ValueError(
                f"tier_flush_interval_ms: unknown tier {name!r} (tiers: {', '.join(t.name for t in tiers)})"
            )
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise ValueError(f"tier_flush_interval_ms.{name} must be a non-negative integer (ms), got {ms!r}")
    out = {}
    for t in tiers:
        ms = tier_flush_interval_ms.get(t.name, flush_interval_ms)
        out[t.name] = ms / 1000 if ms > flush_interval_ms else 0.0
    return out


@dataclass(frozen=True, slots=True)
class _BaseItems:
    """Samples grouped into items of the finest chunk span, sorted once.

    Every coarser span is a multiple of the finest, so a coarser tier's items are groups
    of these base items: coarsening works on the (few) items, not the samples.
    """

    sids: np.ndarray  # distinct series ids
    item_sid: np.ndarray  # per base item: index into sids
    item_chunk: np.ndarray  # per base item: chunk number at the finest span
    inverse: np.ndarray  # per sample: base item index
    span_ms: int

    @staticmethod
    def of(key: np.ndarray, ts: np.ndarray, span_ms: int) -> _BaseItems:
        sids, sid_index = np.unique(key, return_inverse=True)
        chunk = ts // span_ms
        low = int(chunk.min())
        width = int(chunk.max()) - low + 1
        codes, inverse = _dense_unique(sid_index.astype(np.int64) * width + (chunk - low), len(sids) * width)
        return _BaseItems(
            sids=sids,
            item_sid=codes // width,
            item_chunk=codes % width + low,
            inverse=inverse,
            span_ms=span_ms,
        )

    def coarsen(self, span_ms: int) -> tuple[list[ItemKey], np.ndarray]:
        """Items at `span_ms` (a multiple of the base span) and each sample's item index."""
        factor = span_ms // self.span_ms
        chunk = self.item_chunk // factor
        low = int(chunk.min())
        width = int(chunk.max()) - low + 1
        codes, item_inverse = np.unique(self.item_sid * width + (chunk - low), return_inverse=True)
        sids = self.sids[codes // width]
        starts = (codes % width + low) * span_ms
        keys = list(zip(sids.tolist(), starts.tolist(), strict=True))
        return keys, item_inverse.reshape(-1)[self.inverse]


def _dense_unique(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(codes, return_inverse=True)` for codes in [0, size): a presence table and
    its running count, O(n + size) instead of a sort, while the table is small for n."""
    if size > 4 * len(codes) + 1024:
        uniq, inverse = np.unique(codes, return_inverse=True)
        return uniq, inverse.reshape(-1)
    seen = np.zeros(size, dtype=np.bool_)
    seen[codes] = True
    rank = np.cumsum(seen, dtype=np.int64) - 1
    return np.flatnonzero(seen), rank[codes]


def _split_items(points: pts.Points, span_ms: int, grace_ms: int) -> tuple[list[_Run], list[ItemKey]]:
    """Split points sorted by (key, ts) into runs of one (series, chunk start), each with
    whether it is closed; and the keys of the chunks just before each series' newest run
    that are closed (they may sit in the cache from an earlier flush).

    A chunk is closed when its series has a point `grace_ms` or more past the chunk's end.
    When closed runs are there too, open runs are copied out of `points`: the cache keeps
    open chunks for long, and views would keep the whole merged array alive.
    """
    if len(points) == 0:
        return [], []
    starts = points.ts - points.ts % span_ms
    change = np.flatnonzero((np.diff(points.key) != 0) | (np.diff(starts) != 0)) + 1
    lo = np.concatenate(([0], change))
    hi = np.concatenate((change, [len(points)]))
    sids, run_starts = points.key[lo], starts[lo]
    # Runs are sorted by series: the last run of a series holds its newest point.
    last = np.flatnonzero(np.append(sids[1:] != sids[:-1], True))
    newest = points.ts[hi[last] - 1]
    closed = run_starts + span_ms + grace_ms <= np.repeat(newest, np.diff(last, prepend=-1))
    before = run_starts[last] + grace_ms <= newest
    closed_before = list(zip(sids[last][before].tolist(), (run_starts[last][before] - span_ms).tolist(), strict=True))
    source = [points] * len(lo)
    if closed.any() and not closed.all():
        open_ = ~closed
        compact = points.take(np.repeat(open_, hi - lo))
        lengths = np.where(open_, hi - lo, 0)
        lo = np.where(open_, np.cumsum(lengths) - lengths, lo)
        hi = np.where(open_, lo + lengths, hi)
        source = [compact if o else points for o in open_.tolist()]
    keys = zip(sids.tolist(), run_starts.tolist(), strict=True)
    runs = [
        (key, part.take(slice(a, b)), c)
        for key, part, a, b, c in zip(keys, source, lo.tolist(), hi.tolist(), closed.tolist(), strict=True)
    ]
    return runs, closed_before
