"""Which API key a request carries: one reading for gRPC metadata and HTTP headers alike.

gRPC delivers metadata keys lower-cased, HTTP header names arrive in any case, and a proxy
may rewrite either; every transport (ingest and query, gRPC and HTTP, gRPC-web next) reads
the key through `api_key_from_metadata` so they can never disagree on who is asking.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.auth import Authenticator, bearer_token

AUTHORIZATION = "authorization"

Metadata = Iterable[tuple[str, str | bytes]]
"""gRPC `invocation_metadata()` or HTTP `headers.items()`: (name, value) pairs."""


def api_key_from_metadata(metadata: Metadata | None) -> str | None:
    """The key of the first `authorization: Bearer <key>` entry (name compared without regard
    to case; a bytes value is read as UTF-8). None when there is none or it is not a bearer
    credential: the authenticator then answers "missing API key"."""
    for name, value in metadata or ():
        if name.lower() == AUTHORIZATION:
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            return bearer_token(text)
    return None


def tenant_from_metadata(authenticator: Authenticator, metadata: Metadata | None) -> str:
    """The tenant of the request's key; raises Unauthenticated (core/errors) otherwise."""
    return authenticator.tenant_for(api_key_from_metadata(metadata))
