"""An in-memory event log: topics of partitions of records in lists, consumer-group offsets
in dicts.

For fast unit tests of what sits above the EventLog port; it passes the same contract suite
as the SQLite and Kafka logs (tests/contract/test_event_log.py) and behaves like the embedded
log: an event id already in the topic is not appended again (`dedups_on_append`), a group has
one member at a time, which owns every partition. "Durable on return" means "visible to every
later call on this object": nothing outlives the process. Not thread-safe: use it from one
event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from core.errors import InvalidArgument, StorageError
from core.ports import AppendResult, Event, EventLogConsumer, LogRecord, RebalanceListener


class MemoryEventLog:
    """EventLog in this process's memory."""

    dedups_on_append = True

    def __init__(self) -> None:
        self._partitions: dict[str, list[list[LogRecord]]] = {}
        self._ids: dict[str, set[bytes]] = {}
        self._committed: dict[tuple[str, str], dict[int, int]] = {}
        self._members: dict[tuple[str, str], MemoryConsumer] = {}
        self._appended = asyncio.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._wake()  # pollers return what they have

    def _wake(self) -> None:
        # Waiters hold the old event; a new one is armed for the next wait.
        self._appended.set()
        self._appended = asyncio.Event()

    def _topic(self, topic: str) -> list[list[LogRecord]]:
        found = self._partitions.get(topic)
        if found is None:
            raise StorageError(f"topic {topic!r} does not exist in the in-memory log; create it first")
        return found

    async def ensure_topic(self, topic: str, partitions: int) -> int:
        if partitions < 1:
            raise InvalidArgument(f"topic {topic}: partitions must be >= 1", parameter="partitions")
        if topic not in self._partitions:
            self._partitions[topic] = [[] for _ in range(partitions)]
            self._ids[topic] = set()
        return len(self._partitions[topic])

    async def partitions(self, topic: str) -> int:
        return len(self._topic(topic))

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        parts = self._topic(topic)
        for partition, _event in events:
            if not 0 <= partition < len(parts):
                raise InvalidArgument(f"append to {topic}: partition {partition} not in [0, {len(parts)})")
        ids = self._ids[topic]
        offsets: list[int | None] = []
        for partition, event in events:
            if event.event_id in ids:
                offsets.append(None)
                continue
            ids.add(event.event_id)
            records = parts[partition]
            records.append(LogRecord(topic=topic, partition=partition, offset=len(records), event=event))
            offsets.append(len(records) - 1)
        if any(o is not None for o in offsets):
            self._wake()
        return AppendResult(offsets=tuple(offsets))

    async def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[LogRecord]:
        parts = self._topic(topic)
        if not 0 <= partition < len(parts):
            return []
        return parts[partition][max(offset, 0) : max(offset, 0) + max(max_records, 0)]

    async def end_offset(self, topic: str, partition: int) -> int:
        parts = self._topic(topic)
        return len(parts[partition]) if 0 <= partition < len(parts) else 0

    async def wait_for_append(self, timeout_s: float) -> None:
        """Return at the next append (or close), or after `timeout_s`."""
        try:
            await asyncio.wait_for(self._appended.wait(), timeout_s)
        except TimeoutError:
            return

    def consumer(
        self,
        group: str,
        topic: str,
        *,
        listener: RebalanceListener | None = None,
        session_timeout_ms: int | None = None,
    ) -> EventLogConsumer:
        return MemoryConsumer(self, group, topic, listener=listener)

    def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        return dict(self._committed.get((group, topic), {}))

    def commit_offsets(self, group: str, topic: str, next_offsets: Mapping[int, int]) -> None:
        self._committed.setdefault((group, topic), {}).update(next_offsets)

    def join(self, member: MemoryConsumer, group: str, topic: str) -> None:
        """One member per group, like the embedded log: a second one would project from its
        own state and overwrite the first one's effects."""
        held = self._members.get((group, topic))
        if held is not None and held is not member:
            raise StorageError(f"consumer group {group!r} of {topic} already has a member in this process")
        self._members[(group, topic)] = member

    def leave(self, member: MemoryConsumer, group: str, topic: str) -> None:
        if self._members.get((group, topic)) is member:
            del self._members[(group, topic)]


class MemoryConsumer:
    """The only member of its group: owns every partition of the topic."""

    def __init__(
        self, log: MemoryEventLog, group: str, topic: str, *, listener: RebalanceListener | None = None
    ) -> None:
        self._log = log
        self._group = group
        self._topic = topic
        self._listener = listener
        self._positions: dict[int, int] | None = None
        self._rotation = 0

    async def _ensure_positions(self) -> dict[int, int]:
        if self._positions is None:
            self._log.join(self, self._group, self._topic)
            committed = self._log.committed_offsets(self._group, self._topic)
            partitions = await self._log.partitions(self._topic)
            self._positions = {p: committed.get(p, 0) for p in range(partitions)}
            if self._listener is not None:
                await self._listener.partitions_assigned(frozenset(self._positions))
        return self._positions

    @property
    def assigned(self) -> frozenset[int]:
        return frozenset(self._positions or ())

    async def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        positions = await self._ensure_positions()
        deadline = time.monotonic() + timeout_s
        while True:
            # Rotate the starting partition so one busy partition cannot starve the rest.
            order = sorted(positions)
            self._rotation = (self._rotation + 1) % max(1, len(order))
            order = order[self._rotation :] + order[: self._rotation]
            records: list[LogRecord] = []
            for partition in order:
                left = max_records - len(records)
                if left <= 0:
                    break
                found = await self._log.read(self._topic, partition, positions[partition], left)
                if found:
                    positions[partition] = found[-1].offset + 1
                    records.extend(found)
            if records:
                return records
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return []
            await self._log.wait_for_append(left_s)

    async def commit(self, next_offsets: Mapping[int, int]) -> None:
        self._log.commit_offsets(self._group, self._topic, next_offsets)

    async def committed(self) -> dict[int, int]:
        return self._log.committed_offsets(self._group, self._topic)

    async def lag(self) -> dict[int, int]:
        positions = await self._ensure_positions()
        return {p: max(0, await self._log.end_offset(self._topic, p) - o) for p, o in positions.items()}

    async def close(self) -> None:
        self._positions = None
        self._log.leave(self, self._group, self._topic)
