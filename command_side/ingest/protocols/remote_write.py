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
"""

from __future__ import annotations

from collections import OrderedDict

import cramjam
from google.protobuf.message import DecodeError

from command_side.ingest.protocols.foreign import ForeignSeries, Temporality
from contracts.argus.ingest.v1 import prometheus_remote_pb2 as prw
from core.errors import InvalidArgument

NAME_LABEL = "__name__"
COUNTER_SUFFIXES = ("_total", "_bucket", "_sum", "_count")
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")
MAX_REMEMBERED_FAMILIES = 100_000

MetricType = prw.PrometheusMetricMetadata.MetricType


def decode(body: bytes, *, max_bytes: int) -> tuple[prw.PrometheusWriteRequest, bytes]:
    """The request and its decompressed bytes; InvalidArgument when it cannot be read."""
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
        return prw.PrometheusWriteRequest.FromString(raw), raw
    except DecodeError as exc:
        raise InvalidArgument(f"remote write body is not a protobuf WriteRequest: {exc}") from exc


class FamilyTypes:
    """The last metadata type seen per (tenant, metric family), least recently used forgotten."""

    def __init__(self, max_families: int = MAX_REMEMBERED_FAMILIES) -> None:
        self._types: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._max = max_families

    def learn(self, tenant: str, request: prw.PrometheusWriteRequest) -> None:
        for meta in request.metadata:
            if meta.type == MetricType.METRIC_TYPE_UNSPECIFIED:
                continue
            key = (tenant, meta.metric_family_name)
            self._types[key] = meta.type
            self._types.move_to_end(key)
            while len(self._types) > self._max:
                self._types.popitem(last=False)

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


def to_series(tenant: str, request: prw.PrometheusWriteRequest, types: FamilyTypes) -> list[ForeignSeries]:
    """The request's series; InvalidArgument names the first series without a name."""
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
