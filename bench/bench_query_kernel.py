"""The query hot path in the numeric kernel: decode chunks, keep a time window, merge the
series into their region, read avg - for 1,000 series of 1-minute points.

    .venv/bin/python bench/bench_query_kernel.py             # 1,000 series, 50 runs per case
    .venv/bin/python bench/bench_query_kernel.py --smoke     # 30 series, 3 runs: checks it runs

Data: per series, 24 h of 5-second samples of a two-decimal random walk (jittered sample
times), rolled up into 1-minute points with `from_values` and stored as the 1m tier does: one
chunk per 12 h, encoded with `encode_chunk`. "Now" is one minute before the end of the second
chunk, which is still being written (the case a dashboard's "last hour" hits).

Cases: the hour before now (60 of the open chunk's 719 points) and the 12 h before now (all
of the open chunk and the last point of the closed one). Nothing is cached between runs.

Pipelines, timed in the same process and interleaved run by run so machine noise hits them
alike:
  per-chunk v1  what the query engine did before: version-1 chunks, `decode_chunk` per chunk,
                clip by searchsorted, concatenate, `merge` by sorting;
  batched v1    `decode_chunks` with the window over the same version-1 chunks, `merge` on
                the dense grid;
  batched v2    the same over version-2 chunks (restart points, decimal + ulp floats).
Each reports the median and p99 over the runs (ms), after one unmeasured warm-up run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from unittest import mock

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import points as P
from core.chunks import decode_chunk, decode_chunks, encode_chunk
from core.model import HOUR_MS, MINUTE_MS, MetricKind

SPAN_MS = 12 * HOUR_MS
DAY0 = 1_764_028_800_000  # 2025-11-25T00:00:00Z
NOW_MS = DAY0 + 2 * SPAN_MS - MINUTE_MS
REGIONS = 3

F64 = npt.NDArray[np.float64]
Pipeline = Callable[[int], tuple[P.Points, F64]]


def series_points(rng: np.random.Generator) -> P.Points:
    """24 h of 1-minute rollups of a 5-second two-decimal random walk, up to NOW_MS."""
    n = (NOW_MS - DAY0) // 5_000
    ts = DAY0 + np.arange(n, dtype=np.int64) * 5_000 + rng.integers(0, 50, n)
    values = np.round(np.clip(50 + np.cumsum(rng.normal(0, 0.5, n)), 0, 100), 2)
    return P.from_values(np.zeros(n, dtype=np.int64), ts, values, MINUTE_MS)


def build(n_series: int, version: int, all_points: list[P.Points]) -> tuple[list[bytes], list[int]]:
    """Chunks (closed one, then open one, per series) and the region of each."""
    datas, regions = [], []
    for s, pts in enumerate(all_points):
        for start in (DAY0, DAY0 + SPAN_MS):
            part = pts.take((pts.ts >= start) & (pts.ts < start + SPAN_MS))
            datas.append(
                encode_chunk(part, kind=MetricKind.GAUGE, step_ms=MINUTE_MS, chunk_start_ms=start, version=version)
            )
            regions.append(s % REGIONS)
    assert len(datas) == 2 * n_series
    return datas, regions


def chunks_for(datas: list[bytes], regions: list[int], start_ms: int) -> tuple[list[bytes], list[int], list[int]]:
    """The chunks a query from start_ms to NOW_MS reads: (data, region, chunk start)."""
    picked = [(d, r, DAY0 + (i % 2) * SPAN_MS) for i, (d, r) in enumerate(zip(datas, regions, strict=True))]
    picked = [p for p in picked if p[2] + SPAN_MS > start_ms]
    return [p[0] for p in picked], [p[1] for p in picked], [p[2] for p in picked]


def per_chunk(datas: list[bytes], regions: list[int], chunk_starts: list[int], start_ms: int) -> P.Points:
    """The engine's former path: one decode per chunk, clip, one concatenate per column."""
    parts: list[P.Points] = []
    bounds: list[tuple[int, int]] = []
    for data, chunk_start in zip(datas, chunk_starts, strict=True):
        pts = decode_chunk(data, key=0).points
        if chunk_start >= start_ms and chunk_start + SPAN_MS <= NOW_MS:
            lo, hi = 0, len(pts)
        else:
            lo, hi = np.searchsorted(pts.ts, (start_ms, NOW_MS), side="left").tolist()
        parts.append(pts)
        bounds.append((lo, hi))

    return P.concat_slices(parts, bounds, regions)


def sorting_only() -> AbstractContextManager[object]:
    return mock.patch.multiple(P, _DENSE_CELLS_PER_ROW=0, _DENSE_MIN_CELLS=0)


def pipelines(v1: tuple[list[bytes], list[int]], v2: tuple[list[bytes], list[int]]) -> dict[str, Pipeline]:
    def before(start_ms: int) -> tuple[P.Points, F64]:
        datas, regions, starts = chunks_for(*v1, start_ms)
        with sorting_only():
            merged = P.merge(per_chunk(datas, regions, starts, start_ms))
        return merged, P.read_agg(merged, "avg", MINUTE_MS)

    def batched(chunks: tuple[list[bytes], list[int]]) -> Pipeline:
        def run(start_ms: int) -> tuple[P.Points, F64]:
            datas, regions, _starts = chunks_for(*chunks, start_ms)
            merged = P.merge(decode_chunks(datas, regions, start_ms=start_ms, end_ms=NOW_MS, ordered=False))
            return merged, P.read_agg(merged, "avg", MINUTE_MS)

        return run

    return {"per-chunk v1": before, "batched v1": batched(v1), "batched v2": batched(v2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="30 series, 3 runs: checks it runs")
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    n_series, runs = (30, 3) if args.smoke else (args.series, max(args.runs, 30))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    all_points = [series_points(rng) for _ in range(n_series)]
    v1, v2 = build(n_series, 1, all_points), build(n_series, 2, all_points)
    print(
        f"{n_series:,} series x 24 h of 1-minute points, {len(v1[0]):,} chunks "
        f"(v1 {np.mean([len(d) for d in v1[0]]):,.0f} B, v2 {np.mean([len(d) for d in v2[0]]):,.0f} B on average), "
        f"built in {time.perf_counter() - t0:.1f} s; {runs} runs per case"
    )
    cases = {"1 h": NOW_MS - HOUR_MS, "12 h": NOW_MS - SPAN_MS}
    funcs = pipelines(v1, v2)
    print(f"{'case':<6} {'pipeline':<14} {'median ms':>10} {'p99 ms':>10} {'points':>10}")
    for case, start_ms in cases.items():
        times: dict[str, list[float]] = {name: [] for name in funcs}
        results = {name: f(start_ms) for name, f in funcs.items()}  # warm-up, and the answers
        reference, ref_avg = results["per-chunk v1"]
        for name, (merged, avg) in results.items():
            assert P.identical(merged, reference, compare_sum=False), name
            np.testing.assert_allclose(avg, ref_avg, rtol=1e-12)
        for _ in range(runs):
            for name, f in funcs.items():
                began = time.perf_counter()
                f(start_ms)
                times[name].append((time.perf_counter() - began) * 1e3)
        for name, ms in times.items():
            print(f"{case:<6} {name:<14} {np.median(ms):10.1f} {np.percentile(ms, 99):10.1f} {len(reference):>10,}")


if __name__ == "__main__":
    main()
