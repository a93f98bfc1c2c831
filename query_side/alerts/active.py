"""The active-alerts read view: every alert instance's latest state, per tenant.

It follows the alerts topic (`argus.alerts.v1`, docs/formats/alerts-topic.md) from offset 0
of every partition and keeps, per instance, the AlertStateChanged with the highest
`sequence` and its latest ack or un-ack (core/alerting/acks.py; shown while it holds):
a transition read again (a duplicate append, a restarted evaluator re-making
it) or out of order never moves an instance back. Other event types on the topic
(notifications, escalations, kinds of a newer build) are skipped, as are records that
do not decode (logged). Like the config view (core/config_view.py) it is in memory and
rebuilt from the log at start; `run` keeps it current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from contracts.argus.alerts.v1 import alerts_pb2
from core.alerting.acks import Ack, ack_from, decode_ack, holds, newer
from core.alerting.lifecycle import AlertState
from core.errors import ArgusError, InvalidArgument
from core.events import ALERTS_TOPIC, decode_record
from core.ports import EventLog, LogRecord

log = logging.getLogger(__name__)

_ALERT_STATE_CHANGED = alerts_pb2.AlertStateChanged.DESCRIPTOR.full_name
_READ_BATCH = 1000
TOPIC_PARTITIONS = 4
"""Partitions the view creates the alerts topic with when it does not exist yet: the
evaluator's count (query_side/alerts/evaluator.py ALERT_PARTITIONS)."""

_STATES = {
    alerts_pb2.ALERT_STATE_INACTIVE: AlertState.INACTIVE,
    alerts_pb2.ALERT_STATE_PENDING: AlertState.PENDING,
    alerts_pb2.ALERT_STATE_FIRING: AlertState.FIRING,
    alerts_pb2.ALERT_STATE_RESOLVED: AlertState.RESOLVED,
}

ACTIVE_STATES: frozenset[AlertState] = frozenset({AlertState.PENDING, AlertState.FIRING})
STATE_FILTERS: Mapping[str, frozenset[AlertState]] = {
    "active": ACTIVE_STATES,
    "pending": frozenset({AlertState.PENDING}),
    "firing": frozenset({AlertState.FIRING}),
    "resolved": frozenset({AlertState.RESOLVED}),
    "all": frozenset(AlertState),
}


def state_filter(value: str | None) -> frozenset[AlertState]:
    """The states `?state=` / `--state` selects (absent: active = pending and firing)."""
    name = (value or "active").strip().lower()
    found = STATE_FILTERS.get(name)
    if found is None:
        raise InvalidArgument(f"state must be one of {', '.join(STATE_FILTERS)}, got {value!r}", parameter="state")
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertInstance:
    """An alert instance as its latest transition left it."""

    tenant: str
    rule: str
    instance_id: str
    labels: Mapping[str, str]
    state: AlertState
    since_ms: int
    evaluated_at_ms: int
    value: float
    """The rule's value at that evaluation (NaN: no data)."""
    reason: str
    sequence: int
    severity: str
    annotations: Mapping[str, str]
    rule_labels: Mapping[str, str]
    acknowledged: Ack | None = None
    """The ack that holds for the instance's current episode, if any."""

    def to_json(self) -> dict[str, object]:
        ack = self.acknowledged
        return {
            "rule": self.rule,
            "instance_id": self.instance_id,
            "labels": dict(self.labels),
            "state": self.state.value,
            "since_ms": self.since_ms,
            "evaluated_at_ms": self.evaluated_at_ms,
            "value": None if math.isnan(self.value) else self.value,
            "reason": self.reason,
            "sequence": self.sequence,
            "severity": self.severity,
            "annotations": dict(self.annotations),
            "rule_labels": dict(self.rule_labels),
            "acknowledged": None if ack is None else {"by": ack.author, "at_ms": ack.time_ms, "comment": ack.comment},
        }


def _instance(message: alerts_pb2.AlertStateChanged) -> AlertInstance:
    return AlertInstance(
        tenant=message.tenant,
        rule=message.rule,
        instance_id=message.instance_id,
        labels=dict(message.instance_labels),
        state=_STATES.get(message.to_state, AlertState.INACTIVE),
        since_ms=message.since_ms,
        evaluated_at_ms=message.evaluated_at_ms,
        value=message.value,
        reason=message.reason,
        sequence=message.sequence,
        severity=message.severity,
        annotations=dict(message.annotations),
        rule_labels=dict(message.rule_labels),
    )


