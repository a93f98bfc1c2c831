"""The PromQL evaluator and the Prometheus HTTP API over an in-memory read model: small cases
checked by hand, Argus's own semantics (counters from deltas, sketches, tiers), hostile input
and tenant isolation."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from core.errors import InvalidArgument, ResourceExhausted, Unauthenticated
from core.model import MetricKind
from core.points import from_values
from query_side.http_gateway import make_http_app
from query_side.promql import evaluator
from query_side.promql.evaluator import PromQuery, PromResult, evaluate
from query_side.promql.http_api import parse_step, parse_time
from query_side.promql.values import Scalar, Vector
from tests.unit.test_query_engine import HOUR, MINUTE, NOW_MS, TENANT, World

SECOND = 1_000
FIVE_S = 5 * SECOND


def five_s_ts(start_ms: int, n: int) -> Any:
    return start_ms + np.arange(n, dtype=np.int64) * FIVE_S


async def instant(world: World, query: str, at_ms: int = NOW_MS - 10 * MINUTE, **kw: Any) -> PromResult:
    q = PromQuery(tenant=TENANT, query=query, start_ms=at_ms, end_ms=at_ms, step_ms=0, **kw)
    return await evaluate(world.engine, q, now_ms=world.now_ms)


def values(result: PromResult) -> dict[tuple[tuple[str, str], ...], float]:
    assert isinstance(result.value, Vector)
    return {s.labels: float(s.values[0]) for s in result.value.series if not np.isnan(s.values[0])}


def by(result: PromResult, label: str) -> dict[str, float]:
    return {dict(k).get(label, ""): v for k, v in values(result).items()}


@pytest.fixture
def world() -> World:
    w = World()
    ts = five_s_ts(NOW_MS - HOUR, 720)  # one sample every 5 s over the last hour
    for host, region, level in (("a", "eu", 10.0), ("b", "eu", 20.0), ("c", "us", 40.0)):
        w.gauge("cpu.user", {"host": host}, ts, level + np.arange(720) % 7, region=region)
        w.counter("http.requests", {"host": host}, ts, np.full(720, level / 10), region=region)
    return w


# ------------------------------------------------------------------------------ semantics


async def test_selector_takes_the_last_sample_within_five_minutes(world: World) -> None:
    at = NOW_MS - 10 * MINUTE  # sample index 600: 600 % 7 == 5
    assert by(await instant(world, 'cpu_user{host="a"}', at), "host") == {"a": 15.0}
    # 3 s after a sample: still that sample (no interpolation).
    assert by(await instant(world, 'cpu_user{host="a"}', at + 3 * SECOND), "host") == {"a": 15.0}
    # Past the data's end by more than the 5 min lookback: nothing.
    assert values(await instant(world, "cpu_user", NOW_MS + 6 * MINUTE)) == {}


async def test_all_four_matchers_and_region_as_a_label(world: World) -> None:
    assert set(by(await instant(world, 'cpu_user{host!="a"}'), "host")) == {"b", "c"}
    assert set(by(await instant(world, 'cpu_user{host=~"a|c"}'), "host")) == {"a", "c"}
    assert set(by(await instant(world, 'cpu_user{host!~"a|c"}'), "host")) == {"b"}
    assert set(by(await instant(world, 'cpu_user{region="us"}'), "host")) == {"c"}
    assert set(by(await instant(world, '{__name__=~"cpu_.*", region="eu"}'), "host")) == {"a", "b"}


async def test_rate_and_increase_are_exact_sums_of_the_stored_deltas(world: World) -> None:
    # Host a adds 1.0 every 5 s: 60 deltas in (t - 5m, t].
    assert by(await instant(world, "increase(http_requests[5m])"), "host") == {"a": 60.0, "b": 120.0, "c": 240.0}
    assert by(await instant(world, "rate(http_requests[5m])"), "host") == pytest.approx({"a": 0.2, "b": 0.4, "c": 0.8})


async def test_a_counter_selector_is_cumulative_since_the_series_began(world: World) -> None:
    # Sample i of host a is the running sum 1.0 * (i + 1); at index 600 it is 601.
    assert by(await instant(world, 'http_requests{host="a"}'), "host") == {"a": 601.0}
    # The same answer from a range query starting late (the sum before it comes from the tiers).
    q = PromQuery(
        tenant=TENANT,
        query='http_requests{host="a"}',
        start_ms=NOW_MS - 10 * MINUTE - 30 * SECOND,
        end_ms=NOW_MS - 10 * MINUTE,
        step_ms=15 * SECOND,
    )
    result = await evaluate(world.engine, q, now_ms=world.now_ms)
    assert isinstance(result.value, Vector)
    assert result.value.series[0].values.tolist() == [595.0, 598.0, 601.0]


async def test_offset_and_at_move_the_evaluation_time(world: World) -> None:
    at = NOW_MS - 10 * MINUTE
    assert by(await instant(world, 'cpu_user{host="a"} offset 5s', at), "host") == {"a": 14.0}
    pinned = f'cpu_user{{host="a"}} @ {(at - 10 * SECOND) / 1000:.0f}'
    assert by(await instant(world, pinned, at + HOUR // 2), "host") == {"a": 13.0}


async def test_aggregations_by_and_without(world: World) -> None:
    at = NOW_MS - 10 * MINUTE  # a=15, b=25, c=45
    assert values(await instant(world, "sum(cpu_user)", at)) == {(): 85.0}
    assert by(await instant(world, "avg by (region) (cpu_user)", at), "region") == {"eu": 20.0, "us": 45.0}
    assert by(await instant(world, "max without (host) (cpu_user)", at), "region") == {"eu": 25.0, "us": 45.0}
    assert values(await instant(world, "count(cpu_user)", at)) == {(): 3.0}
    assert values(await instant(world, "quantile(0.5, cpu_user)", at)) == {(): 25.0}
    assert values(await instant(world, "stddev(cpu_user)", at)) == pytest.approx({(): np.std([15, 25, 45])})
    assert set(by(await instant(world, "topk(2, cpu_user)", at), "host")) == {"b", "c"}
    assert set(by(await instant(world, "bottomk by (region) (1, cpu_user)", at), "host")) == {"a", "c"}
    counted = await instant(world, 'count_values("v", cpu_user > 20)', at)
    assert by(counted, "v") == {"25": 1.0, "45": 1.0}


async def test_binary_operators_match_on_labels(world: World) -> None:
    at = NOW_MS - 10 * MINUTE
    assert by(await instant(world, "cpu_user > 20", at), "host") == {"b": 25.0, "c": 45.0}
    assert by(await instant(world, "cpu_user > bool 20", at), "host") == {"a": 0.0, "b": 1.0, "c": 1.0}
    per_region = "cpu_user / on(region) group_left sum by (region) (cpu_user)"
    assert by(await instant(world, per_region, at), "host") == pytest.approx({"a": 15 / 40, "b": 25 / 40, "c": 1.0})
    assert set(by(await instant(world, 'cpu_user and on(host) cpu_user{region="us"}', at), "host")) == {"c"}
    assert set(by(await instant(world, 'cpu_user unless cpu_user{host="a"}', at), "host")) == {"b", "c"}
    with pytest.raises(InvalidArgument, match=r"many-to-many|duplicate"):
        await instant(world, "cpu_user + on(region) cpu_user", at)


async def test_functions_checked_by_hand(world: World) -> None:
    at = NOW_MS - 10 * MINUTE
    assert by(await instant(world, "clamp(cpu_user, 20, 30)", at), "host") == {"a": 20.0, "b": 25.0, "c": 30.0}
    assert by(await instant(world, 'sqrt(cpu_user{host="b"} - 9)', at), "host") == {"b": 4.0}
    replaced = await instant(world, 'label_replace(cpu_user, "h", "x-$1", "host", "(.*)")', at)
    assert set(by(replaced, "h")) == {"x-a", "x-b", "x-c"}
    assert values(await instant(world, "absent(nothing_here)", at)) == {(): 1.0}
    assert values(await instant(world, "absent(cpu_user)", at)) == {}
    result = await instant(world, "time()", at)
    assert isinstance(result.value, Scalar) and result.value.values[0] == at / 1000
    assert by(await instant(world, 'max_over_time(cpu_user{host="a"}[1m])', at), "host") == {"a": 16.0}
    assert by(await instant(world, 'changes(cpu_user{host="a"}[1m])', at), "host") == {"a": 12.0}


async def test_histogram_quantile_interpolates_within_a_bucket(world: World) -> None:
    ts = five_s_ts(NOW_MS - HOUR, 720)
    for le, count in (("1", 10.0), ("2", 30.0), ("+Inf", 40.0)):
        world.gauge("lat.bucket", {"le": le}, ts, np.full(720, count))
    # rank 0.5 * 40 = 20 falls in (1, 2]: 1 + (20 - 10) / 20.
    assert values(await instant(world, "histogram_quantile(0.5, lat_bucket)")) == {(("region", "eu"),): 1.5}


async def test_argus_quantile_merges_timer_sketches_across_hosts(world: World) -> None:
    bucket = NOW_MS - 10 * MINUTE
    world.timer("api.latency", {"host": "a"}, bucket - 2 * MINUTE, np.arange(1, 101, dtype=np.float64))
    world.timer("api.latency", {"host": "b"}, bucket - 2 * MINUTE, np.arange(101, 201, dtype=np.float64))
    merged = values(await instant(world, "argus_quantile(0.5, api_latency[5m])", bucket))
    (p50,) = merged.values()
    assert p50 == pytest.approx(100.0, rel=0.02)  # the median of 1..200, within the sketch's error
    per_host = by(await instant(world, 'argus_quantile(0.99, api_latency[5m], "host")', bucket), "host")
    assert per_host == pytest.approx({"a": 99.0, "b": 199.0}, rel=0.02)
    with pytest.raises(InvalidArgument, match="tier step"):
        await instant(world, "argus_quantile(0.5, api_latency[7m])", bucket)
    # histogram_quantile over a timer's (virtual) _bucket series asks the sketches: summed by
    # `le` (and other labels) it merges them, without a sum it is per series.
    merged_h = values(
        await instant(world, "histogram_quantile(0.5, sum by (le) (rate(api_latency_bucket[5m])))", bucket)
    )
    assert merged_h == values(await instant(world, "argus_quantile(0.5, api_latency[5m])", bucket))
    regional = 'histogram_quantile(0.99, sum by (region, le) (increase(api_latency_bucket{host="b"}[5m])))'
    assert by(await instant(world, regional, bucket), "region") == pytest.approx({"eu": 199.0}, rel=0.02)
    per_series = await instant(world, "histogram_quantile(0.99, rate(api_latency_bucket[5m]))", bucket)
    assert by(per_series, "host") == pytest.approx({"a": 99.0, "b": 199.0}, rel=0.02)
    assert {tuple(k for k, _ in labels) for labels in values(per_series)} == {("host", "region")}
    assert any("histogram_quantile read merged sketches" in w for w in per_series.warnings)
    # Other shapes have no sketch equivalent: the error says what to write instead.
    for shape in ("avg by (le) (rate(api_latency_bucket[5m]))", "sum by (host) (rate(api_latency_bucket[5m]))"):
        with pytest.raises(InvalidArgument, match="argus_quantile"):
            await instant(world, f"histogram_quantile(0.9, {shape})", bucket)
    with pytest.raises(InvalidArgument, match="tier step"):
        await instant(world, "histogram_quantile(0.9, rate(api_latency_bucket[7m]))", bucket)
    timer_quantile = by(await instant(world, "quantile_over_time(0.5, api_latency[5m])", bucket), "host")
    assert timer_quantile == pytest.approx({"a": 50.0, "b": 150.0}, rel=0.03)


async def test_the_tier_follows_the_step_and_is_reported(world: World) -> None:
    fine = await instant(world, "rate(http_requests[5m])")
    assert fine.tier == "5s" and "5s tier" in fine.warnings[0]
    q = PromQuery(
        tenant=TENANT, query="avg by (region) (cpu_user)", start_ms=NOW_MS - HOUR, end_ms=NOW_MS, step_ms=5 * MINUTE
    )
    coarse = await evaluate(world.engine, q, now_ms=world.now_ms)
    assert coarse.tier == "5m" and "5m tier" in coarse.warnings[0]


async def test_a_month_at_hour_steps_reads_the_hour_tier_and_widens_short_windows(world: World) -> None:
    q = PromQuery(
        tenant=TENANT,
        query='rate(http_requests{host="a"}[5m])',
        start_ms=NOW_MS - 30 * 24 * HOUR,
        end_ms=NOW_MS,
        step_ms=HOUR,
    )
    result = await evaluate(world.engine, q, now_ms=world.now_ms)
    assert result.tier == "1h"
    assert any("widened to 3600s" in w for w in result.warnings)
    assert isinstance(result.value, Vector)
    (series,) = result.value.series
    # The last hour's bucket: 720 deltas of 1.0 over the widened 1 h window.
    assert series.values[-1] == pytest.approx(720 / 3600)
    assert np.isnan(series.values[:-1]).all()


@pytest.mark.parametrize("step", [MINUTE, 5 * MINUTE, HOUR])
@pytest.mark.parametrize("start_off", [0, 17 * MINUTE + 20 * SECOND], ids=["aligned", "unaligned"])
async def test_a_coarse_tier_answers_between_its_stamps_what_the_fine_data_showed_at_the_last_stamp(
    step: int, start_off: int
) -> None:
    # Six hours of 5 s samples; a bucket's `last` differs from the rest of it.
    w = World()
    n = 6 * 720
    ts = five_s_ts(NOW_MS - 6 * HOUR, n)
    i = np.arange(n)
    for host, region, level in (("a", "eu", 10.0), ("b", "eu", 20.0), ("c", "us", 40.0)):
        w.gauge("cpu.hourly", {"host": host}, ts, level + np.sin(i / 97.0) * 5 + i % 11, region=region)
        w.counter("reqs.hourly", {"host": host}, ts, level / 10 + i % 3, region=region)
    span = 5 * HOUR if step == HOUR else HOUR
    start = NOW_MS - span + start_off
    end = NOW_MS - 20 * MINUTE + start_off
    tier = {MINUTE: "1m", 5 * MINUTE: "5m", HOUR: "1h"}[step]
    for query in ("cpu_hourly", "avg by (region) (cpu_hourly)", "sum(reqs_hourly)"):
        q = PromQuery(tenant=TENANT, query=query, start_ms=start, end_ms=end, step_ms=step)
        result = await evaluate(w.engine, q, now_ms=w.now_ms)
        assert result.tier == tier and isinstance(result.value, Vector)
        got = {s.labels: s.values for s in result.value.series}
        for j, t in enumerate(result.times_ms.tolist()):
            # The tier's last bucket stamp at or before t (a bucket [b, b + step) is stamped
            # b + step - 5 s), where the 5 s tier shows the same bucket's last sample.
            stamp = (t + FIVE_S) // step * step - FIVE_S
            fine = values(await instant(w, query, stamp))
            assert fine, (query, t)
            assert {k: float(v[j]) for k, v in got.items() if not np.isnan(v[j])} == pytest.approx(fine), (query, t)


def _holt_winters(y: list[float], sf: float, tf: float) -> float:
    """Prometheus's holt_winters, one window at a time (the reference for the vectorised one)."""
    s0, s1, b = 0.0, y[0], y[1] - y[0]
    for i in range(1, len(y)):
        if i > 1:
            b = tf * (s1 - s0) + (1 - tf) * b
        s0, s1 = s1, sf * y[i] + (1 - sf) * (s1 + b)
    return s1


