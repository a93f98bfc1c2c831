"""Alert backtest: replay the samples topic through the live evaluator's code
(docs/decisions/0029-alert-backtest-and-benchmarks.md).

`backtest` runs an `AlertEvaluator` (the same class `argus up` runs) on a private in-memory
log for its alerts topic, so nothing is notified and nothing reaches the real alerts topic.
The samples come from the real samples topic: every record of the tenant with a sample of a
rule's metric in `[since - horizon, until)` (horizon = the longest window + over + step, so
the first evaluation at `since` sees a full window). Records are applied in order of their
oldest sample, each just before the first tick after it, with the clock stepped through the
rules' ticks: at each tick the evaluator has exactly the samples older than the tick, which
is what the live evaluator has when ingest is not lagging.

Beyond the log's retention there is nothing to replay: the result says from when samples
were found (`first_sample_ms`), and the evaluations before it see no data.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from core.adapters.memory_event_log import MemoryEventLog
from core.alerting.lifecycle import Transition
from core.alerting.model import AlertRule
from core.consumer import Delivery
from core.events import SAMPLES_TOPIC
from core.ports import EventLog
from core.samples import decode_sample_batch
from query_side.alerts.evaluator import AlertEvaluator, step_for

Progress = Callable[[int, int], None]
"""Called with (done, total) ticks as the replay advances."""

_READ_BATCH = 1000


@dataclass(slots=True, kw_only=True)
class BacktestResult:
    since_ms: int
    until_ms: int
    transitions: list[Transition] = field(default_factory=list)
    """In evaluation order: what the live evaluator would have appended."""
    ticks: int = 0
    records: int = 0
    """Sample records replayed."""
    first_sample_ms: int | None = None
    """The oldest sample replayed (None: none found, e.g. the range is beyond retention)."""


def horizon_ms(rules: Sequence[AlertRule]) -> int:
    """How far before `since` samples are needed for the first evaluation's windows."""
    return max((r.window_ms + r.condition.over_ms + step_for(r.window_ms) for r in rules), default=0)


def ticks(rules: Sequence[AlertRule], since_ms: int, until_ms: int) -> Iterator[int]:
    """Every evaluation instant of any rule in [since, until], ascending, without repeats."""
    intervals = sorted({max(r.interval_ms, 1) for r in rules})
    starts = [(since_ms + (-since_ms) % i, i) for i in intervals]
    heap = [(t, i) for t, i in starts if t <= until_ms]
    heapq.heapify(heap)
    last: int | None = None
    while heap:
        t, i = heapq.heappop(heap)
        if t != last:
            yield t
            last = t
        if t + i <= until_ms:
            heapq.heappush(heap, (t + i, i))


def tick_count(rules: Sequence[AlertRule], since_ms: int, until_ms: int) -> int:
    return sum(1 for _ in ticks(rules, since_ms, until_ms))


async def _index(
    log: EventLog, tenant: str, metrics: frozenset[str], lo_ms: int, until_ms: int
) -> tuple[list[tuple[int, int, int]], int | None]:
    """(oldest sample, partition, offset) of every record with a wanted sample in [lo, until)."""
    found: list[tuple[int, int, int]] = []
    first: int | None = None
    for partition in range(await log.partitions(SAMPLES_TOPIC)):
        offset = 0
        while records := await log.read(SAMPLES_TOPIC, partition, offset, _READ_BATCH):
            for record in records:
                batch = decode_sample_batch(record)
                if batch.tenant != tenant:
                    continue
                inside = [
                    ts for s in batch.series if s.metric in metrics for ts in s.timestamps_ms if lo_ms <= ts < until_ms
                ]
                if inside:
                    oldest = min(inside)
                    found.append((oldest, partition, record.offset))
                    first = oldest if first is None else min(first, oldest)
            offset = records[-1].offset + 1
    found.sort()
    return found, first


async def backtest(
    log: EventLog,
    *,
    tenant: str,
    rules: Sequence[AlertRule],
    since_ms: int,
    until_ms: int,
    progress: Progress | None = None,
) -> BacktestResult:
    """What `rules` of `tenant` would have done over [since, until] on the samples in `log`.
    Reads `log`, writes nothing to it."""
    result = BacktestResult(since_ms=since_ms, until_ms=until_ms)
    if not rules or until_ms < since_ms:
        return result
    metrics = frozenset(r.query.metric for r in rules)
    index, result.first_sample_ms = await _index(log, tenant, metrics, since_ms - horizon_ms(rules), until_ms)
    clock = [since_ms]
    evaluator = AlertEvaluator(log=MemoryEventLog(), rules=lambda: {tenant: list(rules)}, clock_ms=lambda: clock[0])
    await evaluator.start()
    total = tick_count(rules, since_ms, until_ms)
    next_record = 0
    for n, tick in enumerate(ticks(rules, since_ms, until_ms), 1):
        due: list[tuple[int, int, int]] = []
        while next_record < len(index) and index[next_record][0] < tick:
            due.append(index[next_record])
            next_record += 1
        if due:
            deliveries = []
            for _, partition, offset in due:
                record = (await log.read(SAMPLES_TOPIC, partition, offset, 1))[0]
                deliveries.append(Delivery(record=record, value=decode_sample_batch(record)))
            # The clock at the oldest sample: apply keeps every point of these records.
            clock[0] = due[0][0]
            await evaluator.apply(deliveries)
            result.records += len(due)
        clock[0] = tick
        result.transitions.extend(await evaluator.evaluate(tick))
        await evaluator.settle(force=False)  # forget event ids older than every window
        result.ticks = n
        if progress is not None:
            progress(n, total)
    return result
