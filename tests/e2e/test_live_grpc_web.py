"""A live panel's path end to end against a real `argus up`: QueryService.Watch over gRPC-web
on the HTTP port gets the snapshot, then a just-pushed sample as a delta within seconds."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from contracts.argus.query.v1 import query_pb2
from harness.grpc_web import frame, frames, parse_trailer, request_headers
from tests.e2e.conftest import ArgusServer, measured, wait_for

WATCH = "/argus.query.v1.QueryService/Watch"
METRIC = "e2e_live_temp"
DELTA_DEADLINE_S = 10.0


def push(server: ArgusServer, value: float, ts_ms: int) -> None:
    batch = metrics_pb2.SampleBatch(batch_id=f"e2e-live-{time.monotonic_ns()}", source="e2e-live")
    s = batch.series.add(metric=METRIC, kind=metrics_pb2.METRIC_KIND_GAUGE)
    s.labels.add(name="room", value="lab")
    s.timestamps_ms.append(ts_ms)
    s.values.append(value)
    assert server.push_batch(batch).status == ingest_pb2.BATCH_STATUS_ACCEPTED


def points(update: query_pb2.WatchUpdate) -> dict[int, float]:
    return {t: v for s in update.series for t, v in zip(s.timestamps_ms, s.values, strict=True)}


async def test_watch_over_grpc_web_sends_the_snapshot_then_a_pushed_sample(argus_server: ArgusServer) -> None:
    first_ms = time.time_ns() // 1_000_000 - 60_000
    push(argus_server, 1.0, first_ms)
    params = [("metric", METRIC), ("period", "5s"), ("agg", "max"), ("start", "-1h")]
    wait_for("the first sample", lambda: argus_server.total(params) or None, timeout_s=60.0)

    request = query_pb2.WatchRequest(
        queries=[query_pb2.QueryRequest(metric=METRIC, period="5s", agg="max")], min_interval_ms=100
    )
    url = f"http://127.0.0.1:{argus_server.http_port}{WATCH}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=frame(request), headers=request_headers(argus_server.api_key)) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/grpc-web+proto"
        messages = frames(response)
        flag, payload = await asyncio.wait_for(anext(messages), DELTA_DEADLINE_S)
        assert flag == 0, parse_trailer(payload)
        (snapshot,) = query_pb2.WatchResponse.FromString(payload).updates
        assert snapshot.snapshot and snapshot.tier == "5s" and not snapshot.error
        assert 1.0 in points(snapshot).values()

        pushed_ms = time.time_ns() // 1_000_000
        pushed_at = time.monotonic()
        await asyncio.to_thread(push, argus_server, 42.0, pushed_ms)
        async with asyncio.timeout(DELTA_DEADLINE_S):
            while True:
                flag, payload = await anext(messages)
                assert flag == 0, parse_trailer(payload)
                for update in query_pb2.WatchResponse.FromString(payload).updates:
                    assert not update.snapshot  # only deltas after the snapshot
                    if points(update).get(pushed_ms - pushed_ms % 5_000) == 42.0:
                        break
                else:
                    continue
                break
        delay_s = time.monotonic() - pushed_at
        measured("push-to-live-update delay (s)", round(delay_s, 3))
        assert delay_s < DELTA_DEADLINE_S
