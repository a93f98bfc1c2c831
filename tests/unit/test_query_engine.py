from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner, Result

from argus.commands import query_cmd
from contracts.argus.query.v1 import query_pb2
from core import sketches
from core.chunks import decode_chunk, decode_chunks, encode_chunk
from core.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from core.model import DEFAULT_TIERS, MetricKind, series_id
from core.points import Points, from_hashes, from_observations, from_values, key_bounds, read_agg
from core.ports import LabelFilter, MetricSummary, SeriesRecord, StoredChunk
from query_side import engine as engine_module
from query_side.engine import DecodedChunkCache, QueryEngine
from query_side.grpc_service import PARAMETER_METADATA_KEY, QueryServicer
from query_side.http_gateway import make_http_app
from query_side.planner import Matcher, MatchOp, QuerySpec

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NOW_MS = 1_764_072_000_000  # 2025-11-25T12:00:00Z, on every step boundary
TENANT = "acme"


# ------------------------------------------------------------------------------ fakes


class FakeIndex:
    """In-memory SeriesIndex: equality filters like the real postings (region included)."""

    def __init__(self) -> None:
        self.records: list[SeriesRecord] = []
        self.find_calls = 0

    async def find_series(self, tenant: str, metric: str, where: LabelFilter | None = None) -> list[SeriesRecord]:
        self.find_calls += 1
        equal = dict(where.equal) if where else {}
        out = []
        for r in self.records:
            labels = {**dict(r.labels), "region": r.region}
            if r.tenant == tenant and r.metric == metric and all(labels.get(k) == v for k, v in equal.items()):
                out.append(r)
        return out

    async def upsert_series(self, records: Sequence[SeriesRecord]) -> None:
        raise NotImplementedError

    async def tenant_series(self, tenant: str | None = None) -> list[SeriesRecord]:
        raise NotImplementedError

    async def list_metrics(self, tenant: str) -> list[MetricSummary]:
        counts: dict[tuple[str, int], int] = {}
        for r in self.records:
            if r.tenant == tenant:
                counts[(r.metric, r.kind)] = counts.get((r.metric, r.kind), 0) + 1
        return [MetricSummary(name=m, kind=k, series_count=n) for (m, k), n in counts.items()]

    async def label_values(self, tenant: str, label: str, metric: str | None = None) -> list[str]:
        values = set()
        for r in self.records:
            if r.tenant == tenant and (metric is None or r.metric == metric):
                labels = {**dict(r.labels), "region": r.region}
                if label in labels:
                    values.add(labels[label])
        return sorted(values)


class FakeChunks:
    """In-memory ChunkStore keyed by (tier, series id, chunk start)."""

    def __init__(self) -> None:
        self.chunks: dict[tuple[str, int, int], StoredChunk] = {}
        self.read_calls: list[tuple[str, int]] = []

    async def write_chunks(self, tier: str, chunks: Sequence[StoredChunk]) -> None:
        raise NotImplementedError

    async def get_chunks(self, tier: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredChunk]:
        raise NotImplementedError

    async def delete_before(self, tier: str, before_ms: int, chunk_span_ms: int) -> int:
        raise NotImplementedError

    async def read_range(
        self, tier: str, series_ids: Sequence[int], start_ms: int, end_ms: int, chunk_span_ms: int
    ) -> list[StoredChunk]:
        self.read_calls.append((tier, len(series_ids)))
        wanted = set(series_ids)
        first = start_ms - start_ms % chunk_span_ms
        return [
            c for (t, sid, start), c in self.chunks.items() if t == tier and sid in wanted and first <= start < end_ms
        ]


