"""Alerting's configuration, as values: rules, receivers, routes, inhibitions, mute windows,
escalation policies and silences of one tenant. Pure (no I/O): the command side validates a
document into these (core/alerting/document.py), config events carry them, the evaluator and
the notifier read them from the config view.

Durations are milliseconds (`*_ms`); times are epoch milliseconds. Names are unique per kind
within a tenant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

# Bounds every document is checked against (docs/alerting.md).
MIN_INTERVAL_MS: Final = 1_000
MIN_WINDOW_MS: Final = 1_000
MAX_WINDOW_MS: Final = 86_400_000
NAME_PATTERN: Final = r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretRef:
    """Where a secret is read at send time: an environment variable or a file. Config events
    and logs carry only the reference, never the value (core/alerting/secrets.py reads it)."""

    source: str
    """`env` or `file`."""
    name: str
    """The variable's name, or the file's path."""

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleQuery:
    """What a rule watches, with the parameters of `/api/v1/query` (docs/query-api.md)."""

    metric: str
    region: str = ""
    where: tuple[str, ...] = ()
    """Matchers as in `where=`: `name=value`, `name!=value`, `name=~re2`, `name!~re2`."""
    group_by: tuple[str, ...] = ()
    """One alert instance per combination of these labels' values."""
    agg: str = "avg"
    """count, sum, min, max, avg, last, rate, pNN (timers) or distinct."""


class ConditionOp(StrEnum):
    ABOVE = ">"
    AT_OR_ABOVE = ">="
    BELOW = "<"
    AT_OR_BELOW = "<="
    OUTSIDE = "outside"
    """Breached below `low` or above `high`."""
    INSIDE = "inside"
    CHANGE = "change"
    """|value - value `over_ms` earlier| > threshold."""
    PERCENT_CHANGE = "percent_change"
    """|value / value `over_ms` earlier - 1| * 100 > threshold."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    op: ConditionOp
    threshold: float = 0.0
    low: float = 0.0
    high: float = 0.0
    over_ms: int = 0
    """For change / percent_change: how far back the value compared against is."""

    def breached(self, value: float, earlier: float | None = None) -> bool:
        """Whether `value` (and, for the change conditions, the value `over_ms` earlier)
        breaches. NaN never breaches: no data is the no-data policy's business."""
        if math.isnan(value):
            return False
        match self.op:
            case ConditionOp.ABOVE:
                return value > self.threshold
            case ConditionOp.AT_OR_ABOVE:
                return value >= self.threshold
            case ConditionOp.BELOW:
                return value < self.threshold
            case ConditionOp.AT_OR_BELOW:
                return value <= self.threshold
            case ConditionOp.OUTSIDE:
                return value < self.low or value > self.high
            case ConditionOp.INSIDE:
                return self.low <= value <= self.high
            case ConditionOp.CHANGE:
                return earlier is not None and not math.isnan(earlier) and abs(value - earlier) > self.threshold
            case ConditionOp.PERCENT_CHANGE:
                if earlier is None or math.isnan(earlier) or earlier == 0:
                    return False
                return abs(value / earlier - 1.0) * 100.0 > self.threshold


