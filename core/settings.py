"""Settings: one place that reads the environment (ARGUS_*) and flags.

Keyword-only, with units in the names. Every module gets the slice it needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.events import DEFAULT_SAMPLE_PARTITIONS
from core.model import DAY_MS, DEFAULT_TIERS, MINUTE_MS, Tier


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestLimits:
    max_batch_samples: int = 1_000_000
    max_message_bytes: int = 16 * 1024 * 1024
    max_series_per_tenant: int = 100_000
    max_future_skew_ms: int = 10 * MINUTE_MS
    max_labels: int = 16
    max_metric_name_chars: int = 200
    max_label_value_bytes: int = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    data_dir: Path = Path(".argus")
    event_log_url: str = ""
    hot_store_url: str = ""
    sample_partitions: int = DEFAULT_SAMPLE_PARTITIONS
    ingest_addr: str = "127.0.0.1:50051"
    query_addr: str = "127.0.0.1:50052"
    http_addr: str = "127.0.0.1:8080"
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    limits: IngestLimits = field(default_factory=IngestLimits)
    flush_interval_ms: int = 500
    retention_check_interval_ms: int = 10 * MINUTE_MS
    applied_event_memory_ms: int = 7 * DAY_MS
    collector_interval_s: float = 5.0
    region: str = "local"

    def resolved(self) -> Settings:
        """Fill URLs that default to files in the data dir."""
        # An absolute data dir gives sqlite:////abs/..., a relative one sqlite:///rel/...
        return replace(
            self,
            event_log_url=self.event_log_url or f"sqlite:///{self.data_dir / 'events.db'}",
            hot_store_url=self.hot_store_url or f"sqlite:///{self.data_dir / 'hot.db'}",
        )


def settings_from_env(**overrides: object) -> Settings:
    """Settings from ARGUS_* environment variables, then explicit (non-None) overrides."""
    env = os.environ
    values: dict[str, object] = {}
    if "ARGUS_DATA_DIR" in env:
        values["data_dir"] = Path(env["ARGUS_DATA_DIR"])
    for name in ("event_log_url", "hot_store_url", "ingest_addr", "query_addr", "http_addr", "region"):
        key = "ARGUS_" + name.upper()
        if key in env:
            values[name] = env[key]
    if "ARGUS_SAMPLE_PARTITIONS" in env:
        values["sample_partitions"] = int(env["ARGUS_SAMPLE_PARTITIONS"])
    if "ARGUS_FLUSH_INTERVAL_MS" in env:
        values["flush_interval_ms"] = int(env["ARGUS_FLUSH_INTERVAL_MS"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values).resolved()  # type: ignore[arg-type]
