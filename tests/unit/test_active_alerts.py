"""The active-alerts view (query_side/alerts/active.py) and its HTTP routes
(query_side/alerts/http.py): latest sequence wins, tenants isolated, unknown types skipped."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from command_side.config.alerts import ApplyAlertConfig, apply_alert_config
from contracts.argus.alerts.v1 import alerts_pb2
from contracts.argus.events.v1 import events_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.adapters.memory_hot_store import MemoryHotStore
from core.alerting.lifecycle import AlertState, InstanceKey
from core.alerting.model import AlertConfig, AlertRule, Condition, ConditionOp, RuleQuery
from core.alerting.state import AlertConfigState
from core.config_view import ConfigView
from core.errors import InvalidArgument, Unauthenticated
from core.events import ALERTS_TOPIC, CONFIG_TOPIC, make_event
from core.model import DEFAULT_TIERS
from core.ports import Event
from query_side.alerts.active import ActiveAlerts, state_filter
from query_side.alerts.http import AlertsApi
from query_side.engine import QueryEngine
from query_side.http_gateway import make_http_app

A, B = "tenant-a", "tenant-b"
STATES = {
    AlertState.INACTIVE: alerts_pb2.ALERT_STATE_INACTIVE,
    AlertState.PENDING: alerts_pb2.ALERT_STATE_PENDING,
    AlertState.FIRING: alerts_pb2.ALERT_STATE_FIRING,
    AlertState.RESOLVED: alerts_pb2.ALERT_STATE_RESOLVED,
}


def changed(
    tenant: str, rule: str, labels: dict[str, str], to: AlertState, sequence: int, *, value: float = 1.0
) -> Event:
    key = InstanceKey.of(tenant, rule, labels)
    message = alerts_pb2.AlertStateChanged(
        tenant=tenant,
        rule=rule,
        instance_labels=labels,
        to_state=STATES[to],
        value=value,
        evaluated_at_ms=1000 * sequence,
        since_ms=1000 * sequence,
        sequence=sequence,
        severity="page",
        instance_id=key.instance_id,
    )
    return make_event(
        message,
        identity=f"{key.instance_id}/{sequence}".encode(),
        partition_key=bytes.fromhex(key.instance_id),
        time_ms=1000 * sequence,
    )


async def append(log: MemoryEventLog, *events: Event, partition: int = 0) -> None:
    await log.ensure_topic(ALERTS_TOPIC, 4)
    await log.append(ALERTS_TOPIC, [(partition, e) for e in events])


async def test_latest_sequence_wins_whatever_the_order_read() -> None:
    log = MemoryEventLog()
    # Sequence 3 (resolved) sits on an earlier partition than 2 (firing): read first, it must stay.
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.RESOLVED, 3), partition=0)
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.FIRING, 2), partition=1)
    view = ActiveAlerts(log)
    await view.refresh()
    assert (await view.instances(A)) == []  # resolved is not active
    [held] = await view.instances(A, state_filter("all"))
    assert (held.state, held.sequence) == (AlertState.RESOLVED, 3)

    # Followed: a newer transition moves it on, a re-appended old one (a duplicate) does not.
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.PENDING, 4), partition=1)
    await append(log, changed(A, "cpu", {"host": "h1"}, AlertState.FIRING, 2), partition=2)
    await view.refresh()
    [held] = await view.instances(A)
    assert (held.state, held.sequence) == (AlertState.PENDING, 4)


async def test_tenants_are_isolated_and_states_filter() -> None:
    log = MemoryEventLog()
    await append(
        log,
        changed(A, "cpu", {"host": "h1"}, AlertState.FIRING, 1),
        changed(A, "cpu", {"host": "h2"}, AlertState.PENDING, 1),
        changed(B, "cpu", {"host": "h1"}, AlertState.RESOLVED, 5),
    )
    view = ActiveAlerts(log)
    await view.refresh()
    # Same rule and labels in B: another instance, never mixed into A's.
    assert [(i.labels["host"], i.state) for i in (await view.instances(A))] == [
        ("h1", AlertState.FIRING),
        ("h2", AlertState.PENDING),
    ]
    assert [i.labels["host"] for i in (await view.instances(A, state_filter("firing")))] == ["h1"]
    assert (await view.instances(B)) == []
    assert [i.tenant for i in (await view.instances(B, state_filter("resolved")))] == [B]
    assert (await view.instances("nobody", state_filter("all"))) == []
    with pytest.raises(InvalidArgument):
        state_filter("burning")


async def test_unknown_types_and_undecodable_records_are_skipped() -> None:
    log = MemoryEventLog()
    other = make_event(events_pb2.ApiKeyRevoked(), identity=b"other", partition_key=b"k", time_ms=1)
    broken = changed(A, "cpu", {"host": "h9"}, AlertState.FIRING, 1)
    broken = Event(
        event_id=b"\x01" * 32,
        type=broken.type,
        schema_version=broken.schema_version,
        time_ms=broken.time_ms,
        partition_key=broken.partition_key,
        payload=b"\xff\xff\xff",
    )
    await append(log, other, broken, changed(A, "cpu", {"host": "h1"}, AlertState.FIRING, 1))
    view = ActiveAlerts(log)
    await view.refresh()
    assert [i.labels["host"] for i in (await view.instances(A))] == ["h1"]
    assert view.skipped == 2


async def test_no_alerts_topic_yet_is_empty() -> None:
    view = ActiveAlerts(MemoryEventLog())
    await view.refresh()
    assert (await view.instances(A, state_filter("all"))) == []


class TwoKeys:
    def tenant_for(self, api_key: str | None) -> str:
        tenants = {"key-a": A, "key-b": B}
        if api_key not in tenants:
            raise Unauthenticated("unknown or revoked API key")
        return tenants[api_key]


def rule(name: str) -> AlertRule:
    return AlertRule(
        name=name,
        query=RuleQuery(metric="cpu", agg="avg"),
        window_ms=60_000,
        condition=Condition(op=ConditionOp.ABOVE, threshold=90.0),
    )


@pytest.fixture
async def http() -> AsyncIterator[TestClient[Any, Any]]:
    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    config = ConfigView(log, [AlertConfigState()])
    await config.refresh()
    for tenant, name in ((A, "cpu_high"), (B, "disk_full")):
        command = ApplyAlertConfig(tenant=tenant, config=AlertConfig(rules={name: rule(name)}), author="t")
        await apply_alert_config(command, view=config, clock_ms=lambda: 1)
    await append(
        log,
        changed(A, "cpu_high", {"host": "h1"}, AlertState.FIRING, 2, value=math.nan),
        changed(A, "cpu_high", {"host": "h2"}, AlertState.RESOLVED, 3),
        changed(B, "disk_full", {"host": "h1"}, AlertState.FIRING, 1),
    )
    active = ActiveAlerts(log)
    await active.refresh()
    store = MemoryHotStore()
    app = make_http_app(
        QueryEngine(store, store, DEFAULT_TIERS, clock=lambda: 1),
        TwoKeys(),
        alerts=AlertsApi(active=active, config=config.state(AlertConfigState)),
    )
    async with TestClient(TestServer(app)) as client:
        yield client


async def get(http: TestClient[Any, Any], path: str, key: str) -> Any:
    response = await http.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_http_alerts_are_the_keys_tenants_only(http: TestClient[Any, Any]) -> None:
    a = (await get(http, "/api/v1/alerts", "key-a"))["alerts"]
    assert [(x["rule"], x["labels"], x["state"], x["value"]) for x in a] == [
        ("cpu_high", {"host": "h1"}, "firing", None)  # NaN (no data) is null
    ]
    b = (await get(http, "/api/v1/alerts?state=all", "key-b"))["alerts"]
    assert [(x["rule"], x["state"]) for x in b] == [("disk_full", "firing")]
    resolved = (await get(http, "/api/v1/alerts?state=resolved", "key-a"))["alerts"]
    assert [x["labels"]["host"] for x in resolved] == ["h2"]


async def test_http_rules_carry_their_instances(http: TestClient[Any, Any]) -> None:
    a = (await get(http, "/api/v1/alerts/rules", "key-a"))["rules"]
    assert [r["name"] for r in a] == ["cpu_high"]
    assert sorted(i["state"] for i in a[0]["instances"]) == ["firing", "resolved"]
    assert (a[0]["firing"], a[0]["pending"]) == (1, 0)
    b = (await get(http, "/api/v1/alerts/rules", "key-b"))["rules"]
    assert [r["name"] for r in b] == ["disk_full"]
    assert [i["labels"] for i in b[0]["instances"]] == [{"host": "h1"}]


async def test_http_refuses_no_key_and_a_bad_state(http: TestClient[Any, Any]) -> None:
    assert (await http.get("/api/v1/alerts")).status == 401
    assert (await http.get("/api/v1/alerts/rules", headers={"Authorization": "Bearer nope"})).status == 401
    response = await http.get("/api/v1/alerts?state=burning", headers={"Authorization": "Bearer key-a"})
    assert response.status == 400
    assert (await response.json())["parameter"] == "state"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_http_ack_shows_in_the_view_and_unack_clears_it(http: TestClient[Any, Any]) -> None:
    (h1,) = (await get(http, "/api/v1/alerts", "key-a"))["alerts"]
    assert h1["acknowledged"] is None
    response = await http.post(
        f"/api/v1/alerts/{h1['instance_id']}/ack", json={"comment": "on it"}, headers=auth("key-a")
    )
    assert response.status == 200, await response.text()
    (acked,) = (await get(http, "/api/v1/alerts", "key-a"))["alerts"]
    assert acked["acknowledged"]["comment"] == "on it"
    assert acked["acknowledged"]["by"].startswith("key:")  # the key's id, never the key
    assert "key-a" not in acked["acknowledged"]["by"]
    again = await http.post(f"/api/v1/alerts/{h1['instance_id']}/ack", headers=auth("key-a"))
    assert again.status == 200  # idempotent
    response = await http.delete(f"/api/v1/alerts/{h1['instance_id']}/ack", headers=auth("key-a"))
    assert response.status == 200, await response.text()
    (cleared,) = (await get(http, "/api/v1/alerts", "key-a"))["alerts"]
    assert cleared["acknowledged"] is None
    second = await http.delete(f"/api/v1/alerts/{h1['instance_id']}/ack", headers=auth("key-a"))
    assert second.status == 400  # FailedPrecondition
    assert "not acknowledged" in (await second.json())["error"]


async def test_http_tenant_b_cannot_ack_tenant_a_alert(http: TestClient[Any, Any]) -> None:
    (h1,) = (await get(http, "/api/v1/alerts", "key-a"))["alerts"]
    foreign = await http.post(f"/api/v1/alerts/{h1['instance_id']}/ack", json={}, headers=auth("key-b"))
    unknown = await http.post(f"/api/v1/alerts/{'0' * 64}/ack", json={}, headers=auth("key-b"))
    assert (foreign.status, unknown.status) == (404, 404)
    # The same answer as for an id that does not exist: nothing says A's id is real.
    assert (await foreign.json())["error"].replace(h1["instance_id"], "ID") == (await unknown.json())["error"].replace(
        "0" * 64, "ID"
    )
    (still,) = (await get(http, "/api/v1/alerts", "key-a"))["alerts"]
    assert still["acknowledged"] is None
    assert (await http.post(f"/api/v1/alerts/{h1['instance_id']}/ack")).status == 401
    bad = await http.post(f"/api/v1/alerts/{h1['instance_id']}/ack", data=b"{", headers=auth("key-a"))
    assert bad.status == 400
