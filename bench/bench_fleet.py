"""A simulated fleet against the distributed stack: sustained samples/s per process, lag flat.

    python -m bench.bench_fleet [--ramp 50,100,200] [--stage-s 60] [--minutes 10] [--hosts N]
        [--metrics 100] [--ingests 1] [--projectors 1] [--partitions 12] [--results-dir DIR]

H simulated hosts each send M metrics every 5 s (one sample per series per interval, as an
agent does) over the Push gRPC stream (`agent.push_client.PushClient`), spread evenly over
the interval, to `--ingests` separate `argus ingest` processes. The stack is the distributed
one of tests/e2e/test_distributed.py, started here from harness/services: tansu (Kafka
protocol, memory storage), DynamoDB Local (hot store), SeaweedFS (cold store), with
`--projectors` `argus project --projector all` processes in one consumer group and one
`argus query-server`.

Phases: a warm-up (every series once, then wait until all are queryable: new series cost
index writes, reported as series/s), the `--ramp` host counts, `--stage-s` each, then
`--minutes` at `--hosts` (default: the largest ramp stage that kept up). Every
`--lag-every-s` the bench samples the lag: samples accepted but not yet queryable (agg=count
of one metric over the phase: each metric gets the same share of every batch), and each
projector group's committed lag (high watermark minus committed offset, over partitions;
reported only: with a per-tier cadence a group commits when its slowest tier has written). A
phase **kept up** when everything offered was accepted and the not-queryable lag did not grow:
its least-squares slope (over the second half of a phase of 2 min or more), times the phase's
length, is under one interval's samples. After the last phase the bench waits until every
sample is queryable (agg=count per metric equals what was accepted).

Per phase and process: CPU seconds per million samples and peak RSS (psutil); DynamoDB read
and write units as DynamoDB Local reports them (a counting proxy in front of it asks every
data-plane call for ReturnConsumedCapacity=TOTAL), and calls/items by operation; Kafka
records and bytes (key + value + headers of the records the phase appended, read back at the
end); S3 objects and bytes in the cold bucket at the end (the cold archive writes a tier's
period once the UTC day closes, so a short run shows only what closed in it).

Results: bench/results/fleet-latest.{json,md} (or --results-dir), the markdown ending with the
capacity plan for 10k hosts x 100 metrics (docs/capacity.md); `--plan RESULT.json` prints
that plan for any earlier result. Everything shares this
machine's 2 cores with the services and the load generator itself: the figures are a lower
bound of what one core per process does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import numpy as np
import psutil
import zstandard
from aiohttp import ClientSession, ClientTimeout, web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agent.push_client import PushClient
from argus.launch import REPO_ROOT, argus_argv, argus_env
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.kafka_event_log import KafkaEventLog
from core.errors import ArgusError
from core.events import SAMPLES_TOPIC
from core.protowire import length_delimited, varint
from harness.processes import ManagedProcess, free_port, port_open, wait_for

RESULTS: Final = Path(__file__).resolve().parent / "results"
INTERVAL_S: Final = 5.0
REGIONS: Final = ("us-east-1", "us-west-2", "eu-west-1", "ap-south-1")
HOST_TYPES: Final = ("web", "api", "db", "cache", "worker")
COUNTER_EVERY: Final = 5  # every 5th metric is a counter (deltas), the others gauges
GROUPS: Final = ("rollups", "series-index")  # the projector groups on the samples topic
# DynamoDB's recommended per-tier cadence (docs/configuration.md#per-tier-write-cadence).
DYNAMODB_TIER_PROFILE: Final = "5s=1000,1m=5000,5m=30000,1h=300000,1d=900000"
READY_S: Final = 90.0
READ_OPS: Final = frozenset(("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"))
WRITE_OPS: Final = frozenset(("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"))
_UNITS = re.compile(rb'"CapacityUnits"\s*:\s*([0-9.eE+-]+)')
_TOTAL = re.compile(rb'"ReturnConsumedCapacity"\s*:\s*"TOTAL"')


class FleetFailed(ArgusError):
    """The fleet bench could not run (a service did not start, a process died, samples lost)."""


def log(message: str) -> None:
    print(f"[bench_fleet {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------ DynamoDB counting proxy


@dataclass
class DynamoCounts:
    """What one role's DynamoDB calls consumed."""

    read_units: float = 0.0
    write_units: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    items_written: int = 0
    errors: int = 0
    call_seconds: float = 0.0  # summed latency of the calls, as the proxy saw them

    def copy(self) -> DynamoCounts:
        return DynamoCounts(
            self.read_units, self.write_units, dict(self.calls), self.items_written, self.errors, self.call_seconds
        )

    def minus(self, before: DynamoCounts) -> DynamoCounts:
        calls = {k: v - before.calls.get(k, 0) for k, v in self.calls.items() if v - before.calls.get(k, 0)}
        return DynamoCounts(
            self.read_units - before.read_units,
            self.write_units - before.write_units,
            calls,
            self.items_written - before.items_written,
            self.errors - before.errors,
            self.call_seconds - before.call_seconds,
        )


