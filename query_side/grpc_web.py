"""gRPC-web on the query HTTP port (aiohttp), serving the very servicers of the query gRPC
server: no Envoy, no second implementation of any service (docs/decisions/0036).

Wire protocol (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md):
- `POST /<package.Service>/<Method>` with `content-type: application/grpc-web+proto` (or
  `application/grpc-web`, or the base64 `application/grpc-web-text[+proto]`); the body is one
  length-prefixed message frame (flag 0x00, 4-byte big-endian length, bytes).
- The answer is HTTP 200 with the same family of content type: one data frame per message,
  then one trailer frame (flag 0x80) holding `grpc-status`, `grpc-message` (percent-encoded)
  and trailing metadata as HTTP/1 header lines. An error before the first message also puts
  grpc-status/grpc-message in the HTTP headers (the "trailers-only" form).
- Unary and server-streaming methods; client and bidi streaming answer UNIMPLEMENTED (a
  browser cannot send them over gRPC-web anyway). Compressed request frames: UNIMPLEMENTED.
- `grpc-timeout` (e.g. `500m`, `10S`) is the deadline: past it the handler task is cancelled
  and the call ends with DEADLINE_EXCEEDED. A client that goes away cancels the handler task
  (`HttpRunner` turns on aiohttp's handler cancellation); `context.cancelled()` and the done
  callbacks see it.
- Metadata: request headers, lowercased (`authorization: Bearer <key>` as on gRPC).
- Errors: what the servicer aborts with, verbatim; an `ArgusError` that escapes is mapped by
  the one table (core/transport_errors.py); anything else is INTERNAL with a generic message.
- CORS: only for the configured origins (`cors_origins`; "*" allows any): the preflight
  answers with the requested headers, the real response exposes grpc-status/grpc-message.

Registration: `MethodTable.recording(server)` wraps the grpc.aio server so every servicer
added to it (generated `add_*Servicer_to_server`) is recorded here as well; the HTTP app then
serves each recorded method. One list, in QueryModule.start.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError

from core.errors import ArgusError
from core.transport_errors import grpc_status, is_server_fault

log = logging.getLogger(__name__)

_FRAME_HEADER = struct.Struct(">BI")
_DATA = 0x00
_COMPRESSED = 0x01
_TRAILER = 0x80
_BINARY_TYPES = frozenset({"application/grpc-web", "application/grpc-web+proto"})
_TEXT_TYPES = frozenset({"application/grpc-web-text", "application/grpc-web-text+proto"})
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNIT_S = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_EXPOSED = "grpc-status, grpc-message, grpc-status-details-bin"
_INTERNAL_MESSAGE = "internal error (see server log)"
# Headers that are HTTP's, not the caller's metadata (gRPC servers do not show them either).
_NOT_METADATA = frozenset(
    {"content-type", "content-length", "host", "connection", "accept", "accept-encoding", "origin", "referer"}
)

METHOD_PATH = r"/{service:[A-Za-z_][A-Za-z0-9_.]*}/{method:[A-Za-z_][A-Za-z0-9_]*}"
"""The route every gRPC-web method is served on: /package.Service/Method."""


class MethodTable:
    """The methods served over gRPC-web, by path `/package.Service/Method`."""

    def __init__(self) -> None:
        self._methods: dict[str, grpc.RpcMethodHandler] = {}
        self._services: list[str] = []

    def add(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        self._services.append(service)
        for name, handler in handlers.items():
            self._methods[f"/{service}/{name}"] = handler

    def get(self, path: str) -> grpc.RpcMethodHandler | None:
        return self._methods.get(path)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self._services)

    def recording(self, server: grpc.aio.Server) -> grpc.aio.Server:
        """`server`, except that each servicer registered through it is recorded here too."""
        return cast(grpc.aio.Server, _RecordingServer(server, self))


class _RecordingServer:
    """A grpc.aio.Server proxy: generated `add_*Servicer_to_server` calls
    `add_registered_method_handlers(service, handlers)`, which is recorded and forwarded."""

    def __init__(self, server: grpc.aio.Server, table: MethodTable) -> None:
        self._server = server
        self._table = table

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self._table.add(service, handlers)
        self._server.add_registered_method_handlers(service, handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class _Status(ArgusError):
    """A call's final status (raised by `abort`, or built from an error); an ArgusError so
    the one error tree holds every exception class Argus defines."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailing = tuple(trailing)


