"""Queries served from the cold store: 12 h, 30 d and 365 d windows older than the hot tiers.

    .venv/bin/python bench/bench_cold.py              # 1,000 series, a year; folder and S3; 20 runs per case
    .venv/bin/python bench/bench_cold.py --smoke      # 50 series: checks it runs
    .venv/bin/python bench/bench_cold.py --backends folder --runs 50 --compare-layouts

Data: one gauge metric of N series (labels host, 4 regions), a year of history built
directly as tier points (no samples pushed): the 1h tier over the year (8,760 points per
series, in 30-day periods), the 1d tier (one 365-day period) and the 1m tier for the last 2
days (day periods). Each point stands for 5 s samples of a two-decimal random walk (count 720
per hour). It is written with `ParquetColdStore.write_period` + `record_archived`, exactly
what the cold-archive projector writes. "Now" is 5 years and a day after the history ends, so
no tier's hot retention reaches it: the engine (default tiers) plans each query on the tier
`auto` picks and reads it from the cold store only; the hot store holds just the index.

Cases (auto period; every series merged per region, agg avg): the last 12 h of the history
(1m tier, 720 buckets), its last 30 days (1h tier, 720 buckets), the whole year (1d, 365
buckets). Each is timed `--runs` times after one warm-up run; median and p99 in ms.
Nothing is cached between runs but the series index (the cold store re-reads its objects).

`--compare-layouts` also times the alternative layout for the 30-day case: one Parquet row
per series-chunk holding the chunk codec's bytes, read and decoded with `decode_chunks`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.adapters.cold_parquet import FolderColdStore, ParquetColdStore, S3ColdStore
from core.adapters.sqlite_hot_store import SqliteHotStore
from core.chunks import decode_chunks, encode_chunks
from core.model import DAY_MS, DEFAULT_TIERS, HOUR_MS, MetricKind, Tier, series_id
from core.points import Points, Ragged
from core.ports import ArchivedPeriod, ColdRows, SeriesRecord
from projectors.cold_archive import cold_period_ms
from query_side.engine import QueryEngine
from query_side.planner import QuerySpec

TENANT = "bench"
METRIC = "cpu_user"
YEAR_MS = 365 * DAY_MS
START = 55 * YEAR_MS  # 2024-12-18, a 1d-tier chunk boundary
END = START + YEAR_MS
NOW = END + 5 * YEAR_MS + DAY_MS
TIERS = {t.name: t for t in DEFAULT_TIERS}
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-south-1")


def make_series(n: int) -> list[SeriesRecord]:
    out = []
    for i in range(n):
        region = REGIONS[i % len(REGIONS)]
        labels = (("host", f"host-{i:05d}"),)
        out.append(
            SeriesRecord(
                tenant=TENANT,
                series_id=series_id(TENANT, region, METRIC, labels),
                metric=METRIC,
                kind=int(MetricKind.GAUGE),
                region=region,
                labels=labels,
                first_seen_ms=START,
                last_seen_ms=END,
            )
        )
    out.sort(key=lambda r: r.series_id)
    return out


def tier_points(sids: np.ndarray, tier: Tier, start: int, end: int, seed: int) -> Points:
    """Points of every series over [start, end) at the tier's step, sorted by (series, ts)."""
    rng = np.random.default_rng(seed)
    steps = (end - start) // tier.step_ms
    n = len(sids) * steps
    per = tier.step_ms // 5_000
    walk = np.cumsum(rng.normal(0, 0.3, (len(sids), steps)), axis=1)
    level = np.asarray(np.round(np.clip(50 + walk, 0, 100), 2).ravel(), dtype=np.float64)
    spread = np.round(np.abs(rng.normal(0, 2, n)), 2)
    return Points(
        key=np.repeat(sids, steps),
        ts=np.tile(start + np.arange(steps, dtype=np.int64) * tier.step_ms, len(sids)),
        count=np.full(n, per, dtype=np.int64),
        sum=np.round(level * per, 2),
        min=np.round(level - spread, 2),
        max=np.round(level + spread, 2),
        last=level,
        last_ts=np.tile(start + np.arange(steps, dtype=np.int64) * tier.step_ms + tier.step_ms - 5_000, len(sids)),
        sketch=Ragged.empty(n),
        hll=Ragged.empty(n),
    )


