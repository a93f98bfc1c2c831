"""The side-by-side report of `make bench-peers`: one markdown table and PNG plots.

    python -m bench.report bench/results/peers-<time>.json [STEM]    # re-render a saved run

Every figure for Argus and each peer, and the ratio Argus/peer (the "better" column says
which way is better). Plots: latency distributions per query and system (box plots, log
scale) and, over the ingest, each server's CPU use and RSS and the bytes its loader sent.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

QUERIES = ("Q1", "Q2", "Q3", "Q4", "Q5", "Q6a", "Q6b", "Q7")
Getter = Callable[[Mapping[str, Any]], float | None]


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _argus_ingest(sys_: Mapping[str, Any], key: str) -> float | None:
    ingest = sys_.get("ingest") or {}
    for entry in ingest.values():
        value = _dig(entry, "median", key)
        return None if value is None else float(value)
    return None


def figure_rows(samples: int) -> list[tuple[str, str, Getter, Getter]]:
    """(figure, better, value for Argus, value for a peer)."""

    def q(name: str, stat: str) -> tuple[Getter, Getter]:
        return (lambda a: _dig(a, "queries", name, stat), lambda p: _dig(p, "queries", name, stat))

    rows: list[tuple[str, str, Getter, Getter]] = [
        (
            "ingest, end to end: first byte → all queryable (samples/s)",
            "higher",
            lambda a: _argus_ingest(a, "e2e_samples_per_s"),
            lambda p: _dig(p, "ingest", "median", "e2e_samples_per_s"),
        ),
        (
            "server CPU per million samples (s)",
            "lower",
            lambda a: _argus_ingest(a, "server_cpu_s_per_million"),
            lambda p: _dig(p, "ingest", "median", "server_cpu_s_per_million"),
        ),
        (
            "server peak RSS (MB)",
            "lower",
            lambda a: _argus_ingest(a, "server_peak_rss_mb"),
            lambda p: _dig(p, "ingest", "median", "server_peak_rss_mb"),
        ),
        (
            "disk after flush/compaction, everything (bytes/sample)",
            "lower",
            lambda a: _per_sample(_dig(a, "storage", "files_after_stop", "total"), samples),
            lambda p: _dig(p, "storage", "bytes_per_sample"),
        ),
        (
            "disk, sample data only (bytes/sample; Argus: 5s tier chunks; peers: data files without index/WAL)",
            "lower",
            lambda a: _per_sample(_dig(a, "storage", "tiers", "5s", "chunk_bytes"), samples),
            lambda p: _dig(p, "storage", "data_bytes_per_sample"),
        ),
    ]
    for name in QUERIES:
        med, p99 = q(name, "median_ms"), q(name, "p99_ms")
        rows.append((f"{name} median (ms)", "lower", *med))
        rows.append((f"{name} p99 (ms)", "lower", *p99))
    rows += [
        (
            "freshness, ack → queryable p50 (ms)",
            "lower",
            lambda a: _dig(a, "freshness", "p50_ms"),
            lambda p: _dig(p, "freshness", "p50_ms"),
        ),
        (
            "freshness p99 (ms)",
            "lower",
            lambda a: _dig(a, "freshness", "p99_ms"),
            lambda p: _dig(p, "freshness", "p99_ms"),
        ),
    ]
    return rows


def _per_sample(total: Any, samples: int) -> float | None:
    return None if total is None or not samples else round(float(total) / samples, 3)


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def ratio(argus: float | None, peer: float | None) -> str:
    if argus is None or peer is None or peer == 0:
        return "–"
    return f"{argus / peer:.2f}"


def render_peers_markdown(results: Mapping[str, Any]) -> str:
    ds = results["dataset"]
    m = results["machine"]
    systems: Mapping[str, Any] = results["systems"]
    argus = systems.get("argus", {})
    peers = {k: v for k, v in systems.items() if k != "argus"}
    lines = [
        f"# Argus and its peers — {results['started_at']}",
        "",
        f"`{results['command']}`",
        "",
        f"Machine: {m['nproc']} CPU ({m['cpu_model']}), {m['ram_gb']} GB RAM, Python {m['python']}; "
        f"commit {m['git_commit'][:10]}{' (dirty)' if m['git_dirty'] else ''}. All systems on this machine, "
        "one after the other, in the same run.",
        "",
        f"Dataset: {ds['hosts']:,} hosts x {ds['metrics']} metrics x {ds['span']} at 5 s = {ds['samples']:,} samples "
        f"({ds['series']:,} series). Rates and bytes are per dataset sample (the peers store more points: see below).",
        "",
    ]
    header = ["figure", "better", "Argus (embedded)", *[p for p in peers]]
    header += [f"Argus/{p}" for p in peers]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for label, better, get_a, get_p in figure_rows(ds["samples"]):
        a = get_a(argus) if argus else None
        vals = [get_p(p) if p.get("available") else None for p in peers.values()]
        if a is None and all(v is None for v in vals):
            continue
        cells = [label, better, _fmt(a), *[_fmt(v) for v in vals], *[ratio(a, v) for v in vals]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Argus distributed (Kafka / DynamoDB / S3): not measured here (needs those servers; "
        "bench/bench_kafka.py, bench_dynamodb.py and bench_cold.py measure those paths)."
    )
    lines.append("")
    lines += ["## Systems", ""]
    if argus:
        lines.append(
            "- **argus**: `argus up` (one process), Parquet file pushed with `argus push`; "
            "HTTP query API; queries as in bench/README.md."
            + (f" Errors: {'; '.join(argus['errors'])}" if argus.get("errors") else "")
        )
        argus_notes = [f"{n}: {q['note']}" for n, q in (argus.get("queries") or {}).items() if q.get("note")]
        if _dig(argus, "dataset", "span_ms") and argus["dataset"]["span_ms"] > 7 * 86_400_000:
            argus_notes.append(
                "the 5s tier keeps 7 d (retention applies on write), so its bytes cover the last 7 d only; "
                "the event log holds every raw sample"
            )
        if argus_notes:
            lines.append("  Argus notes: " + "; ".join(argus_notes) + ".")
    for name, p in peers.items():
        if not p.get("available"):
            lines.append(f"- **{name}**: not available: {p.get('reason') or p.get('error')}")
            continue
        f = p.get("file", {})
        notes = "; ".join(_dig(p, "ingest", "notes") or [])
        lines.append(
            f"- **{name}** {p.get('version', '')} (Debian `{p['package']}`), {p['language']}: loaded "
            f"{f.get('format')} ({f.get('points', 0):,} points for the {ds['samples']:,} samples, "
            f"{f.get('bytes', 0) / 2**20:,.0f} MB){'; ' + notes if notes else ''}; "
            f"disk {_fmt(_dig(p, 'storage', 'bytes_per_point'))} bytes/stored point."
            + (f" Error: {p['error']}" if p.get("error") else "")
        )
    loads = [
        f"{n} {s['loadavg']['before'][0]:.1f} → {s['loadavg']['after'][0]:.1f}"
        for n, s in systems.items()
        if s.get("loadavg")
    ]
    if loads:
        lines += ["", f"Load average (1 min) before → after each system: {', '.join(loads)}."]
    lines += ["", "## Queries as each system ran them", ""]
    lines += ["| query | system | text |", "|---|---|---|"]
    for name in QUERIES:
        for sys_name, p in systems.items():
            q = _dig(p, "queries", name)
            if not q:
                continue
            text = q.get("query") or "&".join(f"{k}={v}" for k, v in (q.get("params") or {}).items())
            escaped = text.replace("|", "\\|")
            lines.append(f"| {name} | {sys_name} | `{escaped}` |")
    lines.append("")
    return "\n".join(lines)


def plot_latencies(results: Mapping[str, Any], path: Path) -> None:
    systems: Mapping[str, Any] = results["systems"]
    names = [q for q in QUERIES if any(_dig(s, "queries", q, "latencies_ms") for s in systems.values())]
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 4.2), squeeze=False)
    for ax, q in zip(axes[0], names, strict=True):
        data, labels = [], []
        for sys_name, s in systems.items():
            lat = _dig(s, "queries", q, "latencies_ms")
            if lat:
                data.append(lat)
                labels.append(sys_name[:8])
        ax.boxplot(data, whis=(1, 99), showfliers=True)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45, ha="right")
        ax.set_yscale("log")
        ax.set_title(q)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel("latency (ms), whiskers p1-p99")
    fig.suptitle("Warm query latency, client side")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _timeline(s: Mapping[str, Any]) -> Mapping[str, Sequence[float]] | None:
    t = _dig(s, "ingest", "timeline")
    if t:
        return t  # type: ignore[no-any-return]
    for entry in (s.get("ingest") or {}).values():
        if isinstance(entry, Mapping) and entry.get("timeline"):
            return entry["timeline"]  # type: ignore[no-any-return]
    return None


def plot_ingest(results: Mapping[str, Any], path: Path) -> None:
    systems: Mapping[str, Any] = results["systems"]
    fig, (ax_cpu, ax_rss, ax_sent) = plt.subplots(1, 3, figsize=(15, 4.2))
    for sys_name, s in systems.items():
        tl = _timeline(s)
        if not tl or len(tl["t_s"]) < 2:
            continue
        t, cpu = tl["t_s"], tl["cpu_s"]
        busy = [(cpu[i] - cpu[i - 1]) / max(1e-6, t[i] - t[i - 1]) for i in range(1, len(t))]
        ax_cpu.plot(t[1:], busy, label=sys_name, lw=1)
        ax_rss.plot(t, tl["rss_mb"], label=sys_name, lw=1)
        if any(tl["progress"]):
            ax_sent.plot(t, [b / 2**20 for b in tl["progress"]], label=sys_name, lw=1)
    ax_cpu.set(title="server CPU (cores busy)", xlabel="s since first byte")
    ax_rss.set(title="server RSS (MB)", xlabel="s since first byte")
    ax_sent.set(title="loader: MB sent (VictoriaMetrics, InfluxDB)", xlabel="s since first byte")
    for ax in (ax_cpu, ax_rss, ax_sent):
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_peers_report(results: Mapping[str, Any], directory: Path, stem: str) -> str:
    markdown = render_peers_markdown(results)
    plot_latencies(results, directory / f"{stem}-latency.png")
    plot_ingest(results, directory / f"{stem}-ingest.png")
    markdown += f"\n![query latency]({stem}-latency.png)\n\n![ingest over time]({stem}-ingest.png)\n"
    (directory / f"{stem}.md").write_text(markdown)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 2):
        print("usage: python -m bench.report RESULTS.json [STEM (default peers-latest)]", file=sys.stderr)
        return 2
    path = Path(args[0])
    results = json.loads(path.read_text())
    print(write_peers_report(results, path.parent, args[1] if len(args) == 2 else "peers-latest"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
