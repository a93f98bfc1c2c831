"""The chunk codec: bit-exact round trips, loud failures on bad bytes, and its size target."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import chunks
from core import points as P
from core.chunks import decode_chunk, encode_chunk
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
def chunk_points(draw: st.DrawFn) -> tuple[Points, int, int]:
    """(points of one key, step_ms, chunk_start_ms) with arbitrary column contents."""
    step = draw(st.sampled_from([1, 5_000, 60_000, 86_400_000, 7]))
    start = draw(st.integers(-(2**35), 2**35)) * step
    slots = sorted(draw(st.sets(st.integers(0, 5_000), max_size=30)))
    n = len(slots)
    ts = start + np.array(slots, dtype=np.int64) * step
    single = draw(st.booleans())
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
    points = Points(
        key=np.full(n, KEY, dtype=np.int64),
        ts=ts,
        count=count,
        sum=total,
        min=mn,
        max=mx,
        last=last,
        last_ts=last_ts,
        sketch=draw(ragged(n, (-(2**31), 2**31 - 1))),
        hll=draw(ragged(n, (0, 16_383))),
    )
    return points, step, start


def random_walk_gauge(offsets_ms: np.ndarray | int = 0, seed: int = 0) -> Points:
    rng = np.random.default_rng(seed)
    n = HOUR_MS // STEP_5S
    values = np.round(np.clip(50 + np.cumsum(rng.normal(0, 1, n)), 0, 100), 2)
    ts = CHUNK_START + np.arange(n, dtype=np.int64) * STEP_5S + offsets_ms
    return P.from_values(np.full(n, KEY), ts, values, STEP_5S)


# ------------------------------------------------------------------------ round trips


@given(chunk_points(), st.sampled_from(list(MetricKind)))
@settings(max_examples=300)
def test_any_points_round_trip_bit_exactly(case: tuple[Points, int, int], kind: MetricKind) -> None:
    points, step, start = case
    data = encode_chunk(points, kind=kind, step_ms=step, chunk_start_ms=start)
    decoded = decode_chunk(data, key=KEY)
    assert (decoded.kind, decoded.step_ms, decoded.chunk_start_ms) == (kind, step, start)
    assert_bit_exact(points, decoded.points)
    assert encode_chunk(decoded.points, kind=kind, step_ms=step, chunk_start_ms=start) == data


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
        data = encode_chunk(points, kind=kind, step_ms=step, chunk_start_ms=CHUNK_START)
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
    data = encode_chunk(random_walk_gauge(), kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)
    assert data[0] == chunks.CODEC_VERSION == 1


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


def _valid_chunk() -> bytes:
    rng = np.random.default_rng(8)
    n = 300
    ts = CHUNK_START + np.arange(n) * STEP_5S
    counts = rng.integers(1, 4, n)
    points = P.from_observations(np.full(n, KEY), ts, counts, rng.lognormal(1, 1, int(counts.sum())), STEP_5S)
    return encode_chunk(points, kind=MetricKind.TIMER, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_versions_are_corrupt_data(version: int) -> None:
    data = bytearray(_valid_chunk())
    data[0] = version
    with pytest.raises(CorruptData, match="version"):
        decode_chunk(bytes(data), key=KEY)


def test_every_truncation_is_corrupt_data() -> None:
    data = _valid_chunk()
    for end in range(len(data)):
        with pytest.raises(CorruptData):
            decode_chunk(data[:end], key=KEY)


def test_trailing_bytes_are_corrupt_data() -> None:
    with pytest.raises(CorruptData):
        decode_chunk(_valid_chunk() + b"\x00", key=KEY)


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


def _uncompressed_chunk() -> bytes:
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
    data = encode_chunk(points, kind=MetricKind.GAUGE, step_ms=STEP_5S, chunk_start_ms=CHUNK_START)
    assert not data[1] & chunks.FLAG_COMPRESSED  # noise: zstd does not pay
    return data


_CORPUS = [_valid_chunk(), _uncompressed_chunk()]
