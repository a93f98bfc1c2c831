"""The data dir of an embedded Argus: private, stamped with its format, one writer per role.

- **Private.** A process that opens a data dir creates files for its owner only (umask 077):
  the dir is 0700, the event log, stores and key file 0600. An existing dir is tightened to
  0700 (which also closes everything below it) and its top-level files to 0600.
- **Stamped.** `FORMAT` (JSON) records the series identity encoding the data was written with
  (`series_id_version`). A dir that holds data without a stamp, or with another version, is
  refused: series ids computed two ways would split every series in two, silently.
- **Locked.** A serving role takes `<role>.lock` with `flock` and writes its PID into it:
  a second `argus up` (or `argus ingest`, or the same projector twice) on the same data dir
  is refused with the PID of the one running. The kernel drops a `flock` when its process
  dies, even by `kill -9`, so a stale file never blocks: only a live holder does.

Errors are `DataDirError` (exit code 2 in the CLI): what was being done, the path, and what
to do about it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.errors import ArgusError
from core.model import SERIES_ID_VERSION  # 2: length-prefixed; 1: `name=value\\0` pairs (earlier releases)

FORMAT_FILE: Final = "FORMAT"
DATA_FILES: Final = ("events.db", "hot.db")
"""Files whose presence means the dir holds data (the embedded log and hot store)."""
PRIVATE_UMASK: Final = 0o077


class DataDirError(ArgusError):
    """The data dir cannot be used as it is; the message says why and what to do."""


def prepare(data_dir: Path) -> None:
    """Create `data_dir` (0700) or tighten an existing one; stamp a new one; refuse one whose
    data was written with another series identity encoding. Sets this process's umask to 077."""
    os.umask(PRIVATE_UMASK)
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(
            f"cannot create the data dir {data_dir}: {exc.strerror or exc}; choose another with --data-dir "
            "(or ARGUS_DATA_DIR) where this user can write"
        ) from None
    if not data_dir.is_dir():
        raise DataDirError(f"the data dir {data_dir} is not a directory; choose another with --data-dir")
    _tighten(data_dir)
    _check_format(data_dir)


def _tighten(data_dir: Path) -> None:
    try:
        if stat.S_IMODE(data_dir.stat().st_mode) & 0o077:
            data_dir.chmod(0o700)
        for path in data_dir.iterdir():
            if path.is_file() and not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077:
                path.chmod(0o600)
    except OSError as exc:
        raise DataDirError(
            f"cannot make the data dir {data_dir} private (mode 0700): {exc.strerror or exc}; "
            "is it owned by another user?"
        ) from None


def holds_data(data_dir: Path) -> bool:
    return any((data_dir / name).exists() for name in DATA_FILES)


def read_stamp(data_dir: Path) -> int | None:
    """The series identity version the dir's stamp names; None without a stamp."""
    path = data_dir / FORMAT_FILE
    try:
        document = json.loads(path.read_text())
        return int(document["series_id_version"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataDirError(
            f"the format stamp {path} is unreadable ({exc}); restore it or start a new data dir"
        ) from None


def write_stamp(data_dir: Path, version: int = SERIES_ID_VERSION) -> None:
    path = data_dir / FORMAT_FILE
    temp = path.with_suffix(".tmp")
    try:
        temp.write_text(json.dumps({"series_id_version": version}) + "\n")
        os.replace(temp, path)
    except OSError as exc:
        raise DataDirError(
            f"cannot write {path}: {exc.strerror or exc}; choose a data dir where this user can write"
        ) from None


def _check_format(data_dir: Path) -> None:
    stamped = read_stamp(data_dir)
    if stamped == SERIES_ID_VERSION:
        return
    if stamped is None and not holds_data(data_dir):
        write_stamp(data_dir)
        return
    if stamped is not None and stamped > SERIES_ID_VERSION:
        raise DataDirError(
            f"the data dir {data_dir} was written by a newer Argus (series identity version {stamped}; "
            f"this one knows up to {SERIES_ID_VERSION}); run that version or a newer one"
        )
    written = f"version {stamped}" if stamped is not None else "version 1 (no FORMAT stamp: an earlier release)"
    raise DataDirError(
        f"the data dir {data_dir} holds data written with series identity {written}; this release "
        f"identifies series differently (version {SERIES_ID_VERSION}), and mixing the two would split "
        "every series in two. Start with a new data dir (--data-dir NEW_DIR) and push the data again "
        "into it (argus push FILE), or keep running the earlier release on this one"
    )


@dataclass(slots=True)
class RoleLock:
    """An exclusive `flock` on `<data dir>/<role>.lock`, holding the owner's PID. Release with
    `release()` (or let the process end: the kernel drops it)."""

    path: Path
    fd: int = field(default=-1)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def lock_role(data_dir: Path, role: str, *, wait_s: float = 0.0, what: str = "") -> RoleLock:
    """Take `<data_dir>/<role>.lock`, waiting up to `wait_s` for a holder to go (a supervised
    child waits out an orphaned predecessor); DataDirError naming the holder's PID otherwise."""
    path = data_dir / f"{role}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DataDirError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _holder(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise DataDirError(
                    f"{what or role} is already running on the data dir {data_dir} ({who}, lock {path}); "
                    "stop it first, or give this one its own --data-dir"
                ) from None
            time.sleep(0.1)  # polling a lock with a deadline: flock has no timed wait
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RoleLock(path=path, fd=fd)


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
