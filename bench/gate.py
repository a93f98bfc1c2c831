"""The smoke run's regression gate: figures against recorded budgets, as ratios to a
reference measured in the same run (this machine is shared and noisy: absolute times are not
comparable from one run to the next, ratios to work done alongside them mostly are).

- The reference (`calibrate`) is a fixed piece of work like Argus's own hot paths: generate a
  small workload and write it as Parquet (numpy + pyarrow), encode and decode 12k JSON
  objects, insert 12k rows into an in-memory SQLite. The median of several runs, taken at
  the start and again before the queries, so both halves of the smoke run are covered. Each
  run is timed twice: on the wall clock (`Reference.wall_s`) and in this process's CPU time
  (`Reference.cpu_s`). A CPU figure (the server's CPU seconds) is divided by the CPU
  reference and a wall figure by the wall one: CPU seconds over a wall-clock reference moved
  with the machine's load (66-102 within one stop; decision 0056), CPU over CPU does not.
- Query medians have their own reference: the median /healthz round trip to the same server,
  timed between the query's calls (same process, stack and moment, without the query's
  work), which tracks the machine's noise far better than work done at another moment.
- A timed figure is stored as figure / reference; a size (bytes per sample) or a figure set
  by a fixed interval (freshness, set by the projector's flush interval) as itself.
- The gate fails when a figure is worse than its budget by more than its tolerance (the
  figure's own `tolerance` in the budgets if set, else the file's), naming the figure, its
  value now, its budget and by how much. Tolerances stay below 100 %: a figure twice its
  budget always fails.

Budgets live in bench/smoke_budgets.json; `python -m bench.run --smoke --record-budgets`
adds the run to the last five recorded and sets each budget to their median (run it five
times in a row to move the budgets, on purpose, and say why in the change).
"""

from __future__ import annotations

import io
import json
import sqlite3
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from bench.workload import OutputFormat, WorkloadSpec, write

BUDGETS_PATH: Final = Path(__file__).resolve().parent / "smoke_budgets.json"
TOLERANCE: Final = 0.30

Kind = Literal["ratio", "absolute"]
Better = Literal["lower", "higher"]
Clock = Literal["wall", "cpu"]


def calibration_work() -> None:
    """One unit of reference work (~0.1-0.2 s here)."""
    spec = WorkloadSpec(end_ms=1_764_064_800_000, hosts=10, span_ms=10 * 60_000)
    write(spec, OutputFormat.PARQUET, io.BytesIO())
    rows = [{"metric": "cpu_user", "host": f"host-{i:04d}", "ts": i * 5000, "value": i * 0.25} for i in range(12_000)]
    decoded = [json.loads(json.dumps(r)) for r in rows]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (metric TEXT, host TEXT, ts INTEGER, value REAL, PRIMARY KEY (host, ts))")
    conn.executemany("INSERT INTO t VALUES (:metric, :host, :ts, :value)", decoded)
    conn.execute("SELECT host, avg(value) FROM t GROUP BY host").fetchall()
    conn.close()


@dataclass(frozen=True, slots=True)
class Reference:
    """The reference work's median time in this run: on the wall clock, and in CPU seconds of
    this process (`time.process_time`, all its threads)."""

    wall_s: float
    cpu_s: float

    @classmethod
    def median_of(cls, references: list[Reference]) -> Reference:
        return cls(statistics.median(r.wall_s for r in references), statistics.median(r.cpu_s for r in references))


def calibrate(runs: int = 5) -> Reference:
    """Median wall and CPU seconds of `calibration_work` over `runs` (after one warm-up)."""
    calibration_work()
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        calibration_work()
        cpus.append(time.process_time() - cpu0)
        walls.append(time.perf_counter() - wall0)
    return Reference(statistics.median(walls), statistics.median(cpus))


@dataclass(frozen=True, slots=True)
class Figure:
    """A gated figure. A ratio figure is divided by the run's reference on its `clock` (CPU
    seconds by CPU seconds, wall by wall); `reference_s`, when set, is this figure's own
    reference instead (a query's: the /healthz round trip measured between its calls)."""

    name: str
    value: float
    kind: Kind
    better: Better
    unit: str
    reference_s: float | None = None
    clock: Clock = "wall"


def smoke_figures(results: Mapping[str, Any]) -> list[Figure]:
    """The gated figures of a smoke run's results (bench.run's JSON)."""
    out: list[Figure] = []
    # The best of all ingest runs (every format, every repetition): on a shared machine noise
    # only ever slows a run down, so the fastest is the least disturbed.
    ingest = [run for entry in (results.get("ingest") or {}).values() for run in entry.get("runs", [])]
    if ingest:
        samples_m = results["dataset"]["samples"] / 1e6
        out.append(
            Figure(
                "ingest_queryable_s_per_million",
                min(e["queryable_s"] for e in ingest) / samples_m,
                "ratio",
                "lower",
                "s per million samples, push start -> all queryable, best run",
            )
        )
        out.append(
            Figure(
                "server_cpu_s_per_million",
                min(e["server_cpu_s_per_million"] for e in ingest),
                "ratio",
                "lower",
                "server CPU s per million samples, best run",
                clock="cpu",
            )
        )
    storage = results.get("storage") or {}
    if storage:
        out.append(Figure("gauge_5s_bytes_per_sample", storage["gauge_5s_bytes_per_sample"], "absolute", "lower", "B"))
        out.append(
            Figure("all_tiers_bytes_per_sample", storage["all_tiers_chunk_bytes_per_sample"], "absolute", "lower", "B")
        )
    # Queries: the server's CPU per call (query + /healthz round trip), over the CPU reference.
    # Their latencies are reported, not gated: on a loaded 2-core machine a query's median
    # moved 20x between runs (0.5 -> 11.5 ms) and neither a /healthz round trip nor the wall
    # reference followed it (decision 0056).
    for name, q in (results.get("queries") or {}).items():
        if q.get("calls"):
            out.append(
                Figure(
                    f"{name}_server_cpu_ms_per_call",
                    q["server_cpu_s"] * 1000 / q["calls"],
                    "ratio",
                    "lower",
                    "server CPU ms per call (query + /healthz)",
                    clock="cpu",
                )
            )
    fresh = results.get("freshness") or {}
    if fresh:
        out.append(Figure("freshness_p50_ms", fresh["p50_ms"], "absolute", "lower", "ms"))
    return out


