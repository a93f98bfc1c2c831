"""The alert notifier: alerts topic -> route groups -> one notification per group change ->
receivers, with every outcome recorded on the alerts topic
(docs/decisions/0025-alert-notifier.md).

Guarantees:

- **One notification per group change.** Alerts (the latest AlertStateChanged of each
  instance, by `sequence`) are routed (core/alerting/routing.py) into groups keyed by
  (tenant, route path, group key). A group's notification lists every member that is not
  silenced, inhibited or muted: 200 hosts breaching at once are one notification.
- **Alertmanager timing** on the injected clock, checked at every `tick(now_ms)`: a new
  group's first notification after `group_wait`; a changed group (members firing or resolved)
  after `group_interval` since its last one; an unchanged firing group again after
  `repeat_interval`. While a route's mute time interval holds, nothing of it goes out.
- **Resolved members** go out once (when the route says `send_resolved`), including alerts
  that were silenced while they fired; a silenced resolved alert waits for its silence to end.
- **Exactly once per id.** A notification's id is
  `notification_id(tenant, route path, group key, group sequence)`. Every leg's outcome is
  appended (NotificationSent / NotificationFailed, event id over the notification id, leg
  and attempt) before the group moves on; `start` rebuilds the alerts, the groups' sequences
  and what they last told from the topic. A notifier restarted after a recorded send sends
  nothing again; after a send it could not record it sends the same id once more (receivers
  drop it by id).
- **Acknowledgements** (core/alerting/acks.py): a group whose firing members are all acked
  sends no repeats and runs no escalation; an un-ack, a new member or the alert resolving
  (the ack holds for one episode) ends that.
- **Escalation**: a route with `escalation: POLICY` runs the policy's steps; step k goes to its
  receivers once `after` has passed since the group's earliest firing member started firing,
  while some member is unacked, once per episode. Its id is
  `notification_id(tenant, route path, group key, "escalation\0<episode_ms>\0<k>")`; the
  AlertEscalated record and the step's legs are appended together, so a restart neither
  repeats nor skips a step.
- **A failing receiver blocks nobody.** Each group delivers in its own task (at most
  `max_concurrent` at once); a group with a delivery in flight is left alone until it ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from contracts.argus.alerts.v1 import alerts_pb2
from core.alerting.acks import ACTIVE, Ack, ack_from, holds, newer
from core.alerting.model import AlertConfig, EscalationPolicy, Route, Silence
from core.alerting.routing import (
    GroupKey,
    group_key,
    group_key_text,
    inhibited,
    muted,
    route_alert,
    silenced_by,
)
from core.consumer import ConsumerRunner, Delivery
from core.errors import ArgusError
from core.events import ALERTS_TOPIC, decode_record, make_event
from core.ports import Event, EventLog, LogRecord
from query_side.alerts.delivery import Deliverer, DeliveryAttempt, Outcome
from query_side.alerts.notification import AlertMember, NotificationStatus, make_notification, notification_id
from query_side.alerts.ownership import Ownership

log = logging.getLogger(__name__)

NOTIFIER_GROUP = "alert-notifier"
DEFAULT_MAX_CONCURRENT = 32
"""Group deliveries in flight at once."""
DEFAULT_TICK_INTERVAL_MS = 1_000
"""`housekeeping` ticks when the topic brought something new, else at most this often."""
FAILED_RECORD_HOLD_MS = 60_000
"""A group whose outcome could not be recorded tries again after this (same id)."""

ConfigSource = Callable[[str], AlertConfig]
"""A tenant's alerting configuration (AlertConfigState.config)."""
SilenceSource = Callable[[str], Sequence[Silence]]
"""A tenant's silences, active or not (AlertConfigState.silences)."""

_Message: TypeAlias = (
    alerts_pb2.AlertStateChanged
    | alerts_pb2.NotificationSent
    | alerts_pb2.NotificationFailed
    | alerts_pb2.AlertAcknowledged
    | alerts_pb2.AlertUnacknowledged
    | alerts_pb2.AlertEscalated
)
Decoded: TypeAlias = _Message | None
_TYPES: Mapping[str, type[_Message]] = {
    t.DESCRIPTOR.full_name: t
    for t in (
        alerts_pb2.AlertStateChanged,
        alerts_pb2.NotificationSent,
        alerts_pb2.NotificationFailed,
        alerts_pb2.AlertAcknowledged,
        alerts_pb2.AlertUnacknowledged,
        alerts_pb2.AlertEscalated,
    )
}


