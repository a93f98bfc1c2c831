"""Live panels: server CPU with 0, 1 and 100 viewers of the same live query
(docs/decisions/0037-live-queries-shared-subscriptions.md).

A real `argus up --no-collector` (harness/); one gauge series gets a sample every
`--push-interval` seconds (so each poll finds a changed bucket and every viewer gets deltas);
viewers are gRPC-web `QueryService.Watch` streams on the HTTP port read by this process.
For each viewer count: warm up, then the CPU time (user + system, psutil) of the server's
whole process tree over `--seconds`. Goal: 100 viewers cost < 3x one viewer.

    python -m bench.bench_live [--seconds 30] [--viewers 1,100] [--push-interval 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import grpc
import psutil

from contracts.argus.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from contracts.argus.metrics.v1 import metrics_pb2
from contracts.argus.query.v1 import query_pb2
from harness.argus_up import ArgusUp
from harness.grpc_web import frame, frames, parse_trailer, request_headers

METRIC = "bench_live_temp"
WATCH = "/argus.query.v1.QueryService/Watch"
WARMUP_S = 3.0


def tree_cpu_s(root: psutil.Process) -> float:
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def pusher(server: ArgusUp, interval_s: float, stop: threading.Event, acked: dict[float, float]) -> None:
    """Push sample n (value n) every `interval_s`; `acked[n]` = when the ingest acknowledged it."""
    channel = grpc.insecure_channel(server.ingest_target)
    stub = ingest_pb2_grpc.IngestServiceStub(channel)  # type: ignore[no-untyped-call]
    metadata = (("authorization", f"Bearer {server.api_key}"),)
    n = 0
    try:
        while not stop.wait(interval_s):
            n += 1
            batch = metrics_pb2.SampleBatch(batch_id=f"bench-live-{n}-{secrets.token_hex(4)}", source="bench-live")
            s = batch.series.add(metric=METRIC, kind=metrics_pb2.METRIC_KIND_GAUGE)
            s.labels.add(name="room", value="lab")
            s.timestamps_ms.append(time.time_ns() // 1_000_000)
            s.values.append(float(n))
            result = stub.PushBatch(ingest_pb2.PushBatchRequest(batch=batch), metadata=metadata, timeout=10).result
            if result.status != ingest_pb2.BATCH_STATUS_ACCEPTED:
                raise RuntimeError(f"push refused: {result}")
            acked[float(n)] = time.monotonic()
    finally:
        channel.close()


async def viewer(
    http: aiohttp.ClientSession, url: str, key: str, received: list[int], index: int, seen: dict[float, float] | None
) -> None:
    """One live panel; `seen[v]` (when given) = when value v first arrived (agg=last: each
    pushed sample changes its bucket)."""
    request = query_pb2.WatchRequest(queries=[query_pb2.QueryRequest(metric=METRIC, period="5s", agg="last")])
    async with http.post(url, data=frame(request), headers=request_headers(key)) as response:
        async for flag, payload in frames(response):
            if flag & 0x80:
                raise RuntimeError(f"viewer {index} ended: {parse_trailer(payload)}")
            received[index] += 1
            if seen is not None:
                now = time.monotonic()
                for update in query_pb2.WatchResponse.FromString(payload).updates:
                    for series in update.series:
                        for value in series.values:
                            seen.setdefault(value, now)


def delays(acked: dict[float, float], seen: dict[float, float], since: float) -> str:
    """Ingest ack -> the first update showing that sample or a later one (a later sample in
    the same bucket replaces it under agg=last), p50/p99, for samples pushed after `since`."""
    shown = sorted(seen.items())
    got = []
    for n, t in sorted(acked.items()):
        if t < since:
            continue
        times = [at for value, at in shown if value >= n]
        if times:
            got.append(max(0.0, min(times) - t))
    if not got:
        return "no pushed sample seen"
    got.sort()
    p50, p99 = got[len(got) // 2], got[min(len(got) - 1, int(len(got) * 0.99))]
    return f"ack->update p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms ({len(got)} samples)"


async def measure(
    server: ArgusUp, root: psutil.Process, viewers: int, seconds: float, acked: dict[float, float]
) -> tuple[float, int, str]:
    """CPU seconds of the server over `seconds` with `viewers` open, messages received, and
    what the viewers saw (messages per viewer, delays)."""
    url = f"http://127.0.0.1:{server.http_port}{WATCH}"
    received = [0] * viewers
    seen: dict[float, float] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as http:
        tasks = [
            asyncio.create_task(viewer(http, url, server.api_key, received, i, seen if i == 0 else None))
            for i in range(viewers)
        ]
        await asyncio.sleep(WARMUP_S)  # benchmark pacing: every viewer has its snapshot
        since = time.monotonic()
        before_msgs = sum(received)
        before = tree_cpu_s(root)
        await asyncio.sleep(seconds)
        used = tree_cpu_s(root) - before
        msgs = sum(received) - before_msgs
        detail = ""
        if viewers:
            per = sorted(received)
            detail = (
                f"\n  messages per viewer (incl. warm-up): min {per[0]}, median {per[len(per) // 2]}, max {per[-1]}"
                f"\n  {delays(acked, seen, since)}"
            )
        failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
        if failed:
            raise RuntimeError(f"{len(failed)} of {viewers} viewers failed, e.g. {failed[0]}")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return used, msgs, detail


async def run(args: argparse.Namespace) -> None:
    counts = [int(v) for v in args.viewers.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        server = ArgusUp(Path(tmp) / "data", api_key="argus_bench_" + secrets.token_hex(12))
        server.start()
        stop = threading.Event()
        acked: dict[float, float] = {}
        thread = threading.Thread(target=pusher, args=(server, args.push_interval, stop, acked), daemon=True)
        thread.start()
        try:
            root = psutil.Process(server.pid)
            results: dict[int, tuple[float, int, str]] = {}
            for n in [0, *counts]:
                results[n] = await measure(server, root, n, args.seconds, acked)
                used, msgs, detail = results[n]
                print(
                    f"viewers {n:>4}: server CPU {used:6.2f} s over {args.seconds:.0f} s "
                    f"({100 * used / args.seconds:5.1f} % of a core); {msgs} messages received{detail}",
                    flush=True,
                )
            if 1 in results and max(counts) > 1:
                top = max(counts)
                ratio = results[top][0] / results[1][0] if results[1][0] else float("inf")
                base = results[0][0]
                extra = results[top][0] - results[1][0]
                print(
                    f"{top} viewers / 1 viewer: {ratio:.2f}x server CPU (goal < 3x); "
                    f"the {top - 1} extra viewers add {extra:.2f} CPU s over {args.seconds:.0f} s "
                    f"(0 viewers, pushes only: {base:.2f} s)"
                )
        finally:
            stop.set()
            thread.join(timeout=10)
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--viewers", default="1,100", help="comma-separated viewer counts (0 is always measured)")
    parser.add_argument("--push-interval", type=float, default=0.5, help="seconds between two pushed samples")
    args = parser.parse_args(argv)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
