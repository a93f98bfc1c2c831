"""The client library: handles, the non-blocking hot path, StatsD delivery over UDP and Unix
datagram sockets, flushing at exit."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.aggregate import IntervalAggregator
from agent.client import Client, ClientConfig, parse_addr
from agent.statsd import StatsdMetric, parse_packet
from argus.launch import REPO_ROOT, argus_env
from core.errors import InvalidArgument
from core.model import MetricKind

TIMEOUT_S = 20.0


class Receiver:
    """A datagram socket standing in for the daemon: collects parsed metrics."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(0.2)
        self.metrics: list[StatsdMetric] = []
        self.bad = 0

    def receive_until(self, done: object, timeout_s: float = TIMEOUT_S) -> list[StatsdMetric]:
        """Read datagrams until `done(metrics)` is true (or fail after the deadline)."""
        deadline = time.monotonic() + timeout_s
        while not done(self.metrics):  # type: ignore[operator]
            if time.monotonic() > deadline:
                pytest.fail(f"timed out; received {self.metrics}")
            try:
                packet = self.sock.recv(65_535)
            except TimeoutError:
                continue
            got, bad = parse_packet(packet)
            self.metrics.extend(got)
            self.bad += bad
        return self.metrics


@pytest.fixture
def udp() -> Iterator[tuple[str, Receiver]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"udp://127.0.0.1:{sock.getsockname()[1]}", Receiver(sock)
    finally:
        sock.close()


def total(metrics: list[StatsdMetric], name: str) -> float:
    return sum(float(m.value) / m.sample_rate for m in metrics if m.name == name)


def test_handles_are_cached_and_validated() -> None:
    client = Client(ClientConfig(mode="off"))
    try:
        assert client.counter("hits", {"b": "2", "a": "1"}) is client.counter("hits", {"a": "1", "b": "2"})
        assert client.counter("hits").kind is not client.gauge("hits").kind
        with pytest.raises(InvalidArgument, match="does not match") as info:
            client.counter("9bad")
        assert info.value.parameter == "name"
        with pytest.raises(InvalidArgument, match="reserved"):
            client.gauge("g", {"region": "x"})
        with pytest.raises(InvalidArgument, match="cannot travel"):
            client.gauge("g", {"k": "a,b"})
        with pytest.raises(ValueError, match="negative"):
            client.counter("hits").inc(-1)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("addr", "message"),
    [("nowhere", "udp://host:port"), ("udp://h:0", "udp://host:port"), ("unix://", "socket path")],
)
def test_bad_addresses_are_refused_naming_the_parameter(addr: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        parse_addr(addr)
    assert info.value.parameter == "addr"
    with pytest.raises(InvalidArgument, match="ingest_addr and api_key"):
        Client(ClientConfig(mode="direct"))


def test_udp_delivery_from_many_threads_counts_every_increment(udp: tuple[str, Receiver]) -> None:
    addr, receiver = udp
    client = Client(ClientConfig(addr=addr, flush_interval_s=0.02))
    hits = client.counter("hits", {"route": "/a"})

    def work() -> None:
        for _ in range(20_000):
            hits.inc()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.flush()
    got = receiver.receive_until(lambda ms: total(ms, "hits") >= 80_000)
    assert total(got, "hits") == 80_000
    assert all(m.labels == (("route", "/a"),) for m in got)
    assert receiver.bad == 0
    client.close()
    assert client.stats.drained == 80_000


def test_gauges_keep_min_max_and_last_for_the_daemon(udp: tuple[str, Receiver]) -> None:
    addr, receiver = udp
    client = Client(ClientConfig(addr=addr, flush_interval_s=60))  # only explicit flushes
    temp = client.gauge("temp")
    for v in (5.0, -2.0, 9.0, 9.0, 3.0):
        temp.set(v)
    client.flush()
    got = receiver.receive_until(lambda ms: len(ms) >= 3)
    agg = IntervalAggregator(region="r", gauge_extremes=True)
    agg.add_many(got, 1_000.0)
    values = {s.metric: list(s.values) for s in agg.drain(1_000.0, force=True)}
    assert values == {"temp": [3.0], "temp.min": [-2.0], "temp.max": [9.0]}
    client.close()


def test_unix_datagram_delivery_and_timers_and_distinct(tmp_path: Path) -> None:
    path = str(tmp_path / "statsd.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    receiver = Receiver(sock)
    client = Client(ClientConfig(addr=f"unix://{path}", flush_interval_s=60, max_datagram_bytes=1024))
    try:
        lat = client.timer("lat_ms")
        for i in range(1_000):
            lat.observe(i / 4)
        users = client.distinct("users")
        for u in ("a", "b", "a"):
            users.add(u)
        client.flush()
        got = receiver.receive_until(lambda ms: len(ms) >= 1_002)
        assert sorted(float(m.value) for m in got if m.name == "lat_ms") == [i / 4 for i in range(1_000)]
        assert sorted(str(m.value) for m in got if m.name == "users") == ["a", "b"]
        assert client.stats.datagrams_sent > 1  # split to fit 1 KB datagrams
    finally:
        client.close()
        sock.close()


def test_no_daemon_listening_drops_quietly(tmp_path: Path) -> None:
    client = Client(ClientConfig(addr=f"unix://{tmp_path / 'absent.sock'}", flush_interval_s=60))
    client.counter("hits").inc()
    client.flush()
    client.close()
    assert client.stats.datagrams_dropped == 1


async def test_timer_context_manager_and_decorators_measure_milliseconds(udp: tuple[str, Receiver]) -> None:
    addr, receiver = udp
    client = Client(ClientConfig(addr=addr, flush_interval_s=60))
    t = client.timer("work_ms")

    with t.time():
        await asyncio.sleep(0.01)

    @t.time()
    def sync_work(x: int) -> int:
        return x + 1

    @t.time()
    async def async_work(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    assert sync_work(1) == 2
    assert await async_work(2) == 4
    await asyncio.to_thread(client.flush)
    got = await asyncio.to_thread(receiver.receive_until, lambda ms: len(ms) >= 3)
    values = [float(m.value) for m in got]
    assert values[0] >= 10.0
    assert values[1] < 10.0
    assert values[2] >= 10.0
    await asyncio.to_thread(client.close)


def test_pending_writes_are_flushed_when_the_program_ends(udp: tuple[str, Receiver]) -> None:
    addr, receiver = udp
    script = "import agent; c = agent.counter('exit_hits'); [c.inc(2) for _ in range(1000)]"
    env = {**argus_env(), "ARGUS_AGENT_ADDR": addr}
    env.pop("ARGUS_AGENT_MODE", None)
    subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, check=True, timeout=60)
    got = receiver.receive_until(lambda ms: total(ms, "exit_hits") >= 2_000)
    assert total(got, "exit_hits") == 2_000


def test_a_write_costs_far_less_than_a_send() -> None:
    """The hot path only appends: a generous bound that still fails if a write did I/O. This
    thread's CPU time, not wall time: other processes on a busy machine do not count."""
    client = Client(ClientConfig(mode="off", flush_interval_s=60))
    hits = client.counter("hits")
    n = 20_000
    start = time.thread_time()
    for _ in range(n):
        hits.inc()
    per_call_us = (time.thread_time() - start) / n * 1e6
    client.close()
    assert per_call_us < 20, f"inc() took {per_call_us:.2f} us"
    assert client.stats.drained == n


def test_configure_switches_transport_and_handles_keep_working(udp: tuple[str, Receiver]) -> None:
    addr, receiver = udp
    client = Client(ClientConfig(mode="off", flush_interval_s=60))
    hits = client.counter("hits")
    hits.inc(5)
    client.configure(ClientConfig(addr=addr, flush_interval_s=60))
    hits.inc(7)
    client.flush()
    got = receiver.receive_until(lambda ms: total(ms, "hits") >= 7)
    assert total(got, "hits") == 7  # the 5 went the old way (nowhere)
    client.close()


def test_from_env_reads_the_documented_variables() -> None:
    config = ClientConfig.from_env(
        {"ARGUS_AGENT_MODE": "direct", "ARGUS_INGEST_ADDR": "127.0.0.1:1", "ARGUS_API_KEY": "k", "ARGUS_REGION": "eu-1"}
    )
    assert (config.mode, config.ingest_addr, config.api_key, config.region) == ("direct", "127.0.0.1:1", "k", "eu-1")
    assert ClientConfig.from_env({}).addr == "udp://127.0.0.1:8125"
    assert MetricKind.COUNTER  # the kinds the handles map to
