"""Micro-measures of the numeric kernel: building and rolling up points, merging, the chunk codec.

    .venv/bin/python bench/bench_codec.py            # full sizes (1M samples, 10k series)
    .venv/bin/python bench/bench_codec.py --smoke    # tiny sizes, for CI: checks it runs

Prints the best of a few runs for each step. Numbers depend on the machine; the targets in
docs/decisions/0002-sketches-and-points.md were measured on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import chunks
from core import points as P
from core.model import DEFAULT_TIERS, HOUR_MS, MetricKind

T = TypeVar("T")


def best_of(label: str, fn: Callable[[], T], repeat: int, per: int = 1) -> T:
    best = float("inf")
    result: T | None = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(per):
            result = fn()
        best = min(best, (time.perf_counter() - t0) / per)
    unit, scale = ("us", 1e6) if best < 1e-3 else ("ms", 1e3)
    print(f"{label:<58} {best * scale:9.1f} {unit}")
    assert result is not None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each")
    args = parser.parse_args()
    n_keys, per_key, repeat = (100, 10, 1) if args.smoke else (10_000, 100, 3)
    rng = np.random.default_rng(0)
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000
    series = rng.integers(-(2**63), 2**63 - 1, n_keys)
    key = np.repeat(series, per_key)
    ts = t0 + np.tile(np.arange(per_key) * 5_000, n_keys) + rng.integers(0, 5_000, n_keys * per_key)
    values = np.round(rng.normal(50, 10, len(key)), 2)
    n = len(key)
    print(f"{n:,} samples over {n_keys:,} series")

    def tiers() -> list[P.Points]:
        out = [P.from_values(key, ts, values, DEFAULT_TIERS[0].step_ms)]
        for tier in DEFAULT_TIERS[1:]:
            out.append(P.rollup(out[-1], tier.step_ms))
        return out

    best_of("from_values (series grouped, ts ascending)", lambda: P.from_values(key, ts, values, 5_000), repeat)
    shuffled = rng.permutation(n)
    best_of(
        "from_values (shuffled)",
        lambda: P.from_values(key[shuffled], ts[shuffled], values[shuffled], 5_000),
        repeat,
    )
    built = best_of("from_values + rollup through 5 tiers (5s..1d)", tiers, repeat)
    a = built[0]
    b = P.from_values(key, ts + 2_500, values, 5_000)
    best_of(f"merge of two {len(a):,}-point Points", lambda: P.merge(a, b), repeat)
    counts = rng.integers(0, 10, n // 10)
    obs = rng.lognormal(3, 1, int(counts.sum()))
    timers = best_of(
        f"from_observations ({n // 10:,} samples, {len(obs):,} observations)",
        lambda: P.from_observations(key[: n // 10], ts[: n // 10], counts, obs, 5_000),
        repeat,
    )
    hourly = P.rollup(timers, HOUR_MS)
    best_of(f"p99 of {len(hourly):,} hourly timer points", lambda: P.read_agg(hourly, "p99", HOUR_MS), repeat)

    n_pts = HOUR_MS // 5_000
    walk = np.round(np.clip(50 + np.cumsum(rng.normal(0, 1, n_pts)), 0, 100), 2)
    start = t0
    for label, offsets in (
        ("aligned", np.zeros(n_pts, dtype=np.int64)),
        ("0-50 ms jitter", rng.integers(0, 50, n_pts)),
        ("0-5 s jitter", rng.integers(0, 5_000, n_pts)),
    ):
        gauge = P.from_values(np.full(n_pts, 1), start + np.arange(n_pts) * 5_000 + offsets, walk, 5_000)

        def encode(g: P.Points = gauge) -> bytes:
            return chunks.encode_chunk(g, kind=MetricKind.GAUGE, step_ms=5_000, chunk_start_ms=start)

        data = best_of(f"encode 720-point gauge chunk ({label})", encode, repeat, per=200)

        def decode(d: bytes = data) -> chunks.DecodedChunk:
            return chunks.decode_chunk(d, key=1)

        best_of(f"decode 720-point gauge chunk ({label})", decode, repeat, per=200)
        print(f"{'  size':<58} {len(data):9d} B  ({len(data) / n_pts:.2f} B/point)")


if __name__ == "__main__":
    main()
