"""The streaming alert evaluator: its values are the query engine's numbers, its transitions
follow the lifecycle, tenants are apart, and a crash and restart re-creates the same ids."""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from contracts.argus.alerts.v1 import alerts_pb2
from contracts.argus.events.v1 import events_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.adapters.memory_hot_store import MemoryHotStore
from core.alerting.lifecycle import AlertState
from core.alerting.model import AlertRule, Condition, ConditionOp, NoDataPolicy, RuleQuery
from core.chunks import encode_chunk
from core.consumer import ConsumerRunner
from core.events import ALERTS_TOPIC, SAMPLES_TOPIC, decode_payload, digest, make_event
from core.model import MetricKind, Tier, partition_of, series_id
from core.ports import Event, EventLog, SeriesRecord, StoredChunk
from core.samples import SampleBuffer
from query_side.alerts.evaluator import EVALUATOR_GROUP, QUERY_ENGINE, AlertEvaluator, breached_mask, engine_tier_for
from query_side.engine import QueryEngine, QueryResult
from query_side.planner import QuerySpec, parse_matcher

S = 1_000
MINUTE = 60 * S
NOW = 1_764_072_000_000  # on every step boundary
TENANT = "acme"
PARTITIONS = 3


# ------------------------------------------------------------------------------ samples


@dataclass
class Feed:
    """Sample batches as ingest appends them (one batch per call, partitioned by series)."""

    batches: list[events_pb2.SampleBatchAccepted] = field(default_factory=list)

    def add(
        self,
        metric: str,
        kind: MetricKind,
        labels: Mapping[str, str],
        ts: Sequence[int],
        *,
        values: Sequence[float] = (),
        observations: Sequence[Sequence[float]] = (),
        region: str = "eu",
        tenant: str = TENANT,
    ) -> None:
        batch = events_pb2.SampleBatchAccepted(tenant=tenant, source="test", batch_id=f"b{len(self.batches)}")
        s = batch.series.add(metric=metric, kind=kind, region=region, timestamps_ms=list(ts))
        for name, value in sorted(labels.items()):
            s.labels.add(name=name, value=value)
        if kind == MetricKind.TIMER:
            s.observation_counts.extend(len(o) for o in observations)
            s.observations.extend(x for o in observations for x in o)
        else:
            s.values.extend(values)
        batch.series_ids.append(series_id(tenant, region, metric, tuple(sorted(labels.items()))))
        self.batches.append(batch)

    def events(self, start: int = 0) -> list[tuple[int, Event]]:
        out = []
        for n, batch in enumerate(self.batches[start:], start):
            partition = partition_of(batch.series_ids[0], PARTITIONS)
            out.append((partition, make_event(batch, identity=digest(str(n)), partition_key=b"k", time_ms=NOW)))
        return out


async def append(log: EventLog, feed: Feed, start: int = 0) -> None:
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    await log.append(SAMPLES_TOPIC, feed.events(start))


async def query_engine_over(feed: Feed, window_ms: int, clock: list[int]) -> QueryEngine:
    """A query engine over the same samples, with a tier whose step is the window (so one
    query bucket is one evaluation window) beside the 5 s tier."""
    tiers = (
        Tier(name="5s", step_ms=5 * S, chunk_span_ms=3_600_000, retention_ms=7 * 86_400_000),
        Tier(name="w", step_ms=window_ms, chunk_span_ms=window_ms * 64, retention_ms=7 * 86_400_000),
    )
    store = await store_over(feed, tiers)
    return QueryEngine(store, store, tiers, clock=lambda: clock[0])


async def store_over(feed: Feed, tiers: Sequence[Tier]) -> MemoryHotStore:
    """A hot store holding `feed` rolled up into `tiers`, as the projectors write it."""
    store = MemoryHotStore(tiers=tiers)
    buffer = SampleBuffer()
    records = []
    for batch in feed.batches:
        buffer.add(batch, 0, 0)
        for sid, s in zip(batch.series_ids, batch.series, strict=True):
            labels = tuple(sorted((label.name, label.value) for label in s.labels))
            records.append(
                SeriesRecord(
                    tenant=batch.tenant,
                    series_id=sid,
                    metric=s.metric,
                    kind=int(s.kind),
                    region=s.region,
                    labels=labels,
                    first_seen_ms=0,
                    last_seen_ms=NOW,
                )
            )
    kinds = dict(buffer.kinds)
    await store.upsert_series(records)
    for columns in buffer.drain():
        for tier in tiers:
            points = columns.to_points(None, tier.step_ms)
            for sid in np.unique(points.key).tolist():
                mine = points.take(points.key == sid)
                starts = mine.ts - mine.ts % tier.chunk_span_ms
                chunks = []
                for start in np.unique(starts).tolist():
                    part = mine.take(starts == start)
                    data = encode_chunk(part, kind=MetricKind(kinds[sid]), step_ms=tier.step_ms, chunk_start_ms=start)
                    chunks.append(
                        StoredChunk(series_id=sid, chunk_start_ms=start, data=data, partition=0, applied_offset=1)
                    )
                await store.write_chunks(tier.name, chunks)
    return store


