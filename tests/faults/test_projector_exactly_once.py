"""The rollup projector applies every sample exactly once, whatever fails or repeats.

Real SQLite adapters; the faults are injected at the port boundary (a commit that fails
after the chunks were written, an event appended twice at different offsets).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts.argus.events.v1 import events_pb2
from core import points as pts
from core.adapters.sqlite_event_log import SqliteEventLog
from core.adapters.sqlite_hot_store import SqliteHotStore
from core.chunks import decode_chunk
from core.events import SAMPLES_TOPIC, digest, make_event
from core.model import DEFAULT_TIERS, MetricKind, partition_of, series_id
from core.ports import Event, LogRecord
from projectors.rollups import RollupProjector

NOW = 1_764_000_000_000
START = NOW - 3 * 3_600_000
PARTITIONS = 4


def sample_event(n: int, *, rng: np.random.Generator) -> tuple[int, Event]:
    """One event: a gauge, a counter and a timer series of one host, 60 samples each."""
    host = f"h{n % 3}"
    labels = (("host", host),)
    ts = START + np.sort(rng.integers(0, 3 * 3_600_000, 60))
    payload = events_pb2.SampleBatchAccepted(tenant="t", source="test", batch_id=f"b{n}")
    sid = series_id("t", "eu", "load", labels)
    s = payload.series.add(metric="load", kind=MetricKind.GAUGE, region="eu", timestamps_ms=ts.tolist())
    s.labels.add(name="host", value=host)
    s.values.extend(rng.integers(0, 100, 60).astype(float).tolist())
    payload.series_ids.append(sid)
    event = make_event(payload, identity=digest(str(n)), partition_key=b"k", time_ms=NOW)
    return partition_of(sid, PARTITIONS), event


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[SqliteEventLog, list[tuple[int, Event]]]]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    rng = np.random.default_rng(7)
    events = [sample_event(n, rng=rng) for n in range(30)]
    await log.append(SAMPLES_TOPIC, events)
    yield log, events
    await log.close()


async def open_store(path: Path) -> SqliteHotStore:
    store = SqliteHotStore(path)
    await store.start()
    return store


def projector(log: SqliteEventLog, store: SqliteHotStore, group: str = "rollups", **options: Any) -> RollupProjector:
    return RollupProjector(log=log, store=store, tiers=DEFAULT_TIERS, clock_ms=lambda: NOW, group=group, **options)


async def read_model(store: SqliteHotStore) -> dict[tuple[str, int, int], pts.Points]:
    """Every chunk of every tier, decoded."""
    out = {}
    for tier in DEFAULT_TIERS:
        for sid in {series_id("t", "eu", "load", (("host", f"h{i}"),)) for i in range(3)}:
            for c in await store.read_range(tier.name, [sid], 0, NOW + 1, tier.chunk_span_ms):
                out[(tier.name, c.series_id, c.chunk_start_ms)] = decode_chunk(c.data, key=c.series_id).points
    return out


def expected_5s_totals(events: list[tuple[int, Event]]) -> tuple[int, float]:
    count, total = 0, 0.0
    for _, e in events:
        payload = events_pb2.SampleBatchAccepted.FromString(e.payload)
        for s in payload.series:
            count += len(s.values)
            total += sum(s.values)
    return count, total


def totals(model: dict[tuple[str, int, int], pts.Points], tier: str) -> tuple[int, float]:
    parts = [p for (t, _, _), p in model.items() if t == tier]
    return int(sum(int(p.count.sum()) for p in parts)), float(sum(float(p.sum.sum()) for p in parts))


async def test_every_tier_holds_each_sample_once(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, events = world
    store = await open_store(tmp_path / "hot.db")
    assert await projector(log, store).catch_up() == 30 * 60
    model = await read_model(store)
    for tier in DEFAULT_TIERS:
        assert totals(model, tier.name) == expected_5s_totals(events), tier.name
    await store.close()


async def test_crash_after_chunk_write_before_commit_does_not_double_count(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, _ = world
    store = await open_store(tmp_path / "hot.db")
    first = projector(log, store)
    await first.catch_up()
    reference = await read_model(store)

    # Same log, a store that has the effects, but offsets that were never committed.
    crashed_store = await open_store(tmp_path / "crashed.db")
    crashing = projector(log, crashed_store, group="crashy")

    async def fail_commit(offsets: object) -> None:
        raise RuntimeError("power cut before the offset commit")

    crashing._consumer = log.consumer("crashy", SAMPLES_TOPIC)
    crashing._consumer.commit = fail_commit  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="power cut"):
        await crashing.catch_up()
    assert await log.consumer("crashy", SAMPLES_TOPIC).committed() == {}

    await crashing.close()  # the process died: its group membership ends with it

    # A fresh process replays everything from offset 0 into the same store.
    restarted = projector(log, crashed_store, group="crashy")
    await restarted.catch_up()
    after = await read_model(crashed_store)
    assert after.keys() == reference.keys()
    for key, points in reference.items():
        assert pts.identical(after[key], points), key
    await store.close()
    await crashed_store.close()


async def test_event_appended_again_at_a_new_offset_is_dropped(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, events = world
    store = await open_store(tmp_path / "hot.db")
    await projector(log, store).catch_up()
    before = await read_model(store)
    # A Kafka producer retry can append the same event twice. The embedded log refuses the
    # copy, so hand the projector the copy directly, at an offset past everything applied.
    partition, event = events[0]
    copy = LogRecord(topic=SAMPLES_TOPIC, partition=partition, offset=10_000, event=event)
    other = projector(log, store)
    await other._buffer_records([copy])
    assert (await other.flush()).samples == 0
    after = await read_model(store)
    assert after.keys() == before.keys()
    for key in before:
        assert pts.identical(after[key], before[key]), key
    await store.close()


async def test_replay_into_a_fresh_store_rebuilds_the_same_read_model(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, _ = world
    live = await open_store(tmp_path / "live.db")
    # Live: one event per poll and a flush after each, as when events trickle in.
    await projector(log, live, poll_records=1, max_buffer_samples=1).catch_up()
    replayed = await open_store(tmp_path / "replay.db")
    await projector(log, replayed, group="replay").catch_up()
    a, b = await read_model(live), await read_model(replayed)
    assert a.keys() == b.keys()
    for key in a:
        assert pts.identical(a[key], b[key]), key
    await live.close()
    await replayed.close()
