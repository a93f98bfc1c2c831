from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidArgument, ResourceExhausted
from core.model import DEFAULT_TIERS, MetricKind
from query_side.planner import (
    MAX_RESULT_POINTS,
    Matcher,
    MatchOp,
    QuerySpec,
    align,
    compile_selector,
    parse_matcher,
    plan,
    validate_agg,
    validate_group_by,
)

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NOW_MS = 1_764_064_800_000 + 17 * SECOND  # deliberately not on a step boundary


def spec(range_ms: int, *, end_ago_ms: int = 0, period: str = "auto", agg: str | None = None) -> QuerySpec:
    end = NOW_MS - end_ago_ms
    return QuerySpec(tenant="t", metric="m", start_ms=end - range_ms, end_ms=end, period=period, agg=agg)


@pytest.mark.parametrize(
    ("range_ms", "tier"),
    [
        (5 * MINUTE, "5s"),  # nothing reaches 300 points: the finest tier
        (30 * MINUTE, "5s"),
        (1 * HOUR, "5s"),
        (3 * HOUR, "1m"),  # 5s would give 2,160 points, 1m gives 180
        (6 * HOUR, "1m"),
        (12 * HOUR, "1m"),
        (24 * HOUR, "1m"),  # 5m would give 288 (< 300), 1m gives 1,440 (<= 1,500)
        (2 * DAY, "5m"),
        (7 * DAY, "1h"),  # 5m would give 2,016
        (8 * DAY, "1h"),  # 5s no longer covers the start
        (13 * DAY, "1h"),
        (30 * DAY, "1h"),
        (60 * DAY, "1h"),
        (90 * DAY, "1d"),  # 1h would give 2,160
        (365 * DAY, "1d"),
        (400 * DAY, "1d"),
    ],
)
def test_auto_picks_coarsest_tier_with_enough_points(range_ms: int, tier: str) -> None:
    assert plan(spec(range_ms), DEFAULT_TIERS, now_ms=NOW_MS).tier.name == tier


@given(st.integers(min_value=MINUTE, max_value=5 * 365 * DAY - DAY))
def test_auto_never_returns_more_than_1500_points_when_a_coarser_tier_could_answer(range_ms: int) -> None:
    chosen = plan(spec(range_ms), DEFAULT_TIERS, now_ms=NOW_MS)
    coarser = [t for t in DEFAULT_TIERS if t.step_ms > chosen.tier.step_ms]
    assert chosen.buckets <= 1_501 or not coarser
    # and it never picks a tier that does not keep the start
    assert NOW_MS - chosen.tier.retention_ms <= NOW_MS - range_ms


def test_auto_skips_tiers_whose_retention_does_not_cover_a_past_range() -> None:
    chosen = plan(spec(HOUR, end_ago_ms=30 * DAY), DEFAULT_TIERS, now_ms=NOW_MS)
    assert chosen.tier.name == "1m"  # 5s keeps 7 days; none gives 300 points, so the finest left


def test_auto_start_older_than_every_retention_is_an_error_naming_start() -> None:
    with pytest.raises(InvalidArgument, match="longest retention") as info:
        plan(spec(6 * 365 * DAY), DEFAULT_TIERS, now_ms=NOW_MS)
    assert info.value.parameter == "start"


def test_explicit_period_is_used_as_given() -> None:
    assert plan(spec(HOUR, period="1h"), DEFAULT_TIERS, now_ms=NOW_MS).tier.name == "1h"


def test_explicit_period_without_retention_says_which_tier_can() -> None:
    with pytest.raises(InvalidArgument) as info:
        plan(spec(HOUR, end_ago_ms=10 * DAY, period="5s"), DEFAULT_TIERS, now_ms=NOW_MS)
    assert info.value.parameter == "period"
    assert "keeps 7d" in str(info.value)
    assert "use period 1m" in str(info.value)


def test_unknown_period_lists_the_choices() -> None:
    with pytest.raises(InvalidArgument, match=r"auto, 5s, 1m, 5m, 1h, 1d") as info:
        plan(spec(HOUR, period="2m"), DEFAULT_TIERS, now_ms=NOW_MS)
    assert info.value.parameter == "period"


def test_explicit_period_over_the_point_limit_is_resource_exhausted() -> None:
    with pytest.raises(ResourceExhausted, match="100,000"):
        plan(spec(7 * DAY, period="5s"), DEFAULT_TIERS, now_ms=NOW_MS)


