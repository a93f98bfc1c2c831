"""Starting `argus` from this source tree as a subprocess (tests, benchmarks, scripts).

The entry point runs under the current interpreter with the tree on PYTHONPATH, so an
installed copy can never shadow the code under test.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


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
