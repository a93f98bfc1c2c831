"""Ports: the small capabilities the sides depend on, each with one contract test suite.

Adapters (core/adapters/) implement them per backend: SQLite for the embedded deployment;
Kafka, DynamoDB and S3 for the distributed one. Sides get adapters by injection and never
import an adapter directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from core.points import Points

# ---------------------------------------------------------------------------- event log


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """An immutable fact. `event_id` is SHA-256 over the canonical content (core/events.py)."""

    event_id: bytes
    type: str
    schema_version: int
    time_ms: int
    partition_key: bytes
    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """An event at its position in the log.

    `unreadable` is set when the adapter found a record it cannot read as an Argus event (a
    Kafka record written by another producer, without the envelope headers): it says why,
    and `event` then holds what there was (the record's key and value, an empty type, an
    id derived from the position). Consumers set such records aside (core/consumer.py);
    `decode_payload` rejects them.
    """

    topic: str
    partition: int
    offset: int
    event: Event
    unreadable: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppendResult:
    """Per appended event, in input order: its offset, or None when an event with the same
    id was already in the topic (the append was a no-op for it)."""

    offsets: tuple[int | None, ...]

    @property
    def duplicates(self) -> int:
        return sum(1 for o in self.offsets if o is None)


class EventLogWriter(Protocol):
    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        """Append `(partition, event)` pairs.

        Returns only once every event is durable (an fsync'd commit, or Kafka acks=all).
        All-or-nothing for one call on the embedded log. Events within one partition keep
        their input order. An event whose id is already in the topic is not appended again
        where the backend can tell (embedded log: always; Kafka: consumers drop it).
        """
        ...


class RebalanceListener(Protocol):
    """What a consumer-group member is told when its partitions change (Kafka rebalances;
    the embedded log has one member, which gets every partition once).

    Both calls are awaited before the member goes on: the group does not hand revoked
    partitions to another member until `partitions_revoked` returns.
    """

    async def partitions_revoked(self, partitions: frozenset[int]) -> None:
        """The member is about to give up `partitions` (possibly all it has; some may come
        back in the next assignment). Make their effects durable and commit them now, or
        drop them: whatever is not committed is re-delivered to the next owner. Offsets of
        these partitions can still be committed during this call, not after it."""
        ...

    async def partitions_assigned(self, partitions: frozenset[int]) -> None:
        """The member now owns exactly `partitions`; reading resumes from their committed
        offsets. State kept for partitions no longer owned is stale: another member may
        have moved them on."""
        ...


class EventLogConsumer(Protocol):
    """A member of a consumer group reading one topic.

    Reads resume after the group's committed offsets (or from the beginning when the group
    has none). Offsets are committed explicitly, and only after the effects of the records
    up to them are durable: a crash re-delivers from the last commit (at-least-once), which
    projectors turn into exactly-once effect by remembering applied positions.
    """

    @property
    def assigned(self) -> frozenset[int]:
        """Partitions this member currently owns (changes on a rebalance; see
        RebalanceListener). Records of a partition no longer owned must not be applied."""
        ...

    async def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        """Next records of the assigned partitions in offset order per partition; waits up to
        `timeout_s` for at least one record, returns [] if none came."""
        ...

    async def commit(self, next_offsets: Mapping[int, int]) -> None:
        """Durably record, per partition, the offset of the next record to read. Committing
        a partition another member owns fails with StorageError (Kafka; the embedded log's
        single member owns every partition)."""
        ...

    async def committed(self) -> dict[int, int]:
        """The group's committed next-offsets per partition (missing = from the start)."""
        ...

    async def lag(self) -> dict[int, int]:
        """Records not yet polled per assigned partition."""
        ...

    async def close(self) -> None: ...


class EventLog(EventLogWriter, Protocol):
    """The event log: topics split into partitions, each an append-only sequence of events."""

    @property
    def dedups_on_append(self) -> bool:
        """True when `append` drops an event whose id is already in the topic (embedded log).
        False for Kafka: a duplicate gets a new offset and consumers drop it by event id."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_topic(self, topic: str, partitions: int) -> int:
        """Create the topic if missing; return its real partition count."""
        ...

    async def partitions(self, topic: str) -> int: ...

    async def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[LogRecord]:
        """Records of one partition from `offset` on (at most `max_records`)."""
        ...

    async def end_offset(self, topic: str, partition: int) -> int:
        """Offset the next appended record of this partition will get."""
        ...

    def consumer(
        self,
        group: str,
        topic: str,
        *,
        listener: RebalanceListener | None = None,
        session_timeout_ms: int | None = None,
    ) -> EventLogConsumer:
        """A consumer-group member for `topic` (call `close()` when done); `listener` hears
        about its partitions changing. `session_timeout_ms`: at most how long a member that
        stopped (kill -9) keeps its partitions before the group moves them (None, or longer
        than the log's own setting: the log's setting; the embedded logs have one member per
        group, so it has no effect there)."""
        ...


@runtime_checkable
class ForgetsGroups(Protocol):
    """An event log whose retention waits for every consumer group (the embedded log, 0020):
    a group no longer used must be forgotten, or it holds the log's retention back forever.
    Kafka's retention does not wait for groups, so its adapter has no need of this."""

    async def forget_group(self, group: str, topic: str) -> None: ...


