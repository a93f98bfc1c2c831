"""`/readyz` reflects whether the projectors can write: a hot store on a full filesystem (a
small tmpfs, filled up) makes `argus up` answer 503 with the reason, reported by the projector
child over its link to the parent; freeing space makes it ready again."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from argus.launch import REPO_ROOT, argus_env, up_argv
from tests.e2e.conftest import free_port, run_argus, wait_for

pytestmark = pytest.mark.e2e

TMPFS_BYTES = 16 * 1024 * 1024


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (this suite runs as root on Linux, where `mount` works)."""
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path: Path) -> None:
    """Write zeros to `path` until the filesystem is full."""
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 512)


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def _samples(path: Path, series: int, start_ms: int) -> Path:
    lines = [
        json.dumps({"metric": "ready_fill", "labels": {"n": str(i), "pad": "x" * 64}, "ts": start_ms, "value": i})
        for i in range(series)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("processes", ["two", "single"])
def test_readyz_is_503_with_the_reason_while_the_projectors_cannot_write(
    tmp_path: Path, small_fs: Path, processes: str
) -> None:
    http_port, ingest_port = free_port(), free_port()
    api_key = "argus_ready_" + secrets.token_hex(12)
    argv = up_argv(
        data_dir=tmp_path / "data",
        ingest_port=ingest_port,
        query_port=free_port(),
        http_port=http_port,
        api_key=api_key,
        extra=("--store", f"sqlite:///{small_fs / 'hot.db'}", *(["--single-process"] if processes == "single" else [])),
    )
    log_path = tmp_path / "up.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=argus_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for("argus up ready", lambda: proc.poll() is None and _readyz(http_port)[0] == 200, timeout_s=60)
        _fill(small_fs / "filler")
        now_ms = int(time.time() * 1000)
        pushed = run_argus(
            "push", str(_samples(tmp_path / "a.ndjson", 2000, now_ms - 60_000)), "--ingest",
            f"127.0.0.1:{ingest_port}", "--api-key", api_key,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr  # ingest writes the log, elsewhere

        def not_ready() -> dict[str, Any] | None:
            status, body = _readyz(http_port)
            return body if status == 503 else None

        body = wait_for("/readyz to say not ready", not_ready, timeout_s=60, interval_s=0.2)
        assert body["status"] == "not ready"
        assert "projectors cannot write" in body["reason"] and "full" in body["reason"], body
        assert proc.poll() is None, "argus up keeps running (ingest and queries go on)"

        (small_fs / "filler").unlink()
        wait_for("/readyz ready again", lambda: _readyz(http_port)[0] == 200, timeout_s=60, interval_s=0.2)
        if processes == "two":  # the child told the parent, over their link
            log_text = log_path.read_text(errors="replace")
            assert "projector health: failing" in log_text and "projector health: ok" in log_text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_partition_halted_on_a_newer_schema_version_makes_readyz_503_and_shows_in_the_quarantine(
    tmp_path: Path,
) -> None:
    import asyncio
    import dataclasses

    from core.adapters.sqlite_event_log import SqliteEventLog
    from core.events import SAMPLES_TOPIC, SCHEMA_VERSION, digest

    data_dir = tmp_path / "data"
    http_port, ingest_port = free_port(), free_port()
    api_key = "argus_ready_" + secrets.token_hex(12)
    argv = up_argv(
        data_dir=data_dir, ingest_port=ingest_port, query_port=free_port(), http_port=http_port, api_key=api_key
    )
    with (tmp_path / "up.log").open("ab") as log:
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=argus_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for("argus up ready", lambda: proc.poll() is None and _readyz(http_port)[0] == 200, timeout_s=60)
        now_ms = int(time.time() * 1000)
        pushed = run_argus(
            "push", str(_samples(tmp_path / "a.ndjson", 3, now_ms - 60_000)), "--ingest",
            f"127.0.0.1:{ingest_port}", "--api-key", api_key,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr

        async def append_future_event() -> int:
            # What a newer Argus writing to the same log would leave: a valid event of schema v+1.
            events = SqliteEventLog(data_dir / "events.db")
            await events.start()
            try:
                for partition in range(await events.partitions(SAMPLES_TOPIC)):
                    records = await events.read(SAMPLES_TOPIC, partition, 0, 1)
                    if records:
                        future = dataclasses.replace(
                            records[0].event, event_id=digest("future"), schema_version=SCHEMA_VERSION + 1
                        )
                        await events.append(SAMPLES_TOPIC, [(partition, future)])
                        return partition
            finally:
                await events.close()
            raise AssertionError("no sample event in the log")

        partition = asyncio.run(append_future_event())

        def not_ready() -> dict[str, Any] | None:
            status, body = _readyz(http_port)
            return body if status == 503 else None

        body = wait_for("/readyz to say not ready", not_ready, timeout_s=60, interval_s=0.2)
        assert "upgrade needed" in body["reason"] and f"partition {partition}" in body["reason"], body
        listed = run_argus("admin", "quarantine", "--data-dir", str(data_dir), "--json")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert f'"partition": {partition}' in listed.stdout and "halted" in listed.stdout, listed.stdout
        assert proc.poll() is None, "argus up keeps running (ingest and queries go on)"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
