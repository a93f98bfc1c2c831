"""Contract suite of the HotStore port (chunks, series index, projector state)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.adapters.dynamodb_hot_store import DynamoDBAccessDenied, DynamoDBHotStore
from core.adapters.memory_hot_store import MemoryHotStore
from core.adapters.sqlite_hot_store import SqliteHotStore
from core.adapters.urls import open_hot_store
from core.errors import InvalidArgument, Unavailable
from core.ports import HotStore, LabelFilter, SeriesRecord, StoredChunk
from harness.processes import free_port
from harness.services import DynamoDBService
from harness.services.dynamodb import ACCESS_KEY_ID, SECRET_ACCESS_KEY

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

    @pytest.mark.parametrize("chunks_in_range", [1, 3, 12])
    async def test_range_reads_exactly_the_overlapping_chunks(self, store: HotStore, chunks_in_range: int) -> None:
        # Few and many chunks per series (adapters may read known keys or scan a key range).
        await store.write_chunks("5s", [chunk(sid, h * HOUR, h) for sid in (4, 5) for h in range(20)])
        got = await store.read_range("5s", [4, 5, 6], 3 * HOUR + 1, (3 + chunks_in_range) * HOUR, HOUR)
        want = {(sid, h * HOUR) for sid in (4, 5) for h in range(3, 3 + chunks_in_range)}
        assert sorted((c.series_id, c.chunk_start_ms) for c in got) == sorted(want)

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


class TestMemoryHotStore(HotStoreContract):
    async def make_store(self, tmp_path: Path) -> HotStore:
        return MemoryHotStore()

    async def test_unknown_tier_is_invalid_argument(self, store: HotStore) -> None:
        with pytest.raises(InvalidArgument, match="unknown tier"):
            await store.write_chunks("7s", [chunk(1, 0, 1)])


# ---------------------------------------------------------------------------- DynamoDB


def fresh_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


def dynamodb_store(server: DynamoDBService, prefix: str | None = None, **options: Any) -> DynamoDBHotStore:
    """A store on DynamoDB Local with its own tables; quick retries so injected faults stay fast."""
    options = {"base_delay_ms": 1, "max_delay_ms": 20, **options}
    return DynamoDBHotStore.from_url(
        server.url(prefix=prefix or fresh_prefix(), credentials=False),
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        **options,
    )


class TestDynamoDBHotStore(HotStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, dynamodb_local: DynamoDBService) -> None:
        self.server = dynamodb_local

    async def make_store(self, tmp_path: Path) -> HotStore:
        return dynamodb_store(self.server)


class TestDynamoDBHotStoreFreshReads(TestDynamoDBHotStore):
    """`fresh_s` on (decision 0058): reads outside the window are the stored chunks, as
    without it (inside, tests/faults/test_dynamodb_fresh_tiers.py and tests/unit)."""

    async def make_store(self, tmp_path: Path) -> HotStore:
        return dynamodb_store(self.server, fresh_window_s=900.0)


@dataclass
class _FakeHttp:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)


class InjectFaults:
    """Botocore event hooks on a real client: the first `times` calls of `operation` never
    reach the server and answer with a throttling error (or, for batches, with every item
    or key unprocessed)."""

    def __init__(self, store: DynamoDBHotStore, operation: str, *, times: int, error: str | None = None) -> None:
        self.left = times
        self.error = error
        self.operation = operation
        events = store.client.meta.events
        events.register(f"before-parameter-build.dynamodb.{operation}", self._capture)
        events.register(f"before-call.dynamodb.{operation}", self._answer)

    def _capture(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["injected_params"] = params

    def _answer(self, context: dict[str, Any], **_: Any) -> Any:  # (http, parsed) short-circuits the call
        if self.left <= 0:
            return None
        self.left -= 1
        if self.error is not None:
            return _FakeHttp(400), {"Error": {"Code": self.error, "Message": "injected by the test"}}
        params = context["injected_params"]
        if self.operation == "BatchWriteItem":
            return _FakeHttp(200), {"UnprocessedItems": params["RequestItems"]}
        return _FakeHttp(200), {"Responses": {}, "UnprocessedKeys": params["RequestItems"]}


@pytest.fixture
async def ddb(dynamodb_local: DynamoDBService) -> AsyncIterator[DynamoDBHotStore]:
    store = dynamodb_store(dynamodb_local)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("error", ["ProvisionedThroughputExceededException", "ThrottlingException"])
async def test_dynamodb_throttled_chunk_writes_are_retried_and_nothing_is_lost(
    ddb: DynamoDBHotStore, error: str
) -> None:
    faults = InjectFaults(ddb, "PutItem", times=12, error=error)
    chunks = [chunk(sid, 0, 5, f"d{sid}".encode()) for sid in range(40)]
    await ddb.write_chunks("5s", chunks)
    assert faults.left == 0
    assert ddb.stats.throttle_retries == 12
    got = await ddb.get_chunks("5s", [(sid, 0) for sid in range(40)])
    assert {k[0]: c.data for k, c in got.items()} == {sid: f"d{sid}".encode() for sid in range(40)}


async def test_dynamodb_unprocessed_items_and_keys_are_resent(ddb: DynamoDBHotStore) -> None:
    ids = [bytes([i]) * 32 for i in range(60)]
    writes = InjectFaults(ddb, "BatchWriteItem", times=3)
    await ddb.record_events("p", ids, time_ms=ddb_now())
    reads = InjectFaults(ddb, "BatchGetItem", times=2)
    assert await ddb.filter_new_events("p", [*ids, b"z" * 32]) == {b"z" * 32}
    assert (writes.left, reads.left) == (0, 0)
    assert ddb.stats.unprocessed_retries == 5


async def test_dynamodb_gives_up_with_a_retryable_error_when_throttling_persists(
    dynamodb_local: DynamoDBService,
) -> None:
    store = dynamodb_store(dynamodb_local, max_attempts=3)
    await store.start()
    try:
        InjectFaults(store, "PutItem", times=100, error="ThrottlingException")
        with pytest.raises(Unavailable, match="throttled after 3 attempts") as caught:
            await store.write_chunks("5s", [chunk(1, 0, 1)])
        assert caught.value.retryable
    finally:
        await store.close()


async def test_dynamodb_condition_refuses_older_offsets_under_concurrent_writers(
    dynamodb_local: DynamoDBService,
) -> None:
    prefix = fresh_prefix()
    writers = [dynamodb_store(dynamodb_local, prefix) for _ in range(3)]
    for w in writers:
        await w.start()
    try:
        offsets = list(range(1, 61))
        random.Random(7).shuffle(offsets)
        await asyncio.gather(
            *(
                writers[i % 3].write_chunks("1m", [chunk(1, 0, off, f"v{off}".encode()), chunk(2, 0, off, b"x")])
                for i, off in enumerate(offsets)
            )
        )
        got = await writers[0].get_chunks("1m", [(1, 0), (2, 0)])
        assert (got[(1, 0)].applied_offset, got[(1, 0)].data) == (60, b"v60")
        assert got[(2, 0)].applied_offset == 60
        assert sum(w.stats.conditional_skips for w in writers) > 0
    finally:
        for w in writers:
            await w.close()


async def test_dynamodb_transact_mode_keeps_the_same_offset_rule(dynamodb_local: DynamoDBService) -> None:
    store = dynamodb_store(dynamodb_local, write_mode="transact")
    await store.start()
    try:
        await store.write_chunks("1m", [chunk(1, 0, 10, b"new"), chunk(2, 0, 3, b"two")])
        await store.write_chunks("1m", [chunk(1, 0, 9, b"old"), chunk(2, 0, 4, b"two-newer"), chunk(3, 0, 1, b"3")])
        got = await store.get_chunks("1m", [(1, 0), (2, 0), (3, 0)])
        assert {k[0]: c.data for k, c in got.items()} == {1: b"new", 2: b"two-newer", 3: b"3"}
        assert store.stats.conditional_skips == 1
    finally:
        await store.close()


def ddb_now() -> int:
    return int(time.time() * 1000)


async def test_dynamodb_expired_items_are_not_returned(dynamodb_local: DynamoDBService) -> None:
    now = [ddb_now()]
    prefix = fresh_prefix()
    store = dynamodb_store(dynamodb_local, prefix, clock_ms=lambda: now[0])
    await store.start()
    try:
        start = now[0] - now[0] % HOUR
        await store.write_chunks("5s", [chunk(1, start, 1, b"fresh")])
        await store.record_events("p", [b"e" * 32], time_ms=now[0])
        assert (await store.get_chunks("5s", [(1, start)]))[(1, start)].data == b"fresh"
        # An item whose TTL passed but which DynamoDB has not deleted yet (it takes its time).
        await store.client.put_item(
            TableName=store.options.chunk_table("5s"),
            Item={
                "s": {"N": "2"},
                "t": {"N": str(start)},
                "p": {"N": "0"},
                "o": {"N": "1"},
                "d": {"B": b"stale"},
                "x": {"N": str(now[0] // 1000 - 10)},
            },
        )
        assert await store.get_chunks("5s", [(2, start)]) == {}
        assert await store.read_range("5s", [1, 2], start, start + HOUR, HOUR) != []
        assert [c.series_id for c in await store.read_range("5s", [1, 2], start, start + HOUR, HOUR)] == [1]
        now[0] += 8 * 24 * HOUR  # past the 5s tier's 7-day retention and the events' 7-day memory
        assert await store.get_chunks("5s", [(1, start)]) == {}
        assert await store.read_range("5s", [1], start, start + HOUR, HOUR) == []
        assert await store.filter_new_events("p", [b"e" * 32]) == {b"e" * 32}
    finally:
        await store.close()


async def test_dynamodb_table_prefix_isolates_stores(dynamodb_local: DynamoDBService) -> None:
    a, b = dynamodb_store(dynamodb_local), dynamodb_store(dynamodb_local)
    tenant = dynamodb_store(dynamodb_local, a.options.prefix, tenant="acme")
    for s in (a, b, tenant):
        await s.start()
    try:
        await a.write_chunks("5s", [chunk(1, 0, 1, b"a")])
        await a.upsert_series([series(1, host="a")])
        assert await b.get_chunks("5s", [(1, 0)]) == {}
        assert await b.find_series("t1", "cpu") == []
        assert await tenant.get_chunks("5s", [(1, 0)]) == {}
        assert tenant.options.chunk_table("5s") == f"{a.options.prefix}acme_chunks_5s"
        assert len(await a.find_series("t1", "cpu")) == 1
    finally:
        for s in (a, b, tenant):
            await s.close()


async def test_dynamodb_wrong_credentials_fail_clearly(dynamodb_local: DynamoDBService) -> None:
    store = DynamoDBHotStore.from_url(
        dynamodb_local.url(prefix=fresh_prefix(), credentials=False), access_key_id="not-a-key!", secret_access_key="x"
    )
    with pytest.raises(DynamoDBAccessDenied, match="refused the credentials") as caught:
        await store.start()
    assert not caught.value.retryable
    await store.close()


async def test_dynamodb_unreachable_endpoint_fails_clearly() -> None:
    url = f"dynamodb://test:test@us-east-1?endpoint=http://127.0.0.1:{free_port()}&prefix=argus_"
    store = DynamoDBHotStore.from_url(url)
    with pytest.raises(Unavailable, match=r"cannot reach DynamoDB at http://127\.0\.0\.1"):
        await store.start()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("dynamodb://?endpoint=http://x:1", "region"),
        ("dynamodb://us-east-1?billing=free", "billing must be on_demand or provisioned"),
        ("dynamodb://us-east-1?endpont=http://x:1", "unknown parameter 'endpont'"),
        ("dynamodb://us-east-1?endpoint=127.0.0.1:8000", "endpoint must be http"),
        ("dynamodb://us-east-1?prefix=bad/prefix", "prefix"),
        ("dynamodb://us-east-1?concurrency=0", "concurrency must be >= 1"),
        ("dynamodb://us-east-1?fresh_s=-1", "fresh_s must be >= 0"),
        ("dynamodb://us-east-1?fresh_s=soon", "fresh_s must be a number"),
        ("dynamodb://us-east-1?fresh_s=90000", "fresh_s must be <= 86400"),
    ],
)
def test_dynamodb_bad_urls_name_the_hot_store_setting(url: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        open_hot_store(url)
    assert caught.value.parameter == "hot_store"


def test_dynamodb_url_opens_a_dynamodb_store() -> None:
    store = open_hot_store(
        "dynamodb://k:s3cr3t@eu-west-1?prefix=p_&tenant=acme&billing=provisioned&sweep_s=off&fresh_s=1200"
    )
    assert isinstance(store, DynamoDBHotStore)
    assert store.options.fresh_window_s == 1200.0
    assert store.options.index_table == "p_acme_series_index"
    assert (store.options.billing, store.options.sweep_interval_s, store.options.access_key_id) == (
        "provisioned",
        None,
        "k",
    )
    assert store.options.secret_access_key == "s3cr3t"
    assert "s3cr3t" not in repr(store.options)
