"""One error tree for Argus.

Every error says whether retrying the same operation can help (`retryable`). Adapters
translate library errors into these with `raise ... from exc`; each transport maps them to
gRPC / HTTP codes in one table (see `core/transport_errors.py`).
"""

from __future__ import annotations


class ArgusError(Exception):
    """Root of every error Argus raises on purpose."""

    retryable: bool = False


class InvalidArgument(ArgusError):
    """The request itself is wrong; the message names the offending parameter."""

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class Unauthenticated(ArgusError):
    """No API key, or a key that is unknown or revoked."""


class PermissionDenied(ArgusError):
    """The key is valid but may not do this."""


class NotFound(ArgusError):
    """The thing asked for does not exist (for this tenant)."""


class Conflict(ArgusError):
    """A change was made against a version that is no longer current (someone else changed
    the same thing first), or would overwrite what belongs to someone else. Re-read, decide,
    retry: retrying the same request as-is won't help."""


class FailedPrecondition(ArgusError):
    """The system is not in a state where this can be done (e.g. re-creating a revoked key)."""


class ResourceExhausted(ArgusError):
    """A limit was hit (batch size, series limit, query size). Retrying as-is won't help."""


class Unavailable(ArgusError):
    """A dependency is down or overloaded; the same call may succeed later."""

    retryable = True


class StorageError(ArgusError):
    """A store or log failed while doing something; the message says what."""

    retryable = True


class CorruptData(ArgusError):
    """Stored bytes do not decode (unknown codec version, truncated chunk...)."""


class UpgradeNeeded(ArgusError):
    """Stored data is of a newer format or schema version than this build understands: it
    is valid, so it is neither skipped nor quarantined; a newer Argus reads it."""


class DeadlineExceeded(ArgusError):
    """An operation ran past its time limit and was stopped (a query over its timeout);
    the message says how to make it fit. Retrying the same request as-is won't help."""