def rule(
    name: str = "r",
    *,
    metric: str = "cpu",
    agg: str = "avg",
    window_ms: int = MINUTE,
    group_by: tuple[str, ...] = (),
    where: tuple[str, ...] = (),
    op: ConditionOp = ConditionOp.ABOVE,
    threshold: float = 90.0,
    **kw: Any,
) -> AlertRule:
    return AlertRule(
        name=name,
        query=RuleQuery(metric=metric, agg=agg, group_by=group_by, where=where),
        window_ms=window_ms,
        condition=Condition(op=op, threshold=threshold),
        **kw,
    )


class Harness:
    """An evaluator on a log, driven by hand: append, catch up, evaluate at a time."""

    def __init__(
        self,
        log: EventLog,
        rules: Mapping[str, Sequence[AlertRule]],
        clock: list[int],
        engine: QueryEngine | None = None,
        *,
        on_arrival: bool = False,
    ) -> None:
        self.log = log
        self.clock = clock
        self.evaluator = AlertEvaluator(
            log=log, rules=lambda: rules, clock_ms=lambda: clock[0], engine=engine, evaluate_on_arrival=on_arrival
        )
        self.runner: ConsumerRunner[events_pb2.SampleBatchAccepted] = ConsumerRunner(
            name="alert-evaluator",
            log=log,
            topic=SAMPLES_TOPIC,
            group=EVALUATOR_GROUP,
            handler=self.evaluator,
            clock_ms=lambda: clock[0],
        )

    async def start(self) -> None:
        await self.log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
        await self.evaluator.start()

    async def at(self, now_ms: int) -> list[Any]:
        self.clock[0] = now_ms
        await self.runner.catch_up(idle_timeout_s=0.01)
        return await self.evaluator.evaluate(now_ms)


async def alert_events(log: EventLog) -> list[tuple[bytes, alerts_pb2.AlertStateChanged]]:
    out = []
    for partition in range(await log.partitions(ALERTS_TOPIC)):
        for record in await log.read(ALERTS_TOPIC, partition, 0, 10_000):
            out.append((record.event.event_id, decode_payload(record.event, alerts_pb2.AlertStateChanged)))
    return sorted(out, key=lambda e: (e[1].evaluated_at_ms, e[1].rule, sorted(e[1].instance_labels.items())))


# ------------------------------------------------------------------------------ exactness


def seeded_feed(rng: np.random.Generator) -> Feed:
    """Gauges, counters and timers of 6 hosts in 2 regions around [NOW - 1 min, NOW), another
    tenant with the same names, samples before and after the window and on its edges."""
    feed = Feed()
    for h in range(6):
        labels = {"host": f"h{h}", "team": "web" if h % 2 else "db"}
        region = "eu" if h < 3 else "us"
        edges = {NOW - MINUTE - 10 * S, NOW - MINUTE, NOW - 10 * MINUTE, NOW - 10 * MINUTE - 1, NOW - 1, NOW}
        ts = sorted({*edges, *rng.integers(NOW - 11 * MINUTE, NOW, 30).tolist()})
        # Quarter steps: float sums are exact whatever the merge order.
        values = (rng.integers(0, 400, len(ts)) / 4).tolist()
        feed.add("cpu", MetricKind.GAUGE, labels, ts, values=values, region=region)
        feed.add(
            "requests", MetricKind.COUNTER, labels, ts, values=rng.integers(0, 50, len(ts)).tolist(), region=region
        )
        obs = [(rng.integers(1, 2_000, rng.integers(1, 20)) / 4).tolist() for _ in ts]
        feed.add("latency", MetricKind.TIMER, labels, ts, observations=obs, region=region)
        feed.add("cpu", MetricKind.GAUGE, labels, ts, values=[1e6] * len(ts), region=region, tenant="other")
    return feed


