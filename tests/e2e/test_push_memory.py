"""`argus push` streams its input: the push process's peak memory does not grow with the
size of the file (issue 13: 3.8 GB for a 43M-row Parquet file; decision 0045)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from tests.e2e.conftest import ArgusServer, measured, parse_push_summary

PEAK_RSS_LIMIT_MB = 256
"""Issue 13's bound. Measured under load (decision 0056): 184-188 MB (the push imports only
its own command, Arrow's jemalloc pool); the same push of 8M rows 201 MB, of a 2M-row CSV
198 MB. Before: 218-249 MB with the whole CLI imported and mimalloc (decision 0045)."""
PUSH_TIMEOUT_S = 120.0
SERIES = 1_000
STEP_MS = 5_000
BLOCK_STEPS = 60


def write_input(path: Path, rows: int, fmt: str) -> None:
    """`rows` gauge samples of SERIES hosts, in blocks of BLOCK_STEPS steps (host-major within
    a block, as exporters and bench/workload.py write them), ending an hour ago."""
    steps = rows // SERIES
    end_ms = (time.time_ns() // 1_000_000 - 3_600_000) // STEP_MS * STEP_MS
    start_ms = end_ms - steps * STEP_MS
    writer: pq.ParquetWriter | pcsv.CSVWriter | None = None
    rng = np.random.default_rng(13)
    hosts = np.array([f"host-{i:04d}" for i in range(SERIES)])
    try:
        for first in range(0, steps, BLOCK_STEPS):
            n = min(BLOCK_STEPS, steps - first)
            host = np.repeat(np.arange(SERIES), n)
            ts = start_ms + (first + np.tile(np.arange(n), SERIES)) * STEP_MS
            table = pa.table(
                {
                    "metric": pa.array(np.full(len(host), "push_mem_cpu")),
                    "kind": pa.array(np.full(len(host), "gauge")),
                    "host": pa.array(hosts[host]),
                    "ts": pa.array(ts.astype(np.int64)),
                    "value": pa.array(np.round(rng.uniform(0, 100, len(host)), 2)),
                }
            )
            if writer is None:
                writer = (
                    pq.ParquetWriter(path, table.schema, compression="zstd")
                    if fmt == "parquet"
                    else pcsv.CSVWriter(path, table.schema)
                )
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _vm_hwm_mb(pid: int) -> float | None:
    """The process's high-water mark of resident memory so far (Linux VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def push_peak_rss_mb(server: ArgusServer, path: Path, rows: int) -> float:
    """Push `path` to the end: its peak RSS (VmHWM read while it runs: the last reading is at
    most one poll before exit, and the mark only rises)."""
    proc = server.popen_push(path)
    peak = 0.0
    started = time.monotonic()
    while True:
        peak = max(peak, _vm_hwm_mb(proc.pid) or 0.0)
        try:
            output, _ = proc.communicate(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() - started > PUSH_TIMEOUT_S:
                proc.kill()
                proc.communicate()
                pytest.fail(f"argus push {path.name} did not finish in {PUSH_TIMEOUT_S:.0f} s")
    assert proc.returncode == 0, output
    report = parse_push_summary(output)
    assert report.accepted == rows and report.rejected == 0, output
    return peak


def test_push_of_two_million_rows_stays_within_the_memory_bound(argus_server: ArgusServer, tmp_path: Path) -> None:
    rows = 2_000_000
    path = tmp_path / "samples.parquet"
    write_input(path, rows, "parquet")

    peak = push_peak_rss_mb(argus_server, path, rows)

    measured(f"argus push Parquet {rows:,} rows: peak RSS MB", round(peak))
    assert peak <= PEAK_RSS_LIMIT_MB, f"{peak:.0f} MB for {rows:,} rows"
