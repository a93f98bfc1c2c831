"""argus/health.py: a failing write marks the projectors unhealthy with the error; the next
successful write clears it; reads pass through untouched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from argus.health import WriteHealth, watch_writes
from core.errors import StorageError
from core.ports import HotStore


class _Store:
    def __init__(self) -> None:
        self.fail = False
        self.reads = 0

    async def write_chunks(self, tier: str, chunks: Any) -> None:
        if self.fail:
            raise StorageError("write 3 chunks of tier 5s: database or disk is full")

    async def record_events(self, projector: str, event_ids: Any, time_ms: int) -> None:
        return None

    async def get_chunks(self, tier: str, keys: Any) -> dict[Any, Any]:
        self.reads += 1
        raise StorageError("read failed")


def test_a_failed_write_makes_a_reason_and_a_later_success_clears_it() -> None:
    inner = _Store()
    health = WriteHealth()
    heard: list[str | None] = []
    health.on_change(heard.append)
    store: HotStore = watch_writes(inner, health)  # type: ignore[arg-type]

    async def scenario() -> None:
        await store.write_chunks("5s", [])
        assert health.reason is None
        inner.fail = True
        with pytest.raises(StorageError):
            await store.write_chunks("5s", [])
        with pytest.raises(StorageError):
            await store.write_chunks("5s", [])  # same reason: no second notice
        reason = health.reason
        assert reason is not None and "write_chunks" in reason and "disk is full" in reason
        with pytest.raises(StorageError):
            await store.get_chunks("5s", [])  # reads are not the projectors' health
        assert health.reason == reason
        await store.record_events("rollups", [], 0)  # the store takes writes again
        assert health.reason is None

    asyncio.run(scenario())
    assert heard == [heard[0], None] and heard[0] is not None
    assert inner.reads == 1
