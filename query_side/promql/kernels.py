"""Range-vector functions, vectorised over all steps of one series at once.

Each kernel gets one series' samples (`ts` ms, `values`), the window bounds of every step as
index arrays (`lo`, `hi`: samples `[lo, hi)`), and returns one value per step (NaN: no
answer). Sums use prefix sums, min/max a sparse table: no Python loop per step or sample,
except quantile_over_time (one numpy call per step).
"""

from __future__ import annotations

import numpy as np

from query_side.promql.values import F64, I64


def _prefix(values: F64) -> F64:
    out = np.empty(len(values) + 1)
    out[0] = 0.0
    np.cumsum(values, out=out[1:])
    return out


def window_sum(values: F64, lo: I64, hi: I64) -> F64:
    cs = _prefix(values)
    return np.where(hi > lo, cs[hi] - cs[lo], np.nan)


def window_count(lo: I64, hi: I64) -> F64:
    n = (hi - lo).astype(np.float64)
    return np.where(n > 0, n, np.nan)


def _sparse_reduce(values: F64, lo: I64, hi: I64, op: np.ufunc) -> F64:
    n = len(values)
    out = np.full(len(lo), np.nan)
    ok = hi > lo
    if n == 0 or not ok.any():
        return out
    levels = [values]
    width = 1
    while width * 2 <= n:
        prev = levels[-1]
        levels.append(op(prev[:-width], prev[width:]))
        width *= 2
    length = (hi - lo)[ok]
    k = np.floor(np.log2(length)).astype(np.int64)
    a, b = lo[ok], hi[ok] - (1 << k)
    res = np.empty(len(k))
    for level in np.unique(k).tolist():
        sel = k == level
        table = levels[level]
        res[sel] = op(table[a[sel]], table[b[sel]])
    out[ok] = res
    return out


def window_min(values: F64, lo: I64, hi: I64) -> F64:
    return _sparse_reduce(values, lo, hi, np.fmin)


def window_max(values: F64, lo: I64, hi: I64) -> F64:
    return _sparse_reduce(values, lo, hi, np.fmax)


def window_last(values: F64, lo: I64, hi: I64) -> F64:
    ok = hi > lo
    out = np.full(len(lo), np.nan)
    out[ok] = values[hi[ok] - 1]
    return out


