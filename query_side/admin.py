"""Admin HTTP routes: what operators need to see, not tenants.

`GET /api/v1/admin/quarantine[?group=G]` lists what the consumers of the event log set
aside (core/quarantine.py): records that would not decode, and partitions halted on a
schema version newer than the running build ("upgrade needed"), open or resumed.

Who may call it: a key of an *admin tenant* (`admin_tenants`; by default `default`, the
tenant `argus up` registers its own key for), else 403. It is not tenant-scoped because it
cannot be: a quarantined record did not decode, so its tenant is unknown (a Kafka record
without the Argus envelope has none at all), and a halted partition holds every tenant
whose series hash to it. The body carries positions, types, sizes and error messages,
never payload bytes (`argus admin quarantine --json` on the operator's machine shows their
first bytes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

import orjson
from aiohttp import web

from core.auth import Authenticator, bearer_token
from core.errors import PermissionDenied
from core.quarantine import HaltedPartition, QuarantinedRecord, QuarantineReport

QuarantineSource = Callable[[], Awaitable[QuarantineReport]]

DEFAULT_ADMIN_TENANTS: frozenset[str] = frozenset({"default"})


def add_admin_routes(
    app: web.Application,
    authenticator: Authenticator,
    quarantine: QuarantineSource | None,
    *,
    admin_tenants: Collection[str] = DEFAULT_ADMIN_TENANTS,
) -> None:
    """Register the admin routes on `app` (none when `quarantine` is None)."""
    if quarantine is None:
        return
    routes = _AdminRoutes(authenticator, quarantine, frozenset(admin_tenants))
    app.router.add_get("/api/v1/admin/quarantine", routes.quarantine)


def halts_readiness(quarantine: QuarantineSource) -> Callable[[], Awaitable[bool]]:
    """A readiness check that fails while a consumer partition is halted (upgrade needed)."""

    async def ready() -> bool:
        return not any(h.halted for h in (await quarantine()).halts)

    return ready


def quarantine_body(report: QuarantineReport, *, group: str | None = None) -> dict[str, Any]:
    """The JSON body of the quarantine view (also `argus admin quarantine --json`)."""
    records = [r for r in report.records if group is None or r.group == group]
    halts = [h for h in report.halts if group is None or h.group == group]
    return {
        "records": [record_json(r) for r in records],
        "halted": [halt_json(h) for h in halts if h.halted],
        "resumed": [halt_json(h) for h in halts if not h.halted],
    }


def record_json(r: QuarantinedRecord) -> dict[str, Any]:
    return {
        "group": r.group,
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "error": r.error,
        "quarantined_at_ms": r.quarantined_at_ms,
        "event_id": r.event_id.hex(),
        "event_type": r.event_type,
        "schema_version": r.schema_version,
        "payload_bytes": r.payload_bytes,
    }


def halt_json(h: HaltedPartition) -> dict[str, Any]:
    return {
        "group": h.group,
        "topic": h.topic,
        "partition": h.partition,
        "offset": h.offset,
        "status": "upgrade needed" if h.halted else "resumed",
        "event_type": h.event_type,
        "schema_version": h.schema_version,
        "supported_version": h.supported_version,
        "error": h.error,
        "halted_at_ms": h.halted_at_ms,
        "resumed_at_ms": h.resumed_at_ms,
    }


class _AdminRoutes:
    def __init__(self, authenticator: Authenticator, quarantine: QuarantineSource, admins: frozenset[str]) -> None:
        self._auth = authenticator
        self._quarantine = quarantine
        self._admins = admins

    def _admin(self, request: web.Request) -> None:
        tenant = self._auth.tenant_for(bearer_token(request.headers.get("Authorization")))
        if tenant not in self._admins:
            raise PermissionDenied(f"the admin API needs a key of an admin tenant; tenant {tenant!r} is not one")

    async def quarantine(self, request: web.Request) -> web.Response:
        self._admin(request)
        group = request.query.get("group", "").strip() or None
        body = quarantine_body(await self._quarantine(), group=group)
        return web.Response(body=orjson.dumps(body), content_type="application/json")
