"""The pure parts of bench/bench_web.py: the seeded history, the dashboard, the summaries."""

from __future__ import annotations

import itertools

import pytest

from bench.bench_web import (
    DAY_MS,
    HOUR_MS,
    dashboard_spec,
    history,
    human_ms,
    slope_per_hour,
    summarize_draws,
    summarize_soak,
)
from core.dashboards.schema import check_spec

NOW = 1_765_000_123_456


@pytest.mark.parametrize("longest", [HOUR_MS, 2 * HOUR_MS, DAY_MS, 30 * DAY_MS, 365 * DAY_MS, 400 * DAY_MS])
def test_history_reaches_back_to_the_longest_range_and_coarsens_with_age(longest: int) -> None:
    segments = history(10, 1, longest, NOW)
    specs = [s.spec for s in segments]
    assert specs[0].start_ms <= NOW - longest + segments[0].cadence_ms
    assert NOW - specs[-1].end_ms < 5_000 and segments[-1].cadence_ms == 5_000
    cadences = [s.cadence_ms for s in segments]
    assert cadences == sorted(cadences, reverse=True)  # oldest first, coarsest first
    for older, newer in itertools.pairwise(specs):
        # Contiguous to within one cadence of the older segment, never overlapping.
        assert 0 <= newer.start_ms - older.end_ms < older.step_ms
    for s in segments:
        assert s.spec.start_ms % s.cadence_ms == 0 and s.spec.hosts == 10


def test_history_of_a_year_is_small() -> None:
    samples = sum(s.spec.samples for s in history(1000, 1, 365 * DAY_MS, NOW))
    assert 1_500_000 < samples < 2_500_000  # 1,000 series; a 5 s cadence would be 6.3 G


def test_dashboard_passes_the_server_schema_and_queries_differ() -> None:
    spec = dashboard_spec(12, ["cpu_user", "cpu_system"])
    check_spec(spec)
    targets = [(p["targets"][0]["metric"], p["targets"][0]["agg"]) for p in spec["panels"]]
    assert len(targets) == 12 and len(set(targets)) == 12
    assert all(p["type"] == "timeseries" and p["targets"][0]["group_by"] == ["host"] for p in spec["panels"])
    assert len({(p["gridPos"]["x"], p["gridPos"]["y"]) for p in spec["panels"]}) == 12  # no overlap
    one = dashboard_spec(12, ["cpu_user"])["panels"]
    assert [p["targets"][0]["agg"] for p in one[:6]] == [p["targets"][0]["agg"] for p in one[6:]]
    assert len({p["targets"][0]["agg"] for p in one}) == 6


def test_slope_per_hour() -> None:
    assert slope_per_hour([0, 1800, 3600], [10.0, 15.0, 20.0]) == pytest.approx(10.0)
    assert slope_per_hour([0, 30, 60], [5.0, 5.0, 5.0]) == 0.0
    assert slope_per_hour([0], [5.0]) == 0.0


def _draw(ms: float, errors: list[str] | None = None) -> dict[str, object]:
    mb = 1024 * 1024
    return {
        "event": "draw",
        "range": "1h",
        "drawMs": ms,
        "domContentLoadedMs": 50,
        "firstQueryStartMs": 60,
        "lastQueryEndMs": ms / 2,
        "queries": 2,
        "drawnPanels": 2 - len(errors or []),
        "errors": errors or [],
        "points": 200,
        "heapUsed": 10 * mb,
        "browser_rss": 900 * mb,
        "browser_pss": 400 * mb,
        "renderer_rss": 300 * mb,
    }


def test_draw_summary_median_p95_and_errors() -> None:
    lines = [_draw(float(ms)) for ms in range(100, 1100, 100)] + [_draw(5000.0, ["too many points"])]
    got = summarize_draws([{"event": "warmup", "range": "1h"}, *lines], ["1h", "24h"])
    assert list(got) == ["1h"]
    d = got["1h"]
    assert d["reloads"] == 11 and d["draw_ms_median"] == 600 and d["draw_ms_p95"] == 5000
    assert d["panels_drawn"] == 1 and d["panel_errors"] == ["too many points"]
    assert d["js_heap_mb_median"] == 10.0 and d["browser_pss_mb_median"] == 400.0


def test_soak_summary_reports_growth() -> None:
    mb = 1024 * 1024
    lines = [
        {
            "event": "soak",
            "t": t,
            "points": 100,
            "errors": 0,
            "heapUsed": (10 + t / 60) * mb,
            "browser_pss": 500 * mb,
            "renderer_rss": 300 * mb,
        }
        for t in range(0, 301, 30)
    ]
    got = summarize_soak(lines)
    assert got is not None
    assert got["samples"] == 11 and got["minutes"] == 5.0
    assert got["js_heap_mb"] == {"first": 10.0, "last": 15.0, "max": 15.0}
    assert got["js_heap_mb_per_hour"] == pytest.approx(60.0)
    assert got["renderer_rss_mb_per_hour"] == 0.0
    assert summarize_soak([]) is None


def test_human_durations() -> None:
    assert [human_ms(x) for x in (335 * DAY_MS, DAY_MS, 23 * HOUR_MS, 300_000, 5_000, 90_000)] == [
        "335d",
        "1d",
        "23h",
        "5m",
        "5s",
        "90s",
    ]
