"""The notifier's test harness, shared by its tests (tests/unit/test_alert_notifier.py,
test_alert_acks_escalation.py, tests/faults/test_alert_pipeline.py): a real SQLite event log,
the shared local webhook receiver (tests/receivers.py), a delivery whose retries sleep on an
instant clock, alert transitions as the evaluator appends them, and a notifier driven by an
injected clock (`Setup`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from contracts.argus.alerts.v1 import alerts_pb2
from core.adapters.sqlite_event_log import SqliteEventLog
from core.alerting.lifecycle import InstanceKey
from core.alerting.model import (
    AlertConfig,
    LabelMatcher,
    Receiver,
    Route,
    Silence,
    WebhookTarget,
)
from core.consumer import ConsumerRunner
from core.errors import Unavailable
from core.events import ALERTS_TOPIC, decode_payload, make_event
from core.ports import Event, EventLog
from query_side.alerts.delivery import Deliverer, RetryPolicy
from query_side.alerts.notifier import NOTIFIER_GROUP, AlertNotifier, Decoded
from query_side.alerts.senders import Senders
from tests.receivers import WebhookServer, webhook_server

T0 = 1_800_000_000_000
WAIT, INTERVAL, REPEAT = 30_000, 300_000, 3_600_000


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookServer]:
    """A local webhook receiver: any path answers 200 (and keeps the body), /fail500 500."""
    async with webhook_server() as server:
        yield server


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[SqliteEventLog]:
    event_log = SqliteEventLog(tmp_path / "events.db")
    await event_log.start()
    await event_log.ensure_topic(ALERTS_TOPIC, 4)
    yield event_log
    await event_log.close()


class InstantClock:
    """Delivery's retry clock: sleeping advances at once."""

    def __init__(self) -> None:
        self.now = 0

    def now_ms(self) -> int:
        return self.now

    async def sleep_ms(self, ms: int) -> None:
        self.now += ms
        await asyncio.sleep(0)


@pytest.fixture
async def deliverer() -> AsyncIterator[Deliverer]:
    async with Senders() as senders:
        yield Deliverer(senders, policy=RetryPolicy(max_attempts=3, base_delay_ms=10), clock=InstantClock())


def m(name: str, op: str, value: str) -> LabelMatcher:
    return LabelMatcher(name=name, op=op, value=value)


def config_for(hooks: WebhookServer, **changes: Any) -> AlertConfig:
    route = Route(
        receiver="ops",
        group_by=("alertname",),
        group_wait_ms=WAIT,
        group_interval_ms=INTERVAL,
        repeat_interval_ms=REPEAT,
        routes=(Route(receiver="broken", matchers=(m("team", "=", "broken"),), group_wait_ms=WAIT),),
    )
    base: dict[str, Any] = {
        "receivers": {
            "ops": Receiver(name="ops", webhook=(WebhookTarget(url=hooks.url("ops")),)),
            "broken": Receiver(name="broken", webhook=(WebhookTarget(url=hooks.url("fail500")),)),
        },
        "route": route,
    }
    base.update(changes)
    return AlertConfig(**base)


def transition(
    rule: str,
    labels: dict[str, str],
    sequence: int,
    state: alerts_pb2.AlertState,
    at_ms: int,
    *,
    rule_labels: dict[str, str] | None = None,
) -> tuple[int, Event]:
    key = InstanceKey.of("acme", rule, labels)
    message = alerts_pb2.AlertStateChanged(
        tenant="acme",
        rule=rule,
        instance_labels=labels,
        from_state=alerts_pb2.ALERT_STATE_PENDING,
        to_state=state,
        value=97.5,
        evaluated_at_ms=at_ms,
        since_ms=at_ms,
        reason="test",
        sequence=sequence,
        rule_labels=rule_labels or {},
        severity="critical",
        instance_id=key.instance_id,
    )
    identity = f"{key.instance_id}:{sequence}".encode()
    partition = int(key.instance_id[:8], 16) % 4
    return partition, make_event(
        message, identity=identity, partition_key=bytes.fromhex(key.instance_id), time_ms=at_ms
    )


FIRING, RESOLVED = alerts_pb2.ALERT_STATE_FIRING, alerts_pb2.ALERT_STATE_RESOLVED


@dataclass
class Setup:
    log: EventLog
    deliverer: Deliverer
    config: AlertConfig
    silences: list[Silence] = field(default_factory=list)
    now: int = T0

    async def notifier(self, log: EventLog | None = None) -> tuple[AlertNotifier, ConsumerRunner[Decoded]]:
        the_log = log or self.log
        notifier = AlertNotifier(
            log=the_log,
            deliverer=self.deliverer,
            config=lambda tenant: self.config,
            silences=lambda tenant: self.silences,
            clock_ms=lambda: self.now,
        )
        runner = ConsumerRunner(
            name="notifier",
            log=the_log,
            topic=ALERTS_TOPIC,
            group=NOTIFIER_GROUP,
            handler=notifier,
            clock_ms=lambda: self.now,
        )
        await notifier.start()
        await runner.catch_up()
        return notifier, runner

    async def at(self, notifier: AlertNotifier, runner: ConsumerRunner[Decoded], now: int) -> None:
        """Time is `now`: take what the topic holds, tick, and let deliveries finish."""
        self.now = now
        await runner.catch_up()
        await notifier.tick(now)
        await notifier.drain()


async def recorded(log: EventLog) -> list[alerts_pb2.NotificationSent | alerts_pb2.NotificationFailed]:
    out: list[alerts_pb2.NotificationSent | alerts_pb2.NotificationFailed] = []
    for partition in range(4):
        for record in await log.read(ALERTS_TOPIC, partition, 0, 100_000):
            if record.event.type == alerts_pb2.NotificationSent.DESCRIPTOR.full_name:
                out.append(decode_payload(record.event, alerts_pb2.NotificationSent))
            elif record.event.type == alerts_pb2.NotificationFailed.DESCRIPTOR.full_name:
                out.append(decode_payload(record.event, alerts_pb2.NotificationFailed))
    return out


def statuses(body: dict[str, Any]) -> list[str]:
    return sorted({a["status"] for a in body["alerts"]})


class FailsToRecord:
    """The log, except that appending an event of `message`'s type fails (a crash right
    after the sends it records, before their record)."""

    def __init__(self, log: EventLog, message: type[Message]) -> None:
        self._log = log
        self._type = message.DESCRIPTOR.full_name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> Any:
        if any(e.type == self._type for _, e in events):
            raise Unavailable("disk gone")
        return await self._log.append(topic, events)
