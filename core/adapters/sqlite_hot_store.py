"""The embedded hot store: tier chunks, the series index and projector state in SQLite.

One table per tier (`chunks_5s`, ...), keyed by (series id, chunk start); the series index
with label postings (tenant, metric, label, value) -> series, so a query resolves series
by equality without scanning. Durability: WAL with synchronous=NORMAL: a crash of the
process loses nothing committed; a power cut can lose the last commits, which the
projectors redo from the event log (their offsets are committed after these writes).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.adapters.sqlite_db import SqliteDatabase
from core.errors import InvalidArgument
from core.model import DEFAULT_TIERS, Tier
from core.ports import LabelFilter, MetricSummary, SeriesRecord, StoredChunk

_BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS series(
    tenant TEXT NOT NULL,
    series_id INTEGER NOT NULL,
    metric TEXT NOT NULL,
    kind INTEGER NOT NULL,
    region TEXT NOT NULL,
    labels TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY(tenant, series_id)
);
CREATE INDEX IF NOT EXISTS series_by_metric ON series(tenant, metric);
CREATE TABLE IF NOT EXISTS postings(
    tenant TEXT NOT NULL,
    metric TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    series_id INTEGER NOT NULL,
    PRIMARY KEY(tenant, metric, name, value, series_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_by_label ON postings(tenant, name, value);
CREATE TABLE IF NOT EXISTS applied_events(
    projector TEXT NOT NULL,
    event_id BLOB NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY(projector, event_id)
) WITHOUT ROWID;
"""

_TIER_NAME = re.compile(r"^[0-9a-z]+$")


def _chunk_table(tier: str) -> str:
    if not _TIER_NAME.match(tier):
        raise InvalidArgument(f"bad tier name {tier!r}", parameter="tier")
    return f"chunks_{tier}"


def _schema(tiers: Iterable[Tier]) -> str:
    parts = [_BASE_SCHEMA]
    for tier in tiers:
        table = _chunk_table(tier.name)
        parts.append(
            f"CREATE TABLE IF NOT EXISTS {table}("
            "series_id INTEGER NOT NULL, chunk_start INTEGER NOT NULL, partition INTEGER NOT NULL, "
            "applied_offset INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(series_id, chunk_start));"
        )
    return "\n".join(parts)


