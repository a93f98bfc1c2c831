"""Top-N and ordering of result series (`limit`, `sort`, `order`): engine, HTTP and gRPC."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from argus.commands import query_cmd
from contracts.argus.query.v1 import query_pb2
from core.errors import InvalidArgument
from query_side.engine import ResultSeries
from query_side.grpc_service import QueryServicer
from query_side.http_gateway import make_http_app
from tests.unit.test_query_engine import AUTH, GOOD_MD, HOUR, NOW_MS, FakeContext, Keys, World, minute_ts, spec

SORTS = ("max", "min", "avg", "last", "sum")
HOSTS = 12


def _reference_score(values: list[float], sort: str) -> float:
    """The score a series should rank by, computed point by point in plain Python."""
    present = [v for v in values if not math.isnan(v)]
    if not present:
        return math.nan
    return {
        "max": max(present),
        "min": min(present),
        "sum": sum(present),
        "avg": sum(present) / len(present),
        "last": present[-1],
    }[sort]


def _reference_top(series: tuple[ResultSeries, ...], sort: str, descending: bool, n: int) -> list[dict[str, str]]:
    """Label-ordered series ranked by score (NaN last, ties in label order), first n."""
    scored = [(_reference_score(s.values.tolist(), sort), dict(s.labels)) for s in series]
    ranked = sorted(
        enumerate(scored),
        key=lambda item: (
            math.isnan(item[1][0]),
            0.0 if math.isnan(item[1][0]) else (-1 if descending else 1) * item[1][0],
            item[0],
        ),
    )
    return [labels for _, (_, labels) in ranked[:n]]


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def hosts(world: World) -> World:
    """HOSTS gauges with random values, some NaN samples, one host (h03) all NaN."""
    rng = np.random.default_rng(7)
    ts = minute_ts(NOW_MS - HOUR, 60)
    for i in range(HOSTS):
        values = np.round(rng.uniform(0, 100, 60), 1)
        values[rng.integers(0, 60, 5)] = np.nan
        if i == 3:
            values[:] = np.nan
        world.gauge("cpu", {"host": f"h{i:02d}"}, ts, values, region="eu" if i % 2 else "us")
    return world


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_top_n_equals_ranking_the_whole_answer(hosts: World, sort: str, order: str) -> None:
    everything = await hosts.engine.query(spec("cpu", period="1m", agg="avg", group_by=("host",)))
    assert len(everything.series) == HOSTS

    top = await hosts.engine.query(
        spec("cpu", period="1m", agg="avg", group_by=("host",), limit=5, sort=sort, order=order)
    )

    assert [dict(s.labels) for s in top.series] == _reference_top(everything.series, sort, order == "desc", 5)
    by_labels = {tuple(s.labels.items()): s for s in everything.series}
    for s in top.series:  # the points themselves are untouched
        whole = by_labels[tuple(s.labels.items())]
        np.testing.assert_array_equal(s.ts, whole.ts)
        np.testing.assert_array_equal(s.values, whole.values)


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_a_series_without_values_ranks_last_in_either_order(hosts: World, order: str) -> None:
    result = await hosts.engine.query(spec("cpu", period="1m", agg="avg", group_by=("host",), sort="max", order=order))
    assert len(result.series) == HOSTS
    assert dict(result.series[-1].labels) == {"host": "h03"}
    scores = [float(np.nanmax(s.values)) for s in result.series[:-1]]
    assert scores == sorted(scores, reverse=order == "desc")


async def test_ties_keep_label_order(world: World) -> None:
    ts = minute_ts(NOW_MS - HOUR, 60)
    for host in ("c", "a", "b"):
        world.gauge("cpu", {"host": host}, ts, np.full(60, 5.0))
    world.gauge("cpu", {"host": "z"}, ts, np.full(60, 9.0))
    result = await world.engine.query(spec("cpu", period="1m", group_by=("host",), sort="max", limit=3))
    assert [s.labels["host"] for s in result.series] == ["z", "a", "b"]


async def test_limit_without_sort_keeps_label_order(hosts: World) -> None:
    result = await hosts.engine.query(spec("cpu", period="1m", group_by=("host",), limit=4))
    assert [s.labels["host"] for s in result.series] == ["h00", "h01", "h02", "h03"]
    assert result.stats.series_matched == HOSTS


@pytest.mark.parametrize(
    ("kw", "parameter"),
    [
        ({"sort": "median"}, "sort"),
        ({"sort": "max", "order": "up"}, "order"),
        ({"order": "asc"}, "order"),
        ({"limit": -1}, "limit"),
        ({"limit": 10_001}, "limit"),
    ],
)
async def test_bad_ordering_is_refused_naming_the_parameter(hosts: World, kw: dict[str, Any], parameter: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await hosts.engine.query(spec("cpu", period="1m", group_by=("host",), **kw))
    assert caught.value.parameter == parameter


async def test_http_top_n_ships_only_n_series(hosts: World) -> None:
    app = make_http_app(hosts.engine, Keys(), clock=lambda: hosts.now_ms)
    async with TestClient(TestServer(app)) as http:
        everything = await hosts.engine.query(spec("cpu", period="1m", agg="max", group_by=("host",)))
        resp = await http.get(
            "/api/v1/query",
            params=[
                *[("metric", "cpu"), ("period", "1m"), ("agg", "max"), ("group_by", "host")],
                *[("limit", "3"), ("sort", "MAX"), ("order", "desc")],
            ],
            headers=AUTH,
        )
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert [s["labels"] for s in body["series"]] == _reference_top(everything.series, "max", True, 3)
        assert body["stats"]["series_matched"] == HOSTS

        for params, parameter in (
            ({"limit": "ten"}, "limit"),
            ({"limit": "-3"}, "limit"),
            ({"limit": "99999999999"}, "limit"),
            ({"sort": "p99"}, "sort"),
            ({"order": "desc"}, "order"),
            ({"limit": ["1", "2"]}, "limit"),
        ):
            query = [
                ("metric", "cpu"),
                *((k, v) for k, vs in params.items() for v in ([vs] if isinstance(vs, str) else vs)),
            ]
            bad = await http.get("/api/v1/query", params=query, headers=AUTH)
            assert bad.status == 400, (params, await bad.text())
            assert (await bad.json())["parameter"] == parameter


async def test_grpc_query_honours_limit_sort_order(hosts: World) -> None:
    servicer = QueryServicer(hosts.engine, Keys(), clock=lambda: hosts.now_ms)
    everything = await hosts.engine.query(spec("cpu", period="1m", agg="avg", group_by=("host",)))
    request = query_pb2.QueryRequest(
        metric="cpu", period="1m", agg="avg", group_by=["host"], limit=2, sort="min", order="asc"
    )

    response = await servicer.Query(request, FakeContext(GOOD_MD))

    assert [dict(s.labels) for s in response.series] == _reference_top(everything.series, "min", False, 2)


async def test_cli_asks_the_server_for_the_top_series(hosts: World) -> None:
    app = make_http_app(hosts.engine, Keys(), clock=lambda: hosts.now_ms)
    async with TestClient(TestServer(app)) as http:
        url = str(http.make_url("/")).rstrip("/")
        args = ["cpu", "--api-key", "good", "--period", "1m", "-g", "host", "--agg", "min", "--json"]
        result = await asyncio.to_thread(
            CliRunner().invoke,
            query_cmd.query,
            [*args, "--sort", "min", "--order", "asc", "--limit", "2", "--http", url],
        )
    assert result.exit_code == 0, result.output
    everything = await hosts.engine.query(spec("cpu", period="1m", agg="min", group_by=("host",)))
    labels = [s["labels"] for s in json.loads(result.output)["series"]]
    assert labels == _reference_top(everything.series, "min", False, 2)
