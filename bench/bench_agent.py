"""Benchmarks of `argus agent` against a real `argus up` (all on 127.0.0.1).

    .venv/bin/python bench/bench_agent.py [--series 10000] [--measure-s 30] [--skip cpu,backlog,burst]

1. CPU: a real agent (interval 5 s, batches every 2 s, gzip spool + gzip wire, fsync on)
   receives N series over UDP StatsD (60 % counters, 30 % gauges, 10 % timers), each updated
   1x and 5x per interval; the agent process's CPU seconds over `--measure-s` of steady
   state give "CPU % of one core per 10k series".
2. Bytes on the wire per sample: a counting TCP forwarder between agent and ingest counts
   the agent's bytes (gRPC + HTTP/2 framing included) / samples ingest accepted. An offline
   comparison shows the same batch raw, gzip and zstd.
3. Recovery of a 10-minute outage: the backlog (N series x 120 intervals) is generated into
   a spool directory with the agent's own spool and batch format (synthetic, to avoid
   waiting 10 minutes), then a real agent starts on it and sends it all to a real ingest;
   timed until the spool is empty (every batch acknowledged, i.e. durable in the event log).
4. StatsD burst: one-line datagrams (the worst case) and 40-line datagrams at rising rates
   for 2 s each; lines parsed vs sent, and kernel drops on the agent's socket.

Results: printed, and written to bench/results/agent-latest.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import random
import secrets
import select
import socket
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.aggregate import IntervalAggregator
from agent.spool import Codec, Spool
from agent.statsd import parse_packet
from argus.launch import AgentProcess
from bench.run import ArgusServer, wait_for
from contracts.argus.metrics.v1 import metrics_pb2
from core.model import MetricKind

RESULTS = Path(__file__).resolve().parent / "results"
MAX_BATCH_BYTES = 2 * 1024 * 1024


def log(message: str) -> None:
    print(f"[bench_agent] {message}", flush=True)


class CountingGate:
    """TCP forwarder 127.0.0.1:port -> upstream counting the bytes the agent sends."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sent_bytes = 0
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        try:
            while True:
                ready, _, _ = select.select(list(peers), [], [], 1.0)
                for sock in ready:
                    data = sock.recv(262144)
                    if not data:
                        return
                    if sock is client:
                        with self._lock:
                            self.sent_bytes += len(data)
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()


class AgentProc(AgentProcess):
    """`argus agent` with its own CPU time readable."""

    def __init__(self, workdir: Path, name: str, ingest: str, api_key: str, **settings: Any) -> None:
        super().__init__(workdir, name, ingest=ingest, api_key=api_key, settings=settings)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)


# ---------------------------------------------------------------------------- load


def series_lines(series: int, seed: int = 1) -> list[bytes]:
    """One StatsD line per series: 60 % counters, 30 % gauges, 10 % timers."""
    rng = random.Random(seed)
    lines = []
    for i in range(series):
        tags = f"|#svc:svc{i % 50},endpoint:e{i // 50}"
        roll = i % 10
        if roll < 6:
            lines.append(f"bench.requests:{rng.randint(1, 9)}|c{tags}".encode())
        elif roll < 9:
            lines.append(f"bench.queue_depth:{rng.randint(0, 500)}|g{tags}".encode())
        else:
            lines.append(f"bench.latency_ms:{rng.uniform(1, 300):.2f}|ms{tags}".encode())
    return lines


