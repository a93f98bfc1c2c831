"""Alerting running end to end in a real `argus up`: a rule applied with `argus alerts apply`
fires on samples pushed with `argus push` and resolves when they recover; the state is seen
on `GET /api/v1/alerts`, `GET /api/v1/alerts/rules` and `argus alerts list`; with a route to
a webhook, the breach is one signed notification and the recovery one resolved notification."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from tests.e2e.conftest import ArgusServer, measured, run_argus, wait_for
from tests.receivers import WebhookReceiver

pytestmark = pytest.mark.e2e

TENANT = "default"  # the tenant of `argus up`'s own key
# `last` over 60 s: one cool sample resolves it at the next tick, and once firing it stays so
# (no new sample) long enough for every check below, even when a loaded machine takes 10 s
# and more to start the `argus alerts list` CLI (a 10 s window resolved for lack of data first).
RULE = """\
rules:
  - name: hot_room
    query: {metric: e2e_room_temp, group_by: [room], agg: last}
    window: 60s
    condition: "> 50"
    interval: 1s
    severity: page
"""
ALERT_TIMEOUT_S = 20.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sample_line(value: float) -> str:
    return json.dumps({"metric": "e2e_room_temp", "labels": {"room": "lab"}, "ts": now_ms(), "value": value})


def push_now(server: ArgusServer, value: float) -> None:
    batch = metrics_pb2.SampleBatch(batch_id=f"e2e-alert-{time.monotonic_ns()}", source="e2e-alerts")
    s = batch.series.add(metric="e2e_room_temp", kind=metrics_pb2.METRIC_KIND_GAUGE)
    s.labels.add(name="room", value="lab")
    s.timestamps_ms.append(now_ms())
    s.values.append(value)
    assert server.push_batch(batch).status == ingest_pb2.BATCH_STATUS_ACCEPTED


def lab_alert(server: ArgusServer, state: str) -> Callable[[], dict[str, Any] | None]:
    """A probe: keeps the window fed with the latest value, answers the lab's alert once it
    is in `state`."""

    def probe() -> dict[str, Any] | None:
        answer = server.http_get("/api/v1/alerts", [("state", "all")])
        assert answer.status == 200, answer
        for alert in answer.body["alerts"]:
            if alert["rule"] == "hot_room" and alert["labels"] == {"room": "lab"} and alert["state"] == state:
                return dict(alert)
        push_now(server, 90.0 if state == "firing" else 20.0)
        return None

    return probe


def mine(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts of this test's rules: not the default Watchdog that fires beside them
    (docs/decisions/0031-watchdog-rule.md)."""
    return [a for a in alerts if a["rule"] != "Watchdog"]


def hot_room(receiver: WebhookReceiver) -> list[tuple[str, dict[str, Any]]]:
    """The notifications of hot_room's group (the Watchdog's go to the same receiver)."""
    return [(k, b) for k, b in receiver.received if b["group_labels"].get("alertname") == "hot_room"]


def test_a_rule_fires_and_resolves_in_argus_up(server_factory: Callable[[], ArgusServer], tmp_path: Path) -> None:
    # Applied before start: a rule added while the evaluator runs waits one window first.
    server = server_factory()
    data = str(server.data_dir)
    document = tmp_path / "alerts.yaml"
    document.write_text(RULE)
    applied = run_argus("alerts", "apply", str(document), "--data-dir", data, "--tenant", TENANT)
    assert applied.returncode == 0, applied.stderr
    server.start()

    hot = tmp_path / "hot.ndjson"
    hot.write_text(sample_line(90.0) + "\n")
    pushed = server.push_file(hot)
    assert pushed.returncode == 0, pushed.stderr
    started = time.monotonic()
    firing = wait_for("the lab alert to fire", lab_alert(server, "firing"), timeout_s=ALERT_TIMEOUT_S, interval_s=0.3)
    assert firing["value"] > 50 and firing["severity"] == "page"
    measured("alert_fire_after_push_s", round(time.monotonic() - started, 2))

    # Visible as active (the default filter), on the rule, and to `argus alerts list`.
    active = mine(server.http_get("/api/v1/alerts").body["alerts"])
    assert [(a["rule"], a["state"]) for a in active] == [("hot_room", "firing")]
    rules = server.http_get("/api/v1/alerts/rules").body["rules"]
    assert [(r["name"], r["firing"]) for r in rules] == [("hot_room", 1)]
    listed = run_argus("alerts", "list", "--data-dir", data, "--tenant", TENANT, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(row["rule"], row["state"]) for row in mine(map(json.loads, listed.stdout.splitlines()))] == [
        ("hot_room", "firing")
    ]
    other = run_argus("alerts", "list", "--data-dir", data, "--tenant", "someone-else", "--json")
    assert other.returncode == 0 and other.stdout == "", other.stdout

    cool = tmp_path / "cool.ndjson"
    cool.write_text(sample_line(20.0) + "\n")
    pushed = server.push_file(cool)
    assert pushed.returncode == 0, pushed.stderr
    resolved = wait_for(
        "the lab alert to resolve", lab_alert(server, "resolved"), timeout_s=ALERT_TIMEOUT_S, interval_s=0.3
    )
    assert resolved["sequence"] > firing["sequence"]
    assert mine(server.http_get("/api/v1/alerts").body["alerts"]) == []
    table = run_argus("alerts", "list", "--data-dir", data, "--tenant", TENANT, "--state", "resolved")
    assert table.returncode == 0 and "hot_room" in table.stdout and "resolved" in table.stdout, table.stdout


