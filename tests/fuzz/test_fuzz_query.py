"""Fuzz the query side's parsing of outside input: times and durations, `where` matchers,
the `/api/v1/query` parameters through planning, and the aiohttp app itself.

Properties: a parser returns a value in range or raises InvalidArgument naming a parameter
with a reason (planning may also say ResourceExhausted); the HTTP API never answers 5xx to
any query string, and every 4xx is JSON with an `error`; each call is under a wall-clock
bound."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import quote

import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import example, given
from hypothesis import strategies as st
from multidict import MultiDict

from core.chunks import encode_chunk
from core.errors import ArgusError, InvalidArgument, ResourceExhausted, Unauthenticated
from core.model import DEFAULT_TIERS, MetricKind, series_id
from core.points import from_values
from core.ports import LabelFilter, MetricSummary, SeriesRecord, StoredChunk
from query_side.engine import QueryEngine
from query_side.http_gateway import make_http_app, spec_from_params
from query_side.planner import compile_selector, parse_matcher, plan
from query_side.timeparse import format_ms, parse_duration, parse_range, parse_time
from tests.fuzz.bounds import assert_reasoned, bounded, fuzz

NOW_MS = 1_764_072_000_000
TENANT = "acme"
INT64 = (-(2**63), 2**63 - 1)

DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=420)
UNITS = st.sampled_from(["ms", "s", "m", "h", "d", "w", "y", "", "x", "M"])
DURATIONS = st.one_of(
    st.tuples(DIGITS, st.sampled_from(["", ".5", ".", ".0001"]), UNITS).map("".join),
    st.lists(st.tuples(DIGITS, UNITS).map("".join), min_size=1, max_size=4).map("".join),
    st.text(max_size=12),
)
TIMES = st.one_of(
    st.sampled_from(
        ["now", "", " ", "-", "now-", "now+1h", "1764064800", "1764064800.5", "2026-11-25", "2026-11-25T10:00:00Z"]
    ),
    st.tuples(st.sampled_from(["-", "+", "now-", "now+", "now -", ""]), DURATIONS).map("".join),
    DIGITS,
    st.tuples(DIGITS, st.just("."), DIGITS).map("".join),
    st.tuples(
        st.integers(-9999, 99999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.sampled_from(["Z", "+99:00", "", "+02:00"]),
    ).map(lambda t: f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T00:00:00{t[3]}"),
    st.text(max_size=30),
)


def in_range(ms: int) -> None:
    assert INT64[0] <= ms <= INT64[1], ms
    format_ms(ms)


@fuzz()
@given(text=DURATIONS)
@example(text="9" * 400 + "y")  # the issue's `start=-<400 nines>y`
def test_durations_parse_in_range_or_are_refused(text: str) -> None:
    try:
        with bounded("parse a duration"):
            ms = parse_duration(text, parameter="period")
    except InvalidArgument as exc:
        assert_reasoned(exc, InvalidArgument)
        assert exc.parameter == "period"
        return
    assert ms > 0
    in_range(ms)


@fuzz(scale=1.5)
@given(start=TIMES, end=st.one_of(st.none(), TIMES))
@example(start="-" + "9" * 400 + "y", end=None)
@example(start="now", end="9" * 30)
def test_times_and_ranges_parse_in_range_or_are_refused(start: str, end: str | None) -> None:
    try:
        with bounded("parse a time range"):
            start_ms, end_ms = parse_range(start, end, now_ms=NOW_MS)
    except InvalidArgument as exc:
        assert_reasoned(exc, InvalidArgument)
        assert exc.parameter in ("start", "end")
        return
    assert start_ms < end_ms
    in_range(start_ms)
    in_range(end_ms)
    for text in (start, end or "now"):
        try:
            in_range(parse_time(text, now_ms=NOW_MS, parameter="t"))
        except InvalidArgument as exc:
            assert_reasoned(exc, InvalidArgument)


REGEXES = st.one_of(
    st.text(alphabet="ab()[]{}*+?|^$\\.-,0123456789:<>=!~", max_size=20),
    st.sampled_from(["(a+)+$", "[", "(?P<x>a)", "a{1,99999}", "\\", "(?i)web.*", ".*", "(?<=a)b", "\\p{L}+"]),
)
MATCHERS = st.one_of(
    st.tuples(st.text(max_size=6), st.sampled_from(["=", "!=", "=~", "!~", "==", "~", ""]), REGEXES).map("".join),
    st.text(max_size=20),
)


@fuzz(scale=1.5)
@given(text=MATCHERS)
def test_matchers_parse_and_compile_or_are_refused(text: str) -> None:
    try:
        with bounded("parse and compile a matcher"):
            compile_selector([parse_matcher(text)])
    except InvalidArgument as exc:
        assert_reasoned(exc, InvalidArgument)
        assert exc.parameter == "where"


PARAM_NAMES = st.sampled_from(["metric", "start", "end", "period", "agg", "where", "group_by", "region", "grup_by", ""])
PARAM_VALUES = st.one_of(
    st.sampled_from(
        ["cpu", "1m", "auto", "5s", "1d", "p99", "sum", "avg", "count", "*", "host", "host,dc", "-1h", "now"]
    ),
    TIMES,
    MATCHERS,
    st.text(max_size=15),
)


@fuzz(scale=1.5)
@given(pairs=st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=8))
def test_query_parameters_plan_or_are_refused(pairs: list[tuple[str, str]]) -> None:
    try:
        with bounded("parse and plan a query"):
            spec = spec_from_params(MultiDict(pairs), tenant=TENANT, now_ms=NOW_MS)
            plan(spec, now_ms=NOW_MS, series_kind=MetricKind.GAUGE, groups=3)
    except (InvalidArgument, ResourceExhausted) as exc:
        assert_reasoned(exc, InvalidArgument, ResourceExhausted)


# ---------------------------------------------------------------------------- the HTTP app


class Index:
    """The series index of three gauge series, in memory."""

    def __init__(self, records: Sequence[SeriesRecord]) -> None:
        self.records = list(records)

    async def upsert_series(self, records: Sequence[SeriesRecord]) -> None:
        raise NotImplementedError

    async def find_series(self, tenant: str, metric: str, where: LabelFilter | None = None) -> list[SeriesRecord]:
        equal = dict(where.equal) if where else {}
        return [
            r
            for r in self.records
            if r.tenant == tenant
            and r.metric == metric
            and all({**dict(r.labels), "region": r.region}.get(k) == v for k, v in equal.items())
        ]

    async def list_metrics(self, tenant: str) -> list[MetricSummary]:
        return [MetricSummary(name="cpu", kind=int(MetricKind.GAUGE), series_count=len(self.records))]

    async def label_values(self, tenant: str, label: str, metric: str | None = None) -> list[str]:
        return sorted({dict(r.labels).get(label, "") for r in self.records} - {""})

    async def tenant_series(self, tenant: str | None = None) -> list[SeriesRecord]:
        return list(self.records)


class Chunks:
    """One hour of minute samples per series, in every tier."""

    def __init__(self, series_ids: Sequence[int]) -> None:
        self.chunks: dict[tuple[str, int, int], StoredChunk] = {}
        ts = NOW_MS - 3_600_000 + np.arange(60, dtype=np.int64) * 60_000
        for sid in series_ids:
            for tier in DEFAULT_TIERS:
                points = from_values(np.zeros(60), ts, np.arange(60, dtype=np.float64), tier.step_ms)
                chunk_of = points.ts - points.ts % tier.chunk_span_ms
                for start in np.unique(chunk_of).tolist():
                    data = encode_chunk(
                        points.take(chunk_of == start),
                        kind=MetricKind.GAUGE,
                        step_ms=tier.step_ms,
                        chunk_start_ms=start,
                    )
                    self.chunks[(tier.name, sid, start)] = StoredChunk(
                        series_id=sid, chunk_start_ms=start, data=data, partition=0, applied_offset=0
                    )

    async def write_chunks(self, tier: str, chunks: Sequence[StoredChunk]) -> None:
        raise NotImplementedError

    async def get_chunks(self, tier: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredChunk]:
        raise NotImplementedError

    async def delete_before(self, tier: str, before_ms: int, chunk_span_ms: int) -> int:
        raise NotImplementedError

    async def read_range(
        self, tier: str, series_ids: Sequence[int], start_ms: int, end_ms: int, chunk_span_ms: int
    ) -> list[StoredChunk]:
        wanted = set(series_ids)
        first = start_ms - start_ms % chunk_span_ms
        return [c for (t, sid, s), c in self.chunks.items() if t == tier and sid in wanted and first <= s < end_ms]


class Keys:
    def tenant_for(self, api_key: str | None) -> str:
        if api_key != "good":
            raise Unauthenticated("unknown or revoked API key")
        return TENANT


def engine() -> QueryEngine:
    records = []
    for host, region in (("web-1", "eu"), ("web-2", "eu"), ("db-1", "us")):
        labels = (("host", host),)
        sid = series_id(TENANT, region, "cpu", labels)
        records.append(
            SeriesRecord(
                tenant=TENANT,
                series_id=sid,
                metric="cpu",
                kind=int(MetricKind.GAUGE),
                region=region,
                labels=labels,
                first_seen_ms=0,
                last_seen_ms=NOW_MS,
            )
        )
    return QueryEngine(Index(records), Chunks([r.series_id for r in records]), DEFAULT_TIERS, clock=lambda: NOW_MS)


# Raw query strings: pairs from the grammar, percent-encoded or not, plus raw junk.
QUERY_STRINGS = st.one_of(
    st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=6).map(
        lambda pairs: "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    ),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
    st.sampled_from(["%", "%zz", "a=%ff%fe", "metric=cpu&&&", "metric=cpu&where=host%3D~(a%2B)%2B%24", "=" * 50]),
)
PATHS = st.sampled_from(["/api/v1/query", "/api/v1/metrics", "/api/v1/labels/host/values", "/api/v1/labels/%00/values"])


def test_http_api_answers_any_query_string_without_5xx() -> None:
    async def start() -> TestClient:  # type: ignore[type-arg]
        client: TestClient = TestClient(TestServer(make_http_app(engine(), Keys(), clock=lambda: NOW_MS)))  # type: ignore[type-arg]
        await client.start_server()
        return client

    with asyncio.Runner() as runner:
        client = runner.run(start())
        try:

            @fuzz(scale=1.5)
            @given(path=PATHS, query=QUERY_STRINGS, authorized=st.booleans())
            @example(path="/api/v1/query", query="metric=cpu&start=-" + "9" * 400 + "y", authorized=True)
            @example(path="/api/v1/query", query="metric=cpu&end=" + "9" * 40, authorized=True)
            def check(path: str, query: str, authorized: bool) -> None:
                async def call() -> tuple[int, object]:
                    headers = {"Authorization": "Bearer good" if authorized else "Bearer bad"}
                    resp = await client.get(f"{path}?{query}", headers=headers)
                    body = await resp.json(content_type=None)
                    return resp.status, body

                with bounded(f"GET {path}?{query[:60]}"):
                    status, body = runner.run(call())
                assert status < 500, (status, body)
                assert isinstance(body, dict)
                if status >= 400:
                    assert str(body.get("error", "")).strip(), body
                    assert status != 401 or not authorized

            check()
        finally:
            runner.run(client.close())


def test_argus_errors_are_the_only_rejections() -> None:
    """The tree the properties above accept is the documented one."""
    assert issubclass(InvalidArgument, ArgusError) and issubclass(ResourceExhausted, ArgusError)