class _Aborted(grpc.aio.AbortError, _Status):  # type: ignore[misc]
    """What `context.abort` raises: an AbortError, as on grpc.aio, so servicers that let
    AbortError through behave the same."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: Sequence[tuple[str, str]] = ()) -> None:
        _Status.__init__(self, code, details, trailing)


class WebServicerContext:
    """The part of grpc.aio.ServicerContext the servicers use, over one gRPC-web call."""

    def __init__(self, metadata: tuple[tuple[str, str | bytes], ...], deadline: float | None, peer: str) -> None:
        self._metadata = metadata
        self._deadline = deadline  # time.monotonic() seconds
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailing: tuple[tuple[str, str], ...] = ()
        self._cancelled = False
        self._done = False
        self._callbacks: list[Callable[[Any], None]] = []

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[tuple[str, str]] = ()
    ) -> None:
        if code == grpc.StatusCode.OK:
            raise ValueError("abort with OK")
        raise _Aborted(code, details, trailing_metadata)

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._done

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, str]]) -> None:
        self._trailing = tuple(trailing_metadata)

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing

    async def send_initial_metadata(self, initial_metadata: Sequence[tuple[str, str]]) -> None:
        """Initial metadata is not sent over gRPC-web (no servicer of ours sends any)."""

    def peer(self) -> str:
        return self._peer

    def _finish(self, *, cancelled: bool) -> None:
        self._cancelled = cancelled
        self._done = True
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("grpc-web done callback failed")

    def _set_status(self) -> _Status | None:
        """The status the servicer set with set_code (None: OK)."""
        if self._code is None or self._code == grpc.StatusCode.OK:
            return None
        return _Status(self._code, self._details, self._trailing)


def add_grpc_web_routes(
    app: web.Application, methods: MethodTable, *, cors_origins: Iterable[str] = (), max_message_bytes: int
) -> None:
    """Serve every method of `methods` (filled before or after this call) on `app`."""
    gateway = _GrpcWeb(methods, frozenset(cors_origins), max_message_bytes)
    app.router.add_post(METHOD_PATH, gateway.call)
    app.router.add_route("OPTIONS", METHOD_PATH, gateway.preflight)


class _GrpcWeb:
    def __init__(self, methods: MethodTable, origins: frozenset[str], max_message_bytes: int) -> None:
        self._methods = methods
        self._origins = origins
        self._max_bytes = max_message_bytes

    def _allowed_origin(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or not (origin in self._origins or "*" in self._origins):
            return None
        return origin

    async def preflight(self, request: web.Request) -> web.Response:
        origin = self._allowed_origin(request)
        if origin is None:
            return web.Response(status=403, text="origin not allowed", headers={"Vary": "Origin"})
        requested = request.headers.get("Access-Control-Request-Headers", "")
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": requested or "content-type, x-grpc-web, x-user-agent, grpc-timeout",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
        return web.Response(status=204, headers=headers)

    def _cors_headers(self, request: web.Request) -> dict[str, str]:
        origin = self._allowed_origin(request)
        if origin is None:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": _EXPOSED, "Vary": "Origin"}

    async def call(self, request: web.Request) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in _TEXT_TYPES:
            text = True
        elif content_type in _BINARY_TYPES:
            text = False
        else:
            return web.Response(status=415, text="expected content-type application/grpc-web+proto")
        out = _Output(request, text=text, headers=self._cors_headers(request))
        handler = self._methods.get(request.path)
        if handler is None:
            return await out.status(_Status(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {request.path}"))
        if handler.request_streaming:
            return await out.status(
                _Status(grpc.StatusCode.UNIMPLEMENTED, f"{request.path}: client streaming is not served over gRPC-web")
            )
        try:
            deadline = _deadline(request.headers.get("grpc-timeout"))
            message = handler.request_deserializer(await self._read_message(request, text=text))
        except _Status as refused:
            return await out.status(refused)
        except DecodeError:
            return await out.status(_Status(grpc.StatusCode.INVALID_ARGUMENT, "request message does not parse"))
        peer = f"ipv4:{request.remote}" if request.remote else "unknown"
        context = WebServicerContext(_metadata(request.headers.items()), deadline, peer)
        cancelled = False
        scope = asyncio.timeout_at(_loop_time(deadline))
        try:
            async with scope:
                if handler.response_streaming:
                    stream = handler.unary_stream(message, context)
                    await _stream(out, handler.response_serializer, stream)
                else:
                    response = await handler.unary_unary(message, context)
                    set_status = context._set_status()
                    if set_status is None:
                        await out.message(handler.response_serializer(response))
            status = context._set_status() or _Status(grpc.StatusCode.OK, "", context.trailing_metadata())
        except TimeoutError as exc:
            if not scope.expired():
                status = _status_of(exc, request.path)  # the servicer's own, not the deadline
            else:
                # asyncio.timeout cancelled the handler and turned that into TimeoutError.
                cancelled = True
                status = _Status(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        except asyncio.CancelledError:
            cancelled = True  # the client went away (aiohttp cancels the request's task)
            raise
        except ConnectionResetError:
            cancelled = True  # the client went away while a message was being written
            return out.abandoned()
        except _Status as ended:
            status = ended
        except Exception as exc:
            status = _status_of(exc, request.path)
        finally:
            context._finish(cancelled=cancelled)
        return await out.status(status)

    async def _read_message(self, request: web.Request, *, text: bool) -> bytes:
        limit = self._max_bytes + _FRAME_HEADER.size
        if text:
            limit = limit * 4 // 3 + 4
        if request.content_length is not None and request.content_length > limit:
            raise _Status(grpc.StatusCode.RESOURCE_EXHAUSTED, f"request larger than {self._max_bytes} bytes")
        body = b""
        while not request.content.at_eof():  # read(n) answers what has arrived, up to n
            body += await request.content.read(limit + 1 - len(body))
            if len(body) > limit:
                raise _Status(grpc.StatusCode.RESOURCE_EXHAUSTED, f"request larger than {self._max_bytes} bytes")
        if text:
            body = _b64decode(body)
        return _single_frame(body)


async def _stream(out: _Output, serialize: Callable[[Any], bytes], stream: AsyncIterator[Any]) -> None:
    try:
        async for item in stream:
            await out.message(serialize(item))
    finally:
        # A generator left on an error or a cancellation runs its own finally now, not at GC.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


class _Output:
    """One call's response: headers go out with the first message, or with the status."""

    def __init__(self, request: web.Request, *, text: bool, headers: dict[str, str]) -> None:
        self._request = request
        self._text = text
        self._headers = headers
        self._response: web.StreamResponse | None = None

    async def _start(self, status_headers: Mapping[str, str]) -> web.StreamResponse:
        content_type = "application/grpc-web-text+proto" if self._text else "application/grpc-web+proto"
        response = web.StreamResponse(status=200, headers={**self._headers, **status_headers})
        response.content_type = content_type
        await response.prepare(self._request)
        self._response = response
        return response

    async def _write(self, frame: bytes) -> None:
        response = self._response or await self._start({})
        await response.write(base64.b64encode(frame) if self._text else frame)

    def abandoned(self) -> web.StreamResponse:
        """What the handler returns for a client that is gone (nothing more is written)."""
        if self._response is not None:
            self._response.force_close()
            return self._response
        return web.Response(status=499)

    async def message(self, payload: bytes) -> None:
        await self._write(_FRAME_HEADER.pack(_DATA, len(payload)) + payload)

    async def status(self, status: _Status) -> web.StreamResponse:
        fields = [("grpc-status", str(status.code.value[0])), ("grpc-message", _percent_encode(status.details))]
        fields.extend(status.trailing)
        if self._response is None:
            # An error before any message: the status is readable from the headers too. Not
            # an OK one: connect-web then refuses the trailer frame that follows.
            failed = status.code != grpc.StatusCode.OK
            await self._start({k: v for k, v in fields if failed and k.startswith("grpc-")})
        block = "".join(f"{k}: {v}\r\n" for k, v in fields).encode()
        await self._write(_FRAME_HEADER.pack(_TRAILER, len(block)) + block)
        assert self._response is not None
        await self._response.write_eof()
        return self._response


