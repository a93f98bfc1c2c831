"""Point semantics: columnar points, how samples become points, and how points merge.

A point is the aggregate of one series (or, in queries, one group) over one interval starting
at `ts`: `count, sum, min, max, last` (+ `last_ts`), a DDSketch-style quantile sketch for
timers and a HyperLogLog for distinct counts (see `core.sketches`).

Merge laws (what the property tests in tests/unit/test_points.py check):

* `merge` is associative and commutative and has `Points.empty()` as identity; `rollup` of a
  rollup equals the direct rollup; building points from a set of samples in one call or in any
  split of it and merging gives the same points.
* These hold bit-exactly for `count, min, max, last, last_ts`, sketches and HLLs, whatever the
  order and grouping of the inputs. `min`/`max` compare floats by their IEEE total order
  (-0.0 < +0.0), so signed zeros and NaNs merge deterministically too.
* `last` is the value of the greatest `last_ts`; on a tie the larger value (total order) wins.
* `sum` is plain float64 addition in an order that depends on the inputs' order (and on the
  path `merge` takes: numpy reduceat over a sorted run, or row by row on the dense grid): exact
  for integer-valued data (|sum| < 2**53), but fractional sums may differ in the last bits
  with merge order or batching.
* Sketch bucket counts add; HLL registers take the max; only non-zero entries are stored and
  they are sorted by index within a point.

Every function here is vectorised over many keys at once; none loops per sample in Python.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, TypeVar, cast

import numpy as np
import numpy.typing as npt

from core import sketches
from core.errors import InvalidArgument

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
Bool = npt.NDArray[np.bool_]
_Arr = TypeVar("_Arr", bound=npt.NDArray[Any])
Selector = slice | npt.NDArray[np.bool_] | npt.NDArray[np.integer] | list[int]

_INT64_MIN: Final = np.iinfo(np.int64).min
_INT64_MAX: Final = np.iinfo(np.int64).max
_DENSE_CELLS_PER_ROW: Final = 2
"""`_reduce` scatters into a (key, ts) grid instead of sorting when the grid has at most this
many cells per row (plus _DENSE_MIN_CELLS): its cost is one pass over rows and cells."""
_DENSE_MIN_CELLS: Final = 4_096
_SORTED_PROBE: Final = 1_024
_GCD_PROBE: Final = 4_096
_SIGN_CLEAR: Final = np.int64(0x7FFFFFFFFFFFFFFF)


def _float_order(v: F64) -> I64:
    """Map float64 bits to int64 so that integer order is the IEEE total order. Self-inverse."""
    bits = v.view(np.int64)
    return bits ^ ((bits >> 63) & _SIGN_CLEAR)


def _float_from_order(o: I64) -> F64:
    return (o ^ ((o >> 63) & _SIGN_CLEAR)).view(np.float64)


def _permute(a: _Arr, order: I64 | None) -> _Arr:
    return a if order is None else cast(_Arr, a[order])


def _i64(a: npt.ArrayLike) -> I64:
    return np.ascontiguousarray(a, dtype=np.int64)


def _f64(a: npt.ArrayLike) -> F64:
    return np.ascontiguousarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------------- Ragged


@dataclass(slots=True)
class Ragged:
    """One variable-length list of (index, value) pairs per point, sorted by index within a
    point (in a `Points`; the constructors here also build unsorted ones internally)."""

    offsets: I64  # len n+1; point i owns [offsets[i], offsets[i+1])
    index: I32  # DDSketch bucket key / HLL register
    value: I64  # DDSketch count / HLL rank

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @staticmethod
    def empty(n: int = 0) -> Ragged:
        return Ragged(
            offsets=np.zeros(n + 1, dtype=np.int64),
            index=np.zeros(0, dtype=np.int32),
            value=np.zeros(0, dtype=np.int64),
        )

    @property
    def total(self) -> int:
        """Number of entries over all points."""
        return int(self.offsets[-1] - self.offsets[0])

    def lengths(self) -> I64:
        return np.diff(self.offsets)

    def take(self, sel: Selector) -> Ragged:
        """Lists of the selected points, in selection order."""
        if isinstance(sel, slice):
            start, stop, step = sel.indices(len(self))
            if step == 1:
                stop = max(stop, start)
                off = self.offsets[start : stop + 1]
                lo, hi = int(off[0]), int(off[-1])
                if lo == hi:
                    return _empty_lists(stop - start)
                return Ragged(offsets=off - lo, index=self.index[lo:hi], value=self.value[lo:hi])
            sel = np.arange(start, stop, step)
        idx = np.asarray(sel)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        if self.total == 0:
            return Ragged.empty(len(idx))
        starts = self.offsets[idx]
        lens = self.offsets[idx + 1] - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        total = int(offsets[-1])
        if total == 0:
            return Ragged.empty(len(idx))
        pos = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets[:-1], lens)
        return Ragged(offsets=offsets, index=self.index[pos], value=self.value[pos])


def _read_only(a: _Arr) -> _Arr:
    a.flags.writeable = False
    return a


_NO_INDEX: Final = _read_only(np.zeros(0, dtype=np.int32))
_NO_VALUE: Final = _read_only(np.zeros(0, dtype=np.int64))
_ZERO_OFFSETS: Final = _read_only(np.zeros(4_097, dtype=np.int64))
_EMPTY_LISTS: Final = [Ragged(offsets=_ZERO_OFFSETS[: n + 1], index=_NO_INDEX, value=_NO_VALUE) for n in range(4_097)]


def _empty_lists(n: int) -> Ragged:
    """n empty lists, shared and read-only for n <= 4096: a slice of a non-timer chunk (the
    open-chunk cache holds ~10^5 of them) then costs no arrays of its own (issue 13)."""
    return _EMPTY_LISTS[n] if n < len(_EMPTY_LISTS) else Ragged.empty(n)


# ---------------------------------------------------------------------------------- Points


@dataclass(slots=True)
class Points:
    """Columnar points sorted by (key, ts), at most one point per (key, ts)."""

    key: I64  # whom the point belongs to (series id, or a group id in queries)
    ts: I64  # bucket start, ms since epoch
    count: I64  # samples (counter/gauge) or observations (timer/distinct)
    sum: F64
    min: F64
    max: F64
    last: F64
    last_ts: I64  # ms of the sample that gave `last`
    sketch: Ragged  # always present (empty lists for non-timers)
    hll: Ragged  # always present (empty lists for non-distinct)

    def __len__(self) -> int:
        return len(self.key)

    @staticmethod
    def empty() -> Points:
        i = np.zeros(0, dtype=np.int64)
        f = np.zeros(0, dtype=np.float64)
        return Points(
            key=i,
            ts=i,
            count=i,
            sum=f,
            min=f,
            max=f,
            last=f,
            last_ts=i,
            sketch=Ragged.empty(),
            hll=Ragged.empty(),
        )

    def take(self, idx_or_mask: Selector) -> Points:
        """Subset in selection order (a boolean mask or a slice keeps the points' order)."""
        sel: Selector = idx_or_mask
        if not isinstance(sel, slice):
            sel = np.asarray(sel)
            sel = np.flatnonzero(sel) if sel.dtype == np.bool_ else sel.astype(np.int64, copy=False)
        return Points(
            key=self.key[sel],
            ts=self.ts[sel],
            count=self.count[sel],
            sum=self.sum[sel],
            min=self.min[sel],
            max=self.max[sel],
            last=self.last[sel],
            last_ts=self.last_ts[sel],
            sketch=self.sketch.take(sel),
            hll=self.hll.take(sel),
        )

    def with_key(self, key: npt.ArrayLike) -> Points:
        """Same points under a new key column (e.g. group ids). NOT re-sorted nor combined:
        pass the result through `merge` to get valid Points again."""
        k = _i64(key)
        if k.shape != self.key.shape:
            k = np.broadcast_to(k, self.key.shape).copy()
        return Points(
            key=k,
            ts=self.ts,
            count=self.count,
            sum=self.sum,
            min=self.min,
            max=self.max,
            last=self.last,
            last_ts=self.last_ts,
            sketch=self.sketch,
            hll=self.hll,
        )


def identical(a: Points, b: Points, *, compare_sum: bool = True) -> bool:
    """Bit-exact equality of two Points (floats compared by their bits, so -0.0 != 0.0 and a
    NaN equals the same NaN). `compare_sum=False` ignores the sum column (see the module
    docstring on float sums)."""

    def same(x: npt.NDArray[np.generic], y: npt.NDArray[np.generic]) -> bool:
        if x.dtype == np.float64:
            x, y = x.view(np.int64), y.view(np.int64)
        return x.shape == y.shape and bool(np.array_equal(x, y))

    def same_ragged(x: Ragged, y: Ragged) -> bool:
        return (
            same(x.offsets - x.offsets[0], y.offsets - y.offsets[0])
            and same(x.index, y.index)
            and same(x.value, y.value)
        )

    cols = ["key", "ts", "count", "min", "max", "last", "last_ts"] + (["sum"] if compare_sum else [])
    return (
        all(same(getattr(a, c), getattr(b, c)) for c in cols)
        and same_ragged(a.sketch, b.sketch)
        and same_ragged(a.hll, b.hll)
    )


# ---------------------------------------------------------------------------- the reducer


def _is_sorted(key: I64, ts: I64, *, strict: bool) -> bool:
    if len(key) < 2:
        return True
    if len(key) > 4 * _SORTED_PROBE:
        # Any subsequence of sorted rows is sorted: a strided sample answers "no" cheaply.
        sample = slice(None, None, len(key) // _SORTED_PROBE)
        if not _is_sorted(key[sample], ts[sample], strict=False):
            return False
    k0, k1 = key[:-1], key[1:]
    t_ok = ts[1:] > ts[:-1] if strict else ts[1:] >= ts[:-1]
    return bool(np.all((k1 > k0) | ((k1 == k0) & t_ok)))


def _sort_order(key: I64, ts: I64) -> I64:
    """Stable permutation sorting rows by (key, ts) (which they are not yet).

    Cheaper than np.lexsort for the inputs we see (rows grouped by series, or a concatenation
    of sorted parts): a stable sort by key alone is near-linear on runs, and only when ts is
    then out of order within a key is there a second sort, on one packed int64 column."""
    by_key = np.argsort(key, kind="stable")
    ks, t = key[by_key], ts[by_key]
    new_key = ks[1:] != ks[:-1]
    if bool(np.all(new_key | (t[1:] >= t[:-1]))):
        return by_key.astype(np.int64, copy=False)
    t_min = int(t.min())
    span = int(t.max()) - t_min + 1
    n_keys = int(np.count_nonzero(new_key)) + 1
    if n_keys * span >= 2**62:
        return np.lexsort((ts, key)).astype(np.int64)
    rank = np.zeros(len(ks), dtype=np.int64)
    np.cumsum(new_key, out=rank[1:])
    packed = rank * span + (t - t_min)
    return by_key[np.argsort(packed, kind="stable")].astype(np.int64, copy=False)


def _combine_ragged(r: Ragged, row_group: I64, n_groups: int, *, op: np.ufunc, canonical: bool) -> Ragged:
    """Lists of rows sharing a group merged into one list per group: equal indices combined
    with `op` (add for sketches, maximum for HLLs), sorted by index. `canonical` promises that
    row_group is non-decreasing and each row's list is already sorted with unique indices."""
    total = r.total
    if total == 0:
        return Ragged.empty(n_groups)
    lens = r.lengths()
    base = int(r.offsets[0])
    index = r.index[base : base + total]
    value = r.value[base : base + total]
    entry_group = np.repeat(row_group, lens)
    lo, hi = int(index.min()), int(index.max())
    cells = n_groups * (hi - lo + 1)
    if cells <= 4 * total + 4096 and int(value.min()) > 0:
        # Few groups over a narrow index range (e.g. many observations of one timer): a dense
        # grid and ufunc.at beat sorting. Same result as the sorted path for positive values.
        grid = np.zeros(cells, dtype=np.int64)
        op.at(grid, entry_group * (hi - lo + 1) + (index.astype(np.int64) - lo), value)
        cell = np.flatnonzero(grid)
        group_of_cell, index_of_cell = np.divmod(cell, hi - lo + 1)
        offsets = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(np.bincount(group_of_cell, minlength=n_groups), out=offsets[1:])
        return Ragged(offsets=offsets, index=(index_of_cell + lo).astype(np.int32), value=grid[cell])
    # (group, index) as one int64: group < 2**31 always holds for a batch that fits in memory.
    combined = (entry_group << 32) | (index.astype(np.int64) + (1 << 31))
    if not (canonical and bool(np.all(combined[1:] >= combined[:-1]))):
        order = np.argsort(combined, kind="stable")
        combined = combined[order]
        value = value[order]
    new = np.empty(total, dtype=np.bool_)
    new[0] = True
    np.not_equal(combined[1:], combined[:-1], out=new[1:])
    if bool(new.all()):
        out_key, out_value = combined, value
    else:
        starts = np.flatnonzero(new)
        out_key = combined[starts]
        out_value = op.reduceat(value, starts)
    out_group = out_key >> 32
    out_index = ((out_key & 0xFFFFFFFF) - (1 << 31)).astype(np.int32)
    offsets = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(out_group, minlength=n_groups), out=offsets[1:])
    return Ragged(offsets=offsets, index=out_index, value=np.asarray(out_value, dtype=np.int64))


def _dense_cells(key: I64, ts: I64) -> tuple[I64, I64, I64, int] | None:
    """(cell of each row, key of each cell, ts of each cell, cells) when the rows' (key, ts)
    fall on a small grid: keys k_min + j, times t_min + i * step, cell = j * n_ts + i, with at
    most _DENSE_CELLS_PER_ROW cells per row (plus _DENSE_MIN_CELLS). None when they do not."""
    n = len(key)
    limit = _DENSE_CELLS_PER_ROW * n + _DENSE_MIN_CELLS
    k_min, k_max = int(key.min()), int(key.max())
    n_keys = k_max - k_min + 1
    if n_keys > limit:
        return None
    t_min, t_max = int(ts.min()), int(ts.max())
    if t_max - t_min >= 2**62:
        return None
    offset = ts - np.int64(t_min)
    # The step is the gcd of all offsets; that of a prefix is a multiple of it, and usually
    # equal (checked by the exact division it is needed for anyway).
    step = int(np.gcd.reduce(offset[:_GCD_PROBE]))
    slot = offset // np.int64(step or 1)
    if step == 0 or not bool(np.array_equal(slot * np.int64(step), offset)):
        step = int(np.gcd.reduce(offset)) or 1
        slot = offset // np.int64(step)
    n_ts = (t_max - t_min) // step + 1
    cells = n_keys * n_ts
    if cells > limit:
        return None
    cell = (key - np.int64(k_min)) * np.int64(n_ts)
    cell += slot
    grid = np.arange(cells, dtype=np.int64)
    cell_key: I64 = grid // n_ts + k_min
    cell_ts: I64 = (grid % n_ts) * step + t_min
    return cell, cell_key, cell_ts, cells


def _reduce_on_grid(rows: Points, grid: tuple[I64, I64, I64, int]) -> Points:
    """`_reduce` for rows on a small (key, ts) grid: ufunc.at scatter-reductions into the grid
    cells instead of a sort. Same points as the sorting path, bit for bit except `sum`, which
    is added in row order here (see the module docstring on float sums)."""
    cell, cell_key, cell_ts, cells = grid
    used = np.flatnonzero(np.bincount(cell, minlength=cells))
    n_groups = len(used)

    def scatter(op: np.ufunc, initial: Any, column: _Arr) -> _Arr:
        acc = np.full(cells, initial, dtype=column.dtype)
        op.at(acc, cell, column)
        return cast(_Arr, acc)

    cell_last_ts = scatter(np.maximum, _INT64_MIN, rows.last_ts)
    last_o = np.where(rows.last_ts == cell_last_ts[cell], _float_order(rows.last), _INT64_MIN)
    out = Points(
        key=cell_key[used],
        ts=cell_ts[used],
        count=scatter(np.add, 0, rows.count)[used],
        # -0.0 is the identity that keeps signs: a lone -0.0 sums to -0.0 as in the sort path.
        sum=scatter(np.add, -0.0, rows.sum)[used],
        min=_float_from_order(scatter(np.minimum, _INT64_MAX, _float_order(rows.min))[used]),
        max=_float_from_order(scatter(np.maximum, _INT64_MIN, _float_order(rows.max))[used]),
        last=_float_from_order(scatter(np.maximum, _INT64_MIN, last_o)[used]),
        last_ts=cell_last_ts[used],
        sketch=rows.sketch,
        hll=rows.hll,
    )
    group: I64 | None = None
    for name, op in (("sketch", np.add), ("hll", np.maximum)):
        r: Ragged = getattr(rows, name)
        if r.total == 0:
            setattr(out, name, Ragged.empty(n_groups))
            continue
        if group is None:
            rank = np.zeros(cells, dtype=np.int64)
            rank[used] = np.arange(n_groups, dtype=np.int64)
            group = rank[cell]
        setattr(out, name, _combine_ragged(r, group, n_groups, op=op, canonical=False))
    return out


def _reduce(rows: Points, *, canonical_ragged: bool) -> Points:
    """Combine rows with the same (key, ts) into one point, sorted by (key, ts): by sorting
    them (skipped when they already are), or, for unsorted rows whose (key, ts) pairs fall on
    a small grid (a query's group ids x buckets), by scattering them into the grid."""
    n = len(rows)
    if n == 0:
        return Points.empty()
    key, ts = rows.key, rows.ts
    order: I64 | None = None
    if not _is_sorted(key, ts, strict=False):
        # Regrouped query rows (a few group ids x the buckets of a range) sit on a small grid:
        # scattering into it is several times cheaper than sorting them.
        grid = _dense_cells(key, ts)
        if grid is not None:
            return _reduce_on_grid(rows, grid)
        order = _sort_order(key, ts)
    if order is not None:
        key, ts = key[order], ts[order]
    new = np.empty(n, dtype=np.bool_)
    new[0] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    new[1:] |= ts[1:] != ts[:-1]
    starts = np.flatnonzero(new)
    n_groups = len(starts)

    count = _permute(rows.count, order)
    total = _permute(rows.sum, order)
    mn = _permute(rows.min, order)
    mx = _permute(rows.max, order)
    last = _permute(rows.last, order)
    last_ts = _permute(rows.last_ts, order)

    if n_groups == n:
        row_group = np.arange(n, dtype=np.int64)
        out = Points(
            key=key,
            ts=ts,
            count=count,
            sum=total,
            min=mn,
            max=mx,
            last=last,
            last_ts=last_ts,
            sketch=rows.sketch,
            hll=rows.hll,
        )
    else:
        group = np.cumsum(new, dtype=np.int64) - 1
        g_last_ts = np.maximum.reduceat(last_ts, starts)
        last_o = np.where(last_ts == g_last_ts[group], _float_order(last), _INT64_MIN)
        out = Points(
            key=key[starts],
            ts=ts[starts],
            count=np.add.reduceat(count, starts),
            sum=np.add.reduceat(total, starts),
            min=_float_from_order(np.minimum.reduceat(_float_order(mn), starts)),
            max=_float_from_order(np.maximum.reduceat(_float_order(mx), starts)),
            last=_float_from_order(np.maximum.reduceat(last_o, starts)),
            last_ts=g_last_ts,
            sketch=rows.sketch,
            hll=rows.hll,
        )
        row_group = group
    if order is not None:
        # Group id of each row in its original position, so ragged lists are never gathered.
        unsorted_group = np.empty(n, dtype=np.int64)
        unsorted_group[order] = row_group
        row_group = unsorted_group
    ragged_sorted = canonical_ragged and order is None
    for name, op in (("sketch", np.add), ("hll", np.maximum)):
        r: Ragged = getattr(rows, name)
        if r.total == 0:
            setattr(out, name, Ragged.empty(n_groups))
        elif not (ragged_sorted and n_groups == n):
            setattr(out, name, _combine_ragged(r, row_group, n_groups, op=op, canonical=ragged_sorted))
    return out


# ------------------------------------------------------------------------ building points


def _bucket(ts: I64, step_ms: int) -> I64:
    if step_ms <= 0:
        raise InvalidArgument(f"step must be positive, got {step_ms} ms", parameter="step_ms")
    return ts - ts % np.int64(step_ms)


def _check_lengths(**cols: npt.NDArray[np.generic]) -> None:
    lengths = {name: len(c) for name, c in cols.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidArgument(f"columns differ in length: {lengths}", parameter="samples")


def from_values(key: npt.ArrayLike, ts_ms: npt.ArrayLike, values: npt.ArrayLike, step_ms: int) -> Points:
    """Points of counters (values are deltas) and gauges: one row per sample, in any order.

    Bucket = ts - ts % step. count = samples, sum/min/max over values, last = value of the
    latest sample (larger value on a tie)."""
    k, t, v = _i64(key), _i64(ts_ms), _f64(values)
    _check_lengths(key=k, ts_ms=t, values=v)
    n = len(k)
    # sum/min/max/last start as one array (and may stay one when every bucket holds one
    # sample): a read-only view makes an in-place write fail instead of changing all four.
    v = v.view()
    v.flags.writeable = False
    rows = Points(
        key=k,
        ts=_bucket(t, step_ms),
        count=np.ones(n, dtype=np.int64),
        sum=v,
        min=v,
        max=v,
        last=v,
        last_ts=t,
        sketch=Ragged.empty(n),
        hll=Ragged.empty(n),
    )
    return _reduce(rows, canonical_ragged=True)


def _segments(counts: npt.ArrayLike, n_flat: int, what: str) -> tuple[I64, Bool, I64]:
    c = _i64(counts)
    if len(c) and int(c.min()) < 0:
        raise InvalidArgument("observation counts must not be negative", parameter="observation_counts")
    if int(c.sum()) != n_flat:
        raise InvalidArgument(
            f"observation counts add up to {int(c.sum())} but {n_flat} {what} were given",
            parameter="observation_counts",
        )
    keep = c > 0
    offsets = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    np.cumsum(c[keep], out=offsets[1:])
    return c, keep, offsets


def from_observations(
    key: npt.ArrayLike, ts_ms: npt.ArrayLike, counts: npt.ArrayLike, observations: npt.ArrayLike, step_ms: int
) -> Points:
    """Points of timers. Sample i carries counts[i] observations (flattened in sample order);
    samples with no observation are ignored. count/sum/min/max are over observations, last is
    the last observation of the latest sample, sketch holds per-bucket observation counts."""
    k, t, obs = _i64(key), _i64(ts_ms), _f64(observations)
    c, keep, offsets = _segments(counts, len(obs), "observations")
    _check_lengths(key=k, ts_ms=t, observation_counts=c)
    k, t, c = k[keep], t[keep], c[keep]
    n = len(k)
    if n == 0:
        return Points.empty()
    starts = offsets[:-1]
    obs_o = _float_order(obs)
    sketch = Ragged(
        offsets=offsets,
        index=sketches.ddsketch_keys(obs),
        value=np.ones(len(obs), dtype=np.int64),
    )
    rows = Points(
        key=k,
        ts=_bucket(t, step_ms),
        count=c,
        sum=np.add.reduceat(obs, starts),
        min=_float_from_order(np.minimum.reduceat(obs_o, starts)),
        max=_float_from_order(np.maximum.reduceat(obs_o, starts)),
        last=obs[offsets[1:] - 1],
        last_ts=t,
        sketch=sketch,
        hll=Ragged.empty(n),
    )
    return _reduce(rows, canonical_ragged=False)


def from_sketches(
    key: npt.ArrayLike,
    ts_ms: npt.ArrayLike,
    *,
    sums: npt.ArrayLike,
    mins: npt.ArrayLike,
    maxs: npt.ArrayLike,
    lasts: npt.ArrayLike,
    sizes: npt.ArrayLike,
    bucket_keys: npt.ArrayLike,
    bucket_counts: npt.ArrayLike,
    step_ms: int,
) -> Points:
    """Points of timers aggregated at the source (argus.metrics.v1 sketch columns): sample i is
    a sketch of sizes[i] (bucket key, count) pairs (flattened in sample order) with its exact
    sum/min/max/last. Samples with no bucket are ignored.

    For the same observations this gives the same points as `from_observations` (count, min,
    max, last and the sketch exactly; sum up to float addition order), because the sender
    maps values with the same `sketches.ddsketch_keys`."""
    k, t = _i64(key), _i64(ts_ms)
    counts = _i64(bucket_counts)
    index = np.ascontiguousarray(bucket_keys, dtype=np.int32)
    if len(counts) != len(index):
        raise InvalidArgument(f"{len(index)} sketch keys but {len(counts)} sketch counts", parameter="sketch_counts")
    if len(counts) and int(counts.min()) <= 0:
        raise InvalidArgument("sketch bucket counts must be positive", parameter="sketch_counts")
    c, keep, offsets = _segments(sizes, len(index), "sketch buckets")
    s, mn, mx, last = _f64(sums), _f64(mins), _f64(maxs), _f64(lasts)
    _check_lengths(key=k, ts_ms=t, sketch_sizes=c, sketch_sums=s, sketch_mins=mn, sketch_maxs=mx, sketch_lasts=last)
    k, t, s, mn, mx, last = k[keep], t[keep], s[keep], mn[keep], mx[keep], last[keep]
    n = len(k)
    if n == 0:
        return Points.empty()
    rows = Points(
        key=k,
        ts=_bucket(t, step_ms),
        count=np.add.reduceat(counts, offsets[:-1]),
        sum=s,
        min=mn,
        max=mx,
        last=last,
        last_ts=t,
        sketch=Ragged(offsets=offsets, index=index, value=counts),
        hll=Ragged.empty(n),
    )
    return _reduce(rows, canonical_ragged=False)


def from_hashes(
    key: npt.ArrayLike, ts_ms: npt.ArrayLike, counts: npt.ArrayLike, hashes: npt.ArrayLike, step_ms: int
) -> Points:
    """Points of distinct counts. Sample i carries counts[i] value hashes (see
    `sketches.hash_strings`); samples with none are ignored. count = observations,
    sum = min = max = last = 0.0, hll = (register, max rank) for non-zero registers."""
    k, t = _i64(key), _i64(ts_ms)
    h = np.asarray(hashes)
    if h.dtype != np.uint64:
        h = h.view(np.uint64) if h.dtype == np.int64 else h.astype(np.uint64)
    c, keep, offsets = _segments(counts, len(h), "hashes")
    _check_lengths(key=k, ts_ms=t, observation_counts=c)
    k, t, c = k[keep], t[keep], c[keep]
    n = len(k)
    if n == 0:
        return Points.empty()
    register, rank = sketches.hll_registers(h)
    zeros = np.zeros(n, dtype=np.float64)
    rows = Points(
        key=k,
        ts=_bucket(t, step_ms),
        count=c,
        sum=zeros,
        min=zeros,
        max=zeros,
        last=zeros,
        last_ts=t,
        sketch=Ragged.empty(n),
        hll=Ragged(offsets=offsets, index=register.astype(np.int32), value=rank.astype(np.int64)),
    )
    return _reduce(rows, canonical_ragged=False)


# ------------------------------------------------------------------------ merging points


def _concat_ragged(parts: list[Ragged]) -> Ragged:
    if all(r.total == 0 for r in parts):
        return Ragged.empty(sum(len(r) for r in parts))
    offsets = [np.zeros(1, dtype=np.int64)]
    shift = 0
    for r in parts:
        offsets.append(r.offsets[1:] - r.offsets[0] + shift)
        shift += r.total
    return Ragged(
        offsets=np.concatenate(offsets),
        index=np.concatenate([r.index[r.offsets[0] : r.offsets[-1]] for r in parts]),
        value=np.concatenate([r.value[r.offsets[0] : r.offsets[-1]] for r in parts]),
    )


def concat_slices(parts: Sequence[Points], bounds: Sequence[tuple[int, int]], keys: Sequence[int]) -> Points:
    """Rows `lo:hi` of each part, re-keyed to `keys[i]`, one part after another (not merged).

    For parts without sketches or HLLs: one concatenate per column instead of a Points
    object per part (~3x faster over thousands of chunks)."""

    def cat(column: str) -> npt.NDArray[Any]:
        return np.concatenate([getattr(p, column)[lo:hi] for p, (lo, hi) in zip(parts, bounds, strict=True)])

    lengths = np.array([hi - lo for lo, hi in bounds], dtype=np.int64)
    n = int(lengths.sum())
    return Points(
        key=np.repeat(np.asarray(keys, dtype=np.int64), lengths),
        ts=cat("ts"),
        count=cat("count"),
        sum=cat("sum"),
        min=cat("min"),
        max=cat("max"),
        last=cat("last"),
        last_ts=cat("last_ts"),
        sketch=Ragged.empty(n),
        hll=Ragged.empty(n),
    )


def concat(*parts: Points) -> Points:
    """Rows of all parts one after another, as they are (not sorted nor combined)."""
    ps = list(parts)
    if len(ps) == 1:
        return ps[0]

    def cat(a: list[_Arr]) -> _Arr:
        return cast(_Arr, np.concatenate(a))

    return Points(
        key=cat([p.key for p in ps]),
        ts=cat([p.ts for p in ps]),
        count=cat([p.count for p in ps]),
        sum=cat([p.sum for p in ps]),
        min=cat([p.min for p in ps]),
        max=cat([p.max for p in ps]),
        last=cat([p.last for p in ps]),
        last_ts=cat([p.last_ts for p in ps]),
        sketch=_concat_ragged([p.sketch for p in ps]),
        hll=_concat_ragged([p.hll for p in ps]),
    )


def merge(*parts: Points) -> Points:
    """Union of points, combining points with the same (key, ts). Inputs need not be sorted nor
    free of duplicates, but each point's sketch/HLL list must be sorted by index with unique
    indices (true of everything this module returns). Exact and order-independent except for
    float `sum` rounding (see the module docstring)."""
    ps = [p for p in parts if len(p)]
    if not ps:
        return Points.empty()
    rows = concat(*ps)
    if len(ps) == 1 and _is_sorted(rows.key, rows.ts, strict=True):
        return rows
    return _reduce(rows, canonical_ragged=True)


def rollup(points: Points, step_ms: int) -> Points:
    """Re-bucket to a coarser step (ts - ts % step) and merge. Order-preserving re-bucketing
    keeps sorted input sorted, so a rollup of valid Points never sorts."""
    if len(points) == 0:
        return Points.empty()
    rows = Points(
        key=points.key,
        ts=_bucket(points.ts, step_ms),
        count=points.count,
        sum=points.sum,
        min=points.min,
        max=points.max,
        last=points.last,
        last_ts=points.last_ts,
        sketch=points.sketch,
        hll=points.hll,
    )
    return _reduce(rows, canonical_ragged=True)


def key_bounds(points: Points) -> tuple[I64, I64]:
    """(keys, offsets): the distinct keys in order and where each one's points start
    (`offsets` has one more entry, the total). Points must be sorted by key."""
    key = points.key
    if len(key) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
    new = np.empty(len(key), dtype=np.bool_)
    new[0] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    starts = np.flatnonzero(new).astype(np.int64)
    return key[starts], np.append(starts, np.int64(len(key)))


def split_by_key(points: Points) -> Iterator[tuple[int, Points]]:
    """(key, that key's points) in key order; each part is a view (slices, no copies)."""
    keys, offsets = key_bounds(points)
    for i, k in enumerate(keys.tolist()):
        yield k, points.take(slice(int(offsets[i]), int(offsets[i + 1])))


# ------------------------------------------------------------------------- reading points

_QUANTILE = re.compile(r"p(\d{1,3}(?:\.\d{1,6})?)")
AGGREGATIONS: Final = ("sum", "count", "avg", "min", "max", "last", "rate", "increase", "distinct", "pNN[.N]")
_HLL_SLAB_POINTS: Final = 65_536


def parse_quantile(agg: str) -> Fraction | None:
    """q in [0, 1], exactly, for "p50", "p99", "p99.9" ... (at most 6 decimals); None when
    `agg` is not a quantile name."""
    m = _QUANTILE.fullmatch(agg)
    if m is None:
        return None
    q = Fraction(m.group(1)) / 100
    return q if q <= 1 else None


def _ranks(q: float | Fraction, n: I64) -> I64:
    """floor(q * (n - 1)) per count n >= 1, exactly for a Fraction q."""
    if isinstance(q, Fraction) and q.numerator * (int(n.max()) if len(n) else 0) < 2**62:
        return ((n - 1) * q.numerator) // q.denominator
    return np.floor(float(q) * (n - 1).astype(np.float64)).astype(np.int64)


def quantiles(points: Points, q: float | Fraction) -> F64:
    """Rank-based lower quantile q (in [0, 1]) of each point's sketch, clamped to the point's
    [min, max]; NaN for an empty sketch. Within 1 % (relative) of the observation of 0-based
    rank floor(q * (n - 1)) among the point's n observations in sorted order."""
    sk = points.sketch
    n = len(sk)
    out = np.full(n, np.nan, dtype=np.float64)
    if sk.total == 0:
        return out
    base = int(sk.offsets[0])
    cum = np.zeros(sk.total + 1, dtype=np.int64)
    np.cumsum(sk.value[base : base + sk.total], out=cum[1:])
    lo, hi = cum[sk.offsets[:-1] - base], cum[sk.offsets[1:] - base]
    tot = hi - lo
    ok = tot > 0
    rank = _ranks(q, tot[ok])
    pos = np.searchsorted(cum[1:], lo[ok] + rank, side="right")
    vals = sketches.ddsketch_value(sk.index[base + pos])
    mn, mx = points.min[ok], points.max[ok]
    clamp = mn <= mx  # false for NaN bounds
    vals = np.where(clamp, np.minimum(np.maximum(vals, mn), mx), vals)
    out[ok] = vals
    return out


def distinct(points: Points) -> F64:
    """HLL cardinality estimate of each point; NaN for a point without HLL registers.

    Reads register histograms straight from the sparse lists (never dense registers), in slabs
    of points so memory stays bounded."""
    hll = points.hll
    n = len(hll)
    out = np.full(n, np.nan, dtype=np.float64)
    width = sketches.HLL_MAX_RANK + 1
    for s in range(0, n, _HLL_SLAB_POINTS):
        part = hll.take(slice(s, min(n, s + _HLL_SLAB_POINTS)))
        lens = part.lengths()
        m = len(lens)
        row = np.repeat(np.arange(m, dtype=np.int64), lens)
        rank = np.clip(part.value, 0, sketches.HLL_MAX_RANK)
        hist = np.bincount(row * width + rank, minlength=m * width).reshape(m, width)
        hist[:, 0] += sketches.HLL_M - lens
        est = sketches.hll_estimate_histogram(hist)
        out[s : s + m] = np.where(lens > 0, est, np.nan)
    return out


def read_agg(points: Points, agg: str, step_ms: int) -> F64:
    """One float64 per point: sum, count, avg, min, max, last, rate (sum per second of step),
    increase (= sum), pNN / pNN.N (quantile from the sketch), distinct (HLL estimate).

    NaN where a point cannot answer (avg of no samples, quantile of an empty sketch, distinct
    without registers). Raises InvalidArgument(parameter="agg") for any other name."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if agg in ("sum", "increase"):
            return points.sum.astype(np.float64, copy=True)
        if agg == "count":
            return points.count.astype(np.float64)
        if agg == "avg":
            return np.where(points.count > 0, points.sum / points.count, np.nan)
        if agg == "min":
            return points.min.copy()
        if agg == "max":
            return points.max.copy()
        if agg == "last":
            return points.last.copy()
        if agg == "rate":
            if step_ms <= 0:
                raise InvalidArgument(f"step must be positive, got {step_ms} ms", parameter="step_ms")
            return np.asarray(points.sum / (step_ms / 1000.0), dtype=np.float64)
        if agg == "distinct":
            return distinct(points)
    q = parse_quantile(agg)
    if q is None:
        raise InvalidArgument(
            f"unknown aggregation {agg!r} (expected one of: {', '.join(AGGREGATIONS)})", parameter="agg"
        )
    return quantiles(points, q)
