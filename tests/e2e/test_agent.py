"""`argus agent` end to end: a real `argus up`, real agent processes, StatsD over UDP.

The agent runs with short intervals (aggregate 1 s, batch every 0.2 s). A small TCP gate
sits between the agent and ingest where a test needs to cut ingest off without restarting
it (closed: connections refused; deaf: requests reach ingest, its answers are dropped).
"""

from __future__ import annotations

import contextlib
import http.server
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from argus.launch import AgentExited, AgentProcess
from tests.e2e.conftest import ArgusServer, free_port, wait_for

pytestmark = pytest.mark.e2e

AGENT_TIMEOUT_S = 60.0
# Short intervals and backoffs so outages and recoveries take seconds, not minutes.
FAST_AGENT: dict[str, object] = {
    "interval_s": 1.0,
    "batch_interval_s": 0.2,
    "outage_batch_interval_s": 0.5,
    "timeout_s": 30.0,
    "initial_backoff_s": 0.1,
    "max_backoff_s": 0.5,
    "fsync": False,
}


# ---------------------------------------------------------------------------- helpers


class Gate:
    """A TCP forwarder 127.0.0.1:port -> upstream that a test can close or make deaf."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.mode = "open"
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.open()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def open(self) -> None:
        self._drop_connections()
        self.mode = "open"
        if self._listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(16)
            self._listener = listener
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Refuse new connections and cut the live ones (ingest looks down)."""
        self.mode = "closed"
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would not on Linux.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        self._drop_connections()

    def deafen(self) -> None:
        """Keep forwarding requests but drop every answer (acks get lost)."""
        self.mode = "deaf"

    def shutdown(self) -> None:
        self.close()

    def _drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        try:
            while True:
                ready, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is server and self.mode == "deaf":
                        continue
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (client, server):
                sock.close()


class Agent(AgentProcess):
    """One `argus agent` process (restartable on the same spool dir), tuned for fast tests."""

    def __init__(self, tmp: Path, name: str, ingest: str, api_key: str, *, toml: str = "") -> None:
        super().__init__(tmp, name, ingest=ingest, api_key=api_key, settings=FAST_AGENT, extra_toml=toml)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def start(self, *, timeout_s: float = AGENT_TIMEOUT_S) -> Self:
        try:
            return super().start(timeout_s=timeout_s)
        except AgentExited as exc:
            pytest.fail(str(exc))

    def wait(self, what: str, probe: Callable[[dict[str, Any]], bool], timeout_s: float = AGENT_TIMEOUT_S) -> None:
        wait_for(f"{self.name}: {what}", lambda: probe(self.status()) or None, timeout_s=timeout_s)

    def wait_spooled(self, metrics: int) -> None:
        """Until the agent has parsed `metrics` StatsD metrics and spooled all of them."""

        def done(s: dict[str, Any]) -> bool:
            return bool(s) and s["counters"]["statsd_metrics"] >= metrics and s["gauges"]["aggregator_series"] == 0

        self.wait(f"{metrics} statsd metrics spooled", done)

    def wait_drained(self) -> None:
        self.wait("spool drained", lambda s: bool(s) and s["gauges"]["spool_pending_batches"] == 0)

    def send(self, lines: list[str], per_packet: int = 20) -> None:
        for start in range(0, len(lines), per_packet):
            packet = "\n".join(lines[start : start + per_packet]).encode()
            self._sock.sendto(packet, ("127.0.0.1", self.port))

    def stop(self, timeout_s: float = 30.0) -> bool:
        if not super().stop(timeout_s):
            pytest.fail(f"agent did not stop within {timeout_s:.0f} s of SIGTERM:\n{self.log_tail()}")
        return True

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._sock.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    made: list[Agent] = []

    def make(name: str, ingest: str, api_key: str, *, toml: str = "") -> Agent:
        agent = Agent(tmp_path, name, ingest, api_key, toml=toml)
        made.append(agent)
        return agent

    try:
        yield make
    finally:
        for agent in made:
            agent.close()


@pytest.fixture
def gate(argus_server: ArgusServer) -> Iterator[Gate]:
    g = Gate(("127.0.0.1", argus_server.ingest_port))
    try:
        yield g
    finally:
        g.shutdown()


def total(server: ArgusServer, metric: str, *where: str, agg: str = "sum") -> float:
    params = [("metric", metric), ("agg", agg), ("period", "1h"), ("start", "now-2h"), ("end", "now+1h")]
    params += [("where", w) for w in where]
    return server.total(params)


