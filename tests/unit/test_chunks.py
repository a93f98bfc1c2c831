"""The chunk codec: bit-exact round trips, loud failures on bad bytes, and its size target."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import chunks
from core import points as P
from core.chunks import chunk_point_count, decode_chunk, decode_chunks, encode_chunk, encode_chunks
from core.chunks import encode as chunks_encode  # the encoder reads these at call time
from core.errors import CorruptData, InvalidArgument
from core.model import MetricKind
from core.points import Points, Ragged

HOUR_MS = 3_600_000
STEP_5S = 5_000
CHUNK_START = 1_699_999_200_000  # a multiple of one hour
KEY = -1234567890123


def assert_bit_exact(a: Points, b: Points) -> None:
    for name in ("key", "ts", "count", "sum", "min", "max", "last", "last_ts"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert x.view(np.int64).tolist() == y.view(np.int64).tolist(), name
    for name in ("sketch", "hll"):
        ra, rb = getattr(a, name), getattr(b, name)
        assert (ra.offsets - ra.offsets[0]).tolist() == rb.offsets.tolist(), name
        assert ra.index.dtype == rb.index.dtype == np.int32, name
        assert ra.index.tolist() == rb.index.tolist(), name
        assert ra.value.tolist() == rb.value.tolist(), name


# ------------------------------------------------------------------------ strategies

int64s = st.integers(-(2**63), 2**63 - 1)
any_float_bits = int64s.map(lambda b: float(np.int64(b).view(np.float64)))
special_floats = st.sampled_from(
    [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, -5e-324, 1.7976931348623157e308, 2.2250738585072014e-308]
)
decimal_floats = st.integers(-(10**12), 10**12).flatmap(lambda i: st.sampled_from([i / 10**e for e in range(10)]))
floats = st.one_of(decimal_floats, any_float_bits, special_floats, st.floats())


def float_column(n: int) -> st.SearchStrategy[list[float]]:
    # Whole columns of one style exercise the decimal path; mixed ones the XOR path.
    return st.one_of(
        st.lists(decimal_floats, min_size=n, max_size=n),
        st.lists(floats, min_size=n, max_size=n),
        st.sampled_from([0.0, -0.0, 12.5]).map(lambda v: [v] * n),
    )


@st.composite
def ragged(draw: st.DrawFn, n: int, index_range: tuple[int, int]) -> Ragged:
    if draw(st.booleans()):
        return Ragged.empty(n)
    lists = [
        sorted(draw(st.sets(st.integers(*index_range), max_size=8))) if draw(st.booleans()) else [] for _ in range(n)
    ]
    lengths = [len(x) for x in lists]
    total = sum(lengths)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Ragged(
        offsets=offsets,
        index=np.array([i for x in lists for i in x], dtype=np.int32),
        value=np.array(draw(st.lists(int64s, min_size=total, max_size=total)), dtype=np.int64),
    )


@st.composite
def chunk_layout(draw: st.DrawFn) -> tuple[int, int, list[int], bool]:
    """(step_ms, chunk_start_ms, slots, single): where a chunk's points are and whether they
    are single-sample points."""
    step = draw(st.sampled_from([1, 5_000, 60_000, 86_400_000, 7]))
    start = draw(st.integers(-(2**35), 2**35)) * step
    if draw(st.booleans()):
        first = draw(st.integers(0, 100))
        slots = list(range(first, first + draw(st.integers(0, 30))))  # gap-free
    else:
        slots = sorted(draw(st.sets(st.integers(0, 5_000), max_size=30)))
    return step, start, slots, draw(st.booleans())


@st.composite
def points_at(draw: st.DrawFn, step: int, start: int, slots: list[int], single: bool, sketches: bool = True) -> Points:
    """Points of one key at the given slots, with arbitrary column contents."""
    n = len(slots)
    ts = start + np.array(slots, dtype=np.int64) * step
    if single:
        value = np.array(draw(float_column(n)), dtype=np.float64)
        count = np.ones(n, dtype=np.int64)
        total = mn = mx = last = value
    else:
        count = np.array(draw(st.lists(int64s, min_size=n, max_size=n)), dtype=np.int64)
        total, mn, mx, last = (np.array(draw(float_column(n)), dtype=np.float64) for _ in range(4))
    last_ts = ts + np.array(draw(st.lists(st.integers(0, step - 1), min_size=n, max_size=n)), dtype=np.int64)
    if draw(st.booleans()):
        last_ts = np.array(draw(st.lists(int64s, min_size=n, max_size=n)), dtype=np.int64)
    return Points(
        key=np.full(n, KEY, dtype=np.int64),
        ts=ts,
        count=count,
        sum=total,
        min=mn,
        max=mx,
        last=last,
        last_ts=last_ts,
        sketch=draw(ragged(n, (-(2**31), 2**31 - 1))) if sketches else Ragged.empty(n),
        hll=draw(ragged(n, (0, 16_383))) if sketches else Ragged.empty(n),
    )


@st.composite
def chunk_points(draw: st.DrawFn) -> tuple[Points, int, int]:
    """(points of one key, step_ms, chunk_start_ms) with arbitrary column contents."""
    step, start, slots, single = draw(chunk_layout())
    return draw(points_at(step, start, slots, single)), step, start


versions = st.sampled_from([1, 2])
restart_intervals = st.sampled_from([1, 2, 5, chunks.RESTART_POINTS])


def encode(points: Points, kind: MetricKind, step: int, start: int, version: int, restart_points: int) -> bytes:
    with mock.patch.object(chunks_encode, "RESTART_POINTS", restart_points):
        return encode_chunk(points, kind=kind, step_ms=step, chunk_start_ms=start, version=version)


def random_walk_gauge(offsets_ms: np.ndarray | int = 0, seed: int = 0) -> Points:
    rng = np.random.default_rng(seed)
    n = HOUR_MS // STEP_5S
    values = np.round(np.clip(50 + np.cumsum(rng.normal(0, 1, n)), 0, 100), 2)
    ts = CHUNK_START + np.arange(n, dtype=np.int64) * STEP_5S + offsets_ms
    return P.from_values(np.full(n, KEY), ts, values, STEP_5S)


# ------------------------------------------------------------------------ round trips


@given(chunk_points(), st.sampled_from(list(MetricKind)), versions, restart_intervals)
@settings(max_examples=300)
def test_any_points_round_trip_bit_exactly(
    case: tuple[Points, int, int], kind: MetricKind, version: int, restart_points: int
) -> None:
    points, step, start = case
    data = encode(points, kind, step, start, version, restart_points)
    assert data[0] == version
    decoded = decode_chunk(data, key=KEY)
    assert (decoded.kind, decoded.step_ms, decoded.chunk_start_ms) == (kind, step, start)
    assert_bit_exact(points, decoded.points)
    assert encode(decoded.points, kind, step, start, version, restart_points) == data
    assert chunk_point_count(data) == len(points)


def test_real_points_of_every_kind_round_trip() -> None:
    rng = np.random.default_rng(4)
    n = 2_000
    ts = CHUNK_START + rng.integers(0, HOUR_MS, n)
    counts = rng.integers(0, 5, n)
    m = int(counts.sum())
    key = np.full(n, KEY)
    cases = [
        (MetricKind.GAUGE, STEP_5S, P.from_values(key, ts, rng.normal(0, 1e6, n), STEP_5S)),
        (MetricKind.COUNTER, 60_000, P.from_values(key, ts, rng.integers(0, 9, n).astype(float), 60_000)),
        (MetricKind.TIMER, STEP_5S, P.from_observations(key, ts, counts, rng.lognormal(2, 2, m), STEP_5S)),
        (
            MetricKind.DISTINCT,
            60_000,
            P.from_hashes(key, ts, counts, rng.integers(0, 2**63, m, dtype=np.uint64), 60_000),
        ),
    ]
    for kind, step, points in cases:
        for version in (1, 2):
            data = encode_chunk(points, kind=kind, step_ms=step, chunk_start_ms=CHUNK_START, version=version)
            assert_bit_exact(points, decode_chunk(data, key=KEY).points)


def test_decoded_points_carry_the_requested_key() -> None:
    points = random_walk_gauge()
    decoded = decode_chunk(
        encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START), key=7
    )
    assert set(decoded.points.key.tolist()) == {7}


def test_empty_points_round_trip() -> None:
    data = encode_chunk(Points.empty(), kind=MetricKind.COUNTER, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)
    decoded = decode_chunk(data, key=KEY)
    assert len(decoded.points) == 0
    assert decoded.kind is MetricKind.COUNTER


# ------------------------------------------------------------------------ size and shape


@pytest.mark.parametrize("timing", ["aligned", "constant offset", "0-50 ms jitter"])
def test_an_hour_of_a_two_decimal_random_walk_gauge_fits_in_2_5_bytes_per_point(timing: str) -> None:
    n = HOUR_MS // STEP_5S
    offsets = {
        "aligned": np.zeros(n, dtype=np.int64),
        "constant offset": np.full(n, 1_234, dtype=np.int64),
        "0-50 ms jitter": np.random.default_rng(9).integers(0, 50, n),
    }[timing]
    points = random_walk_gauge(offsets, seed=1)
    assert len(points) == 720
    data = encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)
    assert len(data) <= 2.5 * len(points)
    assert data[1] & chunks.FLAG_SINGLE


def test_single_sample_points_store_one_value_column() -> None:
    single = random_walk_gauge()
    merged = P.merge(single, single)  # count 2: sum differs from the value
    single_bytes = encode_chunk(single, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)
    merged_bytes = encode_chunk(merged, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)
    assert single_bytes[1] & chunks.FLAG_SINGLE
    assert not merged_bytes[1] & chunks.FLAG_SINGLE
    assert len(single_bytes) < len(merged_bytes)


def test_the_first_byte_is_the_codec_version() -> None:
    points = random_walk_gauge()
    data = encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)
    assert data[0] == chunks.CODEC_VERSION == 2
    old = encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START, version=1)
    assert old[0] == 1
    with pytest.raises(InvalidArgument) as err:
        encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START, version=3)
    assert err.value.parameter == "version"


def minute_rollup_of_a_5s_walk(seed: int = 0) -> Points:
    """12 hours of 1-minute points, each the rollup of twelve 5-second samples of a
    two-decimal random walk: sums of decimals that are not exact decimals themselves."""
    rng = np.random.default_rng(seed)
    n = 12 * 720
    ts = CHUNK_START + np.arange(n, dtype=np.int64) * STEP_5S + rng.integers(0, 50, n)
    values = np.round(np.clip(50 + np.cumsum(rng.normal(0, 0.5, n)), 0, 100), 2)
    return P.from_values(np.full(n, KEY), ts, values, 60_000)


def test_v2_stores_sums_of_decimals_as_decimals_plus_ulps_in_far_fewer_bytes() -> None:
    points = minute_rollup_of_a_5s_walk()
    assert len(points) == 720
    v1, v2 = (
        encode_chunk(points, kind=MetricKind.GAUGE, step_ms=60_000, chunk_start_ms=CHUNK_START, version=version)
        for version in (1, 2)
    )
    assert len(v2) <= 0.7 * len(v1)
    assert_bit_exact(points, decode_chunk(v2, key=KEY).points)


def test_restart_points_cost_little_on_a_small_gauge_chunk() -> None:
    points = random_walk_gauge(np.random.default_rng(9).integers(0, 50, HOUR_MS // STEP_5S), seed=1)
    v1, v2 = (
        encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START, version=version)
        for version in (1, 2)
    )
    assert len(v2) <= 1.03 * len(v1)


# ------------------------------------------------------------------------ refusing input


def test_points_of_several_keys_are_refused() -> None:
    points = P.from_values([1, 2], [CHUNK_START, CHUNK_START], [1.0, 2.0], STEP_5S)
    with pytest.raises(InvalidArgument) as err:
        encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)
    assert err.value.parameter == "points"


@pytest.mark.parametrize("ts", [[CHUNK_START - STEP_5S], [CHUNK_START + 1], [CHUNK_START + STEP_5S, CHUNK_START]])
def test_misaligned_early_or_unsorted_points_are_refused(ts: list[int]) -> None:
    n = len(ts)
    points = P.from_values(np.full(n, KEY), ts, np.ones(n), 1)
    points.ts = np.array(ts, dtype=np.int64)  # keep the given order
    with pytest.raises(InvalidArgument):
        encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)


def _valid_chunk(version: int = chunks.CODEC_VERSION) -> bytes:
    rng = np.random.default_rng(8)
    n = 300
    ts = CHUNK_START + np.arange(n) * STEP_5S
    counts = rng.integers(1, 4, n)
    points = P.from_observations(np.full(n, KEY), ts, counts, rng.lognormal(1, 1, int(counts.sum())), STEP_5S)
    return encode_chunk(points, kind=MetricKind.TIMER, step_ms=STEP_5S, chunk_start_ms=CHUNK_START, version=version)


@pytest.mark.parametrize("version", [0, 3, 255])
def test_unknown_versions_are_corrupt_data(version: int) -> None:
    data = bytearray(_valid_chunk())
    data[0] = version
    with pytest.raises(CorruptData, match="version"):
        decode_chunk(bytes(data), key=KEY)


@pytest.mark.parametrize("version", [1, 2])
def test_every_truncation_is_corrupt_data(version: int) -> None:
    data = _valid_chunk(version)
    for end in range(len(data)):
        with pytest.raises(CorruptData):
            decode_chunk(data[:end], key=KEY)


@pytest.mark.parametrize("version", [1, 2])
def test_trailing_bytes_are_corrupt_data(version: int) -> None:
    with pytest.raises(CorruptData):
        decode_chunk(_valid_chunk(version) + b"\x00", key=KEY)


def test_unknown_flags_and_kinds_are_corrupt_data() -> None:
    data = bytearray(_valid_chunk())
    data[1] |= 0x80
    with pytest.raises(CorruptData, match="flags"):
        decode_chunk(bytes(data), key=KEY)
    data = bytearray(_valid_chunk())
    data[2] = 99
    with pytest.raises(CorruptData, match="kind"):
        decode_chunk(bytes(data), key=KEY)


def test_a_header_claiming_absurd_sizes_is_corrupt_data() -> None:
    data = bytearray(_valid_chunk())
    struct.pack_into("<I", data, 3, 2**32 - 1)  # n_points
    with pytest.raises(CorruptData):
        decode_chunk(bytes(data), key=KEY)


@given(st.data())
@settings(max_examples=300)
def test_damaged_bytes_decode_or_raise_corrupt_data_and_nothing_else(data: st.DataObject) -> None:
    raw = bytearray(_CORPUS[data.draw(st.integers(0, len(_CORPUS) - 1))])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(CorruptData):
        decode_chunk(bytes(raw), key=KEY)


def _uncompressed_chunk(version: int = chunks.CODEC_VERSION) -> bytes:
    rng = np.random.default_rng(6)
    n = 20

    def noise() -> np.ndarray:
        return rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True)

    ts = CHUNK_START + np.arange(n, dtype=np.int64) * STEP_5S
    points = Points(
        key=np.full(n, KEY, dtype=np.int64),
        ts=ts,
        count=noise(),
        sum=noise().view(np.float64),
        min=noise().view(np.float64),
        max=noise().view(np.float64),
        last=noise().view(np.float64),
        last_ts=noise(),
        sketch=Ragged.empty(n),
        hll=Ragged.empty(n),
    )
    data = encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START, version=version)
    assert not data[1] & chunks.FLAG_COMPRESSED  # noise: zstd does not pay
    return data


def _residual_chunk() -> bytes:
    points = minute_rollup_of_a_5s_walk(seed=2).take(slice(0, 150))
    return encode_chunk(points, kind=MetricKind.GAUGE, step_ms=60_000, chunk_start_ms=CHUNK_START)


_CORPUS = [
    _valid_chunk(1),
    _uncompressed_chunk(1),
    _valid_chunk(2),
    _uncompressed_chunk(2),
    _residual_chunk(),
]


# ------------------------------------------------------------------------ old versions stay readable

FROZEN_T0 = 1_699_999_200_000
# Written by the version 1 encoder (before version 2 existed), from the samples rebuilt below.
FROZEN_V1_GAUGE = bytes.fromhex(
    "0101020c00000060ea0000000000000033d9cf8b0100000000000000000000f000000028b52ffd20f0dd0500b409"
    "01000103000190a4ae3458b14d7b7bc834bec2f1aade6fc936eaea22ddc9f5c6aa78bd26d9a9a98b7426281baae3"
    "f59b64a7a72cd39b5c6faa8dd66c939e9eb24d6cc79c020f1b5215524ae027e262000301003e0300400002a0feff"
    "02e8be6470601200f7c13796281400010101010000000100010002fca1b201f20bf20019c92599b014eabca07024"
    "12000aae3e8f3a01e9d6000000000000000d002008c899840db8047eb68f51cf014180f102c201d9c0da2eb301b401"
)
FROZEN_V1_TIMER = bytes.fromhex(
    "0105030400000088130000000000000033d9cf8b0100000000000000000000ba00000028b52ffd20ba6d0300a245"
    "131fa029c301457aeacebf1380c1d24f41d9acbee29be1aaaaba98dbbaff962905eaeadc1e501e1a48246d25decf"
    "646fc5b0b019308ac71499248c8d2d0b619e57a01c325001b02e08ca7cbeaf7b0c008e2a2baaa12b12ea40a0cf15"
    "40f6a2ca0f1a01e483e0c12803c002"
)
FROZEN_V1_DISTINCT = bytes.fromhex(
    "0109040300000060ea0000000000000033d9cf8b01000000000000000000007400000028b52ffd20744d01009001"
    "0001000101d0ff02345c0030181817180009004091da0c865f0fa199566f00226821180c9c012c"
)
FROZEN_GAUGE_VALUES = [50.0, 50.21, 50.02, 49.39, 49.08, 48.38, 48.42, 49.36, 49.02, 48.58, 48.93, 49.18]
FROZEN_GAUGE_VALUES += [49.25, 48.6, 48.58, 49.07, 48.12, 47.8, 46.47, 45.57, 44.28, 44.12, 43.23, 43.42]
FROZEN_GAUGE_VALUES += [43.53, 43.4, 41.64, 41.26, 41.23, 41.3, 40.23, 39.9, 39.21, 38.65, 39.39, 38.83]


def frozen_samples() -> list[tuple[bytes, MetricKind, Points]]:
    minutes = FROZEN_T0 + np.array([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12]) * 60_000
    gauge_ts = np.repeat(minutes, 3) + np.tile([5_000, 30_000, 55_017], 12)
    gauge = P.from_values(np.zeros(36, dtype=np.int64), gauge_ts, FROZEN_GAUGE_VALUES, 60_000)
    observations = [12.5, 80.25, 3.0, 7.75, 7.75, 1000.0, 0.5, 42.0]
    timer_ts = FROZEN_T0 + np.arange(5) * 5_000 + 1_000
    timer = P.from_observations(np.zeros(5, dtype=np.int64), timer_ts, [2, 1, 3, 0, 2], observations, 5_000)
    hashes = np.array([1 << 60 | 5, 3 << 62 | 9, 7, 1 << 40, 123456789], dtype=np.uint64)
    distinct_ts = FROZEN_T0 + np.array([0, 60_000, 120_000])
    distinct = P.from_hashes(np.zeros(3, dtype=np.int64), distinct_ts, [2, 2, 1], hashes, 60_000)
    return [
        (FROZEN_V1_GAUGE, MetricKind.GAUGE, gauge),
        (FROZEN_V1_TIMER, MetricKind.TIMER, timer),
        (FROZEN_V1_DISTINCT, MetricKind.DISTINCT, distinct),
    ]


def test_version_1_chunks_written_before_version_2_still_decode() -> None:
    for data, kind, expected in frozen_samples():
        assert data[0] == 1
        decoded = decode_chunk(data, key=0)
        assert decoded.kind is kind and decoded.chunk_start_ms == FROZEN_T0
        assert_bit_exact(expected, decoded.points)
        # The version 1 encoder of today still writes the same bytes.
        step = decoded.step_ms
        assert encode_chunk(expected, kind=kind, step_ms=step, chunk_start_ms=FROZEN_T0, version=1) == data
        batch = decode_chunks([data] * 5, [0] * 5)
        assert P.identical(batch, P.concat(*[decoded.points] * 5))


# ------------------------------------------------------------------------ many chunks at once


@st.composite
def chunk_batches(
    draw: st.DrawFn,
) -> tuple[list[bytes], list[int], int | None, int | None]:
    """(chunks, keys, start_ms, end_ms): up to 12 chunks of a few shapes (so that several
    share one and are decoded together), versions 1 and 2, some with sketch sections, and a
    window around their times (or none)."""
    layouts = draw(st.lists(chunk_layout(), min_size=1, max_size=3))
    restart_points = draw(restart_intervals)
    datas: list[bytes] = []
    all_ts: list[int] = []
    for _ in range(draw(st.integers(0, 12))):
        i = draw(st.integers(0, len(layouts) - 1))
        step, start, slots, single = layouts[i]
        points = draw(points_at(step, start, slots, single, sketches=draw(st.integers(0, 5)) == 0))
        version = draw(st.sampled_from([2, 2, 2, 1]))
        datas.append(encode(points, MetricKind.GAUGE, step, start, version, restart_points))
        all_ts.extend(points.ts.tolist())
    keys = draw(st.lists(st.sampled_from([0, 1, 2, -(2**63), 2**63 - 1]), min_size=len(datas), max_size=len(datas)))
    lo, hi = (min(all_ts), max(all_ts)) if all_ts else (0, 0)
    bound = st.one_of(st.none(), st.integers(lo - 10, hi + 10), st.sampled_from([lo, hi, hi + 1]))
    return datas, keys, draw(bound), draw(bound)


def one_by_one(datas: list[bytes], keys: list[int], start_ms: int | None, end_ms: int | None) -> Points:
    parts = []
    for data, key in zip(datas, keys, strict=True):
        points = decode_chunk(data, key=key).points
        keep = np.ones(len(points), dtype=np.bool_)
        if start_ms is not None:
            keep &= points.ts >= start_ms
        if end_ms is not None:
            keep &= points.ts < end_ms
        parts.append(points.take(keep))
    return P.concat(*parts) if parts else Points.empty()


@given(chunk_batches())
@settings(max_examples=300)
def test_decoding_chunks_together_equals_decoding_them_one_by_one(
    batch: tuple[list[bytes], list[int], int | None, int | None],
) -> None:
    datas, keys, start_ms, end_ms = batch
    expected = one_by_one(datas, keys, start_ms, end_ms)
    assert_bit_exact(expected, decode_chunks(datas, keys, start_ms=start_ms, end_ms=end_ms))
    # Unordered: the same rows, chunk by chunk, the chunks in some order (a key per chunk tells).
    positions = list(range(len(datas)))
    unordered = decode_chunks(datas, positions, start_ms=start_ms, end_ms=end_ms, ordered=False)
    in_order = unordered.take(np.lexsort((unordered.ts, unordered.key)))
    assert_bit_exact(one_by_one(datas, positions, start_ms, end_ms), in_order)


def test_a_window_keeps_the_points_of_many_identical_layouts_from_a_restart_on() -> None:
    # 40 series x 12 h of 1-minute rollups, as a 1-hour query reads them: the batched path with
    # its shared-times shortcut, columns decoded from the last restart before the hour.
    datas = [
        encode_chunk(minute_rollup_of_a_5s_walk(s), kind=MetricKind.GAUGE, step_ms=60_000, chunk_start_ms=CHUNK_START)
        for s in range(40)
    ]
    keys = [s % 3 for s in range(40)]
    for start_ms, end_ms in [(CHUNK_START + 659 * 60_000, CHUNK_START + 719 * 60_000), (None, CHUNK_START + 1)]:
        got = decode_chunks(datas, keys, start_ms=start_ms, end_ms=end_ms)
        assert_bit_exact(one_by_one(datas, keys, start_ms, end_ms), got)
    assert len(decode_chunks(datas, keys, start_ms=CHUNK_START + 12 * HOUR_MS)) == 0


def test_decoding_no_chunks_gives_no_points() -> None:
    assert len(decode_chunks([], [])) == 0


def test_decode_chunks_wants_one_int64_key_per_chunk() -> None:
    data = _valid_chunk()
    for keys in ([1, 2], [2**64]):
        with pytest.raises(InvalidArgument) as err:
            decode_chunks([data], keys)
        assert err.value.parameter == "keys"


@pytest.mark.parametrize("version", [1, 2])
def test_decode_chunks_names_the_position_of_a_corrupt_chunk(version: int) -> None:
    good = encode_chunk(
        minute_rollup_of_a_5s_walk(), kind=MetricKind.GAUGE, step_ms=60_000, chunk_start_ms=CHUNK_START, version=version
    )
    for damaged in (good[:-3], good[:1] + b"\x7f" + good[2:], good + b"\x00"):
        datas = [good] * 6
        datas[4] = damaged
        with pytest.raises(CorruptData, match="chunk 4"):
            decode_chunks(datas, [0] * 6)


@given(st.data())
@settings(max_examples=200)
def test_damaged_batches_fail_exactly_when_a_chunk_alone_fails(data: st.DataObject) -> None:
    # Batches of one shape, so that the batched path (not the one-by-one reader) checks them.
    source = data.draw(st.sampled_from(_CORPUS[1:2] + _CORPUS[3:]))
    raw = [bytearray(source) for _ in range(5)]
    for _ in range(data.draw(st.integers(1, 4))):
        chunk = data.draw(st.integers(0, 4))
        pos = data.draw(st.integers(0, len(raw[chunk]) - 1))
        raw[chunk][pos] = data.draw(st.integers(0, 255))
    datas = [bytes(r) for r in raw]
    try:
        expected: Points | None = one_by_one(datas, [7] * 5, None, None)
    except CorruptData:
        expected = None
    if expected is None:
        with pytest.raises(CorruptData):
            decode_chunks(datas, [7] * 5)
    else:
        assert_bit_exact(expected, decode_chunks(datas, [7] * 5))


# ------------------------------------------------------------------------ encoding many chunks at once

Item = tuple[Points, MetricKind, int, int]


def encoded_one_by_one(items: list[Item]) -> list[bytes]:
    return [encode_chunk(p, kind=kind, step_ms=step, chunk_start_ms=start) for p, kind, step, start in items]


@contextlib.contextmanager
def batching_everything(block_values: int) -> Iterator[None]:
    """Every group of one point count takes the 2-D path, in blocks of `block_values` points."""
    with (
        mock.patch.object(chunks_encode, "_ENCODE_BATCH_MIN", 1),
        mock.patch.object(chunks_encode, "_ENCODE_BLOCK_VALUES", block_values),
    ):
        yield


@st.composite
def encode_batches(draw: st.DrawFn) -> list[Item]:
    """Up to 12 valid chunks of a few layouts (so that several share a point count), each of
    any kind, single-sample or not, some with sketch sections."""
    layouts = draw(st.lists(chunk_layout(), min_size=1, max_size=3))
    items: list[Item] = []
    for _ in range(draw(st.integers(0, 12))):
        step, start, slots, _ = draw(st.sampled_from(layouts))
        single = draw(st.booleans())
        points = draw(points_at(step, start, slots, single, sketches=draw(st.integers(0, 5)) == 0))
        items.append((points, draw(st.sampled_from(list(MetricKind))), step, start))
    return items


@given(encode_batches(), st.sampled_from([1, 40, 1 << 16]))
@settings(max_examples=300)
def test_encoding_chunks_together_gives_the_bytes_of_encoding_them_one_by_one(
    items: list[Item], block_values: int
) -> None:
    with batching_everything(block_values):
        assert encode_chunks(items) == encoded_one_by_one(items)


def _column(style: str, n: int, rng: np.random.Generator) -> np.ndarray:
    walk = np.cumsum(rng.normal(0, 1, n))
    match style:
        case "decimal":
            return np.round(50 + walk, 2)
        case "sums":  # decimals plus a few ulps: the residual mode
            return np.round(walk, 1) + np.round(walk * 3, 2) + 0.1
        case "xor":
            return rng.normal(0, 1e6, n)
        case "huge":
            return rng.choice([1.7976931348623157e308, -5e-324, 1e300, 2.0**53, -(2.0**60)], n)
        case "late noise":  # 0.0 until the head check is done, then below 0.5: eight bytes either way
            return np.where(np.arange(n) < 16, 0.0, rng.uniform(-0.4, 0.4, n))
        case "specials":
            return rng.choice([0.0, -0.0, np.nan, np.inf, -np.inf, 12.5], n)
        case _:
            return np.full(n, -0.0)


def _long_chunk(n: int, seed: int) -> Item:
    """A chunk of n points (gap-free or not) whose columns are each of one style."""
    rng = np.random.default_rng(seed)
    styles = ["decimal", "sums", "xor", "huge", "specials", "zero", "late noise"]
    step = int(rng.choice([5_000, 60_000]))
    start = CHUNK_START
    slots = np.arange(n) if rng.random() < 0.7 else np.sort(rng.choice(4 * n, n, replace=False))
    ts = start + slots.astype(np.int64) * step
    if rng.random() < 0.3:
        value = _column(str(rng.choice(styles)), n, rng)
        count = np.ones(n, dtype=np.int64)
        total = mn = mx = last = value
    else:
        count = rng.integers(1, 1 << int(rng.choice([1, 9, 17, 40])), n)
        total, mn, mx, last = (_column(str(rng.choice(styles)), n, rng) for _ in range(4))
    points = Points(
        key=np.full(n, KEY, dtype=np.int64),
        ts=ts,
        count=count,
        sum=total,
        min=mn,
        max=mx,
        last=last,
        last_ts=ts + rng.integers(0, step, n),
        sketch=Ragged.empty(n),
        hll=Ragged.empty(n),
    )
    return points, MetricKind.GAUGE, step, start


@pytest.mark.parametrize("block_values", [1, 1_000, 1 << 16])
def test_long_chunks_encoded_together_across_restart_points_give_the_same_bytes(block_values: int) -> None:
    counts = [1, 2, 15, 16, 17, 63, 64, 65, 129, 720]
    items = [_long_chunk(n, seed) for seed in range(12) for n in counts]
    with batching_everything(block_values):
        assert encode_chunks(items) == encoded_one_by_one(items)


def test_encoding_many_chunks_with_the_default_batching_gives_the_same_bytes() -> None:
    items = [_long_chunk(120, seed) for seed in range(40)] + [_long_chunk(3, seed) for seed in range(2)]
    assert encode_chunks(items) == encoded_one_by_one(items)


def test_encoding_no_chunks_gives_no_bytes() -> None:
    assert encode_chunks([]) == []


@pytest.mark.parametrize("bad", ["misaligned", "several keys", "unsorted"])
def test_a_refused_chunk_among_many_raises_what_encoding_it_alone_raises(bad: str) -> None:
    items = [_long_chunk(30, seed) for seed in range(8)]
    points = items[5][0]
    if bad == "misaligned":
        points.ts = points.ts + 1
    elif bad == "several keys":
        points.key = points.key + np.arange(30)
    else:
        points.ts = points.ts[::-1].copy()
    with pytest.raises(InvalidArgument) as alone:
        encode_chunk(points, kind=items[5][1], step_ms=items[5][2], chunk_start_ms=items[5][3])
    with batching_everything(1 << 16), pytest.raises(InvalidArgument) as together:
        encode_chunks(items)
    assert str(together.value) == str(alone.value)
    assert together.value.parameter == alone.value.parameter == "points"
