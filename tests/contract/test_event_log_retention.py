"""Event log retention (decision 0020): the embedded log deletes by time and size only what
every consumer group committed past, keeps ids longer than payloads, and a batch re-sent
after its payload left the log is not counted twice. Kafka gets the limits as topic configs."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from command_side.ingest.accept import BatchAcceptor
from command_side.ingest.registry import TenantRegistry
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.kafka_event_log import KafkaEventLog
from core.adapters.log_retention import LogRetention, dedup_window_ms, kafka_topic_configs
from core.adapters.sqlite_event_log import SqliteEventLog
from core.errors import InvalidArgument
from core.events import CONFIG_TOPIC, SAMPLES_TOPIC, digest
from core.model import DAY_MS, MINUTE_MS, longest_retention_ms
from core.ports import Event
from core.settings import IngestLimits, Settings, settings_from_env
from tests.services.kafka import TansuBroker

T0 = 1_760_000_000_000
TOPIC = SAMPLES_TOPIC


def event(n: int, *, time_ms: int = T0, payload: bytes | None = None) -> Event:
    return Event(
        event_id=digest("retention", str(n)),
        type="test.Event",
        schema_version=1,
        time_ms=time_ms,
        partition_key=b"k",
        payload=payload if payload is not None else f"payload-{n}".encode(),
    )


async def open_log(tmp_path: Path, retention: LogRetention, partitions: int = 1) -> SqliteEventLog:
    log = SqliteEventLog(tmp_path / "events.db", retention=retention, clock_ms=lambda: T0)
    await log.start()
    await log.ensure_topic(TOPIC, partitions)
    await log.ensure_topic(CONFIG_TOPIC, 1)
    return log


@pytest.fixture
async def timed(tmp_path: Path) -> AsyncIterator[SqliteEventLog]:
    log = await open_log(tmp_path, LogRetention(retention_ms=DAY_MS, dedup_window_ms=30 * DAY_MS))
    try:
        yield log
    finally:
        await log.close()


async def offsets(log: SqliteEventLog, partition: int = 0, topic: str = TOPIC) -> list[int]:
    return [r.offset for r in await log.read(topic, partition, 0, 10_000)]


async def test_old_records_every_group_committed_past_are_deleted(timed: SqliteEventLog) -> None:
    await timed.append(TOPIC, [(0, event(i, time_ms=T0 + i * 1000)) for i in range(10)])
    await timed.commit("rollups", TOPIC, {0: 6})
    await timed.commit("series-index", TOPIC, {0: 8})
    # Records 0..4 are older than a day at this time; 5 is not.
    report = await timed.enforce_retention(now_ms=T0 + DAY_MS + 4_500)
    assert report.deleted_records == 5
    assert await offsets(timed) == [5, 6, 7, 8, 9]
    assert report.held == ()
    # Everything is old now, but `rollups` has only committed up to 6.
    report = await timed.enforce_retention(now_ms=T0 + 2 * DAY_MS)
    assert await offsets(timed) == [6, 7, 8, 9]
    assert [(h.groups, h.held_records) for h in report.held] == [(("rollups",), 3)]


async def test_the_last_record_stays_so_offsets_never_restart(timed: SqliteEventLog) -> None:
    await timed.append(TOPIC, [(0, event(i)) for i in range(3)])
    await timed.commit("rollups", TOPIC, {0: 3})
    await timed.enforce_retention(now_ms=T0 + 10 * DAY_MS)
    assert await offsets(timed) == [2]
    assert (await timed.append(TOPIC, [(0, event(99))])).offsets == (3,)
    assert await timed.end_offset(TOPIC, 0) == 4


async def test_nothing_is_deleted_before_any_group_committed(timed: SqliteEventLog) -> None:
    await timed.append(TOPIC, [(0, event(i)) for i in range(4)])
    report = await timed.enforce_retention(now_ms=T0 + 10 * DAY_MS)
    assert report.deleted_records == 0
    assert await offsets(timed) == [0, 1, 2, 3]
    assert report.held[0].groups == ()


async def test_topics_outside_the_retention_are_kept(timed: SqliteEventLog) -> None:
    await timed.append(CONFIG_TOPIC, [(0, event(i)) for i in range(3)])
    await timed.commit("keys", CONFIG_TOPIC, {0: 3})
    await timed.enforce_retention(now_ms=T0 + 3650 * DAY_MS)
    assert await offsets(timed, topic=CONFIG_TOPIC) == [0, 1, 2]
    assert (await timed.append(CONFIG_TOPIC, [(0, event(1))])).duplicates == 1


def small(n: int) -> Event:
    """An event of RECORD_BYTES as the size limit counts it (400-byte payload, stored raw)."""
    return event(n, payload=bytes([n % 256]) * 400)


RECORD_BYTES = 400 + 1 + 32 + len("test.Event") + 48  # payload, key, id, type, row overhead


async def test_size_limit_trims_the_oldest_records_per_partition(tmp_path: Path) -> None:
    log = await open_log(tmp_path, LogRetention(retention_bytes=2 * 3_000), partitions=2)
    try:
        await log.append(TOPIC, [(p, small(10 * p + i)) for p in range(2) for i in range(10)])
        await log.commit("rollups", TOPIC, {0: 10, 1: 10})
        assert await log.stored_bytes(TOPIC) == {0: 10 * RECORD_BYTES, 1: 10 * RECORD_BYTES}
        report = await log.enforce_retention()
        keep = 3_000 // RECORD_BYTES  # per partition: the newest records that fit
        for p in range(2):
            assert await offsets(log, p) == list(range(10 - keep, 10))
        assert await log.stored_bytes(TOPIC) == {0: keep * RECORD_BYTES, 1: keep * RECORD_BYTES}
        assert (report.deleted_records, report.deleted_bytes) == (2 * (10 - keep), 2 * (10 - keep) * RECORD_BYTES)
    finally:
        await log.close()


async def test_a_group_lagging_past_the_size_limit_holds_its_records_until_it_commits(tmp_path: Path) -> None:
    log = await open_log(tmp_path, LogRetention(retention_bytes=2_000))
    keep = 2_000 // RECORD_BYTES
    try:
        await log.append(TOPIC, [(0, small(i)) for i in range(20)])
        await log.commit("rollups", TOPIC, {0: 20})
        await log.commit("rollups.v2", TOPIC, {0: 3})  # a replay that stopped early
        report = await log.enforce_retention()
        assert await offsets(log) == list(range(3, 20))
        # Over the limit: records a group has not applied are never dropped.
        assert (await log.stored_bytes(TOPIC))[0] == 17 * RECORD_BYTES
        [held] = report.held
        assert (held.groups, held.held_records, held.bytes) == (("rollups.v2",), 17 - keep, 17 * RECORD_BYTES)
        # The lagging group catches up: the next run trims to the limit.
        await log.commit("rollups.v2", TOPIC, {0: 20})
        report = await log.enforce_retention()
        assert report.held == ()
        assert await offsets(log) == list(range(20 - keep, 20))
        # A group given up for good stops holding records back once forgotten.
        await log.append(TOPIC, [(0, small(100 + i)) for i in range(10)])
        await log.commit("rollups", TOPIC, {0: 30})
        assert (await log.enforce_retention()).held[0].groups == ("rollups.v2",)
        await log.forget_group("rollups.v2", TOPIC)
        assert (await log.enforce_retention()).held == ()
        assert await offsets(log) == list(range(30 - keep, 30))
    finally:
        await log.close()


async def test_an_event_re_appended_after_its_payload_left_the_log_is_dropped(timed: SqliteEventLog) -> None:
    await timed.append(TOPIC, [(0, event(1)), (0, event(2))])
    await timed.commit("rollups", TOPIC, {0: 2})
    await timed.enforce_retention(now_ms=T0 + 2 * DAY_MS)
    assert await offsets(timed) == [1]  # event 1's payload is gone
    again = await timed.append(TOPIC, [(0, event(1)), (0, event(3))])
    assert again.offsets == (None, 2)
    assert [r.event.event_id for r in await timed.read(TOPIC, 0, 0, 10)] == [event(2).event_id, event(3).event_id]


async def test_ids_are_forgotten_after_the_dedup_window_only(timed: SqliteEventLog) -> None:
    await timed.append(TOPIC, [(0, event(1)), (0, event(2, time_ms=T0 + DAY_MS))])
    await timed.append(CONFIG_TOPIC, [(0, event(1))])
    await timed.commit("rollups", TOPIC, {0: 2})
    report = await timed.enforce_retention(now_ms=T0 + 30 * DAY_MS + 1)
    assert report.deleted_ids == 1
    assert (await timed.append(TOPIC, [(0, event(2))])).duplicates == 1
    assert (await timed.append(CONFIG_TOPIC, [(0, event(1))])).duplicates == 1  # config ids stay
    assert (await timed.append(TOPIC, [(0, event(1))])).duplicates == 0  # past the window


def sample_batch(ts_ms: int) -> metrics_pb2.SampleBatch:
    b = metrics_pb2.SampleBatch(batch_id="b-1", source="host-a")
    for host in ("a", "b", "c"):
        s = b.series.add(metric="requests", kind=metrics_pb2.METRIC_KIND_COUNTER)
        s.labels.add(name="host", value=host)
        s.timestamps_ms.extend([ts_ms, ts_ms + 10_000])
        s.values.extend([1.0, 2.0])
    return b


async def test_a_batch_re_sent_after_retention_is_not_counted_twice(tmp_path: Path) -> None:
    """The whole promise, with the settings' dedup window: within it the resend is a
    duplicate; after it every sample is older than ingest accepts, so it is rejected."""
    settings = Settings()
    retention = LogRetention(retention_ms=DAY_MS, dedup_window_ms=dedup_window_ms(settings))
    assert retention.dedup_window_ms >= longest_retention_ms(settings.tiers) + settings.limits.max_future_skew_ms
    now = [T0]
    log = SqliteEventLog(tmp_path / "events.db", retention=retention, clock_ms=lambda: now[0])
    await log.start()
    try:
        partitions = await log.ensure_topic(TOPIC, 4)
        acceptor = BatchAcceptor(
            log_writer=log,
            registry=TenantRegistry(max_series_per_tenant=100),
            limits=settings.limits,
            partitions=partitions,
            retention_ms=longest_retention_ms(settings.tiers),
            clock_ms=lambda: now[0],
        )
        first = await acceptor.accept("t1", sample_batch(T0 - 60_000))
        assert first.status == ingest_pb2.BATCH_STATUS_ACCEPTED and not first.duplicate
        ends = await log.end_offsets(TOPIC)
        await log.commit("rollups", TOPIC, ends)
        # A week later retention deleted every payload but each partition's last record:
        # append a newer one per partition so the batch's own records go too.
        now[0] = T0 + 7 * DAY_MS
        await log.append(TOPIC, [(p, event(500 + p, time_ms=now[0])) for p in range(partitions)])
        await log.commit("rollups", TOPIC, await log.end_offsets(TOPIC))
        assert (await log.enforce_retention()).deleted_records == sum(1 for e in ends.values() if e)
        stored_before = {p: await offsets(log, p) for p in range(partitions)}

        again = await acceptor.accept("t1", sample_batch(T0 - 60_000))
        assert again.duplicate and again.accepted_samples == 6
        assert {p: await offsets(log, p) for p in range(partitions)} == stored_before

        # Past the dedup window the ids are gone too, and ingest refuses every sample as too old.
        now[0] = T0 + retention.dedup_window_ms + MINUTE_MS
        assert (await log.enforce_retention()).deleted_ids == len([e for e in ends.values() if e])
        late = await acceptor.accept("t1", sample_batch(T0 - 60_000))
        assert late.status == ingest_pb2.BATCH_STATUS_REJECTED and late.accepted_samples == 0
        assert {r.reason for r in late.rejections} == {ingest_pb2.REJECT_REASON_TIMESTAMP_TOO_OLD}
        assert all(r.message for r in late.rejections)
        assert {p: await offsets(log, p) for p in range(partitions)} == stored_before
    finally:
        await log.close()


async def test_retention_runs_periodically(tmp_path: Path) -> None:
    retention = LogRetention(retention_ms=DAY_MS, check_interval_ms=20)
    log = SqliteEventLog(tmp_path / "events.db", retention=retention, clock_ms=lambda: T0 + 2 * DAY_MS)
    await log.start()
    try:
        await log.ensure_topic(TOPIC, 1)
        await log.append(TOPIC, [(0, event(i)) for i in range(5)])
        await log.commit("rollups", TOPIC, {0: 5})
        deadline = time.monotonic() + 10
        while await offsets(log) != [4]:
            assert time.monotonic() < deadline, "retention did not run"
            await asyncio.sleep(0.02)
        assert log.retention_runs >= 1
    finally:
        await log.close()


async def test_a_log_written_before_retention_is_migrated(tmp_path: Path) -> None:
    """Old logs deduped by a unique index on events: their ids move to the ids table."""
    path = tmp_path / "events.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE topics(topic_id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, partitions INTEGER NOT NULL);
        CREATE TABLE events(topic_id INTEGER NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
            event_id BLOB NOT NULL, type TEXT NOT NULL, schema_version INTEGER NOT NULL, time_ms INTEGER NOT NULL,
            partition_key BLOB NOT NULL, payload BLOB NOT NULL, payload_codec INTEGER NOT NULL DEFAULT 0);
        CREATE UNIQUE INDEX events_position ON events(topic_id, partition, offset);
        CREATE UNIQUE INDEX events_id ON events(topic_id, event_id);
        """
    )
    db.execute("INSERT INTO topics(name, partitions) VALUES(?, 1)", (TOPIC,))
    for i in range(3):
        e = event(i)
        db.execute(
            "INSERT INTO events VALUES(1, 0, ?, ?, ?, 1, ?, ?, ?, 0)",
            (i, e.event_id, e.type, e.time_ms, e.partition_key, e.payload),
        )
    db.commit()
    db.close()
    log = SqliteEventLog(path)
    await log.start()
    try:
        assert (await log.append(TOPIC, [(0, event(1)), (0, event(7))])).offsets == (None, 3)
        stored = (await log.stored_bytes(TOPIC))[0]
        assert stored == sum(
            len(e.payload) + 1 + 32 + len(e.type) + 48 for e in (event(0), event(1), event(2), event(7))
        )
    finally:
        await log.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT 1 FROM sqlite_master WHERE name='events_id'").fetchone() is None
    db.close()


