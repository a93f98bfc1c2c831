# ruff: noqa: F811  (the fixtures imported from tests/notifier_harness.py are parameters here)
"""The notifier (query_side/alerts/notifier.py) on a real SQLite event log, delivering to a
real local aiohttp webhook receiver; time is the injected clock (the harness:
tests/notifier_harness.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

from contracts.argus.alerts.v1 import alerts_pb2
from core.adapters.sqlite_event_log import SqliteEventLog
from core.alerting.model import (
    InhibitRule,
    Route,
    Silence,
    TimeInterval,
    TimeRange,
)
from core.events import ALERTS_TOPIC
from core.ports import EventLog
from query_side.alerts.delivery import Deliverer
from query_side.alerts.notification import notification_id
from tests.notifier_harness import (  # noqa: F401  (fixtures)
    FIRING,
    INTERVAL,
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
    m,
    recorded,
    statuses,
    transition,
)
from tests.receivers import WebhookServer


async def test_200_breaching_hosts_are_one_notification_then_one_resolved(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    hosts = [f"web-{i:03d}" for i in range(200)]
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": h}, 1, FIRING, T0) for h in hosts])
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT - 1)
    assert hooks.bodies("ops") == []  # group_wait holds the first notification
    await s.at(notifier, runner, T0 + WAIT)
    (firing,) = hooks.bodies("ops")
    assert firing["status"] == "firing"
    assert sorted(a["labels"]["host"] for a in firing["alerts"]) == hosts
    assert firing["group_labels"] == {"alertname": "HighCpu"}
    assert firing["id"] == notification_id("acme", "", "{alertname='HighCpu'}", "1")
    await s.at(notifier, runner, T0 + WAIT + 60_000)
    assert len(hooks.bodies("ops")) == 1  # unchanged: nothing until repeat_interval

    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": h}, 2, RESOLVED, T0 + 100_000) for h in hosts])
    await s.at(notifier, runner, T0 + WAIT + INTERVAL - 1)
    assert len(hooks.bodies("ops")) == 1  # group_interval since the last one
    await s.at(notifier, runner, T0 + WAIT + INTERVAL)
    resolved = hooks.bodies("ops")[1]
    assert resolved["status"] == "resolved"
    assert len(resolved["alerts"]) == 200 and statuses(resolved) == ["resolved"]
    await s.at(notifier, runner, T0 + 10 * REPEAT)
    assert len(hooks.bodies("ops")) == 2
    sent = await recorded(log)
    assert [(r.group_sequence, len(r.firing), len(r.resolved)) for r in sent] == [(1, 200, 0), (2, 0, 200)]
    assert all(isinstance(r, alerts_pb2.NotificationSent) and r.channel == "webhook" for r in sent)


async def test_group_interval_for_changes_repeat_interval_for_unchanged(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    notifier, runner = await s.notifier()
    await s.at(notifier, runner, T0)
    await s.at(notifier, runner, T0 + WAIT)
    assert len(hooks.bodies("ops")) == 1
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "b"}, 1, FIRING, T0 + 40_000)])
    await s.at(notifier, runner, T0 + 40_000)
    await s.at(notifier, runner, T0 + WAIT + INTERVAL - 1)
    assert len(hooks.bodies("ops")) == 1
    await s.at(notifier, runner, T0 + WAIT + INTERVAL)
    second = hooks.bodies("ops")[1]
    assert sorted(a["labels"]["host"] for a in second["alerts"]) == ["a", "b"]
    await s.at(notifier, runner, T0 + WAIT + INTERVAL + REPEAT - 1)
    assert len(hooks.bodies("ops")) == 2
    await s.at(notifier, runner, T0 + WAIT + INTERVAL + REPEAT)
    third = hooks.bodies("ops")[2]
    assert third["alerts"] == second["alerts"]
    assert len({b["id"] for b in hooks.bodies("ops")}) == 3  # a repeat is a new notification id


async def test_silenced_alert_sends_nothing_then_its_resolution_after_the_silence(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
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
    (body,) = hooks.bodies("ops")
    assert body["status"] == "resolved" and body["alerts"][0]["ends_ms"] == T0 + 150_000
    await s.at(notifier, runner, T0 + 10 * REPEAT)
    assert len(hooks.requests) == 1


async def test_firing_source_inhibits_targets_with_equal_labels(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
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
    by_name = {b["group_labels"]["alertname"]: b for b in hooks.bodies("ops")}
    assert sorted(by_name) == ["HostDown", "RegionDown"]
    assert [a["labels"]["host"] for a in by_name["HostDown"]["alerts"]] == ["b"]


async def test_restart_after_a_recorded_send_sends_nothing_again(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    first, runner1 = await s.notifier()
    await s.at(first, runner1, T0)
    await s.at(first, runner1, T0 + WAIT)
    assert len(hooks.bodies("ops")) == 1
    await runner1.close()
    second, runner2 = await s.notifier()
    for t in (T0 + WAIT, T0 + WAIT + INTERVAL, T0 + WAIT + REPEAT - 1):
        await s.at(second, runner2, t)
    assert len(hooks.bodies("ops")) == 1
    # The restored group still knows its firing member: its resolution is told.
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 2, RESOLVED, T0 + WAIT + REPEAT)])
    await s.at(second, runner2, T0 + WAIT + REPEAT)
    assert [b["status"] for b in hooks.bodies("ops")] == ["firing", "resolved"]
    await runner2.close()


async def test_restart_after_an_unrecorded_send_sends_it_exactly_once_more(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    crashing, runner1 = await s.notifier(cast(EventLog, FailsToRecord(log, alerts_pb2.NotificationSent)))
    await s.at(crashing, runner1, T0)
    await s.at(crashing, runner1, T0 + WAIT)
    assert len(hooks.bodies("ops")) == 1
    assert await recorded(log) == []
    await runner1.close()
    second, runner2 = await s.notifier()
    await s.at(second, runner2, T0 + WAIT + 1)
    await s.at(second, runner2, T0 + WAIT + INTERVAL)
    bodies = hooks.bodies("ops")
    assert len(bodies) == 2 and bodies[0]["id"] == bodies[1]["id"]  # the same id: receivers drop it
    assert len(await recorded(log)) == 1
    await runner2.close()
    third, runner3 = await s.notifier()
    await s.at(third, runner3, T0 + WAIT + INTERVAL + 1)
    assert len(hooks.bodies("ops")) == 2
    await runner3.close()


async def test_a_receiver_failing_forever_is_recorded_and_blocks_no_other_group(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
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
    assert len(hooks.bodies("fail500")) == 3  # every attempt of the retry policy
    assert [b["group_labels"] for b in hooks.bodies("ops")] == [{"alertname": "HighCpu"}]
    outcomes = await recorded(log)
    failed = [r for r in outcomes if isinstance(r, alerts_pb2.NotificationFailed)]
    sent = [r for r in outcomes if isinstance(r, alerts_pb2.NotificationSent)]
    assert len(failed) == 1 and len(sent) == 1
    assert failed[0].receiver == "broken" and failed[0].channel == "webhook" and failed[0].attempt == 3
    assert "500" in failed[0].error and failed[0].route_path == "0"
    assert sent[0].receiver == "ops"


async def test_a_mute_interval_holds_the_route_until_it_ends(
    log: SqliteEventLog, hooks: WebhookServer, deliverer: Deliverer
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
    assert [b["status"] for b in hooks.bodies("ops")] == ["firing"]
