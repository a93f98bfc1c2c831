"""Alerting configuration commands: apply a document, create and expire silences.

`apply_alert_config` diffs a validated document (core/alerting/document.py) against the
tenant's configuration in the `ConfigView` and appends one event per entity that changed:
`AlertRuleSaved` / `AlertRuleDeleted` per rule, `ReceiverSaved` / `ReceiverDeleted` per
receiver, one `AlertRoutingSaved` for the route tree, inhibitions, mute windows and
escalation policies together. Applying the same document twice appends nothing.

Each event carries the version of its entity that the diff saw; when another writer changed
that entity first, the view rejects the event (`Conflict`) and the apply stops there. Entities
change one by one, not as one transaction: a stopped apply leaves the entities before it
applied, and applying the document again finishes it (docs/decisions/0022-*).

Tenants are apart: entities are named by tenant, and an apply reads and changes only its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from google.protobuf.message import Message

from command_side.config.commands import ConfigChanged
from command_side.config.handlers import _check_tenant, _text
from contracts.argus.alerts.v1 import config_pb2 as pb
from contracts.argus.events.v1 import events_pb2
from core.alerting.events import (
    receiver_entity,
    receiver_to_proto,
    routing_entity,
    routing_to_proto,
    rule_entity,
    rule_to_proto,
    same_routing,
    silence_entity,
    silence_to_proto,
)
from core.alerting.model import AlertConfig, AlertRule, LabelMatcher, Silence
from core.alerting.state import AlertConfigState
from core.config_view import ConfigView, config_change
from core.errors import Conflict, InvalidArgument, NotFound
from core.events import digest, make_event
from core.ports import Event
from core.regex import compile_full_match

MAX_SILENCE_MS = 365 * 86_400_000
_LABEL_OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyAlertConfig:
    """Make the tenant's alerting configuration equal to `config` (a whole document)."""

    tenant: str
    config: AlertConfig
    author: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateSilence:
    """Mute the tenant's alerts matching every matcher during [starts_ms, ends_ms)."""

    tenant: str
    matchers: tuple[LabelMatcher, ...]
    starts_ms: int
    ends_ms: int
    comment: str
    author: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpireSilence:
    """End a silence now. Expiring an ended silence changes nothing."""

    tenant: str
    silence_id: str
    author: str


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedChange:
    """One event an apply appends."""

    kind: str
    """`rule`, `receiver` or `routing`."""
    name: str
    action: Action
    entity: str
    expected_version: int
    event: Event


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertConfigPlan:
    tenant: str
    changes: tuple[PlannedChange, ...]

    @property
    def empty(self) -> bool:
        return not self.changes


def _event(tenant: str, entity: str, payload: Message, clock_ms: Callable[[], int]) -> Event:
    # The id covers the whole payload (content, author, expected version): the same change
    # sent twice is one event.
    body = payload.SerializeToString(deterministic=True)
    return make_event(payload, identity=digest(tenant, entity, body), partition_key=tenant.encode(), time_ms=clock_ms())


