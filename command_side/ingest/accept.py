"""Accept a sample batch: validate, split by series partition, append, answer.

Identity is validated per series (names, labels, kind, cardinality; cached across batches).
Samples are checked in columns: the plain series of a batch (counters, gauges, timers with
observations) have their timestamps, values and observations concatenated and checked in one
numpy pass, and a series that passes whole is copied into the log as sent. Only series that
fail a check (or have another shape) take the per-series path, which finds each bad sample
and says why (docs/decisions/0013-columnar-ingest-validation.md). Valid samples are accepted
even when others in the batch are not (partial success). The batch is answered only after
its events are durable in the log.

Input is hostile until checked: sizes (samples, series, id lengths) are bounded before any
per-series work, rejected identities are never cached, the identities that are cached are
bounded in bytes, and what a batch adds to the registry (new series, a metric's first kind)
is taken back when its append fails. Limits that refuse a batch whole (the tenant's ingest
rate) raise ResourceExhausted before anything is appended, naming the limit and its setting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
from google.protobuf.unknown_fields import UnknownFieldSet

from command_side.ingest.identity_cache import IdentityCache, IdentityKey, TemplateKey
from command_side.ingest.rate import IngestRateLimiter
from command_side.ingest.registry import Admission, Claims, TenantRegistry
from contracts.argus.events.v1 import events_pb2
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core import validation
from core.errors import InvalidArgument, ResourceExhausted
from core.events import SAMPLES_TOPIC, digest, make_event
from core.model import MetricKind, canonical_labels, longest_retention_ms, partition_of, series_id
from core.ports import Event, EventLogWriter
from core.protowire import varint, varints
from core.settings import IngestLimits
from core.sketches import DDSKETCH_MAX_KEY, ddsketch_keys, hash_strings
from core.telemetry import REGISTRY

INGEST_SAMPLES = REGISTRY.counter(
    "argus_ingest_samples_total", "Samples and observations accepted (appended to the event log)."
)
INGEST_REJECTED = REGISTRY.counter(
    "argus_ingest_rejected_samples_total", "Samples and observations refused, by reason.", ["reason"]
)
INGEST_BATCHES = REGISTRY.counter("argus_ingest_batches_total", "Batches answered, by status.", ["status"])
APPEND_SECONDS = REGISTRY.histogram(
    "argus_event_log_append_seconds", "Time to append one batch's events to the event log.", ["topic"]
)

log = logging.getLogger(__name__)

MAX_REPORTED_REJECTIONS = 100
R = ingest_pb2.RejectReason
Reason: TypeAlias = ingest_pb2.RejectReason


@dataclass(slots=True)
class _Outcome:
    accepted: int = 0
    rejected: int = 0
    rejections: list[ingest_pb2.SampleRejection] = field(default_factory=list)

    def reject(self, index: int, first: int, count: int, reason: Reason, message: str) -> None:
        self.rejected += count
        INGEST_REJECTED.inc(reason_label(reason), by=count)
        if len(self.rejections) < MAX_REPORTED_REJECTIONS:
            self.rejections.append(
                ingest_pb2.SampleRejection(
                    series_index=index,
                    sample_index=first,
                    samples=count,
                    reason=reason,
                    message=message,
                )
            )


@dataclass(frozen=True, slots=True)
class _Identity:
    sid: int
    partition: int
    kind: int
    # The labels were sent sorted by name, so a copy of the series needs no reordering.
    labels_in_order: bool


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A series identity template resolved once: its validated identity, and its identity
    fields as its events carry them (region defaulted, labels sorted by name)."""

    identity: _Identity
    metric: str
    event_template: bytes


@dataclass(frozen=True, slots=True)
class SeriesColumns:
    """A batch's series in columns (what `accept_columns` takes): `templates[i]` is series i's
    serialized identity (a SeriesSamples of metric, kind, region and labels only), which owns
    the next `counts[i]` points of `timestamps_ms` and `values`."""

    templates: Sequence[bytes]
    counts: npt.NDArray[np.int64]
    timestamps_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


# What goes into one partition's event: (series id, series, as sent?, labels out of order?).
# A series as sent is the caller's message kept whole: copied into the event, it still needs
# what _accepted_copy does to a series kept whole (region default, labels sorted by name).
# A series as bytes is already in its event's form (serialized SeriesSamples).
_Entry: TypeAlias = tuple[int, metrics_pb2.SeriesSamples | bytes, bool, bool]
_SERIES_TAG = bytes([events_pb2.SampleBatchAccepted.DESCRIPTOR.fields_by_name["series"].number << 3 | 2])
_TS_TAG = bytes([metrics_pb2.SeriesSamples.DESCRIPTOR.fields_by_name["timestamps_ms"].number << 3 | 2])
_VALUES_TAG = bytes([metrics_pb2.SeriesSamples.DESCRIPTOR.fields_by_name["values"].number << 3 | 2])


