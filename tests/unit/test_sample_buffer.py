"""SampleBuffer gathers counters and gauges per batch (decision 0055): its columns must be
exactly those of one array per series in batch order, for mixed batches too."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.argus.events.v1 import events_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.samples import SampleBuffer

_Drawn = tuple[str, list[int], list[float]]
_KIND = {
    "counter": metrics_pb2.METRIC_KIND_COUNTER,
    "gauge": metrics_pb2.METRIC_KIND_GAUGE,
    "timer": metrics_pb2.METRIC_KIND_TIMER,
    "distinct": metrics_pb2.METRIC_KIND_DISTINCT,
    "sketch": metrics_pb2.METRIC_KIND_TIMER,
}


@st.composite
def _series(draw: st.DrawFn) -> _Drawn:
    kind = draw(st.sampled_from(sorted(_KIND)))
    ts = draw(st.lists(st.integers(-(2**40), 2**42), max_size=4))
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=len(ts), max_size=len(ts)))
    return kind, ts, values


def _event(drawn: list[_Drawn]) -> events_pb2.SampleBatchAccepted:
    event = events_pb2.SampleBatchAccepted(tenant="t", source="s", batch_id="b")
    for n, (kind, ts, values) in enumerate(drawn):
        s = event.series.add(metric="m", region="r", kind=_KIND[kind], timestamps_ms=ts)
        event.series_ids.append(n * 7 - 3)
        if kind == "sketch":
            s.sketch_sizes.extend([1] * len(ts))
            s.sketch_keys.extend(range(len(ts)))
            s.sketch_counts.extend([2] * len(ts))
            for column in (s.sketch_sums, s.sketch_mins, s.sketch_maxs, s.sketch_lasts):
                column.extend(values)
        elif kind == "timer":
            s.observation_counts.extend([1] * len(ts))
            s.observations.extend(values)
        elif kind == "distinct":
            s.observation_counts.extend([1] * len(ts))
            s.distinct_hashes.extend(range(len(ts)))
        else:
            s.values.extend(values)
    return event


def _reference(event: events_pb2.SampleBatchAccepted, offset: int) -> dict[str, dict[str, list[float]]]:
    """Per family, per column: the samples of each series in batch order (one at a time)."""
    out: dict[str, dict[str, list[float]]] = {}
    for sid, s in zip(event.series_ids, event.series, strict=True):
        if not s.timestamps_ms:
            continue
        if s.kind == metrics_pb2.METRIC_KIND_TIMER:
            family = "timer_sketch" if s.sketch_sizes else "timer"
        elif s.kind == metrics_pb2.METRIC_KIND_DISTINCT:
            family = "distinct"
        else:
            family = "values"
        cols = out.setdefault(family, {"key": [], "ts": [], "offset": [], "values": []})
        cols["key"] += [sid] * len(s.timestamps_ms)
        cols["ts"] += list(s.timestamps_ms)
        cols["offset"] += [offset] * len(s.timestamps_ms)
        cols["values"] += list(s.values)
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(_series(), max_size=6), min_size=1, max_size=3))
def test_columns_are_those_of_one_array_per_series(batches: list[list[_Drawn]]) -> None:
    buffer = SampleBuffer()
    expected: dict[str, dict[str, list[float]]] = {}
    kinds: dict[int, int] = {}
    newest_seen = []
    for offset, drawn in enumerate(batches):
        event = _event(drawn)
        newest_seen.append(buffer.add(event, partition=offset % 2, offset=offset))
        for family, cols in _reference(event, offset).items():
            into = expected.setdefault(family, {"key": [], "ts": [], "offset": [], "values": []})
            for name, column in cols.items():
                into[name] += column
        pairs = zip(event.series_ids, event.series, strict=True)
        kinds.update({sid: int(s.kind) for sid, s in pairs if s.timestamps_ms})
        stamps = [t for s in event.series for t in s.timestamps_ms]
        assert newest_seen[-1] == max([0, *stamps])
    assert buffer.kinds == kinds
    assert buffer.samples == sum(len(c["ts"]) for c in expected.values())
    columns = {c.kind_family: c for c in buffer.drain()}
    assert set(columns) == set(expected)
    for family, cols in expected.items():
        got = columns[family]
        np.testing.assert_array_equal(got.key, np.array(cols["key"], dtype=np.int64))
        np.testing.assert_array_equal(got.ts, np.array(cols["ts"], dtype=np.int64))
        np.testing.assert_array_equal(got.offset, np.array(cols["offset"], dtype=np.int64))
        assert got.key.dtype == got.ts.dtype == np.int64
        if family == "values":
            # Bit for bit, NaNs and signed zeros included.
            want = np.array(cols["values"], dtype=np.float64)
            assert got.values.dtype == np.float64
            assert got.values.tobytes() == want.tobytes()
    assert buffer.samples == 0 and not buffer.kinds and not buffer.partitions


def test_a_batch_of_empty_series_buffers_nothing() -> None:
    event = events_pb2.SampleBatchAccepted(tenant="t")
    event.series.add(metric="m", kind=metrics_pb2.METRIC_KIND_GAUGE)
    event.series_ids.append(1)
    buffer = SampleBuffer()
    assert buffer.add(event, partition=0, offset=0) == 0
    assert buffer.drain() == [] and buffer.kinds == {}