async def plan_alert_config(
    command: ApplyAlertConfig, *, view: ConfigView, clock_ms: Callable[[], int]
) -> AlertConfigPlan:
    """The events that make the tenant's configuration equal to the document, in the order
    they are appended: saves first (receivers before the rules and routes that use them),
    then the routing, then deletions. Nothing is appended."""
    _check_tenant(command.tenant)
    _text(command.author, parameter="author")
    await view.refresh()
    tenant = command.tenant
    current = view.state(AlertConfigState).config(tenant)
    wanted = command.config
    author = command.author
    changes: list[PlannedChange] = []

    def change(entity: str) -> events_pb2.ConfigChange:
        return config_change(author=author, expected_version=view.version(entity))

    def add(kind: str, name: str, action: Action, entity: str, payload: Message) -> None:
        changes.append(
            PlannedChange(
                kind=kind,
                name=name,
                action=action,
                entity=entity,
                expected_version=view.version(entity),
                event=_event(tenant, entity, payload, clock_ms),
            )
        )

    for name, receiver in sorted(wanted.receivers.items()):
        old = current.receivers.get(name)
        if old != receiver:
            entity = receiver_entity(tenant, name)
            payload: Message = pb.ReceiverSaved(
                tenant=tenant, receiver=receiver_to_proto(receiver), change=change(entity)
            )
            add("receiver", name, Action.CREATED if old is None else Action.UPDATED, entity, payload)
    for name, rule in sorted(wanted.rules.items()):
        old_rule = current.rules.get(name)
        if old_rule != rule:
            entity = rule_entity(tenant, name)
            payload = pb.AlertRuleSaved(tenant=tenant, rule=rule_to_proto(rule), change=change(entity))
            add("rule", name, Action.CREATED if old_rule is None else Action.UPDATED, entity, payload)
    if not same_routing(current, wanted):
        entity = routing_entity(tenant)
        routing = routing_to_proto(tenant, wanted)
        routing.change.CopyFrom(change(entity))
        add("routing", "routing", Action.UPDATED if view.version(entity) else Action.CREATED, entity, routing)
    for name in sorted(set(current.rules) - set(wanted.rules)):
        entity = rule_entity(tenant, name)
        add("rule", name, Action.DELETED, entity, pb.AlertRuleDeleted(tenant=tenant, name=name, change=change(entity)))
    for name in sorted(set(current.receivers) - set(wanted.receivers)):
        entity = receiver_entity(tenant, name)
        add(
            "receiver",
            name,
            Action.DELETED,
            entity,
            pb.ReceiverDeleted(tenant=tenant, name=name, change=change(entity)),
        )
    return AlertConfigPlan(tenant=tenant, changes=tuple(changes))


async def execute_plan(plan: AlertConfigPlan, *, view: ConfigView) -> list[ConfigChanged]:
    """Append the plan's events one by one, each confirmed by the view; the first rejection
    (Conflict when another writer changed that entity since the plan) stops it and raises."""
    done: list[ConfigChanged] = []
    for change in plan.changes:
        outcome = await view.append_change(change.event)
        done.append(ConfigChanged(entity=change.entity, version=outcome.version, changed=True))
    return done


async def apply_alert_config(
    command: ApplyAlertConfig, *, view: ConfigView, clock_ms: Callable[[], int], dry_run: bool = False
) -> AlertConfigPlan:
    """Plan and (unless `dry_run`) execute; returns what changed (or would change)."""
    plan = await plan_alert_config(command, view=view, clock_ms=clock_ms)
    if not dry_run:
        await execute_plan(plan, view=view)
    return plan


def silence_id(command: CreateSilence) -> str:
    """Derived from the whole command, so the same request sent twice is one silence."""
    parts = [command.tenant, str(command.starts_ms), str(command.ends_ms), command.comment, command.author]
    parts += [f"{m.name}\x00{m.op}\x00{m.value}" for m in command.matchers]
    return digest(*parts).hex()[:16]


def _check_silence(command: CreateSilence, now_ms: int) -> None:
    _check_tenant(command.tenant)
    _text(command.author, parameter="author")
    _text(command.comment, parameter="comment")
    if not command.comment.strip():
        raise InvalidArgument("comment: say why the alerts are silenced", parameter="comment")
    if not command.matchers:
        raise InvalidArgument("matchers: a silence needs at least one matcher", parameter="matchers")
    for i, m in enumerate(command.matchers):
        parameter = f"matchers[{i}]"
        if m.op not in _LABEL_OPS:
            raise InvalidArgument(f"{parameter}: operator must be one of {', '.join(_LABEL_OPS)}", parameter=parameter)
        if m.op in ("=~", "!~"):
            compile_full_match(m.value, parameter=parameter, what=f"for label {m.name}")
    if command.ends_ms <= command.starts_ms:
        raise InvalidArgument("ends_ms: a silence must end after it starts", parameter="ends_ms")
    if command.ends_ms <= now_ms:
        raise InvalidArgument("ends_ms: the silence would already be over", parameter="ends_ms")
    if command.ends_ms - command.starts_ms > MAX_SILENCE_MS:
        raise InvalidArgument("ends_ms: a silence lasts at most 365 days", parameter="ends_ms")


