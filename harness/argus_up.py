"""One `argus up --no-collector` process for tests and benchmarks.

`ArgusUp` starts it as a subprocess in its own session on free 127.0.0.1 ports (or the ports
it had, for a restart clients can retry against), with its output appended to a log file;
waits until it is ready (HTTP /readyz, and gRPC health SERVING on ingest and query, polled
with a deadline; an exit before that fails at once with the log tail); and stops it by PID:
SIGTERM, then SIGKILL after a deadline. Every started server is killed at interpreter exit
if it still runs, whatever way the run ended.

Failures raise `failure` (a test passes `pytest.fail.Exception`, a benchmark its own error),
so each caller reports them its own way.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.launch import REPO_ROOT, argus_env, up_argv
from harness.processes import free_port, wait_for

READY_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 30.0
LOG_TAIL_LINES: Final = 150


class HarnessFailure(RuntimeError):
    """The default `failure`: a server did not start, answer or stop as it should."""


LIVE: list[ArgusUp] = []
"""Servers started and not yet closed (a failing test attaches their log tails)."""


@atexit.register
def _kill_leftovers() -> None:
    # Servers run in their own session (so a Ctrl-C of the runner does not reach them
    # first); never leave one behind.
    for server in LIVE:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()


class ArgusUp:
    """One `argus up --no-collector` over `data_dir`; restartable on new (or the same) ports."""

    def __init__(
        self,
        data_dir: Path,
        *,
        api_key: str,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        failure: type[BaseException] = HarnessFailure,
        ready_timeout_s: float = READY_TIMEOUT_S,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> None:
        self.data_dir = data_dir
        self.api_key = api_key
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}.log"
        self.extra_args = tuple(extra_args)
        self.failure = failure
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.ingest_port = 0
        self.query_port = 0
        self.http_port = 0
        self.ingest_http_port = 0
        self.starts = 0

    # -------------------------------------------------------------- lifecycle

    def start(self, *, same_ports: bool = False) -> Self:
        """Start (or restart) on the data dir and wait until ready; new free ports unless
        `same_ports`."""
        if self.running:
            raise self.failure(f"argus up (pid {self.pid}) is already running")
        if not (same_ports and self.starts):
            self.ingest_port, self.query_port, self.http_port = free_port(), free_port(), free_port()
            self.ingest_http_port = free_port()
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} (ports {self.ports}) =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv(),
                cwd=REPO_ROOT,
                env=argus_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self not in LIVE:
            LIVE.append(self)
        self.wait_ready()
        return self

    def argv(self) -> list[str]:
        """The command line of the next start."""
        return up_argv(
            data_dir=self.data_dir,
            ingest_port=self.ingest_port,
            query_port=self.query_port,
            http_port=self.http_port,
            api_key=self.api_key,
            extra=self.extra_args,
            ingest_http_port=self.ingest_http_port,
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise self.failure("argus up was never started")
        return self.proc.pid

    @property
    def ports(self) -> dict[str, int]:
        return {
            "ingest": self.ingest_port,
            "query": self.query_port,
            "http": self.http_port,
            "ingest_http": self.ingest_http_port,
        }

    @property
    def ingest_target(self) -> str:
        return f"127.0.0.1:{self.ingest_port}"

    def wait_ready(self, timeout_s: float | None = None) -> None:
        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise self.failure(f"argus up exited with {code} before it was ready:\n{self.log_tail()}")
            if self.http_status("/readyz") != 200:
                return False
            return self.grpc_health(self.ingest_port) and self.grpc_health(self.query_port)

        wait_for(
            "argus up to be ready",
            ready,
            timeout_s=self.ready_timeout_s if timeout_s is None else timeout_s,
            interval_s=0.1,
            failure=self.failure,
        )

    def http_status(self, path: str) -> int:
        """The HTTP status of GET `path` without a key (raises OSError when nothing answers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=2.0)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        finally:
            conn.close()

    def grpc_health(self, port: int, service: str = "") -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def stop(self, timeout_s: float | None = None) -> int:
        """SIGTERM, wait for the exit; its exit code (that of the last run if not running).
        After `timeout_s` it is SIGKILLed and `failure` raised: a server must stop on SIGTERM."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            return self.proc.returncode
        limit = self.stop_timeout_s if timeout_s is None else timeout_s
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise self.failure(
                f"argus up (pid {self.proc.pid}) did not stop within {limit:.0f} s of SIGTERM:\n{self.log_tail()}"
            ) from None

    def kill9(self) -> None:
        """SIGKILL (a crash) and reap it."""
        if not self.running:
            raise self.failure("argus up is not running")
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        """Teardown: stop whatever still runs, without failing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(ValueError):
            LIVE.remove(self)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
