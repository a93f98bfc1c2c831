"""The watchdog: a rule every tenant with alerting configured has by default, that always
fires, so that a dead alerting pipeline (evaluator, notifier, or the way to the receiver) is
itself noticed by whoever expects its notification to keep arriving (a dead man's switch).

- It exists for every tenant that has at least one rule of its own (a tenant without rules has
  no alerting to watch, and `argus up` reads no samples for alerting until some tenant has a
  rule).
- It is a rule like any other: named `Watchdog` (`alertname="Watchdog"`, severity `none`),
  routed by the tenant's routes, repeated at the route's `repeat_interval`.
- A rule of the tenant's own named `Watchdog` replaces it (to change it, or to switch it off
  with a rule that never fires; docs/alerting.md).
- It watches a metric nobody writes with the no-data policy `alert`, and a condition every
  number breaches: it fires one second after it is first evaluated, whatever is pushed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from core.alerting.model import AlertRule, Condition, ConditionOp, NoDataPolicy, RuleQuery

WATCHDOG_RULE: Final = "Watchdog"
WATCHDOG_METRIC: Final = "argus_watchdog"

WATCHDOG: Final = AlertRule(
    name=WATCHDOG_RULE,
    query=RuleQuery(metric=WATCHDOG_METRIC, agg="last"),
    window_ms=1_000,
    # Below +inf or above -inf: every number breaches (and no data fires, below).
    condition=Condition(op=ConditionOp.OUTSIDE, low=math.inf, high=-math.inf),
    no_data=NoDataPolicy.ALERT,
    no_data_timeout_ms=1_000,
    interval_ms=1_000,
    severity="none",
    annotations={
        "summary": "Alerting is alive: this alert always fires. If its notifications stop arriving, "
        "alerting is down (dead man's switch)."
    },
)


def with_watchdog(rules: Mapping[str, Sequence[AlertRule]]) -> dict[str, tuple[AlertRule, ...]]:
    """Every tenant's rules plus the default watchdog, unless the tenant has no rules or one
    of its own named `Watchdog`."""
    out: dict[str, tuple[AlertRule, ...]] = {}
    for tenant, own in rules.items():
        if not own:
            continue
        out[tenant] = tuple(own) if any(r.name == WATCHDOG_RULE for r in own) else (*own, WATCHDOG)
    return out
