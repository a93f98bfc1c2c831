"""Alerting scenarios in one real `argus up` (one process for the module, rules applied before
it starts, short group waits): a streaming rule and a long-window (query engine) rule fire
with exactly the values `/api/v1/query` returns for their windows; one breach reaches a real
SMTP server, SNS on moto and an apprise target; a rule without data fires; a firing
`zone_down` inhibits `host_down` in its zone only; escalation fires on time when not acked
and not when acked; an alert silenced while it fired and resolved is told as resolved once
the silence ends. The receivers are the shared ones of tests/receivers.py."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from tests.e2e.conftest import ArgusServer, measured, run_argus, wait_for
from tests.receivers import SNS_REGION, MailBox, Moto, Posted, WebhookReceiver, moto_server, smtp_server

pytestmark = pytest.mark.e2e

T = TypeVar("T")
TENANT = "default"  # the tenant of `argus up`'s own key
SECRET = "e2e-scenario-secret"
TIMEOUT_S = 20.0
ESCALATE_AFTER_MS = 4_000
SILENCE_MS = 10_000
PHONE = "+15550100042"

DOCUMENT = """\
rules:
  - name: exact_stream
    query: {{metric: e2e_exact, agg: avg}}
    window: 5s
    interval: 5s
    condition: "> 50"
  - name: exact_long
    query: {{metric: e2e_exact, agg: max}}
    window: 1h
    interval: 1s
    condition: "> 50"
  - name: channels
    query: {{metric: e2e_chan, agg: last}}
    window: 30s
    interval: 1s
    condition: "> 50"
    annotations: {{summary: "chan at {{{{ value }}}}"}}
  - name: quiet_feed
    query: {{metric: e2e_never_sent, agg: count}}
    window: 1s
    interval: 1s
    condition: "> 1000"
    no_data: alert
    no_data_timeout: 2s
  - name: zone_down
    query: {{metric: e2e_zone_up, group_by: [zone], agg: last}}
    window: 30s
    interval: 1s
    condition: "<= 0"
  - name: host_down
    query: {{metric: e2e_host_up, group_by: [zone, host], agg: last}}
    window: 30s
    interval: 1s
    condition: "<= 0"
  - name: esc
    query: {{metric: e2e_esc, group_by: [svc], agg: last}}
    window: 30s
    interval: 1s
    condition: "> 50"
  - name: sil
    query: {{metric: e2e_sil, agg: last}}
    window: 30s
    interval: 1s
    condition: "> 50"

receivers:
  - name: hook
    webhook: [{{url: "{hook}/hook", secret: "file:{secret}"}}]
  - name: every-channel
    email:
      - to: [oncall@example.com]
        from: argus@example.com
        smtp_host: 127.0.0.1
        smtp_port: {smtp_port}
        starttls: false
    sms: [{{phone_numbers: ["{phone}"], region: {region}, endpoint_url: "{moto}"}}]
    apprise: [{{url: "file:{apprise}"}}]
  - name: esc-primary
    webhook: [{{url: "{hook}/esc-primary", secret: "file:{secret}"}}]
  - name: esc-secondary
    webhook: [{{url: "{hook}/esc-secondary", secret: "file:{secret}"}}]

route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ["alertname=channels"]
      receiver: every-channel
    - matchers: ["alertname=esc"]
      receiver: esc-primary
      group_by: [alertname, svc]
      escalation: esc-policy
    - matchers: ["alertname=host_down"]
      receiver: hook
      group_by: [alertname, zone, host]
      # The source and its targets fire at the same tick: a moment for the source to be seen.
      group_wait: 1s

inhibit_rules:
  - source: ["alertname=zone_down"]
    target: ["alertname=host_down"]
    equal: [zone]

escalation_policies:
  - name: esc-policy
    steps:
      - after: {escalate_after}ms
        receivers: [esc-secondary]
