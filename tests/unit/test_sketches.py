"""Laws of the numpy sketches: DDSketch-style key mapping and HyperLogLog."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import sketches

ALPHA_TOLERANCE = sketches.DDSKETCH_ALPHA * (1 + 1e-9)

magnitudes = st.floats(min_value=sketches.DDSKETCH_MIN_VALUE, max_value=1e300, allow_nan=False)
signed_values = st.one_of(magnitudes, magnitudes.map(lambda v: -v), st.sampled_from([0.0, -0.0, 1e-12, -1e-10]))


def test_zero_and_tiny_magnitudes_map_to_key_zero() -> None:
    keys = sketches.ddsketch_keys(np.array([0.0, -0.0, 1e-10, -9.99e-10, 5e-324, np.nan]))
    assert keys.tolist() == [0, 0, 0, 0, 0, 0]
    assert keys.dtype == np.int32


def test_positive_values_get_positive_keys_and_negatives_their_mirror() -> None:
    values = np.array([1e-9, 1.0, 3.5, 1e6, 1.7976931348623157e308, np.inf])
    pos = sketches.ddsketch_keys(values)
    neg = sketches.ddsketch_keys(-values)
    assert (pos >= 1).all()
    assert neg.tolist() == (-pos).tolist()
    assert pos[-1] == sketches.DDSKETCH_MAX_KEY


@given(st.lists(signed_values, min_size=1, max_size=200))
def test_keys_sort_like_the_values_they_stand_for(values: list[float]) -> None:
    v = np.sort(np.array(values))
    keys = sketches.ddsketch_keys(v)
    assert (np.diff(keys) >= 0).all()


@given(st.lists(signed_values, min_size=1, max_size=200))
def test_representative_value_is_within_alpha_of_every_value_of_its_bucket(values: list[float]) -> None:
    v = np.array(values)
    rep = sketches.ddsketch_value(sketches.ddsketch_keys(v))
    big = np.abs(v) >= sketches.DDSKETCH_MIN_VALUE
    assert (np.abs(rep[big] - v[big]) <= ALPHA_TOLERANCE * np.abs(v[big])).all()
    assert (rep[~big] == 0.0).all()


def test_values_next_to_bucket_boundaries_map_like_an_exact_table_search() -> None:
    # The key is decided by comparisons with a fixed boundary table, never by log rounding.
    bounds = sketches._BOUNDS[1:-1]
    probes = np.concatenate([bounds, np.nextafter(bounds, np.inf), np.nextafter(bounds, 0.0)])
    expected = np.searchsorted(sketches._BOUNDS, probes, side="left")
    assert sketches.ddsketch_keys(probes).tolist() == expected.tolist()
    assert sketches.ddsketch_keys(-probes).tolist() == (-expected).tolist()


def test_hash_strings_is_blake2b_8_bytes_big_endian() -> None:
    values = ["", "user-1", "ünïcødé"]
    expected = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big") for s in values]
    got = sketches.hash_strings(values)
    assert got.dtype == np.uint64
    assert got.tolist() == expected


def test_hash_of_a_known_value_is_pinned() -> None:
    # Senders may hash locally (distinct_hashes on the wire): this value must never change.
    assert int(sketches.hash_strings(["argus"])[0]) == 0xC53125B8B4E308D6
    assert sketches.hash_strings([]).shape == (0,)


def test_register_is_top_14_bits_and_rank_counts_leading_zeros_of_the_rest_plus_one() -> None:
    hashes = np.array([0, 1 << 63, 1 << 49, 1, (1 << 64) - 1, (5 << 50) | (1 << 40)], dtype=np.uint64)
    register, rank = sketches.hll_registers(hashes)
    assert register.tolist() == [0, 8192, 0, 0, 16383, 5]
    assert rank.tolist() == [51, 51, 1, 50, 1, 10]


def test_signed_hashes_are_read_as_their_bits() -> None:
    signed = np.array([-1, 1], dtype=np.int64)
    assert [a.tolist() for a in sketches.hll_registers(signed)] == [
        a.tolist() for a in sketches.hll_registers(signed.view(np.uint64))
    ]


def _dense(hashes: np.ndarray) -> np.ndarray:
    register, rank = sketches.hll_registers(hashes)
    dense = np.zeros((1, sketches.HLL_M), dtype=np.uint8)
    np.maximum.at(dense[0], register, rank)
    return dense


@pytest.mark.parametrize("n", [1_000, 10_000, 30_000, 50_000, 100_000, 1_000_000])
def test_hll_estimate_is_within_3_percent(n: int) -> None:
    hashes = np.random.default_rng(n).integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    estimate = sketches.hll_estimate_dense(_dense(hashes))[0]
    assert abs(estimate - n) <= 0.03 * n


def test_hll_estimate_of_hashed_strings_is_within_3_percent() -> None:
    n = 20_000
    hashes = sketches.hash_strings([f"user-{i}" for i in range(n)])
    estimate = sketches.hll_estimate_dense(_dense(hashes))[0]
    assert abs(estimate - n) <= 0.03 * n


def test_hll_of_few_values_is_nearly_exact_and_of_none_is_zero() -> None:
    hashes = np.random.default_rng(7).integers(0, 2**64 - 1, 10, dtype=np.uint64, endpoint=True)
    assert sketches.hll_estimate_dense(np.zeros((1, sketches.HLL_M), dtype=np.uint8))[0] == 0.0
    assert round(float(sketches.hll_estimate_dense(_dense(hashes))[0])) == 10


def test_histogram_and_dense_estimates_agree_row_by_row() -> None:
    rng = np.random.default_rng(3)
    dense = np.concatenate([_dense(rng.integers(0, 2**63, n, dtype=np.uint64)) for n in (0, 5, 5_000, 80_000)])
    hist = np.stack([np.bincount(row, minlength=sketches.HLL_MAX_RANK + 1) for row in dense])
    assert sketches.hll_estimate_histogram(hist).tolist() == sketches.hll_estimate_dense(dense).tolist()


def test_hll_inputs_of_the_wrong_shape_are_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        sketches.hll_estimate_dense(np.zeros((1, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        sketches.hll_estimate_histogram(np.zeros((1, 10)))
