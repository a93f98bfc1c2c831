"""Evicting open chunks never loses or double-counts a sample.

A projector with a tiny open-chunk cache (and every closed chunk dropped once written) must
end with every tier bit-identical, float sums included, to one whose cache holds everything:
an evicted chunk is re-read from the store with its applied offset. The samples move forward
in time with some late ones, so closed chunks are both dropped and re-loaded; gauges and
timers (sketches) both. Real SQLite adapters, as in test_projector_exactly_once.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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
from core.ports import Event, StoredChunk
from projectors.rollups import RollupProjector
from tests.faults.test_projector_exactly_once import NOW, PARTITIONS, open_store
from tests.faults.test_projector_tier_cadence import CADENCE, TickClock

HOUR = 3_600_000
START = NOW - 6 * HOUR
HOSTS = 4
EVENTS = 48
SERIES = [series_id("t", "eu", metric, (("host", f"h{h}"),)) for h in range(HOSTS) for metric in ("load", "latency")]

Model = dict[tuple[str, int, int], pts.Points]


def event(n: int, rng: np.random.Generator) -> tuple[int, Event]:
    """Host n % HOSTS: a gauge (fractional values) and a timer, 40 samples each, mostly in the
    next 10 minutes of the walk forward (crossing hour chunks), a few up to 3 h late."""
    host = f"h{n % HOSTS}"
    edge = START + n * 6 * HOUR // EVENTS
    ts = edge + rng.integers(0, 10 * 60_000, 40)
    late = rng.random(40) < 0.1
    ts[late] = np.maximum(START, ts[late] - rng.integers(0, 3 * HOUR, int(late.sum())))
    ts.sort()
    payload = events_pb2.SampleBatchAccepted(tenant="t", source="test", batch_id=f"b{n}")
    gauge = payload.series.add(metric="load", kind=MetricKind.GAUGE, region="eu", timestamps_ms=ts.tolist())
    gauge.labels.add(name="host", value=host)
    gauge.values.extend(rng.normal(0, 10, 40).tolist())
    payload.series_ids.append(series_id("t", "eu", "load", (("host", host),)))
    sid = series_id("t", "eu", "latency", (("host", host),))
    timer = payload.series.add(metric="latency", kind=MetricKind.TIMER, region="eu", timestamps_ms=ts.tolist())
    timer.labels.add(name="host", value=host)
    counts = rng.integers(1, 4, 40)
    timer.observation_counts.extend(counts.tolist())
    timer.observations.extend(np.round(rng.lognormal(3, 1, int(counts.sum())), 3).tolist())
    payload.series_ids.append(sid)
    # Both series of a host share a partition, as the series id of the gauge decides it.
    return partition_of(SERIES[2 * (n % HOSTS)], PARTITIONS), make_event(
        payload, identity=digest(f"evict-{n}"), partition_key=b"k", time_ms=NOW
    )


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    rng = np.random.default_rng(5)
    await log.append(SAMPLES_TOPIC, [event(n, rng) for n in range(EVENTS)])
    yield log
    await log.close()


class CountingStore(SqliteHotStore):
    """The real SQLite store, counting the chunks the projector re-reads."""

    loaded = 0

    async def get_chunks(self, tier: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredChunk]:
        got = await super().get_chunks(tier, keys)
        self.loaded += len(got)
        return got


async def read_model(store: SqliteHotStore) -> Model:
    out = {}
    for tier in DEFAULT_TIERS:
        for c in await store.read_range(tier.name, SERIES, 0, NOW + 1, tier.chunk_span_ms):
            out[(tier.name, c.series_id, c.chunk_start_ms)] = decode_chunk(c.data, key=c.series_id).points
    return out


def projector(log: SqliteEventLog, store: SqliteHotStore, group: str, **options: Any) -> RollupProjector:
    return RollupProjector(
        log=log,
        store=store,
        tiers=DEFAULT_TIERS,
        clock_ms=lambda: NOW,
        group=group,
        flush_interval_ms=1_000,
        monotonic_s=TickClock(),
        poll_records=1,
        max_buffer_samples=1,  # a flush per event
        **options,
    )


async def run(
    log: SqliteEventLog, path: Path, group: str, *, crash_after: int | None = None, **options: Any
) -> tuple[Model, CountingStore, int]:
    """Project everything (flushes not forced, then one forced); return the model, the store
    and the most points the cache held after a flush. `crash_after` flushes: the projector
    dies there (nothing more written) and a new one resumes from the committed offsets."""
    store = CountingStore(path)
    await store.start()
    p = projector(log, store, group, **options)
    p._consumer = log.consumer(group, SAMPLES_TOPIC)
    most, flushes = 0, 0
    while records := await p._consumer.poll(max_records=1, timeout_s=0.05):
        await p._buffer_records(records)
        await p.flush(force=False)
        most = max(most, p._cached_points)
        assert p._cached_points == sum(len(c.points) for cache in p._cache.values() for c in cache.values())
        flushes += 1
        if flushes == crash_after:
            await p.close()
            p = projector(log, store, group, **options)
            p._consumer = log.consumer(group, SAMPLES_TOPIC)
    await p.flush()
    model = await read_model(store)
    await p.close()
    return model, store, most


@pytest.mark.parametrize(
    ("cadence", "crash_after", "budget"),
    # A tiny budget makes every flush write every tier: nothing lags to re-deliver after a
    # crash. With a large one, closed chunks are still dropped once written (no grace).
    [(None, None, 40), (CADENCE, None, 40), (CADENCE, EVENTS // 2, 10**9)],
    ids=["uniform", "cadence", "cadence-crash"],
)
async def test_tiny_cache_gives_the_same_tiers_as_a_huge_one(
    log: SqliteEventLog, tmp_path: Path, cadence: dict[str, int] | None, crash_after: int | None, budget: int
) -> None:
    huge, huge_store, _ = await run(
        log,
        tmp_path / "huge.db",
        "huge",
        max_cached_points=10**9,
        closed_chunk_grace_ms=10**12,
        tier_flush_interval_ms=cadence,
    )
    assert huge_store.loaded == 0  # everything stayed in memory
    small, small_store, most = await run(
        log,
        tmp_path / "small.db",
        "small",
        crash_after=crash_after,
        max_cached_points=budget,
        closed_chunk_grace_ms=0,
        tier_flush_interval_ms=cadence,
    )
    assert small_store.loaded > 50  # chunks were dropped and re-read
    assert most <= budget  # after each flush (all dirty chunks were written when over it)
    assert small.keys() == huge.keys()
    for key, points in huge.items():
        # The same merges in the same order, so float sums too; after a crash a tier may
        # compute re-delivered points from the samples instead of rolling up the finer tier.
        assert pts.identical(small[key], points, compare_sum=crash_after is None), key
        assert np.allclose(small[key].sum, points.sum, rtol=1e-12), key
    for tier in DEFAULT_TIERS:  # every gauge sample once, in every tier
        gauges = {SERIES[2 * h] for h in range(HOSTS)}
        assert sum(int(v.count.sum()) for (t, sid, _), v in small.items() if t == tier.name and sid in gauges) == (
            40 * EVENTS
        )
    assert (
        await log.consumer("small", SAMPLES_TOPIC).committed() == await log.consumer("huge", SAMPLES_TOPIC).committed()
    )
    await huge_store.close()
    await small_store.close()


async def test_closed_chunks_are_dropped_once_written_and_open_ones_kept(log: SqliteEventLog, tmp_path: Path) -> None:
    # The 5s tier writes only when forced: its closed chunks stay (dirty) until then. No
    # grace: a chunk is closed as soon as its series has a point past it.
    store = await open_store(tmp_path / "hot.db")
    p = projector(log, store, "closing", tier_flush_interval_ms={"5s": 3_600_000}, closed_chunk_grace_ms=0)
    await p.catch_up(force=False)
    newest = {sid: max(start for (s, start) in p._cache["5s"] if s == sid) for sid in SERIES}
    assert any(start < newest[sid] for sid, start in p._cache["5s"])  # closed, not written yet
    assert p._dirty["5s"]
    await p.flush()
    # Written: only the newest 5s chunk of each series is left (open), and nothing closed.
    assert sorted(p._cache["5s"]) == sorted(newest.items())
    assert p._closed == {t.name: set() for t in DEFAULT_TIERS}
    await p.close()
    await store.close()
