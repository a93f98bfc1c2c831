"""The cold store: closed periods of the tiers as Parquet objects, in a folder or on S3.

One layout for both backends (docs/formats/cold-parquet.md):

    tenant=T/tier=NAME/date=YYYY-MM-DD/part-0.parquet   one period of one tier of one tenant
    tenant=T/tier=NAME/_archived.json                    markers: the periods archived

Rows are points, one per (series, bucket), with plain columns (series_id, ts, count, sum,
min, max, last, last_ts, sketch/HLL lists) plus the series' metric, kind, region and labels,
sorted by (metric, series_id, ts) in row groups of at most ROW_GROUP_ROWS: any Parquet tool
reads them, and a query reads only the row groups whose statistics (metric, series id, ts)
can hold its series. Why points and not chunk bytes: docs/decisions/0007-cold-store.md.

Objects are replaced whole (folder: write a temp file, fsync, rename; S3: one PUT), so a
reader sees the old or the new object. The same rows always give the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import tempfile
import time
from collections.abc import AsyncIterable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import CorruptData, InvalidArgument, StorageError
from core.points import Points, Ragged, concat
from core.ports import ArchivedPeriod, ColdRows

FORMAT: Final = "argus.points/1"
"""Value of the `argus.format` key in each object's metadata; a reader rejects others."""
OBJECT_NAME: Final = "part-0.parquet"
MANIFEST_NAME: Final = "_archived.json"
ROW_GROUP_ROWS: Final = 1 << 20
MANIFEST_TTL_S: Final = 5.0
"""How long a reader trusts its copy of a tier's markers before reading them again."""
_READ_CONCURRENCY: Final = 8

