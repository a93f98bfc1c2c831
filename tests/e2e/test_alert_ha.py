"""Alerting high availability on the distributed stack (tansu, DynamoDB Local): two
`argus alerts serve` replicas split the rules and notification groups through the consumer
group `alert-owners` (decision 0030). A breach fires; the replica delivering its notification
is killed with SIGKILL while the webhook holds its response; the other replica takes over
within 10 s, re-sends that notification (same id: it was never recorded) and delivers the
resolved one. Every transition reaches the receiver, no notification id is delivered by a
live replica twice, and the default Watchdog rule fires and is routed like any rule."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from argus.launch import argus_env
from contracts.argus.metrics.v1 import metrics_pb2
from tests.e2e.conftest import measured, wait_for
from tests.e2e.test_distributed import Stack, _client, _push
from tests.services.base import free_port
from tests.services.dynamodb import DynamoDBLocal
from tests.services.kafka import TansuBroker

pytestmark = pytest.mark.e2e

SECRET = "ha-hook-secret"
RULE = "ha_hot_room"
TAKEOVER_BUDGET_S = 10.0
STEP_TIMEOUT_S = 30.0


@dataclass
class Hook:
    """A signed webhook that keeps every delivery (notification id, body) as it arrives and
    holds its answer to the first firing notification of RULE until `release` is set."""

    url: str = ""
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    bad_signatures: int = 0
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, path: str, alertname: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [
                (nid, body)
                for nid, body in self.received
                if body["_path"] == path and body["group_labels"].get("alertname") == alertname
            ]


def serve_hook(hook: Hook) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stamp = self.headers.get("X-Argus-Timestamp", "")
            expected = "sha256=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.headers.get("X-Argus-Signature", "")):
                hook.bad_signatures += 1
                self.send_response(401)
                self.end_headers()
                return
            payload = json.loads(body)
            payload["_path"] = self.path
            with hook.lock:
                hook.received.append((self.headers.get("Idempotency-Key", ""), payload))
                hold = (
                    self.path == "/ops"
                    and payload["status"] == "firing"
                    and payload["group_labels"].get("alertname") == RULE
                    and not hook.held.is_set()
                )
                if hold:
                    hook.held.set()
            if hold:
                hook.release.wait(STEP_TIMEOUT_S)  # the sender is killed meanwhile
            try:
                self.send_response(200)
                self.end_headers()
            except OSError:
                pass  # its sender is gone

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def config_document(hook_url: str, secret_file: Path) -> str:
    return f"""\
rules:
  - name: {RULE}
    query: {{metric: ha_room_temp, group_by: [room], agg: last}}
    window: 5s
    condition: "> 50"
    interval: 1s
receivers:
  - name: ops
    webhook:
      - url: {hook_url}/ops
        secret: file:{secret_file}
  - name: deadman
    webhook:
      - url: {hook_url}/deadman
        secret: file:{secret_file}
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: deadman
      matchers: ["alertname=Watchdog"]
