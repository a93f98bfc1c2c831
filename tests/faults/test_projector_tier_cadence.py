"""Per-tier write cadence keeps the rollup projector exactly-once.

Fine tiers write at every flush tick, coarse ones only every few ticks (a fake monotonic
clock makes the ticks deterministic). A crash between the two, a restart, a duplicate
event in between, and memory pressure must all end with every tier bit-identical to a
projector that wrote every tier at every flush. Real SQLite adapters, as in
test_projector_exactly_once.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from contracts.argus.events.v1 import events_pb2
from core import points as pts
from core.adapters.sqlite_event_log import SqliteEventLog
from core.adapters.sqlite_hot_store import SqliteHotStore
from core.events import SAMPLES_TOPIC, digest, make_event
from core.model import DEFAULT_TIERS, MetricKind, partition_of, series_id
from core.ports import Event, LogRecord
from projectors.rollups import RollupProjector
from tests.faults.test_projector_exactly_once import NOW, PARTITIONS, START, open_store, read_model, sample_event

# Fine tiers every tick, coarse ones every few ticks; the 1d tier only when forced.
CADENCE = {"1m": 2_000, "5m": 5_000, "1h": 11_000, "1d": 3_600_000}


class TickClock:
    """A monotonic clock that advances one second each time it is read: each flush reads
    it once, so flush n happens at about n seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[SqliteEventLog, list[tuple[int, Event]]]]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    rng = np.random.default_rng(11)
    events = [sample_event(n, rng=rng) for n in range(30)]
    await log.append(SAMPLES_TOPIC, events)
    yield log, events
    await log.close()


def projector(
    log: SqliteEventLog, store: SqliteHotStore, group: str, *, cadence: dict[str, int] | None = None, **options: int
) -> RollupProjector:
    return RollupProjector(
        log=log,
        store=store,
        tiers=DEFAULT_TIERS,
        clock_ms=lambda: NOW,
        group=group,
        flush_interval_ms=1_000,
        tier_flush_interval_ms=cadence,
        monotonic_s=TickClock(),
        **options,
    )


async def reference_model(log: SqliteEventLog, tmp_path: Path) -> dict[tuple[str, int, int], pts.Points]:
    """Uniform cadence, a flush per event: today's behaviour."""
    store = await open_store(tmp_path / "reference.db")
    await projector(log, store, "reference", poll_records=1, max_buffer_samples=1).catch_up()
    model = await read_model(store)
    await store.close()
    return model


def assert_identical(got: dict[tuple[str, int, int], pts.Points], want: dict[tuple[str, int, int], pts.Points]) -> None:
    assert got.keys() == want.keys()
    for key, points in want.items():
        assert pts.identical(got[key], points), key


def chunk_tiers(model: dict[tuple[str, int, int], pts.Points]) -> set[str]:
    return {tier for tier, _, _ in model}


