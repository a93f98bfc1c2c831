"""AlertReadModelStore in a SQLite file of the data dir (`alerts.db`).

Tables: `alert_instances` (tenant, instance) -> newest transition; `alert_acks` (tenant,
instance) -> newest ack; `alert_timeline` (tenant, time, partition, offset) -> entry;
`alert_positions` partition -> next offset. One IMMEDIATE transaction per batch writes all
four, so the positions are exactly as durable as the effects (decision 0004's rule with the
position kept beside the read model). WAL, synchronous=NORMAL like the hot store: a power
cut can lose the last batches, which the projector reads again from those positions.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import orjson

from core.adapters.sqlite_db import SqliteDatabase
from core.ports import AlertModelBatch, StoredAck, StoredAlertInstance, StoredHistoryEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_instances(
    tenant TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    episode_sequence INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY(tenant, instance_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_instances_by_state ON alert_instances(tenant, state);
CREATE TABLE IF NOT EXISTS alert_acks(
    tenant TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    acked INTEGER NOT NULL,
    author TEXT NOT NULL,
    comment TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    alert_sequence INTEGER NOT NULL,
    PRIMARY KEY(tenant, instance_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_timeline(
    tenant TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    kind TEXT NOT NULL,
    rules TEXT NOT NULL,
    instances TEXT NOT NULL,
    detail BLOB NOT NULL,
    event_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY(tenant, time_ms, partition, "offset")
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS alert_timeline_at ON alert_timeline(tenant, partition, "offset");
CREATE TABLE IF NOT EXISTS alert_positions(
    partition INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_meta(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

log = logging.getLogger(__name__)

ALERTS_DB = "alerts.db"
"""Its file's name in the data dir."""
_CHUNK = 500  # ids per SELECT
_INSTANCE_COLUMNS = "tenant, instance_id, rule, state, sequence, episode_sequence, payload"
_ACK_COLUMNS = "tenant, instance_id, acked, author, comment, time_ms, revision, alert_sequence"


def _instance(row: tuple[object, ...]) -> StoredAlertInstance:
    tenant, instance_id, rule, state, sequence, episode, payload = row
    assert isinstance(payload, bytes)
    return StoredAlertInstance(
        tenant=str(tenant),
        instance_id=str(instance_id),
        rule=str(rule),
        state=str(state),
        sequence=int(str(sequence)),
        episode_sequence=int(str(episode)),
        payload=payload,
    )


