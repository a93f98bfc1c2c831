"""Contract suite of the AlertReadModelStore port: every adapter runs it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.adapters.dynamodb_alert_read_models import DynamoDBAlertReadModels
from core.adapters.memory_alert_read_models import MemoryAlertReadModels
from core.adapters.sqlite_alert_read_models import SqliteAlertReadModels
from core.adapters.urls import open_alert_read_models
from core.errors import StorageError
from core.ports import AlertModelBatch, AlertReadModelStore, StoredAck, StoredAlertInstance, StoredHistoryEntry
from harness.services import DynamoDBService
from harness.services.dynamodb import ACCESS_KEY_ID, SECRET_ACCESS_KEY


def instance(
    iid: str, sequence: int, *, tenant: str = "t1", state: str = "firing", rule: str = "r"
) -> StoredAlertInstance:
    return StoredAlertInstance(
        tenant=tenant,
        instance_id=iid,
        rule=rule,
        state=state,
        sequence=sequence,
        episode_sequence=sequence if state in ("pending", "firing") else 0,
        payload=f"{iid}@{sequence}".encode(),
    )


def ack(iid: str, revision: int, *, tenant: str = "t1", acked: bool = True) -> StoredAck:
    return StoredAck(
        tenant=tenant,
        instance_id=iid,
        acked=acked,
        author=f"a{revision}",
        comment="",
        time_ms=revision,
        revision=revision,
        alert_sequence=1,
    )


def entry(
    time_ms: int, partition: int, offset: int, *, tenant: str = "t1", rules: tuple[str, ...] = ("r",)
) -> StoredHistoryEntry:
    return StoredHistoryEntry(
        tenant=tenant,
        kind="state",
        time_ms=time_ms,
        partition=partition,
        offset=offset,
        rules=rules,
        instances=("i",),
        detail=orjson.dumps({"at": offset}),
        event_type="argus.alerts.v1.AlertStateChanged",
        payload=f"{partition}/{offset}".encode(),
    )


@dataclass
class _Refused:
    """The HTTP half of a botocore answer that never reached the server."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)


class AlertReadModelContract:
    async def make_store(self, tmp_path: Path) -> AlertReadModelStore:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[AlertReadModelStore]:
        store = await self.make_store(tmp_path)
        await store.start()
        try:
            yield store
        finally:
            await store.close()

    async def test_newest_sequence_wins_whatever_the_order(self, store: AlertReadModelStore) -> None:
        await store.apply(AlertModelBatch(instances=[instance("a", 2), instance("b", 1, state="pending")]))
        await store.apply(AlertModelBatch(instances=[instance("a", 1, state="resolved"), instance("b", 3)]))
        held = await store.get_instances("t1", ["a", "b", "missing"])
        assert {k: (v.sequence, v.state, v.payload) for k, v in held.items()} == {
            "a": (2, "firing", b"a@2"),
            "b": (3, "firing", b"b@3"),
        }

    async def test_instances_filter_by_state_rule_and_tenant(self, store: AlertReadModelStore) -> None:
        await store.apply(
            AlertModelBatch(
                instances=[
                    instance("a", 1, rule="cpu"),
                    instance("b", 1, state="resolved", rule="cpu"),
                    instance("c", 1, state="pending", rule="disk"),
                    instance("a", 1, tenant="t2", rule="cpu"),
                ]
            )
        )
        assert sorted(i.instance_id for i in await store.instances("t1", ["firing", "pending"])) == ["a", "c"]
        assert [i.instance_id for i in await store.instances("t1", ["firing", "resolved"], rule="cpu")] in (
            ["a", "b"],
            ["b", "a"],
        )
        assert [i.tenant for i in await store.instances("t2", ["firing", "pending", "resolved"])] == ["t2"]
        assert await store.instances("t1", []) == []
        assert await store.get_instances("t2", ["c"]) == {}

    async def test_newest_ack_revision_wins_per_tenant(self, store: AlertReadModelStore) -> None:
        await store.apply(AlertModelBatch(acks=[ack("a", 2), ack("a", 1, tenant="t2", acked=False)]))
        await store.apply(AlertModelBatch(acks=[ack("a", 1, acked=False), ack("a", 3, tenant="t2")]))
        assert (await store.acks("t1", ["a"]))["a"].author == "a2"
        assert (await store.acks("t2", ["a"]))["a"].acked
        assert await store.acks("t1", ["b"]) == {}

    async def test_entries_are_ordered_paged_and_kept_once(self, store: AlertReadModelStore) -> None:
        batch = AlertModelBatch(
            entries=[entry(20, 0, 1), entry(10, 1, 0), entry(20, 0, 0), entry(10, 0, 5, tenant="t2")]
        )
        await store.apply(batch)
        await store.apply(batch)  # a re-applied batch adds nothing
        every = await store.entries("t1", since_ms=0, after=None, limit=10)
        assert [e.position for e in every] == [(10, 1, 0), (20, 0, 0), (20, 0, 1)]
        assert orjson.loads(every[0].detail) == {"at": 0}
        first = await store.entries("t1", since_ms=0, after=None, limit=2)
        rest = await store.entries("t1", since_ms=0, after=first[-1].position, limit=2)
        assert [e.position for e in first + rest] == [e.position for e in every]
        assert [e.position for e in await store.entries("t1", since_ms=15, after=None, limit=10)] == [
            (20, 0, 0),
            (20, 0, 1),
        ]
        assert [e.tenant for e in await store.entries("t2", since_ms=0, after=None, limit=10)] == ["t2"]

    async def test_a_moved_instance_leaves_its_old_state_and_rule(self, store: AlertReadModelStore) -> None:
        await store.apply(AlertModelBatch(instances=[instance("a", 1, state="pending", rule="cpu")]))
        await store.apply(AlertModelBatch(instances=[instance("a", 2, state="firing", rule="disk")]))
        assert await store.instances("t1", ["pending"]) == []
        assert await store.instances("t1", ["firing"], rule="cpu") == []
        assert [(i.state, i.sequence) for i in await store.instances("t1", ["firing"], rule="disk")] == [("firing", 2)]

    async def test_a_batch_larger_than_one_transaction_is_applied_whole(self, store: AlertReadModelStore) -> None:
        # DynamoDB transactions hold 100 items: this batch needs several.
        batch = AlertModelBatch(
            instances=[instance(f"i{n}", 1, state="firing" if n % 3 else "pending") for n in range(130)],
            acks=[ack(f"i{n}", 1) for n in range(60)],
            entries=[entry(n, n % 2, n) for n in range(120)],
            positions={0: 120, 1: 121},
        )
        await store.apply(batch)
        assert len(await store.instances("t1", ["firing"])) == len([n for n in range(130) if n % 3])
        assert len(await store.instances("t1", ["pending"])) == len([n for n in range(130) if not n % 3])
        assert len(await store.acks("t1", [f"i{n}" for n in range(130)])) == 60
        assert len(await store.entries("t1", since_ms=0, after=None, limit=500)) == 120
        assert await store.positions() == {0: 120, 1: 121}

    async def test_hostile_names_stay_in_their_tenant_and_rule(self, store: AlertReadModelStore) -> None:
        odd = '["t1","x"],\u0000"'
        await store.apply(
            AlertModelBatch(
                instances=[instance("a", 1, tenant=odd, rule=odd), instance(odd, 1, rule='r",'), instance("b", 1)]
            )
        )
        assert [i.instance_id for i in await store.instances(odd, ["firing"], rule=odd)] == ["a"]
        assert [i.instance_id for i in await store.instances("t1", ["firing"], rule='r",')] == [odd]
        assert [i.instance_id for i in await store.instances("t1", ["firing"], rule="r")] == ["b"]
        assert await store.entries("t1", since_ms=0, after=None, limit=0) == []

    async def test_positions_only_move_forward(self, store: AlertReadModelStore) -> None:
        assert await store.positions() == {}
        await store.apply(AlertModelBatch(positions={0: 5, 1: 2}))
        await store.apply(AlertModelBatch(positions={0: 3, 2: 1}))
        assert await store.positions() == {0: 5, 1: 2, 2: 1}


