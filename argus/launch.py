"""Starting `argus` from this source tree as a subprocess (tests, benchmarks, scripts).

The entry point runs under the current interpreter with the tree on PYTHONPATH, so an
installed copy can never shadow the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

from core.errors import Unavailable

REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def argus_argv(*args: str) -> list[str]:
    """The command line of `argus ARGS...` (the console script's entry point, `argus.cli:main`)."""
    return [sys.executable, "-c", "import sys; from argus.cli import main; sys.exit(main())", *args]


def argus_env() -> dict[str, str]:
    """This environment without ARGUS_* settings (flags decide), with the tree importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"  # rich wraps log lines at the terminal width
    # Many servers share this machine in tests and benchmarks: the ingest HTTP listener takes
    # any free port unless a flag (`--ingest-http-addr`) names one.
    env["ARGUS_INGEST_HTTP_ADDR"] = "127.0.0.1:0"
    return env


def up_argv(
    *,
    data_dir: Path,
    ingest_port: int,
    query_port: int,
    http_port: int,
    api_key: str,
    extra: tuple[str, ...] = (),
    ingest_http_port: int = 0,
) -> list[str]:
    """`argus up --no-collector` on 127.0.0.1 ports with a fixed development key (the ingest
    HTTP port: any free one when 0)."""
    return argus_argv(
        "up",
        "--no-collector",
        "--data-dir",
        str(data_dir),
        "--ingest-addr",
        f"127.0.0.1:{ingest_port}",
        "--query-addr",
        f"127.0.0.1:{query_port}",
        "--http-addr",
        f"127.0.0.1:{http_port}",
        "--ingest-http-addr",
        f"127.0.0.1:{ingest_http_port}",
        "--api-key",
        api_key,
        *extra,
    )


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout_s: float,
    interval_s: float = 0.05,
    failure: type[BaseException] = TimeoutError,
) -> T:
    """Poll `probe` until it returns something other than None/False; raise `failure` after
    `timeout_s` naming the last value or error. Errors from the probe count as "not yet"
    (a server warming up), except `failure` itself, which ends the wait at once."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = probe()
        except failure:
            raise
        except Exception as exc:
            value, last = None, exc
        else:
            last = value
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise failure(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")
        time.sleep(interval_s)


class AgentExited(Unavailable):
    """`argus agent` ended before it was ready; the message carries its log tail."""


class AgentProcess:
    """One `argus agent` subprocess on a TOML config of its own, restartable on the same
    spool dir. What it is doing comes from `<spool dir>/status.json`, which it rewrites at
    every flush (docs/agent.md)."""

    def __init__(
        self,
        work_dir: Path,
        name: str,
        *,
        ingest: str,
        api_key: str,
        settings: Mapping[str, object] | None = None,
        extra_toml: str = "",
    ) -> None:
        self.name = name
        self.spool_dir = work_dir / f"{name}-spool"
        self.log_path = work_dir / f"{name}.log"
        self.config = work_dir / f"{name}.toml"
        values: dict[str, object] = {
            "ingest": ingest,
            "api_key": api_key,
            "statsd_addr": "127.0.0.1:0",  # the bound port is in status.json
            "spool_dir": str(self.spool_dir),
            "host": name,
            "host_metrics": False,
            **(settings or {}),
        }
        # JSON scalars are valid TOML values.
        lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        self.config.write_text("\n".join([*lines, extra_toml]))
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, *, timeout_s: float = 60.0) -> Self:
        """Start and wait until it reports ready; raises AgentExited if it ends first."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argus_argv("agent", "--config", str(self.config)),
                cwd=REPO_ROOT,
                env=argus_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = self.proc

        def ready() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AgentExited(f"argus agent {self.name} exited with {proc.returncode}:\n{self.log_tail()}")
            status = self.status()
            return status if status.get("ready") and status.get("pid") == proc.pid else None

        status = wait_for(f"agent {self.name} ready", ready, timeout_s=timeout_s, failure=AgentExited)
        self.port = int(status["statsd_port"])
        return self

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.spool_dir / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data

    def counter(self, name: str) -> float:
        return float(self.status().get("counters", {}).get(name, 0))

    def gauge(self, name: str) -> float:
        return float(self.status().get("gauges", {}).get(name, 0))

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM and wait; SIGKILL after `timeout_s`. False if it had to be killed."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False
        return True

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "not running"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
