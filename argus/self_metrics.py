"""`argus up` watches itself: every `self_metrics_interval_s` its own metrics (core/telemetry.py,
the projector child's included) go through the real ingest path into the reserved tenant
`_argus`, with a key of their own kept in `<data-dir>/self_api_key` (docs/metrics.md).

Counters travel as deltas since the previous reading (the data model's counters; the first
reading is a baseline), gauges as they are; of a histogram only `_count` and `_sum` (as
counters): its buckets stay on `/metrics` for a scraper, which keeps the tenant's series
bounded (decision 0048).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from agent.push_client import PushClient, RetryPolicy
from command_side.config.commands import CreateApiKey
from command_side.config.handlers import create_api_key
from contracts.argus.metrics.v1 import metrics_pb2
from core.auth import check_key_strength, generate_key
from core.config_view import ConfigView
from core.cumulative import CumulativeDeltas
from core.errors import ArgusError
from core.model import SELF_TENANT
from core.telemetry import REGISTRY, Family, Registry
from core.tls import ClientTls

log = logging.getLogger(__name__)

SELF_KEY_FILE: Final = "self_api_key"

_Key = tuple[str, tuple[tuple[str, str], ...]]


def self_api_key(data_dir: Path) -> str:
    """The key of tenant `_argus`: the one kept in the data dir, else a new one written there
    (owner-only, like the development key)."""
    from argus.runtime import write_key_file

    path = data_dir / SELF_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        check_key_strength(key, parameter=str(path))
        return key
    key = generate_key()
    write_key_file(path, key)
    return key


class SelfBatcher:
    """Turns registry readings into SampleBatches of the data model."""

    def __init__(self, *, registry: Registry = REGISTRY, region: str, host: str) -> None:
        self._registry = registry
        self._region = region
        self._host = host
        self._counters: CumulativeDeltas[_Key] = CumulativeDeltas()

    def collect(self, ts_ms: int) -> metrics_pb2.SampleBatch:
        batch = metrics_pb2.SampleBatch(batch_id=f"argus-self:{self._host}:{ts_ms}", source=f"argus-self:{self._host}")
        cumulative: dict[_Key, float] = {}
        for family in self._registry.collect():
            for name, labels, value, counter in _readings(family):
                if counter:
                    cumulative[(name, labels)] = value
                else:
                    self._add(batch, name, metrics_pb2.METRIC_KIND_GAUGE, labels, value, ts_ms)
        for (name, labels), delta in sorted(self._counters.update(cumulative, ts_ms, forget_missing=True).items()):
            self._add(batch, name, metrics_pb2.METRIC_KIND_COUNTER, labels, delta, ts_ms)
        return batch

    def _add(
        self,
        batch: metrics_pb2.SampleBatch,
        name: str,
        kind: int,
        labels: tuple[tuple[str, str], ...],
        value: float,
        ts_ms: int,
    ) -> None:
        series = batch.series.add(metric=name, kind=kind, region=self._region)
        for label, text in sorted({"host": self._host, **dict(labels)}.items()):
            series.labels.add(name=label, value=text)
        series.timestamps_ms.append(ts_ms)
        series.values.append(float(value))


def _readings(family: Family) -> list[tuple[str, tuple[tuple[str, str], ...], float, bool]]:
    """(name, labels, value, is_counter) of one family, as the self-feed sends them."""
    if family.kind == "histogram":
        return [(s.name, s.labels, s.value, True) for s in family.samples if not s.name.endswith("_bucket")]
    return [(s.name, s.labels, s.value, family.kind == "counter") for s in family.samples]


class SelfMetricsModule:
    name = "self-metrics"

    def __init__(
        self,
        *,
        target: Callable[[], str],
        data_dir: Path,
        config: ConfigView,
        clock_ms: Callable[[], int],
        region: str,
        host: str,
        interval_s: float,
        tls: ClientTls | None = None,
        tls_server_name: str = "",
    ) -> None:
        self._target = target
        self._data_dir = data_dir
        self._config = config
        self._clock_ms = clock_ms
        self._interval_s = interval_s
        self._batcher = SelfBatcher(region=region, host=host)
        self._tls = tls
        self._tls_server_name = tls_server_name
        self._client: PushClient | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.pushed_batches = 0

    async def start(self) -> None:
        key = self_api_key(self._data_dir)
        command = CreateApiKey(api_key=key, tenant=SELF_TENANT, name="self-metrics", author="argus up")
        await create_api_key(command, view=self._config, clock_ms=self._clock_ms, reserved_ok=True)
        self._client = PushClient(
            self._target(),
            key,
            timeout_s=10.0,
            retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.2),
            tls=self._tls,
            tls_server_name=self._tls_server_name,
        )
        self._task = asyncio.create_task(self._run(self._client), name="self-metrics")

    async def _run(self, client: PushClient) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stop.is_set():
            batch = self._batcher.collect(self._clock_ms())
            if batch.series:
                try:
                    await client.push_one(batch)
                    self.pushed_batches += 1
                except ArgusError as exc:
                    # Its own figures are not worth a retry queue: the next reading carries on.
                    log.warning("self metrics not written: %s", exc)
                except Exception:
                    log.exception("self metrics not written")
            next_at = max(next_at + self._interval_s, loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), next_at - loop.time())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 15.0)
            self._task = None
        if self._client is not None:
            await self._client.close()

    def endpoints(self) -> dict[str, str]:
        return {"self metrics": f"tenant {SELF_TENANT} every {self._interval_s:g} s (key in {SELF_KEY_FILE})"}