class BatchAcceptor:
    """The ingest use case: `accept(tenant, batch)` -> BatchResult."""

    def __init__(
        self,
        *,
        log_writer: EventLogWriter,
        registry: TenantRegistry,
        limits: IngestLimits,
        partitions: int,
        retention_ms: int | None = None,
        clock_ms: Callable[[], int],
        columnar: bool = True,
    ) -> None:
        """`columnar=False` checks every series on its own (the reference the tests compare the
        columnar path with); both give the same answers and events."""
        self._log = log_writer
        self._registry = registry
        self._limits = limits
        self._partitions = partitions
        self._retention_ms = retention_ms or longest_retention_ms()
        self._clock_ms = clock_ms
        self._columnar = columnar
        # (tenant, metric, kind, region, labels as sent) -> identity; avoids re-validating and
        # re-hashing the same series in every batch of a live agent. Only valid identities.
        self.identities: IdentityCache[_Identity] = IdentityCache(budget_bytes=limits.identity_cache_bytes)
        # (tenant, identity template) -> resolved identity, for `accept_columns`; a template
        # maps to the same validation as its series would (via `identities`). Only valid ones.
        self.templates: IdentityCache[_Resolved] = IdentityCache(budget_bytes=limits.identity_cache_bytes)
        burst = limits.ingest_burst_samples or max(
            math.ceil(limits.ingest_rate_samples_per_s), limits.max_batch_samples
        )
        self._rate = IngestRateLimiter(samples_per_s=limits.ingest_rate_samples_per_s, burst_samples=burst)

    async def accept(self, tenant: str, batch: metrics_pb2.SampleBatch) -> ingest_pb2.BatchResult:
        return await self._counted(tenant, batch, None)

    async def accept_columns(
        self, tenant: str, batch: metrics_pb2.SampleBatch, columns: SeriesColumns
    ) -> ingest_pb2.BatchResult:
        """`accept(tenant, batch)` for a batch whose series are also given in `columns`
        (`batch.series[i]` is `templates[i]` with its points): the same checks, limits,
        answers and events, but series identities are resolved once per distinct template and
        the samples of series that pass whole go into the events from the columns."""
        if len(columns.templates) != len(batch.series):  # the caller's bug, not the sender's
            raise InvalidArgument(f"{len(columns.templates)} templates for {len(batch.series)} series")
        return await self._counted(tenant, batch, columns)

    async def _counted(
        self, tenant: str, batch: metrics_pb2.SampleBatch, columns: SeriesColumns | None
    ) -> ingest_pb2.BatchResult:
        try:
            result = await self._accept(tenant, batch, columns)
        except ResourceExhausted:
            INGEST_REJECTED.inc("rate_limited", by=_sample_count(batch))
            INGEST_BATCHES.inc("rate_limited")
            raise
        INGEST_SAMPLES.inc(by=result.accepted_samples)
        INGEST_BATCHES.inc(ingest_pb2.BatchStatus.Name(result.status).removeprefix("BATCH_STATUS_").lower())
        return result

    async def _accept(
        self, tenant: str, batch: metrics_pb2.SampleBatch, columns: SeriesColumns | None
    ) -> ingest_pb2.BatchResult:
        now_ms = self._clock_ms()
        result = ingest_pb2.BatchResult(batch_id=batch.batch_id[: self._limits.max_batch_id_chars])
        problem = self._batch_problem(batch)
        if problem is not None:
            # Refused before looking at any series (only their sample counts are summed).
            return _refused(result, batch, R.REJECT_REASON_MALFORMED_SERIES, problem)
        scan = _scan(batch.series) if self._columnar and columns is None else None
        if columns is not None:
            total = len(columns.timestamps_ms)  # one value per timestamp, nothing else
        else:
            total = scan.total if scan is not None else _sample_count(batch)
        if total > self._limits.max_batch_samples:
            return _refused(
                result,
                batch,
                R.REJECT_REASON_BATCH_TOO_LARGE,
                f"batch holds {total} samples and observations, more than the limit of "
                f"{self._limits.max_batch_samples} (setting limits.max_batch_samples); split it",
            )
        wait_s = self._rate.take(tenant, total, now_ms)
        if wait_s == math.inf:
            return _refused(
                result,
                batch,
                R.REJECT_REASON_BATCH_TOO_LARGE,
                f"batch holds {total} samples and observations, more than the ingest burst of "
                f"{self._rate.burst_samples} (setting limits.ingest_burst_samples); split it",
            )
        if wait_s > 0:
            raise ResourceExhausted(
                f"tenant {tenant!r} is over its ingest rate limit of {self._rate.samples_per_s:g} samples "
                f"and observations per second (setting limits.ingest_rate_samples_per_s, burst "
                f"{self._rate.burst_samples}: limits.ingest_burst_samples); nothing of this batch was "
                f"accepted; retry in {wait_s:.1f} s"
            )

        outcome = _Outcome()
        claims = Claims()
        per_partition: dict[int, list[_Entry]] = {}
        if columns is not None:
            self._accept_columns(tenant, batch.series, columns, now_ms, outcome, per_partition, claims)
        elif scan is not None:
            self._accept_columnar(tenant, batch.series, scan, now_ms, outcome, per_partition, claims)
        else:
            for index, series in enumerate(batch.series):
                accepted = self._accept_series(tenant, index, series, now_ms, outcome, claims)
                if accepted is not None:
                    partition, sid, samples = accepted
                    per_partition.setdefault(partition, []).append((sid, samples, False, False))

        # The digest covers the whole submitted batch (not just what passed validation), so a
        # resend maps to the same events even if the clock moved a sample across a limit.
        needed = bool(per_partition) or not batch.batch_id
        batch_digest = digest(batch.SerializeToString(deterministic=True)) if needed else b""
        batch_id = batch.batch_id or batch_digest.hex()[:32]
        result.batch_id = batch_id
        if per_partition:
            events = self._events(tenant, batch.source, batch_id, batch_digest, per_partition, now_ms)
            try:
                with APPEND_SECONDS.time(SAMPLES_TOPIC):
                    appended = await self._log.append(SAMPLES_TOPIC, events)
            except BaseException:
                # Cancelled or failed: what only this batch added must not hold a limit's room.
                self._registry.settle(claims, appended=False)
                raise
            self._registry.settle(claims, appended=True)
            result.duplicate = appended.duplicates == len(events)
        result.accepted_samples = outcome.accepted
        result.rejected_samples = outcome.rejected
        result.rejections.extend(outcome.rejections)
        if outcome.rejected == 0:
            result.status = ingest_pb2.BATCH_STATUS_ACCEPTED
        elif outcome.accepted == 0:
            result.status = ingest_pb2.BATCH_STATUS_REJECTED
        else:
            result.status = ingest_pb2.BATCH_STATUS_PARTIAL
        return result

    def _batch_problem(self, batch: metrics_pb2.SampleBatch) -> str | None:
        """What makes a batch unfit as a whole before its series are looked at, or None."""
        limits = self._limits
        if len(batch.series) > limits.max_batch_series:
            return (
                f"batch holds {len(batch.series)} series, more than the limit of {limits.max_batch_series} "
                "(setting limits.max_batch_series); split it"
            )
        for what, text in (("batch_id", batch.batch_id), ("source", batch.source)):
            if len(text) > limits.max_batch_id_chars:
                return (
                    f"{what} {validation.quoted(text)} is longer than {limits.max_batch_id_chars} chars "
                    "(setting limits.max_batch_id_chars)"
                )
            problem = validation.text_problem(what, text)
            if problem:
                return problem
        return None

    def _events(
        self,
        tenant: str,
        source: str,
        batch_id: str,
        batch_digest: bytes,
        per_partition: dict[int, list[_Entry]],
        now_ms: int,
    ) -> list[tuple[int, Event]]:
        source = source or "anonymous"
        events = []
        for partition in sorted(per_partition):
            entries = sorted(per_partition[partition], key=lambda e: e[0])
            payload = events_pb2.SampleBatchAccepted(tenant=tenant, source=source, batch_id=batch_id)
            payload.series_ids.extend(entry[0] for entry in entries)
            if any(isinstance(entry[1], bytes) for entry in entries):
                # The same series as the messages would give, parsed in one call.
                payload.MergeFromString(_series_wire(entries))
                entries = []
            for _, samples, as_sent, reorder in entries:
                assert isinstance(samples, metrics_pb2.SeriesSamples)
                out = payload.series.add()
                out.CopyFrom(samples)
                if as_sent and not samples.region:
                    out.region = "local"
                if reorder:
                    del out.labels[:]
                    out.labels.extend(sorted(samples.labels, key=lambda label: label.name))
            identity = digest(tenant, source, batch_id, batch_digest, str(partition))
            key = payload.series_ids[0].to_bytes(8, "big", signed=True)
            events.append((partition, make_event(payload, identity=identity, partition_key=key, time_ms=now_ms)))
        return events

    def _identity(self, tenant: str, series: metrics_pb2.SeriesSamples) -> _Identity | tuple[Reason, str]:
        """The series' validated identity (cached), or why it is invalid (never cached)."""
        if len(series.labels) > self._limits.max_labels:  # before building a key of them all
            return (
                R.REJECT_REASON_TOO_MANY_LABELS,
                f"metric {validation.quoted(series.metric)}: {len(series.labels)} labels, "
                f"more than {self._limits.max_labels}",
            )
        # Keyed by the labels as sent: sorting them is most of the cost of a cache hit.
        sent = tuple([(label.name, label.value) for label in series.labels])
        cache_key: IdentityKey = (tenant, series.metric, series.kind, series.region, sent)
        cached = self.identities.get(cache_key)
        if cached is not None:
            return cached
        labels = canonical_labels(sent)
        region = series.region or "local"
        checked = self._validate_identity(tenant, series.metric, series.kind, region, labels, sent == labels)
        if isinstance(checked, _Identity):
            self.identities.put(cache_key, checked)
        return checked

    def _resolve(self, tenant: str, template: bytes) -> _Resolved | tuple[Reason, str]:
        """The identity of a series template (cached), or why it is invalid (never cached)."""
        key: TemplateKey = (tenant, template)
        cached = self.templates.get(key)
        if cached is not None:
            return cached
        parsed = metrics_pb2.SeriesSamples.FromString(template)
        # Only the identity fields count, whatever else the template holds.
        series = metrics_pb2.SeriesSamples(metric=parsed.metric, kind=parsed.kind, region=parsed.region)
        series.labels.extend(parsed.labels)
        identity = self._identity(tenant, series)
        if not isinstance(identity, _Identity):
            return identity
        series.region = series.region or "local"
        if not identity.labels_in_order:
            del series.labels[:]
            series.labels.extend(sorted(parsed.labels, key=lambda label: label.name))
        resolved = _Resolved(identity, series.metric, series.SerializeToString(deterministic=True))
        self.templates.put(key, resolved)
        return resolved

    def _kind_conflict(self, tenant: str, metric: str, identity: _Identity) -> tuple[Reason, str] | None:
        # Kind can change with other batches: checked every time (claimed once admitted).
        kind = self._registry.kind_of(tenant, metric)
        if kind is None or kind == identity.kind:
            return None
        return (
            R.REJECT_REASON_KIND_CONFLICT,
            f"metric {metric!r} is a {MetricKind(kind).label} in this tenant; "
            f"this series sends {MetricKind(identity.kind).label}",
        )

    def _admit(
        self, tenant: str, metric: str, identity: _Identity, now_ms: int, claims: Claims
    ) -> tuple[Reason, str] | None:
        """Claim the metric's kind and count the series active, once some of its samples
        passed (a series whose samples are all rejected takes no room under a limit)."""
        kind = self._registry.claim_kind(tenant, metric, identity.kind, claims)
        if kind != identity.kind:  # another series of this batch claimed it first
            return self._kind_conflict(tenant, metric, identity)
        admission = self._registry.admit_series(tenant, identity.sid, now_ms, claims)
        if admission is Admission.TENANT_LIMIT:
            return (
                R.REJECT_REASON_SERIES_LIMIT,
                f"tenant {tenant!r} reached its limit of {self._registry.max_series_per_tenant} active series "
                f"(setting limits.max_series_per_tenant); new series of metric {metric!r} are rejected",
            )
        if admission is Admission.GLOBAL_LIMIT:
            return (
                R.REJECT_REASON_SERIES_LIMIT,
                f"ingest reached its ceiling of {self._registry.max_active_series} active series over all "
                f"tenants (setting limits.max_active_series); new series of metric {metric!r} are rejected",
            )
        return None

    def _validate_identity(
        self,
        tenant: str,
        metric: str,
        kind: int,
        region: str,
        labels: tuple[tuple[str, str], ...],
        labels_in_order: bool,
    ) -> _Identity | tuple[Reason, str]:
        problem = validation.metric_name_problem(metric, self._limits)
        if problem:
            return (R.REJECT_REASON_INVALID_METRIC_NAME, problem)
        if kind not in MetricKind._value2member_map_:
            return (
                R.REJECT_REASON_MALFORMED_SERIES,
                f"metric {metric!r}: kind must be counter, gauge, timer or distinct",
            )
        problem = validation.region_problem(region)
        if problem:
            return (R.REJECT_REASON_INVALID_REGION, f"metric {metric!r}: {problem}")
        label_problem = validation.labels_problem(list(labels), self._limits)
        if label_problem:
            message, too_many = label_problem
            reason = R.REJECT_REASON_TOO_MANY_LABELS if too_many else R.REJECT_REASON_INVALID_LABEL
            return (reason, f"metric {metric!r}: {message}")
        sid = series_id(tenant, region, metric, labels)
        return _Identity(
            sid=sid, partition=partition_of(sid, self._partitions), kind=kind, labels_in_order=labels_in_order
        )

    def _accept_series(
        self,
        tenant: str,
        index: int,
        series: metrics_pb2.SeriesSamples,
        now_ms: int,
        outcome: _Outcome,
        claims: Claims,
    ) -> tuple[int, int, metrics_pb2.SeriesSamples] | None:
        n = len(series.timestamps_ms)
        if n == 0:
            return None
        identity = self._identity(tenant, series)
        if isinstance(identity, _Identity):
            rejection = self._kind_conflict(tenant, series.metric, identity)
            if rejection is None:
                return self._accept_samples(tenant, index, series, identity, now_ms, outcome, claims)
        else:
            rejection = identity
        reason, message = rejection
        outcome.reject(index, -1, n, reason, message)
        return None

    def _accept_columnar(
        self,
        tenant: str,
        series_list: Sequence[metrics_pb2.SeriesSamples],
        scan: _Scan,
        now_ms: int,
        outcome: _Outcome,
        per_partition: dict[int, list[_Entry]],
        claims: Claims,
    ) -> None:
        """Accept a batch like _accept_series on each series in turn (same registry calls, same
        rejections in the same order), but series that pass the column checks whole skip it."""
        whole = scan.passing(now_ms + self._limits.max_future_skew_ms, now_ms - self._retention_ms)
        lengths = scan.lengths
        for index, series in enumerate(series_list):
            n = lengths[index]
            if n == 0:
                continue
            identity = self._identity(tenant, series)
            if not isinstance(identity, _Identity):
                outcome.reject(index, -1, n, *identity)
                continue
            conflict = self._kind_conflict(tenant, series.metric, identity)
            if conflict is not None:
                outcome.reject(index, -1, n, *conflict)
                continue
            # A series with unknown fields goes the long way: copies drop them.
            if whole[index] and not len(UnknownFieldSet(series)):
                refused = self._admit(tenant, series.metric, identity, now_ms, claims)
                if refused is not None:
                    outcome.reject(index, -1, n, *refused)
                    continue
                outcome.accepted += n
                entry = (identity.sid, series, True, not identity.labels_in_order)
                per_partition.setdefault(identity.partition, []).append(entry)
                continue
            accepted = self._accept_samples(tenant, index, series, identity, now_ms, outcome, claims)
            if accepted is not None:
                partition, sid, samples = accepted
                per_partition.setdefault(partition, []).append((sid, samples, False, False))

    def _accept_columns(
        self,
        tenant: str,
        series_list: Sequence[metrics_pb2.SeriesSamples],
        columns: SeriesColumns,
        now_ms: int,
        outcome: _Outcome,
        per_partition: dict[int, list[_Entry]],
        claims: Claims,
    ) -> None:
        """_accept_columnar (same registry calls, same rejections in the same order) for series
        given in columns: a series that passes every check whole goes into its event as its
        resolved identity and its points; any other takes _accept_samples on its message."""
        lengths = columns.counts.tolist()
        resolved = [self._resolve(tenant, template) for template in columns.templates]
        ts, values = columns.timestamps_ms, columns.values
        newest, oldest = now_ms + self._limits.max_future_skew_ms, now_ms - self._retention_ms
        bad = (ts > newest) | (ts < oldest) | ~np.isfinite(values)
        counter = [isinstance(r, _Resolved) and r.identity.kind == _COUNTER for r in resolved]
        if any(counter):
            bad |= np.repeat(np.array(counter, dtype=bool), columns.counts) & (values < 0)
        plain = [isinstance(r, _Resolved) and r.identity.kind in (_COUNTER, _GAUGE) for r in resolved]
        whole = (~_any_per_series(bad, lengths) & np.array(plain, dtype=bool)).tolist()
        ts_encoded, ts_offsets_array = varints(ts)
        ts_bytes = ts_encoded.tobytes()
        offsets = ts_offsets_array.tolist()
        value_bytes = values.astype("<f8").tobytes()
        lo = 0
        for index, n in enumerate(lengths):
            first, lo = lo, lo + n
            if n == 0:
                continue
            found = resolved[index]
            if not isinstance(found, _Resolved):
                outcome.reject(index, -1, n, *found)
                continue
            identity = found.identity
            conflict = self._kind_conflict(tenant, found.metric, identity)
            if conflict is not None:
                outcome.reject(index, -1, n, *conflict)
                continue
            if whole[index]:
                refused = self._admit(tenant, found.metric, identity, now_ms, claims)
                if refused is not None:
                    outcome.reject(index, -1, n, *refused)
                    continue
                outcome.accepted += n
                stamps = ts_bytes[offsets[first] : offsets[lo]]
                body = b"".join(
                    (
                        found.event_template,
                        _TS_TAG,
                        varint(len(stamps)),
                        stamps,
                        _VALUES_TAG,
                        varint(8 * n),
                        value_bytes[8 * first : 8 * lo],
                    )
                )
                per_partition.setdefault(identity.partition, []).append((identity.sid, body, False, False))
                continue
            accepted = self._accept_samples(tenant, index, series_list[index], identity, now_ms, outcome, claims)
            if accepted is not None:
                partition, sid, samples = accepted
                per_partition.setdefault(partition, []).append((sid, samples, False, False))

    def _accept_samples(
        self,
        tenant: str,
        index: int,
        series: metrics_pb2.SeriesSamples,
        identity: _Identity,
        now_ms: int,
        outcome: _Outcome,
        claims: Claims,
    ) -> tuple[int, int, metrics_pb2.SeriesSamples] | None:
        n = len(series.timestamps_ms)
        shape = _shape_problem(series, identity.kind)
        if shape:
            outcome.reject(index, -1, n, R.REJECT_REASON_MALFORMED_SERIES, f"metric {series.metric!r}: {shape}")
            return None

        ts = np.array(series.timestamps_ms, dtype=np.int64)
        keep = np.ones(n, dtype=bool)
        self._check(
            index,
            series.metric,
            keep,
            ts > now_ms + self._limits.max_future_skew_ms,
            outcome,
            R.REJECT_REASON_TIMESTAMP_TOO_NEW,
            f"more than {self._limits.max_future_skew_ms // 1000} s in the future (check the sender's clock)",
        )
        self._check(
            index,
            series.metric,
            keep,
            ts < now_ms - self._retention_ms,
            outcome,
            R.REJECT_REASON_TIMESTAMP_TOO_OLD,
            f"older than the longest retention ({self._retention_ms // 86_400_000} days)",
        )

        kind = identity.kind
        if kind in (MetricKind.COUNTER, MetricKind.GAUGE):
            values = np.array(series.values, dtype=np.float64)
            self._check(
                index,
                series.metric,
                keep,
                ~np.isfinite(values),
                outcome,
                R.REJECT_REASON_NON_FINITE_VALUE,
                "value is NaN or infinite",
            )
            if kind == MetricKind.COUNTER:
                self._check(
                    index,
                    series.metric,
                    keep,
                    values < 0,
                    outcome,
                    R.REJECT_REASON_NEGATIVE_COUNTER_DELTA,
                    "counter delta is negative",
                )
        elif kind == MetricKind.TIMER and series.sketch_sizes:
            for bad, reason, what in _sketch_problems(series):
                self._check(index, series.metric, keep, bad, outcome, reason, what)
        elif kind == MetricKind.TIMER:
            counts = np.array(series.observation_counts, dtype=np.int64)
            observations = np.array(series.observations, dtype=np.float64)
            bad = ~np.isfinite(observations)
            if bad.any():
                owner = np.repeat(np.arange(n), counts)
                bad_sample = np.zeros(n, dtype=bool)
                bad_sample[owner[bad]] = True
                self._check(
                    index,
                    series.metric,
                    keep,
                    bad_sample,
                    outcome,
                    R.REJECT_REASON_NON_FINITE_VALUE,
                    "an observation is NaN or infinite",
                )

        accepted = int(keep.sum())
        if accepted == 0:
            return None
        refused = self._admit(tenant, series.metric, identity, now_ms, claims)
        if refused is not None:
            outcome.reject(index, -1, accepted, *refused)
            return None
        outcome.accepted += accepted
        return identity.partition, identity.sid, _accepted_copy(series, keep, kind, accepted == n)

    @staticmethod
    def _check(
        index: int, metric: str, keep: np.ndarray, bad: np.ndarray, outcome: _Outcome, reason: Reason, what: str
    ) -> None:
        hit = bad & keep
        if hit.any():
            first = int(np.argmax(hit))
            outcome.reject(index, first, int(hit.sum()), reason, f"metric {metric!r}: sample {first} {what}")
            keep &= ~hit


