"""AlertReadModelStore in memory: tests, and the one-shot readers that have no data dir."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from core.ports import AlertModelBatch, StoredAck, StoredAlertInstance, StoredHistoryEntry


class MemoryAlertReadModels:
    def __init__(self) -> None:
        self._instances: dict[tuple[str, str], StoredAlertInstance] = {}
        self._acks: dict[tuple[str, str], StoredAck] = {}
        self._entries: dict[str, list[StoredHistoryEntry]] = {}
        self._held: set[tuple[str, int, int]] = set()
        self._positions: dict[int, int] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def positions(self) -> dict[int, int]:
        return dict(self._positions)

    async def apply(self, batch: AlertModelBatch) -> None:
        for i in batch.instances:
            held = self._instances.get((i.tenant, i.instance_id))
            if held is None or held.sequence < i.sequence:
                self._instances[(i.tenant, i.instance_id)] = i
        for a in batch.acks:
            had = self._acks.get((a.tenant, a.instance_id))
            if had is None or had.revision < a.revision:
                self._acks[(a.tenant, a.instance_id)] = a
        for e in batch.entries:
            key = (e.tenant, e.partition, e.offset)
            if key in self._held:
                continue
            self._held.add(key)
            bisect.insort(self._entries.setdefault(e.tenant, []), e, key=lambda x: x.position)
        for p, o in batch.positions.items():
            self._positions[p] = max(o, self._positions.get(p, 0))

    async def instances(
        self, tenant: str, states: Sequence[str], *, rule: str | None = None
    ) -> list[StoredAlertInstance]:
        return [
            i
            for (t, _), i in self._instances.items()
            if t == tenant and i.state in states and (rule is None or i.rule == rule)
        ]

    async def get_instances(self, tenant: str, instance_ids: Sequence[str]) -> dict[str, StoredAlertInstance]:
        return {i: self._instances[(tenant, i)] for i in instance_ids if (tenant, i) in self._instances}

    async def acks(self, tenant: str, instance_ids: Sequence[str]) -> dict[str, StoredAck]:
        return {i: self._acks[(tenant, i)] for i in instance_ids if (tenant, i) in self._acks}

    async def entries(
        self, tenant: str, *, since_ms: int, after: tuple[int, int, int] | None, limit: int
    ) -> list[StoredHistoryEntry]:
        found = self._entries.get(tenant, [])
        start = max(since_ms, 0), -1, -1
        lo = bisect.bisect_right(found, max(start, after or start), key=lambda x: x.position)
        return found[lo : lo + limit]
