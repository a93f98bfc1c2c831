"""gRPC AlertService (query_side/alerts/grpc_service.py): Subscribe resumes from a cursor
without gaps or repeats, every RPC needs a key, and a key sees only its tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from command_side.config.commands import CreateApiKey
from command_side.config.handlers import create_api_key
from contracts.argus.alerts.v1 import alerts_pb2, service_pb2, service_pb2_grpc
from core.adapters.memory_event_log import MemoryEventLog
from core.alerting.lifecycle import AlertState
from core.auth import ApiKeyRegistry, generate_key
from core.config_view import ConfigView
from core.events import ALERTS_TOPIC, CONFIG_TOPIC
from query_side.alerts.active import ActiveAlerts
from query_side.alerts.grpc_service import AlertServicer, add_to_server
from query_side.alerts.history import AlertHistory
from tests.unit.test_active_alerts import changed
from tests.unit.test_alerts_api import notification

A, B = "tenant-a", "tenant-b"
DEADLINE_S = 10.0


@dataclass
class Served:
    stub: service_pb2_grpc.AlertServiceStub
    log: MemoryEventLog
    key_a: str
    key_b: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    await log.ensure_topic(ALERTS_TOPIC, 4)
    view = ConfigView(log, [ApiKeyRegistry()])
    await view.refresh()
    keys = {A: generate_key(), B: generate_key()}
    for tenant, key in keys.items():
        await create_api_key(CreateApiKey(api_key=key, tenant=tenant, author="t"), view=view, clock_ms=lambda: 1)
    server = grpc.aio.server()
    servicer = AlertServicer(
        keys=view.state(ApiKeyRegistry),
        events=log,
        active=ActiveAlerts(log),
        history=AlertHistory(log),
        poll_interval_s=0.01,
    )
    add_to_server(server, servicer)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(service_pb2_grpc.AlertServiceStub(channel), log, keys[A], keys[B])  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(grace=None)


def md(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def append_round(log: MemoryEventLog, start: int, count: int) -> None:
    """`count` transitions of A over all four partitions, one of B's among them, and a notification."""
    for i in range(start, start + count):
        await log.append(ALERTS_TOPIC, [(i % 4, changed(A, "cpu", {"host": f"h{i % 3}"}, AlertState.FIRING, i))])
        if i % 3 == 0:
            await log.append(ALERTS_TOPIC, [((i + 1) % 4, changed(B, "cpu", {"host": "b"}, AlertState.FIRING, i))])
    await log.append(ALERTS_TOPIC, [(start % 4, notification(A, "f", attempt=1, failed=False, created_ms=start))])


def ident(r: service_pb2.SubscribeResponse) -> tuple[str, int, str]:
    e = r.event
    kind = e.WhichOneof("event")
    if kind == "state_changed":
        return (e.state_changed.tenant, e.state_changed.sequence, e.state_changed.instance_id)
    return (e.notification_sent.tenant, e.notification_sent.created_ms, e.notification_sent.notification_id)


async def read(
    stream: grpc.aio.UnaryStreamCall[service_pb2.SubscribeRequest, service_pb2.SubscribeResponse], n: int
) -> list[service_pb2.SubscribeResponse]:
    got: list[service_pb2.SubscribeResponse] = []
    async with asyncio.timeout(DEADLINE_S):
        while len(got) < n:
            got.append(await stream.read())
    return got


async def a_events_in_topic(log: MemoryEventLog) -> list[tuple[str, int, str]]:
    found = []
    for p in range(4):
        for record in await log.read(ALERTS_TOPIC, p, 0, 10_000):
            if record.event.type == alerts_pb2.AlertStateChanged.DESCRIPTOR.full_name:
                m = alerts_pb2.AlertStateChanged.FromString(record.event.payload)
                if m.tenant == A:
                    found.append((m.tenant, m.sequence, m.instance_id))
            else:
                n = alerts_pb2.NotificationSent.FromString(record.event.payload)
                found.append((n.tenant, n.created_ms, n.notification_id))
    return found


async def test_subscribe_resumes_from_the_cursor_without_gaps_or_repeats(served: Served) -> None:
    await append_round(served.log, 1, 10)
    first = served.stub.Subscribe(service_pb2.SubscribeRequest(cursor=""), metadata=md(served.key_a))
    seen = await read(first, 4)
    first.cancel()
    cursor = seen[-1].cursor
    # Appended while disconnected: the resumed stream must deliver these as well.
    await append_round(served.log, 11, 10)
    expected = await a_events_in_topic(served.log)
    second = served.stub.Subscribe(service_pb2.SubscribeRequest(cursor=cursor), metadata=md(served.key_a))
    seen += await read(second, len(expected) - len(seen))
    # Live: one appended now arrives on the open stream.
    await served.log.append(ALERTS_TOPIC, [(2, changed(A, "cpu", {"host": "live"}, AlertState.FIRING, 99))])
    seen += await read(second, 1)
    second.cancel()
    got = [ident(r) for r in seen]
    assert len(got) == len(set(got)), "an event came twice"
    assert sorted(got) == sorted(await a_events_in_topic(served.log))
    assert all(t == A for t, _, _ in got)


