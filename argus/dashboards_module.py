"""Dashboards `argus up` keeps for one tenant: the default "This host" dashboard and the
dashboards of a folder (`--dashboards-dir`, docs/dashboards.md#provisioning).

- **Default dashboards.** At start, `argus/dashboards/this-host.json` is saved for the tenant,
  and `argus.json` (Argus's own metrics) for tenant `_argus` when `argus up` writes them
  there, each when its uid was never used in its tenant (a user who deleted it is not given
  it back). They are ordinary dashboards afterwards (not `provisioned`): edits are kept.
- **Provisioning.** Every `*.json`, `*.yaml`, `*.yml` under the folder (recursively) is
  applied at start and again whenever a file's (mtime, size) changes, polled every
  `interval_s`: saved as `provisioned`, by `provisioning`, against the current version (the
  folder is the source of truth: a change through the API is overwritten the next time the
  file changes or at the next start). An unchanged file appends nothing. When a file goes
  away, its dashboards are deleted (only those still marked `provisioned`); at start, so
  are provisioned dashboards that no file names any more. A file that does not parse or
  validate is logged with its path and field and skipped (its dashboards stay as they were).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from command_side.config.dashboards import (
    PROVISIONING_AUTHOR,
    DeleteDashboard,
    SaveDashboard,
    delete_dashboard,
    save_dashboard,
)
from core.config_view import ConfigView
from core.dashboards.files import SUFFIXES, parse_file_text, read_dashboard_file
from core.dashboards.schema import DashboardDocument, check_document
from core.dashboards.state import DashboardState
from core.errors import ArgusError
from core.model import SELF_TENANT

log = logging.getLogger(__name__)

DEFAULT_DASHBOARDS: Final = ("this-host.json",)
SELF_DASHBOARDS: Final = ("argus.json",)
"""Shipped for tenant `_argus`, where `argus up` writes its own metrics (argus/self_metrics.py)."""
MAX_FILES: Final = 1_000


def default_dashboards(names: Sequence[str] = DEFAULT_DASHBOARDS) -> list[DashboardDocument]:
    """Dashboards that ship with Argus (argus/dashboards/*.json)."""
    found: list[DashboardDocument] = []
    for name in names:
        raw = resources.files("argus.dashboards").joinpath(name).read_bytes()
        found.extend(check_document(item, source=name) for item in parse_file_text(raw, source=name))
    return found


@dataclass(frozen=True, slots=True)
class _Stamp:
    mtime_ns: int
    size: int


class DashboardsModule:
    name = "dashboards"

    def __init__(
        self,
        *,
        view: ConfigView,
        tenant: str,
        clock_ms: Callable[[], int],
        folder: Path | None = None,
        defaults: bool = True,
        self_defaults: bool = False,
        interval_s: float = 3.0,
    ) -> None:
        self._view = view
        self._tenant = tenant
        self._clock_ms = clock_ms
        self._folder = folder
        # tenant -> the shipped dashboards it gets
        self._defaults: Mapping[str, Sequence[str]] = {
            **({tenant: DEFAULT_DASHBOARDS} if defaults else {}),
            **({SELF_TENANT: SELF_DASHBOARDS} if self_defaults else {}),
        }
        self._interval_s = interval_s
        self._stamps: dict[Path, _Stamp] = {}
        self._uids: dict[Path, tuple[str, ...]] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._defaults:
            await self.add_defaults()
        if self._folder is not None:
            await self.sync(first=True)
            self._task = asyncio.create_task(self._poll(), name="dashboards-provisioning")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    def endpoints(self) -> dict[str, str]:
        return {"dashboards dir": str(self._folder)} if self._folder is not None else {}

    async def add_defaults(self) -> None:
        state = self._view.state(DashboardState)
        await self._view.refresh()
        for tenant, names in self._defaults.items():
            for doc in default_dashboards(names):
                if state.latest(tenant, doc.uid) is not None:
                    continue  # there, edited, or deleted on purpose: leave it
                command = self._command(doc, provisioned=False, tenant=tenant)
                try:
                    await save_dashboard(
                        command, view=self._view, clock_ms=self._clock_ms, reserved_ok=tenant == SELF_TENANT
                    )
                    log.info("added default dashboard: tenant=%s uid=%s", tenant, doc.uid)
                except ArgusError as exc:
                    log.warning("cannot add default dashboard %s: %s", doc.uid, exc)

    def _command(
        self, doc: DashboardDocument, *, provisioned: bool, expected: int = 0, tenant: str | None = None
    ) -> SaveDashboard:
        return SaveDashboard(
            tenant=tenant or self._tenant,
            uid=doc.uid,
            title=doc.title,
            folder=doc.folder,
            tags=doc.tags,
            spec_json=doc.spec_json,
            expected_version=expected,
            author=PROVISIONING_AUTHOR,
            provisioned=provisioned,
        )

    def _scan(self) -> dict[Path, _Stamp]:
        assert self._folder is not None
        found: dict[Path, _Stamp] = {}
        try:
            paths = sorted(p for p in self._folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        except OSError as exc:
            log.warning("cannot list dashboards dir %s: %s", self._folder, exc)
            return dict(self._stamps)  # keep what we have: a passing error must not delete everything
        if len(paths) > MAX_FILES:
            log.warning("dashboards dir %s: %d files, only the first %d are read", self._folder, len(paths), MAX_FILES)
        for path in paths[:MAX_FILES]:
            with contextlib.suppress(OSError):
                st = path.stat()
                found[path] = _Stamp(st.st_mtime_ns, st.st_size)
        return found

    async def sync(self, *, first: bool = False) -> None:
        """Apply changed files, delete the dashboards of removed ones."""
        stamps = await asyncio.to_thread(self._scan)
        state = self._view.state(DashboardState)
        await self._view.refresh()
        broken = False
        for path, stamp in stamps.items():
            if self._stamps.get(path) == stamp:
                continue
            try:
                docs = await asyncio.to_thread(read_dashboard_file, path)
            except ArgusError as exc:
                log.error("dashboards dir: skip %s", exc)
                self._stamps[path] = stamp  # retried when the file changes again
                broken = True
                continue
            taken = {uid for other, uids in self._uids.items() if other != path for uid in uids}
            applied: list[str] = []
            ok = True
            for doc in docs:
                if doc.uid in taken:
                    log.error("dashboards dir: skip %s: uid %r is already provisioned by another file", path, doc.uid)
                    continue
                latest = state.latest(self._tenant, doc.uid)
                expected = latest.version if latest is not None else 0
                try:
                    await save_dashboard(
                        self._command(doc, provisioned=True, expected=expected),
                        view=self._view,
                        clock_ms=self._clock_ms,
                    )
                    applied.append(doc.uid)
                except ArgusError as exc:
                    ok = False  # e.g. a concurrent edit: try again at the next poll
                    log.warning("dashboards dir: cannot apply %s (%s): %s", path, doc.uid, exc)
            for gone in set(self._uids.get(path, ())) - {d.uid for d in docs}:
                await self._delete(gone)
            self._uids[path] = tuple(applied)
            if ok:
                self._stamps[path] = stamp
        for path in set(self._uids) - set(stamps):
            for uid in self._uids.pop(path):
                await self._delete(uid)
            self._stamps.pop(path, None)
        # At start, also delete what a file removed while we were stopped had provisioned;
        # not while a file is unreadable: the dashboards it holds are unknown.
        if first and not broken:
            named = {uid for uids in self._uids.values() for uid in uids}
            for d in state.dashboards(self._tenant):
                if d.provisioned and d.uid not in named:
                    await self._delete(d.uid)

    async def _delete(self, uid: str) -> None:
        current = self._view.state(DashboardState).latest(self._tenant, uid)
        if current is None or current.deleted or not current.provisioned:
            return  # taken over through the API (saved without `provisioned`): not ours to delete
        try:
            await delete_dashboard(
                DeleteDashboard(
                    tenant=self._tenant,
                    uid=uid,
                    expected_version=current.version,
                    author=PROVISIONING_AUTHOR,
                    message="its file was removed",
                ),
                view=self._view,
                clock_ms=self._clock_ms,
            )
            log.info("dashboards dir: deleted %s (its file was removed)", uid)
        except ArgusError as exc:
            log.warning("dashboards dir: cannot delete %s: %s", uid, exc)

    async def _poll(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval_s)
            if self._stop.is_set():
                return
            try:
                await self.sync()
            except Exception:  # keep provisioning; the next poll retries
                log.exception("dashboards dir: sync failed")
