"""Delivering one notification to one receiver: every channel, retries, timeouts, outcomes.

Guarantees:
- A receiver's notification goes out on every channel at once, as independent *legs*: one
  per email target, webhook target, apprise URL, SMS phone number and push endpoint (a
  number that failed is retried without paging the numbers that already have it). A leg
  failing, hanging or raising never delays or stops another.
- Each attempt is bounded by the target's timeout (cut here even if a library would not
  stop); a leg is bounded by `RetryPolicy.max_attempts` and `max_total_ms`.
- Transient failures (`ArgusError.retryable`: timeouts, connection errors, HTTP 5xx/429,
  SMTP 4xx) are retried after a full-jitter exponential backoff, never sooner than the
  receiver's Retry-After; permanent ones (HTTP 4xx, SMTP 5xx, invalid SNS parameters, an
  unresolvable secret) are not retried.
- Every attempt yields one `DeliveryAttempt` (channel, target, attempt, outcome, error
  text), handed to `on_attempt` as it happens and returned in the `DeliveryReport`: the
  caller turns them into NotificationSent / NotificationFailed events. Error texts never hold
  a secret's value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

from core.alerting.model import Receiver
from core.errors import ArgusError
from core.telemetry import REGISTRY
from query_side.alerts.notification import TEST_ALERTNAME, AlertMember, Notification, make_notification
from query_side.alerts.senders.base import ReceiverUnavailable
from query_side.alerts.senders.registry import Target
from query_side.alerts.senders.smtp import describe as describe_email
from query_side.alerts.senders.webhook import describe_url

log = logging.getLogger(__name__)

DEFAULT_ATTEMPT_TIMEOUT_MS: Final = 10_000
"""For channels whose target has no timeout of its own (SNS, apprise)."""
_GRACE_MS: Final = 1_000
"""Beyond the target's own timeout, before the attempt is cut here."""


NOTIFICATIONS = REGISTRY.counter(
    "argus_alert_notifications_total",
    "Notification legs ended, by channel and result (sent, or failed after its retries).",
    ["channel", "result"],
)


class Outcome(StrEnum):
    OK = "ok"
    TRANSIENT = "transient"
    """Failed; a later attempt may succeed (retried while the policy allows)."""
    PERMANENT = "permanent"
    """Failed for good; not retried."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempt:
    notification_id: str
    receiver: str
    channel: str
    """email, webhook, sms, push or apprise."""
    target: str
    """The leg, safe to show: a URL without credentials or query, an SMTP server and its
    recipients, a phone number, an endpoint ARN, or an apprise URL's secret reference."""
    attempt: int
    """1, 2, ... per leg."""
    outcome: Outcome
    error: str = ""
    started_ms: int
    """On the delivery clock (monotonic ms)."""
    elapsed_ms: int
    final: bool
    """The leg's last attempt: it succeeded, failed for good, or the policy gave up."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryReport:
    notification_id: str
    receiver: str
    attempts: tuple[DeliveryAttempt, ...]

    @property
    def finals(self) -> tuple[DeliveryAttempt, ...]:
        """Each leg's last attempt."""
        return tuple(a for a in self.attempts if a.final)

    @property
    def ok(self) -> bool:
        """Every leg delivered."""
        return all(a.outcome is Outcome.OK for a in self.finals)

    @property
    def failed(self) -> tuple[DeliveryAttempt, ...]:
        return tuple(a for a in self.finals if a.outcome is not Outcome.OK)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay_ms: int = 500
    max_delay_ms: int = 30_000
    max_total_ms: int = 120_000
    """A leg makes no attempt that could not start within this time of its first one."""

    def backoff_ms(self, attempt: int, rng: random.Random) -> int:
        """Full jitter: uniform in [0, min(max_delay, base · 2^(attempt-1))]."""
        ceiling = min(self.max_delay_ms, self.base_delay_ms * 2 ** (attempt - 1))
        return int(rng.uniform(0, ceiling))


class DeliveryClock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep_ms(self, ms: int) -> None: ...


class MonotonicClock:
    def now_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    async def sleep_ms(self, ms: int) -> None:
        await asyncio.sleep(ms / 1000)


class TargetSender(Protocol):
    async def send(self, notification: Notification, target: Target) -> None: ...


@dataclass(frozen=True, slots=True)
class Leg:
    channel: str
    target: Target
    description: str
    timeout_ms: int


def legs_of(receiver: Receiver) -> list[Leg]:
    """The receiver's independent deliveries (SMS numbers and push endpoints one by one)."""
    legs = [Leg("email", t, describe_email(t), t.timeout_ms) for t in receiver.email]
    legs += [Leg("webhook", t, describe_url(t.url), t.timeout_ms) for t in receiver.webhook]
    legs += [
        Leg("sms", dataclasses.replace(t, phone_numbers=(n,)), n, DEFAULT_ATTEMPT_TIMEOUT_MS)
        for t in receiver.sms
        for n in t.phone_numbers
    ]
    legs += [
        Leg("push", dataclasses.replace(t, target_arns=(a,)), a, DEFAULT_ATTEMPT_TIMEOUT_MS)
        for t in receiver.push
        for a in t.target_arns
    ]
    legs += [Leg("apprise", t, str(t.url), DEFAULT_ATTEMPT_TIMEOUT_MS) for t in receiver.apprise]
    return legs


