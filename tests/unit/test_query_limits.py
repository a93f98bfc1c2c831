"""Hostile queries: linear-time regexes, bounded times and group_by, the decode budget, the
time limit, streaming aggregation and an event loop that keeps answering during a heavy query."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from command_side.ingest.grpc_service import IngestService
from core.chunks import decode_chunk, decode_chunks, encode_chunks
from core.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable
from core.model import DEFAULT_TIERS, TIER_BY_NAME, MetricKind
from core.points import Points, from_values
from core.ports import StoredChunk
from core.tenancy import api_key_from_metadata, tenant_from_metadata
from core.transport_errors import PARAMETER_METADATA_KEY, grpc_status, http_error
from query_side import engine as engine_module
from query_side.engine import QueryEngine
from query_side.grpc_service import QueryServicer
from query_side.handlers import LabelValuesRequest, QueryHandlers
from query_side.http_gateway import HttpRunner, make_http_app
from query_side.limits import QueryLimits, QueryToken
from query_side.planner import MAX_GROUP_BY, Matcher, MatchOp, QuerySpec, compile_selector, parse_matcher
from query_side.timeparse import MAX_TIME_MS, parse_range
from tests.unit import test_cold_archive as cold
from tests.unit.test_query_engine import (
    AUTH,
    DAY,
    HOUR,
    MINUTE,
    NOW_MS,
    TENANT,
    Aborted,
    FakeChunks,
    FakeContext,
    Keys,
    World,
    minute_ts,
    spec,
)


@pytest.fixture
def world() -> World:
    return World()


# ------------------------------------------------------------------------------ regex


@pytest.mark.timeout(20)
def test_catastrophic_regex_over_a_256_byte_label_value_is_linear() -> None:
    selector = compile_selector([parse_matcher("v=~(a+)+$")])
    value = "a" * 255 + "b"  # Python's backtracking `re` would take longer than the universe
    started = time.perf_counter()
    for _ in range(1_000):
        assert not selector.matches({"v": value})
    assert time.perf_counter() - started < 1.0
    assert selector.matches({"v": "aaaa"})


@pytest.mark.parametrize(
    "pattern",
    [
        "(?=a)b",  # lookahead: not linear, RE2 refuses it
        r"(a)\1",  # backreference
        "a(",
        "x" * 2_000,  # over the length cap
    ],
)
def test_regex_re2_cannot_run_in_linear_time_or_too_long_is_invalid_where(pattern: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        compile_selector([Matcher(name="host", op=MatchOp.REGEX, value=pattern)])
    assert caught.value.parameter == "where"
    assert len(str(caught.value)) < 400  # the pattern is not echoed whole


def test_regex_is_anchored_at_both_ends() -> None:
    selector = compile_selector([parse_matcher("host=~web-[0-9]+"), parse_matcher("dc!~us-.*")])
    assert selector.matches({"host": "web-12", "dc": "eu-1"})
    assert not selector.matches({"host": "xweb-12", "dc": "eu-1"})
    assert not selector.matches({"host": "web-12x", "dc": "eu-1"})
    assert not selector.matches({"host": "web-12", "dc": "us-east"})


# ------------------------------------------------------------------------------ group_by and times


@pytest.mark.timeout(20)
async def test_forty_thousand_group_by_names_are_refused_fast_naming_the_limit(world: World) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    names = tuple(f"l{i}" for i in range(40_000))
    started = time.perf_counter()
    with pytest.raises(InvalidArgument) as caught:
        await world.engine.query(spec("cpu", group_by=names))
    assert time.perf_counter() - started < 1.0
    assert caught.value.parameter == "group_by"
    assert str(MAX_GROUP_BY) in str(caught.value)
    # The same name repeated is one name.
    result = await world.engine.query(spec("cpu", period="1m", group_by=("host",) * 40_000))
    assert [dict(s.labels) for s in result.series] == [{"host": "a"}]


@pytest.mark.parametrize(
    ("start", "end", "parameter"),
    [
        ("-" + "9" * 400 + "y", None, "start"),
        ("now-" + "9" * 20 + "d", None, "start"),
        (None, "9" * 30, "end"),
        (None, "9" * 5_000, "end"),
        (None, "now+" + "9" * 400 + "ms", "end"),
        ("-20000y", None, "start"),
    ],
)
def test_times_out_of_range_are_invalid_naming_the_parameter(
    start: str | None, end: str | None, parameter: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_range(start, end, now_ms=NOW_MS)
    assert caught.value.parameter == parameter
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "parameter"),
    [(-(2**63), NOW_MS, "start"), (NOW_MS - HOUR, 2**63 - 1, "end"), (NOW_MS - HOUR, MAX_TIME_MS + 1, "end")],
)
async def test_grpc_times_beyond_year_9999_are_invalid_argument(
    world: World, start_ms: int, end_ms: int, parameter: str
) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    with pytest.raises(InvalidArgument) as caught:
        await world.engine.query(QuerySpec(tenant=TENANT, metric="cpu", start_ms=start_ms, end_ms=end_ms))
    assert caught.value.parameter == parameter


# ------------------------------------------------------------------------------ HTTP edges


class JsonErrorsTestServer(TestServer):
    """The test server on the runner `argus up` uses for the HTTP API."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return HttpRunner(self.app, **kwargs)


