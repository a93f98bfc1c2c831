"""The alerts operator API on the query server: silences (command_side/config/http.py),
history (query_side/alerts/history.py) and the gRPC AlertService
(query_side/alerts/grpc_service.py). Composed here because the query side cannot import the
command side (.importlinter)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from aiohttp import web

from argus.modules import QueryExtension
from command_side.config.alerts import (
    CreateSilence,
    ExpireSilence,
    SaveAlertRule,
    create_silence,
    expire_silence,
    save_alert_rule,
)
from command_side.config.http import add_silence_routes
from core.alerting.model import AlertRule, LabelMatcher, Silence
from core.auth import ApiKeyRegistry
from core.config_view import ConfigView
from core.ports import EventLog
from query_side.alerts.active import ActiveAlerts
from query_side.alerts.grpc_service import AlertCommands, SavedRule
from query_side.alerts.history import AlertHistory, add_history_routes


class ConfigCommands(AlertCommands):
    """The AlertService's configuration commands: the command side's handlers (the same the
    CLI and the HTTP routes run) on the process's config view."""

    def __init__(self, view: ConfigView, clock_ms: Callable[[], int]) -> None:
        self._view = view
        self._clock_ms = clock_ms

    async def create_silence(
        self,
        *,
        tenant: str,
        author: str,
        matchers: tuple[LabelMatcher, ...],
        starts_ms: int,
        ends_ms: int,
        comment: str,
    ) -> Silence:
        command = CreateSilence(
            tenant=tenant, matchers=matchers, starts_ms=starts_ms, ends_ms=ends_ms, comment=comment, author=author
        )
        return await create_silence(command, view=self._view, clock_ms=self._clock_ms)

    async def expire_silence(self, *, tenant: str, author: str, silence_id: str) -> bool:
        command = ExpireSilence(tenant=tenant, silence_id=silence_id, author=author)
        return (await expire_silence(command, view=self._view, clock_ms=self._clock_ms)).changed

    async def save_rule(self, *, tenant: str, author: str, rule: AlertRule, expected_version: int | None) -> SavedRule:
        command = SaveAlertRule(tenant=tenant, rule=rule, author=author, expected_version=expected_version)
        action, version = await save_alert_rule(command, view=self._view, clock_ms=self._clock_ms)
        return SavedRule(rule=rule, action=action.value if action else "unchanged", version=version)


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
            server,
            grpc_service.AlertServicer(
                keys=keys,
                events=event_log,
                active=active,
                history=history,
                view=view,
                commands=ConfigCommands(view, clock_ms),
                clock_ms=clock_ms,
            ),
        )
        return grpc_service.SERVICE_NAME

    return QueryExtension(http=http, grpc=add_grpc, follow=history.run, prime=history.refresh, close=projector.close)
