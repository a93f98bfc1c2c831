"""A record that will not decode does not stop its partition: the consumer runner quarantines
it and moves on, and everything before and after it is applied exactly once.

On the embedded log (events whose payload is garbage, of another type, or inconsistent) and
on Kafka (tansu: a raw record without the Argus headers and one with the headers and a
garbage payload, produced with aiokafka). A newer schema version is not quarantined: it
halts its partition until a build that understands it runs.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner

from argus.commands import admin_cmd
from contracts.argus.events.v1 import events_pb2
from core import events as core_events
from core import points as pts
from core.adapters.kafka_event_log import KafkaEventLog
from core.adapters.sqlite_event_log import SqliteEventLog
from core.adapters.sqlite_hot_store import SqliteHotStore
from core.chunks import decode_chunk
from core.consumer import ConsumerRunner, Delivery
from core.errors import StorageError, Unauthenticated
from core.events import QUARANTINE_TOPIC, SAMPLES_TOPIC, digest, make_event
from core.model import DEFAULT_TIERS, MetricKind, series_id
from core.ports import Event, EventLog, LogRecord
from core.quarantine import QuarantineReport, read_quarantine
from core.samples import decode_sample_batch
from projectors.rollups import RollupProjector
from projectors.series_index import SeriesIndexProjector
from query_side.engine import QueryEngine
from query_side.http_gateway import make_http_app
from tests.services.kafka import TansuBroker

NOW = 1_764_000_000_000
START = NOW - 3 * 3_600_000
PARTITIONS = 3
POISONED = 1  # the partition that gets the bad records, in its middle
HOSTS = 4


def sample_event(n: int, rng: np.random.Generator) -> Event:
    """One batch: 20 samples of a gauge of one host (hosts cycle, so series recur)."""
    host = f"h{n % HOSTS}"
    ts = START + np.sort(rng.integers(0, 3 * 3_600_000, 20))
    payload = events_pb2.SampleBatchAccepted(tenant="t", source="test", batch_id=f"b{n}")
    s = payload.series.add(metric="load", kind=MetricKind.GAUGE, region="eu", timestamps_ms=ts.tolist())
    s.labels.add(name="host", value=host)
    s.values.extend(rng.integers(0, 1000, 20).astype(float).tolist())
    payload.series_ids.append(series_id("t", "eu", "load", (("host", host),)))
    return make_event(payload, identity=digest(str(n)), partition_key=host.encode(), time_ms=NOW)


def good_events() -> list[tuple[int, Event]]:
    """Events of every partition; a host's series always lands in the same partition."""
    rng = np.random.default_rng(11)
    return [(n % HOSTS % PARTITIONS, sample_event(n, rng)) for n in range(24)]


def garbage_payload_event(n: int) -> Event:
    """The Argus envelope around bytes that do not parse (a length prefix past the end)."""
    return Event(
        event_id=digest("garbage", str(n)),
        type=events_pb2.SampleBatchAccepted.DESCRIPTOR.full_name,
        schema_version=1,
        time_ms=NOW,
        partition_key=b"x",
        payload=b"\x0a\xff\xff\xff\x0f" + bytes(range(40)),
    )


def foreign_type_event() -> Event:
    return Event(
        event_id=digest("foreign"),
        type="somebody.else.v1.Thing",
        schema_version=1,
        time_ms=NOW,
        partition_key=b"x",
        payload=b"hello",
    )


def inconsistent_event() -> Event:
    """Parses, but names two series ids for one series."""
    payload = events_pb2.SampleBatchAccepted(tenant="t", source="test", batch_id="bad")
    s = payload.series.add(metric="load", kind=MetricKind.GAUGE, region="eu", timestamps_ms=[START])
    s.values.append(1.0)
    payload.series_ids.extend([1, 2])
    return make_event(payload, identity=digest("inconsistent"), partition_key=b"x", time_ms=NOW)


Model = dict[tuple[str, int, int], pts.Points]


async def read_model(store: SqliteHotStore) -> Model:
    out = {}
    sids = [series_id("t", "eu", "load", (("host", f"h{i}"),)) for i in range(HOSTS)]
    for tier in DEFAULT_TIERS:
        for c in await store.read_range(tier.name, sids, 0, NOW + 1, tier.chunk_span_ms):
            out[(tier.name, c.series_id, c.chunk_start_ms)] = decode_chunk(c.data, key=c.series_id).points
    return out


