"""`argus alerts test` against a local webhook receiver, and `argus alerts history`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from argus.cli import main
from argus.cli_common import _settings
from argus.container import event_log_resource
from core.alerting.lifecycle import AlertState
from core.events import ALERTS_TOPIC
from tests.unit.test_active_alerts import changed
from tests.unit.test_alerts_api import notification


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(json.loads(body))
        status = 500 if self.path == "/broken" else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def apply(tmp_path: Path, tenant: str, receivers: str) -> None:
    doc = tmp_path / f"{tenant}.yaml"
    doc.write_text(f"receivers:\n{receivers}route:\n  receiver: {receivers.split()[2]}\n")
    done = cli("alerts", "apply", str(doc), "--tenant", tenant, "--data-dir", str(tmp_path / "d"))
    assert done.exit_code == 0, done.output


def test_alerts_test_sends_a_marked_notification_per_channel(tmp_path: Path, hook: str) -> None:
    apply(tmp_path, "acme", f"  - name: ops\n    webhook:\n      - url: {hook}/ok\n")
    done = cli("alerts", "test", "ops", "--tenant", "acme", "--data-dir", str(tmp_path / "d"))
    assert done.exit_code == 0, done.output
    assert "webhook" in done.output and ": ok" in done.output
    [body] = _Hook.received
    assert body.get("test") is True
    assert "ArgusTestNotification" in json.dumps(body)

    # Another tenant's receiver is not this tenant's to test.
    other = CliRunner().invoke(main, ["alerts", "test", "ops", "--tenant", "globex", "--data-dir", str(tmp_path / "d")])
    assert other.exit_code == 1 and "no receiver 'ops'" in other.output
    assert len(_Hook.received) == 1


def test_alerts_test_reports_a_failing_channel(tmp_path: Path, hook: str) -> None:
    apply(tmp_path, "acme", f"  - name: ops\n    webhook:\n      - url: {hook}/broken\n        timeout: 2s\n")
    done = CliRunner().invoke(main, ["alerts", "test", "ops", "--tenant", "acme", "--data-dir", str(tmp_path / "d")])
    assert done.exit_code == 1
    assert "HTTP 500" in done.output


def test_alerts_history_prints_the_tenants_timeline(tmp_path: Path) -> None:
    settings = _settings(data_dir=tmp_path / "d")

    async def fill() -> None:
        async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
            await events.ensure_topic(ALERTS_TOPIC, 4)
            await events.append(ALERTS_TOPIC, [(0, changed("acme", "cpu", {"host": "h1"}, AlertState.FIRING, 2))])
            await events.append(ALERTS_TOPIC, [(1, notification("acme", "f", attempt=3, failed=True, created_ms=2500))])
            await events.append(ALERTS_TOPIC, [(2, changed("globex", "cpu", {"host": "g"}, AlertState.FIRING, 1))])

    cli("keys", "create", "--tenant", "acme", "--data-dir", str(tmp_path / "d"))
    asyncio.run(fill())
    done = cli("alerts", "history", "--tenant", "acme", "--json", "--data-dir", str(tmp_path / "d"))
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in done.output.splitlines() if line.startswith("{")]
    assert [(r["kind"], r.get("attempt")) for r in rows] == [("state", None), ("failed", 3)]
    table = cli("alerts", "history", "--tenant", "acme", "--data-dir", str(tmp_path / "d"))
    assert "inactive -> firing" in table.output or "-> firing" in table.output
    assert "oncall webhook attempt 3" in table.output