@pytest.fixture
async def edge(world: World) -> Any:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    app = make_http_app(world.engine, Keys(), clock=lambda: world.now_ms)
    async with TestClient(JsonErrorsTestServer(app)) as client:
        yield client


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"start": "-" + "9" * 400 + "y"}, "start"),
        ({"end": "9" * 40}, "end"),
        ({"end": "now+" + "9" * 300 + "w"}, "end"),
        ({"where": "host=~(?=a)"}, "where"),
        ({"agg": "p" + "9" * 400}, "agg"),
    ],
)
async def test_http_overflowing_parameters_are_400_json_naming_them(
    edge: TestClient[Any, Any], params: dict[str, str], parameter: str
) -> None:
    resp = await edge.get("/api/v1/query", params={"metric": "cpu", **params}, headers=AUTH)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["parameter"] == parameter


async def test_http_over_long_url_and_header_get_json_errors(edge: TestClient[Any, Any]) -> None:
    resp = await edge.get("/api/v1/query", params={"metric": "cpu", "where": "host=" + "x" * 20_000}, headers=AUTH)
    assert resp.status == 400
    assert resp.content_type == "application/json"
    assert "longer than the limit" in (await resp.json())["error"]

    resp = await edge.get("/api/v1/query?metric=cpu", headers={**AUTH, "X-Big": "y" * 20_000})
    assert resp.status == 400
    assert resp.content_type == "application/json"
    assert set(await resp.json()) == {"error"}


# ------------------------------------------------------------------------------ one key reading


def test_the_key_is_read_the_same_whatever_the_header_case_or_value_type() -> None:
    for name in ("authorization", "Authorization", "AUTHORIZATION"):
        assert api_key_from_metadata([("x-other", "1"), (name, "Bearer good")]) == "good"
        assert api_key_from_metadata([(name, b"Bearer good")]) == "good"
    assert api_key_from_metadata([("authorization", "Basic x")]) is None
    assert api_key_from_metadata(None) is None
    assert tenant_from_metadata(Keys(), [("Authorization", "Bearer good")]) == TENANT


@pytest.mark.parametrize("name", ["authorization", "Authorization"])
async def test_ingest_and_query_accept_the_same_metadata(world: World, name: str) -> None:
    md = [(name, "Bearer good")]
    ingest = IngestService(acceptor=None, authenticator=Keys())  # type: ignore[arg-type]
    assert await ingest._tenant(FakeContext(md)) == TENANT
    servicer = QueryServicer(world.engine, Keys(), clock=lambda: world.now_ms)
    assert servicer._tenant(FakeContext(md)) == TENANT
    with pytest.raises(Aborted):
        await ingest._tenant(FakeContext([(name, "Bearer bad")]))


# ------------------------------------------------------------------------------ budget and streaming