class DynamoCountingProxy:
    """HTTP proxy in front of DynamoDB Local, one listening port per role (ingest, project,
    query). Every data-plane call is asked for ReturnConsumedCapacity=TOTAL and the units the
    server answers are summed per role. Runs its own event loop in a thread."""

    def __init__(self, upstream: str, roles: Sequence[str]) -> None:
        self.upstream = upstream
        self.ports = {role: free_port() for role in roles}
        self.counts = {role: DynamoCounts() for role in roles}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ddb-proxy", daemon=True)
        self._runners: list[web.AppRunner] = []
        self._session: ClientSession | None = None

    def endpoint(self, role: str) -> str:
        return f"http://127.0.0.1:{self.ports[role]}"

    def snapshot(self) -> dict[str, DynamoCounts]:
        with self._lock:
            return {role: c.copy() for role, c in self.counts.items()}

    def _handler(self, role: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            op = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
            items = 0
            if op in READ_OPS or op in WRITE_OPS:
                if not _TOTAL.search(body):
                    payload = json.loads(body)
                    payload["ReturnConsumedCapacity"] = "TOTAL"
                    body = json.dumps(payload).encode()
                if op == "BatchWriteItem":
                    items = body.count(b'"PutRequest"') + body.count(b'"DeleteRequest"')
                elif op == "TransactWriteItems":
                    items = body.count(b'"Put"') + body.count(b'"Update"') + body.count(b'"Delete"')
                elif op in WRITE_OPS:
                    items = 1
            assert self._session is not None
            t0 = time.perf_counter()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            async with self._session.post(self.upstream + request.path_qs, data=body, headers=headers) as answer:
                payload_out = await answer.read()
                status = answer.status
                out_headers = {
                    k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "x-amzn-requestid")
                }
            units = sum(float(u) for u in _UNITS.findall(payload_out)) if op else 0.0
            with self._lock:
                c = self.counts[role]
                c.call_seconds += time.perf_counter() - t0
                c.calls[op or "?"] = c.calls.get(op or "?", 0) + 1
                if status >= 400:
                    c.errors += 1
                elif op in READ_OPS:
                    c.read_units += units
                elif op in WRITE_OPS:
                    c.write_units += units
                    c.items_written += items
            return web.Response(body=payload_out, status=status, headers=out_headers)

        return handle

    async def _start(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=120))
        for role, port in self.ports.items():
            app = web.Application(client_max_size=64 << 20)
            app.router.add_route("POST", "/{tail:.*}", self._handler(role))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self._runners.append(runner)

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def start(self) -> DynamoCountingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# ------------------------------------------------------------------ the load generator