_LIST_I32 = pa.list_(pa.int32())
_LIST_I64 = pa.list_(pa.int64())
SCHEMA: Final = pa.schema(
    [
        pa.field("metric", pa.string(), nullable=False),
        pa.field("series_id", pa.int64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("sum", pa.float64(), nullable=False),
        pa.field("min", pa.float64(), nullable=False),
        pa.field("max", pa.float64(), nullable=False),
        pa.field("last", pa.float64(), nullable=False),
        pa.field("last_ts", pa.int64(), nullable=False),
        pa.field("sketch_index", _LIST_I32, nullable=False),
        pa.field("sketch_value", _LIST_I64, nullable=False),
        pa.field("hll_index", _LIST_I32, nullable=False),
        pa.field("hll_value", _LIST_I64, nullable=False),
        pa.field("kind", pa.int8(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("labels", pa.string(), nullable=False),  # JSON object, keys sorted
    ]
)
_POINT_COLUMNS: Final = (
    "series_id",
    "ts",
    "count",
    "sum",
    "min",
    "max",
    "last",
    "last_ts",
    "sketch_index",
    "sketch_value",
    "hll_index",
    "hll_value",
)
# Encodings that suit each column: delta for timestamps, byte-stream-split for floats (zstd
# then finds the runs in exponents), dictionaries for the repeated strings and series ids.
_ENCODINGS: Final = {
    "ts": "DELTA_BINARY_PACKED",
    "last_ts": "DELTA_BINARY_PACKED",
    "sum": "BYTE_STREAM_SPLIT",
    "min": "BYTE_STREAM_SPLIT",
    "max": "BYTE_STREAM_SPLIT",
    "last": "BYTE_STREAM_SPLIT",
}
_DICTIONARY: Final = ["metric", "series_id", "count", "kind", "region", "labels"]


def object_key(tenant: str, tier: str, start_ms: int) -> str:
    """Key of a period's object (Hive-style partitions; the tenant percent-encoded)."""
    date = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d")
    return f"{_tier_prefix(tenant, tier)}date={date}/{OBJECT_NAME}"


def _tier_prefix(tenant: str, tier: str) -> str:
    return f"tenant={quote(tenant, safe='')}/tier={quote(tier, safe='')}/"


# ------------------------------------------------------------------------- object backends


class _Objects(Protocol):
    """Where the objects live: whole-object put, get and replace, nothing more."""

    description: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put_file(self, key: str, path: Path) -> None:
        """Store the file's bytes under `key`, replacing it atomically; durable on return."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def source(self, key: str) -> str | pa.Buffer | None:
        """What pyarrow opens to read `key` (a local path or the object's bytes); None if absent."""
        ...

    def scratch_dir(self) -> Path | None:
        """Where to write a temporary file that `put_file` may rename (None: the system's)."""
        ...


class _Folder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"folder {root}"

    async def start(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)  # tenants' data: the owner's only
        except OSError as exc:
            raise StorageError(f"create cold store folder {self.root}: {exc.strerror}") from exc

    async def close(self) -> None:
        return None

    def scratch_dir(self) -> Path | None:
        return self.root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    async def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            with path.open("rb+") as f:
                os.fsync(f.fileno())
            os.replace(path, target)
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        try:
            await asyncio.to_thread(move)
        except OSError as exc:
            raise StorageError(f"write cold object {target}: {exc.strerror}") from exc

    async def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise StorageError(f"write cold object {target}: {exc.strerror}") from exc
        await self.put_file(key, Path(tmp))

    async def source(self, key: str) -> str | pa.Buffer | None:
        path = self._path(key)
        return str(path) if path.exists() else None


class _S3:
    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        endpoint_url: str | None,
        region: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._endpoint_url = endpoint_url
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self.description = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint_url}" if endpoint_url else "")

    async def start(self) -> None:
        import aioboto3
        from aiobotocore.config import AioConfig

        session = aioboto3.Session(
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            region_name=self._region,
        )
        # Path-style addressing for S3-compatible servers on an endpoint (no bucket DNS).
        config = AioConfig(
            s3={"addressing_style": "path"} if self._endpoint_url else {},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=_READ_CONCURRENCY * 2,
        )
        self._stack = contextlib.AsyncExitStack()
        try:
            self._client = await self._stack.enter_async_context(
                session.client("s3", endpoint_url=self._endpoint_url, config=config)
            )
            await self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            await self._stack.aclose()
            self._stack = None
            raise StorageError(f"open cold store {self.description}: {exc}") from exc

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    def scratch_dir(self) -> Path | None:
        return None

    async def put_file(self, key: str, path: Path) -> None:
        try:
            data = await asyncio.to_thread(path.read_bytes)
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        await self.put_bytes(key, data)

    async def put_bytes(self, key: str, data: bytes) -> None:
        try:
            await self._client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except Exception as exc:
            raise StorageError(f"put s3://{self.bucket}/{self.prefix}{key}: {exc}") from exc

    async def source(self, key: str) -> str | pa.Buffer | None:
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            async with response["Body"] as body:
                data = await body.read()
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            raise StorageError(f"get s3://{self.bucket}/{self.prefix}{key}: {exc}") from exc
        return pa.py_buffer(data)


# ------------------------------------------------------------------------------ the store


class ParquetColdStore:
    """ColdStore over an object backend; use FolderColdStore or S3ColdStore."""

    def __init__(self, objects: _Objects, *, manifest_ttl_s: float = MANIFEST_TTL_S) -> None:
        self._objects = objects
        self._ttl_s = manifest_ttl_s
        self._manifests: dict[tuple[str, str], tuple[float, dict[int, ArchivedPeriod]]] = {}
        self._manifest_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._reads = asyncio.Semaphore(_READ_CONCURRENCY)

    @property
    def description(self) -> str:
        return self._objects.description

    async def start(self) -> None:
        await self._objects.start()

    async def close(self) -> None:
        await self._objects.close()

    # -- writing --------------------------------------------------------------------

    async def write_period(
        self, tenant: str, tier: str, start_ms: int, end_ms: int, rows: AsyncIterable[ColdRows]
    ) -> int:
        key = object_key(tenant, tier, start_ms)
        fd, name = tempfile.mkstemp(dir=self._objects.scratch_dir(), prefix=".tmp-", suffix=".parquet.tmp")
        os.close(fd)
        tmp = Path(name)
        metadata = {
            b"argus.format": FORMAT.encode(),
            b"argus.tenant": tenant.encode(),
            b"argus.tier": tier.encode(),
            b"argus.period_start_ms": str(start_ms).encode(),
            b"argus.period_end_ms": str(end_ms).encode(),
        }
        written = 0
        try:
            writer = pq.ParquetWriter(
                str(tmp),
                SCHEMA.with_metadata(metadata),
                compression="zstd",
                use_dictionary=_DICTIONARY,
                column_encoding=_ENCODINGS,
                write_statistics=["metric", "series_id", "ts"],
            )
            try:
                async for part in rows:
                    points = part.points
                    if len(points) == 0:
                        continue
                    if int(points.ts.min()) < start_ms or int(points.ts.max()) >= end_ms:
                        raise InvalidArgument(
                            f"rows: points outside the period [{start_ms}, {end_ms}) of tier {tier}", parameter="rows"
                        )
                    table = _to_table(part)
                    await asyncio.to_thread(writer.write_table, table, row_group_size=ROW_GROUP_ROWS)
                    written += len(points)
            finally:
                writer.close()
            await self._objects.put_file(key, tmp)
        except OSError as exc:
            raise StorageError(f"write cold period {key} to {self.description}: {exc}") from exc
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        return written

    async def record_archived(self, periods: Sequence[ArchivedPeriod]) -> None:
        by_tier: dict[tuple[str, str], list[ArchivedPeriod]] = {}
        for p in periods:
            by_tier.setdefault((p.tenant, p.tier), []).append(p)
        for (tenant, tier), items in by_tier.items():
            async with self._lock(tenant, tier):
                current = dict(await self._load_manifest(tenant, tier, fresh=True))
                for p in items:
                    current[p.start_ms] = p
                body = json.dumps(
                    {"format": FORMAT, "periods": [_marker_json(current[s]) for s in sorted(current)]},
                    separators=(",", ":"),
                ).encode()
                await self._objects.put_bytes(_tier_prefix(tenant, tier) + MANIFEST_NAME, body)
                self._manifests[(tenant, tier)] = (time.monotonic(), current)

    async def archived(self, tenant: str, tier: str) -> list[ArchivedPeriod]:
        manifest = await self._load_manifest(tenant, tier, fresh=False)
        return [manifest[s] for s in sorted(manifest)]

    def _lock(self, tenant: str, tier: str) -> asyncio.Lock:
        return self._manifest_locks.setdefault((tenant, tier), asyncio.Lock())

    async def _load_manifest(self, tenant: str, tier: str, *, fresh: bool) -> dict[int, ArchivedPeriod]:
        cached = self._manifests.get((tenant, tier))
        if cached is not None and not fresh and time.monotonic() - cached[0] < self._ttl_s:
            return cached[1]
        key = _tier_prefix(tenant, tier) + MANIFEST_NAME
        source = await self._objects.source(key)
        if source is None:
            manifest: dict[int, ArchivedPeriod] = {}
        else:
            raw = await asyncio.to_thread(Path(source).read_bytes) if isinstance(source, str) else source.to_pybytes()
            manifest = _parse_manifest(raw, key, tenant, tier)
        self._manifests[(tenant, tier)] = (time.monotonic(), manifest)
        return manifest

    # -- reading --------------------------------------------------------------------

    async def object_bytes(self, key: str) -> bytes | None:
        """The stored bytes of an object (`object_key(...)`), None if absent: for tools and tests."""
        source = await self._objects.source(key)
        if source is None:
            return None
        return await asyncio.to_thread(Path(source).read_bytes) if isinstance(source, str) else source.to_pybytes()

    async def read_range(
        self,
        tenant: str,
        tier: str,
        series_ids: Sequence[int],
        start_ms: int,
        end_ms: int,
        *,
        metric: str | None = None,
    ) -> Points:
        if not series_ids or start_ms >= end_ms:
            return Points.empty()
        periods = [
            p for p in await self.archived(tenant, tier) if p.rows and p.start_ms < end_ms and p.end_ms > start_ms
        ]
        if not periods:
            return Points.empty()
        wanted = np.unique(np.asarray(series_ids, dtype=np.int64))

        async def one(period: ArchivedPeriod) -> Points:
            key = object_key(tenant, tier, period.start_ms)
            async with self._reads:
                source = await self._objects.source(key)
                if source is None:
                    raise StorageError(f"cold object {key} of {self.description} is in the markers but missing")
                return await asyncio.to_thread(_read_object, source, key, wanted, start_ms, end_ms, metric)

        parts = await asyncio.gather(*(one(p) for p in periods))
        return concat(*parts) if parts else Points.empty()


class FolderColdStore(ParquetColdStore):
    """The embedded cold store: objects are files under `root`."""

    def __init__(self, root: Path, *, manifest_ttl_s: float = MANIFEST_TTL_S) -> None:
        super().__init__(_Folder(root), manifest_ttl_s=manifest_ttl_s)


class S3ColdStore(ParquetColdStore):
    """The distributed cold store: objects in an S3 bucket under `prefix` (aioboto3).

    Credentials: the explicit arguments, else the standard AWS chain (environment,
    shared config files, instance roles)."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        manifest_ttl_s: float = MANIFEST_TTL_S,
    ) -> None:
        super().__init__(
            _S3(
                bucket=bucket,
                prefix=prefix,
                endpoint_url=endpoint_url,
                region=region,
                access_key_id=access_key_id,
                secret_access_key=secret_access_key,
            ),
            manifest_ttl_s=manifest_ttl_s,
        )


# ------------------------------------------------------------------------- rows <-> arrow


def _to_table(part: ColdRows) -> pa.Table:
    p = part.points
    sids = p.key
    # Per-row series attributes as dictionary indices into this batch's series.
    distinct, inverse = np.unique(sids, return_inverse=True)
    missing = [int(s) for s in distinct.tolist() if int(s) not in part.series]
    if missing:
        raise InvalidArgument(f"rows: no series record for series {missing[:5]}", parameter="rows")
    records = [part.series[int(s)] for s in distinct.tolist()]
    inverse = inverse.reshape(-1).astype(np.int32)

    def per_row(values: list[str]) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(inverse), pa.array(values, pa.string())).cast(pa.string())

    kinds = np.array([r.kind for r in records], dtype=np.int8)[inverse]
    columns = {
        "metric": per_row([r.metric for r in records]),
        "series_id": pa.array(sids),
        "ts": pa.array(p.ts),
        "count": pa.array(p.count),
        "sum": pa.array(p.sum),
        "min": pa.array(p.min),
        "max": pa.array(p.max),
        "last": pa.array(p.last),
        "last_ts": pa.array(p.last_ts),
        "sketch_index": _list_array(p.sketch, "index", pa.int32()),
        "sketch_value": _list_array(p.sketch, "value", pa.int64()),
        "hll_index": _list_array(p.hll, "index", pa.int32()),
        "hll_value": _list_array(p.hll, "value", pa.int64()),
        "kind": pa.array(kinds),
        "region": per_row([r.region for r in records]),
        "labels": per_row([json.dumps(dict(r.labels), sort_keys=True, separators=(",", ":")) for r in records]),
    }
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def _list_array(r: Ragged, which: str, kind: pa.DataType) -> pa.Array:
    base = int(r.offsets[0])
    offsets = (r.offsets - base).astype(np.int32)
    values = getattr(r, which)[base : base + r.total]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, kind))


def _read_object(
    source: str | pa.Buffer, key: str, wanted: np.ndarray, start_ms: int, end_ms: int, metric: str | None
) -> Points:
    """The rows of `wanted` series in [start_ms, end_ms) of one object, reading only the row
    groups whose statistics can hold them."""
    try:
        pf = pq.ParquetFile(source if isinstance(source, str) else pa.BufferReader(source), memory_map=False)
        meta = pf.metadata
        fmt = (meta.metadata or {}).get(b"argus.format", b"").decode()
        if fmt != FORMAT:
            raise CorruptData(f"cold object {key}: format {fmt or '(none)'!r}, expected {FORMAT!r}")
        names = pf.schema_arrow.names
        col = {n: names.index(n) for n in ("metric", "series_id", "ts")}
        groups = [
            g for g in range(meta.num_row_groups) if _may_hold(meta.row_group(g), col, wanted, start_ms, end_ms, metric)
        ]
        if not groups:
            return Points.empty()
        table = pf.read_row_groups(groups, columns=list(_POINT_COLUMNS), use_threads=True)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptData(f"read cold object {key}: {exc}") from exc
    sid = table.column("series_id")
    ts = table.column("ts")
    keep = pc.and_(
        pc.is_in(sid, value_set=pa.array(wanted)),
        pc.and_(pc.greater_equal(ts, start_ms), pc.less(ts, end_ms)),
    )
    if not pc.all(keep).as_py():
        table = table.filter(keep)
    return _to_points(table.combine_chunks())


def _may_hold(
    rg: pq.RowGroupMetaData, col: dict[str, int], wanted: np.ndarray, start_ms: int, end_ms: int, metric: str | None
) -> bool:
    def bounds(name: str) -> tuple[Any, Any] | None:
        stats = rg.column(col[name]).statistics
        if stats is None or not stats.has_min_max:
            return None
        return stats.min, stats.max

    if rg.num_rows == 0:
        return False
    ts = bounds("ts")
    if ts is not None and (ts[1] < start_ms or ts[0] >= end_ms):
        return False
    if metric is not None:
        m = bounds("metric")
        if m is not None and not (m[0] <= metric <= m[1]):
            return False
    sid = bounds("series_id")
    if sid is not None:
        lo = int(np.searchsorted(wanted, sid[0], side="left"))
        if lo >= len(wanted) or int(wanted[lo]) > sid[1]:
            return False
    return True


def _numpy(table: pa.Table, name: str, dtype: type[np.generic]) -> np.ndarray:
    column = table.column(name)
    array = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=dtype)


def _ragged(table: pa.Table, index: str, value: str) -> Ragged:
    ia = table.column(index)
    va = table.column(value)
    ic = ia.chunk(0) if ia.num_chunks == 1 else pa.concat_arrays(ia.chunks)
    vc = va.chunk(0) if va.num_chunks == 1 else pa.concat_arrays(va.chunks)
    offsets = np.asarray(ic.offsets.to_numpy(), dtype=np.int64)
    if len(offsets) == 0:
        return Ragged.empty(0)
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi == lo:
        return Ragged.empty(len(offsets) - 1)
    return Ragged(
        offsets=offsets - lo,
        index=np.asarray(ic.values.to_numpy()[lo:hi], dtype=np.int32),
        value=np.asarray(vc.values.to_numpy()[lo:hi], dtype=np.int64),
    )


def _to_points(table: pa.Table) -> Points:
    if table.num_rows == 0:
        return Points.empty()
    return Points(
        key=_numpy(table, "series_id", np.int64),
        ts=_numpy(table, "ts", np.int64),
        count=_numpy(table, "count", np.int64),
        sum=_numpy(table, "sum", np.float64),
        min=_numpy(table, "min", np.float64),
        max=_numpy(table, "max", np.float64),
        last=_numpy(table, "last", np.float64),
        last_ts=_numpy(table, "last_ts", np.int64),
        sketch=_ragged(table, "sketch_index", "sketch_value"),
        hll=_ragged(table, "hll_index", "hll_value"),
    )


# ---------------------------------------------------------------------------- manifests


def _marker_json(p: ArchivedPeriod) -> dict[str, object]:
    return {
        "start_ms": p.start_ms,
        "end_ms": p.end_ms,
        "rows": p.rows,
        "digest": p.digest,
        "final": p.final,
    }


def _parse_manifest(raw: bytes, key: str, tenant: str, tier: str) -> dict[int, ArchivedPeriod]:
    try:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise CorruptData(f"cold manifest {key}: format {doc.get('format')!r}, expected {FORMAT!r}")
        out = {}
        for item in doc["periods"]:
            p = ArchivedPeriod(
                tenant=tenant,
                tier=tier,
                start_ms=int(item["start_ms"]),
                end_ms=int(item["end_ms"]),
                rows=int(item["rows"]),
                digest=str(item["digest"]),
                final=bool(item.get("final", False)),
            )
            out[p.start_ms] = p
        return out
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptData(f"cold manifest {key}: {exc}") from exc