@pytest.mark.parametrize(
    ("metric", "agg"),
    [
        ("cpu", "avg"),
        ("cpu", "max"),
        ("cpu", "count"),
        ("requests", "sum"),
        ("requests", "rate"),
        ("latency", "p99"),
        ("latency", "count"),
    ],
)
@pytest.mark.parametrize(
    ("group_by", "where"),
    [((), ()), (("region",), ()), (("team",), ("host=~h[0-4]",)), (("*",), ("team!=db",))],
)
@pytest.mark.parametrize("window_ms", [MINUTE, 10 * MINUTE])
async def test_value_is_exactly_what_the_query_engine_returns(
    metric: str, agg: str, group_by: tuple[str, ...], where: tuple[str, ...], window_ms: int
) -> None:
    feed = seeded_feed(np.random.default_rng(zlib.crc32(repr((metric, agg, group_by, where)).encode())))
    clock = [NOW]
    log = MemoryEventLog()
    await append(log, feed)
    r = rule(metric=metric, agg=agg, group_by=group_by, where=where, window_ms=window_ms)
    harness = Harness(log, {TENANT: [r]}, clock)
    await harness.start()
    await harness.at(NOW)
    got = harness.evaluator.values(TENANT, r.name, NOW)

    engine = await query_engine_over(feed, window_ms, clock)
    result = await engine.query(
        QuerySpec(
            tenant=TENANT,
            metric=metric,
            start_ms=NOW - window_ms,
            end_ms=NOW,
            period="w",
            agg=agg,
            group_by=group_by,
            matchers=tuple(parse_matcher(w) for w in where),
        )
    )
    expected = {}
    for series in result.series:
        assert series.ts.tolist() == [NOW - window_ms]  # one bucket: the window
        expected[tuple(sorted(series.labels.items()))] = float(series.values[0])
    assert expected, "the query found nothing: the test would prove nothing"
    assert got.keys() == expected.keys()
    for labels, value in expected.items():
        assert got[labels] == value or (math.isnan(value) and math.isnan(got[labels])), labels


async def test_rules_over_an_hour_are_left_to_the_query_engine() -> None:
    clock = [NOW]
    harness = Harness(MemoryEventLog(), {TENANT: [rule(window_ms=2 * 3_600_000)]}, clock)
    await harness.start()
    [status] = harness.evaluator.status()
    assert status.route == QUERY_ENGINE and status.error


HOUR = 60 * MINUTE
TIERS = (
    Tier(name="5s", step_ms=5 * S, chunk_span_ms=HOUR, retention_ms=7 * 24 * HOUR),
    Tier(name="1m", step_ms=MINUTE, chunk_span_ms=12 * HOUR, retention_ms=35 * 24 * HOUR),
    Tier(name="5m", step_ms=5 * MINUTE, chunk_span_ms=48 * HOUR, retention_ms=90 * 24 * HOUR),
    Tier(name="1h", step_ms=HOUR, chunk_span_ms=720 * HOUR, retention_ms=400 * 24 * HOUR),
)


@pytest.mark.parametrize(
    ("window_ms", "interval_ms", "tier"),
    [
        (HOUR, MINUTE, "1m"),  # ticks on 1 m boundaries: exact on 1m
        (HOUR, 5 * MINUTE, "5m"),
        (HOUR, HOUR, "1h"),
        (HOUR, 30 * S, "1m"),  # widened by at most 1 m = window / 60
        (24 * HOUR, MINUTE, "5m"),  # 1h would widen a tick by 1/24 of the window
        (24 * HOUR, HOUR, "1h"),
        (HOUR + S, S, "5s"),  # no tier divides it: the finest
    ],
)
def test_query_engine_rules_read_the_coarsest_tier_that_keeps_the_window(
    window_ms: int, interval_ms: int, tier: str
) -> None:
    assert engine_tier_for(rule(window_ms=window_ms, interval_ms=interval_ms), TIERS).name == tier


def long_feed(rng: np.random.Generator) -> Feed:
    """Gauges, counters and timers of 6 hosts over the 2 h before NOW (and on its edges)."""
    feed = Feed()
    for h in range(6):
        labels = {"host": f"h{h}", "team": "web" if h % 2 else "db"}
        edges = {NOW - 2 * HOUR - 1, NOW - 2 * HOUR, NOW - 1, NOW}
        ts = sorted({*edges, *rng.integers(NOW - 2 * HOUR - 10 * MINUTE, NOW, 40).tolist()})
        feed.add("cpu", MetricKind.GAUGE, labels, ts, values=(rng.integers(0, 400, len(ts)) / 4).tolist())
        feed.add("requests", MetricKind.COUNTER, labels, ts, values=rng.integers(0, 50, len(ts)).tolist())
        obs = [(rng.integers(1, 2_000, rng.integers(1, 20)) / 4).tolist() for _ in ts]
        feed.add("latency", MetricKind.TIMER, labels, ts, observations=obs)
        feed.add("cpu", MetricKind.GAUGE, labels, ts, values=[1e6] * len(ts), tenant="other")
    return feed


