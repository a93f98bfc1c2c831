"""What every sender shares: its errors and its shape."""

from __future__ import annotations

import email.utils
import time
from typing import Protocol, TypeVar

from core.errors import FailedPrecondition, Unavailable
from query_side.alerts.notification import Notification

T_contra = TypeVar("T_contra", contravariant=True)


class ReceiverUnavailable(Unavailable):
    """The receiver could not take the notification now; sending it again later may work.
    `retry_after_s` is the receiver's own hint (HTTP Retry-After), if it gave one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotificationRejected(FailedPrecondition):
    """The receiver refused the notification for good (HTTP 4xx, SMTP 5xx, an invalid phone
    number, a disabled endpoint): sending it again would be refused again."""


class Sender(Protocol[T_contra]):
    async def send(self, notification: Notification, target: T_contra) -> None:
        """Deliver `notification` to `target` once (no retries: delivery.py owns them).
        Raises ReceiverUnavailable, NotificationRejected or FailedPrecondition (secret)."""
        ...

    async def aclose(self) -> None:
        """Close the long-lived clients; `send` may reopen them."""
        ...


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Seconds to wait from an HTTP Retry-After header (delta-seconds or an HTTP date);
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)
