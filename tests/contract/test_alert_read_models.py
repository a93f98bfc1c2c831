"""Contract suite of the AlertReadModelStore port: every adapter runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from core.adapters.memory_alert_read_models import MemoryAlertReadModels
from core.adapters.sqlite_alert_read_models import SqliteAlertReadModels
from core.ports import AlertModelBatch, AlertReadModelStore, StoredAck, StoredAlertInstance, StoredHistoryEntry


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