class World:
    """A tenant's series written to every tier, as the rollup projector would."""

    def __init__(self) -> None:
        self.index = FakeIndex()
        self.store = FakeChunks()
        self.now_ms = NOW_MS
        self.engine = QueryEngine(self.index, self.store, DEFAULT_TIERS, clock=lambda: self.now_ms)

    def add_series(
        self, metric: str, kind: MetricKind, labels: Mapping[str, str], region: str = "eu", tenant: str = TENANT
    ) -> int:
        canonical = tuple(sorted(labels.items()))
        sid = series_id(tenant, region, metric, canonical)
        self.index.records.append(
            SeriesRecord(
                tenant=tenant,
                series_id=sid,
                metric=metric,
                kind=int(kind),
                region=region,
                labels=canonical,
                first_seen_ms=0,
                last_seen_ms=NOW_MS,
            )
        )
        return sid

    def write(self, sid: int, kind: MetricKind, build: Any, *args: Any) -> None:
        """`build(key, ts, *args, step_ms)` gives the 5s points; coarser tiers are built the
        same way from the raw samples, then cut into chunks."""
        for tier in DEFAULT_TIERS:
            pts: Points = build(*args, tier.step_ms)
            if len(pts) == 0:
                continue
            chunk_of = pts.ts - pts.ts % tier.chunk_span_ms
            for start in np.unique(chunk_of).tolist():
                part = pts.take(chunk_of == start)
                data = encode_chunk(part, kind=kind, step_ms=tier.step_ms, chunk_start_ms=start)
                self.store.chunks[(tier.name, sid, start)] = StoredChunk(
                    series_id=sid, chunk_start_ms=start, data=data, partition=0, applied_offset=0
                )

    def gauge(self, metric: str, labels: Mapping[str, str], ts: Any, values: Any, region: str = "eu") -> int:
        sid = self.add_series(metric, MetricKind.GAUGE, labels, region)
        t = np.asarray(ts, dtype=np.int64)
        self.write(sid, MetricKind.GAUGE, lambda step: from_values(np.zeros(len(t)), t, values, step))
        return sid

    def counter(self, metric: str, labels: Mapping[str, str], ts: Any, deltas: Any, region: str = "eu") -> int:
        sid = self.add_series(metric, MetricKind.COUNTER, labels, region)
        t = np.asarray(ts, dtype=np.int64)
        self.write(sid, MetricKind.COUNTER, lambda step: from_values(np.zeros(len(t)), t, deltas, step))
        return sid

    def timer(self, metric: str, labels: Mapping[str, str], ts: int, observations: Any, region: str = "eu") -> int:
        sid = self.add_series(metric, MetricKind.TIMER, labels, region)
        obs = np.asarray(observations, dtype=np.float64)
        self.write(sid, MetricKind.TIMER, lambda step: from_observations([0], [ts], [len(obs)], obs, step))
        return sid

    def distinct(
        self, metric: str, labels: Mapping[str, str], ts: int, values: Sequence[str], region: str = "eu"
    ) -> int:
        sid = self.add_series(metric, MetricKind.DISTINCT, labels, region)
        hashes = sketches.hash_strings(values)
        self.write(sid, MetricKind.DISTINCT, lambda step: from_hashes([0], [ts], [len(hashes)], hashes, step))
        return sid


def minute_ts(start_ms: int, minutes: int) -> npt.NDArray[np.int64]:
    return start_ms + np.arange(minutes, dtype=np.int64) * MINUTE


def spec(metric: str, *, start_ago: int = HOUR, end_ago: int = 0, **kw: Any) -> QuerySpec:
    return QuerySpec(tenant=TENANT, metric=metric, start_ms=NOW_MS - start_ago, end_ms=NOW_MS - end_ago, **kw)


@pytest.fixture
def world() -> World:
    return World()


# ------------------------------------------------------------------------------ engine


async def test_avg_by_region_merges_hosts_per_bucket(world: World) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    for host, value in (("a", 10.0), ("b", 20.0)):
        world.gauge("cpu", {"host": host}, ts, np.full(60, value), region="eu")
    world.gauge("cpu", {"host": "c"}, ts, np.full(60, 7.0), region="us")

    result = await world.engine.query(spec("cpu", period="1m", group_by=("region",)))

    assert result.tier == "1m" and result.agg == "avg"
    assert [dict(s.labels) for s in result.series] == [{"region": "eu"}, {"region": "us"}]
    eu, us = result.series
    assert eu.ts.tolist() == ts.tolist()
    assert np.all(eu.values == 15.0)
    assert np.all(us.values == 7.0)
    assert result.stats.series_matched == 3
    assert world.store.read_calls == [("1m", 3)]


async def test_no_group_by_merges_everything_into_one_unlabelled_series(world: World) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    world.gauge("cpu", {"host": "a"}, ts, np.full(60, 1.0), region="eu")
    world.gauge("cpu", {"host": "b"}, ts, np.full(60, 2.0), region="us")

    result = await world.engine.query(spec("cpu", period="1m", agg="sum"))

    assert len(result.series) == 1
    assert dict(result.series[0].labels) == {}
    assert np.all(result.series[0].values == 3.0)


