"""One sender per notification channel, each `async send(notification, target) -> None`.

Every sender keeps its clients alive between sends (HTTP keep-alive, one SMTP connection per
server, one SNS client per region and endpoint), resolves secrets only at send time, and
fails with an error of the core/errors.py tree that says whether a retry can help:
`ReceiverUnavailable` (retryable: timeouts, connection errors, HTTP 5xx and 429, SMTP 4xx,
SNS throttling) or `NotificationRejected` (permanent: HTTP 4xx, SMTP 5xx, invalid SNS
parameters, disabled endpoints); an unresolvable secret is core's FailedPrecondition.
No error message ever holds a secret's value.
"""

from query_side.alerts.senders.base import NotificationRejected, ReceiverUnavailable, Sender
from query_side.alerts.senders.registry import Senders

__all__ = ["NotificationRejected", "ReceiverUnavailable", "Sender", "Senders"]
