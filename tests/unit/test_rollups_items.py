"""How the rollup projector groups samples into chunk items and splits merged points back
into chunks: the O(n) grouping equals np.unique, and closed chunks are flagged."""

from __future__ import annotations

import numpy as np
import pytest

from core import points as pts
from projectors.rollups import _BaseItems, _dense_unique, _split_items

HOUR = 3_600_000


@pytest.mark.parametrize(("n", "size"), [(0, 10), (1, 1), (1_000, 50), (1_000, 4_000), (500, 1_000_000)])
def test_dense_unique_equals_np_unique(n: int, size: int) -> None:
    codes = np.random.default_rng(n + size).integers(0, size, n)
    uniq, inverse = _dense_unique(codes, size)
    want_uniq, want_inverse = np.unique(codes, return_inverse=True)
    assert np.array_equal(uniq, want_uniq)
    assert np.array_equal(inverse, want_inverse.reshape(-1))
    assert np.array_equal(uniq[inverse], codes)


def test_base_items_group_samples_by_series_and_chunk() -> None:
    rng = np.random.default_rng(3)
    key = rng.choice(np.array([-7, 5, 2**62], dtype=np.int64), 2_000)
    ts = 1_764_000_000_000 + rng.integers(0, 30 * HOUR, 2_000)
    base = _BaseItems.of(key, ts, HOUR)
    items = list(zip(base.sids[base.item_sid].tolist(), base.item_chunk.tolist(), strict=True))
    assert items == sorted(set(zip(key.tolist(), (ts // HOUR).tolist(), strict=True)))
    assert np.array_equal(base.sids[base.item_sid[base.inverse]], key)
    assert np.array_equal(base.item_chunk[base.inverse], ts // HOUR)


def points(key: list[int], ts: list[int]) -> pts.Points:
    k, t = np.array(key, dtype=np.int64), np.array(ts, dtype=np.int64)
    return pts.from_values(k, t, np.arange(len(k), dtype=np.float64), 5_000)


def test_split_flags_chunks_their_series_has_left() -> None:
    grace = 300_000
    p = points(
        [1, 1, 1, 2, 2, 3],
        [0, HOUR + 5_000, 2 * HOUR + grace, 0, HOUR + grace - 5_000, 7 * HOUR],
    )
    runs, closed_before = _split_items(p, HOUR, grace)
    assert [(key, len(part), closed) for key, part, closed in runs] == [
        ((1, 0), 1, True),
        ((1, HOUR), 1, True),  # the series has a point `grace` past its end
        ((1, 2 * HOUR), 1, False),
        ((2, 0), 1, False),  # not yet: 5 s short of the grace
        ((2, HOUR), 1, False),
        ((3, 7 * HOUR), 1, False),
    ]
    # Each series' chunk before its newest, when that one is closed (maybe cached earlier).
    assert closed_before == [(1, HOUR)]
    # Open runs are copies: the cache must not keep the merged array alive through views.
    for _, part, closed in runs:
        assert (part.ts.base is p.ts or part.ts.base is p.ts.base) == closed
    for (_, part, _), i in zip(runs, range(len(p)), strict=True):
        assert pts.identical(part, p.take(slice(i, i + 1)))


def test_split_without_closed_chunks_keeps_views() -> None:
    p = points([1, 1, 2], [0, 5_000, HOUR])
    runs, closed_before = _split_items(p, HOUR, 0)
    assert [(key, len(part), closed) for key, part, closed in runs] == [((1, 0), 2, False), ((2, HOUR), 1, False)]
    assert closed_before == [(1, -HOUR), (2, 0)]  # no grace: a point in a chunk closes the one before
    assert _split_items(pts.Points.empty(), HOUR, 0) == ([], [])
