"""What every peer (VictoriaMetrics, Prometheus, InfluxDB) shares in the benchmark.

A peer module gives a `Peer`: its Debian package and binaries, how to start it on
127.0.0.1 free ports over a data dir under the run's work dir, how to load a dataset file in
its own format, the benchmark queries in its own query language, and a freshness probe.
`measure_peer` runs the same sequence for each (install if missing, start, load, wait until
everything is queryable, storage, queries, freshness, stop by PID) and never fakes a figure:
a peer that cannot be installed or started comes back as `available: False` with the reason.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from bench.run import BenchFailure, latency_summary, log, time_freshness, wait_for
from bench.workload import PeerFormat, WorkloadSpec

STOP_TIMEOUT_S: Final = 30.0
READY_TIMEOUT_S: Final = 120.0
WARMUP_REPS: Final = 3
POLL_DUTY: Final = 20


class PeerUnavailable(RuntimeError):
    """The peer cannot run here (package missing and not installable, binary absent, ...)."""


# ---------------------------------------------------------------------------- install


def package_installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False, timeout=30
    )
    return done.returncode == 0 and "install ok installed" in done.stdout


def ensure_package(package: str, binaries: Sequence[str]) -> None:
    """Install the Debian package with apt-get if `dpkg` does not have it; check the binaries."""
    if not package_installed(package):
        if os.geteuid() != 0:
            raise PeerUnavailable(f"Debian package {package} is not installed and this is not root to install it")
        log(f"installing Debian package {package} (apt-get install -y)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

        def apt_get(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, check=False, timeout=900)

        done = apt_get("install", "-y", "--no-install-recommends", package)
        if done.returncode != 0:
            # A fresh machine has no package lists yet: fetch them once and try again.
            apt_get("update")
            done = apt_get("install", "-y", "--no-install-recommends", package)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-5:])
            raise PeerUnavailable(f"apt-get install {package} failed ({done.returncode}): {tail}")
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        raise PeerUnavailable(f"package {package} is installed but {', '.join(missing)} is not on PATH")


# ---------------------------------------------------------------------------- processes


class PeerProcess:
    """A peer server in its own session, output in `log_path`; stopped by its PID."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, *, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, ready: Callable[[], bool], *, timeout_s: float = READY_TIMEOUT_S) -> PeerProcess:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.cwd, start_new_session=True
            )

        def probe() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchFailure(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                return ready()
            except (OSError, http.client.HTTPException):
                return False

        wait_for(f"{self.name} to be ready", probe, timeout_s=timeout_s, interval_s=0.1)
        return self

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system + times.children_user + times.children_system)

    def peak_rss_bytes(self) -> int:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.pid}) did not stop within {STOP_TIMEOUT_S:.0f} s of SIGTERM; killing it")
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def wait_size_stable(path: Path, *, quiet_s: float = 3.0, timeout_s: float = 120.0) -> int:
    """Bytes under `path` once they have not changed for `quiet_s` (background merges done)."""
    deadline = time.monotonic() + timeout_s
    last, since = dir_bytes(path), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = dir_bytes(path)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


# ---------------------------------------------------------------------------- HTTP


class Http:
    """A keep-alive HTTP/1.1 client to one 127.0.0.1 port; reconnects once if closed."""

    def __init__(self, port: int, *, timeout_s: float = 300.0) -> None:
        self.port = port
        self._timeout_s = timeout_s
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def request(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        body: bytes | Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, float]:
        """Status, body and latency in ms (request sent -> body read)."""
        url = path + ("?" + urllib.parse.urlencode(list(params)) if params else "")
        for attempt in (1, 2):
            began = time.perf_counter()
            try:
                self._conn.request(method, url, body=body, headers=dict(headers or {}))
                response = self._conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                # A failed exchange leaves http.client's connection unusable: start afresh.
                self._conn.close()
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self._timeout_s)
                stale = isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError)
                if attempt == 2 or not stale or (body is not None and not isinstance(body, bytes)):
                    raise
                continue
            return response.status, raw, (time.perf_counter() - began) * 1000
        raise AssertionError("unreachable")

    def get_json(self, path: str, params: Sequence[tuple[str, str]] = ()) -> tuple[Any, float]:
        status, raw, ms = self.request("GET", path, params)
        if status != 200:
            raise BenchFailure(f"GET {path} {dict(params)} answered HTTP {status}: {raw[:500]!r}")
        return json.loads(raw), ms

    def ok(self, path: str) -> bool:
        status, _, _ = self.request("GET", path)
        return status in (200, 204)

    def close(self) -> None:
        self._conn.close()


