"""InfluxDB 1.x (Debian package `influxdb`, `influxd`).

Loaded through `/write?precision=ms` in line-protocol batches of ~1 MB (cut at newlines,
never per line in Python) over two connections (this machine has two cores; InfluxDB's docs
recommend batches of 5,000-10,000 points, which 1 MB is). Queried in InfluxQL. The config
snapshots the cache to TSM after 5 s without writes and fully compacts after 30 s, so
bytes on disk are measured after flush and compaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final

from bench.peers.base import Http, LoadResult, Peer, PeerProcess, PeerQuery, dir_bytes, wait_size_stable
from bench.run import BenchFailure, top_hosts_rows
from bench.workload import PeerFormat, WorkloadSpec, host_names
from core.model import DAY_MS, HOUR_MS, MINUTE_MS
from harness.processes import free_port

DB: Final = "bench"
BATCH_BYTES: Final = 1 << 20
WRITERS: Final = 2

CONFIG: Final = """reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
  logging-enabled = false
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  cache-max-memory-size = "8g"
  cache-snapshot-write-cold-duration = "5s"
  compact-full-write-cold-duration = "30s"
  max-series-per-database = 0
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
"""


def batches(f: IO[bytes], size: int = BATCH_BYTES) -> Iterator[bytes]:
    """The file in chunks of about `size` bytes, each ending at a newline."""
    rest = b""
    while True:
        data = f.read(size)
        if not data:
            if rest:
                yield rest
            return
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        yield data[:cut]


class InfluxDB(Peer):
    name = "influxdb"
    package = "influxdb"
    binaries = ("influxd",)
    fmt = PeerFormat.INFLUX
    language = "InfluxQL"

    def start(self) -> None:
        http_port, rpc_port = free_port(), free_port()
        self.root = self.workdir / "influx"
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "influxdb.conf"
        config.write_text(CONFIG.format(root=self.root, http_port=http_port, rpc_port=rpc_port))
        self.process = PeerProcess(self.name, ["influxd", "-config", str(config)], self.workdir / "server.log")
        self.http = Http(http_port)
        http_ = self.http
        self.process.start(lambda: http_.ok("/ping"))
        status, raw, _ = http_.request("POST", "/query", (("q", f"CREATE DATABASE {DB}"),))
        if status != 200:
            raise BenchFailure(f"influxdb CREATE DATABASE answered HTTP {status}: {raw[:300]!r}")

    def load(self, path: Path, sampler_progress: list[int]) -> LoadResult:
        assert self.http is not None
        port = self.http.port
        lock = threading.Lock()
        errors: list[str] = []
        began = time.perf_counter()
        with path.open("rb") as f:
            chunks = batches(f)

            def writer() -> None:
                client = Http(port)
                try:
                    while not errors:
                        with lock:
                            chunk = next(chunks, None)
                        if chunk is None:
                            return
                        status, raw, _ = client.request("POST", "/write", (("db", DB), ("precision", "ms")), body=chunk)
                        if status != 204:
                            errors.append(f"HTTP {status}: {raw[:300]!r}")
                        with lock:
                            sampler_progress[0] += len(chunk)
                finally:
                    client.close()

            threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if errors:
            raise BenchFailure(f"influxdb /write failed: {errors[0]}")
        return LoadResult(load_s=time.perf_counter() - began, notes=[f"{WRITERS} writers, ~1 MB batches"])

    def _influxql(self, q: str) -> tuple[Any, float]:
        assert self.http is not None
        body, ms = self.http.get_json("/query", (("db", DB), ("epoch", "ms"), ("q", q)))
        for result in body.get("results", []):
            if "error" in result:
                raise BenchFailure(f"influxdb query {q!r} failed: {result['error']}")
        return body, ms

    def count_points(self, spec: WorkloadSpec, *, nocache: bool = True) -> tuple[int, float]:
        body, ms = self._influxql(
            f"SELECT count(value) FROM /.*/ WHERE time >= {spec.start_ms}ms AND time < {spec.end_ms}ms"
        )
        total = 0
        for result in body["results"]:
            for series in result.get("series", []):
                total += sum(int(row[1]) for row in series["values"] if row[1] is not None)
        return total, ms

    def queries(self, spec: WorkloadSpec) -> list[PeerQuery]:
        s, e = spec.start_ms, spec.end_ms
        host = host_names(spec.hosts)[0]
        regions = min(4, spec.hosts)
        hour = max(s, e - HOUR_MS)
        twelve = max(s, e - 12 * HOUR_MS)

        def window(start: int) -> str:
            return f"time >= {start}ms AND time < {e}ms"

        def by_region(start: int, step: str) -> str:
            return f"SELECT mean(value) FROM cpu_user WHERE {window(start)} GROUP BY time({step}), region"

        texts = [
            (
                "Q1",
                "one series raw over the span",
                f"SELECT value FROM cpu_user WHERE host='{host}' AND {window(s)}",
                1,
                spec.steps,
            ),
            (
                "Q2",
                "one host's cpu_user at 1-minute steps over the span",
                f"SELECT mean(value) FROM cpu_user WHERE host='{host}' AND {window(s)} GROUP BY time(1m)",
                1,
                spec.span_ms // MINUTE_MS,
            ),
            (
                "Q3",
                "avg cpu_user by region over all hosts, 1m steps, last 1 h",
                by_region(hour, "1m"),
                regions,
                (e - hour) // MINUTE_MS,
            ),
            (
                "Q4",
                "max cpu_user per host over the span (top 10 picked client side)",
                f"SELECT max(value) FROM cpu_user WHERE {window(s)} GROUP BY host",
                spec.hosts,
                1,
            ),
            ("Q5", "Q3 over the last 12 h", by_region(twelve, "1m"), regions, (e - twelve) // MINUTE_MS),
        ]
        if spec.span_ms >= 30 * DAY_MS:
            texts.append(
                (
                    "Q6a",
                    "avg cpu_user by region at 1h steps over the last 30 d",
                    by_region(e - 30 * DAY_MS, "1h"),
                    regions,
                    30 * DAY_MS // HOUR_MS - 1,
                )
            )
            texts.append(
                (
                    "Q6b",
                    "avg cpu_user by region at 1d steps over the last 365 d",
                    by_region(e - 365 * DAY_MS, "1d"),
                    regions,
                    spec.span_ms // DAY_MS - 1,
                )
            )
        if any(d.name == "http_latency_ms" for d in spec.defs):
            texts.append(
                (
                    "Q7",
                    "p99 of http_latency_ms by region, 1m steps, last 1 h",
                    f"SELECT percentile(value, 99) FROM http_latency_ms WHERE {window(hour)} GROUP BY time(1m), region",
                    regions,
                    (e - hour) // MINUTE_MS,
                )
            )
        return [
            PeerQuery(
                name=name,
                description=description,
                path="/query",
                params=(("db", DB), ("epoch", "ms"), ("q", q)),
                series=series,
                min_points=points,
                text=q,
                note="over the raw observations (exact)" if name == "Q7" else "",
            )
            for name, description, q, series, points in texts
        ]

    def run_query(self, q: PeerQuery) -> tuple[Any, float]:
        assert self.http is not None
        began = time.perf_counter()
        body, ms = self.http.get_json(q.path, q.params)
        if q.name == "Q4":
            # Like Argus's Q4: the top 10 are picked client side, inside the timing.
            top_hosts_rows((s["tags"]["host"], s["values"][0][1]) for s in body["results"][0].get("series", []))
            ms = (time.perf_counter() - began) * 1000
        return body, ms

    def answer_shape(self, body: Any) -> list[int]:
        series = body["results"][0].get("series", [])
        return [sum(1 for row in s["values"] if row[1] is not None) for s in series]

    def data_bytes(self) -> dict[str, int]:
        # Quiet for longer than compact-full-write-cold-duration: the full compaction has run.
        wait_size_stable(self.root, quiet_s=35.0, timeout_s=240.0)
        return {
            "total": dir_bytes(self.root),
            # TSM files alone: without the series file, which InfluxDB preallocates (~32 MB).
            "data": sum(p.stat().st_size for p in (self.root / "data").rglob("*.tsm")),
            "data_dir": dir_bytes(self.root / "data"),
            "wal": dir_bytes(self.root / "wal"),
        }

    def freshness_probe(self, i: int, first_ms: int) -> tuple[float, Callable[[], bool]]:
        assert self.http is not None
        http_ = self.http
        line = f"bench_freshness,probe=freshness value={float(i)} {int(time.time() * 1000)}".encode()
        status, raw, _ = http_.request("POST", "/write", (("db", DB), ("precision", "ms")), body=line)
        acked = time.perf_counter()
        if status != 204:
            raise BenchFailure(f"influxdb freshness write answered HTTP {status}: {raw[:300]!r}")

        def visible() -> bool:
            body, _ = self._influxql(f"SELECT count(value) FROM bench_freshness WHERE time >= {first_ms - 10_000}ms")
            series = body["results"][0].get("series", [])
            return bool(series) and int(series[0]["values"][0][1]) >= i + 1

        return acked, visible
