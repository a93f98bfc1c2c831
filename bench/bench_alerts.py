"""Alerting benchmarks (docs/decisions/0029-alert-backtest-and-benchmarks.md).

(a) latency: a real `argus up` (harness/) with N rules over M series routed to a webhook
    receiver in this process (group_wait 0s); background ingest at a set rate; then K breaching
    samples pushed one at a time: from the ingest ack to the webhook receiving the page.
(b) evaluator cost, in process on a MemoryEventLog: CPU seconds per evaluation tick (1 s
    interval) scaled to 1,000 rules and to 100k series, and tracemalloc bytes per watched series.
(c) backtest speed: a replay of one rule over 1,000 series over a span.

    python -m bench.bench_alerts [--rules 100] [--series 10000] [--rate 20000] [--breaches 20]
        [--backtest-span 1d] [--ingest-seconds 60] [--skip-latency]
        [--scale-rules 1000 --scale-series 100000]  (cost shape C: the issue's scale)

Writes bench/results/alerts-latest.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc

from argus.launch import argus_argv, argus_env
from contracts.argus.events.v1 import events_pb2
from contracts.argus.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.alerting.model import AlertRule, Condition, ConditionOp, RuleQuery
from core.consumer import Delivery
from core.durations import parse_duration_ms
from core.events import SAMPLES_TOPIC, digest, make_event
from core.model import partition_of, series_id
from core.ports import LogRecord
from harness.argus_up import ArgusUp
from query_side.alerts.backtest import backtest
from query_side.alerts.evaluator import AlertEvaluator

RESULTS = Path(__file__).resolve().parent / "results"
METRIC = "bench_alert_cpu"
TENANT = "default"  # the tenant of `argus up`'s own key
BREACH_VALUE = 5000.0
PARTITIONS = 4
COST_FEW_RULES = 10


# ---------------------------------------------------------------------------- pure parts


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(values: Sequence[float]) -> dict[str, float]:
    """count, p50, p99, max and mean of latencies (same unit in and out)."""
    if not values:
        return {"count": 0, "p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def host(i: int) -> str:
    return f"h{i:06d}"


def shard_of(i: int, rules: int) -> str:
    return f"s{i % rules}"


def rules_document(rules: int, webhook_url: str) -> str:
    """`rules` rules, rule i watching the series whose `shard` is s<i> (series j is in shard
    j % rules), `max` over 10 s above 1000 at a 1 s interval, routed to the webhook (one
    notification per host: group_by alertname and host, group_wait 0s)."""
    lines = ["rules:"]
    for i in range(rules):
        lines += [
            f"  - name: hot_{i}",
            f'    query: {{metric: {METRIC}, agg: max, where: ["shard={shard_of(i, rules)}"], group_by: [host]}}',
            "    window: 10s",
            '    condition: "> 1000"',
            "    interval: 1s",
        ]
    lines += [
        "receivers:",
        "  - name: hook",
        "    webhook:",
        f"      - url: {webhook_url}",
        "route:",
        "  receiver: hook",
        "  group_by: [alertname, host]",
        "  group_wait: 0s",
        "  group_interval: 1s",
        "  repeat_interval: 1h",
    ]
    return "\n".join(lines) + "\n"


def rules_in_process(rules: int, *, window_ms: int = 10_000, interval_ms: int = 1_000) -> list[AlertRule]:
    """The document's rules as AlertRule values (the in-process parts)."""
    return [
        AlertRule(
            name=f"hot_{i}",
            query=RuleQuery(metric=METRIC, agg="max", where=(f"shard={shard_of(i, rules)}",), group_by=("host",)),
            window_ms=window_ms,
            condition=Condition(op=ConditionOp.ABOVE, threshold=1000.0),
            interval_ms=interval_ms,
        )
        for i in range(rules)
    ]


