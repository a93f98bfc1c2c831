"""The alert lifecycle state machine alone: injected times, no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from core.alerting.lifecycle import (
    AlertState,
    InstanceKey,
    InstanceState,
    Transition,
    restore,
    step,
    transition_identity,
)
from core.alerting.model import AlertRule, Condition, ConditionOp, NoDataPolicy, RuleQuery

KEY = InstanceKey.of("acme", "cpu_high", {"host": "a"})
S = 1_000


def rule(**kw: Any) -> AlertRule:
    return AlertRule(
        name="cpu_high",
        query=RuleQuery(metric="cpu"),
        window_ms=60 * S,
        condition=Condition(op=ConditionOp.ABOVE, threshold=90.0),
        **kw,
    )


def run(
    r: AlertRule, values: Sequence[tuple[int, float | None]], state: InstanceState | None = None
) -> tuple[InstanceState, list[Transition]]:
    """Evaluate (time, value) in order; return the final state and every transition."""
    current = state or InstanceState()
    out: list[Transition] = []
    for now_ms, value in values:
        current, transition = step(r, KEY, current, value=value, now_ms=now_ms)
        if transition is not None:
            out.append(transition)
    return current, out


def moves(transitions: Sequence[Transition]) -> list[tuple[int, AlertState, AlertState]]:
    return [(t.evaluated_at_ms, t.from_state, t.to_state) for t in transitions]


def test_pending_fires_once_for_has_elapsed_then_resolves() -> None:
    r = rule(for_ms=30 * S)
    timeline = [(t * 10 * S, 95.0) for t in range(5)] + [(50 * S, 50.0)]
    final, transitions = run(r, timeline)
    assert moves(transitions) == [
        (0, AlertState.INACTIVE, AlertState.PENDING),
        (30 * S, AlertState.PENDING, AlertState.FIRING),
        (50 * S, AlertState.FIRING, AlertState.RESOLVED),
    ]
    assert transitions[1].since_ms == 0  # firing since the breach began
    assert [t.sequence for t in transitions] == [1, 2, 3]
    assert final.state is AlertState.RESOLVED


def test_pending_that_recovers_before_for_goes_back_to_inactive_without_firing() -> None:
    _, transitions = run(rule(for_ms=30 * S), [(0, 95.0), (10 * S, 95.0), (20 * S, 10.0), (40 * S, 10.0)])
    assert moves(transitions) == [
        (0, AlertState.INACTIVE, AlertState.PENDING),
        (20 * S, AlertState.PENDING, AlertState.INACTIVE),
    ]


def test_for_zero_fires_at_the_first_breach() -> None:
    _, transitions = run(rule(), [(0, 10.0), (10 * S, 91.0)])
    assert moves(transitions) == [(10 * S, AlertState.INACTIVE, AlertState.FIRING)]


def test_keep_firing_for_holds_until_that_long_after_the_last_breach() -> None:
    r = rule(keep_firing_for_ms=30 * S)
    timeline = [(0, 95.0), (10 * S, 95.0), (20 * S, 10.0), (30 * S, 95.0), (40 * S, 10.0), (60 * S, 10.0)]
    timeline.append((70 * S, 10.0))
    _, transitions = run(r, timeline)
    # Last breach at 30 s: still firing at 40 s, resolved at the first evaluation >= 60 s.
    assert moves(transitions) == [
        (0, AlertState.INACTIVE, AlertState.FIRING),
        (60 * S, AlertState.FIRING, AlertState.RESOLVED),
    ]
    assert transitions[-1].reason == "keep_firing_for elapsed"


def test_resolved_instance_breaching_again_starts_a_new_pending_period() -> None:
    r = rule(for_ms=10 * S)
    _, transitions = run(r, [(0, 95.0), (10 * S, 95.0), (20 * S, 1.0), (30 * S, 95.0), (40 * S, 95.0)])
    assert moves(transitions)[-2:] == [
        (30 * S, AlertState.RESOLVED, AlertState.PENDING),
        (40 * S, AlertState.PENDING, AlertState.FIRING),
    ]
    assert transitions[-1].since_ms == 30 * S


def test_no_data_ok_resolves_like_a_recovery() -> None:
    _, transitions = run(rule(no_data=NoDataPolicy.OK), [(0, 95.0), (10 * S, None)])
    assert moves(transitions)[-1] == (10 * S, AlertState.FIRING, AlertState.RESOLVED)
    assert transitions[-1].reason == "no data"
    assert math.isnan(transitions[-1].value)


def test_no_data_keep_last_keeps_firing_and_keeps_pending() -> None:
    final, transitions = run(rule(no_data=NoDataPolicy.KEEP_LAST), [(0, 95.0), (10 * S, None), (500 * S, None)])
    assert len(transitions) == 1 and final.state is AlertState.FIRING
    final, transitions = run(rule(for_ms=60 * S, no_data=NoDataPolicy.KEEP_LAST), [(0, 95.0), (10 * S, None)])
    assert final.state is AlertState.PENDING and len(transitions) == 1


def test_no_data_alert_fires_after_its_timeout_and_resolves_when_data_returns() -> None:
    r = rule(no_data=NoDataPolicy.ALERT, no_data_timeout_ms=30 * S)
    timeline = [(0, 10.0), (10 * S, None), (30 * S, None), (40 * S, None), (50 * S, None), (60 * S, 10.0)]
    _, transitions = run(r, timeline)
    assert moves(transitions) == [
        (40 * S, AlertState.INACTIVE, AlertState.FIRING),
        (60 * S, AlertState.FIRING, AlertState.RESOLVED),
    ]
    assert transitions[0].reason == "no data" and transitions[0].since_ms == 10 * S
    assert transitions[1].reason == "data returned"


def test_no_data_alert_timeout_defaults_to_twice_the_window() -> None:
    r = rule(no_data=NoDataPolicy.ALERT)
    _, early = run(r, [(0, None), (119 * S, None)])
    _, due = run(r, [(0, None), (120 * S, None)])
    assert early == [] and moves(due) == [(120 * S, AlertState.INACTIVE, AlertState.FIRING)]


def test_transition_ids_depend_on_tenant_rule_labels_and_sequence_only() -> None:
    a = transition_identity(KEY, 1)
    assert a == transition_identity(InstanceKey.of("acme", "cpu_high", {"host": "a"}), 1)
    others = {
        transition_identity(KEY, 2),
        transition_identity(InstanceKey.of("other", "cpu_high", {"host": "a"}), 1),
        transition_identity(InstanceKey.of("acme", "cpu_low", {"host": "a"}), 1),
        transition_identity(InstanceKey.of("acme", "cpu_high", {"host": "b"}), 1),
        # Length-prefixed parts: moving a character between name and value changes the id.
        transition_identity(InstanceKey.of("acme", "cpu_high", {"hos": "ta"}), 1),
    }
    assert a not in others and len(others) == 5


def test_restored_state_continues_with_the_same_sequence_and_timing() -> None:
    r = rule(for_ms=30 * S)
    timeline = [(t * 10 * S, 95.0) for t in range(5)] + [(50 * S, 50.0)]
    _, whole = run(r, timeline)
    # Crash after the pending transition (10 s evaluated, 20 s lost): restore and go on.
    first, before = run(r, timeline[:2])
    assert first.sequence == 1
    _, after = run(r, timeline[3:], state=restore(before[-1]))
    assert [(t.sequence, t.to_state, t.evaluated_at_ms) for t in before + after] == [
        (t.sequence, t.to_state, t.evaluated_at_ms) for t in whole
    ]
