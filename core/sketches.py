"""Mergeable sketches, vectorised with numpy: a DDSketch-style quantile mapping and HyperLogLog.

Both sketches are stored by `core.points` as sparse (index, value) lists per point; this module
only knows how to map raw observations to those indices and how to read estimates back.

Quantile sketch (DDSketch-style, relative accuracy `DDSKETCH_ALPHA` = 1 %)
    A non-zero observation v with |v| >= `DDSKETCH_MIN_VALUE` falls in the log bucket
    (B[k-1], B[k]] of |v|, where B[k] ~ gamma**k with gamma = (1 + alpha) / (1 - alpha). Its key is
    +k for v > 0 and -k for v < 0 (k >= 1); zero, |v| < `DDSKETCH_MIN_VALUE` and NaN have key 0.
    Keys therefore sort in the same order as the values they stand for.

    The boundaries B are a fixed table built with IEEE multiplications and divisions only, and a
    key is found by comparing against it (np.log only gives the first guess), so a value maps to
    the same key on every platform and numpy build: sketches built on different machines merge
    exactly. `ddsketch_value(k)` is the bucket's representative 2*B[k]/(gamma+1), within alpha of
    every value in the bucket.

    Quantiles are rank-based "lower" quantiles, like DDSketch: for q in [0, 1] over n
    observations, the answer stands for the observation of 0-based rank floor(q * (n - 1)) in
    sorted order (numpy's `np.quantile(..., method="lower")`).

HyperLogLog (p = 14: 16,384 registers, ~0.81 % standard error)
    `hash_strings` is the one stable 64-bit hash of distinct values (BLAKE2b, 8-byte digest,
    read big-endian) - senders that hash locally must use exactly it. A hash h goes to register
    h >> 50 with rank = (leading zeros of the low 50 bits) + 1, in 1..51. The estimate is Ertl's
    "improved raw estimator" (arXiv:1702.01284), which needs no empirical bias tables, is
    unbiased across the small, middle and large ranges (it subsumes linear counting), and uses
    only IEEE arithmetic, so it is deterministic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
U64 = npt.NDArray[np.uint64]
U16 = npt.NDArray[np.uint16]
U8 = npt.NDArray[np.uint8]

# ------------------------------------------------------------------------------- DDSketch

DDSKETCH_ALPHA: Final = 0.01
DDSKETCH_GAMMA: Final = (1.0 + DDSKETCH_ALPHA) / (1.0 - DDSKETCH_ALPHA)
DDSKETCH_MIN_VALUE: Final = 1e-9
"""Magnitudes below this count as zero (key 0)."""


def _build_boundaries() -> F64:
    """B[0] < MIN_VALUE <= B[1] < ... < B[K-1] <= float max < B[K] = inf.

    Built by repeated IEEE multiplication/division from 1.0 so that the table, hence the key of
    every value, is identical on every platform. The accumulated rounding error (~1e-12
    relative) is far below alpha.
    """
    gamma = DDSKETCH_GAMMA
    down = [1.0]
    while down[-1] >= DDSKETCH_MIN_VALUE:
        down.append(down[-1] / gamma)
    up = [1.0]
    while math.isfinite(up[-1]):
        up.append(up[-1] * gamma)
    return np.array(down[:0:-1] + up, dtype=np.float64)


_BOUNDS: Final[F64] = _build_boundaries()
DDSKETCH_MAX_KEY: Final = len(_BOUNDS) - 1
"""Largest key magnitude (the bucket that ends at +inf)."""
# log(B[k]) / log(gamma) + _KEY_SHIFT ~ k: the first guess of a key from np.log.
_KEY_SHIFT: Final = float(np.flatnonzero(_BOUNDS == 1.0)[0])
_INV_LN_GAMMA: Final = 1.0 / math.log(DDSKETCH_GAMMA)


def _build_representatives() -> F64:
    rep_pos = _BOUNDS[:-1] * (2.0 * DDSKETCH_GAMMA / (DDSKETCH_GAMMA + 1.0))
    rep_pos = np.minimum(rep_pos, np.finfo(np.float64).max)
    return np.concatenate([-rep_pos[::-1], [0.0], rep_pos])


# Indexed by key + DDSKETCH_MAX_KEY.
_REPS: Final[F64] = _build_representatives()


def ddsketch_keys(values: npt.ArrayLike) -> I32:
    """Bucket key of each value (see the module docstring). Vectorised; never warns.

    +-inf map to +-DDSKETCH_MAX_KEY; NaN maps to 0 (callers reject non-finite input earlier).
    """
    v = np.asarray(values, dtype=np.float64)
    a = np.abs(v)
    big = a >= DDSKETCH_MIN_VALUE
    with np.errstate(all="ignore"):
        guess = np.ceil(np.log(np.where(big, a, 1.0)) * _INV_LN_GAMMA) + _KEY_SHIFT
    k = np.clip(guess, 1, DDSKETCH_MAX_KEY).astype(np.int64)
    # The guess is off by at most one next to a boundary; the table decides.
    k += a > _BOUNDS[k]
    k -= a <= _BOUNDS[k - 1]
    k = np.where(big, k, 0)
    k = np.where(v < 0, -k, k)
    return k.astype(np.int32)


def ddsketch_value(keys: npt.ArrayLike) -> F64:
    """Representative value of each bucket key: within alpha (relative) of every value mapping
    to it; 0.0 for key 0."""
    k = np.asarray(keys, dtype=np.int64)
    return _REPS[k + DDSKETCH_MAX_KEY]


# ------------------------------------------------------------------------------ HyperLogLog

HLL_P: Final = 14
HLL_M: Final = 1 << HLL_P
HLL_Q: Final = 64 - HLL_P
"""Bits left after the register index; ranks are 1..HLL_Q+1."""
HLL_MAX_RANK: Final = HLL_Q + 1
_HLL_ALPHA_INF: Final = 1.0 / (2.0 * math.log(2.0))
_LOW_MASK: Final = np.uint64((1 << HLL_Q) - 1)


def hash_strings(values: Sequence[str]) -> U64:
    """Stable 64-bit hash of each value: BLAKE2b(utf-8, digest_size=8) read big-endian.

    Part of the wire contract (argus.metrics.v1.SeriesSamples.distinct_hashes): never change it.
    """
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(s.encode("utf-8"), digest_size=8).digest() for s in values])
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


def hll_registers(hashes: npt.ArrayLike) -> tuple[U16, U8]:
    """(register, rank) of each hash: register = top 14 bits, rank = leading zeros of the
    remaining 50 bits + 1 (51 when they are all zero). Signed input is read as its bits."""
    h = np.asarray(hashes)
    if h.dtype == np.int64:
        h = h.view(np.uint64)
    h = h.astype(np.uint64, copy=False)
    register = (h >> np.uint64(HLL_Q)).astype(np.uint16)
    low = (h & _LOW_MASK).astype(np.float64)  # < 2**50: exact in float64
    bit_length = np.frexp(low)[1]  # frexp(0) gives exponent 0
    rank = (HLL_Q + 1 - bit_length).astype(np.uint8)
    return register, rank


def _sigma(x: F64) -> F64:
    """Ertl's sigma(x) = x + sum_k x^(2^k) 2^(k-1); inf at x == 1. Same loop as the scalar
    reference, with each element frozen once its sum stops changing."""
    z = x.copy()
    xs = x.copy()
    y = np.ones_like(x)
    active = x < 1.0
    z[~active] = np.inf
    with np.errstate(all="ignore"):
        while active.any():
            xs = np.where(active, xs * xs, xs)
            nz = z + xs * y
            active &= nz != z
            z = np.where(active, nz, z)
            y = y + y
    return z


def _tau(x: F64) -> F64:
    """Ertl's tau(x) = (1 - x - sum_k (1 - x^(2^-k))^2 2^-k) / 3; 0 at x == 0 and x == 1."""
    active = (x > 0.0) & (x < 1.0)
    z = np.where(active, 1.0 - x, 0.0)
    xs = x.copy()
    y = np.ones_like(x)
    while active.any():
        xs = np.where(active, np.sqrt(xs), xs)
        y = y * 0.5
        nz = z - (1.0 - xs) ** 2 * y
        active &= nz != z
        z = np.where(active, nz, z)
    return z / 3.0


