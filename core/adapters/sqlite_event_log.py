"""The embedded event log: an append-only SQLite (WAL) table with topics, partitions,
offsets and consumer-group checkpoints.

Durability: the writer runs with `synchronous=FULL`, so a commit returns only after the
WAL is fsync'd; `append` resolves after that commit. Concurrent appends are group-committed:
whatever arrived while one transaction ran goes into the next, so many small batches share
one fsync. Duplicate event ids within a topic are ignored: ids live in their own small table
(`event_ids`), kept for the dedup window, longer than the payloads (retention). Payloads
above 512 bytes are stored zstd-compressed (`payload_codec` 1), transparently to readers.
See docs/decisions/0003-embedded-event-log.md and 0020-event-log-retention.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import zstandard

from core.adapters.log_retention import LogRetention
from core.adapters.sqlite_db import SqliteDatabase
from core.errors import CorruptData, InvalidArgument, StorageError
from core.ports import AppendResult, Event, EventLogConsumer, LogRecord, RebalanceListener

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics(
    topic_id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    partitions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events(
    topic_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    partition_key BLOB NOT NULL,
    payload BLOB NOT NULL,
    payload_codec INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS events_position ON events(topic_id, partition, offset);
-- Dedup: one row per appended event, kept for the dedup window (longer than its payload).
-- `seq` follows append order, so expiry deletes a prefix; `event_id` is the first 16 bytes
-- of the SHA-256 id (a collision needs ~2^64 ids).
CREATE TABLE IF NOT EXISTS event_ids(
    seq INTEGER PRIMARY KEY,
    topic_id INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    time_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS event_ids_id ON event_ids(topic_id, event_id);
-- Stored bytes per partition (record_bytes of its events), kept current by append and
-- retention so the size limit needs no scan.
CREATE TABLE IF NOT EXISTS partition_bytes(
    topic_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY(topic_id, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints(
    group_name TEXT NOT NULL,
    topic_id INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY(group_name, topic_id, partition)
) WITHOUT ROWID;
"""

RAW, ZSTD = 0, 1
_COMPRESS_ABOVE_BYTES = 512
_ID_BYTES = 16
# What a record costs besides its blobs (offsets, time, version, row and index overhead),
# counted toward the size limit so a log of tiny events still has a size.
_ROW_OVERHEAD_BYTES = 48
_RECORD_BYTES_SQL = f"length(payload) + length(partition_key) + length(event_id) + length(type) + {_ROW_OVERHEAD_BYTES}"
_RETENTION_PAGE = 2_000