# ---------------------------------------------------------------------------- hot store


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredChunk:
    """One item of a tier: the points of one series over one chunk span.

    `partition`/`applied_offset` is the last samples-topic position whose effect the chunk
    holds: a projector skips events at or below it, so replays never double-apply.
    """

    series_id: int
    chunk_start_ms: int
    data: bytes
    partition: int
    applied_offset: int


class ChunkStore(Protocol):
    async def write_chunks(self, tier: str, chunks: Sequence[StoredChunk]) -> None:
        """Upsert chunks (by series id and chunk start). Durable on return. A chunk whose
        stored applied_offset is already >= the new one is left as it is (never rewinds)."""
        ...

    async def get_chunks(self, tier: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredChunk]:
        """Chunks by (series id, chunk start); missing keys are absent from the result."""
        ...

    async def read_range(
        self, tier: str, series_ids: Sequence[int], start_ms: int, end_ms: int, chunk_span_ms: int
    ) -> list[StoredChunk]:
        """Chunks of these series overlapping [start_ms, end_ms)."""
        ...

    async def delete_before(self, tier: str, before_ms: int, chunk_span_ms: int) -> int:
        """Delete chunks that end at or before `before_ms` (retention); return how many."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesRecord:
    """An entry of the series index."""

    tenant: str
    series_id: int
    metric: str
    kind: int
    region: str
    labels: tuple[tuple[str, str], ...]
    first_seen_ms: int
    last_seen_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSummary:
    name: str
    kind: int
    series_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelFilter:
    """Equality filters the index resolves through postings (regex and != are applied by
    the caller on the returned labels)."""

    equal: Mapping[str, str] = field(default_factory=dict)


class SeriesIndex(Protocol):
    async def upsert_series(self, records: Sequence[SeriesRecord]) -> None:
        """Insert new series, widen first/last seen of known ones. Idempotent."""
        ...

    async def find_series(self, tenant: str, metric: str, where: LabelFilter | None = None) -> list[SeriesRecord]:
        """Series of a metric whose labels (and region, under the name "region") equal
        every `where.equal` pair, resolved through label postings, not a scan."""
        ...

    async def list_metrics(self, tenant: str) -> list[MetricSummary]: ...

    async def label_values(self, tenant: str, label: str, metric: str | None = None) -> list[str]:
        """Sorted distinct values of `label` ("region" included) in the tenant (or metric)."""
        ...

    async def tenant_series(self, tenant: str | None = None) -> list[SeriesRecord]:
        """Every series (of a tenant, or all): seeds ingest's kind and cardinality registry."""
        ...


class ProjectorState(Protocol):
    """What a projector remembers besides its read model: event ids it has applied."""

    async def filter_new_events(self, projector: str, event_ids: Sequence[bytes]) -> set[bytes]:
        """Those of `event_ids` this projector has not recorded as applied."""
        ...

    async def record_events(self, projector: str, event_ids: Sequence[bytes], time_ms: int) -> None:
        """Record ids as applied (durable on return)."""
        ...

    async def forget_events_before(self, projector: str, time_ms: int) -> int: ...


class HotStore(ChunkStore, SeriesIndex, ProjectorState, Protocol):
    """The hot read-model store: tier chunks, the series index, projector state."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------- alert read models


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredAlertInstance:
    """An alert instance's newest transition (`payload`: the serialized AlertStateChanged)."""

    tenant: str
    instance_id: str
    rule: str
    state: str
    """The transition's `to` state name (pending, firing, resolved, inactive)."""
    sequence: int
    episode_sequence: int
    """The transition that began its current pending/firing episode (0: not active)."""
    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredAck:
    """An instance's newest ack or un-ack (highest revision)."""

    tenant: str
    instance_id: str
    acked: bool
    author: str
    comment: str
    time_ms: int
    revision: int
    alert_sequence: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredHistoryEntry:
    """One entry of a tenant's alert timeline / notification log, at its log position."""

    tenant: str
    kind: str
    time_ms: int
    partition: int
    offset: int
    rules: tuple[str, ...]
    instances: tuple[str, ...]
    detail: bytes
    """JSON object."""
    event_type: str
    payload: bytes

    @property
    def position(self) -> tuple[int, int, int]:
        return (self.time_ms, self.partition, self.offset)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertModelBatch:
    """What a batch of the alerts topic changed, with the positions it read up to."""

    instances: Sequence[StoredAlertInstance] = ()
    acks: Sequence[StoredAck] = ()
    entries: Sequence[StoredHistoryEntry] = ()
    positions: Mapping[int, int] = field(default_factory=dict)
    """Partition -> the next offset to read: every record before it is in this batch or
    an earlier one."""