def wait_total(server: ArgusServer, expected: float, metric: str, *where: str, agg: str = "sum") -> None:
    wait_for(
        f"{agg} of {metric} {where} == {expected}",
        lambda: total(server, metric, *where, agg=agg) == expected,
        timeout_s=AGENT_TIMEOUT_S,
    )


def counter_lines(metric: str, count: int, *, tags: str = "") -> list[str]:
    suffix = f"|#{tags}" if tags else ""
    return [f"{metric}:1|c{suffix}" for _ in range(count)]


# ---------------------------------------------------------------------------- tests


def test_ingest_outage_spools_then_everything_arrives_exactly_once(
    server_factory: Callable[[], ArgusServer], agents: Callable[..., Agent]
) -> None:
    server = server_factory().start()
    agent = agents("outage", server.ingest_target, server.api_key).start()
    agent.send(counter_lines("e2e_outage", 200, tags="phase:before"))
    wait_total(server, 200, "e2e_outage", "phase=before")

    server.stop()
    for second in range(3):  # several intervals while ingest is down
        agent.send(counter_lines("e2e_outage", 100, tags=f"phase:during,second:{second}"))
        time.sleep(0.4)
    agent.wait_spooled(500)
    down = agent.status()
    assert down["gauges"]["spool_pending_batches"] >= 2, down
    assert down["gauges"]["spool_bytes"] > 0
    assert down["gauges"]["batch_interval_s"] == 0.5, "ingest down: denser outage batches"

    server.start(same_ports=True)
    agent.send(counter_lines("e2e_outage", 50, tags="phase:after"))
    agent.wait_drained()
    server.barrier("outage")
    assert total(server, "e2e_outage", "phase=before") == 200
    assert total(server, "e2e_outage", "phase=during") == 300
    wait_total(server, 50, "e2e_outage", "phase=after")
    status = agent.status()
    assert status["counters"]["stream_failures"] >= 1
    assert status["counters"]["spool_dropped_batches"] == 0
    assert "push stream failed, will reconnect" in agent.log_text()


def test_kill9_between_spool_and_ack_loses_nothing_and_doubles_nothing(
    argus_server: ArgusServer, gate: Gate, agents: Callable[..., Agent]
) -> None:
    agent = agents("kill9", gate.target, argus_server.api_key).start()
    agent.send(counter_lines("e2e_kill9", 100, tags="phase:warm"))
    wait_total(argus_server, 100, "e2e_kill9", "phase=warm")

    # 1. Ingest has the batches but the agent never hears back: they stay in the spool.
    gate.deafen()
    agent.send(counter_lines("e2e_kill9", 150, tags="phase:unanswered"))
    wait_total(argus_server, 150, "e2e_kill9", "phase=unanswered")
    agent.wait_spooled(250)
    assert agent.gauge("spool_pending_batches") >= 1
    agent.kill9()

    # 2. Spooled but never sent: ingest unreachable, then kill -9 again.
    gate.close()
    agent.start()
    agent.send(counter_lines("e2e_kill9", 120, tags="phase:unsent"))
    agent.wait_spooled(120)
    assert agent.gauge("spool_pending_batches") >= 2  # the unanswered ones and the new
    agent.kill9()

    gate.open()
    agent.start()
    agent.wait_drained()
    argus_server.barrier("kill9")
    assert total(argus_server, "e2e_kill9", "phase=warm") == 100
    assert total(argus_server, "e2e_kill9", "phase=unanswered") == 150, "resent batches are counted once"
    assert total(argus_server, "e2e_kill9", "phase=unsent") == 120
    assert agent.counter("duplicate_batches") >= 1, "ingest saw the unanswered batches again"


def test_full_spool_drops_the_oldest_batches_and_counts_them(
    argus_server: ArgusServer, gate: Gate, agents: Callable[..., Agent]
) -> None:
    cap = 64 * 1024
    toml = f'spool_max_bytes = {cap}\nmax_batch_bytes = "16KiB"\ncompression = "none"\nself_metrics = false'
    gate.close()
    agent = agents("cap", gate.target, argus_server.api_key, toml=toml).start()
    agent.send(counter_lines("e2e_cap_old", 20))
    agent.wait_spooled(20)
    sent = 20
    for round_ in range(40):  # ~1,000 new series per round, ~50 KB per round
        agent.send([f"e2e_cap_fill:1|c|#round:r{round_},slot:s{i}" for i in range(1000)], per_packet=40)
        sent += 1000
        agent.wait_spooled(sent)
        if agent.counter("spool_dropped_batches") >= 3:
            break
    agent.send(counter_lines("e2e_cap_new", 30))
    agent.wait_spooled(sent + 30)
    status = agent.status()
    assert status["counters"]["spool_dropped_batches"] >= 3, status
    assert status["counters"]["spool_dropped_samples"] > 0
    assert status["gauges"]["spool_bytes"] <= cap
    assert "spool is full, dropped its oldest segment" in agent.log_text()

    gate.open()
    agent.wait_drained()
    argus_server.barrier("cap")
    assert total(argus_server, "e2e_cap_new") == 30, "the newest batches are kept"
    assert total(argus_server, "e2e_cap_old") == 0, "the oldest batch was dropped"