class NoDataPolicy(StrEnum):
    OK = "ok"
    """No data resolves (or never fires)."""
    ALERT = "alert"
    """No data for `no_data_timeout_ms` fires a no-data alert."""
    KEEP_LAST = "keep_last"
    """No data keeps the last state."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRule:
    name: str
    query: RuleQuery
    window_ms: int
    """The range the query aggregates over, ending at evaluation time (1 s ... 1 d)."""
    condition: Condition
    for_ms: int = 0
    """Breached this long (pending) before it fires."""
    keep_firing_for_ms: int = 0
    """Keeps firing this long after the breach ends (no flapping resolved/firing)."""
    no_data: NoDataPolicy = NoDataPolicy.OK
    no_data_timeout_ms: int = 0
    """0: twice the window."""
    interval_ms: int = 10_000
    """How often it is evaluated (at least 1 s)."""
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    """Added to every alert of the rule (routing matches on them)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Templates: `{{ value }}`, `{{ labels.host }}`, `{{ rule }}`, `{{ query_url }}`."""

    @property
    def effective_no_data_timeout_ms(self) -> int:
        return self.no_data_timeout_ms or 2 * self.window_ms


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailTarget:
    to: tuple[str, ...]
    from_addr: str
    smtp_host: str
    smtp_port: int = 587
    starttls: bool = True
    """Upgrade with STARTTLS (port 587); `implicit_tls` for port 465; both False: plaintext
    (only for a relay on loopback)."""
    implicit_tls: bool = False
    username: str = ""
    password: SecretRef | None = None
    timeout_ms: int = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookTarget:
    url: str
    secret: SecretRef | None = None
    """Signs every request: HMAC-SHA256 over `<timestamp>.<body>` (docs/alerting.md)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_ms: int = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SmsTarget:
    """Amazon SNS SMS to E.164 numbers."""

    phone_numbers: tuple[str, ...]
    region: str = "us-east-1"
    endpoint_url: str = ""
    """Empty: AWS; else an SNS-compatible endpoint (tests: a local moto server)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PushTarget:
    """Amazon SNS mobile push to platform endpoints."""

    target_arns: tuple[str, ...]
    region: str = "us-east-1"
    endpoint_url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AppriseTarget:
    """Any apprise URL (Slack, PagerDuty, Opsgenie, Teams, Telegram, ntfy, ...). The URL holds
    tokens, so it is a secret reference too."""

    url: SecretRef


@dataclass(frozen=True, slots=True, kw_only=True)
class Receiver:
    """A named set of channels; a notification to it goes out on every one."""

    name: str
    email: tuple[EmailTarget, ...] = ()
    webhook: tuple[WebhookTarget, ...] = ()
    sms: tuple[SmsTarget, ...] = ()
    push: tuple[PushTarget, ...] = ()
    apprise: tuple[AppriseTarget, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelMatcher:
    name: str
    op: str
    """`=`, `!=`, `=~` or `!~` (RE2, anchored: core/regex.py)."""
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Alerts matching `matchers` go to `receiver`, grouped by `group_by`: one notification per
    group lists every member. Child routes are tried first, in order; the first match wins
    unless it says `continue_matching`."""

    receiver: str
    matchers: tuple[LabelMatcher, ...] = ()
    group_by: tuple[str, ...] = ("alertname",)
    group_wait_ms: int = 30_000
    group_interval_ms: int = 300_000
    repeat_interval_ms: int = 4 * 3_600_000
    send_resolved: bool = True
    continue_matching: bool = False
    mute_time_intervals: tuple[str, ...] = ()
    escalation: str = ""
    """Name of an escalation policy, or empty."""
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class InhibitRule:
    """While an alert matching `source` fires, alerts matching `target` with equal values of
    the `equal` labels are muted (a firing region_down mutes host_down in that region)."""

    source: tuple[LabelMatcher, ...]
    target: tuple[LabelMatcher, ...]
    equal: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeRange:
    start_minute: int
    """Minutes after midnight, inclusive."""
    end_minute: int
    """Minutes after midnight, exclusive (1440: the end of the day)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeInterval:
    """A recurring mute window: on these weekdays (0 Monday ... 6 Sunday; empty: every day),
    during these times (empty: all day), in `timezone` (IANA name)."""

    name: str
    weekdays: tuple[int, ...] = ()
    times: tuple[TimeRange, ...] = ()
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationStep:
    after_ms: int
    """Since the alert fired, unacknowledged."""
    receivers: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationPolicy:
    name: str
    steps: tuple[EscalationStep, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    id: str
    matchers: tuple[LabelMatcher, ...]
    starts_ms: int
    ends_ms: int
    comment: str = ""
    author: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertConfig:
    """One tenant's alerting document (`argus alerts apply FILE`), validated."""

    rules: Mapping[str, AlertRule] = field(default_factory=dict)
    receivers: Mapping[str, Receiver] = field(default_factory=dict)
    route: Route | None = None
    inhibit_rules: tuple[InhibitRule, ...] = ()
    time_intervals: Mapping[str, TimeInterval] = field(default_factory=dict)
    escalation_policies: Mapping[str, EscalationPolicy] = field(default_factory=dict)
