"""Contract suite of the EventLog port: every adapter runs these scenarios.

An adapter's test class only supplies `make_log`; its own regressions live in its subclass.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from argus.launch import argus_env
from core.adapters.kafka_event_log import KafkaConsumer, KafkaEventLog, KafkaOptions, creation_refusal
from core.adapters.memory_event_log import MemoryEventLog
from core.adapters.sqlite_event_log import SqliteEventLog
from core.adapters.urls import open_event_log
from core.errors import InvalidArgument, StorageError, Unavailable
from core.events import digest
from core.ports import Event, EventLog, EventLogConsumer, LogRecord
from harness.processes import free_port
from harness.services import KafkaService
from query_side.alerts.ownership import OWNERS_SESSION_TIMEOUT_MS

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
    def topic(self) -> str:
        """The topic of one test (an adapter on a shared server makes it unique)."""
        return TOPIC

    @pytest.fixture
    async def log(self, tmp_path: Path, topic: str) -> AsyncIterator[EventLog]:
        log = await self.make_log(tmp_path)
        await log.start()
        await log.ensure_topic(topic, 3)
        try:
            yield log
        finally:
            await log.close()

    async def test_appended_events_read_back_in_order_with_offsets(self, log: EventLog, topic: str) -> None:
        result = await log.append(topic, [(1, event(1)), (1, event(2)), (2, event(3))])
        assert result.offsets == (0, 1, 0)
        records = await log.read(topic, 1, 0, 10)
        assert [r.offset for r in records] == [0, 1]
        assert [r.event for r in records] == [event(1), event(2)]
        assert (await log.read(topic, 2, 0, 10))[0].event == event(3)
        assert await log.read(topic, 0, 0, 10) == []

    async def test_reading_from_an_offset_skips_earlier_records(self, log: EventLog, topic: str) -> None:
        await log.append(topic, [(0, event(i)) for i in range(5)])
        records = await log.read(topic, 0, 3, 10)
        assert [r.offset for r in records] == [3, 4]
        assert [r.offset for r in await log.read(topic, 0, 0, 2)] == [0, 1]

    async def test_duplicate_event_id_is_dropped_where_the_log_says_it_dedups(self, log: EventLog, topic: str) -> None:
        await log.append(topic, [(0, event(1))])
        again = await log.append(topic, [(0, event(1)), (0, event(2))])
        stored = [r.event.event_id for r in await log.read(topic, 0, 0, 10)]
        if log.dedups_on_append:
            assert again.offsets == (None, 1)
            assert again.duplicates == 1
            assert stored == [event(1).event_id, event(2).event_id]
        else:  # a new offset for the same id: consumers drop it by event id
            assert again.offsets == (1, 2)
            assert again.duplicates == 0
            assert stored == [event(1).event_id, event(1).event_id, event(2).event_id]

    async def test_end_offset_is_the_next_offset(self, log: EventLog, topic: str) -> None:
        assert await log.end_offset(topic, 0) == 0
        await log.append(topic, [(0, event(1)), (0, event(2))])
        assert await log.end_offset(topic, 0) == 2

    async def test_concurrent_appends_all_land_with_distinct_offsets(self, log: EventLog, topic: str) -> None:
        results = await asyncio.gather(*(log.append(topic, [(0, event(i))]) for i in range(50)))
        offsets = sorted(r.offsets[0] for r in results if r.offsets[0] is not None)
        assert offsets == list(range(50))

    async def test_partition_out_of_range_is_rejected(self, log: EventLog, topic: str) -> None:
        with pytest.raises(Exception, match="partition 7"):
            await log.append(topic, [(7, event(1))])

    async def test_consumer_resumes_after_committed_offsets(self, log: EventLog, topic: str) -> None:
        await log.append(topic, [(p, event(10 * p + i)) for p in range(3) for i in range(4)])
        consumer = log.consumer("group-a", topic)
        seen = await consumer.poll(100, 1.0)
        assert len(seen) == 12
        await consumer.commit({0: 2, 1: 4, 2: 4})
        await consumer.close()
        again = log.consumer("group-a", topic)
        rest = await again.poll(100, 0.2)
        assert [(r.partition, r.offset) for r in rest] == [(0, 2), (0, 3)]
        assert await again.committed() == {0: 2, 1: 4, 2: 4}
        await again.close()

    async def test_groups_are_independent(self, log: EventLog, topic: str) -> None:
        await log.append(topic, [(0, event(1))])
        first = log.consumer("g1", topic)
        await first.commit({0: 1})
        second = log.consumer("g2", topic)
        assert len(await second.poll(10, 0.5)) == 1
        await first.close()
        await second.close()

    async def test_poll_waits_for_an_append(self, log: EventLog, topic: str) -> None:
        consumer = log.consumer("tail", topic)
        assert await consumer.poll(10, 0.05) == []

        async def later() -> None:
            await asyncio.sleep(0.05)
            await log.append(topic, [(1, event(42))])

        task = asyncio.create_task(later())
        records = await consumer.poll(10, 5.0)
        await task
        assert [r.event for r in records] == [event(42)]
        assert (await consumer.lag()) == {0: 0, 1: 0, 2: 0}
        await consumer.close()

    async def test_large_payload_round_trips(self, log: EventLog, topic: str) -> None:
        big = bytes(range(256)) * 40_000
        await log.append(topic, [(0, event(1, payload=big))])
        assert (await log.read(topic, 0, 0, 1))[0].event.payload == big


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


class TestMemoryEventLog(EventLogContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        return MemoryEventLog()

    async def test_a_group_has_one_member_at_a_time(self) -> None:
        log = MemoryEventLog()
        await log.ensure_topic(TOPIC, 1)
        first = log.consumer("rollups", TOPIC)
        await first.poll(10, 0.01)
        second = log.consumer("rollups", TOPIC)
        with pytest.raises(StorageError, match="already has a member"):
            await second.poll(10, 0.01)
        await first.close()
        assert await second.poll(10, 0.01) == []
        await second.close()

    async def test_unknown_topic_is_a_clear_error(self) -> None:
        with pytest.raises(StorageError, match="does not exist"):
            await MemoryEventLog().append("nope", [(0, event(1))])


class TestKafkaEventLog(EventLogContract):
    """The contract on a real Kafka-protocol broker (tansu), then Kafka's own behaviour:
    group membership, rebalances and the envelope in headers."""

    @pytest.fixture(autouse=True)
    def _broker(self, kafka_broker: KafkaService) -> None:
        self.broker = kafka_broker

    @pytest.fixture
    def topic(self) -> str:
        return f"test.{uuid.uuid4().hex[:12]}.v1"  # the broker is shared by the session

    async def make_log(self, tmp_path: Path) -> EventLog:
        return KafkaEventLog.from_url(self.broker.url())

    async def test_schema_version_travels_as_a_header(self, log: EventLog, topic: str) -> None:
        versioned = Event(
            event_id=digest("v"), type="test.Event", schema_version=7, time_ms=5, partition_key=b"k", payload=b"p"
        )
        await log.append(topic, [(2, versioned)])
        assert (await log.read(topic, 2, 0, 1))[0].event == versioned
        raw = AIOKafkaConsumer(bootstrap_servers=self.broker.bootstrap, enable_auto_commit=False)
        await raw.start()
        try:
            tp = TopicPartition(topic, 2)
            raw.assign([tp])
            raw.seek(tp, 0)
            record = (await raw.getmany(tp, timeout_ms=10_000))[tp][0]
        finally:
            await raw.stop()
        headers = dict(record.headers)
        assert headers["schema_version"] == b"7"
        assert headers["event_id"] == versioned.event_id
        assert (record.key, record.value, record.timestamp) == (b"k", b"p", 5)

    async def test_members_of_a_group_own_disjoint_partitions(self, log: EventLog, topic: str) -> None:
        first, second = log.consumer("split", topic), log.consumer("split", topic)
        try:
            await asyncio.gather(first.lag(), second.lag())  # join without reading
            await until(lambda: first.assigned | second.assigned == {0, 1, 2} and bool(first.assigned), first, second)
            assert not first.assigned & second.assigned
            await log.append(topic, [(p, event(10 * p + i)) for p in range(3) for i in range(3)])
            got = await drain({first: [], second: []}, total=9)
            for member, records in got.items():
                assert {r.partition for r in records} <= member.assigned
            assert sorted(r.event.event_id for rs in got.values() for r in rs) == sorted(
                event(10 * p + i).event_id for p in range(3) for i in range(3)
            )
        finally:
            await first.close()
            await second.close()

    async def test_partitions_of_a_member_that_leaves_resume_at_its_commit(self, log: EventLog, topic: str) -> None:
        await log.append(topic, [(p, event(10 * p + i)) for p in range(3) for i in range(6)])
        heard: list[tuple[str, frozenset[int]]] = []
        first, second = log.consumer("handover", topic), log.consumer("handover", topic, listener=Recorder(heard))
        await asyncio.gather(first.lag(), second.lag())  # join without reading
        try:
            await until(lambda: bool(first.assigned) and bool(second.assigned), first, second)
            mine = first.assigned
            # The first member reads all of its partitions but commits only up to offset 2.
            records = (await drain({first: []}, total=6 * len(mine)))[first]
            assert {r.partition for r in records} == mine
            await first.commit(dict.fromkeys(mine, 2))
            await first.close()
            # The second member takes them over exactly at the commit: nothing lost, nothing earlier.
            await until(lambda: second.assigned == {0, 1, 2}, second)
            taken = (await drain({second: []}, total=4 * len(mine), only=mine))[second]
            handed = sorted((r.partition, r.offset) for r in taken if r.partition in mine)
            assert handed == [(p, o) for p in sorted(mine) for o in range(2, 6)]
            assert heard[-1] == ("assigned", frozenset({0, 1, 2}))
            assert ("revoked", second_share(heard)) in heard
        finally:
            await first.close()
            await second.close()

    async def test_a_killed_member_hands_over_after_its_session_times_out(
        self, log: EventLog, topic: str, tmp_path: Path
    ) -> None:
        await log.append(topic, [(p, event(10 * p + i)) for p in range(3) for i in range(5)])
        script = tmp_path / "member.py"
        script.write_text(MEMBER_SCRIPT)
        member = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            self.broker.url(),
            topic,
            stdout=asyncio.subprocess.PIPE,
            env=argus_env(),
            start_new_session=True,
        )
        try:
            assert member.stdout is not None
            line = await asyncio.wait_for(member.stdout.readline(), 60)
            assert line.startswith(b"committed"), line
            committed = {int(p): 3 for p in line.split()[1:]}
            assert set(committed) == {0, 1, 2}
            member.kill()  # no LeaveGroup: the group waits for the session timeout
            await member.wait()
            survivor = log.consumer("killed", topic)
            taken = (await drain({survivor: []}, total=3 * 2))[survivor]
            assert sorted((r.partition, r.offset) for r in taken) == [(p, o) for p in range(3) for o in (3, 4)]
            assert await survivor.committed() == committed
            await survivor.close()
        finally:
            if member.returncode is None:
                member.kill()
                await member.wait()

    async def test_committing_a_partition_owned_elsewhere_is_refused(self, log: EventLog, topic: str) -> None:
        first, second = log.consumer("owners", topic), log.consumer("owners", topic)
        try:
            await asyncio.gather(first.lag(), second.lag())
            await until(lambda: bool(first.assigned) and bool(second.assigned), first, second)
            foreign = min(second.assigned)
            with pytest.raises(StorageError, match=f"partition\\(s\\) \\[{foreign}\\] are not assigned"):
                await first.commit({foreign: 1})
        finally:
            await first.close()
            await second.close()

    async def test_an_unreachable_broker_is_a_clear_error(self) -> None:
        log = KafkaEventLog.from_url(f"kafka://127.0.0.1:{free_port()}?idempotence=false&request_timeout_ms=3000")
        with pytest.raises(Unavailable, match=r"connect to Kafka at 127\.0\.0\.1:\d+"):
            await log.start()

    def test_a_refused_topic_creation_says_why(self) -> None:
        # tansu creates whatever it is asked to, so this reads a CreateTopics answer that
        # Apache Kafka gives a one-broker cluster asked for replication factor 3.
        refused = [(TOPIC, 38, "Replication factor: 3 larger than available brokers: 1.")]
        assert creation_refusal(TOPIC, refused) == (
            "InvalidReplicationFactorError: Replication factor: 3 larger than available brokers: 1. (error 38)"
        )
        assert creation_refusal(TOPIC, [(TOPIC, 36, "Topic with this name already exists.")]) is None
        assert creation_refusal(TOPIC, [(TOPIC, 0, None)]) is None

    def test_a_group_may_ask_for_a_shorter_session_but_not_a_longer_one(self) -> None:
        def session(url: str, asked: int | None) -> tuple[int, int]:
            consumer = KafkaEventLog(KafkaOptions.from_url(url)).consumer("g", TOPIC, session_timeout_ms=asked)
            assert isinstance(consumer, KafkaConsumer)
            return consumer.session

        assert session("kafka://a:1", None) == (10_000, 3_000)
        assert session("kafka://a:1", OWNERS_SESSION_TIMEOUT_MS) == (6_000, 2_000)  # alert owners: < 10 s takeover
        assert session("kafka://a:1?session_timeout_ms=1000&heartbeat_interval_ms=250", 6_000) == (1_000, 250)

    def test_url_options_are_checked(self) -> None:
        options = KafkaOptions.from_url("kafka://a:1,b:2?idempotence=false&client_id=x&session_timeout_ms=900")
        assert (options.bootstrap, options.idempotence, options.client_id) == (("a:1", "b:2"), False, "x")
        assert options.session_timeout_ms == 900 and KafkaOptions.from_url("kafka://a:1").idempotence
        for bad, message in [
            ("kafka://", "expected kafka://host:port"),
            ("kafka://a", "'a' in 'kafka://a' is not host:port"),
            ("kafka://a:1?idempotent=true", "unknown option 'idempotent'"),
            ("kafka://a:1?idempotence=maybe", "idempotence must be true or false"),
            ("kafka://a:1?linger_ms=-1", "linger_ms must be a non-negative integer"),
            ("kafka://a:1?compression=brotli", "compression must be one of"),
        ]:
            with pytest.raises(InvalidArgument, match=f"event_log: .*{re.escape(message)}"):
                open_event_log(bad)


class Recorder:
    def __init__(self, heard: list[tuple[str, frozenset[int]]]) -> None:
        self.heard = heard

    async def partitions_revoked(self, partitions: frozenset[int]) -> None:
        self.heard.append(("revoked", partitions))

    async def partitions_assigned(self, partitions: frozenset[int]) -> None:
        self.heard.append(("assigned", partitions))


def second_share(heard: list[tuple[str, frozenset[int]]]) -> frozenset[int]:
    """What the listening member owned before the other one left (its first non-empty share)."""
    return next(parts for what, parts in heard if what == "assigned" and parts)


async def until(condition: Callable[[], bool], *members: EventLogConsumer, timeout_s: float = 30.0) -> None:
    """Poll nothing-consuming rounds (which keep the members in their group) until `condition`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met in {timeout_s} s: {members}"
        await asyncio.sleep(0.05)


