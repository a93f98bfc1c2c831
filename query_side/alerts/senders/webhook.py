"""Webhook: one signed JSON POST per notification over a long-lived httpx client.

Headers (docs/alerting-notifications.md): `X-Argus-Timestamp` (unix seconds of this attempt),
`X-Argus-Signature: sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">` when the target has
a secret, `Idempotency-Key` and `X-Argus-Notification-Id` (the notification id, the same on
every retry). The body is `Notification.body_bytes()`, identical on every attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable

import httpx

from core.alerting.model import WebhookTarget
from core.alerting.secrets import resolve_secret
from query_side.alerts.notification import Notification
from query_side.alerts.senders.base import NotificationRejected, ReceiverUnavailable, parse_retry_after

USER_AGENT = "argus-alerts/1"
# Headers the target's own `headers` may not replace (they carry the contract).
_RESERVED = frozenset(
    h.lower()
    for h in (
        "content-type",
        "x-argus-timestamp",
        "x-argus-signature",
        "idempotency-key",
        "x-argus-notification-id",
        "content-length",
        "host",
    )
)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Argus-Signature` value: `sha256=` + hex HMAC-SHA256 over `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def describe_url(url: str) -> str:
    """The URL without user info, query or fragment (they may hold tokens): safe to log."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class WebhookSender:
    def __init__(self, *, clock_s: Callable[[], float] = time.time, verify: bool | str = True) -> None:
        self._clock_s = clock_s
        self._verify = verify
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # One client for every webhook: keep-alive per host, CA bundle loaded once.
            self._client = httpx.AsyncClient(
                verify=self._verify,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def send(self, notification: Notification, target: WebhookTarget) -> None:
        where = f"webhook {describe_url(target.url)}"
        body = notification.body_bytes()
        timestamp = str(int(self._clock_s()))
        headers = {k: v for k, v in target.headers.items() if k.lower() not in _RESERVED}
        headers |= {
            "Content-Type": "application/json",
            "X-Argus-Timestamp": timestamp,
            "Idempotency-Key": notification.id,
            "X-Argus-Notification-Id": notification.id,
        }
        if target.secret is not None:
            headers["X-Argus-Signature"] = sign(resolve_secret(target.secret), timestamp, body)
        timeout = target.timeout_ms / 1000
        try:
            response = await self._http().post(
                target.url, content=body, headers=headers, timeout=httpx.Timeout(timeout)
            )
        except httpx.UnsupportedProtocol as exc:
            raise NotificationRejected(f"{where}: unsupported URL scheme") from exc
        except httpx.TimeoutException as exc:
            raise ReceiverUnavailable(f"{where}: no answer within {timeout:g} s ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ReceiverUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
        except httpx.InvalidURL as exc:
            raise NotificationRejected(f"{where}: invalid URL ({exc})") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        reason = f"{where}: HTTP {status} {response.reason_phrase}".rstrip()
        if status == 429 or status == 408 or status >= 500:
            raise ReceiverUnavailable(reason, retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
        raise NotificationRejected(reason)