def window_var(values: F64, lo: I64, hi: I64) -> F64:
    # Shifted by the series mean so the sums of squares keep their precision.
    centred = values - (values.mean() if len(values) else 0.0)
    n = (hi - lo).astype(np.float64)
    s1 = window_sum(centred, lo, hi)
    s2 = window_sum(centred * centred, lo, hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = s2 / n - (s1 / n) ** 2
    return np.where(n > 0, np.maximum(var, 0.0), np.nan)


def window_quantile(phi: F64, values: F64, lo: I64, hi: I64) -> F64:
    out = np.full(len(lo), np.nan)
    for i in np.flatnonzero(hi > lo).tolist():
        out[i] = quantile(float(phi[i]), values[lo[i] : hi[i]])
    return out


def quantile(phi: float, values: F64) -> float:
    """Prometheus's φ-quantile: linear interpolation between the closest ranks."""
    if np.isnan(phi):
        return float("nan")
    if phi < 0:
        return float("-inf")
    if phi > 1:
        return float("inf")
    return float(np.quantile(values, phi))


def _steps(values: F64, lo: I64, hi: I64, flags: F64) -> F64:
    """Sum over each window of `flags[i]` for i in (lo, hi) (pairs inside the window)."""
    cs = _prefix(flags)
    lo1 = np.minimum(lo + 1, hi)
    return np.where(hi > lo, cs[hi] - cs[lo1], np.nan)


def window_changes(values: F64, lo: I64, hi: I64) -> F64:
    flags = np.zeros(len(values))
    if len(values) > 1:
        prev, cur = values[:-1], values[1:]
        flags[1:] = (cur != prev) & ~(np.isnan(cur) & np.isnan(prev))
    return _steps(values, lo, hi, flags)


def window_resets(values: F64, lo: I64, hi: I64) -> F64:
    flags = np.zeros(len(values))
    if len(values) > 1:
        flags[1:] = values[1:] < values[:-1]
    return _steps(values, lo, hi, flags)


def extrapolated(
    ts: I64,
    values: F64,
    lo: I64,
    hi: I64,
    eff: I64,
    range_ms: int,
    *,
    counter: bool,
    rate: bool,
) -> F64:
    """Prometheus's `rate`/`increase`/`delta` over samples (extrapolated to the window's
    edges, counter resets added back): for gauges, subqueries and anything not stored as
    deltas."""
    out = np.full(len(lo), np.nan)
    ok = (hi - lo) >= 2
    if not ok.any():
        return out
    lo_, hi_ = lo[ok], hi[ok] - 1
    first, last = values[lo_], values[hi_]
    result = last - first
    if counter:
        drops = np.zeros(len(values))
        if len(values) > 1:
            drops[1:] = np.where(values[1:] < values[:-1], values[:-1], 0.0)
        cs = _prefix(drops)
        result = result + (cs[hi_ + 1] - cs[lo_ + 1])
    t_first, t_last = ts[lo_] / 1000.0, ts[hi_] / 1000.0
    range_start = (eff[ok] - range_ms) / 1000.0
    range_end = eff[ok] / 1000.0
    to_start = t_first - range_start
    to_end = range_end - t_last
    sampled = t_last - t_first
    avg = sampled / (hi_ - lo_)
    with np.errstate(invalid="ignore", divide="ignore"):
        if counter:
            to_zero = np.where((result > 0) & (first >= 0), sampled * (first / result), np.inf)
            to_start = np.minimum(to_start, to_zero)
        threshold = avg * 1.1
        interval = sampled.copy()
        interval += np.where(to_start < threshold, to_start, avg / 2)
        interval += np.where(to_end < threshold, to_end, avg / 2)
        result = result * (interval / sampled)
    if rate:
        result = result / (range_ms / 1000.0)
    out[ok] = result
    return out


def instant_delta(ts: I64, values: F64, lo: I64, hi: I64, *, rate: bool) -> F64:
    """irate/idelta: the last two samples of each window."""
    out = np.full(len(lo), np.nan)
    ok = (hi - lo) >= 2
    last, prev = hi[ok] - 1, hi[ok] - 2
    diff = values[last] - values[prev]
    if rate:
        # A drop is a counter reset: the last value is the increase since it.
        diff = np.where(values[last] < values[prev], values[last], diff)
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = diff / ((ts[last] - ts[prev]) / 1000.0)
    out[ok] = diff
    return out


_MAX_CELLS = 1 << 20
"""Most window cells (windows x longest window) gathered into one 2-D block at once."""


def window_regression(ts: I64, values: F64, lo: I64, hi: I64, at_ms: I64 | None = None) -> tuple[F64, F64]:
    """Least-squares slope (per second) and value at `at_ms` (NaN without it) of each window
    (Prometheus's linearRegression: a constant window has slope 0 and its value; fewer than
    two samples: NaN).

    Windows are gathered into 2-D blocks (window x position) and regressed centred on their
    own means: prefix sums of x² over a whole series would lose the precision a short
    window needs."""
    slope = np.full(len(lo), np.nan)
    value = np.full(len(lo), np.nan)
    rows = np.flatnonzero((hi - lo) >= 2)
    if not len(rows):
        return slope, value
    width = int((hi - lo)[rows].max())
    cols = np.arange(width, dtype=np.int64)
    per_block = max(1, _MAX_CELLS // width)
    for first in range(0, len(rows), per_block):
        sel = rows[first : first + per_block]
        start, end = lo[sel], hi[sel]
        idx = start[:, None] + cols[None, :]
        inside = idx < end[:, None]
        idx = np.minimum(idx, end[:, None] - 1)
        y = values[idx]
        x = (ts[idx] - ts[start][:, None]) / 1000.0  # seconds from the window's first sample
        n = (end - start).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            x_mean = np.where(inside, x, 0.0).sum(axis=1) / n
            y_mean = np.where(inside, y, 0.0).sum(axis=1) / n
            dx = np.where(inside, x - x_mean[:, None], 0.0)
            dy = np.where(inside, y - y_mean[:, None], 0.0)
            s = (dx * dy).sum(axis=1) / (dx * dx).sum(axis=1)
            v = np.full(len(sel), np.nan)
            if at_ms is not None:
                v = y_mean + s * ((at_ms[sel] - ts[start]) / 1000.0 - x_mean)
        first_y = y[:, 0]
        constant = ~(inside & (y != first_y[:, None])).any(axis=1)
        s = np.where(constant, 0.0, s)
        v = np.where(constant, first_y, v)
        infinite = constant & np.isinf(first_y)
        slope[sel] = np.where(infinite, np.nan, s)
        value[sel] = np.where(infinite, np.nan, v)
    return slope, value


def window_holt_winters(values: F64, lo: I64, hi: I64, sf: F64, tf: F64) -> F64:
    """Prometheus's holt_winters (double exponential smoothing) of each window: the
    recurrence runs over the window's positions, vectorised across all windows (a Python
    step per position of the longest window, not per window)."""
    out = np.full(len(lo), np.nan)
    windows = np.flatnonzero((hi - lo) >= 2)
    for first in range(0, len(windows), _MAX_CELLS):  # bounded temporaries
        rows = windows[first : first + _MAX_CELLS]
        out[rows] = _smooth(values, lo[rows], (hi - lo)[rows], sf[rows], tf[rows])
    return out


def _smooth(values: F64, start: I64, length: I64, a: F64, t: F64) -> F64:
    s1 = values[start]
    b = values[start + 1] - s1
    s0 = np.zeros(len(start))
    for i in range(1, int(length.max())):
        active = i < length
        x = a * values[np.where(active, start + i, start)]
        if i > 1:  # the first step keeps the initial trend
            b = np.where(active, t * (s1 - s0) + (1 - t) * b, b)
        smoothed = x + (1 - a) * (s1 + b)
        s0 = np.where(active, s1, s0)
        s1 = np.where(active, smoothed, s1)
    return s1