def packets(lines: list[bytes], max_bytes: int = 1400) -> list[bytes]:
    out: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > max_bytes:
            out.append(b"\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        out.append(b"\n".join(current))
    return out


class Load:
    """Sends every series `per_interval` times per `interval_s`, spread evenly, in a thread."""

    def __init__(self, port: int, lines: list[bytes], *, per_interval: int, interval_s: float) -> None:
        self._packets = packets(lines)
        self._lines_per_round = len(lines)
        self._port = port
        self._round_s = interval_s / per_interval
        self._stop = threading.Event()
        self.lines_sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        slices = 20
        per_slice = math.ceil(len(self._packets) / slices)
        started = time.perf_counter()
        rounds = 0
        while not self._stop.is_set():
            for s in range(slices):
                for packet in self._packets[s * per_slice : (s + 1) * per_slice]:
                    sock.sendto(packet, ("127.0.0.1", self._port))
                due = started + (rounds + (s + 1) / slices) * self._round_s
                time.sleep(max(0.0, due - time.perf_counter()))
            rounds += 1
            self.lines_sent += self._lines_per_round
        sock.close()


# ---------------------------------------------------------------------------- 1 + 2: CPU and wire bytes


def bench_cpu(workdir: Path, server: ArgusServer, *, series: int, measure_s: float) -> list[dict[str, Any]]:
    rows = []
    lines = series_lines(series)
    for per_interval in (1, 5):
        gate = CountingGate(("127.0.0.1", server.ingest_port))
        agent = AgentProc(
            workdir,
            f"cpu{per_interval}",
            f"127.0.0.1:{gate.port}",
            server.api_key,
            interval_s=5.0,
            batch_interval_s=2.0,
        ).start()
        load = Load(agent.port, lines, per_interval=per_interval, interval_s=5.0).start()
        try:
            time.sleep(12.0)  # two intervals to reach the steady state
            cpu0, bytes0, samples0, t0 = (
                agent.cpu_seconds(),
                gate.sent_bytes,
                agent.counter("accepted_samples"),
                time.perf_counter(),
            )
            time.sleep(measure_s)
            cpu1, bytes1, samples1, t1 = (
                agent.cpu_seconds(),
                gate.sent_bytes,
                agent.counter("accepted_samples"),
                time.perf_counter(),
            )
            status = agent.status()
        finally:
            load.stop()
            agent.stop()
            gate.close()
        cpu_pct = 100.0 * (cpu1 - cpu0) / (t1 - t0)
        samples = samples1 - samples0
        row = {
            "series": series,
            "updates_per_series_per_interval": per_interval,
            "statsd_lines_per_s": round(series * per_interval / 5.0),
            "agent_cpu_pct_of_one_core": round(cpu_pct, 1),
            "cpu_pct_per_10k_series": round(cpu_pct * 10_000 / series, 1),
            "accepted_samples": int(samples),
            "wire_bytes": bytes1 - bytes0,
            "wire_bytes_per_sample": round((bytes1 - bytes0) / samples, 2) if samples else None,
            "socket_drops": status.get("counters", {}).get("statsd_socket_drops"),
            "malformed": status.get("counters", {}).get("statsd_malformed_lines"),
        }
        log(f"cpu: {row}")
        rows.append(row)
    return rows


def offline_compression(series: int) -> dict[str, Any]:
    """One interval of the CPU benchmark's series as one batch: bytes per sample by codec."""
    aggregator = IntervalAggregator(interval_s=5.0, region="local")
    metrics, _ = parse_packet(b"\n".join(series_lines(series)))
    aggregator.add_many(metrics, 1_000.0)
    drained = aggregator.drain(2_000.0)
    batch = metrics_pb2.SampleBatch(batch_id="x", source="agent:bench", series=drained)
    raw = batch.SerializeToString(deterministic=True)
    samples = sum(len(s.timestamps_ms) for s in drained)
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)
    sizes = {
        "raw": len(raw),
        "gzip-6": len(gz.compress(raw) + gz.flush()),
        "zstd-3": len(zstandard.ZstdCompressor(level=3).compress(raw)),
    }
    return {name: round(size / samples, 2) for name, size in sizes.items()} | {"samples": samples}


# ---------------------------------------------------------------------------- 3: backlog recovery


