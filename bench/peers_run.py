"""`make bench-peers`: Argus and its peers on the same dataset, same machine, same run.

    python -m bench.peers_run [--preset 2h|24h|30d] [--hosts N --span D] [--peers victoriametrics,prometheus,influxdb]
                              [--repeat N] [--query-reps 50] [--freshness-probes 20] [--no-argus]

1. Argus: `bench.run` (argus up, Parquet push, storage, Q1-Q7, freshness) on the dataset.
2. Each peer (bench/peers/): install its Debian package if missing, write the dataset in its
   format (untimed, like Argus's file), then per repetition start it on 127.0.0.1 free ports
   over a fresh data dir, load (first byte -> acknowledged) and wait until a count over the
   span equals what was loaded; on the last server: bytes on disk after flush/compaction,
   the same queries in its language (warm, N repetitions), freshness; stop it by PID.
3. JSON to bench/results/peers-<UTC time>.json, the table to bench/results/peers-latest.md and
   plots to bench/results/peers-latest-*.png (bench.report); other presets than 2h write
   peers-<preset>-latest.*.

A peer that cannot be installed or run is reported "not available: <why>", never faked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import report
from bench.peers import PEERS, make_peer
from bench.peers.base import Peer, PeerUnavailable, run_peer_freshness, run_peer_queries, wait_all_points
from bench.run import (
    RESULTS_DIR,
    BenchConfig,
    BenchFailure,
    ResourceSampler,
    _terminate_as_exit,
    log,
    machine_facts,
)
from bench.run import run as run_argus
from bench.workload import PRESETS, OutputFormat, WorkloadSpec, default_end_ms, parse_duration_ms, write_peer


def measure_peer(
    peer: Peer, spec: WorkloadSpec, *, repeat: int, query_reps: int, freshness_probes: int, timeout_s: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": peer.name, "package": peer.package, "language": peer.language}
    try:
        peer.ensure_installed()
    except PeerUnavailable as exc:
        log(f"{peer.name}: not available: {exc}")
        return {**out, "available": False, "reason": str(exc)}
    out["version"] = peer.version()
    path = peer.workdir / f"devops.{peer.fmt.value}"
    stats = write_peer(spec, peer.fmt, path)
    out["file"] = {"format": peer.fmt.value, **stats.to_json()}
    log(
        f"{peer.name} {out['version']}: generated {path.name}: {stats.points:,} points, "
        f"{stats.bytes_written / 2**20:,.1f} MB in {stats.seconds:.1f} s"
    )
    runs: list[dict[str, Any]] = []
    try:
        for rep in range(repeat):
            if rep:
                shutil.rmtree(peer.workdir / "data", ignore_errors=True)
                shutil.rmtree(peer.workdir / "tsdb", ignore_errors=True)
                shutil.rmtree(peer.workdir / "influx", ignore_errors=True)
            runs.append(_ingest_once(peer, spec, path, stats.points, timeout_s))
            if rep < repeat - 1:
                peer.stop()
        out["ingest"] = {
            "median": {k: float(np.median([r[k] for r in runs])) for k in runs[0] if isinstance(runs[0][k], float)},
            "runs": [{k: v for k, v in r.items() if k != "timeline"} for r in runs],
            "timeline": runs[-1]["timeline"],
            "notes": runs[-1]["notes"],
        }
        disk = peer.data_bytes()
        out["storage"] = {
            "bytes": disk,
            "bytes_per_sample": round(disk["total"] / spec.samples, 4),
            "data_bytes_per_sample": round(disk.get("data", disk["total"]) / spec.samples, 4),
            "bytes_per_point": round(disk["total"] / stats.points, 4),
        }
        log(f"  {peer.name} storage: {disk['total'] / 2**20:,.1f} MB, {out['storage']['bytes_per_sample']} B/sample")
        out["queries"] = run_peer_queries(peer, spec, query_reps)
        out["freshness"] = run_peer_freshness(peer, freshness_probes)
        log(f"  {peer.name} freshness p50 {out['freshness']['p50_ms']} ms, p99 {out['freshness']['p99_ms']} ms")
        out["available"] = True
    except BenchFailure as exc:
        log(f"{peer.name} FAILED: {exc}")
        out["available"] = bool(runs)
        out["error"] = str(exc)
        if peer.process is not None:
            log(f"{peer.name} log tail:\n{peer.process.log_tail()}")
    finally:
        peer.stop()
    return out


def _ingest_once(peer: Peer, spec: WorkloadSpec, path: Path, points: int, timeout_s: float) -> dict[str, Any]:
    peer.start()
    progress = [0]
    # Prometheus starts inside load(): its CPU is promtool's (rusage) + the server's from start.
    cpu0 = peer.process.cpu_seconds() if peer.process is not None else 0.0
    sampler: ResourceSampler | None = None
    began = time.perf_counter()
    if peer.process is not None:
        sampler = ResourceSampler(peer.pid, progress=lambda: progress[0]).__enter__()
    try:
        loaded = peer.load(path, progress)
        log(f"  {peer.name}: load returned after {loaded.load_s:.1f} s; waiting until all {points:,} points count")
        wait_all_points(peer, spec, points, timeout_s=timeout_s)
        queryable_s = time.perf_counter() - began
    finally:
        if sampler is not None:
            sampler.__exit__(None, None, None)
    assert peer.process is not None
    server_cpu = peer.process.cpu_seconds() - cpu0
    m = spec.samples / 1e6
    run = {
        "load_s": round(loaded.load_s, 3),
        "queryable_s": round(queryable_s, 3),
        "e2e_samples_per_s": float(round(spec.samples / queryable_s)),
        "e2e_points_per_s": float(round(points / queryable_s)),
        "server_cpu_s_per_million": round((server_cpu + loaded.tool_cpu_s) / m, 3),
        "server_peak_rss_mb": round(max(peer.process.peak_rss_bytes(), loaded.tool_peak_rss_bytes) / 2**20, 1),
        "timeline": sampler.to_json() if sampler else {},
        "notes": loaded.notes,
    }
    log(
        f"  {peer.name}: all queryable after {queryable_s:.1f} s: {run['e2e_samples_per_s']:,.0f} samples/s, "
        f"CPU {run['server_cpu_s_per_million']} s/M, peak RSS {run['server_peak_rss_mb']:,.0f} MB"
    )
    return run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="2h", help="dataset shape: hosts x span [2h]")
    parser.add_argument("--hosts", type=int, default=None, help="override the preset's hosts")
    parser.add_argument("--span", default=None, help="override the preset's span (e.g. 2h, 24h, 30d)")
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {', '.join(PEERS)}")
    parser.add_argument("--no-argus", action="store_true", help="measure the peers only")
    parser.add_argument("--repeat", type=int, default=1, help="ingest runs per system (fresh server each)")
    parser.add_argument("--query-reps", type=int, default=50)
    parser.add_argument("--freshness-probes", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (datasets, data dirs, logs)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON [bench/results/peers-<UTC time>.json]")
    args = parser.parse_args(argv)
    for name in (n.strip() for n in args.peers.split(",") if n.strip()):
        if name not in PEERS:
            parser.error(f"--peers: unknown peer {name!r}; expected some of {', '.join(PEERS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    hosts, span_text = PRESETS[args.preset]
    hosts = args.hosts or hosts
    span_text = args.span or span_text
    spec = WorkloadSpec(
        end_ms=default_end_ms(), hosts=hosts, metrics=args.metrics, span_ms=parse_duration_ms(span_text)
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_path = args.out or RESULTS_DIR / f"peers-{stamp}.json"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="argus-bench-peers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "version": 1,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.peers_run", *sys.argv[1:]]),
        "machine": machine_facts(),
        "dataset": {
            "hosts": spec.hosts,
            "metrics": spec.metrics,
            "span": span_text,
            "samples": spec.samples,
            "series": spec.series,
            "start_ms": spec.start_ms,
            "end_ms": spec.end_ms,
        },
        "systems": {},
    }
    began = time.perf_counter()
    ok = True
    try:
        with _terminate_as_exit():
            if not args.no_argus:
                log("Argus (embedded, argus up): bench.run on the same dataset, Parquet push")
                cfg = BenchConfig(
                    spec=spec,
                    span_text=span_text,
                    formats=(OutputFormat.PARQUET,),
                    repeat=args.repeat,
                    query_reps=args.query_reps,
                    freshness_probes=args.freshness_probes,
                    queryable_timeout_s=120.0 + spec.samples / 20_000,
                    out_path=out_path,
                    keep=args.keep,
                    smoke=False,
                    workdir=workdir / "argus",
                )
                load_before = os.getloadavg()
                argus = run_argus(cfg)
                argus["loadavg"] = {"before": load_before, "after": os.getloadavg()}
                ok = ok and bool(argus["ok"])
                results["systems"]["argus"] = argus
            for name in (n.strip() for n in args.peers.split(",") if n.strip()):
                peer = make_peer(name, workdir)
                load_before = os.getloadavg()
                entry = measure_peer(
                    peer,
                    spec,
                    repeat=max(1, args.repeat),
                    query_reps=args.query_reps,
                    freshness_probes=args.freshness_probes,
                    timeout_s=300.0 + spec.samples / 20_000,
                )
                # The machine may be shared: the load average tells how quiet it was.
                entry["loadavg"] = {"before": load_before, "after": os.getloadavg()}
                ok = ok and "error" not in entry
                results["systems"][name] = entry
                if not args.keep:
                    shutil.rmtree(peer.workdir, ignore_errors=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = round(time.perf_counter() - began, 1)
    results["ok"] = ok
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    # One "latest" per preset: a 30 d run does not overwrite the 2 h table.
    stem = "peers-latest" if args.preset == "2h" else f"peers-{args.preset}-latest"
    markdown = report.write_peers_report(results, out_path.parent, stem)
    log(f"results: {out_path}, {out_path.parent / (stem + '.md')} ({results['elapsed_s']} s)")
    print(markdown)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
