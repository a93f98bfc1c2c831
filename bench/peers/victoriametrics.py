"""VictoriaMetrics (single node, Debian package `victoria-metrics`).

Loaded with one streamed POST of the JSON-lines file to `/api/v1/import`; queried in
MetricsQL with `nocache=1` (its rollup result cache would otherwise answer repeated queries
from memory; Argus has no result cache). `-search.latencyOffset=0s`: by default VictoriaMetrics
hides the newest 30 s from queries, which would make freshness a setting, not a measurement.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from bench.peers.base import Http, LoadResult, Peer, PeerProcess, PeerQuery, dir_bytes, wait_size_stable
from bench.peers.promql import count_expr, instant, promql_queries, promql_shape, promql_total
from bench.run import BenchFailure
from bench.workload import PeerFormat, WorkloadSpec
from harness.processes import free_port

NOCACHE = (("nocache", "1"),)


class _CountingReader:
    """A file read by http.client in big blocks, counting bytes sent for the progress plot."""

    def __init__(self, raw: IO[bytes], progress: list[int]) -> None:
        self._raw = raw
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._progress[0] += len(data)
        return data


class VictoriaMetrics(Peer):
    name = "victoriametrics"
    package = "victoria-metrics"
    binaries = ("victoria-metrics",)
    fmt = PeerFormat.VM_JSONL
    language = "MetricsQL"

    def start(self) -> None:
        port = free_port()
        self.data_dir = self.workdir / "data"
        self.process = PeerProcess(
            self.name,
            [
                "victoria-metrics",
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={self.data_dir}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
                # Q2 over 30 d returns 43,200 points per series (default limit 30,000).
                "-search.maxPointsPerTimeseries=1000000",
                "-loggerLevel=WARN",
            ],
            self.workdir / "server.log",
        )
        self.http = Http(port)
        http_ = self.http
        self.process.start(lambda: http_.ok("/health"))

    def load(self, path: Path, sampler_progress: list[int]) -> LoadResult:
        assert self.http is not None
        began = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.http.port, timeout=3600, blocksize=1 << 20)
        try:
            with path.open("rb") as f:
                conn.request(
                    "POST",
                    "/api/v1/import",
                    body=_CountingReader(f, sampler_progress),
                    headers={"Content-Length": str(path.stat().st_size)},
                )
                response = conn.getresponse()
                body = response.read()
        finally:
            conn.close()
        if response.status not in (200, 204):
            raise BenchFailure(f"victoriametrics /api/v1/import answered HTTP {response.status}: {body[:300]!r}")
        return LoadResult(load_s=time.perf_counter() - began)

    def count_points(self, spec: WorkloadSpec, *, nocache: bool = True) -> tuple[int, float]:
        assert self.http is not None
        body, ms = self.http.get_json("/api/v1/query", instant(count_expr(spec), spec.end_ms - 1, NOCACHE))
        return promql_total(body), ms

    def queries(self, spec: WorkloadSpec) -> list[PeerQuery]:
        return promql_queries(spec, NOCACHE)

    def answer_shape(self, body: Any) -> list[int]:
        return promql_shape(body)

    def data_bytes(self) -> dict[str, int]:
        assert self.http is not None
        # Pending in-memory rows go to disk parts; background merges then settle.
        self.http.request("GET", "/internal/force_flush")
        total = wait_size_stable(self.data_dir, quiet_s=5.0)
        return {
            "total": total,
            "data": dir_bytes(self.data_dir / "data"),
            "indexdb": dir_bytes(self.data_dir / "indexdb"),
        }

    def freshness_probe(self, i: int, first_ms: int) -> tuple[float, Callable[[], bool]]:
        assert self.http is not None
        http_ = self.http
        line = json.dumps(
            {
                "metric": {"__name__": "bench_freshness", "probe": "freshness"},
                "values": [float(i)],
                "timestamps": [int(time.time() * 1000)],
            }
        ).encode()
        status, raw, _ = http_.request("POST", "/api/v1/import", body=line)
        acked = time.perf_counter()
        if status not in (200, 204):
            raise BenchFailure(f"victoriametrics freshness import answered HTTP {status}: {raw[:300]!r}")

        def visible() -> bool:
            now = int(time.time() * 1000) + 1000
            span_s = (now - first_ms) // 1000 + 10
            body, _ = http_.get_json(
                "/api/v1/query", instant(f"count_over_time(bench_freshness[{span_s}s])", now, NOCACHE)
            )
            return promql_total(body) >= i + 1

        return acked, visible