async def test_group_by_star_keeps_every_series_with_all_labels_and_region(world: World) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    world.gauge("cpu", {"host": "a", "env": "prod"}, ts, np.full(60, 1.0), region="eu")
    world.gauge("cpu", {"host": "b", "env": "prod"}, ts, np.full(60, 2.0), region="us")

    result = await world.engine.query(spec("cpu", period="1m", group_by=("*",)))

    assert [dict(s.labels) for s in result.series] == [
        {"env": "prod", "host": "a", "region": "eu"},
        {"env": "prod", "host": "b", "region": "us"},
    ]
    assert [float(s.values[0]) for s in result.series] == [1.0, 2.0]


async def test_group_by_missing_label_groups_under_empty_value(world: World) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    world.gauge("cpu", {"host": "a", "team": "x"}, ts, np.full(60, 1.0))
    world.gauge("cpu", {"host": "b"}, ts, np.full(60, 3.0))
    world.gauge("cpu", {"host": "c"}, ts, np.full(60, 5.0))

    result = await world.engine.query(spec("cpu", period="1m", group_by=("team",)))

    assert {s.labels["team"]: float(s.values[0]) for s in result.series} == {"": 4.0, "x": 1.0}


async def test_p99_across_hosts_is_the_p99_of_all_observations(world: World) -> None:
    rng = np.random.default_rng(7)
    fast = rng.lognormal(mean=2.0, sigma=0.3, size=5_000)
    slow = rng.lognormal(mean=5.0, sigma=0.5, size=500)
    bucket = NOW_MS - 30 * MINUTE
    world.timer("latency", {"host": "fast"}, bucket, fast)
    world.timer("latency", {"host": "slow"}, bucket, slow)

    result = await world.engine.query(spec("latency", period="1m"))

    assert result.agg == "p99"
    (series,) = result.series
    union = np.concatenate([fast, slow])
    exact = float(np.quantile(union, 0.99, method="lower"))
    assert series.ts.tolist() == [bucket]
    assert abs(float(series.values[0]) - exact) <= 0.01 * exact
    # far from either host's own p99, so a mean of per-host p99s would fail
    assert abs(float(np.quantile(fast, 0.99)) - exact) > 0.1 * exact
    # the second answer comes from decoded (closed) chunks kept in memory: the same
    cached = await world.engine.query(spec("latency", period="1m", group_by=("*",)))
    again = await world.engine.query(spec("latency", period="1m"))
    assert np.array_equal(again.series[0].values, series.values)
    assert len(cached.series) == 2


async def test_distinct_across_series_counts_the_union(world: World) -> None:
    bucket = NOW_MS - 10 * MINUTE
    a = [f"user-{i}" for i in range(0, 10_000)]
    b = [f"user-{i}" for i in range(5_000, 15_000)]
    world.distinct("users", {"host": "a"}, bucket, a)
    world.distinct("users", {"host": "b"}, bucket, b)

    result = await world.engine.query(spec("users", period="5m"))

    (series,) = result.series
    union = sorted(set(a) | set(b))
    hashes = sketches.hash_strings(union)
    expected = read_agg(from_hashes([0], [bucket], [len(union)], hashes, 5 * MINUTE), "distinct", 5 * MINUTE)
    assert float(series.values[0]) == float(expected[0])  # HLL union is exact
    assert abs(float(series.values[0]) - 15_000) < 0.05 * 15_000


async def test_counter_rate_is_per_second_of_the_step(world: World) -> None:
    ts = NOW_MS - HOUR + np.arange(0, HOUR, 5 * SECOND, dtype=np.int64)
    world.counter("requests", {"host": "a"}, ts, np.full(len(ts), 30.0))  # 30 per 5 s = 6/s

    rate = await world.engine.query(spec("requests", period="1m"))
    increase = await world.engine.query(spec("requests", period="1m", agg="increase"))

    assert rate.agg == "rate"
    assert np.allclose(rate.series[0].values, 6.0)
    assert np.allclose(increase.series[0].values, 360.0)


