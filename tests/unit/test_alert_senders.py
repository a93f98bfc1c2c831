"""Notification senders and delivery against real local receivers, in process: an aiohttp
webhook server that checks the signature, aiosmtpd SMTP servers (plain, and STARTTLS + auth
with a trustme certificate), apprise pointed at the webhook server. Retries run on an
injected clock, so backoff is checked without waiting for it."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import math
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import trustme
from aiosmtpd.controller import Controller

from core.alerting.model import AppriseTarget, EmailTarget, Receiver, SecretRef, WebhookTarget
from core.errors import FailedPrecondition
from harness.processes import free_port
from query_side.alerts.delivery import Deliverer, DeliveryAttempt, Outcome, RetryPolicy, send_test_notification
from query_side.alerts.notification import (
    MAX_SMS_BYTES,
    AlertMember,
    Notification,
    NotificationStatus,
    make_notification,
    notification_id,
)
from query_side.alerts.senders import NotificationRejected, ReceiverUnavailable, Senders
from query_side.alerts.senders.base import parse_retry_after
from query_side.alerts.senders.registry import Target
from tests.receivers import SMTP_PASSWORD, MailBox, WebhookServer, smtp_server, webhook_server

SECRET_VALUE = "whsec-9f8e7d6c5b4a"


# -- receivers --------------------------------------------------------------------------


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookServer]:
    async with webhook_server(SECRET_VALUE) as server:
        yield server


@dataclass
class Tls:
    ca: trustme.CA
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls() -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Tls(ca, server, client)


@pytest.fixture
def smtp_plain() -> Iterator[tuple[MailBox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def smtp_tls(tls: Tls) -> Iterator[tuple[MailBox, int]]:
    with smtp_server(tls_context=tls.server, require_starttls=True, auth_required=True) as server:
        yield server


@pytest.fixture
async def senders(tls: Tls) -> AsyncIterator[Senders]:
    async with Senders(tls_context=tls.client) as s:
        yield s


class FakeClock:
    """Delivery's clock: sleeping advances time at once, and is recorded."""

    def __init__(self) -> None:
        self.now = 1_000_000
        self.sleeps: list[int] = []

    def now_ms(self) -> int:
        return self.now

    async def sleep_ms(self, ms: int) -> None:
        self.sleeps.append(ms)
        self.now += ms
        await asyncio.sleep(0)


# -- notifications ----------------------------------------------------------------------


def member(host: str, value: float, *, status: NotificationStatus = NotificationStatus.FIRING) -> AlertMember:
    return AlertMember(
        labels={"alertname": "HighCpu", "region": "eu", "host": host, "severity": "page"},
        annotations={"summary": "CPU above 90%", "description": f"{host} is at {value}"},
        value=value,
        starts_ms=1_765_000_000_000,
        ends_ms=0 if status is NotificationStatus.FIRING else 1_765_000_600_000,
        fingerprint=hashlib.sha256(host.encode()).hexdigest()[:16],
        status=status,
    )


def group_notification(n: int = 3, *, status: NotificationStatus = NotificationStatus.FIRING) -> Notification:
    return make_notification(
        id=notification_id("acme", "HighCpu", "region=eu", f"{status.value}-{n}"),
        tenant="acme",
        receiver="oncall",
        group_labels={"alertname": "HighCpu", "region": "eu"},
        alerts=[member(f"host-{i:03d}", 90.5 + i, status=status) for i in range(n)],
        created_ms=1_765_000_001_000,
    )


def test_notification_renders_the_group_and_every_member() -> None:
    n = group_notification(3)
    assert n.status is NotificationStatus.FIRING
    assert n.title == "[FIRING:3] HighCpu region=eu"
    assert n.common_labels == {"alertname": "HighCpu", "region": "eu", "severity": "page"}
    assert n.common_annotations == {"summary": "CPU above 90%"}
    for i in range(3):
        assert f"host=host-{i:03d}" in n.text
        assert f"value: {90.5 + i:.6g}" in n.text
    assert "since: 2025-12-06T05:46:40Z" in n.text
    resolved = group_notification(2, status=NotificationStatus.RESOLVED)
    assert resolved.title == "[RESOLVED] HighCpu region=eu"
    assert "until: 2025-12-06T05:56:40Z" in resolved.text


