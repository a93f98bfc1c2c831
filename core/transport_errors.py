"""The one table mapping Argus errors to gRPC status codes and HTTP statuses."""

from __future__ import annotations

import grpc

from core.errors import (
    ArgusError,
    Conflict,
    CorruptData,
    DeadlineExceeded,
    FailedPrecondition,
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
    (Conflict, grpc.StatusCode.ABORTED, 409),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION, 400),
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


PARAMETER_METADATA_KEY = "argus-parameter"
"""gRPC trailing metadata naming the request field an INVALID_ARGUMENT is about (HTTP puts it
in the body's `parameter`)."""


def is_server_fault(exc: BaseException) -> bool:
    """Whether the error is ours rather than the caller's (worth a log line with a traceback)."""
    return http_status(exc) >= 500 and not isinstance(exc, DeadlineExceeded)


def grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """Code, details and trailing metadata of a gRPC answer to `exc`."""
    trailing: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, InvalidArgument) and exc.parameter:
        trailing = ((PARAMETER_METADATA_KEY, exc.parameter),)
    return grpc_code(exc), public_message(exc), trailing


def http_error(exc: BaseException) -> tuple[int, dict[str, str], dict[str, str] | None]:
    """Status, JSON body (`{"error": ..., "parameter": ...}`) and extra headers of an HTTP
    answer to `exc`."""
    body = {"error": public_message(exc)}
    if isinstance(exc, InvalidArgument) and exc.parameter:
        body["parameter"] = exc.parameter
    headers = {"WWW-Authenticate": 'Bearer realm="argus"'} if isinstance(exc, Unauthenticated) else None
    return http_status(exc), body, headers
