"""The AlertService operator RPCs (decision 0053): ack, silences with a preview, rules saved
through the command side, backtest preview. Served as `argus up` serves them (the
composition in argus/alerts_api.py); every one is tenant-isolated: a key of tenant B never
sees, acks, expires or previews tenant A's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from argus.alerts_api import alerts_api
from command_side.config.commands import CreateApiKey
from command_side.config.handlers import create_api_key
from contracts.argus.alerts.v1 import alerts_pb2, service_pb2, service_pb2_grpc
from core.adapters.memory_event_log import MemoryEventLog
from core.alerting.lifecycle import AlertState
from core.alerting.state import AlertConfigState
from core.auth import ApiKeyRegistry, generate_key
from core.config_view import ConfigView
from core.events import ALERTS_TOPIC, CONFIG_TOPIC, SAMPLES_TOPIC, digest, make_event
from query_side.alerts.active import ActiveAlerts
from tests.unit.test_active_alerts import changed
from tests.unit.test_alert_backtest import PARTITIONS, batch

A, B = "tenant-a", "tenant-b"
S = 1_000
NOW = 1_764_072_000_000


@dataclass
class Served:
    stub: service_pb2_grpc.AlertServiceStub
    log: MemoryEventLog
    key_a: str
    key_b: str
    a_h1: str
    """Instance id of A's firing cpu{host=h1}."""
    b_b1: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    await log.ensure_topic(ALERTS_TOPIC, 4)
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    view = ConfigView(log, [ApiKeyRegistry(), AlertConfigState()])
    await view.refresh()
    keys = {A: generate_key(), B: generate_key()}
    for tenant, key in keys.items():
        await create_api_key(CreateApiKey(api_key=key, tenant=tenant, author="t"), view=view, clock_ms=lambda: 1)
    a_h1 = changed(A, "cpu", {"host": "h1"}, AlertState.FIRING, 1)
    b_b1 = changed(B, "cpu", {"host": "b1"}, AlertState.FIRING, 1)
    for p, event in ((0, a_h1), (1, changed(A, "cpu", {"host": "h2"}, AlertState.FIRING, 1)), (2, b_b1)):
        await log.append(ALERTS_TOPIC, [(p, event)])
    registry = view.state(ApiKeyRegistry)
    extension = alerts_api(
        event_log=log, keys=registry, view=view, active=ActiveAlerts(log), clock_ms=lambda: NOW + 3600 * S
    )
    assert extension.grpc is not None and extension.prime is not None
    server = grpc.aio.server()
    extension.grpc(server)
    await extension.prime()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    def iid(event: object) -> str:
        return alerts_pb2.AlertStateChanged.FromString(event.payload).instance_id  # type: ignore[attr-defined]

    try:
        stub = service_pb2_grpc.AlertServiceStub(channel)  # type: ignore[no-untyped-call]
        yield Served(stub, log, keys[A], keys[B], iid(a_h1), iid(b_b1))
    finally:
        await channel.close()
        await server.stop(grace=None)