class _Exposition(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args: Any) -> None:
        pass


def test_malformed_lines_are_counted_and_skipped_and_scrapes_arrive_as_deltas(
    argus_server: ArgusServer, agents: Callable[..., Agent]
) -> None:
    def expose(requests: int) -> None:
        _Exposition.body = (
            f"# TYPE e2e_scrape_requests_total counter\ne2e_scrape_requests_total {requests}\n"
            "# TYPE e2e_scrape_temp gauge\ne2e_scrape_temp 21.5\n"
        ).encode()

    expose(100)
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exposition)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{web.server_address[1]}/metrics"
        toml = f'[[scrape]]\nurl = "{url}"\ninterval_s = 0.3\nlabels = {{ job = "e2e" }}'
        agent = agents("malformed", argus_server.ingest_target, argus_server.api_key, toml=toml).start()
        bad = [
            "no colon at all",
            "e2e_bad:1|x",
            "e2e_bad:-1|c",
            "e2e_bad:abc|g",
            "e2e_bad:1|c|#tagwithoutvalue",
            "_e{5,4}:title|text",
            "bad name!:1|c",
        ]
        packets = []
        for i in range(30):
            packets.append(
                "\n".join(["e2e_good:1|c|#k:v", bad[i % len(bad)], f"e2e_good_lat:{i}|ms", "e2e_good_g:7|g"])
            )
        for packet in packets:
            agent.send([packet], per_packet=1)
        agent.wait_spooled(90)
        assert agent.counter("statsd_malformed_lines") == 30
        wait_total(argus_server, 30, "e2e_good", "k=v")
        wait_total(argus_server, 30, "e2e_good_lat", agg="count")
        wait_for(
            "the agent's own malformed-line counter in argus",
            lambda: total(argus_server, "argus_agent_statsd_malformed_lines", "host=malformed") == 30,
            timeout_s=AGENT_TIMEOUT_S,
        )
        assert "malformed statsd lines skipped" in agent.log_text()

        # A line that parses but that ingest refuses (e2e_good is a counter, not a gauge) is
        # a permanent rejection: logged, counted, removed from the spool, never blocking.
        agent.send(["e2e_good:5|g|#k:v"])
        agent.wait("the rejection counted", lambda s: bool(s) and s["counters"]["rejected_samples"] >= 1)
        agent.wait_drained()
        assert "kind_conflict" in agent.status()["rejection_reasons"]
        assert "ingest rejected" in agent.log_text()
        agent.send(counter_lines("e2e_good", 5, tags="k:v"))
        wait_total(argus_server, 35, "e2e_good", "k=v")

        # Prometheus counters: the first scrape is a baseline, then deltas, resets included.
        agent.wait("two scrapes", lambda s: bool(s) and s["counters"]["scrapes"] >= 2)
        expose(160)
        wait_total(argus_server, 60, "e2e_scrape_requests_total", "job=e2e")
        expose(5)  # the exporter restarted
        wait_total(argus_server, 65, "e2e_scrape_requests_total", "job=e2e")
        assert total(argus_server, "e2e_scrape_temp", "job=e2e", agg="max") == 21.5
    finally:
        web.shutdown()
        web.server_close()


def test_statsd_burst_of_100k_lines_in_a_second_is_counted_without_loss(
    argus_server: ArgusServer, agents: Callable[..., Agent]
) -> None:
    agent = agents("burst", argus_server.ingest_target, argus_server.api_key).start()
    lines = [f"e2e_burst:1|c|#slot:s{i % 100}" for i in range(100_000)]
    started = time.perf_counter()
    for chunk in range(10):  # 10 slices of 10k lines, paced over one second
        agent.send(lines[chunk * 10_000 : (chunk + 1) * 10_000], per_packet=40)
        time.sleep(max(0.0, started + (chunk + 1) * 0.1 - time.perf_counter()))
    agent.wait_spooled(100_000)
    status = agent.status()
    assert status["counters"]["statsd_metrics"] == 100_000
    assert status["counters"].get("statsd_socket_drops", 0) == 0
    wait_total(argus_server, 100_000, "e2e_burst")