"""


@dataclass
class Scene:
    server: ArgusServer
    hook: WebhookReceiver
    mail: MailBox
    moto: Moto


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("alert-scenarios")
    secret, apprise = tmp / "hook.secret", tmp / "apprise.url"
    secret.write_text(SECRET + "\n")
    hook = WebhookReceiver(SECRET)
    apprise.write_text(f"json://127.0.0.1:{hook.port}/apprise\n")
    # SNS credentials of the alerting service: `argus up` inherits this environment.
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": SNS_REGION}
    saved = {k: os.environ.get(k) for k in aws}
    os.environ.update(aws)
    server = ArgusServer(tmp / "data")
    try:
        with smtp_server() as (mail, smtp_port), moto_server(tmp) as moto:
            document = tmp / "alerts.yaml"
            document.write_text(
                DOCUMENT.format(
                    hook=f"http://127.0.0.1:{hook.port}",
                    secret=secret,
                    smtp_port=smtp_port,
                    phone=PHONE,
                    region=SNS_REGION,
                    moto=moto.url,
                    apprise=apprise,
                    escalate_after=ESCALATE_AFTER_MS,
                )
            )
            applied = run_argus(
                "alerts", "apply", str(document), "--data-dir", str(server.data_dir), "--tenant", TENANT
            )
            assert applied.returncode == 0, applied.stderr
            server.start()
            yield Scene(server, hook, mail, moto)
    finally:
        server.close()
        hook.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def push(server: ArgusServer, metric: str, series: Mapping[tuple[tuple[str, str], ...], list[float]]) -> None:
    """One batch: per label set, its values at consecutive milliseconds ending now."""
    batch = metrics_pb2.SampleBatch(batch_id=f"e2e-scene-{time.monotonic_ns()}", source="e2e-scenarios")
    now = now_ms()
    for labels, values in series.items():
        s = batch.series.add(metric=metric, kind=metrics_pb2.METRIC_KIND_GAUGE)
        for name, value in labels:
            s.labels.add(name=name, value=value)
        s.timestamps_ms.extend(range(now - len(values) + 1, now + 1))
        s.values.extend(values)
    assert server.push_batch(batch).status == ingest_pb2.BATCH_STATUS_ACCEPTED


def alerts(server: ArgusServer, rule: str, state: str = "all") -> list[dict[str, Any]]:
    answer = server.http_get("/api/v1/alerts", [("state", state)])
    assert answer.status == 200, answer
    return [a for a in answer.body["alerts"] if a["rule"] == rule]


def one_alert(server: ArgusServer, rule: str, state: str) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        found = alerts(server, rule, state)
        return found[0] if found else None

    return probe


def notices(hook: WebhookReceiver, path: str, rule: str) -> list[Posted]:
    """The signed notifications on `path` whose group is `rule`'s."""
    return [p for p in hook.of(path) if p.body["group_labels"].get("alertname") == rule]


def some(probe: Callable[[], list[T]]) -> Callable[[], list[T] | None]:
    """A `wait_for` probe: `probe`'s answer once it is not empty."""
    return lambda: probe() or None


def stays_empty(what: str, probe: Callable[[], list[T]], *, for_s: float) -> None:
    """`probe` keeps answering nothing for `for_s` (something that must not happen)."""
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        assert not probe(), f"{what}: {probe()}"
        time.sleep(0.1)


def post(server: ArgusServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30.0) as response:
        assert response.status in (200, 201)
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def query_points(server: ArgusServer, *, agg: str, period: str, start: int, end: int) -> list[float]:
    body = server.query(
        [("metric", "e2e_exact"), ("agg", agg), ("period", period), ("start", str(start)), ("end", str(end))]
    )
    return [v for s in body["series"] for _, v in s["points"] if v is not None]


def test_streaming_and_long_window_values_are_what_the_query_api_returns(scene: Scene) -> None:
    server = scene.server
    push(server, "e2e_exact", {(("host", "a"),): [60.25, 70.5], (("host", "b"),): [81.75]})
    stream = wait_for("exact_stream to fire", one_alert(server, "exact_stream", "firing"), timeout_s=TIMEOUT_S)
    long = wait_for("exact_long to fire", one_alert(server, "exact_long", "firing"), timeout_s=TIMEOUT_S)

    # Streaming: window 5 s evaluated every 5 s: [t - 5 s, t) is exactly one 5s bucket.
    t = stream["evaluated_at_ms"]
    assert t % 5_000 == 0

    def stream_bucket() -> list[float] | None:
        return query_points(server, agg="avg", period="5s", start=t - 5_000, end=t) or None

    assert wait_for("the 5 s bucket to be queryable", stream_bucket, timeout_s=TIMEOUT_S) == [stream["value"]]

    # Query engine: a 1 h window every 1 s reads the 1m tier; its max is the max of the
    # query's 1 m buckets over the same (aligned) range.
    t = long["evaluated_at_ms"]
    buckets = query_points(server, agg="max", period="1m", start=t - 3_600_000, end=t)
    assert buckets and long["value"] == max(buckets) == 81.75


def test_one_breach_reaches_smtp_sns_and_apprise(scene: Scene) -> None:
    server = scene.server
    started = time.monotonic()
    push(server, "e2e_chan", {(): [91.0]})

    def everywhere() -> bool | None:
        sms = [r for r in scene.moto.sms() if PHONE in json.dumps(r)]
        apprise = scene.hook.of("/apprise")
        return bool(scene.mail.messages and sms and apprise) or None

    wait_for("email, SMS and apprise", everywhere, timeout_s=TIMEOUT_S, interval_s=0.2)
    measured("alert_three_channels_after_push_s", round(time.monotonic() - started, 2))
    [(envelope, message, _)] = scene.mail.messages
    assert envelope.rcpt_tos == ["oncall@example.com"]
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert "channels" in str(message["Subject"]) and "chan at 91" in payload.decode()
    [sms] = [r for r in scene.moto.sms() if PHONE in json.dumps(r)]
    assert "channels" in json.dumps(sms)
    [apprise] = scene.hook.of("/apprise")
    assert "channels" in json.dumps(apprise.body)


