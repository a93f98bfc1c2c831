"""PromQL compatibility: Argus's evaluator against the real Prometheus on the same samples.

`python -m bench.promql_compat [--report FILE]` (or `make promql-compat`) builds a small
deterministic dataset (gauges, counters, histogram buckets; 6 hosts in 2 regions, 2 h of
5 s samples), loads it into Prometheus (Debian package `prometheus`, installed with apt-get
if missing; `promtool tsdb create-blocks-from openmetrics`, as bench/peers/prometheus.py
does) and into an in-memory Argus read model (every tier, as the rollup projector writes
them), asks both the CORPUS below through their HTTP APIs and compares the answers:
same result type, same label sets, values within TOLERANCE (relative, or absolute near
zero). The report counts passes per construct. Counters go to Argus as deltas and to
Prometheus as the cumulative sums of the same deltas (from 0).

Evaluation times are multiples of 5 s and range steps under 1 min, so Argus answers from
its 5 s tier, where a bucket is one sample: the oracle checks the PromQL semantics, not
rollup resolution (docs/promql.md says how coarser tiers answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp.test_utils import TestClient, TestServer

from bench.peers.base import PeerUnavailable
from bench.peers.prometheus import Prometheus
from core.adapters.memory_hot_store import MemoryHotStore
from core.chunks import encode_chunk
from core.errors import Unauthenticated
from core.model import DEFAULT_TIERS, MetricKind, series_id
from core.points import from_values
from core.ports import SeriesRecord, StoredChunk
from query_side.engine import QueryEngine
from query_side.http_gateway import make_http_app

STEP_MS = 5_000
SPAN_MS = 2 * 3_600_000
END_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
START_MS = END_MS - SPAN_MS
TENANT = "compat"
KEY = "compat-key"
TOLERANCE = 1e-6
"""Relative difference allowed (absolute below 1): float summation order differs."""

HOSTS = [("h1", "eu"), ("h2", "eu"), ("h3", "eu"), ("h4", "us"), ("h5", "us"), ("h6", "us")]
LE = ["0.1", "0.5", "1", "5", "+Inf"]


@dataclass(frozen=True, slots=True)
class Case:
    construct: str
    query: str
    kind: str = "range"
    """"range" (query_range over the last 20 min at 30 s) or "instant" (at three times)."""


def _c(construct: str, *queries: str, kind: str = "range") -> list[Case]:
    return [Case(construct, q, kind) for q in queries]


CORPUS: list[Case] = [
    *_c(
        "selector",
        "cpu_user",
        'cpu_user{host="h1"}',
        'cpu_user{host!="h1"}',
        'cpu_user{host=~"h[12]"}',
        'cpu_user{host!~"h[12]",region="us"}',
        '{__name__="cpu_user",region="eu"}',
        'mem_free{region=~"e.*"}',
    ),
    *_c("selector", "cpu_user", 'http_requests{code="500"}', kind="instant"),
    *_c("counter value", "http_requests", 'http_requests{host="h2"}'),
    *_c("offset", "cpu_user offset 5m", "rate(http_requests[5m] offset 10m)", "cpu_user offset -1m"),
    *_c("@", "cpu_user @ 1767223800", "rate(http_requests[5m] @ 1767224100)", "cpu_user @ end()", "cpu_user @ start()"),
    *_c("range selector", "cpu_user[1m]", 'http_requests{host="h1"}[30s]', kind="instant"),
    *_c("rate", "rate(http_requests[5m])", "rate(http_requests[1m])", "rate(http_requests[90s])", "rate(cpu_user[5m])"),
    *_c("increase", "increase(http_requests[5m])", "increase(http_requests[2m])"),
    *_c("irate", "irate(http_requests[1m])", "irate(cpu_user[1m])"),
    *_c("delta", "delta(cpu_user[5m])", "idelta(cpu_user[1m])"),
    *_c("resets/changes", "resets(jumpy[10m])", "changes(jumpy[10m])", "changes(cpu_user[5m])"),
    *_c(
        "over_time",
        "avg_over_time(cpu_user[5m])",
        "min_over_time(cpu_user[5m])",
        "max_over_time(cpu_user[5m])",
        "sum_over_time(cpu_user[2m])",
        "count_over_time(cpu_user[3m])",
        "last_over_time(cpu_user[1m])",
        "present_over_time(cpu_user[1m])",
        "stddev_over_time(cpu_user[5m])",
        "stdvar_over_time(cpu_user[5m])",
        "quantile_over_time(0.9, cpu_user[5m])",
        "quantile_over_time(0.25, mem_free[10m])",
    ),
    *_c(
        "aggregation",
        "sum(cpu_user)",
        "sum by (region) (cpu_user)",
        "sum without (host) (cpu_user)",
        "avg by (region) (cpu_user)",
        "min(cpu_user)",
        "max by (region) (mem_free)",
        "count(cpu_user)",
        "group by (region) (cpu_user)",
        "stddev(cpu_user)",
        "stdvar by (region) (cpu_user)",
        "quantile(0.5, cpu_user)",
        "quantile by (region) (0.9, mem_free)",
        "avg by (region) (rate(http_requests[5m]))",
        "sum by (code) (increase(http_requests[5m]))",
    ),
    *_c("topk/bottomk", "topk(2, cpu_user)", "bottomk(1, cpu_user)", "topk by (region) (1, mem_free)", kind="instant"),
    *_c("count_values", 'count_values("v", floor(cpu_user / 10))', kind="instant"),
    *_c(
        "arithmetic",
        "cpu_user * 2",
        "cpu_user + mem_free",
        "cpu_user / on(host, region) mem_free",
        "cpu_user - ignoring(code) cpu_user",
        "2 ^ 3 + cpu_user % 7",
        "-cpu_user",
        "1 - cpu_user / 100",
    ),
    *_c(
        "comparison",
        "cpu_user > 50",
        "cpu_user > bool 50",
        "cpu_user == cpu_user",
        "mem_free < on(host, region) cpu_user * 20",
        "cpu_user >= bool on(host, region) mem_free / 10",
        "rate(http_requests[5m]) > 1",
    ),
    *_c(
        "set operators",
        "cpu_user and cpu_user > 50",
        "cpu_user unless cpu_user > 50",
        'cpu_user{region="eu"} or mem_free',
        "cpu_user and on(region) (cpu_user > 70)",
    ),
    *_c(
        "group_left/right",
        "http_requests * on(host, region) group_left cpu_user",
        "cpu_user * on(host, region) group_right http_requests",
        "rate(http_requests[5m]) * on(host, region) group_left(tag) "
        'label_replace(cpu_user, "tag", "t-$1", "host", "(.*)")',
    ),
    *_c(
        "math",
        "abs(cpu_user - 50)",
        "ceil(cpu_user)",
        "floor(cpu_user)",
        "round(cpu_user)",
        "round(cpu_user, 5)",
        "clamp(cpu_user, 20, 60)",
        "clamp_min(cpu_user, 40)",
        "clamp_max(cpu_user, 40)",
        "exp(cpu_user / 100)",
        "ln(cpu_user)",
        "log2(cpu_user)",
        "log10(cpu_user)",
        "sqrt(cpu_user)",
        "sgn(cpu_user - 50)",
    ),
    *_c(
        "label functions",
        'label_replace(cpu_user, "h", "$1", "host", "h(.*)")',
        'label_replace(cpu_user, "x", "a-${1}-b", "region", "(e|u).*")',
        'label_join(cpu_user, "hr", "/", "host", "region")',
    ),
    *_c(
        "absent",
        "absent(nonexistent)",
        'absent(cpu_user{host="h1"})',
        'absent(nope{job="x"})',
        "absent_over_time(nope[5m])",
        "absent_over_time(cpu_user[5m])",
    ),
    *_c(
        "scalar/vector/time",
        "vector(1)",
        "scalar(sum(cpu_user))",
        "time()",
        "cpu_user * 0 + time()",
        'scalar(cpu_user{host="h1"}) * 2',
        "timestamp(cpu_user)",
    ),
    *_c("sort", "sort(cpu_user)", "sort_desc(mem_free)", kind="instant"),
    *_c(
        "date functions",
        "hour()",
        "minute()",
        "day_of_week()",
        "day_of_month()",
        "day_of_year()",
        "days_in_month()",
        "month()",
        "year()",
        "minute(timestamp(cpu_user))",
    ),
    *_c(
        "histogram_quantile",
        "histogram_quantile(0.9, rate(latency_bucket[5m]))",
        "histogram_quantile(0.5, sum by (le) (rate(latency_bucket[5m])))",
        "histogram_quantile(0.99, sum by (le, region) (increase(latency_bucket[10m])))",
    ),
    *_c(
        "subquery",
        "max_over_time(rate(http_requests[1m])[5m:30s])",
        "avg_over_time(cpu_user[10m:1m])",
        "rate(http_requests[5m:15s])",
        "min_over_time(sum(cpu_user)[5m:])",
    ),
    *_c(
        "nested",
        "sum by (region) (rate(http_requests[5m])) / on(region) group_left count by (region) (cpu_user)",
        "topk(3, sum by (host) (avg_over_time(cpu_user[5m])))",
        "abs(delta(mem_free[5m])) > bool 1",
    ),
    *_c(
        "more operators",
        "cpu_user % 7 + mem_free % 3",
        "cpu_user atan2 50",
        "cpu_user > bool on(host, region) mem_free / 8",
        "cpu_user != bool 50",
        'cpu_user or on(region) mem_free{host="h9"}',
        "sum without (host, code) (http_requests) or vector(0)",
        "count by (region) (cpu_user > 50)",
        "sum by (region) (mem_free) / ignoring(region) group_left sum(mem_free)",
        "max by (code) (rate(http_requests[2m])) - min by (code) (rate(http_requests[2m]))",
    ),
    *_c(
        "more functions",
        "resets(http_requests[10m])",
        "changes(http_requests[5m])",
        "idelta(http_requests[1m])",
        "delta(http_requests[5m])",
        "clamp(cpu_user, 60, 20)",
        'absent(cpu_user{host=~"h9.*"})',
        "quantile_over_time(0.5, rate(http_requests[1m])[5m:30s])",
        "avg_over_time(sum by (region) (cpu_user)[10m:2m] offset 3m)",
        "max_over_time(cpu_user[5m] @ 1767222000)",
        'label_join(label_join(cpu_user, "a", "-", "host"), "b", "", "a", "region")',
        "timestamp(rate(http_requests[5m]))",
        'count_values by (region) ("v", floor(cpu_user / 25))',
    ),
    *_c(
        "regression/smoothing",
        "deriv(cpu_user[5m])",
        "deriv(mem_free[10m])",
        "deriv(http_requests[5m])",
        "deriv(sum by (region) (cpu_user)[10m:1m])",
        "predict_linear(cpu_user[5m], 600)",
        "predict_linear(mem_free[10m] offset 5m, 3600)",
        "predict_linear(http_requests[5m], 60)",
        "predict_linear(cpu_user[5m] @ 1767224100, 300)",
        "holt_winters(cpu_user[5m], 0.5, 0.5)",
        "holt_winters(mem_free[10m], 0.1, 0.9)",
        "holt_winters(rate(http_requests[1m])[5m:15s], 0.3, 0.3)",
    ),
]
# Every range case is also asked as an instant query (at three times).
CORPUS += [Case(c.construct, c.query, "instant") for c in CORPUS if c.kind == "range"]


class OneKey:
    """The compat run's one API key, of TENANT."""

    def tenant_for(self, api_key: str | None) -> str:
        if api_key != KEY:
            raise Unauthenticated("unknown API key")
        return TENANT


