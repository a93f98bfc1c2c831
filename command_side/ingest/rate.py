"""Per-tenant ingest rate limit: a token bucket of samples (and observations) per second.

A batch takes as many tokens as it holds samples and observations (its weight for
`max_batch_samples`), all or none: a batch is never half accepted for lack of tokens. The
bucket refills continuously at the rate, up to the burst. Time comes from the caller (ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_ms: int


class IngestRateLimiter:
    def __init__(self, *, samples_per_s: float, burst_samples: int) -> None:
        """`samples_per_s` <= 0: no limit (every take succeeds)."""
        self.samples_per_s = samples_per_s
        self.burst_samples = burst_samples
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.samples_per_s > 0

    def take(self, tenant: str, samples: int, now_ms: int) -> float:
        """Take `samples` tokens of `tenant`'s bucket: 0.0 when taken, else the seconds until
        the bucket will hold them (inf when more than the burst: they never will)."""
        if not self.enabled:
            return 0.0
        if samples > self.burst_samples:
            return math.inf
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = _Bucket(tokens=float(self.burst_samples), updated_ms=now_ms)
        elapsed_ms = max(0, now_ms - bucket.updated_ms)  # a clock stepping back adds nothing
        bucket.tokens = min(float(self.burst_samples), bucket.tokens + elapsed_ms * self.samples_per_s / 1000.0)
        bucket.updated_ms = max(bucket.updated_ms, now_ms)
        if bucket.tokens >= samples:
            bucket.tokens -= samples
            return 0.0
        return (samples - bucket.tokens) / self.samples_per_s
