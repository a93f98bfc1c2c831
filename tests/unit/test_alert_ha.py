"""Alerting split between replicas (query_side/alerts/ownership.py, decision 0030): each rule
and each notification group is evaluated / notified by the one replica owning its shard; a
replica taking over continues from what the previous owner recorded, so no transition is lost
and nothing recorded is sent again. Also the default watchdog rule (core/alerting/watchdog.py)."""

from __future__ import annotations

import math
from pathlib import Path

from contracts.argus.alerts.v1 import alerts_pb2
from contracts.argus.events.v1 import events_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.adapters.sqlite_event_log import SqliteEventLog
from core.alerting.lifecycle import AlertState
from core.alerting.model import AlertRule
from core.alerting.watchdog import WATCHDOG, WATCHDOG_RULE, with_watchdog
from core.consumer import ConsumerRunner
from core.events import ALERTS_TOPIC, SAMPLES_TOPIC
from core.model import MetricKind
from query_side.alerts.delivery import Deliverer
from query_side.alerts.evaluator import ALERT_PARTITIONS, EVALUATOR_GROUP, AlertEvaluator
from query_side.alerts.notifier import NOTIFIER_GROUP, AlertNotifier, Decoded
from query_side.alerts.ownership import Ownership, rule_shard_key, shard_of
from tests.notifier_harness import (  # noqa: F401 (fixtures)
    FIRING,
    INTERVAL,
    RESOLVED,
    T0,
    WAIT,
    Setup,
    config_for,
    deliverer,
    hooks,
    log,
    recorded,
    transition,
)
from tests.receivers import WebhookServer
from tests.unit.test_alert_evaluator import NOW, PARTITIONS, TENANT, Feed, alert_events, append, rule

S = 1_000


def shard(rule_name: str) -> int:
    return shard_of(rule_shard_key(TENANT, rule_name), ALERT_PARTITIONS)


async def owning(shards: set[int]) -> Ownership:
    ownership = Ownership(shards=ALERT_PARTITIONS)
    await ownership.reassigned(frozenset(shards))
    return ownership


class Replica:
    """One replica's evaluator: its own full reader of the samples topic, its shards."""

    def __init__(self, name: str, event_log: MemoryEventLog, rules: list[AlertRule], ownership: Ownership) -> None:
        self.clock = [NOW]
        self.ownership = ownership
        self.evaluator = AlertEvaluator(
            log=event_log, rules=lambda: {TENANT: rules}, clock_ms=lambda: self.clock[0], ownership=ownership
        )
        self.runner: ConsumerRunner[events_pb2.SampleBatchAccepted] = ConsumerRunner(
            name=name,
            log=event_log,
            topic=SAMPLES_TOPIC,
            group=f"{EVALUATOR_GROUP}.{name}",
            handler=self.evaluator,
            clock_ms=lambda: self.clock[0],
        )

    async def at(self, now_ms: int) -> None:
        self.clock[0] = now_ms
        await self.runner.catch_up(idle_timeout_s=0.01)
        await self.evaluator.evaluate(now_ms)


def two_rules_in_two_shards() -> tuple[AlertRule, AlertRule]:
    names = [f"hot{i}" for i in range(40)]
    first = names[0]
    second = next(n for n in names if shard(n) != shard(first))
    return (
        rule(first, window_ms=10 * S, interval_ms=5 * S, threshold=90.0),
        rule(second, window_ms=10 * S, interval_ms=5 * S, threshold=90.0),
    )


