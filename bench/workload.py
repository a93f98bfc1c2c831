"""A deterministic, seeded "devops" dataset for benchmarks, streamed as NDJSON, CSV or Parquet.

H hosts x M metrics, one point every 5 s over a span D ending at `end_ms`:

- gauges (cpu_user, cpu_system, mem_used, disk_io, net_in, net_out, queue_depth, then extra
  `gauge_<i>` when M > 10): reflected random walks inside a realistic range, rounded to
  2 decimals;
- counters (http_requests_total, http_errors_total): non-negative integer deltas per 5 s
  (Poisson requests around a per-host rate, binomial errors out of them);
- a timer (http_latency_ms): 1-8 lognormal observations per sample, rounded to 2 decimals.

Series: region (4 values, the series' region) and the labels host_type (5 values) and host.
With M < 10 the first M metrics of that list are taken.

Contract:
- Points sit at `start_ms + k * step_ms` for k in [0, steps): the half-open range
  [end_ms - span_ms, end_ms), so a query over exactly that range sees every sample.
- Deterministic: the same spec (seed, sizes, end, block_steps) gives the same blocks and
  the same bytes in every format; every format carries the same samples.
- Streams in blocks of `block_steps` time steps (all series each); memory is bounded by one
  block, whatever the span. Within a block rows are ordered host, metric, time (what a
  backfill export per host looks like); blocks follow each other in time.
- No per-sample Python: generation is numpy, formatting is pyarrow compute.

File formats are those `argus push` reads (see agent/readers/): NDJSON lines
`{"metric","kind","region","labels":{...},"ts":ms,"value"}` (timers `"values":[...]`);
CSV and Parquet with the columns metric, kind, region, host, host_type, ts, value, values
(a JSON list text in CSV, list<double> in Parquet; value is empty/null for timers).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from core.errors import InvalidArgument
from core.model import MetricKind

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

STEP_MS: Final = 5_000
REGIONS: Final = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1")
HOST_TYPES: Final = ("web", "api", "db", "cache", "worker")
DEFAULT_SEED: Final = 20_251_125
MAX_OBSERVATIONS: Final = 8


class Generator(StrEnum):
    WALK = "walk"
    REQUESTS = "requests"
    ERRORS = "errors"
    LATENCY = "latency"


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricDef:
    """One metric of the workload. Gauges walk inside [low, high] with steps of `step_sd`
    (per 5 s) and start uniformly inside [low, start_high]."""

    name: str
    kind: MetricKind
    generator: Generator
    low: float = 0.0
    high: float = 0.0
    start_high: float = 0.0
    step_sd: float = 0.0


BASE_METRICS: Final[tuple[MetricDef, ...]] = (
    MetricDef(
        name="cpu_user", kind=MetricKind.GAUGE, generator=Generator.WALK, high=100.0, start_high=60.0, step_sd=1.5
    ),
    MetricDef(
        name="cpu_system", kind=MetricKind.GAUGE, generator=Generator.WALK, high=40.0, start_high=15.0, step_sd=0.5
    ),
    # GiB of a 64 GiB host
    MetricDef(
        name="mem_used",
        kind=MetricKind.GAUGE,
        generator=Generator.WALK,
        low=0.5,
        high=64.0,
        start_high=48.0,
        step_sd=0.05,
    ),
    # MB/s
    MetricDef(
        name="disk_io", kind=MetricKind.GAUGE, generator=Generator.WALK, high=400.0, start_high=100.0, step_sd=5.0
    ),
    # Mbit/s
    MetricDef(
        name="net_in", kind=MetricKind.GAUGE, generator=Generator.WALK, high=1000.0, start_high=300.0, step_sd=10.0
    ),
    MetricDef(
        name="net_out", kind=MetricKind.GAUGE, generator=Generator.WALK, high=1000.0, start_high=300.0, step_sd=10.0
    ),
    MetricDef(
        name="queue_depth", kind=MetricKind.GAUGE, generator=Generator.WALK, high=500.0, start_high=50.0, step_sd=3.0
    ),
    MetricDef(name="http_requests_total", kind=MetricKind.COUNTER, generator=Generator.REQUESTS),
    MetricDef(name="http_errors_total", kind=MetricKind.COUNTER, generator=Generator.ERRORS),
    MetricDef(name="http_latency_ms", kind=MetricKind.TIMER, generator=Generator.LATENCY),
)


def metric_defs(count: int) -> tuple[MetricDef, ...]:
    """The first `count` metrics; beyond the ten base ones, extra gauges `gauge_11`, ..."""
    if count < 1:
        raise InvalidArgument("metrics must be >= 1", parameter="metrics")
    extra = tuple(
        MetricDef(
            name=f"gauge_{i}",
            kind=MetricKind.GAUGE,
            generator=Generator.WALK,
            high=100.0,
            start_high=100.0,
            step_sd=1.0,
        )
        for i in range(len(BASE_METRICS) + 1, count + 1)
    )
    return (BASE_METRICS + extra)[:count]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSpec:
    """What to generate. `end_ms` is exclusive and, like `span_ms`, a multiple of `step_ms`."""

    end_ms: int
    hosts: int = 1_000
    metrics: int = 10
    span_ms: int = 2 * 3_600_000
    step_ms: int = STEP_MS
    seed: int = DEFAULT_SEED
    block_steps: int = 60
    only: tuple[str, ...] = ()
    """If set, just these of the first `metrics` metrics (e.g. one gauge and one counter)."""

    def __post_init__(self) -> None:
        if self.hosts < 1:
            raise InvalidArgument("hosts must be >= 1", parameter="hosts")
        if self.step_ms < 1 or self.span_ms < self.step_ms or self.span_ms % self.step_ms:
            raise InvalidArgument(f"span must be a positive multiple of {self.step_ms} ms", parameter="span")
        if self.end_ms % self.step_ms:
            raise InvalidArgument(f"end must be a multiple of {self.step_ms} ms", parameter="end")
        if self.block_steps < 1:
            raise InvalidArgument("block_steps must be >= 1", parameter="block_steps")
        known = {d.name for d in metric_defs(self.metrics)}
        if unknown := sorted(set(self.only) - known):
            raise InvalidArgument(f"only: {unknown} are not among the first {self.metrics} metrics", parameter="only")

    @property
    def defs(self) -> tuple[MetricDef, ...]:
        defs = metric_defs(self.metrics)
        return tuple(d for d in defs if d.name in self.only) if self.only else defs

    @property
    def metric_count(self) -> int:
        return len(self.defs)

    @property
    def steps(self) -> int:
        return self.span_ms // self.step_ms

    @property
    def start_ms(self) -> int:
        return self.end_ms - self.span_ms

    @property
    def series(self) -> int:
        return self.hosts * self.metric_count

    @property
    def samples(self) -> int:
        """Samples in the dataset (a timer sample counts once, however many observations)."""
        return self.series * self.steps

    def samples_of(self, kind: MetricKind) -> int:
        return sum(1 for d in self.defs if d.kind is kind) * self.hosts * self.steps


def host_names(hosts: int) -> list[str]:
    width = max(4, len(str(hosts - 1)))
    return [f"host-{i:0{width}d}" for i in range(hosts)]


def host_region(host: int) -> str:
    return REGIONS[host % len(REGIONS)]


def host_type(host: int) -> str:
    return HOST_TYPES[(host // len(REGIONS)) % len(HOST_TYPES)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """Rows of one block, in columns. Row i is (host[i], metric[i], ts_ms[i]); `value` is NaN
    on timer rows; `observation_counts` is 0 on other rows; `observations` are flattened in
    row order."""

    ts_ms: I64
    host: I32
    metric: I32
    value: F64
    observation_counts: I64
    observations: F64

    @property
    def rows(self) -> int:
        return len(self.ts_ms)


@dataclass(slots=True)
class _HostParams:
    walk_now: F64  # (hosts, gauges): current gauge values
    request_rate: F64  # (hosts,): mean requests per 5 s
    wave_phase: F64  # (hosts,)
    error_ratio: F64  # (hosts,)
    latency_mu: F64  # (hosts,): log of the median latency (ms)


def generate(spec: WorkloadSpec) -> Iterator[Block]:
    """The dataset as blocks of rows, in time order (see the module contract)."""
    rng = np.random.default_rng(spec.seed)
    defs = spec.defs
    walks = [d for d in defs if d.generator is Generator.WALK]
    low = np.array([d.low for d in walks])
    high = np.array([d.high for d in walks])
    start_high = np.array([d.start_high for d in walks])
    step_sd = np.array([d.step_sd for d in walks])
    h = spec.hosts
    params = _HostParams(
        walk_now=low + (start_high - low) * rng.random((h, len(walks))),
        request_rate=np.clip(rng.lognormal(np.log(200.0), 0.8, h), 5.0, 5_000.0),
        wave_phase=rng.uniform(0.0, 2 * np.pi, h),
        error_ratio=rng.uniform(0.001, 0.02, h),
        latency_mu=np.log(rng.uniform(15.0, 120.0, h)),
    )
    gens = [d.generator for d in defs]
    layout: dict[int, tuple[I64, I32, I32]] = {}
    for first in range(0, spec.steps, spec.block_steps):
        b = min(spec.block_steps, spec.steps - first)
        ts = spec.start_ms + (first + np.arange(b, dtype=np.int64)) * spec.step_ms
        # (hosts, metrics, steps): flattening gives the host, metric, time row order.
        values = np.full((h, len(defs), b), np.nan)
        counts = np.zeros((h, len(defs), b), dtype=np.int64)
        if walks:
            path = params.walk_now[:, :, None] + np.cumsum(
                rng.normal(0.0, 1.0, (h, len(walks), b)) * step_sd[None, :, None], axis=2
            )
            path = _reflect(path, low[None, :, None], high[None, :, None])
            params.walk_now = path[:, :, -1].copy()
            values[:, [i for i, g in enumerate(gens) if g is Generator.WALK], :] = np.round(path, 2)
        if Generator.REQUESTS in gens or Generator.ERRORS in gens:
            wave = 1.0 + 0.3 * np.sin(2 * np.pi * ts[None, :] / 3_600_000 + params.wave_phase[:, None])
            requests = rng.poisson(params.request_rate[:, None] * wave)
            errors = rng.binomial(requests, params.error_ratio[:, None])
            for i, g in enumerate(gens):
                if g is Generator.REQUESTS:
                    values[:, i, :] = requests
                elif g is Generator.ERRORS:
                    values[:, i, :] = errors
        timers = [i for i, g in enumerate(gens) if g is Generator.LATENCY]
        observations = np.empty(0)
        if timers:
            n_obs = np.minimum(1 + rng.poisson(2.0, (h, len(timers), b)), MAX_OBSERVATIONS)
            counts[:, timers, :] = n_obs
            # Per observation, its host's mu, in (host, timer, time) order = row order.
            mu = np.repeat(np.broadcast_to(params.latency_mu[:, None, None], n_obs.shape).ravel(), n_obs.ravel())
            observations = np.maximum(np.round(rng.lognormal(mu, 0.5), 2), 0.01)
        if b not in layout:
            layout[b] = _layout(h, len(defs), b, spec.step_ms)
        tile_ts, host, metric = layout[b]
        yield Block(
            ts_ms=tile_ts + int(ts[0]),
            host=host,
            metric=metric,
            value=values.ravel(),
            observation_counts=counts.ravel(),
            observations=observations,
        )


def _reflect(x: F64, low: F64, high: F64) -> F64:
    """Fold x into [low, high] as a walk reflecting off both ends would be."""
    width = high - low
    y = np.mod(x - low, 2 * width)
    return np.asarray(np.where(y > width, 2 * width - y, y) + low, dtype=np.float64)


def _layout(hosts: int, metrics: int, steps: int, step_ms: int = STEP_MS) -> tuple[I64, I32, I32]:
    """Per row of a block: ts offset from the block's first ts, host, metric."""
    offsets = np.arange(steps, dtype=np.int64) * step_ms
    return (
        np.tile(offsets, hosts * metrics),
        np.repeat(np.arange(hosts, dtype=np.int32), metrics * steps),
        np.tile(np.repeat(np.arange(metrics, dtype=np.int32), steps), hosts),
    )


