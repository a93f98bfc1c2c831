"""PromQL end to end: the oracle corpus against the real Prometheus, and the Prometheus HTTP
API of a real `argus up` answering samples pushed through its ingest."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from bench import promql_compat
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from tests.e2e.conftest import VISIBLE_TIMEOUT_S, ArgusServer, wait_for

pytestmark = pytest.mark.e2e


async def test_promql_answers_match_prometheus_on_the_same_samples() -> None:
    report = await promql_compat.run()
    print(report.text())
    constructs = report.by_construct()
    # The corpus covers every family the evaluator claims (a dropped family would pass silently).
    for family in (
        "selector",
        "offset",
        "@",
        "rate",
        "aggregation",
        "group_left/right",
        "subquery",
        "histogram_quantile",
        "regression/smoothing",
    ):
        assert family in constructs
    failed = [f"{o.case.query}: {o.detail}" for o in report.outcomes if not o.ok]
    assert not failed, "\n".join(failed)
    assert len(report.outcomes) >= 250


def _post_form(server: ArgusServer, path: str, form: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}{path}",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30.0) as response:
        return response.status, json.loads(response.read())


def test_prometheus_api_of_a_real_server_answers_pushed_samples(argus_server: ArgusServer) -> None:
    now = time.time_ns() // 1_000_000
    first = now - now % 5_000 - 10 * 60_000
    batch = metrics_pb2.SampleBatch(batch_id="promql-e2e", source="e2e")
    for host, base in (("a", 10.0), ("b", 20.0)):
        s = batch.series.add(metric="promql.cpu", kind=metrics_pb2.METRIC_KIND_GAUGE, region="eu")
        s.labels.add(name="host", value=host)
        c = batch.series.add(metric="promql.reqs", kind=metrics_pb2.METRIC_KIND_COUNTER, region="eu")
        c.labels.add(name="host", value=host)
        for i in range(120):
            s.timestamps_ms.append(first + i * 5_000)
            s.values.append(base + i)
            c.timestamps_ms.append(first + i * 5_000)
            c.values.append(2.0 if host == "a" else 4.0)
    assert argus_server.push_batch(batch).status == ingest_pb2.BATCH_STATUS_ACCEPTED
    at = f"{(first + 119 * 5_000) / 1000:.3f}"

    def counted() -> dict[str, Any] | None:
        answer = argus_server.http_get(
            "/prometheus/api/v1/query", (("query", "count_over_time(promql_cpu[10m])"), ("time", at))
        )
        assert answer.status == 200, answer
        result = answer.body["data"]["result"]
        done = len(result) == 2 and all(float(r["value"][1]) == 120 for r in result)
        return answer.body if done else None

    wait_for("pushed samples visible to PromQL", counted, timeout_s=VISIBLE_TIMEOUT_S)
    answer = argus_server.http_get("/prometheus/api/v1/query", (("query", 'promql_cpu{host="b"}'), ("time", at)))
    assert answer.body["status"] == "success"
    (row,) = answer.body["data"]["result"]
    assert row["metric"] == {"__name__": "promql_cpu", "host": "b", "region": "eu"}
    assert float(row["value"][1]) == 20.0 + 119
    assert any("5s tier" in w for w in answer.body["warnings"])

    status, body = _post_form(
        argus_server,
        "/prometheus/api/v1/query_range",
        {"query": "sum by (region) (rate(promql_reqs[1m]))", "start": at, "end": at, "step": "15s"},
    )
    assert status == 200 and body["data"]["resultType"] == "matrix"
    (series,) = body["data"]["result"]
    assert series["metric"] == {"region": "eu"}
    assert float(series["values"][0][1]) == pytest.approx((2.0 + 4.0) / 5.0)

    names = argus_server.http_get("/prometheus/api/v1/label/__name__/values").body["data"]
    assert {"promql_cpu", "promql_reqs"} <= set(names)
    unauthorized = argus_server.http_get("/prometheus/api/v1/query", (("query", "promql_cpu"),), key=None)
    assert unauthorized.status == 401 and unauthorized.body["status"] == "error"