async def test_where_filters_apply_regex_and_not_equal_per_series(world: World) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    for i, host in enumerate(["web-1", "web-2", "web-10", "db-1"]):
        world.gauge("cpu", {"host": host, "env": "dev" if host == "web-2" else "prod"}, ts, np.full(60, float(i)))

    result = await world.engine.query(
        spec(
            "cpu",
            period="1m",
            group_by=("host",),
            matchers=(
                Matcher(name="host", op=MatchOp.REGEX, value="web-[0-9]"),
                Matcher(name="env", op=MatchOp.NOT_EQUAL, value="dev"),
            ),
        )
    )

    assert [s.labels["host"] for s in result.series] == ["web-1"]
    assert result.stats.series_matched == 1


async def test_equality_and_region_go_through_the_index(world: World) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    world.gauge("cpu", {"host": "a", "env": "prod"}, ts, np.full(60, 1.0), region="eu")
    world.gauge("cpu", {"host": "b", "env": "prod"}, ts, np.full(60, 2.0), region="us")
    world.gauge("cpu", {"host": "c", "env": "dev"}, ts, np.full(60, 4.0), region="us")

    result = await world.engine.query(
        spec("cpu", period="1m", region="us", matchers=(Matcher(name="env", op=MatchOp.EQUAL, value="prod"),))
    )

    assert result.stats.series_matched == 1
    assert float(result.series[0].values[0]) == 2.0


async def test_points_outside_the_range_are_dropped(world: World) -> None:
    ts = minute_ts(NOW_MS - 3 * HOUR, 180)
    world.gauge("cpu", {"host": "a"}, ts, np.arange(180, dtype=np.float64))

    result = await world.engine.query(spec("cpu", period="1m", start_ago=2 * HOUR, end_ago=HOUR))

    (series,) = result.series
    assert series.ts[0] == NOW_MS - 2 * HOUR
    assert series.ts[-1] == NOW_MS - HOUR - MINUTE  # end is exclusive
    assert series.values.tolist() == list(map(float, range(60, 120)))


async def test_unknown_metric_is_an_empty_result_without_reading_chunks(world: World) -> None:
    result = await world.engine.query(spec("nope"))
    assert result.series == ()
    assert result.stats.series_matched == 0
    assert world.store.read_calls == []


async def test_agg_not_valid_for_the_kind_fails_before_reading_chunks(world: World) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    with pytest.raises(InvalidArgument) as info:
        await world.engine.query(spec("cpu", agg="p99"))
    assert info.value.parameter == "agg"
    assert world.store.read_calls == []


async def test_other_tenants_series_are_invisible(world: World) -> None:
    world.add_series("cpu", MetricKind.GAUGE, {"host": "a"}, tenant="other")
    result = await world.engine.query(spec("cpu"))
    assert result.stats.series_matched == 0


async def test_more_than_ten_thousand_series_is_resource_exhausted(world: World) -> None:
    for i in range(10_001):
        world.add_series("big", MetricKind.GAUGE, {"host": f"h{i}"})
    with pytest.raises(ResourceExhausted, match="10,000 series"):
        await world.engine.query(spec("big"))
    assert world.store.read_calls == []


async def test_result_over_the_point_limit_is_resource_exhausted(world: World) -> None:
    for i in range(2_000):
        world.add_series("wide", MetricKind.GAUGE, {"host": f"h{i}"})
    with pytest.raises(ResourceExhausted, match="100,000 points"):
        await world.engine.query(spec("wide", period="1m", group_by=("*",)))


async def test_auto_period_coarsens_for_many_groups(world: World) -> None:
    for i in range(1_000):
        world.add_series("wide", MetricKind.GAUGE, {"host": f"h{i}"})
    result = await world.engine.query(spec("wide", group_by=("host",)))
    assert result.tier == "1m"  # 5s would be 720 x 1,000 points


async def test_series_lookups_are_cached_for_about_a_second(world: World) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    await world.engine.query(spec("cpu"))
    await world.engine.query(spec("cpu", agg="max"))
    assert world.index.find_calls == 1
    world.now_ms += 1_000
    await world.engine.query(spec("cpu"))
    assert world.index.find_calls == 2
    await world.engine.query(spec("cpu", region="eu"))  # another filter, another entry
    assert world.index.find_calls == 3


