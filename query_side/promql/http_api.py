"""The Prometheus HTTP API under `/prometheus` (docs/promql.md, decision 0041).

Grafana's Prometheus data source (URL `http://host:port/prometheus`), `promtool query` and
other Prometheus clients speak to these routes unchanged: GET or POST form bodies, times as
RFC 3339 or Unix seconds, steps as seconds or durations, Prometheus's envelope
(`status`, `data`, `warnings`, `errorType`/`error`). Authentication is Argus's bearer key
(Grafana's "Authorization" header); the tenant comes from the key, so a tenant only ever
sees its own series. The native API keeps `/api/v1/query` (a different shape): hence the prefix.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import promql_parser as pp
from aiohttp import web
from multidict import MultiDict

from core.auth import Authenticator
from core.errors import ArgusError, DeadlineExceeded, InvalidArgument, NotFound, ResourceExhausted, Unauthenticated
from core.model import MetricKind
from core.tenancy import tenant_from_metadata
from query_side.engine import Clock, QueryEngine
from query_side.planner import compile_selector
from query_side.promql.evaluator import PromQuery, PromResult, evaluate, parse, selector_matchers
from query_side.promql.storage import NAME_LABEL, prom_name
from query_side.promql.values import Matrix, Scalar, String, Vector

log = logging.getLogger(__name__)

PREFIX = "/prometheus"
BUILD_VERSION = "2.45.0"
"""The Prometheus version whose API (and PromQL) this mirrors, for clients that check."""
MAX_MATCH_SELECTORS = 64

_METRIC_TYPE = {
    MetricKind.COUNTER: "counter",
    MetricKind.GAUGE: "gauge",
    MetricKind.TIMER: "summary",
    MetricKind.DISTINCT: "gauge",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_prometheus_routes(
    app: web.Application, engine: QueryEngine, authenticator: Authenticator, clock: Clock
) -> None:
    api = _PromApi(engine, authenticator, clock)
    for path, handler in (
        ("/api/v1/query", api.query),
        ("/api/v1/query_range", api.query_range),
        ("/api/v1/series", api.series),
        ("/api/v1/labels", api.labels),
        ("/api/v1/query_exemplars", api.exemplars),
    ):
        app.router.add_get(PREFIX + path, _enveloped(handler))
        app.router.add_post(PREFIX + path, _enveloped(handler))
    app.router.add_get(PREFIX + "/api/v1/label/{name}/values", _enveloped(api.label_values))
    app.router.add_get(PREFIX + "/api/v1/metadata", _enveloped(api.metadata))
    app.router.add_get(PREFIX + "/api/v1/status/buildinfo", _enveloped(api.buildinfo))


# ------------------------------------------------------------------------- envelope


def _error_type(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, InvalidArgument):
        return 400, "bad_data"
    if isinstance(exc, Unauthenticated):
        return 401, "unauthorized"
    if isinstance(exc, NotFound):
        return 404, "not_found"
    if isinstance(exc, DeadlineExceeded):
        return 503, "timeout"
    if isinstance(exc, ResourceExhausted):
        return 422, "execution"
    return 500, "internal"


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", headers=dict(headers or {})
    )


def _enveloped(handler: Callable[[web.Request, MultiDict[str]], Awaitable[tuple[Any, list[str]]]]) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            params: MultiDict[str] = MultiDict(request.query)
            if request.method == "POST":
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, str):
                        params.add(key, value)
            data, warnings = await handler(request, params)
        except Exception as exc:
            if not isinstance(exc, ArgusError):
                log.exception("prometheus api %s failed", request.path)
                message = "internal error (see server log)"
            else:
                message = str(exc)
            status, kind = _error_type(exc)
            headers = {"WWW-Authenticate": 'Bearer realm="argus"'} if status == 401 else None
            return _json({"status": "error", "errorType": kind, "error": message}, status, headers)
        body: dict[str, Any] = {"status": "success", "data": data}
        if warnings:
            body["warnings"] = warnings
        return _json(body)

    return run


# ------------------------------------------------------------------------- parameters

_DURATION = re.compile(r"(\d+(ms|[smhdwy]))+")


def parse_time(text: str, *, name: str) -> int:
    """Prometheus API time: Unix seconds (float) or RFC 3339; ms since the epoch."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or abs(value) > 1e13:
            raise InvalidArgument(f"{name}: time {text!r} out of range", parameter=name)
        return round(value * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"{name}: cannot parse {text!r} as a time (Unix seconds or RFC 3339)", parameter=name
        ) from None
    if moment.tzinfo is None:
        raise InvalidArgument(f"{name}: RFC 3339 time {text!r} needs a time zone", parameter=name)
    return round(moment.timestamp() * 1000)