async def test_deriv_predict_linear_and_holt_winters(world: World) -> None:
    ts = five_s_ts(NOW_MS - HOUR, 720)
    world.gauge("line", {"host": "a"}, ts, 100.0 + 0.4 * np.arange(720))  # +0.4 per 5 s
    world.gauge("flat", {"host": "a"}, ts, np.full(720, 0.1))
    rng = np.random.default_rng(3)
    noisy = np.round(rng.normal(50, 10, 720), 1)
    world.gauge("noisy", {"host": "a"}, ts, noisy)
    at = NOW_MS - 10 * MINUTE  # sample 600: line = 340
    assert by(await instant(world, "deriv(line[5m])", at), "host") == pytest.approx({"a": 0.08})
    assert by(await instant(world, "deriv(flat[5m])", at), "host") == {"a": 0.0}
    # The intercept is at the evaluation time: the line 60 s on is 340 + 60 x 0.08.
    assert by(await instant(world, "predict_linear(line[5m], 60)", at), "host") == pytest.approx({"a": 344.8})
    # offset moves the data, not the intercept: 5 min older data extrapolated to `at` + 60 s.
    shifted = by(await instant(world, "predict_linear(line[5m] offset 5m, 60)", at), "host")
    assert shifted == pytest.approx({"a": 344.8})
    assert by(await instant(world, "predict_linear(flat[5m], 3600)", at), "host") == {"a": 0.1}
    # Least squares of noisy data equals numpy's fit over the window [at - 5m, at] (61 samples).
    window = slice(540, 601)
    x = (ts[window] - at) / 1000.0
    slope, intercept = np.polyfit(x, noisy[window], 1)
    assert by(await instant(world, "deriv(noisy[5m])", at), "host") == pytest.approx({"a": slope})
    predicted = by(await instant(world, "predict_linear(noisy[5m], 120)", at), "host")
    assert predicted == pytest.approx({"a": intercept + 120 * slope})
    # holt_winters equals the step-by-step recurrence, at every step of a range query.
    q = PromQuery(
        tenant=TENANT,
        query="holt_winters(noisy[2m], 0.3, 0.6)",
        start_ms=at - 10 * MINUTE,
        end_ms=at,
        step_ms=30 * SECOND,
    )
    result = await evaluate(world.engine, q, now_ms=world.now_ms)
    assert isinstance(result.value, Vector)
    (smoothed,) = result.value.series
    for j, t in enumerate(result.times_ms.tolist()):
        end = (t - (NOW_MS - HOUR)) // FIVE_S
        assert smoothed.values[j] == pytest.approx(_holt_winters(noisy[end - 24 : end + 1].tolist(), 0.3, 0.6))
    renamed = values(await instant(world, "double_exponential_smoothing(noisy[2m], 0.3, 0.6)", at))
    assert renamed == values(await instant(world, "holt_winters(noisy[2m], 0.3, 0.6)", at))
    assert renamed == pytest.approx({(("host", "a"), ("region", "eu")): float(smoothed.values[-1])})
    for bad, what in (("1, 0.5", "smoothing factor"), ("0.5, 0", "trend factor"), ("-0.1, 0.5", "smoothing")):
        with pytest.raises(InvalidArgument, match=what):
            await instant(world, f"holt_winters(noisy[5m], {bad})", at)
    # One sample in the window (the series' first): no answer.
    assert values(await instant(world, "deriv(line[5m])", NOW_MS - HOUR)) == {}


