"""`argus push --cumulative`: counters read as running totals become deltas (one converter)."""

from __future__ import annotations

import io
import json

from agent.cumulative_input import CumulativeStats, cumulative_to_deltas
from agent.readers import BatchingOptions, InputFormat, SampleReader
from contracts.argus.metrics.v1 import metrics_pb2

T0 = 1_732_530_000_000


def _read(lines: list[dict[str, object]], max_batch_samples: int) -> list[metrics_pb2.SampleBatch]:
    text = "".join(json.dumps(line) + "\n" for line in lines).encode()
    options = BatchingOptions(source="push:test", max_batch_samples=max_batch_samples)
    reader = SampleReader(io.BytesIO(text), fmt=InputFormat.NDJSON, options=options)
    return list(reader.batches())


def _sent(batches: list[metrics_pb2.SampleBatch]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    out: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for batch in batches:
        for s in batch.series:
            key = (s.metric, ",".join(f"{label.name}={label.value}" for label in s.labels))
            out.setdefault(key, []).extend(zip(s.timestamps_ms, s.values, strict=True))
    return out


def test_counters_become_deltas_with_resets_across_batches_and_gauges_pass() -> None:
    totals = [5, 7, 7, 12, 3, 4]  # a restart after 12
    lines: list[dict[str, object]] = [
        {"metric": "req", "kind": "counter", "host": "a", "ts": T0 + i * 1000, "value": v} for i, v in enumerate(totals)
    ]
    lines += [{"metric": "temp", "kind": "gauge", "host": "a", "ts": T0 + i * 1000, "value": 20 + i} for i in range(3)]
    lines.append({"metric": "req", "kind": "counter", "host": "a", "ts": T0, "value": 1})  # out of order
    stats = CumulativeStats()
    sent = _sent(list(cumulative_to_deltas(_read(lines, max_batch_samples=2), stats)))
    assert sorted(sent[("req", "host=a")]) == [(T0 + i * 1000, d) for i, d in enumerate([2, 0, 5, 3, 1], start=1)]
    assert sorted(sent[("temp", "host=a")]) == [(T0 + i * 1000, 20 + i) for i in range(3)]
    assert (stats.baselines, stats.dropped) == (1, 1)


def test_pushing_the_same_input_again_sends_the_same_batches() -> None:
    lines: list[dict[str, object]] = [
        {"metric": "c", "kind": "counter", "ts": T0 + i * 1000, "value": i * i} for i in range(10)
    ]
    first = list(cumulative_to_deltas(_read(lines, 3), CumulativeStats()))
    second = list(cumulative_to_deltas(_read(lines, 3), CumulativeStats()))
    assert [b.SerializeToString(deterministic=True) for b in first] == [
        b.SerializeToString(deterministic=True) for b in second
    ]
    assert sum(v for b in first for s in b.series for v in s.values) == 81