async def one(rows: ColdRows) -> AsyncIterator[ColdRows]:
    yield rows


async def build(store: ParquetColdStore, series: list[SeriesRecord]) -> dict[str, int]:
    """Write the history into `store`; return rows per tier."""
    sids = np.array([r.series_id for r in series], dtype=np.int64)
    by_id = {r.series_id: r for r in series}
    spans = {"1d": (START, END), "1h": (START, END), "1m": (END - 2 * DAY_MS, END)}
    written: dict[str, int] = {}
    for name, (lo, hi) in spans.items():
        tier = TIERS[name]
        period = cold_period_ms(tier)
        total = 0
        markers = []
        for p_start in range(lo - lo % period, hi, period):
            a, b = max(p_start, lo), min(p_start + period, hi)
            points = tier_points(sids, tier, a, b, seed=p_start // period)
            n = await store.write_period(
                TENANT, name, p_start, p_start + period, one(ColdRows(points=points, series=by_id))
            )
            markers.append(
                ArchivedPeriod(
                    tenant=TENANT, tier=name, start_ms=p_start, end_ms=p_start + period, rows=n, digest="bench"
                )
            )
            total += n
        await store.record_archived(markers)
        written[name] = total
    return written


CASES = (("12h", 12 * HOUR_MS, "1m"), ("30d", 30 * DAY_MS, "1h"), ("365d", YEAR_MS, "1d"))


async def time_queries(
    engine: QueryEngine, runs: int, *, source: str = "cold"
) -> dict[str, tuple[float, float, float, int]]:
    """case -> (first run ms, median ms, p99 ms, points or chunks read). `source` ("cold" or
    "hot") is where every case must be answered from."""
    out = {}
    for case, window, tier in CASES:
        spec = QuerySpec(
            tenant=TENANT, metric=METRIC, start_ms=END - window, end_ms=END, agg="avg", group_by=("region",)
        )
        t0 = time.perf_counter()
        first = await engine.query(spec)
        first_ms = (time.perf_counter() - t0) * 1000
        assert first.tier == tier, (case, first.tier)
        if source == "cold":
            assert first.stats.cold_points_read > 0 and first.stats.chunks_read == 0, first.stats
        else:
            assert first.stats.chunks_read > 0 and first.stats.cold_points_read == 0, first.stats
        assert len(first.series) == min(len(REGIONS), first.stats.series_matched)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            await engine.query(spec)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, int(np.ceil(0.99 * len(times))) - 1)]
        read = first.stats.cold_points_read if source == "cold" else first.stats.chunks_read
        out[case] = (first_ms, statistics.median(times), p99, read)
    return out


