"""Prometheus (Debian package `prometheus`, with `promtool`).

Prometheus has no bulk push API: the dataset becomes TSDB blocks with
`promtool tsdb create-blocks-from openmetrics FILE DIR` (backfilling, its documented way),
then `prometheus` starts over that dir. "Load" is promtool's run plus the start until
Prometheus is ready; its CPU is promtool's plus the server's. Freshness goes through the
remote-write receiver (`--web.enable-remote-write-receiver`), the only push path it has.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cramjam

from bench.peers.base import Http, LoadResult, Peer, PeerProcess, PeerQuery, dir_bytes
from bench.peers.promql import count_expr, instant, promql_queries, promql_shape, promql_total
from bench.run import BenchFailure, wait_child
from bench.workload import PeerFormat, WorkloadSpec
from core.protowire import length_delimited, varint
from harness.processes import free_port

CONFIG = "global:\n  scrape_interval: 5s\nscrape_configs: []\n"


def remote_write_body(name: str, labels: dict[str, str], value: float, ts_ms: int) -> bytes:
    """A snappy-compressed prometheus.WriteRequest with one series of one sample.

    WriteRequest{1: TimeSeries}; TimeSeries{1: Label, 2: Sample}; Label{1: name, 2: value};
    Sample{1: double value, 2: int64 timestamp}. Labels sorted by name, `__name__` first."""
    label_fields = b"".join(
        length_delimited(1, length_delimited(1, k.encode()) + length_delimited(2, v.encode()))
        for k, v in sorted({"__name__": name, **labels}.items())
    )
    sample = b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ts_ms)
    request = length_delimited(1, label_fields + length_delimited(2, sample))
    return bytes(cramjam.snappy.compress_raw(request))


class Prometheus(Peer):
    name = "prometheus"
    package = "prometheus"
    binaries = ("prometheus", "promtool")
    fmt = PeerFormat.OPENMETRICS
    language = "PromQL"

    def start(self) -> None:
        # Started by load(), over the blocks promtool made.
        self.data_dir = self.workdir / "tsdb"
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def _start_server(self) -> None:
        port = free_port()
        config = self.workdir / "prometheus.yml"
        config.write_text(CONFIG)
        self.process = PeerProcess(
            self.name,
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-remote-write-receiver",
                "--query.max-samples=1000000000",
                "--log.level=warn",
            ],
            self.workdir / "server.log",
        )
        self.http = Http(port)
        http_ = self.http
        self.process.start(lambda: http_.ok("/-/ready"))

    def load(self, path: Path, sampler_progress: list[int]) -> LoadResult:
        began = time.perf_counter()
        log_path = self.workdir / "promtool.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(path), str(self.data_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                status, usage, peak_rss = wait_child(proc.pid)
                proc.returncode = os.waitstatus_to_exitcode(status)
            finally:
                if proc.returncode is None:  # interrupted: never leave promtool running
                    proc.kill()
                    proc.wait()
        promtool_s = time.perf_counter() - began
        if proc.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
            raise BenchFailure(f"promtool create-blocks-from openmetrics exited with {proc.returncode}:\n{tail}")
        self.blocks_bytes = dir_bytes(self.data_dir)
        self._start_server()
        return LoadResult(
            load_s=time.perf_counter() - began,
            tool_cpu_s=usage.ru_utime + usage.ru_stime,
            tool_peak_rss_bytes=peak_rss,
            notes=[f"promtool {promtool_s:.1f} s, then prometheus start until ready"],
        )

    def count_points(self, spec: WorkloadSpec, *, nocache: bool = True) -> tuple[int, float]:
        assert self.http is not None
        body, ms = self.http.get_json("/api/v1/query", instant(count_expr(spec), spec.end_ms - 1))
        return promql_total(body), ms

    def queries(self, spec: WorkloadSpec) -> list[PeerQuery]:
        return promql_queries(spec)

    def answer_shape(self, body: Any) -> list[int]:
        return promql_shape(body)

    def data_bytes(self) -> dict[str, int]:
        # "data": the blocks (ULID-named dirs), without the WAL and the head's chunk files,
        # which Prometheus preallocates.
        blocks = sum(dir_bytes(d) for d in self.data_dir.iterdir() if d.is_dir() and len(d.name) == 26)
        return {"total": dir_bytes(self.data_dir), "data": blocks, "promtool_blocks": self.blocks_bytes}

    def freshness_probe(self, i: int, first_ms: int) -> tuple[float, Callable[[], bool]]:
        assert self.http is not None
        http_ = self.http
        body = remote_write_body("bench_freshness", {"probe": "freshness"}, float(i), int(time.time() * 1000))
        status, raw, _ = http_.request(
            "POST",
            "/api/v1/write",
            body=body,
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )
        acked = time.perf_counter()
        if status not in (200, 204):
            raise BenchFailure(f"prometheus remote write answered HTTP {status}: {raw[:300]!r}")

        def visible() -> bool:
            now = int(time.time() * 1000)
            span_s = (now - first_ms) // 1000 + 10
            answer, _ = http_.get_json("/api/v1/query", instant(f"count_over_time(bench_freshness[{span_s}s])", now))
            return promql_total(answer) >= i + 1

        return acked, visible