class TestMemoryAlertReadModels(AlertReadModelContract):
    async def make_store(self, tmp_path: Path) -> AlertReadModelStore:
        return MemoryAlertReadModels()


class TestSqliteAlertReadModels(AlertReadModelContract):
    async def make_store(self, tmp_path: Path) -> AlertReadModelStore:
        return SqliteAlertReadModels(tmp_path / "alerts.db")

    async def test_survives_reopening(self, tmp_path: Path) -> None:
        store = SqliteAlertReadModels(tmp_path / "alerts.db")
        await store.start()
        await store.apply(AlertModelBatch(instances=[instance("a", 1)], entries=[entry(1, 0, 0)], positions={0: 1}))
        await store.close()
        again = SqliteAlertReadModels(tmp_path / "alerts.db")
        await again.start()
        try:
            assert await again.positions() == {0: 1}
            assert list(await again.get_instances("t1", ["a"])) == ["a"]
            assert len(await again.entries("t1", since_ms=0, after=None, limit=5)) == 1
        finally:
            await again.close()


# ---------------------------------------------------------------------------- DynamoDB


def dynamodb_models(server: DynamoDBService, prefix: str | None = None, *, source: str = "") -> DynamoDBAlertReadModels:
    """A store on DynamoDB Local with its own table; quick retries so contention stays fast."""
    return DynamoDBAlertReadModels.from_url(
        server.url(prefix=prefix or f"t{uuid.uuid4().hex[:10]}_", credentials=False),
        source=source,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        base_delay_ms=1,
        max_delay_ms=20,
    )


class TestDynamoDBAlertReadModels(AlertReadModelContract):
    @pytest.fixture(autouse=True)
    def _server(self, dynamodb_local: DynamoDBService) -> None:
        self.server = dynamodb_local

    async def make_store(self, tmp_path: Path) -> AlertReadModelStore:
        return dynamodb_models(self.server)