def compare_layouts(series: list[SeriesRecord], workdir: Path, runs: int) -> tuple[float, float, int, int]:
    """30 days of the 1h tier: (ms exploded points, ms chunk bytes, bytes points, bytes chunks)."""
    import pyarrow.compute as pc

    from core.adapters.cold_parquet import _read_object

    tier = TIERS["1h"]
    sids = np.array([r.series_id for r in series], dtype=np.int64)
    lo = END - 30 * DAY_MS
    start = tier.chunk_start(lo)
    points = tier_points(sids, tier, start, start + tier.chunk_span_ms, seed=1)
    # Exploded layout: the store's own writer.
    store = FolderColdStore(workdir / "layout-points")

    async def write() -> None:
        await store.start()
        by_id = {r.series_id: r for r in series}
        await store.write_period(
            TENANT, "1h", start, start + tier.chunk_span_ms, one(ColdRows(points=points, series=by_id))
        )

    asyncio.run(write())
    points_file = next((workdir / "layout-points").rglob("*.parquet"))
    # Chunk-bytes layout: one row per series-chunk.
    per = tier.chunk_span_ms // tier.step_ms
    datas = encode_chunks(
        [(points.take(slice(i * per, (i + 1) * per)), MetricKind.GAUGE, tier.step_ms, start) for i in range(len(sids))]
    )
    chunk_file = workdir / "layout-chunks.parquet"
    pq.write_table(
        pa.table({"series_id": sids, "chunk_start": np.full(len(sids), start), "data": pa.array(datas, pa.binary())}),
        chunk_file,
        compression="none",
    )
    wanted = np.sort(sids)
    end = start + tier.chunk_span_ms

    def read_points() -> None:
        _read_object(str(points_file), "x", wanted, lo, end, METRIC)

    def read_chunks() -> None:
        table = pq.read_table(chunk_file)
        table = table.filter(pc.is_in(table.column("series_id"), value_set=pa.array(wanted)))
        decode_chunks(table.column("data").to_pylist(), table.column("series_id").to_numpy(), start_ms=lo, end_ms=end)

    def med(fn: object) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    return med(read_points), med(read_chunks), points_file.stat().st_size, chunk_file.stat().st_size


async def run_backend(name: str, store: ParquetColdStore, series: list[SeriesRecord], workdir: Path, runs: int) -> None:
    await store.start()
    hot = SqliteHotStore(workdir / f"hot-{name}.db")
    await hot.start()
    try:
        await hot.upsert_series(series)
        t0 = time.perf_counter()
        rows = await build(store, series)
        print(f"[{name}] wrote {sum(rows.values()):,} rows ({rows}) in {time.perf_counter() - t0:.1f} s")
        engine = QueryEngine(hot, hot, DEFAULT_TIERS, clock=lambda: NOW, cold=store)
        results = await time_queries(engine, runs)
        print(f"| backend | window | tier | points read | first run ms | median ms | p99 ms ({runs} runs) |")
        print("|---|---|---|---:|---:|---:|---:|")
        for (case, _, tier), (first, median, p99, read) in zip(CASES, results.values(), strict=True):
            print(f"| {name} | {case} | {tier} | {read:,} | {first:.0f} | {median:.0f} | {p99:.0f} |")
    finally:
        await hot.close()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backends", default="folder,s3")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--compare-layouts", action="store_true")
    args = parser.parse_args()
    n, runs = (50, 3) if args.smoke else (args.series, args.runs)
    series = make_series(n)
    workdir = Path(tempfile.mkdtemp(prefix="argus-bench-cold-"))
    try:
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        if "folder" in backends:
            asyncio.run(run_backend("folder", FolderColdStore(workdir / "cold"), series, workdir, runs))
        if "s3" in backends:
            from harness.services.s3 import SeaweedS3

            server = SeaweedS3.launch(workdir / "s3")
            try:
                bucket = server.create_bucket("argus-bench-cold")
                creds = server.credentials
                store = S3ColdStore(
                    bucket=bucket,
                    prefix="cold",
                    endpoint_url=server.endpoint,
                    region=creds.region,
                    access_key_id=creds.access_key_id,
                    secret_access_key=creds.secret_access_key,
                )
                asyncio.run(run_backend("s3", store, series, workdir, runs))
            finally:
                server.stop()
        if args.compare_layouts:
            p_ms, c_ms, p_bytes, c_bytes = compare_layouts(series, workdir, runs)
            print("| layout (30 d of 1h, all series) | object bytes | read + to points, median ms |")
            print("|---|---:|---:|")
            print(f"| exploded points (this store) | {p_bytes:,} | {p_ms:.0f} |")
            print(f"| chunk codec bytes per series-chunk | {c_bytes:,} | {c_ms:.0f} |")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