def test_a_rule_without_data_fires_after_its_timeout(scene: Scene) -> None:
    firing = wait_for("quiet_feed to fire", one_alert(scene.server, "quiet_feed", "firing"), timeout_s=TIMEOUT_S)
    assert firing["value"] is None and "no data" in firing["reason"]
    page = wait_for("its notification", some(lambda: notices(scene.hook, "/hook", "quiet_feed")), timeout_s=TIMEOUT_S)
    assert page[0].body["status"] == "firing"


def test_a_firing_zone_down_inhibits_host_down_in_its_zone_only(scene: Scene) -> None:
    server, hook = scene.server, scene.hook
    push(server, "e2e_zone_up", {(("zone", "a"),): [0.0]})
    push(server, "e2e_host_up", {(("host", "h1"), ("zone", "a")): [0.0], (("host", "h2"), ("zone", "b")): [0.0]})

    def host_b() -> list[Posted]:
        return [p for p in notices(hook, "/hook", "host_down") if p.body["group_labels"].get("zone") == "b"]

    wait_for("zone_down's page", some(lambda: notices(hook, "/hook", "zone_down")), timeout_s=TIMEOUT_S)
    wait_for("host_down in zone b", some(host_b), timeout_s=TIMEOUT_S)
    # host_down in zone a fires (it is visible, once the active view has refreshed) but is never sent.

    def both_firing() -> bool | None:
        return {a["labels"]["zone"] for a in alerts(server, "host_down", "firing")} == {"a", "b"} or None

    wait_for("both host_down alerts to show as firing", both_firing, timeout_s=TIMEOUT_S)

    def host_a() -> list[Posted]:
        return [p for p in notices(hook, "/hook", "host_down") if p.body["group_labels"].get("zone") == "a"]

    stays_empty("an inhibited alert was sent", host_a, for_s=1.5)


def test_escalation_fires_on_time_unless_acked(scene: Scene) -> None:
    server, hook = scene.server, scene.hook
    push(server, "e2e_esc", {(("svc", "a"),): [90.0], (("svc", "b"),): [90.0]})

    def both() -> list[dict[str, Any]] | None:
        found = alerts(server, "esc", "firing")
        return found if len(found) == 2 else None

    firing = {a["labels"]["svc"]: a for a in wait_for("both esc alerts", both, timeout_s=TIMEOUT_S)}
    acked = post(server, f"/api/v1/alerts/{firing['b']['instance_id']}/ack", {"comment": "on it"})
    assert acked["acknowledged"] is True

    def escalated(svc: str) -> list[Posted]:
        return [p for p in notices(hook, "/esc-secondary", "esc") if p.body["group_labels"].get("svc") == svc]

    [step] = wait_for("svc a's escalation", some(lambda: escalated("a")), timeout_s=TIMEOUT_S)
    late_ms = now_ms() - firing["a"]["since_ms"]
    measured("alert_escalation_after_firing_ms", late_ms)
    # Not before its delay; after it within the notifier's tick and a loaded machine's lag.
    assert ESCALATE_AFTER_MS <= late_ms <= ESCALATE_AFTER_MS + 5_000, late_ms
    assert [a["labels"]["svc"] for a in step.body["alerts"]] == ["a"]
    # Both went to the primary receiver; only the unacknowledged one escalates.
    assert {p.body["group_labels"]["svc"] for p in notices(hook, "/esc-primary", "esc")} == {"a", "b"}
    stays_empty("an acked alert escalated", lambda: escalated("b"), for_s=1.5)


def test_an_alert_silenced_while_it_fired_is_told_resolved_after_the_silence(scene: Scene) -> None:
    server, hook = scene.server, scene.hook
    silence = post(
        server, "/api/v1/silences", {"matchers": ["alertname=sil"], "for": f"{SILENCE_MS}ms", "comment": "e2e"}
    )
    ends_ms = silence["silence"]["ends_ms"]
    push(server, "e2e_sil", {(): [95.0]})
    wait_for("sil to fire", one_alert(server, "sil", "firing"), timeout_s=TIMEOUT_S)
    push(server, "e2e_sil", {(): [5.0]})
    wait_for("sil to resolve", one_alert(server, "sil", "resolved"), timeout_s=TIMEOUT_S)
    assert now_ms() < ends_ms, "the silence ended too early for this test to mean anything"
    assert notices(hook, "/hook", "sil") == [], "nothing is sent while silenced"

    [told] = wait_for("the resolved notification", some(lambda: notices(hook, "/hook", "sil")), timeout_s=TIMEOUT_S)
    assert now_ms() >= ends_ms
    assert told.body["status"] == "resolved" and [a["status"] for a in told.body["alerts"]] == ["resolved"]
