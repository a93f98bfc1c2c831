# ruff: noqa: F811  (the fixtures imported from tests/notifier_harness.py are parameters here)
"""Acknowledgements (core/alerting/acks.py) and escalation in the notifier, on a real SQLite
event log and a real local aiohttp webhook receiver; time is the injected clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from contracts.argus.alerts.v1 import alerts_pb2
from core.adapters.sqlite_event_log import SqliteEventLog
from core.alerting.acks import acknowledge, unacknowledge
from core.alerting.lifecycle import InstanceKey
from core.alerting.model import AlertConfig, EscalationPolicy, EscalationStep, Receiver, WebhookTarget
from core.errors import FailedPrecondition, NotFound
from core.events import ALERTS_TOPIC, decode_payload
from core.ports import EventLog
from query_side.alerts.delivery import Deliverer
from tests.notifier_harness import (  # noqa: F401  (fixtures)
    FIRING,
    REPEAT,
    RESOLVED,
    T0,
    WAIT,
    FailsToRecord,
    Setup,
    config_for,
    deliverer,
    hooks,
    log,
    transition,
)
from tests.receivers import WebhookServer

STEP1, STEP2 = 600_000, 1_200_000
HOST_A = InstanceKey.of("acme", "HighCpu", {"host": "a"}).instance_id


def escalating(hooks: WebhookServer) -> AlertConfig:
    base = config_for(hooks)
    assert base.route is not None
    receivers = {
        **base.receivers,
        "lead": Receiver(name="lead", webhook=(WebhookTarget(url=hooks.url("lead")),)),
        "boss": Receiver(name="boss", webhook=(WebhookTarget(url=hooks.url("boss")),)),
    }
    policy = EscalationPolicy(
        name="page",
        steps=(
            EscalationStep(after_ms=STEP1, receivers=("lead",)),
            EscalationStep(after_ms=STEP2, receivers=("boss",)),
        ),
    )
    return replace(
        base, receivers=receivers, route=replace(base.route, escalation="page"), escalation_policies={"page": policy}
    )


async def of_type(log: EventLog, kind: type[Any]) -> list[Any]:
    out = []
    for partition in range(4):
        for record in await log.read(ALERTS_TOPIC, partition, 0, 100_000):
            if record.event.type == kind.DESCRIPTOR.full_name:
                out.append(decode_payload(record.event, kind))
    return out


async def ack(log: EventLog, now: int, tenant: str = "acme", instance_id: str = HOST_A) -> None:
    await acknowledge(log, tenant=tenant, instance_id=instance_id, author="k1", comment="on it", now_ms=now)


async def test_ack_stops_repeats_unack_resumes_and_a_new_firing_needs_a_new_ack(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT)
    assert len(hooks.bodies("ops")) == 1
    await ack(log, T0 + WAIT + 1)
    for k in (1, 2, 3):
        await s.at(notifier, runner, T0 + WAIT + k * REPEAT)
    assert len(hooks.bodies("ops")) == 1  # acked: no repeats
    await unacknowledge(log, tenant="acme", instance_id=HOST_A, author="k1", now_ms=T0 + 4 * REPEAT)
    await s.at(notifier, runner, T0 + WAIT + 4 * REPEAT)
    assert len(hooks.bodies("ops")) == 2  # un-acked: the repeat is due again

    await ack(log, T0 + 4 * REPEAT + 1)
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 2, RESOLVED, T0 + 5 * REPEAT)])
    await s.at(notifier, runner, T0 + 5 * REPEAT)
    assert hooks.bodies("ops")[-1]["status"] == "resolved"
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 3, FIRING, T0 + 6 * REPEAT)])
    await s.at(notifier, runner, T0 + 6 * REPEAT)
    sent = len(hooks.bodies("ops"))
    await s.at(notifier, runner, T0 + 8 * REPEAT)
    assert len(hooks.bodies("ops")) == sent + 1  # the old ack does not hold for the new firing
    assert hooks.bodies("ops")[-1]["status"] == "firing"


async def test_acks_are_idempotent_validated_and_tenant_isolated(log: SqliteEventLog) -> None:
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    await ack(log, T0 + 1)
    await ack(log, T0 + 2)  # the same ack again: nothing new
    assert len(await of_type(log, alerts_pb2.AlertAcknowledged)) == 1
    with pytest.raises(NotFound) as unknown:
        await ack(log, T0, instance_id="0" * 64)
    with pytest.raises(NotFound) as foreign:
        await ack(log, T0, tenant="globex")
    assert str(unknown.value).replace("0" * 64, "ID") == str(foreign.value).replace(HOST_A, "ID")
    with pytest.raises(NotFound):
        await unacknowledge(log, tenant="globex", instance_id=HOST_A, author="x", now_ms=T0)
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 2, RESOLVED, T0 + 10)])
    with pytest.raises(FailedPrecondition):
        await ack(log, T0 + 11)
    assert len(await of_type(log, alerts_pb2.AlertAcknowledged)) == 1


async def test_escalation_steps_fire_after_their_delay_once_each(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, escalating(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT)
    await s.at(notifier, runner, T0 + STEP1 - 1)
    assert hooks.bodies("lead") == []
    await s.at(notifier, runner, T0 + STEP1)
    assert len(hooks.bodies("lead")) == 1 and hooks.bodies("boss") == []
    await s.at(notifier, runner, T0 + STEP2 - 1)
    assert hooks.bodies("boss") == []
    await s.at(notifier, runner, T0 + STEP2)
    (boss,) = hooks.bodies("boss")
    assert [a["labels"]["host"] for a in boss["alerts"]] == ["a"]
    for k in range(1, 5):
        await s.at(notifier, runner, T0 + STEP2 + k * REPEAT)
    assert len(hooks.bodies("lead")) == 1 and len(hooks.bodies("boss")) == 1
    steps = await of_type(log, alerts_pb2.AlertEscalated)
    assert [(e.policy, e.step, list(e.receivers), e.episode_ms) for e in steps] == [
        ("page", 0, ["lead"], T0),
        ("page", 1, ["boss"], T0),
    ]
    legs = [r for r in await of_type(log, alerts_pb2.NotificationSent) if r.escalation_step]
    assert sorted((r.escalation_step, r.receiver) for r in legs) == [(1, "lead"), (2, "boss")]
    assert len(hooks.bodies("ops")) >= 2  # the route's own repeats went on, unchanged


async def test_an_ack_before_a_step_cancels_it_and_unack_resumes(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, escalating(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT)
    await s.at(notifier, runner, T0 + STEP1)
    assert len(hooks.bodies("lead")) == 1
    await ack(log, T0 + STEP1 + 1)
    await s.at(notifier, runner, T0 + STEP2)
    await s.at(notifier, runner, T0 + 3 * STEP2)
    assert hooks.bodies("boss") == []  # acked before step 2: it does not run
    await unacknowledge(log, tenant="acme", instance_id=HOST_A, author="k1", now_ms=T0 + 3 * STEP2)
    await s.at(notifier, runner, T0 + 3 * STEP2 + 1)
    assert len(hooks.bodies("boss")) == 1 and len(hooks.bodies("lead")) == 1


async def test_restart_mid_escalation_neither_repeats_nor_skips_a_step(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, escalating(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT)
    await s.at(notifier, runner, T0 + STEP1)
    assert len(hooks.bodies("lead")) == 1
    await notifier.close()
    await runner.close()

    again, runner2 = await s.notifier()
    await s.at(again, runner2, T0 + STEP1 + 1)
    assert len(hooks.bodies("lead")) == 1  # step 1 was recorded: not again
    await s.at(again, runner2, T0 + STEP2)
    assert len(hooks.bodies("boss")) == 1  # step 2 still runs
    await again.close()
    await runner2.close()

    third, runner3 = await s.notifier()
    await s.at(third, runner3, T0 + 2 * STEP2)
    assert len(hooks.bodies("lead")) == 1 and len(hooks.bodies("boss")) == 1
    assert len(await of_type(log, alerts_pb2.AlertEscalated)) == 2
    await runner3.close()


async def test_an_unrecorded_step_is_sent_once_more_with_the_same_id_after_a_restart(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, escalating(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    crashing, runner1 = await s.notifier(cast(EventLog, FailsToRecord(log, alerts_pb2.AlertEscalated)))
    await s.at(crashing, runner1, T0)
    await s.at(crashing, runner1, T0 + WAIT)
    await s.at(crashing, runner1, T0 + STEP1)
    assert len(hooks.bodies("lead")) == 1
    assert await of_type(log, alerts_pb2.AlertEscalated) == []  # sent, not recorded
    await crashing.close()
    await runner1.close()

    again, runner2 = await s.notifier()
    await s.at(again, runner2, T0 + STEP1 + 1)
    await s.at(again, runner2, T0 + STEP1 + 2)
    first, second = hooks.bodies("lead")
    assert first["id"] == second["id"]  # the same notification: the receiver drops the copy
    assert len(await of_type(log, alerts_pb2.AlertEscalated)) == 1
    await runner2.close()