async def _state(store: AlertReadModelStore, tenant: str, ids: list[str]) -> tuple[object, ...]:
    """Everything a reader can see of these instances (listings sorted: any order is allowed)."""
    listed = {
        s: sorted((i.instance_id, i.sequence, i.payload) for i in await store.instances(tenant, [s]))
        for s in ("pending", "firing", "resolved", "inactive")
    }
    held = {k: (v.state, v.sequence, v.payload) for k, v in (await store.get_instances(tenant, ids)).items()}
    acks = {k: (v.revision, v.author) for k, v in (await store.acks(tenant, ids)).items()}
    entries = [e.position for e in await store.entries(tenant, since_ms=0, after=None, limit=10_000)]
    return listed, held, acks, entries, await store.positions()


def _history(rounds: int, ids: int) -> list[AlertModelBatch]:
    states = ("pending", "firing", "resolved", "inactive")
    return [
        AlertModelBatch(
            instances=[instance(f"i{n}", r + 1, state=states[(r + n) % 4], rule=f"r{n % 3}") for n in range(ids)],
            acks=[ack(f"i{n}", r + 1, acked=bool(r % 2)) for n in range(0, ids, 4)],
            entries=[entry(r * 10 + n % 7, n % 2, r * ids + n) for n in range(ids)],
            positions={0: (r + 1) * ids, 1: (r + 1) * ids},
        )
        for r in range(rounds)
    ]


async def test_dynamodb_concurrent_writers_converge_to_the_single_writer_state(
    dynamodb_local: DynamoDBService,
) -> None:
    # Every query replica projects the same topic into the same tables: two writers apply
    # the same batches concurrently, one of them lagging a batch behind.
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    a, b = dynamodb_models(dynamodb_local, prefix), dynamodb_models(dynamodb_local, prefix)
    want = MemoryAlertReadModels()
    batches = _history(3, 20)
    await a.start()
    await b.start()
    try:
        for n, batch in enumerate(batches):
            await want.apply(batch)
            lagging = [b.apply(batches[n - 1])] if n else []
            await asyncio.gather(a.apply(batch), b.apply(batch), *lagging)
        ids = [f"i{n}" for n in range(20)]
        assert await _state(a, "t1", ids) == await _state(want, "t1", ids)
    finally:
        await a.close()
        await b.close()


async def test_dynamodb_crash_mid_batch_leaves_positions_behind_and_reapplying_converges(
    dynamodb_local: DynamoDBService,
) -> None:
    store = dynamodb_models(dynamodb_local)
    want = MemoryAlertReadModels()
    first, second = _history(2, 110)  # each needs several transactions
    await store.start()
    try:
        await store.apply(first)
        await want.apply(first)
        await want.apply(second)
        calls = 0

        def crash(**_: Any) -> Any:  # the third transaction of the batch dies with the process
            nonlocal calls
            calls += 1
            if calls == 3:
                return _Refused(400), {"Error": {"Code": "ValidationException", "Message": "injected crash"}}
            return None

        store.client.meta.events.register("before-call.dynamodb.TransactWriteItems", crash)
        with pytest.raises(StorageError, match="injected crash"):
            await store.apply(second)
        store.client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", crash)
        assert await store.positions() == first.positions  # never ahead of the data
        ids = [f"i{n}" for n in range(110)]
        assert await _state(store, "t1", ids) != await _state(want, "t1", ids)  # part of the batch is in
        await store.apply(second)
        assert await _state(store, "t1", ids) == await _state(want, "t1", ids)
    finally:
        await store.close()


async def test_dynamodb_other_source_is_rebuilt_and_the_old_one_deleted(dynamodb_local: DynamoDBService) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    first = dynamodb_models(dynamodb_local, prefix, source="kafka://a:9092")
    await first.start()
    await first.apply(AlertModelBatch(instances=[instance("a", 1)], entries=[entry(1, 0, 0)], positions={0: 1}))
    await first.close()
    same = dynamodb_models(dynamodb_local, prefix, source="kafka://a:9092")
    await same.start()
    assert await same.positions() == {0: 1}  # reopened: kept
    await same.close()
    moved = dynamodb_models(dynamodb_local, prefix, source="kafka://b:9092")
    await moved.start()
    try:
        assert await moved.positions() == {}
        assert await moved.get_instances("t1", ["a"]) == {}
        assert await moved.instances("t1", ["firing"]) == []
        assert await moved.entries("t1", since_ms=0, after=None, limit=5) == []
        # Nothing of the first log's models is left in the table.
        left = await moved.client.scan(TableName=moved.table)
        assert [i["pk"]["S"] for i in left["Items"]] == ['["meta"]']
    finally:
        await moved.close()


def test_alert_read_models_follow_the_hot_store_url(tmp_path: Path) -> None:
    ddb = open_alert_read_models(
        hot_store_url="dynamodb://k:s@eu-west-1?prefix=p_", event_log_url="kafka://b:9092", data_dir=tmp_path
    )
    assert isinstance(ddb, DynamoDBAlertReadModels)
    assert ddb.table == "p_alert_read_models"
    local = open_alert_read_models(
        hot_store_url=f"sqlite:///{tmp_path}/hot.db", event_log_url="kafka://b:9092", data_dir=tmp_path
    )
    assert isinstance(local, SqliteAlertReadModels)
