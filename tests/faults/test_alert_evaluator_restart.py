"""The alert evaluator on the embedded SQLite log, killed mid-timeline (its run task cancelled:
no final settle, no commit) right after appending a transition, then started again from the
file: every transition of the timeline is on the alerts topic exactly once, with the ids an
evaluator that never died makes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from contracts.argus.events.v1 import events_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.adapters.sqlite_event_log import SqliteEventLog
from core.alerting.model import AlertRule
from core.consumer import ConsumerRunner
from core.events import ALERTS_TOPIC, SAMPLES_TOPIC
from core.model import MetricKind
from query_side.alerts.evaluator import EVALUATOR_GROUP, AlertEvaluator, run_evaluator
from tests.unit.test_alert_evaluator import NOW, PARTITIONS, TENANT, Feed, Harness, alert_events, append, rule

S = 1_000
TICKS = list(range(5, 100, 5))
HOSTS = {"a": (10, 40), "b": (25, 70)}  # breached from .. to (seconds after NOW)


def samples_until(feed: Feed, tick: int) -> None:
    """The samples of (tick - 5 s, tick]: each host reports once per 5 s."""
    for host, (start, end) in HOSTS.items():
        t = tick
        feed.add(
            "cpu", MetricKind.GAUGE, {"host": host}, [NOW + t * S - 1], values=[95.0 if start <= t <= end else 10.0]
        )


def the_rule() -> AlertRule:
    return rule(window_ms=10 * S, for_ms=10 * S, interval_ms=5 * S, keep_firing_for_ms=10 * S, group_by=("host",))


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Member:
    """One evaluator process: its own log handle on the file, its runner's task."""

    def __init__(self, path: Path, clock: list[int]) -> None:
        self.log = SqliteEventLog(path)
        self.clock = clock
        rules = {TENANT: [the_rule()]}
        self.evaluator = AlertEvaluator(log=self.log, rules=lambda: rules, clock_ms=lambda: clock[0])
        self.runner: ConsumerRunner[events_pb2.SampleBatchAccepted] = ConsumerRunner(
            name="alert-evaluator",
            log=self.log,
            topic=SAMPLES_TOPIC,
            group=EVALUATOR_GROUP,
            handler=self.evaluator,
            clock_ms=lambda: clock[0],
            flush_interval_ms=20,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.log.start()
        await self.log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
        self.task = asyncio.create_task(run_evaluator(self.evaluator, self.runner, self.stop))

    async def step(self, feed: Feed, tick: int) -> None:
        """Append the samples up to `tick`, wait until applied, then let the clock reach it and
        wait for the evaluation (driven by the runner's housekeeping)."""
        fresh = len(feed.batches)
        samples_until(feed, tick)
        await append(self.log, feed, fresh)
        ends = {p: await self.log.end_offset(SAMPLES_TOPIC, p) for p in range(PARTITIONS)}
        await wait_for(
            lambda: all(self.evaluator.positions().get(p, 0) >= end for p, end in ends.items() if end), "samples"
        )
        self.clock[0] = NOW + tick * S
        await wait_for(lambda: self.evaluator.status()[0].last_evaluated_ms == NOW + tick * S, f"evaluation {tick}")

    async def kill(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.log.close()


async def reference(ticks: Sequence[int]) -> list[tuple[bytes, int, int]]:
    """(event id, sequence, to_state) of an evaluator that never dies, on an in-memory log."""
    log = MemoryEventLog()
    clock = [NOW]
    harness = Harness(log, {TENANT: [the_rule()]}, clock)
    await harness.start()
    feed = Feed()
    for tick in ticks:
        fresh = len(feed.batches)
        samples_until(feed, tick)
        await append(log, feed, fresh)
        await harness.at(NOW + tick * S)
    return [(i, e.sequence, e.to_state) for i, e in await alert_events(log)]


async def test_killed_evaluator_resumes_from_the_file_without_losing_or_doubling_a_transition(tmp_path: Path) -> None:
    expected = await reference(TICKS)
    assert len(expected) >= 6  # both hosts pend, fire and resolve

    path = tmp_path / "events.db"
    clock = [NOW]
    feed = Feed()
    first = Member(path, clock)
    await first.start()
    crash_at = 35  # host a firing, host b pending; both windows hold data from before the crash
    for tick in TICKS[: TICKS.index(crash_at) + 1]:
        await first.step(feed, tick)
    appended_before = first.evaluator.transitions_appended
    assert appended_before >= 3
    await first.kill()

    second = Member(path, clock)
    await second.start()
    for tick in TICKS[TICKS.index(crash_at) + 1 :]:
        await second.step(feed, tick)
    got = [(i, e.sequence, e.to_state) for i, e in await alert_events(second.log)]
    second.stop.set()
    assert second.task is not None
    await second.task
    await second.log.close()
    assert got == expected
    assert len({i for i, _, _ in got}) == len(got)


async def test_transitions_made_again_after_a_crash_are_dropped_by_the_log(tmp_path: Path) -> None:
    """A member that died before its instances' states were restored (or before its commit)
    evaluates the same ticks again from the same samples: it makes the same events, ids
    included, and the SQLite log's append drops every one of them."""
    path = tmp_path / "events.db"
    clock = [NOW]
    first = Member(path, clock)
    await first.start()
    feed = Feed()
    for tick in TICKS[:8]:
        await first.step(feed, tick)
    await first.kill()

    clock[0] = NOW
    again = MemoryEventLog()
    harness = Harness(again, {TENANT: [the_rule()]}, clock)
    await harness.start()
    replay = Feed()
    for tick in TICKS[:8]:
        fresh = len(replay.batches)
        samples_until(replay, tick)
        await append(again, replay, fresh)
        await harness.at(NOW + tick * S)
    remade = []
    for p in range(await again.partitions(ALERTS_TOPIC)):
        remade += [(p, r.event) for r in await again.read(ALERTS_TOPIC, p, 0, 1000)]
    assert remade

    sqlite = SqliteEventLog(path)
    await sqlite.start()
    try:
        before = await alert_events(sqlite)
        assert len(before) == len(remade)
        result = await sqlite.append(ALERTS_TOPIC, remade)
        assert result.duplicates == len(remade)
        assert await alert_events(sqlite) == before
    finally:
        await sqlite.close()
