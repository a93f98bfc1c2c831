"""Contract suite of the ColdStore port, run by the folder and the S3 (SeaweedFS) adapters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.adapters.cold_parquet import FolderColdStore, ParquetColdStore, S3ColdStore, object_key
from core.adapters.memory_cold_store import MemoryColdStore, MemoryObjects
from core.adapters.urls import open_cold_store
from core.errors import InvalidArgument
from core.model import DAY_MS, HOUR_MS, MetricKind
from core.points import Points, concat, from_hashes, from_observations, from_values, identical, merge
from core.ports import ArchivedPeriod, ColdRows, ColdStore, SeriesRecord
from harness.services import S3Service

DAY0 = 20_000 * DAY_MS  # 2024-10-04, a day boundary
TENANT = "acme corp/eu"  # needs escaping in a key


def record(sid: int, metric: str, kind: MetricKind, **labels: str) -> SeriesRecord:
    return SeriesRecord(
        tenant=TENANT,
        series_id=sid,
        metric=metric,
        kind=int(kind),
        region="eu",
        labels=tuple(sorted(labels.items())),
        first_seen_ms=DAY0,
        last_seen_ms=DAY0 + DAY_MS,
    )


GAUGES = {sid: record(sid, "cpu", MetricKind.GAUGE, host=f"h{sid}") for sid in (-7, 3, 11, 40)}
TIMER = record(99, "latency", MetricKind.TIMER, route="/")
DISTINCT = record(-500, "users", MetricKind.DISTINCT)
SERIES = {**GAUGES, TIMER.series_id: TIMER, DISTINCT.series_id: DISTINCT}


def day_points(day_start: int) -> Points:
    """An hour-step day of gauges, a timer (sketches) and a distinct count (HLLs), sorted by
    (metric, series id, ts) as the archiver hands them over."""
    rng = np.random.default_rng(day_start // DAY_MS)
    ts = day_start + np.arange(24) * HOUR_MS
    parts = []
    for sid in sorted(GAUGES):
        parts.append(from_values(np.full(24, sid), ts + 7, np.round(rng.uniform(0, 100, 24), 2), HOUR_MS))
    counts = rng.integers(1, 5, 24)
    parts.append(from_observations(np.full(24, 99), ts + 1, counts, rng.lognormal(3, 1, int(counts.sum())), HOUR_MS))
    hashes = rng.integers(0, 2**63, 48, dtype=np.int64)
    parts.append(from_hashes(np.full(48, -500), np.repeat(ts, 2), np.ones(48, np.int64), hashes, HOUR_MS))
    cpu, latency, users = concat(*parts[:4]), parts[4], parts[5]
    return concat(cpu, latency, users)


async def rows_of(points: Points, batch: int = 40) -> AsyncIterator[ColdRows]:
    for lo in range(0, len(points), batch):
        yield ColdRows(points=points.take(slice(lo, lo + batch)), series=SERIES)


def marker(start: int, rows: int, digest: str = "d1", final: bool = False) -> ArchivedPeriod:
    return ArchivedPeriod(
        tenant=TENANT, tier="1h", start_ms=start, end_ms=start + DAY_MS, rows=rows, digest=digest, final=final
    )


async def archive_day(store: ColdStore, day_start: int) -> Points:
    points = day_points(day_start)
    written = await store.write_period(TENANT, "1h", day_start, day_start + DAY_MS, rows_of(points))
    assert written == len(points)
    await store.record_archived([marker(day_start, written)])
    return points


def only(points: Points, sids: Sequence[int], start: int, end: int) -> Points:
    keep = np.isin(points.key, sids) & (points.ts >= start) & (points.ts < end)
    return merge(points.take(keep))


class ColdStoreContract:
    async def make_store(self, tmp_path: Path) -> ParquetColdStore:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[ParquetColdStore]:
        store = await self.make_store(tmp_path)
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    async def test_archived_period_reads_back_bit_exact(self, store: ParquetColdStore) -> None:
        day1 = await archive_day(store, DAY0)
        day2 = await archive_day(store, DAY0 + DAY_MS)
        everything = merge(day1, day2)
        got = await store.read_range(TENANT, "1h", list(SERIES), DAY0, DAY0 + 2 * DAY_MS)
        assert identical(merge(got), everything)
        assert merge(got).sketch.total > 0 and merge(got).hll.total > 0

    async def test_read_picks_series_and_window(self, store: ParquetColdStore) -> None:
        day1 = await archive_day(store, DAY0)
        day2 = await archive_day(store, DAY0 + DAY_MS)
        everything = merge(day1, day2)
        start, end = DAY0 + 20 * HOUR_MS, DAY0 + DAY_MS + 3 * HOUR_MS  # crosses the period boundary
        for sids, metric in (([3, 40], "cpu"), ([99], "latency"), ([3, 99], None), ([12345], None)):
            got = await store.read_range(TENANT, "1h", sids, start, end, metric=metric)
            assert identical(merge(got), only(everything, sids, start, end)), sids
        assert len(await store.read_range(TENANT, "1h", [3], DAY0 + 5 * DAY_MS, DAY0 + 6 * DAY_MS)) == 0
        assert len(await store.read_range("other", "1h", [3], start, end)) == 0
        assert len(await store.read_range(TENANT, "1m", [3], start, end)) == 0

    async def test_rewriting_a_period_gives_the_same_object(self, store: ParquetColdStore) -> None:
        await archive_day(store, DAY0)
        key = object_key(TENANT, "1h", DAY0)
        first = await store.object_bytes(key)
        await archive_day(store, DAY0)
        assert first is not None and await store.object_bytes(key) == first
        assert [p.start_ms for p in await store.archived(TENANT, "1h")] == [DAY0]

    async def test_unrecorded_period_is_not_read(self, store: ParquetColdStore) -> None:
        points = day_points(DAY0)
        await store.write_period(TENANT, "1h", DAY0, DAY0 + DAY_MS, rows_of(points))
        assert await store.archived(TENANT, "1h") == []
        assert len(await store.read_range(TENANT, "1h", list(SERIES), DAY0, DAY0 + DAY_MS)) == 0

    async def test_markers_replace_by_start_and_survive_a_restart(
        self, store: ParquetColdStore, tmp_path: Path
    ) -> None:
        await store.record_archived([marker(DAY0 + DAY_MS, 5), marker(DAY0, 3)])
        await store.record_archived([marker(DAY0, 4, digest="d2", final=True)])
        expected = [marker(DAY0, 4, digest="d2", final=True), marker(DAY0 + DAY_MS, 5)]
        assert await store.archived(TENANT, "1h") == expected
        again = await self.reopen(store, tmp_path)
        try:
            assert await again.archived(TENANT, "1h") == expected
            assert await again.archived(TENANT, "1d") == []
        finally:
            await again.close()

    async def test_points_outside_the_period_are_rejected(self, store: ParquetColdStore) -> None:
        points = day_points(DAY0 + DAY_MS)
        with pytest.raises(InvalidArgument, match="outside the period"):
            await store.write_period(TENANT, "1h", DAY0, DAY0 + DAY_MS, rows_of(points))

    async def reopen(self, store: ParquetColdStore, tmp_path: Path) -> ParquetColdStore:
        again = await self.make_store(tmp_path)
        await again.start()
        return again


class TestFolderColdStore(ColdStoreContract):
    async def make_store(self, tmp_path: Path) -> ParquetColdStore:
        return FolderColdStore(tmp_path / "cold")

    async def test_objects_are_hive_partitioned_parquet_any_tool_reads(
        self, store: ParquetColdStore, tmp_path: Path
    ) -> None:
        points = await archive_day(store, DAY0)
        files = sorted((tmp_path / "cold").rglob("*.parquet"))
        assert [f.relative_to(tmp_path / "cold").as_posix() for f in files] == [
            "tenant=acme%20corp%2Feu/tier=1h/date=2024-10-04/part-0.parquet"
        ]
        table = pq.read_table(files[0])
        assert table.num_rows == len(points)
        cpu = table.filter(table.column("metric").to_numpy(zero_copy_only=False) == "cpu")
        assert set(cpu.column("labels").to_pylist()) == {f'{{"host":"h{s}"}}' for s in GAUGES}
        assert not list((tmp_path / "cold").rglob("*.tmp"))


class TestMemoryColdStore(ColdStoreContract):
    @pytest.fixture(autouse=True)
    def _objects(self) -> None:
        self.objects = MemoryObjects()  # one "bucket" per test, shared by a reopened store

    async def make_store(self, tmp_path: Path) -> ParquetColdStore:
        return MemoryColdStore(self.objects)

    async def test_objects_are_the_parquet_a_folder_store_writes(self, store: ParquetColdStore, tmp_path: Path) -> None:
        await archive_day(store, DAY0)
        folder = FolderColdStore(tmp_path / "cold")
        await folder.start()
        try:
            await archive_day(folder, DAY0)
            key = object_key(TENANT, "1h", DAY0)
            assert self.objects.objects[key] == await folder.object_bytes(key)
        finally:
            await folder.close()


class TestS3ColdStore(ColdStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, s3_server: S3Service) -> None:
        self.server = s3_server
        self.bucket = s3_server.create_bucket("argus-cold-contract")
        self.prefix = f"t-{uuid.uuid4().hex[:8]}"

    async def make_store(self, tmp_path: Path) -> ParquetColdStore:
        creds = self.server.credentials
        return S3ColdStore(
            bucket=self.bucket,
            prefix=self.prefix,
            endpoint_url=self.server.endpoint,
            region=creds.region,
            access_key_id=creds.access_key_id,
            secret_access_key=creds.secret_access_key,
        )

    async def test_url_opens_the_bucket_with_env_credentials(
        self, monkeypatch: pytest.MonkeyPatch, store: ParquetColdStore
    ) -> None:
        await archive_day(store, DAY0)
        for name, value in self.server.credentials.env().items():
            monkeypatch.setenv(name, value)
        opened = open_cold_store(self.server.url(self.bucket, self.prefix))
        assert isinstance(opened, S3ColdStore)
        await opened.start()
        try:
            assert [p.start_ms for p in await opened.archived(TENANT, "1h")] == [DAY0]
        finally:
            await opened.close()


def test_urls_choose_the_adapter(tmp_path: Path) -> None:
    assert isinstance(open_cold_store(str(tmp_path)), FolderColdStore)
    assert isinstance(open_cold_store(f"file://{tmp_path}"), FolderColdStore)
    assert isinstance(open_cold_store("s3://b/p?endpoint=http://127.0.0.1:1&region=us-east-1"), S3ColdStore)
    for bad in ("s3://b/p?endpoit=x", "gs://b/p", "file://host/x", "s3:///p"):
        with pytest.raises(InvalidArgument, match="cold_store"):
            open_cold_store(bad)
