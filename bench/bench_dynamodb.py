"""The rollup projector writing into DynamoDB (DynamoDB Local on 127.0.0.1): throughput and
write capacity per million samples.

    python -m bench.bench_dynamodb [--hosts 50] [--metrics 10] [--minutes 60] [--live-minutes 5]
        [--live-tier-profile 5s=1000,1m=300000,5m=300000,1h=300000,1d=900000@1200 ...]
        [--no-live-uniform]
        [--smoke]

The devops workload of bench/workload.py goes through the ingest acceptor into an embedded
SQLite event log (not timed), then:

- bulk: one projector catch-up over the whole log (a backfill or a replay), once per chunk
  write mode (`put`: concurrent conditional PutItem; `transact`: TransactWriteItems of 100);
- live: the projector flushes after every `--live-flush-steps` 5 s steps, as it does when
  following the log in real time, on a simulated clock (a step is 5 s of it). Twice per
  flush period, same workload: `uniform` (every flush rewrites each touched chunk of every
  tier, the embedded default) and `per-tier` (each tier writes at most every
  `--live-tier-profile` ms, the recommended DynamoDB profile; several profiles are compared
  in the same run, `--live-tier-profile ''` skips them; `--no-live-uniform` skips uniform).
  Run `--live-minutes` of at least the profile's longest interval, or the coarse tiers' cost
  is mostly the final write at stop. Each live run reports:
  - write units per million samples with the final write at stop (`..._aws_rule`) and
    without it (`..._steady`: what a projector that runs for days pays);
  - freshness of the 5s tier: per flush, from the step's samples entering the log to the 5s
    tier holding them in DynamoDB (simulated wait for the tier's next write + the wall time
    of that write), p50/p99 over the run;
  - read units per query (DynamoDB Local's figure): every live series' last hour of the 5s
    tier (`rcu_5s_1h`) and last 12 h of the 1m tier (`rcu_1m_12h`), eventually consistent,
    as the query engine reads.

Write units: DynamoDB Local answers ReturnConsumedCapacity=TOTAL, so both its figure and the
AWS rule (1 WCU per started KB of each item written, x2 in transactions) are printed; the
rule is what AWS bills. Cost uses on-demand us-east-1 list prices: $0.625 per million write
request units (WRU).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.bench_pipeline import bench_acceptor
from bench.workload import HOST_TYPES, Block, WorkloadSpec, generate, host_names, host_region
from contracts.argus.events.v1 import events_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.dynamodb_hot_store import DynamoDBHotStore
from core.adapters.sqlite_event_log import SqliteEventLog
from core.events import SAMPLES_TOPIC
from core.model import DEFAULT_TIERS, TIER_BY_NAME, MetricKind
from core.ports import StoredChunk
from core.settings import parse_tier_intervals
from harness.services.dynamodb import ACCESS_KEY_ID, SECRET_ACCESS_KEY, DynamoDBLocal
from projectors.rollups import RollupProjector

USD_PER_MILLION_WRU = 0.625  # on-demand, us-east-1 list price (after the Nov 2024 cut)
PARTITIONS = 12
# The DynamoDB profile of docs/configuration.md (tier_flush_interval_ms, and the store's
# fresh_s after the @), and the one it replaced (decision 0058), compared by default.
RECOMMENDED_TIER_PROFILE = "5s=1000,1m=300000,5m=300000,1h=300000,1d=900000@1200"
PREVIOUS_TIER_PROFILE = "5s=1000,1m=5000,5m=30000,1h=300000,1d=900000"


def block_batches(spec: WorkloadSpec, block: Block, index: int) -> metrics_pb2.SampleBatch:
    """One block (rows ordered host, metric, time) as one SampleBatch, a series per run."""
    defs = spec.defs
    hosts = host_names(spec.hosts)
    batch = metrics_pb2.SampleBatch(batch_id=f"bench-{index}", source="bench-dynamodb")
    change = np.flatnonzero((np.diff(block.host) != 0) | (np.diff(block.metric) != 0)) + 1
    bounds = [0, *change.tolist(), block.rows]
    obs_end = np.cumsum(block.observation_counts)
    for lo, hi in itertools.pairwise(bounds):
        host, metric = int(block.host[lo]), int(block.metric[lo])
        d = defs[metric]
        s = batch.series.add(metric=d.name, kind=int(d.kind), region=host_region(host))
        s.labels.add(name="host", value=hosts[host])
        s.labels.add(name="host_type", value=HOST_TYPES[(host // 4) % len(HOST_TYPES)])
        s.timestamps_ms.extend(block.ts_ms[lo:hi].tolist())
        if d.kind is MetricKind.TIMER:
            first = int(obs_end[lo - 1]) if lo else 0
            s.observation_counts.extend(block.observation_counts[lo:hi].tolist())
            s.observations.extend(block.observations[first : int(obs_end[hi - 1])].tolist())
        else:
            s.values.extend(block.value[lo:hi].tolist())
    return batch


def workload_batches(spec: WorkloadSpec) -> Iterator[metrics_pb2.SampleBatch]:
    for i, block in enumerate(generate(spec)):
        yield block_batches(spec, block, i)


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    name: str
    samples: int
    seconds: float
    items: int
    skipped: int
    reported_wcu: float
    estimated_wcu: float
    retries: int
    steady_wcu: float | None = None  # live: before the final write at stop
    freshness_s: tuple[float, float] | None = None  # live: 5s tier, p50 and p99
    read_units: dict[str, float] | None = None  # live: per query, as DynamoDB Local reports

    def to_json(self) -> dict[str, object]:
        per_m = 1e6 / self.samples
        extra: dict[str, object] = {}
        if self.steady_wcu is not None:
            extra["wcu_per_million_samples_steady"] = round(self.steady_wcu * per_m)
        if self.freshness_s is not None:
            extra["freshness_5s_tier_p50_s"] = round(self.freshness_s[0], 3)
            extra["freshness_5s_tier_p99_s"] = round(self.freshness_s[1], 3)
        if self.read_units is not None:
            extra.update({f"rcu_{name}": round(units, 1) for name, units in self.read_units.items()})
        return {
            "run": self.name,
            "samples": self.samples,
            "seconds": round(self.seconds, 2),
            "samples_per_s": round(self.samples / self.seconds),
            "items_per_s": round(self.items / self.seconds),
            "items_written": self.items,
            "conditional_skips": self.skipped,
            "wcu_per_million_samples_reported": round(self.reported_wcu * per_m),
            "wcu_per_million_samples_aws_rule": round(self.estimated_wcu * per_m),
            "usd_per_million_samples": round(self.estimated_wcu * per_m * USD_PER_MILLION_WRU / 1e6, 4),
            "retries": self.retries,
            **extra,
        }


async def fill_log(log: SqliteEventLog, batches: list[metrics_pb2.SampleBatch], now_ms: int) -> None:
    acceptor = bench_acceptor(log, partitions=PARTITIONS, now_ms=now_ms)
    for batch in batches:
        result = await acceptor.accept("bench", batch)
        if result.rejected_samples:
            raise RuntimeError(f"ingest rejected samples of {batch.batch_id}: {result}")


async def open_store(server: DynamoDBLocal, mode: str, now_ms: int, fresh_s: str = "0") -> DynamoDBHotStore:
    store = DynamoDBHotStore.from_url(
        server.url(
            prefix=f"b{uuid.uuid4().hex[:8]}_", credentials=False, write_mode=mode, concurrency="32", fresh_s=fresh_s
        ),
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        clock_ms=lambda: now_ms,
    )
    await store.start()
    return store


def result(name: str, store: DynamoDBHotStore, samples: int, seconds: float) -> Result:
    s = store.stats
    return Result(
        name=name,
        samples=samples,
        seconds=seconds,
        items=s.items_written,
        skipped=s.conditional_skips,
        reported_wcu=s.consumed_write_units,
        estimated_wcu=s.estimated_write_units,
        retries=s.retries,
    )


async def warm_up(server: DynamoDBLocal, now_ms: int) -> None:
    """DynamoDB Local runs slowly until the JVM has compiled its hot paths: not our figure.
    Prints the client CPU each write mode spends per item (the last round, warm)."""
    for mode in ("put", "transact"):
        store = await open_store(server, mode, now_ms)
        start = now_ms - now_ms % 3_600_000
        cpu = 0.0
        for offset in range(1, 4):
            cpu = time.process_time()
            await store.write_chunks(
                "5s",
                [StoredChunk(series_id=i, chunk_start_ms=start, data=b"w" * 500, partition=0, applied_offset=offset)
                 for i in range(1000)],
            )  # fmt: skip
            cpu = time.process_time() - cpu
        print(json.dumps({"run": f"client CPU per chunk write ({mode})", "ms_per_item": round(cpu, 3)}))
        await store.close()


async def bulk(server: DynamoDBLocal, log: SqliteEventLog, mode: str, now_ms: int) -> Result:
    store = await open_store(server, mode, now_ms)
    projector = RollupProjector(
        log=log, store=store, tiers=DEFAULT_TIERS, clock_ms=lambda: now_ms, group=f"bulk-{mode}-{uuid.uuid4().hex}"
    )
    started = time.perf_counter()
    samples = await projector.catch_up()
    seconds = time.perf_counter() - started
    await projector.close()
    await store.close()
    return result(f"bulk ({mode})", store, samples, seconds)


class SimulatedClock:
    """The projector's monotonic clock in the live run: a 5 s step of the workload is 5 s."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


