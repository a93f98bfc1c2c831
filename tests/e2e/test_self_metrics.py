"""Argus watches itself, through a real `argus up` (projectors in their child process): its
figures at `/metrics` on the query and ingest HTTP ports move with the work done (the child's
consumer lag included), and its self-feed lands in the reserved tenant `_argus`, readable with
the self key only."""

from __future__ import annotations

import functools
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

import tests.e2e.conftest as e2e_conftest
from argus.launch import up_argv
from contracts.argus.metrics.v1 import metrics_pb2
from tests.e2e.conftest import ArgusServer, wait_for
from tests.unit.test_telemetry import parse_exposition

pytestmark = pytest.mark.e2e

Families = dict[str, tuple[str, list[tuple[str, str, float]]]]


def _scrape(port: int) -> Families:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10.0) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse_exposition(answer.read().decode())


def _value(families: Families, name: str, labels: str = "") -> float:
    family = name.removesuffix("_count").removesuffix("_sum") if name not in families else name
    return sum(v for n, lbl, v in families.get(family, ("", []))[1] if n == name and labels in lbl)


def test_metrics_endpoints_move_and_the_self_tenant_is_isolated(
    server_factory: Callable[[], ArgusServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "argus.toml"
    config.write_text("self_metrics_interval_s = 1\n")  # the default is 15 s
    monkeypatch.setattr(e2e_conftest, "up_argv", functools.partial(up_argv, extra=("--config", str(config))))
    server = server_factory()
    server.start()

    before = _scrape(server.http_port)
    now_ms = time.time_ns() // 1_000_000
    pushed = metrics_pb2.SampleBatch(batch_id="e2e-self-metrics", source="e2e")
    series = pushed.series.add(metric="e2e_selfmetrics_load", kind=metrics_pb2.METRIC_KIND_GAUGE, region="local")
    series.timestamps_ms.extend([now_ms - 1000, now_ms])
    series.values.extend([1.0, 2.0])
    assert server.push_batch(pushed).accepted_samples == 2
    wait_for(
        "the pushed samples to be queryable",
        lambda: server.query([("metric", "e2e_selfmetrics_load"), ("start", "-5m")])["series"] or None,
        timeout_s=30,
    )

    after = _scrape(server.http_port)
    assert _value(after, "argus_ingest_samples_total") >= _value(before, "argus_ingest_samples_total") + 2
    assert _value(after, "argus_query_duration_seconds_count") > _value(before, "argus_query_duration_seconds_count")
    assert _value(after, "argus_event_log_append_seconds_count") >= 1
    assert _value(after, "argus_ingest_active_series") >= 1
    assert _value(after, "argus_ingest_identity_cache_entries") >= 1
    # The ingest HTTP port serves the same process's figures.
    on_ingest = _scrape(server.ingest_http_port)
    assert _value(on_ingest, "argus_ingest_samples_total") >= _value(after, "argus_ingest_samples_total")
    # The projector child has no listener: its figures reach the parent's /metrics.
    wait_for(
        "the projector child's consumer lag on the parent's /metrics",
        lambda: any("rollups" in lbl for _, lbl, _ in _scrape(server.http_port)["argus_consumer_lag_records"][1]),
        timeout_s=30,
    )
    assert not any("default" in lbl for _, (_, s) in after.items() for _, lbl, _ in s), "no tenant label"

    self_key = (server.data_dir / "self_api_key").read_text().strip()
    own = [("metric", "argus_ingest_samples_total"), ("start", "-5m"), ("agg", "sum")]

    def self_points() -> float | None:
        body = server.query(own, key=self_key)
        total = sum(v for s in body["series"] for _, v in s["points"] if v is not None)
        return total if total > 0 else None

    assert wait_for("Argus's own ingest counter in tenant _argus", self_points, timeout_s=60) > 0
    # Another tenant's key sees none of it.
    assert server.query(own)["series"] == []
    listed = server.http_get("/api/v1/metrics").body["metrics"]
    assert not any(m["name"].startswith("argus_") for m in listed)
    assert any(
        m["name"] == "argus_ingest_samples_total"
        for m in server.http_get("/api/v1/metrics", key=self_key).body["metrics"]
    )
    # Its own dashboard is the self tenant's, drawn from what the feed wrote.
    own_dashboards = server.http_get("/api/v1/dashboards", key=self_key).body["dashboards"]
    assert [d["uid"] for d in own_dashboards] == ["argus"]
    assert "argus" not in {d["uid"] for d in server.http_get("/api/v1/dashboards").body["dashboards"]}