def test_webhook_body_is_stable_and_complete() -> None:
    a, b = group_notification(2), group_notification(2)
    assert a.body_bytes() == b.body_bytes()
    body = json.loads(a.body_bytes())
    assert body["version"] == 1 and body["id"] == a.id and body["status"] == "firing"
    assert body["group_labels"] == {"alertname": "HighCpu", "region": "eu"}
    assert [x["labels"]["host"] for x in body["alerts"]] == ["host-000", "host-001"]
    assert body["alerts"][1]["value"] == 91.5 and body["alerts"][0]["ends_ms"] == 0
    no_data = make_notification(
        id="x", tenant="t", receiver="r", group_labels={}, alerts=[member("h", math.nan)], created_ms=0
    )
    assert json.loads(no_data.body_bytes())["alerts"][0]["value"] is None
    assert "value: no data" in no_data.text


def test_sms_text_fits_1600_bytes_and_says_how_many_were_left_out() -> None:
    big = group_notification(200)
    sms = big.sms_text()
    assert len(sms.encode()) <= MAX_SMS_BYTES
    shown = sms.count("host=host-")
    assert 5 < shown < 200
    assert sms.endswith(f"… and {200 - shown} more")
    wide = make_notification(
        id="w", tenant="t", receiver="r", group_labels={}, alerts=[member("é" * 2000, 1.0)], created_ms=0
    )
    assert len(wide.sms_text().encode()) <= MAX_SMS_BYTES
    wide.sms_text().encode().decode()  # cut on a character boundary


def test_title_is_one_line_even_with_hostile_labels() -> None:
    n = make_notification(
        id="i",
        tenant="t",
        receiver="r",
        group_labels={"alertname": "A\r\nBcc: evil@example.com"},
        alerts=[member("h", 1.0)],
        created_ms=0,
    )
    assert "\n" not in n.title and "\r" not in n.title


def test_notification_id_is_checked_and_deterministic() -> None:
    assert notification_id("a", "bc") == notification_id("a", "bc") != notification_id("ab", "c")
    with pytest.raises(Exception, match="notification id"):
        make_notification(id="has space", tenant="t", receiver="r", group_labels={}, alerts=[], created_ms=0)


def test_retry_after_reads_seconds_and_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


# -- webhook ----------------------------------------------------------------------------


