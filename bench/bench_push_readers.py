"""How fast `argus push` turns files into SampleBatch bytes (no server involved).

Generates N samples (default 1,000,000) spread over S series (default 1,000) as NDJSON, CSV
and Parquet under /tmp, then times reading each into serialized SampleBatch messages.

    .venv/bin/python bench/bench_push_readers.py [--samples 1000000] [--series 1000] [--timers]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.readers import BatchingOptions, InputFormat, SampleReader

T0_MS = 1_732_530_000_000


def generate(samples: int, series: int, timers: bool) -> pa.Table:
    rng = np.random.default_rng(7)
    idx = np.arange(samples)
    host = pa.array([f"host-{i:05d}" for i in range(series)]).take(pa.array(idx % series))
    columns: dict[str, pa.Array] = {
        "metric": pa.array(np.where(idx % 2 == 0, "http_requests", "queue_depth")),
        "kind": pa.array(np.where(idx % 2 == 0, "counter", "gauge")),
        "region": pa.array(np.full(samples, "us-east-1")),
        "ts": pa.array(T0_MS + idx * 10, pa.int64()),
        "value": pa.array(rng.integers(0, 1000, samples).astype(np.float64)),
        "host": host,
        "service": pa.array(np.where(idx % 3 == 0, "api", "web")),
    }
    if timers:
        columns["kind"] = pa.array(np.full(samples, "timer"))
        columns["values"] = pa.array(
            [f"[{a:.2f},{b:.2f},{c:.2f}]" for a, b, c in rng.gamma(2.0, 20.0, (samples, 3)).tolist()]
        )
    return pa.table(columns)


def write_inputs(table: pa.Table, directory: Path) -> dict[InputFormat, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        InputFormat.NDJSON: directory / "samples.ndjson",
        InputFormat.CSV: directory / "samples.csv",
        InputFormat.PARQUET: directory / "samples.parquet",
    }
    pq.write_table(table, paths[InputFormat.PARQUET])
    pcsv.write_csv(table, paths[InputFormat.CSV])
    label_names = [n for n in table.column_names if n not in {"metric", "kind", "region", "ts", "value", "values"}]
    with paths[InputFormat.NDJSON].open("wb") as out:
        for row in table.to_pylist():
            record = {k: row[k] for k in ("metric", "kind", "region", "ts")}
            record["labels"] = {k: row[k] for k in label_names}
            if "values" in row:
                record["values"] = orjson.loads(row["values"])
            else:
                record["value"] = row["value"]
            out.write(orjson.dumps(record) + b"\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--timers", action="store_true", help="timer samples with 3 observations each")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/argus-bench-push"))
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args()

    started = time.perf_counter()
    paths = write_inputs(generate(args.samples, args.series, args.timers), args.dir)
    print(f"generated {args.samples:,} samples over {args.series:,} hosts in {time.perf_counter() - started:.1f} s")
    for fmt, path in paths.items():
        best = float("inf")
        batches = out_bytes = 0
        for _ in range(args.repeat):
            reader = SampleReader(path, fmt=fmt, options=BatchingOptions(source=f"push:{path.name}"))
            started = time.perf_counter()
            batches = out_bytes = 0
            for batch in reader.batches():
                out_bytes += len(batch.SerializeToString())
                batches += 1
            best = min(best, time.perf_counter() - started)
            assert reader.stats.samples == args.samples, reader.stats
        print(
            f"{fmt.value:8} {path.stat().st_size / 1e6:8.1f} MB in  {best:6.2f} s  "
            f"{args.samples / best:>12,.0f} samples/s  {batches:4d} batches  {out_bytes / 1e6:7.1f} MB out"
        )


if __name__ == "__main__":
    main()
