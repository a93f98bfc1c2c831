"""gRPC-web on the HTTP port (query_side/grpc_web.py), spoken over real HTTP by a hand-framed
client (harness/grpc_web.py): unary, errors, deadlines and disconnects cancelling the
handler, server streaming one message at a time, CORS; and the composition serving every
servicer of the query gRPC server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import grpc
import pytest
from aiohttp import web

from contracts.argus.query.v1 import query_pb2, query_pb2_grpc
from core.errors import NotFound
from harness.grpc_web import call, frame, frames, parse_trailer, request_headers
from query_side.grpc_web import MethodTable, add_grpc_web_routes
from query_side.http_gateway import HttpRunner

KEY = "k-a"
ORIGIN = "http://app.example:5173"
DEADLINE_S = 10.0
QUERY = "/argus.query.v1.QueryService/Query"
WATCH = "/argus.query.v1.QueryService/Watch"


@dataclass
class Probe:
    """What the test servicer saw."""

    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    done_callback_cancelled: list[bool] = field(default_factory=list)
    next_message: asyncio.Event = field(default_factory=asyncio.Event)
    metadata: dict[str, str | bytes] = field(default_factory=dict)


class Servicer(query_pb2_grpc.QueryServiceServicer):
    """QueryService whose behaviour each test picks by the request's metric."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def _auth(self, context: grpc.aio.ServicerContext) -> None:
        self.probe.metadata = dict(context.invocation_metadata() or ())
        if self.probe.metadata.get("authorization") != f"Bearer {KEY}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown API key")

    async def Query(
        self, request: query_pb2.QueryRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.QueryResponse:
        await self._auth(context)
        if request.metric == "abort":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "metric: 100% bad ü", (("argus-parameter", "metric"),)
            )
        if request.metric == "not-found":
            raise NotFound("metric nope not found")
        if request.metric == "crash":
            raise RuntimeError("secret /etc/passwd internals")
        if request.metric == "block":
            context.add_done_callback(lambda c: self.probe.done_callback_cancelled.append(c.cancelled()))
            self.probe.started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.probe.cancelled.set()
                raise
        remaining = context.time_remaining()
        return query_pb2.QueryResponse(tier=f"{request.metric}:{remaining is not None}")

    async def Watch(
        self, request: query_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[query_pb2.WatchResponse]:
        await self._auth(context)
        mode = request.queries[0].metric
        if mode == "flood":  # large messages for as long as the client reads
            try:
                big = query_pb2.WatchUpdate(tier="x" * 200_000)
                while True:
                    yield query_pb2.WatchResponse(updates=[big])
            finally:
                self.probe.cancelled.set()
        try:
            for i in range(0 if mode == "empty" else 3):
                yield query_pb2.WatchResponse(updates=[query_pb2.WatchUpdate(query_index=i)])
                if mode == "lockstep":  # the next one only once the test saw this one
                    await self.probe.next_message.wait()
                    self.probe.next_message.clear()
            if mode == "fail-after-3":
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many updates")
            if mode == "empty":
                return
            if mode == "block":
                self.probe.started.set()
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.probe.cancelled.set()
            raise


@dataclass
class Served:
    url: str
    http: aiohttp.ClientSession
    probe: Probe
    methods: MethodTable


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    probe = Probe()
    methods = MethodTable()
    server = grpc.aio.server()
    query_pb2_grpc.add_QueryServiceServicer_to_server(Servicer(probe), methods.recording(server))  # type: ignore[no-untyped-call]
    app = web.Application()
    add_grpc_web_routes(app, methods, cors_origins=[ORIGIN], max_message_bytes=64 * 1024)
    runner = HttpRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE_S)) as http:
            yield Served(f"http://127.0.0.1:{port}", http, probe, methods)
    finally:
        await runner.cleanup()


def q(metric: str) -> query_pb2.QueryRequest:
    return query_pb2.QueryRequest(metric=metric)


async def test_registering_on_the_grpc_server_records_every_method(served: Served) -> None:
    assert served.methods.services == ("argus.query.v1.QueryService",)
    assert served.methods.get(WATCH) is not None and served.methods.get(WATCH).response_streaming  # type: ignore[union-attr]


