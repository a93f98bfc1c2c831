"""The cold-archive projector (idempotent, restart-safe, late data) and queries that span
the cold and the hot store. Embedded adapters only (SQLite hot store, folder cold store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from core.adapters.cold_parquet import FolderColdStore, object_key
from core.adapters.sqlite_hot_store import SqliteHotStore
from core.chunks import decode_chunks, encode_chunks
from core.errors import InvalidArgument
from core.model import DAY_MS, HOUR_MS, MINUTE_MS, MetricKind, Tier
from core.points import Points, from_observations, from_values, identical, merge, rollup, split_by_key
from core.ports import SeriesRecord, StoredChunk
from projectors.cold_archive import ColdArchiveProjector, cold_period_ms
from query_side.engine import QueryEngine
from query_side.planner import QuerySpec, hot_start_ms

DAY0 = 20_000 * DAY_MS  # an even day number: 2-day periods start here
TENANT = "acme"
DAYS = 6
LONG = 10_000 * DAY_MS


def tiers(retention_days: int) -> tuple[Tier, ...]:
    return (
        Tier(name="1m", step_ms=MINUTE_MS, chunk_span_ms=12 * HOUR_MS, retention_ms=retention_days * DAY_MS),
        Tier(name="5m", step_ms=5 * MINUTE_MS, chunk_span_ms=2 * DAY_MS, retention_ms=(retention_days + 1) * DAY_MS),
    )


SHORT = tiers(2)
KINDS = {11: MetricKind.GAUGE, -22: MetricKind.GAUGE, 33: MetricKind.TIMER}


def record(sid: int) -> SeriesRecord:
    return SeriesRecord(
        tenant=TENANT,
        series_id=sid,
        metric="latency" if KINDS[sid] is MetricKind.TIMER else "cpu",
        kind=int(KINDS[sid]),
        region="eu",
        labels=(("host", f"h{sid}"),),
        first_seen_ms=DAY0,
        last_seen_ms=DAY0 + DAYS * DAY_MS,
    )


def history(start: int, end: int, seed: int = 1) -> Points:
    """1-minute points of the gauges (3 samples a minute) and the timer, [start, end)."""
    rng = np.random.default_rng(seed)
    ts = np.arange(start, end, 20_000)
    parts = [
        from_values(np.full(len(ts), sid), ts + 3, np.round(rng.uniform(0, 100, len(ts)), 2), MINUTE_MS)
        for sid in (11, -22)
    ]
    counts = rng.integers(0, 3, len(ts))
    obs = rng.lognormal(2, 1, int(counts.sum()))
    parts.append(from_observations(np.full(len(ts), 33), ts + 5, counts, obs, MINUTE_MS))
    return merge(*parts)


def chunks_of(points: Points, tier: Tier, offset: int) -> list[StoredChunk]:
    points = points if tier.step_ms == MINUTE_MS else rollup(points, tier.step_ms)
    items = []
    for sid, part in split_by_key(points):
        starts = part.ts - part.ts % tier.chunk_span_ms
        for start in np.unique(starts).tolist():
            items.append((sid, start, part.take(starts == start)))
    datas = encode_chunks([(p, KINDS[sid], tier.step_ms, start) for sid, start, p in items])
    return [
        StoredChunk(series_id=sid, chunk_start_ms=start, data=data, partition=0, applied_offset=offset)
        for (sid, start, _), data in zip(items, datas, strict=True)
    ]


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.hot = SqliteHotStore(tmp_path / "hot.db", tiers=SHORT)
        self.cold = FolderColdStore(tmp_path / "cold")
        self.now = DAY0

    async def start(self) -> None:
        await self.hot.start()
        await self.cold.start()
        await self.hot.upsert_series([record(sid) for sid in KINDS])

    async def close(self) -> None:
        await self.hot.close()
        await self.cold.close()

    async def write(self, points: Points, offset: int = 1) -> None:
        for tier in SHORT:
            await self.hot.write_chunks(tier.name, chunks_of(points, tier, offset))

    def projector(self, cold: FolderColdStore | None = None) -> ColdArchiveProjector:
        return ColdArchiveProjector(
            chunks=self.hot, index=self.hot, cold=cold or self.cold, tiers=SHORT, clock_ms=lambda: self.now
        )

    async def hot_points(self, tier: str, start: int, end: int) -> Points:
        span = next(t.chunk_span_ms for t in SHORT if t.name == tier)
        stored = await self.hot.read_range(tier, list(KINDS), start, end, span)
        return merge(decode_chunks([c.data for c in stored], [c.series_id for c in stored], start_ms=start, end_ms=end))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = World(tmp_path)
    await w.start()
    try:
        yield w
    finally:
        await w.close()


def test_period_is_a_day_or_the_chunk_span() -> None:
    assert [cold_period_ms(t) for t in SHORT] == [DAY_MS, 2 * DAY_MS]
    with pytest.raises(ValueError, match="divide the day"):
        cold_period_ms(Tier(name="x", step_ms=MINUTE_MS, chunk_span_ms=7 * HOUR_MS, retention_ms=DAY_MS))


async def test_closed_periods_are_archived_once_with_the_hot_points(world: World) -> None:
    await world.write(history(DAY0, DAY0 + 3 * DAY_MS))
    world.now = DAY0 + 3 * DAY_MS + 2 * HOUR_MS  # day 2 closed 2 h ago (grace 1 h)
    stats = await world.projector().archive_once()
    # 1m (2 days in hot): days 1 and 2 (day 0 is no longer whole there); 5m: [day 0, day 2).
    assert stats.periods_written == 3
    assert [p.start_ms for p in await world.cold.archived(TENANT, "1m")] == [DAY0 + DAY_MS, DAY0 + 2 * DAY_MS]
    assert [(p.start_ms, p.end_ms) for p in await world.cold.archived(TENANT, "5m")] == [(DAY0, DAY0 + 2 * DAY_MS)]
    for tier, start, end in (("1m", DAY0 + DAY_MS, DAY0 + 3 * DAY_MS), ("5m", DAY0, DAY0 + 2 * DAY_MS)):
        cold = merge(await world.cold.read_range(TENANT, tier, list(KINDS), DAY0, end))
        assert identical(cold, await world.hot_points(tier, start, end))
    before = await world.cold.object_bytes(object_key(TENANT, "1m", DAY0 + DAY_MS))

    again = await world.projector().archive_once()
    assert again.periods_written == 0 and again.periods_checked == 0
    assert await world.cold.object_bytes(object_key(TENANT, "1m", DAY0 + DAY_MS)) == before


async def test_restart_and_a_lost_marker_rewrite_the_same_objects(world: World, tmp_path: Path) -> None:
    await world.write(history(DAY0, DAY0 + 2 * DAY_MS))
    world.now = DAY0 + 2 * DAY_MS + 2 * HOUR_MS
    assert (await world.projector().archive_once()).periods_written == 3
    objects = {p: p.read_bytes() for p in (tmp_path / "cold").rglob("*.parquet")}

    # A new process (new cold store instance on the same folder) finds the markers.
    reopened = FolderColdStore(tmp_path / "cold")
    await reopened.start()
    assert (await world.projector(reopened).archive_once()).periods_written == 0

    # A crash after writing objects but before the markers: the next pass writes them again, identically.
    for manifest in (tmp_path / "cold").rglob("_archived.json"):
        manifest.unlink()
    fresh = FolderColdStore(tmp_path / "cold")
    await fresh.start()
    assert (await world.projector(fresh).archive_once()).periods_written == 3
    assert {p: p.read_bytes() for p in (tmp_path / "cold").rglob("*.parquet")} == objects


async def test_late_data_is_rearchived_at_the_final_check(world: World) -> None:
    await world.write(history(DAY0, DAY0 + DAY_MS))
    world.now = DAY0 + DAY_MS + 2 * HOUR_MS
    await world.projector().archive_once()
    # Late samples for day 0 reach the hot store after it was archived.
    late = history(DAY0 + 5 * HOUR_MS, DAY0 + 6 * HOUR_MS, seed=7)
    merged = merge(await world.hot_points("1m", DAY0, DAY0 + DAY_MS), late)
    await world.write(merged, offset=2)
    world.now = DAY0 + DAY_MS + 3 * HOUR_MS  # not yet near the retention edge: no re-check
    assert (await world.projector().archive_once()).periods_checked == 0

    # Within a day of leaving the hot store (retention 2 days): checked, found changed, rewritten.
    world.now = DAY0 + DAY_MS + SHORT[0].retention_ms - DAY_MS + HOUR_MS
    stats = await world.projector().archive_once()
    assert stats.periods_checked == 1  # day 0 of 1m (day 1 and the 5m period are new, not re-checked)
    day0 = (await world.cold.archived(TENANT, "1m"))[0]
    assert day0.final
    cold = merge(await world.cold.read_range(TENANT, "1m", list(KINDS), DAY0, DAY0 + DAY_MS))
    assert identical(cold, await world.hot_points("1m", DAY0, DAY0 + DAY_MS))
    assert (await world.projector().archive_once()).periods_checked == 0


async def test_periods_no_longer_whole_in_the_hot_store_are_skipped(world: World) -> None:
    await world.write(history(DAY0, DAY0 + DAYS * DAY_MS))
    world.now = DAY0 + DAYS * DAY_MS + 2 * HOUR_MS  # the 1m edge (2 days) is mid-day 4
    await world.projector().archive_once()
    starts = [p.start_ms for p in await world.cold.archived(TENANT, "1m")]
    assert starts == [DAY0 + 4 * DAY_MS, DAY0 + 5 * DAY_MS]


async def test_a_range_across_cold_and_hot_equals_the_all_hot_answer(world: World) -> None:
    """Archive day by day as time passes, let retention delete from the hot store, then ask
    for the whole history: the answer equals the one the hot store gave before deleting."""
    end = DAY0 + DAYS * DAY_MS
    await world.write(history(DAY0, end))
    reference_engine = QueryEngine(world.hot, world.hot, tiers(10_000), clock=lambda: world.now)
    world.now = end + 2 * HOUR_MS
    start_q, end_q = DAY0 + 7 * HOUR_MS + 13 * MINUTE_MS, end - 5 * HOUR_MS - 1  # not chunk-aligned
    specs = [
        QuerySpec(tenant=TENANT, metric="cpu", start_ms=start_q, end_ms=end_q, period="1m", agg=agg, group_by=group)
        for agg in ("avg", "max", "count", "last")
        for group in ((), ("*",))
    ]
    specs += [
        QuerySpec(tenant=TENANT, metric="latency", start_ms=start_q, end_ms=end_q, period=p, agg=agg)
        for p in ("1m", "5m")
        for agg in ("p99", "p50", "sum")
    ]
    expected = [await reference_engine.query(s) for s in specs]

    for day in range(1, DAYS + 1):
        world.now = DAY0 + day * DAY_MS + 2 * HOUR_MS
        await world.projector().archive_once()
    for tier in SHORT:
        deleted = await world.hot.delete_before(tier.name, world.now - tier.retention_ms, tier.chunk_span_ms)
        assert deleted > 0

    engine = QueryEngine(world.hot, world.hot, SHORT, clock=lambda: world.now, cold=world.cold)
    hot_only = QueryEngine(world.hot, world.hot, SHORT, clock=lambda: world.now)
    for spec, want in zip(specs, expected, strict=True):
        got = await engine.query(spec)
        assert got.tier == want.tier and got.stats.cold_points_read > 0 and got.stats.chunks_read > 0, spec
        assert [dict(s.labels) for s in got.series] == [dict(s.labels) for s in want.series]
        for g, w in zip(got.series, want.series, strict=True):
            assert np.array_equal(g.ts, w.ts), spec
            np.testing.assert_allclose(g.values, w.values, rtol=1e-12, equal_nan=True, err_msg=str(spec))
        # Without the cold store, the same range is refused: the proof the old part came from cold.
        with pytest.raises(InvalidArgument, match="period"):
            await hot_only.query(spec)
    tier = SHORT[0]
    assert hot_start_ms(tier, world.now) == tier.chunk_start(world.now - tier.retention_ms)


async def test_the_boundary_point_is_counted_once(world: World) -> None:
    """Hot and cold both hold the chunks around the boundary (retention has not run yet):
    every bucket is still read from exactly one of them."""
    end = DAY0 + 4 * DAY_MS
    await world.write(history(DAY0, end))
    for day in range(1, 5):
        world.now = DAY0 + day * DAY_MS + 2 * HOUR_MS
        await world.projector().archive_once()
    # The boundary is day 2 (the chunk holding now - 2 days); cold and hot both hold day 1.
    assert hot_start_ms(SHORT[0], world.now) == DAY0 + 2 * DAY_MS
    start = DAY0 + DAY_MS + 6 * HOUR_MS
    spec = QuerySpec(tenant=TENANT, metric="cpu", start_ms=start, end_ms=end, period="1m", agg="count")
    got = await QueryEngine(world.hot, world.hot, SHORT, clock=lambda: world.now, cold=world.cold).query(spec)
    want = await QueryEngine(world.hot, world.hot, tiers(10_000), clock=lambda: world.now).query(spec)
    assert got.stats.cold_points_read > 0
    assert np.array_equal(got.series[0].values, want.series[0].values)
    assert set(got.series[0].values.tolist()) == {6.0}  # 2 gauges x 3 samples a minute, never doubled
