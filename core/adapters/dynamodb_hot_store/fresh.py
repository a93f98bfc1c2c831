"""Fresh coarse tiers from finer ones at read time (docs/decisions/0058): pure, no I/O.

On DynamoDB every chunk write is billed by the started KB, so the open chunks of the coarse
tiers (1m and up) are written rarely (`tier_flush_interval_ms`, minutes), while the finest
tier is written at every flush. A read of a coarse tier over the last `fresh_s` seconds
therefore also reads the next finer tier (itself made fresh the same way, down to the
finest) and rolls it up: every tier is the merge of the tier below, so both are views of the
same samples.

The rule, per (series, bucket) in the fresh window: keep the stored point unless the
rolled-up finer point holds more samples (`count`), then take the rolled-up one. Points only
grow as samples merge in, so the one with more samples is the newer view; on a tie the stored
point is kept (it is the bytes the projector wrote). Nothing is ever added twice: a bucket is
one view or the other, never a sum. While the two disagree transiently (an eventually
consistent read, a crash between two tiers' writes), the answer is one tier's durable view,
never more than the samples it holds; both converge once the coarse tier writes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from core import points as pts
from core.chunks import decode_chunk, encode_chunks
from core.model import Tier
from core.ports import StoredChunk


def finer_tier(tiers: Sequence[Tier], tier: Tier) -> Tier | None:
    """The coarsest tier finer than `tier` whose step divides its step (None: the finest)."""
    finer = [t for t in tiers if t.step_ms < tier.step_ms and tier.step_ms % t.step_ms == 0]
    return max(finer, key=lambda t: t.step_ms) if finer else None


def fresh_bounds(tier: Tier, start_ms: int, end_ms: int, now_ms: int, window_ms: int) -> tuple[int, int] | None:
    """The whole buckets of `tier` to refresh from the finer tier for a read of
    [start_ms, end_ms): those from `now_ms - window_ms` on (None: the read ends before)."""
    lo = max(start_ms, now_ms - window_ms)
    if window_ms <= 0 or end_ms <= lo:
        return None
    step = tier.step_ms
    return lo - lo % step, -(-end_ms // step) * step


def stitch(
    tier: Tier, stored: Sequence[StoredChunk], finer: Sequence[StoredChunk], lo_ms: int, hi_ms: int
) -> list[StoredChunk]:
    """`stored` (chunks of `tier`) with the buckets of [lo_ms, hi_ms) (whole buckets of
    `tier`) replaced by the rolled-up `finer` chunks wherever those hold more samples; a
    series or chunk the coarse tier has not written yet comes from the finer tier alone."""
    parts: list[pts.Points] = []
    origin: dict[int, tuple[int, int, int]] = {}  # series -> (kind, partition, offset) of its finer chunks
    for c in finer:
        decoded = decode_chunk(c.data, key=c.series_id)
        p = decoded.points
        inside = (p.ts >= lo_ms) & (p.ts < hi_ms)
        if not inside.any():
            continue
        parts.append(p.take(inside))
        seen = origin.get(c.series_id)
        if seen is None or c.applied_offset > seen[2]:
            origin[c.series_id] = (int(decoded.kind), c.partition, c.applied_offset)
    if not parts:
        return list(stored)
    rolled = pts.rollup(pts.merge(*parts), tier.step_ms)
    span = tier.chunk_span_ms
    starts = rolled.ts - rolled.ts % span
    # Rows of one (series, chunk start) are contiguous: rolled is sorted by (series, ts).
    change = np.flatnonzero((np.diff(rolled.key) != 0) | (np.diff(starts) != 0)) + 1
    bounds = [0, *change.tolist(), len(rolled)]
    by_key = {(c.series_id, c.chunk_start_ms): i for i, c in enumerate(stored)}
    out = list(stored)
    for a, b in itertools.pairwise(bounds):
        sid, start = int(rolled.key[a]), int(starts[a])
        candidate = rolled.take(slice(a, b))
        kind, partition, offset = origin[sid]
        at = by_key.get((sid, start))
        base = pts.Points.empty()
        if at is not None:
            held = stored[at]
            decoded = decode_chunk(held.data, key=sid)
            base, kind = decoded.points, int(decoded.kind)
            partition, offset = held.partition, max(held.applied_offset, offset)
        where = np.searchsorted(base.ts, candidate.ts)
        inside = where < len(base)
        matched = np.zeros(len(candidate), dtype=np.bool_)
        matched[inside] = base.ts[where[inside]] == candidate.ts[inside]
        base_count = np.full(len(candidate), -1, dtype=np.int64)
        base_count[matched] = base.count[where[matched]]
        take = candidate.count > base_count
        if not take.any():
            continue
        keep = np.ones(len(base), dtype=np.bool_)
        keep[where[matched & take]] = False
        # Disjoint timestamps: merge only sorts the union, it combines nothing.
        points = pts.merge(base.take(keep), candidate.take(take))
        data = encode_chunks([(points, kind, tier.step_ms, start)])[0]
        chunk = StoredChunk(series_id=sid, chunk_start_ms=start, data=data, partition=partition, applied_offset=offset)
        if at is None:
            out.append(chunk)
        else:
            out[at] = chunk
    return out