class ActiveAlerts:
    """Per tenant, every alert instance's latest AlertStateChanged (highest sequence)."""

    def __init__(self, events: EventLog, *, refresh_interval_s: float = 0.5) -> None:
        self._events = events
        self._refresh_interval_s = refresh_interval_s
        self._next: dict[int, int] = {}
        self._partitions = 0
        self._by_tenant: dict[str, dict[str, AlertInstance]] = {}
        self._acks: dict[tuple[str, str], Ack] = {}
        self._episodes: dict[tuple[str, str], int] = {}
        """(tenant, instance) -> the transition that began its current pending/firing episode."""
        self._lock = asyncio.Lock()
        self.skipped = 0
        """Records skipped: other event types, or undecodable."""

    async def refresh(self) -> None:
        """Apply what was appended to the alerts topic since the last refresh."""
        async with self._lock:
            if not self._partitions:
                self._partitions = await self._events.ensure_topic(ALERTS_TOPIC, TOPIC_PARTITIONS)
            for partition in range(self._partitions):
                offset = self._next.get(partition, 0)
                while records := await self._events.read(ALERTS_TOPIC, partition, offset, _READ_BATCH):
                    for record in records:
                        self.apply(record)
                    offset = records[-1].offset + 1
                    self._next[partition] = offset

    @property
    def events(self) -> EventLog:
        """The event log it follows (the ack routes append to it)."""
        return self._events

    def apply(self, record: LogRecord) -> None:
        """Keep the record's transition if it is its instance's newest, and the newest ack;
        skip anything else."""
        if record.unreadable is None and record.event.type != _ALERT_STATE_CHANGED:
            try:
                acked = decode_ack(record)
            except ArgusError as exc:
                acked = None
                log.warning("active alerts: skipping an unreadable ack at %s: %s", record.offset, exc)
            if acked is None:
                self.skipped += 1
            else:
                ack = ack_from(acked)
                if newer(self._acks.get((acked.tenant, acked.instance_id)), ack):
                    self._acks[(acked.tenant, acked.instance_id)] = ack
            return
        if record.unreadable is not None:
            self.skipped += 1
            return
        try:
            message = decode_record(record, alerts_pb2.AlertStateChanged)
        except ArgusError as exc:
            self.skipped += 1
            log.warning(
                "active alerts: skipping an unreadable transition at %s/%d@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        instances = self._by_tenant.setdefault(message.tenant, {})
        held = instances.get(message.instance_id)
        if held is None or held.sequence < message.sequence:
            instances[message.instance_id] = _instance(message)
            key = (message.tenant, message.instance_id)
            if message.to_state not in (alerts_pb2.ALERT_STATE_PENDING, alerts_pb2.ALERT_STATE_FIRING):
                self._episodes.pop(key, None)
            else:
                self._episodes.setdefault(key, message.sequence)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the alerts topic until `stop` is set (keeps what it has on errors)."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:  # keep serving what we have
                log.warning("active alerts: cannot follow %s: %s", ALERTS_TOPIC, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._refresh_interval_s)

    def instances(
        self, tenant: str, states: Collection[AlertState] = ACTIVE_STATES, *, rule: str | None = None
    ) -> list[AlertInstance]:
        """The tenant's instances in `states` (of `rule` if given): firing first, then by
        rule, then by labels."""
        found = [
            i
            for i in self._by_tenant.get(tenant, {}).values()
            if i.state in states and (rule is None or i.rule == rule)
        ]
        order = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2, AlertState.INACTIVE: 3}
        found = [self._with_ack(i) for i in found]
        return sorted(found, key=lambda i: (order[i.state], i.rule, sorted(i.labels.items())))

    def _with_ack(self, instance: AlertInstance) -> AlertInstance:
        key = (instance.tenant, instance.instance_id)
        episode = self._episodes.get(key, 0)
        ack = self._acks.get(key)
        return (
            replace(instance, acknowledged=ack)
            if holds(ack, active=episode > 0, episode_sequence=episode)
            else instance
        )