def _series_wire(entries: list[_Entry]) -> bytes:
    """The entries as the wire bytes of SampleBatchAccepted.series (messages serialized after
    the fixups _events makes to a series kept as sent)."""
    parts: list[bytes] = []
    for _, samples, as_sent, reorder in entries:
        if isinstance(samples, metrics_pb2.SeriesSamples):
            if as_sent or reorder:
                fixed = metrics_pb2.SeriesSamples()
                fixed.CopyFrom(samples)
                if as_sent and not fixed.region:
                    fixed.region = "local"
                if reorder:
                    del fixed.labels[:]
                    fixed.labels.extend(sorted(samples.labels, key=lambda label: label.name))
                samples = fixed
            body = samples.SerializeToString(deterministic=True)
        else:
            body = samples
        parts.append(_SERIES_TAG + varint(len(body)) + body)
    return b"".join(parts)


def _refused(
    result: ingest_pb2.BatchResult, batch: metrics_pb2.SampleBatch, reason: Reason, message: str
) -> ingest_pb2.BatchResult:
    """`result` as the answer to a batch refused whole, nothing of it accepted."""
    result.status = ingest_pb2.BATCH_STATUS_REJECTED
    result.rejected_samples = sum(len(s.timestamps_ms) for s in batch.series)
    result.error = message
    result.rejections.add(sample_index=-1, reason=reason, message=message)
    INGEST_REJECTED.inc(reason_label(reason), by=result.rejected_samples)
    return result


