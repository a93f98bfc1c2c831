"""The alert lifecycle as a pure state machine: one alert instance (a rule and one combination
of its group_by label values) moves

    inactive -> pending (breached, `for_ms` not yet elapsed) -> firing -> resolved

and back to pending on the next breach. No I/O and no clock: every step gets the evaluation
time, so the same evaluations give the same transitions, in any process.

- `for_ms` 0 fires at the first breached evaluation (no pending transition).
- `keep_firing_for_ms`: a firing instance stays firing until that long after its last
  breached evaluation.
- No data (the rule's window holds no point of the instance) follows the rule's policy:
  `ok` treats it as not breached, `keep_last` changes nothing, `alert` keeps the last state
  until no data has lasted `effective_no_data_timeout_ms`, then fires with reason "no data".
- Every transition is a value with a deterministic id: SHA-256 over (tenant, rule, instance
  labels, sequence), `sequence` counting the instance's transitions from 1. An evaluator that
  restores an instance from its last transition (`restore`) and re-evaluates makes the same
  ids, so a transition appended twice (before and after a crash) is one event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from core.alerting.model import AlertRule, NoDataPolicy
from core.events import digest


class AlertState(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


# Reasons a transition carries (AlertStateChanged.reason).
BREACHED = "breached"
FOR_ELAPSED = "for elapsed"
RECOVERED = "recovered"
KEEP_FIRING_ELAPSED = "keep_firing_for elapsed"
NO_DATA = "no data"
DATA_RETURNED = "data returned"


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceKey:
    """Who an alert instance is: `labels` are the rule's group_by labels with their values,
    sorted by name (empty for a rule without group_by)."""

    tenant: str
    rule: str
    labels: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def of(tenant: str, rule: str, labels: Mapping[str, str]) -> InstanceKey:
        return InstanceKey(tenant=tenant, rule=rule, labels=tuple(sorted(labels.items())))

    @property
    def instance_id(self) -> str:
        """Hex SHA-256 over (tenant, rule, labels): stable across processes and restarts."""
        return digest("alert-instance", self.tenant, self.rule, *[p for kv in self.labels for p in kv]).hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceState:
    """Where one instance is. `since_ms`: when its current state began (for pending and
    firing: when the breach began). `last_breach_ms`: the last breached evaluation (for
    keep_firing_for). `no_data_since_ms`: the first evaluation of the current run without
    data. `sequence`: transitions so far."""

    state: AlertState = AlertState.INACTIVE
    since_ms: int = 0
    breach_since_ms: int | None = None
    last_breach_ms: int | None = None
    no_data_since_ms: int | None = None
    no_data_firing: bool = False
    sequence: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """One change of an instance's state: what AlertStateChanged carries."""

    key: InstanceKey
    from_state: AlertState
    to_state: AlertState
    value: float
    """The rule's value at the evaluation (NaN without data)."""
    evaluated_at_ms: int
    since_ms: int
    reason: str
    sequence: int

    @property
    def event_id_identity(self) -> bytes:
        """What the event id is SHA-256 over, besides the event type (core.events.make_event)."""
        return transition_identity(self.key, self.sequence)


def transition_identity(key: InstanceKey, sequence: int) -> bytes:
    """Canonical bytes of (tenant, rule, instance labels, sequence)."""
    return digest(key.tenant, key.rule, *[p for kv in key.labels for p in kv], str(sequence))


