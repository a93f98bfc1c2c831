"""Coarse tiers refreshed from finer ones at read time (core/adapters/dynamodb_hot_store/fresh.py)."""

from __future__ import annotations

import numpy as np
import pytest

from core import points as pts
from core.adapters.dynamodb_hot_store.fresh import finer_tier, fresh_bounds, stitch
from core.chunks import decode_chunk, encode_chunk
from core.model import DEFAULT_TIERS, TIER_BY_NAME, MetricKind
from core.ports import StoredChunk

T5S, T1M, T1H, T1D = (TIER_BY_NAME[n] for n in ("5s", "1m", "1h", "1d"))
HOUR = 3_600_000
START = 1_764_000_000_000 - 1_764_000_000_000 % (12 * HOUR)  # a 1m chunk start


def chunks_of(tier_name: str, sid: int, ts: np.ndarray, values: np.ndarray, offset: int) -> list[StoredChunk]:
    """The tier's chunks of these samples (as the projector would write them)."""
    tier = TIER_BY_NAME[tier_name]
    points = pts.from_values(np.full(len(ts), sid), ts, values, tier.step_ms)
    out = []
    starts = points.ts - points.ts % tier.chunk_span_ms
    for start in np.unique(starts).tolist():
        part = points.take(starts == start)
        data = encode_chunk(part, kind=MetricKind.GAUGE, step_ms=tier.step_ms, chunk_start_ms=start)
        out.append(StoredChunk(series_id=sid, chunk_start_ms=start, data=data, partition=3, applied_offset=offset))
    return out


def points_of(chunks: list[StoredChunk]) -> pts.Points:
    return pts.merge(*(decode_chunk(c.data, key=c.series_id).points for c in chunks))


def test_each_tier_is_refreshed_from_the_next_finer_one() -> None:
    assert finer_tier(DEFAULT_TIERS, T1M) is T5S
    assert finer_tier(DEFAULT_TIERS, T1D) is T1H
    assert finer_tier(DEFAULT_TIERS, T5S) is None


def test_fresh_bounds_are_whole_buckets_of_the_window_only() -> None:
    now = START + 3 * HOUR + 30_500
    assert fresh_bounds(T1M, START, now, now, window_ms=0) is None
    assert fresh_bounds(T1M, START, START + HOUR, now, window_ms=600_000) is None  # ends before the window
    lo, hi = fresh_bounds(T1M, START, now, now, window_ms=600_000) or (0, 0)
    assert (lo, hi) == (now - 600_000 - (now - 600_000) % 60_000, now - now % 60_000 + 60_000)


def test_stale_coarse_tier_is_refreshed_and_nothing_counts_twice() -> None:
    rng = np.random.default_rng(3)
    ts = START + np.arange(0, 40 * 60_000, 5_000)  # 40 min of 5 s samples
    values = rng.normal(50, 10, len(ts)).round(2)
    fine = chunks_of("5s", 7, ts, values, offset=480)
    # The 1m tier was written 12 min ago: its last minute then was half full.
    written = ts < START + 28 * 60_000 + 30_000
    coarse = chunks_of("1m", 7, ts[written], values[written], offset=342)
    lo, hi = START + 20 * 60_000, START + 40 * 60_000
    got = stitch(T1M, coarse, fine, lo, hi)
    want = pts.from_values(np.full(len(ts), 7), ts, values, 60_000)
    merged = points_of(got)
    assert np.array_equal(merged.ts, want.ts)
    assert np.array_equal(merged.count, want.count)  # every sample once: not 2x in the refreshed minutes
    for column in ("min", "max", "last", "last_ts"):
        assert np.array_equal(getattr(merged, column), getattr(want, column)), column
    assert np.allclose(merged.sum, want.sum)
    assert [c.applied_offset for c in got] == [480]  # the newer view's position
    # Buckets before the window are the stored ones, bytes and all.
    old = merged.ts < lo
    stored = points_of(coarse)
    assert pts.identical(merged.take(old), stored.take(stored.ts < lo))


def test_coarse_point_with_as_many_samples_is_kept_as_stored() -> None:
    ts = START + np.arange(0, 10 * 60_000, 5_000)
    values = np.arange(len(ts), dtype=np.float64)
    fine = chunks_of("5s", 1, ts, values, offset=10)
    coarse = chunks_of("1m", 1, ts, values, offset=10)
    assert stitch(T1M, coarse, fine, START, START + 10 * 60_000) == coarse  # same objects, bytes untouched


def test_finer_tier_behind_the_coarse_one_never_lowers_it() -> None:
    ts = START + np.arange(0, 10 * 60_000, 5_000)
    values = np.ones(len(ts))
    fine = chunks_of("5s", 1, ts[:60], values[:60], offset=5)  # an older (eventually consistent) read
    coarse = chunks_of("1m", 1, ts, values, offset=9)
    assert stitch(T1M, coarse, fine, START, START + 10 * 60_000) == coarse


def test_series_the_coarse_tier_has_not_written_comes_from_the_finer_tier() -> None:
    ts = START + 12 * HOUR + np.arange(0, 5 * 60_000, 5_000)  # the first minutes of a new 1m chunk
    values = np.full(len(ts), 2.5)
    fine = chunks_of("5s", 9, ts, values, offset=77)
    older = chunks_of("1m", 9, START + np.arange(0, 60_000, 5_000), np.ones(12), offset=1)
    got = stitch(T1M, older, fine, START + 12 * HOUR, START + 12 * HOUR + 5 * 60_000)
    assert got[0] is older[0]
    new = got[1]
    assert (new.series_id, new.chunk_start_ms, new.partition, new.applied_offset) == (9, START + 12 * HOUR, 3, 77)
    assert decode_chunk(new.data, key=9).kind is MetricKind.GAUGE
    assert points_of([new]).count.tolist() == [12] * 5


@pytest.mark.parametrize("tier", [T1H, T1D])
def test_finer_points_outside_the_bounds_are_ignored(tier: object) -> None:
    ts = START + np.arange(0, 3 * HOUR, 60_000)
    fine = chunks_of("5m" if tier is T1H else "1h", 4, ts, np.ones(len(ts)), offset=3)
    assert stitch(T1H if tier is T1H else T1D, [], fine, 0, START) == []
