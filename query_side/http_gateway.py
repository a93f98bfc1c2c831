"""HTTP/JSON entrypoint of the query side (aiohttp). The API is documented in docs/query-api.md.

Authenticate (`Authorization: Bearer <key>`) -> parse query parameters -> call the
transport-neutral handler (query_side/handlers.py) -> JSON with orjson, encoded off the loop.
Serve it with `HttpRunner` (JSON bodies for aiohttp's own errors, handler cancellation).
Errors use the one status table of core/transport_errors.py and always have the body
`{"error": "...", "parameter": "..."}` (parameter only when one is at fault).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web, web_protocol
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from core.auth import Authenticator
from core.errors import ArgusError, InvalidArgument
from core.transport_errors import http_error, is_server_fault
from query_side.admin import QuarantineSource, add_admin_routes
from query_side.alerts.http import AlertsApi, add_alert_routes
from query_side.engine import Clock, QueryEngine, QueryResult, metric_kind_label, system_clock_ms
from query_side.handlers import LabelValuesRequest, QueryHandlers
from query_side.planner import AUTO, QuerySpec, parse_matcher
from query_side.promql.http_api import add_prometheus_routes
from query_side.timeparse import parse_range

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[bool | str]]
"""True when ready; False, or the reason as text, when not."""

_QUERY_PARAMS = frozenset(
    {"metric", "start", "end", "period", "agg", "where", "group_by", "region", "limit", "sort", "order"}
)
_JSON = "application/json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_http_app(
    engine: QueryEngine,
    authenticator: Authenticator,
    clock: Clock = system_clock_ms,
    *,
    readiness: Readiness | None = None,
    quarantine: QuarantineSource | None = None,
    alerts: AlertsApi | None = None,
) -> web.Application:
    """The query HTTP API. `readiness` (optional) decides `/readyz`; without it the app is
    ready as soon as it serves."""
    app = web.Application(middlewares=[_errors_middleware])
    api = _Api(QueryHandlers(engine, authenticator, clock), readiness)
    app.router.add_get("/api/v1/query", api.query)
    app.router.add_get("/api/v1/metrics", api.metrics)
    app.router.add_get("/api/v1/labels/{name}/values", api.label_values)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    add_admin_routes(app, authenticator, quarantine)  # query_side/admin.py
    add_alert_routes(app, authenticator, alerts)  # query_side/alerts/http.py
    add_prometheus_routes(app, engine, authenticator, clock)  # query_side/promql/http_api.py: /prometheus/...
    return app


class HttpRunner(web.AppRunner):
    """The runner to serve `make_http_app` with (instead of `web.AppRunner`).

    - Errors aiohttp answers before any handler or middleware runs (a malformed request
      line, an over-long URL or header) get the API's JSON error body, not plain text.
    - Handler cancellation: a client that disconnects cancels its handler, and with it the
      query's work (the engine stops its worker at the next check).
    """

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("handler_cancellation", True)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        # The app builds its Server (request factory, handler args, access log); the same
        # settings go into the subclass whose connections answer errors in JSON.
        made = await super()._make_server()
        return _JsonErrorsServer(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


class _JsonErrorsServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return _JsonErrorsRequestHandler(self, loop=self._loop, **self._kwargs)


class _JsonErrorsRequestHandler(web_protocol.RequestHandler):
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # The base logs and refuses when a response is already under way; its text is replaced.
        plain = super().handle_error(request, status, exc, message)
        response = json_response(error_body(_protocol_error_message(status, exc)), status=status)
        response.force_close()
        del plain
        return response


def _protocol_error_message(status: int, exc: BaseException | None) -> str:
    """What went wrong, without echoing the request (it may be megabytes)."""
    if isinstance(exc, LineTooLong):
        return f"request line or a header is longer than the limit of {exc.args[1]} bytes"
    if isinstance(exc, BadHttpMessage):
        return f"malformed HTTP request: {exc.message[:200]}"
    if status >= 500:
        return "internal error (see server log)"
    return f"HTTP error {status}"


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # orjson writes NaN as null, which is what the API promises for missing values.
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON, headers=headers)


def error_body(message: str, parameter: str | None = None) -> dict[str, str]:
    return {"error": message, "parameter": parameter} if parameter else {"error": message}


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response(error_body(exc.reason), status=exc.status)
    except Exception as exc:
        if not isinstance(exc, ArgusError):
            log.exception("http %s %s failed", request.method, request.path)
        elif is_server_fault(exc):
            log.warning("http %s %s failed: %s", request.method, request.path, exc, exc_info=exc)
        status, body, headers = http_error(exc)
        return json_response(body, status=status, headers=headers)


class _Api:
    """The HTTP JSON wrapper of `QueryHandlers`: parse parameters, call, encode."""

    def __init__(self, handlers: QueryHandlers, readiness: Readiness | None) -> None:
        self._handlers = handlers
        self._readiness = readiness

    def _tenant(self, request: web.Request) -> str:
        return self._handlers.authenticate(request.headers.items())

    async def query(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        spec = spec_from_params(request.query, tenant=tenant, now_ms=self._handlers.now_ms())
        result = await self._handlers.query(tenant, spec)
        body = await self._handlers.encode(_encode_result, result)
        return web.Response(body=body, content_type=_JSON)

    async def metrics(self, request: web.Request) -> web.Response:
        metrics = await self._handlers.list_metrics(self._tenant(request))
        return json_response(
            {
                "metrics": [
                    {"name": m.name, "kind": metric_kind_label(m.kind), "series_count": m.series_count} for m in metrics
                ]
            }
        )

    async def label_values(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        label_request = LabelValuesRequest(label=request.match_info["name"], metric=request.query.get("metric"))
        return json_response({"values": await self._handlers.label_values(tenant, label_request)})

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        verdict = True if self._readiness is None else await self._readiness()
        if verdict is not True:
            body = {"status": "not ready", "reason": verdict} if isinstance(verdict, str) else {"status": "not ready"}
            return json_response(body, status=503)
        return json_response({"status": "ready"})


def spec_from_params(params: Any, *, tenant: str, now_ms: int) -> QuerySpec:
    """A QuerySpec from `/api/v1/query` parameters (a MultiDict). Unknown parameter names
    are rejected so a typo does not silently widen a query."""
    unknown = sorted(set(params.keys()) - _QUERY_PARAMS)
    if unknown:
        raise InvalidArgument(
            f"{unknown[0]}: unknown parameter (expected: {', '.join(sorted(_QUERY_PARAMS))})",
            parameter=unknown[0],
        )
    metric = _single(params, "metric").strip()
    if not metric:
        raise InvalidArgument("metric: required, e.g. ?metric=http.requests", parameter="metric")
    start_ms, end_ms = parse_range(_single(params, "start"), _single(params, "end"), now_ms=now_ms)
    return QuerySpec(
        tenant=tenant,
        metric=metric,
        start_ms=start_ms,
        end_ms=end_ms,
        period=_single(params, "period", AUTO).strip() or AUTO,
        agg=_single(params, "agg").strip() or None,
        matchers=tuple(parse_matcher(w) for w in params.getall("where", [])),
        group_by=tuple(g.strip() for value in params.getall("group_by", []) for g in value.split(",")),
        region=_single(params, "region").strip() or None,
        limit=_limit(_single(params, "limit")),
        sort=_single(params, "sort").strip() or None,
        order=_single(params, "order").strip() or None,
    )


def _limit(text: str) -> int:
    """`limit=` as a count of series; the range is the planner's (validate_ordering)."""
    text = text.strip()
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InvalidArgument(f"limit: {text[:20]!r} is not a number of series, e.g. limit=10", parameter="limit")
    return int(text)


def _single(params: Any, name: str, default: str = "") -> str:
    values: list[str] = params.getall(name, [])
    if len(values) > 1:
        raise InvalidArgument(f"{name}: given {len(values)} times, expected once", parameter=name)
    return values[0] if values else default


def _encode_result(result: QueryResult) -> bytes:
    return orjson.dumps(result_body(result))


def result_body(result: QueryResult) -> dict[str, Any]:
    """The JSON shape of a query answer: points are [ts_ms, value] pairs, NaN -> null."""
    return {
        "tier": result.tier,
        "step_ms": result.step_ms,
        "agg": result.agg,
        "series": [
            # zip/list run in C: no Python bytecode per point.
            {"labels": dict(s.labels), "points": list(zip(s.ts.tolist(), s.values.tolist(), strict=True))}
            for s in result.series
        ],
        "stats": {
            "series_matched": result.stats.series_matched,
            "chunks_read": result.stats.chunks_read,
            "points_read": result.stats.points_read,
            "elapsed_ms": round(result.stats.elapsed_ms, 3),
        },
    }
