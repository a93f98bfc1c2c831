"""`DashboardState`: every tenant's dashboards and their history, rebuilt from the config
topic by a `ConfigView` (core/config_view.py; the container registers it).

Guarantees: the same log gives every process the same dashboards, versions and history
(events apply in log order; the view decides conflicts before `apply` runs, so a stale save
changes nothing). Tenants are apart: an event changes only the tenant it names. The version
of a dashboard is the version of its entity `dashboard:<tenant>/<uid>` in the view: 1 on
create, +1 per save, delete or restore. History keeps the last `MAX_HISTORY` versions of
each dashboard, and no more than `MAX_HISTORY_BYTES` of their specs (older ones are dropped
from memory, the same way in every follower; the log still has them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from contracts.argus.dashboards.v1 import config_pb2 as pb
from core.config_view import ConfigKind, change_of
from core.errors import NotFound
from core.ports import Event

MAX_HISTORY: Final = 100
MAX_HISTORY_BYTES: Final = 8 * 1024 * 1024
"""Kept versions of one dashboard stop at this many bytes of specs (the newest is always kept):
100 versions of a 256 KiB spec would otherwise hold 25 MiB per dashboard."""


def dashboard_entity(tenant: str, uid: str) -> str:
    return f"dashboard:{tenant}/{uid}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardVersion:
    """One version of a dashboard (the current one, or a history entry)."""

    uid: str
    title: str
    folder: str
    tags: tuple[str, ...]
    spec_json: str
    version: int
    updated_ms: int
    updated_by: str
    provisioned: bool = False
    deleted: bool = False
    message: str = ""
    restored_from: int = 0


@dataclass(slots=True)
class _Dashboard:
    history: deque[DashboardVersion] = field(default_factory=deque)
    spec_bytes: int = 0

    @property
    def latest(self) -> DashboardVersion:
        return self.history[-1]

    def add(self, version: DashboardVersion) -> None:
        if self.history and version.spec_json == self.history[-1].spec_json:
            version = replace(version, spec_json=self.history[-1].spec_json)  # one string, not two
        self.history.append(version)
        self.spec_bytes += len(version.spec_json)
        while len(self.history) > 1 and (len(self.history) > MAX_HISTORY or self.spec_bytes > MAX_HISTORY_BYTES):
            self.spec_bytes -= len(self.history.popleft().spec_json)


class DashboardState:
    """Tenant -> uid -> versions: the dashboards state of a `ConfigView`."""

    def __init__(self) -> None:
        self._tenants: dict[str, dict[str, _Dashboard]] = {}
        self._generation = 0

    def kinds(self) -> Sequence[ConfigKind[Any]]:
        return (
            ConfigKind(
                payload=pb.DashboardSaved,
                entity=lambda p: dashboard_entity(p.tenant, p.dashboard.uid),
                apply=self._saved,
            ),
            ConfigKind(
                payload=pb.DashboardDeleted, entity=lambda p: dashboard_entity(p.tenant, p.uid), apply=self._deleted
            ),
        )

    # -- reads

    @property
    def generation(self) -> int:
        """Number of dashboard events applied so far (grows whenever the state changes)."""
        return self._generation

    def dashboards(self, tenant: str, *, include_deleted: bool = False) -> list[DashboardVersion]:
        """The tenant's live dashboards (and with `include_deleted`, the deletes of deleted
        ones), sorted by folder, title, uid."""
        found = [d.latest for d in self._tenants.get(tenant, {}).values() if include_deleted or not d.latest.deleted]
        return sorted(found, key=lambda d: (d.folder.lower(), d.title.lower(), d.uid))

    def count(self, tenant: str) -> int:
        """Dashboards of the tenant, deleted ones included (they keep their history)."""
        return len(self._tenants.get(tenant, {}))

    def latest(self, tenant: str, uid: str) -> DashboardVersion | None:
        """The newest version (possibly a delete), or None when the uid was never used."""
        d = self._tenants.get(tenant, {}).get(uid)
        return None if d is None else d.latest

    def get(self, tenant: str, uid: str, version: int = 0) -> DashboardVersion:
        """The live dashboard (version 0) or one kept version of it; NotFound otherwise."""
        d = self._tenants.get(tenant, {}).get(uid)
        if d is None:
            raise NotFound(f"no dashboard {uid!r}")
        if version == 0:
            if d.latest.deleted:
                raise NotFound(f"dashboard {uid!r} was deleted (version {d.latest.version}); restore it from history")
            return d.latest
        for entry in d.history:
            if entry.version == version:
                if entry.deleted:
                    raise NotFound(f"version {version} of dashboard {uid!r} is its deletion")
                return entry
        oldest = d.history[0].version
        if version < oldest:
            raise NotFound(
                f"version {version} of dashboard {uid!r} is no longer kept (history keeps the last "
                f"{MAX_HISTORY} versions, at most {MAX_HISTORY_BYTES // 1024 // 1024} MiB; oldest kept: {oldest})"
            )
        raise NotFound(f"dashboard {uid!r} has no version {version} (latest {d.latest.version})")

    def history(self, tenant: str, uid: str) -> list[DashboardVersion]:
        """Kept versions of a dashboard (deletes included), newest first; NotFound when the
        uid was never used."""
        d = self._tenants.get(tenant, {}).get(uid)
        if d is None:
            raise NotFound(f"no dashboard {uid!r}")
        return list(reversed(d.history))

    # -- applies (the view has checked the expected version already)

    def _saved(self, msg: pb.DashboardSaved, event: Event) -> None:
        dashboards = self._tenants.setdefault(msg.tenant, {})
        d = dashboards.setdefault(msg.dashboard.uid, _Dashboard())
        version = d.latest.version + 1 if d.history else 1
        change = change_of(msg)
        c = msg.dashboard
        d.add(
            DashboardVersion(
                uid=c.uid,
                title=c.title,
                folder=c.folder,
                tags=tuple(c.tags),
                spec_json=c.spec_json,
                version=version,
                updated_ms=event.time_ms,
                updated_by=change.author if change is not None else "",
                provisioned=c.provisioned,
                message=msg.message,
                restored_from=msg.restored_from,
            )
        )
        self._generation += 1

    def _deleted(self, msg: pb.DashboardDeleted, event: Event) -> None:
        d = self._tenants.get(msg.tenant, {}).get(msg.uid)
        if d is None or d.latest.deleted:
            raise NotFound(f"dashboard {msg.uid!r} of tenant {msg.tenant} does not exist")
        change = change_of(msg)
        last = d.latest
        d.add(
            DashboardVersion(
                uid=last.uid,
                title=last.title,
                folder=last.folder,
                tags=last.tags,
                spec_json=last.spec_json,
                version=last.version + 1,
                updated_ms=event.time_ms,
                updated_by=change.author if change is not None else "",
                provisioned=last.provisioned,
                deleted=True,
                message=msg.message,
            )
        )
        self._generation += 1