async def test_each_rule_is_evaluated_by_the_replica_owning_its_shard_and_a_takeover_loses_nothing() -> None:
    event_log = MemoryEventLog()
    await event_log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    one, two = two_rules_in_two_shards()
    a_shards = {shard(one.name)}
    b_shards = set(range(ALERT_PARTITIONS)) - a_shards
    a = Replica("a", event_log, [one, two], await owning(a_shards))
    b = Replica("b", event_log, [one, two], await owning(b_shards))
    for replica in (a, b):
        await replica.evaluator.start()
    feed = Feed()

    async def feed_until(tick: int, value: float) -> None:
        fresh = len(feed.batches)
        feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [NOW + tick * S - 1], values=[value])
        await append(event_log, feed, fresh)

    for tick in (5, 10):
        await feed_until(tick, 95.0)
        await a.at(NOW + tick * S)
        await b.at(NOW + tick * S)
    fired = [(e.rule, e.to_state, e.sequence) for _, e in await alert_events(event_log)]
    # Each rule fired once, by its owner only (no twice-made transition, even with equal ids).
    assert sorted(fired) == sorted(
        [(one.name, alerts_pb2.ALERT_STATE_FIRING, 1), (two.name, alerts_pb2.ALERT_STATE_FIRING, 1)]
    )
    assert (a.evaluator.transitions_appended, b.evaluator.transitions_appended) == (1, 1)
    # B keeps A's rule's window for a takeover, trimmed at its ticks like the owner's.
    standby = b.evaluator._watches[(TENANT, one.name)]
    assert len(standby.parts) == 1 and standby.standby_tick_ms == NOW + 10 * S
    assert standby.parts[0].ts.min() >= NOW + 10 * S - standby.horizon_ms

    # A dies: B is assigned every shard and goes on from A's firing transition.
    await b.ownership.reassigned(frozenset(range(ALERT_PARTITIONS)))
    for tick in (15, 20, 25):
        await feed_until(tick, 10.0)
        await b.at(NOW + tick * S)
    got = [(e.rule, e.to_state, e.sequence) for _, e in await alert_events(event_log)]
    assert sorted(got) == sorted(
        [
            (one.name, alerts_pb2.ALERT_STATE_FIRING, 1),
            (two.name, alerts_pb2.ALERT_STATE_FIRING, 1),
            (one.name, alerts_pb2.ALERT_STATE_RESOLVED, 2),
            (two.name, alerts_pb2.ALERT_STATE_RESOLVED, 2),
        ]
    ), "the taken-over rule resolves (sequence 2), it neither fires again nor is lost"


async def test_a_replica_owning_nothing_yet_evaluates_nothing() -> None:
    event_log = MemoryEventLog()
    await event_log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    joining = Replica("c", event_log, [rule(window_ms=10 * S, interval_ms=5 * S, threshold=0.0)], Ownership(shards=4))
    await joining.evaluator.start()
    feed = Feed()
    feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [NOW + 4 * S], values=[50.0])
    await append(event_log, feed)
    await joining.at(NOW + 5 * S)
    assert await alert_events(event_log) == []


def group_shard(key_text: str) -> int:
    # The notifier's shard of a group of the root route ("" path) of tenant acme.
    return shard_of(f"acme\0\0{key_text}", ALERT_PARTITIONS)


async def notifier_of(s: Setup, name: str, ownership: Ownership) -> tuple[AlertNotifier, ConsumerRunner[Decoded]]:
    notifier = AlertNotifier(
        log=s.log,
        deliverer=s.deliverer,
        config=lambda tenant: s.config,
        silences=lambda tenant: s.silences,
        clock_ms=lambda: s.now,
        ownership=ownership,
    )
    runner: ConsumerRunner[Decoded] = ConsumerRunner(
        name=name,
        log=s.log,
        topic=ALERTS_TOPIC,
        group=f"{NOTIFIER_GROUP}.{name}",
        handler=notifier,
        clock_ms=lambda: s.now,
    )
    await notifier.start()
    await runner.catch_up()
    return notifier, runner


