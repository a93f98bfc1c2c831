"""The smoke gate (bench.gate) and the side-by-side report's table (bench.report)."""

from __future__ import annotations

from typing import Any

from bench.gate import Figure, Reference, check, record, smoke_figures
from bench.report import ratio, render_peers_markdown

REF = Reference(wall_s=0.2, cpu_s=0.1)


def slower(factor: float, ref: Reference = REF) -> Reference:
    """The reference on a machine `factor` times as slow on both clocks."""
    return Reference(ref.wall_s * factor, ref.cpu_s * factor)


def figures(q3_ms: float = 4.0, bytes_per_sample: float = 2.0, rate: float = 100.0) -> list[Figure]:
    return [
        Figure("Q3_median_ms", q3_ms, "ratio", "lower", "ms"),
        Figure("gauge_5s_bytes_per_sample", bytes_per_sample, "absolute", "lower", "B"),
        Figure("rate", rate, "ratio", "higher", "/s"),
    ]


BUDGETS = record(figures(), REF, note="test")


def failed(verdicts: list[Any]) -> list[str]:
    return [v.name for v in verdicts if not v.ok]


def test_the_recorded_run_passes_its_own_budgets() -> None:
    assert failed(check(figures(), REF, BUDGETS)) == []


def test_a_timed_figure_is_judged_relative_to_the_reference() -> None:
    # Twice as slow on a machine twice as slow: no regression.
    assert failed(check(figures(q3_ms=8.0, rate=50.0), slower(2), BUDGETS)) == []
    # 29 % slower on the same machine passes, 31 % fails.
    assert failed(check(figures(q3_ms=4.0 * 1.29), REF, BUDGETS)) == []
    verdicts = check(figures(q3_ms=4.0 * 1.31), REF, BUDGETS)
    assert failed(verdicts) == ["Q3_median_ms"]
    message = next(v.message for v in verdicts if not v.ok)
    assert message.startswith("REGRESSION Q3_median_ms: 31 % worse") and "limit is 30 %" in message


def test_higher_is_better_figures_fail_when_they_drop() -> None:
    assert failed(check(figures(rate=100.0 / 1.25), REF, BUDGETS)) == []
    assert failed(check(figures(rate=100.0 / 1.35), REF, BUDGETS)) == ["rate"]
    assert failed(check(figures(rate=1000.0), REF, BUDGETS)) == []


def test_absolute_figures_ignore_the_reference() -> None:
    size = [f for f in figures(bytes_per_sample=2.7) if f.kind == "absolute"]
    assert failed(check(size, slower(0.1), BUDGETS)) == ["gauge_5s_bytes_per_sample"]
    size = [f for f in figures(bytes_per_sample=2.5) if f.kind == "absolute"]
    assert failed(check(size, slower(10), BUDGETS)) == []


def test_a_figure_without_a_budget_is_reported_not_failed() -> None:
    verdicts = check([Figure("Q9_median_ms", 1e9, "ratio", "lower", "ms")], REF, BUDGETS)
    assert failed(verdicts) == [] and "no budget" in verdicts[0].message


def test_smoke_figures_are_taken_from_bench_run_results() -> None:
    results = {
        "dataset": {"samples": 2_000_000},
        "ingest": {
            "csv": {"runs": [{"queryable_s": 2.0, "server_cpu_s_per_million": 7.0}]},
            "parquet": {
                "runs": [
                    {"queryable_s": 4.0, "server_cpu_s_per_million": 5.0},
                    {"queryable_s": 3.0, "server_cpu_s_per_million": 6.0},
                ]
            },
        },
        "storage": {"gauge_5s_bytes_per_sample": 2.1, "all_tiers_chunk_bytes_per_sample": 7.9},
        "queries": {
            "Q1": {"median_ms": 0.6, "healthz_median_ms": 0.3, "server_cpu_s": 0.05, "calls": 100},
            "Q7": {"median_ms": 8.0, "server_cpu_s": 0.6, "calls": 100},
            "Q8": {"median_ms": 8.0},  # no CPU measured: not gated
        },
        "freshness": {"p50_ms": 500.0},
    }
    found = smoke_figures(results)
    got = {f.name: (f.value, f.kind) for f in found}
    assert got == {
        "ingest_queryable_s_per_million": (1.0, "ratio"),  # the best run of any format
        "server_cpu_s_per_million": (5.0, "ratio"),
        "gauge_5s_bytes_per_sample": (2.1, "absolute"),
        "all_tiers_bytes_per_sample": (7.9, "absolute"),
        "Q1_server_cpu_ms_per_call": (0.5, "ratio"),
        "Q7_server_cpu_ms_per_call": (6.0, "ratio"),
        "freshness_p50_ms": (500.0, "absolute"),
    }
    assert {f.name for f in found if f.clock == "cpu"} == {
        "server_cpu_s_per_million",
        "Q1_server_cpu_ms_per_call",
        "Q7_server_cpu_ms_per_call",
    }


