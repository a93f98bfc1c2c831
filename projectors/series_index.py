"""The series-index projector: accepted samples -> tenant/metric/label postings.

Upserts are idempotent (first/last seen widen with min/max), so re-delivery needs no
position bookkeeping. A series is written when it is new to this process or its seen-range
widened by more than `widen_ms`, which keeps steady-state writes near zero.

Rebalances (Kafka): pending upserts are written and their offsets committed before
partitions move; records of partitions this member no longer owns are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from contracts.argus.events.v1 import events_pb2
from core.consumer import ConsumerRunner, Delivery, RunnerStatus
from core.events import SAMPLES_TOPIC
from core.ports import EventLog, LogRecord, SeriesIndex, SeriesRecord
from core.samples import decode_sample_batch

log = logging.getLogger(__name__)


class SeriesIndexProjector:
    """Consumer group `series-index` of the samples topic -> the series index; the loop is
    the shared `core.consumer.ConsumerRunner`, this class its handler."""

    name = "series-index"

    def __init__(
        self,
        *,
        log: EventLog,
        index: SeriesIndex,
        flush_interval_ms: int = 500,
        widen_ms: int = 60_000,
        group: str = "series-index",
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._index = index
        self._widen_ms = widen_ms
        self._known: dict[tuple[str, int], tuple[int, int]] = {}
        self._pending: dict[tuple[str, int], SeriesRecord] = {}
        self._offsets: dict[int, int] = {}
        self._runner: ConsumerRunner[events_pb2.SampleBatchAccepted] = ConsumerRunner(
            name=self.name,
            log=log,
            topic=SAMPLES_TOPIC,
            group=group,
            handler=self,
            clock_ms=clock_ms,
            flush_interval_ms=flush_interval_ms,
        )

    @property
    def ready(self) -> asyncio.Event:
        return self._runner.ready

    def status(self) -> RunnerStatus:
        return self._runner.status()

    async def run(self, stop: asyncio.Event) -> None:
        await self._runner.run(stop)

    async def catch_up(self, *, idle_timeout_s: float = 0.05) -> None:
        """Index everything the log holds now, write it and commit (replays and tests)."""
        await self._runner.catch_up(idle_timeout_s=idle_timeout_s)

    async def close(self) -> None:
        await self._runner.close()

    # -- ConsumerHandler (called by the runner, under its lock) -------------------------

    def decode(self, record: LogRecord) -> events_pb2.SampleBatchAccepted:
        return decode_sample_batch(record)

    async def apply(self, deliveries: Sequence[Delivery[events_pb2.SampleBatchAccepted]]) -> None:
        # Upserts are idempotent: a duplicate event only widens what it widened before.
        for delivery in deliveries:
            self._offsets[delivery.record.partition] = delivery.record.offset + 1
            self._collect(delivery.value)

    def skip(self, partition: int, offset: int) -> None:
        self._offsets[partition] = offset + 1

    def buffer_full(self) -> bool:
        return False

    async def settle(self, *, force: bool) -> dict[int, int]:
        offsets, self._offsets = self._offsets, {}
        if self._pending:
            pending = self._pending
            await self._index.upsert_series(list(pending.values()))
            for key, record in pending.items():
                self._known[key] = (record.first_seen_ms, record.last_seen_ms)
            self._pending = {}
        return offsets

    def reset(self) -> None:
        self._pending, self._offsets = {}, {}
        self._known.clear()

    async def reassigned(self, partitions: frozenset[int]) -> None:
        self._offsets = {p: o for p, o in self._offsets.items() if p in partitions}

    async def housekeeping(self) -> None:
        return None

    def _collect(self, event: events_pb2.SampleBatchAccepted) -> None:
        pending = self._pending
        for sid, series in zip(event.series_ids, event.series, strict=True):
            if not series.timestamps_ms:
                continue
            ts = np.array(series.timestamps_ms, dtype=np.int64)  # not a per-sample Python loop
            first, last = int(ts.min()), int(ts.max())
            key = (event.tenant, sid)
            known = self._known.get(key)
            if known is not None and first >= known[0] - self._widen_ms and last <= known[1] + self._widen_ms:
                continue
            previous = pending.get(key)
            if previous is not None:
                first, last = min(first, previous.first_seen_ms), max(last, previous.last_seen_ms)
            if known is not None:
                first, last = min(first, known[0]), max(last, known[1])
            pending[key] = SeriesRecord(
                tenant=event.tenant,
                series_id=sid,
                metric=series.metric,
                kind=series.kind,
                region=series.region,
                labels=tuple((label.name, label.value) for label in series.labels),
                first_seen_ms=first,
                last_seen_ms=last,
            )