def reference_for(fig: Figure, reference: Reference) -> float:
    """The seconds a ratio figure is divided by: its own reference, else the run's on its clock."""
    if fig.reference_s:
        return fig.reference_s
    return reference.cpu_s if fig.clock == "cpu" else reference.wall_s


def normalised(fig: Figure, reference: Reference) -> float:
    """What is compared with the budget: a time (lower is better) over the reference time, a
    rate (higher is better) times it, anything else as it is."""
    if fig.kind == "absolute":
        return fig.value
    ref = reference_for(fig, reference)
    return fig.value / ref if fig.better == "lower" else fig.value * ref


RECORDED_RUNS: Final = 5


def record(
    figures: list[Figure], reference: Reference, *, note: str, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Budgets from this run and the last RECORDED_RUNS - 1 recorded before it (in `previous`):
    each budget is the median of its figure over those runs, so one lucky or unlucky run does
    not set it. Record several runs in a row to set them. The tolerances (the file's and each
    figure's) are kept from `previous`: they are set by hand from measured spreads.

    Runs recorded before the CPU reference existed (no `reference_cpu_s`) are dropped: their
    CPU figures were divided by a wall-clock reference."""
    this = {f.name: round(normalised(f, reference), 4) for f in figures}
    kept = [r for r in (previous or {}).get("runs", []) if "reference_cpu_s" in r]
    run = {
        "note": note,
        "reference_s": round(reference.wall_s, 4),
        "reference_cpu_s": round(reference.cpu_s, 4),
        "figures": this,
    }
    runs = [*kept, run][-RECORDED_RUNS:]
    before: Mapping[str, Any] = (previous or {}).get("figures", {})
    entries: dict[str, dict[str, Any]] = {}
    for f in figures:
        entry: dict[str, Any] = {
            "budget": round(statistics.median(r["figures"][f.name] for r in runs if f.name in r["figures"]), 4),
            "kind": f.kind,
            "better": f.better,
            "unit": f.unit,
        }
        if f.kind == "ratio" and not f.reference_s:
            entry["clock"] = f.clock
        if "tolerance" in before.get(f.name, {}):
            entry["tolerance"] = before[f.name]["tolerance"]
        entries[f.name] = entry
    return {
        "note": (
            f"each budget is the median of the last {len(runs)} recorded runs (a timed figure over the "
            "reference on its clock); tolerances are set by hand from measured spreads (bench/README.md)"
        ),
        "tolerance": (previous or {}).get("tolerance", TOLERANCE),
        "figures": entries,
        "runs": runs,
    }


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    ok: bool
    change: float  # + is worse, as a fraction of the budget
    message: str


MAX_TOLERANCE: Final = 0.95
"""A tolerance is capped below 100 %: whatever the budgets file says, twice the budget fails."""


def check(figures: list[Figure], reference: Reference, budgets: Mapping[str, Any]) -> list[Verdict]:
    """Each figure that has a budget against it; a figure without one is reported, not failed."""
    default_tolerance = float(budgets.get("tolerance", TOLERANCE))
    verdicts: list[Verdict] = []
    recorded: Mapping[str, Any] = budgets.get("figures", {})
    for fig in figures:
        b = recorded.get(fig.name)
        if b is None:
            verdicts.append(Verdict(fig.name, True, 0.0, f"{fig.name}: no budget recorded (not gated)"))
            continue
        now = normalised(fig, reference)
        budget = float(b["budget"])
        tolerance = min(MAX_TOLERANCE, float(b.get("tolerance", default_tolerance)))
        if budget <= 0:
            verdicts.append(Verdict(fig.name, True, 0.0, f"{fig.name}: budget {budget} is not positive (not gated)"))
            continue
        change = now / budget - 1 if fig.better == "lower" else budget / now - 1 if now > 0 else float("inf")
        ok = change <= tolerance
        ref_ms = reference_for(fig, reference) * 1000
        clock = "" if fig.reference_s else f" {fig.clock}"
        shown = (
            f"{fig.value:g} {fig.unit} against a{clock} reference of {ref_ms:.3g} ms: {now:.4g}, budget {budget:.4g}"
            if fig.kind == "ratio"
            else f"{fig.value:g} {fig.unit}, budget {budget:g}"
        )
        word = "worse" if change > 0 else "better"
        message = f"{fig.name}: {abs(change) * 100:.0f} % {word} than its budget ({shown})"
        if not ok:
            message = f"REGRESSION {message}; the limit is {tolerance * 100:.0f} %"
        verdicts.append(Verdict(fig.name, ok, change, message))
    return verdicts


def load_budgets(path: Path = BUDGETS_PATH) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
