"""Configuration commands: what a user asks to change (imperative), as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateApiKey:
    """Bind a new key to a tenant. The same command twice changes nothing; the same key for
    another tenant is refused (a key is never re-bound)."""

    api_key: str = field(repr=False)  # never in a repr, a log line or a traceback
    tenant: str
    name: str = ""
    author: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeApiKey:
    """Withdraw a key for good. Revoking a revoked key changes nothing."""

    key_id: str  # its id (8+ hex digits of its SHA-256) as `argus keys list` shows
    author: str
    expected_version: int | None = None  # the version the caller saw; None: the current one


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChanged:
    """The result of a config command."""

    entity: str
    version: int  # the entity's version after the command
    changed: bool  # False: it was already so (the command was a no-op)