"""


def batch(value: float) -> metrics_pb2.SampleBatch:
    out = metrics_pb2.SampleBatch(batch_id=f"ha-{time.monotonic_ns()}", source="e2e-ha")
    s = out.series.add(metric="ha_room_temp", kind=metrics_pb2.METRIC_KIND_GAUGE)
    s.labels.add(name="room", value="lab")
    s.timestamps_ms.append(time.time_ns() // 1_000_000)
    s.values.append(value)
    return out


@pytest.fixture
def hook() -> Iterator[Hook]:
    hook = Hook()
    server = serve_hook(hook)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hook
    finally:
        hook.release.set()
        server.shutdown()
        server.server_close()


def test_a_replica_killed_mid_delivery_is_taken_over_and_every_transition_is_delivered_once(
    tmp_path: Path, kafka_broker: TansuBroker, dynamodb_local: DynamoDBLocal, hook: Hook
) -> None:
    began = time.monotonic()
    run_id = secrets.token_hex(4)
    tenant = f"ha-{run_id}"
    env = argus_env()
    env.update(
        {
            "ARGUS_EVENT_LOG_URL": kafka_broker.url(client_id=f"ha-{run_id}"),
            "ARGUS_HOT_STORE_URL": dynamodb_local.url(prefix=f"ha{run_id}_"),
            "ARGUS_FLUSH_INTERVAL_MS": "200",
        }
    )
    stack = Stack(work=tmp_path, env=env)
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET + "\n")
    document = tmp_path / "alerts.yaml"
    document.write_text(config_document(hook.url, secret_file))
    try:
        replicas = {name: f"{name}-{run_id}" for name in ("alerts-a", "alerts-b")}
        # Side by side (each start waits until its process is ready): the machine is shared.
        with ThreadPoolExecutor(5) as pool:
            key = pool.submit(stack.run, "keys", "create", "--tenant", tenant, "--name", "ha")
            applied = pool.submit(stack.run, "alerts", "apply", str(document), "--tenant", tenant)
            ingest = pool.submit(stack.start_ingest, "ingest")
            started = [pool.submit(stack.start, n, "alerts", "serve", "--replica", r) for n, r in replicas.items()]
            applied.result()
            stack.api_key = key.result().strip().splitlines()[-1]
            ingest_port = ingest.result()
            for future in started:
                future.result()
        client = _client(stack, ingest_port=ingest_port, query_port=0, http_port=0)

        # Both replicas hold some shards: the work is split.
        owns = re.compile(r"alert shards owned: \[(\d[\d, ]*)\] of 4")

        def split() -> dict[str, set[int]] | None:
            shares: dict[str, set[int]] = {}
            for name in replicas:
                found = owns.findall(stack.processes[name].log_path.read_text(errors="replace"))
                if not found:
                    return None
                shares[name] = {int(p) for p in found[-1].split(",")}
            together = set().union(*shares.values())
            return shares if together == {0, 1, 2, 3} and sum(map(len, shares.values())) == 4 else None

        measured("alert_ha_stack_started_s", round(time.monotonic() - began, 2))
        shares = wait_for("both replicas to own shards", split, timeout_s=STEP_TIMEOUT_S, interval_s=0.2)
        assert all(shares.values()), shares

        def pushing(value: float) -> None:
            _push(client, [batch(value)])

        # Breach: the first firing notification arrives and is held; find its sender.
        def held() -> bool | None:
            if hook.held.is_set():
                return True
            pushing(90.0)
            return None

        wait_for("the firing notification", held, timeout_s=STEP_TIMEOUT_S, interval_s=0.3)
        [(first_id, first)] = hook.of("/ops", RULE)
        assert first["status"] == "firing" and [a["labels"]["room"] for a in first["alerts"]] == ["lab"]

        def sender() -> str | None:
            for name in replicas:
                if f"sending notification {first_id}" in stack.processes[name].log_path.read_text(errors="replace"):
                    return name
            return None

        measured("alert_ha_first_page_s", round(time.monotonic() - began, 2))
        victim = wait_for("the sender's log line", sender, timeout_s=5.0)
        survivor = next(n for n in replicas if n != victim)
        stack.processes[victim].kill()  # SIGKILL while the webhook holds the response
        killed = time.monotonic()
        hook.release.set()

        # The survivor takes the shards and re-sends what was never recorded, with the same id.
        def resent() -> bool | None:
            if len([n for n, _ in hook.of("/ops", RULE) if n == first_id]) >= 2:
                return True
            pushing(90.0)  # the window stays fed: the alert keeps firing
            return None

        wait_for(
            "the survivor to re-send the unrecorded notification", resent, timeout_s=STEP_TIMEOUT_S, interval_s=0.2
        )
        takeover_s = time.monotonic() - killed
        measured("alert_ha_takeover_s", round(takeover_s, 2))
        assert takeover_s < TAKEOVER_BUDGET_S
        survivor_log = stack.processes[survivor].log_path.read_text(errors="replace")
        assert f"sending notification {first_id}" in survivor_log

        # Recovery: the survivor (evaluator and notifier) sends the resolved notification.
        def resolved() -> bool | None:
            if any(body["status"] == "resolved" for _, body in hook.of("/ops", RULE)):
                return True
            pushing(20.0)
            return None

        wait_for("the resolved notification", resolved, timeout_s=STEP_TIMEOUT_S, interval_s=0.3)

        deliveries = hook.of("/ops", RULE)
        by_id: dict[str, list[str]] = {}
        for nid, body in deliveries:
            by_id.setdefault(nid, []).append(body["status"])
        # Every transition, one notification each: firing (sent by the victim, unrecorded, so
        # re-sent once by the survivor), resolved (once).
        assert [statuses[0] for statuses in by_id.values()] == ["firing", "resolved"], by_id
        assert [len(statuses) for statuses in by_id.values()] == [2, 1], by_id
        assert hook.bad_signatures == 0

        # The Watchdog fires by default for the tenant, routed to its own receiver.
        listed = stack.run("alerts", "list", "--tenant", tenant, "--state", "all", "--json")
        rows = [json.loads(line) for line in listed.splitlines() if line.startswith("{")]
        states = {(row["rule"], row["state"]) for row in rows}
        assert states == {(RULE, "resolved"), ("Watchdog", "firing")}, states
        # Beside a DynamoDB hot store the read models are its table, not a file (decision 0059).
        assert not list(tmp_path.rglob("alerts.db"))
        watchdog = hook.of("/deadman", "Watchdog")
        assert watchdog and watchdog[0][1]["status"] == "firing"
        assert len({nid for nid, _ in watchdog}) == 1, "the watchdog's group is notified once (repeat: 1h)"
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.close()