class FleetGenerator:
    """Hosts x metrics series; each tick one sample per series, as SampleBatch messages of
    `hosts_per_batch` hosts. The series' identity bytes are encoded once; a tick appends its
    timestamp and value to each (protobuf fields concatenate), so building costs ~1 us per
    sample instead of the ~10 us of filling messages field by field."""

    def __init__(self, hosts: int, metrics: int, *, seed: int = 7) -> None:
        self.hosts = hosts
        self.metrics = metrics
        self._rng = np.random.default_rng(seed)
        self.kinds = [
            metrics_pb2.METRIC_KIND_COUNTER if m % COUNTER_EVERY == COUNTER_EVERY - 1 else metrics_pb2.METRIC_KIND_GAUGE
            for m in range(metrics)
        ]
        self._prefix: list[list[bytes]] = []
        for h in range(hosts):
            row = []
            for m in range(metrics):
                s = metrics_pb2.SeriesSamples(
                    metric=metric_name(m), kind=self.kinds[m], region=REGIONS[h % len(REGIONS)]
                )
                s.labels.add(name="host", value=f"host-{h:05d}")
                s.labels.add(name="host_type", value=HOST_TYPES[(h // len(REGIONS)) % len(HOST_TYPES)])
                row.append(s.SerializeToString())
            self._prefix.append(row)
        self._counter_mask = np.array([k == metrics_pb2.METRIC_KIND_COUNTER for k in self.kinds])

    def batch(self, batch_id: str, hosts: Sequence[int], ts_ms: int) -> metrics_pb2.SampleBatch:
        values = np.round(self._rng.random((len(hosts), self.metrics)) * 100.0, 2)
        values[:, self._counter_mask] = np.floor(values[:, self._counter_mask])  # counter deltas
        raw = values.astype("<f8").tobytes()
        ts = length_delimited(5, varint(ts_ms))
        parts = [length_delimited(1, batch_id.encode()), length_delimited(2, b"fleet")]
        i = 0
        for h in hosts:
            for prefix in self._prefix[h]:
                parts.append(length_delimited(3, prefix + ts + length_delimited(6, raw[i : i + 8])))
                i += 8
        return metrics_pb2.SampleBatch.FromString(b"".join(parts))


def metric_name(m: int) -> str:
    return f"fleet_m{m:03d}"


# ------------------------------------------------------------------ processes and figures


@dataclass
class Proc:
    role: str  # ingest | project | query | tansu | dynamodb | s3 | generator
    name: str
    pid: int
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0

    def cpu_now(self) -> float:
        try:
            p = psutil.Process(self.pid)
            total = p.cpu_times()
            cpu = total.user + total.system
            # The bench's own children are the processes measured here: not its figure.
            for child in [] if self.pid == os.getpid() else p.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    t = child.cpu_times()
                    cpu += t.user + t.system
            return float(cpu)
        except psutil.Error:
            return self.cpu_s

    def rss_mb(self) -> float:
        try:
            return float(psutil.Process(self.pid).memory_info().rss) / 2**20
        except psutil.Error:
            return 0.0


def _pid_listening(port: int) -> int | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


@dataclass
class PhaseResult:
    name: str
    hosts: int
    metrics: int
    seconds: float
    offered_samples_per_s: float
    accepted: int
    rejected: int
    late_batches: int
    lag_samples: list[tuple[float, dict[str, int]]]
    lag_growth: dict[str, float]
    records_per_interval: float
    kept_up: bool
    processes: list[dict[str, Any]]
    dynamodb: dict[str, dict[str, Any]]
    kafka_records: int = 0
    kafka_bytes: int = 0
    kafka_bytes_zstd: int = 0  # each record's value zstd-compressed alone, as the producer sends it
    offsets_before: dict[int, int] = field(default_factory=dict)
    offsets_after: dict[int, int] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


@dataclass
class FleetConfig:
    ramp: list[int]
    stage_s: float
    minutes: float
    hosts: int | None
    metrics: int
    ingests: int = 1
    projectors: int = 1
    partitions: int = 12
    hosts_per_batch: int = 20
    lag_every_s: float = 10.0
    tier_profile: str = DYNAMODB_TIER_PROFILE
    flush_interval_ms: int = 500
    max_in_flight: int = 8
    queryable_timeout_s: float = 900.0
    warmup: bool = True


class Stack:
    """The services and the Argus processes of one fleet run."""

    def __init__(self, work: Path, config: FleetConfig, *, kafka: Any, dynamodb: Any, s3: Any) -> None:
        self.work = work
        self.config = config
        self.kafka, self.dynamodb, self.s3 = kafka, dynamodb, s3
        run_id = secrets.token_hex(4)
        self.bucket = s3.create_bucket(f"fleet-cold-{run_id}")
        self.proxy = DynamoCountingProxy(dynamodb.endpoint, ("ingest", "project", "query")).start()
        store = dynamodb.url(prefix=f"fleet{run_id}_")
        self.store_url = store
        self.event_log_url = kafka.url(client_id=f"fleet-{run_id}")
        self.env = argus_env()
        self.env.update(s3.credentials.env())
        self.env.update(
            {
                "ARGUS_DATA_DIR": str(work / "argus-data"),
                "ARGUS_EVENT_LOG_URL": self.event_log_url,
                "ARGUS_COLD_STORE_URL": s3.url(self.bucket, "cold"),
                "ARGUS_SAMPLE_PARTITIONS": str(config.partitions),
                "ARGUS_FLUSH_INTERVAL_MS": str(config.flush_interval_ms),
                "ARGUS_TIER_FLUSH_INTERVAL_MS": config.tier_profile,
                "ARGUS_SELF_METRICS_INTERVAL_S": "0",
            }
        )
        self.processes: dict[str, ManagedProcess] = {}
        self.procs: list[Proc] = []
        self.api_key = ""
        self.ingest_ports: list[int] = []
        self.http_port = 0

    def _env(self, role: str) -> dict[str, str]:
        return {
            **self.env,
            "ARGUS_HOT_STORE_URL": self.store_url.replace(self.dynamodb.endpoint, self.proxy.endpoint(role)),
        }

    def _start(self, role: str, name: str, *args: str, ready_port: int | None = None) -> None:
        log_path = self.work / f"{name}.log"

        def ready() -> bool:
            if ready_port is not None:
                return port_open(ready_port)
            return log_path.exists() and "ready (pid" in log_path.read_text(errors="replace")

        proc = ManagedProcess(
            name, argus_argv(*args), log_path=log_path, ready=ready, env=self._env(role), cwd=REPO_ROOT,
            ready_timeout_s=READY_S,
        ).start()  # fmt: skip
        self.processes[name] = proc
        assert proc.proc is not None
        self.procs.append(Proc(role, name, proc.proc.pid))

    def start(self) -> None:
        done = subprocess.run(
            argus_argv("keys", "create", "--tenant", "default", "--name", "fleet"),
            cwd=REPO_ROOT, env=self._env("ingest"), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise FleetFailed(f"argus keys create failed:\n{done.stdout}\n{done.stderr}")
        self.api_key = done.stdout.strip().splitlines()[-1]
        for n in range(self.config.ingests):
            port = free_port()
            self._start("ingest", f"ingest-{n}", "ingest", "--ingest-addr", f"127.0.0.1:{port}", ready_port=port)
            self.ingest_ports.append(port)
        query_port, self.http_port = free_port(), free_port()
        starts: list[Callable[[], None]] = [
            partial(self._start, "project", f"project-{n}", "project", "--projector", "all")
            for n in range(self.config.projectors)
        ]
        starts.append(
            partial(
                self._start,
                "query",
                "query",
                "query-server",
                "--query-addr",
                f"127.0.0.1:{query_port}",
                "--http-addr",
                f"127.0.0.1:{self.http_port}",
                ready_port=self.http_port,
            )
        )
        # Once the ingests made the topics, the rest boot side by side (each takes seconds).
        with ThreadPoolExecutor(len(starts)) as pool:
            for future in [pool.submit(start) for start in starts]:
                future.result()
        for role, port in (
            ("tansu", getattr(self.kafka, "port", 0)),
            ("dynamodb", getattr(self.dynamodb, "port", 0)),
            ("s3", _s3_port(self.s3)),
        ):
            pid = _pid_listening(port) if port else None
            if pid is not None:
                self.procs.append(Proc(role, role, pid))
        self.procs.append(Proc("generator", "bench (load generator + DynamoDB proxy)", os.getpid()))

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if not proc.running:
                raise FleetFailed(f"{name} exited:\n{proc.log_tail()}")

    def close(self) -> None:
        # Everything is measured by now and the tables are this run's own: a graceful stop
        # (seconds of flushing per process) would only cost time.
        for proc in self.processes.values():
            proc.kill()
        self.proxy.stop()

    def query_count(self, metric: str, start_ms: int, end_ms: int) -> float:
        params = urllib.parse.urlencode(
            {"metric": metric, "agg": "count", "period": "5s", "start": str(start_ms), "end": str(end_ms)}
        )
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/v1/query?{params}",
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        with urllib.request.urlopen(req, timeout=30) as answer:
            body = json.loads(answer.read())
        return float(sum(v for s in body["series"] for _, v in s["points"] if v is not None))


def _s3_port(s3: Any) -> int:
    return int(urllib.parse.urlsplit(s3.endpoint).port or 0)


class LagReader:
    """Consumer lag of the projector groups: high watermark minus committed offset."""

    def __init__(self, bootstrap: str, partitions: int, groups: Sequence[str]) -> None:
        self.log = KafkaEventLog.from_url(f"kafka://{bootstrap}?idempotence=false")
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.partitions = partitions
        self.groups = tuple(groups)

    async def start(self) -> None:
        await self.log.start()
        await self.admin.start()

    async def close(self) -> None:
        await self.admin.close()
        await self.log.close()

    async def ends(self) -> dict[int, int]:
        return {p: await self.log.end_offset(SAMPLES_TOPIC, p) for p in range(self.partitions)}

    async def lag(self) -> tuple[dict[int, int], dict[str, int]]:
        ends = await self.ends()
        tps = [TopicPartition(SAMPLES_TOPIC, p) for p in range(self.partitions)]
        out = {}
        for group in self.groups:
            committed = await self.admin.list_consumer_group_offsets(group, partitions=tps)
            total = 0
            for tp in tps:
                meta = committed.get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else 0
                total += max(0, ends[tp.partition] - offset)
            out[group] = total
        return ends, out


def _slope(points: Sequence[tuple[float, float]]) -> float:
    if len(points) < 3:
        return 0.0
    t = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    return float(np.polyfit(t - t[0], y, 1)[0])


class FleetRun:
    def __init__(self, stack: Stack, config: FleetConfig) -> None:
        self.stack = stack
        self.config = config
        self.sent_per_metric: dict[str, int] = {}
        self.first_ts = 0
        self.last_ts = 0
        self._tick = 0
        self.queries = 0
        self._base_ms = (int(time.time() * 1000) // 5000) * 5000

    async def phase(self, name: str, hosts: int, seconds: float, lag: LagReader) -> PhaseResult:
        cfg = self.config
        gen = FleetGenerator(hosts, cfg.metrics)
        ticks = max(1, round(seconds / INTERVAL_S))
        clients = [
            PushClient(f"127.0.0.1:{p}", self.stack.api_key, max_in_flight=cfg.max_in_flight)
            for p in self.stack.ingest_ports
        ]
        accepted = [0] * len(clients)
        rejected = [0] * len(clients)
        late = [0]
        first_tick = self._tick
        self._tick += ticks

        async def batches(index: int) -> AsyncIterator[metrics_pb2.SampleBatch]:
            mine = list(range(index, hosts, len(clients)))
            groups = [mine[i : i + cfg.hosts_per_batch] for i in range(0, len(mine), cfg.hosts_per_batch)]
            for k in range(ticks):
                tick = first_tick + k
                ts = self._base_ms + tick * int(INTERVAL_S * 1000)
                tick_at = started + k * INTERVAL_S
                for g, group in enumerate(groups):
                    due = tick_at + INTERVAL_S * g / len(groups)
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)  # the fleet's schedule, not a wait for a condition
                    elif delay < -INTERVAL_S:
                        late[0] += 1
                    yield gen.batch(f"{name}-{tick}-{index}-{g}", group, ts)
            # The phase lasts its ticks' intervals: the last tick's samples are due in it.
            if (rest := started + ticks * INTERVAL_S - time.monotonic()) > 0:
                await asyncio.sleep(rest)

        def on_result(index: int) -> Callable[[ingest_pb2.BatchResult], None]:
            def record(result: ingest_pb2.BatchResult) -> None:
                accepted[index] += result.accepted_samples
                rejected[index] += result.rejected_samples

            return record

        ends_before, _ = await lag.lag()
        cpu0 = {p.name: p.cpu_now() for p in self.stack.procs}
        ddb0 = self.stack.proxy.snapshot()
        started = time.monotonic()
        step_ms = int(INTERVAL_S * 1000)
        span = (self._base_ms + first_tick * step_ms, self._base_ms + (first_tick + ticks) * step_ms)
        lag_samples: list[tuple[float, dict[str, int]]] = []
        peak = {p.name: p.rss_mb() for p in self.stack.procs}
        stop = asyncio.Event()

        async def lags_now() -> dict[str, int]:
            """Samples accepted but not yet queryable (every metric gets the same share of a
            batch, so one metric's count stands for all), and each group's committed lag."""
            sent = sum(accepted)
            visible = await asyncio.to_thread(self.stack.query_count, metric_name(0), *span)
            _, committed = await lag.lag()
            return {"not_queryable_samples": max(0, round(sent - visible * cfg.metrics)), **committed}

        async def sample() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), cfg.lag_every_s)
                if stop.is_set():
                    return
                lags = await lags_now()
                lag_samples.append((time.monotonic() - started, lags))
                for p in self.stack.procs:
                    peak[p.name] = max(peak[p.name], p.rss_mb())
                self.stack.check_alive()
                log(f"  {name}: t={time.monotonic() - started:5.0f} s accepted={sum(accepted):,} lag={lags}")

        sampler = asyncio.create_task(sample())
        try:
            await asyncio.gather(*(c.push_stream(batches(i), on_result=on_result(i)) for i, c in enumerate(clients)))
        finally:
            stop.set()
            await sampler
            for c in clients:
                await c.close()
        elapsed = time.monotonic() - started
        lag_samples.append((elapsed, await lags_now()))
        ends_after, _ = await lag.lag()
        cpu = {p.name: p.cpu_now() - cpu0[p.name] for p in self.stack.procs}
        ddb = {role: c.minus(ddb0[role]) for role, c in self.stack.proxy.snapshot().items()}
        total = sum(accepted)
        for m in range(cfg.metrics):
            self.sent_per_metric[metric_name(m)] = self.sent_per_metric.get(metric_name(m), 0) + hosts * ticks
        self.first_ts = self.first_ts or span[0]
        self.last_ts = span[1] - step_ms
        records = sum(ends_after.values()) - sum(ends_before.values())
        per_interval = records / max(elapsed / INTERVAL_S, 1.0)
        # Growth over the phase: the least-squares slope, times the phase's length, of the
        # samples after the first one; in a phase of 2 min or more, of its second half only
        # (the backlog a previous, faster stage left behind drains in the first).
        settle = elapsed / 2 if elapsed >= 120 else min(cfg.lag_every_s, elapsed / 3)
        steady = [(t, lags) for t, lags in lag_samples if t >= settle]
        growth = {key: _slope([(t, float(lags[key])) for t, lags in steady]) * elapsed for key in lag_samples[-1][1]}
        offered = hosts * cfg.metrics * ticks
        # Kept up: every sample accepted, and what is not yet queryable grew by less than one
        # interval's samples over the whole phase (the committed lags are reported, not judged:
        # with a per-tier cadence a group commits only when its slowest tier has written).
        kept_up = total >= 0.99 * offered and growth["not_queryable_samples"] < hosts * cfg.metrics
        per_role: dict[str, list[Proc]] = {}
        for p in self.stack.procs:
            per_role.setdefault(p.role, []).append(p)
        processes = []
        for p in self.stack.procs:
            share = total / len(per_role[p.role]) if p.role in ("ingest", "project") else total
            processes.append(
                {
                    "role": p.role,
                    "name": p.name,
                    "cpu_s": round(cpu[p.name], 2),
                    "cpu_share_of_core": round(cpu[p.name] / elapsed, 3),
                    "cpu_s_per_million": round(cpu[p.name] / total * 1e6, 2) if total else None,
                    "samples_per_s": round(share / elapsed) if p.role in ("ingest", "project") else None,
                    "peak_rss_mb": round(peak[p.name], 1),
                }
            )
        return PhaseResult(
            name=name,
            hosts=hosts,
            metrics=cfg.metrics,
            seconds=round(elapsed, 1),
            offered_samples_per_s=round(hosts * cfg.metrics / INTERVAL_S, 1),
            accepted=total,
            rejected=sum(rejected),
            late_batches=late[0],
            lag_samples=[(round(t, 1), lags) for t, lags in lag_samples],
            lag_growth={g: round(v, 1) for g, v in growth.items()},
            records_per_interval=round(per_interval, 1),
            kept_up=kept_up,
            processes=processes,
            dynamodb={role: _ddb_json(c, total) for role, c in ddb.items()},
            offsets_before=ends_before,
            offsets_after=ends_after,
        )

    async def wait_queryable(self) -> float:
        """Seconds until agg=count of every metric equals the samples accepted."""
        started = time.monotonic()
        pending = dict(self.sent_per_metric)

        def done() -> bool:
            self.stack.check_alive()
            for metric, want in list(pending.items()):
                self.queries += 1
                got = self.stack.query_count(metric, self.first_ts, self.last_ts + 1)
                if got != want:
                    return False
                del pending[metric]
            return True

        await asyncio.to_thread(
            wait_for, "every sample to be queryable", done, timeout_s=self.config.queryable_timeout_s,
            interval_s=0.5, failure=FleetFailed,
        )  # fmt: skip
        return time.monotonic() - started


def _ddb_json(c: DynamoCounts, samples: int) -> dict[str, Any]:
    per_m = 1e6 / samples if samples else 0.0
    return {
        "read_units": round(c.read_units, 1),
        "write_units": round(c.write_units, 1),
        "items_written": c.items_written,
        "calls": c.calls,
        "errors": c.errors,
        "mean_call_ms": round(c.call_seconds / max(1, sum(c.calls.values())) * 1000, 1),
        "write_units_per_million_samples": round(c.write_units * per_m),
        "read_units_per_million_samples": round(c.read_units * per_m),
    }


async def kafka_bytes(bootstrap: str, partitions: int, phases: Sequence[PhaseResult]) -> None:
    """Record bytes (key + value + headers) each phase appended, read back from the topic."""
    zstd = zstandard.ZstdCompressor(level=3)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20
    )
    await consumer.start()
    try:
        for p in range(partitions):
            tp = TopicPartition(SAMPLES_TOPIC, p)
            lo = min((ph.offsets_before.get(p, 0) for ph in phases), default=0)
            hi = max((ph.offsets_after.get(p, 0) for ph in phases), default=0)
            if hi <= lo:
                continue
            consumer.assign([tp])
            consumer.seek(tp, lo)
            position = lo
            while position < hi:
                got = await consumer.getmany(tp, timeout_ms=2000, max_records=5000)
                records = got.get(tp, [])
                if not records:
                    raise FleetFailed(f"reading back {SAMPLES_TOPIC}/{p}: nothing at offset {position} of {hi}")
                for r in records:
                    if r.offset >= hi:
                        break
                    size = len(r.value or b"") + len(r.key or b"") + sum(len(k) + len(v or b"") for k, v in r.headers)
                    for ph in phases:
                        if ph.offsets_before.get(p, 0) <= r.offset < ph.offsets_after.get(p, 0):
                            ph.kafka_records += 1
                            ph.kafka_bytes += size
                            ph.kafka_bytes_zstd += size - len(r.value or b"") + len(zstd.compress(r.value or b""))
                    position = r.offset + 1
    finally:
        await consumer.stop()


def s3_usage(s3: Any, bucket: str) -> dict[str, int]:
    client = s3.client()
    try:
        objects = size = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                objects += 1
                size += int(obj["Size"])
        return {"objects": objects, "bytes": size}
    finally:
        client.close()


async def run_fleet(config: FleetConfig, *, kafka: Any, dynamodb: Any, s3: Any, work: Path) -> dict[str, Any]:
    """Run every phase against started services; the result as JSON-ready data."""
    stack = Stack(work, config, kafka=kafka, dynamodb=dynamodb, s3=s3)
    lag = LagReader(kafka.bootstrap, config.partitions, GROUPS)
    phases: list[PhaseResult] = []
    try:
        began = time.monotonic()
        await asyncio.to_thread(stack.start)
        await lag.start()
        log(f"stack up in {time.monotonic() - began:.1f} s")
        run = FleetRun(stack, config)
        chosen = config.hosts
        warmup: dict[str, Any] = {}
        most = max([*config.ramp, config.hosts or 0])
        if config.warmup and most:
            # Every series once, then wait until all are queryable: the phases measure a fleet
            # whose series are known (new series cost index writes: reported here instead).
            log(f"warm-up: registering {most * config.metrics:,} series")
            phases.append(await run.phase("warm-up", most, INTERVAL_S, lag))
            seconds = await run.wait_queryable()
            series = most * config.metrics
            warmup = {"series": series, "queryable_after_s": round(seconds, 1), "series_per_s": round(series / seconds)}
            log(f"  all {series:,} series queryable after {seconds:.1f} s")
        for hosts in config.ramp:
            log(
                f"ramp: {hosts} hosts x {config.metrics} metrics ({hosts * config.metrics / INTERVAL_S:,.0f} samples/s)"
            )
            phase = await run.phase(f"ramp-{hosts}", hosts, config.stage_s, lag)
            phases.append(phase)
            log(
                f"  kept up: {phase.kept_up} (lag growth {phase.lag_growth},"
                f" {phase.records_per_interval} records/interval)"
            )
            if phase.kept_up:
                chosen = chosen if config.hosts else hosts
            elif config.hosts is None:
                break
        # None kept up: the sustained phase still runs, at the smallest stage, and says so.
        chosen = chosen or (config.ramp[0] if config.ramp else None)
        if config.minutes > 0 and chosen:  # the warm-up is never a candidate
            log(f"sustained: {chosen} hosts for {config.minutes} min")
            phases.append(await run.phase(f"sustained-{chosen}", chosen, config.minutes * 60, lag))
        before = stack.proxy.snapshot()["query"]
        queryable_s = await run.wait_queryable()
        reads = stack.proxy.snapshot()["query"].minus(before)
        log(f"all queryable {queryable_s:.1f} s after the last push")
        await kafka_bytes(kafka.bootstrap, config.partitions, phases)
        cold = s3_usage(s3, stack.bucket)
        log("Kafka bytes read back, cold bucket listed; stopping the stack")
    finally:
        await lag.close()
        stack.close()
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_end": os.getloadavg()},
        "config": asdict(config),
        "phases": [_phase_json(p) for p in phases],
        "queryable_after_s": round(queryable_s, 1),
        "warmup_new_series": warmup,
        "queryable_check": {
            "queries": run.queries,
            "read_units": round(reads.read_units, 1),
            "calls": reads.calls,
            "note": "agg=count over the whole run at period 5s, one query per metric and poll",
        },
        "samples_per_metric": run.sent_per_metric,
        "s3_cold_bucket": cold,
    }


