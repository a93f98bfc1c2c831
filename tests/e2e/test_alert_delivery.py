"""SMS and mobile push through Amazon SNS, against a real local `moto_server` process (started
here on a free 127.0.0.1 port, stopped by its PID): what was "sent" is read back from moto's
`/moto-api/data.json`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import aioboto3
import pytest

from core.alerting.model import PushTarget, Receiver, SmsTarget
from harness.processes import free_port
from query_side.alerts.delivery import Deliverer, Outcome, RetryPolicy
from query_side.alerts.notification import MAX_SMS_BYTES, AlertMember, Notification, make_notification
from query_side.alerts.senders import Senders
from tests.receivers import SNS_REGION as REGION
from tests.receivers import Moto, moto_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
async def senders() -> AsyncIterator[Senders]:
    session = aioboto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    async with Senders(aws_session=session) as s:
        yield s


def notification(n: int, *, id: str) -> Notification:
    return make_notification(
        id=id,
        tenant="acme",
        receiver="phones",
        group_labels={"alertname": "DiskFull"},
        alerts=[
            AlertMember(
                labels={"alertname": "DiskFull", "host": f"db-{i:03d}-{'x' * 20}"},
                annotations={"summary": "disk above 95%"},
                value=95.0 + i / 10,
                starts_ms=1_765_000_000_000,
                fingerprint=f"fp{i}",
            )
            for i in range(n)
        ],
        created_ms=1_765_000_000_000,
    )


async def test_sms_reaches_every_number_and_a_bad_number_fails_alone(moto: Moto, senders: Senders) -> None:
    receiver = Receiver(
        name="phones",
        # moto: numbers ending in 99 have opted out.
        sms=(
            SmsTarget(
                phone_numbers=("+15550100001", "555-CALL-ME", "+15550100099", "+15550100002"), endpoint_url=moto.url
            ),
        ),
    )
    big = notification(300, id="sms-300")
    report = await Deliverer(senders, policy=RetryPolicy(max_attempts=3)).deliver(big, receiver)
    finals = {a.target: a for a in report.finals}
    assert finals["+15550100001"].outcome is Outcome.OK
    assert finals["+15550100002"].outcome is Outcome.OK
    assert finals["555-CALL-ME"].outcome is Outcome.PERMANENT and "InvalidParameter" in finals["555-CALL-ME"].error
    assert finals["+15550100099"].outcome is Outcome.PERMANENT and "OptedOut" in finals["+15550100099"].error
    assert len([a for a in report.attempts if a.target == "555-CALL-ME"]) == 1, "a permanent failure is not retried"
    sent = [r for r in moto.sms() if big.title in json.dumps(r)]
    numbers = sorted(n for r in sent for n in (r.get("phone_number"), r.get("PhoneNumber")) if n)
    assert numbers == ["+15550100001", "+15550100002"], sent
    for record in sent:
        message = str(record.get("message") or record.get("Message"))
        assert len(message.encode()) <= MAX_SMS_BYTES
        assert message.startswith("[FIRING:300] DiskFull") and "more" in message


async def test_push_reaches_the_endpoint_and_a_disabled_endpoint_is_permanent(moto: Moto, senders: Senders) -> None:
    session = aioboto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    async with session.client("sns", endpoint_url=moto.url) as sns:
        app = await sns.create_platform_application(
            Name="argus-test", Platform="GCM", Attributes={"PlatformCredential": "server-key"}
        )
        live = (await sns.create_platform_endpoint(PlatformApplicationArn=app["PlatformApplicationArn"], Token="t1"))[
            "EndpointArn"
        ]
        dead = (await sns.create_platform_endpoint(PlatformApplicationArn=app["PlatformApplicationArn"], Token="t2"))[
            "EndpointArn"
        ]
        await sns.set_endpoint_attributes(EndpointArn=dead, Attributes={"Enabled": "false"})
    n = notification(2, id="push-2")
    receiver = Receiver(name="phones", push=(PushTarget(target_arns=(live, dead), endpoint_url=moto.url),))
    report = await Deliverer(senders).deliver(n, receiver)
    finals = {a.target: a for a in report.finals}
    assert finals[live].outcome is Outcome.OK
    assert finals[dead].outcome is Outcome.PERMANENT and "EndpointDisabled" in finals[dead].error
    [message] = moto.endpoint_messages(live)
    payload = json.loads(message)
    gcm = json.loads(payload["GCM"])
    assert gcm["notification"]["title"] == n.title and gcm["data"]["notification_id"] == "push-2"
    assert json.loads(payload["APNS"])["aps"]["alert"]["title"] == n.title
    assert moto.endpoint_messages(dead) == []


async def test_an_unreachable_sns_endpoint_is_transient(senders: Senders) -> None:
    receiver = Receiver(
        name="phones", sms=(SmsTarget(phone_numbers=("+15550100003",), endpoint_url=f"http://127.0.0.1:{free_port()}"),)
    )
    policy = RetryPolicy(max_attempts=2, base_delay_ms=10)
    report = await Deliverer(senders, policy=policy).deliver(notification(1, id="sms-down"), receiver)
    assert [a.outcome for a in report.attempts] == [Outcome.TRANSIENT, Outcome.TRANSIENT]
    assert report.attempts[-1].final
