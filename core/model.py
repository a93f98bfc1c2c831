"""Series identity, metric kinds and rollup tiers: the vocabulary every side shares."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

DEFAULT_TENANT = "default"
SELF_TENANT = "_argus"
"""Reserved: `argus up` writes its own metrics here (docs/metrics.md). Tenant names given by
users must start with a letter or digit, so no user key can be bound to it."""
DEFAULT_REGION = "local"


class MetricKind(IntEnum):
    """Mirrors argus.metrics.v1.MetricKind."""

    COUNTER = 1
    GAUGE = 2
    TIMER = 3
    DISTINCT = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> MetricKind:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            choices = ", ".join(k.label for k in cls)
            raise ValueError(f"unknown metric kind {text!r} (expected one of: {choices})") from None


Labels = tuple[tuple[str, str], ...]


def canonical_labels(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    """Labels sorted by name: the order-free form used for identity and display."""
    items = labels.items() if isinstance(labels, Mapping) else labels
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesKey:
    """Identity of a series: tenant + region + metric + sorted labels."""

    tenant: str
    region: str
    metric: str
    labels: Labels

    @property
    def series_id(self) -> int:
        return series_id(self.tenant, self.region, self.metric, self.labels)


SERIES_ID_VERSION = 2
"""Version of the series id's canonical encoding. Ids of different versions differ for the
same series, so a data dir written with another version must be migrated or refused, never
mixed (version 1 joined `name=value` with NUL separators, which let two label sets collide)."""

_SERIES_ID_DOMAIN = b"argus.series.v2\x00"


def canonical_series_bytes(tenant: str, region: str, metric: str, labels: Labels) -> bytes:
    """The unambiguous byte form a series id hashes (docs/formats/series-id.md).

    Every string is UTF-8 behind its byte length (4 bytes, big-endian) and the label count
    comes before the labels, so no choice of strings (NUL, "=" or anything else in them) can
    make two different series read the same. `labels` must be sorted by name
    (`canonical_labels`)."""
    parts = [_SERIES_ID_DOMAIN, struct.pack(">I", len(labels))]
    for text in (tenant, region, metric, *(x for pair in labels for x in pair)):
        raw = text.encode()
        parts.append(struct.pack(">I", len(raw)))
        parts.append(raw)
    return b"".join(parts)


def series_id(tenant: str, region: str, metric: str, labels: Labels) -> int:
    """Stable signed 64-bit id of a series: the first 8 bytes of SHA-256 of
    `canonical_series_bytes` (version SERIES_ID_VERSION). The one place ids are computed.

    Signed so that it fits SQLite INTEGER and DynamoDB numbers without conversion.
    """
    digest = hashlib.sha256(canonical_series_bytes(tenant, region, metric, labels)).digest()
    (sid,) = struct.unpack(">q", digest[:8])
    return int(sid)


def partition_of(sid: int, partitions: int) -> int:
    """Partition of a series in the samples topic: all samples of a series go to one partition."""
    return (sid & 0xFFFFFFFFFFFFFFFF) % partitions


SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True, slots=True, kw_only=True)
class Tier:
    """One rollup tier: points of `step_ms`, stored in chunks covering `chunk_span_ms`."""

    name: str
    step_ms: int
    chunk_span_ms: int
    retention_ms: int

    @property
    def points_per_chunk(self) -> int:
        return self.chunk_span_ms // self.step_ms

    def chunk_start(self, ts_ms: int) -> int:
        return ts_ms - ts_ms % self.chunk_span_ms


# Chunk spans keep ~360-1,440 points per chunk: big enough to compress well, small enough
# that rewriting the open chunk on each flush stays cheap.
DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier(name="5s", step_ms=5 * SECOND_MS, chunk_span_ms=HOUR_MS, retention_ms=7 * DAY_MS),
    Tier(name="1m", step_ms=MINUTE_MS, chunk_span_ms=12 * HOUR_MS, retention_ms=35 * DAY_MS),
    Tier(name="5m", step_ms=5 * MINUTE_MS, chunk_span_ms=2 * DAY_MS, retention_ms=90 * DAY_MS),
    Tier(name="1h", step_ms=HOUR_MS, chunk_span_ms=30 * DAY_MS, retention_ms=400 * DAY_MS),
    Tier(name="1d", step_ms=DAY_MS, chunk_span_ms=365 * DAY_MS, retention_ms=5 * 365 * DAY_MS),
)

TIER_BY_NAME: dict[str, Tier] = {t.name: t for t in DEFAULT_TIERS}


def longest_retention_ms(tiers: Iterable[Tier] = DEFAULT_TIERS) -> int:
    return max(t.retention_ms for t in tiers)
