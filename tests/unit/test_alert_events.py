"""Alerting config values <-> their protobuf messages (core/alerting/events.py) are exact
inverses: what a follower reads back compares equal to what was applied, which is how an
apply of an unchanged document knows to append nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.argus.alerts.v1 import config_pb2 as pb
from core.alerting.events import (
    receiver_from_proto,
    receiver_to_proto,
    routing_from_proto,
    routing_to_proto,
    rule_from_proto,
    rule_to_proto,
    same_routing,
    silence_from_proto,
    silence_to_proto,
)
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

text = st.text(max_size=12)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:-]{0,10}", fullmatch=True)
ms = st.integers(min_value=0, max_value=2**62)
floats = st.floats(allow_nan=False)
texts = st.lists(text, max_size=3).map(tuple)
string_maps = st.dictionaries(names, text, max_size=3)
secrets = st.builds(SecretRef, source=st.sampled_from(["env", "file"]), name=text)
matchers = st.lists(
    st.builds(LabelMatcher, name=names, op=st.sampled_from(["=", "!=", "=~", "!~"]), value=text), max_size=3
).map(tuple)

rules = st.builds(
    AlertRule,
    name=names,
    query=st.builds(RuleQuery, metric=names, region=text, where=texts, group_by=texts, agg=text),
    window_ms=ms,
    condition=st.builds(
        Condition, op=st.sampled_from(ConditionOp), threshold=floats, low=floats, high=floats, over_ms=ms
    ),
    for_ms=ms,
    keep_firing_for_ms=ms,
    no_data=st.sampled_from(NoDataPolicy),
    no_data_timeout_ms=ms,
    interval_ms=ms,
    severity=text,
    labels=string_maps,
    annotations=string_maps,
)
receivers = st.builds(
    Receiver,
    name=names,
    email=st.lists(
        st.builds(
            EmailTarget,
            to=texts,
            from_addr=text,
            smtp_host=text,
            smtp_port=st.integers(0, 65535),
            starttls=st.booleans(),
            implicit_tls=st.booleans(),
            username=text,
            password=st.none() | secrets,
            timeout_ms=ms,
        ),
        max_size=2,
    ).map(tuple),
    webhook=st.lists(
        st.builds(WebhookTarget, url=text, secret=st.none() | secrets, headers=string_maps, timeout_ms=ms), max_size=2
    ).map(tuple),
    sms=st.lists(st.builds(SmsTarget, phone_numbers=texts, region=text, endpoint_url=text), max_size=2).map(tuple),
    push=st.lists(st.builds(PushTarget, target_arns=texts, region=text, endpoint_url=text), max_size=2).map(tuple),
    apprise=st.lists(st.builds(AppriseTarget, url=secrets), max_size=2).map(tuple),
)


def route_strategy() -> st.SearchStrategy[Route]:
    def route(children: st.SearchStrategy[tuple[Route, ...]]) -> st.SearchStrategy[Route]:
        return st.builds(
            Route,
            receiver=names,
            matchers=matchers,
            group_by=texts,
            group_wait_ms=ms,
            group_interval_ms=ms,
            repeat_interval_ms=ms,
            send_resolved=st.booleans(),
            continue_matching=st.booleans(),
            mute_time_intervals=texts,
            escalation=text,
            routes=children,
        )

    leaf = route(st.just(()))
    return st.recursive(leaf, lambda inner: route(st.lists(inner, max_size=2).map(tuple)), max_leaves=6)


routings = st.builds(
    AlertConfig,
    route=st.none() | route_strategy(),
    inhibit_rules=st.lists(st.builds(InhibitRule, source=matchers, target=matchers, equal=texts), max_size=2).map(
        tuple
    ),
    time_intervals=st.lists(
        st.builds(
            TimeInterval,
            name=names,
            weekdays=st.lists(st.integers(0, 6), max_size=3).map(tuple),
            times=st.lists(
                st.builds(TimeRange, start_minute=st.integers(0, 1439), end_minute=st.integers(1, 1440)), max_size=2
            ).map(tuple),
            timezone=text,
        ),
        max_size=2,
    ).map(lambda items: {t.name: t for t in items}),
    escalation_policies=st.lists(
        st.builds(
            EscalationPolicy,
            name=names,
            steps=st.lists(st.builds(EscalationStep, after_ms=ms, receivers=texts), max_size=3).map(tuple),
        ),
        max_size=2,
    ).map(lambda items: {p.name: p for p in items}),
)
silences = st.builds(Silence, id=text, matchers=matchers, starts_ms=ms, ends_ms=ms, comment=text, author=text)


@settings(max_examples=200)
@given(rules)
def test_rules_round_trip(rule: AlertRule) -> None:
    wire = rule_to_proto(rule).SerializeToString(deterministic=True)
    assert rule_from_proto(pb.AlertRule.FromString(wire)) == rule


@settings(max_examples=200)
@given(receivers)
def test_receivers_round_trip(receiver: Receiver) -> None:
    wire = receiver_to_proto(receiver).SerializeToString(deterministic=True)
    assert receiver_from_proto(pb.Receiver.FromString(wire)) == receiver


@settings(max_examples=200)
@given(routings)
def test_routing_round_trips(config: AlertConfig) -> None:
    wire = routing_to_proto("acme", config).SerializeToString(deterministic=True)
    back = routing_from_proto(pb.AlertRoutingSaved.FromString(wire))
    assert same_routing(back, config) and back == config


@given(silences)
def test_silences_round_trip(silence: Silence) -> None:
    wire = silence_to_proto(silence).SerializeToString(deterministic=True)
    assert silence_from_proto(pb.Silence.FromString(wire)) == silence