def md(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value.code()


def rule_doc(name: str = "hot", *, window: str = "10s", condition: str = "> 90") -> str:
    rule: dict[str, object] = {
        "name": name,
        "query": {"metric": "cpu", "agg": "avg", "group_by": ["host"]},
        "window": window,
    }
    rule |= {"condition": condition, "interval": "5s"}
    return json.dumps({"rules": [rule]})


async def test_ack_shows_on_the_list_and_another_tenant_can_neither_see_nor_ack_it(served: Served) -> None:
    s = served
    others = s.stub.Acknowledge(service_pb2.AcknowledgeRequest(instance_id=s.a_h1), metadata=md(s.key_b))
    assert await code_of(others) is grpc.StatusCode.NOT_FOUND
    got = await s.stub.Acknowledge(
        service_pb2.AcknowledgeRequest(instance_id=s.a_h1, comment="on it"), metadata=md(s.key_a)
    )
    assert got.acknowledgement.acknowledged and got.acknowledgement.by.startswith("key:")
    assert s.key_a[4:] not in got.acknowledgement.by  # the id, never the key
    listed = await s.stub.ListAlerts(service_pb2.ListAlertsRequest(), metadata=md(s.key_a))
    assert {a.instance_id for a in listed.alerts} == {s.a_h1, *(a.instance_id for a in listed.alerts)}
    assert len(listed.alerts) == 2 and all(a.tenant == A for a in listed.alerts)
    assert set(listed.acknowledged) == {s.a_h1} and listed.acknowledged[s.a_h1].comment == "on it"
    other = await s.stub.ListAlerts(service_pb2.ListAlertsRequest(), metadata=md(s.key_b))
    assert [a.instance_id for a in other.alerts] == [s.b_b1] and not other.acknowledged
    await s.stub.Unacknowledge(service_pb2.UnacknowledgeRequest(instance_id=s.a_h1), metadata=md(s.key_a))
    listed = await s.stub.ListAlerts(service_pb2.ListAlertsRequest(), metadata=md(s.key_a))
    assert not listed.acknowledged
    assert await code_of(s.stub.Acknowledge(service_pb2.AcknowledgeRequest(instance_id=s.b_b1))) is (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_silence_preview_create_and_isolation(served: Served) -> None:
    s = served
    preview = await s.stub.PreviewSilence(
        service_pb2.PreviewSilenceRequest(matchers=["alertname=cpu", "host=~h1|b1"]), metadata=md(s.key_a)
    )
    # B's b1 matches the matchers too but is not A's to see.
    assert [a.instance_id for a in preview.alerts] == [s.a_h1]
    assert (
        await code_of(
            s.stub.PreviewSilence(service_pb2.PreviewSilenceRequest(matchers=["host=~("]), metadata=md(s.key_a))
        )
        is grpc.StatusCode.INVALID_ARGUMENT
    )
    request = service_pb2.CreateSilenceRequest(matchers=["host=h1"], duration="2h", comment="deploy")
    created = await s.stub.CreateSilence(request, metadata=md(s.key_a))
    assert created.silence.state == "active"
    assert created.silence.silence.ends_ms - created.silence.silence.starts_ms == 2 * 3600 * S
    listed = await s.stub.ListAlerts(service_pb2.ListAlertsRequest(), metadata=md(s.key_a))
    assert {k: list(v.ids) for k, v in listed.silenced.items()} == {s.a_h1: [created.silence.silence.id]}
    assert not (await s.stub.ListAlerts(service_pb2.ListAlertsRequest(), metadata=md(s.key_b))).silenced
    assert not (await s.stub.ListSilences(service_pb2.ListSilencesRequest(), metadata=md(s.key_b))).silences
    expire = service_pb2.ExpireSilenceRequest(id=created.silence.silence.id)
    assert await code_of(s.stub.ExpireSilence(expire, metadata=md(s.key_b))) is grpc.StatusCode.NOT_FOUND
    assert (await s.stub.ExpireSilence(expire, metadata=md(s.key_a))).expired
    assert not (await s.stub.ListSilences(service_pb2.ListSilencesRequest(), metadata=md(s.key_a))).silences
    no_comment = service_pb2.CreateSilenceRequest(matchers=["host=h1"], duration="2h")
    assert await code_of(s.stub.CreateSilence(no_comment, metadata=md(s.key_a))) is grpc.StatusCode.INVALID_ARGUMENT
    both = service_pb2.CreateSilenceRequest(matchers=["host=h1"], comment="x")
    assert await code_of(s.stub.CreateSilence(both, metadata=md(s.key_a))) is grpc.StatusCode.INVALID_ARGUMENT


async def test_save_rule_versions_conflicts_field_errors_and_isolation(served: Served) -> None:
    s = served
    new = service_pb2.SaveRuleRequest(document=rule_doc(), expected_version=0)
    saved = await s.stub.SaveRule(new, metadata=md(s.key_a))
    assert (saved.action, saved.rule.name, saved.rule.condition.threshold) == ("created", "hot", 90.0)
    again = await s.stub.SaveRule(service_pb2.SaveRuleRequest(document=rule_doc()), metadata=md(s.key_a))
    assert (again.action, again.version) == ("unchanged", saved.version)
    rules = await s.stub.ListRules(service_pb2.ListRulesRequest(), metadata=md(s.key_a))
    assert [(r.rule.name, r.version) for r in rules.rules] == [("hot", saved.version)]
    assert not (await s.stub.ListRules(service_pb2.ListRulesRequest(), metadata=md(s.key_b))).rules
    # B saving a rule of the same name creates B's, and leaves A's alone.
    b_new = service_pb2.SaveRuleRequest(document=rule_doc(condition="> 1"))
    b_saved = await s.stub.SaveRule(b_new, metadata=md(s.key_b))
    assert b_saved.action == "created"
    edit = service_pb2.SaveRuleRequest(document=rule_doc(condition="> 80"), expected_version=saved.version)
    updated = await s.stub.SaveRule(edit, metadata=md(s.key_a))
    assert updated.action == "updated" and updated.version > saved.version
    stale = service_pb2.SaveRuleRequest(document=rule_doc(condition="> 70"), expected_version=saved.version)
    assert await code_of(s.stub.SaveRule(stale, metadata=md(s.key_a))) is grpc.StatusCode.ABORTED
    rules = await s.stub.ListRules(service_pb2.ListRulesRequest(), metadata=md(s.key_a))
    assert [r.rule.condition.threshold for r in rules.rules] == [80.0]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await s.stub.SaveRule(service_pb2.SaveRuleRequest(document=rule_doc(window="0s")), metadata=md(s.key_a))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "rules[0].window" in (raised.value.details() or "")
    two = json.dumps({"rules": json.loads(rule_doc())["rules"] * 2})
    assert await code_of(s.stub.SaveRule(service_pb2.SaveRuleRequest(document=two), metadata=md(s.key_a))) is (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    with_receiver = json.dumps({**json.loads(rule_doc()), "receivers": [{"name": "x", "webhook": {"url": "http://h"}}]})
    assert (
        await code_of(s.stub.SaveRule(service_pb2.SaveRuleRequest(document=with_receiver), metadata=md(s.key_a)))
        is grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_backtest_replays_only_the_callers_samples(served: Served) -> None:
    s = served
    events = []
    for n, second in enumerate(range(1, 120)):
        # A's host a breaches from 30 s to 60 s; B's host a breaches the whole time.
        for tenant, value in ((A, 95.0 if 30 <= second <= 60 else 10.0), (B, 99.0)):
            partition, b = batch("a", NOW + second * S - 1, value, n, tenant)
            events.append((partition, make_event(b, identity=digest(tenant, str(n)), partition_key=b"k", time_ms=NOW)))
    await s.log.append(SAMPLES_TOPIC, events)
    request = service_pb2.BacktestRuleRequest(document=rule_doc(), since_ms=NOW + 5 * S, until_ms=NOW + 110 * S)
    got = await s.stub.BacktestRule(request, metadata=md(s.key_a))
    assert [(t.to_state, t.evaluated_at_ms - NOW) for t in got.transitions] == [
        (alerts_pb2.ALERT_STATE_FIRING, 40 * S),
        (alerts_pb2.ALERT_STATE_RESOLVED, 65 * S),
    ]
    assert all(t.tenant == A for t in got.transitions) and got.first_sample_ms == NOW + 999
    b = await s.stub.BacktestRule(request, metadata=md(s.key_b))
    assert [t.to_state for t in b.transitions] == [alerts_pb2.ALERT_STATE_FIRING]
    too_long = service_pb2.BacktestRuleRequest(document=rule_doc(), since_ms=NOW - 25 * 3600 * S, until_ms=NOW)
    assert await code_of(s.stub.BacktestRule(too_long, metadata=md(s.key_a))) is grpc.StatusCode.INVALID_ARGUMENT