def reason_label(reason: Reason) -> str:
    """`REJECT_REASON_SERIES_LIMIT` -> `series_limit` (the `reason` label of the counters)."""
    return ingest_pb2.RejectReason.Name(reason).removeprefix("REJECT_REASON_").lower()


def _sample_count(batch: metrics_pb2.SampleBatch) -> int:
    total = 0
    for s in batch.series:
        total += len(s.timestamps_ms) + len(s.observations) + len(s.distinct_values) + len(s.distinct_hashes)
        total += len(s.sketch_keys)
    return total


_COUNTER, _GAUGE, _TIMER = int(MetricKind.COUNTER), int(MetricKind.GAUGE), int(MetricKind.TIMER)


@dataclass(slots=True)
class _Columns:
    """Some series of a batch, their columns appended one after another into one scratch
    message (protobuf copies them in C; numpy then reads each column once)."""

    index: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    counter: list[bool] = field(default_factory=list)
    observed: list[int] = field(default_factory=list)
    joined: metrics_pb2.SeriesSamples = field(default_factory=metrics_pb2.SeriesSamples)

    def bad_timestamps(self, newest_ms: int, oldest_ms: int) -> npt.NDArray[np.bool_]:
        ts = np.array(self.joined.timestamps_ms, dtype=np.int64)
        return (ts > newest_ms) | (ts < oldest_ms)


