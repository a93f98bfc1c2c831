"""The peers' dataset formats (bench.workload.write_peer) read back to the same samples."""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict

import cramjam
import numpy as np
import pytest

from bench.peers.influxdb import batches
from bench.peers.prometheus import remote_write_body
from bench.peers.promql import count_expr
from bench.workload import (
    LATENCY_BUCKETS_MS,
    PeerFormat,
    WorkloadSpec,
    generate,
    host_names,
    prometheus_series,
    write_peer,
)
from core.model import MetricKind

END_MS = 1_764_064_800_000
SPEC = WorkloadSpec(end_ms=END_MS, hosts=5, span_ms=10 * 60_000, block_steps=50)  # 120 steps, 3 blocks
Key = tuple[str, tuple[tuple[str, str], ...]]


def written(fmt: PeerFormat, spec: WorkloadSpec = SPEC) -> bytes:
    out = io.BytesIO()
    stats = write_peer(spec, fmt, out)
    assert stats.bytes_written == len(out.getvalue())
    return out.getvalue()


def expected_rows() -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """Per (host, metric): timestamps, values (NaN for timers) and each sample's observations."""
    ts: dict[tuple[int, str], list[int]] = defaultdict(list)
    vals: dict[tuple[int, str], list[float]] = defaultdict(list)
    obs: dict[tuple[int, str], list[np.ndarray]] = defaultdict(list)
    names = [d.name for d in SPEC.defs]
    for block in generate(SPEC):
        first = np.cumsum(block.observation_counts) - block.observation_counts
        for r in range(block.rows):
            key = (int(block.host[r]), names[block.metric[r]])
            ts[key].append(int(block.ts_ms[r]))
            vals[key].append(float(block.value[r]))
            n = int(block.observation_counts[r])
            obs[key].append(block.observations[first[r] : first[r] + n])
    return {k: (np.array(ts[k]), np.array(vals[k]), obs[k]) for k in ts}


