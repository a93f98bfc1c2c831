"""What every foreign protocol (remote write, Influx line protocol, OTLP) becomes: one
SampleBatch through the same `BatchAcceptor` as `argus push` and the agent.

One identity rule for all paths (docs/ingest-protocols.md): a series is (tenant, metric name,
kind, region, labels). A label named `region` is the Argus region (validated as a region);
any other label stays a label. So the same sample sent through two paths is one series.

Cumulative series go through the one converter (core/cumulative.py) keyed by (tenant,
metric, region, labels); its states advance only after the batch is durable, under its lock,
so a retried request converts the same way (same events, deduplicated by the log).

Exactness under retries: the batch id derives from the request's content (a digest of the
decoded body), and the event identity from (tenant, source, batch id, batch content,
partition), so a resent request maps to the same events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

from command_side.ingest.accept import BatchAcceptor, SeriesColumns
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.cumulative import Conversion, CumulativeDeltas, encode_key
from core.events import digest
from core.protowire import varint, varints

REGION_LABEL = "region"

SeriesKey = bytes
"""A cumulative series' converter key: `series_key(tenant, metric, region, labels sorted by
name)`, the byte form the converter's store has always used (bytes cache their hash, so the
per-request lookups of a known series cost little)."""


def series_key(tenant: str, metric: str, region: str, labels: tuple[tuple[str, str], ...]) -> SeriesKey:
    return encode_key((tenant, metric, region, labels))


class Temporality(Enum):
    GAUGE = "gauge"
    """A value as it is now."""
    DELTA = "delta"
    """A counter's increase over the interval ending at the point."""
    CUMULATIVE = "cumulative"
    """A counter's running total (converted to deltas)."""


@dataclass(slots=True)
class ForeignSeries:
    """One series of a foreign request, before conversion."""

    metric: str
    labels: dict[str, str]
    temporality: Temporality
    timestamps_ms: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    start_ms: list[int] = field(default_factory=list)
    """Per point, when its cumulative run started (OTLP), or empty."""


@dataclass(slots=True)
class ForeignOutcome:
    result: ingest_pb2.BatchResult
    baselines: int = 0
    """Cumulative points that only set a baseline (first point of a series)."""
    dropped: int = 0
    """Cumulative points not newer than the last counted one of their series (already
    counted: a retry, or out of order)."""
    nan: int = 0
    """NaN values skipped (Prometheus staleness markers, missing values)."""


@dataclass(frozen=True, slots=True)
class SeriesShape:
    """What a series is, worked out once per distinct series (protocols cache it): its
    converter key, how its values count, and its identity as a message to copy."""

    key: SeriesKey
    temporality: Temporality
    template: bytes
    """The serialized SeriesSamples of metric, kind, region and labels (sorted by name)."""

    @property
    def cumulative(self) -> bool:
        return self.temporality is Temporality.CUMULATIVE


def shape_of(tenant: str, metric: str, labels: dict[str, str], temporality: Temporality) -> SeriesShape:
    """The shape of a series with these labels (a `region` label is the Argus region)."""
    region = labels.get(REGION_LABEL, "")
    rest = tuple(sorted((k, v) for k, v in labels.items() if k != REGION_LABEL))
    kind = metrics_pb2.METRIC_KIND_GAUGE if temporality is Temporality.GAUGE else metrics_pb2.METRIC_KIND_COUNTER
    template = metrics_pb2.SeriesSamples(metric=metric, kind=kind, region=region)
    for name, text in rest:
        template.labels.add(name=name, value=text)
    return SeriesShape(
        key=series_key(tenant, metric, region, rest),
        temporality=temporality,
        template=template.SerializeToString(deterministic=True),
    )


@dataclass(slots=True)
class ForeignColumns:
    """A request's series in columns: `shapes[i]` owns the next `counts[i]` points."""

    shapes: list[SeriesShape]
    counts: npt.NDArray[np.int64]
    timestamps_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    start_ms: npt.NDArray[np.int64] | None = None
    """Per point, when its cumulative run started (OTLP), or None."""

    @classmethod
    def of(cls, tenant: str, series: Sequence[ForeignSeries]) -> ForeignColumns:
        shapes = [shape_of(tenant, s.metric, s.labels, s.temporality) for s in series]
        counts = np.array([len(s.timestamps_ms) for s in series], dtype=np.int64)
        ts = np.array([t for s in series for t in s.timestamps_ms], dtype=np.int64)
        values = np.array([v for s in series for v in s.values], dtype=np.float64)
        start_ms = None
        if any(s.start_ms for s in series):
            start_ms = np.array([t for s in series for t in (s.start_ms or [0] * len(s.timestamps_ms))], dtype=np.int64)
        return cls(shapes=shapes, counts=counts, timestamps_ms=ts, values=values, start_ms=start_ms)


class ForeignIngest:
    """Converts foreign series and accepts them as one batch (one per request)."""

    def __init__(self, acceptor: BatchAcceptor, deltas: CumulativeDeltas[SeriesKey]) -> None:
        self._acceptor = acceptor
        self.deltas = deltas

    async def accept(
        self,
        tenant: str,
        *,
        source: str,
        request_id: bytes,
        series: Sequence[ForeignSeries],
        extra: Callable[[Conversion[SeriesKey]], list[metrics_pb2.SeriesSamples]] | None = None,
    ) -> ForeignOutcome:
        """Accept `series` (and what `extra` builds under the same conversion) for `tenant`;
        `request_id` is the content the batch id derives from (the decoded request body)."""
        columns = ForeignColumns.of(tenant, series)
        return await self.accept_columns(tenant, source=source, request_id=request_id, columns=columns, extra=extra)

    async def accept_columns(
        self,
        tenant: str,
        *,
        source: str,
        request_id: bytes,
        columns: ForeignColumns,
        extra: Callable[[Conversion[SeriesKey]], list[metrics_pb2.SeriesSamples]] | None = None,
    ) -> ForeignOutcome:
        """`accept` of series already in columns (what remote write decodes into)."""
        batch = metrics_pb2.SampleBatch(source=source, batch_id=f"{source}-{digest(request_id).hex()[:32]}")
        shapes = columns.shapes
        counts = columns.counts
        ts = columns.timestamps_ms
        values = columns.values
        starts = columns.start_ms
        n = len(shapes)
        owner = np.repeat(np.arange(n), counts)
        # NaN: a staleness marker or a missing value, nothing to store.
        nan_mask = np.isnan(values)
        nan = int(nan_mask.sum())
        if nan:
            keep = ~nan_mask
            owner, ts, values = owner[keep], ts[keep], values[keep]
            starts = starts[keep] if starts is not None else None
            counts = np.bincount(owner, minlength=n).astype(np.int64)
        if len(ts) > 1 and bool(np.any((ts[1:] < ts[:-1]) & (owner[1:] == owner[:-1]))):
            order = np.lexsort((ts, owner))  # time order within each series (stable)
            owner, ts, values = owner[order], ts[order], values[order]
            starts = starts[order] if starts is not None else None
        cumulative = np.fromiter((shape.cumulative for shape in shapes), dtype=bool, count=n)
        cum_index = np.flatnonzero(cumulative)
        cum_keys = [shapes[i].key for i in cum_index.tolist()]
        # Only requests with cumulative series need the converter's states held across the
        # append (gauges and deltas go straight through: no state), and only their series:
        # requests of other series go on meanwhile (`extra` may touch any key: all of them).
        reserved: contextlib.AbstractAsyncContextManager[None]
        if extra is not None:
            reserved = self.deltas.reserve(None)
        elif cum_keys:
            reserved = self.deltas.reserve(frozenset(cum_keys))
        else:
            reserved = contextlib.nullcontext()
        async with reserved:
            baselines = 0
            out_values = values
            given = np.ones(len(ts), dtype=bool)
            # begin() reads back missing states; from its return to the append nothing awaits,
            # so no other request's read-back evicts them before they are converted.
            conversion = await self.deltas.begin(cum_keys)
            if cum_keys:
                cum_points = cumulative[owner]
                counted, deltas, baselines = conversion.deltas(
                    cum_keys,
                    counts[cum_index],
                    ts[cum_points],
                    values[cum_points],
                    starts[cum_points] if starts is not None else None,
                )
                out_values = values.copy()
                out_values[cum_points] = deltas
                given[cum_points] = counted
            owner, ts, out_values = owner[given], ts[given], out_values[given]
            _append_series(batch, shapes, owner, ts, out_values)
            if extra is not None:
                batch.series.extend(extra(conversion))
            if batch.series and extra is None:
                # The series' identities resolve once per template (the acceptor caches them).
                per_series = np.bincount(owner, minlength=n)
                present = np.flatnonzero(per_series)  # the batch's series, in its order
                columns_in = SeriesColumns(
                    templates=[shapes[i].template for i in present.tolist()],
                    counts=per_series[present].astype(np.int64),
                    timestamps_ms=ts,
                    values=out_values,
                )
                result = await self._acceptor.accept_columns(tenant, batch, columns_in)
            elif batch.series:
                result = await self._acceptor.accept(tenant, batch)
            else:
                result = ingest_pb2.BatchResult(batch_id=batch.batch_id, status=ingest_pb2.BATCH_STATUS_ACCEPTED)
            await conversion.commit()  # only once the batch is durable
        return ForeignOutcome(result=result, baselines=baselines, dropped=conversion.dropped, nan=nan)


def _append_series(
    batch: metrics_pb2.SampleBatch,
    shapes: Sequence[SeriesShape],
    owner: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
) -> None:
    """One SeriesSamples per series with points, in request order: each written as bytes
    (its shape's serialized identity, then the packed timestamps and values, encoded for all
    points at once) and parsed into the batch in one call."""
    if not len(owner):
        return
    bounds = np.flatnonzero(np.diff(owner)) + 1
    firsts = np.concatenate(([0], bounds)).astype(np.int64)
    ends = np.append(bounds, len(owner)).astype(np.int64)
    ts_encoded, ts_offsets_array = varints(ts)
    ts_bytes = ts_encoded.tobytes()
    ts_offsets = ts_offsets_array.tolist()
    value_bytes = values.astype("<f8").tobytes()
    parts: list[bytes] = []
    for index, lo, hi in zip(owner[firsts].tolist(), firsts.tolist(), ends.tolist(), strict=True):
        stamps = ts_bytes[ts_offsets[lo] : ts_offsets[hi]]
        body = b"".join(
            (
                shapes[index].template,
                b"\x2a",
                varint(len(stamps)),
                stamps,
                b"\x32",
                varint(8 * (hi - lo)),
                value_bytes[8 * lo : 8 * hi],
            )
        )
        parts.append(b"\x1a" + varint(len(body)) + body)
    batch.MergeFromString(b"".join(parts))


def describe_rejections(result: ingest_pb2.BatchResult, limit: int = 5) -> str:
    """A short text of why samples were rejected (for the protocols' error bodies)."""
    parts: list[str] = []
    for rejection in list(result.rejections)[:limit]:
        parts.append(rejection.message or ingest_pb2.RejectReason.Name(rejection.reason))
    more = len(result.rejections) - limit
    if more > 0:
        parts.append(f"... {more} more")
    return f"{result.rejected_samples} of {result.accepted_samples + result.rejected_samples} samples rejected: " + (
        "; ".join(parts)
    )