def test_auto_coarsens_until_all_groups_fit_the_point_limit() -> None:
    alone = plan(spec(HOUR), DEFAULT_TIERS, now_ms=NOW_MS)
    many = plan(spec(HOUR), DEFAULT_TIERS, now_ms=NOW_MS, groups=1_000)
    assert alone.tier.name == "5s"
    assert many.tier.name == "1m"
    assert many.buckets * 1_000 <= MAX_RESULT_POINTS


def test_explicit_period_with_too_many_groups_is_resource_exhausted() -> None:
    with pytest.raises(ResourceExhausted, match=r"2,000 series"):
        plan(spec(HOUR, period="1m"), DEFAULT_TIERS, now_ms=NOW_MS, groups=2_000)


def test_range_is_aligned_start_down_end_up() -> None:
    q = QuerySpec(
        tenant="t", metric="m", start_ms=NOW_MS - HOUR + 30 * SECOND, end_ms=NOW_MS - 30 * SECOND, period="1m"
    )
    p = plan(q, DEFAULT_TIERS, now_ms=NOW_MS)
    assert p.start_ms % MINUTE == 0 and p.end_ms % MINUTE == 0
    assert p.start_ms <= q.start_ms < p.start_ms + MINUTE
    assert p.end_ms - MINUTE < q.end_ms <= p.end_ms


@given(st.integers(min_value=0, max_value=10**13), st.integers(min_value=1, max_value=10**9))
def test_alignment_contains_the_range_and_lands_on_steps(start: int, length: int) -> None:
    for step in (5 * SECOND, MINUTE, DAY):
        lo, hi = align(start, start + length, step)
        assert lo % step == 0 and hi % step == 0
        assert lo <= start and start + length <= hi
        assert start - lo < step and hi - (start + length) < step


def test_empty_range_is_blamed_on_start() -> None:
    with pytest.raises(InvalidArgument) as info:
        plan(QuerySpec(tenant="t", metric="m", start_ms=5, end_ms=5), DEFAULT_TIERS, now_ms=NOW_MS)
    assert info.value.parameter == "start"


def test_missing_metric_is_blamed_on_metric() -> None:
    with pytest.raises(InvalidArgument) as info:
        plan(QuerySpec(tenant="t", metric="", start_ms=0, end_ms=5), DEFAULT_TIERS, now_ms=NOW_MS)
    assert info.value.parameter == "metric"


# ------------------------------------------------------------------------------ aggregations

VALID = {
    MetricKind.COUNTER: ["sum", "count", "avg", "min", "max", "last", "rate", "increase"],
    MetricKind.GAUGE: ["sum", "count", "avg", "min", "max", "last"],
    MetricKind.TIMER: ["count", "sum", "avg", "min", "max", "p50", "p99", "p99.9", "p100"],
    MetricKind.DISTINCT: ["distinct", "count"],
}
INVALID = {
    MetricKind.COUNTER: ["p99", "distinct"],
    MetricKind.GAUGE: ["rate", "increase", "p99", "distinct"],
    MetricKind.TIMER: ["rate", "last", "distinct"],
    MetricKind.DISTINCT: ["sum", "avg", "p50", "rate"],
}


@pytest.mark.parametrize(("kind", "agg"), [(k, a) for k, aggs in VALID.items() for a in aggs])
def test_valid_aggregations_per_kind(kind: MetricKind, agg: str) -> None:
    assert validate_agg(agg.upper(), kind) == agg


