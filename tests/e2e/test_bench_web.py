"""bench/bench_web.py, tiny: a real `argus up`, 2 panels x 50 series over 1 h, one reload in
headless chromium; the figures it writes are positive and hang together."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench import bench_web

pytestmark = pytest.mark.e2e


def test_bench_web_tiny_run_gives_sane_figures(tmp_path: Path) -> None:
    assert (bench_web.WEB / "dist" / "index.html").is_file(), "the app is not built: `make web` builds it"
    began = time.monotonic()
    code = bench_web.main(
        ["--panels", "2", "--series", "50", "--ranges", "1h", "--reloads", "1", "--out", str(tmp_path), "--name", "t"]
    )
    took = time.monotonic() - began
    assert code == 0
    results = json.loads((tmp_path / "t.json").read_text())
    draw = results["draw"]["1h"]
    assert draw["reloads"] == 1 and draw["panels_drawn"] == 2 and draw["panel_errors"] == []
    # A draw follows the page's start and the panels' answers, and takes less than the run.
    assert 0 < draw["dom_content_loaded_ms_median"] <= draw["draw_ms_median"] < took * 1000
    assert draw["queries"] >= 2 and draw["last_query_end_ms_median"] <= draw["draw_ms_median"]
    assert draw["points_per_panel"] >= 300  # 1 h of 5 s samples: the 5s or 1m tier, every bucket
    assert 1 < draw["js_heap_mb_median"] < 1024
    assert 0 < draw["renderer_rss_mb_median"] <= draw["browser_rss_mb_median"]
    assert 0 < draw["browser_pss_mb_median"] <= draw["browser_rss_mb_median"]
    assert results["server_queries"]["1h"]["series"] == 50 and results["server_queries"]["1h"]["sum_ms"] > 0
    assert results["seed"]["samples"] == 50 * 720
    assert 0 < results["bundle"]["gzip_bytes"] < results["bundle"]["bytes"]
    assert results["soak"] is None and results["page_errors"] == []
    md = (tmp_path / "t.md").read_text()
    assert "| 1h | 1 |" in md
