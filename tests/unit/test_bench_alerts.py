"""The pure parts of bench/bench_alerts.py: the latency summary and the workload."""

from __future__ import annotations

import math

from bench.bench_alerts import (
    accepted,
    percentile,
    rules_document,
    rules_in_process,
    sample_batch,
    summarize,
)
from core.alerting.document import parse_document
from query_side.planner import compile_selector, parse_matcher


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1 .. 100, unordered
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_summary_of_latencies() -> None:
    got = summarize([3.0, 1.0, 2.0, 10.0])
    assert got == {"count": 4, "p50": 2.0, "p99": 10.0, "max": 10.0, "mean": 4.0}
    assert summarize([])["count"] == 0 and math.isnan(summarize([])["p99"])


def test_document_parses_and_each_series_is_watched_by_exactly_one_rule() -> None:
    rules, series = 7, 50
    config = parse_document(rules_document(rules, "http://127.0.0.1:9/hook"))
    assert sorted(config.rules) == sorted(f"hot_{i}" for i in range(rules))
    assert config.rules["hot_3"] == rules_in_process(rules)[3]  # the in-process rules are the document's
    assert config.route is not None and config.route.group_wait_ms == 0
    batch = sample_batch(range(series), rules, [1000, 2000], [1.0, 2.0], batch_id="b")
    assert len(batch.series) == series and list(batch.series[5].timestamps_ms) == [1000, 2000]
    for s in batch.series:
        labels = {label.name: label.value for label in s.labels}
        watching = [
            name
            for name, rule in config.rules.items()
            if compile_selector([parse_matcher(w) for w in rule.query.where]).matches(labels)
        ]
        assert len(watching) == 1
    assert len(set(accepted(batch, range(series), rules).series_ids)) == series
