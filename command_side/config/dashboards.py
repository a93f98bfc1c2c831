"""Dashboard commands: save, delete, restore (docs/decisions/0034-dashboards-as-config-events.md).

Each handler validates the command (the spec against core/dashboards/schema.py), checks it
against the tenant's dashboards in the `ConfigView`, and appends one event carrying the
author and the version the caller based the change on. The view decides, in log order, as
every process does: a stale expected version is a `Conflict` (gRPC ABORTED, HTTP 409) that
names the current version, never a lost update.

- A save whose content equals the live version appends nothing (importing or provisioning
  the same file twice changes nothing); its answer is the live version.
- A save over a deleted uid re-creates it; its expected version is the delete's version.
- A restore copies a kept version's content into a new version (`restored_from` set).
- Tenants are apart: the entity is `dashboard:<tenant>/<uid>`, and a handler reads and
  changes only its own tenant's dashboards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from command_side.config.handlers import _check_tenant, _text
from contracts.argus.dashboards.v1 import config_pb2 as pb
from core.config_view import ConfigView, config_change
from core.dashboards.schema import check_metadata, check_spec, check_uid, parse_spec_json
from core.dashboards.state import DashboardState, DashboardVersion, dashboard_entity
from core.errors import Conflict, InvalidArgument, NotFound, ResourceExhausted
from core.events import digest, make_event
from core.ports import Event

MAX_DASHBOARDS_PER_TENANT: Final = 1_000
MAX_MESSAGE_CHARS: Final = 500
PROVISIONING_AUTHOR: Final = "provisioning"


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveDashboard:
    """Create (expected_version 0) or update (expected_version = the version the edit
    started from) one dashboard of a tenant."""

    tenant: str
    uid: str
    title: str
    folder: str = ""
    tags: tuple[str, ...] = ()
    spec_json: str = ""
    expected_version: int
    author: str
    message: str = ""
    provisioned: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteDashboard:
    """Delete a dashboard (its history stays; it can be restored). expected_version None or
    0: whatever version is current."""

    tenant: str
    uid: str
    expected_version: int | None = None
    author: str
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreDashboard:
    """Save the content of kept version `version` as a new version. expected_version None or
    0: whatever version is current."""

    tenant: str
    uid: str
    version: int
    expected_version: int | None = None
    author: str


def _event(tenant: str, entity: str, payload: pb.DashboardSaved | pb.DashboardDeleted, time_ms: int) -> Event:
    # The id covers the whole payload (content, author, expected version): the same change
    # sent twice is one event, and two different edits of one version are two events.
    body = payload.SerializeToString(deterministic=True)
    return make_event(payload, identity=digest(tenant, entity, body), partition_key=tenant.encode(), time_ms=time_ms)


def _stale(uid: str, expected: int, current: DashboardVersion | None) -> Conflict:
    if current is None:
        return Conflict(f"dashboard {uid!r} does not exist (expected version {expected}); create it with version 0")
    if expected == 0:
        return Conflict(
            f"dashboard {uid!r} already exists at version {current.version}"
            + (" (deleted)" if current.deleted else "")
            + f"; save with expected version {current.version} to replace it"
        )
    return Conflict(
        f"dashboard {uid!r} is at version {current.version}, not {expected}: it changed since you loaded it; "
        "reload it and apply your edit again"
    )


def _same(
    current: DashboardVersion, command: SaveDashboard, spec_json: str, folder: str, tags: tuple[str, ...]
) -> bool:
    return (
        not current.deleted
        and current.title == command.title
        and current.folder == folder
        and current.tags == tags
        and current.spec_json == spec_json
        and current.provisioned == command.provisioned
    )


async def save_dashboard(
    command: SaveDashboard, *, view: ConfigView, clock_ms: Callable[[], int], reserved_ok: bool = False
) -> DashboardVersion:
    """Append DashboardSaved (see SaveDashboard); returns the dashboard as saved (or as it
    already was, when nothing changed). `reserved_ok`: the tenant may be the reserved
    `SELF_TENANT` (only `argus up` adds its own dashboard there)."""
    _check_tenant(command.tenant, reserved_ok=reserved_ok)
    _text(command.author, parameter="author")
    _message(command.message)
    uid, title, folder, tags = check_metadata(
        uid=command.uid, title=command.title, folder=command.folder, tags=command.tags
    )
    spec_json = check_spec(parse_spec_json(command.spec_json))
    await view.refresh()
    state = view.state(DashboardState)
    current = state.latest(command.tenant, uid)
    current_version = current.version if current is not None else 0
    if command.expected_version != current_version:
        raise _stale(uid, command.expected_version, current)
    if current is not None and _same(current, command, spec_json, folder, tags):
        return current
    if current is None and state.count(command.tenant) >= MAX_DASHBOARDS_PER_TENANT:
        raise ResourceExhausted(
            f"tenant {command.tenant} has {MAX_DASHBOARDS_PER_TENANT:,} dashboards (deleted ones count: "
            "they keep their history), the limit"
        )
    entity = dashboard_entity(command.tenant, uid)
    payload = pb.DashboardSaved(
        tenant=command.tenant,
        dashboard=pb.DashboardContent(
            uid=uid, title=title, folder=folder, tags=tags, spec_json=spec_json, provisioned=command.provisioned
        ),
        message=command.message,
        change=config_change(author=command.author, expected_version=current_version),
    )
    await view.append_change(_event(command.tenant, entity, payload, clock_ms()))
    saved = state.latest(command.tenant, uid)
    assert saved is not None
    return saved


def _message(text: str) -> None:
    if len(text) > MAX_MESSAGE_CHARS or any((ord(c) < 32 and c != "\n") or ord(c) == 127 for c in text):
        raise InvalidArgument(
            f"message: at most {MAX_MESSAGE_CHARS} characters without control characters", parameter="message"
        )


def _expected(uid: str, expected: int | None, current: DashboardVersion) -> int:
    if expected and expected != current.version:
        raise _stale(uid, expected, current)
    return current.version


async def delete_dashboard(command: DeleteDashboard, *, view: ConfigView, clock_ms: Callable[[], int]) -> int:
    """Append DashboardDeleted (see DeleteDashboard); returns the version the delete made.
    NotFound for a uid the tenant does not have (or has deleted)."""
    _check_tenant(command.tenant)
    _text(command.author, parameter="author")
    _message(command.message)
    uid = check_uid(command.uid)
    await view.refresh()
    state = view.state(DashboardState)
    current = state.latest(command.tenant, uid)
    if current is None or current.deleted:
        raise NotFound(f"no dashboard {uid!r}")
    expected = _expected(uid, command.expected_version, current)
    payload = pb.DashboardDeleted(
        tenant=command.tenant,
        uid=uid,
        message=command.message,
        change=config_change(author=command.author, expected_version=expected),
    )
    outcome = await view.append_change(
        _event(command.tenant, dashboard_entity(command.tenant, uid), payload, clock_ms())
    )
    return outcome.version


async def restore_dashboard(
    command: RestoreDashboard, *, view: ConfigView, clock_ms: Callable[[], int]
) -> DashboardVersion:
    """Append a DashboardSaved with the content of a kept version (see RestoreDashboard)."""
    _check_tenant(command.tenant)
    _text(command.author, parameter="author")
    uid = check_uid(command.uid)
    await view.refresh()
    state = view.state(DashboardState)
    current = state.latest(command.tenant, uid)
    if current is None:
        raise NotFound(f"no dashboard {uid!r}")
    if command.version <= 0:
        raise InvalidArgument("version: the version to restore (1 or more)", parameter="version")
    source = state.get(command.tenant, uid, command.version)
    expected = _expected(uid, command.expected_version, current)
    payload = pb.DashboardSaved(
        tenant=command.tenant,
        dashboard=pb.DashboardContent(
            uid=uid,
            title=source.title,
            folder=source.folder,
            tags=source.tags,
            spec_json=source.spec_json,
            provisioned=False,
        ),
        message=f"restored from version {source.version}",
        restored_from=source.version,
        change=config_change(author=command.author, expected_version=expected),
    )
    await view.append_change(_event(command.tenant, dashboard_entity(command.tenant, uid), payload, clock_ms()))
    restored = state.latest(command.tenant, uid)
    assert restored is not None
    return restored
