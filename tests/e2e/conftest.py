"""Fixtures of the end-to-end suite: real `argus up` processes on free 127.0.0.1 ports.

`ArgusServer` is the harness's `ArgusUp` (harness/argus_up.py: `argus up --no-collector` as a
subprocess with its output in a log file, ready on HTTP /readyz and gRPC health of ingest and
query, stopped with SIGTERM then SIGKILL, or killed with SIGKILL on demand) failing the test
on trouble, plus the small clients the tests share (HTTP JSON, gRPC stubs, `argus push`).
When a test fails, the tail of every live server's log is attached to its report.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from argus import launch
from argus.launch import REPO_ROOT, argus_argv, argus_env, up_argv
from contracts.argus.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from contracts.argus.metrics.v1 import metrics_pb2
from contracts.argus.query.v1 import query_pb2_grpc
from harness.argus_up import LIVE, ArgusUp
from harness.processes import free_port as free_port  # re-exported: tests import it from here

READY_TIMEOUT_S = 60.0
VISIBLE_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 150
BARRIER_TIERS = ("5s", "1m", "5m", "1h", "1d")

T = TypeVar("T")


def run_argus(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argus_argv(*args),
        cwd=REPO_ROOT,
        env=argus_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def measured(name: str, value: object) -> None:
    """Print a measured number (shown with `pytest -s` or `-rP`)."""
    print(f"measured {name} = {value!r}")


def wait_for(what: str, probe: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.05) -> T:
    return launch.wait_for(what, probe, timeout_s=timeout_s, interval_s=interval_s, failure=pytest.fail.Exception)


@dataclass(frozen=True, slots=True, kw_only=True)
class PushReport:
    """What `argus push` printed in its summary."""

    accepted: int
    rejected: int
    batches: int
    duplicates: int


def parse_push_summary(output: str) -> PushReport:
    """Read `samples N accepted, M rejected` and `batches B: ... D duplicate` off the summary."""
    text = output.replace(",", "")
    samples = re.search(r"samples\s+(\d+) accepted\s+(\d+) rejected", text)
    batches = re.search(r"batches\s+(\d+):.*?(\d+) duplicate", text, re.DOTALL)
    assert samples and batches, f"cannot read the argus push summary:\n{output}"
    return PushReport(
        accepted=int(samples.group(1)),
        rejected=int(samples.group(2)),
        batches=int(batches.group(1)),
        duplicates=int(batches.group(2)),
    )


class HttpAnswer:
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body

    def __repr__(self) -> str:
        return f"HttpAnswer({self.status}, {self.body!r})"


class ArgusServer(ArgusUp):
    """One `argus up --no-collector` process over a data dir; restartable on new ports."""

    def __init__(self, data_dir: Path, *, api_key: str | None = None) -> None:
        super().__init__(
            data_dir,
            api_key=api_key or "argus_e2e_" + secrets.token_hex(12),
            failure=pytest.fail.Exception,
            ready_timeout_s=READY_TIMEOUT_S,
            stop_timeout_s=STOP_TIMEOUT_S,
        )
        self._channels: list[grpc.Channel] = []

    def argv(self) -> list[str]:
        # Through this module's `up_argv`, so a test can monkeypatch it (a partial with extra flags).
        return up_argv(
            data_dir=self.data_dir,
            ingest_port=self.ingest_port,
            query_port=self.query_port,
            http_port=self.http_port,
            api_key=self.api_key,
            ingest_http_port=self.ingest_http_port,
        )

    def stop(self, timeout_s: float | None = None) -> int:
        self._close_channels()
        return super().stop(timeout_s)

    def kill9(self) -> None:
        self._close_channels()
        super().kill9()

    def close(self) -> None:
        self._close_channels()
        super().close()

    # -------------------------------------------------------------- clients

    @property
    def ingest_target(self) -> str:
        return f"127.0.0.1:{self.ingest_port}"

    def auth(self, key: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {key or self.api_key}"),)

    def channel(self, port: int, **options: int) -> grpc.Channel:
        opts = [(f"grpc.{name}", value) for name, value in options.items()]
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=opts)
        self._channels.append(channel)
        return channel

    def ingest_stub(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(self.channel(self.ingest_port))  # type: ignore[no-untyped-call]

    def query_stub(self) -> query_pb2_grpc.QueryServiceStub:
        channel = self.channel(self.query_port, max_receive_message_length=64 << 20)
        return query_pb2_grpc.QueryServiceStub(channel)  # type: ignore[no-untyped-call]

    def push_batch(self, batch: metrics_pb2.SampleBatch, *, key: str | None = None) -> ingest_pb2.BatchResult:
        stub = self.ingest_stub()
        response = stub.PushBatch(ingest_pb2.PushBatchRequest(batch=batch), metadata=self.auth(key), timeout=30.0)
        return response.result  # type: ignore[no-any-return]

    def push_stream(
        self, batches: Sequence[metrics_pb2.SampleBatch], *, key: str | None = None
    ) -> dict[str, ingest_pb2.BatchResult]:
        """Send every batch on one Push stream; the results by batch id (one per batch)."""
        stub = self.ingest_stub()
        requests = iter([ingest_pb2.PushRequest(batch=b) for b in batches])
        results: dict[str, ingest_pb2.BatchResult] = {}
        for response in stub.Push(requests, metadata=self.auth(key), timeout=120.0):
            assert response.result.batch_id not in results, f"two answers for batch {response.result.batch_id}"
            results[response.result.batch_id] = response.result
        return results

    def http_get(
        self, path: str, params: Sequence[tuple[str, str]] = (), *, key: str | bool | None = True
    ) -> HttpAnswer:
        """GET with `Authorization: Bearer <key>`: key True = the dev key, None/False = none."""
        url = f"http://127.0.0.1:{self.http_port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(list(params))
        headers = {}
        if key is True:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif isinstance(key, str):
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30.0) as response:
                return HttpAnswer(response.status, json.loads(response.read()))
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            return HttpAnswer(err.code, body)

    def query(self, params: Sequence[tuple[str, str]], *, key: str | None = None) -> dict[str, Any]:
        answer = self.http_get("/api/v1/query", params, key=key or True)
        assert answer.status == 200, f"query {params} answered {answer}"
        body: dict[str, Any] = answer.body
        return body

    def total(self, params: Sequence[tuple[str, str]], *, key: str | None = None) -> float:
        """The sum of every point of every series a query answers (e.g. agg=count: how many)."""
        body = self.query(params, key=key)
        return float(sum(v for s in body["series"] for _, v in s["points"] if v is not None))

    def barrier(self, name: str, *, series: int = 200, key: str | None = None) -> None:
        """Append one marker sample to each of `series` new series (so many that they land in
        every partition of the samples topic) and wait until all are counted: everything
        appended before them has been projected then too."""
        now = time.time_ns() // 1_000_000
        batch = metrics_pb2.SampleBatch(batch_id=f"barrier-{name}", source="e2e-barrier")
        for i in range(series):
            s = batch.series.add(metric="e2e_barrier", kind=metrics_pb2.METRIC_KIND_GAUGE, region="us-east-1")
            s.labels.add(name="round", value=name)
            s.labels.add(name="slot", value=str(i))
            s.timestamps_ms.append(now)
            s.values.append(1.0)
        result = self.push_batch(batch, key=key)
        assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED, result

        # Every tier: a projector may write its tiers one after another (or each at its own
        # cadence), so one tier showing the markers says nothing of the others.
        def params(period: str) -> list[tuple[str, str]]:
            return [
                ("metric", "e2e_barrier"),
                ("agg", "count"),
                ("period", period),
                ("start", "now-2h"),
                ("end", "now+1h"),
                ("where", f"round={name}"),
            ]

        wait_for(
            f"barrier {name}",
            lambda: all(self.total(params(p), key=key) == series for p in BARRIER_TIERS),
            timeout_s=VISIBLE_TIMEOUT_S,
        )

    def push_file(self, path: Path, *extra: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_argus("push", str(path), "--ingest", self.ingest_target, "--api-key", key or self.api_key, *extra)

    def popen_push(self, path: Path, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            argus_argv("push", str(path), "--ingest", self.ingest_target, "--api-key", self.api_key, *extra),
            cwd=REPO_ROOT,
            env=argus_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def _close_channels(self) -> None:
        for channel in self._channels:
            channel.close()
        self._channels.clear()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def argus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArgusServer]:
    """One running server per test module (tests of a module share its data)."""
    server = ArgusServer(tmp_path_factory.mktemp("argus") / "data")
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[[], ArgusServer]]:
    """Servers (not yet started) in this test's tmp dir; all stopped at the end."""
    made: list[ArgusServer] = []

    def make() -> ArgusServer:
        server = ArgusServer(tmp_path / f"data{len(made)}")
        made.append(server)
        return server

    try:
        yield make
    finally:
        for server in made:
            server.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for server in LIVE:
            report.sections.append(
                (f"argus server log ({server.log_path}, last {LOG_TAIL_LINES} lines)", server.log_tail())
            )