# ---------------------------------------------------------------------------- writers


class OutputFormat(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteStats:
    """What a write produced. `observations_by_metric` covers timers only."""

    samples: int
    samples_by_metric: dict[str, int]
    observations_by_metric: dict[str, int]
    rows: int
    bytes_written: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "samples_by_metric": self.samples_by_metric,
            "observations_by_metric": self.observations_by_metric,
            "rows": self.rows,
            "bytes": self.bytes_written,
            "seconds": round(self.seconds, 3),
        }


@dataclass(slots=True)
class _Dictionaries:
    """Per-host and per-metric strings, taken per row by index (no per-row Python)."""

    host: pa.Array
    host_type: pa.Array
    region: pa.Array
    metric: pa.Array
    kind: pa.Array
    is_timer: npt.NDArray[np.bool_]
    ndjson_prefix: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))

    @classmethod
    def of(cls, spec: WorkloadSpec) -> _Dictionaries:
        names = host_names(spec.hosts)
        regions = [host_region(i) for i in range(spec.hosts)]
        types = [host_type(i) for i in range(spec.hosts)]
        defs = spec.defs
        prefixes = [
            '{"metric":'
            + json.dumps(d.name)
            + ',"kind":'
            + json.dumps(d.kind.label)
            + ',"region":'
            + json.dumps(regions[h])
            + ',"labels":{"host":'
            + json.dumps(names[h])
            + ',"host_type":'
            + json.dumps(types[h])
            + '},"ts":'
            for h in range(spec.hosts)
            for d in defs
        ]
        return cls(
            host=pa.array(names, pa.string()),
            host_type=pa.array(types, pa.string()),
            region=pa.array(regions, pa.string()),
            metric=pa.array([d.name for d in defs], pa.string()),
            kind=pa.array([d.kind.label for d in defs], pa.string()),
            is_timer=np.array([d.kind is MetricKind.TIMER for d in defs]),
            ndjson_prefix=pa.array(prefixes, pa.string()),
        )