class Deliverer:
    def __init__(
        self,
        senders: TargetSender,
        *,
        policy: RetryPolicy | None = None,
        clock: DeliveryClock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._senders = senders
        self._policy = policy or RetryPolicy()
        self._clock = clock or MonotonicClock()
        self._rng = rng or random.Random()

    async def deliver(
        self,
        notification: Notification,
        receiver: Receiver,
        *,
        on_attempt: Callable[[DeliveryAttempt], Awaitable[None]] | None = None,
    ) -> DeliveryReport:
        """Send `notification` on every channel of `receiver` (see the module docstring).
        Returns when every leg has succeeded, failed for good or run out of its policy."""
        attempts: list[DeliveryAttempt] = []

        async def record(attempt: DeliveryAttempt) -> None:
            attempts.append(attempt)
            if on_attempt is not None:
                await on_attempt(attempt)

        legs = legs_of(receiver)
        # Legs never raise (outcomes are recorded); only `on_attempt` can, and then the
        # TaskGroup stops the other legs and hands its error to the caller.
        async with asyncio.TaskGroup() as group:
            for leg in legs:
                group.create_task(self._leg(notification, receiver.name, leg, record))
        return DeliveryReport(notification_id=notification.id, receiver=receiver.name, attempts=tuple(attempts))

    async def _leg(
        self,
        notification: Notification,
        receiver: str,
        leg: Leg,
        record: Callable[[DeliveryAttempt], Awaitable[None]],
    ) -> None:
        policy, clock = self._policy, self._clock
        first_ms = clock.now_ms()
        attempt = 0
        while True:
            attempt += 1
            started = clock.now_ms()
            outcome, error, retry_after_s = await self._attempt(notification, leg)
            elapsed = clock.now_ms() - started
            delay_ms = 0
            final = outcome is not Outcome.TRANSIENT or attempt >= policy.max_attempts
            if not final:
                delay_ms = policy.backoff_ms(attempt, self._rng)
                if retry_after_s is not None:
                    delay_ms = max(delay_ms, int(retry_after_s * 1000))
                # Give up now rather than wait for an attempt the total budget forbids.
                final = clock.now_ms() + delay_ms - first_ms >= policy.max_total_ms
            await record(
                DeliveryAttempt(
                    notification_id=notification.id,
                    receiver=receiver,
                    channel=leg.channel,
                    target=leg.description,
                    attempt=attempt,
                    outcome=outcome,
                    error=error,
                    started_ms=started,
                    elapsed_ms=elapsed,
                    final=final,
                )
            )
            if final:
                NOTIFICATIONS.inc(leg.channel, "sent" if outcome is Outcome.OK else "failed")
                if outcome is not Outcome.OK:
                    log.warning(
                        "notification not delivered",
                        extra={
                            "notification_id": notification.id,
                            "receiver": receiver,
                            "channel": leg.channel,
                            "attempts": attempt,
                            "error": error,
                        },
                    )
                return
            await clock.sleep_ms(delay_ms)

    async def _attempt(self, notification: Notification, leg: Leg) -> tuple[Outcome, str, float | None]:
        timeout_s = (leg.timeout_ms + _GRACE_MS) / 1000
        try:
            async with asyncio.timeout(timeout_s):
                await self._senders.send(notification, leg.target)
        except TimeoutError:
            return Outcome.TRANSIENT, f"{leg.channel} {leg.description}: no answer within {timeout_s:g} s", None
        except ArgusError as exc:
            retry_after = exc.retry_after_s if isinstance(exc, ReceiverUnavailable) else None
            return (Outcome.TRANSIENT if exc.retryable else Outcome.PERMANENT), str(exc), retry_after
        except Exception as exc:
            # A sender bug must not stop the other legs; it is recorded, not retried.
            log.exception("notification sender failed unexpectedly", extra={"channel": leg.channel})
            return Outcome.PERMANENT, f"{leg.channel} {leg.description}: unexpected {type(exc).__name__}", None
        return Outcome.OK, "", None


async def send_test_notification(
    receiver: Receiver,
    *,
    deliverer: Deliverer,
    tenant: str,
    now_ms: int | None = None,
    on_attempt: Callable[[DeliveryAttempt], Awaitable[None]] | None = None,
) -> DeliveryReport:
    """`argus alerts test RECEIVER`: a clearly marked test notification (title `[TEST]`,
    alertname ArgusTestNotification, `test: true` in the webhook body) to every channel."""
    return await deliverer.deliver(
        build_test_notification(receiver, tenant=tenant, now_ms=now_ms), receiver, on_attempt=on_attempt
    )


def build_test_notification(receiver: Receiver, *, tenant: str, now_ms: int | None = None) -> Notification:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    labels = {"alertname": TEST_ALERTNAME, "severity": "none"}
    member = AlertMember(
        labels=labels,
        annotations={"summary": "Test notification from Argus: this receiver works. No alert is firing."},
        value=0.0,
        starts_ms=now,
        fingerprint="test",
    )
    return make_notification(
        # Unique per test: a receiver deduplicating on Idempotency-Key still shows every test.
        id=f"test-{now}-{secrets.token_hex(8)}",
        tenant=tenant,
        receiver=receiver.name,
        group_labels={"alertname": TEST_ALERTNAME},
        alerts=(member,),
        created_ms=now,
        test=True,
    )