# ------------------------------------------------------------------------------ dataset


@dataclass(slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    kind: MetricKind
    values: np.ndarray[Any, np.dtype[np.float64]]
    """Gauges: the values; counters: the deltas (Prometheus gets their running sum)."""


def dataset() -> list[Sample]:
    n = SPAN_MS // STEP_MS
    t = np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(12)
    out: list[Sample] = []
    for i, (host, region) in enumerate(HOSTS):
        base = {"host": host, "region": region}
        cpu = 50 + 30 * np.sin(t / (40 + 7 * i)) + rng.normal(0, 3, n)
        out.append(Sample("cpu_user", base, MetricKind.GAUGE, np.round(np.clip(cpu, 1, 100), 2).astype(np.float64)))
        mem = 300 + 100 * np.cos(t / (90 + i)) + rng.normal(0, 5, n)
        out.append(Sample("mem_free", base, MetricKind.GAUGE, np.round(mem, 1)))
        for code, mean in (("200", 6 + i), ("500", 0.4)):
            deltas = rng.poisson(mean, n).astype(np.float64)
            out.append(Sample("http_requests", {**base, "code": code}, MetricKind.COUNTER, deltas))
        # Bucket counters of one latency histogram: cumulative over `le`.
        obs = rng.poisson(5, n)
        cuts = np.sort(rng.uniform(0, 1, (n, len(LE) - 1)), axis=1)
        cum = 0.0 * cuts
        for j in range(len(LE) - 1):
            cum[:, j] = np.floor(obs * cuts[:, j] * (0.5 + 0.1 * i))
        cum = np.minimum(np.maximum.accumulate(cum, axis=1), obs[:, None])
        for j, le in enumerate(LE):
            deltas = (obs if le == "+Inf" else cum[:, j]).astype(np.float64)
            out.append(Sample("latency_bucket", {**base, "le": le}, MetricKind.COUNTER, deltas))
    # A gauge that jumps up and down (resets, changes).
    jumpy = np.where(rng.uniform(0, 1, n) < 0.1, 0.0, np.floor(t % 17))
    out.append(Sample("jumpy", {"host": "h1", "region": "eu"}, MetricKind.GAUGE, jumpy))
    return out


def times_ms() -> np.ndarray[Any, np.dtype[np.int64]]:
    return START_MS + np.arange(SPAN_MS // STEP_MS, dtype=np.int64) * STEP_MS


def write_openmetrics(samples: Sequence[Sample], path: Path) -> None:
    ts = (times_ms() / 1000).astype(np.int64).tolist()
    with path.open("w") as out:
        for s in samples:
            values = np.cumsum(s.values) if s.kind is MetricKind.COUNTER else s.values
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            head = f"{s.name}{{{labels}}} "
            out.writelines(f"{head}{v!r} {t}\n" for v, t in zip(values.tolist(), ts, strict=True))
        out.write("# EOF\n")


async def argus_store(samples: Sequence[Sample]) -> MemoryHotStore:
    """The read model the rollup projector would write for these samples, every tier."""
    store = MemoryHotStore()
    ts = times_ms()
    records = []
    for s in samples:
        labels = {k: v for k, v in s.labels.items() if k != "region"}
        canonical = tuple(sorted(labels.items()))
        sid = series_id(TENANT, s.labels["region"], s.name, canonical)
        records.append(
            SeriesRecord(
                tenant=TENANT,
                series_id=sid,
                metric=s.name,
                kind=int(s.kind),
                region=s.labels["region"],
                labels=canonical,
                first_seen_ms=START_MS,
                last_seen_ms=END_MS,
            )
        )
        for tier in DEFAULT_TIERS:
            pts = from_values(np.zeros(len(ts), dtype=np.int64), ts, s.values, tier.step_ms)
            chunk_of = pts.ts - pts.ts % tier.chunk_span_ms
            chunks = []
            for start in np.unique(chunk_of).tolist():
                part = pts.take(chunk_of == start)
                data = encode_chunk(part, kind=s.kind, step_ms=tier.step_ms, chunk_start_ms=start)
                chunks.append(
                    StoredChunk(series_id=sid, chunk_start_ms=start, data=data, partition=0, applied_offset=1)
                )
            await store.write_chunks(tier.name, chunks)
    await store.upsert_series(records)
    return store


# ------------------------------------------------------------------------------ comparison


@dataclass(slots=True)
class Outcome:
    case: Case
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def by_construct(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for o in self.outcomes:
            passed, total = out.get(o.case.construct, (0, 0))
            out[o.case.construct] = (passed + o.ok, total + 1)
        return out

    def text(self) -> str:
        lines = [f"PromQL compatibility with Prometheus (same samples, tolerance {TOLERANCE:g})", ""]
        for construct, (passed, total) in self.by_construct().items():
            lines.append(f"  {'ok ' if passed == total else 'FAIL'} {construct:<22} {passed}/{total}")
        failed = [o for o in self.outcomes if not o.ok]
        passed = len(self.outcomes) - len(failed)
        lines += ["", f"{passed}/{len(self.outcomes)} queries agree"]
        for o in failed:
            lines.append(f"  FAIL [{o.case.kind}] {o.case.query}: {o.detail}")
        return "\n".join(lines)


def _value(text: str) -> float:
    return float(text.replace("+Inf", "inf").replace("-Inf", "-inf"))


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= TOLERANCE * max(1.0, abs(b))


def compare(ours: Any, theirs: Any) -> str:
    """ "" when the two API answers agree, else what differs."""
    if theirs.get("status") != "success":
        return f"prometheus failed: {theirs.get('error')}"
    if ours.get("status") != "success":
        return f"argus failed: {ours.get('error')}"
    a, b = ours["data"], theirs["data"]
    if a["resultType"] != b["resultType"]:
        return f"result type {a['resultType']} != {b['resultType']}"
    if a["resultType"] in ("scalar", "string"):
        ok = a["result"][0] == b["result"][0] and (
            _close(_value(a["result"][1]), _value(b["result"][1])) if a["resultType"] == "scalar" else a == b
        )
        return "" if ok else f"{a['result']} != {b['result']}"

    def index(result: list[Any]) -> dict[tuple[tuple[str, str], ...], list[Any]]:
        return {tuple(sorted(r["metric"].items())): r.get("values") or [r["value"]] for r in result}

    mine, real = index(a["result"]), index(b["result"])
    if set(mine) != set(real):
        extra = sorted(set(mine) - set(real))[:2]
        missing = sorted(set(real) - set(mine))[:2]
        return f"series differ: extra {extra} missing {missing} ({len(mine)} vs {len(real)})"
    for key, points in real.items():
        got = mine[key]
        if [p[0] for p in got] != [p[0] for p in points]:
            return f"timestamps differ for {dict(key)}: {len(got)} vs {len(points)} points"
        for (t, x), (_, y) in zip(got, points, strict=True):
            if not _close(_value(x), _value(y)):
                return f"{dict(key)} at {t}: {x} != {y}"
    return ""


def _params(case: Case, at_ms: int) -> list[tuple[str, str]]:
    if case.kind == "instant":
        return [("query", case.query), ("time", f"{at_ms / 1000:g}")]
    return [
        ("query", case.query),
        ("start", f"{(at_ms - 20 * 60_000) / 1000:g}"),
        ("end", f"{at_ms / 1000:g}"),
        ("step", "30"),
    ]


async def run(corpus: Sequence[Case] = CORPUS, workdir: Path | None = None) -> Report:
    samples = dataset()
    with tempfile.TemporaryDirectory(prefix="promql-compat-") as tmp:
        base = workdir or Path(tmp)
        prom = Prometheus(base)
        try:
            prom.ensure_installed()
        except PeerUnavailable as exc:
            raise RuntimeError(f"the PromQL oracle needs Prometheus: {exc}") from exc
        prom.start()
        path = base / "compat.om"
        write_openmetrics(samples, path)
        try:
            await asyncio.to_thread(prom.load, path, [])
            store = await argus_store(samples)
            engine = QueryEngine(store, store, DEFAULT_TIERS, clock=lambda: END_MS + 3_600_000)
            app = make_http_app(engine, OneKey(), clock=lambda: END_MS + 3_600_000)
            report = Report()
            async with TestClient(TestServer(app)) as client:
                for case in corpus:
                    ats = (
                        [END_MS - 10 * 60_000]
                        if case.kind == "range"
                        else [END_MS - 60 * 60_000, END_MS - 17 * 60_000 - 35_000, END_MS]
                    )
                    detail = ""
                    for at in ats:
                        params = _params(case, at)
                        path_ = "/api/v1/query" if case.kind == "instant" else "/api/v1/query_range"
                        assert prom.http is not None
                        _, raw, _ = await asyncio.to_thread(prom.http.request, "GET", path_, params)
                        theirs = json.loads(raw)
                        response = await client.get(
                            "/prometheus" + path_, params=params, headers={"Authorization": f"Bearer {KEY}"}
                        )
                        ours = await response.json()
                        detail = compare(ours, theirs)
                        if detail:
                            break
                    report.outcomes.append(Outcome(case, not detail, detail))
            engine.close()
            return report
        finally:
            prom.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--report", type=Path, help="also write the report here (text)")
    args = parser.parse_args(argv)
    report = asyncio.run(run())
    text = report.text()
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    return 0 if all(o.ok for o in report.outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