def _observation_lists(block: Block, item: Callable[[pa.Array], pa.Array]) -> pa.ListArray:
    offsets = np.zeros(block.rows + 1, dtype=np.int64)
    np.cumsum(block.observation_counts, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise InvalidArgument("too many observations in one block; lower block_steps", parameter="block_steps")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), item(pa.array(block.observations)))


def _ndjson_bytes(block: Block, dicts: _Dictionaries, metrics: int) -> pa.Buffer:
    series = block.host.astype(np.int64) * metrics + block.metric
    prefix = dicts.ndjson_prefix.take(pa.array(series))
    ts = pc.cast(pa.array(block.ts_ms), pa.string())
    timer_row = dicts.is_timer[block.metric]
    value = pc.binary_join_element_wise(',"value":', pc.cast(pa.array(block.value), pa.string()), "")
    if timer_row.any():
        joined = pc.binary_join(_observation_lists(block, lambda a: pc.cast(a, pa.string())), ",")
        values = pc.binary_join_element_wise(',"values":[', joined, "]", "")
        value = pc.if_else(pa.array(timer_row), values, value)
    lines = pc.binary_join_element_wise(prefix, ts, value, "}\n", "")
    return _string_data(lines)


def _string_data(texts: pa.Array) -> pa.Buffer:
    """The concatenation of a null-free string array's values (its data buffer, sliced)."""
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset : texts.offset + len(texts) + 1]
    start, stop = int(offsets[0]), int(offsets[-1])
    data: pa.Buffer = texts.buffers()[2].slice(start, stop - start)
    return data


