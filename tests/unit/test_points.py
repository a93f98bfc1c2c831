"""Point semantics: how samples become points and the merge laws every tier relies on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import points as P
from core import sketches
from core.errors import InvalidArgument
from core.points import Points, Ragged

STEP_5S = 5_000
STEP_1M = 60_000
STEP_5M = 300_000
T0 = 1_699_999_800_000  # a multiple of 5 minutes


def assert_same(a: Points, b: Points, *, compare_sum: bool = True) -> None:
    """Bit-exact equality with a message naming the first differing column."""
    cols = ["key", "ts", "count", "min", "max", "last", "last_ts"] + (["sum"] if compare_sum else [])
    for name in cols:
        x, y = getattr(a, name), getattr(b, name)
        if x.dtype == np.float64:
            x, y = x.view(np.int64), y.view(np.int64)
        assert x.tolist() == y.tolist(), name
    for name in ("sketch", "hll"):
        ra, rb = getattr(a, name), getattr(b, name)
        assert (ra.offsets - ra.offsets[0]).tolist() == (rb.offsets - rb.offsets[0]).tolist(), name
        assert ra.index.tolist() == rb.index.tolist(), name
        assert ra.value.tolist() == rb.value.tolist(), name
    assert P.identical(a, b, compare_sum=compare_sum)


def assert_valid(p: Points) -> None:
    """The Points invariants: sorted by (key, ts), unique, canonical ragged lists."""
    order = np.lexsort((p.ts, p.key))
    assert order.tolist() == list(range(len(p)))
    same = (p.key[1:] == p.key[:-1]) & (p.ts[1:] == p.ts[:-1])
    assert not same.any()
    for r in (p.sketch, p.hll):
        assert len(r) == len(p)
        for i in range(len(p)):
            idx = r.index[r.offsets[i] : r.offsets[i + 1]]
            assert (np.diff(idx.astype(np.int64)) > 0).all()
        assert (r.value != 0).all()


# ------------------------------------------------------------------------ strategies


@dataclass(frozen=True)
class Samples:
    """Raw samples of several kinds over a few keys and buckets (integer-valued: exact sums)."""

    key: np.ndarray
    ts: np.ndarray
    value: np.ndarray
    counts: np.ndarray
    observations: np.ndarray
    hashes: np.ndarray

    def __len__(self) -> int:
        return len(self.key)

    def subset(self, idx: np.ndarray) -> Samples:
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        pos = np.concatenate([np.arange(starts[i], starts[i] + self.counts[i]) for i in idx] + [np.zeros(0)])
        pos = pos.astype(np.int64)
        return Samples(
            key=self.key[idx],
            ts=self.ts[idx],
            value=self.value[idx],
            counts=self.counts[idx],
            observations=self.observations[pos],
            hashes=self.hashes[pos],
        )


keys = st.sampled_from([-(2**63), -7, 0, 3, 2**62 + 1, 2**63 - 1])
int_values = st.one_of(st.integers(-1000, 1000).map(float), st.just(-0.0))


@st.composite
def samples(draw: st.DrawFn, max_size: int = 40) -> Samples:
    n = draw(st.integers(0, max_size))
    key = np.array(draw(st.lists(keys, min_size=n, max_size=n)), dtype=np.int64)
    # A few distinct times, so that samples often share a bucket and a ts (last tie-breaks).
    ts = T0 + np.array(draw(st.lists(st.integers(-3, 30), min_size=n, max_size=n)), dtype=np.int64) * 2_500
    value = np.array(draw(st.lists(int_values, min_size=n, max_size=n)), dtype=np.float64)
    counts = np.array(draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=np.int64)
    m = int(counts.sum())
    obs = np.array(draw(st.lists(int_values, min_size=m, max_size=m)), dtype=np.float64)
    # Few distinct hashes spread over few registers, so registers collide and ranks compete.
    hashes = np.array(
        draw(st.lists(st.integers(0, 63).map(lambda i: (i % 4) << 60 | (1 << (i % 50))), min_size=m, max_size=m)),
        dtype=np.uint64,
    )
    return Samples(key=key, ts=ts, value=value, counts=counts, observations=obs, hashes=hashes)


def build(s: Samples, kind: str, step_ms: int = STEP_5S) -> Points:
    if kind == "values":
        return P.from_values(s.key, s.ts, s.value, step_ms)
    if kind == "timer":
        return P.from_observations(s.key, s.ts, s.counts, s.observations, step_ms)
    return P.from_hashes(s.key, s.ts, s.counts, s.hashes, step_ms)


kinds = st.sampled_from(["values", "timer", "distinct"])


@st.composite
def points(draw: st.DrawFn) -> Points:
    """Valid Points mixing the three kinds (the merge laws must not care)."""
    parts = [build(draw(samples(max_size=15)), draw(kinds)) for _ in range(draw(st.integers(1, 3)))]
    return P.merge(*parts)


# ------------------------------------------------------------------------ building points


def test_from_values_buckets_samples_and_aggregates_them() -> None:
    p = P.from_values([1, 1, 1, 2], [T0 + 100, T0 + 4_999, T0 + 5_000, T0], [3.0, 1.0, 7.0, 5.0], STEP_5S)
    assert_valid(p)
    assert p.key.tolist() == [1, 1, 2]
    assert p.ts.tolist() == [T0, T0 + 5_000, T0]
    assert p.count.tolist() == [2, 1, 1]
    assert p.sum.tolist() == [4.0, 7.0, 5.0]
    assert p.min.tolist() == [1.0, 7.0, 5.0]
    assert p.max.tolist() == [3.0, 7.0, 5.0]
    assert p.last.tolist() == [1.0, 7.0, 5.0]
    assert p.last_ts.tolist() == [T0 + 4_999, T0 + 5_000, T0]


def test_last_is_the_latest_sample_and_the_larger_value_on_a_tie() -> None:
    later_smaller = P.from_values([1, 1], [T0 + 2, T0 + 1], [1.0, 9.0], STEP_5S)
    assert later_smaller.last.tolist() == [1.0]
    tie = P.from_values([1, 1, 1], [T0 + 1, T0 + 1, T0], [2.0, 8.0, 99.0], STEP_5S)
    assert tie.last.tolist() == [8.0]
    assert P.from_values([1, 1], [T0 + 1, T0 + 1], [8.0, 2.0], STEP_5S).last.tolist() == [8.0]


def test_signed_zeros_merge_by_total_order_whatever_the_order() -> None:
    for values in ([0.0, -0.0], [-0.0, 0.0]):
        p = P.from_values([1, 1], [T0, T0], values, STEP_5S)
        assert np.signbit(p.min).tolist() == [True]
        assert np.signbit(p.max).tolist() == [False]
        assert np.signbit(p.last).tolist() == [False]


def test_negative_timestamps_bucket_downwards() -> None:
    p = P.from_values([1], [-1], [1.0], STEP_5S)
    assert p.ts.tolist() == [-5_000]


def test_from_observations_aggregates_observations_and_ignores_empty_samples() -> None:
    p = P.from_observations([7, 7, 7], [T0 + 1, T0 + 2, T0 + 3], [2, 0, 3], [10.0, 30.0, 20.0, 5.0, 40.0], STEP_5S)
    assert_valid(p)
    assert (p.count.tolist(), p.sum.tolist(), p.min.tolist(), p.max.tolist()) == ([5], [105.0], [5.0], [40.0])
    assert p.last.tolist() == [40.0]
    assert p.last_ts.tolist() == [T0 + 3]
    assert int(p.sketch.value.sum()) == 5
    keys = sketches.ddsketch_keys(np.array([10.0, 30.0, 20.0, 5.0, 40.0]))
    assert p.sketch.index.tolist() == sorted(set(keys.tolist()))
    assert P.from_observations([1], [T0], [0], [], STEP_5S).key.tolist() == []


@pytest.mark.parametrize("spread", ["narrow", "wide"])
def test_sketch_counts_observations_per_bucket(spread: str) -> None:
    # Narrow: a dense grid combines the entries; wide (+-1e300): the sorted path does.
    rng = np.random.default_rng(1)
    obs = rng.lognormal(3, 1, 5_000)
    if spread == "wide":
        obs[:2] = [1e300, -1e300]
    key = np.repeat(np.arange(5), 1_000)
    p = P.from_observations(key, T0 + rng.integers(0, 5_000, 5_000), np.ones(5_000, np.int64), obs, STEP_5S)
    assert_valid(p)
    for i in range(5):
        expected_index, expected_count = np.unique(sketches.ddsketch_keys(obs[key == i]), return_counts=True)
        lo, hi = p.sketch.offsets[i], p.sketch.offsets[i + 1]
        assert p.sketch.index[lo:hi].tolist() == expected_index.tolist()
        assert p.sketch.value[lo:hi].tolist() == expected_count.tolist()


def test_from_hashes_keeps_the_max_rank_per_register() -> None:
    hashes = np.array([(3 << 50) | 1, (3 << 50) | (1 << 49), (1 << 50) | (1 << 45)], dtype=np.uint64)
    p = P.from_hashes([5, 5], [T0, T0 + 10], [2, 1], hashes, STEP_5S)
    assert_valid(p)
    assert p.count.tolist() == [3]
    assert (p.sum.tolist(), p.min.tolist(), p.max.tolist(), p.last.tolist()) == ([0.0], [0.0], [0.0], [0.0])
    assert p.hll.index.tolist() == [1, 3]
    assert p.hll.value.tolist() == [5, 50]


def test_columns_of_different_lengths_are_rejected() -> None:
    with pytest.raises(InvalidArgument) as err:
        P.from_values([1, 2], [T0], [1.0, 2.0], STEP_5S)
    assert err.value.parameter == "samples"
    with pytest.raises(InvalidArgument) as err:
        P.from_observations([1], [T0], [3], [1.0], STEP_5S)
    assert err.value.parameter == "observation_counts"
    with pytest.raises(InvalidArgument):
        P.from_hashes([1], [T0], [-1], [], STEP_5S)
    with pytest.raises(InvalidArgument) as err:
        P.from_values([1], [T0], [1.0], 0)
    assert err.value.parameter == "step_ms"


@given(samples(), kinds)
def test_built_points_are_sorted_unique_and_canonical(s: Samples, kind: str) -> None:
    assert_valid(build(s, kind))


@given(samples(), kinds, st.data())
def test_any_split_of_the_samples_merges_to_the_same_points(s: Samples, kind: str, data: st.DataObject) -> None:
    perm = np.array(data.draw(st.permutations(range(len(s)))), dtype=np.int64)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(s)), max_size=4)))
    parts = [build(s.subset(idx), kind) for idx in np.split(perm, cuts)]
    assert_same(build(s, kind), P.merge(*parts))


@given(samples(max_size=25), kinds)
def test_samples_in_any_order_give_the_same_points(s: Samples, kind: str) -> None:
    reversed_ = s.subset(np.arange(len(s))[::-1])
    assert_same(build(s, kind), build(reversed_, kind))


def test_fractional_sums_only_differ_in_the_last_bits() -> None:
    rng = np.random.default_rng(5)
    n = 10_000
    key, ts, values = rng.integers(0, 3, n), T0 + rng.integers(0, 60_000, n), rng.random(n) * 100
    whole = P.from_values(key, ts, values, STEP_1M)
    split = P.merge(
        P.from_values(key[::2], ts[::2], values[::2], STEP_1M),
        P.from_values(key[1::2], ts[1::2], values[1::2], STEP_1M),
    )
    assert_same(whole, split, compare_sum=False)
    np.testing.assert_allclose(split.sum, whole.sum, rtol=1e-12)


# ------------------------------------------------------------------------ merge laws


@given(points(), points(), points())
@settings(max_examples=150)
def test_merge_is_associative(a: Points, b: Points, c: Points) -> None:
    assert_same(P.merge(P.merge(a, b), c), P.merge(a, P.merge(b, c)))
    assert_same(P.merge(P.merge(a, b), c), P.merge(a, b, c))


@given(points(), points())
def test_merge_is_commutative(a: Points, b: Points) -> None:
    assert_same(P.merge(a, b), P.merge(b, a))


@given(points())
def test_empty_points_are_the_identity_of_merge(a: Points) -> None:
    assert_same(P.merge(a, Points.empty()), a)
    assert_same(P.merge(Points.empty(), a, Points.empty()), a)
    assert_same(P.merge(a), a)
    assert len(P.merge()) == 0


@given(points())
def test_merging_points_with_themselves_doubles_counts_and_keeps_hll(a: Points) -> None:
    twice = P.merge(a, a)
    assert twice.count.tolist() == (a.count * 2).tolist()
    assert twice.sketch.value.tolist() == (a.sketch.value * 2).tolist()
    assert twice.hll.value.tolist() == a.hll.value.tolist()
    for name in ("key", "ts", "min", "max", "last", "last_ts"):
        assert getattr(twice, name).view(np.int64).tolist() == getattr(a, name).view(np.int64).tolist()


@given(samples(), kinds)
def test_rollup_of_a_rollup_equals_the_direct_rollup(s: Samples, kind: str) -> None:
    p5s = build(s, kind)
    direct = P.rollup(p5s, STEP_5M)
    assert_same(P.rollup(P.rollup(p5s, STEP_1M), STEP_5M), direct)
    assert_same(build(s, kind, STEP_5M), direct)
    assert_valid(direct)


@given(points(), points())
def test_rollup_distributes_over_merge(a: Points, b: Points) -> None:
    assert_same(P.rollup(P.merge(a, b), STEP_1M), P.merge(P.rollup(a, STEP_1M), P.rollup(b, STEP_1M)))


@given(points())
def test_regrouping_with_with_key_and_merge_combines_all_keys(a: Points) -> None:
    grouped = P.merge(a.with_key(np.zeros(len(a), dtype=np.int64)))
    assert_valid(grouped)
    assert int(grouped.count.sum()) == int(a.count.sum())
    assert sorted(set(grouped.ts.tolist())) == grouped.ts.tolist()
    assert_same(grouped, P.merge(*(part.with_key(np.zeros(len(part), np.int64)) for _, part in P.split_by_key(a))))


# ------------------------------------------------------------------------ the dense-grid merge


@contextmanager
def sorting_only() -> Iterator[None]:
    """Force `merge` onto its sorting path (no grid is ever small enough)."""
    with mock.patch.object(P, "_DENSE_CELLS_PER_ROW", 0), mock.patch.object(P, "_DENSE_MIN_CELLS", 0):
        yield


def regrouped_rows(parts: list[Points], groups: list[int], rng: np.random.Generator) -> Points:
    """Rows of several Points under small group keys, shuffled: what a query merges."""
    rows = P.concat(*(p.with_key(np.full(len(p), g)) for p, g in zip(parts, groups, strict=True)))
    return rows.take(rng.permutation(len(rows)))


@given(st.lists(points(), min_size=1, max_size=4), st.data())
def test_merging_on_the_dense_grid_equals_merging_by_sorting(parts: list[Points], data: st.DataObject) -> None:
    groups = data.draw(st.lists(st.integers(0, 3), min_size=len(parts), max_size=len(parts)))
    rows = regrouped_rows(parts, groups, np.random.default_rng(data.draw(st.integers(0, 2**32))))
    with sorting_only():
        expected = P.merge(rows)
    got = P.merge(rows)
    assert_same(got, expected)  # integer-valued data: sums are exact on both paths
    assert_valid(got)


def test_query_shaped_rows_take_the_dense_grid() -> None:
    rng = np.random.default_rng(11)
    minutes = T0 + np.arange(60, dtype=np.int64) * STEP_1M
    parts = [P.from_values(np.zeros(60), minutes, rng.normal(50, 5, 60).round(2), STEP_1M) for _ in range(30)]
    rows = regrouped_rows(parts, [i % 3 for i in range(30)], rng)
    assert P._dense_cells(rows.key, rows.ts) is not None
    got = P.merge(rows)
    with sorting_only():
        expected = P.merge(rows)
    assert_same(got, expected, compare_sum=False)
    # Fractional sums are added in row order here, pairwise by reduceat there: last bits only.
    np.testing.assert_allclose(got.sum, expected.sum, rtol=1e-12)
    assert got.count.tolist() == [30 // 3] * 180


def test_a_lone_negative_zero_sums_to_negative_zero_on_the_dense_grid() -> None:
    rows = P.from_values([5, 0, 5], [T0, T0, T0 + STEP_5S], [-0.0, 1.0, 2.0], STEP_5S)
    rows = rows.take([1, 0, 2])  # key 5 before key 0: not sorted
    assert rows.key.tolist() == [5, 0, 5] and P._dense_cells(rows.key, rows.ts) is not None
    merged = P.merge(rows)
    assert merged.key.tolist() == [0, 5, 5]
    assert merged.sum.view(np.int64).tolist() == np.array([1.0, -0.0, 2.0]).view(np.int64).tolist()


def test_wide_or_sparse_grids_fall_back_to_sorting() -> None:
    far_keys = np.array([0, 2**40, 1], dtype=np.int64)
    assert P._dense_cells(far_keys, np.full(3, T0, dtype=np.int64)) is None
    far_times = np.array([T0, T0 + 10**9, T0 + 1], dtype=np.int64)  # gcd 1 ms: a billion cells
    assert P._dense_cells(np.zeros(3, dtype=np.int64), far_times) is None
    extreme = np.array([-(2**63), 2**63 - 1], dtype=np.int64)
    assert P._dense_cells(np.zeros(2, dtype=np.int64), extreme) is None


def test_rows_sorted_but_for_one_pair_are_still_sorted_by_merge() -> None:
    # The sortedness probe samples rows; an inversion between samples must still be seen.
    n = 20_000
    key = np.repeat(np.arange(n // 10, dtype=np.int64), 10)
    ts = np.tile(T0 + np.arange(10, dtype=np.int64) * STEP_5S, n // 10) + 2**40 * key
    rows = P.from_values(key, ts, np.ones(n), STEP_5S)
    swap = np.arange(n)
    swap[[5_001, 5_002]] = [5_002, 5_001]
    merged = P.merge(rows.take(swap))
    assert_valid(merged)
    assert_same(merged, rows)


# ------------------------------------------------------------------------ slicing


@given(points())
def test_split_by_key_gives_contiguous_parts_that_merge_back(a: Points) -> None:
    parts = list(P.split_by_key(a))
    assert [k for k, _ in parts] == sorted(set(a.key.tolist()))
    for k, part in parts:
        assert set(part.key.tolist()) == {k}
    assert_same(P.merge(*(p for _, p in parts)), a)
    keys, offsets = P.key_bounds(a)
    assert keys.tolist() == [k for k, _ in parts]
    assert offsets[-1] == len(a)


@given(points(), st.data())
def test_take_by_mask_index_and_slice_agree(a: Points, data: st.DataObject) -> None:
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(a), max_size=len(a))), dtype=np.bool_)
    by_mask, by_index = a.take(mask), a.take(np.flatnonzero(mask))
    assert_same(by_mask, by_index)
    for i, j in enumerate(np.flatnonzero(mask).tolist()):
        one = a.take(slice(j, j + 1))
        assert_same(by_mask.take([i]), one)
    assert_same(a.take(slice(None)), a)
    assert_same(a.take(slice(None, None, -1)).take(slice(None, None, -1)), a)


def test_take_of_an_unsorted_index_reorders_the_ragged_lists() -> None:
    p = P.from_observations([1, 2], [T0, T0], [1, 2], [1.0, 100.0, 1000.0], STEP_5S)
    swapped = p.take(np.array([1, 0]))
    assert swapped.key.tolist() == [2, 1]
    assert swapped.sketch.offsets.tolist() == [0, 2, 3]
    assert sketches.ddsketch_value(swapped.sketch.index).round(-1).tolist() == [100.0, 1000.0, 0.0]


# ------------------------------------------------------------------------ reading


def test_read_agg_answers_every_simple_aggregation() -> None:
    p = P.from_values([1, 1, 1], [T0, T0 + 1, T0 + 2], [2.0, 6.0, 4.0], STEP_1M)
    expected = {
        "sum": 12.0,
        "increase": 12.0,
        "count": 3.0,
        "avg": 4.0,
        "min": 2.0,
        "max": 6.0,
        "last": 4.0,
        "rate": 0.2,
    }
    for agg, value in expected.items():
        assert P.read_agg(p, agg, STEP_1M).tolist() == [value], agg


def test_read_agg_rejects_unknown_aggregations() -> None:
    p = P.from_values([1], [T0], [1.0], STEP_5S)
    for agg in ("median", "p101", "p", "P99", "p99.", "rate "):
        with pytest.raises(InvalidArgument) as err:
            P.read_agg(p, agg, STEP_5S)
        assert err.value.parameter == "agg"


def test_points_that_cannot_answer_read_as_nan() -> None:
    p = P.from_values([1], [T0], [1.0], STEP_5S)
    assert np.isnan(P.read_agg(p, "p99", STEP_5S)).all()
    assert np.isnan(P.read_agg(p, "distinct", STEP_5S)).all()
    no_samples = p.with_key(p.key)
    no_samples.count = np.zeros(1, dtype=np.int64)
    assert np.isnan(P.read_agg(no_samples, "avg", STEP_5S)).all()


def test_quantile_names_parse_to_fractions() -> None:
    assert P.parse_quantile("p50") == 0.5
    assert P.parse_quantile("p99.9") == Fraction(999, 1000)
    assert P.parse_quantile("p0") == 0.0
    assert P.parse_quantile("p100") == 1.0
    assert P.parse_quantile("p100.5") is None
    assert P.parse_quantile("max") is None


finite = st.floats(min_value=1e-6, max_value=1e12, allow_nan=False)
observations = st.lists(
    st.one_of(finite, finite.map(lambda v: -v), st.just(0.0)),
    min_size=1,
    max_size=300,
)
quantile_names = st.sampled_from(["p0", "p1", "p25", "p29", "p50", "p90", "p99", "p99.9", "p99.99", "p100"])


def exact_lower_quantile(values: list[float], q: Fraction) -> float:
    """The documented definition: the observation of rank floor(q * (n - 1)) in sorted order."""
    return sorted(values)[int(q * (len(values) - 1))]


@given(observations, quantile_names)
def test_quantile_is_within_one_percent_of_the_exact_lower_quantile(obs: list[float], agg: str) -> None:
    p = P.from_observations([1], [T0], [len(obs)], np.array(obs), STEP_5S)
    q = P.parse_quantile(agg)
    assert q is not None
    exact = exact_lower_quantile(obs, q)
    got = float(P.read_agg(p, agg, STEP_5S)[0])
    assert abs(got - exact) <= sketches.DDSKETCH_ALPHA * (1 + 1e-9) * abs(exact)


@given(st.lists(finite, min_size=1, max_size=300), st.floats(0.0, 1.0))
def test_quantile_agrees_with_numpys_lower_method(obs: list[float], q: float) -> None:
    v = np.array(obs)
    p = P.from_observations([1], [T0], [len(v)], v, STEP_5S)
    exact = float(np.quantile(v, q, method="lower"))
    got = float(P.quantiles(p, q)[0])
    assert abs(got - exact) <= sketches.DDSKETCH_ALPHA * (1 + 1e-9) * exact


def test_quantiles_of_many_points_are_answered_at_once() -> None:
    rng = np.random.default_rng(11)
    n_keys, per_key = 50, 400
    key = np.repeat(np.arange(n_keys), per_key)
    obs = rng.lognormal(3, 2, n_keys * per_key)
    p = P.rollup(
        P.from_observations(key, T0 + rng.integers(0, 60_000, len(key)), np.ones(len(key), np.int64), obs, STEP_5S),
        STEP_1M,
    )
    got = P.read_agg(p, "p99", STEP_1M)
    exact = np.array([np.quantile(obs[key == k], 0.99, method="lower") for k in range(n_keys)])
    assert (np.abs(got - exact) <= 0.01 * (1 + 1e-9) * exact).all()


def test_distinct_reads_the_hll_estimate_per_point() -> None:
    rng = np.random.default_rng(2)
    n = [100, 20_000, 150_000]
    hashes = [rng.integers(0, 2**64 - 1, k, dtype=np.uint64, endpoint=True) for k in n]
    p = P.from_hashes([1, 2, 3], [T0] * 3, n, np.concatenate(hashes), STEP_5S)
    est = P.read_agg(p, "distinct", STEP_5S)
    for i, h in enumerate(hashes):
        register, rank = sketches.hll_registers(h)
        dense = np.zeros((1, sketches.HLL_M), dtype=np.uint8)
        np.maximum.at(dense[0], register, rank)
        assert est[i] == sketches.hll_estimate_dense(dense)[0]
        assert abs(est[i] - n[i]) <= 0.03 * n[i]


def test_ragged_empty_has_one_empty_list_per_point() -> None:
    r = Ragged.empty(3)
    assert len(r) == 3
    assert r.total == 0
    assert r.lengths().tolist() == [0, 0, 0]
