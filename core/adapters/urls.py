"""Adapters chosen by URL: `sqlite:///relative.db`, `sqlite:////absolute.db` (SQLAlchemy's
convention). `kafka://`, `dynamodb://` and `s3://` arrive with the scale-out work."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from core.errors import InvalidArgument
from core.model import DEFAULT_TIERS, Tier
from core.ports import EventLog, HotStore


def sqlite_path(url: str, *, parameter: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme != "sqlite" or not parsed.path.startswith("/") or len(parsed.path) < 2:
        raise InvalidArgument(
            f"{parameter}: expected sqlite:///relative/path.db or sqlite:////absolute/path.db, got {url!r}",
            parameter=parameter,
        )
    return Path(parsed.path[1:])


def _unsupported(url: str, parameter: str) -> InvalidArgument:
    scheme = urlparse(url).scheme or "(none)"
    return InvalidArgument(
        f"{parameter}: scheme {scheme!r} of {url!r} is not supported by this build (supported: sqlite)",
        parameter=parameter,
    )


def open_event_log(url: str) -> EventLog:
    if url.startswith("sqlite:"):
        from core.adapters.sqlite_event_log import SqliteEventLog

        return SqliteEventLog(sqlite_path(url, parameter="event_log"))
    raise _unsupported(url, "event_log")


def open_hot_store(url: str, *, tiers: Sequence[Tier] = DEFAULT_TIERS) -> HotStore:
    if url.startswith("sqlite:"):
        from core.adapters.sqlite_hot_store import SqliteHotStore

        return SqliteHotStore(sqlite_path(url, parameter="hot_store"), tiers=tiers)
    raise _unsupported(url, "hot_store")