def _record_batch(block: Block, dicts: _Dictionaries, *, csv: bool) -> pa.RecordBatch:
    timer_row = dicts.is_timer[block.metric]
    host = pa.array(block.host)
    metric = pa.array(block.metric)
    value = pa.array(block.value, mask=timer_row if timer_row.any() else None)
    if csv:
        texts = _observation_lists(block, lambda a: pc.cast(a, pa.string()))
        joined = pc.binary_join_element_wise("[", pc.binary_join(texts, ","), "]", "")
        values: pa.Array = pc.if_else(pa.array(timer_row), joined, pa.scalar(None, pa.string()))
    else:
        lists = _observation_lists(block, lambda a: a)
        values = pc.if_else(pa.array(timer_row), lists, pa.scalar(None, lists.type))
    return pa.RecordBatch.from_arrays(
        [
            dicts.metric.take(metric),
            dicts.kind.take(metric),
            dicts.region.take(host),
            dicts.host.take(host),
            dicts.host_type.take(host),
            pa.array(block.ts_ms),
            value,
            values,
        ],
        names=["metric", "kind", "region", "host", "host_type", "ts", "value", "values"],
    )


class _CountingWriter:
    """A binary sink that counts what passes through (a pipe cannot tell its position) and
    is never closed by pyarrow: the caller owns the stream."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.written = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        n = memoryview(data).nbytes
        self.raw.write(data)
        self.written += n
        return n

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.flush()


def write(spec: WorkloadSpec, fmt: OutputFormat, out: IO[bytes] | str | Path) -> WriteStats:
    """Generate the dataset and write it to `out` (a binary stream or a path) in `fmt`."""
    began = time.perf_counter()
    dicts = _Dictionaries.of(spec)
    observations = dict.fromkeys((d.name for d in spec.defs if d.kind is MetricKind.TIMER), 0)
    names = [d.name for d in spec.defs]
    rows = 0
    owned = isinstance(out, str | Path)
    counter = _CountingWriter(open(out, "wb") if isinstance(out, str | Path) else out)  # noqa: SIM115
    sink = pa.PythonFile(counter, mode="w")
    writer: pcsv.CSVWriter | pq.ParquetWriter | None = None
    try:
        for block in generate(spec):
            rows += block.rows
            if observations:
                per_metric = np.bincount(block.metric, weights=block.observation_counts, minlength=len(names))
                for name in observations:
                    observations[name] += int(per_metric[names.index(name)])
            if fmt is OutputFormat.NDJSON:
                sink.write(_ndjson_bytes(block, dicts, spec.metric_count))
                continue
            batch = _record_batch(block, dicts, csv=fmt is OutputFormat.CSV)
            if writer is None:
                writer = (
                    pcsv.CSVWriter(sink, batch.schema)
                    if fmt is OutputFormat.CSV
                    else pq.ParquetWriter(sink, batch.schema, compression="zstd")
                )
            writer.write_batch(batch)
        if writer is not None:
            writer.close()
        sink.flush()
    finally:
        if owned:
            counter.raw.close()
    return WriteStats(
        samples=rows,
        samples_by_metric=dict.fromkeys(names, spec.hosts * spec.steps),
        observations_by_metric=observations,
        rows=rows,
        bytes_written=counter.written,
        seconds=time.perf_counter() - began,
    )


# ---------------------------------------------------------------------------- peers' formats

# Upper bounds (ms) of the latency histogram the peers get for a timer (Prometheus `le`).
LATENCY_BUCKETS_MS: Final = (25.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, math.inf)


class PeerFormat(StrEnum):
    """The dataset in the formats the peers load natively.

    - `vm-jsonl`: VictoriaMetrics `/api/v1/import` JSON lines, one line per series per block
      (`{"metric":{"__name__":..,labels},"values":[..],"timestamps":[ms..]}`);
    - `openmetrics`: text for `promtool tsdb create-blocks-from openmetrics` (no metadata
      lines, timestamps in seconds, `# EOF` at the end);
    - `influx`: InfluxDB 1.x line protocol, precision ms, measurement = metric, field `value`.

    In the Prometheus model (vm-jsonl, openmetrics) counters are cumulative (the running sum
    of the deltas) and a timer is a cumulative histogram: `<name>_bucket{le=..}` over
    LATENCY_BUCKETS_MS, `<name>_sum`, `<name>_count` (what a Prometheus client exports).
    In Influx, counters stay deltas and a timer's observations are stored raw, one point
    each, the k-th of a sample at ts + k ms (points with equal series and time overwrite).
    """

    VM_JSONL = "vm-jsonl"
    OPENMETRICS = "openmetrics"
    INFLUX = "influx"


@dataclass(frozen=True, slots=True)
class PeerSeries:
    """One series of the Prometheus-model layout (labels sorted by name)."""

    name: str
    labels: tuple[tuple[str, str], ...]


def _le_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"


def prometheus_series(spec: WorkloadSpec) -> list[PeerSeries]:
    """The Prometheus-model series in the order of `prometheus_blocks` rows: host, then metric
    (a timer: its buckets by `le`, then `_sum`, then `_count`)."""
    names = host_names(spec.hosts)
    out: list[PeerSeries] = []
    for h in range(spec.hosts):
        base = (("host", names[h]), ("host_type", host_type(h)), ("region", host_region(h)))
        for d in spec.defs:
            if d.kind is MetricKind.TIMER:
                out += [
                    PeerSeries(f"{d.name}_bucket", tuple(sorted((*base, ("le", _le_text(b))))))
                    for b in LATENCY_BUCKETS_MS
                ]
                out += [PeerSeries(f"{d.name}_sum", base), PeerSeries(f"{d.name}_count", base)]
            else:
                out.append(PeerSeries(d.name, base))
    return out


def prometheus_blocks(spec: WorkloadSpec) -> Iterator[tuple[I64, F64]]:
    """The dataset in the Prometheus model, block by block: (timestamps (b,), values (S, b))
    with S = len(prometheus_series(spec)). Counters and histograms carry their running totals
    from block to block."""
    defs = spec.defs
    h = spec.hosts
    nb = len(LATENCY_BUCKETS_MS)
    bounds = np.array(LATENCY_BUCKETS_MS)
    counters = [i for i, d in enumerate(defs) if d.kind is MetricKind.COUNTER]
    timers = [i for i, d in enumerate(defs) if d.kind is MetricKind.TIMER]
    width = len(defs) + len(timers) * (nb + 1)
    counter_total = np.zeros((h, len(counters)))
    bucket_total = np.zeros((h, len(timers), nb))
    sum_total = np.zeros((h, len(timers)))
    count_total = np.zeros((h, len(timers)))
    for block in generate(spec):
        b = block.rows // (h * len(defs))
        values = block.value.reshape(h, len(defs), b)
        out = np.empty((h, width, b))
        slot = 0
        for i, d in enumerate(defs):
            if d.kind is MetricKind.COUNTER:
                c = counters.index(i)
                run = np.cumsum(values[:, i, :], axis=1) + counter_total[:, c, None]
                counter_total[:, c] = run[:, -1]
                out[:, slot, :] = run
                slot += 1
            elif d.kind is MetricKind.TIMER:
                t = timers.index(i)
                slot = _histogram_rows(block, spec, i, out, slot, bounds, bucket_total[:, t], sum_total, count_total, t)
            else:
                out[:, slot, :] = values[:, i, :]
                slot += 1
        yield block.ts_ms[:b].copy(), out.reshape(h * width, b)


def _histogram_rows(
    block: Block,
    spec: WorkloadSpec,
    metric: int,
    out: F64,
    slot: int,
    bounds: F64,
    bucket_total: F64,
    sum_total: F64,
    count_total: F64,
    t: int,
) -> int:
    """Write one timer's cumulative buckets, sum and count into `out[:, slot:, :]`; the next slot."""
    h, m = spec.hosts, spec.metric_count
    b = block.rows // (h * m)
    nb = len(bounds)
    counts = block.observation_counts.reshape(h, m, b)
    # Observations are in row order; this timer's start after those of the rows before it.
    row_of_obs = np.repeat(np.arange(block.rows), block.observation_counts)
    host_of_obs = row_of_obs // (m * b)
    metric_of_obs = (row_of_obs // b) % m
    step_of_obs = row_of_obs % b
    mine = metric_of_obs == metric
    obs = block.observations[mine]
    bucket = np.searchsorted(bounds, obs, side="left")
    cell = (host_of_obs[mine] * b + step_of_obs[mine]) * nb + bucket
    per_step = np.bincount(cell, minlength=h * b * nb).reshape(h, b, nb).astype(np.float64)
    cumulative = np.cumsum(np.cumsum(per_step, axis=2), axis=1) + bucket_total[:, None, :]
    bucket_total[:, :] = cumulative[:, -1, :]
    out[:, slot : slot + nb, :] = np.moveaxis(cumulative, 2, 1)
    sums = np.bincount(host_of_obs[mine] * b + step_of_obs[mine], weights=obs, minlength=h * b).reshape(h, b)
    run_sum = np.cumsum(sums, axis=1) + sum_total[:, t, None]
    sum_total[:, t] = run_sum[:, -1]
    out[:, slot + nb, :] = np.round(run_sum, 2)
    run_count = np.cumsum(counts[:, metric, :], axis=1) + count_total[:, t, None]
    count_total[:, t] = run_count[:, -1]
    out[:, slot + nb + 1, :] = run_count
    return slot + nb + 2


def _labels_json(s: PeerSeries) -> str:
    return json.dumps({"__name__": s.name, **dict(s.labels)}, separators=(",", ":"))


def _labels_text(s: PeerSeries) -> str:
    return s.name + "{" + ",".join(f'{k}="{v}"' for k, v in s.labels) + "}"


def _joined_rows(values: F64) -> pa.Array:
    """Per row of a (S, b) matrix, its values as text joined by commas."""
    s, b = values.shape
    texts = pc.cast(pa.array(values.ravel()), pa.string())
    offsets = pa.array(np.arange(0, s * b + 1, b, dtype=np.int32))
    return pc.binary_join(pa.ListArray.from_arrays(offsets, texts), ",")


def _seconds_text(ts_ms: I64) -> list[str]:
    return [f"{t // 1000}" if t % 1000 == 0 else f"{t // 1000}.{t % 1000:03d}" for t in ts_ms.tolist()]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerWriteStats:
    """What a peer-format write produced: `points` stored points in the file (histogram
    buckets and raw observations included), against the dataset's `samples`."""

    samples: int
    points: int
    lines: int
    bytes_written: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "points": self.points,
            "lines": self.lines,
            "bytes": self.bytes_written,
            "seconds": round(self.seconds, 3),
        }


