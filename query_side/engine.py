"""The query engine: series index + tier chunks -> merged, aggregated result series.

One query = one index lookup (cached ~1 s), one `read_range` call, a decode per chunk and
vectorised merge/aggregation; Python loops run per series or per chunk, never per point.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from core.chunks import chunk_point_count, decode_chunk, decode_chunks
from core.errors import InvalidArgument, ResourceExhausted, Unavailable
from core.model import DEFAULT_TIERS, MetricKind, Tier
from core.points import Points, Ragged, concat_slices, key_bounds, merge, read_agg
from core.ports import ChunkStore, ColdStore, LabelFilter, MetricSummary, SeriesIndex, SeriesRecord, StoredChunk
from core.telemetry import REGISTRY
from query_side.limits import DecodeBudget, QueryLimits, QueryToken
from query_side.planner import (
    MAX_RESULT_POINTS,
    MAX_SERIES,
    REGION_LABEL,
    Ordering,
    QueryPlan,
    QuerySpec,
    Selector,
    hot_start_ms,
    plan,
)
from query_side.timeparse import format_duration

Clock = Callable[[], int]
"""Milliseconds since the Unix epoch ("now" for relative times and retention)."""

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

SERIES_CACHE_TTL_MS = 1_000
DECODED_CACHE_BYTES = 64 * 1024 * 1024
_SERIES_CACHE_ENTRIES = 1_024
_BATCH_MIN_CHUNKS = 8
"""Fewer chunks than this are decoded one by one (`decode_chunks` pays off from about there)."""
DECODE_BATCH_POINTS = 1_000_000
# CPU steps of at most this much work (series matched, points decoded, merged or encoded) run
# on the event loop: they take about a millisecond or less, and a hop to a worker thread and
# back costs more than that on a loaded machine (the smoke gate's small queries were 25-60 %
# slower with every step offloaded). Larger steps go to the query workers.
INLINE_WORK_MAX = 20_000
"""Stored points decoded at once before merging into the running result (~100 MB decoded)."""
COLD_BATCH_ROWS = 4_000_000
"""Most cold rows one cold-store read may return (~300 MB): fewer, larger Parquet scans."""

_T = TypeVar("_T")

QUERY_SECONDS = REGISTRY.histogram(
    "argus_query_duration_seconds", "Time of the queries that answered, by the tier they read.", ["tier"]
)
QUERY_FAILURES = REGISTRY.counter("argus_query_failures_total", "Queries that ended in an error, by error.", ["error"])


def system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultSeries:
    """One result series: `ts` ascending (bucket starts, only buckets with data), `values`
    aligned with it (NaN where the agg has no answer, e.g. avg of an empty bucket)."""

    labels: Mapping[str, str]
    ts: I64
    values: F64


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryStats:
    series_matched: int
    chunks_read: int
    points_read: int
    elapsed_ms: float
    cold_points_read: int = 0
    """Of `points_read`, those read from the cold store."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryResult:
    """`series` sorted by labels; `tier` the tier that answered, `step_ms` its step."""

    tier: str
    step_ms: int
    agg: str
    series: tuple[ResultSeries, ...]
    stats: QueryStats


@dataclass(frozen=True, slots=True, kw_only=True)
class _Resolved:
    """Index answer for one (tenant, metric, equality filter), prepared for grouping."""

    records: tuple[SeriesRecord, ...]
    labels: tuple[Mapping[str, str], ...]  # per record: its labels + "region"


