"""Alert read models on DynamoDB Local (docs/decisions/0059-dynamodb-alert-read-models.md):
apply throughput (instance transitions/s, each with its timeline entry) and `instances`
latency with N instances in one tenant, against the SQLite store on the same data.

    python -m bench.bench_alert_read_models [--instances 10000] [--rounds 3] [--batch 1000]
        [--reads 5] [--concurrency 32]

Starts its own DynamoDB Local (harness/services), prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from core.adapters.dynamodb_alert_read_models import DynamoDBAlertReadModels
from core.adapters.sqlite_alert_read_models import SqliteAlertReadModels
from core.ports import AlertModelBatch, AlertReadModelStore, StoredAlertInstance, StoredHistoryEntry
from harness.services.dynamodb import ACCESS_KEY_ID, SECRET_ACCESS_KEY, DynamoDBLocal

STATES = ("pending", "firing", "resolved", "inactive")
PAYLOAD = b"x" * 300  # about an AlertStateChanged with a few labels


def _batches(instances: int, rounds: int, batch: int) -> list[AlertModelBatch]:
    """`rounds` transitions of every instance, in batches of `batch` records (as the projector)."""
    out: list[AlertModelBatch] = []
    offset = 0
    for r in range(rounds):
        for lo in range(0, instances, batch):
            ids = range(lo, min(lo + batch, instances))
            out.append(
                AlertModelBatch(
                    instances=[
                        StoredAlertInstance(
                            tenant="t1",
                            instance_id=f"host-{n}",
                            rule=f"rule-{n % 20}",
                            state=STATES[(r + n) % 4],
                            sequence=r + 1,
                            episode_sequence=r + 1,
                            payload=PAYLOAD,
                        )
                        for n in ids
                    ],
                    entries=[
                        StoredHistoryEntry(
                            tenant="t1",
                            kind="state",
                            time_ms=1_000 * (offset + k),
                            partition=0,
                            offset=offset + k,
                            rules=(f"rule-{n % 20}",),
                            instances=(f"host-{n}",),
                            detail=b"{}",
                            event_type="argus.alerts.v1.AlertStateChanged",
                            payload=PAYLOAD,
                        )
                        for k, n in enumerate(ids)
                    ],
                    positions={0: offset + len(ids)},
                )
            )
            offset += len(ids)
    return out


async def _measure(name: str, store: AlertReadModelStore, batches: list[AlertModelBatch], reads: int) -> list[str]:
    await store.start()
    try:
        transitions = sum(len(b.instances) for b in batches)
        t0 = time.perf_counter()
        for b in batches:
            await store.apply(b)
        apply_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        await store.apply(batches[-1])  # a re-read batch: every write is a no-op
        again_s = time.perf_counter() - t0
        rows = [f"| {name} | apply | {transitions:,} transitions | {transitions / apply_s:,.0f} /s |"]
        rows.append(f"| {name} | re-apply a batch | {len(batches[-1].instances):,} no-ops | {again_s * 1000:.0f} ms |")
        for label, states, rule in (
            ("instances(all 4 states)", list(STATES), None),
            ("instances(firing)", ["firing"], None),
            ("instances(firing, rule)", ["firing"], "rule-4"),
        ):
            times, found = [], 0
            for _ in range(reads):
                t0 = time.perf_counter()
                found = len(await store.instances("t1", states, rule=rule))
                times.append(time.perf_counter() - t0)
            rows.append(f"| {name} | {label} | {found:,} returned | {statistics.median(times) * 1000:.0f} ms median |")
        return rows
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> None:
    batches = _batches(args.instances, args.rounds, args.batch)
    with tempfile.TemporaryDirectory() as work:
        server = DynamoDBLocal(work_dir=Path(work)).start()
        try:
            ddb = DynamoDBAlertReadModels.from_url(
                server.url(prefix="bench_", credentials=False),
                access_key_id=ACCESS_KEY_ID,
                secret_access_key=SECRET_ACCESS_KEY,
                max_concurrency=args.concurrency,
            )
            rows = await _measure("DynamoDB Local", ddb, batches, args.reads)
            print(f"(DynamoDB stats: {ddb.stats})")
            rows += await _measure("SQLite", SqliteAlertReadModels(Path(work) / "alerts.db"), batches, args.reads)
        finally:
            server.stop()
    print("| store | operation | size | result |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32, help="DynamoDB requests in flight")
    asyncio.run(main(parser.parse_args()))
