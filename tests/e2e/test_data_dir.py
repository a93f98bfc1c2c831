"""The data dir's edges (core/data_dir.py): unusable dirs give a clear error and exit code 2,
the files are private, a second writer is refused naming the first one's PID, and a dir
written with another series identity encoding is refused, never mixed."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from argus.launch import REPO_ROOT, argus_argv, argus_env, up_argv
from core.data_dir import FORMAT_FILE
from core.model import SERIES_ID_VERSION
from tests.e2e.conftest import ArgusServer, free_port

pytestmark = pytest.mark.e2e


def _up(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`argus up` that is expected to refuse to start (it would otherwise run until the timeout)."""
    argv = up_argv(
        data_dir=data_dir,
        ingest_port=free_port(),
        query_port=free_port(),
        http_port=free_port(),
        api_key="argus_dd_" + "0" * 24,
        extra=extra,
    )
    return subprocess.run(argv, cwd=REPO_ROOT, env=argus_env(), capture_output=True, text=True, timeout=60)


def _said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stdout + done.stderr).split())


@pytest.mark.parametrize("command", ["up", "ingest", "project", "query-server"])
def test_a_data_dir_that_cannot_be_created_is_a_clear_error(tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    args = [command, "--data-dir", str(blocker / "data")]
    if command == "up":
        args.append("--no-collector")
    done = subprocess.run(argus_argv(*args), cwd=REPO_ROOT, env=argus_env(), capture_output=True, text=True, timeout=60)
    said = _said(done)
    assert done.returncode == 2, said
    assert "cannot create the data dir" in said and str(blocker / "data") in said
    assert "Traceback" not in said


def test_data_files_are_private(server_factory: Callable[[], ArgusServer]) -> None:
    server = server_factory().start()
    server.barrier("private")  # data in the log, the hot store and (soon) the cold folder
    data_dir = server.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert {"events.db", "hot.db", FORMAT_FILE} <= {p.name for p in files}
    assert json.loads((data_dir / FORMAT_FILE).read_text()) == {"series_id_version": SERIES_ID_VERSION}
    exposed = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077}
    assert not exposed, f"readable by others: {exposed}"


def test_an_existing_world_readable_data_dir_is_made_private(server_factory: Callable[[], ArgusServer]) -> None:
    server = server_factory()
    server.data_dir.mkdir(mode=0o755)
    server.data_dir.chmod(0o755)
    server.start()
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700


def test_a_second_up_on_the_same_data_dir_is_refused_naming_the_first(
    server_factory: Callable[[], ArgusServer],
) -> None:
    first = server_factory().start()
    assert first.proc is not None
    second = _up(first.data_dir)
    said = _said(second)
    assert second.returncode == 2, said
    assert f"process {first.proc.pid}" in said and "already running" in said
    # The first one still serves.
    first.barrier("still-first")
    ingest = subprocess.run(
        argus_argv("ingest", "--data-dir", str(first.data_dir), "--ingest-addr", f"127.0.0.1:{free_port()}"),
        cwd=REPO_ROOT,
        env=argus_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ingest.returncode == 2 and f"process {first.proc.pid}" in _said(ingest), _said(ingest)


@pytest.mark.parametrize("stamp", [None, 1])
def test_data_of_an_earlier_series_identity_is_refused(tmp_path: Path, stamp: int | None) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    (data_dir / "events.db").write_bytes(b"SQLite format 3\x00")  # data of an earlier release
    if stamp is not None:
        (data_dir / FORMAT_FILE).write_text(json.dumps({"series_id_version": stamp}))
    done = _up(data_dir)
    said = _said(done)
    assert done.returncode == 2, said
    assert "series identity" in said and "new data dir" in said and "push the data again" in said
    assert (data_dir / "events.db").read_bytes() == b"SQLite format 3\x00", "left as it was"
    newer = data_dir / FORMAT_FILE
    newer.write_text(json.dumps({"series_id_version": SERIES_ID_VERSION + 1}))
    assert "newer Argus" in _said(_up(data_dir))
