"""The dashboard service on the query server: gRPC `argus.dashboards.v1.DashboardService`
(query_side/dashboards/grpc_service.py) and its HTTP JSON routes (query_side/dashboards/http.py),
over transport-neutral handlers whose writes are the command side's
(command_side/config/dashboards.py). Composed here because the query side cannot import the
command side (.importlinter). This is the one place the servicer is registered: the query
module adds every extension's gRPC service to its server (argus/modules.py QueryModule).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from aiohttp import web

from argus.modules import QueryExtension
from command_side.config.dashboards import (
    DeleteDashboard,
    RestoreDashboard,
    SaveDashboard,
    delete_dashboard,
    restore_dashboard,
    save_dashboard,
)
from core.auth import ApiKeyRegistry
from core.config_view import ConfigView
from core.dashboards.state import DashboardVersion
from query_side.dashboards.handlers import Caller, DashboardHandlers, SaveRequest


class CommandWriter:
    """`DashboardWriter` over the command side's handlers."""

    def __init__(self, view: ConfigView, clock_ms: Callable[[], int]) -> None:
        self._view = view
        self._clock_ms = clock_ms

    async def save(self, caller: Caller, request: SaveRequest) -> DashboardVersion:
        command = SaveDashboard(
            tenant=caller.tenant,
            uid=request.uid,
            title=request.title,
            folder=request.folder,
            tags=request.tags,
            spec_json=request.spec_json,
            expected_version=request.expected_version,
            author=caller.author,
            message=request.message,
        )
        return await save_dashboard(command, view=self._view, clock_ms=self._clock_ms)

    async def delete(self, caller: Caller, uid: str, expected_version: int) -> int:
        command = DeleteDashboard(
            tenant=caller.tenant, uid=uid, expected_version=expected_version or None, author=caller.author
        )
        return await delete_dashboard(command, view=self._view, clock_ms=self._clock_ms)

    async def restore(self, caller: Caller, uid: str, version: int, expected_version: int) -> DashboardVersion:
        command = RestoreDashboard(
            tenant=caller.tenant,
            uid=uid,
            version=version,
            expected_version=expected_version or None,
            author=caller.author,
        )
        return await restore_dashboard(command, view=self._view, clock_ms=self._clock_ms)


def dashboard_handlers(*, keys: ApiKeyRegistry, view: ConfigView, clock_ms: Callable[[], int]) -> DashboardHandlers:
    return DashboardHandlers(view=view, keys=keys, writer=CommandWriter(view, clock_ms))


def dashboards_api(*, keys: ApiKeyRegistry, view: ConfigView, clock_ms: Callable[[], int]) -> QueryExtension:
    handlers = dashboard_handlers(keys=keys, view=view, clock_ms=clock_ms)

    def http(app: web.Application) -> None:
        from query_side.dashboards.http import add_dashboard_routes

        add_dashboard_routes(app, handlers)

    def add_grpc(server: grpc.aio.Server) -> str:
        from query_side.dashboards import grpc_service

        grpc_service.add_to_server(server, grpc_service.DashboardServicer(handlers))
        return grpc_service.SERVICE_NAME

    return QueryExtension(http=http, grpc=add_grpc)