def parse_step(text: str, *, name: str = "step") -> int:
    """Seconds (float) or a Prometheus duration (`15s`, `1m30s`); ms."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        if not _DURATION.fullmatch(text):
            raise InvalidArgument(
                f"{name}: cannot parse {text!r} as a duration (seconds or e.g. 15s, 1m)", parameter=name
            ) from None
        seconds = pp.parse_duration(text).total_seconds()
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(f"{name}: zero or negative query resolution step widths are not accepted", parameter=name)
    if seconds > 10 * 365 * 86400:
        raise InvalidArgument(f"{name}: {text!r} is too long", parameter=name)
    return max(1, round(seconds * 1000))


def _one(params: MultiDict[str], name: str, *, required: bool = False) -> str | None:
    values = params.getall(name, [])
    if len(values) > 1:
        raise InvalidArgument(f"{name}: given {len(values)} times, expected once", parameter=name)
    if not values or not values[0].strip():
        if required:
            raise InvalidArgument(f"{name}: required", parameter=name)
        return None
    return values[0]


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _pairs(times: list[float], values: list[float]) -> list[list[Any]]:
    return [[t, _fmt(v)] for t, v in zip(times, values, strict=True)]


def _metric(labels: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(labels)


def result_data(result: PromResult, *, instant: bool) -> dict[str, Any]:
    """`data` of a query answer: resultType and result, in Prometheus's JSON shape."""
    times = result.times_ms / 1000.0
    value = result.value
    if isinstance(value, Scalar):
        if instant:
            return {"resultType": "scalar", "result": [float(times[0]), _fmt(float(value.values[0]))]}
        return {
            "resultType": "matrix",
            "result": [
                {
                    "metric": {},
                    "values": [[t, _fmt(v)] for t, v in zip(times.tolist(), value.values.tolist(), strict=True)],
                }
            ],
        }
    if isinstance(value, String):
        return {"resultType": "string", "result": [float(times[0]), value.value]}
    if isinstance(value, Matrix):
        if not instant:
            raise InvalidArgument(
                "query: a range query needs an instant vector or scalar expression, got a range vector",
                parameter="query",
            )
        at = int(value.eff[0])
        out = []
        for s in value.series:
            keep = (s.ts >= at - value.range_ms) & (s.ts <= at)
            if keep.any():
                out.append(
                    {
                        "metric": _metric(s.labels),
                        "values": [
                            [t / 1000.0, _fmt(v)]
                            for t, v in zip(s.ts[keep].tolist(), s.values[keep].tolist(), strict=True)
                        ],
                    }
                )
        return {"resultType": "matrix", "result": out}
    assert isinstance(value, Vector)
    series = value.series if value.ordered else sorted(value.series, key=lambda s: s.labels)
    if instant:
        return {
            "resultType": "vector",
            "result": [
                {"metric": _metric(s.labels), "value": [float(times[0]), _fmt(float(s.values[0]))]}
                for s in series
                if not np.isnan(s.values[0])
            ],
        }
    rows = []
    for vs in series:
        ok = ~np.isnan(vs.values)
        if ok.any():
            rows.append({"metric": _metric(vs.labels), "values": _pairs(times[ok].tolist(), vs.values[ok].tolist())})
    return {"resultType": "matrix", "result": rows}


def _stats(result: PromResult) -> dict[str, Any]:
    return {
        "timings": {"evalTotalSeconds": result.elapsed_ms / 1000.0},
        "samples": {"totalQueryableSamples": result.points_read},
        "argus": {"tier": result.tier, "seriesRead": result.series_read},
    }


# ------------------------------------------------------------------------- handlers