def sample_batch(
    series: range, rules: int, ts_ms: Sequence[int], values: Sequence[float], *, batch_id: str
) -> metrics_pb2.SampleBatch:
    """One ingest batch: every series of `series` with a sample at each of `ts_ms`."""
    batch = metrics_pb2.SampleBatch(batch_id=batch_id, source="bench-alerts")
    for j in series:
        s = batch.series.add(metric=METRIC, kind=metrics_pb2.METRIC_KIND_GAUGE, region="bench")
        s.labels.add(name="host", value=host(j))
        s.labels.add(name="shard", value=shard_of(j, rules))
        s.timestamps_ms.extend(ts_ms)
        s.values.extend(values)
    return batch


def accepted(batch: metrics_pb2.SampleBatch, series: range, rules: int) -> events_pb2.SampleBatchAccepted:
    """What ingest appends for `batch` (tenant, series ids)."""
    out = events_pb2.SampleBatchAccepted(tenant=TENANT, source=batch.source, batch_id=batch.batch_id)
    out.series.extend(batch.series)
    for j in series:
        labels = tuple(sorted((("host", host(j)), ("shard", shard_of(j, rules)))))
        out.series_ids.append(series_id(TENANT, "bench", METRIC, labels))
    return out


def _fmt(x: float, unit: str = "") -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else f"{x:,.3f}{unit}"


# ---------------------------------------------------------------------------- (a) latency


