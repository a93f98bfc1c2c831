"""The client library in direct mode against a real `argus up`: aggregate in-process, push
to ingest with an API key, and find every kind back through the query API."""

from __future__ import annotations

import time

from agent.client import Client, ClientConfig
from tests.e2e.conftest import ArgusServer, wait_for


def test_direct_mode_pushes_every_kind_and_flushes_on_close(argus_server: ArgusServer) -> None:
    # Every check reads one 1-hour point: keep the writes clear of an hour boundary.
    to_boundary = 3_600 - time.time() % 3_600
    if to_boundary < 15:
        time.sleep(to_boundary + 0.1)
    client = Client(
        ClientConfig(
            mode="direct",
            ingest_addr=argus_server.ingest_target,
            api_key=argus_server.api_key,
            region="us-east-1",
            labels={"job": "e2e"},
            flush_interval_s=0.05,
        )
    )
    start_ms = int(time.time() * 1000) - 60_000
    hits = client.counter("e2e_client_hits", {"route": "/a"})
    lat = client.timer("e2e_client_latency_ms")
    users = client.distinct("e2e_client_users")
    temp = client.gauge("e2e_client_temp")
    for i in range(1_000):
        hits.inc(2)
        lat.observe(float(i % 100))
        users.add(f"u{i % 37}")
    temp.set(21.5)
    client.close()  # short-lived job: everything is pushed by now
    assert client.stats.batches_pushed >= 1
    assert client.stats.batches_dropped == 0

    def window(metric: str, agg: str) -> list[tuple[str, str]]:
        return [
            ("metric", metric),
            ("agg", agg),
            ("period", "1h"),
            ("start", str(start_ms)),
            ("end", str(start_ms + 3_600_000)),
        ]

    def answers() -> dict[str, float] | None:
        got = {
            "hits": argus_server.total(window("e2e_client_hits", "sum")),
            "count": argus_server.total(window("e2e_client_latency_ms", "count")),
            "max": argus_server.total(window("e2e_client_latency_ms", "max")),
            "users": argus_server.total(window("e2e_client_users", "distinct")),
            "temp": argus_server.total(window("e2e_client_temp", "last")),
        }
        return got if got["hits"] == 2_000 and got["temp"] == 21.5 else None

    got = wait_for("the client's samples to be queryable", answers, timeout_s=30.0, interval_s=0.1)
    assert got["count"] == 1_000
    assert got["max"] == 99.0
    assert abs(got["users"] - 37) < 1
    body = argus_server.query([*window("e2e_client_latency_ms", "p50"), ("group_by", "job")])
    ((_, p50),) = [p for s in body["series"] for p in s["points"] if p[1] is not None]
    assert abs(p50 - 49.0) <= 0.5  # 1 % sketch accuracy