@dataclass(slots=True)
class _Alert:
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    starts_ms: int
    ends_ms: int
    firing: bool
    sequence: int
    episode_sequence: int = 0
    """The transition that began the current pending/firing episode (acks hold from it)."""

    def member(self) -> AlertMember:
        return AlertMember(
            labels=self.labels,
            annotations=self.annotations,
            value=self.value,
            starts_ms=self.starts_ms,
            ends_ms=0 if self.firing else self.ends_ms,
            fingerprint=self.fingerprint,
            status=NotificationStatus.FIRING if self.firing else NotificationStatus.RESOLVED,
        )


@dataclass(slots=True)
class _Told:
    """What a group's last recorded notification said."""

    sequence: int = 0
    firing: frozenset[str] = frozenset()
    resolved: frozenset[str] = frozenset()
    sent_ms: int | None = None


@dataclass(slots=True)
class _Group:
    tenant: str
    path: str
    key: GroupKey
    told: _Told = field(default_factory=_Told)
    members: set[str] = field(default_factory=set)
    """Fingerprints that fired in this group and were not yet told resolved."""
    first_due_ms: int | None = None
    in_flight: bool = False
    hold_until_ms: int = 0

    @property
    def key_text(self) -> str:
        return group_key_text(self.key)


def alert_labels(message: alerts_pb2.AlertStateChanged) -> dict[str, str]:
    """What routing sees: the rule's labels, the instance's, `alertname` and `severity`."""
    labels = {**message.rule_labels, **message.instance_labels, "alertname": message.rule}
    if message.severity:
        labels["severity"] = message.severity
    return labels


