"""core/data_dir.py: the format stamp, privacy, and role locks (real processes hold them)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core import data_dir
from core.data_dir import FORMAT_FILE, DataDirError
from core.model import SERIES_ID_VERSION


@pytest.fixture(autouse=True)
def _keep_umask() -> object:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def test_a_new_data_dir_is_private_and_stamped(tmp_path: Path) -> None:
    target = tmp_path / "new" / "data"
    data_dir.prepare(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert json.loads((target / FORMAT_FILE).read_text()) == {"series_id_version": SERIES_ID_VERSION}
    assert stat.S_IMODE((target / FORMAT_FILE).stat().st_mode) == 0o600
    (target / "events.db").write_bytes(b"x")
    assert stat.S_IMODE((target / "events.db").stat().st_mode) == 0o600, "the umask makes new files private"
    data_dir.prepare(target)  # stamped and holding data: fine


def test_existing_files_are_tightened(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    (tmp_path / "hot.db").write_bytes(b"x")
    (tmp_path / "hot.db").chmod(0o644)
    (tmp_path / FORMAT_FILE).write_text(json.dumps({"series_id_version": SERIES_ID_VERSION}))
    data_dir.prepare(tmp_path)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "hot.db").stat().st_mode) == 0o600


@pytest.mark.parametrize("stamp", [None, SERIES_ID_VERSION - 1])
def test_data_without_the_current_stamp_is_refused(tmp_path: Path, stamp: int | None) -> None:
    (tmp_path / "hot.db").write_bytes(b"x")
    if stamp is not None:
        (tmp_path / FORMAT_FILE).write_text(json.dumps({"series_id_version": stamp}))
    with pytest.raises(DataDirError, match="new data dir"):
        data_dir.prepare(tmp_path)
    assert data_dir.read_stamp(tmp_path) == stamp, "a refused dir is left as it was"


def test_a_garbled_stamp_is_refused(tmp_path: Path) -> None:
    (tmp_path / FORMAT_FILE).write_text("{")
    with pytest.raises(DataDirError, match="unreadable"):
        data_dir.prepare(tmp_path)


def test_a_path_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(DataDirError, match="cannot create the data dir"):
        data_dir.prepare(tmp_path / "f" / "data")


def _holder(path: Path, role: str) -> subprocess.Popen[str]:
    code = (
        "import sys; from pathlib import Path; from core.data_dir import lock_role; "
        f"lock_role(Path({str(path)!r}), {role!r}); print('locked', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_held_role_lock_names_its_pid_and_a_killed_holder_does_not_block(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "ingest")
    try:
        with pytest.raises(DataDirError, match=f"process {holder.pid}"):
            data_dir.lock_role(tmp_path, "ingest", what="argus up")
        other = data_dir.lock_role(tmp_path, "projector-rollups")  # another role is free
        other.release()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate()  # reaps it and closes the pipes
    assert (tmp_path / "ingest.lock").exists(), "the stale file stays behind"
    lock = data_dir.lock_role(tmp_path, "ingest")
    assert (tmp_path / "ingest.lock").read_text().strip() == str(os.getpid())
    lock.release()


def test_keys_create_on_a_new_data_dir_leaves_it_usable_by_up(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from argus.cli import main

    target = tmp_path / "fresh"
    done = CliRunner().invoke(main, ["keys", "create", "--tenant", "t1", "--data-dir", str(target)])
    assert done.exit_code == 0, done.output
    assert (target / "events.db").exists()
    data_dir.prepare(target)  # what `argus up` does first: the dir is stamped, not refused
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
