"""Crashes and restarts lose nothing and double nothing.

`kill -9` lands while `argus push` streams a larger file (ingest appending, projectors
flushing); the server restarts on the same data dir, the push is run again (idempotent) and
every tier must then hold exactly the data set. A clean SIGTERM restart must keep
everything, and a server killed right after acknowledging batches must still have them.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contracts.argus.ingest.v1 import ingest_pb2
from tests.e2e import expected as ref
from tests.e2e.conftest import VISIBLE_TIMEOUT_S, ArgusServer, measured, parse_push_summary, wait_for

pytestmark = pytest.mark.e2e

CRASH_METRICS = ("e2e_crash_counter", "e2e_crash_gauge")
# Big enough that `argus push` is still streaming when the first appends reach the disk.
CRASH_SERIES = 64
CRASH_SAMPLES_PER_SERIES = 4_000
PUSH_TIMEOUT_S = 120.0
# Small batches: many acks per push, so the kill falls between some of them. Both pushes must
# use the same options, since batch ids derive from the batching.
PUSH_ARGS = ("--source", "e2e-crash", "--batch-samples", "500", "--max-in-flight", "64")
# Growth of the data dir (MiB) at which the server is killed during the push.
CRASH_AT_MIB = (1.0, 3.0)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _data_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())


def _range(ds: ref.Dataset) -> tuple[int, int]:
    first, last = ds.span_ms()
    return first - first % ref.HOUR_MS, last - last % ref.HOUR_MS + ref.HOUR_MS


def _exactness_problems(server: ArgusServer, ds: ref.Dataset, metrics: tuple[str, ...] = CRASH_METRICS) -> list[str]:
    start, end = _range(ds)
    problems: list[str] = []
    for metric in metrics:
        for period, group_by in (("5s", ()), ("1m", ("*",)), ("1h", ("*",)), ("1d", ("region",))):
            for agg in ("count", "sum", "last"):
                q = ref.Query(metric=metric, agg=agg, period=period, start_ms=start, end_ms=end, group_by=group_by)
                diff = ref.compare(ref.result_from_http(server.query(q.http_params())), ref.expected_result(ds, q), agg)
                problems.extend(f"{q.describe()}: {d}" for d in diff)
    return problems


def _snapshot(server: ArgusServer, ds: ref.Dataset, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    start, end = _range(ds)
    out = []
    for metric in metrics:
        for period in ("5s", "1m", "5m", "1h", "1d"):
            for agg in ("count", "sum", "min", "max", "last"):
                body = server.query(
                    [
                        ("metric", metric),
                        ("agg", agg),
                        ("period", period),
                        ("start", str(start)),
                        ("end", str(end)),
                        ("group_by", "region"),
                    ]
                )
                body.pop("stats", None)
                out.append(body)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CrashOutcome:
    dataset: ref.Dataset
    interrupted_exit_code: int
    interrupted_output: str
    repush: subprocess.CompletedProcess[str]
    problems: list[str]


@pytest.fixture(scope="module")
def crash_during_push(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashOutcome]:
    """kill -9 the server (twice) while `argus push` streams a big file, restarting it each
    time on the same data dir and ports; let the interrupted push end, push the file again,
    and compare."""
    tmp = tmp_path_factory.mktemp("crash")
    ds = ref.big_dataset(now_ms=_now_ms(), series_count=CRASH_SERIES, samples_per_series=CRASH_SAMPLES_PER_SERIES)
    path = tmp / "big.ndjson"
    path.write_bytes(ref.to_ndjson(ds))
    server = ArgusServer(tmp / "data")
    try:
        server.start()
        baseline = _data_bytes(server.data_dir)
        push = server.popen_push(path, *PUSH_ARGS)
        kills = 0
        for grown_mib in CRASH_AT_MIB:
            # Kill once ingest has appended this much more (the data dir grew) while the push
            # streams on; restart on the same ports, where a retrying push finds the server.
            wait_for(
                f"ingest to append {grown_mib} MiB of the push",
                lambda mib=grown_mib: (
                    push.poll() is not None  # type: ignore[misc]
                    or _data_bytes(server.data_dir) > baseline + mib * (1 << 20)
                ),
                timeout_s=PUSH_TIMEOUT_S,
                interval_s=0.005,
            )
            if push.poll() is not None:
                break
            server.kill9()
            kills += 1
            server.start(same_ports=True)
        measured("kills_during_push", kills)
        if not kills:
            pytest.fail("argus push finished before the first kill: make the crash data set bigger")

        try:
            interrupted_output, _ = push.communicate(timeout=PUSH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            push.kill()
            interrupted_output, _ = push.communicate()
        measured("interrupted_push_exit_code", push.returncode)

        repush = server.push_file(path, *PUSH_ARGS)
        measured("repush_summary", repush.stdout.strip())
        problems = ["re-push failed"]
        if repush.returncode == 0:
            server.barrier("after-crash")
            problems = _exactness_problems(server, ds)
        yield CrashOutcome(
            dataset=ds,
            interrupted_exit_code=push.returncode,
            interrupted_output=interrupted_output,
            repush=repush,
            problems=problems,
        )
    finally:
        server.close()


def test_kill_9_during_argus_push_then_restart_and_repush_is_exact(crash_during_push: CrashOutcome) -> None:
    repush = crash_during_push.repush
    assert repush.returncode == 0, f"re-push failed ({repush.returncode}):\n{repush.stdout}\n{repush.stderr}"
    report = parse_push_summary(repush.stdout)
    assert report.rejected == 0, repush.stdout
    problems = crash_during_push.problems
    assert not problems, f"{len(problems)} differences after kill -9 + re-push:\n" + "\n".join(problems[:40])


def test_push_interrupted_by_a_server_crash_resumes_once_it_is_back(crash_during_push: CrashOutcome) -> None:
    """`argus push` retries "while ingest is unavailable" (its --help): a crash and a restart
    on the same address within its retry budget must not fail the push."""
    assert crash_during_push.interrupted_exit_code == 0, (
        f"argus push gave up when ingest was killed mid-stream (exit {crash_during_push.interrupted_exit_code}):\n"
        f"{crash_during_push.interrupted_output[-1500:]}"
    )


def test_kill_9_right_after_acks_keeps_every_acknowledged_batch(server_factory: Callable[[], ArgusServer]) -> None:
    ds = ref.big_dataset(now_ms=_now_ms(), series_count=8, samples_per_series=600, seed=11)
    batches = ref.to_batches(ds, source="e2e-acked", prefix="acked", max_samples=400)
    server = server_factory().start()
    acked = batches[: len(batches) // 2]
    for batch in acked:
        assert server.push_batch(batch).status == ingest_pb2.BATCH_STATUS_ACCEPTED
    server.kill9()  # at once: the projectors have most likely not flushed everything yet

    server.start()
    results = [server.push_batch(b) for b in batches]
    duplicates = [b.batch_id for b, r in zip(batches, results, strict=True) if r.duplicate]
    assert duplicates == [b.batch_id for b in acked], "acknowledged batches must be durable (and only they duplicates)"
    assert all(r.status == ingest_pb2.BATCH_STATUS_ACCEPTED for r in results), results
    server.barrier("after-ack-kill")
    problems = _exactness_problems(server, ds)
    assert not problems, "\n".join(problems[:40])


def test_sigterm_stops_cleanly_and_restart_keeps_everything(server_factory: Callable[[], ArgusServer]) -> None:
    ds = ref.big_dataset(now_ms=_now_ms(), series_count=8, samples_per_series=900, seed=5)
    first, second = ds.with_samples(ds.samples[::2]), ds.with_samples(ds.samples[1::2])
    server = server_factory().start()
    for batch in ref.to_batches(first, source="e2e-term", prefix="first", max_samples=1_000):
        assert server.push_batch(batch).status == ingest_pb2.BATCH_STATUS_ACCEPTED
    wait_for(
        "the first half to be projected",
        lambda: not _exactness_problems(server, first),
        timeout_s=VISIBLE_TIMEOUT_S,
        interval_s=0.2,
    )
    before = _snapshot(server, first, CRASH_METRICS)

    started = time.monotonic()
    assert server.stop() == 0, server.log_tail()
    stop_s = time.monotonic() - started
    measured("sigterm_stop_s", round(stop_s, 2))
    assert stop_s < 15.0, f"SIGTERM took {stop_s:.1f} s"

    server.start()
    assert _snapshot(server, first, CRASH_METRICS) == before
    # The log and the read models continue where they were: new data adds up exactly.
    for batch in ref.to_batches(second, source="e2e-term", prefix="second", max_samples=1_000):
        assert server.push_batch(batch).status == ingest_pb2.BATCH_STATUS_ACCEPTED
    server.barrier("after-sigterm")
    problems = _exactness_problems(server, ds)
    assert not problems, "\n".join(problems[:40])
