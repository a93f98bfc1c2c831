"""What ingest must know across batches: each metric's kind and each tenant's active series.

Seeded from the series index at start, then updated as batches are validated (before their
append completes, so two concurrent batches cannot both claim a new kind for a metric).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.model import DAY_MS
from core.ports import SeriesIndex

ACTIVE_WINDOW_MS = DAY_MS


@dataclass(slots=True)
class _Tenant:
    kinds: dict[str, int] = field(default_factory=dict)
    last_seen_ms: dict[int, int] = field(default_factory=dict)


class TenantRegistry:
    def __init__(self, *, max_series_per_tenant: int) -> None:
        self.max_series_per_tenant = max_series_per_tenant
        self._tenants: dict[str, _Tenant] = {}

    async def seed(self, index: SeriesIndex, now_ms: int) -> None:
        for record in await index.tenant_series():
            tenant = self._tenant(record.tenant)
            tenant.kinds.setdefault(record.metric, record.kind)
            if record.last_seen_ms >= now_ms - ACTIVE_WINDOW_MS:
                tenant.last_seen_ms[record.series_id] = now_ms

    def _tenant(self, name: str) -> _Tenant:
        found = self._tenants.get(name)
        if found is None:
            found = self._tenants[name] = _Tenant()
        return found

    def kind_of(self, tenant: str, metric: str) -> int | None:
        return self._tenant(tenant).kinds.get(metric)

    def claim_kind(self, tenant: str, metric: str, kind: int) -> int:
        """Record `kind` for a metric unless it has one; return the metric's kind."""
        return self._tenant(tenant).kinds.setdefault(metric, kind)

    def admit_series(self, tenant: str, sid: int, now_ms: int) -> bool:
        """Mark a series active; False when it is new and the tenant is at its limit."""
        seen = self._tenant(tenant).last_seen_ms
        if sid not in seen and len(seen) >= self.max_series_per_tenant:
            return False
        seen[sid] = now_ms
        return True

    def active_series(self, tenant: str) -> int:
        return len(self._tenant(tenant).last_seen_ms)

    def expire(self, now_ms: int) -> None:
        """Forget series not seen within the active window."""
        cutoff = now_ms - ACTIVE_WINDOW_MS
        for tenant in self._tenants.values():
            stale = [sid for sid, seen in tenant.last_seen_ms.items() if seen < cutoff]
            for sid in stale:
                del tenant.last_seen_ms[sid]