async def read_units_per_query(store: DynamoDBHotStore, log: SqliteEventLog, end_ms: int) -> dict[str, float]:
    """Read units of the two reads a dashboard makes most, over every series in the log."""
    sids: set[int] = set()
    for partition in range(PARTITIONS):
        for record in await log.read(SAMPLES_TOPIC, partition, 0, 1_000_000):
            sids.update(events_pb2.SampleBatchAccepted.FromString(record.event.payload).series_ids)
    series = sorted(sids)
    out: dict[str, float] = {}
    for name, tier, span_ms in (("5s_1h", "5s", 3_600_000), ("1m_12h", "1m", 12 * 3_600_000)):
        before = store.stats.consumed_read_units
        chunks = await store.read_range(tier, series, end_ms - span_ms, end_ms, TIER_BY_NAME[tier].chunk_span_ms)
        if not chunks:
            raise RuntimeError(f"the {tier} tier holds nothing to read")
        out[name] = store.stats.consumed_read_units - before
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


async def live(
    server: DynamoDBLocal,
    work: Path,
    spec: WorkloadSpec,
    flush_steps: int,
    tier_profile: dict[str, int] | None,
    label: str,
    fresh_s: str = "0",
) -> Result:
    """Append `flush_steps` steps, flush, repeat: the projector following the log live, every
    tier at every flush (`tier_profile` None) or each on its own cadence; stop at the end."""
    log = SqliteEventLog(work / f"live-{flush_steps}-{uuid.uuid4().hex[:6]}.db")
    await log.start()
    await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
    spec = WorkloadSpec(end_ms=spec.end_ms, hosts=spec.hosts, metrics=spec.metrics, span_ms=spec.span_ms,
                        block_steps=flush_steps)  # fmt: skip
    store = await open_store(server, "put", spec.end_ms, fresh_s)
    clock = SimulatedClock()
    projector = RollupProjector(
        log=log,
        store=store,
        tiers=DEFAULT_TIERS,
        clock_ms=lambda: spec.end_ms,
        flush_interval_ms=flush_steps * 5_000,
        tier_flush_interval_ms=tier_profile,
        monotonic_s=clock,
    )
    samples, seconds = 0, 0.0
    unwritten: list[float] = []  # simulated flush times whose 5s points are not in DynamoDB yet
    freshness: list[float] = []
    for batch in workload_batches(spec):
        await fill_log(log, [batch], spec.end_ms)
        clock.now_s += flush_steps * 5.0
        unwritten.append(clock.now_s)
        started = time.perf_counter()
        samples += await projector.catch_up(force=False)
        wall = time.perf_counter() - started
        seconds += wall
        if projector.tier_written_at("5s") == clock.now_s:
            freshness.extend(clock.now_s - at + wall for at in unwritten)
            unwritten.clear()
    steady_wcu = store.stats.estimated_write_units
    started = time.perf_counter()
    await projector.flush()  # stop: every tier writes what it holds
    seconds += time.perf_counter() - started
    await projector.close()
    reads = await read_units_per_query(store, log, spec.end_ms)
    await store.close()
    await log.close()
    done = result(f"live {flush_steps * 5} s, {label}", store, samples, seconds)
    return replace(
        done,
        steady_wcu=steady_wcu,
        freshness_s=(percentile(freshness, 50), percentile(freshness, 99)),
        read_units=reads,
    )