@pytest.mark.parametrize("text", [False, True])
async def test_unary_call_answers_its_message_then_ok_in_the_trailer(served: Served, text: bool) -> None:
    got = await call(served.http, served.url + QUERY, q("cpu"), headers=request_headers(KEY, text=text))
    assert got.http_status == 200
    assert got.headers["Content-Type"].startswith("application/grpc-web-text" if text else "application/grpc-web+proto")
    assert [m.tier for m in got.decoded(query_pb2.QueryResponse)] == ["cpu:False"]
    assert got.code == 0
    assert "grpc-status" not in got.headers  # status after the message, not before it
    assert served.probe.metadata["authorization"] == f"Bearer {KEY}"


async def test_the_deadline_reaches_the_handler(served: Served) -> None:
    got = await call(served.http, served.url + QUERY, q("cpu"), headers=request_headers(KEY, timeout="5S"))
    assert [m.tier for m in got.decoded(query_pb2.QueryResponse)] == ["cpu:True"]


async def test_an_abort_arrives_with_its_code_message_and_trailing_metadata(served: Served) -> None:
    got = await call(served.http, served.url + QUERY, q("abort"), headers=request_headers(KEY))
    assert got.messages == []
    assert got.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert got.message == "metric: 100% bad ü"
    assert got.trailer["argus-parameter"] == "metric"
    # trailers-only: the status is in the headers too
    assert got.headers["grpc-status"] == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])


async def test_argus_errors_map_by_the_table_and_others_do_not_leak(served: Served) -> None:
    got = await call(served.http, served.url + QUERY, q("not-found"), headers=request_headers(KEY))
    assert (got.code, got.message) == (grpc.StatusCode.NOT_FOUND.value[0], "metric nope not found")
    got = await call(served.http, served.url + QUERY, q("crash"), headers=request_headers(KEY))
    assert got.code == grpc.StatusCode.INTERNAL.value[0]
    assert "passwd" not in got.message and "internal error" in got.message


async def test_no_key_is_unauthenticated(served: Served) -> None:
    got = await call(served.http, served.url + QUERY, q("cpu"), headers=request_headers(None))
    assert got.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
    got = await call(served.http, served.url + QUERY, q("cpu"), headers=request_headers("wrong"))
    assert got.code == grpc.StatusCode.UNAUTHENTICATED.value[0]


async def test_unknown_methods_bad_frames_and_bad_timeouts_are_refused(served: Served) -> None:
    got = await call(
        served.http, served.url + "/argus.query.v1.QueryService/Nope", q("cpu"), headers=request_headers(KEY)
    )
    assert got.code == grpc.StatusCode.UNIMPLEMENTED.value[0]
    got = await call(
        served.http, served.url + QUERY, q("cpu"), headers=request_headers(KEY), body=b"\x00\x00\x00\x00\x09ab"
    )
    assert got.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    got = await call(
        served.http, served.url + QUERY, q("cpu"), headers=request_headers(KEY), body=frame(q("x"), flag=1)
    )
    assert got.code == grpc.StatusCode.UNIMPLEMENTED.value[0]
    got = await call(served.http, served.url + QUERY, q("cpu"), headers=request_headers(KEY, timeout="soon"))
    assert got.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    big = query_pb2.QueryRequest(metric="x" * 100_000)
    got = await call(served.http, served.url + QUERY, big, headers=request_headers(KEY))
    assert got.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    async with served.http.post(served.url + QUERY, data=frame(q("cpu")), headers={"content-type": "text/plain"}) as r:
        assert r.status == 415


async def test_a_passed_deadline_cancels_the_handler(served: Served) -> None:
    got = await call(served.http, served.url + QUERY, q("block"), headers=request_headers(KEY, timeout="200m"))
    assert got.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert served.probe.cancelled.is_set()
    assert served.probe.done_callback_cancelled == [True]


async def test_a_client_that_goes_away_cancels_the_unary_handler(served: Served) -> None:
    async def abandon() -> None:
        async with served.http.post(served.url + QUERY, data=frame(q("block")), headers=request_headers(KEY)) as r:
            await r.read()

    task = asyncio.create_task(abandon())
    await asyncio.wait_for(served.probe.started.wait(), DEADLINE_S)
    task.cancel()  # closes the connection
    await asyncio.wait_for(served.probe.cancelled.wait(), DEADLINE_S)


