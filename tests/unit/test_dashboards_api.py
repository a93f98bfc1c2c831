"""The dashboard service over HTTP JSON and gRPC, as the composition (argus/dashboards_api.py)
mounts it on the query server: every route and RPC, conflicts (409 / ABORTED naming the
current version), bad specs naming the field, and tenants apart (a key of tenant B never
sees or changes tenant A's dashboards)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from argus.dashboards_api import dashboards_api
from command_side.config.commands import CreateApiKey
from command_side.config.handlers import create_api_key
from contracts.argus.dashboards.v1 import dashboards_pb2 as pb
from contracts.argus.dashboards.v1 import dashboards_pb2_grpc as pb_grpc
from core.adapters.memory_event_log import MemoryEventLog
from core.adapters.memory_hot_store import MemoryHotStore
from core.auth import ApiKeyRegistry, generate_key
from core.config_view import ConfigView
from core.dashboards.state import DashboardState
from core.events import CONFIG_TOPIC
from core.model import DEFAULT_TIERS
from core.transport_errors import PARAMETER_METADATA_KEY
from query_side.engine import QueryEngine
from query_side.http_gateway import make_http_app

A, B = "tenant-a", "tenant-b"
NOW = 1_700_000_000_000

SPEC: dict[str, Any] = {
    "time": {"from": "now-1h"},
    "panels": [
        {
            "id": 1,
            "type": "timeseries",
            "title": "CPU",
            "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
            "targets": [{"refId": "A", "metric": "host_cpu_percent", "group_by": ["host"]}],
        }
    ],
}


@dataclass
class Api:
    http: TestClient[Any, Any]
    grpc: pb_grpc.DashboardServiceStub
    key_a: str
    key_b: str


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    view = ConfigView(log, [ApiKeyRegistry(), DashboardState()])
    await view.refresh()
    keys = {A: generate_key(), B: generate_key()}
    for tenant, key in keys.items():
        await create_api_key(
            CreateApiKey(api_key=key, tenant=tenant, name=f"{tenant}-key", author="t"), view=view, clock_ms=lambda: 1
        )
    registry = view.state(ApiKeyRegistry)
    store = MemoryHotStore()
    app = make_http_app(QueryEngine(store, store, DEFAULT_TIERS, clock=lambda: NOW), registry)
    extension = dashboards_api(keys=registry, view=view, clock_ms=lambda: NOW)
    assert extension.http is not None and extension.grpc is not None
    extension.http(app)
    server = grpc.aio.server()
    assert extension.grpc(server) == "argus.dashboards.v1.DashboardService"
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        async with TestClient(TestServer(app)) as client:
            yield Api(client, pb_grpc.DashboardServiceStub(channel), keys[A], keys[B])  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(grace=None)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def md(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def test_http_create_update_conflict_history_restore_delete(api: Api) -> None:
    c, h = api.http, auth(api.key_a)
    r = await c.post("/api/v1/dashboards", json={"dashboard": {"title": "Web servers", "spec": SPEC}}, headers=h)
    assert r.status == 201, await r.text()
    made = (await r.json())["dashboard"]
    assert (made["uid"], made["version"], made["updated_by"], made["spec"]) == ("web-servers", 1, "tenant-a-key", SPEC)
    # A second create with the same title gets a uid of its own.
    r = await c.post("/api/v1/dashboards", json={"dashboard": {"title": "Web servers"}}, headers=h)
    assert (await r.json())["dashboard"]["uid"] == "web-servers-2"

    edited = {**SPEC, "refresh": "30s"}
    body = {"dashboard": {"title": "Web", "tags": ["web"], "spec": edited}, "expected_version": 1, "message": "faster"}
    r = await c.put("/api/v1/dashboards/web-servers", json=body, headers=h)
    assert r.status == 200, await r.text()
    assert (await r.json())["dashboard"]["version"] == 2
    # The other tab still at version 1: a conflict that names the current version.
    r = await c.put("/api/v1/dashboards/web-servers", json={**body, "message": "mine"}, headers=h)
    assert r.status == 409
    assert "version 2" in (await r.json())["error"]

    r = await c.get("/api/v1/dashboards/web-servers/history", headers=h)
    entries = (await r.json())["entries"]
    assert [(e["dashboard"]["version"], e["message"]) for e in entries] == [(2, "faster"), (1, "")]
    r = await c.get("/api/v1/dashboards/web-servers?version=1", headers=h)
    assert (await r.json())["dashboard"]["spec"] == SPEC

    r = await c.post("/api/v1/dashboards/web-servers/restore", json={"version": 1, "expected_version": 2}, headers=h)
    assert r.status == 200, await r.text()
    restored = (await r.json())["dashboard"]
    assert (restored["version"], restored["title"], restored["spec"]) == (3, "Web servers", SPEC)

    r = await c.get("/api/v1/dashboards?search=web", headers=h)
    listed = (await r.json())["dashboards"]
    assert [d["uid"] for d in listed] == ["web-servers", "web-servers-2"] and "spec" not in listed[0]

    r = await c.delete("/api/v1/dashboards/web-servers?version=2", headers=h)
    assert r.status == 409
    r = await c.delete("/api/v1/dashboards/web-servers?version=3", headers=h)
    assert (await r.json()) == {"uid": "web-servers", "version": 4}
    r = await c.get("/api/v1/dashboards/web-servers", headers=h)
    assert r.status == 404


async def test_http_bad_specs_name_the_field(api: Api) -> None:
    spec = json.loads(json.dumps(SPEC))
    spec["panels"][0]["targets"][0].pop("metric")
    r = await api.http.post(
        "/api/v1/dashboards", json={"dashboard": {"title": "x", "spec": spec}}, headers=auth(api.key_a)
    )
    assert r.status == 400
    body = await r.json()
    assert body["parameter"] == "panels[0].targets[0].metric"
    assert "panels[0].targets[0].metric: required" in body["error"]
    r = await api.http.put("/api/v1/dashboards/x", json={"dashboard": {"title": "x"}}, headers=auth(api.key_a))
    assert r.status == 400 and (await r.json())["parameter"] == "expected_version"
    r = await api.http.post("/api/v1/dashboards", data=b"x" * 700_000, headers=auth(api.key_a))
    assert r.status == 400 and "at most" in (await r.json())["error"]
    r = await api.http.get("/api/v1/dashboards")
    assert r.status == 401


async def test_http_tenants_are_apart(api: Api) -> None:
    c = api.http
    body = {"dashboard": {"uid": "secret", "title": "A only", "spec": SPEC}}
    assert (await c.post("/api/v1/dashboards", json=body, headers=auth(api.key_a))).status == 201
    b = auth(api.key_b)
    assert (await (await c.get("/api/v1/dashboards", headers=b)).json()) == {"dashboards": []}
    assert (await c.get("/api/v1/dashboards/secret", headers=b)).status == 404
    assert (await c.get("/api/v1/dashboards/secret/history", headers=b)).status == 404
    assert (await c.delete("/api/v1/dashboards/secret", headers=b)).status == 404
    r = await c.post("/api/v1/dashboards/secret/restore", json={"version": 1}, headers=b)
    assert r.status == 404
    # B's own "secret" is another dashboard; A's stays as it was.
    assert (await c.post("/api/v1/dashboards", json=body, headers=b)).status == 201
    r = await c.get("/api/v1/dashboards/secret", headers=auth(api.key_a))
    mine = (await r.json())["dashboard"]
    assert (mine["version"], mine["updated_by"]) == (1, "tenant-a-key")


async def test_grpc_every_rpc_and_its_errors(api: Api) -> None:
    s, a = api.grpc, md(api.key_a)
    dashboard = pb.Dashboard(uid="hosts", title="Hosts", folder="ops/linux", tags=["infra"], spec_json=json.dumps(SPEC))
    saved = (await s.SaveDashboard(pb.SaveDashboardRequest(dashboard=dashboard), metadata=a)).dashboard
    assert (saved.version, saved.folder, json.loads(saved.spec_json)) == (1, "ops/linux", SPEC)
    dashboard.title = "Hosts v2"
    request = pb.SaveDashboardRequest(dashboard=dashboard, expected_version=1)
    assert (await s.SaveDashboard(request, metadata=a)).dashboard.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await s.SaveDashboard(pb.SaveDashboardRequest(dashboard=dashboard, expected_version=1), metadata=a)
    assert stale.value.code() == grpc.StatusCode.ABORTED and "version 2" in (stale.value.details() or "")

    listed = await s.ListDashboards(pb.ListDashboardsRequest(folder="ops"), metadata=a)
    assert [(d.uid, d.spec_json) for d in listed.dashboards] == [("hosts", "")]
    assert not (await s.ListDashboards(pb.ListDashboardsRequest(tags=["nope"]), metadata=a)).dashboards
    got = await s.GetDashboard(pb.GetDashboardRequest(uid="hosts", version=1), metadata=a)
    assert got.dashboard.title == "Hosts"
    history = await s.DashboardHistory(pb.DashboardHistoryRequest(uid="hosts", limit=1), metadata=a)
    assert [e.dashboard.version for e in history.entries] == [2]
    restored = await s.RestoreDashboard(
        pb.RestoreDashboardRequest(uid="hosts", version=1, expected_version=2), metadata=a
    )
    assert (restored.dashboard.version, restored.dashboard.title) == (3, "Hosts")
    deleted = await s.DeleteDashboard(pb.DeleteDashboardRequest(uid="hosts", expected_version=3), metadata=a)
    assert deleted.version == 4
    history = await s.DashboardHistory(pb.DashboardHistoryRequest(uid="hosts"), metadata=a)
    assert [(e.dashboard.version, e.dashboard.deleted) for e in history.entries][:2] == [(4, True), (3, False)]
    assert not (await s.ListDashboards(pb.ListDashboardsRequest(), metadata=a)).dashboards
    trash = await s.ListDashboards(pb.ListDashboardsRequest(include_deleted=True), metadata=a)
    assert [(d.uid, d.version, d.deleted) for d in trash.dashboards] == [("hosts", 4, True)]

    bad = pb.Dashboard(
        uid="bad", title="Bad", spec_json='{"panels": [{"type": "pie", "gridPos": {"x": 0, "y": 0, "w": 1, "h": 1}}]}'
    )
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await s.SaveDashboard(pb.SaveDashboardRequest(dashboard=bad), metadata=a)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (PARAMETER_METADATA_KEY, "panels[0].type") in tuple(invalid.value.trailing_metadata() or ())
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await s.ListDashboards(pb.ListDashboardsRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_grpc_tenants_are_apart(api: Api) -> None:
    s = api.grpc
    dashboard = pb.Dashboard(uid="secret", title="A only", spec_json=json.dumps(SPEC))
    await s.SaveDashboard(pb.SaveDashboardRequest(dashboard=dashboard), metadata=md(api.key_a))
    b = md(api.key_b)
    assert not (await s.ListDashboards(pb.ListDashboardsRequest(), metadata=b)).dashboards
    for call in (
        s.GetDashboard(pb.GetDashboardRequest(uid="secret"), metadata=b),
        s.DashboardHistory(pb.DashboardHistoryRequest(uid="secret"), metadata=b),
        s.DeleteDashboard(pb.DeleteDashboardRequest(uid="secret", expected_version=1), metadata=b),
        s.RestoreDashboard(pb.RestoreDashboardRequest(uid="secret", version=1, expected_version=1), metadata=b),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # Updating "secret" as B is a create in B (expected version 0 is required), never A's.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.SaveDashboard(pb.SaveDashboardRequest(dashboard=dashboard, expected_version=1), metadata=b)
    assert info.value.code() == grpc.StatusCode.ABORTED
    got = await s.GetDashboard(pb.GetDashboardRequest(uid="secret"), metadata=md(api.key_a))
    assert got.dashboard.version == 1 and got.dashboard.title == "A only"