def step(
    rule: AlertRule,
    key: InstanceKey,
    current: InstanceState,
    *,
    value: float | None,
    now_ms: int,
    earlier: float | None = None,
) -> tuple[InstanceState, Transition | None]:
    """One evaluation of one instance at `now_ms`: `value` is the rule's value over its window
    (None: no data in the window), `earlier` the value `over_ms` before (change conditions).
    Returns the new state and the transition it made, if any (at most one per evaluation)."""
    if value is None or math.isnan(value):
        return _no_data(rule, key, current, now_ms=now_ms)
    resumed = current.no_data_since_ms is not None
    state = replace(current, no_data_since_ms=None)
    if current.no_data_firing:
        state = replace(state, no_data_firing=False)
    breached = rule.condition.breached(value, earlier)
    if breached:
        state = replace(state, last_breach_ms=now_ms)
        if state.state in (AlertState.INACTIVE, AlertState.RESOLVED):
            if rule.for_ms <= 0:
                return _move(
                    key, state, AlertState.FIRING, value, now_ms, since_ms=now_ms, reason=BREACHED, breach=now_ms
                )
            return _move(key, state, AlertState.PENDING, value, now_ms, since_ms=now_ms, reason=BREACHED, breach=now_ms)
        if state.state is AlertState.PENDING:
            started = state.breach_since_ms if state.breach_since_ms is not None else state.since_ms
            if now_ms - started >= rule.for_ms:
                return _move(
                    key, state, AlertState.FIRING, value, now_ms, since_ms=started, reason=FOR_ELAPSED, breach=started
                )
            return state, None
        # Firing and still breached: a no-data firing that now breaches stays firing.
        return state, None
    reason = DATA_RETURNED if resumed and current.no_data_firing else RECOVERED
    return _not_breached(rule, key, state, value, now_ms, reason=reason)


def _not_breached(
    rule: AlertRule, key: InstanceKey, state: InstanceState, value: float, now_ms: int, *, reason: str
) -> tuple[InstanceState, Transition | None]:
    if state.state is AlertState.PENDING:
        return _move(key, state, AlertState.INACTIVE, value, now_ms, since_ms=now_ms, reason=reason, breach=None)
    if state.state is AlertState.FIRING:
        last = state.last_breach_ms
        if rule.keep_firing_for_ms > 0 and last is not None and now_ms - last < rule.keep_firing_for_ms:
            return state, None
        if rule.keep_firing_for_ms > 0 and reason == RECOVERED:
            reason = KEEP_FIRING_ELAPSED
        return _move(key, state, AlertState.RESOLVED, value, now_ms, since_ms=now_ms, reason=reason, breach=None)
    return state, None


def _no_data(
    rule: AlertRule, key: InstanceKey, current: InstanceState, *, now_ms: int
) -> tuple[InstanceState, Transition | None]:
    nan = math.nan
    state = current if current.no_data_since_ms is not None else replace(current, no_data_since_ms=now_ms)
    if rule.no_data is NoDataPolicy.KEEP_LAST:
        return state, None
    if rule.no_data is NoDataPolicy.OK:
        return _not_breached(rule, key, state, nan, now_ms, reason=NO_DATA)
    # ALERT: the last state holds until the timeout, then the instance fires for no data.
    gap_since = state.no_data_since_ms if state.no_data_since_ms is not None else now_ms
    if state.state is AlertState.FIRING or now_ms - gap_since < rule.effective_no_data_timeout_ms:
        return state, None
    state = replace(state, no_data_firing=True)
    return _move(key, state, AlertState.FIRING, nan, now_ms, since_ms=gap_since, reason=NO_DATA, breach=None)


def _move(
    key: InstanceKey,
    state: InstanceState,
    to: AlertState,
    value: float,
    now_ms: int,
    *,
    since_ms: int,
    reason: str,
    breach: int | None,
) -> tuple[InstanceState, Transition]:
    sequence = state.sequence + 1
    breach_since = breach
    new = replace(state, state=to, since_ms=since_ms, breach_since_ms=breach_since, sequence=sequence)
    return new, Transition(
        key=key,
        from_state=state.state,
        to_state=to,
        value=value,
        evaluated_at_ms=now_ms,
        since_ms=since_ms,
        reason=reason,
        sequence=sequence,
    )


def restore(last: Transition) -> InstanceState:
    """An instance's state from its last transition (an evaluator restarting from the alerts
    topic). What happened between that transition and the crash is not in the log: a firing
    instance counts its last breach as the transition's time, so keep_firing_for ends no
    earlier than it would have (see docs/decisions/0024)."""
    to = last.to_state
    breaching = to in (AlertState.PENDING, AlertState.FIRING)
    return InstanceState(
        state=to,
        since_ms=last.since_ms,
        breach_since_ms=last.since_ms if breaching else None,
        last_breach_ms=last.evaluated_at_ms if breaching else None,
        no_data_since_ms=last.evaluated_at_ms if last.reason == NO_DATA else None,
        no_data_firing=to is AlertState.FIRING and last.reason == NO_DATA,
        sequence=last.sequence,
    )