async def test_group_results_match_a_per_group_reference(world: World) -> None:
    """Cross-check the vectorised path against a direct merge per group."""
    rng = np.random.default_rng(3)
    ts = minute_ts(NOW_MS - 2 * HOUR, 120)
    expected: dict[str, list[npt.NDArray[np.float64]]] = {}
    for i in range(12):
        values = rng.normal(50, 10, size=120).round(3)
        keep = rng.random(120) > 0.2  # sparse series
        region = ("eu", "us", "ap")[i % 3]
        world.gauge("cpu", {"host": f"h{i}"}, ts[keep], values[keep], region=region)
        full = np.full(120, np.nan)
        full[keep] = values[keep]
        expected.setdefault(region, []).append(full)

    result = await world.engine.query(spec("cpu", start_ago=2 * HOUR, period="1m", group_by=("region",), agg="max"))

    for s in result.series:
        stacked = np.vstack(expected[s.labels["region"]])
        present = ~np.all(np.isnan(stacked), axis=0)
        assert s.ts.tolist() == ts[present].tolist()
        assert np.array_equal(s.values, np.nanmax(stacked[:, present], axis=0))


class CountingDecoder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = decode_chunk

        def counted(data: bytes, *, key: int) -> Any:
            self.calls += 1
            return original(data, key=key)

        original_many = decode_chunks

        def counted_many(datas: Any, keys: Any, **options: Any) -> Any:
            self.calls += len(datas)
            return original_many(datas, keys, **options)

        monkeypatch.setattr(engine_module, "decode_chunk", counted)
        monkeypatch.setattr(engine_module, "decode_chunks", counted_many)


async def test_closed_chunks_are_decoded_once_until_they_change(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = CountingDecoder(monkeypatch)
    day_ago = NOW_MS - DAY  # the 1m chunk holding it (12 h span) has ended
    sid = world.gauge("cpu", {"host": "a"}, minute_ts(day_ago, 60), np.full(60, 1.0))
    q = spec("cpu", start_ago=DAY, end_ago=DAY - HOUR, period="1m")

    first = await world.engine.query(q)
    again = await world.engine.query(q)
    assert decoder.calls == 1
    assert np.array_equal(first.series[0].values, again.series[0].values)

    # late data rewrites the chunk: same key, new applied offset and bytes
    key = ("1m", sid, day_ago - day_ago % (12 * HOUR))
    old = world.store.chunks[key]
    pts = from_values(np.zeros(60), minute_ts(day_ago, 60), np.full(60, 5.0), MINUTE)
    data = encode_chunk(pts, kind=MetricKind.GAUGE, step_ms=MINUTE, chunk_start_ms=old.chunk_start_ms)
    world.store.chunks[key] = StoredChunk(
        series_id=sid, chunk_start_ms=old.chunk_start_ms, data=data, partition=0, applied_offset=old.applied_offset + 1
    )
    changed = await world.engine.query(q)
    assert decoder.calls == 2
    assert np.all(changed.series[0].values == 5.0)


async def test_open_chunks_are_decoded_on_every_query(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = CountingDecoder(monkeypatch)
    world.now_ms = NOW_MS + HOUR  # inside the 12:00-24:00 chunk of the 1m tier
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS, 60), np.full(60, 1.0))
    q = QuerySpec(tenant=TENANT, metric="cpu", start_ms=NOW_MS, end_ms=NOW_MS + HOUR, period="1m")
    await world.engine.query(q)
    await world.engine.query(q)
    assert decoder.calls == 2


def test_decoded_chunk_cache_evicts_least_recently_used_within_its_byte_budget() -> None:
    pts = from_values(np.zeros(100), np.arange(100, dtype=np.int64) * MINUTE, np.ones(100), MINUTE)
    size = len(pts) * 8 * 8 + 2 * 8 * 101 + 2 * 8 * 101
    cache = DecodedChunkCache(max_bytes=2 * size + 10)

    def chunk(sid: int) -> StoredChunk:
        return StoredChunk(series_id=sid, chunk_start_ms=0, data=b"x%d" % sid, partition=0, applied_offset=1)

    cache.put("1m", chunk(1), pts)
    cache.put("1m", chunk(2), pts)
    assert cache.get("1m", chunk(1)) is pts  # 1 is now the most recent
    cache.put("1m", chunk(3), pts)
    assert len(cache) == 2 and cache.nbytes <= 2 * size + 10
    assert cache.get("1m", chunk(2)) is None
    assert cache.get("1m", chunk(1)) is pts and cache.get("1m", chunk(3)) is pts
    assert cache.get("5m", chunk(1)) is None


