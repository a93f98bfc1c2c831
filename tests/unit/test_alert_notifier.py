"""The notifier (query_side/alerts/notifier.py) on a real SQLite event log, delivering to a
real local aiohttp webhook receiver; time is the injected clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web

from contracts.argus.alerts.v1 import alerts_pb2
from core.adapters.sqlite_event_log import SqliteEventLog
from core.alerting.lifecycle import InstanceKey
from core.alerting.model import (
    AlertConfig,
    InhibitRule,
    LabelMatcher,
    Receiver,
    Route,
    Silence,
    TimeInterval,
    TimeRange,
    WebhookTarget,
)
from core.consumer import ConsumerRunner
from core.errors import Unavailable
from core.events import ALERTS_TOPIC, decode_payload, make_event
from core.ports import Event, EventLog
from query_side.alerts.delivery import Deliverer, RetryPolicy
from query_side.alerts.notification import notification_id
from query_side.alerts.notifier import NOTIFIER_GROUP, AlertNotifier, Decoded
from query_side.alerts.senders import Senders

T0 = 1_800_000_000_000
WAIT, INTERVAL, REPEAT = 30_000, 300_000, 3_600_000


@dataclass
class Hooks:
    """POST /<path>: kept; /fail500 answers 500 forever."""

    port: int = 0
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.requests.append((path, json.loads(await request.read())))
        return web.Response(status=500 if path == "fail500" else 200)

    def of(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.requests if p == path]


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    server = Hooks()
    app = web.Application()
    app.router.add_post("/{path}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    yield server
    await runner.cleanup()


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


def config_for(hooks: Hooks, **changes: Any) -> AlertConfig:
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


async def test_200_breaching_hosts_are_one_notification_then_one_resolved(
    log: SqliteEventLog, hooks: Hooks, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    hosts = [f"web-{i:03d}" for i in range(200)]
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": h}, 1, FIRING, T0) for h in hosts])
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT - 1)
    assert hooks.of("ops") == []  # group_wait holds the first notification
    await s.at(notifier, runner, T0 + WAIT)
    (firing,) = hooks.of("ops")
    assert firing["status"] == "firing"
    assert sorted(a["labels"]["host"] for a in firing["alerts"]) == hosts
    assert firing["group_labels"] == {"alertname": "HighCpu"}
    assert firing["id"] == notification_id("acme", "", "{alertname='HighCpu'}", "1")
    await s.at(notifier, runner, T0 + WAIT + 60_000)
    assert len(hooks.of("ops")) == 1  # unchanged: nothing until repeat_interval

    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": h}, 2, RESOLVED, T0 + 100_000) for h in hosts])
    await s.at(notifier, runner, T0 + WAIT + INTERVAL - 1)
    assert len(hooks.of("ops")) == 1  # group_interval since the last one
    await s.at(notifier, runner, T0 + WAIT + INTERVAL)
    resolved = hooks.of("ops")[1]
    assert resolved["status"] == "resolved"
    assert len(resolved["alerts"]) == 200 and statuses(resolved) == ["resolved"]
    await s.at(notifier, runner, T0 + 10 * REPEAT)
    assert len(hooks.of("ops")) == 2
    sent = await recorded(log)
    assert [(r.group_sequence, len(r.firing), len(r.resolved)) for r in sent] == [(1, 200, 0), (2, 0, 200)]
    assert all(isinstance(r, alerts_pb2.NotificationSent) and r.channel == "webhook" for r in sent)


async def test_group_interval_for_changes_repeat_interval_for_unchanged(
    log: SqliteEventLog, hooks: Hooks, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT)
    assert len(hooks.of("ops")) == 1
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "b"}, 1, FIRING, T0 + 40_000)])
    await s.at(notifier, runner, T0 + 40_000)
    await s.at(notifier, runner, T0 + WAIT + INTERVAL - 1)
    assert len(hooks.of("ops")) == 1
    await s.at(notifier, runner, T0 + WAIT + INTERVAL)
    second = hooks.of("ops")[1]
    assert sorted(a["labels"]["host"] for a in second["alerts"]) == ["a", "b"]
    await s.at(notifier, runner, T0 + WAIT + INTERVAL + REPEAT - 1)
    assert len(hooks.of("ops")) == 2
    await s.at(notifier, runner, T0 + WAIT + INTERVAL + REPEAT)
    third = hooks.of("ops")[2]
    assert third["alerts"] == second["alerts"]
    assert len({b["id"] for b in hooks.of("ops")}) == 3  # a repeat is a new notification id


async def test_silenced_alert_sends_nothing_then_its_resolution_after_the_silence(
    log: SqliteEventLog, hooks: Hooks, deliverer: Deliverer
) -> None:
    silence = Silence(id="s1", matchers=(m("alertname", "=", "HighCpu"),), starts_ms=T0 - 1, ends_ms=T0 + 200_000)
    s = Setup(log, deliverer, config_for(hooks), silences=[silence])
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    notifier, runner = await s.notifier()
    for t in (T0, T0 + WAIT, T0 + 100_000):
        await s.at(notifier, runner, t)
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 2, RESOLVED, T0 + 150_000)])
    await s.at(notifier, runner, T0 + 160_000)
    assert hooks.requests == []
    await s.at(notifier, runner, T0 + 200_000)  # the silence ended: group_wait starts
    assert hooks.requests == []
    await s.at(notifier, runner, T0 + 200_000 + WAIT)
    (body,) = hooks.of("ops")
    assert body["status"] == "resolved" and body["alerts"][0]["ends_ms"] == T0 + 150_000
    await s.at(notifier, runner, T0 + 10 * REPEAT)
    assert len(hooks.requests) == 1


async def test_firing_source_inhibits_targets_with_equal_labels(
    log: SqliteEventLog, hooks: Hooks, deliverer: Deliverer
) -> None:
    rule = InhibitRule(
        source=(m("alertname", "=", "RegionDown"),), target=(m("alertname", "=", "HostDown"),), equal=("region",)
    )
    s = Setup(log, deliverer, config_for(hooks, inhibit_rules=(rule,)))
    await log.append(
        ALERTS_TOPIC,
        [
            transition("RegionDown", {"region": "eu"}, 1, FIRING, T0),
            transition("HostDown", {"region": "eu", "host": "a"}, 1, FIRING, T0),
            transition("HostDown", {"region": "us", "host": "b"}, 1, FIRING, T0),
        ],
    )
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT)
    by_name = {b["group_labels"]["alertname"]: b for b in hooks.of("ops")}
    assert sorted(by_name) == ["HostDown", "RegionDown"]
    assert [a["labels"]["host"] for a in by_name["HostDown"]["alerts"]] == ["b"]


async def test_restart_after_a_recorded_send_sends_nothing_again(
    log: SqliteEventLog, hooks: Hooks, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    first, runner1 = await s.notifier()
    await s.at(first, runner1, T0)
    await s.at(first, runner1, T0 + WAIT)
    assert len(hooks.of("ops")) == 1
    await runner1.close()
    second, runner2 = await s.notifier()
    for t in (T0 + WAIT, T0 + WAIT + INTERVAL, T0 + WAIT + REPEAT - 1):
        await s.at(second, runner2, t)
    assert len(hooks.of("ops")) == 1
    # The restored group still knows its firing member: its resolution is told.
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 2, RESOLVED, T0 + WAIT + REPEAT)])
    await s.at(second, runner2, T0 + WAIT + REPEAT)
    assert [b["status"] for b in hooks.of("ops")] == ["firing", "resolved"]
    await runner2.close()


class LosesRecords:
    """The log, except that recording a sent notification fails (a crash right after the
    send, before its record)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> Any:
        if any(e.type == alerts_pb2.NotificationSent.DESCRIPTOR.full_name for _, e in events):
            raise Unavailable("disk gone")
        return await self._log.append(topic, events)


