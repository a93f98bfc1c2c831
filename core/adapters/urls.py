"""Adapters chosen by URL: `sqlite:///relative.db`, `sqlite:////absolute.db` (SQLAlchemy's
convention). `kafka://`, `dynamodb://` and `s3://` arrive with the scale-out work."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from core.adapters.log_retention import LogRetention
from core.errors import InvalidArgument
from core.model import DEFAULT_TIERS, Tier
from core.ports import AlertReadModelStore, ColdStore, EventLog, HotStore


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


def open_event_log(url: str, *, retention: LogRetention | None = None) -> EventLog:
    """`retention` (LogRetention.from_settings): enforced by the embedded log, set as topic
    configs on Kafka."""
    if url.startswith("sqlite:"):
        from core.adapters.sqlite_event_log import SqliteEventLog

        return SqliteEventLog(sqlite_path(url, parameter="event_log"), retention=retention)
    if url.startswith("kafka:"):
        from core.adapters.kafka_event_log import KafkaEventLog

        return KafkaEventLog.from_url(url, retention=retention)
    raise _unsupported(url, "event_log")


def open_hot_store(url: str, *, tiers: Sequence[Tier] = DEFAULT_TIERS) -> HotStore:
    if url.startswith("sqlite:"):
        from core.adapters.sqlite_hot_store import SqliteHotStore

        return SqliteHotStore(sqlite_path(url, parameter="hot_store"), tiers=tiers)
    if url.startswith("dynamodb:"):
        from core.adapters.dynamodb_hot_store import DynamoDBHotStore

        return DynamoDBHotStore.from_url(url, tiers=tiers)
    raise _unsupported(url, "hot_store")


def open_alert_read_models(*, hot_store_url: str, event_log_url: str, data_dir: Path) -> AlertReadModelStore:
    """Beside the hot store (decision 0059): in its DynamoDB tables' prefix (one table set
    per deployment, shared by every query process), else `alerts.db` in the data dir."""
    if hot_store_url.startswith("dynamodb:"):
        from core.adapters.dynamodb_alert_read_models import DynamoDBAlertReadModels

        return DynamoDBAlertReadModels.from_url(hot_store_url, source=event_log_url)
    from core.adapters.sqlite_alert_read_models import ALERTS_DB, SqliteAlertReadModels

    return SqliteAlertReadModels(data_dir / ALERTS_DB, source=event_log_url)


def open_cold_store(url: str) -> ColdStore:
    """`s3://bucket/prefix?endpoint=http://host:port&region=us-east-1` (credentials from the
    standard AWS chain), `file:///absolute/folder`, or a plain folder path."""
    from core.adapters.cold_parquet import FolderColdStore, S3ColdStore

    parsed = urlparse(url)
    if parsed.scheme == "s3":
        params = parse_qs(parsed.query)
        unknown = sorted(set(params) - {"endpoint", "region"})
        if not parsed.netloc or unknown:
            raise InvalidArgument(
                f"cold_store: expected s3://bucket/prefix?endpoint=URL&region=NAME, got {url!r}"
                + (f" (unknown parameter {', '.join(unknown)})" if unknown else ""),
                parameter="cold_store",
            )
        return S3ColdStore(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint_url=params.get("endpoint", [None])[0],
            region=params.get("region", [None])[0],
        )
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise InvalidArgument(f"cold_store: expected file:///absolute/folder, got {url!r}", parameter="cold_store")
        return FolderColdStore(Path(parsed.path))
    if parsed.scheme == "" and url:
        return FolderColdStore(Path(url))
    scheme = parsed.scheme or "(none)"
    raise InvalidArgument(
        f"cold_store: scheme {scheme!r} of {url!r} is not supported (supported: s3, file, or a folder path)",
        parameter="cold_store",
    )