# ---------------------------------------------------------------------------- the peer interface


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerQuery:
    """One benchmark query in a peer's language and what its answer must hold: `series`
    result series with at least `min_points` points each (as `points_of` counts them)."""

    name: str
    description: str
    path: str
    params: tuple[tuple[str, str], ...]
    series: int
    min_points: int
    text: str
    note: str = ""


@dataclass(slots=True)
class LoadResult:
    """What loading took: wall seconds first byte -> load call returned, and what the peer's
    client side did (bytes sent, points)."""

    load_s: float
    client_cpu_s: float = 0.0
    tool_cpu_s: float = 0.0
    tool_peak_rss_bytes: int = 0
    notes: list[str] = field(default_factory=list)


class Peer(ABC):
    """One peer system; subclasses fill in the specifics."""

    name: str
    package: str
    binaries: tuple[str, ...]
    fmt: PeerFormat
    language: str

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process: PeerProcess | None = None
        self.http: Http | None = None

    def ensure_installed(self) -> None:
        ensure_package(self.package, self.binaries)

    def version(self) -> str:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", self.package], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    @abstractmethod
    def load(self, path: Path, sampler_progress: list[int]) -> LoadResult:
        """Load the dataset file; starts the server itself if the format needs it first
        (Prometheus starts over the blocks promtool made). Returns once the peer acknowledged
        every byte."""

    @abstractmethod
    def start(self) -> None:
        """Start the server on free 127.0.0.1 ports over a fresh data dir."""

    @abstractmethod
    def count_points(self, spec: WorkloadSpec, *, nocache: bool = True) -> tuple[int, float]:
        """Points stored over the dataset's span, and the query's latency (ms)."""

    @abstractmethod
    def queries(self, spec: WorkloadSpec) -> list[PeerQuery]: ...

    @abstractmethod
    def answer_shape(self, body: Any) -> list[int]:
        """Points per result series of a query's decoded answer."""

    @abstractmethod
    def data_bytes(self) -> dict[str, int]:
        """Bytes on disk after the peer flushed and compacted what it loaded: "total" (its
        whole data dir) and "data" (the sample files alone, without indexes, logs and
        preallocated files)."""

    @abstractmethod
    def freshness_probe(self, i: int, first_ms: int) -> tuple[float, Callable[[], bool]]:
        """Push one sample of series `bench_freshness`; (perf_counter at the ack, a probe that
        is true once the peer's query sees i + 1 samples of it)."""

    def run_query(self, q: PeerQuery) -> tuple[Any, float]:
        assert self.http is not None
        return self.http.get_json(q.path, q.params)

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.process is not None:
            self.process.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


# ---------------------------------------------------------------------------- the measurement


def wait_all_points(peer: Peer, spec: WorkloadSpec, expected: int, *, timeout_s: float) -> int:
    """Poll the peer's count over the span until it equals `expected` (spaced like bench.run's polls)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got, ms = peer.count_points(spec)
        if got == expected:
            return got
        if got > expected:
            raise BenchFailure(f"{peer.name}: counted {got:,} points over the span, more than the {expected:,} loaded")
        if time.monotonic() > deadline:
            raise BenchFailure(f"{peer.name}: only {got:,} of {expected:,} points queryable after {timeout_s:.0f} s")
        time.sleep(min(2.0, max(0.05, POLL_DUTY * ms / 1000)))


def run_peer_queries(peer: Peer, spec: WorkloadSpec, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in peer.queries(spec):
        body: Any = None
        for _ in range(WARMUP_REPS):
            body, _ = peer.run_query(q)
        shape = peer.answer_shape(body)
        if len(shape) != q.series or (shape and min(shape) < q.min_points):
            raise BenchFailure(
                f"{peer.name} {q.name} ({q.text}): {len(shape)} series with {min(shape, default=0)}+ points, "
                f"expected {q.series} with >= {q.min_points}"
            )
        latencies = [peer.run_query(q)[1] for _ in range(reps)]
        entry: dict[str, Any] = {"description": q.description, "query": q.text, **latency_summary(latencies)}
        entry["series"] = len(shape)
        entry["latencies_ms"] = [round(x, 3) for x in latencies]
        if q.note:
            entry["note"] = q.note
        out[q.name] = entry
        log(f"  {peer.name} {q.name}: median {entry['median_ms']:.1f} ms, p99 {entry['p99_ms']:.1f} ms")
    return out


def run_peer_freshness(peer: Peer, probes: int, *, timeout_s: float = 30.0) -> dict[str, Any]:
    return time_freshness(peer.name, peer.freshness_probe, probes, timeout_s=timeout_s)
