"""`argus replay` against a running `argus up`: the replayed read model is byte-identical to
the live one, and the query service switches to it with identical answers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.argus.ingest.v1 import ingest_pb2
from core.model import DEFAULT_TIERS
from tests.e2e import expected as ref
from tests.e2e.conftest import ArgusServer, measured, run_argus, wait_for

REPLAY_TIMEOUT_S = 120.0


def _chunks(db: Path) -> dict[str, dict[tuple[int, int], tuple[int, int, bytes]]]:
    """Every chunk of every tier: (series, chunk start) -> (partition, applied offset, bytes)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return {
            tier.name: {
                (sid, start): (partition, applied, bytes(data))
                for sid, start, partition, applied, data in c.execute(
                    f"SELECT series_id, chunk_start, partition, applied_offset, data FROM chunks_{tier.name}"
                )
            }
            for tier in DEFAULT_TIERS
        }


def _series(db: Path) -> set[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return set(c.execute("SELECT tenant, series_id, metric, kind, region, labels FROM series"))


def _answers(server: ArgusServer, ds: ref.Dataset) -> list[dict[str, Any]]:
    start = min(s.ts_ms for s in ds.samples)
    end = max(s.ts_ms for s in ds.samples) + 1
    out = []
    for metric in sorted({s.metric for s in ds.series}):
        for period in ("1m", "1h", "1d"):
            body = server.query(
                [
                    ("metric", metric),
                    ("agg", "count"),
                    ("period", period),
                    ("start", str(start)),
                    ("end", str(end)),
                    ("group_by", "*"),
                ]
            )
            body.pop("stats", None)
            out.append(body)
    return out


def test_replay_rebuilds_an_identical_read_model_and_queries_switch_to_it(
    server_factory: Callable[[], ArgusServer],
) -> None:
    server = server_factory().start()
    ds, _ = ref.generate(now_ms=time.time_ns() // 1_000_000)
    results = server.push_stream(ref.to_batches(ds, source="e2e-replay", prefix="replay"))
    assert all(r.status == ingest_pb2.BATCH_STATUS_ACCEPTED for r in results.values()), results
    server.barrier("before-replay")
    before = _answers(server, ds)
    assert any(s["points"] for body in before for s in body["series"]), "the data set answered nothing"

    started = time.monotonic()
    replay = run_argus(
        "replay", "--projector", "rollups", "--from-beginning", "--data-dir", str(server.data_dir),
        timeout_s=REPLAY_TIMEOUT_S,
    )  # fmt: skip
    measured("replay_seconds", round(time.monotonic() - started, 2))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "version 2 is active" in replay.stderr, replay.stderr

    live, replayed = server.data_dir / "hot.db", server.data_dir / "hot.v2.db"
    live_chunks, new_chunks = _chunks(live), _chunks(replayed)
    for tier in DEFAULT_TIERS:
        assert live_chunks[tier.name], f"no live chunks in tier {tier.name}"
        assert new_chunks[tier.name].keys() == live_chunks[tier.name].keys(), tier.name
        different = [k for k, v in live_chunks[tier.name].items() if new_chunks[tier.name][k] != v]
        assert not different, f"tier {tier.name}: {len(different)} chunks differ, e.g. {different[:3]}"
    assert _series(replayed) == _series(live)

    # The running server switches to version 2. Empty version 1 afterwards: identical answers
    # then can only come from version 2.
    wait_for(
        "the server to switch to version 2",
        lambda: "to version 2" in server.log_tail(400),
        timeout_s=30.0,
        interval_s=0.1,
    )
    with sqlite3.connect(live) as c:
        for tier in DEFAULT_TIERS:
            c.execute(f"DELETE FROM chunks_{tier.name}")
        c.execute("DELETE FROM series")
        c.execute("DELETE FROM postings")
    assert _answers(server, ds) == before

    # The live projectors continue on version 2 under its consumer groups.
    server.barrier("after-replay")
    assert _chunks(live)["5s"] == {}, "a projector still writes to version 1"

    # Version 1's consumer groups are forgotten, so they no longer hold the log's retention back;
    # version 2's are there.
    def groups() -> set[str]:
        with sqlite3.connect(f"file:{server.data_dir / 'events.db'}?mode=ro", uri=True) as c:
            return {g for (g,) in c.execute("SELECT DISTINCT group_name FROM checkpoints")}

    assert {"rollups.v2", "series-index.v2"} <= groups()
    assert not {"rollups", "series-index"} & groups()