def build_backlog(
    spool_dir: Path, *, series: int, minutes: int, source: str, intervals_per_batch: int = 1
) -> tuple[int, int, int]:
    """Spool `minutes` of 5 s intervals of `series` series as the daemon would have: one
    drain (one batch, cut at 2 MiB) per `intervals_per_batch` intervals.
    Returns (batches, samples, bytes on disk)."""
    spool = Spool.open(spool_dir, codec=Codec.GZIP, fsync=False)
    end_s = time.time() - 5.0
    start_s = end_s - minutes * 60
    rng = random.Random(3)
    kinds = [
        MetricKind.COUNTER if i % 10 < 6 else MetricKind.GAUGE if i % 10 < 9 else MetricKind.TIMER
        for i in range(series)
    ]
    labels = [(("endpoint", f"e{i // 50}"), ("svc", f"svc{i % 50}")) for i in range(series)]
    metric = {
        MetricKind.COUNTER: "bench.requests",
        MetricKind.GAUGE: "bench.queue_depth",
        MetricKind.TIMER: "bench.latency_ms",
    }
    batches = samples = 0
    aggregator = IntervalAggregator(interval_s=5.0, region="local")
    intervals = minutes * 12
    for interval in range(intervals):
        now = start_s + interval * 5.0
        for i in range(series):
            kind = kinds[i]
            value = rng.uniform(1, 300) if kind is MetricKind.TIMER else float(rng.randint(0, 500))
            aggregator.add_value(metric[kind], kind, labels[i], value, now)
        if (interval + 1) % intervals_per_batch and interval + 1 < intervals:
            continue
        drained = aggregator.drain(now + 5.0, force=True)
        # Cut like the daemon: at most MAX_BATCH_BYTES serialized per batch.
        chunk: list[metrics_pb2.SeriesSamples] = []
        size = 0
        for s in [*drained, None]:
            if s is None or (chunk and size + s.ByteSize() + 6 > MAX_BATCH_BYTES):
                batch = metrics_pb2.SampleBatch(batch_id=f"backlog-{batches}", source=source, series=chunk)
                n = sum(len(x.timestamps_ms) for x in chunk)
                spool.append(batch.batch_id, batch.SerializeToString(deterministic=True), samples=n)
                batches += 1
                samples += n
                chunk, size = [], 0
            if s is not None:
                chunk.append(s)
                size += s.ByteSize() + 6
    disk = spool.stats().disk_bytes
    spool.close()
    return batches, samples, disk


def bench_backlog(
    workdir: Path, server: ArgusServer, *, series: int, minutes: int, intervals_per_batch: int = 1
) -> dict[str, Any]:
    name = f"backlog{intervals_per_batch}"
    spool_dir = workdir / f"{name}-spool"
    t0 = time.perf_counter()
    batches, samples, disk = build_backlog(
        spool_dir, series=series, minutes=minutes, source=f"agent:{name}", intervals_per_batch=intervals_per_batch
    )
    log(
        f"backlog: built {batches} batches, {samples:,} samples, {disk / 1e6:.1f} MB"
        f" in {time.perf_counter() - t0:.1f} s"
    )
    gate = CountingGate(("127.0.0.1", server.ingest_port))
    agent = AgentProc(workdir, name, f"127.0.0.1:{gate.port}", server.api_key, self_metrics=False)
    started = time.perf_counter()
    agent.start()
    try:
        wait_for(
            "backlog drained",
            lambda: agent.status().get("gauges", {}).get("spool_pending_batches", 1) == 0 or None,
            timeout_s=1800,
            interval_s=0.2,
        )
        elapsed = time.perf_counter() - started
        status = agent.status()
    finally:
        agent.stop()
        gate.close()
    accepted = status["counters"]["accepted_samples"]
    row = {
        "series": series,
        "outage_minutes": minutes,
        "intervals_per_batch": intervals_per_batch,
        "batches": batches,
        "samples": samples,
        "spool_bytes": disk,
        "recovery_s": round(elapsed, 1),
        "samples_per_s": round(samples / elapsed),
        "catch_up_factor": round(minutes * 60 / elapsed, 1),
        "accepted_samples": accepted,
        "rejected_samples": status["counters"]["rejected_samples"],
        "wire_bytes_per_sample": round(gate.sent_bytes / samples, 2),
    }
    log(f"backlog: {row}")
    return row


# ---------------------------------------------------------------------------- 4: burst


def bench_burst(workdir: Path, server: ArgusServer) -> list[dict[str, Any]]:
    # Status every 0.2 s, so "the parsed count stopped moving" is seen within a poll.
    agent = AgentProc(
        workdir, "burst", server.ingest_target, server.api_key, self_metrics=False, batch_interval_s=0.2
    ).start()
    rows = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    line = b"bench.burst:1|c|#slot:s1"
    try:
        for per_packet, rates in ((1, (25_000, 50_000, 100_000, 150_000)), (40, (100_000, 200_000, 400_000))):
            packet = b"\n".join([line] * per_packet)
            for rate in rates:
                before_lines = agent.counter("statsd_metrics")
                before_drops = agent.counter("statsd_socket_drops")
                packets_per_slice = max(1, round(rate / per_packet / 100))  # 10 ms slices
                sent = 0
                started = time.perf_counter()
                for tick in range(200):  # 2 s
                    for _ in range(packets_per_slice):
                        sock.sendto(packet, ("127.0.0.1", agent.port))
                    sent += packets_per_slice * per_packet
                    time.sleep(max(0.0, started + (tick + 1) * 0.01 - time.perf_counter()))
                send_s = time.perf_counter() - started

                wait_for("agent caught up", _settled(agent), timeout_s=120, interval_s=1.0)
                parsed = agent.counter("statsd_metrics") - before_lines
                drops = agent.counter("statsd_socket_drops") - before_drops
                row = {
                    "lines_per_packet": per_packet,
                    "target_lines_per_s": rate,
                    "sent_lines_per_s": round(sent / send_s),
                    "lines_sent": sent,
                    "lines_parsed": int(parsed),
                    "lost_pct": round(100.0 * (sent - parsed) / sent, 2),
                    "kernel_drops_datagrams": int(drops),
                }
                log(f"burst: {row}")
                rows.append(row)
    finally:
        sock.close()
        agent.stop()
    return rows


