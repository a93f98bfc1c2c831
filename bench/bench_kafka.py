"""Ingest -> Kafka and Kafka -> projector read throughput in one process, against a local
tansu broker (started here, memory storage), beside the same ingest into the SQLite log.

    python -m bench.bench_kafka [--hosts 200] [--metrics 10] [--points 720] [--compression lz4,zstd,none] [--smoke]

The batches are those of bench/bench_pipeline.py (built first, not timed), accepted by
`BatchAcceptor` exactly as `argus ingest` does, `--concurrency` batches in flight. The read figure is a
consumer-group member polling the samples topic until it has every event (what a projector's
poll loop does, without applying). Prints samples/s, events/s and CPU seconds per stage.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from bench.bench_pipeline import batches, bench_acceptor
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.kafka_event_log import KafkaEventLog
from core.adapters.sqlite_event_log import SqliteEventLog
from core.events import SAMPLES_TOPIC
from core.ports import EventLog
from harness.services.kafka import TansuBroker

PARTITIONS = 12


async def ingest(
    log: EventLog, prepared: list[metrics_pb2.SampleBatch], now_ms: int, concurrency: int
) -> tuple[float, float]:
    acceptor = bench_acceptor(log, partitions=PARTITIONS, now_ms=now_ms)
    queue = list(reversed(prepared))

    async def client() -> None:  # one agent connection: a batch at a time
        while queue:
            await acceptor.accept("bench", queue.pop())

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def read_all(log: EventLog, topic: str, events: int) -> tuple[float, float]:
    consumer = log.consumer(f"bench-{uuid.uuid4().hex[:8]}", topic)
    await consumer.lag()  # join the group first: not part of the read rate
    wall, cpu = time.perf_counter(), time.process_time()
    seen = 0
    while seen < events:
        got = await consumer.poll(max_records=512, timeout_s=1.0)
        if not got:
            raise RuntimeError(f"read stalled after {seen} of {events} events")
        seen += len(got)
    result = time.perf_counter() - wall, time.process_time() - cpu
    await consumer.close()
    return result


def line(stage: str, samples: int, events: int, wall: float, cpu: float) -> str:
    return (
        f"{stage:<28} {samples / wall / 1e6:6.2f} M samples/s  {events / wall:8,.0f} events/s  "
        f"({wall:.2f} s wall, {cpu:.2f} s CPU)"
    )


async def run(hosts: int, metrics: int, points: int, compressions: list[str], concurrency: int) -> None:
    now_ms = int(time.time() * 1000) // 5000 * 5000
    prepared = list(batches(hosts=hosts, metrics=metrics, points=points, now_ms=now_ms, per_batch=20_000))
    total = sum(len(s.timestamps_ms) for b in prepared for s in b.series)
    work = Path(tempfile.mkdtemp(prefix="argus-bench-kafka-"))
    try:
        sqlite = SqliteEventLog(work / "events.db")
        await sqlite.start()
        await sqlite.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
        wall, cpu = await ingest(sqlite, prepared, now_ms, concurrency)
        events = sum((await sqlite.end_offsets(SAMPLES_TOPIC)).values())
        print(line("ingest -> sqlite log", total, events, wall, cpu))
        await sqlite.close()

        for compression in compressions:
            # A fresh broker per codec: tansu's memory storage never shrinks.
            broker = TansuBroker(work).start()
            try:
                log = KafkaEventLog.from_url(broker.url(compression=compression))
                await log.start()
                await log.ensure_topic(SAMPLES_TOPIC, PARTITIONS)
                wall, cpu = await ingest(log, prepared, now_ms, concurrency)
                print(line(f"ingest -> kafka ({compression})", total, events, wall, cpu))
                wall, cpu = await read_all(log, SAMPLES_TOPIC, events)
                print(line(f"kafka ({compression}) -> poll", total, events, wall, cpu))
                await log.close()
            finally:
                broker.stop()
        print(f"{total:,} samples in {events:,} events, {len(prepared)} batches, {PARTITIONS} partitions")
    finally:
        shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--points", type=int, default=720, help="5 s points per series (720 = 1 h)")
    parser.add_argument("--compression", default="lz4,zstd,none", help="codecs to compare, comma-separated")
    parser.add_argument("--concurrency", type=int, default=8, help="batches in flight (agents sending at once)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks it works")
    args = parser.parse_args()
    if args.smoke:
        args.hosts, args.points, args.compression = 10, 60, "lz4"
    asyncio.run(run(args.hosts, args.metrics, args.points, args.compression.split(","), args.concurrency))


if __name__ == "__main__":
    main()
