"""Processes the tests and benchmarks start: free ports, waiting on a condition with a
deadline, and one managed server process (start, wait until ready, stop by PID, never leak it)."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from argus.launch import wait_for

__all__ = [
    "ManagedProcess",
    "ServiceFailed",
    "free_port",
    "port_open",
    "wait_for",
    "wait_port",
]

_LIVE: list[ManagedProcess] = []


@atexit.register
def _kill_leftovers() -> None:
    for proc in _LIVE:
        proc.kill()


# Ports handed out by this process: never twice, so a server's several listeners never get the
# same one. Each pytest-xdist worker draws from its own range below the kernel's ephemeral range
# (32768+, where client sockets and other workers' bind(0) land), so workers never collide.
_HANDED_OUT: set[int] = set()
_PORT_LOW, _PORT_SPAN = 12_000, 20_000


def _port_range() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    width = _PORT_SPAN // max(count, 1)
    return range(_PORT_LOW + index * width, _PORT_LOW + (index + 1) * width)


def free_port() -> int:
    """A loopback TCP port free right now, not handed out before by this process."""
    candidates = _port_range()
    start = (os.getpid() * 7919 + len(_HANDED_OUT) * 104_729) % len(candidates)
    for step in range(len(candidates)):
        port = candidates[(start + step * 7) % len(candidates)]
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise ServiceFailed(f"no free port in {candidates.start}-{candidates.stop - 1}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class ServiceFailed(RuntimeError):
    """A test service did not start; the message carries its log tail."""


class ManagedProcess:
    """A server process in its own session, its output in `log_path`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        ready: Callable[[], bool],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._ready = ready
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self._env, cwd=self._cwd, start_new_session=True
            )
        _LIVE.append(self)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceFailed(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            return self._ready()

        wait_for(
            f"{self.name} to answer", ready, timeout_s=self._ready_timeout_s, interval_s=0.1, failure=ServiceFailed
        )
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, for fault tests; also the atexit net)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.proc.wait(10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if time.monotonic() > deadline:
            raise ServiceFailed(f"nothing answers on 127.0.0.1:{port} after {timeout_s:.0f} s")
        time.sleep(0.05)