class AlertReadModelStore(Protocol):
    """The alert read models (docs/decisions/0046): per tenant, every instance's newest
    transition and ack, and the timeline of state changes, acks, escalations and
    notifications, with the alerts-topic positions they were projected up to."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def positions(self) -> dict[int, int]:
        """Partition -> next offset to read (absent: 0). Durable as `apply` returned."""
        ...

    async def apply(self, batch: AlertModelBatch) -> None:
        """Write the batch atomically (all or nothing, durable on return). Idempotent: an
        instance is replaced only by a higher `sequence`, an ack only by a higher
        `revision`, an entry already held at its (tenant, partition, offset) is kept, and a
        position never moves back; so re-applying any batch changes nothing."""
        ...

    async def instances(
        self, tenant: str, states: Sequence[str], *, rule: str | None = None
    ) -> list[StoredAlertInstance]:
        """The tenant's instances whose state is in `states` (of `rule` if given), any order."""
        ...

    async def get_instances(self, tenant: str, instance_ids: Sequence[str]) -> dict[str, StoredAlertInstance]:
        """The tenant's instances of these ids (absent: never seen)."""
        ...

    async def acks(self, tenant: str, instance_ids: Sequence[str]) -> dict[str, StoredAck]:
        """The tenant's newest acks of these instances (absent: never acked)."""
        ...

    async def entries(
        self, tenant: str, *, since_ms: int, after: tuple[int, int, int] | None, limit: int
    ) -> list[StoredHistoryEntry]:
        """At most `limit` of the tenant's entries at or after `since_ms` and strictly after
        position `after`, in (time, partition, offset) order."""
        ...


# ---------------------------------------------------------------------------- cold store


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchivedPeriod:
    """One archived (tenant, tier, period): the marker the cold-archive projector records
    after the period's Parquet object is written.

    `digest` identifies the hot chunks it was made from (their keys and applied offsets), so
    the projector can tell whether late data changed the period since. `final` says the
    period was checked once more just before the hot store let it go (no re-check after).
    """

    tenant: str
    tier: str
    start_ms: int
    end_ms: int
    rows: int
    digest: str
    final: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ColdRows:
    """Rows to archive: `points` keyed by series id, in the order they are to be stored
    (by metric, then series id, then time), and the index entries of those series."""

    points: Points
    series: Mapping[int, SeriesRecord]


class ColdStore(Protocol):
    """Closed periods of the tiers as Parquet objects under `tenant=T/tier=NAME/date=YYYY-MM-DD/`
    (layout: docs/formats/cold-parquet.md), in a local folder or on S3."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def write_period(
        self, tenant: str, tier: str, start_ms: int, end_ms: int, rows: AsyncIterable[ColdRows]
    ) -> int:
        """Write the object of one period from `rows` (every point must lie in
        [start_ms, end_ms)); return the rows written. Durable on return; replaces the
        period's object as a whole (readers see the old or the new one, never a mix). The
        same rows give the same object key and the same bytes, so re-archiving is a no-op
        in effect. Does not mark the period archived: call `record_archived` after."""
        ...

    async def record_archived(self, periods: Sequence[ArchivedPeriod]) -> None:
        """Record periods as archived (replacing earlier markers of the same tenant, tier and
        start). Durable on return."""
        ...

    async def archived(self, tenant: str, tier: str) -> list[ArchivedPeriod]:
        """Markers of a tenant's tier, by start. Readers may see them up to a few seconds
        late (adapters cache them); the writer's own writes are visible at once."""
        ...

    async def read_range(
        self,
        tenant: str,
        tier: str,
        series_ids: Sequence[int],
        start_ms: int,
        end_ms: int,
        *,
        metric: str | None = None,
    ) -> Points:
        """Rows of these series with start_ms <= ts < end_ms from the archived periods,
        keyed by series id: at most one row per (series, ts), grouped by period and not
        sorted across periods (pass through `core.points.merge` for sorted Points).
        `metric`, when all the series belong to it, lets the adapter skip other metrics'
        row groups; it never changes the answer."""
        ...