@pytest.mark.parametrize(("metric", "agg"), [("cpu", "avg"), ("requests", "rate"), ("latency", "p99")])
@pytest.mark.parametrize(("group_by", "where"), [((), ()), (("team",), ("host=~h[0-4]",)), (("*",), ("team!=db",))])
async def test_a_long_window_rule_fires_with_the_query_engines_value(
    metric: str, agg: str, group_by: tuple[str, ...], where: tuple[str, ...]
) -> None:
    """A 2 h rule is evaluated on the query engine (its 1 m tier, 120 buckets merged): every
    instance's transition carries what the query returns for the window as one bucket."""
    feed = long_feed(np.random.default_rng(zlib.crc32(repr((metric, agg, group_by, where)).encode())))
    clock = [NOW]
    store = await store_over(feed, TIERS)
    r = rule(metric=metric, agg=agg, group_by=group_by, where=where, window_ms=2 * HOUR, threshold=-1e300)
    log = MemoryEventLog()
    evaluator = AlertEvaluator(
        log=log,
        rules=lambda: {TENANT: [r]},
        clock_ms=lambda: clock[0],
        engine=QueryEngine(store, store, TIERS, clock=lambda: clock[0]),
    )
    await evaluator.start()
    [status] = evaluator.status()
    assert (status.route, status.step_ms, status.error) == (QUERY_ENGINE, MINUTE, "")
    fired = {tuple(sorted(t.key.labels)): t.value for t in await evaluator.evaluate(NOW)}

    engine = await query_engine_over(feed, 2 * HOUR, clock)
    result = await engine.query(
        QuerySpec(
            tenant=TENANT,
            metric=metric,
            start_ms=NOW - 2 * HOUR,
            end_ms=NOW,
            period="w",
            agg=agg,
            group_by=group_by,
            matchers=tuple(parse_matcher(w) for w in where),
        )
    )
    expected = {}
    for series in result.series:
        assert series.ts.tolist() == [NOW - 2 * HOUR]  # one bucket: the window
        expected[tuple(sorted(series.labels.items()))] = float(series.values[0])
    assert expected, "the query found nothing: the test would prove nothing"
    assert fired == expected
    assert {e.to_state for _, e in await alert_events(log)} == {alerts_pb2.ALERT_STATE_FIRING}
    assert evaluator.status()[0].last_evaluated_ms == NOW


async def test_a_long_window_rule_whose_query_fails_says_why_and_makes_no_transition() -> None:
    store = await store_over(long_feed(np.random.default_rng(1)), TIERS)
    # `distinct` is a valid agg, but not of a gauge: only the query (which sees the kind) says so.
    r = rule(metric="cpu", agg="distinct", window_ms=2 * HOUR, threshold=-1e300)
    evaluator = AlertEvaluator(
        log=MemoryEventLog(),
        rules=lambda: {TENANT: [r]},
        clock_ms=lambda: NOW,
        engine=QueryEngine(store, store, TIERS, clock=lambda: NOW),
    )
    await evaluator.start()
    assert await evaluator.evaluate(NOW) == []
    [status] = evaluator.status()
    assert "agg" in status.error


class SlowEngine(QueryEngine):
    """Its window queries wait until released (a query over a long window on a busy store)."""

    def __init__(self, store: MemoryHotStore, clock: list[int]) -> None:
        super().__init__(store, store, TIERS, clock=lambda: clock[0])
        self.release = asyncio.Event()

    async def query_window(self, spec: QuerySpec) -> QueryResult:
        await self.release.wait()
        return await super().query_window(spec)


async def test_a_slow_query_holds_up_neither_the_runners_turn_nor_the_streaming_rules() -> None:
    clock = [NOW]
    feed = long_feed(np.random.default_rng(2))
    engine = SlowEngine(await store_over(feed, TIERS), clock)
    long_rule = rule("long", window_ms=2 * HOUR, threshold=-1e300)
    short_rule = rule("short", window_ms=MINUTE, threshold=-1e300)
    log = MemoryEventLog()
    await append(log, feed)
    evaluator = AlertEvaluator(
        log=log, rules=lambda: {TENANT: [long_rule, short_rule]}, clock_ms=lambda: clock[0], engine=engine
    )
    runner: ConsumerRunner[events_pb2.SampleBatchAccepted] = ConsumerRunner(
        name="alert-evaluator",
        log=log,
        topic=SAMPLES_TOPIC,
        group=EVALUATOR_GROUP,
        handler=evaluator,
        clock_ms=lambda: NOW,
    )
    await evaluator.start()
    await runner.catch_up(idle_timeout_s=0.01)
    evaluator.start_evaluating()
    await asyncio.wait_for(evaluator.housekeeping(), 5.0)  # returns while the query waits
    assert {e.rule for _, e in await alert_events(log)} == {"short"}
    engine.release.set()
    assert [t.key.rule for t in await asyncio.wait_for(evaluator.engine_done(), 5.0)] == ["long"]
    assert {e.rule for _, e in await alert_events(log)} == {"short", "long"}
    await evaluator.aclose()


