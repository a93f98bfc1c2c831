"""Starting `argus` from this source tree as a subprocess (tests, benchmarks, scripts).

The entry point runs under the current interpreter with the tree on PYTHONPATH, so an
installed copy can never shadow the code under test.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

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
    return env


def up_argv(
    *, data_dir: Path, ingest_port: int, query_port: int, http_port: int, api_key: str, extra: tuple[str, ...] = ()
) -> list[str]:
    """`argus up --no-collector` on 127.0.0.1 ports with a fixed development key."""
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