async def test_a_group_is_notified_by_its_owner_and_a_takeover_sends_only_what_was_not_recorded(
    log: SqliteEventLog,  # noqa: F811 (the fixture)
    hooks: WebhookServer,  # noqa: F811
    deliverer: Deliverer,  # noqa: F811
) -> None:
    s = Setup(log, deliverer, config_for(hooks))
    home = group_shard("{alertname='HighCpu'}")
    a, a_runner = await notifier_of(s, "a", await owning({home}))
    b_owner = await owning(set(range(ALERT_PARTITIONS)) - {home})
    b, b_runner = await notifier_of(s, "b", b_owner)
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 1, FIRING, T0)])
    for now in (T0, T0 + WAIT):
        await s.at(b, b_runner, now)  # B first: it has not read what A does at `now`
        await s.at(a, a_runner, now)
    assert [body["status"] for body in hooks.bodies("ops")] == ["firing"]  # A's group: sent once

    # B has not read A's record yet (its consumer lags) when A dies and B takes every shard:
    # it reads what A recorded before acting, so it sends nothing again.
    await log.append(ALERTS_TOPIC, [transition("HighCpu", {"host": "a"}, 2, RESOLVED, T0 + WAIT + 1)])
    await b_owner.reassigned(frozenset(range(ALERT_PARTITIONS)))
    for now in (T0 + WAIT + 2, T0 + 2 * WAIT + 2):  # group_wait over, even counted from the takeover
        s.now = now
        await b.tick(now)
        await b.drain()
    assert [body["status"] for body in hooks.bodies("ops")] == ["firing"]
    # The change (resolved) goes out from B once group_interval has passed since A's send.
    await s.at(b, b_runner, T0 + WAIT + INTERVAL)
    await s.at(b, b_runner, T0 + WAIT + INTERVAL + 1)
    assert [body["status"] for body in hooks.bodies("ops")] == ["firing", "resolved"]
    ids = [body["id"] for body in hooks.bodies("ops")]
    assert len(set(ids)) == 2
    assert [(r.group_sequence, r.receiver) for r in await recorded(log)] == [(1, "ops"), (2, "ops")]


# ------------------------------------------------------------------------------ watchdog


def test_every_tenant_with_rules_has_the_watchdog_unless_it_names_its_own() -> None:
    own = rule(WATCHDOG_RULE, threshold=1.0)
    got = with_watchdog({"a": [rule("cpu")], "b": [rule("cpu"), own], "c": []})
    assert {t: [r.name for r in rs] for t, rs in got.items()} == {
        "a": ["cpu", WATCHDOG_RULE],
        "b": ["cpu", WATCHDOG_RULE],
    }
    assert got["a"][1] is WATCHDOG
    assert got["b"][1] is own  # the tenant's own replaces the default


def test_the_watchdog_condition_is_breached_by_every_number() -> None:
    for value in (-1e300, -1.0, 0.0, 1.0, 1e300, math.inf, -math.inf):
        assert WATCHDOG.condition.breached(value), value
    assert not WATCHDOG.condition.breached(math.nan)  # no data: the no-data policy fires it


async def test_the_watchdog_fires_within_two_seconds_and_stays_firing() -> None:
    event_log = MemoryEventLog()
    await event_log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    clock = [NOW]
    evaluator = AlertEvaluator(
        log=event_log, rules=lambda: with_watchdog({TENANT: [rule("cpu")]}), clock_ms=lambda: clock[0]
    )
    await evaluator.start()
    for second in range(0, 30):
        clock[0] = NOW + second * S
        await evaluator.evaluate(clock[0])
    events = [e for _, e in await alert_events(event_log) if e.rule == WATCHDOG_RULE]
    assert [(e.to_state, e.evaluated_at_ms) for e in events] == [(alerts_pb2.ALERT_STATE_FIRING, NOW + 1 * S)]
    assert evaluator.instance_state(TENANT, WATCHDOG_RULE).state is AlertState.FIRING


def test_a_replica_name_must_be_plain(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from argus.cli import main

    for bad in ("two words", "a/b", "x" * 65, "dot..ok?"):
        done = CliRunner().invoke(main, ["alerts", "serve", "--data-dir", str(tmp_path), "--replica", bad])
        assert done.exit_code == 2 and "--replica" in done.output, (bad, done.output)


async def test_ownership_counts_changes_and_a_revoked_member_owns_nothing_at_once() -> None:
    ownership = Ownership(shards=4)
    assert not any(ownership.owns(s) for s in range(4))  # nothing before the first assignment
    await ownership.reassigned(frozenset({1, 3}))
    first = ownership.generation
    assert [ownership.owns(s) for s in range(4)] == [False, True, False, True]
    await ownership.reassigned(frozenset({1, 3}))
    assert ownership.generation == first  # the same shards again: nothing to re-read
    live: frozenset[int] = frozenset({1, 3})
    ownership.follow(lambda: live)
    live = frozenset()  # the consumer's revocation, before the handler hears the next assignment
    assert not ownership.owns(1)
    assert {shard_of(f"k{i}", 4) for i in range(64)} == {0, 1, 2, 3}
