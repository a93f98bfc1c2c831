"""The quarantine: what consumers of the event log set aside, kept on the log itself.

Two kinds of entries, both events on the quarantine topic (one partition; payloads in
contracts/argus/events/v1/quarantine.proto):

- a **quarantined record** (`RecordQuarantined`): a record a consumer group could not
  decode; the group moved past it, so everything after it is applied;
- a **halted partition** (`PartitionHalted`, ended by `PartitionResumed`): a group met an
  event of a newer schema version than its build understands and stopped that partition
  there; a newer build resumes it.

Guarantees: an entry is durable before the consumer commits past the record (it is
appended before the consumer is told to skip the record). Its event id is SHA-256 over
(type, group, topic, partition, offset), so meeting the same record again after a restart
records nothing new: the embedded log drops the duplicate on append, and `read_quarantine`
drops it by id (Kafka keeps both copies). The topic is created on first use.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from contracts.argus.events.v1 import quarantine_pb2
from core.errors import ArgusError
from core.events import QUARANTINE_TOPIC, SCHEMA_VERSION, decode_payload, make_event
from core.ports import Event, EventLog, LogRecord

logger = logging.getLogger(__name__)

PAYLOAD_PREFIX_BYTES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantinedRecord:
    group: str
    topic: str
    partition: int
    offset: int
    error: str
    quarantined_at_ms: int
    event_id: bytes
    event_type: str
    schema_version: int
    payload_bytes: int
    payload_prefix: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class HaltedPartition:
    group: str
    topic: str
    partition: int
    offset: int
    event_type: str
    schema_version: int
    supported_version: int
    error: str
    halted_at_ms: int
    resumed_at_ms: int | None = None

    @property
    def halted(self) -> bool:
        return self.resumed_at_ms is None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineReport:
    """Every entry of the quarantine topic, oldest first, duplicates dropped."""

    records: tuple[QuarantinedRecord, ...]
    halts: tuple[HaltedPartition, ...]

    def open_halts(self, group: str, topic: str) -> dict[int, HaltedPartition]:
        """Partitions `group` halted on `topic` and no build resumed since, by partition."""
        return {h.partition: h for h in self.halts if h.group == group and h.topic == topic and h.halted}


def _position(group: str, topic: str, partition: int, offset: int) -> bytes:
    return b"\0".join((group.encode(), topic.encode(), str(partition).encode(), str(offset).encode()))


class Quarantine:
    """Writes quarantine entries to the event log's quarantine topic."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._topic_ready = False

    async def _append(
        self,
        payload: quarantine_pb2.RecordQuarantined | quarantine_pb2.PartitionHalted | quarantine_pb2.PartitionResumed,
        *,
        identity: bytes,
        time_ms: int,
    ) -> None:
        if not self._topic_ready:
            await self._log.ensure_topic(QUARANTINE_TOPIC, 1)
            self._topic_ready = True
        event = make_event(payload, identity=identity, partition_key=b"", time_ms=time_ms)
        await self._log.append(QUARANTINE_TOPIC, [(0, event)])

    async def set_aside(self, group: str, record: LogRecord, error: str, *, now_ms: int) -> QuarantinedRecord:
        """Record that `group` could not decode `record` (durable on return)."""
        event = record.event
        entry = QuarantinedRecord(
            group=group,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=error,
            quarantined_at_ms=now_ms,
            event_id=b"" if record.unreadable is not None else event.event_id,
            event_type=event.type,
            schema_version=event.schema_version,
            payload_bytes=len(event.payload),
            payload_prefix=event.payload[:PAYLOAD_PREFIX_BYTES],
        )
        payload = quarantine_pb2.RecordQuarantined(
            group=group,
            topic=entry.topic,
            partition=entry.partition,
            offset=entry.offset,
            error=error,
            quarantined_at_ms=now_ms,
            event_id=entry.event_id,
            event_type=entry.event_type,
            schema_version=max(0, entry.schema_version),
            payload_bytes=entry.payload_bytes,
            payload_prefix=entry.payload_prefix,
        )
        await self._append(
            payload, identity=_position(group, record.topic, record.partition, record.offset), time_ms=now_ms
        )
        return entry

    async def halt(self, group: str, record: LogRecord, error: str, *, now_ms: int) -> HaltedPartition:
        """Record that `group` stopped `record`'s partition at it (durable on return)."""
        entry = HaltedPartition(
            group=group,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_type=record.event.type,
            schema_version=record.event.schema_version,
            supported_version=SCHEMA_VERSION,
            error=error,
            halted_at_ms=now_ms,
        )
        payload = quarantine_pb2.PartitionHalted(
            group=group,
            topic=entry.topic,
            partition=entry.partition,
            offset=entry.offset,
            event_type=entry.event_type,
            schema_version=max(0, entry.schema_version),
            supported_version=SCHEMA_VERSION,
            error=error,
            halted_at_ms=now_ms,
        )
        await self._append(
            payload, identity=_position(group, record.topic, record.partition, record.offset), time_ms=now_ms
        )
        return entry

    async def resume(self, halt: HaltedPartition, *, now_ms: int) -> None:
        """Record that a build which understands the event applied past `halt`."""
        payload = quarantine_pb2.PartitionResumed(
            group=halt.group, topic=halt.topic, partition=halt.partition, offset=halt.offset, resumed_at_ms=now_ms
        )
        await self._append(
            payload, identity=_position(halt.group, halt.topic, halt.partition, halt.offset), time_ms=now_ms
        )


