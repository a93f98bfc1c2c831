"""gRPC entrypoint of the query side: argus.query.v1.QueryService on grpc.aio.

Authenticate -> parse the proto -> call the transport-neutral handler (query_side/handlers.py)
-> encode the proto; errors map through the one table in core/transport_errors.py. Every RPC
is read-only and idempotent. `spec_from_request` / `response_from_result` are the proto codec
a gRPC-web adapter reuses.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from contracts.argus.query.v1 import query_pb2, query_pb2_grpc
from core.auth import Authenticator
from core.errors import ArgusError, InvalidArgument
from core.model import HOUR_MS
from core.transport_errors import PARAMETER_METADATA_KEY, grpc_status, is_server_fault
from query_side.engine import Clock, QueryEngine, QueryResult, metric_kind_label, system_clock_ms
from query_side.handlers import LabelValuesRequest, QueryHandlers
from query_side.live import LiveHub, LiveQuery, LiveUpdate
from query_side.planner import AUTO, Matcher, MatchOp, QuerySpec

log = logging.getLogger(__name__)

SERVICE_NAME: str = query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name
__all__ = [
    "PARAMETER_METADATA_KEY",
    "SERVICE_NAME",
    "QueryServicer",
    "add_to_server",
    "response_from_result",
    "spec_from_request",
]

_OPS = {
    # proto3 zero value: a matcher without op is an equality, as the field reads.
    query_pb2.MATCH_OP_UNSPECIFIED: MatchOp.EQUAL,
    query_pb2.MATCH_OP_EQUAL: MatchOp.EQUAL,
    query_pb2.MATCH_OP_NOT_EQUAL: MatchOp.NOT_EQUAL,
    query_pb2.MATCH_OP_REGEX: MatchOp.REGEX,
    query_pb2.MATCH_OP_NOT_REGEX: MatchOp.NOT_REGEX,
}

_R = TypeVar("_R")


class QueryServicer(query_pb2_grpc.QueryServiceServicer):
    """QueryService on grpc.aio: the proto codec around `QueryHandlers`; the tenant comes
    from the `authorization` metadata."""

    def __init__(
        self,
        engine: QueryEngine,
        authenticator: Authenticator,
        clock: Clock = system_clock_ms,
        *,
        live: LiveHub | None = None,
    ) -> None:
        self._handlers = QueryHandlers(engine, authenticator, clock)
        self._live = live or LiveHub(engine, clock)

    async def Query(
        self, request: query_pb2.QueryRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.QueryResponse:
        async def call() -> query_pb2.QueryResponse:
            tenant = self._tenant(context)
            spec = spec_from_request(request, tenant=tenant, now_ms=self._handlers.now_ms())
            result = await self._handlers.query(tenant, spec)
            return await self._handlers.encode(response_from_result, result)

        return await _guarded(context, "query", call)

    async def ListMetrics(
        self, request: query_pb2.ListMetricsRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.ListMetricsResponse:
        async def call() -> query_pb2.ListMetricsResponse:
            metrics = await self._handlers.list_metrics(self._tenant(context))
            return query_pb2.ListMetricsResponse(
                metrics=[
                    query_pb2.MetricInfo(name=m.name, kind=metric_kind_label(m.kind), series_count=m.series_count)
                    for m in metrics
                ]
            )

        return await _guarded(context, "list metrics", call)

    async def ListLabelValues(
        self, request: query_pb2.ListLabelValuesRequest, context: grpc.aio.ServicerContext
    ) -> query_pb2.ListLabelValuesResponse:
        async def call() -> query_pb2.ListLabelValuesResponse:
            tenant = self._tenant(context)
            values = await self._handlers.label_values(
                tenant, LabelValuesRequest(label=request.label, metric=request.metric or None)
            )
            return query_pb2.ListLabelValuesResponse(values=values)

        return await _guarded(context, "list label values", call)

    async def Watch(
        self, request: query_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[query_pb2.WatchResponse]:
        try:
            tenant = self._tenant(context)
            now_ms = self._handlers.now_ms()
            queries = [
                LiveQuery(spec=spec_from_request(q, tenant=tenant, now_ms=now_ms), follow=q.end_ms == 0)
                for q in request.queries
            ]
            async for updates in self._live.watch(tenant, queries, min_interval_ms=request.min_interval_ms):
                yield watch_response(updates)
        except Exception as exc:
            await _abort_with(context, "watch", exc)

    def _tenant(self, context: grpc.aio.ServicerContext) -> str:
        return self._handlers.authenticate(context.invocation_metadata())


def add_to_server(server: grpc.aio.Server, servicer: QueryServicer) -> None:
    """Register the servicer; health/reflection use SERVICE_NAME."""
    query_pb2_grpc.add_QueryServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


def spec_from_request(request: query_pb2.QueryRequest, *, tenant: str, now_ms: int) -> QuerySpec:
    """A QuerySpec from the proto; start_ms/end_ms 0 mean end = now, start = end - 1 h."""
    end_ms = request.end_ms or now_ms
    start_ms = request.start_ms or end_ms - HOUR_MS
    matchers = []
    for m in request.matchers:
        op = _OPS.get(m.op)
        if op is None:
            raise InvalidArgument(f"matchers: unknown op {m.op} for label {m.name!r}", parameter="matchers")
        matchers.append(Matcher(name=m.name, op=op, value=m.value))
    return QuerySpec(
        tenant=tenant,
        metric=request.metric,
        start_ms=start_ms,
        end_ms=end_ms,
        period=request.period or AUTO,
        agg=request.agg or None,
        matchers=tuple(matchers),
        group_by=tuple(g for part in request.group_by for g in part.split(",")),
        region=request.region or None,
    )


def response_from_result(result: QueryResult) -> query_pb2.QueryResponse:
    response = query_pb2.QueryResponse(
        tier=result.tier,
        stats=query_pb2.QueryStats(
            series_matched=result.stats.series_matched,
            chunks_read=result.stats.chunks_read,
            points_read=result.stats.points_read,
            elapsed_ms=result.stats.elapsed_ms,
        ),
    )
    for s in result.series:
        out = response.series.add()
        out.labels.update(s.labels)
        out.timestamps_ms.extend(s.ts.tolist())
        out.values.extend(s.values.tolist())
    return response


def watch_response(updates: Sequence[LiveUpdate]) -> query_pb2.WatchResponse:
    response = query_pb2.WatchResponse()
    for u in updates:
        out = response.updates.add(query_index=u.query_index, tier=u.tier, error=u.error, snapshot=u.snapshot)
        for s in u.series:
            series = out.series.add()
            series.labels.update(s.labels)
            series.timestamps_ms.extend(s.ts)
            series.values.extend(s.values)
    return response


async def _abort_with(context: grpc.aio.ServicerContext, what: str, exc: Exception) -> None:
    if not isinstance(exc, ArgusError):
        log.exception("%s failed", what)
    elif is_server_fault(exc):
        log.warning("%s failed: %s", what, exc, exc_info=exc)
    code, details, trailing = grpc_status(exc)
    await context.abort(code, details, trailing)


async def _guarded(context: grpc.aio.ServicerContext, what: str, call: Callable[[], Awaitable[_R]]) -> _R:
    """Run `call`, turning errors into a status by the shared table (anything not ours is
    INTERNAL with a generic message; the details go to the log)."""
    try:
        return await call()
    except Exception as exc:
        await _abort_with(context, what, exc)
        raise  # abort always raises; this keeps type checkers sure the function returns
