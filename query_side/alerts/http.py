"""The alerts HTTP API, on the query API's app (query_side/http_gateway.make_http_app).

- `GET /api/v1/alerts[?state=active|pending|firing|resolved|all]`: the caller's tenant's alert
  instances in those states (default active: pending and firing), firing first.
- `GET /api/v1/alerts/rules`: the tenant's rules, each with its instances' current states.
- `POST /api/v1/alerts/{id}/ack` (body `{"comment": "..."}`, optional): acknowledge a pending
  or firing instance; the author is the API key's id. `DELETE /api/v1/alerts/{id}/ack` takes
  the ack back. Another tenant's id is 404 like an unknown one (core/alerting/acks.py).

The tenant is the API key's; nothing of another tenant is ever read. The states come from the
alerts topic (query_side/alerts/active.py), the rules from the config view.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from core.alerting.acks import Ack, acknowledge, unacknowledge
from core.alerting.lifecycle import AlertState
from core.alerting.state import AlertConfigState
from core.auth import Authenticator, bearer_token, hash_key, key_id
from core.errors import InvalidArgument
from query_side.alerts.active import ActiveAlerts, state_filter


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsApi:
    """What the alerts routes read: the instances' states and the rules."""

    active: ActiveAlerts
    config: AlertConfigState
    clock_ms: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)


def add_alert_routes(app: web.Application, authenticator: Authenticator, alerts: AlertsApi | None) -> None:
    """Register the alerts routes on `app` (none when `alerts` is None)."""
    if alerts is None:
        return
    routes = _AlertRoutes(authenticator, alerts)
    app.router.add_get("/api/v1/alerts", routes.alerts)
    app.router.add_get("/api/v1/alerts/rules", routes.rules)
    app.router.add_post("/api/v1/alerts/{id}/ack", routes.ack)
    app.router.add_delete("/api/v1/alerts/{id}/ack", routes.unack)


def _json(body: object) -> web.Response:
    # orjson writes NaN as null (a rule without data).
    return web.Response(body=orjson.dumps(body), content_type="application/json")


class _AlertRoutes:
    def __init__(self, authenticator: Authenticator, alerts: AlertsApi) -> None:
        self._auth = authenticator
        self._alerts = alerts

    def _tenant(self, request: web.Request) -> str:
        return self._auth.tenant_for(bearer_token(request.headers.get("Authorization")))

    async def alerts(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        states = state_filter(request.query.get("state"))
        found = await self._alerts.active.instances(tenant, states)
        return _json({"alerts": [i.to_json() for i in found]})

    async def rules(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        config = self._alerts.config.config(tenant)
        rules = []
        for name in sorted(config.rules):
            rule = dataclasses.asdict(config.rules[name])
            instances = await self._alerts.active.instances(tenant, frozenset(AlertState), rule=name)
            rule["instances"] = [i.to_json() for i in instances]
            rule["firing"] = sum(1 for i in instances if i.state is AlertState.FIRING)
            rule["pending"] = sum(1 for i in instances if i.state is AlertState.PENDING)
            rules.append(rule)
        return _json({"rules": rules})

    def _author(self, request: web.Request) -> str:
        token = bearer_token(request.headers.get("Authorization"))
        return f"key:{key_id(hash_key(token or ''))}"

    async def ack(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        comment = ""
        raw = await request.read()
        if raw.strip():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InvalidArgument(f"body must be JSON: {exc}", parameter="body") from None
            if not isinstance(body, dict) or not isinstance(body.get("comment", ""), str):
                raise InvalidArgument('body must be {"comment": "..."}', parameter="comment")
            comment = body.get("comment", "")
        done = await acknowledge(
            self._alerts.active.events,
            tenant=tenant,
            instance_id=request.match_info["id"],
            author=self._author(request),
            comment=comment,
            now_ms=self._alerts.clock_ms(),
        )
        await self._alerts.active.refresh()  # the caller's next GET shows it
        return _json(_ack_json(request.match_info["id"], done))

    async def unack(self, request: web.Request) -> web.Response:
        tenant = self._tenant(request)
        done = await unacknowledge(
            self._alerts.active.events,
            tenant=tenant,
            instance_id=request.match_info["id"],
            author=self._author(request),
            now_ms=self._alerts.clock_ms(),
        )
        await self._alerts.active.refresh()
        return _json(_ack_json(request.match_info["id"], done))


def _ack_json(instance_id: str, ack: Ack) -> dict[str, object]:
    return {
        "instance_id": instance_id,
        "acknowledged": ack.acked,
        "by": ack.author,
        "at_ms": ack.time_ms,
        "comment": ack.comment,
    }
