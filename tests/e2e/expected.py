"""Known data and the independent reference computation the end-to-end suite checks Argus against.

Nothing here imports Argus' point, sketch, planner or query code: the reference buckets raw
samples with plain numpy (bucket = ts - ts % step, buckets aligned to the epoch), merges the
series a query selects by the documented rules (a missing label reads as "", "region" is a
label, `group_by=*` keeps every series apart with all its labels and its region) and reads the
aggregation straight off the raw values: exact sums, counts, extremes and last values, the
rank-based lower quantile (numpy `method="lower"`: rank floor(q * (n - 1))) and the exact size
of the union of distinct values. Only the wire contract is shared (protobuf messages, and the
distinct-value hash, re-implemented here from its documented definition).

The data is fixed by a seed; only its timestamps move with "now", so that they stay inside the
validation window (no more than 10 min in the future, within retention).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from contracts.argus.metrics.v1 import metrics_pb2

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
STEP_MS: Mapping[str, int] = {"5s": 5 * SECOND_MS, "1m": MINUTE_MS, "5m": 5 * MINUTE_MS, "1h": HOUR_MS, "1d": DAY_MS}

KINDS: Mapping[str, int] = {
    "counter": metrics_pb2.METRIC_KIND_COUNTER,
    "gauge": metrics_pb2.METRIC_KIND_GAUGE,
    "timer": metrics_pb2.METRIC_KIND_TIMER,
    "distinct": metrics_pb2.METRIC_KIND_DISTINCT,
}

# Tolerances of the comparison: sketches have documented error bounds, everything else is exact
# up to float summation order.
EXACT_REL_TOL = 1e-9
QUANTILE_REL_TOL = 0.02
DISTINCT_REL_TOL = 0.03
# Below ~70 values one register collision (two values in one of the 16,384 registers, which
# HLL cannot tell apart) already costs more than 3 %: small unions may be off by up to 2.
DISTINCT_ABS_TOL = 2.0

LabelKey = frozenset[tuple[str, str]]
Result = dict[LabelKey, dict[int, float]]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


# ------------------------------------------------------------------------------ the data


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesSpec:
    metric: str
    kind: str
    region: str
    labels: tuple[tuple[str, str], ...]

    @property
    def query_labels(self) -> dict[str, str]:
        """Labels as queries see them: the series' labels plus its region."""
        return {**dict(self.labels), "region": self.region}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One sample of series `series` (an index into Dataset.series). `value` for counters
    (delta) and gauges; `observations` for timers; `items` (distinct values) for distinct."""

    series: int
    ts_ms: int
    value: float = 0.0
    observations: tuple[float, ...] = ()
    items: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)  # no slots: `_columns` is cached in the instance dict
class Dataset:
    series: tuple[SeriesSpec, ...]
    samples: tuple[Sample, ...]

    def metric_names(self) -> list[str]:
        return sorted({s.metric for s in self.series})

    def kind_of(self, metric: str) -> str:
        return next(s.kind for s in self.series if s.metric == metric)

    def span_ms(self) -> tuple[int, int]:
        """[first, last] sample time."""
        ts = [s.ts_ms for s in self.samples]
        return min(ts), max(ts)

    @cached_property
    def _columns(self) -> _Columns:
        return _Columns.of(self)

    def with_samples(self, samples: Iterable[Sample]) -> Dataset:
        return Dataset(series=self.series, samples=tuple(samples))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Columns:
    """One row per value (counter/gauge sample, timer observation, distinct item)."""

    sid: I64
    ts: I64
    value: F64
    items: list[str]

    @staticmethod
    def of(ds: Dataset) -> _Columns:
        sid: list[int] = []
        ts: list[int] = []
        value: list[float] = []
        items: list[str] = []
        for s in ds.samples:
            kind = ds.series[s.series].kind
            if kind in ("counter", "gauge"):
                sid.append(s.series)
                ts.append(s.ts_ms)
                value.append(s.value)
                items.append("")
            elif kind == "timer":
                sid.extend([s.series] * len(s.observations))
                ts.extend([s.ts_ms] * len(s.observations))
                value.extend(s.observations)
                items.extend([""] * len(s.observations))
            else:
                sid.extend([s.series] * len(s.items))
                ts.extend([s.ts_ms] * len(s.items))
                value.extend([0.0] * len(s.items))
                items.extend(s.items)
        return _Columns(
            sid=np.asarray(sid, dtype=np.int64),
            ts=np.asarray(ts, dtype=np.int64),
            value=np.asarray(value, dtype=np.float64),
            items=items,
        )


def _floor(ts: int, step: int) -> int:
    return ts - ts % step


@dataclass(frozen=True, slots=True, kw_only=True)
class Windows:
    """Where the generated data lies: a coarse stretch (one sample per 5 min per series over
    26 h, ending ~1 h ago) and a dense one (one per 5 s over the last ~10 min)."""

    coarse_start_ms: int
    coarse_end_ms: int
    dense_start_ms: int
    dense_end_ms: int

    @property
    def full_range(self) -> tuple[int, int]:
        """Whole days covering every sample (valid for every tier)."""
        return _floor(self.coarse_start_ms, DAY_MS), _floor(self.dense_end_ms, DAY_MS) + DAY_MS


def windows(now_ms: int) -> Windows:
    coarse_end = _floor(now_ms - HOUR_MS, 5 * MINUTE_MS)
    dense_end = _floor(now_ms - MINUTE_MS, MINUTE_MS)
    return Windows(
        coarse_start_ms=coarse_end - 26 * HOUR_MS,
        coarse_end_ms=coarse_end,
        dense_start_ms=dense_end - 10 * MINUTE_MS,
        dense_end_ms=dense_end,
    )


PIPELINE_SERIES: tuple[SeriesSpec, ...] = (
    *(
        SeriesSpec(metric="e2e_http_requests", kind="counter", region=r, labels=(("host", h), ("status", st)))
        for r in ("us-east-1", "eu-west-1", "ap-south-1")
        for h in ("a", "b")
        for st in ("200", "500")
    ),
    *(
        SeriesSpec(
            metric="e2e_cpu_percent",
            kind="gauge",
            region=r,
            # Only host a carries `team`: queries must read the missing label as "".
            labels=(("host", h), ("team", "core")) if h == "a" else (("host", h),),
        )
        for r in ("us-east-1", "eu-west-1", "ap-south-1")
        for h in ("a", "b", "c")
    ),
    *(
        SeriesSpec(metric="e2e_latency_ms", kind="timer", region=r, labels=(("endpoint", e),))
        for r in ("us-east-1", "eu-west-1")
        for e in ("/api", "/login")
    ),
    *(
        SeriesSpec(metric="e2e_active_users", kind="distinct", region=r, labels=(("app", a),))
        for r in ("us-east-1", "ap-south-1")
        for a in ("web", "ios")
    ),
)

USER_POOL = 3_000


def _random_sample(rng: np.random.Generator, index: int, spec: SeriesSpec, ts: int) -> Sample:
    if spec.kind == "counter":
        high = 8 if dict(spec.labels).get("status") == "500" else 60
        return Sample(series=index, ts_ms=ts, value=float(rng.integers(0, high)))
    if spec.kind == "gauge":
        return Sample(series=index, ts_ms=ts, value=round(float(rng.uniform(0.0, 100.0)), 2))
    if spec.kind == "timer":
        n = int(rng.integers(1, 12))
        obs = np.round(rng.lognormal(mean=3.0, sigma=1.0, size=n), 3) + 0.001
        return Sample(series=index, ts_ms=ts, observations=tuple(float(x) for x in obs))
    n = int(rng.integers(1, 20))
    users = rng.integers(0, USER_POOL, size=n)
    return Sample(series=index, ts_ms=ts, items=tuple(f"user-{int(u)}" for u in users))


def generate(
    *, now_ms: int, seed: int = 20_241_125, series: Sequence[SeriesSpec] = PIPELINE_SERIES
) -> tuple[Dataset, Windows]:
    """The pipeline data set: every series gets a coarse sample per 5 min (at a random offset
    inside each 5 min) and a dense one per 5 s (random offset inside each 5 s), so buckets of
    every tier hold several samples whose times are not aligned to anything."""
    rng = np.random.default_rng(seed)
    win = windows(now_ms)
    coarse_bases = range(win.coarse_start_ms, win.coarse_end_ms, 5 * MINUTE_MS)
    dense_bases = range(win.dense_start_ms, win.dense_end_ms, 5 * SECOND_MS)
    samples: list[Sample] = []
    for index, spec in enumerate(series):
        coarse = [
            b + int(j) for b, j in zip(coarse_bases, rng.integers(0, 5 * MINUTE_MS, len(coarse_bases)), strict=True)
        ]
        dense = [b + int(j) for b, j in zip(dense_bases, rng.integers(0, 5 * SECOND_MS, len(dense_bases)), strict=True)]
        samples.extend(_random_sample(rng, index, spec, ts) for ts in (*coarse, *dense))
    return Dataset(series=tuple(series), samples=tuple(samples)), win


def split_three_ways(ds: Dataset) -> tuple[Dataset, Dataset, Dataset]:
    """Samples of every series dealt round-robin into three parts (so every bucket of every
    series mixes samples that travelled by different paths)."""
    parts: list[list[Sample]] = [[], [], []]
    seen: dict[int, int] = {}
    for s in ds.samples:
        n = seen.get(s.series, 0)
        seen[s.series] = n + 1
        parts[n % 3].append(s)
    return ds.with_samples(parts[0]), ds.with_samples(parts[1]), ds.with_samples(parts[2])


# ------------------------------------------------------------------------------ rendering


def to_ndjson(ds: Dataset) -> bytes:
    """The samples as `argus push` NDJSON lines, in sample order."""
    lines: list[str] = []
    for s in ds.samples:
        spec = ds.series[s.series]
        record: dict[str, object] = {
            "metric": spec.metric,
            "kind": spec.kind,
            "region": spec.region,
            "labels": dict(spec.labels),
            "ts": s.ts_ms,
        }
        if spec.kind in ("counter", "gauge"):
            record["value"] = s.value
        elif spec.kind == "timer":
            record["values"] = list(s.observations)
        else:
            record["values"] = list(s.items)
        lines.append(json.dumps(record, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def distinct_hash(value: str) -> int:
    """The documented wire hash of a distinct value: BLAKE2b-64 of its UTF-8, big-endian."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


