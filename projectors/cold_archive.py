"""The cold-archive projector: closed periods of every tier, from the hot store to Parquet.

It exports the rollup read model (the hot store's tier chunks), not the event log: the
chunks already hold every tier's points, exactly-once, so the archive is the same data the
hot tier answered with, and nothing is aggregated twice (docs/decisions/0007-cold-store.md).

A tier's **period** is one UTC day, or its chunk span when that is longer (5m: 2 days, 1h:
30 days, 1d: 365 days), aligned to the epoch like the chunks. A period is archived once it
has closed and `grace_ms` has passed, while all its chunks are still in the hot store. Each
pass:

1. for every tenant and tier, the closed periods still whole in the hot store that the cold
   store has no marker for are written (rows sorted by metric, series, time), then marked
   with a digest of the chunks they came from (keys + applied offsets);
2. a marked period whose end nears the hot retention edge (within `final_check_ms`) is
   checked once more: if late data changed its chunks (another digest), it is written again;
   either way it is then marked final.

It follows the hot store, not the event log, so it runs on `core.consumer.run_periodically`
(a pass every `interval_ms`, a failed pass retried at the next) rather than the consumer runner.

Restart-safe and idempotent: the markers live in the cold store, written after the object;
a crash between the two re-archives the period, which writes the same object again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np

from core.chunks import decode_chunks
from core.consumer import run_periodically
from core.model import DAY_MS, HOUR_MS, Tier
from core.ports import ArchivedPeriod, ChunkStore, ColdRows, ColdStore, SeriesIndex, SeriesRecord, StoredChunk

log = logging.getLogger(__name__)

SEEN_SLACK_MS = HOUR_MS
"""The series index widens first/last seen lazily (and may lag the rollups): a series counts
for a period if its seen range comes within this much of it."""


def cold_period_ms(tier: Tier) -> int:
    """Length of one archived period of `tier`: a day, or the chunk span when longer."""
    span = tier.chunk_span_ms
    if span <= DAY_MS:
        if DAY_MS % span:
            raise ValueError(f"tier {tier.name}: a chunk span under a day must divide the day")
        return DAY_MS
    if span % DAY_MS:
        raise ValueError(f"tier {tier.name}: a chunk span over a day must be whole days")
    return span


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveStats:
    periods_written: int = 0
    periods_checked: int = 0
    rows_written: int = 0


class ColdArchiveProjector:
    """Exports closed periods of the hot store's tiers to the cold store."""

    name = "cold-archive"

    def __init__(
        self,
        *,
        chunks: ChunkStore,
        index: SeriesIndex,
        cold: ColdStore,
        tiers: Sequence[Tier],
        clock_ms: Callable[[], int],
        interval_ms: int = 10 * 60_000,
        grace_ms: int = HOUR_MS,
        final_check_ms: int = DAY_MS,
        batch_points: int = 2_000_000,
    ) -> None:
        self._chunks = chunks
        self._index = index
        self._cold = cold
        self._tiers = tuple(tiers)
        self._periods = {t.name: cold_period_ms(t) for t in self._tiers}
        self._clock_ms = clock_ms
        self._interval_s = interval_ms / 1000
        self._grace_ms = grace_ms
        self._final_check_ms = final_check_ms
        self._batch_points = batch_points
        self.ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Archive every `interval_ms` until `stop` is set (a failed pass retries at the next)."""
        self.ready.set()
        await run_periodically(stop, self._interval_s, self._pass, name=self.name)

    async def _pass(self) -> None:
        stats = await self.archive_once()
        if stats.periods_written:
            log.info(
                "cold-archive: wrote %d periods (%d rows), checked %d",
                stats.periods_written,
                stats.rows_written,
                stats.periods_checked,
            )

    async def archive_once(self) -> ArchiveStats:
        """One pass over every tenant and tier (see the module docstring)."""
        now = self._clock_ms()
        by_tenant: dict[str, list[SeriesRecord]] = {}
        for record in await self._index.tenant_series(None):
            by_tenant.setdefault(record.tenant, []).append(record)
        written = checked = rows = 0
        for tier in self._tiers:
            for tenant in sorted(by_tenant):
                series = by_tenant[tenant]
                markers = {p.start_ms: p for p in await self._cold.archived(tenant, tier.name)}
                for start in self._candidates(tier, series, now):
                    end = start + self._periods[tier.name]
                    last_call = end + tier.retention_ms - self._final_check_ms <= now
                    known = markers.get(start)
                    if known is not None and (known.final or not last_call):
                        continue
                    members = _members(series, start, end)
                    if known is not None:
                        checked += 1
                        if await self._digest(tier, members, start, end) == known.digest:
                            await self._cold.record_archived([_with_final(known)])
                            continue
                        log.info("cold-archive: late data in tenant %s tier %s period %d", tenant, tier.name, start)
                    n, digest = await self._write(tenant, tier, members, start, end)
                    await self._cold.record_archived(
                        [
                            ArchivedPeriod(
                                tenant=tenant,
                                tier=tier.name,
                                start_ms=start,
                                end_ms=end,
                                rows=n,
                                digest=digest,
                                final=last_call,
                            )
                        ]
                    )
                    written += 1 if n else 0
                    rows += n
        return ArchiveStats(periods_written=written, periods_checked=checked, rows_written=rows)

    def _candidates(self, tier: Tier, series: Sequence[SeriesRecord], now: int) -> range:
        """Starts of the periods that have closed (+ grace) and are still whole in the hot
        store (its retention drops a chunk once it ends before now - retention), from the
        tenant's first data on."""
        period = self._periods[tier.name]
        span = tier.chunk_span_ms
        edge = now - tier.retention_ms
        first_whole = edge - span + 1  # the first chunk of a whole period ends after the edge
        first_data = min(r.first_seen_ms for r in series)
        lo = max(_ceil(first_whole, period), first_data - first_data % period)
        hi = (now - self._grace_ms) // period * period  # periods ending at or before this
        return range(lo, hi, period)

    async def _digest(self, tier: Tier, members: Sequence[SeriesRecord], start: int, end: int) -> str:
        h = hashlib.sha256()
        async for batch in self._chunk_batches(tier, members, start, end):
            h.update(_chunk_keys(batch))
        return h.hexdigest()

    async def _write(
        self, tenant: str, tier: Tier, members: Sequence[SeriesRecord], start: int, end: int
    ) -> tuple[int, str]:
        """Write the period's object (none when it has no chunks); return (rows, digest)."""
        h = hashlib.sha256()
        by_id = {r.series_id: r for r in members}
        batches = aiter(self._chunk_batches(tier, members, start, end))
        first: list[StoredChunk] = []
        async for batch in batches:  # skip to the first batch with chunks
            h.update(_chunk_keys(batch))
            if batch:
                first = batch
                break
        if not first:
            return 0, h.hexdigest()

        async def rest() -> AsyncIterator[list[StoredChunk]]:
            yield first
            async for batch in batches:
                h.update(_chunk_keys(batch))
                yield batch

        async def rows() -> AsyncIterator[ColdRows]:
            async for batch in rest():
                if not batch:
                    continue
                points = await asyncio.to_thread(
                    decode_chunks,
                    [c.data for c in batch],
                    np.array([c.series_id for c in batch], dtype=np.int64),
                    start_ms=start,
                    end_ms=end,
                )
                yield ColdRows(points=points, series=by_id)

        n = await self._cold.write_period(tenant, tier.name, start, end, rows())
        return n, h.hexdigest()

    async def _chunk_batches(
        self, tier: Tier, members: Sequence[SeriesRecord], start: int, end: int
    ) -> AsyncIterator[list[StoredChunk]]:
        """The period's chunks of `members` (sorted by metric, series id), in batches of about
        `batch_points` points, each sorted by (metric, series id, chunk start)."""
        per_series = max(1, (end - start) // tier.step_ms)
        step = max(1, self._batch_points // per_series)
        rank = {r.series_id: i for i, r in enumerate(members)}
        for lo in range(0, len(members), step):
            ids = [r.series_id for r in members[lo : lo + step]]
            stored = await self._chunks.read_range(tier.name, ids, start, end, tier.chunk_span_ms)
            batch = [c for c in stored if start <= c.chunk_start_ms < end and c.series_id in rank]
            batch.sort(key=lambda c: (rank[c.series_id], c.chunk_start_ms))
            yield batch


def _members(series: Sequence[SeriesRecord], start: int, end: int) -> list[SeriesRecord]:
    """Series that may have points in [start, end), sorted by (metric, series id)."""
    out = [r for r in series if r.first_seen_ms - SEEN_SLACK_MS < end and r.last_seen_ms + SEEN_SLACK_MS >= start]
    out.sort(key=lambda r: (r.metric, r.series_id))
    return out


def _chunk_keys(batch: Sequence[StoredChunk]) -> bytes:
    """What identifies a chunk's content for the digest: key, partition and applied offset."""
    return np.array(
        [(c.series_id, c.chunk_start_ms, c.partition, c.applied_offset) for c in batch], dtype=np.int64
    ).tobytes()


def _with_final(p: ArchivedPeriod) -> ArchivedPeriod:
    return dataclasses.replace(p, final=True)


def _ceil(x: int, period: int) -> int:
    return -(-x // period) * period
