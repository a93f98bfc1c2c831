"""Acknowledging alert instances (docs/decisions/0027-alert-acks-escalation.md).

An ack is an AlertAcknowledged on the alerts topic; an un-ack an AlertUnacknowledged. Both
are validated against the instance's current state read from the topic itself:

- only a pending or firing instance of the caller's tenant can be acked; an unknown id and
  another tenant's id are the same NotFound (nothing reveals that the id exists);
- acking an acked instance appends nothing (idempotent), un-acking an instance that is not
  acked is a FailedPrecondition;
- the event id is SHA-256 over (tenant, instance id, revision), the revision being one more
  than the instance's last ack or un-ack: two concurrent identical acks are one event.

An ack holds for the instance's current episode: once the instance resolves (a transition
after the ack's `alert_sequence` to resolved or inactive) it no longer counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from contracts.argus.alerts.v1 import alerts_pb2
from core.errors import ArgusError, FailedPrecondition, InvalidArgument, NotFound
from core.events import ALERTS_TOPIC, decode_record, make_event
from core.ports import EventLog, LogRecord

ACTIVE = frozenset({alerts_pb2.ALERT_STATE_PENDING, alerts_pb2.ALERT_STATE_FIRING})
ALERT_PARTITIONS = 4
MAX_COMMENT = 1024

_ACKED = alerts_pb2.AlertAcknowledged.DESCRIPTOR.full_name
_UNACKED = alerts_pb2.AlertUnacknowledged.DESCRIPTOR.full_name
_CHANGED = alerts_pb2.AlertStateChanged.DESCRIPTOR.full_name

AckMessage = alerts_pb2.AlertAcknowledged | alerts_pb2.AlertUnacknowledged


@dataclass(frozen=True, slots=True)
class Ack:
    """An instance's latest ack or un-ack."""

    acked: bool
    author: str
    comment: str
    time_ms: int
    revision: int
    alert_sequence: int


def ack_from(message: AckMessage) -> Ack:
    return Ack(
        acked=isinstance(message, alerts_pb2.AlertAcknowledged),
        author=message.author,
        comment=message.comment,
        time_ms=message.time_ms,
        revision=message.revision,
        alert_sequence=message.alert_sequence,
    )


def decode_ack(record: LogRecord) -> AckMessage | None:
    """The record's ack or un-ack, None for any other type."""
    if record.event.type == _ACKED:
        return decode_record(record, alerts_pb2.AlertAcknowledged)
    if record.event.type == _UNACKED:
        return decode_record(record, alerts_pb2.AlertUnacknowledged)
    return None


def newer(held: Ack | None, ack: Ack) -> bool:
    return held is None or held.revision < ack.revision


def holds(ack: Ack | None, *, active: bool, episode_sequence: int) -> bool:
    """Whether `ack` holds for an instance whose current episode began at transition
    `episode_sequence` (the first pending/firing after it was last inactive or resolved)."""
    return ack is not None and ack.acked and active and ack.alert_sequence >= episode_sequence


@dataclass(slots=True)
class _Seen:
    state: alerts_pb2.AlertStateChanged | None = None
    ack: Ack | None = None
    transitions: dict[int, int] = field(default_factory=dict)
    """sequence -> to_state of every transition of the instance."""

    def episode_sequence(self) -> int:
        """The transition that began the current pending/firing episode."""
        start = 0
        for sequence in sorted(self.transitions):
            if self.transitions[sequence] not in ACTIVE:
                start = 0
            elif start == 0:
                start = sequence
        return start


