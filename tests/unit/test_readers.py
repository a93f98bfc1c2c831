"""Input readers: NDJSON / CSV / Parquet -> SampleBatch, grouping, batch ids, error reporting."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.readers import (
    BatchingOptions,
    InputFormat,
    SampleReader,
    detect_format,
)
from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import InvalidArgument
from core.model import DEFAULT_REGION

NOW_S = 1_732_530_123.0
NOW_MS = int(NOW_S * 1000)
T0 = 1_732_530_000_000

Sample = tuple[str, int, str, tuple[tuple[str, str], ...], int, Any]


def read(input_: Any, fmt: InputFormat, **options: Any) -> tuple[list[metrics_pb2.SampleBatch], SampleReader]:
    opts = BatchingOptions(source=options.pop("source", "push:test"), **options)
    reader = SampleReader(input_, fmt=fmt, options=opts, clock=lambda: NOW_S)
    return list(reader.batches()), reader


def samples(batches: list[metrics_pb2.SampleBatch]) -> list[Sample]:
    """Every sample as (metric, kind, region, labels, ts, value or observations)."""
    out: list[Sample] = []
    for batch in batches:
        for s in batch.series:
            labels = tuple((label.name, label.value) for label in s.labels)
            if s.kind == metrics_pb2.METRIC_KIND_TIMER:
                obs = list(s.observations)
                it = iter(obs)
                values: list[Any] = [tuple(next(it) for _ in range(c)) for c in s.observation_counts]
            elif s.kind == metrics_pb2.METRIC_KIND_DISTINCT:
                it2 = iter(s.distinct_values)
                values = [tuple(next(it2) for _ in range(c)) for c in s.observation_counts]
            else:
                values = list(s.values)
            assert len(values) == len(s.timestamps_ms)
            out.extend(
                (s.metric, s.kind, s.region, labels, ts, v) for ts, v in zip(s.timestamps_ms, values, strict=True)
            )
    return out


def write_ndjson(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


COUNTER = metrics_pb2.METRIC_KIND_COUNTER
GAUGE = metrics_pb2.METRIC_KIND_GAUGE
TIMER = metrics_pb2.METRIC_KIND_TIMER
DISTINCT = metrics_pb2.METRIC_KIND_DISTINCT


# ---------------------------------------------------------------------------- NDJSON


def test_ndjson_reads_every_kind_with_defaults(tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "in.ndjson",
        [
            {"metric": "http_requests", "kind": "counter", "region": "us-east-1", "labels": {"host": "a"},
             "ts": T0, "value": 3},
            {"metric": "temp", "ts": T0, "value": 21.5},
            {"metric": "latency", "kind": "timer", "labels": {"route": "/"}, "ts": T0, "values": [1.2, 3.4]},
            {"metric": "users", "kind": "distinct", "ts": T0, "values": ["u1", "u2", "u1"]},
        ],
    )  # fmt: skip
    batches, reader = read(path, InputFormat.NDJSON)
    assert sorted(samples(batches)) == sorted(
        [
            ("http_requests", COUNTER, "us-east-1", (("host", "a"),), T0, 3.0),
            ("temp", GAUGE, DEFAULT_REGION, (), T0, 21.5),
            ("latency", TIMER, DEFAULT_REGION, (("route", "/"),), T0, (1.2, 3.4)),
            ("users", DISTINCT, DEFAULT_REGION, (), T0, ("u1", "u2", "u1")),
        ]
    )
    assert reader.stats.samples == 4
    assert reader.stats.error_count == 0


def test_timestamps_accept_ms_seconds_rfc3339_and_default_to_now(tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "in.ndjson",
        [
            {"metric": "m", "ts": T0, "value": 1},
            {"metric": "m", "ts": T0 / 1000 + 1.5, "value": 2},
            {"metric": "m", "ts": "2024-11-25T10:20:00.250Z", "value": 3},
            {"metric": "m", "ts": "2024-11-25T11:20:00+01:00", "value": 4},
            {"metric": "m", "value": 5},
        ],
    )
    batches, _ = read(path, InputFormat.NDJSON)
    assert [s[4] for s in samples(batches)] == [T0, T0 + 1500, 1732530000250, 1732530000000, NOW_MS]


def test_same_series_is_grouped_and_keeps_input_order(tmp_path: Path) -> None:
    records = [{"metric": "m", "labels": {"host": h}, "ts": T0 + i, "value": i} for i, h in enumerate("abab" * 5)]
    batches, _ = read(write_ndjson(tmp_path / "in.ndjson", records), InputFormat.NDJSON)
    assert len(batches) == 1
    series = batches[0].series
    assert [s.labels[0].value for s in series] == ["a", "b"]
    assert list(series[0].timestamps_ms) == [T0 + i for i in range(0, 20, 2)]
    assert list(series[1].values) == [float(i) for i in range(1, 20, 2)]


def test_label_order_and_top_level_label_fields_do_not_split_a_series(tmp_path: Path) -> None:
    records = [
        {"metric": "m", "labels": {"b": "2", "a": "1"}, "ts": T0, "value": 1},
        {"metric": "m", "labels": {"a": "1"}, "b": "2", "ts": T0 + 1, "value": 2},
        {"metric": "m", "labels": {"a": 1, "b": 2}, "ts": T0 + 2, "value": 3},
    ]
    batches, _ = read(write_ndjson(tmp_path / "in.ndjson", records), InputFormat.NDJSON)
    assert len(batches[0].series) == 1
    assert [(label.name, label.value) for label in batches[0].series[0].labels] == [("a", "1"), ("b", "2")]


def test_bad_lines_are_counted_with_line_numbers_and_do_not_stop_the_read(tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "in.ndjson",
        [
            {"metric": "m", "ts": T0, "value": 1},
            "{not json",
            {"kind": "counter", "value": 1},
            "",
            {"metric": "m", "kind": "histogram", "value": 1},
            {"metric": "m", "value": "abc"},
            {"metric": "m", "ts": T0 + 1, "value": 2},
            {"metric": "t", "kind": "timer", "ts": T0},
        ],
    )
    batches, reader = read(path, InputFormat.NDJSON)
    assert [s[4:] for s in samples(batches)] == [(T0, 1.0), (T0 + 1, 2.0)]
    assert reader.stats.error_count == 5
    assert reader.stats.records == 7
    errors = [(e.line, e.message) for e in reader.stats.errors]
    assert [line for line, _ in errors] == [2, 3, 5, 6, 8]
    assert "missing metric" in errors[1][1]
    assert "unknown kind 'histogram'" in errors[2][1]
    assert "not a number" in errors[3][1]
    assert "timer needs values" in errors[4][1]


def test_errors_without_bad_json_keep_line_numbers_across_blank_lines(tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "in.ndjson",
        [{"metric": "m", "value": 1}, "", "   ", {"metric": "m", "kind": "nope", "value": 1}],
    )
    _, reader = read(path, InputFormat.NDJSON)
    assert [(e.line, e.message[:17]) for e in reader.stats.errors] == [(4, "unknown kind 'nop")]


def test_only_the_first_errors_are_kept_but_all_are_counted(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "in.ndjson", ["{bad"] * 30 + [{"metric": "m", "value": 1}])
    _, reader = read(path, InputFormat.NDJSON, max_reported_errors=20)
    assert reader.stats.error_count == 30
    assert [e.line for e in reader.stats.errors] == list(range(1, 21))


def test_line_by_line_fallback_yields_the_same_batches_as_the_fast_path(tmp_path: Path) -> None:
    good = [
        {"metric": "m", "kind": "counter", "labels": {"h": str(i % 3)}, "ts": T0 + i, "value": i} for i in range(30)
    ] + [{"metric": "lat", "kind": "timer", "ts": T0, "values": [1, 2.5]}]
    fast, _ = read(write_ndjson(tmp_path / "a.ndjson", good), InputFormat.NDJSON)
    slow, reader = read(write_ndjson(tmp_path / "b.ndjson", [*good, "{broken"]), InputFormat.NDJSON)
    assert reader.stats.error_count == 1
    assert [b.SerializeToString(deterministic=True) for b in fast] == [
        b.SerializeToString(deterministic=True) for b in slow
    ]


def test_mixed_timer_and_distinct_lists_in_one_block_are_read(tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "in.ndjson",
        [
            {"metric": "lat", "kind": "timer", "ts": T0, "values": [1, 2]},
            {"metric": "users", "kind": "distinct", "ts": T0, "values": ["a", 7]},
        ],
    )
    batches, reader = read(path, InputFormat.NDJSON)
    assert reader.stats.error_count == 0
    assert {s[0]: s[5] for s in samples(batches)} == {"lat": (1.0, 2.0), "users": ("a", "7")}


def test_ndjson_from_a_stream_and_from_gzip(tmp_path: Path) -> None:
    text = "".join(json.dumps({"metric": "m", "ts": T0 + i, "value": i}) + "\n" for i in range(5))
    from_stream, _ = read(io.BytesIO(text.encode()), InputFormat.NDJSON)
    gz = tmp_path / "in.ndjson.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    from_gzip, _ = read(gz, InputFormat.NDJSON)
    assert samples(from_stream) == samples(from_gzip)
    assert len(samples(from_stream)) == 5


def test_a_record_split_across_read_chunks_is_read_whole(tmp_path: Path) -> None:
    records = [{"metric": "m", "labels": {"pad": "x" * 50}, "ts": T0 + i, "value": i} for i in range(200)]
    path = write_ndjson(tmp_path / "in.ndjson", records)
    batches, reader = read(path, InputFormat.NDJSON, chunk_bytes=1000)
    assert reader.stats.error_count == 0
    assert [s[4] for s in samples(batches)] == [T0 + i for i in range(200)]


# ---------------------------------------------------------------------------- CSV


def test_csv_other_columns_are_labels_and_labels_json_merges(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "metric,kind,region,ts,value,host,labels\n"
        'cpu,gauge,eu,1732530000000,0.5,a,"{""dc"": ""x""}"\n'
        "cpu,,,1732530001,0.7,b,\n"
        'cpu,gauge,eu,2024-11-25T10:20:00Z,0.9,a,"{""dc"": ""x""}"\n'
    )
    batches, reader = read(path, InputFormat.CSV)
    assert reader.stats.error_count == 0
    assert samples(batches) == [
        ("cpu", GAUGE, "eu", (("dc", "x"), ("host", "a")), T0, 0.5),
        ("cpu", GAUGE, "eu", (("dc", "x"), ("host", "a")), T0, 0.9),
        ("cpu", GAUGE, DEFAULT_REGION, (("host", "b"),), T0 + 1000, 0.7),
    ]


def test_csv_timer_and_distinct_values_are_json_lists(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "metric,kind,ts,values,value\n"
        'lat,timer,1732530000000,"[1.5, 2]",\n'
        "lat,timer,1732530000001,,7\n"
        'users,distinct,1732530000000,"[""u1"", 42]",\n'
    )
    batches, reader = read(path, InputFormat.CSV)
    assert reader.stats.error_count == 0
    assert sorted(samples(batches)) == [
        ("lat", TIMER, DEFAULT_REGION, (), T0, (1.5, 2.0)),
        ("lat", TIMER, DEFAULT_REGION, (), T0 + 1, (7.0,)),
        ("users", DISTINCT, DEFAULT_REGION, (), T0, ("u1", "42")),
    ]


def test_csv_bad_rows_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "metric,ts,value,host\n"
        "m,1732530000000,1,a\n"
        "m,1732530000001,1\n"  # line 3: a column short
        "m,1732530000002,x,a\n"  # line 4: not a number
        ",1732530000003,1,a\n"  # line 5: no metric
        "m,1732530000004,5,a\n"
        "m,soon,5,a\n"  # line 7: bad ts
    )
    batches, reader = read(path, InputFormat.CSV)
    assert [s[4] for s in samples(batches)] == [T0, T0 + 4]
    assert [e.line for e in reader.stats.errors] == [3, 4, 5, 7]
    assert "expected 4 columns, got 3" in reader.stats.errors[0].message
    assert "ts is neither" in reader.stats.errors[3].message
    assert reader.stats.error_count == 4


def test_csv_without_metric_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("name,value\nm,1\n")
    with pytest.raises(InvalidArgument, match="no 'metric' column"):
        read(path, InputFormat.CSV)


def test_csv_from_a_pipe(tmp_path: Path) -> None:
    data = "metric,value,host\n" + "".join(f"m,{i},h{i % 2}\n" for i in range(10))
    batches, _ = read(io.BytesIO(data.encode()), InputFormat.CSV)
    assert len(samples(batches)) == 10


# ---------------------------------------------------------------------------- Parquet


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    table = pa.table(
        {
            "metric": ["up", "up", "lat"],
            "kind": ["gauge", "gauge", "timer"],
            "ts": pa.array([T0, T0 + 1000, T0], pa.timestamp("ms", tz="UTC")),
            "value": [1.0, 0.0, None],
            "values": pa.array([None, None, [3.0, 4.0]], pa.list_(pa.float64())),
            "code": pa.array([200, 500, None], pa.int32()),
        }
    )
    path = tmp_path / "in.parquet"
    pq.write_table(table, path)
    batches, reader = read(path, InputFormat.PARQUET)
    assert reader.stats.error_count == 0
    assert sorted(samples(batches)) == [
        ("lat", TIMER, DEFAULT_REGION, (), T0, (3.0, 4.0)),
        ("up", GAUGE, DEFAULT_REGION, (("code", "200"),), T0, 1.0),
        ("up", GAUGE, DEFAULT_REGION, (("code", "500"),), T0 + 1000, 0.0),
    ]


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"metric": ["a", None, "c"], "value": [1.0, 2.0, None]}), path)
    _, reader = read(path, InputFormat.PARQUET)
    assert reader.position_name == "row"
    assert [(e.line, e.message) for e in reader.stats.errors] == [(2, "missing metric"), (3, "missing value")]


# ---------------------------------------------------------------------------- batches


def _counter_file(tmp_path: Path, n: int = 1000) -> Path:
    return write_ndjson(
        tmp_path / "in.ndjson",
        [{"metric": "m", "kind": "counter", "labels": {"h": str(i % 7)}, "ts": T0 + i, "value": i} for i in range(n)],
    )


def test_batch_ids_are_stable_across_runs_and_depend_on_source(tmp_path: Path) -> None:
    path = _counter_file(tmp_path)
    first, _ = read(path, InputFormat.NDJSON, max_batch_samples=300)
    again, _ = read(path, InputFormat.NDJSON, max_batch_samples=300)
    other, _ = read(path, InputFormat.NDJSON, max_batch_samples=300, source="push:other")
    ids = [b.batch_id for b in first]
    assert len(ids) == len(set(ids)) == 4
    assert ids == [b.batch_id for b in again]
    assert not set(ids) & {b.batch_id for b in other}
    assert all(b.source == "push:test" for b in first)


def test_batch_id_prefix_is_configurable(tmp_path: Path) -> None:
    batches, _ = read(_counter_file(tmp_path, 10), InputFormat.NDJSON, batch_id_prefix="backfill-nov")
    assert batches[0].batch_id.startswith("backfill-nov-000001-")


def test_batches_respect_the_sample_limit_and_lose_nothing(tmp_path: Path) -> None:
    path = _counter_file(tmp_path)
    whole, _ = read(path, InputFormat.NDJSON)
    split, _ = read(path, InputFormat.NDJSON, max_batch_samples=128)
    assert all(sum(len(s.timestamps_ms) for s in b.series) <= 128 for b in split)
    assert Counter(samples(split)) == Counter(samples(whole))


def test_batches_respect_the_byte_limit(tmp_path: Path) -> None:
    split, _ = read(_counter_file(tmp_path), InputFormat.NDJSON, max_batch_bytes=4096)
    assert len(split) > 3
    assert all(b.ByteSize() <= 4096 * 1.2 for b in split)


def test_timer_observations_count_against_the_batch_limit(tmp_path: Path) -> None:
    records = [{"metric": "lat", "kind": "timer", "ts": T0 + i, "values": [1.0] * 40} for i in range(10)]
    batches, _ = read(write_ndjson(tmp_path / "in.ndjson", records), InputFormat.NDJSON, max_batch_samples=100)
    assert [sum(s.observation_counts) for b in batches for s in b.series] == [80, 80, 80, 80, 80]


def test_format_detection() -> None:
    assert detect_format("a.jsonl.gz", b"") is InputFormat.NDJSON
    assert detect_format("a.CSV", b"") is InputFormat.CSV
    assert detect_format("a.pq", b"") is InputFormat.PARQUET
    assert detect_format(None, b"PAR1....") is InputFormat.PARQUET
    assert detect_format("-", b'  {"metric"') is InputFormat.NDJSON
    assert detect_format("data", b"metric,value") is InputFormat.CSV


# ---------------------------------------------------------------------------- laws

_records = st.lists(
    st.fixed_dictionaries(
        {
            "metric": st.sampled_from(["a", "b_c"]),
            "kind": st.sampled_from(["counter", "gauge"]),
            "host": st.sampled_from(["x", "y", "z"]),
            "ts": st.integers(min_value=10**12, max_value=2 * 10**12),
            "value": st.floats(allow_nan=False, allow_infinity=False, width=64),
        }
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records, limit=st.integers(min_value=1, max_value=50))
def test_every_record_becomes_exactly_one_sample_in_every_format(
    tmp_path: Path, records: list[dict[str, Any]], limit: int
) -> None:
    expected = Counter(
        (r["metric"], COUNTER if r["kind"] == "counter" else GAUGE, DEFAULT_REGION, (("host", r["host"]),), r["ts"],
         r["value"])
        for r in records
    )  # fmt: skip
    table = pa.table({k: [r[k] for r in records] for k in ("metric", "kind", "host", "ts", "value")})
    pq.write_table(table, tmp_path / "p.parquet")
    csv_text = "metric,kind,host,ts,value\n" + "".join(
        f"{r['metric']},{r['kind']},{r['host']},{r['ts']},{r['value']!r}\n" for r in records
    )
    (tmp_path / "c.csv").write_text(csv_text)
    write_ndjson(tmp_path / "n.ndjson", records)
    for name, fmt in (("p.parquet", InputFormat.PARQUET), ("c.csv", InputFormat.CSV), ("n.ndjson", InputFormat.NDJSON)):
        batches, reader = read(tmp_path / name, fmt, max_batch_samples=limit)
        assert Counter(samples(batches)) == expected, name
        assert reader.stats.samples == len(records)
        assert all(sum(len(s.timestamps_ms) for s in b.series) <= limit for b in batches)


_mixed_records = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "metric": st.sampled_from(["lat", "rt"]),
                "kind": st.just("timer"),
                "labels": st.fixed_dictionaries({"route": st.sampled_from(["/", "/api"])}),
                "ts": st.integers(min_value=10**12, max_value=2 * 10**12),
                "values": st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=5),
            }
        ),
        st.fixed_dictionaries(
            {
                "metric": st.just("users"),
                "kind": st.just("distinct"),
                "ts": st.integers(min_value=10**12, max_value=2 * 10**12),
                "values": st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=4),
            }
        ),
        st.fixed_dictionaries(
            {
                "metric": st.just("up"),
                "ts": st.integers(min_value=-(10**12), max_value=2 * 10**12),
                "value": st.floats(allow_nan=False, allow_infinity=False),
            }
        ),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_mixed_records, limit=st.integers(min_value=1, max_value=30), chunk=st.sampled_from([200, 5000]))
def test_timers_and_distinct_survive_chunking_and_batch_splits(
    tmp_path: Path, records: list[dict[str, Any]], limit: int, chunk: int
) -> None:
    kinds = {"timer": TIMER, "distinct": DISTINCT}
    expected = Counter(
        (
            r["metric"],
            kinds.get(r.get("kind", ""), GAUGE),
            DEFAULT_REGION,
            tuple(sorted(r.get("labels", {}).items())),
            r["ts"] * 1000 if r["ts"] < 10**11 else r["ts"],
            tuple(r["values"]) if "values" in r else r["value"],
        )
        for r in records
    )
    path = write_ndjson(tmp_path / "in.ndjson", records)
    batches, reader = read(path, InputFormat.NDJSON, max_batch_samples=limit, chunk_bytes=chunk)
    assert reader.stats.error_count == 0
    assert Counter(samples(batches)) == expected
    # A sample never exceeds the limit unless it is alone in its batch.
    for batch in batches:
        weight = sum(len(s.timestamps_ms) + sum(s.observation_counts) for s in batch.series)
        assert weight <= limit or sum(len(s.timestamps_ms) for s in batch.series) == 1


def test_labels_from_a_json_column_and_label_columns_merge_into_one_series(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "metric,ts,value,host,labels\n"
        'm,1732530000000,1,a,"{""dc"": ""x""}"\n'
        'm,1732530000001,2,,"{""dc"": ""x"", ""host"": ""a""}"\n'
        'm,1732530000002,3,a,"{""host"": ""b"", ""dc"": ""x""}"\n'
    )
    batches, reader = read(path, InputFormat.CSV)
    assert reader.stats.error_count == 0
    assert len(batches[0].series) == 1
    assert [s[3:5] for s in samples(batches)] == [((("dc", "x"), ("host", "a")), T0 + i) for i in range(3)]


# ---------------------------------------------------------------------------- timestamps beyond int64

OUT_OF_RANGE = "is out of range: as epoch milliseconds it must fit in a signed 64-bit integer"


def test_parquet_timestamps_beyond_int64_ms_are_rejected_by_row(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    ts = pa.array([T0, 2**63 + 5, T0 + 1, 2**64 - 1], pa.uint64())
    pq.write_table(pa.table({"metric": ["m"] * 4, "value": [1.0, 2.0, 3.0, 4.0], "ts": ts}), path)
    batches, reader = read(path, InputFormat.PARQUET)
    assert [s[4] for s in samples(batches)] == [T0, T0 + 1]
    assert [(e.line, OUT_OF_RANGE in e.message) for e in reader.stats.errors] == [(2, True), (4, True)]


@given(ts=st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False)))
@settings(max_examples=200, deadline=None)
def test_any_numeric_timestamp_is_read_exactly_or_rejected_as_out_of_range(ts: int | float) -> None:
    seconds = ts < 1e11
    expected = ts * 1000 if seconds else ts
    fits = -(2**63) <= expected < 2**63 if isinstance(ts, int) else -(2.0**63) <= expected < 2.0**63
    for text in (
        json.dumps({"metric": "m", "value": 1, "ts": ts}),
        json.dumps({"metric": "m", "value": 1, "ts": str(ts)}),
    ):
        batches, reader = read(io.BytesIO((text + "\n").encode()), InputFormat.NDJSON)
        got = [s[4] for s in samples(batches)]
        if not fits:
            assert got == [] and reader.stats.error_count == 1, (text, got)
            assert OUT_OF_RANGE in reader.stats.errors[0].message
        else:
            # Exact for ints read as ints; a float (or a number as text) may round by an ulp.
            assert len(got) == 1 and abs(got[0] - expected) <= max(1.0, abs(expected) * 2**-52), (text, got)
