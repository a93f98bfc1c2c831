"""HostCollector delta logic with a scripted source, and LocalCollectorModule resilience."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.collectors.host import HostCollector, HostSnapshot, LocalCollectorModule
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.cumulative import CumulativeDeltas
from core.errors import Unauthenticated, Unavailable

Series = dict[tuple[str, tuple[tuple[str, str], ...]], tuple[int, float]]


class ScriptedSource:
    def __init__(self, snapshots: list[HostSnapshot]) -> None:
        self._snapshots: Iterator[HostSnapshot] = iter(snapshots)

    def snapshot(self) -> HostSnapshot:
        return next(self._snapshots)


class Clock:
    def __init__(self, start_s: float = 1_732_530_000.0) -> None:
        self.now = start_s

    def __call__(self) -> float:
        self.now += 5.0
        return self.now


def snap(
    *,
    cpu: Mapping[str, float] | None = None,
    disk_read: int = 0,
    eth0_in: int = 0,
    interfaces: tuple[str, ...] = ("eth0",),
) -> HostSnapshot:
    return HostSnapshot(
        cpu_times=cpu or {"user": 10.0, "system": 5.0, "idle": 85.0, "iowait": 0.0, "guest": 3.0},
        load=(0.5, 0.25, 0.125),
        memory_used_bytes=100,
        memory_available_bytes=900,
        memory_total_bytes=1000,
        swap_used_bytes=7,
        disks={"/": (40, 60)},
        disk_io={"read_bytes": disk_read, "write_bytes": 0, "read_count": 0, "write_count": 0},
        net_io={
            name: {
                "bytes_recv": eth0_in,
                "bytes_sent": 0,
                "packets_recv": 0,
                "packets_sent": 0,
                "errin": 0,
                "errout": 0,
            }
            for name in interfaces
        },
        processes=42,
    )


def by_series(batch: metrics_pb2.SampleBatch) -> Series:
    out: Series = {}
    for s in batch.series:
        labels = tuple((label.name, label.value) for label in s.labels if label.name != "host")
        assert len(s.values) == 1
        out[(s.metric, labels)] = (s.kind, s.values[0])
    return out


def collector(snapshots: list[HostSnapshot], clock: Clock | None = None) -> HostCollector:
    return HostCollector(host="web-1", region="eu-west-1", clock=clock or Clock(), source=ScriptedSource(snapshots))


def test_first_collect_has_gauges_but_no_counter_deltas_or_cpu_percent() -> None:
    batch = collector([snap(disk_read=1000, eth0_in=500)]).collect()
    series = by_series(batch)
    kinds = {kind for kind, _ in series.values()}
    assert kinds == {metrics_pb2.METRIC_KIND_GAUGE}
    assert ("host_cpu_percent", (("mode", "user"),)) not in series
    assert series[("host_memory_used_bytes", ())] == (metrics_pb2.METRIC_KIND_GAUGE, 100.0)
    assert series[("host_disk_free_bytes", (("mount", "/"),))][1] == 60.0
    assert series[("host_load", (("period", "15m"),))][1] == 0.125
    assert series[("host_processes", ())][1] == 42.0


def test_second_collect_emits_deltas_since_the_previous_one() -> None:
    c = collector([snap(disk_read=1000, eth0_in=500), snap(disk_read=1600, eth0_in=800)])
    c.collect()
    series = by_series(c.collect())
    assert series[("host_disk_read_bytes", ())] == (metrics_pb2.METRIC_KIND_COUNTER, 600.0)
    assert series[("host_network_in_bytes", (("interface", "eth0"),))] == (metrics_pb2.METRIC_KIND_COUNTER, 300.0)
    assert series[("host_disk_write_bytes", ())][1] == 0.0


def test_counter_reset_takes_the_new_value_as_delta() -> None:
    c = collector([snap(eth0_in=10_000), snap(eth0_in=250)])
    c.collect()
    assert by_series(c.collect())[("host_network_in_bytes", (("interface", "eth0"),))][1] == 250.0


def test_new_interface_starts_with_a_baseline_not_a_delta() -> None:
    c = collector([snap(eth0_in=100), snap(eth0_in=150, interfaces=("eth0", "eth1"))])
    c.collect()
    series = by_series(c.collect())
    assert ("host_network_in_bytes", (("interface", "eth1"),)) not in series
    assert series[("host_network_in_bytes", (("interface", "eth0"),))][1] == 50.0


def test_cpu_percent_comes_from_time_spent_between_collects_without_guest() -> None:
    before = {"user": 10.0, "system": 5.0, "idle": 85.0, "iowait": 0.0, "guest": 3.0}
    after = {"user": 40.0, "system": 15.0, "idle": 135.0, "iowait": 10.0, "guest": 50.0}
    c = collector([snap(cpu=before), snap(cpu=after)])
    c.collect()
    series = by_series(c.collect())
    percent = {labels[0][1]: v for (metric, labels), (_, v) in series.items() if metric == "host_cpu_percent"}
    assert percent == pytest.approx({"user": 30.0, "system": 10.0, "idle": 50.0, "iowait": 10.0})


def test_batch_is_named_by_host_and_time_and_every_series_has_host_label() -> None:
    clock = Clock(start_s=1000.0)
    batch = collector([snap()], clock).collect()
    assert batch.batch_id == "web-1:1005000"
    assert batch.source == "host:web-1"
    for s in batch.series:
        assert ("host", "web-1") in [(label.name, label.value) for label in s.labels]
        assert s.region == "eu-west-1"
        assert list(s.timestamps_ms) == [1_005_000]


@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=30))
def test_deltas_add_up_to_the_increase_when_counters_never_reset(raw: list[int]) -> None:
    values = sorted(raw)
    deltas: CumulativeDeltas[tuple[str, tuple[()]]] = CumulativeDeltas()
    total = 0.0
    for ts_ms, v in enumerate(values):
        total += sum(deltas.update({("c", ()): float(v)}, ts_ms).values())
    assert total == values[-1] - values[0]


# ---------------------------------------------------------------------------- module


class FlakyPusher:
    """Fails with the scripted errors first, then accepts; signals each accepted batch."""

    def __init__(self, errors: list[Exception], want: int) -> None:
        self._errors = errors
        self.accepted: list[str] = []
        self.attempts = 0
        self._want = want
        self.enough = asyncio.Event()

    async def push_one(self, batch: metrics_pb2.SampleBatch) -> ingest_pb2.BatchResult:
        self.attempts += 1
        if self._errors:
            raise self._errors.pop(0)
        self.accepted.append(batch.batch_id)
        if len(self.accepted) >= self._want:
            self.enough.set()
        return ingest_pb2.BatchResult(batch_id=batch.batch_id, status=ingest_pb2.BATCH_STATUS_ACCEPTED)


async def test_module_keeps_going_after_push_failures_and_resends_buffered_batches() -> None:
    snapshots = [snap(eth0_in=i * 10) for i in range(1000)]
    c = HostCollector(host="h", region="local", interval_s=0.001, clock=Clock(), source=ScriptedSource(snapshots))
    pusher = FlakyPusher([Unavailable("down"), Unavailable("still down"), RuntimeError("bug")], want=5)
    module = LocalCollectorModule(collector=c, pusher=pusher, max_backoff_s=0.002)
    await module.start()
    await asyncio.wait_for(pusher.enough.wait(), timeout=10)
    assert module.ready
    await module.stop()
    # Batches that failed stayed buffered and went out in collect order once ingest answered.
    assert pusher.accepted == sorted(pusher.accepted, key=lambda bid: int(bid.split(":")[1]))
    assert pusher.accepted[0] == "h:1732530005000"


async def test_module_drops_batches_the_server_refuses_for_good() -> None:
    snapshots = [snap() for _ in range(1000)]
    c = HostCollector(host="h", region="local", interval_s=0.001, clock=Clock(), source=ScriptedSource(snapshots))
    pusher = FlakyPusher([Unauthenticated("unknown API key")], want=1)
    module = LocalCollectorModule(collector=c, pusher=pusher, max_backoff_s=0.001)
    await module.start()
    await asyncio.wait_for(pusher.enough.wait(), timeout=10)
    await module.stop()
    assert module.dropped_batches == 1
    assert pusher.accepted[0] != "h:1732530005000"


class BreakingSource:
    """Gives one snapshot, then fails; tells the loop once it has failed `failures` times."""

    def __init__(self, loop: asyncio.AbstractEventLoop, failures: int) -> None:
        self._loop = loop
        self._calls = 0
        self._failures = failures
        self.failed_enough = asyncio.Event()

    def snapshot(self) -> HostSnapshot:
        self._calls += 1
        if self._calls == 1:
            return snap()
        if self._calls - 1 >= self._failures:
            self._loop.call_soon_threadsafe(self.failed_enough.set)
        raise OSError("/proc vanished")


async def test_module_survives_collect_failures() -> None:
    source = BreakingSource(asyncio.get_running_loop(), failures=3)
    c = HostCollector(host="h", region="local", interval_s=0.001, clock=Clock(), source=source)
    pusher = FlakyPusher([], want=1)
    module = LocalCollectorModule(collector=c, pusher=pusher)
    await module.start()
    await asyncio.wait_for(source.failed_enough.wait(), timeout=10)
    assert module.ready
    await module.stop()
    assert pusher.accepted == ["h:1732530005000"]