@dataclass(slots=True)
class _Scan:
    """One pass over a batch's series: the weighted sample count (as _sample_count) and the
    series of plain shape (those _shape_problem finds nothing wrong with), in two groups:
    counters and gauges (`values`) and timers with observations (`timers`)."""

    total: int
    lengths: list[int]
    values: _Columns
    timers: _Columns

    def passing(self, newest_ms: int, oldest_ms: int) -> list[bool]:
        """Per series: True when it has a plain shape and every sample passes every check."""
        whole = np.zeros(len(self.lengths), dtype=bool)
        columns = self.values
        if columns.index:
            bad = columns.bad_timestamps(newest_ms, oldest_ms)
            values = np.array(columns.joined.values, dtype=np.float64)
            bad |= ~np.isfinite(values)
            if any(columns.counter):
                bad |= np.repeat(np.array(columns.counter, dtype=bool), columns.lengths) & (values < 0)
            whole[columns.index] = ~_any_per_series(bad, columns.lengths)
        columns = self.timers
        if columns.index:
            bad_series = _any_per_series(columns.bad_timestamps(newest_ms, oldest_ms), columns.lengths)
            lengths = np.array(columns.lengths, dtype=np.int64)
            counts = np.array(columns.joined.observation_counts, dtype=np.int64)
            # Every series here has timestamps, so no run is empty (reduceat needs that).
            bad_series |= np.add.reduceat(counts, np.cumsum(lengths) - lengths) != np.array(columns.observed)
            observations = np.array(columns.joined.observations, dtype=np.float64)
            bad_series |= _any_per_series(~np.isfinite(observations), columns.observed)
            whole[columns.index] = ~bad_series
        return list(whole.tolist())