_Pending = tuple[str, list[tuple[int, Event]], "asyncio.Future[AppendResult]"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeldPartition:
    """A partition retention wanted to trim further but could not: `groups` have not
    committed past its records (a lagging or stopped consumer group)."""

    topic: str
    partition: int
    groups: tuple[str, ...]
    held_records: int
    """Records retention would delete if those groups had committed past them."""
    bytes: int
    """Stored bytes of the partition after this run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionReport:
    deleted_records: int = 0
    deleted_bytes: int = 0
    deleted_ids: int = 0
    held: tuple[HeldPartition, ...] = ()


class SqliteEventLog:
    """EventLog on one SQLite file (`sqlite:///path/events.db`).

    With a `retention`, `start()` runs `enforce_retention` every `check_interval_ms`.
    """

    dedups_on_append = True

    def __init__(
        self,
        path: Path,
        *,
        tail_poll_s: float = 0.02,
        retention: LogRetention | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.path = path
        self._db = SqliteDatabase(path, schema=SCHEMA, synchronous="FULL")
        self._topics: dict[str, tuple[int, int]] = {}
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._appended = asyncio.Event()
        self._tail_poll_s = tail_poll_s
        self.retention = retention or LogRetention()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._retention_task: asyncio.Task[None] | None = None
        self._retention_runs = 0

    async def start(self) -> None:
        await self._db.start()
        await self._db.write(_migrate, "migrate event log")
        await self._load_topics()
        if self.retention.enabled:
            self._retention_task = asyncio.create_task(self._retention_loop())

    async def close(self) -> None:
        if self._retention_task is not None:
            self._retention_task.cancel()
            await asyncio.gather(self._retention_task, return_exceptions=True)
            self._retention_task = None
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._db.close()

    async def _load_topics(self) -> None:
        rows = await self._db.read(
            lambda c: c.execute("SELECT name, topic_id, partitions FROM topics").fetchall(), "load topics"
        )
        self._topics = {name: (tid, parts) for name, tid, parts in rows}

    async def ensure_topic(self, topic: str, partitions: int) -> int:
        if partitions < 1:
            raise InvalidArgument(f"topic {topic}: partitions must be >= 1", parameter="partitions")

        def create(c: sqlite3.Connection) -> None:
            c.execute("INSERT OR IGNORE INTO topics(name, partitions) VALUES(?, ?)", (topic, partitions))

        await self._db.write(create, f"create topic {topic}")
        await self._load_topics()
        return self._topics[topic][1]

    async def _topic(self, topic: str) -> tuple[int, int]:
        found = self._topics.get(topic)
        if found is None:
            await self._load_topics()  # created by another process since we looked
            found = self._topics.get(topic)
        if found is None:
            raise StorageError(f"topic {topic!r} does not exist in {self._db.path}; create it first")
        return found

    async def partitions(self, topic: str) -> int:
        return (await self._topic(topic))[1]

    # -- writing --------------------------------------------------------------------

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        _, partitions = await self._topic(topic)
        for partition, _event in events:
            if not 0 <= partition < partitions:
                raise InvalidArgument(f"append to {topic}: partition {partition} not in [0, {partitions})")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append((topic, list(events), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_pending())
        return await future

    async def _flush_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            ids = {topic: (await self._topic(topic))[0] for topic, _, _ in batch}
            try:
                results = await self._db.write(
                    functools.partial(_append_all, batch=batch, topic_ids=ids), "append events"
                )
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            self._appended.set()
            self._appended = asyncio.Event()

    # -- reading --------------------------------------------------------------------

    async def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[LogRecord]:
        topic_id, _ = await self._topic(topic)
        rows = await self._db.read(
            lambda c: _read_partition(c, topic_id, partition, offset, max_records), f"read {topic}/{partition}"
        )
        return [_record(topic, partition, row) for row in rows]

    async def read_many(self, topic: str, positions: Mapping[int, int], max_records: int) -> dict[int, list[LogRecord]]:
        """Records of several partitions in one round trip (at most `max_records` in all)."""
        topic_id, _ = await self._topic(topic)

        def read_all(c: sqlite3.Connection) -> dict[int, list[tuple[object, ...]]]:
            out: dict[int, list[tuple[object, ...]]] = {}
            left = max_records
            for partition, offset in positions.items():
                if left <= 0:
                    break
                rows = _read_partition(c, topic_id, partition, offset, left)
                if rows:
                    out[partition] = rows
                    left -= len(rows)
            return out

        raw = await self._db.read(read_all, f"read {topic}")
        return {p: [_record(topic, p, row) for row in rows] for p, rows in raw.items()}

    async def end_offset(self, topic: str, partition: int) -> int:
        return (await self.end_offsets(topic)).get(partition, 0)

    async def end_offsets(self, topic: str) -> dict[int, int]:
        topic_id, partitions = await self._topic(topic)
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT partition, MAX(offset) FROM events WHERE topic_id=? GROUP BY partition", (topic_id,)
            ).fetchall(),
            f"end offsets of {topic}",
        )
        ends = dict.fromkeys(range(partitions), 0)
        ends.update({int(p): int(o) + 1 for p, o in rows})
        return ends

    async def wait_for_append(self, timeout_s: float) -> None:
        """Return when this process appends, or after a short poll interval (appends by
        other processes are seen on the next read)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._appended.wait(), min(timeout_s, self._tail_poll_s))

    # -- retention ------------------------------------------------------------------

    @property
    def retention_runs(self) -> int:
        """Completed periodic retention runs (for tests and status)."""
        return self._retention_runs

    async def _retention_loop(self) -> None:
        interval_s = self.retention.check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.enforce_retention()
            except Exception:  # a failed run is retried at the next interval
                log.exception("event log retention failed", extra={"path": str(self.path)})
            self._retention_runs += 1

    async def enforce_retention(self, now_ms: int | None = None) -> RetentionReport:
        """Delete, per retained topic and partition, the oldest records that are older than
        `retention_ms` or over the partition's byte limit, but only records every consumer
        group of the topic has committed past, and never a partition's last record (it
        carries the partition's next offset). Then forget ids older than the dedup window.

        A group that lags holds its records: the partition stays over its limits (reported
        in `held` and logged) until the group commits or is dropped with `forget_group`.
        Safe to run from several processes at once (each run is one write transaction).
        """
        now = self._clock_ms() if now_ms is None else now_ms
        await self._load_topics()
        retained = {name: self._topics[name] for name in sorted(self.retention.topics) if name in self._topics}
        report = await self._db.write(
            functools.partial(_enforce, retention=self.retention, topics=retained, now_ms=now),
            "enforce event log retention",
        )
        for held in report.held:
            log.warning(
                "event log retention held back by consumer group(s) %s on %s/%d: %d record(s) past retention kept, "
                "%d bytes stored",
                ", ".join(held.groups) or "(none has committed)",
                held.topic,
                held.partition,
                held.held_records,
                held.bytes,
                extra={"partition": held.partition},
            )
        return report

    async def forget_group(self, group: str, topic: str) -> None:
        """Drop a consumer group's committed offsets on `topic` (a group no longer used, such
        as the groups of a replaced read-model version), so it stops holding retention back.
        A member started later under that name reads from the earliest record kept."""
        topic_id, _ = await self._topic(topic)
        await self._db.write(
            lambda c: c.execute("DELETE FROM checkpoints WHERE group_name=? AND topic_id=?", (group, topic_id)),
            f"forget group {group} on {topic}",
        )

    async def stored_bytes(self, topic: str) -> dict[int, int]:
        """Stored bytes per partition, as the size limit counts them."""
        topic_id, partitions = await self._topic(topic)
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT partition, bytes FROM partition_bytes WHERE topic_id=?", (topic_id,)
            ).fetchall(),
            f"stored bytes of {topic}",
        )
        out = dict.fromkeys(range(partitions), 0)
        out.update({int(p): int(b) for p, b in rows})
        return out

    # -- consumer groups ------------------------------------------------------------

    def consumer(
        self,
        group: str,
        topic: str,
        *,
        listener: RebalanceListener | None = None,
        session_timeout_ms: int | None = None,
    ) -> EventLogConsumer:
        return SqliteConsumer(self, group, topic, listener=listener)

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        topic_id, _ = await self._topic(topic)
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT partition, next_offset FROM checkpoints WHERE group_name=? AND topic_id=?",
                (group, topic_id),
            ).fetchall(),
            f"read checkpoints of {group}",
        )
        return {int(p): int(o) for p, o in rows}

    async def commit(self, group: str, topic: str, next_offsets: Mapping[int, int]) -> None:
        topic_id, _ = await self._topic(topic)
        rows = [(group, topic_id, p, o) for p, o in next_offsets.items()]

        def save(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO checkpoints(group_name, topic_id, partition, next_offset) VALUES(?,?,?,?) "
                "ON CONFLICT(group_name, topic_id, partition) DO UPDATE SET next_offset=excluded.next_offset",
                rows,
            )

        await self._db.write(save, f"commit offsets of {group} on {topic}")