async def test_webhook_is_signed_and_carries_the_idempotency_key(
    hooks: WebhookServer, senders: Senders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGUS_TEST_HOOK_SECRET", SECRET_VALUE)
    target = WebhookTarget(
        url=hooks.url("ok"),
        secret=SecretRef(source="env", name="ARGUS_TEST_HOOK_SECRET"),
        headers={"X-Team": "sre", "Idempotency-Key": "not-yours"},
    )
    n = group_notification(2)
    await senders.send(n, target)
    await senders.send(n, target)
    [first, second] = hooks.of("ok")
    assert first.signature_ok is True and second.signature_ok is True
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == n.id
    assert first.headers["X-Team"] == "sre"
    assert first.body == second.body == n.body_bytes()
    assert first.json()["alerts"][0]["labels"]["host"] == "host-000"


async def test_webhook_with_a_wrong_secret_fails_the_receivers_check(
    hooks: WebhookServer, senders: Senders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGUS_TEST_HOOK_SECRET", "not-the-secret")
    target = WebhookTarget(url=hooks.url("ok"), secret=SecretRef(source="env", name="ARGUS_TEST_HOOK_SECRET"))
    with pytest.raises(NotificationRejected, match="HTTP 401") as info:
        await senders.send(group_notification(1), target)
    assert hooks.requests[0].signature_ok is False
    assert "not-the-secret" not in str(info.value)


async def test_webhook_errors_say_whether_a_retry_helps(hooks: WebhookServer, senders: Senders) -> None:
    n = group_notification(1)
    with pytest.raises(ReceiverUnavailable, match="HTTP 500"):
        await senders.send(n, WebhookTarget(url=hooks.url("fail500")))
    with pytest.raises(NotificationRejected, match="HTTP 400"):
        await senders.send(n, WebhookTarget(url=hooks.url("fail400")))
    with pytest.raises(ReceiverUnavailable, match="HTTP 429") as info:
        await senders.send(n, WebhookTarget(url=hooks.url("retry429")))
    assert info.value.retry_after_s == 7.0
    with pytest.raises(ReceiverUnavailable, match="ConnectError"):
        await senders.send(n, WebhookTarget(url=f"http://127.0.0.1:{free_port()}/nobody", timeout_ms=2000))


# -- delivery ---------------------------------------------------------------------------


async def test_webhook_failing_forever_backs_off_with_full_jitter_and_gives_up(
    hooks: WebhookServer, senders: Senders
) -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=6, base_delay_ms=1000, max_delay_ms=8000, max_total_ms=600_000)
    seen: list[DeliveryAttempt] = []

    async def on_attempt(a: DeliveryAttempt) -> None:
        seen.append(a)

    deliverer = Deliverer(senders, policy=policy, clock=clock, rng=random.Random(7))
    receiver = Receiver(name="broken", webhook=(WebhookTarget(url=hooks.url("fail500")),))
    report = await deliverer.deliver(group_notification(1), receiver, on_attempt=on_attempt)
    assert not report.ok
    assert [a.attempt for a in report.attempts] == [1, 2, 3, 4, 5, 6]
    assert list(report.attempts) == seen
    assert all(a.outcome is Outcome.TRANSIENT and "HTTP 500" in a.error for a in report.attempts)
    assert [a.final for a in report.attempts] == [False] * 5 + [True]
    assert len(hooks.of("fail500")) == 6
    assert len(clock.sleeps) == 5
    for i, slept in enumerate(clock.sleeps, start=1):
        assert 0 <= slept <= min(8000, 1000 * 2 ** (i - 1))
    # Full jitter: the waits are not the deterministic ceilings.
    assert clock.sleeps != [1000, 2000, 4000, 8000, 8000]


async def test_total_time_bounds_the_retries(hooks: WebhookServer, senders: Senders) -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=100, base_delay_ms=1000, max_delay_ms=10_000, max_total_ms=30_000)
    deliverer = Deliverer(senders, policy=policy, clock=clock, rng=random.Random(1))
    receiver = Receiver(name="broken", webhook=(WebhookTarget(url=hooks.url("fail500")),))
    report = await deliverer.deliver(group_notification(1), receiver)
    assert report.attempts[-1].final and report.attempts[-1].outcome is Outcome.TRANSIENT
    assert 2 < len(report.attempts) < 100
    assert sum(clock.sleeps) < 30_000


async def test_retry_after_is_honoured(hooks: WebhookServer, senders: Senders) -> None:
    clock = FakeClock()
    deliverer = Deliverer(senders, policy=RetryPolicy(base_delay_ms=100), clock=clock, rng=random.Random(3))
    receiver = Receiver(name="busy", webhook=(WebhookTarget(url=hooks.url("retry429")),))
    report = await deliverer.deliver(group_notification(1), receiver)
    assert report.ok
    assert [a.outcome for a in report.attempts] == [Outcome.TRANSIENT, Outcome.OK]
    assert clock.sleeps == [7000]
    assert len(hooks.of("retry429")) == 2


async def test_a_retry_after_beyond_the_budget_ends_the_leg_at_once(hooks: WebhookServer, senders: Senders) -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_total_ms=5_000)  # the server asks for 7 s
    receiver = Receiver(name="busy", webhook=(WebhookTarget(url=hooks.url("retry429")),))
    report = await Deliverer(senders, policy=policy, clock=clock).deliver(group_notification(1), receiver)
    [attempt] = report.attempts
    assert attempt.outcome is Outcome.TRANSIENT and attempt.final and "HTTP 429" in attempt.error
    assert clock.sleeps == []


class BuggySender:
    """A sender with a bug on one channel, a working one on the others."""

    def __init__(self, real: Senders) -> None:
        self.real = real

    async def send(self, notification: Notification, target: Target) -> None:
        if isinstance(target, WebhookTarget) and target.url.endswith("/bug"):
            raise KeyError("oops")
        await self.real.send(notification, target)


async def test_a_sender_bug_is_recorded_and_stops_nothing_else(hooks: WebhookServer, senders: Senders) -> None:
    receiver = Receiver(name="r", webhook=(WebhookTarget(url=hooks.url("bug")), WebhookTarget(url=hooks.url("ok"))))
    report = await Deliverer(BuggySender(senders), clock=FakeClock()).deliver(group_notification(1), receiver)
    outcomes = {a.target.rsplit("/", 1)[-1]: (a.outcome, a.error) for a in report.attempts}
    assert outcomes["ok"] == (Outcome.OK, "")
    assert outcomes["bug"][0] is Outcome.PERMANENT and "unexpected KeyError" in outcomes["bug"][1]
    assert len(report.attempts) == 2