def _scan(series_list: Sequence[metrics_pb2.SeriesSamples]) -> _Scan:
    values, timers = _Columns(), _Columns()
    lengths: list[int] = []
    total = 0
    for index, s in enumerate(series_list):
        ts = s.timestamps_ms
        n = len(ts)
        lengths.append(n)
        kind = s.kind
        if n and kind in (_GAUGE, _COUNTER):
            column = s.values
            if len(column) == n and not (
                s.observation_counts or s.observations or s.distinct_values or s.distinct_hashes or _has_sketch(s)
            ):
                total += n
                values.index.append(index)
                values.lengths.append(n)
                values.counter.append(kind == _COUNTER)
                values.joined.timestamps_ms.extend(ts)
                values.joined.values.extend(column)
                continue
        elif n and kind == _TIMER:
            counts = s.observation_counts
            if len(counts) == n and not (s.values or s.distinct_values or s.distinct_hashes or _has_sketch(s)):
                observations = s.observations
                total += n + len(observations)
                timers.index.append(index)
                timers.lengths.append(n)
                timers.observed.append(len(observations))
                timers.joined.timestamps_ms.extend(ts)
                timers.joined.observation_counts.extend(counts)
                timers.joined.observations.extend(observations)
                continue
        total += n + len(s.observations) + len(s.distinct_values) + len(s.distinct_hashes) + len(s.sketch_keys)
    return _Scan(total=total, lengths=lengths, values=values, timers=timers)


