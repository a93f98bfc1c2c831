"""The dashboard service's use cases, written once for every transport: (caller, request) -> response.

Transports (grpc_service.py: grpc.aio and, through the gRPC-web adapter, the browser;
http.py: HTTP JSON) read the caller from their metadata (`authenticate`), parse their wire
format into these values, call a handler and encode its answer. Errors are `core/errors.py`
exceptions, mapped by the one table in core/transport_errors.py.

Reads come from the process's `DashboardState` (core/dashboards/state.py), refreshed before
each call so a client reads its own writes. Writes go through a `DashboardWriter`: the
command side's handlers (command_side/config/dashboards.py), which this side cannot import;
the composition (argus/dashboards_api.py) passes them in. Every call sees only the caller's
tenant: a uid of another tenant is NotFound, exactly as one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from core.auth import ApiKeyRegistry, hash_key
from core.config_view import ConfigView
from core.dashboards.schema import check_uid, uid_from_title
from core.dashboards.state import DashboardState, DashboardVersion
from core.errors import InvalidArgument, Unauthenticated
from core.tenancy import Metadata, api_key_from_metadata

DEFAULT_HISTORY: Final = 100
MAX_HISTORY_PAGE: Final = 1_000
MAX_HISTORY_BYTES: Final = 3 * 1024 * 1024
"""A history answer stops before its specs pass this (a gRPC message is at most 4 MiB)."""
MAX_SEARCH_CHARS: Final = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    tenant: str
    author: str
    """The key's name, or `key:<key id>` for a key without one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListRequest:
    search: str = ""
    folder: str = ""
    tags: tuple[str, ...] = ()
    include_deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveRequest:
    uid: str
    """"" on create: derived from the title (made unique with -2, -3, ...)."""
    title: str
    folder: str = ""
    tags: tuple[str, ...] = ()
    spec_json: str = ""
    expected_version: int = 0
    message: str = ""


class DashboardWriter(Protocol):
    """The command side's dashboard handlers, as this side calls them."""

    async def save(self, caller: Caller, request: SaveRequest) -> DashboardVersion: ...

    async def delete(self, caller: Caller, uid: str, expected_version: int) -> int: ...

    async def restore(self, caller: Caller, uid: str, version: int, expected_version: int) -> DashboardVersion: ...


class DashboardHandlers:
    """List, get, save, delete, history, restore: for any transport."""

    def __init__(self, *, view: ConfigView, keys: ApiKeyRegistry, writer: DashboardWriter) -> None:
        self._view = view
        self._keys = keys
        self._writer = writer
        self._state = view.state(DashboardState)

    def authenticate(self, metadata: Metadata | None) -> Caller:
        """The caller of a request (gRPC metadata or HTTP headers); raises Unauthenticated."""
        key = api_key_from_metadata(metadata)
        tenant = self._keys.tenant_for(key)
        info = self._keys.get(hash_key(key)) if key is not None else None
        if info is None:
            raise Unauthenticated("unknown or revoked API key")
        return Caller(tenant=tenant, author=info.name or f"key:{info.key_id}")

    async def list_dashboards(self, caller: Caller, request: ListRequest) -> list[DashboardVersion]:
        """The tenant's live dashboards matching the filters, by folder then title."""
        if len(request.search) > MAX_SEARCH_CHARS:
            raise InvalidArgument(f"search: at most {MAX_SEARCH_CHARS} characters", parameter="search")
        await self._view.refresh()
        needle = request.search.strip().lower()
        folder = request.folder.strip("/")
        found = []
        for d in self._state.dashboards(caller.tenant, include_deleted=request.include_deleted):
            if folder and d.folder != folder and not d.folder.startswith(folder + "/"):
                continue
            if request.tags and not set(request.tags) <= set(d.tags):
                continue
            haystack = [d.title.lower(), d.folder.lower(), *(t.lower() for t in d.tags)]
            if needle and not any(needle in h for h in haystack):
                continue
            found.append(d)
        return found

    async def get(self, caller: Caller, uid: str, version: int = 0) -> DashboardVersion:
        check_uid(uid)
        await self._view.refresh()
        return self._state.get(caller.tenant, uid, version)

    async def save(self, caller: Caller, request: SaveRequest) -> DashboardVersion:
        if not request.uid and request.expected_version == 0 and request.title.strip():
            await self._view.refresh()
            request = _with_free_uid(request, self._state, caller.tenant)
        return await self._writer.save(caller, request)

    async def delete(self, caller: Caller, uid: str, expected_version: int) -> int:
        return await self._writer.delete(caller, uid, expected_version)

    async def history(self, caller: Caller, uid: str, limit: int = 0) -> list[DashboardVersion]:
        """Kept versions, newest first: at most `limit` (0: 100; 1 to 1000) and ~3 MiB of specs."""
        if not 0 <= limit <= MAX_HISTORY_PAGE:
            raise InvalidArgument(f"limit: 1 to {MAX_HISTORY_PAGE} (0 for {DEFAULT_HISTORY})", parameter="limit")
        check_uid(uid)
        await self._view.refresh()
        entries = self._state.history(caller.tenant, uid)[: limit or DEFAULT_HISTORY]
        kept: list[DashboardVersion] = []
        size = 0
        for entry in entries:
            size += len(entry.spec_json)
            if kept and size > MAX_HISTORY_BYTES:
                break
            kept.append(entry)
        return kept

    async def restore(self, caller: Caller, uid: str, version: int, expected_version: int) -> DashboardVersion:
        return await self._writer.restore(caller, uid, version, expected_version)


def _with_free_uid(request: SaveRequest, state: DashboardState, tenant: str) -> SaveRequest:
    base = uid_from_title(request.title)[:56].rstrip("-_") or "dashboard"
    uid, n = base, 1
    while state.latest(tenant, uid) is not None:
        n += 1
        uid = f"{base}-{n}"
    return SaveRequest(
        uid=uid,
        title=request.title,
        folder=request.folder,
        tags=request.tags,
        spec_json=request.spec_json,
        expected_version=0,
        message=request.message,
    )