def _settled(agent: AgentProc) -> Callable[[], bool | None]:
    """A probe that is true once the parsed-line count stopped moving between two polls."""
    last = [-1.0]

    def probe() -> bool | None:
        now = agent.counter("statsd_metrics")
        done = now == last[0]
        last[0] = now
        return done or None

    return probe


# ---------------------------------------------------------------------------- report


def write_report(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agent-latest.json").write_text(json.dumps(results, indent=1))
    md = [f"# argus agent benchmark ({results['when']}, {results['machine']})", ""]
    if results.get("cpu"):
        md += [
            "## CPU and bytes on the wire",
            "",
            "| series | updates/series/5 s | lines/s | agent CPU % of a core | CPU % per 10k series"
            " | wire bytes/sample | socket drops |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["cpu"]:
            md.append(
                f"| {r['series']:,} | {r['updates_per_series_per_interval']} | {r['statsd_lines_per_s']:,} | "
                f"{r['agent_cpu_pct_of_one_core']} | {r['cpu_pct_per_10k_series']} | {r['wire_bytes_per_sample']}"
                f" | {r['socket_drops']} |"
            )
        md += ["", f"Offline, one batch of the same series (bytes/sample): {results['offline_bytes_per_sample']}", ""]
    if results.get("backlog"):
        md += ["## Recovery of an outage backlog", ""]
        for b in results["backlog"]:
            md += [
                f"- {b['outage_minutes']} min x {b['series']:,} series = {b['samples']:,} samples, "
                f"{b['intervals_per_batch']} interval(s) per batch -> {b['batches']} batches "
                f"({b['spool_bytes'] / 1e6:.1f} MB spooled): drained in **{b['recovery_s']} s** "
                f"({b['samples_per_s']:,} samples/s, {b['catch_up_factor']}x real time); "
                f"{b['wire_bytes_per_sample']} wire bytes/sample."
            ]
        md.append("")
    if results.get("burst"):
        md += [
            "## StatsD burst",
            "",
            "| lines/packet | target lines/s | sent lines/s | parsed | lost % | kernel drops |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["burst"]:
            md.append(
                f"| {r['lines_per_packet']} | {r['target_lines_per_s']:,} | {r['sent_lines_per_s']:,} | "
                f"{r['lines_parsed']:,} | {r['lost_pct']} | {r['kernel_drops_datagrams']:,} |"
            )
    (RESULTS / "agent-latest.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--measure-s", type=float, default=30.0)
    parser.add_argument("--outage-minutes", type=int, default=10)
    parser.add_argument(
        "--intervals-per-batch", default="1", help="backlog: intervals drained per batch, comma-separated runs"
    )
    parser.add_argument("--skip", default="", help="comma-separated: cpu, backlog, burst")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="argus-bench-agent-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"workdir {workdir}")
    server = ArgusServer(workdir / "data", workdir / "server.log", "argus_bench_" + secrets.token_hex(12)).start()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()} {psutil.cpu_count()} cpus, Python {platform.python_version()}",
    }
    try:
        if "cpu" not in skip:
            results["cpu"] = bench_cpu(workdir, server, series=args.series, measure_s=args.measure_s)
            results["offline_bytes_per_sample"] = offline_compression(args.series)
        if "backlog" not in skip:
            results["backlog"] = [
                bench_backlog(
                    workdir, server, series=args.series, minutes=args.outage_minutes, intervals_per_batch=int(k)
                )
                for k in args.intervals_per_batch.split(",")
            ]
        if "burst" not in skip:
            results["burst"] = bench_burst(workdir, server)
    finally:
        server.stop()
    write_report(results)


if __name__ == "__main__":
    main()
