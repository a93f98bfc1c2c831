"""TLS end to end: `argus up` with a certificate from a throwaway CA (trustme), and every client
(`argus push`, `argus query`, `argus agent`, plain HTTPS and gRPC) reaching it over TLS;
plaintext to a TLS port fails; under mutual TLS a client without a certificate is refused."""

from __future__ import annotations

import json
import secrets
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.launch import REPO_ROOT, AgentProcess, argus_argv, argus_env, up_argv
from tests.e2e.conftest import free_port, run_argus, wait_for

pytestmark = pytest.mark.e2e

READY_S = 60.0


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("argus-client@example.com")
    paths = Pki(
        ca=root / "ca.pem",
        cert=root / "server.pem",
        key=root / "server.key",
        client_cert=root / "client.pem",
        client_key=root / "client.key",
    )
    ca.cert_pem.write_to_path(str(paths.ca))
    server.private_key_pem.write_to_path(str(paths.key))
    server.cert_chain_pems[0].write_to_path(str(paths.cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(paths.cert), append=True)
    client.private_key_pem.write_to_path(str(paths.client_key))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    return paths


class TlsServer:
    """`argus up --no-collector` with TLS on every listener."""

    def __init__(self, work: Path, pki: Pki, *, mutual: bool, collector: bool = False) -> None:
        self.pki = pki
        self.mutual = mutual
        self.api_key = "argus_tls_" + secrets.token_hex(12)
        self.ingest_port, self.query_port, self.http_port = free_port(), free_port(), free_port()
        self.log_path = work / "up.log"
        extra = ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]
        if mutual:
            extra += ["--tls-client-ca", str(pki.ca)]
        argv = up_argv(
            data_dir=work / "data",
            ingest_port=self.ingest_port,
            query_port=self.query_port,
            http_port=self.http_port,
            api_key=self.api_key,
            extra=tuple(extra),
        )
        env = argus_env()
        if collector:
            argv.remove("--no-collector")
            env["ARGUS_COLLECTOR_INTERVAL_S"] = "1"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"argus up exited with {self.proc.returncode}:\n{self.log_tail()}")
            return self.https_status("/readyz", client_cert=True) == 200

        wait_for("argus up over TLS", ready, timeout_s=READY_S, interval_s=0.2)

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-60:])

    def context(self, *, client_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if client_cert:
            context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        return context

    def https_status(self, path: str, *, client_cert: bool, key: str | None = None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        request = urllib.request.Request(f"https://127.0.0.1:{self.http_port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5, context=self.context(client_cert=client_cert)) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def client_flags(self, *, client_cert: bool = True) -> list[str]:
        flags = ["--tls-ca", str(self.pki.ca)]
        if client_cert:
            flags += ["--tls-cert", str(self.pki.client_cert), "--tls-key", str(self.pki.client_key)]
        return flags

    def push(self, path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
        target = f"127.0.0.1:{self.ingest_port}"
        return run_argus("push", str(path), "--ingest", target, "--api-key", self.api_key, *flags, timeout_s=60)

    def query(self, metric: str, *flags: str) -> subprocess.CompletedProcess[str]:
        http = f"https://127.0.0.1:{self.http_port}"
        return run_argus(
            "query", metric, "--http", http, "--api-key", self.api_key, "--since", "2h", "--json", *flags, timeout_s=60
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path_factory.mktemp("tls"), pki, mutual=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsServer]:
    server = TlsServer(tmp_path_factory.mktemp("mtls"), pki, mutual=True)
    yield server
    server.stop()


def _samples(path: Path, metric: str, count: int) -> Path:
    now_ms = int(time.time() * 1000)
    lines = [
        json.dumps({"metric": metric, "kind": "counter", "labels": {"n": str(i)}, "ts": now_ms - 60_000, "value": 1})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _total(answer: subprocess.CompletedProcess[str]) -> float | None:
    if answer.returncode != 0:
        return None
    body = json.loads(answer.stdout)
    return sum(p[1] or 0 for s in body["series"] for p in s["points"]) if body["series"] else None


def _grpc_health(port: int, credentials: grpc.ChannelCredentials | None) -> bool:
    target = f"127.0.0.1:{port}"
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        except grpc.RpcError:
            return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def test_push_and_query_work_over_tls(tls_server: TlsServer, tmp_path: Path) -> None:
    pushed = tls_server.push(_samples(tmp_path / "s.ndjson", "tls_pushed", 20), *tls_server.client_flags())
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "20 accepted" in pushed.stdout.replace(",", "")
    # "--agg increase" sums the counter's deltas: 20 series x 1.
    total = wait_for(
        "pushed samples visible over HTTPS",
        lambda: _total(tls_server.query("tls_pushed", "--agg", "sum", "--period", "1m", *tls_server.client_flags())),
        timeout_s=60,
        interval_s=0.3,
    )
    assert total == 20
    ca = tls_server.pki.ca.read_bytes()
    assert _grpc_health(tls_server.query_port, grpc.ssl_channel_credentials(root_certificates=ca))


def test_plaintext_to_a_tls_port_fails(tls_server: TlsServer, tmp_path: Path) -> None:
    samples = _samples(tmp_path / "s.ndjson", "tls_plain", 3)
    pushed = tls_server.push(samples)  # no TLS flags: a plaintext gRPC channel
    assert pushed.returncode != 0
    assert "0 accepted" not in pushed.stdout  # it never got an answer at all
    assert not _grpc_health(tls_server.ingest_port, None)
    assert not _grpc_health(tls_server.query_port, None)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{tls_server.http_port}/healthz", timeout=5)
    queried = run_argus("query", "tls_plain", "--http", f"http://127.0.0.1:{tls_server.http_port}", "--api-key", "k")
    assert queried.returncode != 0
    # A client that does not trust the CA is refused too (no silent fallback to "insecure").
    untrusted = tls_server.push(samples, "--tls")
    assert untrusted.returncode != 0


def test_agent_sends_over_tls(tls_server: TlsServer, tmp_path: Path) -> None:
    agent = AgentProcess(
        tmp_path,
        "tls-agent",
        ingest=f"127.0.0.1:{tls_server.ingest_port}",
        api_key=tls_server.api_key,
        settings={"tls_ca_file": str(tls_server.pki.ca), "interval_s": 1.0, "batch_interval_s": 0.2, "fsync": False},
    ).start()
    try:
        # The agent's own metrics (self_metrics) are its first batches; accepted means delivered.
        wait_for("the agent's samples accepted", lambda: agent.counter("accepted_samples") >= 1, timeout_s=60)
        assert agent.counter("stream_failures") == 0
        spooled = [p for p in agent.spool_dir.rglob("*") if p.is_file()]
        assert spooled and not [p for p in spooled if p.stat().st_mode & 0o077], "the spool is private"
    finally:
        agent.stop()


def test_mutual_tls_refuses_clients_without_a_certificate(mtls_server: TlsServer, tmp_path: Path) -> None:
    samples = _samples(tmp_path / "s.ndjson", "mtls_pushed", 5)
    refused = mtls_server.push(samples, *mtls_server.client_flags(client_cert=False))
    assert refused.returncode != 0
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        mtls_server.https_status("/healthz", client_cert=False)
    ca = mtls_server.pki.ca.read_bytes()
    assert not _grpc_health(mtls_server.query_port, grpc.ssl_channel_credentials(root_certificates=ca))

    accepted = mtls_server.push(samples, *mtls_server.client_flags())
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert mtls_server.https_status("/healthz", client_cert=True) == 200
    total = wait_for(
        "pushed samples visible over mutual TLS",
        lambda: _total(mtls_server.query("mtls_pushed", "--agg", "sum", "--period", "1m", *mtls_server.client_flags())),
        timeout_s=60,
        interval_s=0.3,
    )
    assert total == 5


def test_the_up_collector_pushes_over_mutual_tls(tmp_path: Path, pki: Pki) -> None:
    server = TlsServer(tmp_path, pki, mutual=True, collector=True)
    try:
        wait_for(
            "this host's metrics, pushed by argus up's collector over mutual TLS",
            lambda: _total(server.query("host_cpu_percent", "--agg", "count", *server.client_flags())),
            timeout_s=60,
            interval_s=0.5,
        )
    finally:
        server.stop()


@pytest.mark.parametrize("flag", ["--ingest-addr", "--query-addr", "--http-addr"])
def test_up_refuses_a_non_loopback_address_without_tls(tmp_path: Path, flag: str) -> None:
    port = free_port()
    defaults = {"--ingest-addr": free_port(), "--query-addr": free_port(), "--http-addr": free_port()}
    args = ["up", "--no-collector", "--data-dir", str(tmp_path / "data")]
    for name, default_port in defaults.items():
        args += [name, f"0.0.0.0:{port}" if name == flag else f"127.0.0.1:{default_port}"]
    refused = subprocess.run(
        argus_argv(*args), cwd=REPO_ROOT, env=argus_env(), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    output = " ".join((refused.stdout + refused.stderr).split())
    assert "without TLS" in output and "allow_insecure_bind" in output and "--tls-cert" in output
    assert not (tmp_path / "data").exists(), "nothing may start before the check"
