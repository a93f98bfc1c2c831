"""Dashboards as config events (command_side/config/dashboards.py, core/dashboards/state.py):
versions, conflicts decided by every follower alike, history, restore, tenants apart."""

from __future__ import annotations

import asyncio
import itertools

import orjson
import pytest

from command_side.config.dashboards import (
    DeleteDashboard,
    RestoreDashboard,
    SaveDashboard,
    delete_dashboard,
    restore_dashboard,
    save_dashboard,
)
from core.adapters.memory_event_log import MemoryEventLog
from core.config_view import ConfigView
from core.dashboards.state import MAX_HISTORY, MAX_HISTORY_BYTES, DashboardState, dashboard_entity
from core.errors import Conflict, InvalidArgument, NotFound
from core.events import CONFIG_TOPIC

A, B = "tenant-a", "tenant-b"
_clock = itertools.count(1_000)


def clock() -> int:
    return next(_clock)


def spec(title: str = "CPU") -> str:
    return orjson.dumps(
        {
            "panels": [
                {
                    "id": 1,
                    "type": "timeseries",
                    "title": title,
                    "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
                    "targets": [{"metric": "host_cpu_percent"}],
                }
            ]
        }
    ).decode()


def save(tenant: str = A, uid: str = "web", *, expected: int, title: str = "Web", panel: str = "CPU") -> SaveDashboard:
    return SaveDashboard(
        tenant=tenant, uid=uid, title=title, spec_json=spec(panel), expected_version=expected, author="alice"
    )


async def new_view(log: MemoryEventLog) -> ConfigView:
    view = ConfigView(log, [DashboardState()])
    await view.refresh()
    return view


@pytest.fixture
async def log() -> MemoryEventLog:
    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    return log


async def test_versions_count_saves_deletes_and_restores(log: MemoryEventLog) -> None:
    view = await new_view(log)
    first = await save_dashboard(save(expected=0), view=view, clock_ms=clock)
    assert (first.version, first.updated_by, first.deleted) == (1, "alice", False)
    second = await save_dashboard(save(expected=1, panel="Load"), view=view, clock_ms=clock)
    assert second.version == 2 and "Load" in second.spec_json
    deleted = await delete_dashboard(
        DeleteDashboard(tenant=A, uid="web", expected_version=2, author="bob"), view=view, clock_ms=clock
    )
    assert deleted == 3
    state = view.state(DashboardState)
    assert state.dashboards(A) == []
    with pytest.raises(NotFound, match="deleted"):
        state.get(A, "web")
    restored = await restore_dashboard(
        RestoreDashboard(tenant=A, uid="web", version=1, expected_version=3, author="carol"), view=view, clock_ms=clock
    )
    assert (restored.version, restored.restored_from, restored.updated_by) == (4, 1, "carol")
    assert restored.spec_json == first.spec_json
    assert [h.version for h in state.history(A, "web")] == [4, 3, 2, 1]
    assert [h.deleted for h in state.history(A, "web")] == [False, True, False, False]
    assert view.version(dashboard_entity(A, "web")) == 4


async def test_a_stale_save_is_a_conflict_naming_the_current_version(log: MemoryEventLog) -> None:
    view = await new_view(log)
    await save_dashboard(save(expected=0), view=view, clock_ms=clock)
    await save_dashboard(save(expected=1, panel="Mine"), view=view, clock_ms=clock)
    with pytest.raises(Conflict, match="is at version 2, not 1"):
        await save_dashboard(save(expected=1, panel="Theirs"), view=view, clock_ms=clock)
    with pytest.raises(Conflict, match="already exists at version 2"):
        await save_dashboard(save(expected=0, panel="Again"), view=view, clock_ms=clock)
    assert "Mine" in view.state(DashboardState).get(A, "web").spec_json


