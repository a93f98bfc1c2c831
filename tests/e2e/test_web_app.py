"""The dashboards app in real headless Chromium against a real `argus up`.

This module starts the server and feeds it; the browser steps are frontends/web/e2e/browser.mjs
(playwright-core driving Debian's `chromium`, which `make system-deps` installs). Screenshots
of every step and the steps' timings land in tmp/artifacts/web/ (ARGUS_WEB_ARTIFACTS).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from argus.launch import REPO_ROOT
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from tests.e2e.conftest import ArgusServer, measured, run_argus, wait_for

pytestmark = pytest.mark.e2e

WEB = REPO_ROOT / "frontends" / "web"
BROWSER_TIMEOUT_S = 150.0


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian chromium is missing: `make system-deps` installs it (apt-get)"
    return found


def _push(server: ArgusServer, lines: list[dict[str, object]], work: Path, name: str) -> None:
    path = work / f"{name}.ndjson"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = server.push_file(path, "--batch-id", f"{name}-{time.time_ns()}")
    assert done.returncode == 0, done.stdout + done.stderr


def _series(
    metric: str, labels: dict[str, str], value: float, now_ms: int, minutes: int = 10
) -> list[dict[str, object]]:
    return [
        {"metric": metric, "kind": "gauge", "labels": labels, "ts": now_ms - s * 1000, "value": value}
        for s in range(minutes * 60, 0, -10)
    ]


def _push_live(server: ArgusServer, sample: dict[str, Any]) -> bool:
    """One gauge sample, pushed over gRPC; True once ingest accepted it."""
    batch = metrics_pb2.SampleBatch(batch_id=f"web-live-{time.monotonic_ns()}", source="e2e-web")
    s = batch.series.add(metric=sample["metric"], kind=metrics_pb2.METRIC_KIND_GAUGE)
    s.labels.add(name="host", value=sample["host"])
    s.timestamps_ms.append(int(sample["ts"]))
    s.values.append(float(sample["value"]))
    return bool(server.push_batch(batch).status == ingest_pb2.BATCH_STATUS_ACCEPTED)


def _drive_browser(server: ArgusServer, env: dict[str, str]) -> list[str]:
    """Run browser.mjs; answer its push requests (pushed over gRPC, answered once acked).
    Its output lines; the process is killed if it outlives BROWSER_TIMEOUT_S."""
    out: list[str] = []
    with subprocess.Popen(
        ["node", "e2e/browser.mjs"],
        cwd=WEB,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        watchdog = threading.Timer(BROWSER_TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None and proc.stdin is not None
            for line in proc.stdout:
                out.append(line.rstrip("\n"))
                if line.startswith('{"push"'):
                    proc.stdin.write(json.dumps({"acked": _push_live(server, json.loads(line)["push"])}) + "\n")
                    proc.stdin.flush()
            proc.wait(timeout=30)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, "browser.mjs failed:\n" + "\n".join(out)
    return out


def _dashboard_file(path: Path) -> Path:
    """A dashboard the browser imports: a variable, a live stat and a query the server refuses."""
    doc = {
        "uid": "e2e-vars",
        "title": "E2E variables",
        "folder": "e2e",
        "tags": ["e2e"],
        "schemaVersion": 1,
        "time": {"from": "now-15m", "to": "now"},
        "variables": [
            {"name": "host", "label": "host", "labelName": "host", "metric": "e2e_requests", "includeAll": True}
        ],
        "panels": [
            {
                "id": 1,
                "type": "stat",
                "title": "Requests of $host",
                "gridPos": {"x": 0, "y": 0, "w": 8, "h": 4},
                "targets": [{"refId": "A", "metric": "e2e_requests", "where": ["host=$host"], "agg": "avg"}],
            },
            {
                "id": 2,
                "type": "stat",
                "title": "Live value",
                "gridPos": {"x": 8, "y": 0, "w": 8, "h": 4},
                "targets": [{"refId": "A", "metric": "e2e_live", "agg": "last", "period": "5s"}],
            },
            {
                "id": 3,
                "type": "timeseries",
                "title": "Bad query",
                "gridPos": {"x": 16, "y": 0, "w": 8, "h": 4},
                "targets": [{"refId": "A", "metric": "e2e_requests", "agg": "distinct"}],
            },
            {
                "id": 4,
                "type": "timeseries",
                "title": "By host",
                "gridPos": {"x": 0, "y": 4, "w": 24, "h": 8},
                "thresholds": [{"value": 500, "color": "red"}],
                "targets": [{"refId": "A", "metric": "e2e_requests", "where": ["host=~$host"], "group_by": ["host"]}],
            },
        ],
    }
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_dashboards_app_in_headless_chromium(server_factory: Callable[[], ArgusServer], tmp_path: Path) -> None:
    assert (WEB / "dist" / "index.html").is_file(), "the app is not built: `make web` builds it"
    assert (WEB / "node_modules" / "playwright-core").is_dir(), "`make web` installs frontends/web/node_modules"
    chromium = _chromium()
    server = server_factory()
    server.start()
    now = int(time.time() * 1000)
    lines: list[dict[str, object]] = []
    for mode, value in (("user", 12.0), ("system", 5.0), ("idle", 83.0)):
        lines += _series("host_cpu_percent", {"host": "e2e-host", "mode": mode}, value, now)
    lines += _series("e2e_requests", {"host": "web-a"}, 10.0, now)
    lines += _series("e2e_requests", {"host": "web-b"}, 1000.0, now)
    lines += _series("e2e_live", {"host": "web-a"}, 1.0, now, minutes=2)
    _push(server, lines, tmp_path, "seed")
    base = f"http://127.0.0.1:{server.http_port}"
    wait_for(
        "the seeded samples to be queryable",
        lambda: (
            len(
                server.http_get(
                    "/api/v1/query", [("metric", "e2e_requests"), ("start", "now-15m"), ("group_by", "host")]
                ).body.get("series", [])
            )
            == 2
        ),
        timeout_s=60,
    )
    created = run_argus("keys", "create", "--data-dir", str(server.data_dir), "--tenant", "e2e-other")
    assert created.returncode == 0, created.stderr
    other_key = created.stdout.strip().splitlines()[-1].strip()
    wait_for(
        "the other tenant's key to be accepted",
        lambda: server.http_get("/api/v1/metrics", key=other_key).status == 200,
        timeout_s=30,
    )
    artifacts = Path(os.environ.get("ARGUS_WEB_ARTIFACTS", REPO_ROOT / "tmp" / "artifacts" / "web"))
    shutil.rmtree(artifacts, ignore_errors=True)
    env = {
        **os.environ,
        "ARGUS_URL": base,
        "ARGUS_KEY": server.api_key,
        "ARGUS_OTHER_KEY": other_key,
        "ARTIFACTS": str(artifacts),
        "CHROMIUM": chromium,
        "E2E_DASHBOARD_FILE": str(_dashboard_file(tmp_path / "e2e-vars.json")),
    }
    started = time.monotonic()
    out = _drive_browser(server, env)
    measured("browser steps s", round(time.monotonic() - started, 1))
    steps = [json.loads(line) for line in out if line.startswith('{"step"')]
    for s in steps:
        print(s)
    failed = [s for s in steps if s.get("ok") is False]
    assert not failed and len(steps) == 16, "browser steps failed:\n" + "\n".join(out)
    live = next(s for s in steps if s.get("step", "").startswith("live panel"))
    measured("live ack-to-pixel ms", live["ackToPixelMs"])
    assert live["ackToPixelMs"] <= 2000
    assert len(list(artifacts.glob("*.png"))) >= 10