def to_batches(
    ds: Dataset,
    *,
    source: str,
    prefix: str,
    max_samples: int = 1_500,
    distinct_as_hashes: bool = False,
) -> list[metrics_pb2.SampleBatch]:
    """Sample batches with deterministic ids `<prefix>-<n>`: series in order, each cut into
    runs of at most `max_samples` samples. Distinct values travel as text or, with
    `distinct_as_hashes`, pre-hashed by the sender."""
    by_series: dict[int, list[Sample]] = {}
    for s in ds.samples:
        by_series.setdefault(s.series, []).append(s)
    batches: list[metrics_pb2.SampleBatch] = []
    current = metrics_pb2.SampleBatch()
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current.series:
            current.batch_id = f"{prefix}-{len(batches) + 1:04d}"
            current.source = source
            batches.append(current)
        current = metrics_pb2.SampleBatch()
        size = 0

    for index in sorted(by_series):
        spec = ds.series[index]
        rows = by_series[index]
        for lo in range(0, len(rows), max_samples):
            part = rows[lo : lo + max_samples]
            if size + len(part) > max_samples:
                flush()
            out = current.series.add(metric=spec.metric, kind=KINDS[spec.kind], region=spec.region)
            for name, value in spec.labels:
                out.labels.add(name=name, value=value)
            out.timestamps_ms.extend(s.ts_ms for s in part)
            if spec.kind in ("counter", "gauge"):
                out.values.extend(s.value for s in part)
            elif spec.kind == "timer":
                out.observation_counts.extend(len(s.observations) for s in part)
                out.observations.extend(x for s in part for x in s.observations)
            else:
                out.observation_counts.extend(len(s.items) for s in part)
                if distinct_as_hashes:
                    out.distinct_hashes.extend(distinct_hash(x) for s in part for x in s.items)
                else:
                    out.distinct_values.extend(x for s in part for x in s.items)
            size += len(part)
    flush()
    return batches


