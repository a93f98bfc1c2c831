"""Prometheus remote write 1.0: a snappy block-compressed `WriteRequest` -> foreign series.

Mapping (docs/ingest-protocols.md):
- `__name__` is the metric name; every other label stays a label (`job`, `instance` too);
  a `region` label is the Argus region (foreign.py's identity rule).
- Counters (cumulative, converted to deltas): the metric family's metadata says `counter`
  (or `histogram`/`summary` for their `_bucket`, `_sum`, `_count` samples), or, when no
  metadata was received for the family, the name ends in `_total`, `_bucket`, `_sum` or
  `_count`. Everything else is a gauge. Metadata arrives in its own requests; the last
  type seen per (tenant, family) is remembered (bounded).
- NaN samples (staleness markers) are skipped. Exemplars and native histograms are not read.

Speed (docs/decisions/0052-columnar-remote-write.md): the body is parsed with a view of the
message whose labels stay raw bytes, so a series' labels as sent are its cache key: what a
series is (name, labels, region, kind, converter key) is worked out once per distinct series
and kept (bounded) across requests; samples go into numpy columns.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import cramjam
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from command_side.ingest.protocols.foreign import (
    ForeignColumns,
    ForeignSeries,
    SeriesShape,
    Temporality,
    shape_of,
)
from contracts.argus.ingest.v1 import prometheus_remote_pb2 as prw
from core.errors import InvalidArgument

NAME_LABEL = "__name__"
COUNTER_SUFFIXES = ("_total", "_bucket", "_sum", "_count")
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")
MAX_REMEMBERED_FAMILIES = 100_000
MAX_REMEMBERED_SERIES = 100_000


def _raw_view() -> type[Message]:
    """`PrometheusWriteRequest` read with each label left as its raw bytes (same wire format:
    a label is a length-delimited field either way)."""
    f = descriptor_pb2.FieldDescriptorProto
    package = "argus.ingest.v1.rawview"
    file = descriptor_pb2.FileDescriptorProto(
        name="argus/ingest/v1/prometheus_remote_rawview.proto",
        package=package,
        syntax="proto3",
        dependency=[prw.DESCRIPTOR.name],
    )
    series = file.message_type.add(name="RawTimeSeries")
    series.field.add(name="labels", number=1, type=f.TYPE_BYTES, label=f.LABEL_REPEATED)
    series.field.add(
        name="samples",
        number=2,
        type=f.TYPE_MESSAGE,
        label=f.LABEL_REPEATED,
        type_name=".argus.ingest.v1.PrometheusSample",
    )
    request = file.message_type.add(name="RawWriteRequest")
    request.field.add(
        name="timeseries", number=1, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED, type_name=f".{package}.RawTimeSeries"
    )
    request.field.add(
        name="metadata",
        number=3,
        type=f.TYPE_MESSAGE,
        label=f.LABEL_REPEATED,
        type_name=".argus.ingest.v1.PrometheusMetricMetadata",
    )
    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName(f"{package}.RawWriteRequest")
    except KeyError:
        pool.Add(file)
        descriptor = pool.FindMessageTypeByName(f"{package}.RawWriteRequest")
    return message_factory.GetMessageClass(descriptor)


RawWriteRequest = _raw_view()

MetricType = prw.PrometheusMetricMetadata.MetricType


def decode(body: bytes, *, max_bytes: int) -> tuple[Any, bytes]:
    """The request (a RawWriteRequest) and its decompressed bytes; InvalidArgument when it
    cannot be read."""
    try:
        length = cramjam.snappy.decompress_raw_len(body)
    except cramjam.DecompressionError as exc:
        raise InvalidArgument(f"remote write body is not snappy block-compressed: {exc}") from exc
    if length > max_bytes:
        raise InvalidArgument(
            f"remote write body decompresses to {length} bytes, more than {max_bytes} "
            "(setting limits.max_message_bytes); lower max_samples_per_send"
        )
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise InvalidArgument(f"remote write body is not snappy block-compressed: {exc}") from exc
    try:
        return RawWriteRequest.FromString(raw), raw
    except DecodeError as exc:
        raise InvalidArgument(f"remote write body is not a protobuf WriteRequest: {exc}") from exc


class FamilyTypes:
    """The last metadata type seen per (tenant, metric family), least recently used forgotten."""

    def __init__(self, max_families: int = MAX_REMEMBERED_FAMILIES) -> None:
        self._types: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._max = max_families

    def learn(self, tenant: str, request: Any) -> bool:
        """Remember the request's metadata; True when what some name maps to may have changed."""
        changed = False
        for meta in request.metadata:
            if meta.type == MetricType.METRIC_TYPE_UNSPECIFIED:
                continue
            key = (tenant, meta.metric_family_name)
            changed = changed or self._types.get(key) != meta.type
            self._types[key] = meta.type
            self._types.move_to_end(key)
            while len(self._types) > self._max:
                self._types.popitem(last=False)
                changed = True
        return changed

    def temporality(self, tenant: str, name: str) -> Temporality:
        family_type = self._types.get((tenant, name))
        if family_type is None:
            for part in (*_HISTOGRAM_PARTS, "_total"):
                if name.endswith(part):
                    family_type = self._types.get((tenant, name[: -len(part)]))
                    if family_type is not None:
                        break
        if family_type is None:
            return Temporality.CUMULATIVE if name.endswith(COUNTER_SUFFIXES) else Temporality.GAUGE
        if family_type == MetricType.METRIC_TYPE_COUNTER:
            return Temporality.CUMULATIVE
        if family_type in (MetricType.METRIC_TYPE_HISTOGRAM, MetricType.METRIC_TYPE_SUMMARY):
            return Temporality.CUMULATIVE if name.endswith(_HISTOGRAM_PARTS) else Temporality.GAUGE
        return Temporality.GAUGE