def test_key_bounds_is_what_the_engine_splits_groups_by() -> None:
    pts = from_values([0, 0, 2], [0, MINUTE, 0], [1.0, 2.0, 3.0], MINUTE)
    keys, offsets = key_bounds(pts)
    assert keys.tolist() == [0, 2] and offsets.tolist() == [0, 2, 3]


async def test_list_metrics_and_label_values(world: World) -> None:
    world.add_series("cpu", MetricKind.GAUGE, {"host": "b"}, region="us")
    world.add_series("cpu", MetricKind.GAUGE, {"host": "a"})
    world.add_series("api.requests", MetricKind.COUNTER, {"host": "a"})
    metrics = await world.engine.list_metrics(TENANT)
    assert [(m.name, m.series_count) for m in metrics] == [("api.requests", 1), ("cpu", 2)]
    assert await world.engine.label_values(TENANT, "host", "cpu") == ["a", "b"]
    assert await world.engine.label_values(TENANT, "region") == ["eu", "us"]


# ------------------------------------------------------------------------------ HTTP


class Keys:
    def tenant_for(self, api_key: str | None) -> str:
        if api_key is None:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>'")
        if api_key != "good":
            raise Unauthenticated("unknown or revoked API key")
        return TENANT


AUTH = {"Authorization": "Bearer good"}