async def test_windowed_regression_is_bounded(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 series x 721 steps, windows of up to 721 samples: ~780,000 samples visited.
    monkeypatch.setattr(evaluator, "MAX_WINDOW_SAMPLES", 500_000)
    q = PromQuery(
        tenant=TENANT,
        query="holt_winters(cpu_user[1h], 0.5, 0.5)",
        start_ms=NOW_MS - HOUR,
        end_ms=NOW_MS,
        step_ms=5 * SECOND,
    )
    with pytest.raises(ResourceExhausted, match="visit"):
        await evaluate(world.engine, q, now_ms=world.now_ms)


# ------------------------------------------------------------------------------ hostile input


async def test_unsupported_constructs_fail_naming_them(world: World) -> None:
    with pytest.raises(InvalidArgument, match="mad_over_time"):
        await instant(world, "mad_over_time(cpu_user[5m])")
    with pytest.raises(InvalidArgument, match="parse"):
        await instant(world, "sum(cpu_user")


async def test_pathological_regex_is_linear_and_backreferences_are_refused(world: World) -> None:
    world.gauge("evil", {"v": "a" * 255 + "b"}, five_s_ts(NOW_MS - HOUR, 720), np.ones(720))
    started = time.perf_counter()
    assert values(await instant(world, 'evil{v=~"(a+)+$"}')) == {}
    assert time.perf_counter() - started < 2.0
    with pytest.raises(InvalidArgument, match="regex"):
        await instant(world, r'evil{v=~"(a)\\1"}')


async def test_deep_nesting_long_queries_and_tiny_steps_are_refused(world: World) -> None:
    with pytest.raises(InvalidArgument, match="nests"):
        await instant(world, "(" * 500 + "cpu_user" + ")" * 500)
    # A long chain of operators is a deep tree: fine up to the limit, refused past it.
    assert values(await instant(world, " + ".join(['cpu_user{host="a"}'] * 150))) == {
        (("host", "a"), ("region", "eu")): 150 * 15.0
    }
    with pytest.raises(InvalidArgument, match="deeper"):
        await instant(world, " + ".join(["1"] * 2_000))
    with pytest.raises(InvalidArgument, match="characters"):
        await instant(world, "cpu_user + " * 3_000 + "1")
    q = PromQuery(tenant=TENANT, query="cpu_user", start_ms=NOW_MS - HOUR, end_ms=NOW_MS, step_ms=1)
    with pytest.raises(InvalidArgument, match="step"):
        await evaluate(world.engine, q, now_ms=world.now_ms)


async def test_huge_ranges_and_too_many_samples_are_bounded(world: World) -> None:
    # 100 years: answered from the coarsest tier, not by reading 5 s data.
    result = await instant(world, "max_over_time(cpu_user[36500d])", NOW_MS)
    assert result.tier == "1d"
    q = PromQuery(
        tenant=TENANT,
        query="cpu_user",
        start_ms=NOW_MS - HOUR,
        end_ms=NOW_MS,
        step_ms=5 * SECOND,
        max_samples=1_000,
    )
    with pytest.raises(ResourceExhausted):
        await evaluate(world.engine, q, now_ms=world.now_ms)


# ------------------------------------------------------------------------------ HTTP


class TwoTenants:
    def tenant_for(self, api_key: str | None) -> str:
        found = {"good": TENANT, "other-key": "other"}.get(api_key or "")
        if found is None:
            raise Unauthenticated("unknown or revoked API key")
        return found


@pytest.fixture
async def client(world: World) -> Any:
    sid = world.add_series("secret.metric", MetricKind.GAUGE, {"host": "z"}, tenant="other")
    ts = five_s_ts(NOW_MS - HOUR, 720)
    world.write(sid, MetricKind.GAUGE, lambda step: from_values(np.zeros(720), ts, np.ones(720), step))
    app = make_http_app(world.engine, TwoTenants(), clock=lambda: world.now_ms)
    async with TestClient(TestServer(app)) as c:
        yield c


AUTH = {"Authorization": "Bearer good"}
OTHER = {"Authorization": "Bearer other-key"}


async def test_http_query_get_and_post_with_prometheus_time_formats(client: TestClient[Any, Any]) -> None:
    at = NOW_MS - 10 * MINUTE
    rfc3339 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at / 1000))
    got = await client.get("/prometheus/api/v1/query", params={"query": "sum(cpu_user)", "time": rfc3339}, headers=AUTH)
    body = await got.json()
    assert got.status == 200 and body["status"] == "success"
    assert body["data"] == {"resultType": "vector", "result": [{"metric": {}, "value": [at / 1000, "85"]}]}
    posted = await client.post(
        "/prometheus/api/v1/query_range",
        data={"query": 'cpu_user{host="a"}', "start": str(at / 1000 - 10), "end": str(at / 1000), "step": "5s"},
        headers=AUTH,
    )
    body = await posted.json()
    assert body["data"]["resultType"] == "matrix"
    assert body["data"]["result"][0]["values"] == [[at / 1000 - 10, "13"], [at / 1000 - 5, "14"], [at / 1000, "15"]]


