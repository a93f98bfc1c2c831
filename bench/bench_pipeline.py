"""The write path's components alone, in one process: ingest -> SQLite log, then the rollup
projector -> all five tiers of the SQLite hot store.

    python -m bench.bench_pipeline [--hosts 1000] [--metrics 10] [--points 1440] [--smoke]
                                   [--series-points N] [--ingest-only]

Batches are built in memory first (not timed), 1 series per (host, metric) with a
random-walk gauge at 5 s, the shape of the devops dataset. Prints samples/s and CPU
seconds of each stage and the stored bytes per tier. `--series-points 20` cuts each series
into entries of 20 points, time window after time window, so a batch holds ~2,500 short
series as `argus push` sends a time-sorted file (the per-series cost of ingest shows).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from command_side.ingest.accept import BatchAcceptor
from command_side.ingest.registry import TenantRegistry
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.sqlite_event_log import SqliteEventLog
from core.adapters.sqlite_hot_store import SqliteHotStore
from core.events import SAMPLES_TOPIC
from core.model import DEFAULT_TIERS
from core.ports import EventLogWriter
from core.settings import IngestLimits
from projectors.rollups import RollupProjector


def batches(
    *, hosts: int, metrics: int, points: int, now_ms: int, per_batch: int = 50_000, series_points: int = 0
) -> Iterator[metrics_pb2.SampleBatch]:
    rng = np.random.default_rng(1)
    ts = (now_ms - points * 5000 + np.arange(points) * 5000).tolist()
    walks = [np.round(50 + np.cumsum(rng.normal(0, 1, points)), 2).tolist() for _ in range(hosts * metrics)]
    step = series_points or points
    batch = metrics_pb2.SampleBatch(batch_id="b0", source="bench")
    held = 0
    for first in range(0, points, step):
        for h in range(hosts):
            for m in range(metrics):
                s = batch.series.add(metric=f"m{m}", kind=metrics_pb2.METRIC_KIND_GAUGE, region=f"r{h % 4}")
                s.labels.add(name="host", value=f"h{h}")
                s.timestamps_ms.extend(ts[first : first + step])
                s.values.extend(walks[h * metrics + m][first : first + step])
                held += len(s.timestamps_ms)
                if held >= per_batch:
                    yield batch
                    batch = metrics_pb2.SampleBatch(batch_id=f"b{first}-{h}-{m}", source="bench")
                    held = 0
    if held:
        yield batch


def bench_acceptor(log: EventLogWriter, *, partitions: int, now_ms: int) -> BatchAcceptor:
    """The ingest use case as the benchmarks drive it: default limits, room for every
    benchmark series, a fixed clock (the datasets end at `now_ms`)."""
    return BatchAcceptor(
        log_writer=log,
        registry=TenantRegistry(max_series_per_tenant=1_000_000),
        limits=IngestLimits(),
        partitions=partitions,
        clock_ms=lambda: now_ms,
    )


async def run(hosts: int, metrics: int, points: int, series_points: int = 0, ingest_only: bool = False) -> None:
    now_ms = int(time.time() * 1000) // 5000 * 5000
    work = Path(tempfile.mkdtemp(prefix="argus-bench-pipeline-"))
    log = SqliteEventLog(work / "events.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, 12)
    store = SqliteHotStore(work / "hot.db")
    await store.start()
    acceptor = bench_acceptor(log, partitions=12, now_ms=now_ms)
    prepared = list(batches(hosts=hosts, metrics=metrics, points=points, now_ms=now_ms, series_points=series_points))
    total = sum(len(s.timestamps_ms) for b in prepared for s in b.series)

    wall, cpu = time.perf_counter(), time.process_time()
    for batch in prepared:
        await acceptor.accept("bench", batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"ingest -> log      {total / wall / 1e6:6.2f} M samples/s  ({wall:.2f} s wall, {cpu:.2f} s CPU)")
    if ingest_only:
        print(
            f"ingest CPU per million samples: {cpu / total * 1e6:.3f} s; {total:,} samples in {len(prepared)} batches"
        )
        await store.close()
        await log.close()
        shutil.rmtree(work)
        return

    projector = RollupProjector(log=log, store=store, tiers=DEFAULT_TIERS, clock_ms=lambda: now_ms)
    wall, cpu = time.perf_counter(), time.process_time()
    applied = await projector.catch_up()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"projector -> tiers {applied / wall / 1e6:6.2f} M samples/s  ({wall:.2f} s wall, {cpu:.2f} s CPU)")
    await projector.close()
    await store.close()
    await log.close()

    db = sqlite3.connect(work / "hot.db")
    for tier in DEFAULT_TIERS:
        size, chunks = db.execute(f"SELECT SUM(LENGTH(data)), COUNT(*) FROM chunks_{tier.name}").fetchone()
        print(f"tier {tier.name:>2}: {chunks:7,} chunks, {size / total:.3f} bytes/sample")
    db.close()
    print(f"{total:,} samples")
    shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--points", type=int, default=1440, help="5 s points per series (1440 = 2 h)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks it works")
    parser.add_argument(
        "--series-points", type=int, default=0, help="points per series entry in a batch (default: all of them)"
    )
    parser.add_argument("--ingest-only", action="store_true", help="time only ingest -> log (no projector)")
    args = parser.parse_args()
    if args.smoke:
        args.hosts, args.points = 20, 120
    if args.series_points < 0:
        parser.error(f"--series-points must be >= 0 (0: whole series), got {args.series_points}")
    asyncio.run(run(args.hosts, args.metrics, args.points, args.series_points, args.ingest_only))


if __name__ == "__main__":
    main()
