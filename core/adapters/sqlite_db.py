"""Async access to one SQLite database file.

sqlite3 connections belong to a thread, so each connection gets its own single-thread
executor: one writer (all writes serialise there, as SQLite wants) and one reader (WAL
lets it read while the writer commits). sqlite3 releases the GIL while it works, so these
threads run beside the event loop.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from core.errors import StorageError

T = TypeVar("T")


class SqliteDatabase:
    def __init__(self, path: Path, *, schema: str, synchronous: str = "FULL") -> None:
        self.path = path
        self._schema = schema
        self._synchronous = synchronous
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-w-{path.stem}")
        self._read_pool = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-r-{path.stem}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA cache_size=-65536")
        return conn

    async def start(self) -> None:
        # Tenants' data: a new data dir is the owner's only, and the database file (whose
        # mode SQLite gives its -wal and -shm files too) is never world-readable.
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.fchmod(fd, 0o600)
            finally:
                os.close(fd)
        except OSError as exc:
            if not self.path.is_file():
                raise StorageError(f"create sqlite database {self.path}: {exc.strerror}") from exc
            # someone else's (or a read-only) file: leave its mode alone, SQLite says the rest
        loop = asyncio.get_running_loop()

        def open_writer() -> sqlite3.Connection:
            conn = self._connect()
            conn.executescript(self._schema)
            return conn

        try:
            self._writer = await loop.run_in_executor(self._write_pool, open_writer)
            self._reader = await loop.run_in_executor(self._read_pool, self._connect)
        except sqlite3.Error as exc:
            raise StorageError(f"open sqlite database {self.path}: {exc}") from exc

    async def write(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        """Run `fn` on the writer connection inside one IMMEDIATE transaction."""
        conn = self._writer
        if conn is None:
            raise StorageError(f"{what}: database {self.path} is not open")

        def run() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        try:
            return await asyncio.get_running_loop().run_in_executor(self._write_pool, run)
        except sqlite3.Error as exc:
            raise StorageError(f"{what} in {self.path}: {exc}") from exc

    async def read(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        conn = self._reader
        if conn is None:
            raise StorageError(f"{what}: database {self.path} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._read_pool, fn, conn)
        except sqlite3.Error as exc:
            raise StorageError(f"{what} in {self.path}: {exc}") from exc

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._writer is not None:
            await loop.run_in_executor(self._write_pool, self._writer.close)
            self._writer = None
        if self._reader is not None:
            await loop.run_in_executor(self._read_pool, self._reader.close)
            self._reader = None
        self._write_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
