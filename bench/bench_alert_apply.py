"""Micro-benchmark of the alert evaluator's apply path at the issue's scale
(docs/decisions/0055-alert-apply-columnar-and-on-arrival.md).

One second of samples of `--series` series (one sample each, 1,000 series per record, the
bench_alerts shape) is decoded (`decode_sample_batch`), buffered (`SampleBuffer.add` +
`drain`, what the projectors do too) and applied by an evaluator with `--rules` rules (the
bench_alerts rules: max over 10 s of one shard each, group_by host), after a warm-up second
(every series selected once). CPU seconds (process_time) per second of samples, the median
of `--repeat` runs of each part; and the evaluation tick after each applied second.

    python -m bench.bench_alert_apply [--rules 1000] [--series 100000] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
from collections.abc import Callable, Sequence

from bench.bench_alerts import TENANT, _records, accepted, rules_in_process, sample_batch
from contracts.argus.events.v1 import events_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.consumer import Delivery
from core.samples import SampleBuffer, decode_sample_batch
from query_side.alerts.evaluator import AlertEvaluator

T0 = 1_764_072_000_000


def second_of(series: int, rules: int, t_ms: int, first: int) -> list[Delivery[events_pb2.SampleBatchAccepted]]:
    """Records of one sample per series at `t_ms`, 1,000 series per record, decoded from
    their stored payload as the runner hands them over."""
    out = []
    for n, lo in enumerate(range(0, series, 1000), first):
        chunk = range(lo, min(lo + 1000, series))
        batch = accepted(sample_batch(chunk, rules, [t_ms], [50.0], batch_id=f"a{n}"), chunk, rules)
        (delivery,) = _records([batch], n)
        out.append(Delivery(record=delivery.record, value=decode_sample_batch(delivery.record)))
    return out


def cpu(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def median_cpu(fn: Callable[[], object], repeat: int) -> float:
    return statistics.median(cpu(fn) for _ in range(repeat))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of apply")
    parser.add_argument("--buffer-only", action="store_true", help="decode and SampleBuffer only")
    args = parser.parse_args(argv)

    deliveries = second_of(args.series, args.rules, T0, 0)
    records = [d.record for d in deliveries]

    def decode() -> None:
        for record in records:
            decode_sample_batch(record)

    def buffer() -> None:
        b = SampleBuffer()
        for d in deliveries:
            b.add(d.value, d.record.partition, d.record.offset)
        b.drain()

    print(f"decode CPU s per second of samples: {median_cpu(decode, args.repeat):.3f}")
    print(f"SampleBuffer add+drain CPU s per second of samples: {median_cpu(buffer, args.repeat):.3f}")
    if args.buffer_only:
        return 0

    evaluate_cpu: list[float] = []

    async def applied() -> list[float]:
        clock = [T0 + 1000]
        evaluator = AlertEvaluator(
            log=MemoryEventLog(), rules=lambda: {TENANT: rules_in_process(args.rules)}, clock_ms=lambda: clock[0]
        )
        await evaluator.start()
        await evaluator.apply(deliveries)  # warm-up: every series selected
        await evaluator.evaluate(clock[0])
        out = []
        profiler = cProfile.Profile() if args.profile else None
        for k in range(args.repeat):
            clock[0] += 1000
            batch = second_of(args.series, args.rules, clock[0] - 1, (k + 1) * 1000)
            if profiler is not None:
                profiler.enable()
            t0 = time.process_time()
            await evaluator.apply(batch)
            out.append(time.process_time() - t0)
            if profiler is not None:
                profiler.disable()
            t0 = time.process_time()
            await evaluator.evaluate(clock[0])
            evaluate_cpu.append(time.process_time() - t0)
            await evaluator.settle(force=False)
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return out

    apply_cpu = asyncio.run(applied())
    print(f"evaluator apply CPU s per second of samples ({args.rules} rules): {statistics.median(apply_cpu):.3f}")
    print(f"evaluator evaluate CPU s per tick ({args.rules} rules): {statistics.median(evaluate_cpu):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