@pytest.fixture
async def http(world: World) -> Any:
    ts = minute_ts(NOW_MS - HOUR, 60)
    world.gauge("cpu", {"host": "a"}, ts, np.full(60, 1.0), region="eu")
    values = np.full(60, 3.0)
    values[5] = np.nan  # a NaN gauge sample comes back as a null avg
    world.gauge("cpu", {"host": "b"}, ts, values, region="us")
    app = make_http_app(world.engine, Keys(), clock=lambda: world.now_ms)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_http_query_json_shape(http: TestClient[Any, Any]) -> None:
    resp = await http.get(
        "/api/v1/query",
        params=[("metric", "cpu"), ("period", "1m"), ("group_by", "region"), ("where", "host=~[ab]")],
        headers=AUTH,
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["tier"] == "1m"
    assert [s["labels"] for s in body["series"]] == [{"region": "eu"}, {"region": "us"}]
    eu, us = body["series"]
    assert eu["points"][0] == [NOW_MS - HOUR, 1.0]
    assert len(eu["points"]) == 60
    assert us["points"][5] == [NOW_MS - HOUR + 5 * MINUTE, None]
    assert set(body["stats"]) == {"series_matched", "chunks_read", "points_read", "elapsed_ms"}
    assert body["stats"]["series_matched"] == 2


async def test_http_group_by_accepts_comma_separated_and_repeated(http: TestClient[Any, Any]) -> None:
    for params in ([("group_by", "region,host")], [("group_by", "region"), ("group_by", "host")]):
        resp = await http.get("/api/v1/query", params=[("metric", "cpu"), *params], headers=AUTH)
        body = await resp.json()
        assert [s["labels"] for s in body["series"]] == [
            {"region": "eu", "host": "a"},
            {"region": "us", "host": "b"},
        ]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"metric": "cpu", "start": "yesterday"}, "start"),
        ({"metric": "cpu", "end": "2026-01-01T00:00:00"}, "end"),
        ({"metric": "cpu", "start": "now", "end": "-1h"}, "start"),
        ({"metric": "cpu", "period": "2m"}, "period"),
        ({"metric": "cpu", "agg": "p99"}, "agg"),
        ({"metric": "cpu", "where": "host=~("}, "where"),
        ({"metric": "cpu", "where": "host"}, "where"),
        ({"metric": "cpu", "group_by": "host-name"}, "group_by"),
        ({"start": "-1h"}, "metric"),
        ({"metric": "cpu", "grup_by": "host"}, "grup_by"),
    ],
)
async def test_http_bad_parameter_is_400_naming_it(
    http: TestClient[Any, Any], params: dict[str, str], parameter: str
) -> None:
    resp = await http.get("/api/v1/query", params=params, headers=AUTH)
    assert resp.status == 400
    body = await resp.json()
    assert body["parameter"] == parameter
    assert body["error"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "missing API key"), ({"Authorization": "Bearer bad"}, "unknown"), ({"Authorization": "Basic x"}, "missing")],
)
async def test_http_without_a_valid_key_is_401(
    http: TestClient[Any, Any], headers: dict[str, str], message: str
) -> None:
    for path in ("/api/v1/query?metric=cpu", "/api/v1/metrics", "/api/v1/labels/host/values"):
        resp = await http.get(path, headers=headers)
        assert resp.status == 401
        assert message in (await resp.json())["error"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_http_limits_are_429(world: World, http: TestClient[Any, Any]) -> None:
    for i in range(2_000):
        world.add_series("wide", MetricKind.GAUGE, {"host": f"h{i}"})
    resp = await http.get("/api/v1/query?metric=wide&period=1m&group_by=*", headers=AUTH)
    assert resp.status == 429
    assert "100,000" in (await resp.json())["error"]


async def test_http_unexpected_error_is_a_generic_500(world: World, http: TestClient[Any, Any]) -> None:
    async def broken(*args: Any, **kwargs: Any) -> list[SeriesRecord]:
        raise RuntimeError("secret detail")

    world.index.find_series = broken  # type: ignore[method-assign]
    resp = await http.get("/api/v1/query?metric=cpu", headers=AUTH)
    assert resp.status == 500
    body = await resp.json()
    assert "secret" not in body["error"]


async def test_http_metrics_labels_health(http: TestClient[Any, Any]) -> None:
    metrics = await (await http.get("/api/v1/metrics", headers=AUTH)).json()
    assert metrics == {"metrics": [{"name": "cpu", "kind": "gauge", "series_count": 2}]}
    values = await (await http.get("/api/v1/labels/region/values?metric=cpu", headers=AUTH)).json()
    assert values == {"values": ["eu", "us"]}
    health = await http.get("/healthz")
    assert health.status == 200 and await health.json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status == 200


async def test_http_unknown_path_is_json_404(http: TestClient[Any, Any]) -> None:
    resp = await http.get("/api/v1/nope", headers=AUTH)
    assert resp.status == 404
    assert "error" in await resp.json()


async def test_http_readyz_follows_the_readiness_check(world: World) -> None:
    ready = False

    async def check() -> bool:
        return ready

    app = make_http_app(world.engine, Keys(), clock=lambda: world.now_ms, readiness=check)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/readyz")).status == 503
        ready = True
        assert (await client.get("/readyz")).status == 200


# ------------------------------------------------------------------------------ gRPC


class Aborted(Exception):
    pass


class FakeContext:
    """The part of grpc.aio.ServicerContext the servicer uses."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.code, self.details, self.trailing = code, details, trailing_metadata
        raise Aborted


GOOD_MD = [("authorization", "Bearer good")]


async def test_grpc_query_returns_series(world: World) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    world.gauge("cpu", {"host": "a"}, ts, np.full(60, 2.0), region="eu")
    servicer = QueryServicer(world.engine, Keys(), clock=lambda: world.now_ms)
    request = query_pb2.QueryRequest(
        metric="cpu",
        period="1m",
        group_by=["region"],
        matchers=[query_pb2.LabelMatcher(name="host", op=query_pb2.MATCH_OP_NOT_REGEX, value="z.*")],
    )

    response = await servicer.Query(request, FakeContext(GOOD_MD))

    assert response.tier == "1m"
    (series,) = response.series
    assert dict(series.labels) == {"region": "eu"}
    assert list(series.timestamps_ms) == ts.tolist()  # start_ms/end_ms 0: the last hour
    assert set(series.values) == {2.0}
    assert response.stats.series_matched == 1


@pytest.mark.parametrize(
    ("metadata", "request_", "code"),
    [
        ([], query_pb2.QueryRequest(metric="cpu"), grpc.StatusCode.UNAUTHENTICATED),
        ([("authorization", "Bearer bad")], query_pb2.QueryRequest(metric="cpu"), grpc.StatusCode.UNAUTHENTICATED),
        (GOOD_MD, query_pb2.QueryRequest(metric="cpu", period="7m"), grpc.StatusCode.INVALID_ARGUMENT),
        (GOOD_MD, query_pb2.QueryRequest(metric="cpu", agg="p99"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            GOOD_MD,
            query_pb2.QueryRequest(metric="cpu", period="5s", start_ms=NOW_MS - 6 * DAY, end_ms=NOW_MS),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
    ],
)
async def test_grpc_errors_map_to_status_codes(
    world: World, metadata: list[tuple[str, str]], request_: query_pb2.QueryRequest, code: grpc.StatusCode
) -> None:
    world.gauge("cpu", {"host": "a"}, minute_ts(NOW_MS - HOUR, 60), np.ones(60))
    servicer = QueryServicer(world.engine, Keys(), clock=lambda: world.now_ms)
    context = FakeContext(metadata)
    with pytest.raises(Aborted):
        await servicer.Query(request_, context)
    assert context.code == code
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert context.trailing[0][0] == PARAMETER_METADATA_KEY


async def test_grpc_list_metrics_and_label_values(world: World) -> None:
    world.add_series("cpu", MetricKind.GAUGE, {"host": "a"})
    servicer = QueryServicer(world.engine, Keys(), clock=lambda: world.now_ms)
    metrics = await servicer.ListMetrics(query_pb2.ListMetricsRequest(), FakeContext(GOOD_MD))
    assert [(m.name, m.kind, m.series_count) for m in metrics.metrics] == [("cpu", "gauge", 1)]
    values = await servicer.ListLabelValues(
        query_pb2.ListLabelValuesRequest(label="host"),
        FakeContext(GOOD_MD),
    )
    assert list(values.values) == ["a"]
    context = FakeContext(GOOD_MD)
    with pytest.raises(Aborted):
        await servicer.ListLabelValues(query_pb2.ListLabelValuesRequest(), context)
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT


# ------------------------------------------------------------------------------ CLI


async def cli(http: TestClient[Any, Any], *args: str) -> Result:
    url = str(http.make_url("/")).rstrip("/")
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, query_cmd.query, [*args, "--http", url])


async def test_cli_prints_one_column_per_series(http: TestClient[Any, Any]) -> None:
    result = await cli(http, "cpu", "--api-key", "good", "--period", "1m", "-g", "region")
    assert result.exit_code == 0, result.output
    assert "region=eu" in result.output and "region=us" in result.output
    assert "tier 1m" in result.output
    assert "–" in result.output  # the null avg


async def test_cli_json_is_the_raw_answer(http: TestClient[Any, Any]) -> None:
    result = await cli(http, "cpu", "--api-key", "good", "--since", "30m", "--json", "--where", "host=a")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["stats"]["series_matched"] == 1
    assert body["tier"] == "5s"  # auto: 360 steps of 5 s over 30 minutes
    assert len(body["series"][0]["points"]) == 30  # one sample a minute


async def test_cli_many_series_get_a_summary_table(world: World, http: TestClient[Any, Any]) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    for i in range(8):
        world.gauge("disk", {"host": f"h{i}"}, ts, np.arange(60, dtype=np.float64) + i)
    result = await cli(http, "disk", "--api-key", "good", "-g", "*")
    assert result.exit_code == 0, result.output
    assert "8 series" in result.output
    assert "last" in result.output and "avg" in result.output


async def test_cli_shows_the_servers_error_and_fails(http: TestClient[Any, Any]) -> None:
    result = await cli(http, "cpu", "--api-key", "good", "--start", "yesterday")
    assert result.exit_code == 1
    assert "parameter: start" in result.output
    wrong = await cli(http, "cpu", "--api-key", "nope")
    assert wrong.exit_code == 1
    assert "401" in wrong.output and "unknown" in wrong.output


async def test_cli_reads_the_dev_key_from_the_data_dir(http: TestClient[Any, Any], tmp_path: Path) -> None:
    (tmp_path / "api_key").write_text("good\n")
    result = await cli(http, "cpu", "--data-dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    missing = await cli(http, "cpu", "--data-dir", str(tmp_path / "none"))
    assert missing.exit_code == 1
    assert "no API key" in missing.output


def test_cli_rejects_since_with_start() -> None:
    result = CliRunner().invoke(query_cmd.query, ["cpu", "--since", "1h", "--start", "-2h", "--api-key", "k"])
    assert result.exit_code == 2
    assert "either --since or --start" in result.output


def test_cli_since_with_end_sends_an_absolute_range() -> None:
    params = dict(query_cmd._params("cpu", (), "2h", None, "1764072000000", "auto", None, (), None))
    assert params["start"] == str(1_764_072_000_000 - 2 * HOUR)
    assert params["end"] == "1764072000000"