async def test_a_long_window_rule_holds_no_samples_back_from_the_commit() -> None:
    """Its window is in the read models: samples older than every streaming window are
    committed as they are read, however long the query-engine rule's window."""
    clock = [NOW]
    feed = Feed()
    for h in range(3):
        feed.add("cpu", MetricKind.GAUGE, {"host": f"h{h}"}, [NOW - 90 * MINUTE], values=[95.0])
    store = await store_over(feed, TIERS)
    log = MemoryEventLog()
    await append(log, feed)
    rules = {TENANT: [rule("long", window_ms=2 * HOUR), rule("short", window_ms=MINUTE)]}
    harness = Harness(log, rules, clock, QueryEngine(store, store, TIERS, clock=lambda: clock[0]))
    await harness.start()
    fired = await harness.at(NOW)
    assert [t.key.rule for t in fired] == ["long"]  # the 90 min old samples are in its window
    positions = harness.evaluator.positions()
    assert positions and await harness.evaluator.settle(force=False) == positions


# ------------------------------------------------------------------------------ lifecycle


async def run_timeline(
    log: EventLog, r: AlertRule, values: Mapping[int, float], ticks: Sequence[int], *, tenant_rules: Any = None
) -> list[tuple[int, AlertState]]:
    """Gauge `cpu` of host a: value values[t] at each time t (seconds after NOW); evaluate at
    each tick (seconds after NOW). Returns (tick, to_state) of every transition."""
    clock = [NOW]
    harness = Harness(log, tenant_rules or {TENANT: [r]}, clock)
    await harness.start()
    feed = Feed()
    out = []
    for tick in ticks:
        fresh = len(feed.batches)
        for t, v in values.items():
            if (tick - 5) < t <= tick:  # samples arrive as time passes
                feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [NOW + t * S - 1], values=[v])
        await append(log, feed, fresh)
        for transition in await harness.at(NOW + tick * S):
            out.append((tick, transition.to_state))
    return out


async def test_pending_then_firing_after_for_then_resolved() -> None:
    r = rule(window_ms=10 * S, for_ms=20 * S, interval_ms=5 * S, threshold=90.0)
    values = {t: (95.0 if 10 <= t <= 40 else 10.0) for t in range(5, 80, 5)}
    got = await run_timeline(MemoryEventLog(), r, values, range(5, 80, 5))
    # The avg over [5 s, 15 s) is the first above 90 (at 10 s it is (10 + 95) / 2); firing 20 s
    # later; at 45 s the window holds 95 and 10 again.
    assert got == [(15, AlertState.PENDING), (35, AlertState.FIRING), (45, AlertState.RESOLVED)]


async def test_keep_firing_for_delays_the_resolve() -> None:
    r = rule(window_ms=10 * S, interval_ms=5 * S, keep_firing_for_ms=20 * S)
    values = {t: (95.0 if 10 <= t <= 20 else 10.0) for t in range(5, 80, 5)}
    got = await run_timeline(MemoryEventLog(), r, values, range(5, 80, 5))
    # Breached at 15 s and 20 s only (windows holding just 95s); resolved 20 s after the last.
    assert got == [(15, AlertState.FIRING), (40, AlertState.RESOLVED)]


async def test_no_data_alert_fires_after_the_timeout() -> None:
    r = rule(window_ms=10 * S, interval_ms=5 * S, no_data=NoDataPolicy.ALERT, no_data_timeout_ms=20 * S)
    values = {t: 10.0 for t in range(5, 25, 5)}
    got = await run_timeline(MemoryEventLog(), r, values, range(5, 70, 5))
    # Last sample at 19.999 s: the window [20, 30) of the 30 s evaluation is the first without
    # data; 20 s later the instance fires.
    assert got == [(50, AlertState.FIRING)]


async def test_a_rule_sees_only_its_own_tenants_series() -> None:
    log = MemoryEventLog()
    clock = [NOW]
    r = rule(window_ms=10 * S, interval_ms=5 * S, no_data=NoDataPolicy.ALERT, no_data_timeout_ms=10 * S)
    harness = Harness(log, {TENANT: [r], "other": [rule(window_ms=10 * S, interval_ms=5 * S)]}, clock)
    await harness.start()
    feed = Feed()
    # Only tenant "other" breaches; acme has no cpu series at all.
    for t in range(0, 30, 5):
        feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [NOW + t * S], values=[99.0], tenant="other")
    await append(log, feed)
    transitions = []
    for tick in range(5, 35, 5):
        transitions += await harness.at(NOW + tick * S)
    by_tenant = {(t.key.tenant, t.to_state, t.reason) for t in transitions}
    assert by_tenant == {("other", AlertState.FIRING, "breached"), ("acme", AlertState.FIRING, "no data")}
    assert math.isnan(harness.evaluator.values(TENANT, "r", NOW + 30 * S).get((), math.nan))