class SeriesShapes:
    """Per tenant, the shape of each series by its labels as sent (raw bytes), bounded: past
    `max_series` over all tenants, the inserting tenant's oldest entries go first. A tenant's
    entries are dropped when its metadata changes what a name is."""

    def __init__(self, max_series: int = MAX_REMEMBERED_SERIES) -> None:
        self._by_tenant: dict[str, dict[bytes, SeriesShape]] = {}
        self._size = 0
        self._max = max_series

    def __len__(self) -> int:
        return self._size

    def of_tenant(self, tenant: str) -> dict[bytes, SeriesShape]:
        return self._by_tenant.setdefault(tenant, {})

    def forget(self, tenant: str) -> None:
        self._size -= len(self._by_tenant.pop(tenant, {}))

    def put(self, tenant: str, raw: bytes, shape: SeriesShape) -> None:
        shapes = self.of_tenant(tenant)
        if raw not in shapes:
            self._size += 1
        shapes[raw] = shape
        while self._size > self._max:
            victim = shapes if len(shapes) > 1 else max(self._by_tenant.values(), key=len)
            del victim[next(iter(victim))]
            self._size -= 1


def to_columns(tenant: str, request: Any, types: FamilyTypes, shapes: SeriesShapes) -> ForeignColumns:
    """The request's series in columns; InvalidArgument names the first series without a name."""
    if request.metadata and types.learn(tenant, request):
        shapes.forget(tenant)
    known = shapes.of_tenant(tenant)
    timeseries = request.timeseries
    raws = [b"".join(ts.labels) for ts in timeseries]
    found = list(map(known.get, raws))
    for index, shape in enumerate(found):
        if shape is None:
            found[index] = shape = _shape(tenant, index, timeseries[index].labels, types)
            shapes.put(tenant, raws[index], shape)
    samples = [ts.samples for ts in timeseries]
    counts = np.fromiter(map(len, samples), dtype=np.int64, count=len(samples))
    total = int(counts.sum())
    return ForeignColumns(
        shapes=found,  # type: ignore[arg-type]  # every None was replaced above
        counts=counts,
        timestamps_ms=np.fromiter((p.timestamp for run in samples for p in run), dtype=np.int64, count=total),
        values=np.fromiter((p.value for run in samples for p in run), dtype=np.float64, count=total),
    )


def _shape(tenant: str, index: int, raw_labels: Any, types: FamilyTypes) -> SeriesShape:
    labels: dict[str, str] = {}
    for raw in raw_labels:
        try:
            label = prw.PrometheusLabel.FromString(raw)
        except DecodeError as exc:
            raise InvalidArgument(f"remote write series {index} has a label that cannot be read: {exc}") from exc
        if label.value:  # empty = absent
            labels[label.name] = label.value
    name = labels.pop(NAME_LABEL, "")
    if not name:
        raise InvalidArgument(f"remote write series {index} has no {NAME_LABEL} label")
    return shape_of(tenant, name, labels, types.temporality(tenant, name))


def to_series(tenant: str, request: prw.PrometheusWriteRequest, types: FamilyTypes) -> list[ForeignSeries]:
    """The request's series one by one (the reference `to_columns` is tested against);
    InvalidArgument names the first series without a name."""
    types.learn(tenant, request)
    out: list[ForeignSeries] = []
    for index, ts in enumerate(request.timeseries):
        labels = {label.name: label.value for label in ts.labels if label.value}  # empty = absent
        name = labels.pop(NAME_LABEL, "")
        if not name:
            raise InvalidArgument(f"remote write series {index} has no {NAME_LABEL} label")
        series = ForeignSeries(metric=name, labels=labels, temporality=types.temporality(tenant, name))
        for sample in ts.samples:
            series.timestamps_ms.append(sample.timestamp)
            series.values.append(sample.value)
        out.append(series)
    return out
