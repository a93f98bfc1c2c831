"""Contract suite of the HotStore port (chunks, series index, projector state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.adapters.sqlite_hot_store import SqliteHotStore
from core.ports import HotStore, LabelFilter, SeriesRecord, StoredChunk

HOUR = 3_600_000


def chunk(sid: int, start: int, applied: int, data: bytes = b"x") -> StoredChunk:
    return StoredChunk(series_id=sid, chunk_start_ms=start, data=data, partition=0, applied_offset=applied)


def series(sid: int, metric: str = "cpu", region: str = "eu", **labels: str) -> SeriesRecord:
    return SeriesRecord(
        tenant="t1",
        series_id=sid,
        metric=metric,
        kind=2,
        region=region,
        labels=tuple(sorted(labels.items())),
        first_seen_ms=1000,
        last_seen_ms=2000,
    )


class HotStoreContract:
    async def make_store(self, tmp_path: Path) -> HotStore:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[HotStore]:
        store = await self.make_store(tmp_path)
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    async def test_chunks_round_trip_by_key_and_range(self, store: HotStore) -> None:
        await store.write_chunks("5s", [chunk(1, 0, 5, b"a"), chunk(1, HOUR, 6, b"b"), chunk(-2, 0, 7, b"c")])
        got = await store.get_chunks("5s", [(1, 0), (-2, 0), (3, 0)])
        assert {k: c.data for k, c in got.items()} == {(1, 0): b"a", (-2, 0): b"c"}
        in_range = await store.read_range("5s", [1, -2], HOUR + 10, 2 * HOUR, HOUR)
        assert [(c.series_id, c.chunk_start_ms) for c in in_range] == [(1, HOUR)]
        both = await store.read_range("5s", [1], 10, 2 * HOUR, HOUR)
        assert sorted(c.chunk_start_ms for c in both) == [0, HOUR]

    async def test_chunk_write_never_rewinds_applied_offset(self, store: HotStore) -> None:
        await store.write_chunks("1m", [chunk(1, 0, 10, b"new")])
        await store.write_chunks("1m", [chunk(1, 0, 9, b"old")])
        await store.write_chunks("1m", [chunk(1, 0, 10, b"same-offset")])
        got = (await store.get_chunks("1m", [(1, 0)]))[(1, 0)]
        assert (got.data, got.applied_offset) == (b"new", 10)
        await store.write_chunks("1m", [chunk(1, 0, 11, b"newer")])
        assert (await store.get_chunks("1m", [(1, 0)]))[(1, 0)].data == b"newer"

    async def test_tiers_are_separate(self, store: HotStore) -> None:
        await store.write_chunks("5s", [chunk(1, 0, 1, b"five")])
        assert await store.get_chunks("1h", [(1, 0)]) == {}

    async def test_retention_deletes_only_chunks_that_ended(self, store: HotStore) -> None:
        await store.write_chunks("5s", [chunk(1, 0, 1), chunk(1, HOUR, 1), chunk(1, 2 * HOUR, 1)])
        assert await store.delete_before("5s", 2 * HOUR, HOUR) == 2
        assert [c.chunk_start_ms for c in await store.read_range("5s", [1], 0, 10 * HOUR, HOUR)] == [2 * HOUR]

    async def test_series_index_resolves_equality_through_postings(self, store: HotStore) -> None:
        await store.upsert_series(
            [series(1, host="a", mode="user"), series(2, host="b", mode="user"), series(3, host="a", mode="sys")]
        )
        await store.upsert_series([series(4, metric="mem", host="a")])
        user = await store.find_series("t1", "cpu", LabelFilter(equal={"mode": "user"}))
        assert sorted(s.series_id for s in user) == [1, 2]
        a_user = await store.find_series("t1", "cpu", LabelFilter(equal={"mode": "user", "host": "a"}))
        assert [s.series_id for s in a_user] == [1]
        by_region = await store.find_series("t1", "cpu", LabelFilter(equal={"region": "eu"}))
        assert len(by_region) == 3
        assert await store.find_series("t2", "cpu") == []
        assert dict(user[0].labels)["mode"] == "user"

    async def test_series_upsert_widens_seen_range_and_is_idempotent(self, store: HotStore) -> None:
        await store.upsert_series([series(1, host="a")])
        wider = SeriesRecord(
            tenant="t1",
            series_id=1,
            metric="cpu",
            kind=2,
            region="eu",
            labels=(("host", "a"),),
            first_seen_ms=500,
            last_seen_ms=1500,
        )
        await store.upsert_series([wider, wider])
        (found,) = await store.find_series("t1", "cpu")
        assert (found.first_seen_ms, found.last_seen_ms) == (500, 2000)

    async def test_metrics_and_label_values_are_listed_per_tenant(self, store: HotStore) -> None:
        await store.upsert_series([series(1, host="a"), series(2, host="b"), series(3, metric="mem", host="c")])
        metrics = await store.list_metrics("t1")
        assert [(m.name, m.series_count) for m in metrics] == [("cpu", 2), ("mem", 1)]
        assert await store.label_values("t1", "host") == ["a", "b", "c"]
        assert await store.label_values("t1", "host", "cpu") == ["a", "b"]
        assert await store.label_values("t1", "region") == ["eu"]
        assert await store.list_metrics("other") == []

    async def test_projector_state_remembers_applied_events(self, store: HotStore) -> None:
        ids = [b"a" * 32, b"b" * 32]
        assert await store.filter_new_events("p", ids) == set(ids)
        await store.record_events("p", ids[:1], time_ms=100)
        assert await store.filter_new_events("p", ids) == {ids[1]}
        assert await store.filter_new_events("other", ids) == set(ids)
        assert await store.forget_events_before("p", 200) == 1
        assert await store.filter_new_events("p", ids) == set(ids)


class TestSqliteHotStore(HotStoreContract):
    async def make_store(self, tmp_path: Path) -> HotStore:
        return SqliteHotStore(tmp_path / "hot.db")
