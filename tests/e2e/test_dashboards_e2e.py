"""Dashboards through a real `argus up --dashboards-dir`: the default "This host" dashboard is
there, the folder is provisioned at start and on change, HTTP and gRPC create / conflict /
history / restore, and `argus dashboards export` then `import` round-trips."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest

from argus.launch import up_argv
from contracts.argus.dashboards.v1 import dashboards_pb2 as pb
from contracts.argus.dashboards.v1 import dashboards_pb2_grpc as pb_grpc
from tests.e2e.conftest import ArgusServer, run_argus, wait_for

PROVISIONED = {
    "uid": "from-folder",
    "title": "From the folder",
    "folder": "ops",
    "panels": [
        {"id": 1, "type": "stat", "gridPos": {"x": 0, "y": 0, "w": 6, "h": 4}, "targets": [{"metric": "host_load"}]}
    ],
}
SPEC: dict[str, Any] = {
    "time": {"from": "now-6h"},
    "panels": [
        {
            "id": 1,
            "type": "timeseries",
            "title": "CPU",
            "gridPos": {"x": 0, "y": 0, "w": 24, "h": 8},
            "targets": [{"refId": "A", "metric": "host_cpu_percent", "group_by": ["mode"]}],
        }
    ],
}


class DashboardsServer(ArgusServer):
    def __init__(self, data_dir: Path, folder: Path) -> None:
        super().__init__(data_dir)
        self.folder = folder

    def argv(self) -> list[str]:
        return up_argv(
            data_dir=self.data_dir,
            ingest_port=self.ingest_port,
            query_port=self.query_port,
            http_port=self.http_port,
            api_key=self.api_key,
            extra=("--dashboards-dir", str(self.folder)),
        )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30.0) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


@pytest.fixture
def server(tmp_path: Path) -> Any:
    folder = tmp_path / "dashboards"
    folder.mkdir()
    (folder / "from-folder.json").write_text(json.dumps(PROVISIONED))
    server = DashboardsServer(tmp_path / "data", folder)
    try:
        yield server.start()
    finally:
        server.close()


def uids(server: DashboardsServer) -> list[str]:
    status, body = server.call("GET", "/api/v1/dashboards")
    assert status == 200, body
    return [d["uid"] for d in body["dashboards"]]


def test_dashboards_end_to_end(server: DashboardsServer, tmp_path: Path) -> None:
    assert server.grpc_health(server.query_port, "argus.dashboards.v1.DashboardService")
    # The default dashboard and the folder's are there from the first request.
    status, body = server.call("GET", "/api/v1/dashboards")
    listed = {d["uid"]: d for d in body["dashboards"]}
    assert listed["this-host"]["title"] == "This host"
    assert (listed["from-folder"]["provisioned"], listed["from-folder"]["updated_by"]) == (True, "provisioning")
    status, got = server.call("GET", "/api/v1/dashboards/this-host")
    assert status == 200 and any(p["type"] == "timeseries" for p in got["dashboard"]["spec"]["panels"])

    # HTTP: create, update, a stale update is 409 naming the current version.
    status, made = server.call("POST", "/api/v1/dashboards", {"dashboard": {"title": "E2E board", "spec": SPEC}})
    assert status == 201, made
    uid = made["dashboard"]["uid"]
    edit = {"dashboard": {"title": "E2E board", "spec": {**SPEC, "refresh": "10s"}}, "expected_version": 1}
    assert server.call("PUT", f"/api/v1/dashboards/{uid}", edit)[0] == 200
    status, stale = server.call("PUT", f"/api/v1/dashboards/{uid}", edit)
    assert status == 409 and "version 2" in stale["error"]

    # gRPC: the same dashboard, a stale save is ABORTED, history, restore.
    channel = server.channel(server.query_port)
    stub = pb_grpc.DashboardServiceStub(channel)  # type: ignore[no-untyped-call]
    auth = server.auth()
    current = stub.GetDashboard(pb.GetDashboardRequest(uid=uid), metadata=auth, timeout=30).dashboard
    assert current.version == 2 and json.loads(current.spec_json)["refresh"] == "10s"
    with pytest.raises(grpc.RpcError) as info:
        stub.SaveDashboard(pb.SaveDashboardRequest(dashboard=current, expected_version=1), metadata=auth, timeout=30)
    assert info.value.code() == grpc.StatusCode.ABORTED
    history = stub.DashboardHistory(pb.DashboardHistoryRequest(uid=uid), metadata=auth, timeout=30)
    assert [e.dashboard.version for e in history.entries] == [2, 1]
    restored = stub.RestoreDashboard(
        pb.RestoreDashboardRequest(uid=uid, version=1, expected_version=2), metadata=auth, timeout=30
    ).dashboard
    assert restored.version == 3 and json.loads(restored.spec_json) == SPEC

    # Export everything, delete one, import: it comes back as it was; the rest is unchanged.
    data = str(server.data_dir)
    out = tmp_path / "exported"
    done = run_argus("dashboards", "export", "--all", "-o", f"{out}/", "--data-dir", data)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{u}.json" for u in (uid, "from-folder", "this-host"))
    assert server.call("DELETE", f"/api/v1/dashboards/{uid}")[0] == 200
    done = run_argus("dashboards", "import", *sorted(str(p) for p in out.iterdir()), "--data-dir", data)
    assert done.returncode == 0, done.stderr
    assert f"created {uid} (version 5)" in done.stdout
    assert "unchanged this-host" in done.stdout
    # Imported by hand, the provisioned one is no longer the folder's (it is kept when its file goes).
    assert "updated from-folder" in done.stdout
    status, back = server.call("GET", f"/api/v1/dashboards/{uid}")
    assert status == 200 and back["dashboard"]["spec"] == SPEC and back["dashboard"]["title"] == "E2E board"

    # Provisioning follows the folder: a new file appears, a removed one disappears.
    (server.folder / "new.yaml").write_text("uid: added-later\ntitle: Added later\npanels: []\n")
    wait_for("the new file's dashboard", lambda: "added-later" in uids(server), timeout_s=30)
    (server.folder / "new.yaml").unlink()
    wait_for("the removed file's dashboard gone", lambda: "added-later" not in uids(server), timeout_s=30)