def write_peer(spec: WorkloadSpec, fmt: PeerFormat, out: IO[bytes] | str | Path) -> PeerWriteStats:
    """Generate the dataset and write it to `out` in a peer's format (see PeerFormat)."""
    began = time.perf_counter()
    owned = isinstance(out, str | Path)
    counter = _CountingWriter(open(out, "wb") if isinstance(out, str | Path) else out)  # noqa: SIM115
    sink = pa.PythonFile(counter, mode="w")
    points = lines = 0
    try:
        if fmt is PeerFormat.INFLUX:
            points, lines = _write_influx(spec, sink)
        else:
            series = prometheus_series(spec)
            if fmt is PeerFormat.VM_JSONL:
                prefix = pa.array(['{"metric":' + _labels_json(s) + ',"values":[' for s in series], pa.string())
            else:
                prefix = pa.array([_labels_text(s) + " " for s in series], pa.string())
            for ts, values in prometheus_blocks(spec):
                n_series, b = values.shape
                points += values.size
                if fmt is PeerFormat.VM_JSONL:
                    lines += n_series
                    tail = '],"timestamps":[' + ",".join(str(t) for t in ts.tolist()) + "]}\n"
                    text = pc.binary_join_element_wise(prefix, _joined_rows(values), tail, "")
                else:
                    lines += values.size
                    take = pa.array(np.repeat(np.arange(n_series), b))
                    stamps = pa.array([" " + t + "\n" for t in _seconds_text(ts)] * n_series, pa.string())
                    value_text = pc.cast(pa.array(values.ravel()), pa.string())
                    text = pc.binary_join_element_wise(prefix.take(take), value_text, stamps, "")
                sink.write(_string_data(text))
            if fmt is PeerFormat.OPENMETRICS:
                sink.write(b"# EOF\n")
        sink.flush()
    finally:
        if owned:
            counter.raw.close()
    return PeerWriteStats(
        samples=spec.samples,
        points=points,
        lines=lines,
        bytes_written=counter.written,
        seconds=time.perf_counter() - began,
    )


