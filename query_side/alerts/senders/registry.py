"""Every channel's sender behind one object: the long-lived resource the composition root
starts once and closes at stop."""

from __future__ import annotations

import ssl
from typing import TypeAlias

import aioboto3

from core.alerting.model import AppriseTarget, EmailTarget, PushTarget, SmsTarget, WebhookTarget
from query_side.alerts.notification import Notification
from query_side.alerts.senders.apprise_url import AppriseSender
from query_side.alerts.senders.smtp import EmailSender
from query_side.alerts.senders.sns import SnsSender
from query_side.alerts.senders.webhook import WebhookSender

Target: TypeAlias = EmailTarget | WebhookTarget | SmsTarget | PushTarget | AppriseTarget


class Senders:
    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        aws_session: aioboto3.Session | None = None,
        webhook_verify: bool | str = True,
    ) -> None:
        """`tls_context`: CA and TLS settings of SMTP servers; `aws_session`: SNS credentials;
        `webhook_verify`: httpx `verify` (True, or a CA bundle path)."""
        self.webhook = WebhookSender(verify=webhook_verify)
        self.email = EmailSender(tls_context=tls_context)
        self.sns = SnsSender(session=aws_session)
        self.apprise = AppriseSender()

    async def send(self, notification: Notification, target: Target) -> None:
        """Send once on the channel of `target` (errors: see the package docstring)."""
        match target:
            case WebhookTarget():
                await self.webhook.send(notification, target)
            case EmailTarget():
                await self.email.send(notification, target)
            case SmsTarget() | PushTarget():
                await self.sns.send(notification, target)
            case AppriseTarget():
                await self.apprise.send(notification, target)

    async def aclose(self) -> None:
        await self.webhook.aclose()
        await self.email.aclose()
        await self.sns.aclose()
        await self.apprise.aclose()

    async def __aenter__(self) -> Senders:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