def _scan(records: Iterable[LogRecord], tenant: str, instance_id: str, seen: _Seen) -> None:
    for record in records:
        if record.unreadable is not None or record.event.type not in (_ACKED, _UNACKED, _CHANGED):
            continue
        try:
            if record.event.type == _CHANGED:
                changed = decode_record(record, alerts_pb2.AlertStateChanged)
                if changed.tenant == tenant and changed.instance_id == instance_id:
                    seen.transitions[changed.sequence] = changed.to_state
                    if seen.state is None or seen.state.sequence < changed.sequence:
                        seen.state = changed
                continue
            message = decode_ack(record)
        except ArgusError:
            continue  # an unreadable record is the readers' problem, not the ack's
        if message is not None and message.tenant == tenant and message.instance_id == instance_id:
            ack = ack_from(message)
            if newer(seen.ack, ack):
                seen.ack = ack


async def _read(log: EventLog, tenant: str, instance_id: str) -> _Seen:
    seen = _Seen()
    partitions = await log.ensure_topic(ALERTS_TOPIC, ALERT_PARTITIONS)
    for partition in range(partitions):
        offset = 0
        while records := await log.read(ALERTS_TOPIC, partition, offset, 1000):
            _scan(records, tenant, instance_id, seen)
            offset = records[-1].offset + 1
    return seen


def _check(tenant: str, instance_id: str, comment: str) -> None:
    if not instance_id or len(instance_id) > 128:
        raise InvalidArgument("alert id must be an instance id as `argus alerts list` shows", parameter="id")
    if len(comment) > MAX_COMMENT:
        raise InvalidArgument(f"comment is longer than {MAX_COMMENT} characters", parameter="comment")
    if not tenant:
        raise InvalidArgument("tenant is required", parameter="tenant")


async def _append(log: EventLog, message: AckMessage) -> None:
    partition_key = hashlib.sha256(f"{message.tenant}\0{message.instance_id}".encode()).digest()
    partitions = await log.ensure_topic(ALERTS_TOPIC, ALERT_PARTITIONS)
    partition = int.from_bytes(partition_key[:8], "big") % partitions
    identity = f"{message.tenant}\0{message.instance_id}\0{message.revision}".encode()
    event = make_event(message, identity=identity, partition_key=partition_key, time_ms=message.time_ms)
    await log.append(ALERTS_TOPIC, [(partition, event)])


async def acknowledge(log: EventLog, *, tenant: str, instance_id: str, author: str, comment: str, now_ms: int) -> Ack:
    """Ack a pending or firing instance of `tenant`; the ack that holds afterwards."""
    _check(tenant, instance_id, comment)
    seen = await _read(log, tenant, instance_id)
    if seen.state is None:
        raise NotFound(f"alert {instance_id} does not exist")
    if seen.state.to_state not in ACTIVE:
        raise FailedPrecondition(f"alert {instance_id} is not pending or firing")
    if seen.ack is not None and holds(seen.ack, active=True, episode_sequence=seen.episode_sequence()):
        return seen.ack  # already acked in this episode: nothing new
    message = alerts_pb2.AlertAcknowledged(
        tenant=tenant,
        instance_id=instance_id,
        author=author,
        comment=comment,
        time_ms=now_ms,
        revision=(seen.ack.revision if seen.ack else 0) + 1,
        alert_sequence=seen.state.sequence,
    )
    await _append(log, message)
    return ack_from(message)


async def unacknowledge(log: EventLog, *, tenant: str, instance_id: str, author: str, now_ms: int) -> Ack:
    """Take back the ack of an instance of `tenant`."""
    _check(tenant, instance_id, "")
    seen = await _read(log, tenant, instance_id)
    if seen.state is None:
        raise NotFound(f"alert {instance_id} does not exist")
    active = seen.state.to_state in ACTIVE
    if seen.ack is None or not holds(seen.ack, active=active, episode_sequence=seen.episode_sequence()):
        raise FailedPrecondition(f"alert {instance_id} is not acknowledged")
    message = alerts_pb2.AlertUnacknowledged(
        tenant=tenant,
        instance_id=instance_id,
        author=author,
        time_ms=now_ms,
        revision=seen.ack.revision + 1,
        alert_sequence=seen.state.sequence,
    )
    await _append(log, message)
    return ack_from(message)
