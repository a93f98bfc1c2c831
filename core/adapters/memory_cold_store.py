"""An in-memory cold store: the Parquet cold store over a dict of objects.

The same codec as the folder and S3 stores (`core/adapters/cold_parquet.py`: one object per
period, a manifest of archived periods), with the objects kept as bytes in a `MemoryObjects`
instead of files: the same rows give the same bytes, and the contract suite
(tests/contract/test_cold_store.py) runs unchanged. Two stores over one `MemoryObjects` see
each other's objects, which is how a test "reopens" one. Nothing outlives the process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa

from core.adapters.cold_parquet import MANIFEST_TTL_S, ParquetColdStore


class MemoryObjects:
    """Object keys to bytes: a bucket in memory (whole-object put and replace)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.description = "memory"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def scratch_dir(self) -> Path | None:
        return None

    async def put_file(self, key: str, path: Path) -> None:
        try:
            data = await asyncio.to_thread(path.read_bytes)
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        await self.put_bytes(key, data)

    async def put_bytes(self, key: str, data: bytes) -> None:
        self.objects[key] = bytes(data)  # replaced as a whole: readers see old or new

    async def source(self, key: str) -> str | pa.Buffer | None:
        data = self.objects.get(key)
        return None if data is None else pa.py_buffer(data)


class MemoryColdStore(ParquetColdStore):
    """ColdStore in this process's memory (pass `objects` to share them between stores)."""

    def __init__(self, objects: MemoryObjects | None = None, *, manifest_ttl_s: float = MANIFEST_TTL_S) -> None:
        self.objects = objects if objects is not None else MemoryObjects()
        super().__init__(self.objects, manifest_ttl_s=manifest_ttl_s)
