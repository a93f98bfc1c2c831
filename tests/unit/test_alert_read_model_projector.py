"""The alert read-model projector (query_side/alerts/read_models.py): re-applying what the
store holds changes nothing, a restart reads only what the topic gained, tenants stay apart."""

from __future__ import annotations

from pathlib import Path

from contracts.argus.alerts.v1 import alerts_pb2
from core.adapters.memory_alert_read_models import MemoryAlertReadModels
from core.adapters.memory_event_log import MemoryEventLog
from core.adapters.sqlite_alert_read_models import SqliteAlertReadModels
from core.alerting.acks import acknowledge
from core.alerting.lifecycle import AlertState, InstanceKey
from core.events import ALERTS_TOPIC, make_event
from core.ports import LogRecord
from query_side.alerts.active import ActiveAlerts, state_filter
from query_side.alerts.history import AlertHistory
from query_side.alerts.read_models import AlertReadModelProjector
from tests.unit.test_active_alerts import A, B, append, changed


class CountingLog(MemoryEventLog):
    """Remembers every (partition, offset) it was asked to read from."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, int]] = []

    async def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[LogRecord]:
        if topic == ALERTS_TOPIC:
            self.reads.append((partition, offset))
        return await super().read(topic, partition, offset, max_records)


class ForgetfulStore(MemoryAlertReadModels):
    """Holds its effects but reports no positions: the projector re-applies everything."""

    async def positions(self) -> dict[int, int]:
        return {}


async def _seed(log: MemoryEventLog) -> str:
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.PENDING, 1), partition=0)
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.FIRING, 2), partition=1)
    await append(log, changed(B, "cpu", {"host": "h1"}, AlertState.FIRING, 1), partition=2)
    iid = InstanceKey.of(A, "cpu", {"host": "h1"}).instance_id
    await acknowledge(log, tenant=A, instance_id=iid, author="ops", comment="on it", now_ms=3_000)
    sent = alerts_pb2.NotificationSent(tenant=A, notification_id="n1", receiver="pager", firing=[iid], created_ms=4_000)
    await append(log, make_event(sent, identity=b"n1", partition_key=b"k", time_ms=4_000), partition=3)
    return iid


Snapshot = tuple[list[dict[str, object]], list[tuple[dict[str, object], tuple[int, int, int]]]]


async def _snapshot(projector: AlertReadModelProjector, tenant: str) -> Snapshot:
    active = ActiveAlerts(projector.events, projector=projector)
    history = AlertHistory(projector.events, projector=projector)
    await active.refresh()
    alerts = [i.to_json() for i in await active.instances(tenant, state_filter("all"))]
    page = await history.page(tenant, limit=100)
    return alerts, [(e.to_json(), e.position) for e in page.entries]


async def test_reapplying_the_whole_topic_changes_nothing() -> None:
    log = MemoryEventLog()
    await _seed(log)
    store = ForgetfulStore()
    first = await _snapshot(AlertReadModelProjector(log, store), A)
    # A new projector over the same store starts from offset 0 again (positions "lost").
    again = await _snapshot(AlertReadModelProjector(log, store), A)
    assert again == first
    alerts, entries = first
    assert [a["acknowledged"] is not None for a in alerts] == [True]
    kinds = [e["kind"] for e, _ in entries]
    assert kinds == ["state", "state", "acknowledged", "sent"]
    assert entries[-1][0]["rules"] == ["cpu"]  # the notification names its rule


async def test_a_restart_reads_only_what_the_topic_gained(tmp_path: Path) -> None:
    log = CountingLog()
    iid = await _seed(log)
    projector = AlertReadModelProjector(log, SqliteAlertReadModels(tmp_path / "alerts.db"))
    before = await _snapshot(projector, A)
    await projector.close()
    ends = {p: await log.end_offset(ALERTS_TOPIC, p) for p in range(4)}

    log.reads.clear()
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.RESOLVED, 5), partition=1)
    restarted = AlertReadModelProjector(log, SqliteAlertReadModels(tmp_path / "alerts.db"))
    try:
        alerts, entries = await _snapshot(restarted, A)
    finally:
        await restarted.close()
    # Only the partition that gained is read, from where the store left it (never from 0
    # again); the others are known to be at their end offsets.
    assert log.reads == [(1, ends[1])]
    assert [(a["instance_id"], a["state"], a["acknowledged"]) for a in alerts] == [(iid, "resolved", None)]
    assert entries[: len(before[1])] == before[1]
    assert [e["kind"] for e, _ in entries] == ["state", "state", "acknowledged", "sent", "state"]


async def test_a_projector_skips_what_another_writer_of_its_store_projected() -> None:
    # Query replicas sharing one store (DynamoDB, decision 0059), or `argus alerts list`
    # beside the server: each follows the store's positions, not only its own.
    log = CountingLog()
    await _seed(log)
    store = MemoryAlertReadModels()
    leader, follower = AlertReadModelProjector(log, store), AlertReadModelProjector(log, store)
    await leader.catch_up()
    await follower.catch_up()
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.RESOLVED, 5), partition=1)
    await leader.catch_up()
    log.reads.clear()
    await follower.catch_up()
    assert log.reads == []
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.FIRING, 6), partition=1)
    await follower.catch_up()
    assert log.reads == [(1, await log.end_offset(ALERTS_TOPIC, 1) - 1)]  # only the new record


async def test_tenants_see_only_their_own_models() -> None:
    log = MemoryEventLog()
    await _seed(log)
    projector = AlertReadModelProjector(log, MemoryAlertReadModels())
    alerts_b, entries_b = await _snapshot(projector, B)
    assert [a["acknowledged"] for a in alerts_b] == [None]
    assert [e["kind"] for e, _ in entries_b] == ["state"]
    assert await _snapshot(projector, "nobody") == ([], [])


async def test_a_rule_filtered_history_pages_through_sparse_matches() -> None:
    log = MemoryEventLog()
    for host in range(12):
        rule = "cpu" if host % 3 == 0 else "disk"  # 4 of 12 instances match
        await append(log, changed(A, rule, {"host": f"h{host}"}, AlertState.FIRING, host + 1), partition=host % 4)
    history = AlertHistory(log)
    await history.refresh()
    seen: list[tuple[str, ...]] = []
    cursor, pages = "", 0
    while True:
        page = await history.page(A, rule="cpu", cursor=cursor, limit=3)
        seen.extend(e.rules for e in page.entries)
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break
    assert (seen, pages) == ([("cpu",)] * 4, 2)
    assert (await history.page(A, rule="cpu", limit=4)).next_cursor == ""  # exactly full: no next page


async def test_a_store_projected_from_another_event_log_is_rebuilt(tmp_path: Path) -> None:
    """alerts.db names the log it came from: pointed at another log (a data dir reused with
    another broker), its positions mean nothing there, so it starts over."""
    first = MemoryEventLog()
    await _seed(first)
    projector = AlertReadModelProjector(first, SqliteAlertReadModels(tmp_path / "alerts.db", source="kafka://a:9092"))
    seeded = await _snapshot(projector, A)
    await projector.close()
    assert seeded[0], "the first log's alerts are there"

    # The same source again keeps what it projected (no rebuild on every start).
    same = SqliteAlertReadModels(tmp_path / "alerts.db", source="kafka://a:9092")
    await same.start()
    try:
        assert await same.positions(), "positions kept"
    finally:
        await same.close()

    other = MemoryEventLog()  # empty: nothing of the first log's alerts may show
    moved = AlertReadModelProjector(other, SqliteAlertReadModels(tmp_path / "alerts.db", source="kafka://b:9092"))
    try:
        assert await _snapshot(moved, A) == ([], [])
        assert await moved.store.positions() == {}
    finally:
        await moved.close()
