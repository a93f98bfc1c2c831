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
from collections.abc import Sequence

import numpy as np

from contracts.argus.events.v1 import events_pb2
from core.errors import ArgusError
from core.events import SAMPLES_TOPIC, decode_payload
from core.ports import EventLog, EventLogConsumer, LogRecord, SeriesIndex, SeriesRecord

log = logging.getLogger(__name__)


class SeriesIndexProjector:
    name = "series-index"

    def __init__(
        self,
        *,
        log: EventLog,
        index: SeriesIndex,
        flush_interval_ms: int = 500,
        widen_ms: int = 60_000,
        group: str = "series-index",
    ) -> None:
        self._log = log
        self._index = index
        self._flush_interval_s = flush_interval_ms / 1000
        self._widen_ms = widen_ms
        self._group = group
        self._known: dict[tuple[str, int], tuple[int, int]] = {}
        self._pending: dict[tuple[str, int], SeriesRecord] = {}
        self._offsets: dict[int, int] = {}
        self._consumer: EventLogConsumer | None = None
        self._lock = asyncio.Lock()  # collect / flush vs the rebalance callbacks
        self.ready = asyncio.Event()

    async def partitions_revoked(self, partitions: frozenset[int]) -> None:
        async with self._lock:
            try:
                await self._flush_and_commit()
            except Exception as exc:  # the next owner replays from the last commit
                log.warning("series-index: flush before rebalance failed (%s); dropping pending upserts", exc)
                self._pending, self._offsets = {}, {}

    async def partitions_assigned(self, partitions: frozenset[int]) -> None:
        async with self._lock:
            self._offsets = {p: o for p, o in self._offsets.items() if p in partitions}

    async def _flush_and_commit(self) -> None:
        if not self._offsets:
            return
        await self._flush(self._pending)
        if self._consumer is not None:
            owned = self._consumer.assigned
            await self._consumer.commit({p: o for p, o in self._offsets.items() if p in owned})
        self._pending, self._offsets = {}, {}

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._consumer = self._log.consumer(self._group, SAMPLES_TOPIC, listener=self)
        self.ready.set()
        last_flush = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    records = await consumer.poll(max_records=512, timeout_s=0.1)
                    async with self._lock:
                        owned = consumer.assigned  # records polled before a rebalance may not be ours
                        self._collect([r for r in records if r.partition in owned], self._pending, self._offsets)
                        if time.monotonic() - last_flush >= self._flush_interval_s and self._offsets:
                            await self._flush_and_commit()
                            last_flush = time.monotonic()
                except Exception as exc:
                    # Our own errors say what failed; anything else needs its traceback.
                    log.log(
                        logging.WARNING if isinstance(exc, ArgusError) else logging.ERROR,
                        "series-index: %s; restarting from the last committed offsets in 1 s",
                        exc,
                        exc_info=not isinstance(exc, ArgusError),
                    )
                    await consumer.close()
                    consumer = self._consumer = self._log.consumer(self._group, SAMPLES_TOPIC, listener=self)
                    self._pending, self._offsets = {}, {}
                    self._known.clear()
                    await asyncio.sleep(1.0)
            async with self._lock:
                await self._flush_and_commit()
        finally:
            await consumer.close()

    def _collect(
        self, records: Sequence[LogRecord], pending: dict[tuple[str, int], SeriesRecord], offsets: dict[int, int]
    ) -> None:
        for record in records:
            offsets[record.partition] = record.offset + 1
            event = decode_payload(record.event, events_pb2.SampleBatchAccepted)
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

    async def _flush(self, pending: dict[tuple[str, int], SeriesRecord]) -> None:
        if not pending:
            return
        await self._index.upsert_series(list(pending.values()))
        for key, record in pending.items():
            self._known[key] = (record.first_seen_ms, record.last_seen_ms)