def vm_series(data: bytes) -> dict[Key, tuple[list[int], list[float]]]:
    out: dict[Key, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for line in data.decode().splitlines():
        doc = json.loads(line)
        labels = dict(doc["metric"])
        name = labels.pop("__name__")
        key = (name, tuple(sorted(labels.items())))
        out[key][0].extend(doc["timestamps"])
        out[key][1].extend(doc["values"])
    return out


_OM_LINE = re.compile(r"^(\w+)\{([^}]*)\} (\S+) (\d+(?:\.\d+)?)$")


def openmetrics_series(data: bytes) -> dict[Key, tuple[list[int], list[float]]]:
    text = data.decode()
    assert text.endswith("# EOF\n")
    out: dict[Key, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for line in text.splitlines()[:-1]:
        match = _OM_LINE.match(line)
        assert match, line
        name, labels, value, seconds = match.groups()
        key = (name, tuple(sorted(tuple(kv.split("=", 1)) for kv in labels.split(","))))
        key = (name, tuple((k, v.strip('"')) for k, v in key[1]))
        out[key][0].append(round(float(seconds) * 1000))
        out[key][1].append(float(value))
    return out


@pytest.mark.parametrize("fmt", list(PeerFormat))
def test_same_spec_gives_same_bytes_and_another_seed_others(fmt: PeerFormat) -> None:
    assert written(fmt) == written(fmt)
    other = WorkloadSpec(end_ms=END_MS, hosts=5, span_ms=10 * 60_000, block_steps=50, seed=SPEC.seed + 1)
    assert written(fmt) != written(fmt, other)


def test_vm_jsonl_and_openmetrics_carry_the_same_series_and_points() -> None:
    vm = vm_series(written(PeerFormat.VM_JSONL))
    om = openmetrics_series(written(PeerFormat.OPENMETRICS))
    assert vm.keys() == om.keys()
    assert len(vm) == len(prometheus_series(SPEC)) == SPEC.hosts * (9 + len(LATENCY_BUCKETS_MS) + 2)
    for key in vm:
        assert vm[key][0] == om[key][0], key
        assert np.allclose(vm[key][1], om[key][1]), key


def test_prometheus_model_values_follow_the_dataset() -> None:
    vm = vm_series(written(PeerFormat.VM_JSONL))
    rows = expected_rows()
    names = host_names(SPEC.hosts)
    for (h, metric), (ts, values, observations) in rows.items():
        base = next(s.labels for s in prometheus_series(SPEC) if s.labels[0] == ("host", names[h]))
        kind = next(d.kind for d in SPEC.defs if d.name == metric)
        if kind is MetricKind.GAUGE:
            got_ts, got = vm[(metric, base)]
            assert got_ts == ts.tolist() and np.allclose(got, values)
        elif kind is MetricKind.COUNTER:
            _, got = vm[(metric, base)]
            assert np.allclose(got, np.cumsum(values)), metric  # cumulative in the Prometheus model
        else:
            counts = np.cumsum([len(o) for o in observations])
            assert np.array_equal(vm[(f"{metric}_count", base)][1], counts)
            sums = np.cumsum([o.sum() for o in observations])
            assert np.allclose(vm[(f"{metric}_sum", base)][1], sums, atol=0.01)
            flat = np.concatenate(observations)
            previous = np.zeros(len(ts))
            for bound in LATENCY_BUCKETS_MS:
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                bucket = np.array(vm[(f"{metric}_bucket", tuple(sorted((*base, ("le", le)))))][1])
                assert np.all(bucket >= previous)  # cumulative over le
                assert bucket[-1] == np.count_nonzero(flat <= bound)
                previous = bucket
            assert np.array_equal(previous, counts)  # le=+Inf counts every observation


def test_influx_lines_hold_every_sample_and_every_raw_observation() -> None:
    data = written(PeerFormat.INFLUX).decode()
    rows = expected_rows()
    got: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for line in data.splitlines():
        series, field, stamp = line.split(" ")
        measurement, *tags = series.split(",")
        tag = dict(t.split("=") for t in tags)
        assert sorted(tag) == ["host", "host_type", "region"]
        assert field.startswith("value=")
        got[(tag["host"], measurement)].append((int(stamp), float(field[6:])))
    names = host_names(SPEC.hosts)
    total = 0
    for (h, metric), (ts, values, observations) in rows.items():
        points = sorted(got[(names[h], metric)])
        if np.isnan(values[0]):
            want = sorted(
                (int(t) + k, float(v)) for t, o in zip(ts, observations, strict=True) for k, v in enumerate(o)
            )
        else:
            want = sorted(zip(ts.tolist(), values.tolist(), strict=True))
        assert [p[0] for p in points] == [w[0] for w in want]
        assert np.allclose([p[1] for p in points], [w[1] for w in want])
        total += len(want)
    assert total == len(data.splitlines())


def test_write_stats_count_points_and_lines() -> None:
    out = io.BytesIO()
    stats = write_peer(SPEC, PeerFormat.OPENMETRICS, out)
    assert stats.samples == SPEC.samples
    assert stats.points == stats.lines == len(out.getvalue().decode().splitlines()) - 1
    assert stats.points == len(prometheus_series(SPEC)) * SPEC.steps


def test_influx_batches_end_at_newlines_and_lose_nothing() -> None:
    data = b"".join(f"m,host=h{i} value={i} {i}\n".encode() for i in range(1000))
    chunks = list(batches(io.BytesIO(data), size=100))
    assert b"".join(chunks) == data
    assert all(c.endswith(b"\n") for c in chunks) and len(chunks) > 10


def test_count_expression_sums_every_stored_metric_name() -> None:
    expr = count_expr(SPEC)
    for name in ("cpu_user", "http_errors_total", "http_latency_ms_bucket", "http_latency_ms_sum"):
        assert f"sum(count_over_time({name}[600s]))" in expr
    assert expr.count("sum(") == 9 + 3


def test_remote_write_body_is_snappy_protobuf_with_sorted_labels() -> None:
    raw = bytes(cramjam.snappy.decompress_raw(remote_write_body("m", {"b": "2", "a": "1"}, 1.5, 1_000)))
    assert raw[0] == 0x0A  # field 1 (timeseries), length-delimited
    assert raw.index(b"__name__") < raw.index(b"\x0a\x01a") < raw.index(b"\x0a\x01b")
    assert raw.endswith(b"\x10\xe8\x07")  # timestamp 1000 as a varint