async def test_series_cap_stops_the_rule_with_a_clear_status() -> None:
    log = MemoryEventLog()
    clock = [NOW]
    harness = Harness(log, {TENANT: [rule(window_ms=10 * S, interval_ms=5 * S, threshold=0.0)]}, clock)
    harness.evaluator = AlertEvaluator(
        log=log,
        rules=lambda: {TENANT: [rule(window_ms=10 * S, interval_ms=5 * S, threshold=0.0)]},
        clock_ms=lambda: clock[0],
        max_series_per_rule=3,
    )
    harness.runner = ConsumerRunner(
        name="e",
        log=log,
        topic=SAMPLES_TOPIC,
        group=EVALUATOR_GROUP,
        handler=harness.evaluator,
        clock_ms=lambda: clock[0],
    )
    await harness.start()
    feed = Feed()
    for h in range(5):
        feed.add("cpu", MetricKind.GAUGE, {"host": f"h{h}"}, [NOW + S], values=[50.0])
    await append(log, feed)
    assert await harness.at(NOW + 5 * S) == []
    [status] = harness.evaluator.status()
    assert status.series == 3 and "more than 3 series" in status.error


# ------------------------------------------------------------------------------ restart


async def test_crash_and_restart_recreates_the_same_transition_ids() -> None:
    r = rule(window_ms=10 * S, for_ms=10 * S, interval_ms=5 * S, group_by=("host",), annotations={"s": "{{ value }}"})
    values = {t: (95.0 if 10 <= t <= 40 else 10.0) for t in range(5, 80, 5)}
    ticks = list(range(5, 80, 5))

    whole = MemoryEventLog()
    await run_timeline(whole, r, values, ticks)
    expected = await alert_events(whole)
    assert [e.to_state for _, e in expected] == [
        alerts_pb2.ALERT_STATE_PENDING,
        alerts_pb2.ALERT_STATE_FIRING,
        alerts_pb2.ALERT_STATE_RESOLVED,
    ]

    # Same timeline, the evaluator dies after the pending transition and a new one goes on.
    log = MemoryEventLog()
    clock = [NOW]
    feed = Feed()
    first = Harness(log, {TENANT: [r]}, clock)
    await first.start()
    for tick in ticks[:3]:
        fresh = len(feed.batches)
        for t, v in values.items():
            if (tick - 5) < t <= tick:
                feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [NOW + t * S - 1], values=[v])
        await append(log, feed, fresh)
        await first.at(NOW + tick * S)
    await first.runner.close()  # no final settle or commit: a crash
    second = Harness(log, {TENANT: [r]}, clock)
    await second.start()
    # Re-evaluating the last tick of the dead one re-creates what it appended: dropped.
    for tick in ticks[2:]:
        fresh = len(feed.batches)
        if tick != ticks[2]:
            for t, v in values.items():
                if (tick - 5) < t <= tick:
                    feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [NOW + t * S - 1], values=[v])
            await append(log, feed, fresh)
        await second.at(NOW + tick * S)
    got = await alert_events(log)
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [(e.sequence, e.to_state, e.evaluated_at_ms) for _, e in got] == [
        (e.sequence, e.to_state, e.evaluated_at_ms) for _, e in expected
    ]
    assert got[0][1].annotations["s"] == "95"


async def test_change_condition_compares_with_the_window_over_ms_earlier() -> None:
    log = MemoryEventLog()
    clock = [NOW]
    r = AlertRule(
        name="jump",
        query=RuleQuery(metric="cpu", agg="avg"),
        window_ms=10 * S,
        condition=Condition(op=ConditionOp.CHANGE, threshold=50.0, over_ms=10 * S),
        interval_ms=5 * S,
    )
    harness = Harness(log, {TENANT: [r]}, clock)
    await harness.start()
    feed = Feed()
    for t in range(0, 40, 5):
        feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [NOW + t * S], values=[95.0 if t >= 20 else 10.0])
    await append(log, feed)
    moves = []
    for tick in range(5, 45, 5):
        moves += [(tick, t.to_state) for t in await harness.at(NOW + tick * S)]
    # At 30 s: [20, 30) averages 95 against 10 over [10, 20). At 25 s and 35 s one window
    # straddles the jump (52.5): a change of 42.5, not over 50.
    assert moves == [(30, AlertState.FIRING), (35, AlertState.RESOLVED)]


