"""argus/registry.py: one table of modules; a process opens only what its modules need."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from argus import registry
from argus.container import Container, open_runtime
from argus.registry import REGISTRY, Wiring
from core.errors import StorageError
from core.settings import settings_from_env


def test_every_module_has_one_entry_and_a_placement() -> None:
    assert set(REGISTRY) == {"ingest", "projectors", "alerts", "dashboards", "query", "collector", "self-metrics"}
    assert registry.placed("child") == ("projectors",)
    assert set(registry.placed("parent")) == {"ingest", "alerts", "dashboards", "query", "collector", "self-metrics"}
    # Alerting starts after the projectors, before the query API; so do the default dashboards.
    order = list(REGISTRY)
    assert order.index("projectors") < order.index("alerts") < order.index("query")
    assert order.index("dashboards") < order.index("query")
    assert registry.listens(["ingest", "query"]) == ("ingest_addr", "ingest_http_addr", "query_addr", "http_addr")


def test_needs_are_the_modules_own() -> None:
    assert "cold_store" not in registry.needs(["ingest"], Wiring())
    assert "cold_store" not in registry.needs(["projectors"], Wiring(projectors=("rollups",)))
    assert "cold_store" in registry.needs(["projectors"], Wiring())
    assert registry.needs(["collector"], Wiring()) == frozenset()
    # The self-feed binds its key through the config view (tenant _argus).
    assert registry.needs(["self-metrics"], Wiring()) == frozenset({"config"})
    # Long-window rules query the read models (decision 0032).
    assert registry.needs(["alerts"], Wiring()) == frozenset({"event_log", "config", "hot_store", "cold_store"})
    assert registry.locks(["alerts"], Wiring()) == ["alert-evaluator"]


def test_locks_follow_where_the_projectors_run() -> None:
    assert registry.locks(["ingest", "projectors"], Wiring(projectors=("rollups",))) == ["ingest", "projector-rollups"]


def _open(tmp_path: Path, needs: frozenset[str]) -> list[str]:
    settings = settings_from_env(data_dir=tmp_path)

    async def scenario() -> None:
        container = Container(settings=settings)
        runtime = await open_runtime(container, needs)
        try:
            if "config" not in needs:
                with pytest.raises(StorageError, match="config"):
                    _ = runtime.api_keys
        finally:
            await container.shutdown_resources()  # type: ignore[misc]

    asyncio.run(scenario())
    return sorted(p.name for p in tmp_path.iterdir())  # what opening made


def test_ingest_opens_no_cold_store(tmp_path: Path) -> None:
    files = _open(tmp_path, registry.needs(["ingest"], Wiring()))
    assert "events.db" in files and "hot.db" in files
    assert "cold" not in files


def test_the_event_log_alone_opens_nothing_else(tmp_path: Path) -> None:
    files = _open(tmp_path, frozenset({"event_log"}))
    assert "events.db" in files
    assert "hot.db" not in files and "cold" not in files


def test_query_opens_the_cold_store(tmp_path: Path) -> None:
    files = _open(tmp_path, registry.needs(["query"], Wiring()))
    assert "cold" in files, "the folder cold store makes its folder when opened"
