"""bench.profile_server's summary of py-spy's collapsed stacks."""

from __future__ import annotations

from bench.profile_server import summarise

RAW = """\
run (asyncio/base_events.py:1) ;flush (/work/main/projectors/rollup.py:10);encode (/work/main/core/chunks.py:5) 6
run (asyncio/base_events.py:1) ;flush (/work/main/projectors/rollup.py:12);merge (/work/main/core/points.py:7) 3
run (asyncio/base_events.py:1) ;append (/work/main/core/adapters/sqlite_log.py:3) 1
"""


def test_self_and_inclusive_shares_per_function_across_lines() -> None:
    summary = summarise(RAW, top=3)
    assert summary["samples"] == 10
    assert summary["self"][0] == {"function": "encode (core/chunks.py)", "samples": 6, "share": 0.6}
    inclusive = {r["function"]: r["samples"] for r in summary["inclusive"]}
    # Two lines of flush (lines 10 and 12) are one function.
    assert inclusive["flush (projectors/rollup.py)"] == 9
    assert len(summary["inclusive"]) == 3
