"""PromQL latency and remote-write ingest: Argus beside Prometheus and VictoriaMetrics (issue 12).

    python -m bench.bench_promql [--smoke] [--hosts 1000] [--span 24h] [--cadence 60s] [--metrics 8]
                                 [--reps 20] [--peers victoriametrics,prometheus] [--rw-samples 1000000]
                                 [--skip-promql] [--skip-rw]

1. PromQL: the devops workload (bench/workload.py) at `--cadence` (one sample per series per
   cadence), loaded into Argus (`argus push` of the Parquet file, as bench.run) and into each
   peer with its own loader (bench/peers: VictoriaMetrics `/api/v1/import`, Prometheus
   `promtool` blocks), one system at a time; once everything counts, the same PromQL text on
   every system (Argus: `/prometheus/api/v1/query_range`):
   `avg by (region) (rate(http_requests_total[W]))` and `avg by (region) (cpu_user)` over the
   last 1 h (1 m steps), 24 h (5 m steps) and 30 d (1 h steps) when the span covers them.
   W is 5 m, or 3 cadences when that is longer (a rate needs two samples in its window).
   3 warm-up calls, then `--reps` timed calls: median and p99 (client side, body read).
2. Remote write: WriteRequests built from the same workload in the Prometheus model
   (cumulative counters, histogram buckets: `prometheus_blocks`), 2,000 series of one
   sample each per request (one scrape's worth, as Prometheus shards send), snappy-compressed
   before timing, sent by `--rw-senders` concurrent httpx clients to Argus's ingest HTTP port
   and to VictoriaMetrics' `/api/v1/write`. Figures: acked samples/s (first send -> last
   ack) and the server's CPU per million samples, counted until its CPU goes quiet after the
   last ack (Argus projects after acking; VictoriaMetrics flushes in the background).

Results: bench/results/promql-<UTC time>.json and bench/results/promql-latest.md
(`--smoke`: promql-smoke-latest.*).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cramjam
import httpx
import psutil

from bench.peers import make_peer
from bench.peers.base import Peer, PeerUnavailable, wait_all_points
from bench.peers.promql import ranged, seconds
from bench.peers.victoriametrics import NOCACHE
from bench.run import (
    RESULTS_DIR,
    ArgusServer,
    BenchFailure,
    HttpClient,
    _terminate_as_exit,
    expected_counts,
    latency_summary,
    log,
    machine_facts,
    server_cpu_seconds,
    timed_push,
    wait_queryable,
)
from bench.workload import (
    OutputFormat,
    PeerSeries,
    WorkloadSpec,
    parse_duration_ms,
    prometheus_blocks,
    prometheus_series,
    write,
    write_peer,
)
from contracts.argus.ingest.v1 import prometheus_remote_pb2 as prw
from core.model import DAY_MS, HOUR_MS, MINUTE_MS

API_KEY: Final = "argus_bench_" + secrets.token_hex(12)
WARMUP_REPS: Final = 3
SERIES_PER_REQUEST: Final = 2_000
# (label, range, step) of the PromQL range queries.
RANGES: Final = (("1h", HOUR_MS, MINUTE_MS), ("24h", DAY_MS, 5 * MINUTE_MS), ("30d", 30 * DAY_MS, HOUR_MS))
RANGE_LABELS: Final = ("1h", "24h", "30d")


@dataclass(frozen=True, slots=True, kw_only=True)
class PromQuery:
    name: str
    expr: str
    range_label: str
    params: tuple[tuple[str, str], ...]
    min_points: int


def rate_window_ms(cadence_ms: int) -> int:
    """5 minutes, or 3 cadences if longer (rounded up to a minute): a rate needs two samples."""
    want = max(5 * MINUTE_MS, 3 * cadence_ms)
    return -(-want // MINUTE_MS) * MINUTE_MS


def promql_cases(spec: WorkloadSpec, ranges: Sequence[str] = RANGE_LABELS) -> list[PromQuery]:
    """The rate and gauge queries over every range the span covers (queries end at the last sample)."""
    window = f"{rate_window_ms(spec.step_ms) // MINUTE_MS}m"
    exprs = {
        "rate": f"avg by (region) (rate(http_requests_total[{window}]))",
        "gauge": "avg by (region) (cpu_user)",
    }
    out: list[PromQuery] = []
    for label, span, step in RANGES:
        if span > spec.span_ms or label not in ranges:
            continue
        # Evaluation times on the step grid (as Grafana aligns them), at or before the last sample.
        last = (spec.end_ms - spec.step_ms) // step * step
        start = last - span + step
        for kind, expr in exprs.items():
            out.append(
                PromQuery(
                    name=f"{kind} {label}",
                    expr=expr,
                    range_label=f"{label}, step {seconds(step)}s",
                    params=ranged(expr, start, last, step),
                    # The first steps of a rate may have less than a window of data before them.
                    min_points=span // step - (rate_window_ms(spec.step_ms) // step + 1),
                )
            )
    return out


def matrix_shape(body: Any) -> list[int]:
    if body.get("status") != "success" or body["data"]["resultType"] != "matrix":
        raise BenchFailure(f"not a matrix answer: {str(body)[:300]}")
    return [len(r["values"]) for r in body["data"]["result"]]


def time_query(
    name: str, q: PromQuery, call: Callable[[], tuple[Any, float]], reps: int, regions: int
) -> dict[str, Any]:
    body: Any = None
    for _ in range(WARMUP_REPS):
        body, _ = call()
    shape = matrix_shape(body)
    if len(shape) != regions or min(shape) < q.min_points:
        # A wrong answer is reported in the table, not timed (and the other queries still run).
        problem = f"{len(shape)} series, {min(shape, default=0)}+ points; want {regions} with >= {q.min_points}"
        log(f"  {name} {q.name}: WRONG ANSWER: {problem}")
        return {"query": q.expr, "range": q.range_label, "error": problem}
    latencies = [call()[1] for _ in range(reps)]
    entry: dict[str, Any] = {
        "query": q.expr,
        "range": q.range_label,
        "points": min(shape),
        **latency_summary(latencies),
    }
    if body.get("warnings"):
        entry["warnings"] = body["warnings"]
    log(f"  {name} {q.name}: median {entry['median_ms']:.1f} ms, p99 {entry['p99_ms']:.1f} ms")
    return entry


def argus_promql(spec: WorkloadSpec, workdir: Path, reps: int, ranges: Sequence[str]) -> dict[str, Any]:
    path = workdir / "devops.parquet"
    stats = write(spec, OutputFormat.PARQUET, path)
    server = ArgusServer(workdir / "argus-data", workdir / "argus.log", API_KEY)
    server.start()
    client = HttpClient(server.http_port, API_KEY)
    try:
        began = time.perf_counter()
        timed_push(path, server, "bench-promql", workdir / "push.log")
        wait_queryable(client, spec, expected_counts(spec, stats), timeout_s=300.0 + spec.samples / 10_000)
        load_s = time.perf_counter() - began
        log(f"argus: {spec.samples:,} samples queryable after {load_s:.1f} s")

        def run(q: PromQuery) -> Callable[[], tuple[Any, float]]:
            def call() -> tuple[Any, float]:
                status, body, ms = client.get("/prometheus/api/v1/query_range", q.params)
                if status != 200:
                    raise BenchFailure(f"argus {q.name} answered HTTP {status}: {str(body)[:300]}")
                return body, ms

            return call

        queries = {q.name: time_query("argus", q, run(q), reps, min(4, spec.hosts)) for q in promql_cases(spec, ranges)}
        return {"available": True, "load_s": round(load_s, 1), "queries": queries}
    finally:
        client.close()
        server.stop()


def peer_promql(peer: Peer, spec: WorkloadSpec, reps: int, ranges: Sequence[str]) -> dict[str, Any]:
    try:
        peer.ensure_installed()
    except PeerUnavailable as exc:
        log(f"{peer.name}: not available: {exc}")
        return {"available": False, "reason": str(exc)}
    path = peer.workdir / f"devops.{peer.fmt.value}"
    stats = write_peer(spec, peer.fmt, path)
    try:
        peer.start()
        began = time.perf_counter()
        peer.load(path, [0])
        wait_all_points(peer, spec, stats.points, timeout_s=300.0 + spec.samples / 20_000)
        load_s = time.perf_counter() - began
        log(f"{peer.name}: {stats.points:,} points queryable after {load_s:.1f} s")
        # VictoriaMetrics caches rollup results: nocache=1, as bench.peers_run does.
        extra = NOCACHE if peer.name == "victoriametrics" else ()
        http_ = peer.http
        assert http_ is not None

        def run(q: PromQuery) -> Callable[[], tuple[Any, float]]:
            return lambda: http_.get_json("/api/v1/query_range", (*q.params, *extra))

        queries = {
            q.name: time_query(peer.name, q, run(q), reps, min(4, spec.hosts)) for q in promql_cases(spec, ranges)
        }
        return {"available": True, "version": peer.version(), "load_s": round(load_s, 1), "queries": queries}
    finally:
        peer.stop()


# ---------------------------------------------------------------------------- remote write


def _labels(s: PeerSeries) -> list[prw.PrometheusLabel]:
    return [prw.PrometheusLabel(name="__name__", value=s.name)] + [
        prw.PrometheusLabel(name=k, value=v) for k, v in s.labels
    ]


def remote_write_requests(spec: WorkloadSpec, max_samples: int) -> Iterator[tuple[bytes, int]]:
    """Snappy-compressed WriteRequests of the workload in the Prometheus model, time step by
    time step, SERIES_PER_REQUEST series of one sample each; stops after `max_samples`."""
    series = prometheus_series(spec)
    labels = [_labels(s) for s in series]
    sent = 0
    for ts, values in prometheus_blocks(spec):
        for j, t in enumerate(ts.tolist()):
            column = values[:, j].tolist()
            for lo in range(0, len(series), SERIES_PER_REQUEST):
                chunk = range(lo, min(len(series), lo + SERIES_PER_REQUEST))
                request = prw.PrometheusWriteRequest(
                    timeseries=[
                        prw.PrometheusTimeSeries(
                            labels=labels[i], samples=[prw.PrometheusSample(value=column[i], timestamp=t)]
                        )
                        for i in chunk
                    ]
                )
                yield bytes(cramjam.snappy.compress_raw(request.SerializeToString())), len(chunk)
                sent += len(chunk)
                if sent >= max_samples:
                    return


async def _send_all(
    url: str, headers: dict[str, str], bodies: Sequence[tuple[bytes, int]], senders: int
) -> tuple[float, float]:
    """Send every body with `senders` concurrent clients: (seconds first send -> last ack, time of last ack)."""
    queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)

    async def sender(client: httpx.AsyncClient) -> None:
        while True:
            try:
                body, _ = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            for _attempt in range(20):
                response = await client.post(url, content=body, headers=headers)
                if response.status_code in (200, 204):
                    break
                if response.status_code not in (429, 503):
                    raise BenchFailure(f"remote write to {url} answered {response.status_code}: {response.text[:300]}")
                await asyncio.sleep(0.1)
            else:
                raise BenchFailure(f"remote write to {url}: still refused after 20 attempts")

    async with httpx.AsyncClient(timeout=120.0, limits=httpx.Limits(max_connections=senders)) as client:
        began = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(senders)))
        done = time.perf_counter()
    return done - began, done


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of this one process (not its children)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def wait_cpu_quiet(cpu: Callable[[], float], *, idle_share: float = 0.05, timeout_s: float = 600.0) -> float:
    """Poll the server's CPU seconds every second until a second uses < idle_share of a core."""
    deadline = time.monotonic() + timeout_s
    last = cpu()
    while time.monotonic() < deadline:
        time.sleep(1.0)  # a one-second CPU sample: this is the measurement interval, not a wait
        now = cpu()
        if now - last < idle_share:
            return now
        last = now
    return cpu()