def _any_per_series(bad: npt.NDArray[np.bool_], lengths: list[int]) -> npt.NDArray[np.bool_]:
    """Per series: does any of its entries (consecutive runs of `lengths`) hold True?"""
    out = np.zeros(len(lengths), dtype=bool)
    if bad.any():
        owner = np.repeat(np.arange(len(lengths)), lengths)
        out[owner[bad]] = True
    return out


def _shape_problem(series: metrics_pb2.SeriesSamples, kind: int) -> str | None:
    n = len(series.timestamps_ms)
    if kind in (MetricKind.COUNTER, MetricKind.GAUGE):
        if len(series.values) != n:
            return f"{len(series.values)} values for {n} timestamps"
        if series.observation_counts or series.observations or series.distinct_values or series.distinct_hashes:
            return "counters and gauges carry values, not observations"
        if _has_sketch(series):
            return "counters and gauges carry values, not sketches"
        return None
    if kind == MetricKind.TIMER and _has_sketch(series):
        return _sketch_shape_problem(series)
    if _has_sketch(series):
        return "only timers carry sketches"
    if len(series.observation_counts) != n:
        return f"{len(series.observation_counts)} observation_counts for {n} timestamps"
    expected = int(np.sum(np.array(series.observation_counts, dtype=np.int64)))
    if series.values:
        return f"{MetricKind(kind).label} samples carry observations, not values"
    if kind == MetricKind.TIMER:
        if len(series.observations) != expected:
            return f"observation_counts add up to {expected} but {len(series.observations)} observations were sent"
        if series.distinct_values or series.distinct_hashes:
            return "timers carry observations, not distinct values"
        return None
    if series.observations:
        return "distinct samples carry distinct_values or distinct_hashes, not observations"
    if series.distinct_values and series.distinct_hashes:
        return "send either distinct_values or distinct_hashes, not both"
    got = len(series.distinct_values) or len(series.distinct_hashes)
    if got != expected:
        return f"observation_counts add up to {expected} but {got} distinct values were sent"
    return None


def _has_sketch(series: metrics_pb2.SeriesSamples) -> bool:
    return bool(
        series.sketch_sizes
        or series.sketch_keys
        or series.sketch_counts
        or series.sketch_sums
        or series.sketch_mins
        or series.sketch_maxs
        or series.sketch_lasts
    )


def _sketch_shape_problem(series: metrics_pb2.SeriesSamples) -> str | None:
    n = len(series.timestamps_ms)
    if series.observation_counts or series.observations:
        return "a timer series carries observations or sketches, not both"
    if series.values or series.distinct_values or series.distinct_hashes:
        return "timer sketches carry no values nor distinct values"
    for column in ("sketch_sums", "sketch_mins", "sketch_maxs", "sketch_lasts", "sketch_sizes"):
        got = len(getattr(series, column))
        if got != n:
            return f"{got} {column} for {n} timestamps"
    buckets = int(np.sum(np.array(series.sketch_sizes, dtype=np.int64)))
    if len(series.sketch_keys) != buckets or len(series.sketch_counts) != buckets:
        return (
            f"sketch_sizes add up to {buckets} buckets but {len(series.sketch_keys)} sketch_keys and "
            f"{len(series.sketch_counts)} sketch_counts were sent"
        )
    return None