def hll_estimate_histogram(hist: npt.ArrayLike) -> F64:
    """Cardinality estimate per row from register-value histograms.

    `hist[i, r]` = how many of row i's 16,384 registers hold value r (r in 0..51; columns
    beyond are not allowed). Rows whose registers are all zero estimate 0.0.
    """
    c = np.asarray(hist, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != HLL_MAX_RANK + 1:
        raise ValueError(f"hll histogram must have shape (n, {HLL_MAX_RANK + 1}), got {c.shape}")
    m = float(HLL_M)
    z = m * _tau(1.0 - c[:, HLL_Q + 1] / m)
    for k in range(HLL_Q, 0, -1):
        z = 0.5 * (z + c[:, k])
    z = z + m * _sigma(c[:, 0] / m)
    with np.errstate(divide="ignore"):
        est = _HLL_ALPHA_INF * m * m / z
    return np.asarray(est, dtype=np.float64)


def hll_estimate_dense(registers: npt.ArrayLike) -> F64:
    """Cardinality estimate per row of dense registers (uint8, shape (n, 16384))."""
    r = np.asarray(registers, dtype=np.uint8)
    if r.ndim != 2 or r.shape[1] != HLL_M:
        raise ValueError(f"hll registers must have shape (n, {HLL_M}), got {r.shape}")
    if r.size and int(r.max()) > HLL_MAX_RANK:
        raise ValueError(f"hll register value above {HLL_MAX_RANK}")
    width = HLL_MAX_RANK + 1
    n = r.shape[0]
    cells = r.astype(np.int64) + (np.arange(n, dtype=np.int64) * width)[:, None]
    hist = np.bincount(cells.ravel(), minlength=n * width).reshape(n, width)
    return hll_estimate_histogram(hist)
