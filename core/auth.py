"""API keys: tenants are decided by the key a request carries.

Keys are never stored, only their SHA-256. Keys are configuration events on the config
topic (`ApiKeyCreated` / `ApiKeyRevoked`, written by command_side/config); every process
that authenticates reads them through its `ConfigView` into an `ApiKeyRegistry`.

A key is bound to one tenant for good (a second creation for another tenant is refused,
never a silent move), and a revoked key stays revoked.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from contracts.argus.events.v1 import events_pb2
from core.config_view import ConfigKind, change_of
from core.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from core.ports import Event

KEY_PREFIX = "argus_"

MIN_KEY_CHARS = 24
MIN_KEY_BITS = 96
"""A key must be at least this long and carry about this much entropy (estimated)."""

KEY_ID_HEX = 16
"""A key's id: the first hex digits of its SHA-256, safe to show (`argus keys list`)."""

_KEY_CHARS = re.compile(r"[A-Za-z0-9_\-.~+/=]+")
_KEY_ID = re.compile(r"[0-9a-f]{8,64}")


class Authenticator(Protocol):
    def tenant_for(self, api_key: str | None) -> str:
        """The tenant of a key; raises Unauthenticated for a missing, unknown or revoked key."""
        ...


def hash_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def key_id(digest: bytes) -> str:
    """The public id of a key with this SHA-256."""
    return digest.hex()[:KEY_ID_HEX]


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def estimated_key_bits(api_key: str) -> float:
    """A conservative entropy estimate: length x bits per character, where bits per character
    is the smaller of log2(size of the character classes used) and the Shannon entropy of
    the key's own character frequencies (so `aaaa...`, `abab...` and `argus_000...` score
    low however long they are)."""
    if not api_key:
        return 0.0
    classes = sum(
        size
        for pattern, size in ((r"[a-z]", 26), (r"[A-Z]", 26), (r"[0-9]", 10), (r"[^A-Za-z0-9]", 8))
        if re.search(pattern, api_key)
    )
    counts = Counter(api_key)
    shannon = -sum(n / len(api_key) * math.log2(n / len(api_key)) for n in counts.values())
    return len(api_key) * min(math.log2(classes), shannon)


def check_key_strength(api_key: str, *, parameter: str = "api_key") -> None:
    """Refuse a key a person could have typed: generated keys only (`argus keys create`)."""
    how = "generate one with `argus keys create --tenant <tenant>` (or leave --api-key out on `argus up`)"
    if not _KEY_CHARS.fullmatch(api_key):
        raise InvalidArgument(
            "API key must be printable ASCII without spaces (letters, digits and _-.~+/=); " + how,
            parameter=parameter,
        )
    if len(api_key) < MIN_KEY_CHARS or estimated_key_bits(api_key) < MIN_KEY_BITS:
        raise InvalidArgument(
            f"API key is too weak: at least {MIN_KEY_CHARS} random characters (~{MIN_KEY_BITS} bits) "
            f"are required; " + how,
            parameter=parameter,
        )


def bearer_token(header_value: str | None) -> str | None:
    """The key from an `authorization: Bearer <key>` value (None when absent or malformed)."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_key_entity(digest: bytes) -> str:
    """The config entity of a key (its version counts its events: 1 created, 2 revoked)."""
    return f"api_key:{digest.hex()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyInfo:
    """What the configuration says about one key (never the key itself)."""

    key_sha256: bytes
    tenant: str
    name: str
    created_ms: int
    created_by: str
    revoked_ms: int | None = None
    revoked_by: str = ""

    @property
    def key_id(self) -> str:
        return key_id(self.key_sha256)

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None


class ApiKeyRegistry:
    """Key hash -> tenant: the API-key state of a `ConfigView` (register it there)."""

    def __init__(self) -> None:
        self._keys: dict[bytes, ApiKeyInfo] = {}

    def kinds(self) -> Sequence[ConfigKind[Any]]:
        return (
            ConfigKind(
                payload=events_pb2.ApiKeyCreated,
                entity=lambda p: api_key_entity(p.key_sha256),
                apply=self._created,
            ),
            ConfigKind(
                payload=events_pb2.ApiKeyRevoked,
                entity=lambda p: api_key_entity(p.key_sha256),
                apply=self._revoked,
            ),
        )

    def _created(self, created: events_pb2.ApiKeyCreated, event: Event) -> None:
        old = self._keys.get(created.key_sha256)
        if old is not None:
            # Also for old events without a ConfigChange: the first binding wins, so a key
            # given again for another tenant never moves.
            if old.tenant != created.tenant:
                raise Conflict(f"API key {old.key_id} already belongs to another tenant; it is never re-bound")
            if old.revoked:
                raise FailedPrecondition(f"API key {old.key_id} was revoked; create a new key")
            raise Conflict(f"API key {old.key_id} already exists")
        change = change_of(created)
        self._keys[created.key_sha256] = ApiKeyInfo(
            key_sha256=created.key_sha256,
            tenant=created.tenant,
            name=created.name,
            created_ms=event.time_ms,
            created_by=change.author if change is not None else "",
        )

    def _revoked(self, revoked: events_pb2.ApiKeyRevoked, event: Event) -> None:
        old = self._keys.get(revoked.key_sha256)
        if old is None:
            raise NotFound(f"API key {key_id(revoked.key_sha256)} does not exist")
        if old.revoked:
            raise FailedPrecondition(f"API key {old.key_id} is already revoked")
        change = change_of(revoked)
        self._keys[revoked.key_sha256] = replace(
            old, revoked_ms=event.time_ms, revoked_by=change.author if change is not None else ""
        )

    def tenant_for(self, api_key: str | None) -> str:
        if api_key is None:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>'")
        info = self._keys.get(hash_key(api_key))
        if info is None or info.revoked:
            raise Unauthenticated("unknown or revoked API key")
        return info.tenant

    def get(self, digest: bytes) -> ApiKeyInfo | None:
        return self._keys.get(digest)

    def keys(self) -> list[ApiKeyInfo]:
        """Every key ever created (revoked ones too), oldest first."""
        return sorted(self._keys.values(), key=lambda k: (k.created_ms, k.key_sha256))

    def find(self, key_id_prefix: str) -> ApiKeyInfo:
        """The key whose id starts with `key_id_prefix` (8+ hex digits, as `argus keys list` shows)."""
        prefix = key_id_prefix.strip().lower()
        if not _KEY_ID.fullmatch(prefix):
            raise InvalidArgument(
                f"key id must be 8 to 64 hex digits as `argus keys list` shows, got {key_id_prefix!r}",
                parameter="key_id",
            )
        found = [info for digest, info in self._keys.items() if digest.hex().startswith(prefix)]
        if not found:
            raise NotFound(f"no API key with id {prefix}")
        if len(found) > 1:
            raise InvalidArgument(f"key id {prefix} is ambiguous: give more digits", parameter="key_id")
        return found[0]

    @property
    def known_keys(self) -> int:
        """Keys that authenticate (created, not revoked)."""
        return sum(1 for info in self._keys.values() if not info.revoked)
