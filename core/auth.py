"""API keys: tenants are decided by the key a request carries.

Keys are never stored, only their SHA-256. Keys are configuration events on the config
topic (`ApiKeyCreated` / `ApiKeyRevoked`); every process that authenticates follows that
topic into an in-memory `ApiKeyRegistry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from typing import Protocol

from contracts.argus.events.v1 import events_pb2
from core.errors import Unauthenticated
from core.events import CONFIG_TOPIC, config_records, decode_payload, make_event
from core.ports import Event, EventLog

log = logging.getLogger(__name__)

KEY_PREFIX = "argus_"


class Authenticator(Protocol):
    def tenant_for(self, api_key: str | None) -> str:
        """The tenant of a key; raises Unauthenticated for a missing, unknown or revoked key."""
        ...


def hash_key(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def bearer_token(header_value: str | None) -> str | None:
    """The key from an `authorization: Bearer <key>` value (None when absent or malformed)."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def register_key(events: EventLog, api_key: str, *, tenant: str, name: str, now_ms: int) -> None:
    """Append ApiKeyCreated for a key. Idempotent: the same key and tenant give the same event id."""
    digest = hash_key(api_key)
    payload = events_pb2.ApiKeyCreated(key_sha256=digest, tenant=tenant, name=name)
    event = make_event(payload, identity=digest + tenant.encode(), partition_key=digest, time_ms=now_ms)
    await events.append(CONFIG_TOPIC, [(0, event)])


class ApiKeyRegistry:
    """Key hash -> tenant, built by following the config topic."""

    def __init__(self, events: EventLog, *, refresh_interval_s: float = 1.0) -> None:
        self._events = events
        self._tenants: dict[bytes, str] = {}
        self._next_offset = 0
        self._refresh_interval_s = refresh_interval_s
        self._last_refresh = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Apply config events appended since the last refresh."""
        async with self._lock:
            async for record in config_records(self._events, self._next_offset):
                self._apply(record.event)
                self._next_offset = record.offset + 1
            self._last_refresh = time.monotonic()

    def _apply(self, event: Event) -> None:
        type_name = event.type
        if type_name == events_pb2.ApiKeyCreated.DESCRIPTOR.full_name:
            created = decode_payload(event, events_pb2.ApiKeyCreated)
            self._tenants[created.key_sha256] = created.tenant
        elif type_name == events_pb2.ApiKeyRevoked.DESCRIPTOR.full_name:
            revoked = decode_payload(event, events_pb2.ApiKeyRevoked)
            self._tenants.pop(revoked.key_sha256, None)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the config topic until `stop` is set."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:  # keep serving with the keys we know
                log.exception("refresh api keys from config topic")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._refresh_interval_s)

    def tenant_for(self, api_key: str | None) -> str:
        if api_key is None:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>'")
        tenant = self._tenants.get(hash_key(api_key))
        if tenant is None:
            raise Unauthenticated("unknown or revoked API key")
        return tenant

    @property
    def known_keys(self) -> int:
        return len(self._tenants)