# ------------------------------------------------------------------------------ queries

_WHERE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(!=|=~|!~|=)(.*)", re.DOTALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """One query as the user writes it over HTTP (`where` strings, `group_by` names or "*")."""

    metric: str
    agg: str
    period: str
    start_ms: int
    end_ms: int
    where: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    region: str | None = None

    def http_params(self) -> list[tuple[str, str]]:
        params = [
            ("metric", self.metric),
            ("agg", self.agg),
            ("period", self.period),
            ("start", str(self.start_ms)),
            ("end", str(self.end_ms)),
        ]
        params += [("where", w) for w in self.where]
        params += [("group_by", g) for g in self.group_by]
        if self.region:
            params.append(("region", self.region))
        return params

    def describe(self) -> str:
        parts = [f"{self.metric} agg={self.agg} period={self.period}"]
        parts += [f"where {w}" for w in self.where]
        if self.group_by:
            parts.append(f"group_by {','.join(self.group_by)}")
        if self.region:
            parts.append(f"region={self.region}")
        return " ".join(parts)


def parse_where(text: str) -> tuple[str, str, str]:
    m = _WHERE.fullmatch(text)
    if m is None:
        raise ValueError(f"bad where {text!r}")
    name, op, value = m.groups()
    return name, op, value


def _matches(labels: Mapping[str, str], name: str, op: str, value: str) -> bool:
    actual = labels.get(name, "")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    found = re.fullmatch(value, actual) is not None
    return found if op == "=~" else not found


def _quantile(agg: str) -> float | None:
    m = re.fullmatch(r"p(\d+(?:\.\d+)?)", agg)
    return float(m.group(1)) / 100.0 if m else None


def expected_result(ds: Dataset, q: Query) -> Result:
    """What the query must answer: group labels -> {bucket start ms: value}, only buckets with
    data. The step is the period's; [start, end) is widened to whole steps as documented."""
    step = STEP_MS[q.period]
    start = _floor(q.start_ms, step)
    end = -(-q.end_ms // step) * step
    conditions = [parse_where(w) for w in q.where]
    if q.region:
        conditions.append(("region", "=", q.region))
    groups: dict[LabelKey, list[int]] = {}
    for index, spec in enumerate(ds.series):
        if spec.metric != q.metric:
            continue
        labels = spec.query_labels
        if not all(_matches(labels, *c) for c in conditions):
            continue
        if "*" in q.group_by:
            key: LabelKey = frozenset(labels.items())
        else:
            key = frozenset((name, labels.get(name, "")) for name in q.group_by)
        groups.setdefault(key, []).append(index)
    cols = ds._columns
    kind = ds.kind_of(q.metric)
    out: Result = {}
    for key, members in groups.items():
        mask = np.isin(cols.sid, members) & (cols.ts >= start) & (cols.ts < end)
        if not mask.any():
            continue
        rows = np.flatnonzero(mask)
        out[key] = _aggregate(kind, q.agg, step, cols.ts[rows], cols.value[rows], [cols.items[i] for i in rows])
    return out


def _aggregate(kind: str, agg: str, step: int, ts: I64, value: F64, items: list[str]) -> dict[int, float]:
    bucket = ts - ts % step
    starts, inverse = np.unique(bucket, return_inverse=True)
    n = len(starts)
    count: F64 = np.bincount(inverse, minlength=n).astype(np.float64)
    total: F64 = np.bincount(inverse, weights=value, minlength=n).astype(np.float64)
    result: F64
    if agg == "count":
        result = count
    elif agg in ("sum", "increase"):
        result = total
    elif agg == "rate":
        result = total / (step / 1000.0)
    elif agg == "avg":
        result = total / count
    elif agg == "min":
        result = np.full(n, np.inf)
        np.minimum.at(result, inverse, value)
    elif agg == "max":
        result = np.full(n, -np.inf)
        np.maximum.at(result, inverse, value)
    elif agg == "last":
        # The latest sample wins; on equal times the larger value.
        order = np.lexsort((value, ts, inverse))
        last_row = order[np.r_[np.flatnonzero(np.diff(inverse[order])), len(order) - 1]]
        result = value[last_row]
    elif agg == "distinct":
        result = np.array([len({items[i] for i in np.flatnonzero(inverse == b)}) for b in range(n)], dtype=np.float64)
    else:
        q = _quantile(agg)
        if q is None or kind != "timer":
            raise ValueError(f"no reference for agg {agg!r} of a {kind}")
        result = np.array([np.quantile(value[inverse == b], q, method="lower") for b in range(n)], dtype=np.float64)
    return dict(zip(starts.tolist(), result.tolist(), strict=True))


def tolerance(agg: str) -> tuple[float, float]:
    """(relative, absolute) tolerance of an aggregation: a value passes within either."""
    if agg == "distinct":
        return DISTINCT_REL_TOL, DISTINCT_ABS_TOL
    if _quantile(agg) is not None:
        return QUANTILE_REL_TOL, 1e-9
    return EXACT_REL_TOL, 1e-9


def compare(actual: Result, expected: Result, agg: str, *, limit: int = 8) -> list[str]:
    """Readable differences (at most `limit` value mismatches per series), [] when equal within
    the aggregation's tolerance."""
    problems: list[str] = []
    rel, abs_tol = tolerance(agg)
    for key in sorted(set(actual) | set(expected), key=sorted):
        name = "{" + ", ".join(f"{k}={v}" for k, v in sorted(key)) + "}"
        if key not in actual:
            problems.append(f"series {name} missing ({len(expected[key])} buckets expected)")
            continue
        if key not in expected:
            problems.append(f"unexpected series {name} ({len(actual[key])} buckets)")
            continue
        got, want = actual[key], expected[key]
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        if missing:
            problems.append(f"{name}: {len(missing)} buckets missing, first at {missing[0]}")
        if extra:
            problems.append(f"{name}: {len(extra)} unexpected buckets, first at {extra[0]}")
        bad = [ts for ts in sorted(set(got) & set(want)) if not _close(got[ts], want[ts], rel, abs_tol)]
        for ts in bad[:limit]:
            problems.append(f"{name} @ {ts}: got {got[ts]!r}, expected {want[ts]!r} (tol {rel} rel, {abs_tol} abs)")
        if len(bad) > limit:
            problems.append(f"{name}: ... {len(bad) - limit} more mismatching buckets")
    return problems


def _close(got: float | None, want: float, rel: float, abs_tol: float) -> bool:
    if got is None or not math.isfinite(got):
        return False
    return math.isclose(got, want, rel_tol=rel, abs_tol=abs_tol)


def result_from_http(body: Mapping[str, object]) -> Result:
    """The HTTP answer `{"series":[{"labels":{..},"points":[[ts,v],..]}]}` as a Result."""
    out: Result = {}
    series = body.get("series")
    assert isinstance(series, list), body
    for s in series:
        key: LabelKey = frozenset(s["labels"].items())
        assert key not in out, f"two result series with labels {dict(key)}"
        out[key] = {int(ts): (float(v) if v is not None else math.nan) for ts, v in s["points"]}
    return out


def total_expected(ds: Dataset, metric: str, agg: str = "count") -> float:
    """An aggregate over all samples of a metric (count or sum): the visibility barrier."""
    members = [i for i, s in enumerate(ds.series) if s.metric == metric]
    cols = ds._columns
    mask = np.isin(cols.sid, members)
    return float(mask.sum()) if agg == "count" else float(cols.value[mask].sum())


def big_dataset(*, now_ms: int, series_count: int, samples_per_series: int, seed: int = 7) -> Dataset:
    """`series_count` series (half counters, half gauges) with one sample per 5 s each, ending
    a minute ago; values are small integers so every sum is exact."""
    rng = np.random.default_rng(seed)
    end = _floor(now_ms - MINUTE_MS, 5 * SECOND_MS)
    start = end - samples_per_series * 5 * SECOND_MS
    specs = tuple(
        SeriesSpec(
            metric="e2e_crash_counter" if i % 2 == 0 else "e2e_crash_gauge",
            kind="counter" if i % 2 == 0 else "gauge",
            region=("us-east-1", "eu-west-1")[i % 4 // 2],
            labels=(("host", f"h{i // 4:03d}"),),
        )
        for i in range(series_count)
    )
    ts = np.arange(start, end, 5 * SECOND_MS, dtype=np.int64)
    samples: list[Sample] = []
    for index in range(series_count):
        values = rng.integers(0, 100, size=len(ts))
        samples.extend(
            Sample(series=index, ts_ms=t, value=float(v)) for t, v in zip(ts.tolist(), values.tolist(), strict=True)
        )
    return Dataset(series=specs, samples=tuple(samples))
