from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq
import pytest

from bench.workload import (
    BASE_METRICS,
    HOST_TYPES,
    MAX_OBSERVATIONS,
    REGIONS,
    STEP_MS,
    OutputFormat,
    WorkloadSpec,
    default_end_ms,
    generate,
    main,
    metric_defs,
    write,
)
from core.errors import InvalidArgument
from core.model import MetricKind

END_MS = 1_764_064_800_000
SPEC = WorkloadSpec(end_ms=END_MS, hosts=9, span_ms=10 * 60_000, block_steps=50)  # 120 steps, 3 blocks


def written(spec: WorkloadSpec, fmt: OutputFormat) -> bytes:
    out = io.BytesIO()
    write(spec, fmt, out)
    return out.getvalue()


def as_table(data: bytes, fmt: OutputFormat) -> pa.Table:
    """The file read back with plain pyarrow, flattened to the columns the tests compare."""
    if fmt is OutputFormat.NDJSON:
        table = pjson.read_json(io.BytesIO(data))
        labels = table.column("labels").combine_chunks()
        table = table.drop_columns(["labels"])
        table = table.append_column("host", labels.field("host")).append_column("host_type", labels.field("host_type"))
        if "values" not in table.column_names:
            table = table.append_column("values", pa.nulls(table.num_rows, pa.list_(pa.float64())))
        return table
    if fmt is OutputFormat.CSV:
        table = pcsv.read_csv(io.BytesIO(data), convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
        texts = table.column("values").combine_chunks()
        lists = pa.array([None if t is None else json.loads(t) for t in texts.to_pylist()], pa.list_(pa.float64()))
        return table.set_column(table.schema.get_field_index("values"), "values", lists)
    return pq.read_table(io.BytesIO(data))


def canonical(table: pa.Table) -> list[tuple[object, ...]]:
    cols = ["metric", "kind", "region", "host", "host_type", "ts", "value", "values"]
    rows = table.select(cols).to_pylist()
    return [tuple(float(r[c]) if c == "value" and r[c] is not None else r[c] for c in cols) for r in rows]


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_same_seed_gives_same_bytes(fmt: OutputFormat) -> None:
    assert written(SPEC, fmt) == written(SPEC, fmt)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_another_seed_gives_other_values(fmt: OutputFormat) -> None:
    other = WorkloadSpec(end_ms=END_MS, hosts=9, span_ms=10 * 60_000, block_steps=50, seed=SPEC.seed + 1)
    assert written(SPEC, fmt) != written(other, fmt)


def test_every_format_is_readable_by_pyarrow_and_carries_the_same_rows() -> None:
    tables = {fmt: as_table(written(SPEC, fmt), fmt) for fmt in OutputFormat}
    reference = canonical(tables[OutputFormat.PARQUET])
    assert len(reference) == SPEC.samples
    for fmt in (OutputFormat.NDJSON, OutputFormat.CSV):
        assert canonical(tables[fmt]) == reference, fmt


def test_counts_cover_every_series_at_every_step() -> None:
    table = as_table(written(SPEC, OutputFormat.PARQUET), OutputFormat.PARQUET)
    assert table.num_rows == SPEC.hosts * SPEC.metrics * SPEC.steps == 9 * 10 * 120
    per_series = table.group_by(["metric", "host"]).aggregate([("ts", "count_distinct"), ("ts", "min"), ("ts", "max")])
    assert per_series.num_rows == SPEC.series
    assert set(per_series.column("ts_count_distinct").to_pylist()) == {SPEC.steps}
    assert set(per_series.column("ts_min").to_pylist()) == {END_MS - 10 * 60_000}
    assert set(per_series.column("ts_max").to_pylist()) == {END_MS - STEP_MS}
    ts = np.asarray(table.column("ts"))
    assert np.all(ts % STEP_MS == 0)


def test_write_stats_match_the_file() -> None:
    out = io.BytesIO()
    stats = write(SPEC, OutputFormat.NDJSON, out)
    table = as_table(out.getvalue(), OutputFormat.NDJSON)
    assert stats.samples == stats.rows == table.num_rows == SPEC.samples
    assert stats.bytes_written == len(out.getvalue())
    assert stats.samples_by_metric == {d.name: SPEC.hosts * SPEC.steps for d in BASE_METRICS}
    timer = table.filter(pc.equal(table.column("metric"), "http_latency_ms"))
    assert stats.observations_by_metric == {
        "http_latency_ms": int(pc.sum(pc.list_value_length(timer.column("values"))).as_py())
    }


def test_labels_take_four_regions_and_five_host_types() -> None:
    spec = WorkloadSpec(end_ms=END_MS, hosts=40, metrics=1, span_ms=STEP_MS)
    table = as_table(written(spec, OutputFormat.PARQUET), OutputFormat.PARQUET)
    assert set(table.column("region").to_pylist()) == set(REGIONS)
    assert set(table.column("host_type").to_pylist()) == set(HOST_TYPES)
    assert len(set(table.column("host").to_pylist())) == 40
    combos = table.group_by(["region", "host_type"]).aggregate([("host", "count")])
    assert set(combos.column("host_count").to_pylist()) == {2}  # 40 hosts spread evenly over 20


def test_gauges_stay_in_range_with_two_decimals() -> None:
    spec = WorkloadSpec(end_ms=END_MS, hosts=50, span_ms=2 * 3_600_000, block_steps=100)
    for block in generate(spec):
        for i, d in enumerate(spec.defs):
            if d.kind is not MetricKind.GAUGE:
                continue
            v = block.value[block.metric == i]
            assert v.min() >= d.low and v.max() <= d.high, d.name
            assert np.allclose(np.round(v, 2), v, rtol=0, atol=1e-9), d.name


def test_gauges_move_like_random_walks() -> None:
    spec = WorkloadSpec(end_ms=END_MS, hosts=5, metrics=1, span_ms=3_600_000, block_steps=720)
    (block,) = generate(spec)
    assert len(np.unique(block.value)) > 100
    jumps = np.abs(np.diff(block.value.reshape(spec.hosts, spec.steps), axis=1))
    assert np.median(jumps) < 5.0  # cpu_user steps are ~1.5 per 5 s, not uniform noise


def test_counters_are_non_negative_integer_deltas_with_errors_below_requests() -> None:
    names = [d.name for d in SPEC.defs]
    for block in generate(SPEC):
        requests = block.value[block.metric == names.index("http_requests_total")]
        errors = block.value[block.metric == names.index("http_errors_total")]
        assert np.all(requests >= 0) and np.all(errors >= 0)
        assert np.array_equal(requests, np.round(requests)) and np.array_equal(errors, np.round(errors))
        assert np.all(errors <= requests)
        assert requests.sum() > 0


def test_timer_samples_carry_a_few_positive_observations() -> None:
    timer = [d.name for d in SPEC.defs].index("http_latency_ms")
    for block in generate(SPEC):
        is_timer = block.metric == timer
        counts = block.observation_counts
        assert np.all(counts[is_timer] >= 1) and np.all(counts[is_timer] <= MAX_OBSERVATIONS)
        assert np.all(counts[~is_timer] == 0)
        assert np.all(np.isnan(block.value[is_timer])) and not np.any(np.isnan(block.value[~is_timer]))
        assert len(block.observations) == counts.sum()
        assert block.observations.min() > 0
        assert 5.0 < np.median(block.observations) < 200.0


def test_blocks_are_bounded_and_in_time_order() -> None:
    blocks = list(generate(SPEC))
    assert [b.rows for b in blocks] == [9 * 10 * 50, 9 * 10 * 50, 9 * 10 * 20]
    firsts = [int(b.ts_ms.min()) for b in blocks]
    lasts = [int(b.ts_ms.max()) for b in blocks]
    assert all(last < first for last, first in zip(lasts, firsts[1:], strict=False))


def test_more_than_ten_metrics_adds_gauges_and_fewer_takes_a_prefix() -> None:
    assert [d.name for d in metric_defs(12)][10:] == ["gauge_11", "gauge_12"]
    assert metric_defs(3) == BASE_METRICS[:3]


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"hosts": 0}, "hosts"),
        ({"metrics": 0}, "metrics"),
        ({"span_ms": 7_000}, "span"),
        ({"end_ms": END_MS + 1}, "end"),
        ({"block_steps": 0}, "block_steps"),
    ],
)
def test_bad_specs_are_rejected_naming_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        WorkloadSpec(**{"end_ms": END_MS, **kwargs})
    assert caught.value.parameter == parameter


