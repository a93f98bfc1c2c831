"""Dashboards in the browser: time to draw a big dashboard, and memory in live mode (issue 11,
docs/decisions/0054-web-dashboard-benchmark.md).

A real `argus up --no-collector` (bench.run.ArgusServer) is seeded with the devops workload
(bench/workload.py: `--series` hosts x `--metrics` gauges) over the longest range asked for,
at a cadence that coarsens with age so 365 d loads in seconds:

    last 1 h at 5 s | 1 h - 24 h at 5 m | 24 h - 30 d at 1 h | 30 d - 365 d at 1 d

(each range's queries read the tier `auto` picks for it, and every tier they read has data
at its own step or finer; the segments are separate random walks, so the lines jump at the
boundaries). A dashboard of `--panels` time-series panels, each drawing every host of one
metric (`group_by=host`) with its own aggregation, is saved over the HTTP API; then
bench/bench_web.mjs drives Debian's headless chromium (playwright-core, 1280x800):

- per range, one warm-up open, then `--reloads` full reloads each timed from navigation start
  to every panel drawn (the chart holds points and its uPlot canvas has pixels) or showing its
  error: median and p95, the JS heap after each (CDP Performance.getMetrics) and the
  browser's RSS (every chromium process; the renderers apart) sampled at the same moment;
- `--soak-minutes M`: the dashboard in live mode over `--soak-range` while every series gets
  a sample every 5 s; every `--soak-interval` s the JS heap after a forced GC and the RSS.

    python -m bench.bench_web [--panels 12] [--series 1000] [--ranges 1h,24h,30d,365d]
        [--reloads 10] [--soak-minutes 0] [--out bench/results] [--name web-latest]

Writes <out>/<name>.{json,md}. Needs `make web` (the built app and playwright-core) and
Debian chromium (`make system-deps`).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
import psutil

from argus.launch import REPO_ROOT
from bench.bench_alerts import percentile
from bench.run import ArgusServer, BenchFailure, HttpClient, log, timed_push
from bench.workload import OutputFormat, WorkloadSpec, host_names, metric_defs, parse_duration_ms, write
from contracts.argus.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from contracts.argus.metrics.v1 import metrics_pb2
from core.model import MetricKind

RESULTS: Final = Path(__file__).resolve().parent / "results"
WEB: Final = REPO_ROOT / "frontends" / "web"
DRIVER: Final = Path(__file__).resolve().parent / "bench_web.mjs"
API_KEY: Final = "argus_benchweb_" + secrets.token_hex(12)
DASHBOARD_UID: Final = "bench-web"
AGGS: Final = ("avg", "max", "min", "last", "sum", "count")
SECOND_MS: Final = 1000
HOUR_MS: Final = 3600 * SECOND_MS
DAY_MS: Final = 24 * HOUR_MS
# (older bound, cadence): a segment reaches from its older bound to the next one's (or now).
SEGMENTS: Final = (
    (365 * DAY_MS, DAY_MS),
    (30 * DAY_MS, HOUR_MS),
    (DAY_MS, 5 * 60 * SECOND_MS),
    (HOUR_MS, 5 * SECOND_MS),
)
LIVE_PUSH_S: Final = 5.0
BROWSER_SLACK_S: Final = 600.0


@dataclass(frozen=True, slots=True)
class Segment:
    spec: WorkloadSpec
    cadence_ms: int


def history(hosts: int, metrics: int, longest_ms: int, now_ms: int) -> list[Segment]:
    """The seeded history, oldest first: the SEGMENTS a range of `longest_ms` reaches (the
    oldest cut at `longest_ms`, or the 1 d cadence stretched back to it), each aligned to its
    cadence and ending where the newer one begins (to within one cadence)."""
    picked: list[tuple[int, int]] = []
    for older, cadence in reversed(SEGMENTS):
        picked.append((min(older, longest_ms), cadence))
        if older >= longest_ms:
            break
    else:
        picked[-1] = (longest_ms, picked[-1][1])
    out: list[Segment] = []
    newer_start = now_ms
    for older, cadence in picked:
        end = newer_start // cadence * cadence
        start = (now_ms - older) // cadence * cadence
        if end > start:
            spec = WorkloadSpec(end_ms=end, hosts=hosts, metrics=metrics, span_ms=end - start, step_ms=cadence)
            out.append(Segment(spec, cadence))
            newer_start = start
    return out[::-1]


def dashboard_spec(panels: int, metrics: Sequence[str]) -> dict[str, Any]:
    """`panels` time-series panels in two columns; each draws every host of a metric (same
    series count) with its own aggregation: AGGS in turn, then the next metric, so up to
    6 x len(metrics) panels ask distinct queries (with one metric, panel 7 repeats panel 1's:
    the server keeps no results, so a repeat costs what a new aggregation of it does)."""
    out = []
    for i in range(panels):
        metric, agg = metrics[(i // len(AGGS)) % len(metrics)], AGGS[i % len(AGGS)]
        out.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": f"{agg} {metric} by host",
                "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": 12, "h": 8},
                "targets": [{"refId": "A", "metric": metric, "group_by": ["host"], "agg": agg}],
            }
        )
    return {"time": {"from": "now-1h", "to": "now"}, "panels": out}


def save_dashboard(port: int, key: str, spec: dict[str, Any]) -> None:
    body = json.dumps({"dashboard": {"title": "Bench web", "spec": spec}, "expected_version": 0})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "PUT",
            f"/api/v1/dashboards/{DASHBOARD_UID}",
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
    finally:
        conn.close()
    if response.status not in (200, 201):
        raise BenchFailure(f"saving the dashboard answered HTTP {response.status}: {text[:300]}")


def wait_seeded(client: HttpClient, metrics: Sequence[str], expected: int, start_ms: int, timeout_s: float) -> float:
    """Poll until the 1d tier counts `expected` samples of every metric from `start_ms` on
    (every tier is written in the same projector flush); the seconds it took."""
    began = time.monotonic()
    for metric in metrics:
        while True:
            body, ms = client.query(
                [("metric", metric), ("start", str(start_ms)), ("end", "now"), ("period", "1d"), ("agg", "count")]
            )
            got = int(sum(v for s in body["series"] for _, v in s["points"] if v is not None))
            if got == expected:
                break
            if got > expected:
                raise BenchFailure(f"{metric}: counted {got:,} samples, more than the {expected:,} pushed")
            if time.monotonic() - began > timeout_s:
                raise BenchFailure(f"{metric}: {got:,} of {expected:,} samples queryable after {timeout_s:.0f} s")
            time.sleep(min(2.0, max(0.1, 20 * ms / 1000)))
    return time.monotonic() - began


def server_query_ms(client: HttpClient, spec: dict[str, Any], range_: str, reps: int = 3) -> dict[str, Any]:
    """The dashboard's panel queries over the HTTP JSON API, one after another (the same
    engine the gRPC-web Query uses): the median over `reps` of their summed latency, and how
    many series the first panel's answer held (or the error the server gave)."""
    sums: list[float] = []
    series = 0
    error = ""
    for _ in range(reps):
        total = 0.0
        for panel in spec["panels"]:
            t = panel["targets"][0]
            params = [("metric", t["metric"]), ("start", f"now-{range_}"), ("end", "now"), ("agg", t["agg"])]
            params += [("group_by", g) for g in t["group_by"]]
            status, body, ms = client.get("/api/v1/query", params)
            total += ms
            if status != 200:
                error = str(body.get("error", body))[:200]
            elif panel is spec["panels"][0]:
                series = len(body.get("series", []))
        sums.append(total)
    return {"sum_ms": round(statistics.median(sums)), "series": series, "error": error}


