"""SqliteCumulativeStateStore: the cumulative converter's states in a SQLite file of the data dir.

One row per series key: the last counted point. `save` commits before it returns (WAL,
synchronous=NORMAL: a crash of the process loses nothing; a power loss may lose the last
commits, which makes the next points of those series baselines, never double counts).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.adapters.sqlite_db import SqliteDatabase
from core.cumulative import CumulativeState

SCHEMA = """
CREATE TABLE IF NOT EXISTS cumulative_state (
    key BLOB PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    start_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cumulative_state_ts ON cumulative_state (ts_ms);
"""

_CHUNK = 500  # keys per SELECT (SQLite's variable limit is far above)


class SqliteCumulativeStateStore:
    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, schema=SCHEMA, synchronous="NORMAL")

    async def start(self) -> None:
        await self._db.start()

    async def close(self) -> None:
        await self._db.close()

    async def load(self, keys: Iterable[bytes]) -> dict[bytes, CumulativeState]:
        wanted = list(keys)

        def run(conn: sqlite3.Connection) -> dict[bytes, CumulativeState]:
            found: dict[bytes, CumulativeState] = {}
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, ts_ms, value, start_ms FROM cumulative_state WHERE key IN ({marks})", chunk
                )
                for key, ts_ms, value, start_ms in rows:
                    found[bytes(key)] = CumulativeState(ts_ms, value, start_ms)
            return found

        return await self._db.read(run, "load cumulative states")

    async def save(self, states: Mapping[bytes, CumulativeState]) -> None:
        rows = [(key, s.ts_ms, s.value, s.start_ms) for key, s in states.items()]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO cumulative_state (key, ts_ms, value, start_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET ts_ms = excluded.ts_ms, value = excluded.value, "
                "start_ms = excluded.start_ms",
                rows,
            )

        await self._db.write(run, "save cumulative states")

    async def prune(self, before_ms: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM cumulative_state WHERE ts_ms < ?", (before_ms,)).rowcount

        return await self._db.write(run, "prune cumulative states")