def _status_of(exc: Exception, path: str) -> _Status:
    """An error that escaped the servicer: ours by the shared table, anything else INTERNAL
    with a generic message (the details go to the log)."""
    if isinstance(exc, ArgusError):
        if is_server_fault(exc):
            log.warning("grpc-web %s failed: %s", path, exc, exc_info=exc)
        code, details, trailing = grpc_status(exc)
        return _Status(code, details, trailing)
    log.exception("grpc-web %s failed", path)
    return _Status(grpc.StatusCode.INTERNAL, _INTERNAL_MESSAGE)


def _deadline(header: str | None) -> float | None:
    """time.monotonic() of the `grpc-timeout` deadline (None: no deadline)."""
    if header is None:
        return None
    match = _TIMEOUT.match(header.strip())
    if match is None:
        raise _Status(grpc.StatusCode.INVALID_ARGUMENT, f"grpc-timeout: {header[:20]!r} is not e.g. 500m or 10S")
    return time.monotonic() + int(match.group(1)) * _TIMEOUT_UNIT_S[match.group(2)]


def _loop_time(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


def _metadata(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str | bytes], ...]:
    out: list[tuple[str, str | bytes]] = []
    for key, value in headers:
        name = key.lower()
        if name in _NOT_METADATA or name.startswith(("access-control-", "sec-")):
            continue
        if name.endswith("-bin"):
            try:
                out.append((name, base64.b64decode(value + "=" * (-len(value) % 4))))
            except binascii.Error:
                continue
        else:
            out.append((name, value))
    return tuple(out)


