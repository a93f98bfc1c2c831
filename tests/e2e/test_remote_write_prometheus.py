"""A real Prometheus (Debian package, installed by the bench harness when missing) scrapes a
target and remote-writes to Argus; Argus is killed and restarted in the middle (Prometheus
keeps retrying), the target's counter resets meanwhile, and Argus's counter total is exact:
the increase after the first scrape, resets counted from zero, retries counted once."""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from argus.launch import up_argv
from bench.peers.base import PeerProcess, PeerUnavailable, ensure_package
from harness.processes import free_port
from tests.e2e import conftest as e2e_conftest
from tests.e2e.conftest import ArgusServer, measured, wait_for

WAIT_S = 40.0


class Target:
    """A /metrics endpoint whose counter the test sets."""

    def __init__(self) -> None:
        self.counter = 100.0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = (
                    "# TYPE e2e_events_total counter\n"
                    f'e2e_events_total{{path="/a"}} {target.counter}\n'
                    "# TYPE e2e_temperature gauge\n"
                    "e2e_temperature 21.5\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _prometheus_json(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[int, int, str], int]]:
    try:
        ensure_package("prometheus", ("prometheus",))
    except PeerUnavailable as exc:
        pytest.fail(f"the real Prometheus is needed: {exc}")
    started: list[PeerProcess] = []

    def start(target_port: int, ingest_http_port: int, api_key: str) -> int:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
remote_write:
  - url: http://127.0.0.1:{ingest_http_port}/api/v1/write
    authorization:
      type: Bearer
      credentials: {api_key}
    queue_config:
      batch_send_deadline: 200ms
      min_backoff: 100ms
      max_backoff: 500ms
    metadata_config:
      send_interval: 1s
"""
        )
        process = PeerProcess(
            "prometheus",
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            tmp_path / "prometheus.log",
        )
        started.append(process)

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                return bool(response.status == 200)

        process.start(ready)
        return port

    yield start
    for process in started:
        process.stop()


def test_prometheus_remote_write_through_an_argus_restart_is_exact(
    server_factory: Callable[[], ArgusServer],
    prometheus: Callable[[int, int, str], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One process and no alert evaluator: the test restarts Argus, so its start time counts.
    monkeypatch.setattr(e2e_conftest, "up_argv", functools.partial(up_argv, extra=("--single-process", "--no-alerts")))
    target = Target()
    began = time.perf_counter()
    try:
        argus = server_factory().start()
        prom = prometheus(target.port, argus.ingest_http_port, argus.api_key)

        def argus_total(metric: str, agg: str = "sum") -> float:
            params = [("metric", metric), ("agg", agg), ("period", "1m"), ("start", "now-2h"), ("end", "now+1h")]
            return argus.total(params)

        def prometheus_has(value: float) -> bool:
            body = _prometheus_json(prom, "/api/v1/query", query="e2e_events_total")
            return any(float(r["value"][1]) == value for r in body["data"]["result"])

        # The gauge shows the pipeline flows: the counter's first scrape (100) is its baseline.
        measured("argus start s", time.perf_counter() - began)
        wait_for("the first scrape in argus", lambda: argus_total("e2e_temperature", "count") > 0, timeout_s=WAIT_S)
        target.counter = 150.0
        wait_for("+50 in argus", lambda: argus_total("e2e_events_total") == 50.0, timeout_s=WAIT_S)

        argus.kill9()  # Prometheus keeps the samples in its WAL and retries
        target.counter = 180.0
        wait_for("180 scraped while argus is down", lambda: prometheus_has(180.0), timeout_s=WAIT_S)
        target.counter = 20.0  # the target restarted: its counter counts again from zero
        wait_for("20 scraped while argus is down", lambda: prometheus_has(20.0), timeout_s=WAIT_S)
        measured("down phase done s", time.perf_counter() - began)
        argus.start(same_ports=True)
        measured("argus restarted s", time.perf_counter() - began)

        wait_for("+30 and +20 in argus", lambda: argus_total("e2e_events_total") == 100.0, timeout_s=WAIT_S)
        target.counter = 25.0
        wait_for("+5 in argus", lambda: argus_total("e2e_events_total") == 105.0, timeout_s=WAIT_S)

        def drained() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{prom}/metrics", timeout=5) as response:
                text = response.read().decode()
            name = "prometheus_remote_storage_samples_pending"
            pending = [line for line in text.splitlines() if line.startswith(name)]
            return bool(pending) and all(float(line.rsplit(" ", 1)[1]) == 0.0 for line in pending)

        measured("exact after restart s", time.perf_counter() - began)
        wait_for("prometheus's queue drained", drained, timeout_s=WAIT_S)
        argus.barrier("after-drain")
        assert argus_total("e2e_events_total") == 105.0
        grouped = [("metric", "e2e_events_total"), ("agg", "sum"), ("period", "1m"), ("start", "now-2h")]
        grouped += [("end", "now+1h"), ("group_by", "job,instance,path")]
        [series] = argus.query(grouped)["series"]
        assert series["labels"] == {"job": "shop", "instance": f"127.0.0.1:{target.port}", "path": "/a"}, series
    finally:
        target.close()