def w(metric: str) -> query_pb2.WatchRequest:
    return query_pb2.WatchRequest(queries=[q(metric)])


async def test_a_stream_delivers_each_message_as_it_is_yielded(served: Served) -> None:
    seen: list[int] = []
    async with served.http.post(served.url + WATCH, data=frame(w("lockstep")), headers=request_headers(KEY)) as r:
        async for flag, payload in frames(r):
            if flag & 0x80:
                assert parse_trailer(payload)["grpc-status"] == "0"
                break
            seen.append(query_pb2.WatchResponse.FromString(payload).updates[0].query_index)
            served.probe.next_message.set()  # the servicer waits for this: one message at a time
    assert seen == [0, 1, 2]


async def test_an_error_after_three_messages_arrives_after_them(served: Served) -> None:
    got = await call(served.http, served.url + WATCH, w("fail-after-3"), headers=request_headers(KEY))
    assert [m.updates[0].query_index for m in got.decoded(query_pb2.WatchResponse)] == [0, 1, 2]
    assert (got.code, got.message) == (grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], "too many updates")


async def test_a_stream_error_before_any_message_is_in_the_headers_too(served: Served) -> None:
    got = await call(served.http, served.url + WATCH, w("x"), headers=request_headers("wrong"))
    assert got.code == grpc.StatusCode.UNAUTHENTICATED.value[0] and got.messages == []
    assert got.headers["grpc-status"] == str(grpc.StatusCode.UNAUTHENTICATED.value[0])


async def test_a_stream_without_messages_ends_ok_in_the_trailer_only(served: Served) -> None:
    got = await call(served.http, served.url + WATCH, w("empty"), headers=request_headers(KEY))
    assert got.messages == [] and got.code == 0
    assert "grpc-status" not in got.headers  # connect-web reads an OK status in headers as "no body"


@pytest.mark.parametrize("text", [False, True])
async def test_stream_frames_arrive_in_both_encodings(served: Served, text: bool) -> None:
    got = await call(served.http, served.url + WATCH, w("fail-after-3"), headers=request_headers(KEY, text=text))
    assert [m.updates[0].query_index for m in got.decoded(query_pb2.WatchResponse)] == [0, 1, 2]
    assert got.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


async def test_a_client_that_goes_away_cancels_the_stream(served: Served) -> None:
    async with served.http.post(served.url + WATCH, data=frame(w("block")), headers=request_headers(KEY)) as r:
        await asyncio.wait_for(served.probe.started.wait(), DEADLINE_S)
        r.close()
    await asyncio.wait_for(served.probe.cancelled.wait(), DEADLINE_S)


async def test_a_client_that_goes_away_mid_write_ends_the_stream_quietly(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    async with served.http.post(served.url + WATCH, data=frame(w("flood")), headers=request_headers(KEY)) as r:
        await r.content.readexactly(100_000)
        r.close()
    await asyncio.wait_for(served.probe.cancelled.wait(), DEADLINE_S)
    assert not [rec for rec in caplog.records if rec.levelname == "ERROR"]


async def test_a_stream_deadline_ends_it_and_cancels_the_generator(served: Served) -> None:
    got = await call(served.http, served.url + WATCH, w("block"), headers=request_headers(KEY, timeout="300m"))
    assert len(got.messages) == 3
    assert got.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert served.probe.cancelled.is_set()


async def test_cors_preflight_and_exposed_status_for_configured_origins_only(served: Served) -> None:
    preflight = {
        "origin": ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type,grpc-timeout,x-grpc-web,x-user-agent",
    }
    async with served.http.options(served.url + QUERY, headers=preflight) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "authorization" in r.headers["Access-Control-Allow-Headers"]
    async with served.http.options(served.url + QUERY, headers={**preflight, "origin": "http://evil.example"}) as r:
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    got = await call(served.http, served.url + QUERY, q("abort"), headers=request_headers(KEY, origin=ORIGIN))
    assert got.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "grpc-status" in got.headers["Access-Control-Expose-Headers"]
    assert got.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]  # and in the trailer frame
    got = await call(
        served.http, served.url + QUERY, q("cpu"), headers=request_headers(KEY, origin="http://evil.example")
    )
    assert "Access-Control-Allow-Origin" not in got.headers


