"""Any apprise URL (Slack, PagerDuty, Opsgenie, Teams, Telegram, ntfy, ...), the URL itself
being a secret reference.

apprise reports failure in the result object of `notify()`, not by raising: the result is
checked. A fresh `Apprise` per send, because an instance throttles its second send by several
seconds (`request_rate_per_sec`) and the URL is re-read from its secret each time anyway. The
notify type is explicit (firing → failure, resolved → success): some services (Opsgenie)
silently drop the default `info`.
"""

from __future__ import annotations

import re
import warnings
from typing import Final

import apprise
from apprise.plugins import N_MGR

from core.alerting.model import AppriseTarget
from core.alerting.secrets import resolve_secret
from query_side.alerts.notification import Notification, NotificationStatus
from query_side.alerts.senders.base import NotificationRejected, ReceiverUnavailable

DEFAULT_TIMEOUT_S: Final = 10.0
# apprise's HTTP plugins log "... error=<status>." on a refused request.
_HTTP_STATUS: Final = re.compile(r"error=(\d{3})\b")


class AppriseSender:
    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        # apprise imports its plugins on first use, and one of them the deprecated `imghdr`
        # (apprise/utils/pgp.py): load them here, once, at start, without that warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            N_MGR.load_modules()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        return None

    async def send(self, notification: Notification, target: AppriseTarget) -> None:
        # Errors name the reference, never the URL: it holds the service's token.
        where = f"apprise {target.url}"
        url = resolve_secret(target.url)
        client = apprise.Apprise()
        if not client.add(url):
            raise NotificationRejected(f"{where}: not a URL apprise supports (or a malformed one)")
        notify_type = (
            apprise.NotifyType.FAILURE
            if notification.status is NotificationStatus.FIRING
            else apprise.NotifyType.SUCCESS
        )
        result = await client.async_notify(
            body=notification.text,
            title=notification.title,
            notify_type=notify_type,
            body_format=apprise.NotifyFormat.TEXT,
            timeout=self._timeout_s,
        )
        if result:
            return
        # The privacy-masked service URLs and HTTP statuses only: log messages may echo tokens.
        services = ", ".join(f"{r.name} {r.url} {r.status.name}" for r in result.results) or result.status.name
        statuses = sorted(
            {
                int(m.group(1))
                for r in result.results
                for entry in r.logs()
                for m in _HTTP_STATUS.finditer(entry.message)
            }
        )
        text = f"{where}: {services}" + (f" (HTTP {', '.join(map(str, statuses))})" if statuses else "")
        if statuses and all(400 <= s < 500 and s not in (408, 429) for s in statuses):
            raise NotificationRejected(text)
        raise ReceiverUnavailable(text)
