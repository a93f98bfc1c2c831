"""The distributed deployment end to end: Kafka (tansu), DynamoDB Local and S3 (SeaweedFS).

Every Argus service runs as its own process, configured only by environment, the way a
fleet runs them: two `argus ingest`, two `argus project` (one consumer group), one
`argus query-server`. Pushes alternate between the two ingests; one projector reaches
DynamoDB through a proxy that throttles a share of its requests (the real server answers
the rest); the other projector is killed with SIGKILL mid-stream, so its partitions move to
the throttled one. Every tier must then hold exactly the data set. `argus replay` then
rebuilds the read model into fresh tables, which must equal the live ones chunk for chunk.
A second stack runs tansu on its S3 storage engine and restarts the broker (SIGKILL)
between two halves of a push: nothing acknowledged may be lost.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from aiohttp import ClientSession, web

from argus.launch import REPO_ROOT, argus_argv, argus_env
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.dynamodb_hot_store import DynamoDBHotStore
from core.model import DEFAULT_TIERS
from core.ports import StoredChunk
from core.read_models import versioned_store_url
from tests.e2e import expected as ref
from tests.e2e.conftest import ArgusServer, measured, wait_for
from tests.e2e.test_crash_recovery import _exactness_problems
from tests.services.base import ManagedProcess, free_port, port_open
from tests.services.dynamodb import DynamoDBLocal
from tests.services.kafka import S3Storage, TansuBroker
from tests.services.s3 import SeaweedS3

pytestmark = pytest.mark.e2e

READY_S = 90.0
SERIES = 48
SAMPLES_PER_SERIES = 360
BATCH_SAMPLES = 360
THROTTLE_EVERY = 4  # the proxy refuses every 4th DynamoDB request of its projector
# Operations the proxy throttles (table management passes: a fleet's steady state is reads and writes).
DATA_PLANE = frozenset(
    ("PutItem", "UpdateItem", "GetItem", "Query", "BatchWriteItem", "BatchGetItem", "TransactWriteItems", "Scan")
)


# ------------------------------------------------------------------ throttling proxy


class ThrottlingProxy:
    """HTTP proxy in front of DynamoDB Local that answers every Nth request with DynamoDB's
    own throttling error (HTTP 400, ProvisionedThroughputExceededException); the others
    are forwarded unchanged. Runs its own event loop in a thread."""

    def __init__(self, upstream: str, *, every: int) -> None:
        self.upstream = upstream
        self.every = every
        self.port = free_port()
        self.requests = 0
        self.throttled = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="throttling-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        target = request.headers.get("X-Amz-Target", "")
        if self.requests % self.every == 0 and not target.endswith(
            ("CreateTable", "DescribeTable", "UpdateTimeToLive")
        ):
            self.throttled += 1
            return web.json_response(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "message": "The level of configured provisioned throughput for the table was exceeded.",
                },
                status=400,
                content_type="application/x-amz-json-1.0",
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.post(self.upstream + request.path_qs, data=body, headers=headers) as answer:
            payload = await answer.read()
            out_headers = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("content-type", "x-amzn-requestid", "x-amz-crc32")
            }
            return web.Response(body=payload, status=answer.status, headers=out_headers)

    async def _start(self) -> None:
        self._session = ClientSession()
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def start(self) -> ThrottlingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# ------------------------------------------------------------------ the stack


@dataclass
class Stack:
    """Argus services as separate processes sharing one event log and one store."""

    work: Path
    env: dict[str, str]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    api_key: str = ""

    def __post_init__(self) -> None:
        # The stack's own data dir (alerts.db, keys), never the checkout's ./.argus that other
        # tests and `make run` use.
        self.env.setdefault("ARGUS_DATA_DIR", str(self.work / "argus-data"))

    def run(self, *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 120.0) -> str:
        done = subprocess.run(
            argus_argv(*args),
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        assert done.returncode == 0, f"argus {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str, ready_port: int | None = None, env: Mapping[str, str] | None = None) -> None:
        log_path = self.work / f"{name}.log"

        def ready() -> bool:
            if ready_port is not None:
                return port_open(ready_port)
            return "ready (pid" in log_path.read_text(errors="replace") if log_path.exists() else False

        self.processes[name] = ManagedProcess(
            name,
            argus_argv(*args),
            log_path=log_path,
            ready=ready,
            env={**self.env, **(env or {})},
            cwd=REPO_ROOT,
            ready_timeout_s=READY_S,
        ).start()

    def start_ingest(self, name: str) -> int:
        """An `argus ingest` on a free port; its port."""
        port = free_port()
        self.start(name, "ingest", "--ingest-addr", f"127.0.0.1:{port}", ready_port=port)
        return port

    def start_query(self) -> tuple[int, int]:
        """The `argus query-server`; its (gRPC, HTTP) ports."""
        query_port, http_port = free_port(), free_port()
        addrs = ("--query-addr", f"127.0.0.1:{query_port}", "--http-addr", f"127.0.0.1:{http_port}")
        self.start("query", "query-server", *addrs, ready_port=http_port)
        return query_port, http_port

    def logs(self) -> str:
        return "\n".join(f"----- {n}\n{p.log_tail(60)}" for n, p in self.processes.items())

    def close(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()


def _base_env(event_log: str, store: str, cold: str, s3: SeaweedS3) -> dict[str, str]:
    env = argus_env()
    env.update(s3.credentials.env())
    env.update(
        {
            "ARGUS_EVENT_LOG_URL": event_log,
            "ARGUS_HOT_STORE_URL": store,
            "ARGUS_COLD_STORE_URL": cold,
            "ARGUS_FLUSH_INTERVAL_MS": "200",
        }
    )
    return env


def _client(stack: Stack, *, ingest_port: int, query_port: int, http_port: int) -> ArgusServer:
    """An ArgusServer used only for its clients (push, query, barrier) against the stack."""
    client = ArgusServer(stack.work / "client", api_key=stack.api_key)
    client.ingest_port, client.query_port, client.http_port = ingest_port, query_port, http_port
    return client


def _push(client: ArgusServer, batches: list[metrics_pb2.SampleBatch], *, attempts_s: float = 60.0) -> None:
    """PushBatch each batch, retrying what a retry can fix (a broker restart, a failover)."""
    for batch in batches:
        deadline = time.monotonic() + attempts_s
        while True:
            try:
                result = client.push_batch(batch)
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            assert result.status == ingest_pb2.BATCH_STATUS_ACCEPTED, result
            break


def _dataset(seed: int) -> ref.Dataset:
    return ref.big_dataset(
        now_ms=time.time_ns() // 1_000_000, series_count=SERIES, samples_per_series=SAMPLES_PER_SERIES, seed=seed
    )


def _all_chunks(url: str, ds_range: tuple[int, int]) -> dict[tuple[str, int, int], StoredChunk]:
    async def read() -> dict[tuple[str, int, int], StoredChunk]:
        store = DynamoDBHotStore.from_url(url, tiers=DEFAULT_TIERS)
        await store.start()
        try:
            ids = sorted(r.series_id for r in await store.tenant_series())
            out: dict[tuple[str, int, int], StoredChunk] = {}
            for tier in DEFAULT_TIERS:
                start = tier.chunk_start(ds_range[0])
                for chunk in await store.read_range(tier.name, ids, start, ds_range[1], tier.chunk_span_ms):
                    out[(tier.name, chunk.series_id, chunk.chunk_start_ms)] = chunk
            return out
        finally:
            await store.close()

    return asyncio.run(read())


# ------------------------------------------------------------------ two of each, a kill, throttling


@dataclass
class FleetRun:
    stack: Stack
    client: ArgusServer
    dataset: ref.Dataset
    proxy: ThrottlingProxy
    store_url: str


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_broker: TansuBroker,
    dynamodb_local: DynamoDBLocal,
    s3_server: SeaweedS3,
) -> Iterator[FleetRun]:
    work = tmp_path_factory.mktemp("fleet")
    run_id = secrets.token_hex(4)
    bucket = s3_server.create_bucket(f"argus-cold-{run_id}")
    store_url = dynamodb_local.url(prefix=f"fleet{run_id}_")
    env = _base_env(kafka_broker.url(client_id=f"fleet-{run_id}"), store_url, s3_server.url(bucket, "cold"), s3_server)
    stack = Stack(work=work, env=env)
    proxy = ThrottlingProxy(dynamodb_local.endpoint, every=THROTTLE_EVERY).start()
    try:
        stack.api_key = stack.run("keys", "create", "--tenant", "default", "--name", "fleet").strip().splitlines()[-1]
        ingest_ports = [stack.start_ingest(f"ingest-{n}") for n in range(2)]
        throttled_store = store_url.replace(dynamodb_local.endpoint, proxy.endpoint)
        stack.start("project-a", "project", "--projector", "all", env={"ARGUS_HOT_STORE_URL": throttled_store})
        stack.start("project-b", "project", "--projector", "all")
        query_port, http_port = stack.start_query()
        clients = [_client(stack, ingest_port=p, query_port=query_port, http_port=http_port) for p in ingest_ports]
        ds = _dataset(seed=31)
        batches = ref.to_batches(ds, source="fleet", prefix="fleet", max_samples=BATCH_SAMPLES)
        half = len(batches) // 2
        t0 = time.monotonic()
        for i, client in enumerate(clients):
            _push(client, batches[:half][i::2])
        owns = re.compile(r"group rollups on argus\.samples\.v1: assigned partitions \[\d")
        wait_for(
            "project-b to own some partitions",
            lambda: owns.search(stack.processes["project-b"].log_path.read_text(errors="replace")),
            timeout_s=READY_S,
        )
        stack.processes["project-b"].kill()  # kill -9 mid-stream: its partitions move to project-a
        for i, client in enumerate(clients):
            _push(client, batches[half:][i::2])
        clients[0].barrier("fleet")
        measured("fleet_push_to_visible_s", round(time.monotonic() - t0, 2))
        measured("fleet_dynamodb_requests_throttled", f"{proxy.throttled} of {proxy.requests}")
        yield FleetRun(stack=stack, client=clients[0], dataset=ds, proxy=proxy, store_url=store_url)
    finally:
        stack.close()
        proxy.stop()


def test_two_ingests_two_projectors_kill_9_and_throttling_are_exact(fleet: FleetRun) -> None:
    problems = _exactness_problems(fleet.client, fleet.dataset)
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:30]) + "\n" + fleet.stack.logs()
    assert fleet.proxy.throttled > 0, "the proxy throttled nothing: the test did not test throttling"


def test_replay_rebuilds_an_identical_read_model_and_switches_readers(fleet: FleetRun) -> None:
    first, last = fleet.dataset.span_ms()
    params = [
        ("metric", "e2e_crash_counter"),
        ("agg", "sum"),
        ("period", "1h"),
        ("start", str(first)),
        ("end", str(last)),
    ]
    before = fleet.client.query(params)
    out = fleet.stack.run("replay", "--projector", "rollups", "--from-beginning", timeout_s=300.0)
    measured("replay_output_tail", out.strip().splitlines()[-1:] if out.strip() else "")
    live = _all_chunks(fleet.store_url, (first, last + 1))
    rebuilt = _all_chunks(versioned_store_url(fleet.store_url, 2), (first, last + 1))
    assert live, "the live read model is empty"
    assert set(rebuilt) == set(live), f"keys differ: {len(set(rebuilt) ^ set(live))} of {len(live)}"
    differing = [k for k in live if live[k].data != rebuilt[k].data]
    assert not differing, f"{len(differing)} chunks differ, e.g. {differing[:5]}"

    def switched() -> bool:
        after = fleet.client.query(
            [
                ("metric", "e2e_crash_counter"),
                ("agg", "sum"),
                ("period", "1h"),
                ("start", str(first)),
                ("end", str(last)),
            ]
        )
        log = fleet.stack.processes["query"].log_path.read_text(errors="replace")
        return after["series"] == before["series"] and "to version 2" in log

    wait_for("the query service to read the rebuilt version", switched, timeout_s=60.0)


# ------------------------------------------------------------------ broker restart


def test_broker_restart_on_s3_storage_loses_nothing_acknowledged(
    tmp_path_factory: pytest.TempPathFactory, dynamodb_local: DynamoDBLocal, s3_server: SeaweedS3
) -> None:
    work = tmp_path_factory.mktemp("broker-restart")
    run_id = secrets.token_hex(4)
    log_bucket = s3_server.create_bucket(f"tansu-{run_id}")
    cold_bucket = s3_server.create_bucket(f"argus-cold-r{run_id}")
    creds = s3_server.credentials
    storage = S3Storage(
        endpoint=s3_server.endpoint,
        bucket=log_bucket,
        access_key_id=creds.access_key_id,
        secret_access_key=creds.secret_access_key,
    )
    broker = TansuBroker(work, s3=storage).start()
    env = _base_env(
        broker.url(client_id=f"restart-{run_id}"),
        dynamodb_local.url(prefix=f"restart{run_id}_"),
        s3_server.url(cold_bucket, "cold"),
        s3_server,
    )
    stack = Stack(work=work, env=env)
    try:
        stack.api_key = stack.run("keys", "create", "--tenant", "default").strip().splitlines()[-1]
        ingest_port = stack.start_ingest("ingest")
        stack.start("project", "project", "--projector", "all")
        query_port, http_port = stack.start_query()
        client = _client(stack, ingest_port=ingest_port, query_port=query_port, http_port=http_port)
        ds = _dataset(seed=47)
        batches = ref.to_batches(ds, source="restart", prefix="restart", max_samples=BATCH_SAMPLES)
        half = len(batches) // 2
        _push(client, batches[:half])
        broker.kill()
        broker.start()  # same port, same bucket: the log and the group offsets survive
        _push(client, batches[half:], attempts_s=120.0)
        client.barrier("restart")
        problems = _exactness_problems(client, ds)
        assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:30]) + "\n" + stack.logs()
    finally:
        stack.close()
        broker.stop()