class SqliteAlertReadModels:
    """`source` names the event log the models are projected from (its URL): a file that was
    projected from another log (the data dir pointed elsewhere, a test's earlier broker) holds
    positions that mean nothing here, so it is emptied and rebuilt."""

    def __init__(self, path: Path, *, source: str = "") -> None:
        self._db = SqliteDatabase(path, schema=SCHEMA, synchronous="NORMAL")
        self._source = source

    async def start(self) -> None:
        await self._db.start()
        source = self._source

        def check(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM alert_meta WHERE key = 'source'").fetchone()
            stored = None if row is None else str(row[0])
            if stored != source:
                if stored is not None:
                    for table in ("alert_instances", "alert_acks", "alert_timeline", "alert_positions"):
                        conn.execute(f"DELETE FROM {table}")
                conn.execute("INSERT OR REPLACE INTO alert_meta (key, value) VALUES ('source', ?)", (source,))
            return stored

        stored = await self._db.write(check, "check the alert read models' source")
        if stored is not None and stored != source:
            log.warning("alert read models were projected from another event log (%s); rebuilding", stored)

    async def close(self) -> None:
        await self._db.close()

    async def positions(self) -> dict[int, int]:
        def run(conn: sqlite3.Connection) -> dict[int, int]:
            return {int(p): int(o) for p, o in conn.execute("SELECT partition, next_offset FROM alert_positions")}

        return await self._db.read(run, "read alert read-model positions")

    async def apply(self, batch: AlertModelBatch) -> None:
        instances = [
            (i.tenant, i.instance_id, i.rule, i.state, i.sequence, i.episode_sequence, i.payload)
            for i in batch.instances
        ]
        acks = [
            (a.tenant, a.instance_id, int(a.acked), a.author, a.comment, a.time_ms, a.revision, a.alert_sequence)
            for a in batch.acks
        ]
        entries = [
            (
                e.tenant,
                e.time_ms,
                e.partition,
                e.offset,
                e.kind,
                orjson.dumps(list(e.rules)).decode(),
                orjson.dumps(list(e.instances)).decode(),
                e.detail,
                e.event_type,
                e.payload,
            )
            for e in batch.entries
        ]
        positions = list(batch.positions.items())

        def run(conn: sqlite3.Connection) -> None:
            # The WHERE clauses make a re-applied batch a no-op (newest sequence / revision wins).
            conn.executemany(
                f"INSERT INTO alert_instances ({_INSTANCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, instance_id) DO UPDATE SET rule = excluded.rule, state = excluded.state, "
                "sequence = excluded.sequence, episode_sequence = excluded.episode_sequence, "
                "payload = excluded.payload WHERE excluded.sequence > alert_instances.sequence",
                instances,
            )
            conn.executemany(
                f"INSERT INTO alert_acks ({_ACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, instance_id) DO UPDATE SET acked = excluded.acked, author = excluded.author, "
                "comment = excluded.comment, time_ms = excluded.time_ms, revision = excluded.revision, "
                "alert_sequence = excluded.alert_sequence WHERE excluded.revision > alert_acks.revision",
                acks,
            )
            conn.executemany(
                'INSERT OR IGNORE INTO alert_timeline (tenant, time_ms, partition, "offset", kind, rules, '
                "instances, detail, event_type, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                entries,
            )
            conn.executemany(
                "INSERT INTO alert_positions (partition, next_offset) VALUES (?, ?) ON CONFLICT (partition) "
                "DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
                positions,
            )

        await self._db.write(run, "apply a batch to the alert read models")

    async def instances(
        self, tenant: str, states: Sequence[str], *, rule: str | None = None
    ) -> list[StoredAlertInstance]:
        wanted = list(states)

        def run(conn: sqlite3.Connection) -> list[StoredAlertInstance]:
            marks = ",".join("?" * len(wanted))
            sql = f"SELECT {_INSTANCE_COLUMNS} FROM alert_instances WHERE tenant = ? AND state IN ({marks})"
            args: list[object] = [tenant, *wanted]
            if rule is not None:
                sql += " AND rule = ?"
                args.append(rule)
            return [_instance(row) for row in conn.execute(sql, args)]

        return await self._db.read(run, "read alert instances") if wanted else []

    async def get_instances(self, tenant: str, instance_ids: Sequence[str]) -> dict[str, StoredAlertInstance]:
        wanted = list(dict.fromkeys(instance_ids))

        def run(conn: sqlite3.Connection) -> dict[str, StoredAlertInstance]:
            found: dict[str, StoredAlertInstance] = {}
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {_INSTANCE_COLUMNS} FROM alert_instances WHERE tenant = ? AND instance_id IN ({marks})"
                for row in conn.execute(sql, [tenant, *chunk]):
                    found[str(row[1])] = _instance(row)
            return found

        return await self._db.read(run, "read alert instances")

    async def acks(self, tenant: str, instance_ids: Sequence[str]) -> dict[str, StoredAck]:
        wanted = list(dict.fromkeys(instance_ids))

        def run(conn: sqlite3.Connection) -> dict[str, StoredAck]:
            found: dict[str, StoredAck] = {}
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {_ACK_COLUMNS} FROM alert_acks WHERE tenant = ? AND instance_id IN ({marks})"
                for t, iid, acked, author, comment, time_ms, revision, alert_sequence in conn.execute(
                    sql, [tenant, *chunk]
                ):
                    found[iid] = StoredAck(
                        tenant=t,
                        instance_id=iid,
                        acked=bool(acked),
                        author=author,
                        comment=comment,
                        time_ms=time_ms,
                        revision=revision,
                        alert_sequence=alert_sequence,
                    )
            return found

        return await self._db.read(run, "read alert acks")

    async def entries(
        self, tenant: str, *, since_ms: int, after: tuple[int, int, int] | None, limit: int
    ) -> list[StoredHistoryEntry]:
        start = max((since_ms, -1, -1), after or (since_ms, -1, -1))

        def run(conn: sqlite3.Connection) -> list[StoredHistoryEntry]:
            rows = conn.execute(
                'SELECT time_ms, partition, "offset", kind, rules, instances, detail, event_type, payload '
                'FROM alert_timeline WHERE tenant = ? AND (time_ms, partition, "offset") > (?, ?, ?) '
                'ORDER BY time_ms, partition, "offset" LIMIT ?',
                (tenant, *start, limit),
            )
            return [
                StoredHistoryEntry(
                    tenant=tenant,
                    kind=kind,
                    time_ms=time_ms,
                    partition=partition,
                    offset=offset,
                    rules=tuple(orjson.loads(rules)),
                    instances=tuple(orjson.loads(instances)),
                    detail=bytes(detail),
                    event_type=event_type,
                    payload=bytes(payload),
                )
                for time_ms, partition, offset, kind, rules, instances, detail, event_type, payload in rows
            ]

        return await self._db.read(run, "read the alert timeline")
