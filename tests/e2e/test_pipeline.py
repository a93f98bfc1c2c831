"""The whole pipeline over the network: push known data three ways, read it back exactly.

One `argus up` serves the module. Known data (every kind, three regions, several label sets,
26 h of coarse samples plus 10 min of 5 s samples) is dealt round-robin into three parts that
travel by `argus push` (NDJSON file), unary PushBatch and the Push stream, so every bucket
mixes samples of all three paths. Every tier and aggregation is then read over HTTP and gRPC
with filters and grouping and compared with `expected.py`, which computes the answers from
the raw samples on its own. Re-pushing everything must change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from contracts.argus.query.v1 import query_pb2
from tests.e2e import expected as ref
from tests.e2e.conftest import VISIBLE_TIMEOUT_S, ArgusServer, measured, parse_push_summary, wait_for

pytestmark = pytest.mark.e2e

FRESHNESS_BUDGET_S = 2.0

AGGS: dict[str, tuple[str, ...]] = {
    "counter": ("sum", "count", "rate", "increase", "avg", "min", "max", "last"),
    "gauge": ("avg", "min", "max", "last", "sum", "count"),
    "timer": ("p50", "p99", "count", "sum", "avg", "min", "max"),
    "distinct": ("distinct", "count"),
}
METRICS = ("e2e_http_requests", "e2e_cpu_percent", "e2e_latency_ms", "e2e_active_users")
KIND = {
    "e2e_http_requests": "counter",
    "e2e_cpu_percent": "gauge",
    "e2e_latency_ms": "timer",
    "e2e_active_users": "distinct",
}
# Per metric: a label, one of its values, and a regex matching some of its values.
MAIN_LABEL = {
    "e2e_http_requests": ("host", "a", "b|c"),
    "e2e_cpu_percent": ("host", "b", "[ab]"),
    "e2e_latency_ms": ("endpoint", "/api", "/log.*"),
    "e2e_active_users": ("app", "web", "i.s"),
}
TIERS = ("5s", "5s-coarse", "1m", "5m", "1h", "1d")


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    name: str
    where: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    region: str | None = None


def selections(metric: str) -> list[Selection]:
    label, value, regex = MAIN_LABEL[metric]
    out = [
        Selection(name="all"),
        Selection(name="each", group_by=("*",)),
        Selection(name="by_region", group_by=("region",)),
        Selection(name="eq", where=("region=us-east-1",), group_by=(label,)),
        Selection(name="ne", where=(f"{label}!={value}",), group_by=("region",)),
        Selection(name="regex", where=(f"{label}=~{regex}",)),
        Selection(name="not_regex", where=(f"{label}!~{regex}", "region!=eu-west-1"), group_by=("*",)),
        Selection(name="region_param", region="us-east-1", group_by=(label,)),
    ]
    if metric == "e2e_cpu_percent":
        # `team` exists on host a only: the others read it as "" (so != keeps them).
        out.append(Selection(name="missing_label", where=("team!=core",), group_by=("host",)))
        out.append(Selection(name="group_missing", group_by=("team",)))
    return out


@dataclass(slots=True)
class Pushed:
    server: ArgusServer
    dataset: ref.Dataset
    windows: ref.Windows
    ndjson_path: Path
    unary_batches: list[metrics_pb2.SampleBatch]
    stream_batches: list[metrics_pb2.SampleBatch]
    push_output: str
    unary_results: list[ingest_pb2.BatchResult] = field(default_factory=list)
    stream_results: dict[str, ingest_pb2.BatchResult] = field(default_factory=dict)
    parts: tuple[ref.Dataset, ref.Dataset, ref.Dataset] | None = None

    def range_of(self, tier: str) -> tuple[str, int, int]:
        """(period, start, end) of a tier case."""
        w = self.windows
        if tier == "5s":
            return "5s", w.dense_start_ms - ref.MINUTE_MS, w.dense_end_ms + ref.MINUTE_MS
        if tier == "5s-coarse":
            return "5s", w.coarse_end_ms - 3 * ref.HOUR_MS, w.coarse_end_ms
        start, end = w.full_range
        return tier, start, end


def samples_of(ds: ref.Dataset) -> int:
    return len(ds.samples)


def wait_until_all_visible(server: ArgusServer, ds: ref.Dataset, windows: ref.Windows) -> None:
    """Every tier counts every value of every metric (the projectors have caught up)."""
    start, end = windows.full_range

    def caught_up() -> bool:
        for metric in ds.metric_names():
            want = ref.total_expected(ds, metric)
            for period in ("5s", "1m", "5m", "1h", "1d"):
                body = server.query(
                    [("metric", metric), ("agg", "count"), ("period", period), ("start", str(start)), ("end", str(end))]
                )
                got = sum(v for s in body["series"] for _, v in s["points"])
                if got != want:
                    return False
        return True

    wait_for("every pushed value to be counted in every tier", caught_up, timeout_s=VISIBLE_TIMEOUT_S, interval_s=0.2)


@pytest.fixture(scope="module")
def pushed(argus_server: ArgusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    now = time.time_ns() // 1_000_000
    dataset, windows = ref.generate(now_ms=now)
    via_cli, via_unary, via_stream = ref.split_three_ways(dataset)
    path = tmp_path_factory.mktemp("push") / "samples.ndjson"
    path.write_bytes(ref.to_ndjson(via_cli))
    unary = ref.to_batches(via_unary, source="e2e-unary", prefix="unary", max_samples=700)
    stream = ref.to_batches(via_stream, source="e2e-stream", prefix="stream", max_samples=500, distinct_as_hashes=True)

    done = argus_server.push_file(path)
    assert done.returncode == 0, f"argus push failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    state = Pushed(
        server=argus_server,
        dataset=dataset,
        windows=windows,
        ndjson_path=path,
        unary_batches=unary,
        stream_batches=stream,
        push_output=done.stdout + done.stderr,
        parts=(via_cli, via_unary, via_stream),
    )
    state.unary_results = [argus_server.push_batch(b) for b in unary]
    state.stream_results = argus_server.push_stream(stream)
    wait_until_all_visible(argus_server, dataset, windows)
    yield state


# ---------------------------------------------------------------------------- health


def test_grpc_health_reports_serving_on_ingest_and_query_ports(argus_server: ArgusServer) -> None:
    assert argus_server.grpc_health(argus_server.ingest_port)
    assert argus_server.grpc_health(argus_server.ingest_port, "argus.ingest.v1.IngestService")
    assert argus_server.grpc_health(argus_server.query_port)
    assert argus_server.grpc_health(argus_server.query_port, "argus.query.v1.QueryService")


@pytest.mark.parametrize(
    ("port_name", "service"), [("ingest", "argus.ingest.v1.IngestService"), ("query", "argus.query.v1.QueryService")]
)
def test_reflection_lists_the_service(argus_server: ArgusServer, port_name: str, service: str) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(argus_server.channel(argus_server.ports[port_name]))
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10.0))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert service in names, names
    assert "grpc.health.v1.Health" in names, names
    by_symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
    answer = next(iter(stub.ServerReflectionInfo(iter([by_symbol]), timeout=10.0)))
    assert answer.WhichOneof("message_response") == "file_descriptor_response", answer


# ---------------------------------------------------------------------------- pushing


def test_every_push_path_accepts_every_sample(pushed: Pushed) -> None:
    assert pushed.parts is not None
    via_cli, via_unary, via_stream = pushed.parts
    report = parse_push_summary(pushed.push_output)
    assert (report.accepted, report.rejected, report.duplicates) == (samples_of(via_cli), 0, 0), pushed.push_output
    for result in pushed.unary_results:
        assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED, result
        assert not result.duplicate, result
    assert sum(r.accepted_samples for r in pushed.unary_results) == samples_of(via_unary)
    assert sorted(pushed.stream_results) == sorted(b.batch_id for b in pushed.stream_batches)
    for result in pushed.stream_results.values():
        assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED, result
        assert not result.duplicate, result
    assert sum(r.accepted_samples for r in pushed.stream_results.values()) == samples_of(via_stream)


# ---------------------------------------------------------------------------- queries


def _queries(pushed: Pushed, tier: str, metric: str, *, transport: str) -> list[ref.Query]:
    period, start, end = pushed.range_of(tier)
    aggs = AGGS[KIND[metric]]
    out: list[ref.Query] = []
    for sel in selections(metric):
        # HTTP: every agg with every selection. gRPC shares the engine and is here for its
        # request mapping: every agg on the plain selections, the filtered ones with two.
        chosen = aggs if transport == "http" or sel.name in ("all", "each") else aggs[:2]
        out.extend(
            ref.Query(
                metric=metric,
                agg=agg,
                period=period,
                start_ms=start,
                end_ms=end,
                where=sel.where,
                group_by=sel.group_by,
                region=sel.region,
            )
            for agg in chosen
        )
    return out


def _grpc_request(q: ref.Query) -> query_pb2.QueryRequest:
    ops = {
        "=": query_pb2.MATCH_OP_EQUAL,
        "!=": query_pb2.MATCH_OP_NOT_EQUAL,
        "=~": query_pb2.MATCH_OP_REGEX,
        "!~": query_pb2.MATCH_OP_NOT_REGEX,
    }
    request = query_pb2.QueryRequest(
        metric=q.metric,
        start_ms=q.start_ms,
        end_ms=q.end_ms,
        period=q.period,
        agg=q.agg,
        group_by=list(q.group_by),
        region=q.region or "",
    )
    for w in q.where:
        name, op, value = ref.parse_where(w)
        request.matchers.add(name=name, op=ops[op], value=value)
    return request


def _grpc_result(response: query_pb2.QueryResponse) -> ref.Result:
    out: ref.Result = {}
    for s in response.series:
        key: ref.LabelKey = frozenset(dict(s.labels).items())
        assert key not in out, f"two result series with labels {dict(key)}"
        assert len(s.timestamps_ms) == len(s.values)
        out[key] = dict(zip(list(s.timestamps_ms), list(s.values), strict=True))
    return out


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("tier", TIERS)
def test_http_query_matches_reference(pushed: Pushed, tier: str, metric: str) -> None:
    problems: list[str] = []
    for q in _queries(pushed, tier, metric, transport="http"):
        body = pushed.server.query(q.http_params())
        if body.get("tier") != q.period:
            problems.append(f"{q.describe()}: answered by tier {body.get('tier')!r}")
        diff = ref.compare(ref.result_from_http(body), ref.expected_result(pushed.dataset, q), q.agg)
        problems.extend(f"{q.describe()}: {d}" for d in diff)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:60])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("tier", TIERS)
def test_grpc_query_matches_reference(pushed: Pushed, tier: str, metric: str) -> None:
    stub = pushed.server.query_stub()
    problems: list[str] = []
    for q in _queries(pushed, tier, metric, transport="grpc"):
        response = stub.Query(_grpc_request(q), metadata=pushed.server.auth(), timeout=30.0)
        if response.tier != q.period:
            problems.append(f"{q.describe()}: answered by tier {response.tier!r}")
        diff = ref.compare(_grpc_result(response), ref.expected_result(pushed.dataset, q), q.agg)
        problems.extend(f"{q.describe()}: {d}" for d in diff)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:60])


def test_auto_period_over_two_days_reads_the_5m_tier(pushed: Pushed) -> None:
    start, end = pushed.windows.full_range
    days = (end - start) // ref.DAY_MS
    assert days in (2, 3)  # 576 or 864 five-minute buckets: the coarsest tier with >= 300
    q = ref.Query(metric="e2e_cpu_percent", agg="avg", period="auto", start_ms=start, end_ms=end, group_by=("region",))
    body = pushed.server.query(q.http_params())
    assert body["tier"] == "5m", body["tier"]
    want = ref.expected_result(pushed.dataset, ref.Query(**{**_fields(q), "period": "5m"}))
    assert not ref.compare(ref.result_from_http(body), want, "avg")


def _fields(q: ref.Query) -> dict[str, Any]:
    return {name: getattr(q, name) for name in ref.Query.__dataclass_fields__}


def test_relative_times_select_the_dense_window(pushed: Pushed) -> None:
    body = pushed.server.query(
        [("metric", "e2e_http_requests"), ("agg", "sum"), ("period", "1m"), ("start", "-30m"), ("end", "now")]
    )
    got = sum(v for s in body["series"] for _, v in s["points"])
    dense = pushed.dataset.with_samples(s for s in pushed.dataset.samples if s.ts_ms >= pushed.windows.dense_start_ms)
    assert got == ref.total_expected(dense, "e2e_http_requests", "sum")


def test_metrics_and_label_values_list_what_was_pushed(pushed: Pushed) -> None:
    server = pushed.server
    answer = server.http_get("/api/v1/metrics")
    assert answer.status == 200, answer
    listed = {m["name"]: (m["kind"], m["series_count"]) for m in answer.body["metrics"]}
    for metric in METRICS:
        count = sum(1 for s in pushed.dataset.series if s.metric == metric)
        assert listed.get(metric) == (KIND[metric], count), (metric, listed.get(metric))
    grpc_listed = server.query_stub().ListMetrics(query_pb2.ListMetricsRequest(), metadata=server.auth(), timeout=10)
    assert {m.name: (m.kind, m.series_count) for m in grpc_listed.metrics if m.name in METRICS} == {
        m: listed[m] for m in METRICS
    }

    hosts = server.http_get("/api/v1/labels/host/values", [("metric", "e2e_cpu_percent")])
    assert hosts.status == 200 and hosts.body["values"] == ["a", "b", "c"], hosts
    regions = server.http_get("/api/v1/labels/region/values", [("metric", "e2e_latency_ms")])
    assert regions.status == 200 and regions.body["values"] == ["eu-west-1", "us-east-1"], regions
    endpoints = server.query_stub().ListLabelValues(
        query_pb2.ListLabelValuesRequest(label="endpoint", metric="e2e_latency_ms"), metadata=server.auth(), timeout=10
    )
    assert list(endpoints.values) == ["/api", "/login"]


# ---------------------------------------------------------------------------- freshness


def test_acked_sample_is_queryable_in_the_5s_tier_within_two_seconds(argus_server: ArgusServer) -> None:
    delays: list[float] = []
    for trial in range(1, 4):
        now = time.time_ns() // 1_000_000
        batch = metrics_pb2.SampleBatch(batch_id=f"fresh-{trial}-{now}", source="e2e-freshness")
        s = batch.series.add(metric="e2e_freshness", kind=metrics_pb2.METRIC_KIND_GAUGE, region="us-east-1")
        s.labels.add(name="host", value="a")
        s.timestamps_ms.append(now)
        s.values.append(float(trial))
        result = argus_server.push_batch(batch)
        acked = time.monotonic()
        assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED, result
        params = [
            ("metric", "e2e_freshness"),
            ("agg", "count"),
            ("period", "5s"),
            ("start", str(now - 60_000)),
            ("end", str(now + 60_000)),
        ]

        def visible(expected: int = trial, params: list[tuple[str, str]] = params) -> bool:
            return argus_server.total(params) == expected

        wait_for(f"freshness sample {trial}", visible, timeout_s=10.0, interval_s=0.01)
        delays.append(time.monotonic() - acked)
    measured("freshness_delays_s", [round(d, 3) for d in delays])
    assert max(delays) < FRESHNESS_BUDGET_S, f"ack-to-queryable delays {delays} (budget {FRESHNESS_BUDGET_S} s)"


# ---------------------------------------------------------------------------- idempotency


def _snapshot(pushed: Pushed) -> list[dict[str, Any]]:
    out = []
    for tier in TIERS:
        period, start, end = pushed.range_of(tier)
        for metric in METRICS:
            for agg in AGGS[KIND[metric]][:2]:
                body = pushed.server.query(
                    [
                        ("metric", metric),
                        ("agg", agg),
                        ("period", period),
                        ("start", str(start)),
                        ("end", str(end)),
                        ("group_by", "*"),
                    ]
                )
                body.pop("stats", None)
                out.append(body)
    return out


def test_repushing_everything_changes_nothing(pushed: Pushed) -> None:
    server = pushed.server
    before = _snapshot(pushed)

    again = server.push_file(pushed.ndjson_path)
    assert again.returncode == 0, f"second argus push failed:\n{again.stdout}\n{again.stderr}"
    report = parse_push_summary(again.stdout)
    assert report.batches > 0 and report.duplicates == report.batches, f"re-push not all duplicates:\n{again.stdout}"
    assert report.rejected == 0, again.stdout
    for batch in pushed.unary_batches:
        result = server.push_batch(batch)
        assert result.duplicate, f"unary batch {batch.batch_id} re-sent was not reported duplicate: {result}"
        assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED, result
    for batch_id, result in server.push_stream(pushed.stream_batches).items():
        assert result.duplicate, f"stream batch {batch_id} re-sent was not reported duplicate: {result}"

    server.barrier("repush")
    after = _snapshot(pushed)
    changed = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    assert not changed, f"{len(changed)} of {len(before)} answers changed after re-push, e.g. {after[changed[0]]}"
    wait_until_all_visible(server, pushed.dataset, pushed.windows)


def test_a_stream_without_auth_is_refused(argus_server: ArgusServer) -> None:
    stub = argus_server.ingest_stub()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Push(iter([ingest_pb2.PushRequest()]), timeout=10.0))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