def test_report_table_has_ratios_and_says_why_a_peer_is_missing() -> None:
    results: dict[str, Any] = {
        "started_at": "2026-11-25T00:00:00+00:00",
        "command": "python -m bench.peers_run",
        "machine": {
            "nproc": 2,
            "cpu_model": "x",
            "ram_gb": 1,
            "python": "3.11",
            "git_commit": "abc",
            "git_dirty": False,
        },
        "dataset": {"hosts": 1, "metrics": 10, "span": "2h", "samples": 1000, "series": 10},
        "systems": {
            "argus": {
                "ingest": {"parquet": {"median": {"e2e_samples_per_s": 300.0, "server_cpu_s_per_million": 4.0}}},
                "queries": {"Q3": {"median_ms": 20.0, "p99_ms": 30.0}},
            },
            "victoriametrics": {
                "available": True,
                "package": "victoria-metrics",
                "language": "MetricsQL",
                "ingest": {"median": {"e2e_samples_per_s": 600.0, "server_cpu_s_per_million": 1.0}},
                "queries": {"Q3": {"median_ms": 10.0, "p99_ms": 15.0, "query": "avg by (region) (x)"}},
            },
            "prometheus": {"available": False, "package": "prometheus", "reason": "promtool is not on PATH"},
        },
    }
    text = render_peers_markdown(results)
    assert "| Q3 median (ms) | lower | 20.0 | 10.0 | – | 2.00 | – |" in text
    assert "| server CPU per million samples (s) | lower | 4 | 1 | – | 4.00 | – |" in text
    assert "**prometheus**: not available: promtool is not on PATH" in text
    assert ratio(None, 1.0) == "–" and ratio(1.0, 0.0) == "–"


def test_budgets_are_the_median_of_the_last_recorded_runs() -> None:
    budgets = None
    for q3 in (4.0, 100.0, 5.0, 6.0, 4.5, 5.5):  # the first run falls out of the last five
        budgets = record(figures(q3_ms=q3), REF, note="t", previous=budgets)
    assert budgets is not None
    assert len(budgets["runs"]) == 5
    assert budgets["figures"]["Q3_median_ms"]["budget"] == 5.5 / REF.wall_s  # median of 100, 5, 6, 4.5, 5.5
    assert failed(check(figures(q3_ms=5.5 * 1.29), REF, budgets)) == []


def test_a_figure_with_its_own_reference_uses_it() -> None:
    budgets = record([Figure("Q1_median_ms", 0.6, "ratio", "lower", "ms", 0.0003)], REF, note="t")
    assert budgets["figures"]["Q1_median_ms"]["budget"] == 2000.0  # 0.6 ms over a 0.0003 s /healthz
    # The whole server twice as slow (query and /healthz alike): no regression.
    assert failed(check([Figure("Q1_median_ms", 1.2, "ratio", "lower", "ms", 0.0006)], REF, budgets)) == []
    assert failed(check([Figure("Q1_median_ms", 1.2, "ratio", "lower", "ms", 0.0003)], REF, budgets)) == [
        "Q1_median_ms"
    ]


def test_a_cpu_figure_is_judged_against_the_cpu_reference_not_the_wall_clock() -> None:
    cpu = Figure("server_cpu_s_per_million", 8.0, "ratio", "lower", "s", clock="cpu")
    budgets = record([cpu], REF, note="t")
    assert budgets["figures"]["server_cpu_s_per_million"]["budget"] == 80.0  # 8 s over 0.1 CPU s
    # Other work loads the machine: the wall clock is 5x slower, CPU time is not. The same CPU
    # seconds pass; twice the CPU fails, although over the wall clock it looks 2.5x better.
    loaded = Reference(wall_s=REF.wall_s * 5, cpu_s=REF.cpu_s)
    assert failed(check([cpu], loaded, budgets)) == []
    twice = Figure("server_cpu_s_per_million", 16.0, "ratio", "lower", "s", clock="cpu")
    assert failed(check([twice], loaded, budgets)) == ["server_cpu_s_per_million"]
    # A slower CPU (the reference's CPU time up too) moves both alike.
    assert failed(check([twice], Reference(REF.wall_s, REF.cpu_s * 2), budgets)) == []


def test_a_figure_tolerance_overrides_the_file_one_but_twice_the_budget_always_fails() -> None:
    budgets = record(figures(), REF, note="t")
    budgets["figures"]["Q3_median_ms"]["tolerance"] = 0.6
    assert failed(check(figures(q3_ms=4.0 * 1.55), REF, budgets)) == []
    assert failed(check(figures(q3_ms=4.0 * 1.65), REF, budgets)) == ["Q3_median_ms"]
    budgets["figures"]["Q3_median_ms"]["tolerance"] = 5.0  # a mistake in the file: capped
    assert failed(check(figures(q3_ms=4.0 * 2.0), REF, budgets)) == ["Q3_median_ms"]


def test_recording_keeps_the_tolerances_and_drops_runs_without_a_cpu_reference() -> None:
    budgets = record(figures(), REF, note="t")
    budgets["tolerance"] = 0.4
    budgets["figures"]["Q3_median_ms"]["tolerance"] = 0.6
    budgets["runs"].insert(0, {"note": "old", "reference_s": 0.1, "figures": {"Q3_median_ms": 1e6}})
    again = record(figures(q3_ms=6.0), REF, note="t2", previous=budgets)
    assert again["tolerance"] == 0.4
    assert again["figures"]["Q3_median_ms"]["tolerance"] == 0.6
    assert [r["note"] for r in again["runs"]] == ["t", "t2"]
    assert again["figures"]["Q3_median_ms"]["budget"] == 25.0  # median of 4 / 0.2 and 6 / 0.2
