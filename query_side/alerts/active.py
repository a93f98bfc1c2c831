"""The active-alerts read view: every alert instance's latest state, per tenant.

Per instance, the AlertStateChanged with the highest `sequence` of the alerts topic
(`argus.alerts.v1`, docs/formats/alerts-topic.md) and its latest ack or un-ack
(core/alerting/acks.py; shown while it holds): a transition read again (a duplicate append,
a restarted evaluator re-making it) or out of order never moves an instance back. Other
event types on the topic (notifications, escalations, kinds of a newer build) are skipped,
as are records that do not decode (logged). The projector (query_side/alerts/read_models.py)
keeps it in an AlertReadModelStore (persisted: decision 0046); `run` keeps it current.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from contracts.argus.alerts.v1 import alerts_pb2
from core.alerting.acks import Ack, holds
from core.alerting.lifecycle import AlertState
from core.errors import InvalidArgument
from core.ports import EventLog, StoredAck, StoredAlertInstance

if TYPE_CHECKING:
    from query_side.alerts.read_models import AlertReadModelProjector

log = logging.getLogger(__name__)

TOPIC_PARTITIONS = 4
"""Partitions the alerts topic is created with when it does not exist yet: the
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
    """Per tenant, every alert instance's latest AlertStateChanged (highest sequence), read
    from the alert read models that `projector` keeps (decision 0046)."""

    def __init__(self, events: EventLog, *, projector: AlertReadModelProjector | None = None) -> None:
        if projector is None:
            from core.adapters.memory_alert_read_models import MemoryAlertReadModels
            from query_side.alerts.read_models import AlertReadModelProjector

            projector = AlertReadModelProjector(events, MemoryAlertReadModels())
        self._projector = projector

    async def refresh(self) -> None:
        """Project what was appended to the alerts topic since the last refresh."""
        await self._projector.catch_up()

    @property
    def projector(self) -> AlertReadModelProjector:
        """The projector that keeps the store it reads."""
        return self._projector

    @property
    def events(self) -> EventLog:
        """The event log it follows (the ack routes append to it)."""
        return self._projector.events

    @property
    def skipped(self) -> int:
        """Records skipped by this process's projector: other event types, or undecodable."""
        return self._projector.skipped

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the alerts topic until `stop` is set (keeps what it has on errors)."""
        await self._projector.run(stop)

    async def instances(
        self, tenant: str, states: Collection[AlertState] = ACTIVE_STATES, *, rule: str | None = None
    ) -> list[AlertInstance]:
        """The tenant's instances in `states` (of `rule` if given): firing first, then by
        rule, then by labels."""
        store = self._projector.store
        rows = await store.instances(tenant, sorted(s.value for s in states), rule=rule)
        acks = await store.acks(tenant, [r.instance_id for r in rows]) if rows else {}
        found = [self._with_ack(r, acks.get(r.instance_id)) for r in rows]
        order = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2, AlertState.INACTIVE: 3}
        return sorted(found, key=lambda i: (order[i.state], i.rule, sorted(i.labels.items())))

    @staticmethod
    def _with_ack(row: StoredAlertInstance, stored: StoredAck | None) -> AlertInstance:
        message = alerts_pb2.AlertStateChanged()
        message.ParseFromString(row.payload)
        instance = _instance(message)
        if stored is None:
            return instance
        ack = Ack(
            acked=stored.acked,
            author=stored.author,
            comment=stored.comment,
            time_ms=stored.time_ms,
            revision=stored.revision,
            alert_sequence=stored.alert_sequence,
        )
        episode = row.episode_sequence
        return (
            replace(instance, acknowledged=ack)
            if holds(ack, active=episode > 0, episode_sequence=episode)
            else instance
        )
