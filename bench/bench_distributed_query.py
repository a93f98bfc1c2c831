"""Queries served from the hot store on DynamoDB: 12 h, 30 d and 365 d windows.

    .venv/bin/python bench/bench_distributed_query.py            # 1,000 series, a year; 20 runs per case
    .venv/bin/python bench/bench_distributed_query.py --smoke    # 50 series: checks it runs
    .venv/bin/python bench/bench_distributed_query.py --compare-reads   # + one Query per series

The counterpart of bench/bench_cold.py (same data, same cases, same engine) with the history
inside the hot retention of every tier it needs, so every point comes from DynamoDB Local
(started here from harness/services/dynamodb.py) through `DynamoDBHotStore`: the 1m tier over
the last 2 days (12 h chunks), the 1h tier over the year (30 d chunks) and the 1d tier (one
365 d chunk). The chunks are encoded with the projector's own codec (`encode_chunks`) and
written with `write_chunks`; the series index lives in DynamoDB too. "Now" is the end of the
history. Timings: one warm-up run, then `--runs` runs; median and p99 in ms.

DynamoDB Local is a Java process on this same 2-core machine, not a service over a network:
read the figures as what the query side costs plus a local server, not as AWS latency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_cold import CASES, END, START, TIERS, make_series, tier_points, time_queries
from core.adapters.dynamodb_hot_store import DynamoDBHotStore
from core.adapters.dynamodb_hot_store import chunks as dynamodb  # read_range reads BATCH_READ_MAX_CHUNKS there
from core.chunks import encode_chunks
from core.model import DAY_MS, DEFAULT_TIERS, MetricKind
from core.points import split_by_key
from core.ports import SeriesRecord, StoredChunk
from query_side.engine import QueryEngine


async def load(store: DynamoDBHotStore, series: list[SeriesRecord]) -> dict[str, int]:
    """Write the history as tier chunks; return chunks written per tier."""
    await store.upsert_series(series)
    sids = np.array([r.series_id for r in series], dtype=np.int64)
    spans = {"1d": (START, END), "1h": (START, END), "1m": (END - 2 * DAY_MS, END)}
    written: dict[str, int] = {}
    for name, (lo, hi) in spans.items():
        tier = TIERS[name]
        total = 0
        for c_start in range(tier.chunk_start(lo), hi, tier.chunk_span_ms):
            a, b = max(c_start, lo), min(c_start + tier.chunk_span_ms, hi)
            points = tier_points(sids, tier, a, b, seed=c_start // tier.chunk_span_ms)
            parts = list(split_by_key(points))
            blobs = encode_chunks([(p, MetricKind.GAUGE, tier.step_ms, c_start) for _, p in parts])
            chunks = [
                StoredChunk(series_id=sid, chunk_start_ms=c_start, data=blob, partition=0, applied_offset=1)
                for (sid, _), blob in zip(parts, blobs, strict=True)
            ]
            await store.write_chunks(name, chunks)
            total += len(chunks)
        written[name] = total
    return written


async def run(url: str, series: list[SeriesRecord], runs: int, *, compare_reads: bool) -> None:
    store = DynamoDBHotStore.from_url(url, tiers=DEFAULT_TIERS)
    await store.start()
    try:
        t0 = time.perf_counter()
        written = await load(store, series)
        print(f"wrote {sum(written.values()):,} chunks ({written}) in {time.perf_counter() - t0:.1f} s")
        engine = QueryEngine(store, store, DEFAULT_TIERS, clock=lambda: END)
        paths = {"batch-get": dynamodb.BATCH_READ_MAX_CHUNKS}
        if compare_reads:
            paths["query-per-series"] = 0
        print(f"| read path | window | tier | chunks read | first ms | median ms | p99 ms ({runs} runs) |")
        print("|---|---|---|---:|---:|---:|---:|")
        for path, threshold in paths.items():
            dynamodb.BATCH_READ_MAX_CHUNKS = threshold  # type: ignore[misc]
            timed = await time_queries(engine, runs, source="hot")
            for (case, _, tier), (first, median, p99, chunks) in zip(CASES, timed.values(), strict=True):
                print(f"| {path} | {case} | {tier} | {chunks:,} | {first:.0f} | {median:.0f} | {p99:.0f} |")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument(
        "--compare-reads",
        action="store_true",
        help="also time the same queries with one Query per series (the read path before BatchGetItem)",
    )
    args = parser.parse_args()
    n, runs = (50, 3) if args.smoke else (args.series, args.runs)
    from harness.services.dynamodb import DynamoDBLocal

    with tempfile.TemporaryDirectory(prefix="argus-bench-ddbq-") as work, DynamoDBLocal(work_dir=Path(work)) as ddb:
        url = ddb.url(prefix="benchq_", write_mode="transact")
        asyncio.run(run(url, make_series(n), runs, compare_reads=args.compare_reads))


if __name__ == "__main__":
    main()