def test_retention_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGUS_EVENT_LOG_RETENTION_MS", "86_400_000")
    monkeypatch.setenv("ARGUS_EVENT_LOG_RETENTION_BYTES", "1000000")
    retention = LogRetention.from_settings(settings_from_env(retention_check_interval_ms=5_000))
    assert (retention.retention_ms, retention.retention_bytes, retention.check_interval_ms) == (DAY_MS, 10**6, 5_000)
    assert retention.topics == frozenset({SAMPLES_TOPIC})
    with pytest.raises(InvalidArgument, match="retention_bytes must be >= 0"):
        LogRetention(retention_bytes=-1)
    custom = Settings(limits=IngestLimits(max_future_skew_ms=1))
    assert dedup_window_ms(custom) == longest_retention_ms() + 1


def test_kafka_topic_configs() -> None:
    retention = LogRetention(retention_ms=DAY_MS, retention_bytes=12_000_000)
    assert kafka_topic_configs(SAMPLES_TOPIC, 12, retention) == {
        "retention.ms": str(DAY_MS),
        "retention.bytes": "1000000",
    }
    assert kafka_topic_configs(SAMPLES_TOPIC, 12, LogRetention()) == {}  # the broker's defaults
    forever = {"retention.ms": "-1", "retention.bytes": "-1"}
    assert kafka_topic_configs(CONFIG_TOPIC, 1, retention) == forever
    assert kafka_topic_configs(CONFIG_TOPIC, 1, None) == forever


