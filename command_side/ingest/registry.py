"""What ingest must know across batches: each metric's kind and each tenant's active series.

Seeded from the series index at start, then updated as batches are validated (before their
append completes, so two concurrent batches cannot both claim a new kind for a metric).

What a batch adds (a new series, a metric's first kind) is tentative until its append is
durable: the batch's `Claims` record it, and `settle(claims, appended=False)` takes it back
when the append failed, so series of failed appends never count toward a limit. Two
in-flight batches may rely on the same tentative entry; it stays when either one succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TypeVar

from core.model import DAY_MS
from core.ports import SeriesIndex

ACTIVE_WINDOW_MS = DAY_MS
K = TypeVar("K")


class Admission(Enum):
    ADMITTED = "admitted"
    TENANT_LIMIT = "tenant limit"
    GLOBAL_LIMIT = "global ceiling"


@dataclass(slots=True)
class Claims:
    """Tentative additions of one batch: (tenant, series id) and (tenant, metric) pairs,
    once per time the batch relied on them."""

    series: list[tuple[str, int]] = field(default_factory=list)
    kinds: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Tenant:
    kinds: dict[str, int] = field(default_factory=dict)
    last_seen_ms: dict[int, int] = field(default_factory=dict)


class TenantRegistry:
    def __init__(self, *, max_series_per_tenant: int, max_active_series: int = 0) -> None:
        """`max_active_series`: ceiling over all tenants together (0: none)."""
        self.max_series_per_tenant = max_series_per_tenant
        self.max_active_series = max_active_series
        self._tenants: dict[str, _Tenant] = {}
        self._active_total = 0
        # Tentative entries -> how many in-flight batches rely on them.
        self._pending_series: dict[tuple[str, int], int] = {}
        self._pending_kinds: dict[tuple[str, str], int] = {}

    async def seed(self, index: SeriesIndex, now_ms: int) -> None:
        for record in await index.tenant_series():
            tenant = self._tenant(record.tenant)
            tenant.kinds.setdefault(record.metric, record.kind)
            if record.last_seen_ms >= now_ms - ACTIVE_WINDOW_MS and record.series_id not in tenant.last_seen_ms:
                tenant.last_seen_ms[record.series_id] = now_ms
                self._active_total += 1

    def _tenant(self, name: str) -> _Tenant:
        found = self._tenants.get(name)
        if found is None:
            found = self._tenants[name] = _Tenant()
        return found

    def kind_of(self, tenant: str, metric: str) -> int | None:
        return self._tenant(tenant).kinds.get(metric)

    def claim_kind(self, tenant: str, metric: str, kind: int, claims: Claims | None = None) -> int:
        """Record `kind` for a metric unless it has one; return the metric's kind. With
        `claims`, a kind recorded (or still tentative) is held by that batch until settled."""
        kinds = self._tenant(tenant).kinds
        existing = kinds.get(metric)
        if existing is not None:
            key = (tenant, metric)
            if claims is not None and key in self._pending_kinds:
                self._pending_kinds[key] += 1
                claims.kinds.append(key)
            return existing
        kinds[metric] = kind
        if claims is not None:
            self._pending_kinds[(tenant, metric)] = 1
            claims.kinds.append((tenant, metric))
        return kind

    def admit_series(self, tenant: str, sid: int, now_ms: int, claims: Claims | None = None) -> Admission:
        """Mark a series active; refused when it is new and its tenant is at its limit or all
        tenants together at the ceiling. With `claims`, a new series stays tentative."""
        seen = self._tenant(tenant).last_seen_ms
        if sid in seen:
            seen[sid] = now_ms
            key = (tenant, sid)
            if claims is not None and key in self._pending_series:
                self._pending_series[key] += 1
                claims.series.append(key)
            return Admission.ADMITTED
        if len(seen) >= self.max_series_per_tenant:
            return Admission.TENANT_LIMIT
        if self.max_active_series and self._active_total >= self.max_active_series:
            return Admission.GLOBAL_LIMIT
        seen[sid] = now_ms
        self._active_total += 1
        if claims is not None:
            self._pending_series[(tenant, sid)] = 1
            claims.series.append((tenant, sid))
        return Admission.ADMITTED

    def settle(self, claims: Claims, *, appended: bool) -> None:
        """The batch holding `claims` was appended (its additions stay) or failed (those no
        other in-flight or appended batch relies on are taken back)."""
        for key in claims.series:
            if _release(self._pending_series, key, appended=appended):
                tenant, sid = key
                if self._tenant(tenant).last_seen_ms.pop(sid, None) is not None:
                    self._active_total -= 1
        for kind_key in claims.kinds:
            if _release(self._pending_kinds, kind_key, appended=appended):
                tenant, metric = kind_key
                self._tenant(tenant).kinds.pop(metric, None)
        claims.series.clear()
        claims.kinds.clear()

    def active_series(self, tenant: str | None = None) -> int:
        """Active series of `tenant`, or of all tenants together."""
        if tenant is None:
            return self._active_total
        return len(self._tenant(tenant).last_seen_ms)

    def expire(self, now_ms: int) -> None:
        """Forget series not seen within the active window."""
        cutoff = now_ms - ACTIVE_WINDOW_MS
        for tenant in self._tenants.values():
            stale = [sid for sid, seen in tenant.last_seen_ms.items() if seen < cutoff]
            for sid in stale:
                del tenant.last_seen_ms[sid]
            self._active_total -= len(stale)


def _release(pending: dict[K, int], key: K, *, appended: bool) -> bool:
    """One batch relying on `key` settled; True when the tentative entry must be undone."""
    held = pending.get(key)
    if held is None:  # confirmed by another batch already
        return False
    if appended or held == 1:
        del pending[key]
        return not appended
    pending[key] = held - 1
    return False
