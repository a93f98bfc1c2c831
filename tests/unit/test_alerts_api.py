"""The alerts operator API over HTTP: silences (command_side/config/http.py) and history
(query_side/alerts/history.py), as the composition (argus/alerts_api.py) mounts them on the
query app. Tenants are apart: a key sees and changes only its tenant's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from argus.alerts_api import alerts_api
from command_side.config.commands import CreateApiKey
from command_side.config.handlers import create_api_key
from contracts.argus.alerts.v1 import alerts_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.adapters.memory_hot_store import MemoryHotStore
from core.alerting.lifecycle import AlertState
from core.alerting.state import AlertConfigState
from core.auth import ApiKeyRegistry, generate_key
from core.config_view import ConfigView
from core.events import ALERTS_TOPIC, CONFIG_TOPIC, make_event
from core.model import DEFAULT_TIERS
from core.ports import Event
from query_side.alerts.active import ActiveAlerts
from query_side.engine import QueryEngine
from query_side.http_gateway import make_http_app
from tests.unit.test_active_alerts import changed

A, B = "tenant-a", "tenant-b"
NOW = 1_000_000_000


def notification(tenant: str, fingerprint: str, *, attempt: int, failed: bool, created_ms: int) -> Event:
    fields: dict[str, Any] = dict(
        tenant=tenant,
        notification_id=f"n-{tenant}-{created_ms}",
        receiver="oncall",
        channel="webhook",
        target="http://hook.example/x",
        attempt=attempt,
        firing=[fingerprint],
        created_ms=created_ms,
    )
    message = alerts_pb2.NotificationFailed(error="503", outcome="retry", **fields) if failed else None
    payload = message if message is not None else alerts_pb2.NotificationSent(**fields)
    return make_event(
        payload, identity=f"{tenant}/{created_ms}/{attempt}".encode(), partition_key=b"k", time_ms=created_ms
    )


@dataclass
class Api:
    client: TestClient[Any, Any]
    log: MemoryEventLog
    key_a: str
    key_b: str
    fingerprint_a: str


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    view = ConfigView(log, [ApiKeyRegistry(), AlertConfigState()])
    await view.refresh()
    keys = {A: generate_key(), B: generate_key()}
    for tenant, key in keys.items():
        await create_api_key(CreateApiKey(api_key=key, tenant=tenant, author="t"), view=view, clock_ms=lambda: 1)
    await log.ensure_topic(ALERTS_TOPIC, 4)
    firing = changed(A, "cpu", {"host": "h1"}, AlertState.FIRING, 2)
    fingerprint = alerts_pb2.AlertStateChanged.FromString(firing.payload).instance_id
    events = [
        (0, changed(A, "cpu", {"host": "h1"}, AlertState.PENDING, 1)),
        (0, firing),
        (1, notification(A, fingerprint, attempt=1, failed=True, created_ms=2500)),
        (1, notification(A, fingerprint, attempt=2, failed=False, created_ms=2600)),
        (2, changed(A, "disk", {"host": "h9"}, AlertState.FIRING, 3)),
        (3, changed(B, "cpu", {"host": "b1"}, AlertState.FIRING, 2)),
        (0, changed(A, "cpu", {"host": "h1"}, AlertState.RESOLVED, 4)),
    ]
    for partition, event in events:
        await log.append(ALERTS_TOPIC, [(partition, event)])
    active = ActiveAlerts(log)
    store = MemoryHotStore()
    registry = view.state(ApiKeyRegistry)
    app = make_http_app(QueryEngine(store, store, DEFAULT_TIERS, clock=lambda: NOW), registry)
    extension = alerts_api(event_log=log, keys=registry, view=view, active=active, clock_ms=lambda: NOW)
    assert extension.http is not None and extension.prime is not None
    extension.http(app)
    await extension.prime()
    async with TestClient(TestServer(app)) as client:
        yield Api(client, log, keys[A], keys[B], fingerprint)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_silence_create_list_expire(api: Api) -> None:
    body = {
        "matchers": ["alertname=cpu", {"name": "host", "op": "=~", "value": "web-.*"}],
        "for": "2h",
        "comment": "reboot",
    }
    r = await api.client.post("/api/v1/silences", json=body, headers=auth(api.key_a))
    assert r.status == 201, await r.text()
    made = (await r.json())["silence"]
    assert made["ends_ms"] - made["starts_ms"] == 2 * 3_600_000 and made["state"] == "active"
    assert made["author"].startswith("key:") and api.key_a not in made["author"]
    # The same request again is the same silence.
    again = await api.client.post("/api/v1/silences", json=body, headers=auth(api.key_a))
    assert (await again.json())["silence"]["id"] == made["id"]

    listed = (await (await api.client.get("/api/v1/silences", headers=auth(api.key_a))).json())["silences"]
    assert [s["id"] for s in listed] == [made["id"]]

    r = await api.client.delete(f"/api/v1/silences/{made['id']}", headers=auth(api.key_a))
    assert r.status == 200 and (await r.json())["expired"] is True
    # Expired: gone from the default list, shown with ?all=true.
    assert (await (await api.client.get("/api/v1/silences", headers=auth(api.key_a))).json())["silences"] == []
    shown = (await (await api.client.get("/api/v1/silences?all=true", headers=auth(api.key_a))).json())["silences"]
    assert [s["state"] for s in shown] == ["expired"]


async def test_silences_are_tenant_isolated(api: Api) -> None:
    body = {"matchers": ["alertname=cpu"], "ends_ms": NOW + 60_000, "comment": "a's"}
    made = (await (await api.client.post("/api/v1/silences", json=body, headers=auth(api.key_a))).json())["silence"]
    seen_by_b = (await (await api.client.get("/api/v1/silences?all=1", headers=auth(api.key_b))).json())["silences"]
    assert seen_by_b == []
    r = await api.client.delete(f"/api/v1/silences/{made['id']}", headers=auth(api.key_b))
    assert r.status == 404 and "error" in await r.json()
    still = (await (await api.client.get("/api/v1/silences", headers=auth(api.key_a))).json())["silences"]
    assert [s["id"] for s in still] == [made["id"]]


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"matchers": [], "for": "1h", "comment": "x"}, "matchers"),
        ({"matchers": ["a=b"], "for": "1h", "comment": " "}, "comment"),
        ({"matchers": ["a=b"], "comment": "x"}, "for"),
        ({"matchers": ["a=b"], "for": "1h", "ends_ms": NOW + 5, "comment": "x"}, "for"),
        ({"matchers": ["a=~("], "for": "1h", "comment": "x"}, "matchers[0]"),
        ({"matchers": ["a=b"], "ends_ms": NOW - 1, "comment": "x"}, "ends_ms"),
    ],
)
async def test_bad_silences_are_400_naming_the_field(api: Api, body: dict[str, Any], parameter: str) -> None:
    r = await api.client.post("/api/v1/silences", json=body, headers=auth(api.key_a))
    assert r.status == 400
    assert (await r.json())["parameter"] == parameter


async def test_silences_need_a_key(api: Api) -> None:
    assert (await api.client.get("/api/v1/silences")).status == 401
    r = await api.client.post("/api/v1/silences", json={}, headers=auth("not-a-key"))
    assert r.status == 401


async def history(api: Api, query: str, key: str) -> Any:
    r = await api.client.get(f"/api/v1/alerts/history{query}", headers=auth(key))
    assert r.status == 200, await r.text()
    return await r.json()


async def test_history_is_the_tenants_timeline(api: Api) -> None:
    entries = (await history(api, "", api.key_a))["entries"]
    assert [(e["kind"], e["rules"]) for e in entries] == [
        ("state", ["cpu"]),
        ("state", ["cpu"]),
        ("failed", ["cpu"]),
        ("sent", ["cpu"]),
        ("state", ["disk"]),
        ("state", ["cpu"]),
    ]
    assert [e["time_ms"] for e in entries] == sorted(e["time_ms"] for e in entries)
    failed, sent = entries[2], entries[3]
    assert (failed["receiver"], failed["attempt"], failed["error"]) == ("oncall", 1, "503")
    assert (sent["attempt"], sent["firing"]) == (2, [api.fingerprint_a])
    assert [e["to"] for e in entries if e["kind"] == "state" and e["rules"] == ["cpu"]] == [
        "pending",
        "firing",
        "resolved",
    ]
    b = (await history(api, "", api.key_b))["entries"]
    assert [(e["kind"], e["rules"], e["labels"]) for e in b] == [("state", ["cpu"], {"host": "b1"})]


async def test_history_filters_and_pages(api: Api) -> None:
    disk = (await history(api, "?rule=disk", api.key_a))["entries"]
    assert [e["rules"] for e in disk] == [["disk"]]
    since = (await history(api, "?since=2600", api.key_a))["entries"]
    assert all(e["time_ms"] >= 2600 for e in since) and len(since) == 3

    everything = (await history(api, "", api.key_a))["entries"]
    paged: list[Any] = []
    cursor = ""
    while True:
        page = await history(api, f"?limit=4&cursor={cursor}" if cursor else "?limit=4", api.key_a)
        assert len(page["entries"]) <= 4
        paged += page["entries"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == everything

    for query, parameter in (("?limit=0", "limit"), ("?limit=5000", "limit"), ("?cursor=%21%21", "cursor")):
        r = await api.client.get(f"/api/v1/alerts/history{query}", headers=auth(api.key_a))
        assert r.status == 400 and (await r.json())["parameter"] == parameter


async def test_unreadable_and_oversized_bodies_are_400(api: Api) -> None:
    r = await api.client.post("/api/v1/silences", data=b"{not json", headers=auth(api.key_a))
    assert r.status == 400 and (await r.json())["parameter"] == "body"
    huge = {"matchers": ["a=b"], "for": "1h", "comment": "x" * 70_000}
    r = await api.client.post("/api/v1/silences", json=huge, headers=auth(api.key_a))
    assert r.status == 400 and (await r.json())["parameter"] == "body"


async def test_history_and_subscribe_events_show_acks_and_escalations() -> None:
    from core.alerting.lifecycle import InstanceKey
    from query_side.alerts.grpc_service import alert_event
    from query_side.alerts.history import AlertHistory

    log = MemoryEventLog()
    await log.ensure_topic(ALERTS_TOPIC, 4)
    instance = InstanceKey.of("acme", "hot", {"host": "a"}).instance_id
    ack = alerts_pb2.AlertAcknowledged(
        tenant="acme", instance_id=instance, author="key:1234", comment="on it", time_ms=5_000, revision=1
    )
    step = alerts_pb2.AlertEscalated(
        tenant="acme", policy="page-then-team", step=1, receivers=["team"], firing=[instance], created_ms=9_000
    )
    await log.append(
        ALERTS_TOPIC,
        [
            (0, changed("acme", "hot", {"host": "a"}, AlertState.FIRING, 1)),
            (0, make_event(ack, identity=b"ack", partition_key=b"k", time_ms=5_000)),
            (0, make_event(step, identity=b"esc", partition_key=b"k", time_ms=9_000)),
        ],
    )
    history = AlertHistory(log)
    await history.refresh()
    page = await history.page("acme", since_ms=0, rule=None, cursor="", limit=10)
    kinds = [(e.kind, e.rules) for e in page.entries]
    assert kinds == [("state", ("hot",)), ("acknowledged", ("hot",)), ("escalated", ("hot",))]
    assert page.entries[1].detail["author"] == "key:1234"
    assert alert_event(page.entries[1]).WhichOneof("event") == "acknowledged"
    assert alert_event(page.entries[2]).escalated.receivers == ["team"]
    assert (await history.page("other", since_ms=0, rule=None, cursor="", limit=10)).entries == []