async def test_kafka_topics_are_created_with_their_retention(kafka_broker: TansuBroker) -> None:
    samples = f"test.{uuid.uuid4().hex[:12]}.v1"
    retention = LogRetention(topics=frozenset({samples}), retention_ms=DAY_MS, retention_bytes=3_000_000)
    log = KafkaEventLog.from_url(kafka_broker.url(), retention=retention)
    await log.start()
    try:
        await log.ensure_topic(samples, 3)
    finally:
        await log.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, samples)])
        configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    finally:
        await admin.close()
    assert configs.get("retention.ms") == str(DAY_MS)
    assert configs.get("retention.bytes") == "1000000"


async def test_the_composition_root_opens_the_log_with_the_settings_retention(tmp_path: Path) -> None:
    from argus.container import event_log_resource

    settings = Settings(data_dir=tmp_path, event_log_retention_bytes=10**9, retention_check_interval_ms=1_000)
    resource = event_log_resource(settings.resolved())
    log = await anext(resource)
    try:
        assert isinstance(log, SqliteEventLog)
        assert log.retention == LogRetention.from_settings(settings)
        assert log.retention.dedup_window_ms == dedup_window_ms(settings)
    finally:
        with pytest.raises(StopAsyncIteration):
            await anext(resource)  # runs the resource's close
