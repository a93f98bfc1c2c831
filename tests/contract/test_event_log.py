"""Contract suite of the EventLog port: every adapter runs these scenarios.

An adapter's test class only supplies `make_log`; its own regressions live in its subclass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.adapters.sqlite_event_log import SqliteEventLog
from core.events import digest
from core.ports import Event, EventLog

TOPIC = "test.topic.v1"


def event(n: int, *, payload: bytes | None = None) -> Event:
    return Event(
        event_id=digest("event", str(n)),
        type="test.Event",
        schema_version=1,
        time_ms=1_700_000_000_000 + n,
        partition_key=str(n).encode(),
        payload=payload if payload is not None else f"payload-{n}".encode(),
    )


class EventLogContract:
    """Scenarios every EventLog adapter must pass."""

    async def make_log(self, tmp_path: Path) -> EventLog:
        raise NotImplementedError

    @pytest.fixture
    async def log(self, tmp_path: Path) -> AsyncIterator[EventLog]:
        log = await self.make_log(tmp_path)
        await log.start()
        await log.ensure_topic(TOPIC, 3)
        try:
            yield log
        finally:
            await log.close()

    async def test_appended_events_read_back_in_order_with_offsets(self, log: EventLog) -> None:
        result = await log.append(TOPIC, [(1, event(1)), (1, event(2)), (2, event(3))])
        assert result.offsets == (0, 1, 0)
        records = await log.read(TOPIC, 1, 0, 10)
        assert [r.offset for r in records] == [0, 1]
        assert [r.event for r in records] == [event(1), event(2)]
        assert (await log.read(TOPIC, 2, 0, 10))[0].event == event(3)
        assert await log.read(TOPIC, 0, 0, 10) == []

    async def test_reading_from_an_offset_skips_earlier_records(self, log: EventLog) -> None:
        await log.append(TOPIC, [(0, event(i)) for i in range(5)])
        records = await log.read(TOPIC, 0, 3, 10)
        assert [r.offset for r in records] == [3, 4]
        assert [r.offset for r in await log.read(TOPIC, 0, 0, 2)] == [0, 1]

    async def test_duplicate_event_id_is_not_appended_twice(self, log: EventLog) -> None:
        await log.append(TOPIC, [(0, event(1))])
        again = await log.append(TOPIC, [(0, event(1)), (0, event(2))])
        assert again.offsets == (None, 1)
        assert again.duplicates == 1
        assert [r.event.event_id for r in await log.read(TOPIC, 0, 0, 10)] == [event(1).event_id, event(2).event_id]

    async def test_end_offset_is_the_next_offset(self, log: EventLog) -> None:
        assert await log.end_offset(TOPIC, 0) == 0
        await log.append(TOPIC, [(0, event(1)), (0, event(2))])
        assert await log.end_offset(TOPIC, 0) == 2

    async def test_concurrent_appends_all_land_with_distinct_offsets(self, log: EventLog) -> None:
        results = await asyncio.gather(*(log.append(TOPIC, [(0, event(i))]) for i in range(50)))
        offsets = sorted(r.offsets[0] for r in results if r.offsets[0] is not None)
        assert offsets == list(range(50))

    async def test_partition_out_of_range_is_rejected(self, log: EventLog) -> None:
        with pytest.raises(Exception, match="partition 7"):
            await log.append(TOPIC, [(7, event(1))])

    async def test_consumer_resumes_after_committed_offsets(self, log: EventLog) -> None:
        await log.append(TOPIC, [(p, event(10 * p + i)) for p in range(3) for i in range(4)])
        consumer = log.consumer("group-a", TOPIC)
        seen = await consumer.poll(100, 1.0)
        assert len(seen) == 12
        await consumer.commit({0: 2, 1: 4, 2: 4})
        await consumer.close()
        again = log.consumer("group-a", TOPIC)
        rest = await again.poll(100, 0.2)
        assert [(r.partition, r.offset) for r in rest] == [(0, 2), (0, 3)]
        assert await again.committed() == {0: 2, 1: 4, 2: 4}
        await again.close()

    async def test_groups_are_independent(self, log: EventLog) -> None:
        await log.append(TOPIC, [(0, event(1))])
        first = log.consumer("g1", TOPIC)
        await first.commit({0: 1})
        second = log.consumer("g2", TOPIC)
        assert len(await second.poll(10, 0.5)) == 1
        await first.close()
        await second.close()

    async def test_poll_waits_for_an_append(self, log: EventLog) -> None:
        consumer = log.consumer("tail", TOPIC)
        assert await consumer.poll(10, 0.05) == []

        async def later() -> None:
            await asyncio.sleep(0.05)
            await log.append(TOPIC, [(1, event(42))])

        task = asyncio.create_task(later())
        records = await consumer.poll(10, 5.0)
        await task
        assert [r.event for r in records] == [event(42)]
        assert (await consumer.lag()) == {0: 0, 1: 0, 2: 0}
        await consumer.close()

    async def test_large_payload_round_trips(self, log: EventLog) -> None:
        big = bytes(range(256)) * 40_000
        await log.append(TOPIC, [(0, event(1, payload=big))])
        assert (await log.read(TOPIC, 0, 0, 1))[0].event.payload == big


class TestSqliteEventLog(EventLogContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        return SqliteEventLog(tmp_path / "events.db")

    async def test_events_survive_reopening(self, tmp_path: Path) -> None:
        log = SqliteEventLog(tmp_path / "events.db")
        await log.start()
        await log.ensure_topic(TOPIC, 1)
        await log.append(TOPIC, [(0, event(1))])
        await log.close()
        reopened = SqliteEventLog(tmp_path / "events.db")
        await reopened.start()
        assert [r.event for r in await reopened.read(TOPIC, 0, 0, 10)] == [event(1)]
        assert (await reopened.append(TOPIC, [(0, event(1))])).duplicates == 1
        await reopened.close()

    async def test_unknown_topic_is_a_clear_error(self, tmp_path: Path) -> None:
        log = SqliteEventLog(tmp_path / "events.db")
        await log.start()
        with pytest.raises(Exception, match="does not exist"):
            await log.append("nope", [(0, event(1))])
        await log.close()

    async def test_large_payloads_are_stored_compressed(self, tmp_path: Path) -> None:
        import sqlite3

        log = SqliteEventLog(tmp_path / "events.db")
        await log.start()
        await log.ensure_topic(TOPIC, 1)
        payload = b"host=web-1 cpu=12.5;" * 10_000
        await log.append(TOPIC, [(0, event(1, payload=payload)), (0, event(2, payload=b"tiny"))])
        await log.close()
        db = sqlite3.connect(tmp_path / "events.db")
        rows = db.execute("SELECT length(payload), payload_codec FROM events ORDER BY offset").fetchall()
        db.close()
        assert rows[0][1] == 1 and rows[0][0] < len(payload) // 20
        assert rows[1] == (4, 0)
        reopened = SqliteEventLog(tmp_path / "events.db")
        await reopened.start()
        assert [r.event.payload for r in await reopened.read(TOPIC, 0, 0, 10)] == [payload, b"tiny"]
        await reopened.close()

    async def test_a_group_has_one_member_at_a_time(self, tmp_path: Path) -> None:
        log = SqliteEventLog(tmp_path / "events.db")
        await log.start()
        await log.ensure_topic(TOPIC, 1)
        first = log.consumer("rollups", TOPIC)
        await first.poll(10, 0.01)
        second = log.consumer("rollups", TOPIC)
        with pytest.raises(Exception, match=r"already consumed by another process \(pid \d+\)"):
            await second.poll(10, 0.01)
        await first.close()
        assert await second.poll(10, 0.01) == []
        await second.close()
        await log.close()