# ---------------------------------------------------------------------------- browser


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise BenchFailure("Debian chromium is missing: `make system-deps` installs it")
    return found


def browser_memory(driver_pid: int) -> dict[str, int]:
    """Memory of the chromium processes under the driver: the sum of their RSS (shared pages
    counted in each), of their PSS (shared pages split: what the browser as a whole holds),
    and the renderers' RSS (the page's process)."""
    out = {"browser_rss": 0, "browser_pss": 0, "renderer_rss": 0}
    try:
        procs = psutil.Process(driver_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            cmd = p.cmdline()
            if not cmd or "chrom" not in Path(cmd[0]).name:
                continue
            mem = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out["browser_rss"] += mem.rss
        out["browser_pss"] += getattr(mem, "pss", mem.rss)
        if "--type=renderer" in cmd:
            out["renderer_rss"] += mem.rss
    return out


def drive_browser(config: dict[str, Any], timeout_s: float, on_line: Callable[[dict[str, Any]], None]) -> None:
    """Run bench_web.mjs; each JSON line it prints gets the browser's RSS added, goes to
    `on_line`, and is acknowledged on its stdin. Killed if it outlives `timeout_s`."""
    env = {**os.environ, "BENCH_WEB_CONFIG": json.dumps(config)}
    with subprocess.Popen(
        ["node", str(DRIVER)],
        cwd=WEB,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        watchdog = threading.Timer(timeout_s, proc.kill)
        watchdog.start()
        failure = ""
        other: list[str] = []
        try:
            assert proc.stdout is not None and proc.stdin is not None
            for raw in proc.stdout:
                if not raw.startswith("{"):
                    other.append(raw.rstrip())
                    continue
                line = json.loads(raw)
                if line.get("event") == "failed":
                    failure = str(line.get("error"))
                    continue
                line.update(browser_memory(proc.pid))
                on_line(line)
                proc.stdin.write("{}\n")
                proc.stdin.flush()
            proc.wait(timeout=60)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
    if proc.returncode != 0:
        raise BenchFailure(f"the browser driver failed (exit {proc.returncode}): {failure}\n" + "\n".join(other[-20:]))


# ---------------------------------------------------------------------------- live ingest


def live_pusher(server: ArgusServer, hosts: int, metrics: Sequence[str], stop: threading.Event) -> None:
    """One sample of every series every LIVE_PUSH_S seconds (the live panels' deltas)."""
    channel = grpc.insecure_channel(server.ingest_target)
    stub = ingest_pb2_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
    metadata = (("authorization", f"Bearer {server.api_key}"),)
    names = host_names(hosts)
    n = 0
    try:
        while not stop.wait(LIVE_PUSH_S):
            n += 1
            now = time.time_ns() // 1_000_000
            batch = metrics_pb2.SampleBatch(batch_id=f"bench-web-{n}-{secrets.token_hex(4)}", source="bench-web")
            for metric in metrics:
                for i, host in enumerate(names):
                    s = batch.series.add(metric=metric, kind=metrics_pb2.METRIC_KIND_GAUGE)
                    s.labels.add(name="host", value=host)
                    s.timestamps_ms.append(now)
                    s.values.append(float((i + n) % 100))
            result = stub.PushBatch(ingest_pb2.PushBatchRequest(batch=batch), metadata=metadata, timeout=30).result
            if result.status != ingest_pb2.BATCH_STATUS_ACCEPTED:
                log(f"live push refused: {result}")
    finally:
        channel.close()


# ---------------------------------------------------------------------------- figures


MB: Final = 1024 * 1024


def _median_ms(draws: Sequence[dict[str, Any]], key: str) -> int | None:
    values = [float(x[key]) for x in draws if x.get(key) is not None]
    return round(statistics.median(values)) if values else None


def summarize_draws(lines: Sequence[dict[str, Any]], ranges: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in ranges:
        draws = [x for x in lines if x["event"] == "draw" and x["range"] == r]
        if not draws:
            continue
        ms = [float(x["drawMs"]) for x in draws]
        out[r] = {
            "reloads": len(draws),
            "draw_ms_median": round(statistics.median(ms)),
            "draw_ms_p95": round(percentile(ms, 95)),
            "draw_ms_max": round(max(ms)),
            "dom_content_loaded_ms_median": _median_ms(draws, "domContentLoadedMs"),
            "first_query_start_ms_median": _median_ms(draws, "firstQueryStartMs"),
            "last_query_end_ms_median": _median_ms(draws, "lastQueryEndMs"),
            "queries": max(int(x["queries"]) for x in draws),
            "panels_drawn": min(int(x["drawnPanels"]) for x in draws),
            "panel_errors": sorted({e for x in draws for e in x["errors"]}),
            "points_per_panel": round(
                statistics.median(int(x["points"]) / max(1, int(x["drawnPanels"])) for x in draws)
            ),
            "js_heap_mb_median": round(statistics.median(float(x["heapUsed"]) for x in draws) / MB, 1),
            "browser_rss_mb_median": round(statistics.median(int(x["browser_rss"]) for x in draws) / MB, 1),
            "browser_pss_mb_median": round(statistics.median(int(x["browser_pss"]) for x in draws) / MB, 1),
            "renderer_rss_mb_median": round(statistics.median(int(x["renderer_rss"]) for x in draws) / MB, 1),
        }
    return out


def slope_per_hour(ts_s: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of `values` per hour (0 with fewer than 2 samples)."""
    if len(ts_s) < 2:
        return 0.0
    mt, mv = statistics.fmean(ts_s), statistics.fmean(values)
    den = sum((t - mt) ** 2 for t in ts_s)
    return 0.0 if den == 0 else sum((t - mt) * (v - mv) for t, v in zip(ts_s, values, strict=True)) / den * 3600


def summarize_soak(lines: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    samples = [x for x in lines if x["event"] == "soak"]
    if not samples:
        return None
    t = [float(x["t"]) for x in samples]
    heap = [float(x["heapUsed"]) / MB for x in samples]
    renderer = [float(x["renderer_rss"]) / MB for x in samples]
    browser = [float(x["browser_pss"]) / MB for x in samples]
    return {
        "samples": len(samples),
        "minutes": round(t[-1] / 60, 1),
        "js_heap_mb": {"first": round(heap[0], 1), "last": round(heap[-1], 1), "max": round(max(heap), 1)},
        "js_heap_mb_per_hour": round(slope_per_hour(t, heap), 1),
        "renderer_rss_mb": {
            "first": round(renderer[0], 1),
            "last": round(renderer[-1], 1),
            "max": round(max(renderer), 1),
        },
        "renderer_rss_mb_per_hour": round(slope_per_hour(t, renderer), 1),
        # The first minutes include the page settling into live mode: the second half is the trend.
        "js_heap_mb_per_hour_second_half": round(slope_per_hour(t[len(t) // 2 :], heap[len(heap) // 2 :]), 1),
        "renderer_rss_mb_per_hour_second_half": round(
            slope_per_hour(t[len(t) // 2 :], renderer[len(renderer) // 2 :]), 1
        ),
        "browser_pss_mb": {"first": round(browser[0], 1), "last": round(browser[-1], 1), "max": round(max(browser), 1)},
        "panel_errors_max": max(int(x["errors"]) for x in samples),
        "points_first_last": [int(samples[0]["points"]), int(samples[-1]["points"])],
        "series": [
            {"t_s": x["t"], "heap_mb": round(h, 2), "renderer_rss_mb": round(r, 1), "browser_pss_mb": round(b, 1)}
            for x, h, r, b in zip(samples, heap, renderer, browser, strict=True)
        ],
    }


def bundle_sizes() -> dict[str, int]:
    """Bytes and gzip bytes of the built app's JS and CSS."""
    raw = gz = 0
    for f in sorted((WEB / "dist" / "assets").glob("*")):
        if f.suffix in (".js", ".css"):
            data = f.read_bytes()
            raw += len(data)
            gz += len(gzip.compress(data, compresslevel=9))
    return {"bytes": raw, "gzip_bytes": gz}


def markdown(results: dict[str, Any]) -> str:
    cfg = results["config"]
    lines = [
        "# Dashboards in the browser (bench/bench_web.py)",
        "",
        f"Run {results['run_at']} on {results['machine']} (load average 1/5/15 min: "
        f"{results.get('load_average_at_start')} at start, {results.get('load_average_at_end')} at the end: "
        "the machine is shared); "
        f"`{results['command']}`.",
        f"{cfg['panels']} time-series panels x {cfg['series']:,} series each (`group_by=host`) "
        f"in headless chromium {results.get('chromium_version', '?')} at 1280x800; "
        f"seeded {results['seed']['samples']:,} samples in {results['seed']['seconds']} s "
        f"({'; '.join(results['seed']['segments'])}).",
        f"App bundle: {results['bundle']['bytes'] / 1024:.0f} KiB JS+CSS, "
        f"{results['bundle']['gzip_bytes'] / 1024:.0f} KiB gzip.",
        "",
        "## Time to all panels drawn (navigation start -> every canvas drawn), warm server",
        "",
        "| range | reloads | median ms | p95 ms | max ms | DOMContentLoaded ms | queries sent -> last answer ms "
        "| server: panel queries one by one ms | panels drawn | points/panel "
        "| JS heap MB | browser PSS MB | renderer RSS MB | goal <= 1000 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r, d in results["draw"].items():
        ok = "✓" if d["draw_ms_median"] <= 1000 and not d["panel_errors"] else "✗"
        lines.append(
            f"| {r} | {d['reloads']} | {d['draw_ms_median']:,} | {d['draw_ms_p95']:,} | {d['draw_ms_max']:,} | "
            f"{d['dom_content_loaded_ms_median']} | "
            f"{d['first_query_start_ms_median']} -> {d['last_query_end_ms_median']} | "
            f"{results['server_queries'][r]['sum_ms']:,} | {d['panels_drawn']}/{cfg['panels']} | "
            f"{d['points_per_panel']:,} | "
            f"{d['js_heap_mb_median']} | {d['browser_pss_mb_median']} | {d['renderer_rss_mb_median']} | {ok} |"
        )
    errors = {r: d["panel_errors"] for r, d in results["draw"].items() if d["panel_errors"]}
    for r, errs in errors.items():
        lines.append(f"\n- {r}: panels showed an error instead of a chart: {'; '.join(errs)[:400]}")
    soak = results.get("soak")
    if soak:

        def row(name: str, key: str, slope: str) -> str:
            v = soak[key]
            trend = f"{soak[slope]} | {soak[slope + '_second_half']}" if slope else " | "
            return f"| {name} | {v['first']} | {v['last']} | {v['max']} | {trend} |"

        lines += [
            "",
            f"## Live mode for {soak['minutes']} min "
            f"({cfg['soak_range']} range, every series pushed every {LIVE_PUSH_S:.0f} s)",
            "",
            "| | first | last | max | slope MB/hour | slope MB/hour, second half |",
            "|---|---:|---:|---:|---:|---:|",
            row("JS heap after GC, MB", "js_heap_mb", "js_heap_mb_per_hour"),
            row("renderer RSS, MB", "renderer_rss_mb", "renderer_rss_mb_per_hour"),
            row("browser PSS (all processes), MB", "browser_pss_mb", ""),
            "",
            f"{soak['samples']} samples every {cfg['soak_interval_s']} s; "
            f"panel errors seen at most {soak['panel_errors_max']}; "
            f"points drawn first/last sample {soak['points_first_last']}.",
        ]
    if results.get("page_errors"):
        lines.append(f"\nPage errors: {results['page_errors'][:5]}")
    lines += ["", f"Grafana: {results['grafana']}", ""]
    return "\n".join(lines)


GRAFANA_NOTE: Final = (
    "not compared: Grafana is not in Debian's archive (apt knows no `grafana` package here) and is "
    "not a server on PyPI or npm; its code is AGPL, which the project's package policy excludes."
)


# ---------------------------------------------------------------------------- main


def parse_ranges(text: str) -> list[str]:
    ranges = [r.strip() for r in text.split(",") if r.strip()]
    if not ranges:
        raise BenchFailure("--ranges: at least one range, e.g. 1h,24h")
    for r in ranges:
        parse_duration_ms(r)
    return ranges


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    ranges = parse_ranges(args.ranges)
    longest = max(parse_duration_ms(r) for r in [*ranges, args.soak_range])
    metrics = [d.name for d in metric_defs(args.metrics) if d.kind is MetricKind.GAUGE]
    if len(metrics) != args.metrics:
        raise BenchFailure(f"--metrics: only the first 7 workload metrics are gauges, not {args.metrics}")
    now_ms = time.time_ns() // 1_000_000
    segments = history(args.series, args.metrics, longest, now_ms)
    server = ArgusServer(workdir / "argus-data", workdir / "argus.log", API_KEY)
    server.start()
    client = HttpClient(server.http_port, API_KEY)
    stop = threading.Event()
    pusher: threading.Thread | None = None
    try:
        began = time.monotonic()
        for i, seg in enumerate(segments):
            path = workdir / f"history-{i}.parquet"
            write(seg.spec, OutputFormat.PARQUET, path)
            timed_push(path, server, "bench-web", workdir / f"push-{i}.log")
        samples = sum(s.spec.samples for s in segments)
        wait_seeded(client, metrics, samples // args.metrics, segments[0].spec.start_ms, 300 + samples / 5_000)
        seed_s = round(time.monotonic() - began, 1)
        log(f"seeded {samples:,} samples in {seed_s} s")
        spec = dashboard_spec(args.panels, metrics)
        save_dashboard(server.http_port, API_KEY, spec)
        server_ms = {r: server_query_ms(client, spec, r) for r in ranges}
        log(f"panel queries over HTTP, one after another: {server_ms}")
        lines: list[dict[str, Any]] = []

        def on_line(line: dict[str, Any]) -> None:
            nonlocal pusher
            lines.append(line)
            if line["event"] in ("draw", "warmup"):
                log(f"{line['event']} {line['range']}: {line['drawMs']} ms, errors {len(line['errors'])}")
            elif line["event"] == "soak-start":
                pusher = threading.Thread(target=live_pusher, args=(server, args.series, metrics, stop), daemon=True)
                pusher.start()
            elif line["event"] == "soak":
                log(
                    f"soak {line['t']} s: heap {line['heapUsed'] / MB:.1f} MB, "
                    f"renderer {line['renderer_rss'] / MB:.0f} MB"
                )

        config = {
            "url": f"http://127.0.0.1:{server.http_port}",
            "key": API_KEY,
            "uid": DASHBOARD_UID,
            "panels": args.panels,
            "ranges": ranges,
            "reloads": args.reloads,
            "soakMinutes": args.soak_minutes,
            "soakIntervalS": args.soak_interval,
            "soakRange": args.soak_range,
            "chromium": chromium_binary(),
            "webDir": str(WEB),
            "timeoutMs": args.draw_timeout * 1000,
        }
        budget = BROWSER_SLACK_S + args.soak_minutes * 60 + len(ranges) * (args.reloads + 1) * args.draw_timeout
        drive_browser(config, budget, on_line)
    finally:
        stop.set()
        if pusher is not None:
            pusher.join(timeout=60)
        client.close()
        server.stop()
    done = next((x for x in lines if x["event"] == "done"), {})
    return {
        "seed": {
            "samples": samples,
            "seconds": seed_s,
            "segments": [f"{human_ms(s.spec.span_ms)} at {human_ms(s.cadence_ms)}" for s in segments],
        },
        "draw": summarize_draws(lines, ranges),
        "server_queries": server_ms,
        "soak": summarize_soak(lines),
        "page_errors": done.get("pageErrors", []),
    }


def human_ms(ms: int) -> str:
    """`335d`, `23h`, `5m`, `5s`: the largest unit of at least 2 (or the exact one)."""
    for unit, size in (("d", DAY_MS), ("h", HOUR_MS), ("m", 60 * SECOND_MS)):
        if ms >= 2 * size or ms == size:
            return f"{ms // size}{unit}"
    return f"{ms // SECOND_MS}s"


def chromium_version() -> str:
    try:
        out = subprocess.run([chromium_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    found = re.search(r"\d+(?:\.\d+){3}", out)
    return found.group(0) if found else "?"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--panels", type=positive, default=12)
    parser.add_argument("--series", type=positive, default=1000, help="hosts: series per panel")
    parser.add_argument(
        "--metrics", type=positive, default=1, help="gauges of the workload the panels cycle over (1-7)"
    )
    parser.add_argument("--ranges", default="1h,24h,30d,365d")
    parser.add_argument("--reloads", type=positive, default=10)
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument("--soak-interval", type=positive, default=30, help="seconds between soak samples")
    parser.add_argument("--soak-range", default="1h")
    parser.add_argument("--draw-timeout", type=positive, default=120, help="seconds one draw may take")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="web-latest", help="results file name (without .json/.md)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores",
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "command": shlex.join(["python", "-m", "bench.bench_web", *given]),
        "chromium_version": chromium_version(),
        "config": {
            "panels": args.panels,
            "series": args.series,
            "metrics": args.metrics,
            "reloads": args.reloads,
            "soak_minutes": args.soak_minutes,
            "soak_interval_s": args.soak_interval,
            "soak_range": args.soak_range,
        },
        "bundle": bundle_sizes(),
        "grafana": GRAFANA_NOTE,
    }
    try:
        with tempfile.TemporaryDirectory(prefix="bench-web-") as workdir:
            results.update(run(args, Path(workdir)))
    except BenchFailure as exc:
        print(f"bench_web failed: {exc}", file=sys.stderr)
        return 1
    results["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
