"""The pure helpers of bench/bench_promql.py and the workload's cadence / metric subset."""

from __future__ import annotations

import urllib.parse

import cramjam
import pytest

from bench.bench_promql import SERIES_PER_REQUEST, promql_cases, rate_window_ms, remote_write_requests
from bench.workload import WorkloadSpec, generate, prometheus_series
from contracts.argus.ingest.v1 import prometheus_remote_pb2 as prw
from core.errors import InvalidArgument
from core.model import DAY_MS, HOUR_MS, MINUTE_MS

END = 1_764_057_600_000  # on the hour


def test_rate_window_holds_two_samples_at_any_cadence() -> None:
    assert rate_window_ms(5_000) == 5 * MINUTE_MS
    assert rate_window_ms(60_000) == 5 * MINUTE_MS
    assert rate_window_ms(30 * MINUTE_MS) == 90 * MINUTE_MS
    assert rate_window_ms(100_000) == 5 * MINUTE_MS
    assert rate_window_ms(110_000) == 6 * MINUTE_MS  # 330 s rounded up to a minute


def test_cases_cover_only_the_ranges_the_span_holds() -> None:
    spec = WorkloadSpec(end_ms=END, hosts=4, span_ms=DAY_MS, step_ms=MINUTE_MS, only=("cpu_user",), metrics=8)
    names = [q.name for q in promql_cases(spec)]
    assert names == ["rate 1h", "gauge 1h", "rate 24h", "gauge 24h"]
    assert [q.name for q in promql_cases(spec, ("24h",))] == ["rate 24h", "gauge 24h"]
    params = dict(promql_cases(spec)[2].params)
    # Ends on the 5 m step grid at or before the last sample; 24 h at 5 m steps.
    assert float(params["end"]) * 1000 == END - 5 * MINUTE_MS
    assert float(params["step"]) == 300
    assert float(params["end"]) - float(params["start"]) == (DAY_MS - 5 * MINUTE_MS) / 1000
    assert urllib.parse.quote(params["query"])  # text, not bytes


def test_workload_cadence_and_subset() -> None:
    spec = WorkloadSpec(
        end_ms=END,
        hosts=3,
        metrics=8,
        span_ms=HOUR_MS,
        step_ms=10 * MINUTE_MS,
        only=("cpu_user", "http_requests_total"),
    )
    assert [d.name for d in spec.defs] == ["cpu_user", "http_requests_total"]
    assert spec.samples == 3 * 2 * 6
    ts = sorted({int(t) for b in generate(spec) for t in b.ts_ms})
    assert ts == [spec.start_ms + k * 10 * MINUTE_MS for k in range(6)]
    with pytest.raises(InvalidArgument):
        WorkloadSpec(end_ms=END, hosts=3, metrics=2, only=("http_requests_total",))


def test_remote_write_requests_carry_the_prometheus_model_in_order() -> None:
    spec = WorkloadSpec(end_ms=END, hosts=300, metrics=10, span_ms=10 * 5_000)
    series = prometheus_series(spec)
    bodies = list(remote_write_requests(spec, len(series) + 10))
    # One scrape's worth of series per time step, split into requests; stops past the budget.
    assert sum(n for _, n in bodies) == len(series) + SERIES_PER_REQUEST
    first = [prw.PrometheusWriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(b))) for b, _ in bodies]
    sent = [ts for r in first for ts in r.timeseries]
    assert [ts.labels[0].value for ts in sent[: len(series)]] == [s.name for s in series]
    assert {ts.samples[0].timestamp for ts in sent[: len(series)]} == {spec.start_ms}
    assert all(len(ts.samples) == 1 for ts in sent)