class SqliteHotStore:
    """HotStore on one SQLite file (`sqlite:///path/hot.db`)."""

    def __init__(self, path: Path, *, tiers: Sequence[Tier] = DEFAULT_TIERS) -> None:
        self._db = SqliteDatabase(path, schema=_schema(tiers), synchronous="NORMAL")

    async def start(self) -> None:
        await self._db.start()

    async def close(self) -> None:
        await self._db.close()

    # -- chunks ---------------------------------------------------------------------

    async def write_chunks(self, tier: str, chunks: Sequence[StoredChunk]) -> None:
        if not chunks:
            return
        table = _chunk_table(tier)
        rows = [(c.series_id, c.chunk_start_ms, c.partition, c.applied_offset, c.data) for c in chunks]
        sql = (
            f"INSERT INTO {table}(series_id, chunk_start, partition, applied_offset, data) VALUES(?,?,?,?,?) "
            "ON CONFLICT(series_id, chunk_start) DO UPDATE SET partition=excluded.partition, "
            f"applied_offset=excluded.applied_offset, data=excluded.data "
            f"WHERE excluded.applied_offset > {table}.applied_offset"
        )
        await self._db.write(lambda c: c.executemany(sql, rows), f"write {len(rows)} chunks of tier {tier}")

    async def get_chunks(self, tier: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredChunk]:
        if not keys:
            return {}
        table = _chunk_table(tier)

        def fetch(c: sqlite3.Connection) -> dict[tuple[int, int], StoredChunk]:
            out: dict[tuple[int, int], StoredChunk] = {}
            c.execute("CREATE TEMP TABLE IF NOT EXISTS wanted(series_id INTEGER, chunk_start INTEGER)")
            c.execute("DELETE FROM wanted")
            c.executemany("INSERT INTO wanted VALUES(?,?)", keys)
            for sid, start, partition, applied, data in c.execute(
                f"SELECT t.series_id, t.chunk_start, t.partition, t.applied_offset, t.data FROM wanted w "
                f"JOIN {table} t ON t.series_id=w.series_id AND t.chunk_start=w.chunk_start"
            ):
                out[(sid, start)] = StoredChunk(
                    series_id=sid, chunk_start_ms=start, data=data, partition=partition, applied_offset=applied
                )
            return out

        return await self._db.read(fetch, f"get {len(keys)} chunks of tier {tier}")

    async def read_range(
        self, tier: str, series_ids: Sequence[int], start_ms: int, end_ms: int, chunk_span_ms: int
    ) -> list[StoredChunk]:
        if not series_ids:
            return []
        table = _chunk_table(tier)
        first = start_ms - start_ms % chunk_span_ms
        ids = list(series_ids)

        def fetch(c: sqlite3.Connection) -> list[StoredChunk]:
            out = []
            for lo in range(0, len(ids), 500):
                part = ids[lo : lo + 500]
                marks = ",".join("?" * len(part))
                for sid, start, partition, applied, data in c.execute(
                    f"SELECT series_id, chunk_start, partition, applied_offset, data FROM {table} "
                    f"WHERE series_id IN ({marks}) AND chunk_start >= ? AND chunk_start < ?",
                    (*part, first, end_ms),
                ):
                    out.append(
                        StoredChunk(
                            series_id=sid, chunk_start_ms=start, data=data, partition=partition, applied_offset=applied
                        )
                    )
            return out

        return await self._db.read(fetch, f"read tier {tier} range")

    async def delete_before(self, tier: str, before_ms: int, chunk_span_ms: int) -> int:
        table = _chunk_table(tier)
        return await self._db.write(
            lambda c: c.execute(f"DELETE FROM {table} WHERE chunk_start + ? <= ?", (chunk_span_ms, before_ms)).rowcount,
            f"apply retention to tier {tier}",
        )

    # -- series index ---------------------------------------------------------------

    async def upsert_series(self, records: Sequence[SeriesRecord]) -> None:
        if not records:
            return
        rows = [
            (
                r.tenant,
                r.series_id,
                r.metric,
                r.kind,
                r.region,
                json.dumps(r.labels, separators=(",", ":")),
                r.first_seen_ms,
                r.last_seen_ms,
            )
            for r in records
        ]
        postings = [
            (r.tenant, r.metric, name, value, r.series_id)
            for r in records
            for name, value in (*r.labels, ("region", r.region))
        ]

        def write(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO series(tenant, series_id, metric, kind, region, labels, first_seen_ms, last_seen_ms) "
                "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(tenant, series_id) DO UPDATE SET "
                "first_seen_ms=MIN(first_seen_ms, excluded.first_seen_ms), "
                "last_seen_ms=MAX(last_seen_ms, excluded.last_seen_ms)",
                rows,
            )
            c.executemany("INSERT OR IGNORE INTO postings VALUES(?,?,?,?,?)", postings)

        await self._db.write(write, f"upsert {len(rows)} series")

    async def find_series(self, tenant: str, metric: str, where: LabelFilter | None = None) -> list[SeriesRecord]:
        equal = dict(where.equal) if where else {}
        sql = "SELECT * FROM series s WHERE s.tenant=? AND s.metric=?"
        args: list[object] = [tenant, metric]
        for name, value in sorted(equal.items()):
            sql += (
                " AND s.series_id IN (SELECT series_id FROM postings "
                "WHERE tenant=? AND metric=? AND name=? AND value=?)"
            )
            args += [tenant, metric, name, value]
        rows = await self._db.read(lambda c: c.execute(sql, args).fetchall(), f"find series of {metric}")
        return [_series(row) for row in rows]

    async def list_metrics(self, tenant: str) -> list[MetricSummary]:
        rows = await self._db.read(
            lambda c: c.execute(
                "SELECT metric, MIN(kind), COUNT(*) FROM series WHERE tenant=? GROUP BY metric ORDER BY metric",
                (tenant,),
            ).fetchall(),
            "list metrics",
        )
        return [MetricSummary(name=m, kind=int(k), series_count=int(n)) for m, k, n in rows]

    async def label_values(self, tenant: str, label: str, metric: str | None = None) -> list[str]:
        if metric:
            sql = "SELECT DISTINCT value FROM postings WHERE tenant=? AND metric=? AND name=? ORDER BY value"
            args: tuple[str, ...] = (tenant, metric, label)
        else:
            sql = "SELECT DISTINCT value FROM postings WHERE tenant=? AND name=? ORDER BY value"
            args = (tenant, label)
        rows = await self._db.read(lambda c: c.execute(sql, args).fetchall(), f"list values of label {label}")
        return [str(r[0]) for r in rows]

    async def tenant_series(self, tenant: str | None = None) -> list[SeriesRecord]:
        if tenant is None:
            rows = await self._db.read(lambda c: c.execute("SELECT * FROM series").fetchall(), "list series")
        else:
            rows = await self._db.read(
                lambda c: c.execute("SELECT * FROM series WHERE tenant=?", (tenant,)).fetchall(), "list series"
            )
        return [_series(row) for row in rows]

    # -- projector state ------------------------------------------------------------

    async def filter_new_events(self, projector: str, event_ids: Sequence[bytes]) -> set[bytes]:
        if not event_ids:
            return set()
        ids = list(event_ids)

        def fetch(c: sqlite3.Connection) -> set[bytes]:
            seen: set[bytes] = set()
            for lo in range(0, len(ids), 500):
                part = ids[lo : lo + 500]
                marks = ",".join("?" * len(part))
                seen.update(
                    bytes(r[0])
                    for r in c.execute(
                        f"SELECT event_id FROM applied_events WHERE projector=? AND event_id IN ({marks})",
                        (projector, *part),
                    )
                )
            return set(ids) - seen

        return await self._db.read(fetch, f"check applied events of {projector}")

    async def record_events(self, projector: str, event_ids: Sequence[bytes], time_ms: int) -> None:
        rows = [(projector, e, time_ms) for e in event_ids]
        await self._db.write(
            lambda c: c.executemany("INSERT OR IGNORE INTO applied_events VALUES(?,?,?)", rows),
            f"record applied events of {projector}",
        )

    async def forget_events_before(self, projector: str, time_ms: int) -> int:
        return await self._db.write(
            lambda c: (
                c.execute("DELETE FROM applied_events WHERE projector=? AND time_ms < ?", (projector, time_ms)).rowcount
            ),
            f"forget old applied events of {projector}",
        )


def _series(row: tuple[object, ...]) -> SeriesRecord:
    tenant, sid, metric, kind, region, labels, first, last = row
    return SeriesRecord(
        tenant=str(tenant),
        series_id=int(sid),  # type: ignore[call-overload]
        metric=str(metric),
        kind=int(kind),  # type: ignore[call-overload]
        region=str(region),
        labels=tuple((str(k), str(v)) for k, v in json.loads(str(labels))),
        first_seen_ms=int(first),  # type: ignore[call-overload]
        last_seen_ms=int(last),  # type: ignore[call-overload]
    )