class _PromApi:
    def __init__(self, engine: QueryEngine, authenticator: Authenticator, clock: Clock) -> None:
        self._engine = engine
        self._auth = authenticator
        self._clock = clock

    def _tenant(self, request: web.Request) -> str:
        return tenant_from_metadata(self._auth, request.headers.items())

    def _timeout_s(self, params: MultiDict[str]) -> float:
        limit = self._engine.limits.timeout_ms / 1000.0
        text = _one(params, "timeout")
        return min(limit, parse_step(text, name="timeout") / 1000.0) if text else limit

    async def _run(self, q: PromQuery, timeout_s: float) -> PromResult:
        try:
            async with asyncio.timeout(timeout_s):
                return await evaluate(self._engine, q, now_ms=self._clock())
        except TimeoutError:
            raise DeadlineExceeded(f"query timed out after {timeout_s:g} s; narrow it or raise the step") from None

    async def query(self, request: web.Request, params: MultiDict[str]) -> tuple[Any, list[str]]:
        tenant = self._tenant(request)
        text = _one(params, "query", required=True)
        assert text is not None
        at_text = _one(params, "time")
        at = parse_time(at_text, name="time") if at_text else self._clock()
        q = PromQuery(tenant=tenant, query=text, start_ms=at, end_ms=at, step_ms=0)
        result = await self._run(q, self._timeout_s(params))
        data = result_data(result, instant=True)
        if _one(params, "stats"):
            data["stats"] = _stats(result)
        return data, result.warnings

    async def query_range(self, request: web.Request, params: MultiDict[str]) -> tuple[Any, list[str]]:
        tenant = self._tenant(request)
        text = _one(params, "query", required=True)
        assert text is not None
        start = parse_time(_one(params, "start", required=True) or "", name="start")
        end = parse_time(_one(params, "end", required=True) or "", name="end")
        step = parse_step(_one(params, "step", required=True) or "")
        if end < start:
            raise InvalidArgument("end: end timestamp must not be before start time", parameter="end")
        q = PromQuery(tenant=tenant, query=text, start_ms=start, end_ms=end, step_ms=step)
        result = await self._run(q, self._timeout_s(params))
        data = result_data(result, instant=False)
        if _one(params, "stats"):
            data["stats"] = _stats(result)
        return data, result.warnings

    async def _matching(self, tenant: str, params: MultiDict[str], *, required: bool) -> list[dict[str, str]] | None:
        """Labels of the series matched by the `match[]` selectors (None: no selectors given),
        from the index; series not seen in [start, end] are left out."""
        selectors = params.getall("match[]", [])
        if not selectors:
            if required:
                raise InvalidArgument("match[]: at least one series selector is required", parameter="match[]")
            return None
        if len(selectors) > MAX_MATCH_SELECTORS:
            raise InvalidArgument(f"match[]: over {MAX_MATCH_SELECTORS} selectors", parameter="match[]")
        start_text, end_text = _one(params, "start"), _one(params, "end")
        start = parse_time(start_text, name="start") if start_text else None
        end = parse_time(end_text, name="end") if end_text else None
        metrics = await self._engine.list_metrics(tenant)
        found: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for text in selectors:
            node = parse(text)
            if not isinstance(node, pp.VectorSelector):
                raise InvalidArgument(f"match[]: {text!r} is not a series selector", parameter="match[]")
            matchers = selector_matchers(node)
            name_matchers = [m for m in matchers if m.name == NAME_LABEL]
            selector = compile_selector([m for m in matchers if m.name != NAME_LABEL])
            for summary in metrics:
                pname = prom_name(summary.name)
                if node.name is not None and pname != node.name:
                    continue
                if name_matchers and not compile_selector(
                    [dataclasses.replace(m, name="n") for m in name_matchers]
                ).matches({"n": pname}):
                    continue
                for record, labels in await self._engine.find_series(tenant, summary.name):
                    if start is not None and record.last_seen_ms < start:
                        continue
                    if end is not None and record.first_seen_ms > end:
                        continue
                    if selector.matches(labels):
                        full = {**{k: v for k, v in labels.items() if v}, NAME_LABEL: pname}
                        found[tuple(sorted(full.items()))] = full
        return [found[k] for k in sorted(found)]

    async def series(self, request: web.Request, params: MultiDict[str]) -> tuple[Any, list[str]]:
        tenant = self._tenant(request)
        return await self._matching(tenant, params, required=True), []

    async def labels(self, request: web.Request, params: MultiDict[str]) -> tuple[Any, list[str]]:
        tenant = self._tenant(request)
        matched = await self._matching(tenant, params, required=False)
        names: set[str] = set()
        if matched is None:
            for summary in await self._engine.list_metrics(tenant):
                for _, labels in await self._engine.find_series(tenant, summary.name):
                    names.update(k for k, v in labels.items() if v)
                names.add(NAME_LABEL)
        else:
            for labels in matched:
                names.update(labels)
        return sorted(names), []

    async def label_values(self, request: web.Request, params: MultiDict[str]) -> tuple[Any, list[str]]:
        tenant = self._tenant(request)
        name = request.match_info["name"]
        matched = await self._matching(tenant, params, required=False)
        if matched is not None:
            return sorted({m[name] for m in matched if name in m}), []
        if name == NAME_LABEL:
            return sorted({prom_name(m.name) for m in await self._engine.list_metrics(tenant)}), []
        return await self._engine.label_values(tenant, name), []

    async def metadata(self, request: web.Request, params: MultiDict[str]) -> tuple[Any, list[str]]:
        tenant = self._tenant(request)
        wanted = _one(params, "metric")
        out: dict[str, list[dict[str, str]]] = {}
        for m in await self._engine.list_metrics(tenant):
            pname = prom_name(m.name)
            if wanted and pname != wanted:
                continue
            out[pname] = [{"type": _METRIC_TYPE.get(MetricKind(m.kind), "unknown"), "help": "", "unit": ""}]
        return out, []

    async def exemplars(self, request: web.Request, params: MultiDict[str]) -> tuple[Any, list[str]]:
        """Argus keeps no exemplars: always none (Grafana asks alongside range queries)."""
        self._tenant(request)
        parse(_one(params, "query", required=True) or "")
        return [], []

    async def buildinfo(self, request: web.Request, params: MultiDict[str]) -> tuple[Any, list[str]]:
        self._tenant(request)
        return {
            "version": BUILD_VERSION,
            "revision": "argus",
            "branch": "argus",
            "buildUser": "argus",
            "buildDate": "",
            "goVersion": "python",
        }, []
