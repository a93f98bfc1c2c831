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
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from command_side.ingest.accept import BatchAcceptor
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.cumulative import Conversion, CumulativeDeltas
from core.events import digest

REGION_LABEL = "region"

SeriesKey = tuple[str, str, str, tuple[tuple[str, str], ...]]
"""(tenant, metric, region, labels sorted by name): a cumulative series' converter key."""


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
        batch = metrics_pb2.SampleBatch(source=source, batch_id=f"{source}-{digest(request_id).hex()[:32]}")
        nan = 0
        baselines = 0
        keyed = [(s, _key(tenant, s)) for s in series]
        # Only requests with cumulative series need the converter's states held across the
        # append (gauges and deltas go straight through: no lock, no state).
        stateful = extra is not None or any(s.temporality is Temporality.CUMULATIVE for s in series)
        async with self.deltas.lock if stateful else contextlib.nullcontext():
            conversion = await self.deltas.begin(k for s, k in keyed if s.temporality is Temporality.CUMULATIVE)
            for one, key in keyed:
                out, skipped, base = _convert(one, key, conversion)
                nan += skipped
                baselines += base
                if out is not None:
                    batch.series.append(out)
            if extra is not None:
                batch.series.extend(extra(conversion))
            if batch.series:
                result = await self._acceptor.accept(tenant, batch)
            else:
                result = ingest_pb2.BatchResult(batch_id=batch.batch_id, status=ingest_pb2.BATCH_STATUS_ACCEPTED)
            await conversion.commit()  # only once the batch is durable
        return ForeignOutcome(result=result, baselines=baselines, dropped=conversion.dropped, nan=nan)


def _key(tenant: str, series: ForeignSeries) -> SeriesKey:
    region = series.labels.get(REGION_LABEL, "")
    labels = tuple(sorted((k, v) for k, v in series.labels.items() if k != REGION_LABEL))
    return (tenant, series.metric, region, labels)


def _convert(
    one: ForeignSeries, key: SeriesKey, conversion: Conversion[SeriesKey]
) -> tuple[metrics_pb2.SeriesSamples | None, int, int]:
    """(series to send or None, points skipped as NaN, baselines)."""
    _, metric, region, labels = key
    kind = metrics_pb2.METRIC_KIND_GAUGE if one.temporality is Temporality.GAUGE else metrics_pb2.METRIC_KIND_COUNTER
    out = metrics_pb2.SeriesSamples(metric=metric, kind=kind, region=region)
    for name, text in labels:
        out.labels.add(name=name, value=text)
    if one.temporality is not Temporality.CUMULATIVE:
        # No state: copied whole (the acceptor checks order and values), NaN left out.
        kept = [i for i, value in enumerate(one.values) if not math.isnan(value)]
        if len(kept) == len(one.values):
            out.timestamps_ms.extend(one.timestamps_ms)
            out.values.extend(one.values)
        else:
            out.timestamps_ms.extend(one.timestamps_ms[i] for i in kept)
            out.values.extend(one.values[i] for i in kept)
        skipped = len(one.values) - len(kept)
        return (out if kept else None), skipped, 0
    skipped = 0
    baselines = 0
    order = sorted(range(len(one.timestamps_ms)), key=one.timestamps_ms.__getitem__)
    for i in order:
        ts_ms = one.timestamps_ms[i]
        value = one.values[i]
        if math.isnan(value):
            skipped += 1  # a staleness marker or a missing value: nothing to store
            continue
        start_ms = one.start_ms[i] if one.start_ms else 0
        before = conversion.dropped
        delta = conversion.delta(key, ts_ms, value, start_ms=start_ms)
        if delta is None:
            baselines += 1 if conversion.dropped == before and math.isfinite(value) else 0
            continue
        out.timestamps_ms.append(ts_ms)
        out.values.append(delta)
    if not out.timestamps_ms:
        return None, skipped, baselines
    return out, skipped, baselines


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