def assert_same_model(
    got: dict[tuple[str, int, int], pts.Points], want: dict[tuple[str, int, int], pts.Points]
) -> None:
    assert got.keys() == want.keys()
    for key, points in want.items():
        assert pts.identical(got[key], points), key


async def reference_model(tmp_path: Path, events: list[tuple[int, Event]], name: str = "clean") -> Model:
    """The read model of `events` alone, on a clean log."""
    log = SqliteEventLog(tmp_path / f"{name}-events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    await log.append(SAMPLES_TOPIC, events)
    store = SqliteHotStore(tmp_path / f"{name}-hot.db")
    await store.start()
    await RollupProjector(log=log, store=store, tiers=DEFAULT_TIERS, clock_ms=lambda: NOW).catch_up()
    model = await read_model(store)
    await store.close()
    await log.close()
    return model


def rollups(log: EventLog, store: SqliteHotStore, group: str = "rollups", **options: Any) -> RollupProjector:
    return RollupProjector(log=log, store=store, tiers=DEFAULT_TIERS, clock_ms=lambda: NOW, group=group, **options)


def quarantined_at(report: QuarantineReport, group: str) -> list[tuple[str, int, int]]:
    return sorted((r.topic, r.partition, r.offset) for r in report.records if r.group == group)


# ---------------------------------------------------------------------------- embedded log


@pytest.fixture
async def poisoned_log(tmp_path: Path) -> AsyncIterator[tuple[SqliteEventLog, list[tuple[int, Event]], list[int]]]:
    """Good events, then three bad records in the middle of partition POISONED, then more
    good events; yields the log, the good events and the bad records' offsets."""
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    events = good_events()
    half = len(events) // 2
    await log.append(SAMPLES_TOPIC, events[:half])
    bad = [garbage_payload_event(0), foreign_type_event(), inconsistent_event()]
    result = await log.append(SAMPLES_TOPIC, [(POISONED, e) for e in bad])
    await log.append(SAMPLES_TOPIC, events[half:])
    offsets = [o for o in result.offsets if o is not None]
    assert len(offsets) == 3 and await log.end_offset(SAMPLES_TOPIC, POISONED) > offsets[-1] + 1
    yield log, events, offsets
    await log.close()


async def test_bad_records_mid_partition_are_quarantined_and_the_rest_applied_once(
    poisoned_log: tuple[SqliteEventLog, list[tuple[int, Event]], list[int]], tmp_path: Path
) -> None:
    log, events, bad_offsets = poisoned_log
    store = SqliteHotStore(tmp_path / "hot.db")
    await store.start()
    projector = rollups(log, store, poll_records=2, max_buffer_samples=40)
    applied = await projector.catch_up()
    assert applied == 20 * len(events)
    assert_same_model(await read_model(store), await reference_model(tmp_path, events))
    # Moved past the bad records: the commit is at the end of every partition.
    ends = {p: await log.end_offset(SAMPLES_TOPIC, p) for p in range(PARTITIONS)}
    await projector.close()
    assert await log.consumer("rollups", SAMPLES_TOPIC).committed() == ends

    report = await read_quarantine(log)
    assert quarantined_at(report, "rollups") == [(SAMPLES_TOPIC, POISONED, o) for o in bad_offsets]
    errors = {r.offset: r.error for r in report.records}
    assert "does not parse" in errors[bad_offsets[0]]
    assert "somebody.else.v1.Thing" in errors[bad_offsets[1]]
    assert "series ids" in errors[bad_offsets[2]]
    assert projector.status().records_quarantined == 3
    assert not report.halts

    # The series index runs on the same runner: it indexes the series after the bad records.
    index = SeriesIndexProjector(log=log, index=store, clock_ms=lambda: NOW)
    await index.catch_up()
    await index.close()
    hosts = sorted(dict(r.labels)["host"] for r in await store.find_series("t", "load"))
    assert hosts == [f"h{i}" for i in range(HOSTS)]
    assert quarantined_at(await read_quarantine(log), "series-index") == [
        (SAMPLES_TOPIC, POISONED, o) for o in bad_offsets
    ]
    await store.close()


async def test_meeting_a_bad_record_again_after_a_crash_quarantines_it_once(
    poisoned_log: tuple[SqliteEventLog, list[tuple[int, Event]], list[int]], tmp_path: Path
) -> None:
    log, events, bad_offsets = poisoned_log
    store = SqliteHotStore(tmp_path / "hot.db")
    await store.start()
    crashing = rollups(log, store)

    async def fail_commit(offsets: object) -> None:
        raise RuntimeError("power cut before the offset commit")

    crashing._consumer = log.consumer("rollups", SAMPLES_TOPIC)
    crashing._consumer.commit = fail_commit  # type: ignore[method-assign,assignment]
    with pytest.raises(RuntimeError, match="power cut"):
        await crashing.catch_up()
    await crashing.close()
    assert len((await read_quarantine(log)).records) == 3

    restarted = rollups(log, store)
    await restarted.catch_up()
    await restarted.close()
    assert_same_model(await read_model(store), await reference_model(tmp_path, events))
    report = await read_quarantine(log)
    assert quarantined_at(report, "rollups") == [(SAMPLES_TOPIC, POISONED, o) for o in bad_offsets]
    assert await log.end_offset(QUARANTINE_TOPIC, 0) == 3  # the embedded log dropped the repeats
    await store.close()


async def test_a_newer_schema_version_halts_its_partition_until_an_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    events = good_events()
    half = len(events) // 2
    await log.append(SAMPLES_TOPIC, events[:half])
    # A valid event of a future build, for a series of the poisoned partition.
    future_partition, future_event = next((p, e) for p, e in events[half:] if p == POISONED)
    v2 = Event(
        event_id=digest("v2"),
        type=future_event.type,
        schema_version=core_events.SCHEMA_VERSION + 1,
        time_ms=NOW,
        partition_key=future_event.partition_key,
        payload=future_event.payload,
    )
    halted_at = (await log.append(SAMPLES_TOPIC, [(future_partition, v2)])).offsets[0]
    assert halted_at is not None
    await log.append(SAMPLES_TOPIC, events[half:])
    store = SqliteHotStore(tmp_path / "hot.db")
    await store.start()

    projector = rollups(log, store)
    await projector.catch_up()
    status = projector.status()
    assert list(status.halted) == [POISONED] and not status.healthy
    assert status.records_quarantined == 0
    await projector.close()
    # Nothing of the halted partition from the new event on is applied or committed; the
    # other partitions went on to their end.
    committed = await log.consumer("rollups", SAMPLES_TOPIC).committed()
    assert committed[POISONED] == halted_at
    for p in set(range(PARTITIONS)) - {POISONED}:
        assert committed[p] == await log.end_offset(SAMPLES_TOPIC, p)
    before_halt = [(p, e) for p, e in events[:half]] + [(p, e) for p, e in events[half:] if p != POISONED]
    assert_same_model(await read_model(store), await reference_model(tmp_path, before_halt, "before-halt"))
    report = await read_quarantine(log)
    assert not report.records
    (halt,) = report.halts
    assert (halt.group, halt.partition, halt.offset, halt.halted) == ("rollups", POISONED, halted_at, True)
    assert halt.schema_version == core_events.SCHEMA_VERSION + 1 and "upgrade" in halt.error.lower()

    # The next build understands the new version (and upcasts the old one): it resumes.
    current = core_events.SCHEMA_VERSION
    monkeypatch.setattr(core_events, "SCHEMA_VERSION", current + 1)
    for name in core_events.PAYLOAD_TYPES:
        monkeypatch.setitem(core_events.UPCASTERS, (name, current), lambda payload: payload)
    upgraded = rollups(log, store)
    await upgraded.catch_up()
    await upgraded.close()
    assert upgraded.status().healthy
    assert_same_model(
        await read_model(store), await reference_model(tmp_path, [*events, (future_partition, v2)], "upgraded")
    )
    (halt,) = (await read_quarantine(log)).halts
    assert not halt.halted and halt.resumed_at_ms == NOW
    await store.close()
    await log.close()


# ---------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="module")
def own_broker() -> Iterator[TansuBroker]:
    """A broker of this module's own: the samples topic name is fixed, and the session's
    shared broker has other tests' samples in it."""
    work = Path(tempfile.mkdtemp(prefix="argus-poison-tansu-"))
    broker = TansuBroker(work).start()
    try:
        yield broker
    finally:
        broker.stop()


async def wait_for(condition: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_kafka_records_without_headers_or_with_garbage_are_quarantined(
    own_broker: TansuBroker, tmp_path: Path
) -> None:
    log = KafkaEventLog.from_url(own_broker.url(replication_factor=1))
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    events = good_events()
    half = len(events) // 2
    await log.append(SAMPLES_TOPIC, events[:half])
    raw = AIOKafkaProducer(bootstrap_servers=own_broker.bootstrap, acks="all")
    await raw.start()
    try:
        # Another producer's record (no Argus headers), then the envelope around garbage.
        first = await raw.send_and_wait(SAMPLES_TOPIC, value=b'{"not": "argus"}', key=b"k", partition=POISONED)
        garbage = garbage_payload_event(1)
        second = await raw.send_and_wait(
            SAMPLES_TOPIC,
            value=garbage.payload,
            key=garbage.partition_key,
            partition=POISONED,
            headers=[
                ("event_id", garbage.event_id),
                ("type", garbage.type.encode()),
                ("schema_version", b"1"),
                ("time_ms", str(NOW).encode()),
            ],
        )
    finally:
        await raw.stop()
    bad_offsets = [first.offset, second.offset]
    await log.append(SAMPLES_TOPIC, events[half:])

    store = SqliteHotStore(tmp_path / "hot.db")
    await store.start()
    want = await reference_model(tmp_path, events)
    projector = rollups(log, store, flush_interval_ms=100)
    index = SeriesIndexProjector(log=log, index=store, flush_interval_ms=100, clock_ms=lambda: NOW)
    # The first commit past a bad record fails (a crash before the commit): the runner
    # restarts from the last commit and meets both again.
    consumer = log.consumer("rollups", SAMPLES_TOPIC, listener=projector._runner)
    real_commit = consumer.commit
    failed: list[dict[int, int]] = []

    async def commit_failing_once(offsets: Mapping[int, int]) -> None:
        if not failed and offsets.get(POISONED, 0) > bad_offsets[0]:
            failed.append(dict(offsets))
            raise StorageError("power cut before the offset commit")
        await real_commit(offsets)

    consumer.commit = commit_failing_once  # type: ignore[method-assign,assignment]
    projector._consumer = consumer
    stop = asyncio.Event()
    tasks = [asyncio.create_task(projector.run(stop)), asyncio.create_task(index.run(stop))]

    async def everything_applied() -> bool:
        report = await read_quarantine(log)
        model = await read_model(store)
        return (
            len(quarantined_at(report, "rollups")) == 2
            and len(quarantined_at(report, "series-index")) == 2
            and model.keys() == want.keys()
            and all(pts.identical(model[k], p) for k, p in want.items())
            and len(await store.find_series("t", "load")) == HOSTS
            and projector.status().restarts == 1
            and projector.status().records_quarantined == 4  # met again after the restart
        )

    try:
        await wait_for(everything_applied, timeout_s=60, what="both groups past the bad records")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert failed, "the injected crash did not happen"
    assert_same_model(await read_model(store), want)  # the last flush added nothing twice
    report = await read_quarantine(log)
    for group in ("rollups", "series-index"):
        assert quarantined_at(report, group) == [(SAMPLES_TOPIC, POISONED, o) for o in bad_offsets]
    errors = {r.offset: r.error for r in report.records}
    assert "lacks the Argus envelope" in errors[first.offset]
    assert "does not parse" in errors[second.offset]
    # Met twice by rollups (before and after the crash): Kafka keeps both copies of the
    # entries, the quarantine lists each once.
    assert projector.status().records_quarantined == 4
    raw_entries = await log.read(QUARANTINE_TOPIC, 0, 0, 100)
    assert len(raw_entries) == 6
    await store.close()
    await log.close()


# ---------------------------------------------------------------------------- the views


class _Keys:
    """Two keys: one of the admin tenant `default`, one of a customer."""

    def tenant_for(self, api_key: str | None) -> str:
        tenants = {"admin-key": "default", "customer-key": "acme"}
        if api_key is None or api_key not in tenants:
            raise Unauthenticated("unknown or revoked API key")
        return tenants[api_key]


async def test_quarantine_is_listed_by_the_admin_endpoint_and_the_cli(
    poisoned_log: tuple[SqliteEventLog, list[tuple[int, Event]], list[int]], tmp_path: Path
) -> None:
    log, _, bad_offsets = poisoned_log
    store = SqliteHotStore(tmp_path / "hot.db")
    await store.start()
    projector = rollups(log, store)
    await projector.catch_up()
    await projector.close()

    engine = QueryEngine(store, store, DEFAULT_TIERS, lambda: NOW)
    app = make_http_app(engine, _Keys(), lambda: NOW, quarantine=lambda: read_quarantine(log))
    admin = {"Authorization": "Bearer admin-key"}
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/v1/admin/quarantine", headers=admin)
        assert response.status == 200
        body = await response.json()
        assert [(r["group"], r["partition"], r["offset"]) for r in body["records"]] == [
            ("rollups", POISONED, o) for o in bad_offsets
        ]
        assert all(r["error"] and "payload_prefix" not in r for r in body["records"])
        assert body["halted"] == [] and body["resumed"] == []
        other = await client.get(
            "/api/v1/admin/quarantine?group=series-index", headers={"Authorization": "Bearer admin-key"}
        )
        assert (await other.json())["records"] == []
        # Not tenant-scoped (a record that did not decode has no known tenant): admins only.
        denied = await client.get("/api/v1/admin/quarantine", headers={"Authorization": "Bearer customer-key"})
        assert denied.status == 403 and "admin tenant" in (await denied.json())["error"]
        anonymous = await client.get("/api/v1/admin/quarantine")
        assert anonymous.status == 401

    # The CLI reads the same topic from the data dir (the embedded log is events.db there).
    cli = await asyncio.to_thread(
        CliRunner().invoke, admin_cmd.admin, ["quarantine", "--data-dir", str(tmp_path), "--json"]
    )
    assert cli.exit_code == 0, cli.output
    listed = orjson.loads(cli.stdout)["records"]
    assert [(r["partition"], r["offset"]) for r in listed] == [(POISONED, o) for o in bad_offsets]
    assert listed[0]["payload_prefix"] == garbage_payload_event(0).payload.hex()
    table = await asyncio.to_thread(CliRunner().invoke, admin_cmd.admin, ["quarantine", "--data-dir", str(tmp_path)])
    assert table.exit_code == 0 and "Quarantined records (3)" in table.stdout
    await store.close()


class _Recorder:
    """The smallest handler: remembers what it was given, in order; durable at once."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, str]] = []  # (partition, offset, "apply" | "skip")
        self._next: dict[int, int] = {}

    def decode(self, record: LogRecord) -> events_pb2.SampleBatchAccepted:
        return decode_sample_batch(record)

    async def apply(self, deliveries: Sequence[Delivery[events_pb2.SampleBatchAccepted]]) -> None:
        for d in deliveries:
            self.seen.append((d.record.partition, d.record.offset, "apply"))
            self._next[d.record.partition] = d.record.offset + 1

    def skip(self, partition: int, offset: int) -> None:
        self.seen.append((partition, offset, "skip"))
        self._next[partition] = offset + 1

    def buffer_full(self) -> bool:
        return False

    async def settle(self, *, force: bool) -> dict[int, int]:
        settled, self._next = self._next, {}
        return settled

    def reset(self) -> None:
        self._next = {}

    async def reassigned(self, partitions: frozenset[int]) -> None:
        return None

    async def housekeeping(self) -> None:
        return None


async def test_a_handler_sees_every_good_record_once_in_offset_order_around_the_bad_ones(
    poisoned_log: tuple[SqliteEventLog, list[tuple[int, Event]], list[int]],
) -> None:
    log, events, bad_offsets = poisoned_log
    handler = _Recorder()
    runner = ConsumerRunner(
        name="recorder", log=log, topic=SAMPLES_TOPIC, group="recorder", handler=handler, clock_ms=lambda: NOW
    )
    await runner.catch_up()
    await runner.close()
    for p in range(PARTITIONS):
        offsets = [o for q, o, _ in handler.seen if q == p]
        assert offsets == list(range(await log.end_offset(SAMPLES_TOPIC, p))), p  # each once, in order
    assert [o for p, o, kind in handler.seen if kind == "skip"] == bad_offsets
    assert len([s for s in handler.seen if s[2] == "apply"]) == len(events)
    ends = {p: await log.end_offset(SAMPLES_TOPIC, p) for p in range(PARTITIONS)}
    assert await log.consumer("recorder", SAMPLES_TOPIC).committed() == ends
    assert runner.status().records_quarantined == len(bad_offsets)
