"""The streaming alert evaluator: samples topic -> rule windows in memory -> lifecycle
transitions on the alerts topic (docs/decisions/0024-streaming-alert-evaluation.md).

Guarantees:

- **Same number as the query API.** A rule's value at evaluation time `t` is its `agg` read
  off the merge (core/points semantics) of every point of its selected series in the window
  `[t - window, t)`, widened to whole steps like `planner.align`, per group_by combination:
  what `/api/v1/query` returns for that range on a tier whose step is the window (one
  bucket; `rate` is the sum per second of the window). Matchers are the query's
  (`planner.parse_matcher` / `compile_selector`, RE2), group_by is the query's
  (`validate_group_by`, `*` = every series apart).
- **Seen as soon as applied.** Samples are bucketed into the rule's windows as the runner
  applies them, not after the read models flush; each rule is evaluated every
  `interval_ms` at the tick `t = now - now % interval_ms` (the same ticks in every process).
- **Only what the rules need.** Per rule: the points of its selected series within
  `window + over_ms` (change conditions) before now, at a 5 s step (1 m for windows over
  5 min that are whole minutes, 1 s for windows that are not whole 5 s). At most
  `max_series_per_rule` series per rule: a rule over the cap is not evaluated and its status
  says so (its instances keep their state: no false resolve).
- **Tenants isolated.** A rule only sees series of batches of its own tenant.
- **Crash-safe, no duplicates.** Offsets are committed only up to the first record whose
  samples may still fall into a window, so a restart re-reads exactly the windows from the
  log; instance states are restored from their last transition on the alerts topic. Every
  transition's event id is SHA-256 over (tenant, rule, instance labels, sequence): the same
  transition re-created after a crash is dropped on append (embedded log) or by readers (ids).
  A transition is appended before the instance's state moves on: a failed append loses
  nothing, the next tick makes it again.
- Rules with windows of `MAX_STREAMING_WINDOW_MS` (1 h) or more are evaluated on the query
  engine instead (`RuleStatus.route == "query_engine"`, docs/decisions/0032): at each tick,
  one `QueryEngine.query_window` over `[t - window, t)` on the coarsest tier that keeps the
  window exact (`engine_tier_for`), so their value is the query API's number by
  construction. Without an engine (backtests) they are listed but not evaluated.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt

from contracts.argus.alerts.v1 import alerts_pb2
from contracts.argus.events.v1 import events_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.alerting.lifecycle import AlertState, InstanceKey, InstanceState, Transition, restore, step
from core.alerting.model import AlertRule, ConditionOp
from core.consumer import ConsumerRunner, Delivery
from core.errors import ArgusError
from core.events import ALERTS_TOPIC, SAMPLES_TOPIC, decode_record, make_event
from core.model import MetricKind, Tier
from core.points import Points, key_bounds, merge, read_agg
from core.ports import Event, EventLog, LogRecord
from core.samples import SampleBuffer, decode_sample_batch
from query_side.alerts.ownership import Ownership, rule_shard_key
from query_side.engine import QueryEngine
from query_side.planner import (
    REGION_LABEL,
    QuerySpec,
    Selector,
    align,
    compile_selector,
    parse_matcher,
    validate_agg,
    validate_group_by,
)

log = logging.getLogger(__name__)

RulesSource = Callable[[], Mapping[str, Sequence[AlertRule]]]
"""The current rules per tenant (the config view; tests pass them directly)."""

_NOTHING_WANTED: Final = events_pb2.SampleBatchAccepted()
"""What `decode` hands over while no rule watches anything (read-only: never mutated)."""
EVALUATOR_GROUP = "alert-evaluator"
ALERT_PARTITIONS = 4
"""Partitions the evaluator creates the alerts topic with (if it does not exist)."""
MAX_STREAMING_WINDOW_MS = 3_600_000
"""Rules whose window is this or longer are evaluated on the query engine (decision 0032)."""
ENGINE_MAX_WIDENING = 60
"""A tier whose step does not divide a query-engine rule's interval widens its window by up
to one step: allowed only for steps of at most window / this (the 1 m step of a 1 h window)."""
ENGINE_CONCURRENCY = 4
"""Query-engine rules queried at once (the engine's worker threads are shared with the API)."""
DEFAULT_MAX_SERIES_PER_RULE = 10_000
"""As many series as one query may match (planner.MAX_SERIES)."""

STREAMING = "streaming"
QUERY_ENGINE = "query_engine"

_STATE_TO_PROTO = {
    AlertState.INACTIVE: alerts_pb2.ALERT_STATE_INACTIVE,
    AlertState.PENDING: alerts_pb2.ALERT_STATE_PENDING,
    AlertState.FIRING: alerts_pb2.ALERT_STATE_FIRING,
    AlertState.RESOLVED: alerts_pb2.ALERT_STATE_RESOLVED,
}
_STATE_FROM_PROTO = {v: k for k, v in _STATE_TO_PROTO.items()}


def step_for(window_ms: int) -> int:
    """The bucket step a rule's window is kept at (see the module docstring)."""
    if window_ms > 300_000 and window_ms % 60_000 == 0:
        return 60_000
    if window_ms % 5_000 == 0:
        return 5_000
    return 1_000


def engine_tier_for(rule: AlertRule, tiers: Sequence[Tier]) -> Tier:
    """The tier a query-engine rule is read from: the coarsest whose step divides the window
    and either divides the interval too (every tick on a bucket boundary: the window is exact)
    or is at most window / ENGINE_MAX_WIDENING (widened by at most that much, like `align`);
    the finest tier when none does (e.g. a window of 3,601 s)."""
    window, interval = rule.window_ms, max(rule.interval_ms, 1)
    fitting = [
        t
        for t in tiers
        if window % t.step_ms == 0 and (interval % t.step_ms == 0 or t.step_ms * ENGINE_MAX_WIDENING <= window)
    ]
    if fitting:
        return max(fitting, key=lambda t: t.step_ms)
    return min(tiers, key=lambda t: t.step_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleStatus:
    """What the evaluator says about one rule (admin views, readiness)."""

    tenant: str
    rule: str
    route: str
    """`streaming` (windows in memory) or `query_engine` (window of 1 h or more: a query per
    tick, decision 0032)."""
    step_ms: int
    series: int
    instances: int
    last_evaluated_ms: int | None
    error: str = ""
    """Why the rule is not evaluated (over the series cap, an agg its metric has not, warming
    up); empty when it is."""


@dataclass(slots=True)
class _Watch:
    """One rule's state: its selected series, their points, its instances."""

    tenant: str
    rule: AlertRule
    selector: Selector
    group_by: tuple[str, ...] | None
    step_ms: int
    route: str
    ready_at_ms: int
    agg: str = ""
    error: str = ""
    over_cap: bool = False
    series: dict[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    """Selected series id -> its group's labels."""
    group_ids: dict[tuple[tuple[str, str], ...], int] = field(default_factory=dict)
    """Group labels -> a dense group id (in order of first selection)."""
    group_labels: list[tuple[tuple[str, str], ...]] = field(default_factory=list)
    lookup_sids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """The selected series ids, sorted, beside their group ids: a window's points are grouped
    with one `searchsorted`, not a dict look-up per point."""
    lookup_gids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    new_sids: list[int] = field(default_factory=list)
    new_gids: list[int] = field(default_factory=list)
    born: int = 0
    """Its place in the order watches were made (`_select` tests a series it has seen against
    the watches born since only)."""
    removed: bool = False
    parts: list[Points] = field(default_factory=list)
    instances: dict[tuple[tuple[str, str], ...], InstanceState] = field(default_factory=dict)
    last_tick_ms: int | None = None
    standby_tick_ms: int | None = None
    """The last tick its window was trimmed at while another replica owned it."""
    query_error: str = ""
    """Why the last query of a query-engine rule failed (empty once one succeeds)."""

    @property
    def horizon_ms(self) -> int:
        return self.rule.window_ms + self.rule.condition.over_ms + self.step_ms

    def select(self, sid: int, labels: tuple[tuple[str, str], ...]) -> None:
        """Watch series `sid`, an instance of group `labels`."""
        self.series[sid] = labels
        gid = self.group_ids.get(labels)
        if gid is None:
            gid = self.group_ids[labels] = len(self.group_labels)
            self.group_labels.append(labels)
        self.new_sids.append(sid)
        self.new_gids.append(gid)

    def group_of(self, sids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The group id of each of `sids` (all selected)."""
        if self.new_sids:
            all_sids = np.concatenate([self.lookup_sids, np.array(self.new_sids, dtype=np.int64)])
            all_gids = np.concatenate([self.lookup_gids, np.array(self.new_gids, dtype=np.int64)])
            order = np.argsort(all_sids, kind="stable")
            self.lookup_sids, self.lookup_gids = all_sids[order], all_gids[order]
            self.new_sids, self.new_gids = [], []
        return self.lookup_gids[np.searchsorted(self.lookup_sids, sids)]


_NO_GROUPS: Final = np.zeros(0, dtype=np.int64)
_NO_VALUES: Final = np.zeros(0, dtype=np.float64)
_GroupValues = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""A rule's values over a window: the group ids present (a watch's `group_labels` index)
and each one's value."""

_Made = tuple[_Watch, tuple[tuple[str, str], ...], InstanceState, Transition]
"""A transition made by an evaluation, with the instance's state after it."""


def _watch(tenant: str, rule: AlertRule, *, ready_at_ms: int) -> _Watch:
    window = rule.window_ms
    route = STREAMING if window < MAX_STREAMING_WINDOW_MS else QUERY_ENGINE
    error = ""
    selector = Selector()
    group_by: tuple[str, ...] | None = ()
    try:
        selector = compile_selector([parse_matcher(w) for w in rule.query.where], region=rule.query.region or None)
        group_by = validate_group_by(rule.query.group_by)
    except ArgusError as exc:
        error = str(exc)
    return _Watch(
        tenant=tenant,
        rule=rule,
        selector=selector,
        group_by=group_by,
        step_ms=step_for(window),
        route=route,
        ready_at_ms=ready_at_ms,
        error=error,
    )


class AlertEvaluator:
    """A ConsumerHandler of the samples topic (core/consumer.py) that evaluates alert rules.

    Drive it with a ConsumerRunner (group EVALUATOR_GROUP): `catch_up` first, then
    `start_evaluating()`, then `run` (its `housekeeping` evaluates due rules). Or call
    `evaluate(now_ms)` directly (tests, backtests)."""

    def __init__(
        self,
        *,
        log: EventLog,
        rules: RulesSource,
        clock_ms: Callable[[], int],
        max_series_per_rule: int = DEFAULT_MAX_SERIES_PER_RULE,
        alert_partitions: int = ALERT_PARTITIONS,
        ownership: Ownership | None = None,
        engine: QueryEngine | None = None,
        evaluate_on_arrival: bool = False,
    ) -> None:
        self._log = log
        self._on_arrival = evaluate_on_arrival
        """Evaluate rules whose breach a new sample decides at once (`_evaluate_arrivals`,
        decision 0055) instead of at the next tick only; the service turns it on, backtests
        keep the tick grid alone."""
        self._ownership = ownership
        """Which rules this replica evaluates (None: all of them): query_side/alerts/ownership.py."""
        self._ownership_generation = -1
        self._owned: set[tuple[str, str]] = set()
        self._engine = engine
        self._engine_task: asyncio.Task[list[Transition]] | None = None
        self._rules = rules
        self._clock = clock_ms
        self._max_series = max_series_per_rule
        self._alert_partitions = alert_partitions
        self._watches: dict[tuple[str, str], _Watch] = {}
        self._by_metric: dict[tuple[str, str], list[_Watch]] = {}
        self._born = 0
        self._selected: dict[int, tuple[int, tuple[_Watch, ...]]] = {}
        """Series id -> (the last watch born when it was selected, the watches selecting it):
        a series already seen costs one look-up, not one per rule of its metric, and the
        series a rule does not select are not held per rule."""
        self._restored: dict[tuple[str, str], dict[tuple[tuple[str, str], ...], InstanceState]] = {}
        self._started = False
        self._evaluating = False
        # Per partition: (offset, newest sample ts) of applied records that may still be
        # needed, and the next offset after the last one applied or skipped.
        self._held: dict[int, list[tuple[int, int]]] = {}
        self._next: dict[int, int] = {}
        self._seen: dict[bytes, int] = {}
        self._partition_of: dict[int, int] = {}
        self.transitions_appended = 0
        self.duplicates_dropped = 0

    # -- start ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the alerts topic if needed and restore every instance's state from its last
        transition there. Call before consuming."""
        self._alert_partitions = await self._log.ensure_topic(ALERTS_TOPIC, self._alert_partitions)
        self._restored = await self._read_restored()
        self._started = True
        self._refresh_rules(self._clock(), initial=True)

    async def _read_restored(
        self,
    ) -> dict[tuple[str, str], dict[tuple[tuple[str, str], ...], InstanceState]]:
        """Every instance's state as its last transition on the alerts topic has it."""
        last: dict[str, Transition] = {}
        for partition in range(self._alert_partitions):
            offset = 0
            while records := await self._log.read(ALERTS_TOPIC, partition, offset, 1000):
                for record in records:
                    transition = _read_transition(record)
                    if transition is None:
                        continue
                    instance = transition.key.instance_id
                    held = last.get(instance)
                    if held is None or held.sequence < transition.sequence:
                        last[instance] = transition
                offset = records[-1].offset + 1
        restored: dict[tuple[str, str], dict[tuple[tuple[str, str], ...], InstanceState]] = {}
        for transition in last.values():
            key = transition.key
            restored.setdefault((key.tenant, key.rule), {})[key.labels] = restore(transition)
        return restored

    def _owns(self, watch: _Watch) -> bool:
        return self._ownership is None or self._ownership.owns_key(rule_shard_key(watch.tenant, watch.rule.name))

    async def _follow_ownership(self) -> None:
        """After the shards moved: rules this replica just took over continue from the last
        transitions their previous owner appended (re-read from the alerts topic)."""
        ownership = self._ownership
        if ownership is None or ownership.generation == self._ownership_generation:
            return
        self._ownership_generation = ownership.generation
        owned = {key for key, watch in self._watches.items() if self._owns(watch)}
        gained = owned - self._owned
        self._owned = owned
        if gained:
            self._restored = await self._read_restored()
            for key in gained:
                self._watches[key].instances = dict(self._restored.get(key, {}))
            log.info("alert rules taken over: %d", len(gained))

    def start_evaluating(self) -> None:
        """From now on `housekeeping` evaluates due rules (call once caught up with the log)."""
        self._evaluating = True

    # -- rules ----------------------------------------------------------------------------

    def _refresh_rules(self, now_ms: int, *, initial: bool = False) -> None:
        current = self._rules()
        wanted: dict[tuple[str, str], AlertRule] = {
            (tenant, rule.name): rule for tenant, rules in current.items() for rule in rules
        }
        changed = False
        for key in [k for k in self._watches if k not in wanted]:
            self._watches.pop(key).removed = True
            changed = True
        for key, rule in wanted.items():
            held = self._watches.get(key)
            if held is not None and held.rule == rule:
                continue
            # A rule that appears (or changes) after start has no history: it waits a window.
            # The query engine's rules read the read models' history: at once.
            ready = now_ms if initial else now_ms + rule.window_ms + rule.condition.over_ms
            watch = _watch(key[0], rule, ready_at_ms=ready)
            if watch.route == QUERY_ENGINE:
                watch.ready_at_ms = now_ms
                if self._engine is None and not watch.error:
                    watch.error = "window of 1 h or more: evaluated on the query engine, not here"
                elif self._engine is not None:
                    watch.step_ms = engine_tier_for(rule, self._engine.tiers).step_ms
            self._born += 1
            watch.born = self._born
            if held is not None:
                held.removed = True
                watch.instances = held.instances
            else:
                watch.instances = dict(self._restored.get(key, {}))
            self._watches[key] = watch
            changed = True
        if changed:
            self._by_metric = {}
            for watch in self._watches.values():
                if watch.route == STREAMING:
                    self._by_metric.setdefault((watch.tenant, watch.rule.query.metric), []).append(watch)
            for watches in self._by_metric.values():
                watches.sort(key=lambda w: w.born)

    # -- ConsumerHandler ------------------------------------------------------------------

    def decode(self, record: LogRecord) -> events_pb2.SampleBatchAccepted:
        if self._started and not self._by_metric:
            # No streaming rule wants any sample: skip the parse (every batch passes through
            # here, rules or not). A rule added later waits a window anyway.
            return _NOTHING_WANTED
        return decode_sample_batch(record)

    async def apply(self, deliveries: Sequence[Delivery[events_pb2.SampleBatchAccepted]]) -> None:
        if not self._started:
            await self.start()
        now_ms = self._clock()
        horizon = self._horizon_ms()
        buffer = SampleBuffer()
        # Per watch (by id): the watch and the series ids of these deliveries it selects.
        wanted: dict[int, tuple[_Watch, list[int]]] = {}
        picked: list[int] = []
        selected = self._selected
        for delivery in deliveries:
            record, batch = delivery.record, delivery.value
            partition, offset = record.partition, record.offset
            self._next[partition] = offset + 1
            event_id = record.event.event_id
            if event_id in self._seen:
                self.duplicates_dropped += 1
                continue
            # The whole batch, columnar (decision 0055); rows of series no rule selects are
            # masked out below, rows older than every window are dropped per watch.
            newest = buffer.add(batch, partition, offset)
            if newest < now_ms - horizon:
                continue  # nothing of it can fall into a window any more
            self._seen[event_id] = newest
            self._held.setdefault(partition, []).append((offset, newest))
            born, tenant = self._born, batch.tenant
            for n, sid in enumerate(batch.series_ids):
                held = selected.get(sid)
                if held is not None and held[0] == born:
                    watches = held[1]
                else:
                    watches = self._select(tenant, sid, batch.series[n])
                if watches:
                    picked.append(sid)
                    for watch in watches:
                        wanted.setdefault(id(watch), (watch, []))[1].append(sid)
                    self._partition_of[sid] = partition
        columns = buffer.drain()
        if not wanted:
            return
        keep_sids = np.unique(np.array(picked, dtype=np.int64))
        by_step: dict[int, Points] = {}
        steps = {w.step_ms for w, _ in wanted.values()}
        for family in columns:
            mask = np.isin(family.key, keep_sids)
            if not mask.any():
                continue
            for step_ms in steps:
                points = family.to_points(None if mask.all() else mask, step_ms)
                by_step[step_ms] = merge(by_step[step_ms], points) if step_ms in by_step else points
        arrived: list[tuple[_Watch, Points]] = []
        for step_ms, points in by_step.items():
            group = [(w, sids) for w, sids in wanted.values() if w.step_ms == step_ms]
            parts = self._distribute(points, group, now_ms)
            arrived += [(w, part) for (w, _), part in zip(group, parts, strict=True) if len(part)]
        if self._on_arrival and self._evaluating and arrived:
            await self._evaluate_arrivals(arrived, now_ms)

    async def _evaluate_arrivals(self, arrived: list[tuple[_Watch, Points]], now_ms: int) -> None:
        """Evaluate at `now_ms`, as soon as they are applied, the instances that new points
        make breach a rule whose breach no later sample of the window can undo: `max` above
        (or at or above) a threshold, `min` below (or at or below), no change condition.
        More points in a window only raise its max (lower its min), so a breaching point
        decides the instance's value breaches, and the value is that of the window
        [now - window, now) as the query API returns it now. Only breaching instances not
        already firing are stepped (nothing else can move on a breach); no data, recovery
        and resolve stay with the tick. Only once the rule's current tick has been evaluated
        (times only move forward), and only for the rules this replica owns."""
        if self._ownership is not None and self._ownership.generation != self._ownership_generation:
            return  # shards moved: the tick first restores what was taken over (_follow_ownership)
        made: list[_Made] = []
        for watch, part in arrived:
            rule = watch.rule
            interval = max(rule.interval_ms, 1)
            if (
                not _decided_on_arrival(watch)
                or watch.last_tick_ms is None
                or now_ms - now_ms % interval > watch.last_tick_ms
                or now_ms < watch.ready_at_ms
                or not self._owns(watch)
            ):
                continue
            lo, hi = align(now_ms - rule.window_ms, now_ms, watch.step_ms)
            column = part.max if watch.agg == "max" else part.min
            none = np.zeros(len(part), dtype=np.bool_)
            hit = (part.ts >= lo) & (part.ts < hi) & breached_mask(rule, column, column, none)
            if not hit.any():
                continue
            groups = np.unique(watch.group_of(part.key[hit]))
            gids, vals = self._window(watch, now_ms - rule.window_ms, now_ms, groups=groups)
            for g, value in zip(gids.tolist(), vals.tolist(), strict=True):
                labels = watch.group_labels[g]
                state = watch.instances.get(labels, InstanceState())
                if state.state is AlertState.FIRING:
                    continue
                key = InstanceKey(tenant=watch.tenant, rule=rule.name, labels=labels)
                new, transition = step(rule, key, state, value=value, now_ms=now_ms)
                if transition is not None:
                    made.append((watch, labels, new, transition))
                elif new != state:
                    watch.instances[labels] = new
        if made:
            await self._record(made, [])

    def _distribute(self, points: Points, wanted: list[tuple[_Watch, list[int]]], now_ms: int) -> list[Points]:
        """Append to each watch the rows of `points` of the series it selects (in (series, ts)
        order) that are within its horizon: one search of every (watch, series) pair in the
        points' keys and one take, then a slice per watch (a search and a take per watch
        cost ~0.3 ms each, 0.3 s a turn with 1,000 rules). Returns each watch's new rows."""
        if not wanted:
            return []
        keys, offsets = key_bounds(points)
        sizes = [len(sids) for _, sids in wanted]
        pair_sid = np.concatenate([np.array(sids, dtype=np.int64) for _, sids in wanted])
        pair_watch = np.repeat(np.arange(len(wanted), dtype=np.int64), sizes)
        # (watch, series) pairs in order, each once (a series may come in several records).
        order = np.lexsort((pair_sid, pair_watch))
        pair_sid, pair_watch = pair_sid[order], pair_watch[order]
        first = np.ones(len(pair_sid), dtype=np.bool_)
        first[1:] = (pair_sid[1:] != pair_sid[:-1]) | (pair_watch[1:] != pair_watch[:-1])
        pair_sid, pair_watch = pair_sid[first], pair_watch[first]
        at = np.searchsorted(keys, pair_sid)
        found = at < len(keys)
        found[found] = keys[at[found]] == pair_sid[found]
        at, pair_watch = at[found], pair_watch[found]
        starts, ends = offsets[at], offsets[at + 1]
        rows = _ranges(starts, ends)
        row_watch = np.repeat(pair_watch, ends - starts)
        horizons = np.array([w.horizon_ms for w, _ in wanted], dtype=np.int64)
        inside = points.ts[rows] >= now_ms - horizons[row_watch]
        rows, row_watch = rows[inside], row_watch[inside]
        taken = points.take(rows)
        bounds = np.searchsorted(row_watch, np.arange(len(wanted) + 1, dtype=np.int64)).tolist()
        out = []
        for n, (watch, _) in enumerate(wanted):
            lo, hi = bounds[n], bounds[n + 1]
            part = taken.take(slice(lo, hi)) if hi > lo else Points.empty()
            if hi > lo:
                watch.parts.append(part)
            out.append(part)
        return out

    def _select(self, tenant: str, sid: int, series: metrics_pb2.SeriesSamples) -> tuple[_Watch, ...]:
        """The streaming rules of `tenant` that watch this series (selecting it on first sight
        by each rule: a rule that did not select it never does, as the rule cannot change
        without becoming a new watch)."""
        held = self._selected.get(sid)
        if held is not None and held[0] == self._born:
            return held[1]
        metric: str = series.metric
        watches = self._by_metric.get((tenant, metric))
        if not watches:
            return ()
        out: list[_Watch] = []
        seen_up_to = -1
        if held is not None:
            seen_up_to = held[0]
            out = [w for w in held[1] if not w.removed]
            watches = watches[bisect.bisect_right(watches, seen_up_to, key=lambda w: w.born) :]
        labels: dict[str, str] | None = None
        for watch in watches:
            if sid in watch.series:
                out.append(watch)
                continue
            if watch.over_cap:
                continue
            if labels is None:
                labels = {label.name: label.value for label in series.labels}
                labels[REGION_LABEL] = series.region
            if not watch.selector.matches(labels):
                continue
            if len(watch.series) >= self._max_series:
                watch.over_cap = True
                watch.error = (
                    f"rule {watch.rule.name} selects more than {self._max_series:,} series of "
                    f"{metric}; it is not evaluated (narrow it with where= matchers or a region)"
                )
                log.warning("alert rule over its series cap", extra={"tenant": tenant, "rule": watch.rule.name})
                continue
            if not watch.series and not watch.error:
                kind = int(series.kind)
                try:
                    watch.agg = validate_agg(watch.rule.query.agg, MetricKind(kind))
                except (ArgusError, ValueError) as exc:
                    watch.error = str(exc)
            watch.select(sid, _group_of(labels, watch.group_by))
            out.append(watch)
        selected = tuple(out)
        self._selected[sid] = (self._born, selected)
        return selected

    def _horizon_ms(self) -> int:
        """How far back samples may still fall into a streaming rule's window. The
        query-engine rules read the read models: their windows hold nothing back."""
        return max((w.horizon_ms for w in self._watches.values() if w.route == STREAMING), default=0)

    def skip(self, partition: int, offset: int) -> None:
        self._next[partition] = offset + 1

    def buffer_full(self) -> bool:
        return False

    async def settle(self, *, force: bool) -> Mapping[int, int]:
        """Per partition, the first offset whose samples may still be in a window (all after
        it are re-read after a restart), else the next offset: what is safe to commit."""
        now_ms = self._clock()
        horizon = self._horizon_ms()
        out: dict[int, int] = {}
        for partition, next_offset in self._next.items():
            held = [(o, ts) for o, ts in self._held.get(partition, []) if ts >= now_ms - horizon]
            self._held[partition] = held
            out[partition] = held[0][0] if held else next_offset
        self._seen = {e: ts for e, ts in self._seen.items() if ts >= now_ms - horizon}
        return out

    def reset(self) -> None:
        for watch in self._watches.values():
            watch.parts = []
        self._held, self._next, self._seen = {}, {}, {}

    async def reassigned(self, partitions: frozenset[int]) -> None:
        if self._ownership is not None and partitions and len(partitions) < await self._log.partitions(SAMPLES_TOPIC):
            # Each replica must read every samples partition (decision 0030): another member
            # in this group means two replicas share a name, and windows would be partial.
            log.error(
                "the alert evaluator was given samples partitions %s only: another replica uses the same "
                "--replica name; rule values would be partial",
                sorted(partitions),
            )
        lost = {sid for sid, p in self._partition_of.items() if p not in partitions}
        if lost:
            drop = np.fromiter(lost, dtype=np.int64, count=len(lost))
            for watch in self._watches.values():
                watch.parts = [p.take(~np.isin(p.key, drop)) for p in watch.parts]
        for partition in [p for p in self._next if p not in partitions]:
            del self._next[partition]
            self._held.pop(partition, None)

    async def housekeeping(self) -> None:
        if self._evaluating:
            await self.evaluate(self._clock(), engine_in_background=True)

    async def engine_done(self) -> list[Transition]:
        """Wait for the background query-engine evaluation, if any: its transitions."""
        task = self._engine_task
        return await asyncio.shield(task) if task is not None else []

    async def aclose(self) -> None:
        """Stop a query-engine evaluation still running in the background (service stop)."""
        task, self._engine_task = self._engine_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- evaluation -----------------------------------------------------------------------

    async def evaluate(self, now_ms: int, *, engine_in_background: bool = False) -> list[Transition]:
        """Evaluate every rule due at `now_ms` (at its tick `now - now % interval`) and append
        the transitions to the alerts topic. Returns them (appended or already there).

        `engine_in_background` (the service loop): the query-engine rules are evaluated in a
        task of their own (one at a time; a turn while it runs starts none), so a slow query
        never holds up the runner, i.e. the streaming rules; their transitions are then not
        in the result."""
        if not self._started:
            await self.start()
        self._refresh_rules(now_ms)
        await self._follow_ownership()
        made: list[_Made] = []
        evaluated: list[tuple[_Watch, int]] = []
        for watch in self._watches.values():
            interval = max(watch.rule.interval_ms, 1)
            tick = now_ms - now_ms % interval
            if not self._owns(watch):
                # Another replica's shard: its window is kept here for a takeover, and
                # trimmed at the rule's ticks as the owner's is.
                if watch.standby_tick_ms is None or tick > watch.standby_tick_ms:
                    watch.standby_tick_ms = tick
                    self._compact(watch, tick)
                continue
            if watch.last_tick_ms is not None and tick <= watch.last_tick_ms:
                continue
            if watch.route != STREAMING or watch.error or tick < watch.ready_at_ms:
                continue
            made.extend(self._evaluate_rule(watch, tick))
            evaluated.append((watch, tick))
        out = await self._record(made, evaluated)
        if self._engine is not None:
            # After the streaming rules' transitions are out: a query never delays them.
            if not engine_in_background:
                out += await self._evaluate_on_engine(self._engine, now_ms)
            elif self._engine_task is None or self._engine_task.done():
                self._engine_task = asyncio.create_task(
                    self._evaluate_on_engine(self._engine, now_ms), name="alert-engine-rules"
                )
                self._engine_task.add_done_callback(_log_failure)
        return out

    async def _record(self, made: list[_Made], evaluated: list[tuple[_Watch, int]]) -> list[Transition]:
        """Append `made` to the alerts topic, then move the instances and ticks on."""
        if made:
            events = [self._event(watch, transition) for watch, _, _, transition in made]
            result = await self._log.append(ALERTS_TOPIC, events)
            self.transitions_appended += len(events) - result.duplicates
        # Only now (durable) do the instances and ticks move on: a failed append is retried.
        for watch, labels, state, _ in made:
            watch.instances[labels] = state
        for watch, tick in evaluated:
            watch.last_tick_ms = tick
        return [t for _, _, _, t in made]

    def positions(self) -> dict[int, int]:
        """Per partition, the next offset after the last record applied or skipped."""
        return dict(self._next)

    def values(self, tenant: str, rule: str, now_ms: int) -> dict[tuple[tuple[str, str], ...], float]:
        """The rule's value per instance over [now - window, now): what `evaluate` compares."""
        watch = self._watches[(tenant, rule)]
        gids, vals = self._window(watch, now_ms - watch.rule.window_ms, now_ms)
        return {watch.group_labels[g]: v for g, v in zip(gids.tolist(), vals.tolist(), strict=True)}

    def _evaluate_rule(self, watch: _Watch, tick: int) -> list[_Made]:
        """The rule's window values as arrays per group id; only the instances `step` could
        move are stepped in Python: those with a state, and the groups whose value breaches
        or is NaN. A group without a state whose value does not breach stays inactive
        without a transition (what `step` returns for it), so skipping it is exact."""
        rule = watch.rule
        self._compact(watch, tick)
        gids, vals = self._window(watch, tick - rule.window_ms, tick)
        over = rule.condition.over_ms
        n = len(watch.group_labels)
        value = np.full(n, np.nan)
        value[gids] = vals
        present = np.zeros(n, dtype=np.bool_)
        present[gids] = True
        before = np.full(n, np.nan)
        has_before = np.zeros(n, dtype=np.bool_)
        if over > 0:
            egids, evals = self._window(watch, tick - over - rule.window_ms, tick - over)
            before[egids] = evals
            has_before[egids] = True
        movable = present & (np.isnan(value) | breached_mask(rule, value, before, has_before))
        current: dict[tuple[tuple[str, str], ...], float] = {}
        earlier: dict[tuple[tuple[str, str], ...], float] = {}
        labels_of = watch.group_labels
        for g in np.flatnonzero(movable).tolist():
            current[labels_of[g]] = float(value[g])
        for labels in watch.instances:
            known = watch.group_ids.get(labels)
            if known is not None and present[known]:
                current[labels] = float(value[known])
        for labels in current:
            g = watch.group_ids[labels]
            if has_before[g]:
                earlier[labels] = float(before[g])
        return self._step_instances(watch, tick, current, earlier)

    async def _evaluate_on_engine(self, engine: QueryEngine, now_ms: int) -> list[Transition]:
        """Evaluate the due query-engine rules: one window query each (two with a change
        condition), at most ENGINE_CONCURRENCY at once. A failed query (limits, a timeout,
        the store away) skips that tick, logs, and shows in the rule's status."""
        due = []
        for watch in self._watches.values():
            # Another replica's rule is its to query (decision 0030).
            if watch.route != QUERY_ENGINE or watch.error or not self._owns(watch):
                continue
            tick = now_ms - now_ms % max(watch.rule.interval_ms, 1)
            if watch.last_tick_ms is None or tick > watch.last_tick_ms:
                due.append((watch, tick))
        if not due:
            return []
        gate = asyncio.Semaphore(ENGINE_CONCURRENCY)

        async def one(watch: _Watch, tick: int) -> list[_Made]:
            rule, over = watch.rule, watch.rule.condition.over_ms
            async with gate:
                try:
                    current = await self._engine_values(engine, watch, tick - rule.window_ms, tick)
                    earlier = (
                        await self._engine_values(engine, watch, tick - over - rule.window_ms, tick - over)
                        if over > 0
                        else {}
                    )
                except ArgusError as exc:
                    if str(exc) != watch.query_error:
                        log.warning(
                            "alert rule query failed: %s", exc, extra={"tenant": watch.tenant, "rule": rule.name}
                        )
                    watch.query_error = str(exc)
                    return []
            watch.query_error = ""
            return self._step_instances(watch, tick, current, earlier)

        results = await asyncio.gather(*(one(watch, tick) for watch, tick in due))
        return await self._record([m for r in results for m in r], due)

    async def _engine_values(
        self, engine: QueryEngine, watch: _Watch, start_ms: int, end_ms: int
    ) -> dict[tuple[tuple[str, str], ...], float]:
        """Per group: the query engine's value of `[start, end)` as one bucket."""
        query = watch.rule.query
        result = await engine.query_window(
            QuerySpec(
                tenant=watch.tenant,
                metric=query.metric,
                start_ms=start_ms,
                end_ms=end_ms,
                period=engine_tier_for(watch.rule, engine.tiers).name,
                agg=query.agg or None,
                matchers=tuple(parse_matcher(w) for w in query.where),
                group_by=query.group_by,
                region=query.region or None,
            )
        )
        out: dict[tuple[tuple[str, str], ...], float] = {}
        for series in result.series:
            if watch.group_by is None:
                labels = tuple(sorted(series.labels.items()))
            else:
                labels = _group_of(series.labels, watch.group_by)
            out[labels] = float(series.values[0])
        return out

    def _step_instances(
        self,
        watch: _Watch,
        tick: int,
        current: Mapping[tuple[tuple[str, str], ...], float],
        earlier: Mapping[tuple[tuple[str, str], ...], float],
    ) -> list[_Made]:
        """Step every instance (those known and those with a value now) through the lifecycle."""
        rule = watch.rule
        instances = set(watch.instances) | set(current)
        if watch.group_by == ():
            instances.add(())
        out = []
        for labels in sorted(instances):
            state = watch.instances.get(labels, InstanceState())
            key = InstanceKey(tenant=watch.tenant, rule=rule.name, labels=labels)
            new, transition = step(
                rule, key, state, value=current.get(labels), now_ms=tick, earlier=earlier.get(labels)
            )
            if transition is not None:
                out.append((watch, labels, new, transition))
            elif new != state:
                watch.instances[labels] = new
            elif labels not in current and new.sequence == 0 and labels != ():
                watch.instances.pop(labels, None)  # never transitioned and gone: forget it
        return out

    def _compact(self, watch: _Watch, tick: int) -> None:
        """Merge the rule's parts into one and drop points older than its horizon."""
        if not watch.parts:
            return
        points = merge(*watch.parts)
        keep = points.ts >= tick - watch.horizon_ms
        watch.parts = [points if keep.all() else points.take(keep)]

    def _window(
        self, watch: _Watch, start_ms: int, end_ms: int, *, groups: npt.NDArray[np.int64] | None = None
    ) -> _GroupValues:
        """(group ids, values): `agg` of the merge of every point in [start, end) widened to
        steps, per group present. One pass of numpy: the points' group ids by a search of
        the sorted series ids, then one `merge` of the points re-keyed by (dense) group into
        one bucket: rows are combined in their (series, ts) order as before, so the values
        are those of the query engine, `sum` rounding included. `groups` (sorted group ids):
        those groups only (their series' rows, the same rows in the same order)."""
        if not watch.parts or watch.error:
            return _NO_GROUPS, _NO_VALUES
        lo, hi = align(start_ms, end_ms, watch.step_ms)
        parts = watch.parts
        if groups is not None:
            watch.group_of(_NO_GROUPS)  # folds in newly selected series
            sids = watch.lookup_sids[np.isin(watch.lookup_gids, groups)]
            parts = [p.take(np.isin(p.key, sids)) for p in parts]
        points = parts[0] if len(parts) == 1 else merge(*parts)
        inside = points.take((points.ts >= lo) & (points.ts < hi))
        if len(inside) == 0:
            return _NO_GROUPS, _NO_VALUES
        present, dense = np.unique(watch.group_of(inside.key), return_inverse=True)
        rows = inside.with_key(dense.reshape(-1).astype(np.int64, copy=False))
        collapsed = merge(replace(rows, ts=np.full(len(inside), lo, dtype=np.int64)))
        values = read_agg(collapsed, watch.agg, hi - lo)
        return present[collapsed.key].astype(np.int64, copy=False), values

    def _event(self, watch: _Watch, transition: Transition) -> tuple[int, Event]:
        rule = watch.rule
        key = transition.key
        instance_id = key.instance_id
        labels = dict(key.labels)
        message = alerts_pb2.AlertStateChanged(
            tenant=key.tenant,
            rule=key.rule,
            instance_labels=labels,
            from_state=_STATE_TO_PROTO[transition.from_state],
            to_state=_STATE_TO_PROTO[transition.to_state],
            value=transition.value,
            evaluated_at_ms=transition.evaluated_at_ms,
            since_ms=transition.since_ms,
            reason=transition.reason,
            sequence=transition.sequence,
            annotations={
                name: render(template, rule=rule, labels=labels, value=transition.value)
                for name, template in rule.annotations.items()
            },
            rule_labels=dict(rule.labels),
            severity=rule.severity,
            instance_id=instance_id,
        )
        event = make_event(
            message,
            identity=transition.event_id_identity,
            partition_key=bytes.fromhex(instance_id),
            time_ms=transition.evaluated_at_ms,
        )
        partition = int.from_bytes(bytes.fromhex(instance_id)[:8], "big") % self._alert_partitions
        return partition, event

    # -- status ---------------------------------------------------------------------------

    def status(self) -> list[RuleStatus]:
        now_ms = self._clock()
        out = []
        for (tenant, name), watch in sorted(self._watches.items()):
            error = watch.error or watch.query_error
            if not error and now_ms < watch.ready_at_ms:
                error = "warming up: a rule added after start waits one window before it is evaluated"
            out.append(
                RuleStatus(
                    tenant=tenant,
                    rule=name,
                    route=watch.route,
                    step_ms=watch.step_ms,
                    series=len(watch.series),
                    instances=len(watch.instances),
                    last_evaluated_ms=watch.last_tick_ms,
                    error=error,
                )
            )
        return out

    def instance_state(self, tenant: str, rule: str, labels: Mapping[str, str] | None = None) -> InstanceState:
        watch = self._watches[(tenant, rule)]
        return watch.instances.get(tuple(sorted((labels or {}).items())), InstanceState())


def _log_failure(task: asyncio.Task[list[Transition]]) -> None:
    """A background query-engine evaluation that failed (e.g. its append): logged; the next
    turn evaluates the same ticks again (their instances and ticks did not move on)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("evaluating the query-engine alert rules failed: %r", exc)


def _ranges(starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The indexes of every [start, end) range, one after another."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return _NO_GROUPS
    firsts = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return firsts + np.arange(total, dtype=np.int64)


def _decided_on_arrival(watch: _Watch) -> bool:
    """Whether a breaching point decides the rule's breach for its whole window (see
    `_evaluate_arrivals`)."""
    c = watch.rule.condition
    if watch.error or watch.route != STREAMING or c.over_ms > 0:
        return False
    if watch.agg == "max":
        return c.op in (ConditionOp.ABOVE, ConditionOp.AT_OR_ABOVE)
    if watch.agg == "min":
        return c.op in (ConditionOp.BELOW, ConditionOp.AT_OR_BELOW)
    return False


def breached_mask(
    rule: AlertRule,
    value: npt.NDArray[np.float64],
    earlier: npt.NDArray[np.float64],
    has_earlier: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """`rule.condition.breached` of each value at once (the same IEEE comparisons; NaN never
    breaches; `has_earlier` false is an earlier of None)."""
    c = rule.condition
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        match c.op:
            case ConditionOp.ABOVE:
                out = value > c.threshold
            case ConditionOp.AT_OR_ABOVE:
                out = value >= c.threshold
            case ConditionOp.BELOW:
                out = value < c.threshold
            case ConditionOp.AT_OR_BELOW:
                out = value <= c.threshold
            case ConditionOp.OUTSIDE:
                out = (value < c.low) | (value > c.high)
            case ConditionOp.INSIDE:
                out = (c.low <= value) & (value <= c.high)
            case ConditionOp.CHANGE:
                out = has_earlier & ~np.isnan(earlier) & (np.abs(value - earlier) > c.threshold)
            case ConditionOp.PERCENT_CHANGE:
                ok = has_earlier & ~np.isnan(earlier) & (earlier != 0)
                out = ok & (np.abs(value / np.where(ok, earlier, 1.0) - 1.0) * 100.0 > c.threshold)
            case _:
                out = np.ones(len(value), dtype=np.bool_)  # unknown: step every instance
    return np.asarray(out & ~np.isnan(value), dtype=np.bool_)


def _group_of(labels: Mapping[str, str], group_by: tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
    """The instance labels of a series, as the query groups it (a missing label is "")."""
    if group_by is None:
        return tuple(sorted(labels.items()))
    return tuple(sorted((name, labels.get(name, "")) for name in group_by))


def _read_transition(record: LogRecord) -> Transition | None:
    """A transition from an alerts-topic record (None for other event types: the topic also
    carries acknowledgements, notifications ...)."""
    if record.event.type != alerts_pb2.AlertStateChanged.DESCRIPTOR.full_name:
        return None
    try:
        message = decode_record(record, alerts_pb2.AlertStateChanged)
    except ArgusError as exc:
        log.warning(
            "skipping an unreadable alert transition at %s/%d@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        return None
    return Transition(
        key=InstanceKey.of(message.tenant, message.rule, dict(message.instance_labels)),
        from_state=_STATE_FROM_PROTO.get(message.from_state, AlertState.INACTIVE),
        to_state=_STATE_FROM_PROTO.get(message.to_state, AlertState.INACTIVE),
        value=message.value,
        evaluated_at_ms=message.evaluated_at_ms,
        since_ms=message.since_ms,
        reason=message.reason,
        sequence=message.sequence,
    )


_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def render(template: str, *, rule: AlertRule, labels: Mapping[str, str], value: float) -> str:
    """`{{ value }}`, `{{ rule }}`, `{{ labels.NAME }}` (instance labels, then the rule's; a
    missing one renders empty), `{{ query_url }}`; anything else is left as written."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "value":
            return "no data" if math.isnan(value) else f"{value:g}"
        if name == "rule":
            return rule.name
        if name == "query_url":
            return _query_url(rule)
        if name.startswith("labels."):
            label = name.removeprefix("labels.")
            return labels.get(label, rule.labels.get(label, ""))
        return match.group(0)

    return _TEMPLATE.sub(one, template)


def _query_url(rule: AlertRule) -> str:
    query = rule.query
    params: list[tuple[str, str]] = [("metric", query.metric), ("agg", query.agg), ("start", f"-{rule.window_ms}ms")]
    if query.region:
        params.append(("region", query.region))
    params += [("where", w) for w in query.where]
    params += [("group_by", g) for g in query.group_by]
    return "/api/v1/query?" + urlencode(params)


async def run_evaluator(
    evaluator: AlertEvaluator, runner: ConsumerRunner[events_pb2.SampleBatchAccepted], stop: asyncio.Event
) -> None:
    """The service loop of one evaluator: restore instances from the alerts topic, catch up
    with the samples topic from the group's commit (rebuilding the windows), then evaluate
    due rules on every turn of the runner until `stop` is set."""
    await evaluator.start()
    await runner.catch_up(force=False)
    evaluator.start_evaluating()
    try:
        await runner.run(stop)
    finally:
        await evaluator.aclose()