async def drain(
    got: dict[EventLogConsumer, list[LogRecord]],
    *,
    total: int,
    only: frozenset[int] | None = None,
    timeout_s: float = 30.0,
) -> dict[EventLogConsumer, list[LogRecord]]:
    """Poll every member until `total` records (of partitions `only`) came, then once more to
    show nothing else is delivered."""
    deadline = time.monotonic() + timeout_s

    def count() -> int:
        return sum(1 for rs in got.values() for r in rs if only is None or r.partition in only)

    while count() < total:
        assert time.monotonic() < deadline, f"only {count()} of {total} records in {timeout_s} s"
        for member, records in got.items():
            records.extend(await member.poll(100, 0.1))
    for member, records in got.items():
        records.extend(await member.poll(100, 0.3))
    assert count() == total
    return got


# A group member in its own process: reads everything, commits offset 3 everywhere, then
# waits to be killed (so it never leaves the group cleanly).
MEMBER_SCRIPT = """
import asyncio, sys
from argus.launch import argus_env
from core.adapters.kafka_event_log import KafkaEventLog

async def main(url, topic):
    log = KafkaEventLog.from_url(url)
    await log.start()
    member = log.consumer("killed", topic)
    seen = 0
    while seen < 15:
        seen += len(await member.poll(100, 0.5))
    await member.commit({0: 3, 1: 3, 2: 3})
    print("committed", *sorted(member.assigned), flush=True)
    await asyncio.sleep(600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""
