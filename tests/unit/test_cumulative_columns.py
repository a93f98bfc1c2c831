"""`Conversion.deltas` (many series at once, numpy) gives what `Conversion.delta` gives point
by point: the same deltas, baselines, drops and states, whatever the held states, start
times, repeated timestamps, infinities, TTL expiry and repeated keys."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.cumulative import Conversion, CumulativeDeltas, CumulativeState

TTL_MS = 50
KEYS = [b"a", b"b", b"c", b"d"]

values = st.one_of(
    st.integers(min_value=-3, max_value=30).map(float),
    st.sampled_from([math.inf, -math.inf, 0.5]),
)
# Times on a grid where gaps of exactly the TTL (50) are common.
TIMES = [0, 10, 20, 60, 70, 110, 120]
points = st.tuples(st.sampled_from(TIMES), values, st.sampled_from([0, 0, 0, 1, 5, 65, 100]))
series = st.tuples(st.sampled_from(KEYS), st.lists(points, max_size=8))
held = st.dictionaries(
    st.sampled_from(KEYS),
    st.tuples(st.sampled_from(TIMES), st.integers(0, 30).map(float), st.sampled_from([0, 1, 5, 150])),
)


def _converters(states: dict[bytes, tuple[int, float, int]]) -> tuple[Conversion[bytes], Conversion[bytes]]:
    out = []
    for _ in range(2):
        deltas: CumulativeDeltas[bytes] = CumulativeDeltas(ttl_ms=TTL_MS)
        for key, state in states.items():
            deltas._remember(key, CumulativeState(*state))
        out.append(deltas.begin_memory())
    return out[0], out[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(series, max_size=5), held, st.booleans())
def test_columns_convert_exactly_as_point_by_point(
    request: list[tuple[bytes, list[tuple[int, float, int]]]],
    states: dict[bytes, tuple[int, float, int]],
    with_starts: bool,
) -> None:
    columns, reference = _converters(states)
    keys = [key for key, _ in request]
    runs = [sorted(run, key=lambda p: p[0]) for _, run in request]  # time order, as callers give
    flat = [p for run in runs for p in run]
    ts = np.array([p[0] for p in flat], dtype=np.int64)
    vs = np.array([p[1] for p in flat], dtype=np.float64)
    starts = np.array([p[2] if with_starts else 0 for p in flat], dtype=np.int64)
    counts = np.array([len(run) for run in runs], dtype=np.int64)

    counted, deltas, baselines = columns.deltas(keys, counts, ts, vs, starts if with_starts else None)

    expected_counted: list[bool] = []
    expected: list[float] = []
    expected_baselines = 0
    for key, run in zip(keys, runs, strict=True):
        for t, v, s in run:
            before = reference.dropped
            delta = reference.delta(key, t, v, start_ms=s if with_starts else 0)
            expected_counted.append(delta is not None)
            if delta is None:
                expected_baselines += 1 if reference.dropped == before and math.isfinite(v) else 0
            else:
                expected.append(delta)
    assert counted.tolist() == expected_counted
    assert deltas[counted].tolist() == expected
    assert baselines == expected_baselines
    assert columns.dropped == reference.dropped
    assert columns.pending == reference.pending


async def test_a_second_call_in_one_conversion_continues_from_the_first() -> None:
    deltas: CumulativeDeltas[bytes] = CumulativeDeltas()
    conversion = await deltas.begin([b"a"])
    one = np.array([1], dtype=np.int64)
    first = conversion.deltas([b"a"], one, np.array([1_000], dtype=np.int64), np.array([10.0]))
    second = conversion.deltas([b"a"], one, np.array([2_000], dtype=np.int64), np.array([14.0]))
    assert first[0].tolist() == [False] and first[2] == 1  # a baseline
    assert second[0].tolist() == [True] and second[1].tolist() == [4.0]
    assert deltas.state(b"a") is None  # nothing applied before commit
    await conversion.commit()
    assert deltas.state(b"a") == CumulativeState(2_000, 14.0, 0)