def measure_remote_write(
    name: str,
    url: str,
    headers: dict[str, str],
    cpu: Callable[[], float],
    main_cpu: Callable[[], float],
    bodies: Sequence[tuple[bytes, int]],
    senders: int,
) -> dict[str, Any]:
    samples = sum(n for _, n in bodies)
    cpu0 = cpu()
    main0 = main_cpu()
    send_s, _ = asyncio.run(_send_all(url, headers, bodies, senders))
    cpu_acked = cpu() - cpu0
    main_acked = main_cpu() - main0
    cpu_quiet = wait_cpu_quiet(cpu) - cpu0
    out = {
        "samples": samples,
        "requests": len(bodies),
        "send_s": round(send_s, 2),
        "acked_samples_per_s": round(samples / send_s),
        "server_cpu_s_per_million_to_ack": round(cpu_acked / (samples / 1e6), 2),
        # Argus: the ingest (main) process alone; its projector child runs meanwhile.
        "receiver_process_cpu_s_per_million_to_ack": round(main_acked / (samples / 1e6), 2),
        "server_cpu_s_per_million_until_quiet": round(cpu_quiet / (samples / 1e6), 2),
    }
    log(
        f"  {name} remote write: {out['acked_samples_per_s']:,} samples/s acked, CPU "
        f"{out['server_cpu_s_per_million_to_ack']} s/M to ack, {out['server_cpu_s_per_million_until_quiet']} s/M total"
    )
    return out


