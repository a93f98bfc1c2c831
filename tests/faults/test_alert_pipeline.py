"""The whole alerting path on one SQLite log: samples (ingest's accepted batches) -> the
evaluator -> argus.alerts.v1 -> the notifier (its service loop, `run_notifier`) -> a local
webhook: five hosts breaching are one firing notification, their recovery one resolved."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from core.adapters.sqlite_event_log import SqliteEventLog
from core.alerting.model import AlertConfig, Receiver, Route, WebhookTarget
from core.consumer import ConsumerRunner
from core.events import ALERTS_TOPIC
from core.model import MetricKind
from query_side.alerts.delivery import Deliverer, RetryPolicy
from query_side.alerts.notifier import NOTIFIER_GROUP, AlertNotifier, Decoded, run_notifier
from query_side.alerts.senders import Senders
from tests.notifier_harness import hooks  # noqa: F401  (the receiver fixture)
from tests.receivers import WebhookServer
from tests.unit.test_alert_evaluator import NOW, TENANT, Feed, Harness, append, rule

S = 1_000
HOSTS = [f"web-{i}" for i in range(5)]


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def samples(feed: Feed, start_s: int, value: float) -> None:
    for host in HOSTS:
        ts = [NOW + (start_s + k * 10) * S for k in range(6)]
        feed.add("cpu", MetricKind.GAUGE, {"host": host}, ts, values=[value] * len(ts))


async def test_breach_then_recovery_reach_the_webhook_as_two_merged_notifications(
    tmp_path: Path,
    hooks: WebhookServer,  # noqa: F811
) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    clock = [NOW]
    harness = Harness(log, {TENANT: [rule("HighCpu", group_by=("host",), interval_ms=10 * S)]}, clock)
    await harness.start()
    config = AlertConfig(
        receivers={"ops": Receiver(name="ops", webhook=(WebhookTarget(url=hooks.url("ops")),))},
        route=Route(receiver="ops", group_wait_ms=10 * S, group_interval_ms=60 * S),
    )
    stop = asyncio.Event()
    async with Senders() as senders:
        notifier = AlertNotifier(
            log=log,
            deliverer=Deliverer(senders, policy=RetryPolicy(max_attempts=2, base_delay_ms=10)),
            config=lambda tenant: config,
            silences=lambda tenant: [],
            clock_ms=lambda: clock[0],
        )
        runner: ConsumerRunner[Decoded] = ConsumerRunner(
            name="alert-notifier",
            log=log,
            topic=ALERTS_TOPIC,
            group=NOTIFIER_GROUP,
            handler=notifier,
            clock_ms=lambda: clock[0],
            flush_interval_ms=50,
        )
        task = asyncio.create_task(run_notifier(notifier, runner, stop))
        try:
            feed = Feed()
            samples(feed, -60, 97.0)
            await append(log, feed)
            await harness.at(NOW)
            await wait_for(lambda: len(notifier.active_alerts(TENANT)) == len(HOSTS), "the notifier to see the alerts")

            def later() -> bool:
                # Time moves on a second per look (group_wait is 10 s) until the page is out.
                clock[0] = min(clock[0] + S, NOW + 60 * S)
                return len(hooks.bodies("ops")) == 1

            await wait_for(later, "the firing notification")
            (firing,) = hooks.bodies("ops")
            assert firing["status"] == "firing"
            assert sorted(a["labels"]["host"] for a in firing["alerts"]) == HOSTS

            start = len(feed.batches)
            samples(feed, 60, 12.0)
            await append(log, feed, start)
            await harness.at(NOW + 120 * S)
            await wait_for(lambda: len(hooks.bodies("ops")) == 2, "the resolved notification")
            resolved = hooks.bodies("ops")[1]
            assert resolved["status"] == "resolved"
            assert sorted(a["labels"]["host"] for a in resolved["alerts"]) == HOSTS
            assert resolved["id"] != firing["id"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
            with contextlib.suppress(Exception):
                await runner.close()
            await log.close()