async def test_without_rules_batches_are_not_parsed_and_a_new_rule_sees_new_samples() -> None:
    log = MemoryEventLog()
    clock = [NOW]
    rules: dict[str, list[AlertRule]] = {}
    harness = Harness(log, rules, clock)
    await harness.start()
    parsed = 0
    original = harness.evaluator.decode

    def counting(record: Any) -> events_pb2.SampleBatchAccepted:
        nonlocal parsed
        batch = original(record)
        parsed += bool(batch.series)
        return batch

    harness.evaluator.decode = counting  # type: ignore[method-assign]
    feed = Feed()
    feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [NOW - 1_000], values=[99.0])
    await append(log, feed)
    await harness.at(NOW)
    assert parsed == 0, "no rule watches anything: the batch is passed over unparsed"

    rules[TENANT] = [rule(window_ms=MINUTE, threshold=90.0)]
    later = NOW + 2 * MINUTE  # a rule added while running waits one window
    await harness.at(later)
    feed.add("cpu", MetricKind.GAUGE, {"host": "a"}, [later - 1_000], values=[99.0])
    await append(log, feed, start=1)
    await harness.at(later + 1_000)
    assert parsed == 1
    assert harness.evaluator.values(TENANT, "r", later + 1_000) == {(): 99.0}


# ------------------------------------------------------------------------------ vectorised parts


@pytest.mark.parametrize("op", list(ConditionOp))
def test_breached_mask_is_the_conditions_breached_for_every_value(op: ConditionOp) -> None:
    specials = [math.nan, math.inf, -math.inf, 0.0, -0.0, 90.0, 90.0000001, -5.0, 1e308, 150.0, 5e-324]
    pairs = [(v, e) for v in specials for e in [*specials, None]]
    condition = (
        Condition(op=op, threshold=90.0, low=-5.0, high=100.0, over_ms=S)
        if op
        in (
            ConditionOp.OUTSIDE,
            ConditionOp.INSIDE,
        )
        else Condition(
            op=op, threshold=90.0, over_ms=S if op in (ConditionOp.CHANGE, ConditionOp.PERCENT_CHANGE) else 0
        )
    )
    r = AlertRule(name="m", query=RuleQuery(metric="cpu", agg="avg"), window_ms=MINUTE, condition=condition)
    value = np.array([v for v, _ in pairs])
    earlier = np.array([math.nan if e is None else e for _, e in pairs])
    has = np.array([e is not None for _, e in pairs])
    got = breached_mask(r, value, earlier, has).tolist()
    assert got == [condition.breached(v, e) for v, e in pairs]
    assert any(got), "no value breaches: the comparison proves little"


async def test_a_rule_added_later_selects_series_already_seen_and_a_removed_one_gets_nothing() -> None:
    log = MemoryEventLog()
    clock = [NOW]
    rules: dict[str, list[AlertRule]] = {TENANT: [rule("a", agg="max", where=("host=a",))]}
    harness = Harness(log, rules, clock)
    await harness.start()
    feed = Feed()
    for host in ("a", "b"):
        feed.add("cpu", MetricKind.GAUGE, {"host": host}, [NOW - 1_000], values=[10.0 if host == "a" else 20.0])
    await append(log, feed)
    await harness.at(NOW)
    assert harness.evaluator.values(TENANT, "a", NOW) == {(): 10.0}

    later = NOW + 2 * MINUTE
    rules[TENANT] = [rule("b", agg="max", where=("host=b",), group_by=("host",))]
    await harness.at(later)
    for n, host in enumerate(("a", "b")):
        feed.add("cpu", MetricKind.GAUGE, {"host": host}, [later - 1_000 + n], values=[30.0 + n])
    await append(log, feed, start=2)
    await harness.at(later + 1_000)
    assert harness.evaluator.values(TENANT, "b", later + 1_000) == {(("host", "b"),): 31.0}
    assert [s.rule for s in harness.evaluator.status()] == ["b"]


async def test_many_groups_only_the_breaching_ones_move_and_the_rest_hold_no_state() -> None:
    log = MemoryEventLog()
    clock = [NOW]
    r = rule(agg="max", group_by=("host",), window_ms=10 * S)
    harness = Harness(log, {TENANT: [r]}, clock)
    await harness.start()
    feed = Feed()
    for h in range(50):
        feed.add("cpu", MetricKind.GAUGE, {"host": f"h{h}"}, [NOW - 1_000], values=[99.0 if h % 7 == 0 else 1.0])
    await append(log, feed)
    moves = await harness.at(NOW)
    assert sorted(dict(t.key.labels)["host"] for t in moves) == sorted(f"h{h}" for h in range(0, 50, 7))
    assert all(t.to_state is AlertState.FIRING for t in moves)
    assert harness.evaluator.instance_state(TENANT, "r", {"host": "h1"}).sequence == 0
    # The next tick after the breach has left the window: each fired instance resolves.
    moves = await harness.at(NOW + 20 * S)
    assert sorted(dict(t.key.labels)["host"] for t in moves) == sorted(f"h{h}" for h in range(0, 50, 7))
    assert all(t.to_state is AlertState.RESOLVED for t in moves)