def _sketch_problems(series: metrics_pb2.SeriesSamples) -> list[tuple[np.ndarray, Reason, str]]:
    """(bad samples, reason, what) for each way a sketch sample can be wrong; the shape is
    already checked."""
    sums = np.array(series.sketch_sums, dtype=np.float64)
    mins = np.array(series.sketch_mins, dtype=np.float64)
    maxs = np.array(series.sketch_maxs, dtype=np.float64)
    lasts = np.array(series.sketch_lasts, dtype=np.float64)
    sizes = np.array(series.sketch_sizes, dtype=np.int64)
    keys = np.array(series.sketch_keys, dtype=np.int64)
    counts = np.array(series.sketch_counts, dtype=np.uint64)
    n = len(sizes)
    owner = np.repeat(np.arange(n), sizes)

    def per_sample(bad_entry: np.ndarray) -> np.ndarray:
        bad = np.zeros(n, dtype=bool)
        bad[owner[bad_entry]] = True
        return bad

    finite = np.isfinite(sums) & np.isfinite(mins) & np.isfinite(maxs) & np.isfinite(lasts)
    # A key steps down (or repeats) only where a new sample starts.
    starts = np.zeros(len(keys), dtype=bool)
    first = np.cumsum(sizes) - sizes
    starts[first[sizes > 0]] = True
    unsorted = np.zeros(len(keys), dtype=bool)
    unsorted[1:] = (keys[1:] <= keys[:-1]) & ~starts[1:]
    has = sizes > 0
    last_index = np.cumsum(sizes) - 1
    in_first = np.ones(n, dtype=bool)
    in_last = np.ones(n, dtype=bool)
    ok = has & finite
    in_first[ok] = ddsketch_keys(mins[ok]) == keys[first[ok]]
    in_last[ok] = ddsketch_keys(maxs[ok]) == keys[last_index[ok]]
    return [
        (~has, R.REJECT_REASON_MALFORMED_SERIES, "sketch has no buckets"),
        (~finite, R.REJECT_REASON_NON_FINITE_VALUE, "sketch sum, min, max or last is NaN or infinite"),
        (
            per_sample(np.abs(keys) > DDSKETCH_MAX_KEY),
            R.REJECT_REASON_MALFORMED_SERIES,
            f"sketch key is outside [-{DDSKETCH_MAX_KEY}, {DDSKETCH_MAX_KEY}]",
        ),
        (per_sample(counts == 0), R.REJECT_REASON_MALFORMED_SERIES, "sketch bucket count is 0"),
        (
            per_sample(counts >= np.uint64(2**62)),
            R.REJECT_REASON_MALFORMED_SERIES,
            "sketch bucket count is above 2**62",
        ),
        (
            # Summed in floats: a sum of uint64 counts could wrap around and pass.
            _float_sums(counts, sizes) >= float(2**62),
            R.REJECT_REASON_MALFORMED_SERIES,
            "sketch bucket counts add up to more than 2**62 observations",
        ),
        (per_sample(unsorted), R.REJECT_REASON_MALFORMED_SERIES, "sketch keys are not strictly increasing"),
        (
            (mins > maxs) | (lasts < mins) | (lasts > maxs),
            R.REJECT_REASON_MALFORMED_SERIES,
            "sketch needs min <= last <= max",
        ),
        (
            ~(in_first & in_last),
            R.REJECT_REASON_MALFORMED_SERIES,
            "sketch min/max do not fall in its first/last bucket",
        ),
    ]


def _float_sums(counts: npt.NDArray[np.uint64], sizes: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Per sample, the sum of its `sizes[i]` consecutive counts (0.0 for a sample without any)."""
    ends = np.cumsum(np.concatenate([np.zeros(1), counts.astype(np.float64)]))
    bounds = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(sizes)])
    return np.asarray(ends[bounds[1:]] - ends[bounds[:-1]], dtype=np.float64)


def _accepted_copy(
    series: metrics_pb2.SeriesSamples, keep: np.ndarray, kind: int, everything: bool
) -> metrics_pb2.SeriesSamples:
    """The accepted part of a series as it goes into the log (distinct values hashed)."""
    out = metrics_pb2.SeriesSamples(metric=series.metric, kind=series.kind, region=series.region or "local")
    out.labels.extend(sorted(series.labels, key=lambda label: label.name))
    if everything and kind != MetricKind.DISTINCT:
        out.timestamps_ms.extend(series.timestamps_ms)
        out.values.extend(series.values)
        out.observation_counts.extend(series.observation_counts)
        out.observations.extend(series.observations)
        if series.sketch_sizes:
            _copy_sketches(series, out, None)
        return out
    ts = np.array(series.timestamps_ms, dtype=np.int64)[keep]
    out.timestamps_ms.extend(ts.tolist())
    if kind in (MetricKind.COUNTER, MetricKind.GAUGE):
        out.values.extend(np.array(series.values, dtype=np.float64)[keep].tolist())
        return out
    if series.sketch_sizes:
        _copy_sketches(series, out, keep)
        return out
    counts = np.array(series.observation_counts, dtype=np.int64)
    owner_keep = np.repeat(keep, counts)
    out.observation_counts.extend(counts[keep].tolist())
    if kind == MetricKind.TIMER:
        out.observations.extend(np.array(series.observations, dtype=np.float64)[owner_keep].tolist())
    else:
        if series.distinct_values:
            hashes = hash_strings(list(series.distinct_values))
        else:
            hashes = np.array(series.distinct_hashes, dtype=np.uint64)
        out.distinct_hashes.extend(hashes[owner_keep].tolist())
    return out


def _copy_sketches(series: metrics_pb2.SeriesSamples, out: metrics_pb2.SeriesSamples, keep: np.ndarray | None) -> None:
    if keep is None:
        for column in _SKETCH_COLUMNS:
            getattr(out, column).extend(getattr(series, column))
        return
    sizes = np.array(series.sketch_sizes, dtype=np.int64)
    entry_keep = np.repeat(keep, sizes)
    for column in _SKETCH_COLUMNS:
        values = np.array(getattr(series, column))
        mask = entry_keep if column in ("sketch_keys", "sketch_counts") else keep
        getattr(out, column).extend(values[mask].tolist())


_SKETCH_COLUMNS = (
    "sketch_sums",
    "sketch_mins",
    "sketch_maxs",
    "sketch_lasts",
    "sketch_sizes",
    "sketch_keys",
    "sketch_counts",
)