def test_a_breach_pages_a_signed_webhook_once_and_its_recovery_sends_resolved(
    server_factory: Callable[[], ArgusServer], tmp_path: Path
) -> None:
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text("e2e-hook-secret\n")
    receiver = WebhookReceiver("e2e-hook-secret")
    try:
        document = tmp_path / "alerts.yaml"
        document.write_text(
            RULE
            + f"""\
receivers:
  - name: hook
    webhook:
      - url: {receiver.url}
        secret: file:{secret_file}
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
"""
        )
        server = server_factory()
        applied = run_argus("alerts", "apply", str(document), "--data-dir", str(server.data_dir), "--tenant", TENANT)
        assert applied.returncode == 0, applied.stderr
        server.start()

        push_now(server, 90.0)
        started = time.monotonic()

        def firing() -> dict[str, Any] | None:
            got = [body for _, body in hot_room(receiver) if body["status"] == "firing"]
            if not got:
                push_now(server, 90.0)  # keeps the window fed until it fires
            return got[0] if got else None

        page = wait_for("a firing notification", firing, timeout_s=ALERT_TIMEOUT_S, interval_s=0.3)
        measured("alert_webhook_after_push_s", round(time.monotonic() - started, 2))
        assert page["receiver"] == "hook" and page["tenant"] == TENANT
        assert [a["labels"].get("room") for a in page["alerts"]] == ["lab"]

        def resolved() -> dict[str, Any] | None:
            got = [body for _, body in hot_room(receiver) if body["status"] == "resolved"]
            if not got:
                push_now(server, 20.0)
            return got[0] if got else None

        done = wait_for("a resolved notification", resolved, timeout_s=ALERT_TIMEOUT_S, interval_s=0.3)
        assert [a["status"] for a in done["alerts"]] == ["resolved"]
        keys = [key for key, _ in receiver.received]
        assert len(keys) == len(set(keys)), f"one notification per group change, none twice: {keys}"
        assert receiver.bad_signatures == 0 and receiver.unsigned == []
        firing_pages = [body for _, body in hot_room(receiver) if body["status"] == "firing"]
        assert len(firing_pages) == 1, "the unchanged firing group is not repeated within repeat_interval"
    finally:
        receiver.close()


def test_a_firing_alert_acked_over_http_shows_its_ack(
    server_factory: Callable[[], ArgusServer], tmp_path: Path
) -> None:
    server = server_factory()
    document = tmp_path / "alerts.yaml"
    document.write_text(RULE)
    applied = run_argus("alerts", "apply", str(document), "--data-dir", str(server.data_dir), "--tenant", TENANT)
    assert applied.returncode == 0, applied.stderr
    server.start()
    push_now(server, 90.0)
    firing = wait_for("the lab alert to fire", lab_alert(server, "firing"), timeout_s=ALERT_TIMEOUT_S, interval_s=0.3)
    assert firing["acknowledged"] is None

    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}/api/v1/alerts/{firing['instance_id']}/ack",
        data=json.dumps({"comment": "looking"}).encode(),
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30.0) as response:
        assert response.status == 200
        assert json.loads(response.read())["acknowledged"] is True

    (shown,) = mine(server.http_get("/api/v1/alerts").body["alerts"])
    assert shown["instance_id"] == firing["instance_id"]
    assert shown["acknowledged"]["comment"] == "looking" and shown["acknowledged"]["by"].startswith("key:")
