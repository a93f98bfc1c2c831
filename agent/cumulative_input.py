"""`argus push --cumulative`: counter values read as running totals, sent as deltas.

Every counter series of the input goes through the shared converter (core/cumulative.py):
per series (metric, region, labels) the first point is a baseline, a value below the
previous one is a reset (the new value is the delta), and a point not newer than the last
one of its series is dropped (cumulative input must be in time order per series; within a
batch the samples of a series are ordered by timestamp first). Gauges, timers and distinct
counts pass unchanged. A fresh converter per push, so pushing the same input again sends
the same batches (same ids, same deltas) and ingest counts them once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from contracts.argus.metrics.v1 import metrics_pb2
from core.cumulative import CumulativeDeltas

SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass(slots=True)
class CumulativeStats:
    baselines: int = 0
    """First points of series (and points after a state expired): no delta sent."""
    dropped: int = 0
    """Points not newer than the last one of their series."""


def cumulative_to_deltas(
    batches: Iterable[metrics_pb2.SampleBatch],
    stats: CumulativeStats,
    deltas: CumulativeDeltas[SeriesKey] | None = None,
) -> Iterator[metrics_pb2.SampleBatch]:
    converter: CumulativeDeltas[SeriesKey] = deltas if deltas is not None else CumulativeDeltas()
    for batch in batches:
        kept = []
        for series in batch.series:
            if series.kind != metrics_pb2.METRIC_KIND_COUNTER:
                kept.append(series)
                continue
            key = (series.metric, series.region, tuple(sorted((lb.name, lb.value) for lb in series.labels)))
            conversion = converter.begin_memory()
            points = sorted(zip(series.timestamps_ms, series.values, strict=True), key=lambda p: p[0])
            out_ts: list[int] = []
            out_values: list[float] = []
            for ts_ms, value in points:
                delta = conversion.delta(key, ts_ms, value)
                if delta is not None:
                    out_ts.append(ts_ms)
                    out_values.append(delta)
            conversion.apply()
            stats.dropped += conversion.dropped
            stats.baselines += len(points) - len(out_ts) - conversion.dropped
            if out_ts:
                del series.timestamps_ms[:]
                del series.values[:]
                series.timestamps_ms.extend(out_ts)
                series.values.extend(out_values)
                kept.append(series)
        if len(kept) != len(batch.series):
            copies = [metrics_pb2.SeriesSamples() for _ in kept]
            for copy, series in zip(copies, kept, strict=True):
                copy.CopyFrom(series)
            del batch.series[:]
            batch.series.extend(copies)
        if batch.series:
            yield batch