async def test_the_query_module_serves_every_servicer_of_its_grpc_server_over_grpc_web() -> None:
    """The composition: QueryService and the AlertService extension, with keys and tenants."""
    from argus.alerts_api import alerts_api
    from argus.modules import QueryModule
    from command_side.config.commands import CreateApiKey
    from command_side.config.handlers import create_api_key
    from contracts.argus.alerts.v1 import service_pb2
    from core.adapters.memory_event_log import MemoryEventLog
    from core.adapters.memory_hot_store import MemoryHotStore
    from core.alerting.lifecycle import AlertState
    from core.alerting.state import AlertConfigState
    from core.auth import ApiKeyRegistry, generate_key
    from core.config_view import ConfigView
    from core.events import ALERTS_TOPIC, CONFIG_TOPIC
    from core.settings import Settings
    from query_side.alerts.active import ActiveAlerts
    from query_side.alerts.http import AlertsApi
    from tests.unit.test_active_alerts import changed

    log = MemoryEventLog()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    await log.ensure_topic(ALERTS_TOPIC, 4)
    view = ConfigView(log, [ApiKeyRegistry(), AlertConfigState()])
    await view.refresh()
    key_a, key_b = generate_key(), generate_key()
    for tenant, key in (("tenant-a", key_a), ("tenant-b", key_b)):
        await create_api_key(CreateApiKey(api_key=key, tenant=tenant, author="t"), view=view, clock_ms=lambda: 1)
    await log.append(ALERTS_TOPIC, [(1, changed("tenant-a", "cpu", {"host": "h"}, AlertState.FIRING, 1))])
    active = ActiveAlerts(log)
    keys = view.state(ApiKeyRegistry)
    module = QueryModule(
        settings=Settings(query_addr="127.0.0.1:0", http_addr="127.0.0.1:0"),
        hot_store=MemoryHotStore(),
        api_keys=keys,
        clock_ms=lambda: 10_000,
        alerts=AlertsApi(active=active, config=view.state(AlertConfigState)),
        extensions=(alerts_api(event_log=log, keys=keys, view=view, active=active, clock_ms=lambda: 10_000),),
    )
    await module.start()
    try:
        base = f"http://127.0.0.1:{module.http_port}"
        alerts = base + "/argus.alerts.v1.AlertService/ListAlerts"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE_S)) as http:
            got = await call(http, alerts, service_pb2.ListAlertsRequest(), headers=request_headers(key_a))
            assert [a.rule for m in got.decoded(service_pb2.ListAlertsResponse) for a in m.alerts] == ["cpu"]
            got = await call(http, alerts, service_pb2.ListAlertsRequest(), headers=request_headers(key_b))
            assert got.code == 0 and [a for m in got.decoded(service_pb2.ListAlertsResponse) for a in m.alerts] == []
            metrics = base + "/argus.query.v1.QueryService/ListMetrics"
            got = await call(http, metrics, query_pb2.ListMetricsRequest(), headers=request_headers(key_a))
            assert got.code == 0 and len(got.messages) == 1
            got = await call(http, metrics, query_pb2.ListMetricsRequest(), headers=request_headers("nope"))
            assert got.code == grpc.StatusCode.UNAUTHENTICATED.value[0]
            got = await call(http, base + QUERY, q(""), headers=request_headers(key_a))
            assert got.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and got.message
            async with http.get(base + "/healthz") as r:  # the JSON API is still there beside it
                assert r.status == 200
    finally:
        await module.stop()


async def test_a_request_body_arriving_in_pieces_is_read_whole(served: Served) -> None:
    body = frame(q("m" * 60_000))

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 7_000):
            yield body[at : at + 7_000]
            await asyncio.sleep(0)

    async with served.http.post(served.url + QUERY, data=pieces(), headers=request_headers(KEY)) as r:
        got = [(flag, payload) async for flag, payload in frames(r)]
    assert query_pb2.QueryResponse.FromString(got[0][1]).tier == "m" * 60_000 + ":False"
    assert parse_trailer(got[1][1])["grpc-status"] == "0"


def test_cors_origins_setting_is_a_comma_separated_list() -> None:
    from core.settings import Settings

    settings = Settings(cors_origins=" http://localhost:5173/, https://dash.example ,")
    assert settings.query_settings().cors_origins == ("http://localhost:5173", "https://dash.example")
    assert Settings().query_settings().cors_origins == ()
