"""Backtest: a replay of the samples topic makes the transitions the live evaluator made."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from contracts.argus.events.v1 import events_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.alerting.lifecycle import AlertState, Transition
from core.alerting.model import AlertRule, Condition, ConditionOp, RuleQuery
from core.consumer import ConsumerRunner
from core.errors import StorageError
from core.events import ALERTS_TOPIC, SAMPLES_TOPIC, digest, make_event
from core.model import MetricKind, partition_of, series_id
from core.ports import EventLog
from query_side.alerts.backtest import backtest, ticks
from query_side.alerts.evaluator import EVALUATOR_GROUP, AlertEvaluator

S = 1_000
NOW = 1_764_072_000_000
TENANT = "acme"
PARTITIONS = 3


def rule(for_ms: int = 0) -> AlertRule:
    return AlertRule(
        name="hot",
        query=RuleQuery(metric="cpu", agg="avg", group_by=("host",)),
        window_ms=10 * S,
        condition=Condition(op=ConditionOp.ABOVE, threshold=90.0),
        interval_ms=5 * S,
        for_ms=for_ms,
    )


def batch(host: str, ts: int, value: float, n: int, tenant: str = TENANT) -> tuple[int, events_pb2.SampleBatchAccepted]:
    b = events_pb2.SampleBatchAccepted(tenant=tenant, source="test", batch_id=f"b{n}")
    s = b.series.add(metric="cpu", kind=MetricKind.GAUGE, region="eu", timestamps_ms=[ts], values=[value])
    s.labels.add(name="host", value=host)
    sid = series_id(tenant, "eu", "cpu", (("host", host),))
    b.series_ids.append(sid)
    return partition_of(sid, PARTITIONS), b


def value_at(host: str, t: int) -> float:
    """Host a breaches from 30 s to 60 s; host b never; tenant other always."""
    return 95.0 if host == "a" and 30 <= t <= 60 else 10.0


async def live(log: EventLog, r: AlertRule, seconds: Sequence[int]) -> list[Transition]:
    """The live evaluator as `argus up` drives it: samples arrive as time passes, the runner
    applies them, the evaluator evaluates at each tick."""
    clock = [NOW]
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    evaluator = AlertEvaluator(log=log, rules=lambda: {TENANT: [r]}, clock_ms=lambda: clock[0])
    runner: ConsumerRunner[events_pb2.SampleBatchAccepted] = ConsumerRunner(
        name="alert-evaluator",
        log=log,
        topic=SAMPLES_TOPIC,
        group=EVALUATOR_GROUP,
        handler=evaluator,
        clock_ms=lambda: clock[0],
    )
    await evaluator.start()
    out: list[Transition] = []
    n = 0
    for second in seconds:
        events = []
        for host, tenant in (("a", TENANT), ("b", TENANT), ("a", "other")):
            partition, b = batch(
                host, NOW + second * S - 1, value_at(host, second) + (tenant == "other") * 90, n, tenant
            )
            events.append((partition, make_event(b, identity=digest(str(n)), partition_key=b"k", time_ms=NOW)))
            n += 1
        await log.append(SAMPLES_TOPIC, events)
        clock[0] = NOW + second * S
        await runner.catch_up(idle_timeout_s=0.01)
        out.extend(await evaluator.evaluate(clock[0]))
    return out


async def test_backtest_gives_the_live_evaluators_transitions_and_writes_nothing() -> None:
    log = MemoryEventLog()
    r = rule(for_ms=10 * S)
    seconds = range(1, 100)
    got_live = await live(log, r, seconds)
    alerts_before = await log.end_offset(ALERTS_TOPIC, 0), await log.partitions(ALERTS_TOPIC)
    progress: list[tuple[int, int]] = []
    result = await backtest(
        log,
        tenant=TENANT,
        rules=[r],
        since_ms=NOW + 5 * S,
        until_ms=NOW + 99 * S,
        progress=lambda done, total: progress.append((done, total)),
    )
    # Second s has its sample at s - 1 ms: the window [t - 10 s, t) holds seconds t-9 .. t. It
    # is all 95 first at 40 s (31 .. 40), fires for_ms later, and at 65 s (56 .. 65) the
    # average is 52.5.
    assert [(t.key.labels, t.to_state, t.evaluated_at_ms - NOW) for t in result.transitions] == [
        ((("host", "a"),), AlertState.PENDING, 40 * S),
        ((("host", "a"),), AlertState.FIRING, 50 * S),
        ((("host", "a"),), AlertState.RESOLVED, 65 * S),
    ]
    assert result.transitions == got_live
    assert result.transitions[1].value == 95.0
    assert progress[-1] == (result.ticks, result.ticks) == (19, 19)
    # From since - (window + step) = -10 s: every sample there is, the first at 0.999 s.
    assert result.first_sample_ms == NOW + 999
    assert (await log.end_offset(ALERTS_TOPIC, 0), await log.partitions(ALERTS_TOPIC)) == alerts_before


async def test_backtest_beyond_the_samples_sees_no_data() -> None:
    log = MemoryEventLog()
    await live(log, rule(), range(1, 20))
    result = await backtest(log, tenant=TENANT, rules=[rule()], since_ms=NOW + 3600 * S, until_ms=NOW + 3700 * S)
    assert result.transitions == [] and result.records == 0 and result.first_sample_ms is None
    assert result.ticks == 21


def test_ticks_merge_the_rules_intervals() -> None:
    a, b = (
        rule(),
        AlertRule(
            name="slow",
            query=RuleQuery(metric="cpu", agg="avg"),
            window_ms=10 * S,
            condition=Condition(op=ConditionOp.ABOVE, threshold=1.0),
            interval_ms=3 * S,
        ),
    )
    assert list(ticks([a, b], 1 * S, 15 * S)) == [3 * S, 5 * S, 6 * S, 9 * S, 10 * S, 12 * S, 15 * S]


def test_cli_backtest_prints_the_transitions_of_a_document(tmp_path: Path) -> None:
    """`argus alerts backtest` on a data dir's event log: NDJSON transitions, nothing written."""
    import asyncio
    import contextlib
    import json

    from click.testing import CliRunner

    from argus.cli import main
    from argus.cli_common import _open_data_dir, _settings
    from argus.container import event_log_resource, now_ms

    data = tmp_path / "data"
    settings = _settings(data_dir=data)
    _open_data_dir(settings)
    start = now_ms() - 10 * 60 * S
    start -= start % (5 * S)

    async def write() -> None:
        async with contextlib.asynccontextmanager(event_log_resource)(settings) as log:
            events = []
            for n in range(0, 300):  # one sample per second for 5 min; hot from 60 s to 120 s
                value = 95.0 if 60 <= n < 120 else 10.0
                partition, b = batch("a", start + n * S, value, n)
                events.append(
                    (
                        partition % await log.partitions(SAMPLES_TOPIC),
                        make_event(b, identity=digest(str(n)), partition_key=b"k", time_ms=start),
                    )
                )
            await log.append(SAMPLES_TOPIC, events)

    asyncio.run(write())
    document = tmp_path / "alerts.yaml"
    document.write_text(
        "rules:\n  - name: hot\n    query: {metric: cpu, agg: avg, group_by: [host]}\n"
        '    window: 10s\n    condition: "> 90"\n    for: 10s\n    interval: 5s\n'
    )
    done = CliRunner().invoke(
        main,
        ["alerts", "backtest", str(document), "--data-dir", str(data), "--tenant", TENANT, "--since", "15m", "--json"],
    )
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(r["to"], r["at_ms"] - start) for r in rows] == [
        ("pending", 70 * S),  # the first window [60 s, 70 s) all 95
        ("firing", 80 * S),
        ("resolved", 125 * S),  # [115 s, 125 s): half 95, half 10
    ]
    assert rows[1]["labels"] == {"host": "a"} and rows[1]["value"] == 95.0
    assert "3 transitions of 1 rules" in done.stderr
    table = CliRunner().invoke(
        main, ["alerts", "backtest", str(document), "--data-dir", str(data), "--tenant", TENANT, "--since", "15m"]
    )
    assert table.exit_code == 0, table.output
    assert [line.split()[3:5] for line in table.stdout.splitlines()[1:]] == [
        ["pending", "95"],
        ["firing", "95"],
        ["resolved", "52.5"],
    ]

    async def alerts_written() -> int:
        async with contextlib.asynccontextmanager(event_log_resource)(settings) as log:
            try:
                partitions = await log.partitions(ALERTS_TOPIC)
            except StorageError:
                return 0  # the backtest did not even create the topic
            return sum([await log.end_offset(ALERTS_TOPIC, p) for p in range(partitions)])

    assert asyncio.run(alerts_written()) == 0