# ------------------------------------------------------------------------------ on arrival


@pytest.mark.parametrize(
    ("agg", "op", "threshold", "breach"),
    [
        ("max", ConditionOp.ABOVE, 90.0, 95.25),
        ("max", ConditionOp.AT_OR_ABOVE, 95.25, 95.25),
        ("min", ConditionOp.BELOW, 10.0, 2.5),
    ],
)
async def test_a_decisive_breach_fires_on_arrival_with_the_query_engines_value(
    agg: str, op: ConditionOp, threshold: float, breach: float
) -> None:
    """max above / min below: a breaching sample decides the window, so the instance fires as
    the sample is applied, at that time, with the value /api/v1/query returns for
    [now - window, now); a `last` rule over the same samples waits for its tick."""
    rng = np.random.default_rng(7)
    feed = Feed()
    for h in range(3):
        ts = sorted(set(rng.integers(NOW - 30 * S, NOW, 8).tolist()))
        feed.add("cpu", MetricKind.GAUGE, {"host": f"h{h}"}, ts, values=(rng.integers(60, 340, len(ts)) / 4).tolist())
    log = MemoryEventLog()
    await append(log, feed)
    clock = [NOW]
    decided = rule("decided", agg=agg, op=op, threshold=threshold, group_by=("host",), interval_ms=S)
    last = rule("last", agg="last", op=op, threshold=threshold, group_by=("host",), interval_ms=S)
    harness = Harness(log, {TENANT: [decided, last]}, clock, on_arrival=True)
    await harness.start()
    harness.evaluator.start_evaluating()
    assert await harness.at(NOW) == []
    start = len(feed.batches)
    feed.add("cpu", MetricKind.GAUGE, {"host": "h1"}, [NOW + 300], values=[breach])
    feed.add("cpu", MetricKind.GAUGE, {"host": "h2"}, [NOW + 310], values=[50.0])
    await append(log, feed, start)
    arrived = NOW + 400
    clock[0] = arrived
    await harness.runner.catch_up(idle_timeout_s=0.01)  # applies; the tick NOW is done already
    events = [e for _, e in await alert_events(log)]
    assert [(e.rule, dict(e.instance_labels), e.to_state) for e in events] == [
        ("decided", {"host": "h1"}, alerts_pb2.ALERT_STATE_FIRING)
    ]
    assert events[0].evaluated_at_ms == arrived
    engine = await query_engine_over(feed, MINUTE, clock)
    # The window as the query API reads it from the 5 s tier: its buckets merged into one.
    result = await engine.query_window(
        QuerySpec(
            tenant=TENANT,
            metric="cpu",
            start_ms=arrived - MINUTE,
            end_ms=arrived,
            period="5s",
            agg=agg,
            group_by=("host",),
        )
    )
    expected = {dict(s.labels)["host"]: float(s.values[0]) for s in result.series}
    assert events[0].value == expected["h1"]
    # The next tick: the `last` rule fires now; the decided instance stays firing, unchanged.
    moves = await harness.at(NOW + S)
    assert [(t.key.rule, dict(t.key.labels)) for t in moves] == [("last", {"host": "h1"})]


async def test_on_arrival_waits_for_a_due_tick_and_is_off_by_default() -> None:
    """A breach applied while the rule's current tick is still due is evaluated by that tick
    (times never go back); an evaluator without evaluate_on_arrival (backtests) keeps the
    tick grid alone."""
    for on_arrival in (True, False):
        log = MemoryEventLog()
        clock = [NOW]
        r = rule(agg="max", group_by=("host",), window_ms=10 * S, interval_ms=S)
        harness = Harness(log, {TENANT: [r]}, clock, on_arrival=on_arrival)
        await harness.start()
        harness.evaluator.start_evaluating()
        feed = Feed()
        feed.add("cpu", MetricKind.GAUGE, {"host": "h0"}, [NOW - S], values=[1.0])
        await append(log, feed)
        await harness.at(NOW)
        feed.add("cpu", MetricKind.GAUGE, {"host": "h0"}, [NOW + 200], values=[99.0])
        await append(log, feed, 1)
        clock[0] = NOW + 300 if not on_arrival else NOW + 1_300  # off: not due; on: NOW + 1 s due
        await harness.runner.catch_up(idle_timeout_s=0.01)
        assert [e for _, e in await alert_events(log)] == []
        moves = await harness.evaluator.evaluate(NOW + 1_300)
        assert [(t.to_state, t.evaluated_at_ms) for t in moves] == [(AlertState.FIRING, NOW + S)]