async def test_two_writers_racing_get_one_success_and_one_conflict(log: MemoryEventLog) -> None:
    # Each writer validated against version 1 in its own process (view); only one wins, in
    # both views alike.
    one, two = await new_view(log), await new_view(log)
    await save_dashboard(save(expected=0), view=one, clock_ms=clock)
    await two.refresh()
    results = await asyncio.gather(
        save_dashboard(save(expected=1, panel="One"), view=one, clock_ms=clock),
        save_dashboard(save(expected=1, panel="Two"), view=two, clock_ms=clock),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(conflicts) == 1 and "version" in str(conflicts[0])
    await one.refresh()
    await two.refresh()
    kept = one.state(DashboardState).get(A, "web")
    assert kept.version == 2
    assert two.state(DashboardState).get(A, "web") == kept


async def test_the_same_save_twice_appends_nothing(log: MemoryEventLog) -> None:
    view = await new_view(log)
    await save_dashboard(save(expected=0), view=view, clock_ms=clock)
    end = await log.end_offset(CONFIG_TOPIC, 0)
    again = await save_dashboard(save(expected=1), view=view, clock_ms=clock)
    assert again.version == 1
    assert await log.end_offset(CONFIG_TOPIC, 0) == end


async def test_a_restarted_view_rebuilds_the_same_state(log: MemoryEventLog) -> None:
    view = await new_view(log)
    await save_dashboard(save(expected=0), view=view, clock_ms=clock)
    await save_dashboard(save(expected=1, panel="B"), view=view, clock_ms=clock)
    await save_dashboard(save(tenant=B, uid="web", expected=0, title="B's"), view=view, clock_ms=clock)
    fresh = await new_view(log)
    for tenant in (A, B):
        assert fresh.state(DashboardState).history(tenant, "web") == view.state(DashboardState).history(tenant, "web")


async def test_tenants_are_apart(log: MemoryEventLog) -> None:
    view = await new_view(log)
    await save_dashboard(save(tenant=A, expected=0, title="A's"), view=view, clock_ms=clock)
    # The same uid in another tenant is another dashboard (version 0 creates it).
    b = await save_dashboard(save(tenant=B, expected=0, title="B's"), view=view, clock_ms=clock)
    assert b.version == 1
    state = view.state(DashboardState)
    assert [d.title for d in state.dashboards(A)] == ["A's"]
    assert [d.title for d in state.dashboards(B)] == ["B's"]
    with pytest.raises(NotFound):
        await delete_dashboard(DeleteDashboard(tenant=B, uid="only-a", author="x"), view=view, clock_ms=clock)
    await delete_dashboard(DeleteDashboard(tenant=B, uid="web", author="x"), view=view, clock_ms=clock)
    assert state.get(A, "web").title == "A's"


async def test_history_is_bounded(log: MemoryEventLog) -> None:
    view = await new_view(log)
    for version in range(MAX_HISTORY + 5):
        await save_dashboard(save(expected=version, panel=f"p{version}"), view=view, clock_ms=clock)
    history = view.state(DashboardState).history(A, "web")
    assert len(history) == MAX_HISTORY
    assert history[0].version == MAX_HISTORY + 5 and history[-1].version == 6
    with pytest.raises(NotFound, match="no longer kept"):
        view.state(DashboardState).get(A, "web", 3)


async def test_bad_input_is_refused_before_anything_is_appended(log: MemoryEventLog) -> None:
    view = await new_view(log)
    bad = SaveDashboard(
        tenant=A,
        uid="web",
        title="Web",
        spec_json='{"panels": [{"type": "stat", "gridPos": {"x": 0, "y": 0, "w": 1, "h": 1}, "targets": [{}]}]}',
        expected_version=0,
        author="a",
    )
    with pytest.raises(InvalidArgument, match=r"panels\[0\]\.targets\[0\]\.metric: required"):
        await save_dashboard(bad, view=view, clock_ms=clock)
    with pytest.raises(InvalidArgument, match="spec_json: not valid JSON"):
        await save_dashboard(
            SaveDashboard(tenant=A, uid="web", title="W", spec_json="{", expected_version=0, author="a"),
            view=view,
            clock_ms=clock,
        )
    with pytest.raises(InvalidArgument, match="uid"):
        await save_dashboard(save(uid="../etc", expected=0), view=view, clock_ms=clock)
    assert await log.end_offset(CONFIG_TOPIC, 0) == 0


async def test_followers_reject_the_second_of_two_events_based_on_one_version(log: MemoryEventLog) -> None:
    # What a race leaves in the log: two saves that both expected version 1. Every view
    # applies the first and rejects the second, whatever process wrote them.
    from command_side.config.dashboards import _event
    from contracts.argus.dashboards.v1 import config_pb2 as pb
    from core.config_view import config_change

    view = await new_view(log)
    await save_dashboard(save(expected=0), view=view, clock_ms=clock)

    def saved(panel: str) -> pb.DashboardSaved:
        return pb.DashboardSaved(
            tenant=A,
            dashboard=pb.DashboardContent(uid="web", title="Web", spec_json=spec(panel)),
            change=config_change(author="x", expected_version=1),
        )

    entity = dashboard_entity(A, "web")
    await log.append(CONFIG_TOPIC, [(0, _event(A, entity, saved("first"), 5))])
    second = _event(A, entity, saved("second"), 6)
    with pytest.raises(Conflict, match="expected version 1, it is at version 2"):
        await view.append_change(second)
    for follower in (view, await new_view(log)):
        current = follower.state(DashboardState).get(A, "web")
        assert current.version == 2 and "first" in current.spec_json


async def test_history_is_bounded_in_bytes_too(log: MemoryEventLog) -> None:
    view = await new_view(log)
    big = "x" * 200_000  # a ~200 KB spec: 100 versions would hold 20 MB
    for version in range(60):
        spec_json = orjson.dumps({"description": big[:4000], "options": {"blob": [big[:1000]] * 200, "v": version}})
        await save_dashboard(
            SaveDashboard(
                tenant=A, uid="big", title="Big", spec_json=spec_json.decode(), expected_version=version, author="a"
            ),
            view=view,
            clock_ms=clock,
        )
    history = view.state(DashboardState).history(A, "big")
    assert history[0].version == 60
    kept = sum(len(h.spec_json) for h in history)
    # Only as many old versions were dropped as the bound needs.
    assert kept <= MAX_HISTORY_BYTES < kept + len(history[-1].spec_json)
    assert len(history) < 60