def _phase_json(p: PhaseResult) -> dict[str, Any]:
    out = asdict(p)
    for key in ("offsets_before", "offsets_after"):
        out.pop(key)
    out["samples_per_s"] = round(p.samples_per_s)
    out["kafka_bytes_per_sample"] = round(p.kafka_bytes / p.accepted, 2) if p.accepted else None
    out["kafka_zstd_bytes_per_sample"] = round(p.kafka_bytes_zstd / p.accepted, 2) if p.accepted else None
    out["kafka_bytes_per_s"] = round(p.kafka_bytes / p.seconds) if p.seconds else None
    return out


def markdown(result: Mapping[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        f"# Fleet bench ({result['when']})",
        "",
        f"`python -m bench.bench_fleet` — {cfg['ingests']} `argus ingest`, {cfg['projectors']} `argus project`,"
        f" 1 `argus query-server`; tansu, DynamoDB Local, SeaweedFS; {cfg['metrics']} metrics per host every 5 s,"
        f" {cfg['partitions']} partitions, tier cadence `{cfg['tier_profile']}`. Machine: {result['machine']['cpus']}"
        f" cores shared with other work (load average at end {result['machine']['load_avg_at_end'][0]:.1f}):"
        " pessimistic figures.",
        "",
        "| phase | hosts | s | offered/s | accepted/s | kept up"
        " | lag growth (samples not queryable; committed records per group) | Kafka records/interval |"
        " Kafka B/sample (zstd) | DDB WCU/M samples | DDB RCU/M samples |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for p in result["phases"]:
        wcu = sum(d["write_units_per_million_samples"] for d in p["dynamodb"].values())
        rcu = sum(d["read_units_per_million_samples"] for d in p["dynamodb"].values())
        lines.append(
            f"| {p['name']} | {p['hosts']:,} | {p['seconds']:.0f} | {p['offered_samples_per_s']:,.0f} |"
            f" {p['samples_per_s']:,} | {'yes' if p['kept_up'] else 'NO'} | {p['lag_growth']} |"
            f" {p['records_per_interval']:,.0f} | {p['kafka_bytes_per_sample']} "
            f" ({p.get('kafka_zstd_bytes_per_sample', '-')}) | {wcu:,} | {rcu:,} |"
        )
    lines += ["", "Per process (CPU s per million samples the stack accepted; samples/s: that role's share):", ""]
    lines.append("| phase | process | samples/s | CPU share of a core | CPU s / M samples | peak RSS MB |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for p in result["phases"]:
        for proc in p["processes"]:
            rate = f"{proc['samples_per_s']:,}" if proc["samples_per_s"] is not None else ""
            lines.append(
                f"| {p['name']} | {proc['name']} | {rate} | {proc['cpu_share_of_core']:.2f} |"
                f" {proc['cpu_s_per_million']} | {proc['peak_rss_mb']:.0f} |"
            )
    lines += ["", "DynamoDB calls by role (last phase):", ""]
    last = result["phases"][-1] if result["phases"] else None
    if last:
        for role, d in last["dynamodb"].items():
            lines.append(
                f"- {role}: {d['write_units']:,.0f} WCU, {d['read_units']:,.0f} RCU,"
                f" {d['items_written']:,} items written,"
                f" calls {d['calls']}, errors {d['errors']}, mean call {d['mean_call_ms']} ms"
            )
    cold = result["s3_cold_bucket"]
    lines += [
        "",
        f"All samples queryable {result['queryable_after_s']} s after the last push"
        f" ({result['queryable_check']['queries']} count queries over the run's span:"
        f" {result['queryable_check']['read_units']:,} RCU). S3 cold bucket at the end:"
        f" {cold['objects']} objects, {cold['bytes']:,} bytes (a period is archived once its UTC day closes).",
        "",
    ]
    with contextlib.suppress(FleetFailed):
        lines += [
            "## Capacity plan for 10k hosts x 100 metrics every 5 s (docs/capacity.md)",
            "",
            capacity_plan(result),
        ]
    return "\n".join(lines)


def write_results(result: Mapping[str, Any], directory: Path, stem: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    js, md = directory / f"{stem}.json", directory / f"{stem}.md"
    js.write_text(json.dumps(result, indent=2) + "\n")
    md.write_text(markdown(result))
    return js, md


# ------------------------------------------------------------------ the capacity plan

# Assumed AWS prices: us-east-1, on-demand list prices (USD), as assumptions to check before
# budgeting; docs/capacity.md shows the arithmetic.
MONTH_H: Final = 730.0
PRICES: Final = {
    "vcpu_hour": 0.1008 / 2,  # m7i.large: 2 vCPU, 8 GiB, $0.1008/h
    "ddb_million_wru": 0.625,  # on-demand write request units
    "ddb_million_rru": 0.125,  # on-demand read request units
    "ddb_wcu_hour": 0.00065,  # provisioned
    "ddb_rcu_hour": 0.00013,  # provisioned
    "ddb_gb_month": 0.25,  # Standard table class
    "s3_gb_month": 0.023,  # S3 Standard, first 50 TB
    "s3_thousand_puts": 0.005,
    "msk_broker_hour": 0.21,  # kafka.m5.large
    "msk_gb_month": 0.10,
}
# Hot-store bytes per raw sample per tier: bench/results/latest.md (devops set, chunk codec).
HOT_BYTES_PER_SAMPLE: Final = {"5s": 2.5571, "1m": 0.8904, "5m": 0.3222, "1h": 0.1233, "1d": 0.0747}
# Cold Parquet bytes per tier point: decision 0007 (12.5 MB per 30 d x 1,000 series of the 1h tier).
COLD_BYTES_PER_POINT: Final = 12.5e6 / (30 * 24 * 1000)
TIER_STEP_S: Final = {"5s": 5, "1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
TIER_RETENTION_D: Final = {"5s": 7, "1m": 35, "5m": 90, "1h": 400, "1d": 5 * 365}


@dataclass(frozen=True)
class PlanTarget:
    hosts: int = 10_000
    metrics: int = 100
    interval_s: float = 5.0
    history_days: int = 365
    log_retention_days: int = 7
    utilization: float = 0.7  # cores and provisioned capacity planned at 70 % busy
    kafka_replication: int = 3
    queries_per_s: float = 20.0  # dashboard/API queries like the bench's count check
    cold_part_mb: int = 100  # multipart part size of cold objects


def measured_phase(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """The phase a plan uses: the sustained one, else the last ramp stage that kept up."""
    phases: list[Mapping[str, Any]] = [p for p in result["phases"] if p["name"] != "warm-up"]
    sustained = [p for p in phases if p["name"].startswith("sustained")]
    kept = [p for p in phases if p["kept_up"]]
    if sustained:
        return sustained[-1]
    if kept:
        return kept[-1]
    raise FleetFailed("the result has no sustained phase and no ramp stage that kept up")


def capacity_plan(result: Mapping[str, Any], target: PlanTarget = PlanTarget()) -> str:
    """Markdown: every figure of docs/capacity.md with its arithmetic, from one fleet result."""
    p = measured_phase(result)
    n = p["accepted"]
    rate = target.hosts * target.metrics / target.interval_s
    series = target.hosts * target.metrics
    role_cpu: dict[str, float] = {}
    role_rss: dict[str, float] = {}
    for proc in p["processes"]:
        role_cpu[proc["role"]] = role_cpu.get(proc["role"], 0.0) + proc["cpu_s"] / n * 1e6
        role_rss[proc["role"]] = max(role_rss.get(proc["role"], 0.0), proc["peak_rss_mb"])
    ddb = p["dynamodb"]
    wcu_m = sum(d["write_units"] for d in ddb.values()) / n * 1e6
    rcu_m = sum(d["read_units"] for d in ddb.values()) / n * 1e6
    check = result["queryable_check"]
    rcu_query = check["read_units"] / check["queries"] if check["queries"] else 0.0
    # The producer compresses (zstd by default): what brokers store and replicate.
    zstd = "kafka_bytes_zstd" in p
    k_bytes = p["kafka_bytes_zstd" if zstd else "kafka_bytes"] / n
    rows: list[tuple[str, str, str]] = []

    def row(what: str, arithmetic: str, value: float, unit: str = "") -> float:
        rows.append(
            (what, arithmetic, f"{value:,.1f} {unit}".strip() if value < 100 else f"{value:,.0f} {unit}".strip())
        )
        return value

    row("samples/s", f"{target.hosts:,} hosts x {target.metrics} metrics / {target.interval_s:g} s", rate)
    cores: dict[str, float] = {}
    for role in ("ingest", "project", "query"):
        c = role_cpu.get(role, 0.0)
        cores[role] = math.ceil(
            row(
                f"{role} cores",
                f"{rate:,.0f}/s x {c:,.1f} CPU s per M / 1e6 / {target.utilization:.0%} busy",
                rate * c / 1e6 / target.utilization,
            )
        )
    mem_gb = sum(cores[r] * role_rss.get(r, 0.0) for r in cores) / 1024
    row("memory", " + ".join(f"{cores[r]:,} x {role_rss.get(r, 0):,.0f} MB ({r})" for r in cores), mem_gb, "GB")
    partitions = max(12, 12 * math.ceil(cores["project"] / 12))
    row(
        "Kafka partitions (samples topic)",
        f">= projector processes ({cores['project']:,}), a multiple of 12",
        partitions,
    )
    kafka_bps = row(
        "Kafka bytes/s in",
        f"{rate:,.0f}/s x {k_bytes:.1f} B/sample ({'zstd' if zstd else 'uncompressed'})",
        rate * k_bytes / 1e6,
        "MB/s",
    )
    kafka_gb = row(
        "Kafka storage",
        f"{kafka_bps:.1f} MB/s x {target.log_retention_days} d x {target.kafka_replication} replicas",
        kafka_bps * 86400 * target.log_retention_days * target.kafka_replication / 1e3,
        "GB",
    )
    brokers = max(3, math.ceil(kafka_bps * target.kafka_replication / 20))
    row("Kafka brokers", f"max(3, {kafka_bps:.1f} MB/s x {target.kafka_replication} / 20 MB/s per m5.large)", brokers)
    wcu = row("DynamoDB WCU (writes/s)", f"{rate:,.0f}/s x {wcu_m:,.0f} WCU per M samples / 1e6", rate * wcu_m / 1e6)
    rcu_proj = rate * rcu_m / 1e6
    rcu = row(
        "DynamoDB RCU (reads/s)",
        f"projectors {rate:,.0f}/s x {rcu_m:,.0f} per M / 1e6 + {target.queries_per_s:g} queries/s x {rcu_query:,.1f}",
        rcu_proj + target.queries_per_s * rcu_query,
    )
    hot_gb = 0.0
    for tier, b in HOT_BYTES_PER_SAMPLE.items():
        days = min(TIER_RETENTION_D[tier], target.history_days)
        hot_gb += rate * 86400 * days * b / 1e9
    row(
        "DynamoDB storage",
        " + ".join(
            f"{b} B x {min(TIER_RETENTION_D[t], target.history_days)} d ({t})" for t, b in HOT_BYTES_PER_SAMPLE.items()
        )
        + f" of {rate * 86400 / 1e9:.2f}G samples/day",
        hot_gb,
        "GB",
    )
    cold_points = sum(series * target.history_days * 86400 / step for step in TIER_STEP_S.values())
    cold_gb = row(
        "S3 storage after a year",
        f"{cold_points / 1e12:.2f}T tier points (all tiers, {series:,} series) x {COLD_BYTES_PER_POINT:.1f} B",
        cold_points * COLD_BYTES_PER_POINT / 1e9,
        "GB",
    )
    puts_month = cold_gb / target.history_days * 30.4 * 1e3 / target.cold_part_mb
    row(
        "S3 PUTs per month",
        f"{cold_gb / target.history_days:,.0f} GB/day x 30.4 in {target.cold_part_mb} MB parts",
        puts_month,
    )
    usd = {
        "compute (EC2 vCPUs)": sum(cores.values()) * PRICES["vcpu_hour"] * MONTH_H,
        "DynamoDB writes, on-demand": wcu * 3600 * MONTH_H * PRICES["ddb_million_wru"] / 1e6,
        "DynamoDB writes, provisioned": wcu / target.utilization * PRICES["ddb_wcu_hour"] * MONTH_H,
        "DynamoDB reads, on-demand": rcu * 3600 * MONTH_H * PRICES["ddb_million_rru"] / 1e6,
        "DynamoDB reads, provisioned": rcu / target.utilization * PRICES["ddb_rcu_hour"] * MONTH_H,
        "DynamoDB storage": hot_gb * PRICES["ddb_gb_month"],
        "Kafka (MSK brokers + storage)": brokers * PRICES["msk_broker_hour"] * MONTH_H
        + kafka_gb * PRICES["msk_gb_month"],
        "S3 storage (year-end) + PUTs": cold_gb * PRICES["s3_gb_month"] + puts_month / 1e3 * PRICES["s3_thousand_puts"],
    }
    lines = [
        f"Measured phase: `{p['name']}` of {result['when']} ({p['accepted']:,} samples over {p['seconds']:.0f} s).",
        "",
        "| figure | arithmetic | value |",
        "|---|---|---:|",
        *(f"| {w} | {a} | {v} |" for w, a, v in rows),
        "",
        "| dollars per month (assumed prices) | USD |",
        "|---|---:|",
        *(f"| {k} | {v:,.0f} |" for k, v in usd.items()),
    ]
    cheapest = (
        usd["compute (EC2 vCPUs)"]
        + min(usd["DynamoDB writes, on-demand"], usd["DynamoDB writes, provisioned"])
        + min(usd["DynamoDB reads, on-demand"], usd["DynamoDB reads, provisioned"])
        + usd["DynamoDB storage"]
        + usd["Kafka (MSK brokers + storage)"]
        + usd["S3 storage (year-end) + PUTs"]
    )
    lines += [f"| **total, cheaper DynamoDB mode each** | **{cheapest:,.0f}** |", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ramp", default="5,10,20,40,80", help="host counts of the ramp stages ('' for none)")
    parser.add_argument("--stage-s", type=float, default=60.0, help="length of each ramp stage")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the sustained phase (0: none)")
    parser.add_argument(
        "--hosts", type=int, default=None, help="hosts of the sustained phase (default: the ramp's best)"
    )
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--ingests", type=int, default=1)
    parser.add_argument("--projectors", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--hosts-per-batch", type=int, default=20)
    parser.add_argument("--lag-every-s", type=float, default=10.0)
    parser.add_argument(
        "--tier-profile", default=DYNAMODB_TIER_PROFILE, help="ARGUS_TIER_FLUSH_INTERVAL_MS of the projectors"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--stem", default="fleet-latest", help="results file name without extension")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (process logs) and print where")
    parser.add_argument(
        "--plan", type=Path, default=None, help="print the capacity plan of a results JSON (docs/capacity.md) and exit"
    )
    args = parser.parse_args(argv)
    if args.plan is not None:
        print(capacity_plan(json.loads(args.plan.read_text())))
        return
    config = FleetConfig(
        ramp=[int(x) for x in args.ramp.split(",") if x.strip()],
        stage_s=args.stage_s,
        minutes=args.minutes,
        hosts=args.hosts,
        metrics=args.metrics,
        ingests=args.ingests,
        projectors=args.projectors,
        partitions=args.partitions,
        hosts_per_batch=args.hosts_per_batch,
        lag_every_s=args.lag_every_s,
        tier_profile=args.tier_profile,
    )
    from harness.services.dynamodb import DynamoDBLocal
    from harness.services.kafka import TansuBroker
    from harness.services.s3 import SeaweedS3

    work = Path(tempfile.mkdtemp(prefix="argus-bench-fleet-"))
    try:
        kafka = TansuBroker(work).start()
        dynamodb = DynamoDBLocal(work_dir=work).start()
        s3 = SeaweedS3(work / "s3").start()
        try:
            result = asyncio.run(run_fleet(config, kafka=kafka, dynamodb=dynamodb, s3=s3, work=work))
        finally:
            s3.stop()
            dynamodb.stop()
            kafka.stop()
        js, md = write_results(result, args.results_dir, args.stem)
        print(md.read_text())
        log(f"wrote {js} and {md}")
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
