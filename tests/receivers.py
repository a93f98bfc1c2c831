"""The local notification receivers every alerting test shares (../shared/notifications.md):
a threaded webhook endpoint that verifies Argus's signature (for tests that drive a real
`argus up` from sync code), an aiosmtpd mailbox, and a `moto_server` process standing in for
Amazon SNS (what was "sent" is read back from `/moto-api/data.json`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from harness.processes import ManagedProcess, free_port

SMTP_PASSWORD = "smtp-pw-1a2b3c"
SNS_REGION = "us-east-1"


# -- webhook ----------------------------------------------------------------------------
# Two forms of one receiver: `WebhookReceiver` on its own thread (sync tests driving a real
# `argus up`), `WebhookServer` on the test's event loop (in-process async tests).


@dataclass(frozen=True, slots=True)
class Posted:
    """One POST the receiver took: its path, Idempotency-Key and JSON body."""

    path: str
    key: str
    body: dict[str, Any]


class WebhookReceiver:
    """A local HTTP endpoint on its own thread. A request carrying `X-Argus-Signature` is
    kept in `received` (idempotency key, body) only if its HMAC over `<timestamp>.<body>`
    verifies (else 401, counted in `bad_signatures`); an unsigned one (an apprise `json://`
    target) is kept in `unsigned`. Every kept request is also in `posted`, with its path."""

    def __init__(self, secret: str) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.unsigned: list[Posted] = []
        self.posted: list[Posted] = []
        self.bad_signatures = 0
        outer = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signature = self.headers.get("X-Argus-Signature")
                stamp = self.headers.get("X-Argus-Timestamp", "")
                mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
                posted = Posted(self.path, self.headers.get("Idempotency-Key", ""), json.loads(body))
                with lock:
                    if signature is None:
                        outer.unsigned.append(posted)
                    elif hmac.compare_digest("sha256=" + mac.hexdigest(), signature):
                        outer.received.append((posted.key, posted.body))
                    else:
                        outer.bad_signatures += 1
                        self.send_response(401)
                        self.end_headers()
                        return
                    outer.posted.append(posted)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def of(self, path: str) -> list[Posted]:
        return [p for p in self.posted if p.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class HookRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None
    """None: unsigned."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookServer:
    """POST /ok, /fail500, /fail400, /hang, /retry429 (429 with Retry-After once, then 200)."""

    secret: str = ""
    requests: list[HookRequest] = field(default_factory=list)
    port: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    answered_429: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get("X-Argus-Signature")
        ok: bool | None = None
        if signature is not None:
            stamp = request.headers["X-Argus-Timestamp"]
            mac = hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
            expected = "sha256=" + mac.hexdigest()
            ok = hmac.compare_digest(expected, signature) and abs(time.time() - int(stamp)) < 300
        path = request.match_info["path"]
        self.requests.append(HookRequest(path, dict(request.headers), body, ok))
        if ok is False:
            return web.Response(status=401, text="bad signature")
        if path == "fail500":
            return web.Response(status=500, text="broken")
        if path == "fail400":
            return web.Response(status=400, text="what is this")
        if path == "retry429":
            key = request.headers.get("Idempotency-Key", "")
            if key not in self.answered_429:
                self.answered_429.add(key)
                return web.Response(status=429, headers={"Retry-After": "7"})
        if path == "hang":
            await self.release.wait()
        return web.Response(status=200, text="ok")

    def of(self, path: str) -> list[HookRequest]:
        return [r for r in self.requests if r.path == path]

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies POSTed to `path`, in order."""
        return [r.json() for r in self.of(path)]


@asynccontextmanager
async def webhook_server(secret: str = "") -> AsyncIterator[WebhookServer]:
    """A running `WebhookServer` on a free 127.0.0.1 port of the current event loop."""
    server = WebhookServer(secret=secret)
    app = web.Application()
    app.router.add_post("/{path}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


# -- SMTP -------------------------------------------------------------------------------


class MailBox:
    """An aiosmtpd handler keeping every message; `reply` decides the DATA answer."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message, object]] = []
        self.reply = "250 OK"
        self.logins: list[str] = []

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        if self.reply.startswith("250"):
            content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
            self.messages.append((envelope, message_from_bytes(content, policy=policy.default), session.peer))
        return self.reply

    def authenticate(
        self, server: SmtpServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535


@contextmanager
def smtp_server(**options: Any) -> Iterator[tuple[MailBox, int]]:
    """A running aiosmtpd server on a free 127.0.0.1 port (its own thread): (mailbox, port).
    `options` go to aiosmtpd's Controller (tls_context, require_starttls, auth ...)."""
    box = MailBox()
    if options.get("auth_required"):
        options.setdefault("authenticator", box.authenticate)
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


# -- SNS (moto) -------------------------------------------------------------------------


class Moto:
    def __init__(self, url: str) -> None:
        self.url = url

    def data(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=10) as response:
            data: dict[str, Any] = json.load(response)
        return data

    def sms(self) -> list[dict[str, Any]]:
        """Every SMS moto took, whatever the shape of its records."""
        return _records(self.data().get("sns", {}).get("SMS", {}))

    def endpoint_messages(self, arn: str) -> list[str]:
        for endpoint in _records(self.data().get("sns", {}).get("PlatformEndpoint", {})):
            if endpoint.get("arn") == arn:
                messages = endpoint.get("messages") or {}
                # By message id (a list in some moto versions).
                return [str(m) for m in (messages.values() if isinstance(messages, dict) else messages)]
        return []


def _records(tree: Any) -> list[dict[str, Any]]:
    """moto nests its records by account and region: the leaves that are records."""
    if isinstance(tree, list):
        return [r for item in tree for r in _records(item)]
    if isinstance(tree, dict):
        if any(not isinstance(v, dict | list) for v in tree.values()):
            return [tree]
        return [r for v in tree.values() for r in _records(v)]
    return []


@contextmanager
def moto_server(log_dir: Path) -> Iterator[Moto]:
    """A `moto_server` process on a free 127.0.0.1 port, stopped by its PID at the end."""
    binary = Path(sys.executable).parent / "moto_server"
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1) as response:
            return bool(response.status == 200)

    server = ManagedProcess(
        "moto_server", [str(binary), "-H", "127.0.0.1", "-p", str(port)], log_path=log_dir / "moto.log", ready=ready
    ).start()
    try:
        yield Moto(url)
    finally:
        server.stop()