async def run(args: argparse.Namespace) -> list[Result]:
    now_ms = int(time.time() * 1000) // 5000 * 5000
    work = Path(tempfile.mkdtemp(prefix="argus-bench-dynamodb-"))
    results: list[Result] = []
    try:
        with DynamoDBLocal(work_dir=work) as server:
            spec = WorkloadSpec(end_ms=now_ms, hosts=args.hosts, metrics=args.metrics, span_ms=args.minutes * 60_000)
            log = SqliteEventLog(work / "events.db")
            await log.start()
            await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
            await fill_log(log, list(workload_batches(spec)), now_ms)
            await warm_up(server, now_ms)
            for mode in args.modes.split(","):
                results.append(await bulk(server, log, mode, now_ms))
                print(json.dumps(results[-1].to_json()))
            await log.close()
            live_spec = WorkloadSpec(
                end_ms=now_ms, hosts=args.live_hosts, metrics=args.metrics, span_ms=args.live_minutes * 60_000
            )
            profiles: list[tuple[str, dict[str, int] | None, str]] = (
                [("uniform", None, "0")] if args.live_uniform else []
            )
            for text in args.live_tier_profile:
                intervals, _, fresh_s = text.partition("@")
                profile = parse_tier_intervals(intervals, source="--live-tier-profile")
                if profile:
                    profiles.append((text, profile, fresh_s or "0"))
            for steps in args.live_flush_steps:
                for label, tier_profile, fresh_s in profiles:
                    results.append(await live(server, work, live_spec, steps, tier_profile, label, fresh_s))
                    print(json.dumps(results[-1].to_json()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--minutes", type=int, default=60, help="span of the bulk workload")
    parser.add_argument("--modes", default="put,transact", help="chunk write modes to compare in bulk")
    parser.add_argument("--live-hosts", type=int, default=10)
    parser.add_argument("--live-minutes", type=int, default=5)
    parser.add_argument("--live-flush-steps", type=int, nargs="*", default=[1, 12], help="5 s steps per flush")
    parser.add_argument(
        "--live-tier-profile",
        nargs="*",
        default=[PREVIOUS_TIER_PROFILE, RECOMMENDED_TIER_PROFILE],
        help="TIER=MS,...[@FRESH_S] per-tier write intervals compared with uniform in live mode, and the"
        " store's fresh_s (decision 0058; '' to skip)",
    )
    parser.add_argument(
        "--no-live-uniform",
        dest="live_uniform",
        action="store_false",
        help="skip the live run that writes every tier at every flush",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks it works")
    args = parser.parse_args()
    if args.smoke:
        args.hosts, args.minutes, args.live_hosts, args.live_minutes = 4, 5, 2, 2
    results = asyncio.run(run(args))
    print()
    print(
        f"{'run':<28} {'samples/s':>10} {'items/s':>8} {'WCU/M samples':>14} {'(Local says)':>12} {'$/M samples':>11}"
        f" {'steady WCU/M':>12} {'fresh p99 s':>11} {'RCU 5s 1h':>9} {'RCU 1m 12h':>10}"
    )
    for r in results:
        j = r.to_json()
        print(
            f"{r.name:<28} {j['samples_per_s']:>10,} {j['items_per_s']:>8,}"
            f" {j['wcu_per_million_samples_aws_rule']:>14,} {j['wcu_per_million_samples_reported']:>12,}"
            f" {j['usd_per_million_samples']:>11} {j.get('wcu_per_million_samples_steady', '-'):>12}"
            f" {j.get('freshness_5s_tier_p99_s', '-'):>11} {j.get('rcu_5s_1h', '-'):>9} {j.get('rcu_1m_12h', '-'):>10}"
        )


if __name__ == "__main__":
    main()
