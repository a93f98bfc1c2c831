"""Live queries (query_side/live.py) over a real QueryEngine on in-memory stores: snapshot
then deltas, one shared subscription for many viewers, a slow viewer bounded, limits."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import numpy as np
import pytest

from core.errors import ResourceExhausted
from core.model import MetricKind
from core.points import from_values
from query_side.live import LiveHub, LiveLimits, LiveQuery, LiveUpdate
from query_side.planner import QuerySpec
from tests.unit.test_query_engine import HOUR, NOW_MS, TENANT, World

STEP = 5_000
DEADLINE_S = 10.0


@pytest.fixture
def world() -> World:
    return World()


FAST = LiveLimits(poll_interval_ms=10, min_interval_ms=10, floor_interval_ms=1)


class Gauge:
    """One gauge series whose points the test extends, rewritten as the projector would."""

    def __init__(self, world: World, labels: dict[str, str]) -> None:
        self.world = world
        self.sid = world.add_series("cpu", MetricKind.GAUGE, labels)
        self.ts: list[int] = []
        self.values: list[float] = []

    def push(self, ts: int, value: float) -> None:
        self.ts.append(ts)
        self.values.append(value)
        t = np.asarray(self.ts, dtype=np.int64)
        v = np.asarray(self.values, dtype=np.float64)
        self.world.write(self.sid, MetricKind.GAUGE, lambda step: from_values(np.zeros(len(t)), t, v, step))


def live(period: str = "5s", tenant: str = TENANT) -> LiveQuery:
    spec = QuerySpec(tenant=tenant, metric="cpu", start_ms=NOW_MS - HOUR, end_ms=NOW_MS, period=period, agg="max")
    return LiveQuery(spec=spec, follow=True)


@asynccontextmanager
async def viewer(
    hub: LiveHub, *queries: LiveQuery, tenant: str = TENANT
) -> AsyncIterator[asyncio.Queue[list[LiveUpdate]]]:
    """Read a stream in the background into a queue (as a transport would)."""
    out: asyncio.Queue[list[LiveUpdate]] = asyncio.Queue()

    async def run() -> None:
        async for message in hub.watch(tenant, list(queries)):
            await out.put(message)

    task = asyncio.create_task(run())
    try:
        yield out
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def next_update(q: asyncio.Queue[list[LiveUpdate]]) -> LiveUpdate:
    message = await asyncio.wait_for(q.get(), DEADLINE_S)
    assert len(message) == 1
    return message[0]


def points(update: LiveUpdate) -> list[tuple[int, float]]:
    return [p for s in update.series for p in zip(s.ts, s.values, strict=True)]


def published(hub: LiveHub, n: int) -> bool:
    return hub.deltas_published >= n


async def wait_until(hub: LiveHub, check: Callable[[], bool]) -> None:
    await hub.until(check, timeout_s=DEADLINE_S)


async def test_a_viewer_gets_the_snapshot_then_only_new_or_changed_buckets(world: World) -> None:
    g = Gauge(world, {"host": "a"})
    g.push(NOW_MS - 10 * STEP, 1.0)
    g.push(NOW_MS - 5 * STEP, 2.0)
    hub = LiveHub(world.engine, lambda: world.now_ms, FAST)
    async with viewer(hub, live()) as q:
        first = await next_update(q)
        assert first.snapshot and first.tier == "5s"
        assert points(first) == [(NOW_MS - 10 * STEP, 1.0), (NOW_MS - 5 * STEP, 2.0)]
        world.now_ms += STEP
        g.push(NOW_MS, 7.0)  # a new bucket
        delta = await next_update(q)
        assert not delta.snapshot and points(delta) == [(NOW_MS, 7.0)]
        g.push(NOW_MS + 1, 9.0)  # the same bucket changes (max 9)
        delta = await next_update(q)
        assert points(delta) == [(NOW_MS, 9.0)]
    await wait_until(hub, lambda: hub.topics == 0)


async def test_two_viewers_of_one_query_share_one_subscription(world: World) -> None:
    g = Gauge(world, {"host": "a"})
    g.push(NOW_MS - STEP, 1.0)
    hub = LiveHub(world.engine, lambda: world.now_ms, FAST)
    other = LiveQuery(spec=dataclasses.replace(live().spec, agg="min"), follow=True)
    async with viewer(hub, live()) as a, viewer(hub, live()) as b:
        snap_a, snap_b = await next_update(a), await next_update(b)
        assert points(snap_a) == points(snap_b) == [(NOW_MS - STEP, 1.0)]
        assert hub.topics == 1 and hub.subscribers() == 2
        g.push(NOW_MS, 3.0)
        world.now_ms += STEP
        assert points(await next_update(a)) == points(await next_update(b)) == [(NOW_MS, 3.0)]
        # one query per poll whoever watches: runs grow like polls, not like viewers x polls
        before = hub.queries_run
        await wait_until(hub, lambda: hub.queries_run >= before + 20)
        async with viewer(hub, other), viewer(hub, live(tenant="tenant-b"), tenant="tenant-b") as c:
            await wait_until(hub, lambda: hub.topics == 3)
            assert (await next_update(c)).series == ()  # the other tenant sees none of it
    await wait_until(hub, lambda: hub.topics == 0)


async def test_a_slow_viewer_falls_back_to_a_snapshot_instead_of_growing(world: World) -> None:
    g = Gauge(world, {"host": "a"})
    g.push(NOW_MS - STEP, 1.0)
    limits = LiveLimits(poll_interval_ms=5, min_interval_ms=1, floor_interval_ms=1, max_pending_points=3)
    hub = LiveHub(world.engine, lambda: world.now_ms, limits)
    stream = hub.watch(TENANT, [live()])
    assert (await anext(stream))[0].snapshot
    # The viewer reads nothing while 6 new buckets arrive: more than it may hold.
    for i in range(6):
        world.now_ms += STEP
        g.push(NOW_MS + i * STEP, float(i))
        await wait_until(hub, functools.partial(published, hub, i + 1))
    assert hub.snapshots_after_overflow >= 1
    update = (await anext(stream))[0]
    assert update.snapshot  # a fresh snapshot, holding everything
    assert points(update)[-1] == (NOW_MS + 5 * STEP, 5.0) and len(points(update)) == 7
    await stream.aclose()
    assert hub.topics == 0


async def test_limits_on_queries_per_stream_and_streams_per_tenant(world: World) -> None:
    hub = LiveHub(world.engine, lambda: world.now_ms, LiveLimits(max_queries_per_stream=2, max_streams_per_tenant=1))
    with pytest.raises(ResourceExhausted, match="over the limit of 2"):
        await anext(hub.watch(TENANT, [live()] * 3))
    async with viewer(hub, live()) as q:
        await next_update(q)
        with pytest.raises(ResourceExhausted, match="already open"):
            await anext(hub.watch(TENANT, [live()]))
        async with viewer(hub, live(tenant="tenant-b"), tenant="tenant-b") as other:
            await next_update(other)  # another tenant has its own budget


async def test_a_failing_query_reports_its_error_and_the_others_go_on(world: World) -> None:
    Gauge(world, {"host": "a"}).push(NOW_MS - STEP, 1.0)
    hub = LiveHub(world.engine, lambda: world.now_ms, FAST)
    bad = LiveQuery(spec=dataclasses.replace(live().spec, agg="p99"), follow=True)
    async with viewer(hub, live(), bad) as q:
        seen: dict[int, LiveUpdate] = {}
        async with asyncio.timeout(DEADLINE_S):
            while len(seen) < 2:
                for u in await q.get():
                    seen[u.query_index] = u
        assert seen[0].snapshot and points(seen[0]) == [(NOW_MS - STEP, 1.0)]
        assert "p99" in seen[1].error


async def test_a_large_update_is_split_into_messages_of_bounded_points(world: World) -> None:
    for h in range(5):
        g = Gauge(world, {"host": f"h{h}"})
        for i in range(40):
            g.push(NOW_MS - (i + 1) * STEP, float(i))
    limits = LiveLimits(poll_interval_ms=10, min_interval_ms=10, floor_interval_ms=1, max_points_per_message=50)
    hub = LiveHub(world.engine, lambda: world.now_ms, limits)
    spec = dataclasses.replace(live().spec, group_by=("host",))
    stream = hub.watch(TENANT, [LiveQuery(spec=spec, follow=True)])
    messages = [await anext(stream) for _ in range(5)]
    await stream.aclose()
    sizes = [sum(u.points for u in m) for m in messages]
    assert sizes == [40] * 5  # whole series per message while they fit: 5 x 40 = the snapshot
    flags = [u.snapshot for m in messages for u in m]
    assert flags[0] and not any(flags[1:])  # later parts add to the first


async def test_watch_over_native_grpc_streams_snapshot_then_delta_and_needs_a_key(world: World) -> None:
    import grpc

    from contracts.argus.query.v1 import query_pb2, query_pb2_grpc
    from query_side.grpc_service import QueryServicer, add_to_server
    from tests.unit.test_query_engine import Keys

    g = Gauge(world, {"host": "a"})
    g.push(NOW_MS - STEP, 1.0)
    hub = LiveHub(world.engine, lambda: world.now_ms, FAST)
    server = grpc.aio.server()
    add_to_server(server, QueryServicer(world.engine, Keys(), lambda: world.now_ms, live=hub))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    request = query_pb2.WatchRequest(
        queries=[query_pb2.QueryRequest(metric="cpu", period="5s", agg="max")], min_interval_ms=10
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = query_pb2_grpc.QueryServiceStub(channel)  # type: ignore[no-untyped-call]
            call = stub.Watch(request, metadata=(("authorization", "Bearer good"),), timeout=DEADLINE_S)
            first = (await call.read()).updates[0]
            assert first.snapshot and list(first.series[0].values) == [1.0]
            world.now_ms += STEP
            g.push(NOW_MS, 5.0)
            delta = (await call.read()).updates[0]
            assert not delta.snapshot and list(delta.series[0].timestamps_ms) == [NOW_MS]
            call.cancel()
            await wait_until(hub, lambda: hub.topics == 0)  # the viewer left, so did the topic
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Watch(request, timeout=DEADLINE_S).read()
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(grace=None)