class QueryEngine:
    """Answers queries of one deployment; safe to share between concurrent requests.

    Reads only: the index and the tier chunks. The series cache may serve an index answer
    up to SERIES_CACHE_TTL_MS old, so a brand-new series can take that long to appear.
    Decoded chunks whose span has ended are kept (up to `decoded_cache_bytes`) and reused
    only while the stored chunk is unchanged, so caching never serves stale points.

    With a `cold` store, a tier also answers for the time its cold archive covers: the part
    of the range before `planner.hot_start_ms` comes from the cold store, the rest from the
    hot store, merged into the same points (each point read from exactly one of them).
    """

    def __init__(
        self,
        index: SeriesIndex,
        chunks: ChunkStore,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        clock: Clock = system_clock_ms,
        *,
        decoded_cache_bytes: int = DECODED_CACHE_BYTES,
        cold: ColdStore | None = None,
        limits: QueryLimits | None = None,
    ) -> None:
        self._index = index
        self._chunks = chunks
        self._cold = cold
        self._tiers = tuple(tiers)
        self._clock = clock
        self._decoded = DecodedChunkCache(max_bytes=decoded_cache_bytes)
        self._series_cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], tuple[int, _Resolved]] = {}
        self._limits = limits or QueryLimits()
        # The CPU part of queries runs here, off the event loop that also serves health and ingest.
        self._executor = ThreadPoolExecutor(max_workers=self._limits.workers, thread_name_prefix="argus-query")
        self._active: set[QueryToken] = set()
        self._closed = False

    def close(self) -> None:
        """Stop: running queries end at their worker's next check with Unavailable, new ones
        are refused with it, and the worker threads exit."""
        self._closed = True
        for token in list(self._active):
            token.cancel(_stopping())
        self._executor.shutdown(wait=False, cancel_futures=True)

    def cache_sizes(self) -> tuple[int, int]:
        """(bytes of decoded chunks kept, entries of the series cache), for /metrics."""
        return self._decoded.nbytes, len(self._series_cache)

    @property
    def limits(self) -> QueryLimits:
        return self._limits

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers

    def now_ms(self) -> int:
        """The engine's clock ("now" for retention and relative times)."""
        return self._clock()

    async def query(self, spec: QuerySpec, *, max_result_points: int = MAX_RESULT_POINTS) -> QueryResult:
        """Merge the matching series per bucket and group, then read `agg` off each point.

        Raises InvalidArgument (bad spec, before any I/O), ResourceExhausted (more than
        MAX_SERIES matching series, `max_result_points` result points, or more stored points to
        read than the limits' decode budget: refused before decoding), DeadlineExceeded (over
        the limits' timeout). A metric without series gives an empty result. Cancelling the
        calling task stops the work in the worker thread too (at its next check).
        """
        return await self._guarded(spec, window=False, max_result_points=max_result_points)

    async def _guarded(
        self, spec: QuerySpec, *, window: bool, max_result_points: int = MAX_RESULT_POINTS
    ) -> QueryResult:
        """`_query` under the limits' timeout, cancelled by `close()`."""
        if self._closed:
            raise _stopping()
        token = QueryToken(timeout_ms=self._limits.timeout_ms)
        self._active.add(token)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._limits.timeout_ms / 1000.0) as timer:
                result = await self._query(spec, token, max_result_points, window=window)
            QUERY_SECONDS.observe(time.perf_counter() - started, result.tier)
            return result
        except TimeoutError:
            QUERY_FAILURES.inc("DeadlineExceeded")
            if timer.expired():
                raise token.expired() from None
            raise
        except Exception as exc:
            QUERY_FAILURES.inc(type(exc).__name__)
            raise
        finally:
            self._active.discard(token)
            token.cancel()  # whatever ended the query, its worker stops at its next check

    async def query_window(self, spec: QuerySpec) -> QueryResult:
        """`query`, then every bucket of a result series merged into one point: per group, one
        value at the aligned start, the `agg` of the whole aligned range `[start, end)` on the
        spec's tier (`rate` per second of that range). It is what `query` returns for the same
        range on a tier whose step is the range (one bucket), and what the alert evaluator
        compares for rules it leaves to the query engine (docs/decisions/0032). Same limits
        and errors as `query`; the result's `step_ms` is the aligned range."""
        return await self._guarded(spec, window=True)

    async def offload(self, fn: Callable[..., _T], *args: Any, work: int) -> _T:
        """`fn(*args)` on a query worker: for a transport's CPU work on an answer (e.g. JSON
        encoding of 100k points), which should not hold up the event loop either. `work`
        (points) at most INLINE_WORK_MAX runs right here instead (see there)."""
        if self._closed:
            raise _stopping()
        if work <= INLINE_WORK_MAX:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _cpu(self, token: QueryToken, fn: Callable[..., _T], *args: Any, work: int) -> _T:
        """`fn(*args)` in a query worker thread, so the event loop keeps serving meanwhile;
        `work` (series or points) at most INLINE_WORK_MAX runs on the loop (see there)."""

        def run() -> _T:
            token.check()  # it may have waited for a worker past its deadline
            return fn(*args)

        token.check()  # cancelled meanwhile (e.g. by close(): the executor takes no more work)
        if work <= INLINE_WORK_MAX:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def _query(
        self, spec: QuerySpec, token: QueryToken, max_result_points: int, *, window: bool = False
    ) -> QueryResult:
        started = time.perf_counter()
        now_ms = self._clock()
        cold_from = await self._cold_from(spec, now_ms)
        # Validates everything but the agg-for-kind before touching the hot store.
        draft = plan(spec, self._tiers, now_ms=now_ms, cold_from_ms=cold_from, max_result_points=max_result_points)
        resolved = await self._resolve(spec.tenant, spec.metric, draft.selector.equal)
        picked = await self._cpu(token, _pick, resolved.labels, draft.selector, work=len(resolved.labels))
        if len(picked) > MAX_SERIES:
            raise ResourceExhausted(
                f"query matches {len(picked):,} series of {spec.metric}, over the limit of {MAX_SERIES:,} "
                "series per query; narrow it with where= matchers or a region"
            )
        if not picked:
            return QueryResult(
                tier=draft.tier.name,
                step_ms=draft.step_ms,
                agg=draft.agg,
                series=(),
                stats=QueryStats(series_matched=0, chunks_read=0, points_read=0, elapsed_ms=_since(started)),
            )
        records = [resolved.records[i] for i in picked]
        labels = [resolved.labels[i] for i in picked]
        group_of, group_labels = _groups(labels, draft.group_by)
        final = plan(
            spec,
            self._tiers,
            now_ms=now_ms,
            series_kind=_kind(records[0].kind),
            # A window query returns one point per group (at most MAX_SERIES), not buckets.
            groups=1 if window else len(group_labels),
            cold_from_ms=cold_from,
            max_result_points=max_result_points,
        )
        series_ids = [r.series_id for r in records]
        group_by_series = dict(zip(series_ids, group_of, strict=True))
        tier = final.tier
        budget = DecodeBudget(
            self._limits.max_points_decoded,
            what=f"{len(series_ids):,} series of {spec.metric} on tier {tier.name} over "
            f"{format_duration(final.end_ms - final.start_ms)}",
        )
        # [start, boundary) from the cold store, [boundary, end) from the hot store.
        boundary = final.start_ms
        if self._cold is not None and cold_from:
            boundary = min(max(final.start_ms, hot_start_ms(tier, now_ms)), final.end_ms)
        stored: list[StoredChunk] = []
        points, points_read = Points.empty(), 0
        if boundary < final.end_ms:
            hot = dataclasses.replace(final, start_ms=boundary)
            stored = await self._read_hot(hot, series_ids, budget, token)
            points, points_read = await self._cpu(
                token, self._decode_stream, stored, group_by_series, hot, now_ms, token, work=budget.spent
            )
        cold_read = 0
        if self._cold is not None and final.start_ms < boundary:
            cold_plan = dataclasses.replace(final, end_ms=boundary)
            points, cold_read = await self._read_cold(spec, cold_plan, series_ids, group_of, points, budget, token)
        step_ms = tier.step_ms
        if window:
            points = await self._cpu(token, _collapse, points, final.start_ms, work=len(points))
            step_ms = final.end_ms - final.start_ms
        series = await self._cpu(
            token, _aggregate, points, final.agg, step_ms, final.ordering, group_labels, work=len(points)
        )
        return QueryResult(
            tier=tier.name,
            step_ms=step_ms,
            agg=final.agg,
            series=series,
            stats=QueryStats(
                series_matched=len(records),
                chunks_read=len(stored),
                points_read=points_read + cold_read,
                elapsed_ms=_since(started),
                cold_points_read=cold_read,
            ),
        )

    async def _read_hot(
        self, final: QueryPlan, series_ids: Sequence[int], budget: DecodeBudget, token: QueryToken
    ) -> list[StoredChunk]:
        """The stored chunks of the plan's range, read in slices of series whose most possible
        points fit the budget, each slice's points counted from the chunk headers: a query
        over budget is refused after at most two slices, before any decode."""
        tier = final.tier
        span = tier.chunk_span_ms
        per_series = max(
            1, (tier.chunk_start(final.end_ms - 1) + span - tier.chunk_start(final.start_ms)) // tier.step_ms
        )
        size = max(1, self._limits.max_points_decoded // per_series)
        stored: list[StoredChunk] = []
        for at in range(0, len(series_ids), size):
            token.check()
            chunks = await self._chunks.read_range(
                tier.name, series_ids[at : at + size], final.start_ms, final.end_ms, span
            )
            budget.spend(sum(chunk_point_count(c.data) for c in chunks))
            stored.extend(chunks)
        return stored

    def _decode_stream(
        self,
        stored: Sequence[StoredChunk],
        group_of: Mapping[int, int],
        final: QueryPlan,
        now_ms: int,
        token: QueryToken,
    ) -> tuple[Points, int]:
        """`_decode` of batches of about DECODE_BATCH_POINTS stored points, each merged into
        one running result as soon as it is decoded: memory is one batch plus the result
        (at most groups x buckets points), whatever the number of points read."""
        result, points_read = Points.empty(), 0
        batch: list[StoredChunk] = []
        in_batch = 0
        for i, chunk in enumerate(stored):
            batch.append(chunk)
            in_batch += chunk_point_count(chunk.data)
            if in_batch < DECODE_BATCH_POINTS and i + 1 < len(stored):
                continue
            token.check()
            points, n = self._decode(batch, group_of, final, now_ms=now_ms)
            points_read += n
            result = merge(result, points) if len(result) else points
            batch, in_batch = [], 0
        return result, points_read

    async def _read_cold(
        self,
        spec: QuerySpec,
        final: QueryPlan,
        series_ids: Sequence[int],
        group_of: Sequence[int],
        points: Points,
        budget: DecodeBudget,
        token: QueryToken,
    ) -> tuple[Points, int]:
        """`points` merged with the cold store's rows of [start, end), read in slices of series
        of at most COLD_BATCH_ROWS possible rows each (the cold store has no header to
        count from, so its rows count against the budget as each slice arrives)."""
        assert self._cold is not None
        per_series = max(1, (final.end_ms - final.start_ms) // final.tier.step_ms)
        size = max(1, COLD_BATCH_ROWS // per_series)
        read = 0
        for at in range(0, len(series_ids), size):
            token.check()
            ids = series_ids[at : at + size]
            rows = await self._cold.read_range(
                spec.tenant, final.tier.name, ids, final.start_ms, final.end_ms, metric=spec.metric
            )
            budget.spend(len(rows))
            read += len(rows)
            if len(rows):
                points = await self._cpu(
                    token, _merge_regrouped, points, rows, ids, group_of[at : at + size], work=len(points) + len(rows)
                )
        return points, read

    async def _cold_from(self, spec: QuerySpec, now_ms: int) -> dict[str, int] | None:
        """Tier name -> start of its oldest archived period, for the tiers whose hot
        retention does not reach back to the query's start (None: no cold store needed)."""
        if self._cold is None:
            return None
        out: dict[str, int] = {}
        for tier in self._tiers:
            if now_ms - tier.retention_ms > spec.start_ms:
                periods = await self._cold.archived(spec.tenant, tier.name)
                if periods:
                    out[tier.name] = periods[0].start_ms
        return out or None

    def _decode(
        self, stored: Sequence[StoredChunk], group_of: Mapping[int, int], final: QueryPlan, *, now_ms: int
    ) -> tuple[Points, int]:
        """Points of all chunks keyed by group id and clipped to the plan's range, merged, so
        points of one group and bucket are one point (sketches merged, HLLs united).

        Closed chunks are decoded whole and cached; open ones (still being written) are
        decoded on every query, only their points in range kept."""
        start_ms, end_ms = final.start_ms, final.end_ms
        tier = final.tier
        span = tier.chunk_span_ms
        parts: list[Points] = []
        bounds: list[tuple[int, int]] = []
        groups: list[int] = []
        points_read = 0
        missed: list[tuple[StoredChunk, int]] = []
        open_chunks: list[tuple[StoredChunk, int]] = []

        def add(chunk: StoredChunk, pts: Points, group: int) -> None:
            n = len(pts)
            if chunk.chunk_start_ms >= start_ms and chunk.chunk_start_ms + span <= end_ms:
                lo, hi = 0, n
            else:
                # A chunk's points are sorted by ts: clipping is a slice.
                lo, hi = np.searchsorted(pts.ts, (start_ms, end_ms), side="left").tolist()
            if lo < hi:
                parts.append(pts)
                bounds.append((lo, hi))
                groups.append(group)

        for chunk in stored:
            group = group_of.get(chunk.series_id)
            if group is None:  # a store that returns more than asked
                continue
            if chunk.chunk_start_ms + span > now_ms:
                open_chunks.append((chunk, group))
                continue
            pts = self._decoded.get(tier.name, chunk)
            if pts is None:
                missed.append((chunk, group))
            else:
                points_read += len(pts)
                add(chunk, pts, group)
        for (chunk, group), pts in zip(missed, _decode_whole([c for c, _ in missed]), strict=True):
            self._decoded.put(tier.name, chunk, pts)
            points_read += len(pts)
            add(chunk, pts, group)
        rows: list[Points] = []
        if len(open_chunks) >= _BATCH_MIN_CHUNKS:
            datas = [c.data for c, _ in open_chunks]
            points_read += sum(chunk_point_count(d) for d in datas)
            groups_of_open = [g for _, g in open_chunks]
            batch = decode_chunks(datas, groups_of_open, start_ms=start_ms, end_ms=end_ms, ordered=False)
            if len(batch):
                rows.append(batch)
        else:
            for chunk, group in open_chunks:
                # Decoded under key 0: the group id differs per query, it is applied below.
                pts = decode_chunk(chunk.data, key=0).points
                points_read += len(pts)
                add(chunk, pts, group)
        if not parts and not rows:
            return Points.empty(), points_read
        if all(p.sketch.total == 0 and p.hll.total == 0 for p in parts):
            if parts:
                rows.append(concat_slices(parts, bounds, groups))
            return merge(*rows), points_read
        clipped = (p.take(slice(lo, hi)).with_key(g) for p, (lo, hi), g in zip(parts, bounds, groups, strict=True))
        return merge(*rows, *clipped), points_read

    async def list_metrics(self, tenant: str) -> list[MetricSummary]:
        """The tenant's metrics, sorted by name."""
        return sorted(await self._index.list_metrics(tenant), key=lambda m: m.name)

    async def find_series(self, tenant: str, metric: str) -> list[tuple[SeriesRecord, Mapping[str, str]]]:
        """The index's series of one metric with their labels ("region" included), from
        the same ~1 s cache the queries use (for series and label listings)."""
        resolved = await self._resolve(tenant, metric, {})
        return list(zip(resolved.records, resolved.labels, strict=True))

    async def label_values(self, tenant: str, label: str, metric: str | None = None) -> list[str]:
        """Sorted distinct values of `label` ("region" included) in the tenant or one metric."""
        return await self._index.label_values(tenant, label, metric or None)

    async def _resolve(self, tenant: str, metric: str, equal: Mapping[str, str]) -> _Resolved:
        key = (tenant, metric, tuple(sorted(equal.items())))
        now_ms = self._clock()
        cached = self._series_cache.get(key)
        if cached is not None and now_ms - cached[0] < SERIES_CACHE_TTL_MS:
            return cached[1]
        records = await self._index.find_series(tenant, metric, LabelFilter(equal=dict(equal)))
        resolved = _Resolved(
            records=tuple(records),
            labels=tuple({**dict(r.labels), REGION_LABEL: r.region} for r in records),
        )
        if len(self._series_cache) >= _SERIES_CACHE_ENTRIES:
            # Drop expired entries first; if all are fresh, the oldest inserted.
            for k in [k for k, (at, _) in self._series_cache.items() if now_ms - at >= SERIES_CACHE_TTL_MS]:
                del self._series_cache[k]
            while len(self._series_cache) >= _SERIES_CACHE_ENTRIES:
                del self._series_cache[next(iter(self._series_cache))]
        self._series_cache[key] = (now_ms, resolved)
        return resolved


def _kind(number: int) -> MetricKind | None:
    try:
        return MetricKind(number)
    except ValueError:
        return None


def metric_kind_label(kind: int) -> str:
    """ "counter", "gauge", "timer", "distinct" (or "unspecified") for a stored kind number."""
    try:
        return MetricKind(kind).label
    except ValueError:
        return "unspecified"


class DecodedChunkCache:
    """Decoded chunks by (tier, series id, chunk start), least recently used evicted first,
    bounded by the bytes of their arrays.

    An entry is only returned for a stored chunk with the same partition, applied offset,
    length and CRC-32 as the one it was decoded from: a chunk rewritten by late data is a
    miss (and replaces the entry), never a stale answer. Thread-safe (queries decode in
    worker threads).
    """

    def __init__(self, *, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, int, int], tuple[tuple[int, int, int, int], Points, int]] = OrderedDict()

    @staticmethod
    def _version(chunk: StoredChunk) -> tuple[int, int, int, int]:
        return (chunk.partition, chunk.applied_offset, len(chunk.data), zlib.crc32(chunk.data))

    def get(self, tier: str, chunk: StoredChunk) -> Points | None:
        key = (tier, chunk.series_id, chunk.chunk_start_ms)
        version = self._version(chunk)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, tier: str, chunk: StoredChunk, points: Points) -> None:
        size = _nbytes(points)
        if size > self._max_bytes:
            return
        _freeze(points)  # shared by later queries: an in-place write would be a bug, make it loud
        key = (tier, chunk.series_id, chunk.chunk_start_ms)
        version = self._version(chunk)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            while self._entries and self._bytes + size > self._max_bytes:
                _, (_, _, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted
            self._entries[key] = (version, points, size)
            self._bytes += size

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


def _arrays(points: Points) -> list[npt.NDArray[Any]]:
    columns = [points.key, points.ts, points.count, points.sum, points.min, points.max, points.last, points.last_ts]
    return columns + [a for r in (points.sketch, points.hll) for a in (r.offsets, r.index, r.value)]


def _nbytes(points: Points) -> int:
    return sum(a.nbytes for a in _arrays(points))


def _freeze(points: Points) -> None:
    for a in _arrays(points):
        a.flags.writeable = False


def _decode_whole(stored: Sequence[StoredChunk]) -> list[Points]:
    """Every point of each chunk, keyed 0, as arrays of its own (they go into the cache)."""
    if len(stored) < _BATCH_MIN_CHUNKS:
        return [decode_chunk(c.data, key=0).points for c in stored]
    batch = decode_chunks([c.data for c in stored], np.arange(len(stored), dtype=np.int64))
    keys, offsets = key_bounds(batch)
    out = [Points.empty() for _ in stored]
    for i, k in enumerate(keys.tolist()):
        out[k] = _owned(batch.take(slice(int(offsets[i]), int(offsets[i + 1]))))
    return out


def _owned(p: Points) -> Points:
    """A copy of `p` keyed 0 that shares no memory with a bigger batch (cache byte counts stay true)."""

    def own(r: Ragged) -> Ragged:
        return Ragged(offsets=r.offsets - r.offsets[0], index=r.index.copy(), value=r.value.copy())

    return Points(
        key=np.zeros(len(p), dtype=np.int64),
        ts=p.ts.copy(),
        count=p.count.copy(),
        sum=p.sum.copy(),
        min=p.min.copy(),
        max=p.max.copy(),
        last=p.last.copy(),
        last_ts=p.last_ts.copy(),
        sketch=own(p.sketch),
        hll=own(p.hll),
    )


def _stopping() -> Unavailable:
    return Unavailable("the query service is stopping; retry on another instance or after the restart")


def _pick(labels: Sequence[Mapping[str, str]], selector: Selector) -> list[int]:
    """Indexes of the series whose labels satisfy every matcher."""
    return [i for i, x in enumerate(labels) if selector.matches(x)]


def _merge_regrouped(points: Points, rows: Points, series_ids: Sequence[int], group_of: Sequence[int]) -> Points:
    return merge(points, _regroup(rows, series_ids, group_of))


def _regroup(rows: Points, series_ids: Sequence[int], group_of: Sequence[int]) -> Points:
    """Cold rows (keyed by series id) re-keyed to their query group (not merged yet)."""
    sids = np.asarray(series_ids, dtype=np.int64)
    order = np.argsort(sids)
    at = order[np.searchsorted(sids, rows.key, sorter=order)]
    return rows.with_key(np.asarray(group_of, dtype=np.int64)[at])


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _groups(
    labels: Sequence[Mapping[str, str]], group_by: tuple[str, ...] | None
) -> tuple[list[int], list[dict[str, str]]]:
    """Group id per series and the labels of each group: `None` (`*`) = a group per series
    with all its labels, () = one group without labels, names = one group per distinct
    combination of those labels (a missing label counts as "")."""
    if group_by is None:
        return list(range(len(labels))), [dict(x) for x in labels]
    if not group_by:
        return [0] * len(labels), [{}]
    ids: dict[tuple[str, ...], int] = {}
    group_of: list[int] = []
    for x in labels:
        values = tuple(x.get(name, "") for name in group_by)
        group_of.append(ids.setdefault(values, len(ids)))
    return group_of, [dict(zip(group_by, values, strict=True)) for values in ids]


def _collapse(points: Points, start_ms: int) -> Points:
    """Every point of a group merged into one at `start_ms` (the whole range as one bucket)."""
    if len(points) == 0:
        return points
    return merge(dataclasses.replace(points, ts=np.full(len(points), start_ms, dtype=np.int64)))


def _aggregate(
    points: Points, agg: str, step_ms: int, ordering: Ordering, group_labels: Sequence[Mapping[str, str]]
) -> tuple[ResultSeries, ...]:
    if len(points) == 0:
        return ()
    values = read_agg(points, agg, step_ms)
    keys, offsets = key_bounds(points)
    bounds = offsets.tolist()
    key_list = keys.tolist()
    # Label order first: the order without `sort`, and the tie-break with it.
    order = sorted(range(len(key_list)), key=lambda i: sorted(group_labels[key_list[i]].items()))
    if ordering.sort is not None:
        ranked = series_scores(values, offsets, ordering.sort)[order]
        if ordering.descending:
            ranked = -ranked
        # Stable: ties keep the label order; NaN (a series without a value) sorts last.
        order = [order[i] for i in np.argsort(ranked, kind="stable").tolist()]
    if ordering.limit:
        order = order[: ordering.limit]
    return tuple(
        ResultSeries(
            labels=group_labels[key_list[i]],
            ts=points.ts[bounds[i] : bounds[i + 1]],
            values=values[bounds[i] : bounds[i + 1]],
        )
        for i in order
    )


def series_scores(values: F64, offsets: I64, sort: str) -> F64:
    """One score per series of `values` (series i is `values[offsets[i]:offsets[i + 1]]`,
    none empty): the max, min, avg, sum or last of its non-NaN values; NaN when it has none."""
    starts = offsets[:-1]
    present = ~np.isnan(values)
    counts = np.add.reduceat(present.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        if sort == "max":
            scores = np.fmax.reduceat(values, starts)
        elif sort == "min":
            scores = np.fmin.reduceat(values, starts)
        elif sort in ("sum", "avg"):
            scores = np.add.reduceat(np.where(present, values, 0.0), starts)
            if sort == "avg":
                scores = scores / counts
        elif sort == "last":
            at = np.where(present, np.arange(len(values), dtype=np.int64), -1)
            last = np.maximum.reduceat(at, starts)
            scores = values[np.maximum(last, 0)]
        else:
            raise InvalidArgument(f"sort: {sort!r} is not a sort", parameter="sort")
    return np.where(counts > 0, scores, np.nan)
