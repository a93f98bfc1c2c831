"""Coarse tiers written rarely on DynamoDB: reads stay fresh and a kill -9 loses nothing.

The rollup projector writes the 5s tier at every flush and keeps the coarse tiers' open
chunks in memory (long `tier_flush_interval_ms`, decision 0058). A store with `fresh_s` must
answer every tier as a projector that wrote everything would, and a projector killed with
SIGKILL while those chunks exist only in its memory must, once restarted, leave the store
bit-identical to that reference. DynamoDB Local, a real SQLite log, a real child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from argus.launch import REPO_ROOT
from contracts.argus.events.v1 import events_pb2
from core import points as pts
from core.adapters.dynamodb_hot_store import DynamoDBHotStore
from core.adapters.sqlite_event_log import SqliteEventLog
from core.adapters.sqlite_hot_store import SqliteHotStore
from core.chunks import decode_chunk
from core.events import SAMPLES_TOPIC, digest, make_event
from core.model import DEFAULT_TIERS, MetricKind, partition_of, series_id
from core.ports import Event, HotStore
from harness.services import DynamoDBService
from projectors.rollups import RollupProjector
from tests.contract.test_hot_store import fresh_prefix
from tests.faults.test_projector_exactly_once import PARTITIONS
from tests.faults.test_projector_tier_cadence import TickClock, assert_identical

# Near the real time: DynamoDB Local's TTL deletes items whose retention has passed by the
# wall clock, whatever clock the store was given.
NOW = int(time.time() * 1000) // 3_600_000 * 3_600_000
START = NOW - 3 * 3_600_000

COARSE_RARELY = {"1m": 3_600_000, "5m": 3_600_000, "1h": 3_600_000, "1d": 3_600_000}
WINDOW_S = "14400"  # covers the 3 h of samples

CHILD = textwrap.dedent(
    """
    import asyncio, itertools, json, pathlib, sys
    from core.adapters.dynamodb_hot_store import DynamoDBHotStore
    from core.adapters.sqlite_event_log import SqliteEventLog
    from core.model import DEFAULT_TIERS
    from projectors.rollups import RollupProjector

    async def main(log_path: str, url: str, now: int) -> None:
        log = SqliteEventLog(pathlib.Path(log_path))
        await log.start()
        store = DynamoDBHotStore.from_url(url)
        await store.start()
        ticks = itertools.count(1)
        projector = RollupProjector(
            log=log, store=store, tiers=DEFAULT_TIERS, clock_ms=lambda: now, group="killed",
            flush_interval_ms=1_000, tier_flush_interval_ms=COARSE_RARELY,
            monotonic_s=lambda: float(next(ticks)),
        )
        # A generous idle timeout: on a loaded machine the first poll may come back empty.
        samples = await projector.catch_up(force=False, idle_timeout_s=2.0)
        print(f"open chunks in memory after {samples} samples", flush=True)
        sys.stdin.readline()  # killed here

    COARSE_RARELY = json.loads(sys.argv[4])
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def sample_event(n: int, *, rng: np.random.Generator) -> tuple[int, Event]:
    """One event: 60 samples of a gauge of one of 3 hosts over the last 3 h."""
    host = f"h{n % 3}"
    ts = START + np.sort(rng.integers(0, 3 * 3_600_000, 60))
    payload = events_pb2.SampleBatchAccepted(tenant="t", source="test", batch_id=f"b{n}")
    sid = series_id("t", "eu", "load", (("host", host),))
    s = payload.series.add(metric="load", kind=MetricKind.GAUGE, region="eu", timestamps_ms=ts.tolist())
    s.labels.add(name="host", value=host)
    s.values.extend(rng.integers(0, 100, 60).astype(float).tolist())
    payload.series_ids.append(sid)
    return partition_of(sid, PARTITIONS), make_event(payload, identity=digest(str(n)), partition_key=b"k", time_ms=NOW)


async def read_model(store: HotStore) -> dict[tuple[str, int, int], pts.Points]:
    """Every chunk of every tier, decoded."""
    out = {}
    for tier in DEFAULT_TIERS:
        for sid in {series_id("t", "eu", "load", (("host", f"h{i}"),)) for i in range(3)}:
            for c in await store.read_range(tier.name, [sid], 0, NOW + 1, tier.chunk_span_ms):
                out[(tier.name, c.series_id, c.chunk_start_ms)] = decode_chunk(c.data, key=c.series_id).points
    return out


