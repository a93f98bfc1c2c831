"""Remote write in columns (remote_write.to_columns, foreign._append_series): the same series
and samples as the one-by-one reference decode, a bounded per-tenant shape cache that
follows metadata, hostile label bytes refused, and batches written as bytes that equal the
messages built field by field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from command_side.ingest.protocols import remote_write
from command_side.ingest.protocols.foreign import SeriesShape, Temporality, _append_series, series_key, shape_of
from contracts.argus.ingest.v1 import prometheus_remote_pb2 as prw
from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import InvalidArgument

names = st.sampled_from(["up", "http_requests_total", "lat_bucket", "errors", "temp_sum"])
label_sets = st.dictionaries(
    st.sampled_from(["job", "instance", "region", "le", "a"]),
    st.sampled_from(["", "x", "eu-west-1", "é 1"]),
    max_size=4,
)
samples = st.lists(st.tuples(st.integers(-(2**62), 2**62), st.floats(allow_nan=True, allow_infinity=True)), max_size=4)


def _request(series: list[tuple[str, dict[str, str], list[tuple[int, float]]]], counter: str | None) -> bytes:
    request = prw.PrometheusWriteRequest()
    for name, labels, points in series:
        ts = request.timeseries.add()
        for key, value in sorted({"__name__": name, **labels}.items()):
            ts.labels.add(name=key, value=value)
        for t, v in points:
            ts.samples.add(timestamp=t, value=v)
    if counter:
        request.metadata.add(metric_family_name=counter, type=prw.PrometheusMetricMetadata.METRIC_TYPE_COUNTER)
    return request.SerializeToString()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(names, label_sets, samples), max_size=6), st.sampled_from([None, "errors", "up"]))
def test_columns_hold_what_the_reference_decode_reads(
    series: list[tuple[str, dict[str, str], list[tuple[int, float]]]], counter: str | None
) -> None:
    raw = _request(series, counter)
    shapes = remote_write.SeriesShapes()
    types = remote_write.FamilyTypes()
    for _ in range(2):  # the second time from the cache
        columns = remote_write.to_columns("t", remote_write.RawWriteRequest.FromString(raw), types, shapes)
        reference = remote_write.to_series("t", prw.PrometheusWriteRequest.FromString(raw), remote_write.FamilyTypes())
        expected = [shape_of("t", s.metric, s.labels, s.temporality) for s in reference]
        assert columns.shapes == expected
        assert columns.counts.tolist() == [len(s.timestamps_ms) for s in reference]
        assert columns.timestamps_ms.tolist() == [t for s in reference for t in s.timestamps_ms]
        np.testing.assert_array_equal(columns.values, [v for s in reference for v in s.values])


def test_the_shape_cache_is_bounded_per_tenant_and_follows_metadata() -> None:
    shapes = remote_write.SeriesShapes(max_series=3)
    types = remote_write.FamilyTypes()
    for host in range(5):
        raw = _request([("errors", {"instance": str(host)}, [(1, 1.0)])], None)
        columns = remote_write.to_columns("t", remote_write.RawWriteRequest.FromString(raw), types, shapes)
        assert columns.shapes[0].temporality is Temporality.GAUGE  # no metadata, no counter suffix
    assert len(shapes) == 3
    other = _request([("up", {}, [(1, 1.0)])], None)
    remote_write.to_columns("u", remote_write.RawWriteRequest.FromString(other), types, shapes)
    assert len(shapes) == 3 and "up" in str(shapes.of_tenant("u"))  # another tenant's newest entry stays
    # Metadata saying `errors` is a counter: the tenant's cached shapes are forgotten.
    raw = _request([("errors", {"instance": "4"}, [(2, 2.0)])], "errors")
    columns = remote_write.to_columns("t", remote_write.RawWriteRequest.FromString(raw), types, shapes)
    assert columns.shapes[0].temporality is Temporality.CUMULATIVE
    # The same metadata again changes nothing: the cache stays.
    before = dict(shapes.of_tenant("t"))
    remote_write.to_columns("t", remote_write.RawWriteRequest.FromString(raw), types, shapes)
    assert shapes.of_tenant("t") == before


def test_labels_that_are_not_utf8_or_not_named_are_refused() -> None:
    types, shapes = remote_write.FamilyTypes(), remote_write.SeriesShapes()
    bad: Any = remote_write.RawWriteRequest()  # a message class built at run time
    series = bad.timeseries.add()
    series.labels.append(prw.PrometheusLabel(name="__name__", value="up").SerializeToString())
    series.labels.append(b"\x0a\x01a\x12\x02\xff\xfe")  # value a: not UTF-8
    with pytest.raises(InvalidArgument, match="series 0 has a label that cannot be read"):
        remote_write.to_columns("t", bad, types, shapes)
    nameless = _request([("up", {}, [(1, 1.0)])], None).replace(b"__name__", b"__nome__")
    with pytest.raises(InvalidArgument, match="no __name__"):
        remote_write.to_columns("t", remote_write.RawWriteRequest.FromString(nameless), types, shapes)
    assert len(shapes) == 0  # refused series are not remembered


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(label_sets, st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=5)), max_size=5))
def test_series_written_as_bytes_equal_the_messages_built_field_by_field(
    series: list[tuple[dict[str, str], list[int]]],
) -> None:
    shapes: list[SeriesShape] = [shape_of("t", "m", labels, Temporality.GAUGE) for labels, _ in series]
    owner = np.repeat(np.arange(len(series)), [len(ts) for _, ts in series]).astype(np.int64)
    ts = np.array([t for _, run in series for t in run], dtype=np.int64)
    values = ts.astype(np.float64) / 3
    batch = metrics_pb2.SampleBatch(batch_id="b")
    _append_series(batch, shapes, owner, ts, values)
    expected = metrics_pb2.SampleBatch(batch_id="b")
    for shape, (_, run) in zip(shapes, series, strict=True):
        out = expected.series.add()
        out.MergeFromString(shape.template)
        out.timestamps_ms.extend(run)
        out.values.extend((np.array(run, dtype=np.int64).astype(np.float64) / 3).tolist())
    assert batch == expected
    for shape, labels in zip(shapes, (labels for labels, _ in series), strict=True):
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "region"))
        assert shape.key == series_key("t", "m", labels.get("region", ""), rest)