def _append_all(c: sqlite3.Connection, *, batch: list[_Pending], topic_ids: Mapping[str, int]) -> list[AppendResult]:
    next_offsets: dict[tuple[int, int], int] = {}
    results = []
    # zstandard objects are not thread-safe: one per transaction, in the writer thread.
    compressor = zstandard.ZstdCompressor(level=1)
    added_bytes: dict[tuple[int, int], int] = {}
    for topic, events, _ in batch:
        topic_id = topic_ids[topic]
        offsets: list[int | None] = []
        for partition, event in events:
            new_id = c.execute(
                "INSERT OR IGNORE INTO event_ids(topic_id, event_id, time_ms) VALUES(?,?,?)",
                (topic_id, event.event_id[:_ID_BYTES], event.time_ms),
            )
            if new_id.rowcount != 1:
                offsets.append(None)  # appended before (its payload may have left the log since)
                continue
            key = (topic_id, partition)
            if key not in next_offsets:
                row = c.execute("SELECT MAX(offset) FROM events WHERE topic_id=? AND partition=?", key).fetchone()
                next_offsets[key] = 0 if row[0] is None else int(row[0]) + 1
            offset = next_offsets[key]
            payload, codec = event.payload, RAW
            if len(payload) > _COMPRESS_ABOVE_BYTES:
                payload, codec = compressor.compress(payload), ZSTD
            added_bytes[key] = added_bytes.get(key, 0) + _record_bytes(event, payload)
            cur = c.execute(
                "INSERT OR IGNORE INTO events(topic_id, partition, offset, event_id, type, schema_version, "
                "time_ms, partition_key, payload, payload_codec) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (
                    topic_id,
                    partition,
                    offset,
                    event.event_id,
                    event.type,
                    event.schema_version,
                    event.time_ms,
                    event.partition_key,
                    payload,
                    codec,
                ),
            )
            if cur.rowcount == 1:
                offsets.append(offset)
                next_offsets[key] = offset + 1
            else:
                offsets.append(None)
        results.append(AppendResult(offsets=tuple(offsets)))
    c.executemany(
        "INSERT INTO partition_bytes(topic_id, partition, bytes) VALUES(?,?,?) "
        "ON CONFLICT(topic_id, partition) DO UPDATE SET bytes=bytes+excluded.bytes",
        [(t, p, b) for (t, p), b in added_bytes.items()],
    )
    return results