async def reference_model(log: SqliteEventLog, tmp_path: Path) -> dict[tuple[str, int, int], pts.Points]:
    """Every tier written at every flush (SQLite)."""
    store = SqliteHotStore(tmp_path / "reference.db")
    await store.start()
    reference = RollupProjector(
        log=log,
        store=store,
        tiers=DEFAULT_TIERS,
        clock_ms=lambda: NOW,
        group="reference",
    )
    assert await reference.catch_up(idle_timeout_s=2.0) == 30 * 60
    model = await read_model(store)
    await reference.close()
    await store.close()
    return model


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[SqliteEventLog, list[tuple[int, Event]]]]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    rng = np.random.default_rng(5)
    events = [sample_event(n, rng=rng) for n in range(30)]
    await log.append(SAMPLES_TOPIC, events)
    yield log, events
    await log.close()


async def open_ddb(server: DynamoDBService, prefix: str, fresh_s: str = "0") -> DynamoDBHotStore:
    store = DynamoDBHotStore.from_url(
        server.url(prefix=prefix, credentials=True, fresh_s=fresh_s), clock_ms=lambda: NOW
    )
    await store.start()
    return store


Model = dict[tuple[str, int, int], pts.Points]


def assert_same_answers(got: Model, want: Model) -> None:
    """Every sample once in every tier: counts, min, max and last exact; sums to rounding
    (a refreshed bucket adds its samples in another order)."""
    assert got.keys() == want.keys()
    for key, w in want.items():
        g = got[key]
        assert np.array_equal(g.ts, w.ts), key
        for column in ("count", "min", "max", "last", "last_ts"):
            assert np.array_equal(getattr(g, column), getattr(w, column)), (key, column)
        assert np.allclose(g.sum, w.sum), key


async def test_coarse_tiers_held_in_memory_are_read_fresh_from_the_5s_tier(  # type: ignore[no-untyped-def]
    world, tmp_path: Path, dynamodb_local: DynamoDBService
) -> None:
    log, _ = world
    reference = await reference_model(log, tmp_path)
    prefix = fresh_prefix()
    writer = await open_ddb(dynamodb_local, prefix)
    projector = RollupProjector(
        log=log,
        store=writer,
        tiers=DEFAULT_TIERS,
        clock_ms=lambda: NOW,
        group="fresh",
        flush_interval_ms=1_000,
        tier_flush_interval_ms=COARSE_RARELY,
        monotonic_s=TickClock(),
    )
    assert await projector.catch_up(force=False, idle_timeout_s=2.0) == 30 * 60
    plain = await read_model(writer)
    assert {tier for tier, _, _ in plain} == {"5s"}  # the coarse tiers exist only in memory
    reader = await open_ddb(dynamodb_local, prefix, fresh_s=WINDOW_S)
    assert_same_answers(await read_model(reader), reference)

    await projector.flush()  # the coarse tiers' writes: reads give the stored bytes again
    assert_identical(await read_model(writer), reference)
    assert_identical(await read_model(reader), reference)
    await projector.close()
    await reader.close()
    await writer.close()


async def test_kill_9_with_open_coarse_chunks_in_memory_then_restart_is_exact(  # type: ignore[no-untyped-def]
    world, tmp_path: Path, dynamodb_local: DynamoDBService
) -> None:
    log, _ = world
    reference = await reference_model(log, tmp_path)
    prefix = fresh_prefix()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = [str(tmp_path / "events.db"), dynamodb_local.url(prefix=prefix), str(NOW), json.dumps(COARSE_RARELY)]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, *args, stdin=PIPE, stdout=PIPE, stderr=PIPE, env=env, cwd=REPO_ROOT
    )
    try:
        assert child.stdout is not None and child.stderr is not None
        # Waits until the child says so (or gets EOF if it died).
        said = (await asyncio.wait_for(child.stdout.readline(), timeout=120)).decode().strip()
        if not said:
            raise AssertionError(f"the projector died: {(await child.stderr.read()).decode()[-2000:]}")
        assert said == f"open chunks in memory after {30 * 60} samples"
        child.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(child.wait(), timeout=30) == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    store = await open_ddb(dynamodb_local, prefix)
    assert {tier for tier, _, _ in await read_model(store)} == {"5s"}
    assert not await log.consumer("killed", SAMPLES_TOPIC).committed()  # nothing settled: replay it all

    restarted = RollupProjector(log=log, store=store, tiers=DEFAULT_TIERS, clock_ms=lambda: NOW, group="killed")
    assert await restarted.catch_up(idle_timeout_s=2.0) == 30 * 60
    assert_identical(await read_model(store), reference)
    await restarted.close()
    await store.close()