async def read_quarantine(log: EventLog, *, page: int = 1000) -> QuarantineReport:
    """Every entry of the quarantine topic (creating the topic when missing)."""
    await log.ensure_topic(QUARANTINE_TOPIC, 1)
    seen: set[bytes] = set()
    records: list[QuarantinedRecord] = []
    halts: dict[tuple[str, str, int, int], HaltedPartition] = {}
    offset = 0
    while True:
        batch = await log.read(QUARANTINE_TOPIC, 0, offset, page)
        for record in batch:
            event = record.event
            if record.unreadable is not None or event.event_id in seen:
                continue
            seen.add(event.event_id)
            try:
                _read_entry(event, records, halts)
            except ArgusError as exc:  # a newer build's entry: show what this build knows
                logger.warning("quarantine: skipping entry at offset %d: %s", record.offset, exc)
        if len(batch) < page:
            break
        offset = batch[-1].offset + 1
    return QuarantineReport(records=tuple(records), halts=tuple(halts.values()))


def _read_entry(
    event: Event, records: list[QuarantinedRecord], halts: dict[tuple[str, str, int, int], HaltedPartition]
) -> None:
    if event.type == quarantine_pb2.RecordQuarantined.DESCRIPTOR.full_name:
        q = decode_payload(event, quarantine_pb2.RecordQuarantined)
        records.append(
            QuarantinedRecord(
                group=q.group,
                topic=q.topic,
                partition=q.partition,
                offset=q.offset,
                error=q.error,
                quarantined_at_ms=q.quarantined_at_ms,
                event_id=q.event_id,
                event_type=q.event_type,
                schema_version=q.schema_version,
                payload_bytes=q.payload_bytes,
                payload_prefix=q.payload_prefix,
            )
        )
    elif event.type == quarantine_pb2.PartitionHalted.DESCRIPTOR.full_name:
        h = decode_payload(event, quarantine_pb2.PartitionHalted)
        halts[(h.group, h.topic, h.partition, h.offset)] = HaltedPartition(
            group=h.group,
            topic=h.topic,
            partition=h.partition,
            offset=h.offset,
            event_type=h.event_type,
            schema_version=h.schema_version,
            supported_version=h.supported_version,
            error=h.error,
            halted_at_ms=h.halted_at_ms,
        )
    elif event.type == quarantine_pb2.PartitionResumed.DESCRIPTOR.full_name:
        r = decode_payload(event, quarantine_pb2.PartitionResumed)
        key = (r.group, r.topic, r.partition, r.offset)
        if key in halts:
            halts[key] = dataclasses.replace(halts[key], resumed_at_ms=r.resumed_at_ms)