@pytest.mark.parametrize(("kind", "agg"), [(k, a) for k, aggs in INVALID.items() for a in aggs])
def test_invalid_aggregation_names_agg_and_lists_the_choices(kind: MetricKind, agg: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_agg(agg, kind)
    assert info.value.parameter == "agg"
    assert f"a {kind.label} metric" in str(info.value)
    for choice in VALID[kind][:2]:
        assert choice in str(info.value)


@pytest.mark.parametrize(
    ("kind", "default"),
    [
        (MetricKind.GAUGE, "avg"),
        (MetricKind.COUNTER, "rate"),
        (MetricKind.TIMER, "p99"),
        (MetricKind.DISTINCT, "distinct"),
    ],
)
def test_default_aggregation_per_kind(kind: MetricKind, default: str) -> None:
    assert validate_agg(None, kind) == default
    assert validate_agg("  ", kind) == default
    assert plan(spec(HOUR), DEFAULT_TIERS, now_ms=NOW_MS, series_kind=kind).agg == default


@pytest.mark.parametrize("agg", ["p101", "p1000", "p", "pxx", "p-1"])
def test_out_of_range_percentiles_are_rejected(agg: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_agg(agg, MetricKind.TIMER)
    assert info.value.parameter == "agg"


def test_unknown_kind_accepts_any_real_aggregation_but_not_typos() -> None:
    assert validate_agg("rate", None) == "rate"
    assert validate_agg("p95", None) == "p95"
    with pytest.raises(InvalidArgument) as info:
        validate_agg("avrage", None)
    assert info.value.parameter == "agg"


# ------------------------------------------------------------------------------ matchers


def test_equality_matchers_go_to_the_index_and_others_are_predicates() -> None:
    selector = compile_selector(
        [
            Matcher(name="service", op=MatchOp.EQUAL, value="api"),
            Matcher(name="host", op=MatchOp.REGEX, value="web-.*"),
            Matcher(name="env", op=MatchOp.NOT_EQUAL, value="dev"),
        ],
        region="eu-west-1",
    )
    assert dict(selector.equal) == {"service": "api", "region": "eu-west-1"}
    assert [p.name for p in selector.predicates] == ["host", "env"]
    base = {"service": "api", "region": "eu-west-1"}
    assert selector.matches({**base, "host": "web-1", "env": "prod"})
    assert not selector.matches({**base, "host": "db-1", "env": "prod"})
    assert not selector.matches({**base, "host": "web-1", "env": "dev"})
    assert not selector.matches({**base, "region": "us-east-1", "host": "web-1", "env": "prod"})


def test_regex_matchers_need_a_full_match() -> None:
    selector = compile_selector([Matcher(name="host", op=MatchOp.REGEX, value="web")])
    assert selector.matches({"host": "web"})
    assert not selector.matches({"host": "web-1"})
    assert not selector.matches({"host": "aweb"})
    negated = compile_selector([Matcher(name="host", op=MatchOp.NOT_REGEX, value="web-[0-9]+")])
    assert negated.matches({"host": "web-x"})
    assert not negated.matches({"host": "web-12"})


def test_missing_label_reads_as_empty() -> None:
    absent = compile_selector([Matcher(name="team", op=MatchOp.EQUAL, value="")])
    assert absent.equal == {}
    assert absent.matches({"host": "a"})
    assert not absent.matches({"team": "x"})
    present = compile_selector([Matcher(name="team", op=MatchOp.NOT_EQUAL, value="")])
    assert present.matches({"team": "x"})
    assert not present.matches({})


def test_conflicting_equalities_match_nothing() -> None:
    selector = compile_selector(
        [Matcher(name="region", op=MatchOp.EQUAL, value="us")],
        region="eu",
    )
    assert dict(selector.equal) == {"region": "us"}
    assert not selector.matches({"region": "us"})
    assert not selector.matches({"region": "eu"})


def test_bad_regex_is_an_invalid_where() -> None:
    with pytest.raises(InvalidArgument, match="bad regular expression") as info:
        compile_selector([Matcher(name="host", op=MatchOp.REGEX, value="web-(")])
    assert info.value.parameter == "where"


def test_bad_label_name_is_an_invalid_where() -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_selector([Matcher(name="1host", op=MatchOp.EQUAL, value="x")])
    assert info.value.parameter == "where"


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ("host=web-1", "host", MatchOp.EQUAL, "web-1"),
        ("host!=web-1", "host", MatchOp.NOT_EQUAL, "web-1"),
        ("host=~web-.*", "host", MatchOp.REGEX, "web-.*"),
        ("host!~web-.*", "host", MatchOp.NOT_REGEX, "web-.*"),
        (" host =a=b", "host", MatchOp.EQUAL, "a=b"),
        ("team=", "team", MatchOp.EQUAL, ""),
        ("path=~/api/(v1|v2)", "path", MatchOp.REGEX, "/api/(v1|v2)"),
    ],
)
def test_parse_matcher(text: str, name: str, op: MatchOp, value: str) -> None:
    assert parse_matcher(text) == Matcher(name=name, op=op, value=value)


@pytest.mark.parametrize("text", ["host", "=web", "!~x", ""])
def test_unparseable_matcher_is_an_invalid_where(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_matcher(text)
    assert info.value.parameter == "where"


# ------------------------------------------------------------------------------ group_by


def test_group_by_keeps_order_and_drops_duplicates_and_blanks() -> None:
    assert validate_group_by(["region", "", "host", "region"]) == ("region", "host")
    assert validate_group_by([]) == ()


def test_group_by_star_keeps_every_series_apart() -> None:
    assert validate_group_by(["host", "*"]) is None


def test_bad_group_by_name_is_blamed_on_group_by() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_group_by(["host-name"])
    assert info.value.parameter == "group_by"
