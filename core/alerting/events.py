"""Alerting configuration <-> its config events (contracts/argus/alerts/v1/config.proto).

`*_to_proto` and `*_from_proto` are exact inverses on valid values (a hypothesis test holds
them to it), so a value read back from the log compares equal to the one that was applied:
that equality is how `argus alerts apply` knows that nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterable

from contracts.argus.alerts.v1 import config_pb2 as pb
from core.alerting.model import (
    AlertConfig,
    AlertRule,
    AppriseTarget,
    Condition,
    ConditionOp,
    EmailTarget,
    EscalationPolicy,
    EscalationStep,
    InhibitRule,
    LabelMatcher,
    NoDataPolicy,
    PushTarget,
    Receiver,
    Route,
    RuleQuery,
    SecretRef,
    Silence,
    SmsTarget,
    TimeInterval,
    TimeRange,
    WebhookTarget,
)
from core.errors import CorruptData

_OPS: dict[ConditionOp, pb.ConditionOp] = {
    ConditionOp.ABOVE: pb.CONDITION_OP_ABOVE,
    ConditionOp.AT_OR_ABOVE: pb.CONDITION_OP_AT_OR_ABOVE,
    ConditionOp.BELOW: pb.CONDITION_OP_BELOW,
    ConditionOp.AT_OR_BELOW: pb.CONDITION_OP_AT_OR_BELOW,
    ConditionOp.OUTSIDE: pb.CONDITION_OP_OUTSIDE,
    ConditionOp.INSIDE: pb.CONDITION_OP_INSIDE,
    ConditionOp.CHANGE: pb.CONDITION_OP_CHANGE,
    ConditionOp.PERCENT_CHANGE: pb.CONDITION_OP_PERCENT_CHANGE,
}
_OPS_BACK = {v: k for k, v in _OPS.items()}
_NO_DATA: dict[NoDataPolicy, pb.NoDataPolicy] = {
    NoDataPolicy.OK: pb.NO_DATA_POLICY_OK,
    NoDataPolicy.ALERT: pb.NO_DATA_POLICY_ALERT,
    NoDataPolicy.KEEP_LAST: pb.NO_DATA_POLICY_KEEP_LAST,
}
_NO_DATA_BACK = {v: k for k, v in _NO_DATA.items()}

ROUTING = "routing"


def rule_entity(tenant: str, name: str) -> str:
    return f"alert_rule:{tenant}/{name}"


def receiver_entity(tenant: str, name: str) -> str:
    return f"alert_receiver:{tenant}/{name}"


def routing_entity(tenant: str) -> str:
    return f"alert_routing:{tenant}"


def silence_entity(tenant: str, silence_id: str) -> str:
    return f"silence:{tenant}/{silence_id}"


def _secret_to_proto(ref: SecretRef | None) -> pb.SecretRef | None:
    return None if ref is None else pb.SecretRef(source=ref.source, name=ref.name)


def _secret_from_proto(msg: pb.SecretRef) -> SecretRef:
    return SecretRef(source=msg.source, name=msg.name)


def rule_to_proto(rule: AlertRule) -> pb.AlertRule:
    q = rule.query
    c = rule.condition
    return pb.AlertRule(
        name=rule.name,
        query=pb.RuleQuery(metric=q.metric, region=q.region, where=q.where, group_by=q.group_by, agg=q.agg),
        window_ms=rule.window_ms,
        condition=pb.Condition(op=_OPS[c.op], threshold=c.threshold, low=c.low, high=c.high, over_ms=c.over_ms),
        for_ms=rule.for_ms,
        keep_firing_for_ms=rule.keep_firing_for_ms,
        no_data=_NO_DATA[rule.no_data],
        no_data_timeout_ms=rule.no_data_timeout_ms,
        interval_ms=rule.interval_ms,
        severity=rule.severity,
        labels=dict(rule.labels),
        annotations=dict(rule.annotations),
    )


def rule_from_proto(msg: pb.AlertRule) -> AlertRule:
    op = _OPS_BACK.get(msg.condition.op)
    no_data = _NO_DATA_BACK.get(msg.no_data)
    if op is None or no_data is None:
        raise CorruptData(f"alert rule {msg.name!r}: unknown condition op or no-data policy")
    q = msg.query
    c = msg.condition
    return AlertRule(
        name=msg.name,
        query=RuleQuery(metric=q.metric, region=q.region, where=tuple(q.where), group_by=tuple(q.group_by), agg=q.agg),
        window_ms=msg.window_ms,
        condition=Condition(op=op, threshold=c.threshold, low=c.low, high=c.high, over_ms=c.over_ms),
        for_ms=msg.for_ms,
        keep_firing_for_ms=msg.keep_firing_for_ms,
        no_data=no_data,
        no_data_timeout_ms=msg.no_data_timeout_ms,
        interval_ms=msg.interval_ms,
        severity=msg.severity,
        labels=dict(msg.labels),
        annotations=dict(msg.annotations),
    )


def receiver_to_proto(r: Receiver) -> pb.Receiver:
    return pb.Receiver(
        name=r.name,
        email=[
            pb.EmailTarget(
                to=e.to,
                from_addr=e.from_addr,
                smtp_host=e.smtp_host,
                smtp_port=e.smtp_port,
                starttls=e.starttls,
                implicit_tls=e.implicit_tls,
                username=e.username,
                password=_secret_to_proto(e.password),
                timeout_ms=e.timeout_ms,
            )
            for e in r.email
        ],
        webhook=[
            pb.WebhookTarget(
                url=w.url, secret=_secret_to_proto(w.secret), headers=dict(w.headers), timeout_ms=w.timeout_ms
            )
            for w in r.webhook
        ],
        sms=[pb.SmsTarget(phone_numbers=s.phone_numbers, region=s.region, endpoint_url=s.endpoint_url) for s in r.sms],
        push=[pb.PushTarget(target_arns=p.target_arns, region=p.region, endpoint_url=p.endpoint_url) for p in r.push],
        apprise=[pb.AppriseTarget(url=_secret_to_proto(a.url)) for a in r.apprise],
    )


def receiver_from_proto(msg: pb.Receiver) -> Receiver:
    return Receiver(
        name=msg.name,
        email=tuple(
            EmailTarget(
                to=tuple(e.to),
                from_addr=e.from_addr,
                smtp_host=e.smtp_host,
                smtp_port=e.smtp_port,
                starttls=e.starttls,
                implicit_tls=e.implicit_tls,
                username=e.username,
                password=_secret_from_proto(e.password) if e.HasField("password") else None,
                timeout_ms=e.timeout_ms,
            )
            for e in msg.email
        ),
        webhook=tuple(
            WebhookTarget(
                url=w.url,
                secret=_secret_from_proto(w.secret) if w.HasField("secret") else None,
                headers=dict(w.headers),
                timeout_ms=w.timeout_ms,
            )
            for w in msg.webhook
        ),
        sms=tuple(
            SmsTarget(phone_numbers=tuple(s.phone_numbers), region=s.region, endpoint_url=s.endpoint_url)
            for s in msg.sms
        ),
        push=tuple(
            PushTarget(target_arns=tuple(p.target_arns), region=p.region, endpoint_url=p.endpoint_url) for p in msg.push
        ),
        apprise=tuple(AppriseTarget(url=_secret_from_proto(a.url)) for a in msg.apprise),
    )


def _matchers_to_proto(matchers: Iterable[LabelMatcher]) -> list[pb.LabelMatcher]:
    return [pb.LabelMatcher(name=m.name, op=m.op, value=m.value) for m in matchers]


def _matchers_from_proto(msgs: Iterable[pb.LabelMatcher]) -> tuple[LabelMatcher, ...]:
    return tuple(LabelMatcher(name=m.name, op=m.op, value=m.value) for m in msgs)


def route_to_proto(route: Route) -> pb.Route:
    return pb.Route(
        receiver=route.receiver,
        matchers=_matchers_to_proto(route.matchers),
        group_by=route.group_by,
        group_wait_ms=route.group_wait_ms,
        group_interval_ms=route.group_interval_ms,
        repeat_interval_ms=route.repeat_interval_ms,
        send_resolved=route.send_resolved,
        continue_matching=route.continue_matching,
        mute_time_intervals=route.mute_time_intervals,
        escalation=route.escalation,
        routes=[route_to_proto(child) for child in route.routes],
    )


def route_from_proto(msg: pb.Route) -> Route:
    return Route(
        receiver=msg.receiver,
        matchers=_matchers_from_proto(msg.matchers),
        group_by=tuple(msg.group_by),
        group_wait_ms=msg.group_wait_ms,
        group_interval_ms=msg.group_interval_ms,
        repeat_interval_ms=msg.repeat_interval_ms,
        send_resolved=msg.send_resolved,
        continue_matching=msg.continue_matching,
        mute_time_intervals=tuple(msg.mute_time_intervals),
        escalation=msg.escalation,
        routes=tuple(route_from_proto(child) for child in msg.routes),
    )


def routing_to_proto(tenant: str, config: AlertConfig) -> pb.AlertRoutingSaved:
    """The routing part of `config` (route, inhibitions, time intervals, escalations), no change."""
    msg = pb.AlertRoutingSaved(
        tenant=tenant,
        inhibit_rules=[
            pb.InhibitRule(source=_matchers_to_proto(i.source), target=_matchers_to_proto(i.target), equal=i.equal)
            for i in config.inhibit_rules
        ],
        time_intervals=[
            pb.TimeInterval(
                name=t.name,
                weekdays=t.weekdays,
                times=[pb.TimeRange(start_minute=r.start_minute, end_minute=r.end_minute) for r in t.times],
                timezone=t.timezone,
            )
            for t in config.time_intervals.values()
        ],
        escalation_policies=[
            pb.EscalationPolicy(
                name=p.name, steps=[pb.EscalationStep(after_ms=s.after_ms, receivers=s.receivers) for s in p.steps]
            )
            for p in config.escalation_policies.values()
        ],
    )
    if config.route is not None:
        msg.route.CopyFrom(route_to_proto(config.route))
    return msg


def routing_from_proto(msg: pb.AlertRoutingSaved) -> AlertConfig:
    """An AlertConfig holding only the routing part of `msg` (no rules, no receivers)."""
    return AlertConfig(
        route=route_from_proto(msg.route) if msg.HasField("route") else None,
        inhibit_rules=tuple(
            InhibitRule(
                source=_matchers_from_proto(i.source), target=_matchers_from_proto(i.target), equal=tuple(i.equal)
            )
            for i in msg.inhibit_rules
        ),
        time_intervals={
            t.name: TimeInterval(
                name=t.name,
                weekdays=tuple(t.weekdays),
                times=tuple(TimeRange(start_minute=r.start_minute, end_minute=r.end_minute) for r in t.times),
                timezone=t.timezone,
            )
            for t in msg.time_intervals
        },
        escalation_policies={
            p.name: EscalationPolicy(
                name=p.name,
                steps=tuple(EscalationStep(after_ms=s.after_ms, receivers=tuple(s.receivers)) for s in p.steps),
            )
            for p in msg.escalation_policies
        },
    )


def silence_to_proto(s: Silence) -> pb.Silence:
    return pb.Silence(
        id=s.id,
        matchers=_matchers_to_proto(s.matchers),
        starts_ms=s.starts_ms,
        ends_ms=s.ends_ms,
        comment=s.comment,
        author=s.author,
    )


def silence_from_proto(msg: pb.Silence) -> Silence:
    return Silence(
        id=msg.id,
        matchers=_matchers_from_proto(msg.matchers),
        starts_ms=msg.starts_ms,
        ends_ms=msg.ends_ms,
        comment=msg.comment,
        author=msg.author,
    )


def same_routing(a: AlertConfig, b: AlertConfig) -> bool:
    """Whether the routing parts of two configs are equal."""
    return (
        a.route == b.route
        and a.inhibit_rules == b.inhibit_rules
        and dict(a.time_intervals) == dict(b.time_intervals)
        and dict(a.escalation_policies) == dict(b.escalation_policies)
    )
