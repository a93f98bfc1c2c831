"""Projectors that follow the active version of the hot read model.

When `argus replay` activates a new version, the running projectors flush into the old
store and stop, and a fresh set starts on the new store under the new version's consumer
groups, from the offsets the replay committed (docs/decisions/0011). Once projectors write a version,
the consumer groups of the versions before it are forgotten, so that they do not hold the
embedded log's retention back (0020).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from argus.modules import Module
from core.ports import EventLog, HotStore
from core.read_models import VersionedHotStore, forget_replaced_groups


class VersionedProjectors:
    """A projector module re-made for each version of the hot read model."""

    name = "projectors"

    def __init__(self, *, store: HotStore, event_log: EventLog, make: Callable[[HotStore, int], Module]) -> None:
        self._store = store
        self._event_log = event_log
        self._make = make
        self._module: Module | None = None
        self._lock = asyncio.Lock()

    @property
    def module(self) -> Module | None:
        """The module of the current version (None before start)."""
        return self._module

    async def start(self) -> None:
        async with self._lock:
            if isinstance(self._store, VersionedHotStore):
                self._module = self._make(self._store.current, self._store.version)
                self._store.on_switch(self._switch)
                await self._module.start()
                await forget_replaced_groups(self._event_log, self._store.version)
            else:
                self._module = self._make(self._store, 1)
                await self._module.start()

    async def _switch(self, store: HotStore, version: int) -> None:
        async with self._lock:
            if self._module is not None:
                await self._module.stop()  # flushes into the old version and commits its groups
            self._module = self._make(store, version)
            await self._module.start()
            await forget_replaced_groups(self._event_log, version)

    async def stop(self) -> None:
        async with self._lock:
            if isinstance(self._store, VersionedHotStore):
                self._store.remove_listener(self._switch)
            if self._module is not None:
                await self._module.stop()

    def endpoints(self) -> dict[str, str]:
        return self._module.endpoints() if self._module is not None else {}
