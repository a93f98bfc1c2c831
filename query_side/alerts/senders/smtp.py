"""Email over SMTP (aiosmtplib): STARTTLS or implicit TLS, login with the password secret,
a plain-text message whose `Message-ID` derives from the notification id.

One connection per (server, port, TLS mode, user) is kept open and reused, one message at a
time (an SMTP session is sequential); a connection the server closed while idle is reopened
once, at once, inside the same send.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from core.alerting.model import EmailTarget
from core.alerting.secrets import resolve_secret
from query_side.alerts.notification import Notification
from query_side.alerts.senders.base import NotificationRejected, ReceiverUnavailable


@dataclass(frozen=True, slots=True)
class _Key:
    host: str
    port: int
    starttls: bool
    implicit_tls: bool
    username: str


class _Connection:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.smtp: aiosmtplib.SMTP | None = None


def describe(target: EmailTarget) -> str:
    return f"smtp://{target.smtp_host}:{target.smtp_port} to {','.join(target.to)}"


def build_message(notification: Notification, target: EmailTarget) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = target.from_addr
    msg["To"] = ", ".join(target.to)
    msg["Subject"] = notification.title
    domain = target.from_addr.rpartition("@")[2] or "argus.invalid"
    msg["Message-ID"] = f"<{notification.message_id_local}@{domain}>"
    msg["Date"] = email.utils.formatdate(notification.created_ms / 1000 if notification.created_ms else None)
    msg["X-Argus-Notification-Id"] = notification.id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(notification.text)
    return msg


class EmailSender:
    def __init__(self, *, tls_context: ssl.SSLContext | None = None) -> None:
        """`tls_context`: the CA and TLS settings for every server (default: the system's)."""
        self._tls_context = tls_context or ssl.create_default_context()
        self._connections: dict[_Key, _Connection] = {}

    async def aclose(self) -> None:
        connections, self._connections = self._connections, {}
        for conn in connections.values():
            async with conn.lock:
                await _quit(conn)

    async def send(self, notification: Notification, target: EmailTarget) -> None:
        where = f"email {describe(target)}"
        password = resolve_secret(target.password) if target.password is not None else None
        message = build_message(notification, target)
        key = _Key(target.smtp_host, target.smtp_port, target.starttls, target.implicit_tls, target.username)
        conn = self._connections.setdefault(key, _Connection())
        async with conn.lock:
            reused = conn.smtp is not None and conn.smtp.is_connected
            try:
                try:
                    await self._send_on(conn, target, password, message)
                except aiosmtplib.SMTPServerDisconnected:
                    if not reused:
                        raise
                    # The server dropped our idle connection: a fresh one, once.
                    _drop(conn)
                    await self._send_on(conn, target, password, message)
            except aiosmtplib.SMTPException as exc:
                await _quit(conn)
                raise _translate(where, exc) from exc
            except OSError as exc:
                await _quit(conn)
                raise ReceiverUnavailable(f"{where}: {type(exc).__name__}: {exc.strerror or exc}") from exc
            except asyncio.CancelledError:
                # Cut mid-transaction (delivery's timeout): the session's state is unknown.
                _drop(conn)
                raise

    async def _send_on(
        self, conn: _Connection, target: EmailTarget, password: str | None, message: EmailMessage
    ) -> None:
        timeout = target.timeout_ms / 1000
        if conn.smtp is None or not conn.smtp.is_connected:
            smtp = aiosmtplib.SMTP(
                hostname=target.smtp_host,
                port=target.smtp_port,
                use_tls=target.implicit_tls,
                start_tls=target.starttls and not target.implicit_tls,
                tls_context=self._tls_context if (target.starttls or target.implicit_tls) else None,
                timeout=timeout,
            )
            conn.smtp = smtp
            await smtp.connect()
            if target.username:
                await smtp.login(target.username, password or "")
        refused, _ = await conn.smtp.send_message(message, timeout=timeout)
        if refused:
            # Some recipients have it: a retry would page them twice, so this is final.
            text = "; ".join(f"{rcpt}: {r.code} {r.message}" for rcpt, r in sorted(refused.items()))
            raise NotificationRejected(f"email {describe(target)}: some recipients refused ({text})")


async def _quit(conn: _Connection) -> None:
    smtp, conn.smtp = conn.smtp, None
    if smtp is None:
        return
    if not smtp.is_connected:
        smtp.close()  # a half-open connect may still hold its transport
        return
    try:
        await smtp.quit(timeout=2.0)
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


def _drop(conn: _Connection) -> None:
    smtp, conn.smtp = conn.smtp, None
    if smtp is not None:
        smtp.close()


def _translate(where: str, exc: aiosmtplib.SMTPException) -> ReceiverUnavailable | NotificationRejected:
    """SMTP 4xx and connection trouble may pass later; 5xx will not."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if codes and all(400 <= c < 500 for c in codes):
            return ReceiverUnavailable(f"{where}: recipients refused for now ({text})")
        return NotificationRejected(f"{where}: recipients refused ({text})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{where}: SMTP {exc.code} {exc.message}"
        if 400 <= exc.code < 500:
            return ReceiverUnavailable(text)
        return NotificationRejected(text)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return ReceiverUnavailable(f"{where}: timed out ({exc})")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # e.g. STARTTLS or AUTH required but not offered: the configuration is wrong.
        return NotificationRejected(f"{where}: {exc}")
    return ReceiverUnavailable(f"{where}: {type(exc).__name__}: {exc}")
