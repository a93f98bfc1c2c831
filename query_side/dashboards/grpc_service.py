"""gRPC `argus.dashboards.v1.DashboardService` on the query server (contracts/argus/dashboards/v1/dashboards.proto).

The proto codec around `DashboardHandlers` (query_side/dashboards/handlers.py), written with
the plain grpc.aio servicer API (`context.invocation_metadata()`, `context.abort`) so the
gRPC-web adapter can call the same methods. Auth as QueryService: the tenant of the
`authorization: Bearer <key>` metadata; errors through core/transport_errors.py's table (a
stale version is ABORTED naming the current version; a bad spec INVALID_ARGUMENT naming the
field, also in the `argus-parameter` trailer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from contracts.argus.dashboards.v1 import dashboards_pb2 as pb
from contracts.argus.dashboards.v1 import dashboards_pb2_grpc as pb_grpc
from core.dashboards.state import DashboardVersion
from core.errors import ArgusError
from core.transport_errors import grpc_status, is_server_fault
from query_side.dashboards.handlers import Caller, DashboardHandlers, ListRequest, SaveRequest

log = logging.getLogger(__name__)

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["DashboardService"].full_name

_R = TypeVar("_R")


def dashboard_proto(d: DashboardVersion, *, with_spec: bool = True) -> pb.Dashboard:
    return pb.Dashboard(
        uid=d.uid,
        title=d.title,
        folder=d.folder,
        tags=list(d.tags),
        spec_json=d.spec_json if with_spec else "",
        version=d.version,
        updated_ms=d.updated_ms,
        updated_by=d.updated_by,
        provisioned=d.provisioned,
        deleted=d.deleted,
    )


class DashboardServicer(pb_grpc.DashboardServiceServicer):
    def __init__(self, handlers: DashboardHandlers) -> None:
        self._handlers = handlers

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        return self._handlers.authenticate(context.invocation_metadata())

    async def ListDashboards(
        self, request: pb.ListDashboardsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDashboardsResponse:
        async def call() -> pb.ListDashboardsResponse:
            found = await self._handlers.list_dashboards(
                self._caller(context),
                ListRequest(
                    search=request.search,
                    folder=request.folder,
                    tags=tuple(request.tags),
                    include_deleted=request.include_deleted,
                ),
            )
            return pb.ListDashboardsResponse(dashboards=[dashboard_proto(d, with_spec=False) for d in found])

        return await _guarded(context, "list dashboards", call)

    async def GetDashboard(
        self, request: pb.GetDashboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDashboardResponse:
        async def call() -> pb.GetDashboardResponse:
            d = await self._handlers.get(self._caller(context), request.uid, request.version)
            return pb.GetDashboardResponse(dashboard=dashboard_proto(d))

        return await _guarded(context, "get dashboard", call)

    async def SaveDashboard(
        self, request: pb.SaveDashboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.SaveDashboardResponse:
        async def call() -> pb.SaveDashboardResponse:
            caller = self._caller(context)
            d = request.dashboard
            saved = await self._handlers.save(
                caller,
                SaveRequest(
                    uid=d.uid,
                    title=d.title,
                    folder=d.folder,
                    tags=tuple(d.tags),
                    spec_json=d.spec_json,
                    expected_version=request.expected_version,
                    message=request.message,
                ),
            )
            return pb.SaveDashboardResponse(dashboard=dashboard_proto(saved))

        return await _guarded(context, "save dashboard", call)

    async def DeleteDashboard(
        self, request: pb.DeleteDashboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteDashboardResponse:
        async def call() -> pb.DeleteDashboardResponse:
            version = await self._handlers.delete(self._caller(context), request.uid, request.expected_version)
            return pb.DeleteDashboardResponse(version=version)

        return await _guarded(context, "delete dashboard", call)

    async def DashboardHistory(
        self, request: pb.DashboardHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.DashboardHistoryResponse:
        async def call() -> pb.DashboardHistoryResponse:
            entries = await self._handlers.history(self._caller(context), request.uid, request.limit)
            return pb.DashboardHistoryResponse(
                entries=[pb.DashboardHistoryEntry(dashboard=dashboard_proto(e), message=e.message) for e in entries]
            )

        return await _guarded(context, "dashboard history", call)

    async def RestoreDashboard(
        self, request: pb.RestoreDashboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.RestoreDashboardResponse:
        async def call() -> pb.RestoreDashboardResponse:
            restored = await self._handlers.restore(
                self._caller(context), request.uid, request.version, request.expected_version
            )
            return pb.RestoreDashboardResponse(dashboard=dashboard_proto(restored))

        return await _guarded(context, "restore dashboard", call)


def add_to_server(server: grpc.aio.Server, servicer: DashboardServicer) -> None:
    """Register the servicer; health/reflection use SERVICE_NAME."""
    pb_grpc.add_DashboardServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]


async def _guarded(context: grpc.aio.ServicerContext, what: str, call: Callable[[], Awaitable[_R]]) -> _R:
    """Run `call`, turning errors into a status by the shared table."""
    try:
        return await call()
    except Exception as exc:
        if not isinstance(exc, ArgusError):
            log.exception("%s failed", what)
        elif is_server_fault(exc):
            log.warning("%s failed: %s", what, exc, exc_info=exc)
        code, details, trailing = grpc_status(exc)
        await context.abort(code, details, trailing)
        raise
