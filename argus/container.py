"""The composition root: long-lived clients as resources, modules as factories.

One container per process. `argus up` and the single-service targets (`argus ingest`, ...)
build the same container and start different sets of the same modules, never a second
code path. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from dependency_injector import containers, providers

from argus.health import WriteHealth
from core.adapters.urls import open_event_log
from core.auth import ApiKeyRegistry
from core.events import CONFIG_TOPIC, SAMPLES_TOPIC
from core.ports import ColdStore, EventLog, HotStore
from core.read_models import VersionedHotStore
from core.settings import Settings


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def event_log_resource(settings: Settings) -> AsyncIterator[EventLog]:
    log = open_event_log(settings.event_log_url)
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, settings.sample_partitions)
    await log.ensure_topic(CONFIG_TOPIC, 1)
    try:
        yield log
    finally:
        await log.close()


async def hot_store_resource(settings: Settings, event_log: EventLog) -> AsyncIterator[HotStore]:
    # The active version of the hot read model: `argus replay` can switch it while we run.
    store = VersionedHotStore(event_log, base_url=settings.hot_store_url, tiers=settings.tiers)
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


async def api_keys_resource(event_log: EventLog) -> AsyncIterator[ApiKeyRegistry]:
    """The key registry, kept current by following the config topic while the process runs."""
    registry = ApiKeyRegistry(event_log)
    await registry.refresh()
    stop = asyncio.Event()
    follower = asyncio.create_task(registry.run(stop), name="api-keys")
    try:
        yield registry
    finally:
        stop.set()
        await follower


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    clock_ms = providers.Object(now_ms)
    event_log = providers.Resource(event_log_resource, settings)
    hot_store = providers.Resource(hot_store_resource, settings, event_log)
    api_keys = providers.Resource(api_keys_resource, event_log)
    cold_store = providers.Resource(cold_store_resource, settings)
    health = providers.Singleton(WriteHealth)


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """The initialised resources of a process, handed to the modules it runs."""

    settings: Settings
    event_log: EventLog
    hot_store: HotStore
    api_keys: ApiKeyRegistry
    clock_ms: Callable[[], int]
    cold_store: ColdStore | None = None
    health: WriteHealth = field(default_factory=WriteHealth)
    """How this process's projectors' writes go (argus/health.py)."""


async def open_runtime(container: Container) -> Runtime:
    """Initialise the container's resources (call `container.shutdown_resources()` after)."""
    # dependency-injector's stubs type an async Resource provider as returning its value;
    # at run time it returns an awaitable, hence the ignores.
    await container.init_resources()  # type: ignore[misc]
    return Runtime(
        settings=container.settings(),
        event_log=await container.event_log(),  # type: ignore[misc]
        hot_store=await container.hot_store(),  # type: ignore[misc]
        api_keys=await container.api_keys(),  # type: ignore[misc]
        clock_ms=container.clock_ms(),
        cold_store=await container.cold_store(),  # type: ignore[misc]
        health=container.health(),
    )