def test_default_end_is_now_rounded_down_to_five_seconds() -> None:
    assert default_end_ms(1_764_064_803.999) == 1_764_064_800_000


def test_cli_writes_the_file_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.parquet"
    code = main(
        [
            "--hosts",
            "3",
            "--metrics",
            "10",
            "--span",
            "1m",
            "--end",
            str(END_MS),
            "--format",
            "parquet",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().err.splitlines()[0])
    assert summary["samples"] == 3 * 10 * 12 == pq.read_metadata(out).num_rows
    assert summary["end_ms"] == END_MS


# ---------------------------------------------------------------------------- bench.run helpers


def test_benchmark_queries_cover_q1_to_q7_with_answer_shapes_from_the_spec() -> None:
    from bench.run import query_cases

    spec = WorkloadSpec(end_ms=END_MS, hosts=1_000, span_ms=2 * 3_600_000)
    cases = {c.name: c for c in query_cases(spec)}
    assert list(cases) == ["Q1", "Q2", "Q3", "Q4", "Q5", "Q7"]
    assert cases["Q1"].min_points == 1_440 and dict(cases["Q1"].params)["period"] == "5s"
    assert cases["Q3"].series == 4 and cases["Q3"].min_points == 60
    assert dict(cases["Q3"].params)["start"] == str(END_MS - 3_600_000)
    assert cases["Q4"].series == 10 and dict(cases["Q4"].params)["limit"] == "10"
    assert "only 2h" in cases["Q5"].note and dict(cases["Q5"].params)["start"] == str(spec.start_ms)


def test_top_hosts_picks_the_highest_maxima() -> None:
    from bench.run import top_hosts

    body = {
        "series": [
            {"labels": {"host": f"h{i}"}, "points": [[0, float(i)], [1, None], [2, float(i) / 2]]} for i in range(30)
        ]
    }
    assert [h for h, _ in top_hosts(body, 3)] == ["h29", "h28", "h27"]


def test_the_markdown_report_marks_targets_met_and_missed() -> None:
    from bench.run import render_markdown

    results = {
        "started_at": "2025-11-25T00:00:00+00:00",
        "command": "python -m bench.run",
        "machine": {
            "nproc": 2,
            "cpu_model": "cpu",
            "ram_gb": 8,
            "python": "3.11",
            "numpy": "2",
            "pyarrow": "26",
            "sqlite": "3",
            "git_commit": "abc",
            "git_dirty": False,
        },
        "dataset": {"hosts": 2, "metrics": 10, "span": "2h", "samples": 100, "series": 20, "timer_observations": 30},
        "queries": {
            "Q3": {"description": "d", "median_ms": 10.0, "p99_ms": 20.0, "n": 50, "tier": "1m", "series": 4},
            "Q5": {"description": "d", "median_ms": 300.0, "p99_ms": 400.0, "n": 50, "tier": "1m", "series": 4},
        },
    }
    text = render_markdown(results)
    assert "| Q3 | d | 10.0 | 20.0 <= 50 ✓ |" in text
    assert "| Q5 | d | 300.0 | 400.0 <= 250 ✗ |" in text
