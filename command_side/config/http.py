"""Silences over HTTP: the command path of the alerting configuration (issue 10).

- `POST /api/v1/silences`: JSON `{"matchers": [...], "starts_ms"?, "ends_ms" | "for", "comment"}`;
  a matcher is `"label=value"` (also `!=`, `=~`, `!~`) or `{"name", "op", "value"}`. Answers
  201 with the silence (the same body sent twice is one silence).
- `GET /api/v1/silences[?all=true]`: the tenant's active and upcoming silences (all: expired too).
- `DELETE /api/v1/silences/{id}`: expire it now; 404 for an id the tenant does not have.

The tenant is the API key's and the author is `key:<key id>`: a caller reads and changes
only its own tenant's silences. The routes run the same handlers as `argus alerts silence`
(command_side/config/alerts.py) on the process's config view; errors go through the query
app's error middleware (core/transport_errors.py's table). The composition (argus/) adds
these routes to the query HTTP app, which query_side cannot import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from command_side.config.alerts import CreateSilence, ExpireSilence, create_silence, expire_silence
from core.alerting.document import parse_label_matcher
from core.alerting.model import LabelMatcher, Silence
from core.alerting.state import AlertConfigState
from core.auth import ApiKeyRegistry, bearer_token, hash_key
from core.config_view import ConfigView
from core.durations import parse_duration_ms
from core.errors import InvalidArgument, Unauthenticated

MAX_BODY_BYTES = 64 * 1024


def add_silence_routes(
    app: web.Application, *, keys: ApiKeyRegistry, view: ConfigView, clock_ms: Callable[[], int]
) -> None:
    """Register the silence routes on `app` (an app with the query API's error middleware)."""
    routes = _SilenceRoutes(keys, view, clock_ms)
    app.router.add_post("/api/v1/silences", routes.create)
    app.router.add_get("/api/v1/silences", routes.list)
    app.router.add_delete("/api/v1/silences/{id}", routes.expire)


def silence_json(silence: Silence, now_ms: int) -> dict[str, object]:
    row: dict[str, object] = dataclasses.asdict(silence)
    row["state"] = (
        "active"
        if silence.starts_ms <= now_ms < silence.ends_ms
        else "expired"
        if silence.ends_ms <= now_ms
        else "pending"
    )
    return row


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _matcher(value: Any, parameter: str) -> LabelMatcher:
    if isinstance(value, str):
        return parse_label_matcher(value, parameter=parameter)
    if isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("name", "op", "value")):
        return LabelMatcher(name=value["name"], op=value["op"], value=value["value"])
    raise InvalidArgument(f"{parameter}: a matcher is 'label=value' or {{name, op, value}}", parameter=parameter)


def _int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name}: milliseconds since the epoch, an integer", parameter=name)
    return value


def parse_silence_body(body: Any, *, tenant: str, author: str, now_ms: int) -> CreateSilence:
    """The CreateSilence a POST body asks for; InvalidArgument naming the field otherwise."""
    if not isinstance(body, dict):
        raise InvalidArgument("body: a JSON object", parameter="body")
    raw = body.get("matchers")
    if not isinstance(raw, list):
        raise InvalidArgument("matchers: a list of matchers", parameter="matchers")
    matchers = tuple(_matcher(m, f"matchers[{i}]") for i, m in enumerate(raw))
    comment = body.get("comment")
    if not isinstance(comment, str):
        raise InvalidArgument("comment: say why the alerts are silenced", parameter="comment")
    starts = _int(body, "starts_ms")
    starts = now_ms if starts is None else starts
    ends = _int(body, "ends_ms")
    length = body.get("for")
    if (ends is None) == (length is None):
        raise InvalidArgument("give exactly one of ends_ms and for (a duration, e.g. 2h)", parameter="for")
    if length is not None:
        if not isinstance(length, str):
            raise InvalidArgument("for: a duration such as 30m or 2h", parameter="for")
        ends = starts + parse_duration_ms(length, parameter="for")
    assert ends is not None
    return CreateSilence(
        tenant=tenant, matchers=matchers, starts_ms=starts, ends_ms=ends, comment=comment, author=author
    )


class _SilenceRoutes:
    def __init__(self, keys: ApiKeyRegistry, view: ConfigView, clock_ms: Callable[[], int]) -> None:
        self._keys = keys
        self._view = view
        self._clock_ms = clock_ms

    def _caller(self, request: web.Request) -> tuple[str, str]:
        """(tenant, author) of the request's key."""
        key = bearer_token(request.headers.get("Authorization"))
        tenant = self._keys.tenant_for(key)
        info = self._keys.get(hash_key(key)) if key is not None else None
        if info is None:
            raise Unauthenticated("unknown or revoked API key")
        return tenant, f"key:{info.key_id}"

    async def create(self, request: web.Request) -> web.Response:
        tenant, author = self._caller(request)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise InvalidArgument(f"body: at most {MAX_BODY_BYTES} bytes", parameter="body")
        # A body without Content-Length is bounded by the app's client_max_size (aiohttp).
        raw = await request.read()
        if len(raw) > MAX_BODY_BYTES:
            raise InvalidArgument(f"body: at most {MAX_BODY_BYTES} bytes", parameter="body")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidArgument("body: not valid JSON", parameter="body") from None
        now = self._clock_ms()
        command = parse_silence_body(body, tenant=tenant, author=author, now_ms=now)
        silence = await create_silence(command, view=self._view, clock_ms=lambda: now)
        return _json({"silence": silence_json(silence, now)}, status=201)

    async def list(self, request: web.Request) -> web.Response:
        tenant, _ = self._caller(request)
        show_all = request.query.get("all", "").lower() in ("1", "true", "yes")
        await self._view.refresh()
        now = self._clock_ms()
        found = self._view.state(AlertConfigState).silences(tenant)
        return _json({"silences": [silence_json(s, now) for s in found if show_all or s.ends_ms > now]})

    async def expire(self, request: web.Request) -> web.Response:
        tenant, author = self._caller(request)
        sid = request.match_info["id"]
        changed = await expire_silence(
            ExpireSilence(tenant=tenant, silence_id=sid, author=author), view=self._view, clock_ms=self._clock_ms
        )
        return _json({"id": sid, "expired": changed.changed})