def _record_bytes(event: Event, stored_payload: bytes) -> int:
    """A record's size as the size limit counts it (the SQL twin is _RECORD_BYTES_SQL)."""
    return (
        len(stored_payload)
        + len(event.partition_key)
        + len(event.event_id)
        + len(event.type.encode())
        + _ROW_OVERHEAD_BYTES
    )


def _migrate(c: sqlite3.Connection) -> None:
    """A log written before retention deduped by a unique index on `events`: copy its ids
    into `event_ids`, count its bytes, then drop the index (the ids table replaces it)."""
    if c.execute("SELECT 1 FROM sqlite_master WHERE type='index' AND name='events_id'").fetchone() is None:
        return
    c.execute(
        "INSERT OR IGNORE INTO event_ids(topic_id, event_id, time_ms) "
        f"SELECT topic_id, substr(event_id, 1, {_ID_BYTES}), time_ms FROM events ORDER BY rowid"
    )
    c.execute("DELETE FROM partition_bytes")
    c.execute(
        "INSERT INTO partition_bytes(topic_id, partition, bytes) "
        f"SELECT topic_id, partition, SUM({_RECORD_BYTES_SQL}) FROM events GROUP BY topic_id, partition"
    )
    c.execute("DROP INDEX events_id")


def _enforce(
    c: sqlite3.Connection, *, retention: LogRetention, topics: Mapping[str, tuple[int, int]], now_ms: int
) -> RetentionReport:
    deleted_records = deleted_bytes = deleted_ids = 0
    held: list[HeldPartition] = []
    cutoff_ms = now_ms - retention.retention_ms if retention.retention_ms else None
    for topic, (topic_id, partitions) in topics.items():
        limit = retention.partition_limit_bytes(partitions)
        if cutoff_ms is None and not limit:
            continue
        committed: dict[str, dict[int, int]] = {}
        for group, partition, next_offset in c.execute(
            "SELECT group_name, partition, next_offset FROM checkpoints WHERE topic_id=?", (topic_id,)
        ):
            committed.setdefault(str(group), {})[int(partition)] = int(next_offset)
        stored = dict(
            c.execute("SELECT partition, bytes FROM partition_bytes WHERE topic_id=?", (topic_id,)).fetchall()
        )
        for partition in range(partitions):
            last = c.execute(
                "SELECT MAX(offset) FROM events WHERE topic_id=? AND partition=?", (topic_id, partition)
            ).fetchone()[0]
            if last is None:
                continue
            # Records at or past `floor` are not committed by every group (no group: keep all).
            floor = min((by_p.get(partition, 0) for by_p in committed.values()), default=0)
            floor = min(floor, int(last))  # the last record stays: it carries the next offset
            remaining = int(stored.get(partition, 0))
            # Walk the oldest records while retention wants them gone (older than the cutoff,
            # or the partition over its limit without them); delete those below `floor`, count
            # the rest as held (up to one page: enough to say a group is in the way).
            cut, cut_bytes, wanted_bytes, held_records, after = None, 0, 0, 0, -1
            walking = True
            while walking:
                rows = c.execute(
                    f"SELECT offset, time_ms, {_RECORD_BYTES_SQL} FROM events "
                    "WHERE topic_id=? AND partition=? AND offset>? ORDER BY offset LIMIT ?",
                    (topic_id, partition, after, _RETENTION_PAGE),
                ).fetchall()
                walking = len(rows) == _RETENTION_PAGE
                for offset, time_ms, size in rows:
                    expired = cutoff_ms is not None and time_ms < cutoff_ms
                    if not (expired or (limit and remaining - wanted_bytes > limit)) or offset == last:
                        walking = False
                        break
                    wanted_bytes += size
                    if offset < floor:
                        cut, cut_bytes = offset, cut_bytes + size
                        continue
                    held_records += 1
                    if held_records >= _RETENTION_PAGE:
                        walking = False
                        break
                if rows:
                    after = rows[-1][0]
            if cut is not None:
                deleted_records += c.execute(
                    "DELETE FROM events WHERE topic_id=? AND partition=? AND offset<=?", (topic_id, partition, cut)
                ).rowcount
                deleted_bytes += cut_bytes
                remaining -= cut_bytes
                c.execute(
                    "UPDATE partition_bytes SET bytes=? WHERE topic_id=? AND partition=?",
                    (remaining, topic_id, partition),
                )
            if held_records:
                groups = tuple(sorted(g for g, by_p in committed.items() if by_p.get(partition, 0) <= floor))
                held.append(
                    HeldPartition(
                        topic=topic,
                        partition=partition,
                        groups=groups,
                        held_records=held_records,
                        bytes=remaining,
                    )
                )
    if retention.enabled and retention.dedup_window_ms and topics:
        deleted_ids = _expire_ids(c, [tid for tid, _ in topics.values()], now_ms - retention.dedup_window_ms)
    return RetentionReport(
        deleted_records=deleted_records, deleted_bytes=deleted_bytes, deleted_ids=deleted_ids, held=tuple(held)
    )