async def test_restart_after_an_unrecorded_send_sends_it_exactly_once_more(
    log: SqliteEventLog, hooks: Hooks, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    crashing, runner1 = await s.notifier(cast(EventLog, LosesRecords(log)))
    await s.at(crashing, runner1, T0)
    await s.at(crashing, runner1, T0 + WAIT)
    assert len(hooks.of("ops")) == 1
    assert await recorded(log) == []
    await runner1.close()
    second, runner2 = await s.notifier()
    await s.at(second, runner2, T0 + WAIT + 1)
    await s.at(second, runner2, T0 + WAIT + INTERVAL)
    bodies = hooks.of("ops")
    assert len(bodies) == 2 and bodies[0]["id"] == bodies[1]["id"]  # the same id: receivers drop it
    assert len(await recorded(log)) == 1
    await runner2.close()
    third, runner3 = await s.notifier()
    await s.at(third, runner3, T0 + WAIT + INTERVAL + 1)
    assert len(hooks.of("ops")) == 2
    await runner3.close()


async def test_a_receiver_failing_forever_is_recorded_and_blocks_no_other_group(
    log: SqliteEventLog, hooks: Hooks, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    await log.append(
        ALERTS_TOPIC,
        [
            transition("DiskFull", {"host": "db-1"}, 1, FIRING, T0, rule_labels={"team": "broken"}),
            transition("HighCpu", {"host": "a"}, 1, FIRING, T0),
        ],
    )
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT)
    assert len(hooks.of("fail500")) == 3  # every attempt of the retry policy
    assert [b["group_labels"] for b in hooks.of("ops")] == [{"alertname": "HighCpu"}]
    outcomes = await recorded(log)
    failed = [r for r in outcomes if isinstance(r, alerts_pb2.NotificationFailed)]
    sent = [r for r in outcomes if isinstance(r, alerts_pb2.NotificationSent)]
    assert len(failed) == 1 and len(sent) == 1
    assert failed[0].receiver == "broken" and failed[0].channel == "webhook" and failed[0].attempt == 3
    assert "500" in failed[0].error and failed[0].route_path == "0"
    assert sent[0].receiver == "ops"


async def test_a_mute_interval_holds_the_route_until_it_ends(
    log: SqliteEventLog, hooks: Hooks, deliverer: Deliverer
) -> None:
    start = datetime.fromtimestamp(T0 / 1000, tz=UTC)
    minute = start.hour * 60 + start.minute
    window = TimeInterval(name="deploys", times=(TimeRange(start_minute=minute, end_minute=minute + 10),))
    route = replace(config_for(hooks).route or Route(receiver="ops"), mute_time_intervals=("deploys",))
    s = Setup(log, deliverer, config_for(hooks, route=route, time_intervals={"deploys": window}))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    notifier, runner = await s.notifier()
    for t in (T0, T0 + WAIT, T0 + 9 * 60_000):
        await s.at(notifier, runner, t)
    assert hooks.requests == []
    await s.at(notifier, runner, T0 + 10 * 60_000 - start.second * 1000)
    assert [b["status"] for b in hooks.of("ops")] == ["firing"]
