"""What one query may cost: a time limit and a decode budget, and the token that enforces both.

A query runs partly on the event loop (index and store I/O) and partly in a worker thread
(matching, decoding, merging, aggregating). Python cannot stop a thread from outside, so the
worker checks a `QueryToken` between units of work of bounded size (one decode batch, one
merge): a deadline or a client that went away stops it within one unit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from core.errors import ArgusError, DeadlineExceeded, InvalidArgument, ResourceExhausted
from core.settings import Settings

DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_MAX_POINTS_DECODED = 20_000_000
"""About 4 s of decoding on one core of the 2026 dev machine; memory does not grow with it
(the aggregation streams), only the compressed chunks held meanwhile (~1.4 bytes a point)."""
DEFAULT_WORKERS = 2

NARROWING_HINT = (
    "narrow the query: a shorter range (start/end), a coarser period (period=5m, 1h or 1d), "
    "or more where= filters to match fewer series"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryLimits:
    """Per-query bounds of a QueryEngine.

    `timeout_ms`: wall time from arrival to answer, waiting for a worker included.
    `max_points_decoded`: stored points one query may read (every point of every chunk it
    touches, cached or not, hot and cold), checked from chunk headers before decoding.
    `workers`: threads doing the CPU part of queries; more queries wait for one.
    """

    timeout_ms: int = DEFAULT_TIMEOUT_MS
    max_points_decoded: int = DEFAULT_MAX_POINTS_DECODED
    workers: int = DEFAULT_WORKERS

    def __post_init__(self) -> None:
        for name in ("timeout_ms", "max_points_decoded", "workers"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(
                    f"query_{name} must be positive, got {getattr(self, name)}", parameter=f"query_{name}"
                )

    @staticmethod
    def from_settings(settings: Settings) -> QueryLimits:
        return QueryLimits(
            timeout_ms=settings.query_timeout_ms,
            max_points_decoded=settings.query_max_points_decoded,
            workers=settings.query_workers,
        )


class QueryToken:
    """Deadline and cancellation of one query, shared by the loop and its worker thread."""

    def __init__(self, *, timeout_ms: int) -> None:
        self._timeout_ms = timeout_ms
        self._deadline = time.monotonic() + timeout_ms / 1000.0
        self._cancelled = threading.Event()
        self._reason: ArgusError = DeadlineExceeded("query cancelled")

    @property
    def remaining_s(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def cancel(self, reason: ArgusError | None = None) -> None:
        """Stop the work at its next check, raising `reason` there (default: DeadlineExceeded
        "query cancelled", for a caller that is gone or gave up)."""
        if reason is not None and not self._cancelled.is_set():
            self._reason = reason
        self._cancelled.set()

    def check(self) -> None:
        """Raise DeadlineExceeded when the query was cancelled or ran out of time."""
        if self._cancelled.is_set():
            raise self._reason
        if time.monotonic() >= self._deadline:
            raise self.expired()

    def expired(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"query ran longer than the limit of {self._timeout_ms / 1000:g} s and was stopped; {NARROWING_HINT}"
        )


class DecodeBudget:
    """Points a query may still read; `spend` refuses past the limit (before the decode)."""

    def __init__(self, limit: int, *, what: str) -> None:
        self._limit = limit
        self._spent = 0
        self._what = what

    @property
    def spent(self) -> int:
        return self._spent

    def spend(self, points: int) -> None:
        self._spent += points
        if self._spent > self._limit:
            raise ResourceExhausted(
                f"query would read more than {self._limit:,} stored points ({self._what}), over the limit "
                f"of {self._limit:,} points per query; {NARROWING_HINT}"
            )
