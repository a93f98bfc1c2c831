"""The built-in local collector: this host's CPU, load, memory, disk and network as samples.

Counters (disk and network bytes, operations, packets, errors) travel as deltas since the
previous collect, as the data model wants: the first collect only records a baseline and
emits none, and a counter that went down (a reboot, an interface re-created) is taken as
reset, so its new value is the delta. CPU percentages are computed from the CPU times
between two collects, so they too start at the second collect.

Metrics (every series carries the label `host`):

| metric | kind | extra labels |
|---|---|---|
| host_cpu_percent | gauge | mode = user, system, idle, iowait |
| host_load | gauge | period = 1m, 5m, 15m |
| host_memory_used_bytes, host_memory_available_bytes, host_memory_total_bytes | gauge | |
| host_swap_used_bytes | gauge | |
| host_disk_used_bytes, host_disk_free_bytes | gauge | mount |
| host_disk_read_bytes, host_disk_write_bytes, host_disk_read_ops, host_disk_write_ops | counter | |
| host_network_{in,out}_{bytes,packets,errors} | counter | interface |
| host_processes | gauge | |
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

import psutil

from agent.push_client import PushClient, RetryPolicy
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.cumulative import CumulativeDeltas
from core.errors import ArgusError

log = logging.getLogger(__name__)

# File systems that hold no user data (or that repeat another mount's numbers).
PSEUDO_FILESYSTEMS: Final = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
        "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "ramfs", "rpc_pipefs",
        "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs",
    }
)  # fmt: skip
PSEUDO_MOUNT_PREFIXES: Final = ("/proc", "/sys", "/dev", "/run", "/snap", "/var/lib/docker", "/var/snap")
CPU_MODES: Final = ("user", "system", "idle", "iowait")
# psutil's Linux user/nice times already include guest time; counting it again would skew %.
_CPU_NOT_IN_TOTAL: Final = frozenset({"guest", "guest_nice"})

DISK_IO_METRICS: Final = {
    "read_bytes": "host_disk_read_bytes",
    "write_bytes": "host_disk_write_bytes",
    "read_count": "host_disk_read_ops",
    "write_count": "host_disk_write_ops",
}
NET_IO_METRICS: Final = {
    "bytes_recv": "host_network_in_bytes",
    "bytes_sent": "host_network_out_bytes",
    "packets_recv": "host_network_in_packets",
    "packets_sent": "host_network_out_packets",
    "errin": "host_network_in_errors",
    "errout": "host_network_out_errors",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HostSnapshot:
    """One reading of the host. Counters are cumulative (since boot), as the OS reports them."""

    cpu_times: Mapping[str, float] = field(default_factory=dict)  # mode -> seconds
    load: tuple[float, float, float] | None = None
    memory_used_bytes: int = 0
    memory_available_bytes: int = 0
    memory_total_bytes: int = 0
    swap_used_bytes: int = 0
    disks: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # mount -> (used, free)
    disk_io: Mapping[str, int] | None = None  # keys of DISK_IO_METRICS
    net_io: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # interface -> keys of NET_IO_METRICS
    processes: int = 0


class HostStatsSource(Protocol):
    def snapshot(self) -> HostSnapshot: ...


class PsutilSource:
    """Reads the host through psutil. Parts the platform lacks are left out, never faked."""

    def snapshot(self) -> HostSnapshot:
        memory = psutil.virtual_memory()
        try:
            load: tuple[float, float, float] | None = psutil.getloadavg()
        except (AttributeError, OSError):
            load = None
        io = psutil.disk_io_counters(perdisk=False)
        return HostSnapshot(
            cpu_times=psutil.cpu_times()._asdict(),
            load=load,
            memory_used_bytes=int(memory.used),
            memory_available_bytes=int(memory.available),
            memory_total_bytes=int(memory.total),
            swap_used_bytes=int(psutil.swap_memory().used),
            disks=self._disks(),
            disk_io=None if io is None else {k: int(getattr(io, k)) for k in DISK_IO_METRICS},
            net_io={
                name: {k: int(getattr(counters, k)) for k in NET_IO_METRICS}
                for name, counters in psutil.net_io_counters(pernic=True).items()
                if name != "lo"
            },
            processes=len(psutil.pids()),
        )

    @staticmethod
    def _disks() -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        seen_devices: set[str] = set()
        partitions = sorted(psutil.disk_partitions(all=False), key=lambda p: len(p.mountpoint))
        for part in partitions:
            if part.fstype in PSEUDO_FILESYSTEMS or part.mountpoint.startswith(PSEUDO_MOUNT_PREFIXES):
                continue
            # Bind mounts show one device many times; keep its shortest mount point.
            if part.device in seen_devices:
                continue
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError:
                continue
            seen_devices.add(part.device)
            out[part.mountpoint] = (int(usage.used), int(usage.free))
        return out


_Key = tuple[str, tuple[tuple[str, str], ...]]


class HostCollector:
    """Collects one SampleBatch per call. Not thread-safe; call from one thread at a time."""

    def __init__(
        self,
        *,
        host: str,
        region: str,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        source: HostStatsSource | None = None,
    ) -> None:
        self.host = host
        self.region = region
        self.interval_s = interval_s
        self._clock = clock
        self._source = source or PsutilSource()
        self._counters: CumulativeDeltas[_Key] = CumulativeDeltas()
        self._cpu_before: Mapping[str, float] | None = None

    @property
    def source_name(self) -> str:
        return f"host:{self.host}"

    def collect(self) -> metrics_pb2.SampleBatch:
        """Read the host now. Batch id `<host>:<ts_ms>`, source `host:<host>`; every sample
        has the same timestamp."""
        ts_ms = int(self._clock() * 1000)
        snap = self._source.snapshot()
        batch = metrics_pb2.SampleBatch(batch_id=f"{self.host}:{ts_ms}", source=self.source_name)

        def add(metric: str, kind: int, value: float, **labels: str) -> None:
            series = batch.series.add(metric=metric, kind=kind, region=self.region)
            for name, text in sorted({"host": self.host, **labels}.items()):
                series.labels.add(name=name, value=text)
            series.timestamps_ms.append(ts_ms)
            series.values.append(float(value))

        gauge = metrics_pb2.METRIC_KIND_GAUGE
        for mode, percent in self._cpu_percent(snap.cpu_times).items():
            add("host_cpu_percent", gauge, percent, mode=mode)
        if snap.load is not None:
            for period, load in zip(("1m", "5m", "15m"), snap.load, strict=True):
                add("host_load", gauge, load, period=period)
        add("host_memory_used_bytes", gauge, snap.memory_used_bytes)
        add("host_memory_available_bytes", gauge, snap.memory_available_bytes)
        add("host_memory_total_bytes", gauge, snap.memory_total_bytes)
        add("host_swap_used_bytes", gauge, snap.swap_used_bytes)
        for mount, (used, free) in sorted(snap.disks.items()):
            add("host_disk_used_bytes", gauge, used, mount=mount)
            add("host_disk_free_bytes", gauge, free, mount=mount)
        add("host_processes", gauge, snap.processes)

        cumulative: dict[_Key, float] = {}
        for key, metric in DISK_IO_METRICS.items():
            if snap.disk_io is not None and key in snap.disk_io:
                cumulative[(metric, ())] = snap.disk_io[key]
        for interface, counters in snap.net_io.items():
            for key, metric in NET_IO_METRICS.items():
                if key in counters:
                    cumulative[(metric, (("interface", interface),))] = counters[key]
        for (metric, labels), delta in sorted(self._counters.update(cumulative, ts_ms, forget_missing=True).items()):
            add(metric, metrics_pb2.METRIC_KIND_COUNTER, delta, **dict(labels))
        return batch

    def _cpu_percent(self, times: Mapping[str, float]) -> dict[str, float]:
        before, self._cpu_before = self._cpu_before, dict(times)
        if before is None:
            return {}
        spent = {mode: times[mode] - before.get(mode, 0.0) for mode in times}
        if any(v < 0 for v in spent.values()):
            return {}  # counters went back (suspend/resume, VM migration): skip one round
        total = sum(v for mode, v in spent.items() if mode not in _CPU_NOT_IN_TOTAL)
        if total <= 0:
            return {}
        return {mode: 100.0 * spent[mode] / total for mode in CPU_MODES if mode in spent}


class BatchPusher(Protocol):
    async def push_one(self, batch: metrics_pb2.SampleBatch) -> ingest_pb2.BatchResult: ...


class LocalCollectorModule:
    """Collects every `interval_s` and pushes each batch with `push_one`.

    Never crashes on a failed collect or push: it logs, backs off (exponential up to
    `max_backoff_s`) and keeps collecting. Unsent batches wait in memory, oldest first, up
    to `max_buffered_batches` (then the oldest are dropped and counted); a batch the server
    refuses for good (bad key, invalid batch) is dropped. `ready` turns true after the first
    successful collect.
    """

    name = "collector"

    def __init__(
        self,
        *,
        collector: HostCollector,
        pusher: BatchPusher,
        max_buffered_batches: int = 720,
        max_backoff_s: float = 60.0,
        on_close: Callable[[], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._collector = collector
        self._pusher = pusher
        self._buffer: deque[metrics_pb2.SampleBatch] = deque()
        self._max_buffered = max_buffered_batches
        self._max_backoff_s = max_backoff_s
        self._on_close = on_close
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._ready = False
        self.pushed_batches = 0
        self.dropped_batches = 0

    @classmethod
    def connect(
        cls, *, target: str, api_key: str, host: str, region: str, interval_s: float = 5.0
    ) -> LocalCollectorModule:
        """A module pushing to `target` through its own PushClient (closed by `stop()`)."""
        # Few quick retries inside a push: the module itself retries with longer backoff.
        client = PushClient(target, api_key, timeout_s=10.0, retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.2))
        collector = HostCollector(host=host, region=region, interval_s=interval_s)
        return cls(collector=collector, pusher=client, on_close=client.close)

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def buffered_batches(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        """Run in the background; returns at once."""
        self._task = asyncio.create_task(self.run(), name="host-collector")

    async def run(self) -> None:
        """Collect and push until `stop()`."""
        loop = asyncio.get_running_loop()
        interval = self._collector.interval_s
        next_at = loop.time()
        while not self._stopping.is_set():
            await self._collect()
            await self._drain(loop.time())
            next_at = max(next_at + interval, loop.time())  # skip ticks we fell behind on
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), next_at - loop.time())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5.0)
            except TimeoutError:
                log.warning("host collector did not stop in 5 s; cancelled")
            self._task = None
        if self._on_close is not None:
            await self._on_close()

    def endpoints(self) -> dict[str, str]:
        return {}

    async def _collect(self) -> None:
        try:
            batch = await asyncio.to_thread(self._collector.collect)
        except Exception:
            log.exception("collect host metrics failed: host=%s", self._collector.host)
            return
        self._ready = True
        self._buffer.append(batch)
        while len(self._buffer) > self._max_buffered:
            dropped = self._buffer.popleft()
            self.dropped_batches += 1
            log.warning("host metrics buffer full, dropped oldest batch: batch_id=%s", dropped.batch_id)

    async def _drain(self, now: float) -> None:
        if now < self._retry_at:
            return
        while self._buffer and not self._stopping.is_set():
            batch = self._buffer[0]
            try:
                result = await self._pusher.push_one(batch)
            except ArgusError as exc:
                if not exc.retryable:
                    self._buffer.popleft()
                    self.dropped_batches += 1
                    log.error("push host metrics refused, dropped batch: batch_id=%s error=%s", batch.batch_id, exc)
                else:
                    log.warning("push host metrics failed, will retry: batch_id=%s error=%s", batch.batch_id, exc)
                self._back_off()
                return
            except Exception:
                log.exception("push host metrics failed, will retry: batch_id=%s", batch.batch_id)
                self._back_off()
                return
            self._buffer.popleft()
            self.pushed_batches += 1
            self._failures = 0
            self._retry_at = 0.0
            if result.rejected_samples:
                log.warning(
                    "ingest rejected host samples: batch_id=%s rejected=%d error=%s",
                    batch.batch_id,
                    result.rejected_samples,
                    result.error or (result.rejections[0].message if result.rejections else ""),
                )

    def _back_off(self) -> None:
        self._failures += 1
        ceiling = min(self._max_backoff_s, self._collector.interval_s * 2 ** (self._failures - 1))
        self._retry_at = asyncio.get_running_loop().time() + ceiling / 2 + self._rng.uniform(0, ceiling / 2)