def _expire_ids(c: sqlite3.Connection, topic_ids: Sequence[int], cutoff_ms: int) -> int:
    """Delete the ids of `topic_ids` appended before `cutoff_ms`: the prefix in append order
    (`seq`), so a run costs what it deletes (plus the few ids of topics kept forever)."""
    retained = set(topic_ids)
    deleted, after = 0, -1
    while True:
        rows = c.execute(
            "SELECT seq, topic_id, time_ms FROM event_ids WHERE seq>? ORDER BY seq LIMIT ?", (after, _RETENTION_PAGE)
        ).fetchall()
        doomed: list[tuple[int]] = []
        young = False
        for seq, topic_id, time_ms in rows:
            if topic_id not in retained:
                continue
            if time_ms >= cutoff_ms:
                young = True
                break
            doomed.append((seq,))
        c.executemany("DELETE FROM event_ids WHERE seq=?", doomed)
        deleted += len(doomed)
        if young or len(rows) < _RETENTION_PAGE:
            return deleted
        after = rows[-1][0]


def _read_partition(
    c: sqlite3.Connection, topic_id: int, partition: int, offset: int, limit: int
) -> list[tuple[object, ...]]:
    """Rows of one partition with plain payloads (decompressed here, in the reader thread)."""
    rows = c.execute(
        "SELECT offset, event_id, type, schema_version, time_ms, partition_key, payload, payload_codec FROM events "
        "WHERE topic_id=? AND partition=? AND offset>=? ORDER BY offset LIMIT ?",
        (topic_id, partition, offset, limit),
    ).fetchall()
    if not any(row[7] == ZSTD for row in rows):
        return [row[:7] for row in rows]
    decompressor = zstandard.ZstdDecompressor()
    out = []
    for row in rows:
        payload = row[6]
        if row[7] == ZSTD:
            payload = decompressor.decompress(payload)
        elif row[7] != RAW:
            raise CorruptData(f"event at offset {row[0]} of partition {partition}: unknown payload codec {row[7]}")
        out.append((*row[:6], payload))
    return out


