"""Event log retention: what the adapters are told to keep (docs/decisions/0020-event-log-retention.md).

The embedded log enforces it itself (`SqliteEventLog.enforce_retention`, periodically), never
past a record some consumer group has not committed; Kafka gets it as topic configs at
creation (`retention.ms`, `retention.bytes`) and the brokers enforce it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidArgument
from core.events import SAMPLES_TOPIC
from core.model import longest_retention_ms
from core.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRetention:
    """Retention of the topics in `topics` (others, e.g. the config topic that followers read
    from offset 0, are kept forever). 0 for `retention_ms` / `retention_bytes`: no limit."""

    topics: frozenset[str] = frozenset({SAMPLES_TOPIC})
    retention_ms: int = 0
    """Records appended longer ago than this may go (by append time, `Event.time_ms`)."""
    retention_bytes: int = 0
    """Stored bytes a topic keeps at most, split evenly across its partitions (Kafka's
    `retention.bytes` is per partition)."""
    dedup_window_ms: int = 0
    """How long the embedded log keeps an event's id after its append (0: forever). A
    re-append within the window is dropped even when the payload already left the log."""
    check_interval_ms: int = 10 * 60_000

    def __post_init__(self) -> None:
        for name in ("retention_ms", "retention_bytes", "dedup_window_ms"):
            if getattr(self, name) < 0:
                raise InvalidArgument(f"event log retention: {name} must be >= 0 (0: no limit)", parameter=name)
        if self.check_interval_ms <= 0:
            raise InvalidArgument("event log retention: check_interval_ms must be > 0", parameter="check_interval_ms")

    @property
    def enabled(self) -> bool:
        """Whether anything is ever deleted (records, or ids past the dedup window)."""
        return bool(self.retention_ms or self.retention_bytes)

    def partition_limit_bytes(self, partitions: int) -> int:
        """The byte limit of one partition (0: none)."""
        return -(-self.retention_bytes // max(1, partitions)) if self.retention_bytes else 0

    @classmethod
    def from_settings(cls, settings: Settings) -> LogRetention:
        """Retention of the samples topic from the settings. Ids are kept as long as ingest
        accepts the samples they carried (the longest tier retention plus the allowed clock
        skew): a batch re-sent later has only samples ingest rejects as too old, so it is
        never counted twice (decision 0020)."""
        return cls(
            retention_ms=settings.event_log_retention_ms,
            retention_bytes=settings.event_log_retention_bytes,
            dedup_window_ms=dedup_window_ms(settings),
            check_interval_ms=settings.retention_check_interval_ms,
        )


def dedup_window_ms(settings: Settings) -> int:
    return longest_retention_ms(settings.tiers) + settings.limits.max_future_skew_ms


def kafka_topic_configs(topic: str, partitions: int, retention: LogRetention | None) -> dict[str, str]:
    """Retention configs of a topic created on Kafka. Topics outside `retention.topics` keep
    everything (`-1`): the config topic is replayed from offset 0 by every follower, and a
    broker default (often 7 days) would silently drop API keys. A retained topic with a 0
    limit gets the broker's default for that limit."""
    retention = retention or LogRetention()
    if topic not in retention.topics:
        return {"retention.ms": "-1", "retention.bytes": "-1"}
    configs: dict[str, str] = {}
    if retention.retention_ms:
        configs["retention.ms"] = str(retention.retention_ms)
    if retention.retention_bytes:
        configs["retention.bytes"] = str(retention.partition_limit_bytes(partitions))
    return configs
