"""Accepted sample batches -> points: what the projectors and the query side's evaluators
share (it lives in core so that no side imports another).

`decode_sample_batch` reads a SampleBatchAccepted from a log record (CorruptData when it
will not decode, so a consumer runner quarantines it); `SampleBuffer` turns batches into
columns the point functions take at once.

One buffer per kind family (values: counters and gauges; timers; distinct), each a list of
numpy arrays appended per series and concatenated once per flush.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contracts.argus.events.v1 import events_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core import points as pts
from core.errors import CorruptData
from core.events import decode_record
from core.model import MetricKind
from core.ports import LogRecord

_I64 = np.int64


def decode_sample_batch(record: LogRecord) -> events_pb2.SampleBatchAccepted:
    """The batch of a samples-topic record. Raises CorruptData when it does not decode or is
    inconsistent (series ids and series of different lengths), UpgradeNeeded for a newer
    schema version."""
    batch = decode_record(record, events_pb2.SampleBatchAccepted)
    if len(batch.series_ids) != len(batch.series):
        raise CorruptData(
            f"event {record.event.event_id.hex()[:16]}: {len(batch.series_ids)} series ids for "
            f"{len(batch.series)} series"
        )
    return batch


@dataclass(slots=True)
class _Family:
    key: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    offset: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)
    extra: list[np.ndarray] = field(default_factory=list)  # observations (float64) or hashes (uint64)
    # timer sketches (sketch_* columns): per sample sum, min, max, last (shape (n, 4)); per
    # bucket its key (extra) and count (bucket_counts); `counts` holds each sample's size.
    stats: list[np.ndarray] = field(default_factory=list)
    bucket_counts: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilyColumns:
    """Samples of one kind family, one row per sample (`extra` is per observation)."""

    kind_family: str
    key: np.ndarray
    ts: np.ndarray
    offset: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    extra: np.ndarray
    stats: np.ndarray | None = None
    bucket_counts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.key)

    def to_points(self, mask: np.ndarray | None, step_ms: int) -> pts.Points:
        """Points at `step_ms` of the samples selected by `mask` (all when None)."""
        key, ts, values, counts, extra = self.key, self.ts, self.values, self.counts, self.extra
        stats, bucket_counts = self.stats, self.bucket_counts
        if mask is not None:
            if self.kind_family != "values":
                entries = np.repeat(mask, counts)
                extra = extra[entries]
                counts = counts[mask]
                if stats is not None and bucket_counts is not None:
                    stats, bucket_counts = stats[mask], bucket_counts[entries]
            else:
                values = values[mask]
            key, ts = key[mask], ts[mask]
        if self.kind_family == "values":
            return pts.from_values(key, ts, values, step_ms)
        if self.kind_family == "timer":
            return pts.from_observations(key, ts, counts, extra, step_ms)
        if self.kind_family == "timer_sketch":
            assert stats is not None and bucket_counts is not None
            return pts.from_sketches(
                key,
                ts,
                sums=stats[:, 0],
                mins=stats[:, 1],
                maxs=stats[:, 2],
                lasts=stats[:, 3],
                sizes=counts,
                bucket_keys=extra,
                bucket_counts=bucket_counts,
                step_ms=step_ms,
            )
        return pts.from_hashes(key, ts, counts, extra, step_ms)


class SampleBuffer:
    """Accepted samples waiting for the next flush."""

    def __init__(self) -> None:
        self._families = _families()
        self.kinds: dict[int, int] = {}
        self.partitions: dict[int, int] = {}
        self.samples = 0

    def add(self, event: events_pb2.SampleBatchAccepted, partition: int, offset: int) -> int:
        """Buffer the samples of `event` (read at `partition`/`offset`); returns its newest
        sample time (0 when it has none).

        Counters and gauges (nearly every sample) are gathered into flat lists and become
        one array per column per batch: a numpy array per series cost ~10 us a series, most
        of the evaluator's and the projectors' apply at 100k series/s (decision 0055). The
        columns are the same values in the same order as one array per series would give."""
        ts_flat: list[int] = []
        values_flat: list[float] = []
        sids: list[int] = []
        lengths: list[int] = []
        kinds, partitions = self.kinds, self.partitions
        newest = 0
        for sid, series in zip(event.series_ids, event.series, strict=True):
            stamps = series.timestamps_ms
            n = len(stamps)
            if n == 0:
                continue
            kind = int(series.kind)
            kinds[sid] = kind
            partitions[sid] = partition
            if kind != MetricKind.TIMER and kind != MetricKind.DISTINCT:
                ts_flat += stamps
                values_flat += series.values
                sids.append(sid)
                lengths.append(n)
            else:
                newest = max(newest, self._add_observations(sid, kind, series, n, offset))
            self.samples += n
        if sids:
            family = self._families["values"]
            ts = np.array(ts_flat, dtype=_I64)
            family.key.append(np.repeat(np.array(sids, dtype=_I64), lengths))
            family.ts.append(ts)
            family.offset.append(np.full(len(ts), offset, dtype=_I64))
            family.values.append(np.array(values_flat, dtype=np.float64))
            newest = max(newest, int(ts.max()))
        return newest

    def _add_observations(self, sid: int, kind: int, series: metrics_pb2.SeriesSamples, n: int, offset: int) -> int:
        """A timer or distinct series: arrays of its own (few series, many observations).
        Returns its newest sample time."""
        family = self._families[_family_of(kind, bool(series.sketch_sizes))]
        ts = np.array(series.timestamps_ms, dtype=_I64)
        family.key.append(np.full(n, sid, dtype=_I64))
        family.ts.append(ts)
        family.offset.append(np.full(n, offset, dtype=_I64))
        if kind == MetricKind.TIMER and series.sketch_sizes:
            family.counts.append(np.array(series.sketch_sizes, dtype=_I64))
            family.extra.append(np.array(series.sketch_keys, dtype=_I64))
            family.bucket_counts.append(np.array(series.sketch_counts, dtype=_I64))
            family.stats.append(
                np.column_stack(
                    [
                        np.array(column, dtype=np.float64)
                        for column in (
                            series.sketch_sums,
                            series.sketch_mins,
                            series.sketch_maxs,
                            series.sketch_lasts,
                        )
                    ]
                )
            )
        elif kind == MetricKind.TIMER:
            family.counts.append(np.array(series.observation_counts, dtype=_I64))
            family.extra.append(np.array(series.observations, dtype=np.float64))
        else:
            family.counts.append(np.array(series.observation_counts, dtype=_I64))
            family.extra.append(np.array(series.distinct_hashes, dtype=np.uint64))
        return int(ts.max())

    def drain(self) -> list[FamilyColumns]:
        """The buffered samples as columns (one per non-empty family); empties the buffer,
        its kinds and partitions included (take those first)."""
        out = []
        for name, family in self._families.items():
            if not family.key:
                continue
            extra_dtype = {"distinct": np.uint64, "timer_sketch": np.int64}.get(name, np.float64)
            out.append(
                FamilyColumns(
                    kind_family=name,
                    key=np.concatenate(family.key),
                    ts=np.concatenate(family.ts),
                    offset=np.concatenate(family.offset),
                    values=np.concatenate(family.values) if family.values else np.zeros(0),
                    counts=np.concatenate(family.counts) if family.counts else np.zeros(0, dtype=_I64),
                    extra=np.concatenate(family.extra) if family.extra else np.zeros(0, dtype=extra_dtype),
                    stats=np.concatenate(family.stats) if family.stats else None,
                    bucket_counts=np.concatenate(family.bucket_counts) if family.bucket_counts else None,
                )
            )
        self._families = _families()
        self.kinds, self.partitions = {}, {}
        self.samples = 0
        return out


def _families() -> dict[str, _Family]:
    return {"values": _Family(), "timer": _Family(), "timer_sketch": _Family(), "distinct": _Family()}


def _family_of(kind: int, sketch: bool = False) -> str:
    if kind == MetricKind.TIMER:
        return "timer_sketch" if sketch else "timer"
    if kind == MetricKind.DISTINCT:
        return "distinct"
    return "values"