class Receiver:
    """A webhook endpoint in this process: when each firing host's page arrived."""

    def __init__(self) -> None:
        self.firing: dict[str, float] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                at = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body.get("status") == "firing":
                    with outer.lock:
                        for alert in body.get("alerts", []):
                            outer.firing.setdefault(alert.get("labels", {}).get("host", ""), at)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def arrived(self, name: str) -> float | None:
        with self.lock:
            return self.firing.get(name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def bench_latency(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    receiver = Receiver()
    data = workdir / "data"
    key = "argus_bench_" + secrets.token_hex(12)
    server = ArgusUp(data, api_key=key)
    try:
        document = workdir / "alerts.yaml"
        document.write_text(rules_document(args.rules, receiver.url))
        apply = subprocess.run(
            argus_argv("alerts", "apply", str(document), "--data-dir", str(data), "--tenant", TENANT),
            env=argus_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if apply.returncode != 0:
            raise RuntimeError(f"argus alerts apply failed: {apply.stderr}")
        server.start()
        channel = grpc.insecure_channel(server.ingest_target)
        stub = ingest_pb2_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
        auth = (("authorization", f"Bearer {key}"),)
        stop = threading.Event()
        pushed = [0]
        ingest_s = [0.0]

        def background() -> None:
            # Every series once per round; rounds paced to the rate, for at most ingest_seconds.
            per_batch = 1000
            started = time.monotonic()
            n = 0
            while not stop.is_set() and time.monotonic() - started < args.ingest_seconds:
                for lo in range(0, args.series, per_batch):
                    if stop.is_set():
                        return
                    chunk = range(lo, min(lo + per_batch, args.series))
                    batch = sample_batch(chunk, args.rules, [_now_ms()], [50.0], batch_id=f"bg-{n}")
                    stub.PushBatch(ingest_pb2.PushBatchRequest(batch=batch), metadata=auth, timeout=30)
                    n += 1
                    pushed[0] += len(chunk)
                    ingest_s[0] = time.monotonic() - started
                    ahead = pushed[0] / args.rate - (time.monotonic() - started)
                    if ahead > 0:
                        stop.wait(ahead)  # paced: the rate, not a sleep to wait for something

        feeder = threading.Thread(target=background, daemon=True)
        feeder.start()
        latencies: list[float] = []
        missed = 0
        step = max(1, args.series // max(args.breaches, 1))
        for k in range(args.breaches):
            j = (k * step) % args.series
            batch = sample_batch(range(j, j + 1), args.rules, [_now_ms()], [BREACH_VALUE], batch_id=f"breach-{k}")
            stub.PushBatch(ingest_pb2.PushBatchRequest(batch=batch), metadata=auth, timeout=30)
            acked = time.monotonic()
            deadline = acked + 30.0
            while (arrived := receiver.arrived(host(j))) is None and time.monotonic() < deadline:
                stop.wait(0.002)  # polls a condition (the receiver's) with a deadline
            if arrived is None:
                missed += 1
            else:
                latencies.append((arrived - acked) * 1000)
        stop.set()
        feeder.join(timeout=60)
        channel.close()
        return {
            "rules": args.rules,
            "series": args.series,
            "rate_target": args.rate,
            "background_samples": pushed[0],
            "background_rate": pushed[0] / ingest_s[0] if ingest_s[0] else math.nan,
            "breaches": args.breaches,
            "missed": missed,
            "latency_ms": summarize(latencies),
        }
    finally:
        server.close()
        receiver.close()


# ---------------------------------------------------------------------------- (b) cost


def _records(
    batches: Sequence[events_pb2.SampleBatchAccepted], start: int
) -> list[Delivery[events_pb2.SampleBatchAccepted]]:
    out = []
    for n, b in enumerate(batches, start):
        event = make_event(b, identity=digest("bench", str(n)), partition_key=b"k", time_ms=0)
        record = LogRecord(
            topic=SAMPLES_TOPIC, partition=partition_of(b.series_ids[0], PARTITIONS), offset=n, event=event
        )
        out.append(Delivery(record=record, value=b))
    return out


async def _cost(rules: int, series: int, seconds: int, *, memory: bool = True) -> dict[str, float]:
    clock = [1_764_072_000_000]
    evaluator = AlertEvaluator(
        log=MemoryEventLog(), rules=lambda: {TENANT: rules_in_process(rules)}, clock_ms=lambda: clock[0]
    )
    await evaluator.start()
    n = 0

    def second_of_samples(t: int) -> list[Delivery[events_pb2.SampleBatchAccepted]]:
        nonlocal n
        out = []
        for lo in range(0, series, 1000):
            chunk = range(lo, min(lo + 1000, series))
            b = accepted(sample_batch(chunk, rules, [t - 1], [50.0], batch_id=f"c{n}"), chunk, rules)
            out.extend(_records([b], n))
            n += 1
        return out

    # Warm: a full 10 s window of one sample per second per series.
    # tracemalloc slows Python several times: the scale shape (C) goes without it.
    if memory:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    for _ in range(10):
        clock[0] += 1000
        await evaluator.apply(second_of_samples(clock[0]))
        await evaluator.evaluate(clock[0])
    held = math.nan
    if memory:
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    apply_cpu = evaluate_cpu = 0.0
    for _ in range(seconds):
        clock[0] += 1000
        deliveries = second_of_samples(clock[0])
        t0 = time.process_time()
        await evaluator.apply(deliveries)
        t1 = time.process_time()
        await evaluator.evaluate(clock[0])
        t2 = time.process_time()
        await evaluator.settle(force=False)
        apply_cpu += t1 - t0
        evaluate_cpu += t2 - t1
    per_tick = evaluate_cpu / seconds
    return {
        "rules": rules,
        "series": series,
        "ticks": seconds,
        "evaluate_cpu_s_per_tick": per_tick,
        "apply_cpu_s_per_second_of_samples": apply_cpu / seconds,
        "evaluate_cpu_s_per_1000_rules": per_tick * 1000 / rules,
        "evaluate_cpu_s_per_100k_series": per_tick * 100_000 / series,
        "total_cpu_s_per_100k_series": (evaluate_cpu + apply_cpu) / seconds * 100_000 / series,
        "bytes_per_watched_series": held / series,
    }


def bench_cost(args: argparse.Namespace) -> dict[str, Any]:
    """Two shapes, so neither scale hides the other: many rules over one series each (the
    per-rule cost) and few rules over many series (the per-series cost); with
    `--scale-rules`, a third: that many rules over `--scale-series` series together (the
    issue's 1,000 rules over 100k series)."""
    out = {
        "many_rules": asyncio.run(_cost(args.cost_rules, args.cost_rules, args.cost_seconds)),
        "many_series": asyncio.run(_cost(COST_FEW_RULES, args.cost_series, args.cost_seconds)),
    }
    if args.scale_rules:
        out["scale"] = asyncio.run(_cost(args.scale_rules, args.scale_series, args.cost_seconds, memory=False))
    return out


# ---------------------------------------------------------------------------- (c) backtest


async def _backtest(span_ms: int, series: int) -> dict[str, float]:
    log = MemoryEventLog()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    end = 1_764_072_000_000
    start = end - span_ms
    step = 5_000
    per_batch_steps = 60  # 5 min of samples per record, 1,000 series
    rule = rules_in_process(1, window_ms=300_000, interval_ms=60_000)
    n = 0
    samples = 0
    for t0 in range(start - 300_000, end, step * per_batch_steps):
        ts = list(range(t0, min(t0 + step * per_batch_steps, end), step))
        values = [2000.0 if 30 <= (t // 60_000) % 60 < 40 else 50.0 for t in ts]  # hot 10 min an hour
        for lo in range(0, series, 1000):
            chunk = range(lo, min(lo + 1000, series))
            b = accepted(sample_batch(chunk, 1, ts, values, batch_id=f"bt{n}"), chunk, 1)
            partition = partition_of(b.series_ids[0], PARTITIONS)
            await log.append(
                SAMPLES_TOPIC,
                [(partition, make_event(b, identity=digest("bt", str(n)), partition_key=b"k", time_ms=t0))],
            )
            n += 1
            samples += len(ts) * len(chunk)
    wall0, cpu0 = time.monotonic(), time.process_time()
    result = await backtest(log, tenant=TENANT, rules=rule, since_ms=start, until_ms=end)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    return {
        "span_s": span_ms / 1000,
        "series": series,
        "samples": samples,
        "records": result.records,
        "evaluations": result.ticks,
        "transitions": len(result.transitions),
        "wall_s": wall,
        "cpu_s": cpu,
        "samples_per_s": samples / wall if wall else math.nan,
    }


def bench_backtest(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(
        _backtest(parse_duration_ms(args.backtest_span, parameter="backtest-span"), args.backtest_series)
    )


# ---------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Alerting benchmark",
        "",
        f"Run at {results['run_at']} on {results['machine']}:",
        "",
        f"    {results['command']}",
        "",
    ]
    latency = results.get("latency")
    if latency:
        s = latency["latency_ms"]
        lines += [
            "## (a) Alert latency: ingest ack -> webhook received (real `argus up`)",
            "",
            f"{latency['rules']} rules over {latency['series']:,} series (max over 10 s > 1000, interval 1 s), "
            f"background ingest at {latency['rate_target']:,} samples/s "
            f"({latency['background_samples']:,} pushed, {latency['background_rate']:,.0f}/s achieved), "
            f"{latency['breaches']} breaches one at a time, "
            f"{latency['missed']} missed.",
            "",
            "| count | p50 ms | p99 ms | max ms | mean ms |",
            "|---:|---:|---:|---:|---:|",
            f"| {s['count']} | {_fmt(s['p50'])} | {_fmt(s['p99'])} | {_fmt(s['max'])} | {_fmt(s['mean'])} |",
            "",
            "The rules are `max` above a threshold: `argus up` evaluates such a breach as its sample is "
            "applied (decision 0055), not at the next 1 s tick (before it, the latency included 0-1 s of "
            "tick wait, ~0.5 s on average).",
            "",
        ]
    cost = results.get("cost")
    if cost:
        r, c = cost["many_rules"], cost["many_series"]
        lines += [
            "## (b) Evaluator cost (in process, MemoryEventLog, 1 s interval)",
            "",
            f"Two shapes, {r['ticks']} ticks each after a 10 s warm-up (one sample per series per second): "
            f"A = {r['rules']:,} rules over {r['series']:,} series (one each), "
            f"B = {c['rules']} rules over {c['series']:,} series.",
            "",
            "| measure | A | B |",
            "|---|---:|---:|",
            "| evaluate CPU s per tick | "
            f"{_fmt(r['evaluate_cpu_s_per_tick'])} | {_fmt(c['evaluate_cpu_s_per_tick'])} |",
            "| apply CPU s per second of samples | "
            f"{_fmt(r['apply_cpu_s_per_second_of_samples'])} | {_fmt(c['apply_cpu_s_per_second_of_samples'])} |",
            f"| **evaluate CPU s per tick per 1,000 rules** (A) | {_fmt(r['evaluate_cpu_s_per_1000_rules'])} | |",
            f"| **evaluate CPU s per tick per 100k series** (B) | | {_fmt(c['evaluate_cpu_s_per_100k_series'])} |",
            "| evaluate + apply CPU s per second per 100k series | "
            f"{_fmt(r['total_cpu_s_per_100k_series'])} | {_fmt(c['total_cpu_s_per_100k_series'])} |",
            "| bytes per watched series (tracemalloc, 10 s window) | "
            f"{r['bytes_per_watched_series']:,.0f} | {c['bytes_per_watched_series']:,.0f} |",
            "",
        ]
        scale = cost.get("scale")
        if scale:
            lines += [
                f"C = {scale['rules']:,} rules over {scale['series']:,} series together (one sample per series "
                f"per second): evaluate {_fmt(scale['evaluate_cpu_s_per_tick'], ' CPU s')} per tick, apply "
                f"{_fmt(scale['apply_cpu_s_per_second_of_samples'], ' CPU s')} per second of samples "
                "(memory: see B; not traced here, tracemalloc would slow it several times).",
                "",
            ]
    bt = results.get("backtest")
    if bt:
        lines += [
            "## (c) Backtest speed",
            "",
            f"One rule (max over 5 min, 1 m interval) over {bt['series']:,} series, {bt['span_s'] / 3600:g} h "
            f"at 5 s ({bt['samples']:,} samples in {bt['records']:,} records, {bt['evaluations']:,} evaluations, "
            f"{bt['transitions']} transitions): {_fmt(bt['wall_s'], ' s')} wall, {_fmt(bt['cpu_s'], ' s')} CPU, "
            f"{bt['samples_per_s']:,.0f} samples/s.",
            "",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=20_000, help="background samples/s")
    parser.add_argument("--ingest-seconds", type=float, default=60.0, help="background ingest at most this long")
    parser.add_argument("--breaches", type=int, default=20)
    parser.add_argument("--cost-rules", type=int, default=1000, help="shape A: rules over one series each")
    parser.add_argument(
        "--cost-series", type=int, default=10_000, help=f"shape B: {COST_FEW_RULES} rules over these series"
    )
    parser.add_argument("--cost-seconds", type=int, default=5)
    parser.add_argument("--scale-rules", type=int, default=0, help="cost shape C: these rules over --scale-series")
    parser.add_argument("--scale-series", type=int, default=100_000)
    parser.add_argument("--backtest-span", default="1d")
    parser.add_argument("--backtest-series", type=int, default=1000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    results: dict[str, Any] = {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{__import__('os').cpu_count()} cores",
        "command": shlex.join(["python", "-m", "bench.bench_alerts", *given]),
    }
    if not args.skip_latency:
        with tempfile.TemporaryDirectory(prefix="bench-alerts-") as workdir:
            results["latency"] = bench_latency(args, Path(workdir))
        print(f"latency: {results['latency']['latency_ms']}", file=sys.stderr)
    results["cost"] = bench_cost(args)
    print(f"cost: {results['cost']}", file=sys.stderr)
    results["backtest"] = bench_backtest(args)
    print(f"backtest: {results['backtest']}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "alerts-latest.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (args.out / "alerts-latest.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
