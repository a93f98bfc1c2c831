"""The alerts operator API on the query server: silences (command_side/config/http.py),
history (query_side/alerts/history.py) and the gRPC AlertService
(query_side/alerts/grpc_service.py). Composed here because the query side cannot import the
command side (.importlinter)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from aiohttp import web

from argus.modules import QueryExtension
from command_side.config.http import add_silence_routes
from core.auth import ApiKeyRegistry
from core.config_view import ConfigView
from core.ports import EventLog
from query_side.alerts.active import ActiveAlerts
from query_side.alerts.history import AlertHistory, add_history_routes


def alerts_api(
    *,
    event_log: EventLog,
    keys: ApiKeyRegistry,
    view: ConfigView,
    active: ActiveAlerts,
    clock_ms: Callable[[], int],
) -> QueryExtension:
    # History reads the store `active` reads, kept by the same projector.
    projector = active.projector
    history = AlertHistory(event_log, projector=projector)

    def http(app: web.Application) -> None:
        add_silence_routes(app, keys=keys, view=view, clock_ms=clock_ms)
        add_history_routes(app, keys, history, clock_ms)

    def add_grpc(server: grpc.aio.Server) -> str:
        from query_side.alerts import grpc_service

        grpc_service.add_to_server(
            server, grpc_service.AlertServicer(keys=keys, events=event_log, active=active, history=history)
        )
        return grpc_service.SERVICE_NAME

    return QueryExtension(http=http, grpc=add_grpc, follow=history.run, prime=history.refresh, close=projector.close)
