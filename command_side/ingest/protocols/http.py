"""HTTP entrypoint of ingest: the write APIs other ecosystems already speak.

- `POST /api/v1/write`: Prometheus remote write 1.0 (snappy protobuf). 204 when every
  sample was accepted (or was a duplicate); 400 (not retried by Prometheus) for a body that
  cannot be read or samples refused by validation (the valid ones are kept); 401 for a
  missing or unknown key; 429 over the tenant's ingest rate; 5xx when the event log is not
  available (Prometheus retries, and the retry is counted once). Plain-text error bodies.
- `POST /api/v2/write` and `POST /write`: Influx line protocol (v2 and v1), `precision`
  parameter, gzip bodies. 204 on success; errors as InfluxDB writes them: v2
  `{"code": "invalid", "message": ...}`, v1 `{"error": ...}`.
- `POST /v1/metrics`: OTLP/HTTP protobuf (otlp.py).

Authentication on every route: `Authorization: Bearer <key>` (Influx clients send
`Token <key>`, also accepted); the key decides the tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from command_side.ingest.protocols import influx, remote_write
from command_side.ingest.protocols.foreign import ForeignIngest, describe_rejections
from core.auth import Authenticator
from core.errors import ArgusError, InvalidArgument
from core.transport_errors import http_status, is_server_fault, public_message

log = logging.getLogger(__name__)

REMOTE_WRITE_SOURCE = "prometheus-remote-write"
INFLUX_SOURCE = "influx-line-protocol"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorBody = Callable[[int, str], web.Response]


def api_key_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() in ("bearer", "token") and credential.strip():
        return credential.strip()
    return None


def _text_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


def _influx_v2_error(status: int, message: str) -> web.Response:
    code = {400: "invalid", 401: "unauthorized", 413: "request too large", 429: "too many requests"}.get(
        status, "internal error" if status >= 500 else "invalid"
    )
    return web.json_response({"code": code, "message": message}, status=status)


def _influx_v1_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class IngestHttp:
    def __init__(
        self,
        foreign: ForeignIngest,
        authenticator: Authenticator,
        *,
        max_body_bytes: int,
        clock_ms: Callable[[], int],
        otlp_handler: Handler | None = None,
    ) -> None:
        self._foreign = foreign
        self._auth = authenticator
        self._max_body_bytes = max_body_bytes
        self._clock_ms = clock_ms
        self._types = remote_write.FamilyTypes()
        self._shapes = remote_write.SeriesShapes()
        self._otlp = otlp_handler

    def app(self) -> web.Application:
        # aiohttp refuses larger bodies with 413 (after gzip decoding, which it does itself).
        app = web.Application(client_max_size=self._max_body_bytes)
        app.router.add_post("/api/v1/write", self._guard(self.remote_write, _text_error))
        app.router.add_post("/api/v2/write", self._guard(self.influx_v2, _influx_v2_error))
        app.router.add_post("/write", self._guard(self.influx_v1, _influx_v1_error))
        if self._otlp is not None:
            app.router.add_post("/v1/metrics", self._otlp)
        return app

    def tenant(self, request: web.Request) -> str:
        return self._auth.tenant_for(api_key_of(request))

    def _guard(self, handler: Handler, error: ErrorBody) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except web.HTTPRequestEntityTooLarge:
                return error(413, f"body larger than {self._max_body_bytes} bytes (setting limits.max_message_bytes)")
            except ArgusError as exc:
                status = http_status(exc)
                if is_server_fault(exc):
                    log.warning("write %s failed: %s", request.path, exc)
                return error(status, public_message(exc))

        return guarded

    async def remote_write(self, request: web.Request) -> web.StreamResponse:
        tenant = self.tenant(request)
        body = await request.read()
        write, raw = remote_write.decode(body, max_bytes=self._max_body_bytes)
        columns = remote_write.to_columns(tenant, write, self._types, self._shapes)
        outcome = await self._foreign.accept_columns(
            tenant, source=REMOTE_WRITE_SOURCE, request_id=raw, columns=columns
        )
        if outcome.result.rejected_samples:
            return _text_error(400, describe_rejections(outcome.result))
        return web.Response(status=204)

    async def influx_v2(self, request: web.Request) -> web.StreamResponse:
        return await self._influx(request, _influx_v2_error)

    async def influx_v1(self, request: web.Request) -> web.StreamResponse:
        return await self._influx(request, _influx_v1_error)

    async def _influx(self, request: web.Request, error: ErrorBody) -> web.StreamResponse:
        tenant = self.tenant(request)
        unit_ns = influx.precision_ns(request.query.get("precision"))
        body = await request.read()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"line protocol body is not UTF-8: {exc}") from exc
        parsed = influx.parse(text, unit_ns=unit_ns, now_ms=self._clock_ms())
        # A retry of the same body maps to the same events; lines without a timestamp take
        # the server's time, so only their retries differ (gauge points at another time).
        request_id = body + request.query.get("precision", "").encode()
        outcome = await self._foreign.accept(tenant, source=INFLUX_SOURCE, request_id=request_id, series=parsed.series)
        problems = list(parsed.errors)
        if outcome.result.rejected_samples:
            problems.append(describe_rejections(outcome.result))
        if problems:
            prefix = "partial write: " if outcome.result.accepted_samples else ""
            return error(400, prefix + "; ".join(problems))
        return web.Response(status=204)
