"""Dashboard files and provisioning (core/dashboards/files.py, argus/dashboards_module.py):
JSON and YAML read alike, hostile YAML refused, a folder applied at start and on change, a
removed file deletes its dashboard, the default dashboard added once."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from argus.dashboards_module import SELF_DASHBOARDS, DashboardsModule, default_dashboards
from argus.launch import REPO_ROOT
from command_side.config.dashboards import DeleteDashboard, delete_dashboard
from core.adapters.memory_event_log import MemoryEventLog
from core.config_view import ConfigView
from core.dashboards.files import parse_file_text, read_dashboard_file
from core.dashboards.state import DashboardState
from core.errors import InvalidArgument
from core.events import CONFIG_TOPIC
from core.model import SELF_TENANT

T = "default"
_clock = itertools.count(5_000)

DOC: dict[str, Any] = {
    "uid": "web",
    "title": "Web",
    "panels": [
        {"id": 1, "type": "stat", "gridPos": {"x": 0, "y": 0, "w": 6, "h": 4}, "targets": [{"metric": "http_requests"}]}
    ],
}
YAML_DOC = """
uid: web
title: Web
panels:
  - id: 1
    type: stat
    gridPos: {x: 0, y: 0, w: 6, h: 4}
    targets:
      - metric: http_requests
"""


def test_yaml_and_json_read_the_same(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(DOC))
    (tmp_path / "a.yaml").write_text(YAML_DOC)
    assert read_dashboard_file(tmp_path / "a.json") == read_dashboard_file(tmp_path / "a.yaml")


def test_hostile_yaml_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )
    with pytest.raises(InvalidArgument, match="alias bomb"):
        parse_file_text(bomb.encode(), source="bomb.yaml")
    with pytest.raises(InvalidArgument, match="not allowed"):
        parse_file_text(b"x: !!python/object/apply:os.system ['true']\n", source="evil.yaml")
    with pytest.raises(InvalidArgument, match="over the limit"):
        parse_file_text(b" " * (5 * 1024 * 1024), source="big.json")


def test_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(DOC))
    bad["panels"][0]["targets"] = [{}]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(InvalidArgument) as info:
        read_dashboard_file(tmp_path / "bad.json")
    assert f"{tmp_path / 'bad.json'}:" in str(info.value)
    assert "panels[0].targets[0].metric: required" in str(info.value)


async def _view() -> ConfigView:
    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    view = ConfigView(log, [DashboardState()])
    await view.refresh()
    return view


def _touch(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a new mtime, even on a coarse clock


async def test_a_folder_is_applied_at_start_and_on_change(tmp_path: Path) -> None:
    view = await _view()
    state = view.state(DashboardState)
    (tmp_path / "web.json").write_text(json.dumps(DOC))
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "db.yaml").write_text(YAML_DOC.replace("uid: web", "uid: db").replace("Web", "DB"))
    (tmp_path / "broken.json").write_text("{")
    module = DashboardsModule(view=view, tenant=T, clock_ms=lambda: next(_clock), folder=tmp_path, defaults=False)
    await module.sync(first=True)
    assert [(d.uid, d.provisioned, d.updated_by, d.version) for d in state.dashboards(T)] == [
        ("db", True, "provisioning", 1),
        ("web", True, "provisioning", 1),
    ]
    await module.sync()  # nothing changed: nothing appended
    assert state.get(T, "web").version == 1
    _touch(tmp_path / "web.json", json.dumps(dict(DOC, title="Web 2")))
    await module.sync()
    assert (state.get(T, "web").version, state.get(T, "web").title) == (2, "Web 2")
    (tmp_path / "team" / "db.yaml").unlink()
    await module.sync()
    assert [d.uid for d in state.dashboards(T)] == ["web"]
    assert state.history(T, "db")[0].deleted

    # A restart with an unreadable file deletes nothing: that file may hold "web".
    (tmp_path / "web.json").rename(tmp_path / "web.txt")
    _touch(tmp_path / "broken.json", "{")
    restarted = DashboardsModule(view=view, tenant=T, clock_ms=lambda: next(_clock), folder=tmp_path, defaults=False)
    await restarted.sync(first=True)
    assert [d.uid for d in state.dashboards(T)] == ["web"]
    # A restart after a file went away while stopped deletes its dashboard.
    (tmp_path / "broken.json").unlink()
    restarted = DashboardsModule(view=view, tenant=T, clock_ms=lambda: next(_clock), folder=tmp_path, defaults=False)
    await restarted.sync(first=True)
    assert state.dashboards(T) == []


async def test_the_default_dashboard_is_added_once(tmp_path: Path) -> None:
    view = await _view()
    state = view.state(DashboardState)
    module = DashboardsModule(view=view, tenant=T, clock_ms=lambda: next(_clock), defaults=True)
    await module.start()
    (this_host,) = default_dashboards()
    got = state.get(T, "this-host")
    assert (got.title, got.spec_json, got.provisioned) == ("This host", this_host.spec_json, False)
    await module.start()
    assert state.get(T, "this-host").version == 1
    # Deleted on purpose: not given back.
    await delete_dashboard(DeleteDashboard(tenant=T, uid="this-host", author="me"), view=view, clock_ms=lambda: 1)
    await module.start()
    assert state.dashboards(T) == []
    await module.stop()


async def test_the_argus_dashboard_goes_to_the_self_tenant_only_when_asked() -> None:
    view = await _view()
    state = view.state(DashboardState)
    await DashboardsModule(view=view, tenant=T, clock_ms=lambda: next(_clock), self_defaults=False).start()
    assert state.dashboards(SELF_TENANT) == []
    await DashboardsModule(view=view, tenant=T, clock_ms=lambda: next(_clock), self_defaults=True).start()
    assert [d.uid for d in state.dashboards(SELF_TENANT)] == ["argus"]
    assert [d.uid for d in state.dashboards(T)] == ["this-host"]


def test_the_argus_dashboard_names_only_documented_self_metrics() -> None:
    """Every metric it draws is in docs/metrics.md's table of what `argus up` writes to `_argus`
    (a histogram as its `_count`/`_sum`), so a renamed family breaks this, not a panel."""
    documented: set[str] = set()
    for row in (REPO_ROOT / "docs" / "metrics.md").read_text().splitlines():
        cells = row.split("|")
        if len(cells) > 3 and "`argus_" in cells[1]:
            names = re.findall(r"`(argus_[a-z_]+)`", cells[1])
            histogram = cells[2].strip() == "histogram"
            documented |= {f"{n}{suffix}" for n in names for suffix in (("_count", "_sum") if histogram else ("",))}
    assert "argus_query_duration_seconds_count" in documented
    (doc,) = default_dashboards(SELF_DASHBOARDS)
    named = {t["metric"] for p in json.loads(doc.spec_json)["panels"] for t in p["targets"]}
    assert len(named) >= 10
    assert named <= documented, f"not in docs/metrics.md: {sorted(named - documented)}"