class AlertNotifier:
    """A ConsumerHandler of the alerts topic (group NOTIFIER_GROUP). Drive it with
    `run_notifier`, or call `start()` then `tick(now_ms)` and `drain()` (tests)."""

    def __init__(
        self,
        *,
        log: EventLog,
        deliverer: Deliverer,
        config: ConfigSource,
        silences: SilenceSource,
        clock_ms: Callable[[], int],
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        tick_interval_ms: int = DEFAULT_TICK_INTERVAL_MS,
        ownership: Ownership | None = None,
    ) -> None:
        self._log = log
        self._ownership = ownership
        """Which groups this replica notifies (None: all): query_side/alerts/ownership.py."""
        self._ownership_generation = -1
        self._read_to: dict[int, int] = {}
        self._deliverer = deliverer
        self._config = config
        self._silences = silences
        self._clock = clock_ms
        self._slots = asyncio.Semaphore(max_concurrent)
        self._alerts: dict[str, dict[str, _Alert]] = {}
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._told: dict[tuple[str, str, str], _Told] = {}
        self._recorded: set[str] = set()
        self._next: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._partitions = 1
        self._ticking = False
        self.notifications_sent = 0
        self.notifications_failed = 0
        self.ticks = 0
        self._tick_interval_ms = tick_interval_ms
        self._last_tick_ms: int | None = None
        self._dirty = True
        self._by_tenant: dict[str, dict[tuple[str, str, str], _Group]] = {}
        self._acks: dict[tuple[str, str], Ack] = {}
        self._escalated: set[tuple[str, str, str, int, int]] = set()
        """(tenant, route path, group key, episode_ms, step) of every recorded step."""
        self.escalations = 0

    # -- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild alerts, recorded notifications and group states from the whole topic."""
        self._partitions = await self._log.ensure_topic(ALERTS_TOPIC, 4)
        await self._read_topic()

    async def _read_topic(self) -> None:
        """Take every record of the topic past what was read (or applied) so far."""
        for partition in range(self._partitions):
            offset = max(self._read_to.get(partition, 0), self._next.get(partition, 0))
            while records := await self._log.read(ALERTS_TOPIC, partition, offset, 1000):
                for record in records:
                    self._take(self._decode_or_none(record))
                offset = records[-1].offset + 1
            self._read_to[partition] = offset

    async def _follow_ownership(self) -> None:
        """After the groups moved between replicas: read what their previous owner recorded
        (its last NotificationSent may not have reached this replica's consumer yet) before
        acting on them, so a takeover re-sends only what was not recorded."""
        ownership = self._ownership
        if ownership is not None and ownership.generation != self._ownership_generation:
            self._ownership_generation = ownership.generation
            await self._read_topic()

    def _owns(self, group: _Group) -> bool:
        return self._ownership is None or self._ownership.owns(self._partition(group)[0])

    def start_ticking(self) -> None:
        """From now on `housekeeping` ticks (call once caught up with the topic)."""
        self._ticking = True

    # -- ConsumerHandler ----------------------------------------------------------------------

    def decode(self, record: LogRecord) -> Decoded:
        kind = _TYPES.get(record.event.type)
        return None if kind is None else decode_record(record, kind)

    def _decode_or_none(self, record: LogRecord) -> Decoded:
        try:
            return self.decode(record)
        except ArgusError as exc:
            log.warning(
                "skipping an unreadable record at %s/%d@%d: %s", record.topic, record.partition, record.offset, exc
            )
            return None

    async def apply(self, deliveries: Sequence[Delivery[Decoded]]) -> None:
        for d in deliveries:
            self._take(d.value)
            self._dirty = True
            self._next[d.record.partition] = d.record.offset + 1

    def skip(self, partition: int, offset: int) -> None:
        self._next[partition] = offset + 1

    def buffer_full(self) -> bool:
        return False

    async def settle(self, *, force: bool) -> Mapping[int, int]:
        # Nothing to make durable: `start` rebuilds everything from the topic itself.
        return dict(self._next)

    def reset(self) -> None:
        self._next = {}

    async def reassigned(self, partitions: frozenset[int]) -> None:
        self._next = {p: o for p, o in self._next.items() if p in partitions}

    async def housekeeping(self) -> None:
        if not self._ticking:
            return
        now_ms = self._clock()
        if self._dirty or self._last_tick_ms is None or now_ms - self._last_tick_ms >= self._tick_interval_ms:
            await self.tick(now_ms)

    # -- state --------------------------------------------------------------------------------

    def _take(self, message: Decoded) -> None:
        match message:
            case alerts_pb2.AlertStateChanged():
                self._take_transition(message)
            case alerts_pb2.AlertAcknowledged() | alerts_pb2.AlertUnacknowledged():
                ack = ack_from(message)
                if newer(self._acks.get((message.tenant, message.instance_id)), ack):
                    self._acks[(message.tenant, message.instance_id)] = ack
            case alerts_pb2.AlertEscalated():
                self._recorded.add(message.notification_id)
                self._escalated.add(
                    (message.tenant, message.route_path, message.group_key, message.episode_ms, message.step)
                )
            case alerts_pb2.NotificationSent() | alerts_pb2.NotificationFailed() if message.escalation_step:
                self._recorded.add(message.notification_id)
            case alerts_pb2.NotificationSent() | alerts_pb2.NotificationFailed():
                self._recorded.add(message.notification_id)
                key = (message.tenant, message.route_path, message.group_key)
                told = self._told.get(key)
                if told is None or told.sequence < message.group_sequence:
                    told = _Told(
                        sequence=message.group_sequence,
                        firing=frozenset(message.firing),
                        resolved=frozenset(message.resolved),
                        sent_ms=message.created_ms,
                    )
                    self._told[key] = told
                    group = self._groups.get(key)
                    if group is not None and group.told.sequence < told.sequence:
                        group.told = told
                        group.members = (group.members | told.firing) - told.resolved
            case None:
                pass

    def _take_transition(self, message: alerts_pb2.AlertStateChanged) -> None:
        alerts = self._alerts.setdefault(message.tenant, {})
        held = alerts.get(message.instance_id)
        if held is not None and held.sequence >= message.sequence:
            return
        firing = message.to_state == alerts_pb2.ALERT_STATE_FIRING
        was_firing = held is not None and held.firing
        if message.to_state not in ACTIVE:
            episode = 0
        elif held is not None and held.episode_sequence:
            episode = held.episode_sequence
        else:
            episode = message.sequence
        alerts[message.instance_id] = _Alert(
            fingerprint=message.instance_id,
            labels=alert_labels(message),
            annotations=dict(message.annotations),
            value=message.value,
            starts_ms=message.since_ms if firing else (held.starts_ms if held is not None else message.since_ms),
            ends_ms=0 if firing else (message.evaluated_at_ms if was_firing else (held.ends_ms if held else 0)),
            firing=firing,
            sequence=message.sequence,
            episode_sequence=episode,
        )

    def acked(self, tenant: str, fingerprint: str) -> bool:
        """Whether an ack holds for the tenant's instance now (it is firing, in the acked episode)."""
        alert = self._alerts.get(tenant, {}).get(fingerprint)
        if alert is None:
            return False
        return holds(
            self._acks.get((tenant, fingerprint)),
            active=alert.episode_sequence > 0,
            episode_sequence=alert.episode_sequence,
        )

    def active_alerts(self, tenant: str) -> list[AlertMember]:
        """The tenant's alerts as the notifier holds them (firing and resolved)."""
        return [a.member() for a in self._alerts.get(tenant, {}).values()]

    # -- ticking ------------------------------------------------------------------------------

    async def tick(self, now_ms: int) -> None:
        """Route every alert and start the notifications that are due at `now_ms` (of the groups
        this replica owns)."""
        await self._follow_ownership()
        self.ticks += 1
        self._dirty = False
        self._last_tick_ms = now_ms
        for tenant, alerts in self._alerts.items():
            config = self._config(tenant)
            if config.route is None:
                continue
            routes = _routes_by_path(config.route)
            silences = self._silences(tenant)
            firing_labels = [a.labels for a in alerts.values() if a.firing]
            for alert in alerts.values():
                if not alert.firing:
                    continue
                for match in route_alert(config.route, alert.labels):
                    group = self._group(tenant, match.path_text, group_key(match.route, alert.labels))
                    group.members.add(alert.fingerprint)
            for group in list(self._by_tenant.get(tenant, {}).values()):
                route = routes.get(group.path)
                if route is None or group.in_flight or now_ms < group.hold_until_ms or not self._owns(group):
                    continue
                self._consider(group, route, config, alerts, silences, firing_labels, now_ms)

    def _group(self, tenant: str, path: str, key: GroupKey) -> _Group:
        ident = (tenant, path, group_key_text(key))
        group = self._groups.get(ident)
        if group is None:
            group = _Group(tenant=tenant, path=path, key=key)
            told = self._told.get(ident)
            if told is not None:
                group.told = told
                group.members = set(told.firing)
            self._groups[ident] = group
            self._by_tenant.setdefault(tenant, {})[ident] = group
        return group

    def _consider(
        self,
        group: _Group,
        route: Route,
        config: AlertConfig,
        alerts: Mapping[str, _Alert],
        silences: Sequence[Silence],
        firing_labels: Sequence[Mapping[str, str]],
        now_ms: int,
    ) -> None:
        firing: list[_Alert] = []
        resolved: list[_Alert] = []
        for fp in sorted(group.members):
            alert = alerts.get(fp)
            if alert is None:
                group.members.discard(fp)
                continue
            if silenced_by(alert.labels, silences, now_ms):
                continue
            if alert.firing:
                if not inhibited(alert.labels, firing_labels, config.inhibit_rules):
                    firing.append(alert)
            elif route.send_resolved:
                resolved.append(alert)
            else:
                group.members.discard(fp)
        firing_set = frozenset(a.fingerprint for a in firing)
        if not firing and not resolved:
            group.first_due_ms = None
            group.told.firing = frozenset()  # nothing left to tell: a new firing is a change
            return
        told = group.told
        if told.sent_ms is None:
            if group.first_due_ms is None:
                group.first_due_ms = now_ms + route.group_wait_ms
            due = group.first_due_ms
        elif firing_set != told.firing or resolved:
            due = told.sent_ms + route.group_interval_ms
        elif all(self.acked(group.tenant, a.fingerprint) for a in firing):
            due = None  # every member acked: no repeats until one is un-acked or the group changes
        else:
            due = told.sent_ms + route.repeat_interval_ms
        # Muted: held, not rescheduled (group_wait keeps counting from the group's start).
        if muted(route, config.time_intervals, now_ms):
            return
        if due is not None and now_ms >= due:
            self._spawn(group, self._notify(group, route, config, firing, resolved, now_ms))
            return
        step = self._escalation_due(group, route, config, firing, now_ms)
        if step is not None:
            self._spawn(group, self._escalate(group, route, config, firing, *step, now_ms))

    def _spawn(self, group: _Group, work: Coroutine[None, None, None]) -> None:
        group.in_flight = True
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _escalation_due(
        self, group: _Group, route: Route, config: AlertConfig, firing: Sequence[_Alert], now_ms: int
    ) -> tuple[EscalationPolicy, int, int] | None:
        """(policy, step index, episode_ms) of the group's next due escalation step, if any.

        The episode starts when the group's earliest firing member started firing; each step
        runs once per episode, only while some firing member is unacked."""
        policy = config.escalation_policies.get(route.escalation) if route.escalation else None
        if policy is None or not firing or all(self.acked(group.tenant, a.fingerprint) for a in firing):
            return None
        episode_ms = min(a.starts_ms for a in firing)
        for index, step in enumerate(policy.steps):
            if (group.tenant, group.path, group.key_text, episode_ms, index) in self._escalated:
                continue
            return (policy, index, episode_ms) if now_ms >= episode_ms + step.after_ms else None
        return None

    async def _escalate(
        self,
        group: _Group,
        route: Route,
        config: AlertConfig,
        firing: list[_Alert],
        policy: EscalationPolicy,
        index: int,
        episode_ms: int,
        now_ms: int,
    ) -> None:
        step = policy.steps[index]
        mark = (group.tenant, group.path, group.key_text, episode_ms, index)
        try:
            nid = notification_id(group.tenant, group.path, group.key_text, f"escalation\0{episode_ms}\0{index}")
            told = _Told(sequence=group.told.sequence, firing=frozenset(a.fingerprint for a in firing), sent_ms=now_ms)
            if nid not in self._recorded:
                escalated = alerts_pb2.AlertEscalated(
                    tenant=group.tenant,
                    route_path=group.path,
                    group_key=group.key_text,
                    policy=policy.name,
                    step=index,
                    receivers=step.receivers,
                    episode_ms=episode_ms,
                    notification_id=nid,
                    firing=sorted(told.firing),
                    created_ms=now_ms,
                )
                partition, partition_key = self._partition(group)
                events = [
                    (
                        partition,
                        make_event(escalated, identity=nid.encode(), partition_key=partition_key, time_ms=now_ms),
                    )
                ]
                async with self._slots:
                    for receiver in step.receivers:
                        events += await self._deliver(
                            group, receiver, config, firing, [], nid, told, escalation_step=index + 1
                        )
                # AlertEscalated and its legs in one append: a restart sees the step whole or not at all.
                await self._log.append(ALERTS_TOPIC, events)
                self._recorded.add(nid)
                self.escalations += 1
            self._escalated.add(mark)
        except Exception:
            group.hold_until_ms = now_ms + FAILED_RECORD_HOLD_MS
            log.exception(
                "escalating group %s %s of tenant %s failed; retried later", group.path, group.key_text, group.tenant
            )
        finally:
            group.in_flight = False

    def _partition(self, group: _Group) -> tuple[int, bytes]:
        partition_key = hashlib.sha256(f"{group.tenant}\0{group.path}\0{group.key_text}".encode()).digest()
        return int.from_bytes(partition_key[:8], "big") % self._partitions, partition_key

    async def _notify(
        self,
        group: _Group,
        route: Route,
        config: AlertConfig,
        firing: list[_Alert],
        resolved: list[_Alert],
        now_ms: int,
    ) -> None:
        try:
            sequence = group.told.sequence + 1
            nid = notification_id(group.tenant, group.path, group.key_text, str(sequence))
            told = _Told(
                sequence=sequence,
                firing=frozenset(a.fingerprint for a in firing),
                resolved=frozenset(a.fingerprint for a in resolved),
                sent_ms=now_ms,
            )
            if nid not in self._recorded:
                log.info(
                    "sending notification %s (group %s of tenant %s, sequence %d) to %s",
                    nid,
                    group.key_text,
                    group.tenant,
                    sequence,
                    route.receiver,
                )
                async with self._slots:
                    events = await self._deliver(group, route.receiver, config, firing, resolved, nid, told)
                await self._log.append(ALERTS_TOPIC, events)
                self._recorded.add(nid)
            # Recorded: only now does the group move on.
            self._told[(group.tenant, group.path, group.key_text)] = told
            group.told = told
            group.members -= told.resolved
            group.first_due_ms = None
        except Exception:
            group.hold_until_ms = now_ms + FAILED_RECORD_HOLD_MS
            log.exception(
                "notifying group %s %s of tenant %s failed; retried next tick", group.path, group.key_text, group.tenant
            )
        finally:
            group.in_flight = False

    async def _deliver(
        self,
        group: _Group,
        receiver_name: str,
        config: AlertConfig,
        firing: list[_Alert],
        resolved: list[_Alert],
        nid: str,
        told: _Told,
        *,
        escalation_step: int = 0,
    ) -> list[tuple[int, Event]]:
        notification = make_notification(
            id=nid,
            tenant=group.tenant,
            receiver=receiver_name,
            group_labels=dict(group.key),
            alerts=[a.member() for a in (*firing, *resolved)],
            created_ms=told.sent_ms or 0,
        )
        receiver = config.receivers.get(receiver_name)
        if receiver is None:
            finals: Sequence[DeliveryAttempt | tuple[str, str]] = [("", f"receiver {receiver_name!r} does not exist")]
        else:
            report = await self._deliverer.deliver(notification, receiver)
            finals = list(report.finals) or [("", f"receiver {receiver_name!r} has no channels")]

        def fill(message: alerts_pb2.NotificationSent | alerts_pb2.NotificationFailed) -> None:
            message.tenant = group.tenant
            message.notification_id = nid
            message.receiver = receiver_name
            message.route_path = group.path
            message.group_key = group.key_text
            message.group_sequence = told.sequence
            message.firing.extend(sorted(told.firing))
            message.resolved.extend(sorted(told.resolved))
            message.created_ms = told.sent_ms or 0
            message.escalation_step = escalation_step

        partition, partition_key = self._partition(group)
        events: list[tuple[int, Event]] = []
        for final in finals:
            message: alerts_pb2.NotificationSent | alerts_pb2.NotificationFailed
            if isinstance(final, tuple):
                message = alerts_pb2.NotificationFailed(error=final[1], outcome=Outcome.PERMANENT.value)
                leg = b""
            elif final.outcome is Outcome.OK:
                message = alerts_pb2.NotificationSent(channel=final.channel, target=final.target, attempt=final.attempt)
                leg = f"{final.channel}\0{final.target}\0{final.attempt}".encode()
            else:
                message = alerts_pb2.NotificationFailed(
                    channel=final.channel,
                    target=final.target,
                    attempt=final.attempt,
                    error=final.error,
                    outcome=final.outcome.value,
                )
                leg = f"{final.channel}\0{final.target}\0{final.attempt}".encode()
            fill(message)
            if isinstance(message, alerts_pb2.NotificationSent):
                self.notifications_sent += 1
            else:
                self.notifications_failed += 1
                log.warning("notification %s to %s failed: %s", nid, receiver_name, message.error)
            identity = nid.encode() + b"\0" + leg
            if escalation_step:
                # Several receivers per step: the receiver is part of the leg.
                identity += b"\0" + receiver_name.encode()
            events.append(
                (
                    partition,
                    make_event(message, identity=identity, partition_key=partition_key, time_ms=told.sent_ms or 0),
                )
            )
        return events

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests; a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel deliveries in flight: unrecorded, they go out again after a restart."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _routes_by_path(root: Route) -> dict[str, Route]:
    out: dict[str, Route] = {}

    def walk(route: Route, path: tuple[int, ...]) -> None:
        out[".".join(str(i) for i in path)] = route
        for i, child in enumerate(route.routes):
            walk(child, (*path, i))

    walk(root, ())
    return out


async def run_notifier(notifier: AlertNotifier, runner: ConsumerRunner[Decoded], stop: asyncio.Event) -> None:
    """The service loop: rebuild from the alerts topic, catch up the group, then tick on every
    turn of the runner until `stop` is set; deliveries in flight are cancelled at the end."""
    await notifier.start()
    await runner.catch_up(force=False)
    notifier.start_ticking()
    try:
        await runner.run(stop)
    finally:
        await notifier.close()
