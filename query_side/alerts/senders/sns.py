"""SMS and mobile push through Amazon SNS (aioboto3): `publish(PhoneNumber=...)` with the
short text, and `publish(TargetArn=..., MessageStructure="json")` with a per-platform payload
(APNS, APNS_SANDBOX, GCM; `default` for the rest).

One client per (region, endpoint) stays open. botocore's own retries are off: delivery.py
retries, with jitter, and records every attempt.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any, Final

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

from core.alerting.model import PushTarget, SmsTarget
from query_side.alerts.notification import Notification
from query_side.alerts.senders.base import NotificationRejected, ReceiverUnavailable

# SNS error codes a retry can help with; everything else the service says is final
# (InvalidParameter, EndpointDisabled, NotFound, AuthorizationError, OptedOut...).
_TRANSIENT_CODES: Final = frozenset(
    {
        "Throttled",
        "Throttling",
        "ThrottlingException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "KMSThrottling",
        "RequestTimeout",
    }
)
PUSH_TIMEOUT_S: Final = 10.0


def push_message(notification: Notification) -> str:
    """The `MessageStructure=json` message: one payload per platform."""
    title, body = notification.title, notification.sms_text(limit_bytes=1000)
    data = {"notification_id": notification.id, "status": notification.status.value, "test": notification.test}
    apns = json.dumps({"aps": {"alert": {"title": title, "body": body}, "sound": "default"}, "argus": data})
    gcm = json.dumps({"notification": {"title": title, "body": body}, "data": {k: str(v) for k, v in data.items()}})
    return json.dumps({"default": body, "APNS": apns, "APNS_SANDBOX": apns, "GCM": gcm})


class SnsSender:
    def __init__(self, *, session: aioboto3.Session | None = None, timeout_s: float = PUSH_TIMEOUT_S) -> None:
        """`session`: credentials and profile (default: the standard AWS chain)."""
        self._session = session or aioboto3.Session()
        self._timeout_s = timeout_s
        self._stack = AsyncExitStack()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        async with self._lock:
            self._clients = {}
            stack, self._stack = self._stack, AsyncExitStack()
            await stack.aclose()

    async def _client(self, region: str, endpoint_url: str) -> Any:
        key = (region, endpoint_url)
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                config = AioConfig(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=self._timeout_s,
                    read_timeout=self._timeout_s,
                )
                client = await self._stack.enter_async_context(
                    self._session.client("sns", region_name=region, endpoint_url=endpoint_url or None, config=config)
                )
                self._clients[key] = client
            return client

    async def send(self, notification: Notification, target: SmsTarget | PushTarget) -> None:
        if isinstance(target, SmsTarget):
            await self.send_sms(notification, target)
        else:
            await self.send_push(notification, target)

    async def send_sms(self, notification: Notification, target: SmsTarget) -> None:
        client = await self._client(target.region, target.endpoint_url)
        for number in target.phone_numbers:
            # SNS accepts a publish to an opted-out number and drops it silently: ask first, so
            # the failure is visible (one cheap call per page).
            answer = await _call(f"sms {number}", client.check_if_phone_number_is_opted_out(phoneNumber=number))
            if answer.get("isOptedOut"):
                raise NotificationRejected(f"sms {number}: the number has opted out of SMS (OptedOut)")
            await _call(
                f"sms {number}",
                client.publish(
                    PhoneNumber=number,
                    Message=notification.sms_text(),
                    MessageAttributes={"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}},
                ),
            )

    async def send_push(self, notification: Notification, target: PushTarget) -> None:
        client = await self._client(target.region, target.endpoint_url)
        message = push_message(notification)
        for arn in target.target_arns:
            await _call(f"push {arn}", client.publish(TargetArn=arn, MessageStructure="json", Message=message))


async def _call(where: str, call: Any) -> Any:
    try:
        return await call
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{where}: SNS {code or status}: {error.get('Message', '')}".rstrip(": ")
        if code in _TRANSIENT_CODES or status == 429 or status >= 500:
            raise ReceiverUnavailable(text) from exc
        raise NotificationRejected(text) from exc
    except (ConnectionError, HTTPClientError, ReadTimeoutError) as exc:
        raise ReceiverUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
    except BotoCoreError as exc:
        # Parameter validation, missing credentials: the configuration, not the moment.
        raise NotificationRejected(f"{where}: {type(exc).__name__}: {exc}") from exc
