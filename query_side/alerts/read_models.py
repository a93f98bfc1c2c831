"""The alert read-model projector: `argus.alerts.v1` -> a persisted AlertReadModelStore
(docs/decisions/0046-persisted-alert-read-models.md).

It reads every partition of the alerts topic from the positions the store holds and writes,
per batch of records, what they change (instances' newest transitions, newest acks,
timeline entries) together with the positions after them, in one atomic `apply`. So a
restart reads only what was appended since, a crash between two batches re-reads the last
one (a no-op: the store keeps the newest sequence / revision and ignores entries it holds),
and the reading process keeps nothing of the history in memory.

Every reader of the store (each query replica, `argus alerts list`) projects for itself
from the store's positions, not through a consumer group: a group would split the
partitions between replicas that each need all of them, and a committed group offset
would be a second position that can disagree with the store's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, replace

import orjson

from contracts.argus.alerts.v1 import alerts_pb2
from core.alerting.acks import ack_from, decode_ack
from core.alerting.lifecycle import AlertState
from core.errors import ArgusError, StorageError
from core.events import ALERTS_TOPIC
from core.ports import (
    AlertModelBatch,
    AlertReadModelStore,
    EventLog,
    LogRecord,
    StoredAck,
    StoredAlertInstance,
    StoredHistoryEntry,
)
from query_side.alerts.active import _STATES, TOPIC_PARTITIONS
from query_side.alerts.history import HistoryEntry, entry_of

log = logging.getLogger(__name__)

READ_BATCH = 1000
_EMPTY_READS_MAX = 5  # consecutive empty reads below the end offset before giving up

_STATE_CHANGED = alerts_pb2.AlertStateChanged.DESCRIPTOR.full_name
_ACTIVE = (alerts_pb2.ALERT_STATE_PENDING, alerts_pb2.ALERT_STATE_FIRING)


@dataclass(slots=True)
class _Batch:
    instances: dict[tuple[str, str], StoredAlertInstance] = field(default_factory=dict)
    acks: dict[tuple[str, str], StoredAck] = field(default_factory=dict)
    entries: list[HistoryEntry] = field(default_factory=list)


def stored_entry(entry: HistoryEntry, event_type: str) -> StoredHistoryEntry:
    return StoredHistoryEntry(
        tenant=entry.tenant,
        kind=entry.kind,
        time_ms=entry.time_ms,
        partition=entry.partition,
        offset=entry.offset,
        rules=entry.rules,
        instances=entry.instances,
        detail=orjson.dumps(entry.detail),
        event_type=event_type,
        payload=entry.message.SerializeToString(),
    )


class AlertReadModelProjector:
    """Projects the alerts topic into `store`; `catch_up` at start and before a read that
    must see the caller's own writes, `run` to follow."""

    def __init__(self, events: EventLog, store: AlertReadModelStore, *, refresh_interval_s: float = 0.5) -> None:
        self.events = events
        self.store = store
        self._refresh_interval_s = refresh_interval_s
        self._next: dict[int, int] | None = None
        self._partitions = 0
        self._lock = asyncio.Lock()
        self._running = False
        self._started = False
        self.skipped = 0
        """Records of this process's reads that are no transition or ack (other types, or
        undecodable)."""

    async def catch_up(self) -> None:
        """Project everything appended since the store's positions (durable on return)."""
        async with self._lock:
            if not self._started:
                await self.store.start()  # here: the first reader may be any of the views
                self._started = True
            if not self._partitions:
                self._partitions = await self.events.ensure_topic(ALERTS_TOPIC, TOPIC_PARTITIONS)
            # The store's positions each time, not only at start: another writer of the same
            # store (a query replica sharing DynamoDB tables, `argus alerts list` beside the
            # server) may have projected further, and re-applying its batches is wasted work.
            stored = await self.store.positions()
            self._next = {p: max(o, (self._next or {}).get(p, 0)) for p, o in {**(self._next or {}), **stored}.items()}
            try:
                for partition in range(self._partitions):
                    offset = self._next.get(partition, 0)
                    # Read up to the end offset, not to the first empty read: a Kafka read can
                    # come back empty before the end (tansu reports the start of the last batch
                    # as the fetch's high watermark), and a one-shot CLI would miss that batch.
                    end = await self.events.end_offset(ALERTS_TOPIC, partition)
                    empty = 0
                    while offset < end:
                        records = await self.events.read(ALERTS_TOPIC, partition, offset, READ_BATCH)
                        if not records:
                            empty += 1
                            if empty >= _EMPTY_READS_MAX:
                                raise StorageError(
                                    f"{ALERTS_TOPIC}/{partition}: no records from offset {offset} "
                                    f"although the partition ends at {end}"
                                )
                            continue
                        empty = 0
                        offset = records[-1].offset + 1
                        await self._apply(records, {partition: offset})
                        self._next[partition] = offset
            except BaseException:
                self._next = None  # the store's positions say where to resume
                raise

    async def close(self) -> None:
        """Close the store if this projector opened it."""
        async with self._lock:
            if self._started:
                self._started = False
                await self.store.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the topic until `stop` is set (keeps serving what it has on errors). A
        second `run` of the same projector (two views sharing it) only waits for `stop`."""
        if self._running:
            await stop.wait()
            return
        self._running = True
        try:
            while not stop.is_set():
                try:
                    await self.catch_up()
                except Exception as exc:  # keep serving what the store has
                    log.warning("alert read models: cannot follow %s: %s", ALERTS_TOPIC, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._refresh_interval_s)
        finally:
            self._running = False

    async def _apply(self, records: list[LogRecord], positions: dict[int, int]) -> None:
        batch = _Batch()
        changes: list[alerts_pb2.AlertStateChanged] = []
        for record in records:
            entry = entry_of(record, {})
            if entry is not None:
                batch.entries.append(entry)
            if record.unreadable is not None:
                self.skipped += 1
            elif record.event.type == _STATE_CHANGED:
                if entry is None:
                    self.skipped += 1  # entry_of logged it
                else:
                    assert isinstance(entry.message, alerts_pb2.AlertStateChanged)
                    changes.append(entry.message)
            else:
                self._take_ack(record, batch)
        await self._take_changes(changes, batch)
        await self._resolve_rules(batch)
        await self.store.apply(
            AlertModelBatch(
                instances=list(batch.instances.values()),
                acks=list(batch.acks.values()),
                entries=[stored_entry(e, e.message.DESCRIPTOR.full_name) for e in batch.entries],
                positions=positions,
            )
        )

    def _take_ack(self, record: LogRecord, batch: _Batch) -> None:
        try:
            message = decode_ack(record)
        except ArgusError as exc:
            message = None
            log.warning(
                "alert read models: skipping an unreadable ack at %d@%d: %s", record.partition, record.offset, exc
            )
        if message is None:
            self.skipped += 1
            return
        ack = ack_from(message)
        key = (message.tenant, message.instance_id)
        held = batch.acks.get(key)
        if held is None or held.revision < ack.revision:
            batch.acks[key] = StoredAck(
                tenant=message.tenant,
                instance_id=message.instance_id,
                acked=ack.acked,
                author=ack.author,
                comment=ack.comment,
                time_ms=ack.time_ms,
                revision=ack.revision,
                alert_sequence=ack.alert_sequence,
            )

    async def _take_changes(self, changes: list[alerts_pb2.AlertStateChanged], batch: _Batch) -> None:
        by_tenant: dict[str, set[str]] = {}
        for c in changes:
            by_tenant.setdefault(c.tenant, set()).add(c.instance_id)
        current: dict[tuple[str, str], StoredAlertInstance] = {}
        for tenant, ids in by_tenant.items():
            for iid, stored in (await self.store.get_instances(tenant, sorted(ids))).items():
                current[(tenant, iid)] = stored
        for c in changes:
            key = (c.tenant, c.instance_id)
            held = current.get(key)
            if held is not None and held.sequence >= c.sequence:
                continue  # a duplicate or an older transition never moves an instance back
            if c.to_state in _ACTIVE:
                # The episode began at the first pending/firing after the instance was last
                # inactive or resolved (core/alerting/acks.py `holds`).
                episode = held.episode_sequence if held is not None and held.episode_sequence else c.sequence
            else:
                episode = 0
            row = StoredAlertInstance(
                tenant=c.tenant,
                instance_id=c.instance_id,
                rule=c.rule,
                # A state of a newer build reads as inactive, as the in-memory view had it.
                state=_STATES.get(c.to_state, AlertState.INACTIVE).value,
                sequence=c.sequence,
                episode_sequence=episode,
                payload=c.SerializeToString(),
            )
            current[key] = batch.instances[key] = row

    async def _resolve_rules(self, batch: _Batch) -> None:
        """A notification, ack or escalation names instances: its `rules` are theirs (the
        tenant's own instances only)."""
        wanted: dict[str, set[str]] = {}
        for e in batch.entries:
            if e.kind != "state":
                wanted.setdefault(e.tenant, set()).update(e.instances)
        if not wanted:
            return
        rule_of: dict[tuple[str, str], str] = {key: i.rule for key, i in batch.instances.items()}
        for tenant, ids in wanted.items():
            missing = sorted(i for i in ids if (tenant, i) not in rule_of)
            for iid, held in (await self.store.get_instances(tenant, missing)).items():
                rule_of[(tenant, iid)] = held.rule
        batch.entries = [
            e
            if e.kind == "state"
            else replace(
                e, rules=tuple(sorted({rule_of[(e.tenant, i)] for i in e.instances if (e.tenant, i) in rule_of}))
            )
            for e in batch.entries
        ]
