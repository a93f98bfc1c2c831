"""The composition root: long-lived clients as resources, modules as factories.

One container per process. `argus up` and the single-service targets (`argus ingest`, ...)
build the same container and start different sets of the same modules, never a second
code path. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Final, TypeVar

from dependency_injector import containers, providers

from argus.health import WriteHealth
from core.adapters.log_retention import LogRetention
from core.adapters.urls import open_event_log
from core.alerting.state import AlertConfigState
from core.auth import ApiKeyRegistry
from core.config_view import ConfigView
from core.dashboards.state import DashboardState
from core.errors import StorageError
from core.events import CONFIG_TOPIC, SAMPLES_TOPIC
from core.ports import ColdStore, EventLog, HotStore
from core.read_models import ReadModelVersions, VersionedHotStore
from core.settings import Settings


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def event_log_resource(settings: Settings) -> AsyncIterator[EventLog]:
    log = open_event_log(settings.event_log_url, retention=LogRetention.from_settings(settings))
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, settings.sample_partitions)
    await log.ensure_topic(CONFIG_TOPIC, 1)
    try:
        yield log
    finally:
        await log.close()


async def config_resource(event_log: EventLog) -> AsyncIterator[ConfigView]:
    """The process's one follower of the config topic (API keys, read-model versions, ...),
    kept current while the process runs."""
    view = ConfigView(event_log, [ApiKeyRegistry(), ReadModelVersions(), AlertConfigState(), DashboardState()])
    await view.refresh()
    stop = asyncio.Event()
    follower = asyncio.create_task(view.run(stop), name="config-view")
    try:
        yield view
    finally:
        stop.set()
        await follower


async def hot_store_resource(settings: Settings, event_log: EventLog, config: ConfigView) -> AsyncIterator[HotStore]:
    # The active version of the hot read model: `argus replay` can switch it while we run.
    store = VersionedHotStore(event_log, config=config, base_url=settings.hot_store_url, tiers=settings.tiers)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def cold_store_resource(settings: Settings) -> AsyncIterator[ColdStore]:
    from core.adapters.urls import open_cold_store

    store = open_cold_store(settings.cold_store_url)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    clock_ms = providers.Object(now_ms)
    event_log = providers.Resource(event_log_resource, settings)
    config = providers.Resource(config_resource, event_log)
    hot_store = providers.Resource(hot_store_resource, settings, event_log, config)
    cold_store = providers.Resource(cold_store_resource, settings)
    health = providers.Singleton(WriteHealth)


RESOURCES: Final = ("event_log", "hot_store", "config", "cold_store")
"""What a module may need (argus/registry.py `ModuleSpec.needs`); each opens only when needed.
`config` is the config view: API keys and read-model versions (the hot store opens it too)."""


class Runtime:
    """The opened resources of a process, handed to the modules it runs. Only the resources
    its modules need are open (`argus ingest` never opens the cold store); asking for another
    is a wiring mistake, refused with the resource's name."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock_ms: Callable[[], int],
        health: WriteHealth | None = None,
        event_log: EventLog | None = None,
        hot_store: HotStore | None = None,
        config: ConfigView | None = None,
        cold_store: ColdStore | None = None,
    ) -> None:
        self.settings = settings
        self.clock_ms = clock_ms
        self.health = health or WriteHealth()
        """How this process's projectors' writes go (argus/health.py)."""
        self._event_log = event_log
        self._hot_store = hot_store
        self._config = config
        self.cold_store = cold_store
        """The cold store when a module needs it, else None."""

    @property
    def event_log(self) -> EventLog:
        return _opened("event_log", self._event_log)

    @property
    def hot_store(self) -> HotStore:
        return _opened("hot_store", self._hot_store)

    @property
    def config(self) -> ConfigView:
        return _opened("config", self._config)

    @property
    def api_keys(self) -> ApiKeyRegistry:
        """The config view's API-key state."""
        return self.config.state(ApiKeyRegistry)


T = TypeVar("T")


def _opened(name: str, value: T | None) -> T:
    if value is None:
        raise StorageError(f"{name} is not open in this process: add it to the needs of the module that uses it")
    return value


async def open_runtime(container: Container, needs: Collection[str] = RESOURCES) -> Runtime:
    """Open the resources in `needs` (and what they depend on: the hot store follows the event
    log); call `container.shutdown_resources()` after, which closes exactly those."""
    unknown = set(needs) - set(RESOURCES)
    if unknown:
        raise ValueError(f"unknown resources {sorted(unknown)} (known: {', '.join(RESOURCES)})")

    async def get(name: str) -> Any:
        # dependency-injector's stubs type an async Resource provider as returning its value;
        # at run time calling it opens it (and its dependencies) and returns an awaitable.
        return await getattr(container, name)() if name in needs else None

    return Runtime(
        settings=container.settings(),
        clock_ms=container.clock_ms(),
        health=container.health(),
        event_log=await get("event_log"),
        hot_store=await get("hot_store"),
        config=await get("config"),
        cold_store=await get("cold_store"),
    )
