"""Query planning: validate a query, pick the tier that answers it, align its range.

Pure functions of the query, the tiers and "now": no I/O, so every rule here is unit-tested
with plain values and a request that will fail is rejected before any store is touched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import InvalidArgument, ResourceExhausted
from core.model import DEFAULT_TIERS, MetricKind, Tier
from core.points import parse_quantile
from core.regex import FullMatchRegex, compile_full_match
from query_side.timeparse import check_time_range, format_duration, format_ms

# Bounds of one query (also stated in the QueryService proto comments).
MAX_SERIES = 10_000
MAX_RESULT_POINTS = 100_000
# `auto` aims for at least MIN_POINTS buckets over the range, and takes a coarser tier
# rather than return more than MAX_AUTO_POINTS buckets per series.
MIN_POINTS = 300
MAX_AUTO_POINTS = 1_500
MAX_GROUP_BY = 64
"""Most label names one query may group by (a series has at most a few dozen labels)."""
MAX_MATCHERS = 64
"""Most label matchers (where=) one query may carry."""
SORTS = ("max", "min", "avg", "last", "sum")
"""What `sort` may rank result series by: a reduction over each series' points."""
ORDERS = ("desc", "asc")

AUTO = "auto"
GROUP_EACH = "*"
REGION_LABEL = "region"

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)")

