"""Events: topics, ids, envelopes, payload decoding.

An event id is SHA-256 over the event's identity and canonical content, so the same fact
produced twice (a client retry, an ingest retry, a producer retry) has the same id and is
applied once.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from contracts.argus.alerts.v1 import alerts_pb2
from contracts.argus.alerts.v1 import config_pb2 as alert_config_pb2
from contracts.argus.dashboards.v1 import config_pb2 as dashboard_config_pb2
from contracts.argus.events.v1 import events_pb2, quarantine_pb2
from core.errors import CorruptData, UpgradeNeeded
from core.ports import Event, EventLog, LogRecord

SAMPLES_TOPIC = "argus.samples.v1"
CONFIG_TOPIC = "argus.config.v1"
ALERTS_TOPIC = "argus.alerts.v1"
# What consumers set aside: undecodable records, partitions halted on a newer schema version.
QUARANTINE_TOPIC = "argus.quarantine.v1"

DEFAULT_SAMPLE_PARTITIONS = 12

SCHEMA_VERSION = 1

M = TypeVar("M", bound=Message)

PAYLOAD_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        events_pb2.SampleBatchAccepted,
        events_pb2.ApiKeyCreated,
        events_pb2.ApiKeyRevoked,
        events_pb2.ReadModelReplayStarted,
        events_pb2.ReadModelActivated,
        quarantine_pb2.RecordQuarantined,
        quarantine_pb2.PartitionHalted,
        quarantine_pb2.PartitionResumed,
        alert_config_pb2.AlertRuleSaved,
        alert_config_pb2.AlertRuleDeleted,
        alert_config_pb2.ReceiverSaved,
        alert_config_pb2.ReceiverDeleted,
        alert_config_pb2.AlertRoutingSaved,
        alert_config_pb2.SilenceCreated,
        alert_config_pb2.SilenceExpired,
        dashboard_config_pb2.DashboardSaved,
        dashboard_config_pb2.DashboardDeleted,
        alerts_pb2.AlertStateChanged,
        alerts_pb2.NotificationSent,
        alerts_pb2.NotificationFailed,
    )
}

# Upcasters turn an older schema version of a payload into the current one; keyed by
# (type, version). Version 1 is current, so there are none yet.
UPCASTERS: dict[tuple[str, int], Callable[[bytes], bytes]] = {}


def digest(*parts: bytes | str) -> bytes:
    """SHA-256 over length-prefixed parts (so ("ab","c") and ("a","bc") differ)."""
    h = hashlib.sha256()
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        h.update(len(raw).to_bytes(8, "big"))
        h.update(raw)
    return h.digest()


def make_event(payload: Message, *, identity: bytes, partition_key: bytes, time_ms: int) -> Event:
    """Wrap a payload in an envelope whose id is SHA-256 over (type, identity).

    `identity` must already cover the canonical content that makes this event unique.
    """
    type_name = payload.DESCRIPTOR.full_name
    return Event(
        event_id=digest(type_name, identity),
        type=type_name,
        schema_version=SCHEMA_VERSION,
        time_ms=time_ms,
        partition_key=partition_key,
        payload=payload.SerializeToString(deterministic=True),
    )


def decode_payload(event: Event, expected: type[M]) -> M:
    """Parse an event's payload, upcasting old versions.

    Raises CorruptData for what will never decode (another type, an unknown old version, bytes
    that do not parse) and UpgradeNeeded for a schema version newer than this build's: the
    event is valid, and a newer build applies it.
    """
    name = expected.DESCRIPTOR.full_name
    if event.type != name:
        raise CorruptData(f"event {event.event_id.hex()[:16]} has type {event.type!r}, expected {name!r}")
    payload = event.payload
    version = event.schema_version
    if version > SCHEMA_VERSION:
        raise UpgradeNeeded(
            f"event {event.event_id.hex()[:16]} of type {event.type} has schema version "
            f"{event.schema_version}, newer than this build understands ({SCHEMA_VERSION}); upgrade Argus"
        )
    while version < SCHEMA_VERSION:
        upcast = UPCASTERS.get((event.type, version))
        if upcast is None:
            raise CorruptData(f"no upcaster for {event.type} schema version {version}")
        payload = upcast(payload)
        version += 1
    try:
        return expected.FromString(payload)
    except DecodeError as exc:
        raise CorruptData(f"event {event.event_id.hex()[:16]} payload does not parse as {name}") from exc


def decode_record(record: LogRecord, expected: type[M]) -> M:
    """`decode_payload` of a record's event; a record the log adapter could not read as an
    Argus event (`LogRecord.unreadable`) is CorruptData."""
    if record.unreadable is not None:
        raise CorruptData(record.unreadable)
    return decode_payload(record.event, expected)


async def config_records(
    log: EventLog, next_offset: int, *, page: int = 1000, topic: str = CONFIG_TOPIC
) -> AsyncIterator[LogRecord]:
    """Every record of the config topic (one partition) from `next_offset` on, in order,
    read a page at a time: what the config view (core/config_view.py) applies."""
    while True:
        records = await log.read(topic, 0, next_offset, page)
        for record in records:
            yield record
        if len(records) < page:
            return
        next_offset = records[-1].offset + 1