def _write_influx(spec: WorkloadSpec, sink: pa.NativeFile) -> tuple[int, int]:
    """Line protocol, block by block: the gauge and counter rows, then the timers' raw
    observations (the k-th of a sample at ts + k ms). Points and lines written."""
    names = host_names(spec.hosts)
    defs = spec.defs
    prefix = pa.array(
        [
            f"{d.name},host={names[h]},host_type={host_type(h)},region={host_region(h)} value="
            for h in range(spec.hosts)
            for d in defs
        ],
        pa.string(),
    )
    is_timer = np.array([d.kind is MetricKind.TIMER for d in defs])
    lines = 0
    for block in generate(spec):
        series = block.host.astype(np.int64) * spec.metric_count + block.metric
        plain = ~is_timer[block.metric]
        if plain.any():
            text = pc.binary_join_element_wise(
                prefix.take(pa.array(series[plain])),
                pc.cast(pa.array(block.value[plain]), pa.string()),
                " ",
                pc.cast(pa.array(block.ts_ms[plain]), pa.string()),
                "\n",
                "",
            )
            sink.write(_string_data(text))
            lines += int(plain.sum())
        if len(block.observations):
            row = np.repeat(np.arange(block.rows), block.observation_counts)
            first = np.cumsum(block.observation_counts) - block.observation_counts
            k = np.arange(len(row)) - first[row]
            text = pc.binary_join_element_wise(
                prefix.take(pa.array(series[row])),
                pc.cast(pa.array(block.observations), pa.string()),
                " ",
                pc.cast(pa.array(block.ts_ms[row] + k), pa.string()),
                "\n",
                "",
            )
            sink.write(_string_data(text))
            lines += len(row)
    return lines, lines