async def create_silence(command: CreateSilence, *, view: ConfigView, clock_ms: Callable[[], int]) -> Silence:
    """Append SilenceCreated (see CreateSilence); returns the silence (the existing one when
    the same command was applied before)."""
    now = clock_ms()
    _check_silence(command, now)
    await view.refresh()
    sid = silence_id(command)
    state = view.state(AlertConfigState)
    existing = state.silence(command.tenant, sid)
    if existing is not None:
        return existing
    silence = Silence(
        id=sid,
        matchers=command.matchers,
        starts_ms=command.starts_ms,
        ends_ms=command.ends_ms,
        comment=command.comment,
        author=command.author,
    )
    entity = silence_entity(command.tenant, sid)
    payload = pb.SilenceCreated(
        tenant=command.tenant,
        silence=silence_to_proto(silence),
        change=config_change(author=command.author, expected_version=0),
    )
    await view.append_change(_event(command.tenant, entity, payload, lambda: now))
    found = state.silence(command.tenant, sid)
    assert found is not None
    return found


async def expire_silence(command: ExpireSilence, *, view: ConfigView, clock_ms: Callable[[], int]) -> ConfigChanged:
    """Append SilenceExpired (see ExpireSilence). NotFound for an id the tenant does not have
    (another tenant's silence included)."""
    _check_tenant(command.tenant)
    _text(command.author, parameter="author")
    await view.refresh()
    silence = view.state(AlertConfigState).silence(command.tenant, command.silence_id)
    if silence is None:
        raise NotFound(f"no silence {command.silence_id!r} for tenant {command.tenant}")
    entity = silence_entity(command.tenant, silence.id)
    version = view.version(entity)
    now = clock_ms()
    if silence.ends_ms <= now:
        return ConfigChanged(entity=entity, version=version, changed=False)
    payload = pb.SilenceExpired(
        tenant=command.tenant, id=silence.id, change=config_change(author=command.author, expected_version=version)
    )
    outcome = await view.append_change(_event(command.tenant, entity, payload, lambda: now))
    return ConfigChanged(entity=entity, version=outcome.version, changed=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveAlertRule:
    """Create or replace one rule of the tenant's configuration, leaving the rest as it is.
    `expected_version`: the rule's version the editor started from (0: a new rule); None:
    whatever is current."""

    tenant: str
    rule: AlertRule
    author: str
    expected_version: int | None = None


async def save_alert_rule(
    command: SaveAlertRule, *, view: ConfigView, clock_ms: Callable[[], int]
) -> tuple[Action | None, int]:
    """Apply the tenant's current document with this one rule put in (the apply path: the same
    diff, event and version check); returns (what was done, None when nothing changed, and the
    rule's version after). Conflict when the rule's version is not `expected_version`."""
    _check_tenant(command.tenant)
    await view.refresh()
    entity = rule_entity(command.tenant, command.rule.name)
    current = view.state(AlertConfigState).config(command.tenant)
    if command.expected_version is not None and view.version(entity) != command.expected_version:
        raise Conflict(
            f"rule {command.rule.name!r} changed since version {command.expected_version} "
            f"(now {view.version(entity)}): reload it and edit again"
        )
    wanted = dataclasses.replace(current, rules={**current.rules, command.rule.name: command.rule})
    plan = await plan_alert_config(
        ApplyAlertConfig(tenant=command.tenant, config=wanted, author=command.author), view=view, clock_ms=clock_ms
    )
    # The plan's own version check (the view rejects a stale event) covers a change after ours.
    if command.expected_version is not None and any(
        c.entity == entity and c.expected_version != command.expected_version for c in plan.changes
    ):
        raise Conflict(f"rule {command.rule.name!r} changed while saving: reload it and edit again")
    await execute_plan(plan, view=view)
    action = next((c.action for c in plan.changes if c.entity == entity), None)
    return action, view.version(entity)
