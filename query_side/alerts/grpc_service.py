"""gRPC `argus.alerts.v1.AlertService` on the query server (contracts/argus/alerts/v1/service.proto).

- ListAlerts: the tenant's instances from the active-alerts view (query_side/alerts/active.py).
- History: a page of the history view (query_side/alerts/history.py).
- Subscribe: a server stream of the tenant's alert events from a cursor (the next offset of
  every partition of the alerts topic, opaque to the client), read from the log itself, then
  live (polled). Each message carries the cursor after it, so a subscriber that reconnects
  with the last cursor it got misses nothing and sees nothing twice.

Auth as QueryService: the tenant of the `authorization: Bearer <key>` metadata
(core/tenancy.py); errors through core/transport_errors.py's table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from contracts.argus.alerts.v1 import alerts_pb2, service_pb2, service_pb2_grpc
from core.auth import Authenticator
from core.errors import ArgusError
from core.ports import EventLog
from core.tenancy import tenant_from_metadata
from core.transport_errors import grpc_status, is_server_fault
from query_side.alerts.active import _STATES as ACTIVE_STATE_CODES
from query_side.alerts.active import ActiveAlerts, AlertInstance, state_filter
from query_side.alerts.history import DEFAULT_PAGE, AlertHistory, HistoryEntry, TopicCursor, read_from

log = logging.getLogger(__name__)

SERVICE_NAME: str = service_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name
_STATES = {v: k for k, v in ACTIVE_STATE_CODES.items()}


def alert_event(entry: HistoryEntry) -> service_pb2.AlertEvent:
    event = service_pb2.AlertEvent(rules=list(entry.rules))
    m = entry.message
    if isinstance(m, alerts_pb2.AlertStateChanged):
        event.state_changed.CopyFrom(m)
    elif isinstance(m, alerts_pb2.NotificationSent):
        event.notification_sent.CopyFrom(m)
    elif isinstance(m, alerts_pb2.NotificationFailed):
        event.notification_failed.CopyFrom(m)
    elif isinstance(m, alerts_pb2.AlertAcknowledged):
        event.acknowledged.CopyFrom(m)
    elif isinstance(m, alerts_pb2.AlertUnacknowledged):
        event.unacknowledged.CopyFrom(m)
    elif isinstance(m, alerts_pb2.AlertEscalated):
        event.escalated.CopyFrom(m)
    return event


def _alert(i: AlertInstance) -> alerts_pb2.AlertStateChanged:
    return alerts_pb2.AlertStateChanged(
        tenant=i.tenant,
        rule=i.rule,
        instance_labels=dict(i.labels),
        to_state=_STATES[i.state],
        value=i.value,
        evaluated_at_ms=i.evaluated_at_ms,
        since_ms=i.since_ms,
        reason=i.reason,
        sequence=i.sequence,
        annotations=dict(i.annotations),
        rule_labels=dict(i.rule_labels),
        severity=i.severity,
        instance_id=i.instance_id,
    )


class AlertServicer(service_pb2_grpc.AlertServiceServicer):
    def __init__(
        self,
        *,
        keys: Authenticator,
        events: EventLog,
        active: ActiveAlerts,
        history: AlertHistory,
        poll_interval_s: float = 0.25,
    ) -> None:
        self._keys = keys
        self._events = events
        self._active = active
        self._history = history
        self._poll_interval_s = poll_interval_s

    def _tenant(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        return tenant_from_metadata(self._keys, context.invocation_metadata())

    async def ListAlerts(
        self, request: service_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.ListAlertsResponse:
        try:
            tenant = self._tenant(context)
            await self._active.refresh()
            found = await self._active.instances(tenant, state_filter(request.state or None), rule=request.rule or None)
            return service_pb2.ListAlertsResponse(alerts=[_alert(i) for i in found])
        except Exception as exc:
            await _abort(context, "list alerts", exc)
            raise

    async def History(
        self, request: service_pb2.HistoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.HistoryResponse:
        try:
            tenant = self._tenant(context)
            await self._history.refresh()
            page = await self._history.page(
                tenant,
                since_ms=request.since_ms,
                rule=request.rule or None,
                cursor=request.cursor,
                limit=request.limit or DEFAULT_PAGE,
            )
            return service_pb2.HistoryResponse(
                events=[alert_event(e) for e in page.entries], next_cursor=page.next_cursor
            )
        except Exception as exc:
            await _abort(context, "alert history", exc)
            raise

    async def Subscribe(
        self, request: service_pb2.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[service_pb2.SubscribeResponse]:
        try:
            tenant = self._tenant(context)
            cursor = TopicCursor.decode(request.cursor)
        except Exception as exc:
            await _abort(context, "subscribe", exc)
            raise
        while True:
            try:
                found, cursor = await read_from(self._events, cursor, tenant=tenant)
            except Exception as exc:
                await _abort(context, "subscribe", exc)
                raise
            for entry, after in found:
                yield service_pb2.SubscribeResponse(event=alert_event(entry), cursor=after.encode())
            if not found:
                # Polling the log: the only way to learn of appends any EventLog offers.
                await asyncio.sleep(self._poll_interval_s)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], what: str, exc: BaseException) -> None:
    if not isinstance(exc, ArgusError):
        log.exception("%s failed", what)
    elif is_server_fault(exc):
        log.warning("%s failed: %s", what, exc, exc_info=exc)
    code, details, trailing = grpc_status(exc)
    await context.abort(code, details, trailing)


def add_to_server(server: grpc.aio.Server, servicer: AlertServicer) -> None:
    service_pb2_grpc.add_AlertServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
