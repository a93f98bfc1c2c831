"""An in-memory hot store: tier chunks, the series index and projector state in dicts.

For fast unit tests of what sits above the HotStore port; it passes the same contract suite
as the SQLite and DynamoDB stores (tests/contract/test_hot_store.py). "Durable on return"
means "visible to every later call on this object": nothing outlives the process. The
series index keeps label postings, so `find_series` resolves equality without a scan, like
the other stores. Not thread-safe: use it from one event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.errors import InvalidArgument
from core.model import DEFAULT_TIERS, Tier
from core.ports import LabelFilter, MetricSummary, SeriesRecord, StoredChunk


class MemoryHotStore:
    """HotStore in this process's memory."""

    def __init__(self, *, tiers: Sequence[Tier] = DEFAULT_TIERS) -> None:
        self._chunks: dict[str, dict[tuple[int, int], StoredChunk]] = {t.name: {} for t in tiers}
        self._series: dict[tuple[str, int], SeriesRecord] = {}
        # (tenant, metric) -> series ids; (tenant, metric, label, value) -> series ids.
        self._by_metric: dict[tuple[str, str], set[int]] = {}
        self._postings: dict[tuple[str, str, str, str], set[int]] = {}
        self._applied: dict[str, dict[bytes, int]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _tier(self, tier: str) -> dict[tuple[int, int], StoredChunk]:
        found = self._chunks.get(tier)
        if found is None:
            raise InvalidArgument(f"unknown tier {tier!r} (known: {', '.join(self._chunks)})", parameter="tier")
        return found

    # -- chunks ---------------------------------------------------------------------

    async def write_chunks(self, tier: str, chunks: Sequence[StoredChunk]) -> None:
        table = self._tier(tier)
        for c in chunks:
            key = (c.series_id, c.chunk_start_ms)
            held = table.get(key)
            # Only a higher applied offset replaces: the first of equals stays (as in SQLite).
            if held is None or c.applied_offset > held.applied_offset:
                table[key] = c

    async def get_chunks(self, tier: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredChunk]:
        table = self._tier(tier)
        return {key: table[key] for key in keys if key in table}

    async def read_range(
        self, tier: str, series_ids: Sequence[int], start_ms: int, end_ms: int, chunk_span_ms: int
    ) -> list[StoredChunk]:
        table = self._tier(tier)
        first = start_ms - start_ms % chunk_span_ms
        wanted = set(series_ids)
        found = [c for (sid, start), c in table.items() if sid in wanted and first <= start < end_ms]
        return sorted(found, key=lambda c: (c.series_id, c.chunk_start_ms))

    async def delete_before(self, tier: str, before_ms: int, chunk_span_ms: int) -> int:
        table = self._tier(tier)
        old = [key for key in table if key[1] + chunk_span_ms <= before_ms]
        for key in old:
            del table[key]
        return len(old)

    # -- series index ---------------------------------------------------------------

    async def upsert_series(self, records: Sequence[SeriesRecord]) -> None:
        for r in records:
            key = (r.tenant, r.series_id)
            held = self._series.get(key)
            if held is not None:
                # A known series only widens its seen range (as in SQLite).
                self._series[key] = replace(
                    held,
                    first_seen_ms=min(held.first_seen_ms, r.first_seen_ms),
                    last_seen_ms=max(held.last_seen_ms, r.last_seen_ms),
                )
                continue
            self._series[key] = r
            self._by_metric.setdefault((r.tenant, r.metric), set()).add(r.series_id)
            for name, value in (*r.labels, ("region", r.region)):
                self._postings.setdefault((r.tenant, r.metric, name, value), set()).add(r.series_id)

    async def find_series(self, tenant: str, metric: str, where: LabelFilter | None = None) -> list[SeriesRecord]:
        ids = set(self._by_metric.get((tenant, metric), ()))
        for name, value in (where.equal if where else {}).items():
            ids &= self._postings.get((tenant, metric, name, value), set())
        return sorted((self._series[(tenant, sid)] for sid in ids), key=lambda s: s.series_id)

    async def list_metrics(self, tenant: str) -> list[MetricSummary]:
        out = []
        for (t, metric), ids in sorted(self._by_metric.items()):
            if t == tenant and ids:
                kind = min(self._series[(tenant, sid)].kind for sid in ids)
                out.append(MetricSummary(name=metric, kind=kind, series_count=len(ids)))
        return out

    async def label_values(self, tenant: str, label: str, metric: str | None = None) -> list[str]:
        values = {
            value
            for (t, m, name, value), ids in self._postings.items()
            if t == tenant and name == label and (not metric or m == metric) and ids
        }
        return sorted(values)

    async def tenant_series(self, tenant: str | None = None) -> list[SeriesRecord]:
        return [r for (t, _), r in self._series.items() if tenant is None or t == tenant]

    # -- projector state ------------------------------------------------------------

    async def filter_new_events(self, projector: str, event_ids: Sequence[bytes]) -> set[bytes]:
        seen = self._applied.get(projector, {})
        return {e for e in event_ids if e not in seen}

    async def record_events(self, projector: str, event_ids: Sequence[bytes], time_ms: int) -> None:
        seen = self._applied.setdefault(projector, {})
        for e in event_ids:
            seen.setdefault(e, time_ms)  # the first record of an id stays (INSERT OR IGNORE)

    async def forget_events_before(self, projector: str, time_ms: int) -> int:
        seen = self._applied.get(projector, {})
        old = [e for e, t in seen.items() if t < time_ms]
        for e in old:
            del seen[e]
        return len(old)