_COMMON_AGGS = ("sum", "count", "avg", "min", "max", "last")
AGGS_BY_KIND: Mapping[MetricKind, tuple[str, ...]] = {
    MetricKind.COUNTER: (*_COMMON_AGGS, "rate", "increase"),
    MetricKind.GAUGE: _COMMON_AGGS,
    MetricKind.TIMER: ("count", "sum", "avg", "min", "max", "pNN"),
    MetricKind.DISTINCT: ("distinct", "count"),
}
DEFAULT_AGG: Mapping[MetricKind, str] = {
    MetricKind.COUNTER: "rate",
    MetricKind.GAUGE: "avg",
    MetricKind.TIMER: "p99",
    MetricKind.DISTINCT: "distinct",
}
# Used while the metric's kind is unknown (a metric with no series): any real agg passes.
_ALL_AGGS = ("sum", "count", "avg", "min", "max", "last", "rate", "increase", "pNN", "distinct")


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True, slots=True, kw_only=True)
class Matcher:
    """A label condition as the user wrote it; "region" matches the series' region.

    A missing label reads as "" (so `team=""` selects series without `team`).
    Regex operators take a full match of an RE2 pattern (core/regex.py: linear time).
    """

    name: str
    op: MatchOp
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySpec:
    """One query, as the transports hand it over: range `[start_ms, end_ms)`, unaligned.

    `period` is a tier name or "auto"; `agg` None or "" means the kind's default;
    `group_by` ("*" = every series apart, empty = one merged series); `region` is a
    shorthand for a `region=` matcher.
    """

    tenant: str
    metric: str
    start_ms: int
    end_ms: int
    period: str = AUTO
    agg: str | None = None
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ()
    region: str | None = None
    limit: int = 0
    """Keep only the first `limit` result series (0: all), in the order `sort` gives."""
    sort: str | None = None
    """Rank result series by this reduction of their points (one of SORTS); None: by labels."""
    order: str | None = None
    """ "desc" (default with `sort`) or "asc"."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ordering:
    """Top-N and ordering of result series, applied in the engine before serialisation.

    `sort` None keeps the label order; otherwise series rank by that reduction of their
    values (NaN points ignored; a series without a value ranks last in either order; ties
    keep the label order). `limit` 0 keeps every series."""

    sort: str | None = None
    descending: bool = True
    limit: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelPredicate:
    """A matcher the index cannot resolve (!=, regex, duplicate or empty equality),
    applied per series to its labels."""

    name: str
    op: MatchOp
    value: str
    pattern: FullMatchRegex | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op is MatchOp.EQUAL:
            return actual == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.matches(actual)
        return found if self.op is MatchOp.REGEX else not found


@dataclass(frozen=True, slots=True, kw_only=True)
class Selector:
    """Which series a query reads: `equal` goes to the index's postings, `predicates` are
    then checked per returned series."""

    equal: Mapping[str, str] = field(default_factory=dict)
    predicates: tuple[LabelPredicate, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a series with these labels (region included) satisfies every matcher,
        the index's equalities too (cheap, and keeps a lax index adapter honest)."""
        return all(labels.get(k, "") == v for k, v in self.equal.items()) and all(
            p.matches(labels) for p in self.predicates
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryPlan:
    """What the engine executes: read `tier` over the aligned `[start_ms, end_ms)`.

    `buckets` is the number of steps in that range (the most points one result series
    can have). `group_by` is None for "every series apart", () for one merged series.
    """

    tier: Tier
    start_ms: int
    end_ms: int
    agg: str
    selector: Selector
    group_by: tuple[str, ...] | None
    ordering: Ordering = field(default_factory=Ordering)

    @property
    def step_ms(self) -> int:
        return self.tier.step_ms

    @property
    def buckets(self) -> int:
        return (self.end_ms - self.start_ms) // self.tier.step_ms


def plan(
    spec: QuerySpec,
    tiers: Sequence[Tier] = DEFAULT_TIERS,
    *,
    now_ms: int,
    series_kind: MetricKind | None = None,
    groups: int = 1,
    cold_from_ms: Mapping[str, int] | None = None,
    max_result_points: int = MAX_RESULT_POINTS,
) -> QueryPlan:
    """Validate `spec` and choose its tier.

    `series_kind` None (the metric has no series) checks only that `agg` is some known
    aggregation. `groups` is how many result series the query makes: `auto` coarsens the
    tier until `groups * buckets` fits MAX_RESULT_POINTS, an explicit period that does not
    fit raises ResourceExhausted (`max_result_points`: a caller's own bound, e.g. PromQL's
    max samples). `cold_from_ms` (tier name -> oldest archived time) lets a
    tier answer from before its hot retention (see `hot_start_ms`). Raises InvalidArgument
    naming the parameter at fault.
    """
    if not spec.metric:
        raise InvalidArgument("metric: a metric name is required", parameter="metric")
    check_time_range(spec.start_ms, parameter="start")
    check_time_range(spec.end_ms, parameter="end")
    if spec.start_ms >= spec.end_ms:
        raise InvalidArgument(
            f"start ({format_ms(spec.start_ms)}) must be before end ({format_ms(spec.end_ms)})",
            parameter="start",
        )
    agg = validate_agg(spec.agg, series_kind)
    selector = compile_selector(spec.matchers, region=spec.region)
    group_by = validate_group_by(spec.group_by)
    ordering = validate_ordering(spec.sort, spec.order, spec.limit)
    tier = choose_tier(
        spec, tiers, now_ms=now_ms, groups=groups, cold_from_ms=cold_from_ms, max_result_points=max_result_points
    )
    start_ms, end_ms = align(spec.start_ms, spec.end_ms, tier.step_ms)
    return QueryPlan(
        tier=tier, start_ms=start_ms, end_ms=end_ms, agg=agg, selector=selector, group_by=group_by, ordering=ordering
    )


def align(start_ms: int, end_ms: int, step_ms: int) -> tuple[int, int]:
    """Start rounded down, end rounded up to a multiple of `step_ms` (buckets are aligned to
    the epoch, as the rollups store them)."""
    return start_ms - start_ms % step_ms, -(-end_ms // step_ms) * step_ms


def _buckets(start_ms: int, end_ms: int, step_ms: int) -> int:
    aligned_start, aligned_end = align(start_ms, end_ms, step_ms)
    return (aligned_end - aligned_start) // step_ms


def hot_start_ms(tier: Tier, now_ms: int) -> int:
    """Where the hot store's part of `tier` begins: the start of the chunk holding
    now - retention. Retention drops only chunks that ended before that instant, so the hot
    store holds every chunk from here on. With a cold store, a query reads [start, here)
    from the cold store and [here, end) from the hot store: each point from exactly one."""
    return tier.chunk_start(now_ms - tier.retention_ms)


def choose_tier(
    spec: QuerySpec,
    tiers: Sequence[Tier],
    *,
    now_ms: int,
    groups: int = 1,
    cold_from_ms: Mapping[str, int] | None = None,
    max_result_points: int = MAX_RESULT_POINTS,
) -> Tier:
    """The tier answering `spec` (see `plan`). Tiers may be given in any order. A tier covers
    the query if its hot retention reaches back to the start, or its cold archive does."""
    ordered = sorted(tiers, key=lambda t: t.step_ms)
    cold = cold_from_ms or {}
    covering = [
        t
        for t in ordered
        if now_ms - t.retention_ms <= spec.start_ms or (t.name in cold and cold[t.name] <= spec.start_ms)
    ]
    groups = max(groups, 1)
    period = (spec.period or AUTO).strip()
    if period != AUTO:
        return _explicit_tier(
            spec, period, ordered, covering, now_ms=now_ms, groups=groups, max_result_points=max_result_points
        )
    if not covering:
        oldest = max(ordered, key=lambda t: t.retention_ms)
        raise InvalidArgument(
            f"start: {format_ms(spec.start_ms)} is older than the longest retention "
            f"({format_duration(oldest.retention_ms)}, tier {oldest.name}); "
            f"the oldest start is {format_ms(now_ms - oldest.retention_ms)}",
            parameter="start",
        )
    counts = [_buckets(spec.start_ms, spec.end_ms, t.step_ms) for t in covering]
    enough = [i for i, n in enumerate(counts) if n >= MIN_POINTS]
    if enough:
        choice = enough[-1]
        if counts[choice] > MAX_AUTO_POINTS and choice + 1 < len(covering):
            choice += 1
    else:
        choice = 0
    while counts[choice] * groups > max_result_points and choice + 1 < len(covering):
        choice += 1
    if counts[choice] * groups > max_result_points:
        raise _too_many_points(counts[choice], groups, covering[choice], max_result_points)
    return covering[choice]


def _explicit_tier(
    spec: QuerySpec,
    period: str,
    ordered: Sequence[Tier],
    covering: Sequence[Tier],
    *,
    now_ms: int,
    groups: int,
    max_result_points: int = MAX_RESULT_POINTS,
) -> Tier:
    by_name = {t.name: t for t in ordered}
    tier = by_name.get(period)
    if tier is None:
        choices = ", ".join([AUTO, *by_name])
        raise InvalidArgument(f"period: unknown period {period!r} (expected one of: {choices})", parameter="period")
    if tier not in covering:
        age = format_duration(max(now_ms - spec.start_ms, 1))
        kept = format_duration(tier.retention_ms)
        hint = (
            f"use period {covering[0].name} or auto"
            if covering
            else f"no tier keeps data from {format_ms(spec.start_ms)}"
        )
        raise InvalidArgument(
            f"period: tier {tier.name} keeps {kept} of data but start is {age} ago; {hint}",
            parameter="period",
        )
    points = _buckets(spec.start_ms, spec.end_ms, tier.step_ms)
    if points * groups > max_result_points:
        raise _too_many_points(points, groups, tier, max_result_points)
    return tier


def _too_many_points(
    points: int, groups: int, tier: Tier, max_result_points: int = MAX_RESULT_POINTS
) -> ResourceExhausted:
    return ResourceExhausted(
        f"query would return {points * groups:,} points ({groups:,} series x {points:,} steps of "
        f"{tier.name}), over the limit of {max_result_points:,} points per query; "
        "use a shorter range, a coarser period or fewer group_by labels"
    )


def validate_agg(agg: str | None, kind: MetricKind | None) -> str:
    """The aggregation to read (the kind's default when `agg` is empty), normalised to
    lower case. Raises InvalidArgument naming `agg` with the valid choices."""
    name = (agg or "").strip().lower()
    if not name:
        return DEFAULT_AGG[kind] if kind is not None else "avg"
    allowed = AGGS_BY_KIND[kind] if kind is not None else _ALL_AGGS
    if _PERCENTILE.fullmatch(name) and "pNN" in allowed:
        if parse_quantile(name) is not None:
            return name
        raise InvalidArgument(
            f"agg: percentile {name!r} must be between p0 and p100, e.g. p50, p99, p99.9", parameter="agg"
        )
    if name in allowed:
        return name
    what = f"a {kind.label} metric" if kind is not None else "any metric"
    raise InvalidArgument(
        f"agg: {name!r} is not valid for {what} (expected one of: {', '.join(allowed)})", parameter="agg"
    )


def compile_selector(matchers: Sequence[Matcher], *, region: str | None = None) -> Selector:
    """Split matchers into index equality filters and per-series predicates.

    The first non-empty equality per label goes to the index; a second equality on the same
    label, an empty-value equality (label absent) and every other operator become
    predicates. Raises InvalidArgument (parameter `where`) for a bad name or regex.
    """
    all_matchers = list(matchers)
    if len(all_matchers) > MAX_MATCHERS:
        raise InvalidArgument(
            f"where: {len(all_matchers):,} label matchers, over the limit of {MAX_MATCHERS} per query",
            parameter="where",
        )
    if region:
        all_matchers.append(Matcher(name=REGION_LABEL, op=MatchOp.EQUAL, value=region))
    equal: dict[str, str] = {}
    predicates: list[LabelPredicate] = []
    for m in all_matchers:
        if not _LABEL_NAME.fullmatch(m.name):
            raise InvalidArgument(
                f"where: {m.name!r} is not a label name (letters, digits and _, not starting with a digit)",
                parameter="where",
            )
        if m.op is MatchOp.EQUAL and m.value and m.name not in equal:
            equal[m.name] = m.value
            continue
        pattern: FullMatchRegex | None = None
        if m.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            pattern = compile_full_match(m.value, parameter="where", what=f"for label {m.name}")
        predicates.append(LabelPredicate(name=m.name, op=m.op, value=m.value, pattern=pattern))
    return Selector(equal=equal, predicates=tuple(predicates))


def validate_ordering(sort: str | None, order: str | None, limit: int) -> Ordering:
    """`sort` (one of SORTS, case-insensitive; empty: label order), `order` ("desc" or "asc";
    only with `sort`) and `limit` (0: all, else 1..MAX_SERIES). Raises InvalidArgument
    naming the parameter at fault."""
    by = (sort or "").strip().lower() or None
    direction = (order or "").strip().lower() or None
    if by is not None and by not in SORTS:
        raise InvalidArgument(f"sort: {by!r} is not a sort (expected one of: {', '.join(SORTS)})", parameter="sort")
    if direction is not None:
        if direction not in ORDERS:
            raise InvalidArgument(
                f"order: {direction!r} is not an order (expected one of: {', '.join(ORDERS)})", parameter="order"
            )
        if by is None:
            raise InvalidArgument(f"order: needs sort= (what to order by: {', '.join(SORTS)})", parameter="order")
    if not 0 <= limit <= MAX_SERIES:
        raise InvalidArgument(
            f"limit: {limit:,} is out of range (1 to {MAX_SERIES:,} series, or 0 for all)", parameter="limit"
        )
    return Ordering(sort=by, descending=direction != "asc", limit=limit)


def validate_group_by(group_by: Sequence[str]) -> tuple[str, ...] | None:
    """Label names in first-seen order without duplicates; None when "*" is among them
    (every series is its own group). More than MAX_GROUP_BY distinct names is an error."""
    names: dict[str, None] = {}  # insertion-ordered set: O(1) duplicate check
    for raw in group_by:
        name = raw.strip()
        if not name:
            continue
        if name == GROUP_EACH:
            return None
        if not _LABEL_NAME.fullmatch(name):
            raise InvalidArgument(
                f"group_by: {name!r} is not a label name (or '*' for every series apart)",
                parameter="group_by",
            )
        if name not in names:
            if len(names) == MAX_GROUP_BY:
                raise InvalidArgument(
                    f"group_by: more than {MAX_GROUP_BY} label names, over the limit of {MAX_GROUP_BY} per query",
                    parameter="group_by",
                )
            names[name] = None
    return tuple(names)


def parse_matcher(text: str) -> Matcher:
    """`name=value`, `name!=value`, `name=~regex` or `name!~regex` (as in HTTP `where=` and the
    CLI's --where). Whitespace around the name is ignored; the value is taken verbatim."""
    match = re.fullmatch(r"\s*([^=!~\s]+)\s*(!=|=~|!~|=)(.*)", text, flags=re.DOTALL)
    if match is None:
        raise InvalidArgument(
            f"where: cannot parse {text!r}; use name=value, name!=value, name=~regex or name!~regex",
            parameter="where",
        )
    name, op, value = match.groups()
    return Matcher(name=name, op=MatchOp(op), value=value)