async def test_a_rejected_webhook_is_not_retried(hooks: WebhookServer, senders: Senders) -> None:
    clock = FakeClock()
    deliverer = Deliverer(senders, clock=clock)
    receiver = Receiver(name="strict", webhook=(WebhookTarget(url=hooks.url("fail400")),))
    report = await deliverer.deliver(group_notification(1), receiver)
    [attempt] = report.attempts
    assert attempt.outcome is Outcome.PERMANENT and attempt.final and "HTTP 400" in attempt.error
    assert clock.sleeps == [] and len(hooks.of("fail400")) == 1


async def test_a_hanging_receiver_is_cut_by_its_timeout(hooks: WebhookServer, senders: Senders) -> None:
    deliverer = Deliverer(senders, policy=RetryPolicy(max_attempts=2, base_delay_ms=10))
    receiver = Receiver(
        name="slow",
        webhook=(WebhookTarget(url=hooks.url("hang"), timeout_ms=300), WebhookTarget(url=hooks.url("ok"))),
    )
    started = time.monotonic()
    report = await deliverer.deliver(group_notification(1), receiver)
    took = time.monotonic() - started
    hang = [a for a in report.attempts if a.target.endswith("/hang")]
    assert [a.outcome for a in hang] == [Outcome.TRANSIENT, Outcome.TRANSIENT]
    assert "no answer within 0.3 s" in hang[0].error
    assert 0.6 <= took < 5.0
    assert [a.outcome for a in report.attempts if a.target.endswith("/ok")] == [Outcome.OK]


async def test_a_silent_smtp_server_is_cut_by_the_timeout(senders: Senders) -> None:
    # Accepts the connection, never says a word.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        deliverer = Deliverer(senders, policy=RetryPolicy(max_attempts=1))
        target = EmailTarget(
            to=("a@example.com",),
            from_addr="argus@example.com",
            smtp_host="127.0.0.1",
            smtp_port=port,
            starttls=False,
            timeout_ms=300,
        )
        started = time.monotonic()
        report = await deliverer.deliver(group_notification(1), Receiver(name="mute", email=(target,)))
        assert time.monotonic() - started < 3.0
    [attempt] = report.attempts
    assert attempt.outcome is Outcome.TRANSIENT and attempt.final


