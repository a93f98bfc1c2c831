"""`AlertConfigState`: every tenant's alerting configuration and silences, rebuilt from the
config topic by a `ConfigView` (core/config_view.py; register it there like ApiKeyRegistry).

Guarantees: the same log gives every process the same state (events apply in log order;
the view decides conflicts before `apply` runs). Tenants are apart: an event changes only
the tenant it names. A rejected event (deleting what does not exist, a silence id used
twice) changes nothing. `generation` grows with every applied event, so a reader (the
evaluator, the notifier) can tell cheaply that the configuration changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from contracts.argus.alerts.v1 import config_pb2 as pb
from core.alerting.events import (
    receiver_entity,
    receiver_from_proto,
    routing_entity,
    routing_from_proto,
    rule_entity,
    rule_from_proto,
    silence_entity,
    silence_from_proto,
)
from core.alerting.model import AlertConfig, AlertRule, Receiver, Silence
from core.config_view import ConfigKind
from core.errors import Conflict, NotFound
from core.ports import Event


@dataclass(slots=True)
class _Tenant:
    rules: dict[str, AlertRule] = field(default_factory=dict)
    receivers: dict[str, Receiver] = field(default_factory=dict)
    routing: AlertConfig = field(default_factory=AlertConfig)
    silences: dict[str, Silence] = field(default_factory=dict)


class AlertConfigState:
    """Tenant -> AlertConfig and silences: the alerting state of a `ConfigView`."""

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}
        self._generation = 0

    def kinds(self) -> Sequence[ConfigKind[Any]]:
        return (
            ConfigKind(
                payload=pb.AlertRuleSaved, entity=lambda p: rule_entity(p.tenant, p.rule.name), apply=self._rule_saved
            ),
            ConfigKind(
                payload=pb.AlertRuleDeleted, entity=lambda p: rule_entity(p.tenant, p.name), apply=self._rule_deleted
            ),
            ConfigKind(
                payload=pb.ReceiverSaved,
                entity=lambda p: receiver_entity(p.tenant, p.receiver.name),
                apply=self._receiver_saved,
            ),
            ConfigKind(
                payload=pb.ReceiverDeleted,
                entity=lambda p: receiver_entity(p.tenant, p.name),
                apply=self._receiver_deleted,
            ),
            ConfigKind(
                payload=pb.AlertRoutingSaved, entity=lambda p: routing_entity(p.tenant), apply=self._routing_saved
            ),
            ConfigKind(
                payload=pb.SilenceCreated,
                entity=lambda p: silence_entity(p.tenant, p.silence.id),
                apply=self._silence_created,
            ),
            ConfigKind(
                payload=pb.SilenceExpired, entity=lambda p: silence_entity(p.tenant, p.id), apply=self._silence_expired
            ),
        )

    # -- reads

    @property
    def generation(self) -> int:
        """Number of alerting events applied so far (changes whenever the state does)."""
        return self._generation

    def tenants(self) -> list[str]:
        """Tenants with any alerting configuration or silence, sorted."""
        return sorted(self._tenants)

    def config(self, tenant: str) -> AlertConfig:
        """The tenant's configuration as it stands (empty when it has none)."""
        t = self._tenants.get(tenant)
        if t is None:
            return AlertConfig()
        return replace(t.routing, rules=dict(t.rules), receivers=dict(t.receivers))

    def silences(self, tenant: str, *, active_at_ms: int | None = None) -> list[Silence]:
        """The tenant's silences, oldest start first; with `active_at_ms`, only those whose
        [starts_ms, ends_ms) holds that time."""
        t = self._tenants.get(tenant)
        found = [] if t is None else list(t.silences.values())
        if active_at_ms is not None:
            found = [s for s in found if s.starts_ms <= active_at_ms < s.ends_ms]
        return sorted(found, key=lambda s: (s.starts_ms, s.id))

    def silence(self, tenant: str, silence_id: str) -> Silence | None:
        t = self._tenants.get(tenant)
        return None if t is None else t.silences.get(silence_id)

    # -- applies (the view has checked the expected version already)

    def _tenant(self, name: str) -> _Tenant:
        return self._tenants.setdefault(name, _Tenant())

    def _rule_saved(self, msg: pb.AlertRuleSaved, event: Event) -> None:
        rule = rule_from_proto(msg.rule)
        self._tenant(msg.tenant).rules[rule.name] = rule
        self._generation += 1

    def _rule_deleted(self, msg: pb.AlertRuleDeleted, event: Event) -> None:
        if self._tenant(msg.tenant).rules.pop(msg.name, None) is None:
            raise NotFound(f"alert rule {msg.name!r} of tenant {msg.tenant} does not exist")
        self._generation += 1

    def _receiver_saved(self, msg: pb.ReceiverSaved, event: Event) -> None:
        receiver = receiver_from_proto(msg.receiver)
        self._tenant(msg.tenant).receivers[receiver.name] = receiver
        self._generation += 1

    def _receiver_deleted(self, msg: pb.ReceiverDeleted, event: Event) -> None:
        if self._tenant(msg.tenant).receivers.pop(msg.name, None) is None:
            raise NotFound(f"receiver {msg.name!r} of tenant {msg.tenant} does not exist")
        self._generation += 1

    def _routing_saved(self, msg: pb.AlertRoutingSaved, event: Event) -> None:
        self._tenant(msg.tenant).routing = routing_from_proto(msg)
        self._generation += 1

    def _silence_created(self, msg: pb.SilenceCreated, event: Event) -> None:
        silences = self._tenant(msg.tenant).silences
        if msg.silence.id in silences:
            raise Conflict(f"silence {msg.silence.id} of tenant {msg.tenant} already exists")
        silences[msg.silence.id] = silence_from_proto(msg.silence)
        self._generation += 1

    def _silence_expired(self, msg: pb.SilenceExpired, event: Event) -> None:
        silence = self._tenant(msg.tenant).silences.get(msg.id)
        if silence is None:
            raise NotFound(f"silence {msg.id} of tenant {msg.tenant} does not exist")
        # Expiring ends it now (the change's time, the same in every follower), never later.
        ends_ms = min(silence.ends_ms, max(event.time_ms, silence.starts_ms))
        self._tenant(msg.tenant).silences[msg.id] = replace(silence, ends_ms=ends_ms)
        self._generation += 1
