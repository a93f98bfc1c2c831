"""Dashboards over HTTP JSON, on the query gateway (the same handlers as the gRPC service).

- `GET /api/v1/dashboards[?search=&folder=&tag=...&deleted=true]`: `{"dashboards": [...]}` (no specs).
- `POST /api/v1/dashboards`: body `{"dashboard": {uid?, title, folder?, tags?, spec}, "message"?}`;
  creates (201). Without a uid one is derived from the title.
- `GET /api/v1/dashboards/{uid}[?version=N]`: `{"dashboard": {..., "spec": {...}}}`.
- `PUT /api/v1/dashboards/{uid}`: body `{"dashboard": {...}, "expected_version": N, "message"?}`;
  `expected_version` is required (0 creates). A stale one is 409 naming the current version.
- `DELETE /api/v1/dashboards/{uid}[?version=N]`: `{"uid", "version"}` (N: the version the
  client saw; absent: the current one).
- `GET /api/v1/dashboards/{uid}/history[?limit=N]`: `{"entries": [{"dashboard", "message"}]}`, newest first.
- `POST /api/v1/dashboards/{uid}/restore`: body `{"version": N, "expected_version"?: M}`.

Auth by `Authorization: Bearer <key>`; the tenant is the key's. Errors are the query API's
JSON error body (core/transport_errors.py's table). Documented in docs/dashboards.md.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from core.dashboards.schema import MAX_SPEC_BYTES, parse_spec_json
from core.dashboards.state import DashboardVersion
from core.errors import InvalidArgument
from query_side.dashboards.handlers import DashboardHandlers, ListRequest, SaveRequest

MAX_BODY_BYTES: Final = 2 * MAX_SPEC_BYTES + 64 * 1024  # an indented spec, and the envelope


def add_dashboard_routes(app: web.Application, handlers: DashboardHandlers) -> None:
    """Register the routes on `app` (an app with the query API's error middleware)."""
    routes = _Routes(handlers)
    app.router.add_get("/api/v1/dashboards", routes.list)
    app.router.add_post("/api/v1/dashboards", routes.create)
    app.router.add_get("/api/v1/dashboards/{uid}", routes.get)
    app.router.add_put("/api/v1/dashboards/{uid}", routes.put)
    app.router.add_delete("/api/v1/dashboards/{uid}", routes.delete)
    app.router.add_get("/api/v1/dashboards/{uid}/history", routes.history)
    app.router.add_post("/api/v1/dashboards/{uid}/restore", routes.restore)


def dashboard_json(d: DashboardVersion, *, with_spec: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "uid": d.uid,
        "title": d.title,
        "folder": d.folder,
        "tags": list(d.tags),
        "version": d.version,
        "updated_ms": d.updated_ms,
        "updated_by": d.updated_by,
        "provisioned": d.provisioned,
        "deleted": d.deleted,
    }
    if with_spec:
        body["spec"] = parse_spec_json(d.spec_json)
    return body


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _int(value: Any, name: str, *, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, str):
        if not value.isdigit() or len(value) > 18:
            raise InvalidArgument(f"{name}: a whole number", parameter=name)
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidArgument(f"{name}: a whole number, 0 or more", parameter=name)
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise InvalidArgument(f"body: at most {MAX_BODY_BYTES:,} bytes", parameter="body")
    # Without a Content-Length (chunked) the app's client_max_size (1 MiB) bounds the read.
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidArgument(f"body: at most {MAX_BODY_BYTES:,} bytes", parameter="body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidArgument("body: not valid JSON", parameter="body") from None
    if not isinstance(body, dict):
        raise InvalidArgument("body: a JSON object", parameter="body")
    return body


def _save_request(body: dict[str, Any], *, uid: str | None, expected_version: int) -> SaveRequest:
    unknown = sorted(set(body) - {"dashboard", "expected_version", "message"})
    if unknown:
        raise InvalidArgument(f"{unknown[0]}: unknown field", parameter=unknown[0])
    d = body.get("dashboard")
    if not isinstance(d, dict):
        raise InvalidArgument("dashboard: required, an object {uid, title, folder, tags, spec}", parameter="dashboard")
    unknown = sorted(set(d) - {"uid", "title", "folder", "tags", "spec", "version"})
    if unknown:
        raise InvalidArgument(f"dashboard.{unknown[0]}: unknown field", parameter=f"dashboard.{unknown[0]}")
    given_uid = d.get("uid", "")
    if uid is not None and given_uid and given_uid != uid:
        raise InvalidArgument(f"dashboard.uid: {given_uid!r} differs from the URL's {uid!r}", parameter="dashboard.uid")
    for name in ("uid", "title", "folder"):
        if not isinstance(d.get(name, ""), str):
            raise InvalidArgument(f"dashboard.{name}: a string", parameter=f"dashboard.{name}")
    tags = d.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidArgument("dashboard.tags: a list of strings", parameter="dashboard.tags")
    message = body.get("message", "")
    if not isinstance(message, str):
        raise InvalidArgument("message: a string", parameter="message")
    spec = d.get("spec", {})
    return SaveRequest(
        uid=uid if uid is not None else given_uid,
        title=d.get("title", ""),
        folder=d.get("folder", ""),
        tags=tuple(tags),
        spec_json=orjson.dumps(spec).decode(),
        expected_version=expected_version,
        message=message,
    )


class _Routes:
    def __init__(self, handlers: DashboardHandlers) -> None:
        self._h = handlers

    async def list(self, request: web.Request) -> web.Response:
        caller = self._h.authenticate(request.headers.items())
        found = await self._h.list_dashboards(
            caller,
            ListRequest(
                search=request.query.get("search", ""),
                folder=request.query.get("folder", ""),
                tags=tuple(request.query.getall("tag", [])),
                include_deleted=request.query.get("deleted", "").lower() in ("1", "true", "yes"),
            ),
        )
        return _json({"dashboards": [dashboard_json(d, with_spec=False) for d in found]})

    async def create(self, request: web.Request) -> web.Response:
        caller = self._h.authenticate(request.headers.items())
        body = await _body(request)
        if _int(body.get("expected_version"), "expected_version", default=0) != 0:
            raise InvalidArgument("expected_version: POST creates (0); update with PUT", parameter="expected_version")
        saved = await self._h.save(caller, _save_request(body, uid=None, expected_version=0))
        return _json({"dashboard": dashboard_json(saved)}, status=201)

    async def get(self, request: web.Request) -> web.Response:
        caller = self._h.authenticate(request.headers.items())
        version = _int(request.query.get("version"), "version", default=0)
        found = await self._h.get(caller, request.match_info["uid"], version)
        return _json({"dashboard": dashboard_json(found)})

    async def put(self, request: web.Request) -> web.Response:
        caller = self._h.authenticate(request.headers.items())
        body = await _body(request)
        if "expected_version" not in body:
            raise InvalidArgument(
                "expected_version: required (the version your edit started from; 0 to create)",
                parameter="expected_version",
            )
        expected = _int(body["expected_version"], "expected_version")
        saved = await self._h.save(
            caller, _save_request(body, uid=request.match_info["uid"], expected_version=expected)
        )
        return _json({"dashboard": dashboard_json(saved)})

    async def delete(self, request: web.Request) -> web.Response:
        caller = self._h.authenticate(request.headers.items())
        uid = request.match_info["uid"]
        version = await self._h.delete(caller, uid, _int(request.query.get("version"), "version", default=0))
        return _json({"uid": uid, "version": version})

    async def history(self, request: web.Request) -> web.Response:
        caller = self._h.authenticate(request.headers.items())
        limit = _int(request.query.get("limit"), "limit", default=0)
        entries = await self._h.history(caller, request.match_info["uid"], limit)
        return _json({"entries": [{"dashboard": dashboard_json(e), "message": e.message} for e in entries]})

    async def restore(self, request: web.Request) -> web.Response:
        caller = self._h.authenticate(request.headers.items())
        body = await _body(request)
        version = _int(body.get("version"), "version")
        expected = _int(body.get("expected_version"), "expected_version", default=0)
        restored = await self._h.restore(caller, request.match_info["uid"], version, expected)
        return _json({"dashboard": dashboard_json(restored)})
