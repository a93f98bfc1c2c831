"""Config command handlers: validate against the current view, append, confirm.

Each handler (1) checks the command against the `ConfigView` state, returning early when
it is already in effect (idempotent), (2) appends one event carrying the author and the
entity version it was validated against, and (3) catches its view up past that event to
learn whether every follower applies it (`ConfigView.append_change`): a concurrent edit of
the same entity that got there first makes it a `Conflict`, never a lost update.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from command_side.config.commands import ConfigChanged, CreateApiKey, RevokeApiKey
from contracts.argus.events.v1 import events_pb2
from core.auth import ApiKeyRegistry, api_key_entity, check_key_strength, hash_key
from core.config_view import ConfigView, config_change
from core.errors import Conflict, FailedPrecondition, InvalidArgument
from core.events import make_event
from core.model import SELF_TENANT

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
MAX_TEXT_CHARS = 200


def _text(value: str, *, parameter: str) -> str:
    if len(value) > MAX_TEXT_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgument(
            f"{parameter} must be at most {MAX_TEXT_CHARS} characters without control characters",
            parameter=parameter,
        )
    return value


def _check_tenant(tenant: str, *, reserved_ok: bool = False) -> None:
    if reserved_ok and tenant == SELF_TENANT:
        return  # `argus up`'s own metrics; no other path can name it (it starts with '_')
    if not _TENANT.fullmatch(tenant):
        raise InvalidArgument(
            f"tenant must be 1-128 letters, digits, '_', '.' or '-' (starting with a letter or digit), got {tenant!r}",
            parameter="tenant",
        )


async def create_api_key(
    command: CreateApiKey, *, view: ConfigView, clock_ms: Callable[[], int], reserved_ok: bool = False
) -> ConfigChanged:
    """Append ApiKeyCreated for a new key (see CreateApiKey). `reserved_ok`: the tenant may be
    the reserved `SELF_TENANT` (only `argus up` binds its self-metrics key so)."""
    check_key_strength(command.api_key)
    _check_tenant(command.tenant, reserved_ok=reserved_ok)
    _text(command.name, parameter="name")
    _text(command.author, parameter="author")
    await view.refresh()
    digest = hash_key(command.api_key)
    entity = api_key_entity(digest)
    existing = view.state(ApiKeyRegistry).get(digest)
    if existing is not None:
        if existing.tenant != command.tenant:
            raise Conflict(
                f"API key {existing.key_id} already belongs to another tenant; a key is never re-bound "
                "(create a new one with `argus keys create`)"
            )
        if existing.revoked:
            raise FailedPrecondition(
                f"API key {existing.key_id} was revoked; create a new one with `argus keys create`"
            )
        return ConfigChanged(entity=entity, version=view.version(entity), changed=False)
    payload = events_pb2.ApiKeyCreated(
        key_sha256=digest,
        tenant=command.tenant,
        name=command.name,
        change=config_change(author=command.author, expected_version=0),
    )
    # The id covers what makes the change: the same command twice is one event.
    identity = b"\x00".join((digest, command.tenant.encode(), command.name.encode(), b"0"))
    event = make_event(payload, identity=identity, partition_key=digest, time_ms=clock_ms())
    outcome = await view.append_change(event)
    return ConfigChanged(entity=entity, version=outcome.version, changed=True)


async def revoke_api_key(command: RevokeApiKey, *, view: ConfigView, clock_ms: Callable[[], int]) -> ConfigChanged:
    """Append ApiKeyRevoked for a key (see RevokeApiKey)."""
    _text(command.author, parameter="author")
    await view.refresh()
    info = view.state(ApiKeyRegistry).find(command.key_id)
    entity = api_key_entity(info.key_sha256)
    current = view.version(entity)
    if info.revoked:
        return ConfigChanged(entity=entity, version=current, changed=False)
    expected = current if command.expected_version is None else command.expected_version
    if expected != current:
        raise Conflict(f"{entity} changed: you saw version {expected}, it is at version {current}; re-read and retry")
    payload = events_pb2.ApiKeyRevoked(
        key_sha256=info.key_sha256, change=config_change(author=command.author, expected_version=expected)
    )
    identity = info.key_sha256 + str(expected).encode()
    event = make_event(payload, identity=identity, partition_key=info.key_sha256, time_ms=clock_ms())
    outcome = await view.append_change(event)
    return ConfigChanged(entity=entity, version=outcome.version, changed=True)