async def test_tiers_write_on_their_own_cadence_and_forced_flush_writes_all(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, _ = world
    reference = await reference_model(log, tmp_path)
    store = await open_store(tmp_path / "hot.db")
    p = projector(log, store, "cadence", cadence=CADENCE, poll_records=1, max_buffer_samples=1)
    written: dict[str, int] = {}
    assert p._consumer is None
    p._consumer = log.consumer("cadence", SAMPLES_TOPIC)
    while records := await p._consumer.poll(max_records=1, timeout_s=0.05):
        await p._buffer_records(records)
        for tier in (await p.flush(force=False)).tiers_written:
            written[tier] = written.get(tier, 0) + 1
    # 30 ticks at ~1 s: 5s every tick, 1m every 2nd, 5m every 5th, 1h every 11th, 1d never.
    assert written["5s"] == 30
    assert 12 <= written["1m"] <= 15
    assert 5 <= written["5m"] <= 6
    assert 2 <= written["1h"] <= 3
    assert "1d" not in written
    assert "1d" not in chunk_tiers(await read_model(store))
    # Nothing is settled while the 1d tier holds nothing: no ids recorded, no offsets committed.
    assert await log.consumer("cadence", SAMPLES_TOPIC).committed() == {}
    assert await store.filter_new_events("rollups", [e.event_id for _, e in (await _all(log))]) == {
        e.event_id for _, e in await _all(log)
    }
    stats = await p.flush()  # forced: every dirty tier
    assert "1d" in stats.tiers_written
    assert_identical(await read_model(store), reference)
    committed = await log.consumer("cadence", SAMPLES_TOPIC).committed()
    assert committed == {part: await log.end_offset(SAMPLES_TOPIC, part) for part in committed}
    assert len(committed) == len({part for part, _ in await _all(log)})
    await p.close()
    await store.close()


async def _all(log: SqliteEventLog) -> list[tuple[int, Event]]:
    out = []
    for part in range(PARTITIONS):
        out += [(r.partition, r.event) for r in await log.read(SAMPLES_TOPIC, part, 0, 1_000)]
    return out


@pytest.mark.parametrize("crash_after", [7, 13, 27])
async def test_crash_between_fine_and_coarse_writes_then_replay_is_exact(  # type: ignore[no-untyped-def]
    world, tmp_path: Path, crash_after: int
) -> None:
    log, _ = world
    reference = await reference_model(log, tmp_path)
    store = await open_store(tmp_path / "hot.db")
    cadence = {"1m": 2_000, "5m": 5_000, "1h": 6_000, "1d": 8_000}
    crashing = projector(log, store, "crashy", cadence=cadence, poll_records=1, max_buffer_samples=1)
    crashing._consumer = log.consumer("crashy", SAMPLES_TOPIC)
    for _ in range(crash_after):
        await crashing._buffer_records(await crashing._consumer.poll(max_records=1, timeout_s=0.05))
        await crashing.flush(force=False)
    # The process dies here: fine tiers hold more than coarse ones, nothing more is written.
    committed = await log.consumer("crashy", SAMPLES_TOPIC).committed()
    ends = {part: await log.end_offset(SAMPLES_TOPIC, part) for part in range(PARTITIONS)}
    assert sum(committed.values()) < sum(ends.values())
    before = await read_model(store)
    written = totals_by_tier(before)
    assert min(written.get(t.name, 0) for t in DEFAULT_TIERS) < written["5s"]  # some tier lags
    await crashing.close()

    restarted = projector(log, store, "crashy")  # uniform cadence after the restart
    await restarted.catch_up()
    assert_identical(await read_model(store), reference)
    await store.close()


def totals_by_tier(model: dict[tuple[str, int, int], pts.Points]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (tier, _, _), points in model.items():
        out[tier] = out.get(tier, 0) + int(points.count.sum())
    return out


async def test_duplicate_between_fine_and_coarse_write_is_applied_once(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, events = world
    reference = await reference_model(log, tmp_path)
    store = await open_store(tmp_path / "hot.db")
    p = projector(log, store, "dup", cadence={"5m": 60_000, "1h": 60_000, "1d": 60_000})
    await p.catch_up(force=False)
    # The fine tiers have written every event, the coarse ones none.
    assert "1h" not in chunk_tiers(await read_model(store))
    assert "5s" in chunk_tiers(await read_model(store))
    # A producer retry appended event 0 again, at an offset past everything applied.
    partition, event = events[0]
    await p._buffer_records([LogRecord(topic=SAMPLES_TOPIC, partition=partition, offset=10_000, event=event)])
    await p.flush(force=False)
    await p.flush()
    assert_identical(await read_model(store), reference)
    await p.close()
    await store.close()


async def test_duplicate_after_a_crash_between_fine_and_coarse_write_is_applied_once(  # type: ignore[no-untyped-def]
    world, tmp_path: Path
) -> None:
    log, events = world
    reference = await reference_model(log, tmp_path)
    store = await open_store(tmp_path / "hot.db")
    crashing = projector(log, store, "dup-crash", cadence={"5m": 60_000, "1h": 60_000, "1d": 60_000})
    await crashing.catch_up(force=False)
    await crashing.close()  # crash: the fine tiers have every event, the coarse ones none
    # After the restart the log re-delivers everything (nothing was committed), then the copy.
    restarted = projector(log, store, "dup-crash", cadence={"5m": 60_000, "1h": 60_000, "1d": 60_000})
    await restarted.catch_up(force=False)
    partition, event = events[3]
    await restarted._buffer_records([LogRecord(topic=SAMPLES_TOPIC, partition=partition, offset=10_000, event=event)])
    await restarted.flush()
    assert_identical(await read_model(store), reference)
    await restarted.close()
    await store.close()


async def test_memory_pressure_writes_coarse_tiers_early_instead_of_dropping_them(  # type: ignore[no-untyped-def]
    world, tmp_path: Path
) -> None:
    log, _ = world
    reference = await reference_model(log, tmp_path)
    store = await open_store(tmp_path / "hot.db")
    p = projector(log, store, "tight", cadence=CADENCE, poll_records=1, max_buffer_samples=1, max_cached_points=1)
    await p.catch_up(force=False)
    # The budget check (every 20th flush) wrote every tier and dropped the cache.
    assert "1d" in chunk_tiers(await read_model(store))
    await p.flush()
    assert_identical(await read_model(store), reference)
    await p.close()
    await store.close()


def one_sample_event(n: int, host: str) -> tuple[int, Event]:
    labels = (("host", host),)
    sid = series_id("t", "eu", "load", labels)
    payload = events_pb2.SampleBatchAccepted(tenant="t", source="test", batch_id=f"one-{n}")
    s = payload.series.add(metric="load", kind=MetricKind.GAUGE, region="eu", timestamps_ms=[START + n * 5_000])
    s.labels.add(name="host", value=host)
    s.values.append(float(n))
    payload.series_ids.append(sid)
    event = make_event(payload, identity=digest(f"one-{n}"), partition_key=b"k", time_ms=NOW)
    return partition_of(sid, PARTITIONS), event


async def test_dirty_chunk_untouched_for_long_is_not_evicted(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    # h0 once, then 150 flushes of h1 only: h0's 1d chunk stays dirty and untouched.
    await log.append(SAMPLES_TOPIC, [one_sample_event(0, "h0"), *(one_sample_event(n, "h1") for n in range(1, 151))])
    store = await open_store(tmp_path / "hot.db")
    p = projector(log, store, "evict", cadence={"1d": 3_600_000}, poll_records=1, max_buffer_samples=1)
    await p.catch_up(force=False)
    await p.flush()
    model = await read_model(store)
    h0 = series_id("t", "eu", "load", (("host", "h0"),))
    assert [int(points.count.sum()) for (tier, sid, _), points in model.items() if tier == "1d" and sid == h0] == [1]
    assert totals_by_tier(model)["1d"] == 151
    await p.close()
    await store.close()
    await log.close()
