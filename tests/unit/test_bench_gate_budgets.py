"""The recorded smoke budgets (bench/smoke_budgets.json) catch a real regression: a bench run
whose every figure is twice its budget fails the gate, figure by figure, through the same code
path `python -m bench.run --smoke` takes (bench.run.apply_gate)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.gate import BUDGETS_PATH, load_budgets
from bench.run import apply_gate, parse_args

SAMPLES = 60_000
WALL_S = 0.4
CPU_S = 0.1
CALLS = 100


def results_at(factor: float) -> dict[str, Any]:
    """A smoke run's results whose every gated figure is `factor` times its recorded budget."""
    budgets = load_budgets()
    assert budgets is not None, f"no budgets at {BUDGETS_PATH}"
    b = {name: float(entry["budget"]) * factor for name, entry in budgets["figures"].items()}
    suffix = "_server_cpu_ms_per_call"
    queries = {
        name.removesuffix(suffix): {"median_ms": 1.0, "server_cpu_s": value * CPU_S * CALLS / 1000, "calls": CALLS}
        for name, value in b.items()
        if name.endswith(suffix)
    }
    assert queries, "no query figure in the budgets"
    return {
        "ok": True,
        "command": "test",
        "started_at": "test",
        "reference_s": [WALL_S, WALL_S],
        "reference_cpu_s": [CPU_S, CPU_S],
        "dataset": {"samples": SAMPLES},
        "ingest": {
            "parquet": {
                "runs": [
                    {
                        "queryable_s": b["ingest_queryable_s_per_million"] * WALL_S * SAMPLES / 1e6,
                        "server_cpu_s_per_million": b["server_cpu_s_per_million"] * CPU_S,
                    }
                ]
            }
        },
        "storage": {
            "gauge_5s_bytes_per_sample": b["gauge_5s_bytes_per_sample"],
            "all_tiers_chunk_bytes_per_sample": b["all_tiers_bytes_per_sample"],
        },
        "queries": queries,
        "freshness": {"p50_ms": b["freshness_p50_ms"]},
    }


@pytest.mark.parametrize("factor", [1.0, 0.5])
def test_a_run_at_or_under_its_budgets_passes(factor: float) -> None:
    verdicts = apply_gate(results_at(factor), parse_args(["--smoke"]))
    budgets = load_budgets()
    assert budgets is not None
    assert {v.name for v in verdicts} == set(budgets["figures"])
    assert [v.message for v in verdicts if not v.ok] == []


def test_every_figure_twice_its_budget_fails_the_gate() -> None:
    results = results_at(2.0)
    verdicts = apply_gate(results, parse_args(["--smoke"]))
    budgets = load_budgets()
    assert budgets is not None
    assert sorted(v.name for v in verdicts if not v.ok) == sorted(budgets["figures"])
    for v in verdicts:
        assert v.message.startswith(f"REGRESSION {v.name}: 100 % worse"), v.message
    assert all(not entry["ok"] for entry in results["gate"])
