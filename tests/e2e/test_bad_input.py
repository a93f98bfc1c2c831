"""Bad input over the network gets precise errors and loses nothing already accepted.

Good data is pushed first; then malformed protobuf, oversize messages and batches, bad
values, times and names, missing and wrong keys, another tenant's key and bad query
parameters are thrown at the same server. The last test checks that the good data is still
exactly there and that nothing rejected slipped in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from contracts.argus.query.v1 import query_pb2
from tests.e2e import expected as ref
from tests.e2e.conftest import VISIBLE_TIMEOUT_S, ArgusServer, run_argus, wait_for

pytestmark = pytest.mark.e2e

PUSH_BATCH = "/argus.ingest.v1.IngestService/PushBatch"
PUSH = "/argus.ingest.v1.IngestService/Push"
GOOD_METRICS = ("e2e_good_gauge", "e2e_good_counter")
R = ingest_pb2


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Good:
    dataset: ref.Dataset
    start_ms: int
    end_ms: int


def _good_dataset(now: int) -> ref.Dataset:
    series = (
        ref.SeriesSpec(metric="e2e_good_gauge", kind="gauge", region="us-east-1", labels=(("host", "a"),)),
        ref.SeriesSpec(metric="e2e_good_gauge", kind="gauge", region="eu-west-1", labels=(("host", "b"),)),
        ref.SeriesSpec(metric="e2e_good_counter", kind="counter", region="us-east-1", labels=(("host", "a"),)),
    )
    start = now - now % ref.MINUTE_MS - ref.HOUR_MS
    samples = [
        ref.Sample(series=i, ts_ms=start + k * 17_000 + i, value=float((k * 7 + i * 3) % 23) + 0.25)
        for i in range(len(series))
        for k in range(200)
    ]
    return ref.Dataset(series=series, samples=tuple(samples))


@pytest.fixture(scope="module")
def good(argus_server: ArgusServer) -> Iterator[Good]:
    now = _now_ms()
    ds = _good_dataset(now)
    for batch in ref.to_batches(ds, source="e2e-good", prefix="good", max_samples=250):
        result = argus_server.push_batch(batch)
        assert result.status == R.BATCH_STATUS_ACCEPTED, result
    first, last = ds.span_ms()
    good = Good(dataset=ds, start_ms=first - first % ref.DAY_MS, end_ms=last - last % ref.DAY_MS + ref.DAY_MS)
    wait_for("good data to be visible", lambda: not _good_problems(argus_server, good), timeout_s=VISIBLE_TIMEOUT_S)
    yield good


def _good_problems(server: ArgusServer, good: Good) -> list[str]:
    problems: list[str] = []
    for metric in GOOD_METRICS:
        for period in ("5s", "1m", "1h", "1d"):
            for agg in ("count", "sum", "last"):
                q = ref.Query(
                    metric=metric, agg=agg, period=period, start_ms=good.start_ms, end_ms=good.end_ms, group_by=("*",)
                )
                body = server.query(q.http_params())
                diff = ref.compare(ref.result_from_http(body), ref.expected_result(good.dataset, q), agg)
                problems.extend(f"{q.describe()}: {d}" for d in diff)
    return problems


def _raw_unary(server: ArgusServer, payload: bytes, *, key: str | None = None) -> grpc.RpcError:
    channel = server.channel(server.ingest_port, max_send_message_length=64 << 20)
    call = channel.unary_unary(PUSH_BATCH, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as err:
        call(payload, metadata=server.auth(key), timeout=30.0)
    return err.value


def _gauge_batch(
    batch_id: str, metric: str, ts: list[int], values: list[float], **labels: str
) -> metrics_pb2.SampleBatch:
    batch = metrics_pb2.SampleBatch(batch_id=batch_id, source="e2e-bad")
    s = batch.series.add(metric=metric, kind=metrics_pb2.METRIC_KIND_GAUGE, region="us-east-1")
    for name, value in labels.items():
        s.labels.add(name=name, value=value)
    s.timestamps_ms.extend(ts)
    s.values.extend(values)
    return batch


# ---------------------------------------------------------------------------- transport


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x0a\x05abc", id="truncated-field"),
        pytest.param(b"\xff\xff\xff\xff", id="bad-varint-tag"),
        pytest.param(b"\x0a\x03\x1a\x01\xff", id="truncated-nested-series"),
    ],
)
def test_malformed_protobuf_is_invalid_argument_saying_malformed(
    argus_server: ArgusServer, good: Good, payload: bytes
) -> None:
    err = _raw_unary(argus_server, payload)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert "malformed" in (err.details() or "").lower(), err.details()


def test_malformed_message_on_the_push_stream_ends_it_with_invalid_argument(
    argus_server: ArgusServer, good: Good
) -> None:
    channel = argus_server.channel(argus_server.ingest_port)
    call = channel.stream_stream(PUSH, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as err:
        list(call(iter([b"\x0a\x05abc"]), metadata=argus_server.auth(), timeout=30.0))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.value.code(), err.value.details())
    assert "malformed" in (err.value.details() or "").lower(), err.value.details()


def test_message_over_16_mib_is_resource_exhausted(argus_server: ArgusServer, good: Good) -> None:
    err = _raw_unary(argus_server, b"\x00" * (17 << 20))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())


def test_batch_over_a_million_samples_is_rejected_whole(argus_server: ArgusServer, good: Good) -> None:
    n = 1_000_001
    start = _now_ms() - 20 * ref.MINUTE_MS
    batch = metrics_pb2.SampleBatch(batch_id="too-large", source="e2e-bad")
    s = batch.series.add(metric="e2e_too_large", kind=metrics_pb2.METRIC_KIND_GAUGE, region="us-east-1")
    s.timestamps_ms.extend(np.arange(start, start + n, dtype=np.int64).tolist())
    s.values.extend(np.ones(n).tolist())
    assert batch.ByteSize() < 16 << 20  # under the message limit: the sample limit must catch it
    result = argus_server.push_batch(batch)
    assert result.status == R.BATCH_STATUS_REJECTED, result.status
    assert result.accepted_samples == 0
    assert result.rejected_samples == n
    assert [r.reason for r in result.rejections] == [R.REJECT_REASON_BATCH_TOO_LARGE], result.rejections
    assert "1000000" in result.error.replace(",", "").replace("_", ""), result.error


# ---------------------------------------------------------------------------- samples


def test_nan_and_infinite_values_are_rejected_and_the_rest_accepted(argus_server: ArgusServer, good: Good) -> None:
    now = _now_ms()
    ts = [now - 30_000, now - 20_000, now - 10_000, now - 5_000]
    result = argus_server.push_batch(_gauge_batch("nan", "e2e_nan", ts, [1.0, math.nan, 3.0, math.inf], host="a"))
    assert result.status == R.BATCH_STATUS_PARTIAL, result
    assert (result.accepted_samples, result.rejected_samples) == (2, 2)
    assert {r.reason for r in result.rejections} == {R.REJECT_REASON_NON_FINITE_VALUE}, result.rejections
    assert min(r.sample_index for r in result.rejections) == 1
    assert all("e2e_nan" in r.message for r in result.rejections), result.rejections


def test_timestamp_an_hour_ahead_is_rejected(argus_server: ArgusServer, good: Good) -> None:
    now = _now_ms()
    result = argus_server.push_batch(
        _gauge_batch("future", "e2e_future", [now - 1_000, now + ref.HOUR_MS], [5.0, 6.0], host="a")
    )
    assert result.status == R.BATCH_STATUS_PARTIAL, result
    assert (result.accepted_samples, result.rejected_samples) == (1, 1)
    (rejection,) = result.rejections
    assert rejection.reason == R.REJECT_REASON_TIMESTAMP_TOO_NEW
    assert (rejection.series_index, rejection.sample_index, rejection.samples) == (0, 1, 1)
    assert "future" in rejection.message and "e2e_future" in rejection.message, rejection.message


@pytest.mark.parametrize(
    ("label", "reason", "mentions"),
    [
        pytest.param("1bad", R.REJECT_REASON_INVALID_LABEL, "1bad", id="starts-with-digit"),
        pytest.param("bad-name", R.REJECT_REASON_INVALID_LABEL, "bad-name", id="dash"),
        pytest.param("__internal", R.REJECT_REASON_INVALID_LABEL, "__internal", id="double-underscore"),
    ],
)
def test_bad_label_name_rejects_its_series_only(
    argus_server: ArgusServer, good: Good, label: str, reason: int, mentions: str
) -> None:
    now = _now_ms()
    batch = _gauge_batch(f"bad-label-{label}", "e2e_bad_label", [now - 2_000, now - 1_000], [1.0, 2.0], **{label: "x"})
    ok = batch.series.add(metric="e2e_label_ok", kind=metrics_pb2.METRIC_KIND_GAUGE, region="us-east-1")
    ok.labels.add(name="case", value=label)
    ok.timestamps_ms.append(now - 1_000)
    ok.values.append(7.0)
    result = argus_server.push_batch(batch)
    assert result.status == R.BATCH_STATUS_PARTIAL, result
    assert (result.accepted_samples, result.rejected_samples) == (1, 2)
    (rejection,) = result.rejections
    assert (rejection.reason, rejection.series_index, rejection.sample_index, rejection.samples) == (reason, 0, -1, 2)
    assert mentions in rejection.message, rejection.message


@pytest.mark.parametrize(
    ("series_kwargs", "reason"),
    [
        pytest.param({"metric": "9starts_with_digit"}, R.REJECT_REASON_INVALID_METRIC_NAME, id="metric-name"),
        pytest.param(
            {"metric": "e2e_good_gauge", "kind": metrics_pb2.METRIC_KIND_COUNTER},
            R.REJECT_REASON_KIND_CONFLICT,
            id="kind-conflict",
        ),
        pytest.param(
            {"metric": "e2e_negative", "kind": metrics_pb2.METRIC_KIND_COUNTER, "values": [-1.0]},
            R.REJECT_REASON_NEGATIVE_COUNTER_DELTA,
            id="negative-counter-delta",
        ),
        pytest.param({"metric": "e2e_bad_region", "region": "us east"}, R.REJECT_REASON_INVALID_REGION, id="region"),
        pytest.param(
            {"metric": "e2e_too_old", "ts": 1_000_000_000_000}, R.REJECT_REASON_TIMESTAMP_TOO_OLD, id="too-old"
        ),
    ],
)
def test_each_rule_has_its_own_reason(
    argus_server: ArgusServer, good: Good, series_kwargs: dict[str, object], reason: int
) -> None:
    spec = {
        "kind": metrics_pb2.METRIC_KIND_GAUGE,
        "region": "us-east-1",
        "values": [1.0],
        "ts": _now_ms() - 1_000,
        **series_kwargs,
    }
    batch = metrics_pb2.SampleBatch(batch_id=f"rule-{reason}", source="e2e-bad")
    s = batch.series.add(metric=spec["metric"], kind=spec["kind"], region=spec["region"])
    s.timestamps_ms.append(spec["ts"])  # type: ignore[arg-type]
    s.values.extend(spec["values"])  # type: ignore[arg-type]
    result = argus_server.push_batch(batch)
    assert result.status == R.BATCH_STATUS_REJECTED, result
    assert [r.reason for r in result.rejections] == [reason], result.rejections
    assert result.rejections[0].message, result.rejections


def test_control_characters_cannot_forge_a_series_identity(argus_server: ArgusServer, good: Good) -> None:
    """{a="x", b="y"} and {a="x\\0b=y"} once hashed to one series; now the second is refused,
    and so is a metric name with a trailing newline."""
    now = _now_ms()
    batch = metrics_pb2.SampleBatch(batch_id="forge", source="e2e-bad")
    for labels, value in (((("a", "x"), ("b", "y")), 1.0), ((("a", "x\x00b=y"),), 10.0)):
        s = batch.series.add(metric="e2e_forge", kind=metrics_pb2.METRIC_KIND_COUNTER, region="us-east-1")
        s.labels.extend(metrics_pb2.Label(name=n, value=v) for n, v in labels)
        s.timestamps_ms.append(now - 1_000)
        s.values.append(value)
    newline = batch.series.add(metric="e2e_forge\n", kind=metrics_pb2.METRIC_KIND_COUNTER, region="us-east-1")
    newline.timestamps_ms.append(now - 1_000)
    newline.values.append(100.0)
    result = argus_server.push_batch(batch)
    assert (result.accepted_samples, result.rejected_samples) == (1, 2), result
    reasons = [(r.series_index, r.reason) for r in result.rejections]
    assert reasons == [(1, R.REJECT_REASON_INVALID_LABEL), (2, R.REJECT_REASON_INVALID_METRIC_NAME)], reasons
    assert "control character" in result.rejections[0].message
    argus_server.barrier("after-forge")
    window = [("period", "1h"), ("start", "now-2h"), ("end", "now+1h")]
    assert argus_server.total([("metric", "e2e_forge"), ("agg", "sum"), *window]) == 1.0


# ---------------------------------------------------------------------------- auth


def test_missing_or_wrong_key_is_unauthenticated_on_ingest_and_query(argus_server: ArgusServer, good: Good) -> None:
    batch = _gauge_batch("auth", "e2e_unauthenticated", [_now_ms()], [1.0])
    ingest = argus_server.ingest_stub()
    query = argus_server.query_stub()
    request = query_pb2.QueryRequest(metric="e2e_good_gauge", period="1h", agg="avg")
    for metadata in ((), (("authorization", "Bearer argus_not_a_key"),), (("authorization", "Basic Zm9vOmJhcg=="),)):
        with pytest.raises(grpc.RpcError) as err:
            ingest.PushBatch(ingest_pb2.PushBatchRequest(batch=batch), metadata=metadata, timeout=10.0)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (metadata, err.value.details())
        with pytest.raises(grpc.RpcError) as err:
            query.Query(request, metadata=metadata, timeout=10.0)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, (metadata, err.value.details())


@pytest.mark.parametrize(
    "path", ["/api/v1/query?metric=e2e_good_gauge", "/api/v1/metrics", "/api/v1/labels/host/values"]
)
def test_http_without_or_with_a_wrong_key_is_401(argus_server: ArgusServer, path: str) -> None:
    for key in (None, "argus_not_a_key"):
        answer = argus_server.http_get(path, key=key)
        assert answer.status == 401, (key, answer)
        assert isinstance(answer.body, dict) and answer.body.get("error"), answer


def test_another_tenant_sees_nothing_of_default_and_default_nothing_of_it(
    argus_server: ArgusServer, good: Good
) -> None:
    created = run_argus("keys", "create", "--data-dir", str(argus_server.data_dir), "--tenant", "e2e-other")
    assert created.returncode == 0, created.stderr
    other = created.stdout.strip().splitlines()[-1].strip()
    assert other and " " not in other, created.stdout
    # The running server follows the config topic; the key works within about a second.
    wait_for(
        "the new key to be accepted",
        lambda: argus_server.http_get("/api/v1/metrics", key=other).status == 200,
        timeout_s=10.0,
    )

    listed = argus_server.http_get("/api/v1/metrics", key=other).body["metrics"]
    assert not [m for m in listed if m["name"].startswith("e2e_")], listed
    start, end = str(good.start_ms), str(good.end_ms)
    for metric in GOOD_METRICS:
        body = argus_server.query(
            [("metric", metric), ("start", start), ("end", end), ("period", "1h"), ("agg", "count")], key=other
        )
        assert body["series"] == [], body
    hosts = argus_server.http_get("/api/v1/labels/host/values", key=other)
    assert hosts.status == 200 and hosts.body["values"] == [], hosts

    # The other tenant may use the same name with another kind: kinds are per tenant.
    now = _now_ms()
    mine = metrics_pb2.SampleBatch(batch_id="other-1", source="e2e-other")
    s = mine.series.add(metric="e2e_good_gauge", kind=metrics_pb2.METRIC_KIND_COUNTER, region="us-east-1")
    s.labels.add(name="host", value="a")
    s.timestamps_ms.extend([now - 3_000, now - 2_000])
    s.values.extend([1000.0, 2000.0])
    result = argus_server.push_batch(mine, key=other)
    assert result.status == R.BATCH_STATUS_ACCEPTED, result

    argus_server.barrier("other-tenant", key=other)
    seen = argus_server.total(
        [("metric", "e2e_good_gauge"), ("agg", "sum"), ("period", "1h"), ("start", "now-1h"), ("end", "now+1h")],
        key=other,
    )
    assert seen == 3000.0
    listed = argus_server.http_get("/api/v1/metrics", key=other).body["metrics"]
    assert {m["name"]: m["kind"] for m in listed if m["name"] == "e2e_good_gauge"} == {"e2e_good_gauge": "counter"}
    assert {m["name"] for m in listed} == {"e2e_good_gauge", "e2e_barrier"}, listed
    argus_server.barrier("other-tenant-default")
    assert not _good_problems(argus_server, good)
    mine_listed = argus_server.http_get("/api/v1/metrics").body["metrics"]
    assert [m["kind"] for m in mine_listed if m["name"] == "e2e_good_gauge"] == ["gauge"], mine_listed


# ---------------------------------------------------------------------------- query parameters


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("start", "yesterday-ish"),
        ("end", "12:00"),
        ("period", "7m"),
        ("agg", "median"),
        ("agg", "distinct"),  # valid name, not for a gauge
        ("where", "host=~("),
        ("where", "host"),
        ("group_by", "not-a-label"),
    ],
)
def test_bad_query_parameter_is_400_naming_it(argus_server: ArgusServer, good: Good, name: str, value: str) -> None:
    params = {"metric": "e2e_good_gauge", "start": "now-1h", "end": "now", "period": "1m", "agg": "avg", name: value}
    answer = argus_server.http_get("/api/v1/query", list(params.items()))
    assert answer.status == 400, answer
    assert answer.body.get("parameter") == name, answer.body
    assert answer.body.get("error"), answer.body


def test_start_after_end_and_unknown_parameter_are_400(argus_server: ArgusServer) -> None:
    answer = argus_server.http_get("/api/v1/query", [("metric", "e2e_good_gauge"), ("start", "now"), ("end", "now-1h")])
    assert answer.status == 400 and answer.body.get("parameter") == "start", answer
    answer = argus_server.http_get("/api/v1/query", [("metric", "e2e_good_gauge"), ("step", "5m")])
    assert answer.status == 400 and answer.body.get("parameter") == "step", answer


def test_grpc_bad_agg_is_invalid_argument(argus_server: ArgusServer, good: Good) -> None:
    request = query_pb2.QueryRequest(metric="e2e_good_gauge", period="1m", agg="median")
    with pytest.raises(grpc.RpcError) as err:
        argus_server.query_stub().Query(request, metadata=argus_server.auth(), timeout=10.0)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agg" in (err.value.details() or ""), err.value.details()
    trailing = dict(err.value.trailing_metadata() or ())
    assert trailing.get("argus-parameter") == "agg", trailing


# ---------------------------------------------------------------------------- nothing lost


def test_after_all_bad_input_the_good_data_is_exactly_there(argus_server: ArgusServer, good: Good) -> None:
    argus_server.barrier("after-bad-input")
    problems = _good_problems(argus_server, good)
    assert not problems, "\n".join(problems[:40])
    # The valid samples of partially rejected batches are there, exactly; nothing else is.
    window = [("period", "1h"), ("start", "now-2h"), ("end", "now+1h")]
    assert argus_server.total([("metric", "e2e_nan"), ("agg", "count"), *window]) == 2
    assert argus_server.total([("metric", "e2e_nan"), ("agg", "sum"), *window]) == 4.0
    assert (
        argus_server.total(
            [("metric", "e2e_future"), ("agg", "sum"), ("period", "5s"), ("start", "now-1h"), ("end", "now+2h")]
        )
        == 5.0
    )
    assert (
        argus_server.total(
            [
                ("metric", "e2e_good_gauge"),
                ("agg", "count"),
                ("period", "1h"),
                ("start", "now-1d"),
                ("end", "now+1h"),
                ("where", "host=a"),
            ]
        )
        == 200
    )
    names = {m["name"] for m in argus_server.http_get("/api/v1/metrics").body["metrics"]}
    for rejected in (
        "e2e_too_large",
        "e2e_bad_label",
        "e2e_unauthenticated",
        "9starts_with_digit",
        "e2e_negative",
        "e2e_bad_region",
        "e2e_too_old",
    ):
        assert rejected not in names, names
    assert {"e2e_nan", "e2e_future", "e2e_label_ok", *GOOD_METRICS} <= names, names
