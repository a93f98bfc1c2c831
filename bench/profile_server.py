"""Where `argus up`'s time goes while it ingests and projects the devops dataset (py-spy).

    python -m bench.profile_server [--hosts 200] [--span 2h] [--format parquet] [--top 25] [--out DIR]

Starts `argus up` on free ports (like bench.run), attaches `py-spy record --format raw` to it
(non-blocking, 100 Hz, idle threads left out) and pushes the dataset until all
of it is queryable. Then prints the functions with the most samples, by self time and by
inclusive time, and writes the collapsed stacks (`profile.txt`, for any flame-graph tool)
and a JSON summary (`summary.json`). Needs py-spy (`pip install py-spy`) and ptrace
rights on the server (root, or kernel.yama.ptrace_scope = 0).
"""

from __future__ import annotations

import argparse
import collections
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.run import (
    RESULTS_DIR,
    ArgusServer,
    BenchFailure,
    HttpClient,
    expected_counts,
    log,
    timed_push,
    wait_queryable,
)
from bench.workload import OutputFormat, WorkloadSpec, default_end_ms, parse_duration_ms, write


def py_spy() -> str:
    for candidate in (Path(sys.executable).parent / "py-spy", shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise BenchFailure("py-spy is not installed: pip install py-spy (into .venv)")


def summarise(collapsed: str, top: int) -> dict[str, Any]:
    """Self and inclusive sample counts per function from py-spy's raw (collapsed) output.

    A line is `frame;frame;...;leaf count`, frames as `function (file:line)`; the line numbers
    are dropped so one function is one row."""
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function(f) for f in stack.split(";")]
        self_counts[frames[-1]] += count
        for f in set(frames):
            inclusive[f] += count

    def rows(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": f, "samples": n, "share": round(n / total, 4) if total else 0.0}
            for f, n in counter.most_common(top)
        ]

    return {"samples": total, "self": rows(self_counts), "inclusive": rows(inclusive)}


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/work/main/", "site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--span", default="2h")
    parser.add_argument("--format", choices=[f.value for f in OutputFormat], default="parquet")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="where the outputs go [bench/results/profile-<time>]")
    args = parser.parse_args(argv)
    spec = WorkloadSpec(end_ms=default_end_ms(), hosts=args.hosts, span_ms=parse_duration_ms(args.span))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out or RESULTS_DIR / f"profile-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="argus-profile-"))
    fmt = OutputFormat(args.format)
    path = workdir / f"devops.{fmt.value}"
    stats = write(spec, fmt, path)
    server = ArgusServer(workdir / "data", workdir / "server.log", "argus_bench_" + secrets.token_hex(12))
    spy: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        raw = out / "profile.txt"
        spy = subprocess.Popen(
            [py_spy(), "record", "--pid", str(server.pid), "--format", "raw", "--output", str(raw), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches
        began = time.perf_counter()
        push_s, _, _, _ = timed_push(path, server, "profile", workdir / "push.log")
        client = HttpClient(server.http_port, server.api_key)
        try:
            wait_queryable(client, spec, expected_counts(spec, stats), timeout_s=600)
        finally:
            client.close()
        queryable_s = time.perf_counter() - began
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        _, err = spy.communicate(timeout=60)
        if not raw.exists():
            raise BenchFailure(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")
        summary = {
            "dataset": {"hosts": spec.hosts, "span": args.span, "samples": spec.samples, "format": fmt.value},
            "push_s": round(push_s, 2),
            "queryable_s": round(queryable_s, 2),
            **summarise(raw.read_text(), args.top),
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        log(f"{spec.samples:,} samples: push {push_s:.1f} s, all queryable {queryable_s:.1f} s; profile in {out}")
        for title in ("self", "inclusive"):
            print(f"\n{title} time, top {args.top} of {summary['samples']:,} samples:")
            for row in summary[title]:
                print(f"  {row['share'] * 100:5.1f} %  {row['function']}")
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
            spy.wait()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
