"""argus/health.py: a failing write marks the projectors unhealthy with the error until that
kind of write (or the main one) succeeds; reads pass through untouched."""

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

    async def delete_before(self, tier: str, before_ms: int, chunk_span_ms: int) -> int:
        if self.fail:
            raise StorageError("delete chunks of tier 5s: database is locked")
        return 0

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
        await store.record_events("rollups", [], 0)  # another kind fits: no flapping
        assert health.reason == reason
        inner.fail = False
        await store.write_chunks("5s", [])  # the main write goes through again
        assert health.reason is None

    asyncio.run(scenario())
    assert heard == [heard[0], None] and heard[0] is not None
    assert inner.reads == 1


def test_a_failed_rare_write_is_cleared_by_the_main_write() -> None:
    inner = _Store()
    health = WriteHealth()
    store: HotStore = watch_writes(inner, health)  # type: ignore[arg-type]

    async def scenario() -> None:
        inner.fail = True
        with pytest.raises(StorageError):
            await store.delete_before("5s", 0, 1)
        assert health.reason is not None and "delete_before" in health.reason
        inner.fail = False
        await store.write_chunks("5s", [])
        assert health.reason is None

    asyncio.run(scenario())
