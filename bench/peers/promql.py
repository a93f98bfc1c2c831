"""The benchmark queries in PromQL (Prometheus) / MetricsQL (VictoriaMetrics, a superset).

Same questions as bench.run's Argus queries, in the idiom of the Prometheus model:
range functions over raw samples (`avg_over_time(..[1m])` at 1-minute steps), `topk` for
Q4, and `histogram_quantile` over the timer's cumulative `_bucket` series for Q7.
"""

from __future__ import annotations

from typing import Any

from bench.peers.base import PeerQuery
from bench.workload import WorkloadSpec, host_names, prometheus_series
from core.model import DAY_MS, HOUR_MS, MINUTE_MS


def seconds(ms: int) -> str:
    """Epoch or duration ms as Prometheus seconds text (millisecond precision)."""
    return f"{ms // 1000}" if ms % 1000 == 0 else f"{ms / 1000:.3f}"


def instant(expr: str, at_ms: int, extra: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
    return (("query", expr), ("time", seconds(at_ms)), *extra)


def ranged(
    expr: str, start_ms: int, end_ms: int, step_ms: int, extra: tuple[tuple[str, str], ...] = ()
) -> tuple[tuple[str, str], ...]:
    return (("query", expr), ("start", seconds(start_ms)), ("end", seconds(end_ms)), ("step", seconds(step_ms)), *extra)


def count_expr(spec: WorkloadSpec) -> str:
    """Points stored over the span, as one number. One sum per metric name, added: a single
    `count_over_time({__name__=~".+"})` drops the names and Prometheus then rejects the
    duplicate label sets."""
    window = f"[{seconds(spec.span_ms)}s]"
    one_host = WorkloadSpec(end_ms=spec.end_ms, hosts=1, metrics=spec.metrics, only=spec.only)
    names = dict.fromkeys(s.name for s in prometheus_series(one_host))
    return " + ".join(f"sum(count_over_time({name}{window}))" for name in names)


def promql_queries(spec: WorkloadSpec, extra: tuple[tuple[str, str], ...] = ()) -> list[PeerQuery]:
    """Q1-Q5, Q6 (30 d and 365 d, when the dataset spans them) and Q7.

    Range queries evaluate at [start + step, end - 1 ms]: each step's window (t - step, t]
    then covers one bucket of data, as Argus's [t, t + step) does."""
    s, e = spec.start_ms, spec.end_ms
    last = e - 1
    host = host_names(spec.hosts)[0]
    regions = min(4, spec.hosts)
    hour = max(s, e - HOUR_MS)
    twelve = max(s, e - 12 * HOUR_MS)
    span_s = seconds(spec.span_ms)

    def by_region(start: int, step: int, window: str) -> str:
        return f"avg by (region) (avg_over_time(cpu_user[{window}]))"

    out = [
        PeerQuery(
            name="Q1",
            description="one series raw over the span",
            path="/api/v1/query",
            params=instant(f'cpu_user{{host="{host}"}}[{span_s}s]', last, extra),
            series=1,
            min_points=spec.steps,
            text=f'cpu_user{{host="{host}"}}[{span_s}s] @ end',
        ),
        q2(spec, host, last, extra),
        PeerQuery(
            name="Q3",
            description="avg cpu_user by region over all hosts, 1m steps, last 1 h",
            path="/api/v1/query_range",
            params=ranged(by_region(hour, MINUTE_MS, "1m"), hour + MINUTE_MS, last, MINUTE_MS, extra),
            series=regions,
            min_points=(e - hour) // MINUTE_MS - 1,
            text=by_region(hour, MINUTE_MS, "1m") + ", step 1m, last 1 h",
        ),
        PeerQuery(
            name="Q4",
            description="top 10 hosts by max cpu_user over the span",
            path="/api/v1/query",
            params=instant(f"topk(10, max_over_time(cpu_user[{span_s}s]))", last, extra),
            series=min(10, spec.hosts),
            min_points=1,
            text=f"topk(10, max_over_time(cpu_user[{span_s}s])) @ end",
        ),
        PeerQuery(
            name="Q5",
            description="Q3 over the last 12 h",
            path="/api/v1/query_range",
            params=ranged(by_region(twelve, MINUTE_MS, "1m"), twelve + MINUTE_MS, last, MINUTE_MS, extra),
            series=regions,
            min_points=(e - twelve) // MINUTE_MS - 1,
            text=by_region(twelve, MINUTE_MS, "1m") + ", step 1m, last 12 h",
        ),
    ]
    for label, span, step, window in (("Q6a", 30 * DAY_MS, HOUR_MS, "1h"), ("Q6b", 365 * DAY_MS, DAY_MS, "1d")):
        if spec.span_ms < 30 * DAY_MS:
            continue
        start = e - span
        out.append(
            PeerQuery(
                name=label,
                description=f"avg cpu_user by region at {window} steps over the last {span // DAY_MS} d",
                path="/api/v1/query_range",
                params=ranged(by_region(start, step, window), start + step, last, step, extra),
                series=regions,
                min_points=min(span, spec.span_ms) // step - 1,
                text=by_region(start, step, window) + f", step {window}",
            )
        )
    if any(d.name == "http_latency_ms" for d in spec.defs):
        q7 = "histogram_quantile(0.99, sum by (region, le) (increase(http_latency_ms_bucket[1m])))"
        out.append(
            PeerQuery(
                name="Q7",
                description="p99 of http_latency_ms by region, 1m steps, last 1 h",
                path="/api/v1/query_range",
                params=ranged(q7, hour + MINUTE_MS, last, MINUTE_MS, extra),
                series=regions,
                min_points=(e - hour) // MINUTE_MS - 2,
                text=q7 + ", step 1m, last 1 h (from 8 histogram buckets)",
            )
        )
    return out


# Prometheus answers at most 11,000 points per series from a range query (VictoriaMetrics
# 30,000 by default); past that, Q2 is the same expression as a subquery of an instant query.
MAX_RANGE_POINTS = 11_000


def q2(spec: WorkloadSpec, host: str, last: int, extra: tuple[tuple[str, str], ...]) -> PeerQuery:
    expr = f'avg_over_time(cpu_user{{host="{host}"}}[1m])'
    points = spec.span_ms // MINUTE_MS
    common = {
        "name": "Q2",
        "description": "one host's cpu_user at 1-minute steps over the span",
        "series": 1,
        "min_points": max(1, points - 1),
    }
    if points <= MAX_RANGE_POINTS:
        return PeerQuery(
            path="/api/v1/query_range",
            params=ranged(expr, spec.start_ms + MINUTE_MS, last, MINUTE_MS, extra),
            text=expr + ", step 1m",
            **common,  # type: ignore[arg-type]
        )
    sub = f"{expr}[{seconds(spec.span_ms)}s:1m]"
    return PeerQuery(
        path="/api/v1/query",
        params=instant(sub, last, extra),
        text=sub + " @ end",
        note=f"a subquery: a range query may not return {points:,} points per series",
        **common,  # type: ignore[arg-type]
    )


def promql_shape(body: Any) -> list[int]:
    result = body["data"]["result"]
    if body["data"]["resultType"] == "vector":
        return [1 for _ in result]
    return [len(r["values"]) for r in result]


def promql_total(body: Any) -> int:
    result = body["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0
