"""Raw series for PromQL, read from the rollup tiers through the query engine.

A selector becomes one engine query per (metric, aggregate) with every series apart
(`group_by="*"`), on the one tier the evaluator chose for the whole expression. A tier point
(bucket `[t, t + step)`) becomes a PromQL sample stamped `t + step - base_step`: the time of
the last finest-tier bucket in it, so a sample never stands before data it holds (on the 5 s
tier it is the bucket start itself). See docs/promql.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.errors import InvalidArgument
from core.model import MetricKind, Tier
from core.ports import MetricSummary
from core.regex import compile_full_match
from query_side.engine import QueryEngine
from query_side.planner import Matcher, MatchOp, QuerySpec

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

NAME_LABEL = "__name__"
DELTAS_ONLY = "deltas"
"""A `fields` entry: the caller uses only a counter's deltas (not its cumulative value)."""
_GAUGE_FIELDS = ("sum", "count", "min", "max")
_NOT_PROM = re.compile(r"[^a-zA-Z0-9_:]")


def prom_name(metric: str) -> str:
    """The PromQL name of an Argus metric: `.` (allowed in Argus names) becomes `_`."""
    return _NOT_PROM.sub("_", metric)


@dataclass(frozen=True, slots=True, kw_only=True)
class RawSeries:
    """One stored series as PromQL samples: `ts` ascending ms, `values` aligned.

    Counters: `values` is the cumulative value since the series began (unless the read
    asked for DELTAS_ONLY: then from the first sample read),
    `deltas` the increase each sample stands for (exact `rate`/`increase`). `fields` holds
    other per-bucket aggregates that were asked for (sum, count, min, max) of gauges."""

    labels: dict[str, str]
    kind: MetricKind
    ts: I64
    values: F64
    deltas: F64 | None = None
    fields: dict[str, F64] = field(default_factory=dict)


@dataclass(slots=True)
class ReadStats:
    series: int = 0
    points_read: int = 0
    tiers: set[str] = field(default_factory=set)


