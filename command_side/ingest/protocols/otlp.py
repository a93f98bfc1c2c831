"""OTLP metrics: `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` (gRPC, on the
ingest port) and `POST /v1/metrics` (OTLP/HTTP protobuf, on the ingest HTTP port).

Mapping (docs/ingest-protocols.md):
- Metric name as sent (Argus names may hold dots). Labels, later ones winning on a clash:
  resource attributes (except `telemetry.*`; `service.name`, prefixed by
  `service.namespace/` when set, becomes `job`, `service.instance.id` becomes `instance`),
  the scope as `otel_scope_name` / `otel_scope_version` and its attributes as
  `otel_scope_<key>`, then the point's attributes. Characters a label name cannot hold
  become `_`; a `region` label is the Argus region (foreign.py).
- Gauge -> gauge. Sum: monotonic delta -> counter; monotonic cumulative -> counter through
  the cumulative converter (a point whose start time is within the converter's TTL counts
  whole the first time); non-monotonic -> gauge (cumulative: the level; delta: the signed
  change over the point's interval, as Argus counters cannot go down).
- Histogram and exponential histogram -> timer sketches (core/sketches.py): each bucket's
  count goes to the DDSketch key of a value standing for the bucket (explicit buckets: the
  middle of the bucket, the recorded min/max for the open-ended ones; exponential: the
  bucket's geometric middle; zero bucket: 0), so quantiles are within the bucket widths.
  Count, sum, min and max are kept exactly when sent. Cumulative histograms are turned
  into deltas per sketch key by the cumulative converter.
- Summary -> `<name>{quantile=q}` gauges and `<name>_sum`, `<name>_count` counters.
- Points flagged "no recorded value" are skipped. A point Argus cannot store (a NaN, a
  validation failure) is counted in the answer's partial_success.rejected_data_points.

Errors: an unreadable body is INVALID_ARGUMENT / HTTP 400 (not retried by exporters); the
event log unavailable is UNAVAILABLE / 503 (retried; the retry counts once).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence

import grpc
import numpy as np
from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as otlp_service
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2 as otlp

from command_side.ingest.protocols.foreign import ForeignIngest, ForeignSeries, SeriesKey, Temporality, series_key
from command_side.ingest.protocols.http import Handler, api_key_of
from contracts.argus.metrics.v1 import metrics_pb2
from core.auth import Authenticator
from core.cumulative import Conversion
from core.errors import ArgusError, InvalidArgument
from core.protowire import varint
from core.sketches import ddsketch_keys, ddsketch_value
from core.tenancy import tenant_from_metadata
from core.transport_errors import grpc_code, http_status, is_server_fault, public_message

log = logging.getLogger(__name__)

SERVICE_NAME = "opentelemetry.proto.collector.metrics.v1.MetricsService"
SOURCE = "otlp"
PROTOBUF = "application/x-protobuf"
_BAD_LABEL = re.compile(r"[^a-zA-Z0-9_]")
DELTA = otlp.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = otlp.AGGREGATION_TEMPORALITY_CUMULATIVE
NO_VALUE = otlp.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK


def label_name(key: str) -> str:
    name = _BAD_LABEL.sub("_", key)
    return name if name[:1].isalpha() or name[:1] == "_" else "_" + name


def _text(value: common_pb2.AnyValue) -> str:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which == "array_value":
        return "[" + ",".join(_text(v) for v in value.array_value.values) + "]"
    if which == "kvlist_value":
        return "{" + ",".join(f"{kv.key}:{_text(kv.value)}" for kv in value.kvlist_value.values) + "}"
    return ""


def _attributes(pairs: Iterable[common_pb2.KeyValue], prefix: str = "") -> dict[str, str]:
    return {label_name(prefix + kv.key): _text(kv.value) for kv in pairs}


def resource_labels(attributes: Iterable[common_pb2.KeyValue]) -> dict[str, str]:
    raw = {kv.key: _text(kv.value) for kv in attributes}
    out: dict[str, str] = {}
    for key, value in raw.items():
        if key.startswith("telemetry.") or key in ("service.name", "service.namespace", "service.instance.id"):
            continue
        out[label_name(key)] = value
    service = raw.get("service.name", "")
    if service:
        namespace = raw.get("service.namespace", "")
        out["job"] = f"{namespace}/{service}" if namespace else service
    if raw.get("service.instance.id"):
        out["instance"] = raw["service.instance.id"]
    return out


def _ms(nanos: int) -> int:
    return nanos // 1_000_000


class _Request:
    """One Export request turned into foreign series (histograms kept apart: they need the
    converter per sketch key)."""

    def __init__(self) -> None:
        self.series: list[ForeignSeries] = []
        self.histograms: list[tuple[ForeignSeries, list[_HistogramPoint], bool]] = []
        self.skipped = 0

    def add(self, metric: str, labels: dict[str, str], temporality: Temporality) -> ForeignSeries:
        series = ForeignSeries(metric=metric, labels={k: v for k, v in labels.items() if v}, temporality=temporality)
        self.series.append(series)
        return series


class _HistogramPoint:
    __slots__ = ("buckets", "count", "maximum", "minimum", "start_ms", "total", "ts_ms")

    def __init__(
        self,
        *,
        ts_ms: int,
        start_ms: int,
        count: int,
        total: float | None,
        minimum: float | None,
        maximum: float | None,
        buckets: dict[int, int],
    ) -> None:
        self.ts_ms, self.start_ms, self.count, self.total = ts_ms, start_ms, count, total
        self.minimum, self.maximum, self.buckets = minimum, maximum, buckets


def _explicit_buckets(point: otlp.HistogramDataPoint) -> dict[int, int]:
    bounds = list(point.explicit_bounds)
    counts = list(point.bucket_counts)
    keyed: dict[int, int] = {}
    for i, count in enumerate(counts):
        if count == 0:
            continue
        lower = bounds[i - 1] if 0 < i <= len(bounds) else None
        upper = bounds[i] if i < len(bounds) else None
        if lower is not None and upper is not None:
            middle = (lower + upper) / 2
        elif upper is not None:  # (-inf, b0]
            middle = point.min if point.HasField("min") else upper
        elif lower is not None:  # (b_last, +inf)
            middle = point.max if point.HasField("max") else lower
        else:
            middle = point.sum / point.count if point.HasField("sum") and point.count else 0.0
        key = int(ddsketch_keys([middle])[0])
        keyed[key] = keyed.get(key, 0) + count
    return keyed


def _exponential_buckets(point: otlp.ExponentialHistogramDataPoint) -> dict[int, int]:
    # Bucket i covers (2**(i * 2**-scale), 2**((i + 1) * 2**-scale)]: computed in the
    # exponent, clamped, so hostile scales and offsets cannot overflow.
    width = 2.0 ** max(min(-point.scale, 1000), -1000)
    keyed: dict[int, int] = {}
    if point.zero_count:
        keyed[0] = int(point.zero_count)
    for sign, side in ((1.0, point.positive), (-1.0, point.negative)):
        for i, count in enumerate(side.bucket_counts):
            if count == 0:
                continue
            exponent = (side.offset + i + 0.5) * width
            middle = sign * 2.0 ** max(min(exponent, 1000.0), -1000.0)
            key = int(ddsketch_keys([middle])[0])
            keyed[key] = keyed.get(key, 0) + int(count)
    return keyed


def parse(request: otlp_service.ExportMetricsServiceRequest) -> _Request:
    out = _Request()
    for resource_metrics in request.resource_metrics:
        base = resource_labels(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = dict(base)
            if scope_metrics.scope.name:
                scope["otel_scope_name"] = scope_metrics.scope.name
            if scope_metrics.scope.version:
                scope["otel_scope_version"] = scope_metrics.scope.version
            scope.update(_attributes(scope_metrics.scope.attributes, "otel_scope_"))
            for metric in scope_metrics.metrics:
                _metric(out, metric, scope)
    return out


def _number(point: otlp.NumberDataPoint) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double


def _metric(out: _Request, metric: otlp.Metric, scope: dict[str, str]) -> None:
    which = metric.WhichOneof("data")
    name = metric.name
    if which == "gauge" or which == "sum":
        data = metric.gauge if which == "gauge" else metric.sum
        if which == "gauge":
            temporality = Temporality.GAUGE
        elif metric.sum.aggregation_temporality == DELTA and metric.sum.is_monotonic:
            temporality = Temporality.DELTA
        elif metric.sum.is_monotonic:
            temporality = Temporality.CUMULATIVE
        else:
            temporality = Temporality.GAUGE
        by_labels: dict[tuple[tuple[str, str], ...], ForeignSeries] = {}
        for point in data.data_points:
            if point.flags & NO_VALUE:
                out.skipped += 1
                continue
            labels = {**scope, **_attributes(point.attributes)}
            key = tuple(sorted(labels.items()))
            series = by_labels.get(key)
            if series is None:
                series = by_labels[key] = out.add(name, labels, temporality)
            series.timestamps_ms.append(_ms(point.time_unix_nano))
            series.values.append(_number(point))
            series.start_ms.append(_ms(point.start_time_unix_nano))
    elif which in ("histogram", "exponential_histogram"):
        hist = metric.histogram if which == "histogram" else metric.exponential_histogram
        cumulative = hist.aggregation_temporality == CUMULATIVE
        groups: dict[tuple[tuple[str, str], ...], tuple[ForeignSeries, list[_HistogramPoint]]] = {}
        for hp in hist.data_points:
            if hp.flags & NO_VALUE:
                out.skipped += 1
                continue
            labels = {**scope, **_attributes(hp.attributes)}
            key = tuple(sorted(labels.items()))
            if key not in groups:
                series = ForeignSeries(metric=name, labels={k: v for k, v in labels.items() if v},
                                       temporality=Temporality.GAUGE)  # fmt: skip
                groups[key] = (series, [])
            buckets = _explicit_buckets(hp) if which == "histogram" else _exponential_buckets(hp)  # type: ignore[arg-type]
            groups[key][1].append(
                _HistogramPoint(
                    ts_ms=_ms(hp.time_unix_nano),
                    start_ms=_ms(hp.start_time_unix_nano),
                    count=int(hp.count),
                    total=hp.sum if hp.HasField("sum") else None,
                    minimum=hp.min if hp.HasField("min") else None,
                    maximum=hp.max if hp.HasField("max") else None,
                    buckets=buckets,
                )
            )
        for series, points in groups.values():
            out.histograms.append((series, points, cumulative))
    elif which == "summary":
        for sp in metric.summary.data_points:
            if sp.flags & NO_VALUE:
                out.skipped += 1
                continue
            labels = {**scope, **_attributes(sp.attributes)}
            ts_ms, start_ms = _ms(sp.time_unix_nano), _ms(sp.start_time_unix_nano)
            for part, value in ((f"{name}_count", float(sp.count)), (f"{name}_sum", sp.sum)):
                series = out.add(part, labels, Temporality.CUMULATIVE)
                series.timestamps_ms.append(ts_ms)
                series.values.append(value)
                series.start_ms.append(start_ms)
            for q in sp.quantile_values:
                series = out.add(name, {**labels, "quantile": repr(q.quantile)}, Temporality.GAUGE)
                series.timestamps_ms.append(ts_ms)
                series.values.append(q.value)
    else:
        raise InvalidArgument(f"metric {name[:100]!r} has no data")


def _sketch_series(
    series: ForeignSeries,
    points: Sequence[_HistogramPoint],
    cumulative: bool,
    conversion: Conversion[SeriesKey] | None,
    tenant: str,
) -> metrics_pb2.SeriesSamples | None:
    """The histogram points as timer sketches (cumulative ones as deltas per sketch key)."""
    region = series.labels.get("region", "")
    labels = tuple(sorted((k, v) for k, v in series.labels.items() if k != "region"))
    out = metrics_pb2.SeriesSamples(metric=series.metric, kind=metrics_pb2.METRIC_KIND_TIMER, region=region)
    for name, value in labels:
        out.labels.add(name=name, value=value)
    for point in sorted(points, key=lambda p: p.ts_ms):
        buckets = point.buckets
        total = point.total
        if cumulative:
            assert conversion is not None
            count_key = series_key(tenant, series.metric + "\x00count", region, labels)
            seen = conversion.owner.state(count_key) is not None or count_key in conversion.pending
            count_delta = conversion.delta(count_key, point.ts_ms, float(point.count), start_ms=point.start_ms)
            sum_key = series_key(tenant, series.metric + "\x00sum", region, labels)
            sum_delta = conversion.delta(sum_key, point.ts_ms, total or 0.0, start_ms=point.start_ms)
            if count_delta is None:
                for key, count in buckets.items():  # baselines of every bucket
                    conversion.delta(
                        series_key(tenant, f"{series.metric}\x00{key}", region, labels), point.ts_ms, float(count)
                    )
                continue
            delta_buckets: dict[int, int] = {}
            for key, count in buckets.items():
                bucket_key = series_key(tenant, f"{series.metric}\x00{key}", region, labels)
                delta = conversion.delta(bucket_key, point.ts_ms, float(count), start_ms=point.start_ms)
                if delta is None and seen:
                    delta = float(count)  # a bucket first filled since the last point
                if delta:
                    delta_buckets[key] = int(delta)
            buckets = delta_buckets
            total = sum_delta
            minimum = maximum = None  # min/max of a cumulative run are not the interval's
        else:
            minimum, maximum = point.minimum, point.maximum
        if not buckets:
            continue
        keys = sorted(buckets)
        first, last = keys[0], keys[-1]
        low = float(ddsketch_value([first])[0])
        high = float(ddsketch_value([last])[0])
        if minimum is not None and int(ddsketch_keys([minimum])[0]) == first:
            low = minimum
        if maximum is not None and int(ddsketch_keys([maximum])[0]) == last:
            high = maximum
        count = sum(buckets.values())
        values = ddsketch_value(np.array(keys))
        estimated = float(np.dot(values, np.array([buckets[k] for k in keys], dtype=np.float64)))
        out.timestamps_ms.append(point.ts_ms)
        out.sketch_sums.append(total if total is not None and math.isfinite(total) else estimated)
        out.sketch_mins.append(low)
        out.sketch_maxs.append(high)
        out.sketch_lasts.append(high)
        out.sketch_sizes.append(len(keys))
        out.sketch_keys.extend(keys)
        out.sketch_counts.extend(buckets[k] for k in keys)
        del count
    return out if out.timestamps_ms else None


class OtlpIngest:
    """Export = parse -> convert -> accept (one batch per request)."""

    def __init__(self, foreign: ForeignIngest) -> None:
        self._foreign = foreign

    async def export(self, tenant: str, raw: bytes) -> otlp_service.ExportMetricsServiceResponse:
        try:
            request = otlp_service.ExportMetricsServiceRequest.FromString(raw)
        except DecodeError as exc:
            raise InvalidArgument(f"malformed protobuf ExportMetricsServiceRequest: {exc}") from exc
        parsed = parse(request)

        def sketches(conversion: Conversion[SeriesKey]) -> list[metrics_pb2.SeriesSamples]:
            built = (
                _sketch_series(s, points, cumulative, conversion, tenant) for s, points, cumulative in parsed.histograms
            )
            return [one for one in built if one is not None]

        outcome = await self._foreign.accept(
            tenant, source=SOURCE, request_id=raw, series=parsed.series, extra=sketches
        )
        response = otlp_service.ExportMetricsServiceResponse()
        rejected = outcome.result.rejected_samples + outcome.nan
        if rejected:
            response.partial_success.rejected_data_points = rejected
            messages = [r.message for r in list(outcome.result.rejections)[:5] if r.message]
            if outcome.nan:
                messages.append(f"{outcome.nan} NaN values not stored")
            response.partial_success.error_message = "; ".join(messages)[:2000]
        return response


class OtlpMetricsService:
    """The gRPC MetricsService on the ingest port."""

    def __init__(self, foreign: ForeignIngest, authenticator: Authenticator, clock_ms: Callable[[], int]) -> None:
        self._ingest = OtlpIngest(foreign)
        self._auth = authenticator

    async def export(self, raw: bytes, context: grpc.aio.ServicerContext) -> otlp_service.ExportMetricsServiceResponse:
        try:
            tenant = tenant_from_metadata(self._auth, context.invocation_metadata())
            return await self._ingest.export(tenant, raw)
        except ArgusError as exc:
            if is_server_fault(exc):
                log.warning("otlp export failed: %s", exc)
            await context.abort(grpc_code(exc), public_message(exc))
            raise


def add_to_server(server: grpc.aio.Server, service: OtlpMetricsService) -> None:
    handlers = {
        "Export": grpc.unary_unary_rpc_method_handler(
            service.export,
            request_deserializer=None,
            response_serializer=otlp_service.ExportMetricsServiceResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


def _status_body(code: int, message: str) -> bytes:
    """google.rpc.Status{code = 1, message = 2}, what OTLP/HTTP answers an error with."""
    text = message.encode()[:4000]
    return b"\x08" + varint(code) + b"\x12" + varint(len(text)) + text


def otlp_http_handler(foreign: ForeignIngest, authenticator: Authenticator, clock_ms: Callable[[], int]) -> Handler:
    ingest = OtlpIngest(foreign)

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            if request.content_type != PROTOBUF:
                raise InvalidArgument(f"Content-Type {request.content_type!r}: only {PROTOBUF} is served")
            tenant = authenticator.tenant_for(api_key_of(request))
            raw = await request.read()
            response = await ingest.export(tenant, raw)
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, body=_status_body(8, "body too large"), content_type=PROTOBUF)
        except ArgusError as exc:
            if is_server_fault(exc):
                log.warning("otlp/http export failed: %s", exc)
            status = http_status(exc)
            body = _status_body(grpc_code(exc).value[0], public_message(exc))
            return web.Response(status=status, body=body, content_type=PROTOBUF)
        return web.Response(status=200, body=response.SerializeToString(), content_type=PROTOBUF)

    return handle