def _single_frame(body: bytes) -> bytes:
    """The one request message of a unary or server-streaming call."""
    if len(body) < _FRAME_HEADER.size:
        raise _Status(grpc.StatusCode.INVALID_ARGUMENT, "request body is not one gRPC-web message frame")
    flag, length = _FRAME_HEADER.unpack_from(body)
    if flag & _COMPRESSED:
        raise _Status(grpc.StatusCode.UNIMPLEMENTED, "compressed request messages are not supported")
    if flag != _DATA or len(body) != _FRAME_HEADER.size + length:
        raise _Status(grpc.StatusCode.INVALID_ARGUMENT, "request body is not one gRPC-web message frame")
    return body[_FRAME_HEADER.size :]


def _b64decode(text: bytes) -> bytes:
    """Base64 that may be several padded chunks back to back (grpc-web-text)."""
    try:
        return b"".join(base64.b64decode(chunk, validate=True) for chunk in re.findall(rb"[^=]+=*", text.strip()))
    except (binascii.Error, ValueError) as exc:
        raise _Status(grpc.StatusCode.INVALID_ARGUMENT, "request body is not valid base64") from exc


def _percent_encode(details: str) -> str:
    # gRPC: printable ASCII except '%' goes as is; everything else as %XX of its UTF-8 bytes.
    return quote(details, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
