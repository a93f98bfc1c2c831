"""The one table mapping Argus errors to gRPC status codes and HTTP statuses."""

from __future__ import annotations

import grpc

from core.errors import (
    ArgusError,
    CorruptData,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StorageError,
    Unauthenticated,
    Unavailable,
)

# (error class, gRPC code, HTTP status); the first matching class wins.
_TABLE: tuple[tuple[type[ArgusError], grpc.StatusCode, int], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, 400),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, 401),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, 403),
    (NotFound, grpc.StatusCode.NOT_FOUND, 404),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    # As Prometheus answers a query over its timeout: 503 (the server gave up, not the client).
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED, 503),
    (Unavailable, grpc.StatusCode.UNAVAILABLE, 503),
    (StorageError, grpc.StatusCode.UNAVAILABLE, 503),
    (CorruptData, grpc.StatusCode.DATA_LOSS, 500),
)


def grpc_code(exc: BaseException) -> grpc.StatusCode:
    for cls, code, _ in _TABLE:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def http_status(exc: BaseException) -> int:
    for cls, _, status in _TABLE:
        if isinstance(exc, cls):
            return status
    return 500


def public_message(exc: BaseException) -> str:
    """What a client may see: our own errors verbatim, anything else generic (it is logged)."""
    return str(exc) if isinstance(exc, ArgusError) else "internal error (see server log)"