def _dense(world: World, *, series: int, days: int, metric: str = "dense") -> None:
    """`series` gauges with a point every minute for `days` days before NOW_MS, on the 1m tier only."""
    tier = TIER_BY_NAME["1m"]
    per_chunk = tier.chunk_span_ms // tier.step_ms
    start = NOW_MS - days * DAY
    rng = np.random.default_rng(7)
    for s in range(series):
        sid = world.add_series(metric, MetricKind.GAUGE, {"host": f"h{s}", "rack": f"r{s % 3}"})
        items: list[tuple[Points, MetricKind | int, int, int]] = []
        for c in range(days * DAY // tier.chunk_span_ms):
            chunk_start = start + c * tier.chunk_span_ms
            ts = chunk_start + np.arange(per_chunk, dtype=np.int64) * tier.step_ms
            values = np.round(50 + np.cumsum(rng.normal(0, 1, per_chunk)), 2)
            items.append(
                (
                    from_values(np.zeros(per_chunk), ts, values, tier.step_ms),
                    MetricKind.GAUGE,
                    tier.step_ms,
                    chunk_start,
                )
            )
        for (_, _, _, chunk_start), data in zip(items, encode_chunks(items), strict=True):
            world.store.chunks[("1m", sid, chunk_start)] = StoredChunk(
                series_id=sid, chunk_start_ms=chunk_start, data=data, partition=0, applied_offset=0
            )


def _engine(world: World, **limits: int) -> QueryEngine:
    return QueryEngine(
        world.index, world.store, DEFAULT_TIERS, clock=lambda: world.now_ms, limits=QueryLimits(**limits)
    )


async def test_a_query_over_the_decode_budget_is_refused_before_decoding(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dense(world, series=20, days=2)  # 20 x 2,880 = 57,600 stored points
    decoded: list[int] = []
    original = decode_chunks

    def counting(datas: Any, keys: Any, **options: Any) -> Any:
        decoded.append(len(datas))
        return original(datas, keys, **options)

    monkeypatch.setattr(engine_module, "decode_chunks", counting)
    monkeypatch.setattr(engine_module, "decode_chunk", lambda *a, **k: pytest.fail("decoded"))
    engine = _engine(world, max_points_decoded=20_000)
    with pytest.raises(ResourceExhausted) as caught:
        await engine.query(spec("dense", start_ago=2 * DAY, period="1m", agg="count"))
    message = str(caught.value)
    assert "20,000" in message and "shorter range" in message and "coarser period" in message
    assert decoded == []
    # A narrower query (one rack: 7 series x 1 day, about 10k points) fits.
    result = await engine.query(
        spec("dense", start_ago=DAY, period="1m", agg="count", matchers=(parse_matcher("rack=r0"),))
    )
    assert result.stats.points_read <= 20_000
    assert sum(float(v) for s in result.series for v in s.values) == 7 * 1_440


@pytest.mark.parametrize("group_by", [(), ("rack",), ("*",)])
async def test_streamed_aggregation_equals_the_one_batch_answer(
    world: World, monkeypatch: pytest.MonkeyPatch, group_by: Sequence[str]
) -> None:
    _dense(world, series=9, days=2)
    for agg in ("count", "avg", "max", "last"):
        q = spec(
            "dense", start_ago=2 * DAY - 7 * HOUR, end_ago=3 * MINUTE, period="1m", agg=agg, group_by=tuple(group_by)
        )
        monkeypatch.setattr(engine_module, "DECODE_BATCH_POINTS", 10**9)
        whole = await _engine(world).query(q)
        monkeypatch.setattr(engine_module, "DECODE_BATCH_POINTS", 1_000)  # one or two chunks per batch
        streamed = await _engine(world).query(q)
        assert [dict(s.labels) for s in streamed.series] == [dict(s.labels) for s in whole.series]
        for a, b in zip(streamed.series, whole.series, strict=True):
            assert a.ts.tolist() == b.ts.tolist()
            np.testing.assert_allclose(a.values, b.values, rtol=1e-12)
        assert streamed.stats.points_read == whole.stats.points_read


# ------------------------------------------------------------------------------ time limit, cancellation


class BlockingChunks(FakeChunks):
    """A chunk store whose reads never finish (until cancelled): a stuck backend."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def read_range(
        self, tier: str, series_ids: Sequence[int], start_ms: int, end_ms: int, chunk_span_ms: int
    ) -> list[StoredChunk]:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")


async def test_a_query_over_its_time_limit_is_stopped_with_deadline_exceeded(world: World) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    store = BlockingChunks()
    engine = QueryEngine(
        world.index, store, DEFAULT_TIERS, clock=lambda: world.now_ms, limits=QueryLimits(timeout_ms=200)
    )
    with pytest.raises(DeadlineExceeded) as caught:
        await engine.query(spec("cpu"))
    assert "0.2 s" in str(caught.value) and "shorter range" in str(caught.value)
    assert store.cancelled.is_set()


async def test_a_cancelled_caller_cancels_the_query(world: World) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    store = BlockingChunks()
    engine = QueryEngine(world.index, store, DEFAULT_TIERS, clock=lambda: world.now_ms)
    task = asyncio.create_task(engine.query(spec("cpu")))
    await asyncio.wait_for(store.started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.cancelled.is_set()


def test_the_token_stops_worker_loops_on_cancel_or_deadline() -> None:
    token = QueryToken(timeout_ms=60_000)
    token.check()
    token.cancel()
    with pytest.raises(DeadlineExceeded):
        token.check()
    expired = QueryToken(timeout_ms=1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            expired.check()
        except DeadlineExceeded as exc:
            assert "limit of 0.001 s" in str(exc)
            break
    else:
        pytest.fail("the token never expired")


# ------------------------------------------------------------------------------ the loop keeps serving


@pytest.mark.timeout(240)
async def test_healthz_answers_while_a_heavy_query_runs(world: World) -> None:
    _dense(world, series=250, days=30)  # 250 x 43,200 = 10.8M stored points: seconds of CPU
    engine = _engine(world, max_points_decoded=50_000_000, timeout_ms=200_000)
    app = make_http_app(engine, Keys(), clock=lambda: world.now_ms)
    async with TestClient(JsonErrorsTestServer(app)) as client:
        heavy = asyncio.create_task(
            client.get(
                "/api/v1/query",
                params={
                    "metric": "dense",
                    "start": str(NOW_MS - 30 * DAY),
                    "end": str(NOW_MS),
                    "period": "1m",
                    "agg": "count",
                },
                headers=AUTH,
            )
        )
        started = time.perf_counter()
        latencies: list[float] = []
        while not heavy.done():
            at = time.perf_counter()
            resp = await asyncio.wait_for(client.get("/healthz"), 5.0)
            assert resp.status == 200
            latencies.append(time.perf_counter() - at)
        resp = await heavy
        took = time.perf_counter() - started
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["stats"]["points_read"] == 250 * 43_200
        print(f"measured heavy query {took:.2f} s, {len(latencies)} health checks, max {max(latencies) * 1000:.0f} ms")
        # Before: the loop was blocked for the whole query (seconds). The bound leaves room for
        # a busy shared machine and for this test's own client, which runs on the same loop.
        assert len(latencies) >= 3
        assert max(latencies) < 2.0
        assert sorted(latencies)[len(latencies) // 2] < 0.1


# ------------------------------------------------------------------------------ one error table, one handler


@pytest.mark.parametrize(
    ("exc", "code", "status"),
    [
        (InvalidArgument("start: bad", parameter="start"), grpc.StatusCode.INVALID_ARGUMENT, 400),
        (ResourceExhausted("too big"), grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (DeadlineExceeded("too slow"), grpc.StatusCode.DEADLINE_EXCEEDED, 503),
        (RuntimeError("secret"), grpc.StatusCode.INTERNAL, 500),
    ],
)
def test_grpc_and_http_answers_come_from_the_one_table(exc: Exception, code: grpc.StatusCode, status: int) -> None:
    got_code, details, trailing = grpc_status(exc)
    got_status, body, _ = http_error(exc)
    assert (got_code, got_status) == (code, status)
    assert details == body["error"]
    assert "secret" not in details
    parameter = getattr(exc, "parameter", None)
    assert body.get("parameter") == parameter
    assert trailing == (((PARAMETER_METADATA_KEY, parameter),) if parameter else ())


async def test_handlers_answer_for_the_tenant_they_are_given(world: World) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    world.gauge("cpu", {"host": "z"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    world.index.records[-1] = dataclasses.replace(world.index.records[-1], tenant="other")
    handlers = QueryHandlers(world.engine, Keys(), clock=lambda: world.now_ms)
    # The request's own tenant field does not widen what the caller sees.
    result = await handlers.query(TENANT, dataclasses.replace(spec("cpu", group_by=("*",)), tenant="other"))
    assert [s.labels["host"] for s in result.series] == ["a"]
    assert await handlers.label_values(TENANT, LabelValuesRequest(label="host")) == ["a"]
    with pytest.raises(InvalidArgument):
        await handlers.label_values(TENANT, LabelValuesRequest(label=""))
    assert handlers.authenticate([("Authorization", "Bearer good")]) == TENANT


# ------------------------------------------------------------------------------ cold reads in slices


@pytest.fixture
async def cold_world(tmp_path: Path) -> AsyncIterator[cold.World]:
    w = cold.World(tmp_path)
    await w.start()
    try:
        yield w
    finally:
        await w.close()


async def test_cold_rows_read_in_slices_equal_one_read_and_count_against_the_budget(
    cold_world: cold.World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = cold_world
    end = cold.DAY0 + 4 * DAY
    await w.write(cold.history(cold.DAY0, end))
    for day in range(1, 5):
        w.now = cold.DAY0 + day * DAY + 2 * HOUR
        await w.projector().archive_once()
    q = QuerySpec(
        tenant=cold.TENANT,
        metric="cpu",
        start_ms=cold.DAY0 + 3 * HOUR,
        end_ms=end,
        period="1m",
        agg="avg",
        group_by=("*",),
    )

    def engine(**limits: int) -> QueryEngine:
        return QueryEngine(w.hot, w.hot, cold.SHORT, clock=lambda: w.now, cold=w.cold, limits=QueryLimits(**limits))

    whole = await engine().query(q)
    monkeypatch.setattr(engine_module, "COLD_BATCH_ROWS", 1)  # one series per cold read
    sliced = await engine().query(q)
    assert whole.stats.cold_points_read > 0 and len(whole.series) > 1
    assert sliced.stats == dataclasses.replace(whole.stats, elapsed_ms=sliced.stats.elapsed_ms)
    for a, b in zip(sliced.series, whole.series, strict=True):
        assert dict(a.labels) == dict(b.labels) and a.ts.tolist() == b.ts.tolist()
        np.testing.assert_allclose(a.values, b.values, rtol=1e-12, equal_nan=True)
    with pytest.raises(ResourceExhausted, match="shorter range"):
        await engine(max_points_decoded=whole.stats.points_read - 1).query(q)


async def test_close_stops_running_queries_with_unavailable_and_refuses_new_ones(world: World) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    store = BlockingChunks()
    engine = QueryEngine(world.index, store, DEFAULT_TIERS, clock=lambda: world.now_ms)
    task = asyncio.create_task(engine.query(spec("cpu")))
    await asyncio.wait_for(store.started.wait(), 10)
    engine.close()
    # The read in flight is the store's; the engine stops at its next step.
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(Unavailable, match="stopping"):
        await engine.query(spec("cpu"))


async def test_close_ends_a_query_in_its_worker_with_unavailable(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _dense(world, series=4, days=2)
    monkeypatch.setattr(engine_module, "DECODE_BATCH_POINTS", 1)  # a check before every chunk
    monkeypatch.setattr(engine_module, "INLINE_WORK_MAX", 0)  # small as it is, decode in a worker
    engine = _engine(world)
    entered = threading.Event()
    release = threading.Event()
    original = decode_chunk

    def gated(data: bytes, *, key: int) -> Any:
        entered.set()
        release.wait(10)  # hold the worker until close() ran
        return original(data, key=key)

    monkeypatch.setattr(engine_module, "decode_chunk", gated)
    task = asyncio.create_task(engine.query(spec("dense", start_ago=2 * DAY, period="1m")))
    assert await asyncio.to_thread(entered.wait, 10)
    engine.close()
    release.set()
    with pytest.raises(Unavailable, match="stopping"):
        await asyncio.wait_for(task, 10)


async def test_small_steps_run_on_the_loop_and_large_ones_in_a_worker(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dense(world, series=4, days=2)
    engine = _engine(world)
    threads: list[str] = []
    original = engine_module._aggregate

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(*args)

    monkeypatch.setattr(engine_module, "_aggregate", spy)
    small = await engine.query(spec("dense", start_ago=2 * DAY, period="1m"))
    monkeypatch.setattr(engine_module, "INLINE_WORK_MAX", 0)
    large = await engine.query(spec("dense", start_ago=2 * DAY, period="1m"))
    assert threads[0] == threading.main_thread().name
    assert threads[1] != threading.main_thread().name
    assert [list(s.values) for s in small.series] == [list(s.values) for s in large.series]
