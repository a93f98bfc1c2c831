"""OTLP metrics ingest, fed by the real OpenTelemetry Python SDK: its OTLP/HTTP exporter
against `POST /v1/metrics`, and its OTLP encoder over gRPC `MetricsService/Export`."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcOtlpExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as otlp_service
from opentelemetry.proto.metrics.v1 import metrics_pb2 as otlp_metrics
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from command_side.ingest.accept import BatchAcceptor
from command_side.ingest.protocols.foreign import ForeignIngest, SeriesKey
from command_side.ingest.protocols.http import IngestHttp
from command_side.ingest.protocols.otlp import OtlpMetricsService, add_to_server, otlp_http_handler
from command_side.ingest.registry import TenantRegistry
from contracts.argus.metrics.v1 import metrics_pb2
from core.cumulative import CumulativeDeltas
from core.settings import IngestLimits
from core.sketches import ddsketch_value
from tests.unit.test_ingest_protocols import KEY, Keys, Log

DELTA = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}


@dataclass
class Served:
    log: Log
    url: str
    grpc_target: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    log = Log()
    acceptor = BatchAcceptor(
        log_writer=log,
        registry=TenantRegistry(max_series_per_tenant=1000),
        limits=IngestLimits(),
        partitions=4,
        clock_ms=lambda: int(time.time() * 1000),
    )
    deltas: CumulativeDeltas[SeriesKey] = CumulativeDeltas()
    foreign = ForeignIngest(acceptor, deltas)
    http = IngestHttp(
        foreign,
        Keys(),
        max_body_bytes=1 << 20,
        clock_ms=lambda: 0,
        otlp_handler=otlp_http_handler(foreign, Keys(), lambda: 0),
    )
    server = grpc.aio.server()
    add_to_server(server, OtlpMetricsService(foreign, Keys(), lambda: 0))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with TestServer(http.app()) as http_server:
        yield Served(log=log, url=str(http_server.make_url("/v1/metrics")), grpc_target=f"127.0.0.1:{port}")
    await server.stop(grace=None)


def _provider(reader: InMemoryMetricReader, views: Sequence[View] = ()) -> MeterProvider:
    resource = Resource.create({"service.name": "checkout", "service.instance.id": "pod-1", "deployment": "blue"})
    return MeterProvider(metric_readers=[reader], resource=resource, views=list(views))


async def _export_http(served: Served, reader: InMemoryMetricReader, *, times: int = 1) -> None:
    exporter = OTLPMetricExporter(endpoint=served.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    data = reader.get_metrics_data()
    assert data is not None
    for _ in range(times):  # a resend of the same export
        result = await asyncio.to_thread(exporter.export, data)
        assert result is MetricExportResult.SUCCESS


def _collect(reader: InMemoryMetricReader) -> otlp_service.ExportMetricsServiceRequest:
    data = reader.get_metrics_data()
    assert data is not None
    return encode_metrics(data)


async def _export_grpc(
    served: Served, reader: InMemoryMetricReader | otlp_service.ExportMetricsServiceRequest, key: str = KEY
) -> otlp_service.ExportMetricsServiceResponse:
    request = _collect(reader) if isinstance(reader, InMemoryMetricReader) else reader
    async with grpc.aio.insecure_channel(served.grpc_target) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            request_serializer=otlp_service.ExportMetricsServiceRequest.SerializeToString,
            response_deserializer=otlp_service.ExportMetricsServiceResponse.FromString,
        )
        response: otlp_service.ExportMetricsServiceResponse = await export(
            request, metadata=(("authorization", f"Bearer {key}"),)
        )
        return response


def _series(log: Log, metric: str) -> list[metrics_pb2.SeriesSamples]:
    return [s for _, s, _ in log.series() if s.metric == metric]


async def test_cumulative_counter_over_otlp_http_counts_exactly_even_when_an_export_is_resent(served: Served) -> None:
    reader = InMemoryMetricReader()
    counter = _provider(reader).get_meter("shop", "1.2").create_counter("orders")
    counter.add(5, {"method": "card"})
    await _export_http(served, reader, times=2)
    counter.add(3, {"method": "card"})
    counter.add(2, {"method": "cash"})
    await _export_http(served, reader, times=2)
    totals: dict[str, float] = {}
    for s in _series(served.log, "orders"):
        labels = {lb.name: lb.value for lb in s.labels}
        assert s.kind == metrics_pb2.METRIC_KIND_COUNTER
        assert labels["job"] == "checkout" and labels["instance"] == "pod-1" and labels["deployment"] == "blue"
        assert labels["otel_scope_name"] == "shop" and labels["otel_scope_version"] == "1.2"
        assert not any(name.startswith("telemetry") for name in labels)
        totals[labels["method"]] = totals.get(labels["method"], 0.0) + sum(s.values)
    assert totals == {"card": 8.0, "cash": 2.0}


async def test_delta_sums_gauges_and_up_down_counters_over_grpc(served: Served) -> None:
    reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
    meter = _provider(reader).get_meter("m")
    requests = meter.create_counter("requests")
    queue = meter.create_up_down_counter("queue_depth")
    temperature = meter.create_gauge("temperature")
    requests.add(4)
    queue.add(10)
    queue.add(-3)
    temperature.set(21.5, {"room": "a"})
    response = await _export_grpc(served, reader)
    assert not response.HasField("partial_success") or response.partial_success.rejected_data_points == 0
    requests.add(6)
    queue.add(-2)
    await _export_grpc(served, reader)
    assert sum(sum(s.values) for s in _series(served.log, "requests")) == 10.0
    depth = _series(served.log, "queue_depth")
    assert {s.kind for s in depth} == {metrics_pb2.METRIC_KIND_GAUGE}
    assert sorted(v for s in depth for v in s.values) == [5.0, 7.0]
    [temp, *_] = _series(served.log, "temperature")
    assert (temp.kind, list(temp.values)) == (metrics_pb2.METRIC_KIND_GAUGE, [21.5])


async def _histogram_counts(served: Served, reader: InMemoryMetricReader, metric: str) -> tuple[int, list[float]]:
    """(observations stored, the stored sketch's values repeated by count)."""
    del reader
    values: list[float] = []
    for s in _series(served.log, metric):
        assert s.kind == metrics_pb2.METRIC_KIND_TIMER
        keys = np.array(s.sketch_keys)
        counts = np.array(s.sketch_counts, dtype=np.int64)
        values.extend(np.repeat(ddsketch_value(keys), counts).tolist())
    return len(values), sorted(values)


@pytest.mark.parametrize("temporality", [AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE])
async def test_explicit_histograms_become_timer_sketches(served: Served, temporality: AggregationTemporality) -> None:
    reader = InMemoryMetricReader(preferred_temporality={Histogram: temporality})
    latency = _provider(reader).get_meter("m").create_histogram("latency_ms")
    first = [3.0, 7.0, 7.5, 40.0, 120.0]
    for v in first:
        latency.record(v)
    await _export_grpc(served, reader)
    second = [8.0, 9.0, 2000.0]
    for v in second:
        latency.record(v)
    request = _collect(reader)
    await _export_grpc(served, request)
    await _export_grpc(served, request)  # a resend of the same export counts once
    count, values = await _histogram_counts(served, reader, "latency_ms")
    assert count == len(first) + len(second)
    # each stored value stands for its bucket (default bounds 0,5,10,25,50,75,100,250,...)
    assert values[0] < 5 and 5 < values[3] <= 10 and values[-1] > 1000
    sums = [v for s in _series(served.log, "latency_ms") for v in s.sketch_sums]
    assert math.isclose(sum(sums), sum(first) + sum(second))


async def test_exponential_histograms_keep_quantiles_within_bucket_width(served: Served) -> None:
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    view = View(instrument_name="size_bytes", aggregation=ExponentialBucketHistogramAggregation(max_size=160))
    sizes = _provider(reader, [view]).get_meter("m").create_histogram("size_bytes")
    observed = [float(v) for v in range(1, 2001, 7)]
    for v in observed:
        sizes.record(v)
    await _export_grpc(served, reader)
    count, values = await _histogram_counts(served, reader, "size_bytes")
    assert count == len(observed)
    for q in (0.5, 0.9, 0.99):
        want = float(np.quantile(observed, q, method="lower"))
        got = values[int(q * (count - 1))]
        assert abs(got - want) / want < 0.05, (q, got, want)


async def test_points_argus_cannot_store_come_back_as_partial_success(served: Served) -> None:
    reader = InMemoryMetricReader()
    meter = _provider(reader).get_meter("m")
    meter.create_gauge("ok_gauge").set(1.0)
    meter.create_gauge("x" * 250).set(2.0)  # name longer than the limit
    request = _collect(reader)
    # The SDK drops NaN measurements itself; other senders do not.
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    point = metrics.add(name="nan_gauge").gauge.data_points.add(as_double=float("nan"))
    point.time_unix_nano = time.time_ns()
    response = await _export_grpc(served, request)
    assert response.partial_success.rejected_data_points == 2
    assert "NaN" in response.partial_success.error_message and "more than 200" in response.partial_success.error_message
    assert [s.metric for _, s, _ in served.log.series()] == ["ok_gauge"]


async def test_export_without_a_known_key_is_unauthenticated(served: Served) -> None:
    reader = InMemoryMetricReader()
    _provider(reader).get_meter("m").create_counter("c").add(1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _export_grpc(served, reader, key="nope")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert served.log.series() == []


async def test_hostile_exponential_histograms_and_bodies_are_answered_not_crashed(served: Served) -> None:
    request = otlp_service.ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="hostile")
    histogram = metric.exponential_histogram
    histogram.aggregation_temporality = otlp_metrics.AGGREGATION_TEMPORALITY_DELTA
    for scale, offset in ((-20, 2**31 - 1), (20, -(2**31)), (-10, 0)):
        point = histogram.data_points.add(scale=scale, count=3, time_unix_nano=time.time_ns())
        point.positive.offset = offset
        point.positive.bucket_counts.extend([1, 2])
    response = await _export_grpc(served, request)
    stored = sum(sum(s.sketch_counts) for s in _series(served.log, "hostile"))
    assert stored + response.partial_success.rejected_data_points >= 1
    async with grpc.aio.insecure_channel(served.grpc_target) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await export(b"\xff\xff\xff", metadata=(("authorization", f"Bearer {KEY}"),))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_sdks_own_grpc_exporter_writes_through_export(served: Served) -> None:
    reader = InMemoryMetricReader()
    counter = _provider(reader).get_meter("m").create_counter("grpc_orders")
    counter.add(7)
    exporter = GrpcOtlpExporter(
        endpoint=served.grpc_target, insecure=True, headers=(("authorization", f"Bearer {KEY}"),)
    )
    data = reader.get_metrics_data()
    assert data is not None
    try:
        for _ in range(2):  # a resend of the same export
            assert await asyncio.to_thread(exporter.export, data) is MetricExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert sum(sum(s.values) for s in _series(served.log, "grpc_orders")) == 7.0


async def test_a_non_monotonic_delta_sum_is_the_signed_change_as_a_gauge(served: Served) -> None:
    reader = InMemoryMetricReader(preferred_temporality={UpDownCounter: AggregationTemporality.DELTA})
    queue = _provider(reader).get_meter("m").create_up_down_counter("queue_change")
    queue.add(-4)
    response = await _export_grpc(served, reader)
    assert response.partial_success.rejected_data_points == 0
    [series] = _series(served.log, "queue_change")
    assert (series.kind, list(series.values)) == (metrics_pb2.METRIC_KIND_GAUGE, [-4.0])
