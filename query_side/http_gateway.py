"""HTTP/JSON entrypoint of the query side (aiohttp). The API is documented in docs/query-api.md.

Parse query parameters -> authenticate (`Authorization: Bearer <key>`) -> call the engine ->
JSON with orjson. Errors use the one status table of core/transport_errors.py and always
have the body `{"error": "...", "parameter": "..."}` (parameter only when one is at fault).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from core.auth import Authenticator, bearer_token
from core.errors import ArgusError, InvalidArgument, Unauthenticated
from core.transport_errors import http_status, public_message
from query_side.engine import Clock, QueryEngine, QueryResult, metric_kind_label, system_clock_ms
from query_side.planner import AUTO, QuerySpec, parse_matcher
from query_side.timeparse import parse_range

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[bool | str]]
"""True when ready; False, or the reason as text, when not."""

_QUERY_PARAMS = frozenset({"metric", "start", "end", "period", "agg", "where", "group_by", "region"})
_JSON = "application/json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_http_app(
    engine: QueryEngine,
    authenticator: Authenticator,
    clock: Clock = system_clock_ms,
    *,
    readiness: Readiness | None = None,
) -> web.Application:
    """The query HTTP API. `readiness` (optional) decides `/readyz`; without it the app is
    ready as soon as it serves."""
    app = web.Application(middlewares=[_errors_middleware])
    api = _Api(engine, authenticator, clock, readiness)
    app.router.add_get("/api/v1/query", api.query)
    app.router.add_get("/api/v1/metrics", api.metrics)
    app.router.add_get("/api/v1/labels/{name}/values", api.label_values)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    return app


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # orjson writes NaN as null, which is what the API promises for missing values.
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON, headers=headers)


def error_body(message: str, parameter: str | None = None) -> dict[str, str]:
    return {"error": message, "parameter": parameter} if parameter else {"error": message}


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ArgusError as exc:
        parameter = exc.parameter if isinstance(exc, InvalidArgument) else None
        headers = {"WWW-Authenticate": 'Bearer realm="argus"'} if isinstance(exc, Unauthenticated) else None
        status = http_status(exc)
        if status >= 500:
            log.warning("http %s %s failed: %s", request.method, request.path, exc, exc_info=exc)
        return json_response(error_body(public_message(exc), parameter), status=status, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response(error_body(exc.reason), status=exc.status)
    except Exception as exc:
        log.exception("http %s %s failed", request.method, request.path)
        return json_response(error_body(public_message(exc)), status=http_status(exc))


class _Api:
    def __init__(
        self, engine: QueryEngine, authenticator: Authenticator, clock: Clock, readiness: Readiness | None
    ) -> None:
        self._engine = engine
        self._auth = authenticator
        self._clock = clock
        self._readiness = readiness

    def _tenant(self, request: web.Request) -> str:
        return self._auth.tenant_for(bearer_token(request.headers.get("Authorization")))

    async def query(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        spec = spec_from_params(request.query, tenant=tenant, now_ms=self._clock())
        return json_response(result_body(await self._engine.query(spec)))

    async def metrics(self, request: web.Request) -> web.Response:
        metrics = await self._engine.list_metrics(self._tenant(request))
        return json_response(
            {
                "metrics": [
                    {"name": m.name, "kind": metric_kind_label(m.kind), "series_count": m.series_count} for m in metrics
                ]
            }
        )

    async def label_values(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        metric = request.query.get("metric", "").strip() or None
        values = await self._engine.label_values(tenant, request.match_info["name"], metric)
        return json_response({"values": values})

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
    )


def _single(params: Any, name: str, default: str = "") -> str:
    values: list[str] = params.getall(name, [])
    if len(values) > 1:
        raise InvalidArgument(f"{name}: given {len(values)} times, expected once", parameter=name)
    return values[0] if values else default


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