def _record(topic: str, partition: int, row: tuple[object, ...]) -> LogRecord:
    offset, event_id, type_, version, time_ms, key, payload = row
    return LogRecord(
        topic=topic,
        partition=partition,
        offset=int(offset),  # type: ignore[call-overload]
        event=Event(
            event_id=bytes(event_id),  # type: ignore[call-overload]
            type=str(type_),
            schema_version=int(version),  # type: ignore[call-overload]
            time_ms=int(time_ms),  # type: ignore[call-overload]
            partition_key=bytes(key),  # type: ignore[call-overload]
            payload=bytes(payload),  # type: ignore[call-overload]
        ),
    )


class SqliteConsumer:
    """The only member of its group: owns every partition of the topic (one machine).

    A second member would project from its own in-memory state and overwrite the first
    one's chunks, so membership is an exclusive lock file per group (released by the
    kernel when the process dies, even by kill -9).
    """

    def __init__(
        self, log: SqliteEventLog, group: str, topic: str, *, listener: RebalanceListener | None = None
    ) -> None:
        self._log = log
        self._group = group
        self._topic = topic
        self._listener = listener
        self._positions: dict[int, int] | None = None
        self._rotation = 0
        self._lock_file: int | None = None

    def _acquire_membership(self) -> None:
        path = self._log.path.with_name(f"{self._log.path.name}.{self._group}.{self._topic}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StorageError(
                f"consumer group {self._group!r} of {self._topic} in {self._log.path} is already consumed "
                f"by another process (pid {holder}); the embedded log serves one member per group"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_file = fd

    def _release_membership(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)  # closing drops the flock
            self._lock_file = None

    async def _ensure_positions(self) -> dict[int, int]:
        if self._positions is None:
            if self._lock_file is None:
                self._acquire_membership()
            partitions = await self._log.partitions(self._topic)
            committed = await self._log.committed(self._group, self._topic)
            self._positions = {p: committed.get(p, 0) for p in range(partitions)}
            if self._listener is not None:
                await self._listener.partitions_assigned(frozenset(self._positions))
        return self._positions

    @property
    def assigned(self) -> frozenset[int]:
        return frozenset(self._positions or ())

    async def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        positions = await self._ensure_positions()
        deadline = time.monotonic() + timeout_s
        while True:
            # Rotate the starting partition so one busy partition cannot starve the rest.
            order = sorted(positions)
            self._rotation = (self._rotation + 1) % max(1, len(order))
            order = order[self._rotation :] + order[: self._rotation]
            found = await self._log.read_many(self._topic, {p: positions[p] for p in order}, max_records)
            if found:
                records: list[LogRecord] = []
                for partition, recs in found.items():
                    positions[partition] = recs[-1].offset + 1
                    records.extend(recs)
                return records
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            await self._log.wait_for_append(left)

    async def commit(self, next_offsets: Mapping[int, int]) -> None:
        await self._log.commit(self._group, self._topic, next_offsets)

    async def committed(self) -> dict[int, int]:
        return await self._log.committed(self._group, self._topic)

    async def lag(self) -> dict[int, int]:
        positions = await self._ensure_positions()
        ends = await self._log.end_offsets(self._topic)
        return {p: max(0, ends.get(p, 0) - o) for p, o in positions.items()}

    async def close(self) -> None:
        self._positions = None
        self._release_membership()