async def test_http_errors_use_the_prometheus_envelope(client: TestClient[Any, Any]) -> None:
    bad = await client.get("/prometheus/api/v1/query", params={"query": "sum("}, headers=AUTH)
    body = await bad.json()
    assert bad.status == 400 and body["status"] == "error" and body["errorType"] == "bad_data"
    no_step = await client.get(
        "/prometheus/api/v1/query_range", params={"query": "1", "start": "1", "end": "2"}, headers=AUTH
    )
    assert no_step.status == 400 and "step" in (await no_step.json())["error"]
    anonymous = await client.get("/prometheus/api/v1/query", params={"query": "1"})
    assert anonymous.status == 401 and (await anonymous.json())["status"] == "error"


async def test_http_tenants_see_only_their_own_series(client: TestClient[Any, Any]) -> None:
    async def data(path: str, headers: dict[str, str], **params: str) -> Any:
        response = await client.get(path, params=params, headers=headers)
        assert response.status == 200, await response.text()
        return (await response.json())["data"]

    at = str((NOW_MS - 10 * MINUTE) / 1000)
    assert (await data("/prometheus/api/v1/query", AUTH, query="secret_metric", time=at))["result"] == []
    theirs = await data("/prometheus/api/v1/query", OTHER, query="secret_metric", time=at)
    assert len(theirs["result"]) == 1
    assert "secret_metric" not in await data("/prometheus/api/v1/label/__name__/values", AUTH)
    assert await data("/prometheus/api/v1/label/__name__/values", OTHER) == ["secret_metric"]
    mine = await data("/prometheus/api/v1/series", AUTH, **{"match[]": '{__name__=~".+", host="a"}'})
    assert {s["__name__"] for s in mine} == {"cpu_user", "http_requests"}
    assert "host" in await data("/prometheus/api/v1/labels", AUTH)
    meta = await data("/prometheus/api/v1/metadata", AUTH)
    assert meta["http_requests"][0]["type"] == "counter" and "secret_metric" not in meta
    assert (await data("/prometheus/api/v1/status/buildinfo", AUTH))["version"]
    assert await data("/prometheus/api/v1/query_exemplars", AUTH, query="cpu_user") == []