# ---------------------------------------------------------------------------- presets

# Dataset shapes of about the same size (~14-21M samples) over longer spans, fewer hosts.
PRESETS: Final[Mapping[str, tuple[int, str]]] = {"2h": (1_000, "2h"), "24h": (84, "24h"), "30d": (4, "30d")}


# ---------------------------------------------------------------------------- CLI


def parse_duration_ms(text: str) -> int:
    """`90s`, `10m`, `2h`, `1d`, `1h30m` -> milliseconds."""
    from query_side.timeparse import parse_duration

    return parse_duration(text, parameter="span")


def default_end_ms(now_s: float | None = None) -> int:
    """Now, rounded down to 5 s."""
    now_ms = int((time.time() if now_s is None else now_s) * 1000)
    return now_ms - now_ms % STEP_MS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--span", default="2h", help="e.g. 10m, 2h, 12h, 30d")
    parser.add_argument("--end", type=int, default=None, help="exclusive end, epoch ms [now rounded down to 5 s]")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--block-steps", type=int, default=60, help="time steps generated per block")
    parser.add_argument("--format", choices=[f.value for f in OutputFormat], default="ndjson")
    parser.add_argument(
        "--peer-format",
        choices=[f.value for f in PeerFormat],
        default=None,
        help="write a peer's format instead of an `argus push` one (see PeerFormat)",
    )
    parser.add_argument("--out", required=True, help="output file, or - for stdout")
    args = parser.parse_args(argv)
    try:
        spec = WorkloadSpec(
            hosts=args.hosts,
            metrics=args.metrics,
            span_ms=parse_duration_ms(args.span),
            end_ms=default_end_ms() if args.end is None else args.end,
            seed=args.seed,
            block_steps=args.block_steps,
        )
        out = sys.stdout.buffer if args.out == "-" else Path(args.out)
        stats: WriteStats | PeerWriteStats = (
            write_peer(spec, PeerFormat(args.peer_format), out)
            if args.peer_format
            else write(spec, OutputFormat(args.format), out)
        )
    except InvalidArgument as exc:
        parser.error(str(exc))
    summary = {"start_ms": spec.start_ms, "end_ms": spec.end_ms, "series": spec.series, **stats.to_json()}
    rate = stats.samples / stats.seconds if stats.seconds > 0 else math.inf
    print(json.dumps(summary), file=sys.stderr)
    print(f"{stats.samples:,} samples in {stats.seconds:.2f} s ({rate:,.0f}/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