async def test_an_unresolvable_secret_is_permanent_and_names_only_the_reference(
    hooks: WebhookServer, senders: Senders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARGUS_TEST_NO_SUCH_SECRET", raising=False)
    ref = SecretRef(source="env", name="ARGUS_TEST_NO_SUCH_SECRET")
    with pytest.raises(FailedPrecondition):
        await senders.send(group_notification(1), WebhookTarget(url=hooks.url("ok"), secret=ref))
    clock = FakeClock()
    receiver = Receiver(name="r", webhook=(WebhookTarget(url=hooks.url("ok"), secret=ref),))
    report = await Deliverer(senders, clock=clock).deliver(group_notification(1), receiver)
    [attempt] = report.attempts
    assert attempt.outcome is Outcome.PERMANENT and "env:ARGUS_TEST_NO_SUCH_SECRET" in attempt.error
    assert hooks.requests == [] and clock.sleeps == []


async def test_one_failing_channel_does_not_block_the_others(
    smtp_plain: tuple[MailBox, int], hooks: WebhookServer, senders: Senders, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, port = smtp_plain
    monkeypatch.setenv("ARGUS_TEST_HOOK_SECRET", SECRET_VALUE)
    receiver = Receiver(
        name="team",
        webhook=(
            WebhookTarget(url=hooks.url("fail500")),
            WebhookTarget(url=hooks.url("ok"), secret=SecretRef(source="env", name="ARGUS_TEST_HOOK_SECRET")),
        ),
        email=(
            EmailTarget(
                to=("sre@example.com",),
                from_addr="argus@example.com",
                smtp_host="127.0.0.1",
                smtp_port=port,
                starttls=False,
            ),
        ),
    )
    deliverer = Deliverer(senders, policy=RetryPolicy(max_attempts=3), clock=FakeClock())
    report = await deliverer.deliver(group_notification(2), receiver)
    finals = {(a.channel, a.target.rsplit("/", 1)[-1]): a.outcome for a in report.finals}
    assert finals[("webhook", "fail500")] is Outcome.TRANSIENT
    assert finals[("webhook", "ok")] is Outcome.OK
    assert [o for (ch, _), o in finals.items() if ch == "email"] == [Outcome.OK]
    assert len(box.messages) == 1 and len(hooks.of("ok")) == 1
    expected = f"webhook http://127.0.0.1:{hooks.port}/fail500: HTTP 500 Internal Server Error"
    assert [a.error for a in report.failed] == [expected]
    assert SECRET_VALUE not in repr(report)


async def test_test_notification_is_clearly_marked(hooks: WebhookServer, senders: Senders) -> None:
    receiver = Receiver(name="oncall", webhook=(WebhookTarget(url=hooks.url("ok")),))
    report = await send_test_notification(receiver, deliverer=Deliverer(senders), tenant="acme")
    assert report.ok
    [req] = hooks.of("ok")
    body = req.json()
    assert body["test"] is True and body["title"].startswith("[TEST] ")
    assert body["alerts"][0]["labels"]["alertname"] == "ArgusTestNotification"
    assert body["receiver"] == "oncall" and body["tenant"] == "acme"


# -- email ------------------------------------------------------------------------------


async def test_email_reuses_one_connection_and_derives_the_message_id(
    smtp_plain: tuple[MailBox, int], senders: Senders
) -> None:
    box, port = smtp_plain
    target = EmailTarget(
        to=("a@example.com", "b@example.com"),
        from_addr="argus@alerts.example.com",
        smtp_host="127.0.0.1",
        smtp_port=port,
        starttls=False,
    )
    first, second = group_notification(2), group_notification(3)
    await senders.send(first, target)
    await senders.send(second, target)
    assert len(box.messages) == 2
    (env1, msg1, peer1), (_, msg2, peer2) = box.messages
    assert peer1 == peer2, "the second message used the first connection"
    assert env1.rcpt_tos == ["a@example.com", "b@example.com"]
    assert msg1["Subject"] == first.title and msg2["Subject"] == second.title
    assert str(msg1["Message-ID"]).strip() == f"<{first.message_id_local}@alerts.example.com>"
    assert msg1["Message-ID"] != msg2["Message-ID"]
    # aiosmtplib folds headers at 78 columns: a long id may start on a continuation line.
    assert str(msg1["X-Argus-Notification-Id"]).strip() == first.id
    assert msg1.get_content_type() == "text/plain"
    payload = msg1.get_payload(decode=True)
    assert isinstance(payload, bytes) and "host=host-001" in payload.decode()


# The stopped server's loop still held our connection's transport when it closed.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
async def test_email_reconnects_after_the_server_dropped_the_connection(senders: Senders) -> None:
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    target = EmailTarget(
        to=("a@example.com",),
        from_addr="argus@example.com",
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        starttls=False,
    )
    try:
        await senders.send(group_notification(1), target)
        controller.stop()  # closes every session
        controller = Controller(box, hostname="127.0.0.1", port=controller.port)
        controller.start()
        await senders.send(group_notification(2), target)
    finally:
        controller.stop()
        gc.collect()  # here, under this test's warning filter
    assert len(box.messages) == 2


async def test_email_over_starttls_with_auth(
    smtp_tls: tuple[MailBox, int], senders: Senders, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, port = smtp_tls
    monkeypatch.setenv("ARGUS_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    target = EmailTarget(
        to=("oncall@example.com",),
        from_addr="argus@example.com",
        smtp_host="127.0.0.1",
        smtp_port=port,
        starttls=True,
        username="argus",
        password=SecretRef(source="env", name="ARGUS_TEST_SMTP_PASSWORD"),
    )
    await senders.send(group_notification(1), target)
    assert box.logins == ["argus"] and len(box.messages) == 1


async def test_email_with_a_wrong_password_or_without_tls_is_rejected(
    smtp_tls: tuple[MailBox, int], senders: Senders, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, port = smtp_tls
    monkeypatch.setenv("ARGUS_TEST_SMTP_PASSWORD", "wrong-password-xyz")
    target = EmailTarget(
        to=("oncall@example.com",),
        from_addr="argus@example.com",
        smtp_host="127.0.0.1",
        smtp_port=port,
        starttls=True,
        username="argus",
        password=SecretRef(source="env", name="ARGUS_TEST_SMTP_PASSWORD"),
    )
    with pytest.raises(NotificationRejected, match="535") as info:
        await senders.send(group_notification(1), target)
    assert "wrong-password-xyz" not in str(info.value)
    plain = EmailTarget(
        to=("oncall@example.com",),
        from_addr="argus@example.com",
        smtp_host="127.0.0.1",
        smtp_port=port,
        starttls=False,
    )
    with pytest.raises(NotificationRejected, match="530"):
        await senders.send(group_notification(1), plain)
    assert box.messages == []


async def test_smtp_4xx_is_transient_and_5xx_permanent(smtp_plain: tuple[MailBox, int], senders: Senders) -> None:
    box, port = smtp_plain
    target = EmailTarget(
        to=("a@example.com",), from_addr="argus@example.com", smtp_host="127.0.0.1", smtp_port=port, starttls=False
    )
    box.reply = "451 4.3.0 try again later"
    with pytest.raises(ReceiverUnavailable, match="451"):
        await senders.send(group_notification(1), target)
    box.reply = "554 5.7.1 rejected"
    with pytest.raises(NotificationRejected, match="554"):
        await senders.send(group_notification(1), target)
    box.reply = "250 OK"
    await senders.send(group_notification(1), target)
    assert len(box.messages) == 1


# -- apprise ----------------------------------------------------------------------------


async def test_apprise_url_reaches_the_local_receiver(
    hooks: WebhookServer, senders: Senders, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGUS_TEST_APPRISE_URL", f"json://127.0.0.1:{hooks.port}/ok")
    target = AppriseTarget(url=SecretRef(source="env", name="ARGUS_TEST_APPRISE_URL"))
    n = group_notification(2)
    await senders.send(n, target)
    [req] = hooks.of("ok")
    body = req.json()
    assert body["title"] == n.title and "host=host-001" in body["message"]
    assert body["type"] == "failure"
    await senders.send(group_notification(2, status=NotificationStatus.RESOLVED), target)
    assert hooks.of("ok")[1].json()["type"] == "success"


async def test_apprise_failures_are_read_from_the_result(
    hooks: WebhookServer, senders: Senders, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = SecretRef(source="env", name="ARGUS_TEST_APPRISE_URL")
    monkeypatch.setenv("ARGUS_TEST_APPRISE_URL", f"json://127.0.0.1:{hooks.port}/fail500")
    with pytest.raises(ReceiverUnavailable, match="HTTP 500") as transient:
        await senders.send(group_notification(1), AppriseTarget(url=ref))
    monkeypatch.setenv("ARGUS_TEST_APPRISE_URL", f"json://127.0.0.1:{hooks.port}/fail400")
    with pytest.raises(NotificationRejected, match="HTTP 400"):
        await senders.send(group_notification(1), AppriseTarget(url=ref))
    monkeypatch.setenv("ARGUS_TEST_APPRISE_URL", "nosuchscheme://token-abc123@host")
    with pytest.raises(NotificationRejected, match="env:ARGUS_TEST_APPRISE_URL") as bad:
        await senders.send(group_notification(1), AppriseTarget(url=ref))
    assert "token-abc123" not in str(bad.value)
    assert "env:ARGUS_TEST_APPRISE_URL" in str(transient.value)
    assert len(hooks.of("fail500")) == 1 and len(hooks.of("fail400")) == 1


async def test_email_over_implicit_tls(tls: Tls, monkeypatch: pytest.MonkeyPatch) -> None:
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), ssl_context=tls.server)
    controller.start()
    try:
        async with Senders(tls_context=tls.client) as senders:
            target = EmailTarget(
                to=("oncall@example.com",),
                from_addr="argus@example.com",
                smtp_host="127.0.0.1",
                smtp_port=controller.port,
                starttls=False,
                implicit_tls=True,
            )
            await senders.send(group_notification(1), target)
            # An untrusted certificate is refused: the connection is not used.
            async with Senders() as untrusting:
                with pytest.raises(ReceiverUnavailable):
                    await untrusting.send(group_notification(1), target)
    finally:
        controller.stop()
    assert len(box.messages) == 1