class SeriesReader:
    """Reads selectors of one tenant on one tier; caches the tenant's metric list."""

    def __init__(self, engine: QueryEngine, *, tenant: str, tier: Tier, base_step_ms: int, max_points: int) -> None:
        self._engine = engine
        self._tenant = tenant
        self.tier = tier
        self._base_step_ms = base_step_ms
        self._max_points = max_points
        self._metrics: list[MetricSummary] | None = None
        self.stats = ReadStats()

    async def metrics(self) -> list[MetricSummary]:
        if self._metrics is None:
            self._metrics = await self._engine.list_metrics(self._tenant)
        return self._metrics

    async def _resolve_names(self, name: str | None, name_matchers: Sequence[Matcher]) -> list[MetricSummary]:
        out = []
        patterns = [
            (m, compile_full_match(m.value, parameter="query", what="for __name__") if "~" in m.op.value else None)
            for m in name_matchers
        ]
        for summary in await self.metrics():
            pname = prom_name(summary.name)
            if name is not None and pname != name:
                continue
            ok = True
            for m, pattern in patterns:
                if m.op is MatchOp.EQUAL:
                    ok = pname == m.value
                elif m.op is MatchOp.NOT_EQUAL:
                    ok = pname != m.value
                else:
                    assert pattern is not None
                    ok = pattern.matches(pname) == (m.op is MatchOp.REGEX)
                if not ok:
                    break
            if ok:
                out.append(summary)
        return out

    async def read(
        self,
        name: str | None,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        fields: Sequence[str] = (),
    ) -> list[RawSeries]:
        """Series of the selector with samples in `[start_ms, end_ms]` (both inclusive)."""
        name_matchers = [m for m in matchers if m.name == NAME_LABEL]
        label_matchers = tuple(m for m in matchers if m.name != NAME_LABEL)
        if (
            name is None
            and not any(m.value and m.op in (MatchOp.EQUAL, MatchOp.REGEX) for m in name_matchers)
            and not any(_non_empty_matcher(m) for m in label_matchers)
        ):
            raise InvalidArgument(
                "query: a vector selector must contain at least one matcher that does not match the "
                "empty string (e.g. a metric name)",
                parameter="query",
            )
        out: list[RawSeries] = []
        for summary in await self._resolve_names(name, name_matchers):
            out.extend(await self._read_metric(summary, label_matchers, start_ms, end_ms, fields))
        self.stats.series += len(out)
        return out

    async def _read_metric(
        self,
        summary: MetricSummary,
        matchers: tuple[Matcher, ...],
        start_ms: int,
        end_ms: int,
        fields: Sequence[str],
    ) -> list[RawSeries]:
        kind = MetricKind(summary.kind)
        step = self.tier.step_ms
        shift = step - self._base_step_ms
        # Buckets whose sample time (start + shift) falls in [start, end].
        # Not before the tier's retention (older data is gone; the planner would refuse).
        floor = self._engine.now_ms() - self.tier.retention_ms
        q_start = max(start_ms - shift, floor)
        q_end = end_ms - shift + 1
        if q_end <= q_start:
            return []
        keep_from = start_ms
        if kind is MetricKind.COUNTER and DELTAS_ONLY not in fields:
            # Read back to the next coarser tier's bucket boundary: the deltas before it come
            # from the coarser tiers (`_counter_prefix`), those after it from this read.
            coarser = [t.step_ms for t in self._engine.tiers if t.step_ms > step]
            if coarser:
                extended = q_start - q_start % min(coarser)
                if extended >= floor:
                    q_start = extended
            keep_from = q_start + shift
        primary = {
            MetricKind.COUNTER: "sum",
            MetricKind.GAUGE: "last",
            MetricKind.TIMER: "avg",
            MetricKind.DISTINCT: "distinct",
        }[kind]
        aggs = [primary] + [f for f in fields if f in _GAUGE_FIELDS and f != primary and kind is MetricKind.GAUGE]
        # rate/increase read only the deltas: the cumulative prefix is not worth its reads.
        need_prefix = kind is MetricKind.COUNTER and DELTAS_ONLY not in fields
        by_labels: dict[tuple[tuple[str, str], ...], dict[str, tuple[I64, F64]]] = {}
        for agg in aggs:
            spec = QuerySpec(
                tenant=self._tenant,
                metric=summary.name,
                start_ms=q_start,
                end_ms=q_end,
                period=self.tier.name,
                agg=agg,
                matchers=matchers,
                group_by=("*",),
            )
            result = await self._engine.query(spec, max_result_points=self._max_points)
            self.stats.points_read += result.stats.points_read
            self.stats.tiers.add(result.tier)
            for s in result.series:
                key = tuple(sorted(s.labels.items()))
                ts = s.ts + shift
                keep = (ts >= keep_from) & (ts <= end_ms) & ~np.isnan(s.values)
                by_labels.setdefault(key, {})[agg] = (ts[keep], s.values[keep])
        prefix: dict[tuple[tuple[str, str], ...], float] = {}
        if need_prefix and by_labels:
            first_read = q_start - q_start % step
            prefix = await self._counter_prefix(summary, matchers, first_read)
        out = []
        pname = prom_name(summary.name)
        for key, per_agg in by_labels.items():
            if primary not in per_agg:
                continue
            ts, values = per_agg[primary]
            labels = {**dict(key), NAME_LABEL: pname}
            extra: dict[str, F64] = {}
            for agg in aggs[1:]:
                if agg in per_agg:
                    other_ts, other_values = per_agg[agg]
                    extra[agg] = _align(ts, other_ts, other_values)
            if kind is MetricKind.COUNTER:
                cumulative = np.cumsum(values) + prefix.get(key, 0.0)
                inside = ts >= start_ms
                out.append(
                    RawSeries(labels=labels, kind=kind, ts=ts[inside], values=cumulative[inside], deltas=values[inside])
                )
            else:
                out.append(RawSeries(labels=labels, kind=kind, ts=ts, values=values, fields=extra))
        return out

    async def _counter_prefix(
        self, summary: MetricSummary, matchers: tuple[Matcher, ...], boundary_ms: int
    ) -> dict[tuple[tuple[str, str], ...], float]:
        """Per series, the sum of its deltas before `boundary_ms` (a multiple of the read
        tier's step): what makes a counter's value cumulative since the series began.

        Read coarse to fine, each tier's whole buckets up to where the next finer tier
        takes over (1d buckets up to the last day boundary, then 1h, ... down to the read
        tier): at most a few buckets per series per tier besides the daily ones."""
        series = await self._engine.find_series(self._tenant, summary.name)
        if not series:
            return {}
        tiers = sorted((t for t in self._engine.tiers if t.step_ms >= self.tier.step_ms), key=lambda t: -t.step_ms)
        first_seen = min(record.first_seen_ms for record, _ in series)
        now_ms = self._engine.now_ms()
        cursor = first_seen - first_seen % tiers[0].step_ms
        totals: dict[tuple[tuple[str, str], ...], float] = {}
        for tier in tiers:
            cursor = max(cursor, now_ms - tier.retention_ms)  # older: deleted
            cursor += -cursor % tier.step_ms
            end = boundary_ms - boundary_ms % tier.step_ms
            if end <= cursor:
                continue
            spec = QuerySpec(
                tenant=self._tenant,
                metric=summary.name,
                start_ms=cursor,
                end_ms=end,
                period=tier.name,
                agg="sum",
                matchers=matchers,
                group_by=("*",),
            )
            result = await self._engine.query(spec, max_result_points=self._max_points)
            self.stats.points_read += result.stats.points_read
            for s in result.series:
                key = tuple(sorted(s.labels.items()))
                totals[key] = totals.get(key, 0.0) + float(np.nansum(s.values))
            cursor = end
        return totals


def _align(ts: I64, other_ts: I64, other_values: F64) -> F64:
    """`other_values` at the times `ts` (NaN where missing)."""
    out = np.full(len(ts), np.nan)
    idx = np.searchsorted(other_ts, ts)
    ok = idx < len(other_ts)
    ok[ok] = other_ts[idx[ok]] == ts[ok]
    out[ok] = other_values[idx[ok]]
    return out


def _non_empty_matcher(m: Matcher) -> bool:
    if m.op is MatchOp.EQUAL:
        return m.value != ""
    if m.op is MatchOp.REGEX:
        return not compile_full_match(m.value, parameter="query").matches("")
    if m.op is MatchOp.NOT_EQUAL:
        return m.value == ""
    return compile_full_match(m.value, parameter="query").matches("")