def test_prometheus_time_and_step_formats() -> None:
    assert parse_time("1767225600", name="time") == 1_767_225_600_000
    assert parse_time("1767225600.123", name="time") == 1_767_225_600_123
    assert parse_time("2026-01-01T00:00:00Z", name="time") == 1_767_225_600_000
    assert parse_time("2026-01-01T01:00:00.5+01:00", name="time") == 1_767_225_600_500
    assert parse_step("15") == 15_000 and parse_step("0.5") == 500
    assert parse_step("1m30s") == 90_000 and parse_step("2h") == 7_200_000
    for bad in ("yesterday", "2026-01-01T00:00:00", "nan", "1e300"):
        with pytest.raises(InvalidArgument, match="time"):
            parse_time(bad, name="time")
    for bad in ("0", "-5", "5 minutes", "inf"):
        with pytest.raises(InvalidArgument, match="step"):
            parse_step(bad)


async def test_http_stats_report_the_tier_and_points_read(client: TestClient[Any, Any]) -> None:
    at = str((NOW_MS - 10 * MINUTE) / 1000)
    response = await client.get(
        "/prometheus/api/v1/query", params={"query": "sum(cpu_user)", "time": at, "stats": "all"}, headers=AUTH
    )
    body = await response.json()
    assert body["data"]["stats"]["argus"]["tier"] == "5s"
    assert body["data"]["stats"]["samples"]["totalQueryableSamples"] > 0
    bad_time = await client.get("/prometheus/api/v1/query", params={"query": "1", "time": "soon"}, headers=AUTH)
    assert bad_time.status == 400 and (await bad_time.json())["errorType"] == "bad_data"