async def test_every_rpc_needs_a_key(served: Served) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await served.stub.ListAlerts(service_pb2.ListAlertsRequest())
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await served.stub.History(service_pb2.HistoryRequest(), metadata=md("nope"))
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    stream = served.stub.Subscribe(service_pb2.SubscribeRequest(), metadata=md("nope"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stream.read()
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    stream = served.stub.Subscribe(service_pb2.SubscribeRequest(cursor="!!"), metadata=md(served.key_a))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stream.read()
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_list_and_history_are_the_keys_tenant_only(served: Served) -> None:
    await append_round(served.log, 1, 6)
    b = await served.stub.ListAlerts(service_pb2.ListAlertsRequest(state="all"), metadata=md(served.key_b))
    assert {a.tenant for a in b.alerts} == {B} and len(b.alerts) == 1
    a = await served.stub.ListAlerts(service_pb2.ListAlertsRequest(), metadata=md(served.key_a))
    assert {x.tenant for x in a.alerts} == {A} and len(a.alerts) == 3  # hosts h0, h1, h2
    events: list[service_pb2.AlertEvent] = []
    cursor = ""
    while True:
        page = await served.stub.History(service_pb2.HistoryRequest(limit=2, cursor=cursor), metadata=md(served.key_a))
        events += page.events
        cursor = page.next_cursor
        if not cursor:
            break
    assert len(events) == len(await a_events_in_topic(served.log))
    assert all(e.WhichOneof("event") != "state_changed" or e.state_changed.tenant == A for e in events)
    assert sum(e.WhichOneof("event") == "notification_sent" for e in events) == 1
    stream = served.stub.Subscribe(service_pb2.SubscribeRequest(), metadata=md(served.key_b))
    [only] = await read(stream, 1)
    stream.cancel()
    assert only.event.state_changed.tenant == B


async def test_the_query_module_serves_the_alerts_api() -> None:
    """The composition: QueryModule with argus/alerts_api.py's extension serves AlertService
    on its gRPC port and the silence routes on its HTTP port."""
    import aiohttp

    from argus.alerts_api import alerts_api
    from argus.modules import QueryModule
    from core.adapters.memory_hot_store import MemoryHotStore
    from core.alerting.state import AlertConfigState
    from core.settings import Settings
    from query_side.alerts.http import AlertsApi

    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    view = ConfigView(log, [ApiKeyRegistry(), AlertConfigState()])
    await view.refresh()
    key = generate_key()
    await create_api_key(CreateApiKey(api_key=key, tenant=A, author="t"), view=view, clock_ms=lambda: 1)
    await log.ensure_topic(ALERTS_TOPIC, 4)
    await log.append(ALERTS_TOPIC, [(1, changed(A, "cpu", {"host": "h"}, AlertState.FIRING, 1))])
    active = ActiveAlerts(log)
    keys = view.state(ApiKeyRegistry)
    module = QueryModule(
        settings=Settings(query_addr="127.0.0.1:0", http_addr="127.0.0.1:0"),
        hot_store=MemoryHotStore(),
        api_keys=keys,
        clock_ms=lambda: 10_000,
        alerts=AlertsApi(active=active, config=view.state(AlertConfigState)),
        extensions=(alerts_api(event_log=log, keys=keys, view=view, active=active, clock_ms=lambda: 10_000),),
    )
    await module.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{module.grpc_port}") as channel:
            stub = service_pb2_grpc.AlertServiceStub(channel)  # type: ignore[no-untyped-call]
            listed = await stub.ListAlerts(service_pb2.ListAlertsRequest(), metadata=md(key))
            assert [a.rule for a in listed.alerts] == ["cpu"]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
            base = f"http://127.0.0.1:{module.http_port}"
            body = {"matchers": ["alertname=cpu"], "for": "1h", "comment": "wiring"}
            async with http.post(f"{base}/api/v1/silences", json=body) as r:
                assert r.status == 201
            async with http.get(f"{base}/api/v1/alerts/history") as r:
                assert [e["rules"] for e in (await r.json())["entries"]] == [["cpu"]]
    finally:
        await module.stop()