def remote_write_bench(
    spec: WorkloadSpec, workdir: Path, max_samples: int, senders: int, peers: list[str]
) -> dict[str, Any]:
    began = time.perf_counter()
    bodies = list(remote_write_requests(spec, max_samples))
    log(
        f"remote write: {len(bodies):,} requests, {sum(n for _, n in bodies):,} samples built in "
        f"{time.perf_counter() - began:.1f} s ({sum(len(b) for b, _ in bodies) / 2**20:,.1f} MB snappy)"
    )
    headers = {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    out: dict[str, Any] = {"series_per_request": SERIES_PER_REQUEST, "senders": senders}
    server = ArgusServer(workdir / "rw-argus-data", workdir / "rw-argus.log", API_KEY)
    server.start()
    try:
        out["argus"] = measure_remote_write(
            "argus",
            f"http://127.0.0.1:{server.ingest_http_port}/api/v1/write",
            {**headers, "Authorization": f"Bearer {API_KEY}"},
            server.cpu_seconds,
            lambda: process_cpu_seconds(server.pid),
            bodies,
            senders,
        )
    finally:
        server.stop()
    if "victoriametrics" in peers:
        peer = make_peer("victoriametrics", workdir / "rw-vm")
        try:
            peer.ensure_installed()
            peer.start()
            assert peer.http is not None and peer.process is not None
            process = peer.process
            out["victoriametrics"] = measure_remote_write(
                "victoriametrics",
                f"http://127.0.0.1:{peer.http.port}/api/v1/write",
                headers,
                lambda: server_cpu_seconds(process.pid),
                lambda: process_cpu_seconds(process.pid),
                bodies,
                senders,
            )
        except PeerUnavailable as exc:
            out["victoriametrics"] = {"available": False, "reason": str(exc)}
        finally:
            peer.stop()
    return out


# ---------------------------------------------------------------------------- report


def render(results: dict[str, Any]) -> str:
    d = results["dataset"]
    lines = [
        f"# PromQL latency and remote-write ingest — {results['started_at']}",
        "",
        f"`{results['command']}`",
        "",
        f"Machine: {results['machine'].get('nproc')} CPU ({results['machine'].get('cpu_model')}), shared with "
        "other work; load average before "
        f"{results['loadavg']['before']}, after {results['loadavg']['after']}.",
        "",
    ]
    promql = results.get("promql")
    if promql:
        systems = [s for s in ("argus", "victoriametrics", "prometheus") if s in promql["systems"]]
        lines += [
            f"## PromQL (devops workload: {d['hosts']:,} hosts x {', '.join(d['metrics'])} x {d['span']} at one sample "
            f"per {d['cadence_s']} s = {d['samples']:,} samples)",
            "",
            f"{results['reps']} timed runs after {WARMUP_REPS} warm-up calls, client-side latency. "
            f"Rate window: {promql['rate_window']}.",
            "",
        ]
        avail = [s for s in systems if promql["systems"][s].get("available")]
        for s in systems:
            if not promql["systems"][s].get("available"):
                lines.append(f"- {s}: not available: {promql['systems'][s].get('reason', '')}")
        header = "| query | range | " + " | ".join(f"{s} median / p99 (ms)" for s in avail)
        ratios = [s for s in avail if s != "argus"] if "argus" in avail else []
        header += "".join(f" | argus speed-up over {s} (its median / ours)" for s in ratios) + " |"
        lines += [header, "|---|---|" + "---:|" * (len(avail) + len(ratios))]
        names = list(promql["systems"][avail[0]]["queries"]) if avail else []
        for n in names:
            q = promql["systems"][avail[0]]["queries"][n]
            row = f"| `{q['query']}` | {q['range']} |"
            for s in avail:
                e = promql["systems"][s]["queries"][n]
                row += (
                    f" wrong answer: {e['error']} |"
                    if "error" in e
                    else f" {e['median_ms']:,.1f} / {e['p99_ms']:,.1f} |"
                )
            for s in ratios:
                a = promql["systems"]["argus"]["queries"][n].get("median_ms")
                p = promql["systems"][s]["queries"][n].get("median_ms")
                row += f" {p / a:,.2f}x |" if a and p else " – |"
            lines.append(row)
        lines.append("")
        loads = ", ".join(f"{s} {promql['systems'][s]['load_s']} s" for s in avail)
        lines += [f"Load until all counted (not the subject here): {loads}.", ""]
        warnings = {n: q.get("warnings") for n, q in promql["systems"].get("argus", {}).get("queries", {}).items()}
        if any(warnings.values()):
            lines += ["Argus warnings (tier used):", ""]
            lines += [f"- {n}: {w}" for n, w in warnings.items() if w]
            lines.append("")
    rw = results.get("remote_write")
    if rw:
        lines += [
            f"## Remote write ({rw['samples_built']:,} samples, {rw['series_per_request']:,} series x 1 sample per "
            f"request, snappy, {rw['senders']} concurrent senders)",
            "",
            "| system | acked samples/s | server CPU s / M samples to ack | receiving process alone | "
            "server CPU until quiet |",
            "|---|---:|---:|---:|---:|",
        ]
        for s in ("argus", "victoriametrics"):
            e = rw.get(s)
            if e and "acked_samples_per_s" in e:
                lines.append(
                    f"| {s} | {e['acked_samples_per_s']:,} | {e['server_cpu_s_per_million_to_ack']} | "
                    f"{e['receiver_process_cpu_s_per_million_to_ack']} | {e['server_cpu_s_per_million_until_quiet']} |"
                )
            elif e:
                lines.append(f"| {s} | not available: {e.get('reason')} | | | |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_promql", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="20 hosts x 2 h at 5 s, 5 reps, 20,000 remote-write samples"
    )
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--span", default="24h")
    parser.add_argument("--cadence", default="60s", help="one sample per series per this (a multiple of 5 s)")
    parser.add_argument("--metrics", type=int, default=8, help="the first N workload metrics (8 = 7 gauges + requests)")
    parser.add_argument(
        "--only", default="cpu_user,http_requests_total", help="of those, just these ('' = all) [%(default)s]"
    )
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--ranges", default="1h,24h,30d", help="query ranges the span covers, of 1h,24h,30d")
    parser.add_argument("--peers", default="victoriametrics,prometheus")
    parser.add_argument("--rw-samples", type=int, default=1_000_000)
    parser.add_argument("--rw-hosts", type=int, default=1_000)
    parser.add_argument("--rw-senders", type=int, default=4)
    parser.add_argument("--skip-promql", action="store_true")
    parser.add_argument("--skip-rw", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.hosts, args.span, args.cadence, args.reps = 20, "2h", "5s", 5
        args.rw_samples, args.rw_hosts = 20_000, 20
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cadence_ms = parse_duration_ms(args.cadence)
    now_ms = int(time.time() * 1000)
    end_ms = now_ms - now_ms % max(cadence_ms, MINUTE_MS)
    spec = WorkloadSpec(
        end_ms=end_ms,
        hosts=args.hosts,
        metrics=args.metrics,
        span_ms=parse_duration_ms(args.span),
        step_ms=cadence_ms,
        only=tuple(n.strip() for n in args.only.split(",") if n.strip()),
    )
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    ranges = [r.strip() for r in args.ranges.split(",") if r.strip()]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="argus-bench-promql-"))

    results: dict[str, Any] = {
        "version": 1,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.bench_promql", *sys.argv[1:]]),
        "machine": machine_facts(),
        "reps": args.reps,
        "dataset": {
            "hosts": spec.hosts,
            "metrics": [d.name for d in spec.defs],
            "span": args.span,
            "cadence_s": cadence_ms // 1000,
            "samples": spec.samples,
        },
        "loadavg": {"before": [round(x, 2) for x in os.getloadavg()]},
    }
    try:
        with _terminate_as_exit():
            if not args.skip_promql:
                systems: dict[str, Any] = {"argus": argus_promql(spec, workdir, args.reps, ranges)}
                for name in peers:
                    systems[name] = peer_promql(make_peer(name, workdir / name), spec, args.reps, ranges)
                results["promql"] = {"rate_window": f"{rate_window_ms(cadence_ms) // MINUTE_MS}m", "systems": systems}
            if not args.skip_rw:
                rw_spec = WorkloadSpec(end_ms=end_ms, hosts=args.rw_hosts, metrics=10, span_ms=HOUR_MS)
                rw = remote_write_bench(rw_spec, workdir, args.rw_samples, args.rw_senders, peers)
                rw["samples_built"] = rw["argus"]["samples"]
                results["remote_write"] = rw
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["loadavg"]["after"] = [round(x, 2) for x in os.getloadavg()]
    stem = (
        "promql-smoke-latest"
        if args.smoke
        else ("remote-write-latest" if args.skip_promql else f"promql-{args.span}-latest")
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"promql-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = render(results)
    (RESULTS_DIR / f"{stem}.md").write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
