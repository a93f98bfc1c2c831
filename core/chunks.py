"""The chunk codec: the bytes stored for one series, one tier, one chunk span.

Layout, flags and the rules for adding a version: docs/formats/chunk.md. Round trips are
bit-exact (every float by its bits, -0.0 and NaN payloads included). Decoding never trusts
its input: an unknown version, truncated or inconsistent bytes raise `CorruptData`.

Version 2 (what `encode_chunk` writes) restarts its delta/XOR float columns every
RESTART_POINTS points, so a query for the last hour of a 12-hour chunk decodes the columns
from the last restart before that hour on, not from the chunk start; version 1 chunks stay
readable. `decode_chunks` decodes many chunks at once, vectorised across chunks, and
`encode_chunks` encodes many the same way (the bytes of `encode_chunk`, byte for byte).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, cast

import numpy as np
import numpy.typing as npt
import zstandard

from core.errors import CorruptData, InvalidArgument
from core.model import MetricKind
from core.points import Points, Ragged, concat

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]

CODEC_VERSION: Final = 2
"""The version `encode_chunk` writes by default."""
READABLE_VERSIONS: Final = (1, 2)
ZSTD_LEVEL: Final = 3
MAX_BODY_BYTES: Final = 256 << 20
"""Bound on a chunk's decompressed body, so corrupt input cannot make us allocate wildly."""
MAX_CHUNK_POINTS: Final = 1 << 22
"""Bound on points per chunk (real tiers hold 365..1,440)."""
MAX_LIST_LENGTH: Final = 1 << 17
"""Bound on one point's sketch or HLL list (above every possible DDSketch key or HLL register count)."""
MAX_LIST_ENTRIES: Final = 1 << 24
"""Bound on sketch (or HLL) entries in one chunk: a year of daily dense HLLs is 6M."""
RESTART_POINTS: Final = 64
"""v2: float columns store the value itself (not a delta or XOR) at every multiple of this
many points, so decoding may start there (about 1 h of a 1-minute tier)."""

FLAG_COMPRESSED: Final = 0x01
"""The body is a zstd frame (else it is stored raw: compression did not pay)."""
FLAG_SINGLE: Final = 0x02
"""Every point has count == 1 and sum == min == max == last: one value column stands for four."""
FLAG_SKETCH: Final = 0x04
"""A sketch section follows (some point has a non-empty quantile sketch)."""
FLAG_HLL: Final = 0x08
"""An HLL section follows (some point has non-empty HLL registers)."""
_KNOWN_FLAGS: Final = FLAG_COMPRESSED | FLAG_SINGLE | FLAG_SKETCH | FLAG_HLL
_RAGGED_FLAGS: Final = FLAG_SKETCH | FLAG_HLL

# version, flags, kind, n_points, step_ms, chunk_start_ms, first_slot, body_len
_HEADER_V1: Final = struct.Struct("<BBBIqqqI")
# ... then restart_points (v2)
_HEADER_V2: Final = struct.Struct("<BBBIqqqIH")
_INT_HEAD: Final = struct.Struct("<qB")
_FLOAT_DECIMAL: Final = 0
_FLOAT_XOR: Final = 1
_FLOAT_RESIDUAL: Final = 2
_MAX_DECIMALS: Final = 9
_POW10: Final = 10.0 ** np.arange(_MAX_DECIMALS + 1, dtype=np.float64)
_EXACT_INT: Final = float(2**53)
_U64_MASK: Final = 0xFFFFFFFFFFFFFFFF
_FLOAT_MODES: Final = {1: (_FLOAT_DECIMAL, _FLOAT_XOR), 2: (_FLOAT_DECIMAL, _FLOAT_XOR, _FLOAT_RESIDUAL)}
_KIND_NUMBERS: Final = frozenset(int(k) for k in MetricKind)
_BATCH_MIN_CHUNKS: Final = 4
"""`decode_chunks` decodes chunks of one shape (point count, SINGLE or not, restart interval,
no sketch/HLL) as 2-D arrays when at least this many share it; below that its fixed cost
(~100 numpy calls) exceeds decoding them one by one."""
_SCRATCH_KEEP_BYTES: Final = 64 << 20
"""Largest decompression buffer a thread keeps between `decode_chunks` calls."""
_HEAD_BYTES: Final = np.arange(8, dtype=np.int64)
_INT_COLUMN: Final = "i"
_FLOAT_COLUMN: Final = "f"


class _Head(NamedTuple):
    """A chunk's header, checked."""

    version: int
    flags: int
    kind: int
    n: int
    step_ms: int
    chunk_start_ms: int
    first_slot: int
    body_len: int
    restart_points: int  # v1: 0
    body_at: int  # where the body starts in the chunk's bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedChunk:
    kind: MetricKind
    step_ms: int
    chunk_start_ms: int
    points: Points


# zstd contexts are not thread-safe: one pair per thread, reused across calls.
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if c is None:
        c = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def _scratch(size: int) -> bytearray:
    """A buffer of at least `size` bytes, kept per thread between calls: decompressing into
    fresh memory costs page faults, several times the decompression itself."""
    buf: bytearray | None = getattr(_local, "scratch", None)
    if buf is not None and len(buf) >= size:
        return buf
    buf = bytearray(max(size, 2 * len(buf) if buf is not None else 0))
    if len(buf) <= _SCRATCH_KEEP_BYTES:
        _local.scratch = buf
    return buf


def _column_kinds(flags: int) -> str:
    """Columns before the sketch sections: "i" integer, "f" float columns."""
    values = _FLOAT_COLUMN if flags & FLAG_SINGLE else _INT_COLUMN + 4 * _FLOAT_COLUMN
    return _INT_COLUMN + values + _INT_COLUMN


def _accumulate(op: np.ufunc, x: npt.NDArray[Any], every: int) -> npt.NDArray[Any]:
    """`op`.accumulate along the last axis, starting afresh at every multiple of `every` (0:
    never again). `x` must start at a restart point."""
    length = x.shape[-1]
    if every == 0 or length <= every:
        return np.asarray(op.accumulate(x, axis=-1))
    out = np.empty(x.shape, dtype=x.dtype)
    full = length - length % every

    def runs(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        # The first `full` values of each row as (rows..., runs, every): a view, no copy.
        if a.ndim == 1:
            return a[:full].reshape(full // every, every)
        shape = (*a.shape[:-1], full // every, every)
        strides = (*a.strides[:-1], every * a.strides[-1], a.strides[-1])
        return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)

    op.accumulate(runs(x), axis=-1, out=runs(out))
    if full < length:
        out[..., full:] = op.accumulate(x[..., full:], axis=-1)
    return out


# ---------------------------------------------------------------------------- columns


@dataclass(frozen=True, slots=True)
class _Code:
    """A column ready to store: its head (mode, decimals, width, base) and its values minus
    base as uint64 (stored as `width`-byte integers, byte-shuffled)."""

    mode: int
    e: int
    width: int
    base: int
    u: U64


def _shuffle(u: npt.NDArray[np.unsignedinteger[Any]], width: int) -> bytes:
    """Byte-transpose: all first bytes, then all second bytes... (zstd likes the runs)."""
    if width == 1:
        return u.astype(np.uint8).tobytes()
    return u.astype(f"<u{width}").view(np.uint8).reshape(-1, width).T.tobytes()


def _unshuffle(buf: bytes | memoryview, n: int, width: int) -> U64:
    raw = np.frombuffer(buf, dtype=np.uint8, count=n * width)
    if width == 1:
        return raw.astype(np.uint64)
    return np.ascontiguousarray(raw.reshape(width, n).T).view(f"<u{width}").reshape(n).astype(np.uint64)


def _int_code(v: I64, mode: int = _FLOAT_DECIMAL, e: int = 0) -> _Code:
    """Frame of reference: base = min, then (v - base) at the narrowest width in {0,1,2,4,8}
    bytes (0: every value equals base). Wrapping uint64 arithmetic keeps any int64 exact."""
    if len(v) == 0:
        return _Code(mode, e, 0, 0, np.zeros(0, dtype=np.uint64))
    base = int(v.min())
    u = v.view(np.uint64) - np.uint64(base & _U64_MASK)
    top = int(u.max())
    width = 0 if top == 0 else 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    return _Code(mode, e, width, base, u)


def _put_ints(out: list[bytes], v: I64) -> None:
    """v1 IntColumn: head (base, width) then the shuffled values."""
    code = _int_code(v)
    out.append(_INT_HEAD.pack(code.base, code.width))
    if code.width:
        out.append(_shuffle(code.u, code.width))


def _scaled(v: F64, *, residuals: bool) -> tuple[int, I64, I64] | None:
    """(e, k, r): k = rint(v * 10**e) and r = bits(v) - bits(k / 10**e) (mod 2**64), for the
    smallest e in 0..9 that gives back every value exactly (r == 0) or, with `residuals`,
    within a few ulps (sums of decimals land there: k then takes a few bytes, r one, where
    XOR takes eight). None when no e does (or a value is not finite or above 2**53 * 10**-e).
    Candidates are found on a short head of the column, so a column usually costs one full
    check."""
    bits = v.view(np.uint64)
    head = v[:16]
    with np.errstate(all="ignore"):
        scaled = np.rint(head[None, :] * _POW10[:, None])
        r = (bits[None, :16] - _back(scaled, _POW10[:, None])).view(np.int64)
        fits = (np.abs(scaled) <= _EXACT_INT).all(axis=1)
        close = (r == 0) if not residuals else ((r > -(1 << 15)) & (r < 1 << 15))
        for e in np.flatnonzero(fits & close.all(axis=1)).tolist():
            full = np.rint(v * _POW10[e])
            if not bool((np.abs(full) <= _EXACT_INT).all()):
                continue
            residual = (bits - _back(full, _POW10[e])).view(np.int64)
            if residuals or not bool(residual.any()):
                return e, full.astype(np.int64), residual
    return None


def _back(scaled: F64, scale: F64 | np.float64) -> U64:
    """Bits of integer / 10**e as the decoder computes them (+ 0.0: -0.0 comes back +0.0)."""
    return ((scaled + 0.0) / scale).view(np.uint64)


def _deltas(s: I64, every: int) -> I64:
    """s[i] - s[i-1], and s[i] itself at i = 0 and (v2) every multiple of `every`."""
    d = s.copy()
    np.subtract(s[1:], s[:-1], out=d[1:])
    if every:
        d[::every] = s[::every]
    return d


def _float_codes(v: F64, every: int, *, residuals: bool) -> list[_Code]:
    """A float column's codes, the smallest of: decimal (mode 0: deltas of rint(v * 10**e),
    when that gives back every value exactly), decimal with residuals (mode 2, v2: deltas of
    k and the ulps from k / 10**e to v) and XOR with the previous value's bits (mode 1). At
    restart points the value itself stands instead of a delta or XOR."""
    found = _scaled(v, residuals=residuals) if len(v) else None
    if found is not None and not bool(found[2].any()):
        return [_int_code(_deltas(found[1], every), _FLOAT_DECIMAL, found[0])]
    bits = v.view(np.int64)
    x = bits.copy()
    x[1:] ^= bits[:-1]
    if every:
        x[::every] = bits[::every]
    xor = [_Code(_FLOAT_XOR, 0, 8, 0, x.view(np.uint64))]
    if found is None:
        return xor
    e, k, r = found
    codes = [_int_code(_deltas(k, every), _FLOAT_RESIDUAL, e), _int_code(r)]
    return codes if codes[0].width + codes[1].width < 8 else xor


def _put_floats(out: list[bytes], v: F64, every: int, *, residuals: bool) -> None:
    """FloatColumn: mode byte, then (decimal) decimals and an IntColumn, (residual)
    decimals and two IntColumns, or (XOR) the shuffled 8-byte words."""
    codes = _float_codes(v, every, residuals=residuals)
    mode = codes[0].mode
    if mode == _FLOAT_XOR:
        out.append(bytes((_FLOAT_XOR,)))
        out.append(_shuffle(codes[0].u, 8))
        return
    out.append(bytes((mode, codes[0].e)))
    for code in codes:
        out.append(_INT_HEAD.pack(code.base, code.width))
        if code.width:
            out.append(_shuffle(code.u, code.width))


def _put_ragged(out: list[bytes], r: Ragged) -> None:
    base = int(r.offsets[0])
    index = r.index[base : base + r.total].astype(np.int64)
    _put_ints(out, r.lengths())
    # Plain deltas across point boundaries: small within a point, one jump per point.
    deltas = index.copy()
    np.subtract(index[1:], index[:-1], out=deltas[1:])
    _put_ints(out, deltas)
    _put_ints(out, r.value[base : base + r.total])


class _Reader:
    """Reads a body column after column, checking every length against the bytes left."""

    __slots__ = ("buf", "modes", "pos", "restart", "what")

    def __init__(self, buf: bytes, what: str, version: int, restart: int) -> None:
        self.buf = buf
        self.pos = 0
        self.what = what
        self.restart = restart
        self.modes = _FLOAT_MODES[version]

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise CorruptData(f"{self.what}: truncated body (need {n} bytes at {self.pos} of {len(self.buf)})")
        view = memoryview(self.buf)[self.pos : end]
        self.pos = end
        return view

    def byte(self) -> int:
        return self.take(1)[0]

    def ints(self, n: int) -> I64:
        base, width = _INT_HEAD.unpack(self.take(_INT_HEAD.size))
        if width == 0:
            return np.full(n, base, dtype=np.int64)
        if width not in (1, 2, 4, 8):
            raise CorruptData(f"{self.what}: bad integer column width {width}")
        u = _unshuffle(self.take(n * width), n, width)
        return (u + np.uint64(base & _U64_MASK)).view(np.int64)

    def floats(self, n: int) -> F64:
        mode = self.byte()
        if mode == _FLOAT_XOR:
            x = _unshuffle(self.take(n * 8), n, 8)
            return _accumulate(np.bitwise_xor, x, self.restart).view(np.float64)
        if mode not in self.modes:
            raise CorruptData(f"{self.what}: unknown float column mode {mode}")
        e = self.byte()
        if e > _MAX_DECIMALS:
            raise CorruptData(f"{self.what}: bad decimal exponent {e}")
        ints = _accumulate(np.add, self.ints(n), self.restart)
        values = np.asarray(ints.astype(np.float64) / _POW10[e], dtype=np.float64)
        if mode == _FLOAT_RESIDUAL:
            values = (values.view(np.uint64) + self.ints(n).view(np.uint64)).view(np.float64)
        return values

    def ragged(self, n: int) -> Ragged:
        lens = self.ints(n)
        if n and (int(lens.min()) < 0 or int(lens.max()) > MAX_LIST_LENGTH):
            raise CorruptData(f"{self.what}: bad sketch list length")
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        total = int(offsets[-1])
        if total > MAX_LIST_ENTRIES:
            raise CorruptData(f"{self.what}: {total} sketch entries")
        index = np.cumsum(self.ints(total))
        if total and (int(index.min()) < -(2**31) or int(index.max()) >= 2**31):
            raise CorruptData(f"{self.what}: sketch index out of range")
        return Ragged(offsets=offsets, index=index.astype(np.int32), value=self.ints(total))


# ---------------------------------------------------------------------------- encoding


def encode_chunk(
    points: Points, *, kind: MetricKind, step_ms: int, chunk_start_ms: int, version: int = CODEC_VERSION
) -> bytes:
    """Bytes of the points of ONE key whose ts are chunk_start + slot * step (slot >= 0),
    strictly increasing (valid `Points` of one key are). Deterministic: equal input, equal
    bytes. `version=1` writes the previous layout, for readers not upgraded yet.

    Raises InvalidArgument(parameter="points") for several keys or misaligned/unsorted ts."""
    n = len(points)
    if version not in READABLE_VERSIONS:
        raise InvalidArgument(f"unknown codec version {version}", parameter="version")
    if step_ms <= 0:
        raise InvalidArgument(f"step must be positive, got {step_ms} ms", parameter="step_ms")
    if n > MAX_CHUNK_POINTS:
        raise InvalidArgument(f"a chunk holds at most {MAX_CHUNK_POINTS} points, got {n}", parameter="points")
    ts = points.ts
    if n and bool((points.key != points.key[0]).any()):
        raise InvalidArgument("a chunk holds the points of one key", parameter="points")
    rel = ts - np.int64(chunk_start_ms)
    slots = rel // np.int64(step_ms)
    slot_deltas = slots[1:] - slots[:-1]
    if n and (int(rel.min()) < 0 or bool((slots * step_ms != rel).any()) or bool((slot_deltas <= 0).any())):
        raise InvalidArgument(
            "chunk points must be step-aligned, at or after the chunk start, strictly increasing",
            parameter="points",
        )
    restart_points = RESTART_POINTS if version == 2 else 0
    flags = 0
    out: list[bytes] = []
    _put_ints(out, slot_deltas)
    value_bits = points.last.view(np.int64)
    single = (
        n > 0
        and bool((points.count == 1).all())
        and all(bool((c.view(np.int64) == value_bits).all()) for c in (points.sum, points.min, points.max))
    )
    if single:
        flags |= FLAG_SINGLE
        _put_floats(out, points.last, restart_points, residuals=version == 2)
    else:
        _put_ints(out, points.count)
        for col in (points.sum, points.min, points.max, points.last):
            _put_floats(out, col, restart_points, residuals=version == 2)
    _put_ints(out, (points.last_ts.view(np.uint64) - ts.view(np.uint64)).view(np.int64))
    for r in (points.sketch, points.hll):
        if r.total > MAX_LIST_ENTRIES or (r.total and int(r.lengths().max()) > MAX_LIST_LENGTH):
            raise InvalidArgument(
                f"a chunk holds at most {MAX_LIST_ENTRIES} sketch entries, {MAX_LIST_LENGTH} per point",
                parameter="points",
            )
    if points.sketch.total:
        flags |= FLAG_SKETCH
        _put_ragged(out, points.sketch)
    if points.hll.total:
        flags |= FLAG_HLL
        _put_ragged(out, points.hll)
    body = b"".join(out)
    if len(body) > MAX_BODY_BYTES:
        raise InvalidArgument(f"chunk body of {len(body)} bytes exceeds {MAX_BODY_BYTES}", parameter="points")
    packed = _compressor().compress(body)
    if len(packed) < len(body):
        flags |= FLAG_COMPRESSED
    else:
        packed = body
    first_slot = int(slots[0]) if n else 0
    fields = (version, flags, int(kind), n, step_ms, chunk_start_ms, first_slot, len(body))
    header = _HEADER_V1.pack(*fields) if version == 1 else _HEADER_V2.pack(*fields, restart_points)
    return header + packed


# ---------------------------------------------------------------------------- encoding many chunks

_ENCODE_BATCH_MIN: Final = 4
"""`encode_chunks` encodes chunks of one point count as 2-D arrays when at least this many
share it; below that the fixed cost of the 2-D path exceeds encoding them one by one."""
_ENCODE_BLOCK_VALUES: Final = 1 << 16
"""`encode_chunks` encodes at most about this many points per column at once: the 2-D
temporaries then stay in cache (larger blocks run slower, not faster)."""
_NO_MODE: Final = -1
"""`_Codes2D.mode` of an integer column (no mode byte), `_Codes2D.w2` when there is no
second integer column."""
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class _Codes2D:
    """One column of a batch of chunks, one row per chunk: float mode (or `_NO_MODE` for an
    integer column), decimals, and one or two integer codes (base, width, values minus base);
    XOR rows have base 0, width 8 and the XORed bits as values."""

    mode: I64
    e: I64
    b1: I64
    w1: I64
    u1: U64
    b2: I64
    w2: I64
    u2: U64


def _widths(top: U64) -> I64:
    """`_int_code`'s width for each row's largest value minus base."""
    w = np.zeros(len(top), dtype=np.int64)
    w[top > 0] = 1
    w[top >= 1 << 8] = 2
    w[top >= 1 << 16] = 4
    w[top >= 1 << 32] = 8
    return w


def _int_codes_2d(v: I64) -> tuple[I64, I64, U64]:
    """`_int_code` of every row of `v`: (base, width, values minus base)."""
    g = v.shape[0]
    if v.shape[1] == 0:
        zeros = np.zeros(g, dtype=np.int64)
        return zeros, zeros.copy(), np.zeros(v.shape, dtype=np.uint64)
    base = v.min(axis=1)
    u = v.view(np.uint64) - base.view(np.uint64)[:, None]
    return base, _widths(u.max(axis=1)), u


def _int_column_2d(v: I64) -> _Codes2D:
    base, width, u = _int_codes_2d(v)
    none = np.full(v.shape[0], _NO_MODE, dtype=np.int64)
    return _Codes2D(mode=none, e=np.zeros_like(none), b1=base, w1=width, u1=u, b2=none, w2=none, u2=u)


def _deltas_2d(s: I64, every: int) -> I64:
    """`_deltas` of every row."""
    d = s.copy()
    np.subtract(s[:, 1:], s[:, :-1], out=d[:, 1:])
    d[:, ::every] = s[:, ::every]
    return d


def _float_column_2d(v: F64, every: int) -> _Codes2D:
    """`_float_codes(row, every, residuals=True)` of every row of `v` (the same arithmetic
    elementwise, so the same bits): the smallest exponent whose head check and full check
    pass, then decimal, decimal with residuals or XOR as the widths decide."""
    g, m = v.shape
    bits = v.view(np.uint64)
    found = np.full(g, -1, dtype=np.int64)
    k: I64 | None = None
    r: I64 | None = None
    with np.errstate(all="ignore"):
        scaled = np.rint(v[None, :, :16] * _POW10[:, None, None])
        head_r = (bits[None, :, :16] - _back(scaled, _POW10[:, None, None])).view(np.int64)
        fits = np.all(np.abs(scaled) <= _EXACT_INT, axis=2)
        close = np.all((head_r > -(1 << 15)) & (head_r < 1 << 15), axis=2)
        candidate = np.asarray(fits & close, dtype=np.bool_)
        for e in range(_MAX_DECIMALS + 1):
            rows = np.flatnonzero(candidate[e] & (found < 0))
            if len(rows) == 0:
                continue
            full = np.rint((v if len(rows) == g else v[rows]) * _POW10[e])
            whole = (np.abs(full) <= _EXACT_INT).all(axis=1)
            if len(rows) == g and bool(whole.all()):
                # The usual case: one exponent for every row, no fancy indexing.
                found[:] = e
                k = full.astype(np.int64)
                r = (bits - _back(full, _POW10[e])).view(np.int64)
                break
            if k is None or r is None:
                k, r = np.zeros((g, m), dtype=np.int64), np.zeros((g, m), dtype=np.int64)
            rows, full = rows[whole], full[whole]
            found[rows] = e
            k[rows] = full.astype(np.int64)
            r[rows] = (bits[rows] - _back(full, _POW10[e])).view(np.int64)
    if k is None or r is None:
        k, r = np.zeros((g, m), dtype=np.int64), np.zeros((g, m), dtype=np.int64)
    b1, w1, u1 = _int_codes_2d(_deltas_2d(k, every))
    b2, w2, u2 = _int_codes_2d(r)
    exact = ~r.any(axis=1)
    decimal = (found >= 0) & exact
    residual = (found >= 0) & ~exact & (w1 + w2 < 8)
    mode = np.where(decimal, _FLOAT_DECIMAL, np.where(residual, _FLOAT_RESIDUAL, _FLOAT_XOR))
    xor = np.flatnonzero(mode == _FLOAT_XOR)
    if len(xor):
        xb = bits[xor]
        x = xb.copy()
        x[:, 1:] ^= xb[:, :-1]
        x[:, ::every] = xb[:, ::every]
        u1[xor], b1[xor], w1[xor] = x, 0, 8
    w2 = np.where(mode == _FLOAT_RESIDUAL, w2, _NO_MODE)
    return _Codes2D(mode=mode, e=np.where(found >= 0, found, 0), b1=b1, w1=w1, u1=u1, b2=b2, w2=w2, u2=u2)


def _shuffle_2d(u: U64, width: int) -> U8:
    """`_shuffle` of every row: (rows, m * width) bytes."""
    g, m = u.shape
    if width == 1:
        return u.astype(np.uint8)
    b = u.astype(f"<u{width}").view(np.uint8).reshape(g, m, width)
    return b.transpose(0, 2, 1).reshape(g, m * width)


def _int_pieces(out: list[U8], base: I64, width: int, u: U64) -> None:
    """IntColumn bytes of every row: head (base, width), then the shuffled values."""
    head = np.empty((len(base), _INT_HEAD.size), dtype=np.uint8)
    head[:, :8] = base.astype("<i8").view(np.uint8).reshape(len(base), 8)
    head[:, 8] = width
    out.append(head)
    if width:
        out.append(_shuffle_2d(u, width))


def _bodies_2d(columns: list[_Codes2D]) -> list[tuple[I64, U8]]:
    """The bodies of a batch of chunks as (rows, bodies) pairs, one per layout (the modes and
    widths of every column, hence the body length), a body per row of the byte matrix."""
    sig = np.stack([a for c in columns for a in (c.mode, c.w1, c.w2)], axis=1)
    layouts, inverse = np.unique(sig, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    out = []
    for j, layout in enumerate(layouts.tolist()):
        rows = np.flatnonzero(inverse == j)
        g = len(rows)
        pieces: list[U8] = []
        for c, col in enumerate(columns):
            mode, w1, w2 = layout[3 * c : 3 * c + 3]
            if mode == _NO_MODE:
                _int_pieces(pieces, col.b1[rows], w1, col.u1[rows])
                continue
            pieces.append(np.full((g, 1), mode, dtype=np.uint8))
            if mode == _FLOAT_XOR:
                pieces.append(_shuffle_2d(col.u1[rows], 8))
                continue
            pieces.append(col.e[rows].astype(np.uint8)[:, None])
            _int_pieces(pieces, col.b1[rows], w1, col.u1[rows])
            if mode == _FLOAT_RESIDUAL:
                _int_pieces(pieces, col.b2[rows], w2, col.u2[rows])
        out.append((rows, np.ascontiguousarray(np.concatenate(pieces, axis=1))))
    return out


def encode_chunks(items: Sequence[tuple[Points, MetricKind | int, int, int]]) -> list[bytes]:
    """`[encode_chunk(points, kind=kind, step_ms=step_ms, chunk_start_ms=chunk_start_ms)
    for points, kind, step_ms, chunk_start_ms in items]`, byte for byte (version
    CODEC_VERSION), in input order, at a fraction of the cost: chunks of one point count
    without sketch sections are encoded together on (chunks, points) arrays, so the number
    of numpy calls does not grow with the number of chunks; what is left per chunk is one
    zstd compression and the header.

    Raises what `encode_chunk` raises for the first item (in input order) it refuses; then
    nothing is returned."""
    out: list[bytes | None] = [None] * len(items)
    by_count: dict[int, list[int]] = {}
    for i, (points, kind, step_ms, chunk_start_ms) in enumerate(items):
        n = len(points)
        if (
            0 < n <= MAX_CHUNK_POINTS
            and 0 < step_ms <= _INT64_MAX
            and _INT64_MIN <= chunk_start_ms <= _INT64_MAX
            and int(kind) in _KIND_NUMBERS
            and not points.sketch.total
            and not points.hll.total
        ):
            by_count.setdefault(n, []).append(i)
    for n, ids in by_count.items():
        if len(ids) >= _ENCODE_BATCH_MIN:
            block = max(_ENCODE_BATCH_MIN, _ENCODE_BLOCK_VALUES // n)
            for at in range(0, len(ids), block):
                _encode_same_count(items, ids[at : at + block], n, out)
    # Small groups, sketch sections, and whatever the batch left (refused items raise here).
    done: list[bytes] = []
    for i, data in enumerate(out):
        if data is None:
            points, kind, step_ms, chunk_start_ms = items[i]
            data = encode_chunk(points, kind=cast(MetricKind, kind), step_ms=step_ms, chunk_start_ms=chunk_start_ms)
        done.append(data)
    return done


def _encode_same_count(
    items: Sequence[tuple[Points, MetricKind | int, int, int]], ids: list[int], n: int, out: list[bytes | None]
) -> None:
    """Encodes the items at `ids` (n > 0 points each, no sketch sections) into `out`, except
    those `encode_chunk` would refuse (left None)."""
    # This is encode_chunk's version-2 layout: a new CODEC_VERSION needs its own path here.
    every = RESTART_POINTS
    pts = [items[i][0] for i in ids]
    g = len(ids)

    def stack(name: str) -> npt.NDArray[Any]:
        return np.concatenate([getattr(p, name) for p in pts]).reshape(g, n)

    ts = stack("ts")
    start = np.array([items[i][3] for i in ids], dtype=np.int64)[:, None]
    step = np.array([items[i][2] for i in ids], dtype=np.int64)[:, None]
    key = stack("key")
    rel = ts - start
    slots = rel // step
    slot_deltas = slots[:, 1:] - slots[:, :-1]
    ok = (
        (key == key[:, :1]).all(axis=1)
        & (rel >= 0).all(axis=1)
        & (slots * step == rel).all(axis=1)
        & (slot_deltas > 0).all(axis=1)
    )
    count, last_ts = stack("count"), stack("last_ts")
    total, mn, mx, last = stack("sum"), stack("min"), stack("max"), stack("last")
    last_bits = last.view(np.int64)
    single = (
        (count == 1).all(axis=1)
        & (total.view(np.int64) == last_bits).all(axis=1)
        & (mn.view(np.int64) == last_bits).all(axis=1)
        & (mx.view(np.int64) == last_bits).all(axis=1)
    )
    offsets = (last_ts.view(np.uint64) - ts.view(np.uint64)).view(np.int64)
    compressor = _compressor()
    for is_single in (True, False):
        rows = np.flatnonzero(ok & (single if is_single else ~single))
        if len(rows) == 0:
            continue
        columns = [_int_column_2d(slot_deltas[rows])]
        if is_single:
            columns.append(_float_column_2d(last[rows], every))
        else:
            columns.append(_int_column_2d(count[rows]))
            columns.extend(_float_column_2d(c[rows], every) for c in (total, mn, mx, last))
        columns.append(_int_column_2d(offsets[rows]))
        base_flags = FLAG_SINGLE if is_single else 0
        first_slots = slots[rows, 0].tolist()
        for layout_rows, bodies in _bodies_2d(columns):
            body_len = bodies.shape[1]
            if body_len > MAX_BODY_BYTES:
                continue
            for j, at in enumerate(layout_rows.tolist()):
                i = ids[int(rows[at])]
                _, kind, step_ms, chunk_start_ms = items[i]
                body = bodies[j].tobytes()
                packed = compressor.compress(body)
                flags = base_flags
                if len(packed) < body_len:
                    flags |= FLAG_COMPRESSED
                else:
                    packed = body
                header = _HEADER_V2.pack(
                    2, flags, int(kind), n, step_ms, chunk_start_ms, first_slots[at], body_len, every
                )
                out[i] = header + packed


# ---------------------------------------------------------------------------- decoding one chunk


def decode_chunk(data: bytes, *, key: int) -> DecodedChunk:
    """Inverse of `encode_chunk` (any readable version), with every point's key set to `key`.

    Raises CorruptData for an unknown version, truncated, trailing or inconsistent bytes."""
    data = bytes(data)
    head = _header(data, "decode chunk")
    points = _read_whole(data, head, key, "decode chunk")
    return DecodedChunk(
        kind=MetricKind(head.kind), step_ms=head.step_ms, chunk_start_ms=head.chunk_start_ms, points=points
    )


def chunk_point_count(data: bytes) -> int:
    """Number of points in a chunk, from its header alone (nothing is decompressed).

    Raises CorruptData for an unknown version or a truncated header."""
    if len(data) < _HEADER_V1.size or data[0] not in READABLE_VERSIONS:
        raise CorruptData("read chunk header: not a known chunk header")
    n: int = _HEADER_V1.unpack_from(data)[3]  # n_points sits at the same place in every version
    return n


def _label(what: str | int) -> str:
    return what if isinstance(what, str) else f"decode chunk {what}"


def _header(data: bytes, what: str | int) -> _Head:
    """The checked header of a chunk of any readable version; `what` names the chunk in
    errors (an int: its position in a batch)."""
    version = data[0] if len(data) else -1
    head: _Head | None = None
    if version == 1 and len(data) >= _HEADER_V1.size:
        _, flags, kind, n, step_ms, chunk_start_ms, first_slot, body_len = _HEADER_V1.unpack_from(data)
        head = _Head(1, flags, kind, n, step_ms, chunk_start_ms, first_slot, body_len, 0, _HEADER_V1.size)
    elif version == 2 and len(data) >= _HEADER_V2.size:
        _, flags, kind, n, step_ms, chunk_start_ms, first_slot, body_len, restart = _HEADER_V2.unpack_from(data)
        head = _Head(2, flags, kind, n, step_ms, chunk_start_ms, first_slot, body_len, restart, _HEADER_V2.size)
    if (
        head is not None
        and not head.flags & ~_KNOWN_FLAGS
        and head.kind in _KIND_NUMBERS
        and head.step_ms > 0
        and head.body_len <= MAX_BODY_BYTES
        and head.n <= MAX_CHUNK_POINTS
    ):
        return head
    label = _label(what)
    if version == -1:
        raise CorruptData(f"{label}: empty input")
    if version not in READABLE_VERSIONS:
        raise CorruptData(f"{label}: unknown codec version {version}")
    if head is None:
        size = _HEADER_V1.size if version == 1 else _HEADER_V2.size
        raise CorruptData(f"{label}: truncated header ({len(data)} of {size} bytes)")
    if head.flags & ~_KNOWN_FLAGS:
        raise CorruptData(f"{label}: unknown flags {head.flags:#x}")
    if head.kind not in _KIND_NUMBERS:
        raise CorruptData(f"{label}: unknown metric kind {head.kind}")
    raise CorruptData(f"{label}: bad header (step {head.step_ms} ms, {head.n} points, body {head.body_len} bytes)")


def _body(data: bytes, head: _Head, what: str | int) -> bytes:
    """The chunk's body, decompressed and checked against the header's length."""
    flags, body_len, body_at = head.flags, head.body_len, head.body_at
    packed = memoryview(data)[body_at:]
    if flags & FLAG_COMPRESSED:
        try:
            declared = zstandard.frame_content_size(packed)
            if declared != body_len:
                raise CorruptData(f"{_label(what)}: zstd frame declares {declared} bytes, header says {body_len}")
            body = _decompressor().decompress(packed, max_output_size=body_len, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise CorruptData(f"{_label(what)}: {exc}") from exc
    else:
        body = bytes(packed)
    if len(body) != body_len:
        raise CorruptData(f"{_label(what)}: body is {len(body)} bytes, header says {body_len}")
    return body


def _read_whole(data: bytes, head: _Head, key: int, what: str | int) -> Points:
    """Every point of a chunk, read column after column."""
    _, flags, _, n, step_ms, chunk_start_ms, first_slot, _, restart_points, _ = head
    r = _Reader(_body(data, head, what), _label(what), head.version, restart_points)
    try:
        points = _read_points(r, flags, n, step_ms, chunk_start_ms, first_slot, key)
    except (ValueError, struct.error) as exc:
        raise CorruptData(f"{r.what}: {exc}") from exc
    if r.pos != len(r.buf):
        raise CorruptData(f"{r.what}: {len(r.buf) - r.pos} trailing bytes")
    return points


def _read_points(
    r: _Reader, flags: int, n: int, step_ms: int, chunk_start_ms: int, first_slot: int, key: int
) -> Points:
    slots = np.empty(n, dtype=np.int64)
    deltas = r.ints(max(n - 1, 0))
    if n:
        slots[0] = first_slot
        np.cumsum(deltas, out=slots[1:])
        slots[1:] += first_slot
    ts = np.int64(chunk_start_ms) + slots * np.int64(step_ms)
    if flags & FLAG_SINGLE:
        value = r.floats(n)
        count = np.ones(n, dtype=np.int64)
        total, mn, mx, last = value, value.copy(), value.copy(), value.copy()
    else:
        count = r.ints(n)
        total, mn, mx, last = r.floats(n), r.floats(n), r.floats(n), r.floats(n)
    last_ts = (r.ints(n).view(np.uint64) + ts.view(np.uint64)).view(np.int64)
    sketch = r.ragged(n) if flags & FLAG_SKETCH else Ragged.empty(n)
    hll = r.ragged(n) if flags & FLAG_HLL else Ragged.empty(n)
    return Points(
        key=np.full(n, key, dtype=np.int64),
        ts=ts,
        count=count,
        sum=total,
        min=mn,
        max=mx,
        last=last,
        last_ts=last_ts,
        sketch=sketch,
        hll=hll,
    )


# ---------------------------------------------------------------------------- decoding many chunks


def decode_chunks(
    datas: Sequence[bytes],
    keys: Sequence[int] | npt.NDArray[np.integer[Any]],
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    ordered: bool = True,
) -> Points:
    """The points of many chunks (any readable versions) in one `Points`: those of `datas[0]`
    under `keys[0]`, then those of `datas[1]` under `keys[1]`, and so on, each chunk's in ts
    order, keeping only `start_ms <= ts < end_ms` (an omitted bound is open). With
    `ordered=False` each chunk's rows still come together and in ts order, but chunks of
    different shapes (point count, versions) may come out of input order: that saves a pass
    over all rows when the result goes to `merge` anyway.

    Bit for bit the concatenation of `decode_chunk(d, key=k).points` restricted to that
    window, at a fraction of the cost: bodies are decompressed into one reused buffer, those
    of one shape are decoded together on 2-D arrays (the number of numpy calls does not grow
    with the number of chunks), and columns are decoded only from the last restart point
    (v2) before the window to its end. Rows are not combined nor sorted across chunks: with
    repeated keys (e.g. group ids) or overlapping chunks, pass the result to `merge`.

    Raises InvalidArgument(parameter="keys") unless there is one int64 key per chunk, and
    CorruptData (naming the chunk's position) if any chunk does not decode: then nothing is
    returned."""
    k = len(datas)
    try:
        key_arr = np.asarray(keys, dtype=np.int64)
    except (OverflowError, TypeError, ValueError):
        raise InvalidArgument("keys must be int64 values", parameter="keys") from None
    if key_arr.shape != (k,):
        raise InvalidArgument(f"{k} chunks need {k} keys, got shape {key_arr.shape}", parameter="keys")
    datas = [bytes(d) for d in datas]
    heads = [_header(d, i) for i, d in enumerate(datas)]
    shapes: dict[tuple[int, int, int], list[int]] = {}
    one_by_one: list[int] = []
    for i, h in enumerate(heads):
        if h.flags & _RAGGED_FLAGS or h.n == 0:
            # Sketch sections have per-chunk entry counts; their cost is per entry anyway.
            one_by_one.append(i)
        else:
            shapes.setdefault((h.n, h.flags & FLAG_SINGLE, h.restart_points), []).append(i)
    batched: dict[int, list[list[int]]] = {0: [], FLAG_SINGLE: []}
    for (_, single, _), ids in shapes.items():
        if len(ids) >= _BATCH_MIN_CHUNKS:
            batched[single].append(ids)
        else:
            one_by_one.extend(ids)
    parts: list[tuple[I64, I64, Points]] = []
    for single, groups in batched.items():
        if groups:
            parts.extend(_decode_batch(datas, heads, groups, bool(single), key_arr, start_ms, end_ms))
    for i in one_by_one:
        pts = _read_whole(datas[i], heads[i], int(key_arr[i]), i)
        inside = _in_window(pts.ts, start_ms, end_ms)
        if inside is not None:
            pts = pts.take(inside)
        parts.append((np.array([i], dtype=np.int64), np.array([len(pts)], dtype=np.int64), pts))
    if not ordered:
        return Points.empty() if not parts else concat(*(p[2] for p in parts))
    return _in_chunk_order(parts, k)


def _in_chunk_order(parts: list[tuple[I64, I64, Points]], k: int) -> Points:
    """Parts (their chunk positions, rows per chunk, their rows chunk after chunk) as one
    Points in chunk position order."""
    if not parts:
        return Points.empty()
    if len(parts) == 1:
        return parts[0][2]
    chunk = np.concatenate([p[0] for p in parts])
    if bool(np.all(chunk[1:] > chunk[:-1])):
        return concat(*(p[2] for p in parts))
    if any(p[2].sketch.total or p[2].hll.total for p in parts):
        rows = np.concatenate([p[1] for p in parts])
        out = concat(*(p[2] for p in parts))
        # Each chunk's rows are contiguous in `out`: one gather puts the chunks in order.
        src = np.zeros(k, dtype=np.int64)
        src[chunk] = np.cumsum(rows) - rows
        n_rows = np.zeros(k, dtype=np.int64)
        n_rows[chunk] = rows
        dst = np.cumsum(n_rows) - n_rows
        return out.take(np.repeat(src - dst, n_rows) + np.arange(len(out), dtype=np.int64))
    # Without sketches: scatter each part's rows straight to their place.
    n_rows = np.zeros(k, dtype=np.int64)
    for ids, rows, _ in parts:
        n_rows[ids] = rows
    first_row = np.cumsum(n_rows) - n_rows
    total = int(n_rows.sum())
    columns = ("key", "ts", "count", "sum", "min", "max", "last", "last_ts")
    out_cols = {c: np.empty(total, dtype=getattr(parts[0][2], c).dtype) for c in columns}
    for ids, rows, pts in parts:
        dest = np.repeat(first_row[ids] - (np.cumsum(rows) - rows), rows) + np.arange(len(pts), dtype=np.int64)
        for c in columns:
            out_cols[c][dest] = getattr(pts, c)
    return Points(**out_cols, sketch=Ragged.empty(total), hll=Ragged.empty(total))


def _in_window(ts: I64, start_ms: int | None, end_ms: int | None) -> npt.NDArray[np.bool_] | None:
    """start_ms <= ts < end_ms (None: no bound, and None when there is neither)."""
    inside: npt.NDArray[np.bool_] | None = None
    if start_ms is not None:
        inside = ts >= start_ms
    if end_ms is not None:
        before = ts < end_ms
        inside = before if inside is None else inside & before
    return inside


def _need(ok: npt.NDArray[np.bool_], ids: I64, problem: str) -> None:
    if not bool(ok.all()):
        raise CorruptData(f"decode chunk {int(ids[int(np.argmin(ok))])}: {problem}")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Col:
    """Where one column of each chunk of a batch lies in the joined bodies. Float columns:
    mode 0 (decimal, exponent e), 1 (XOR: base 0, width 8) or 2 (decimal with `residual`,
    which other rows have as base 0, width 0); int columns: mode 0, e 0."""

    mode: I64
    e: I64
    base: I64
    width: I64
    data: I64
    residual: _Col | None = None

    def rows(self, sel: I64) -> _Col:
        return _Col(
            mode=self.mode[sel],
            e=self.e[sel],
            base=self.base[sel],
            width=self.width[sel],
            data=self.data[sel],
            residual=None if self.residual is None else self.residual.rows(sel),
        )


def _walk_ints(buf: U8, pos: I64, end: I64, m: I64, ids: I64) -> _Col:
    """IntColumn(m) heads at `pos` (one per body); moves `pos` past the columns."""
    _need(pos + _INT_HEAD.size <= end, ids, "truncated body (integer column head)")
    base = np.ascontiguousarray(buf[pos[:, None] + _HEAD_BYTES]).view("<i8").reshape(len(pos))
    width = buf[pos + 8].astype(np.int64)
    _need((width == 0) | (width == 1) | (width == 2) | (width == 4) | (width == 8), ids, "bad integer column width")
    data = pos + _INT_HEAD.size
    np.add(data, m * width, out=pos)
    _need(pos <= end, ids, "truncated body (integer column)")
    zeros = np.zeros(len(pos), dtype=np.int64)
    return _Col(mode=zeros, e=zeros, base=base.astype(np.int64), width=width, data=data)


def _walk_floats(buf: U8, pos: I64, end: I64, m: I64, ids: I64, v2: npt.NDArray[np.bool_]) -> _Col:
    """FloatColumn(m) heads at `pos`; moves `pos` past the columns."""
    _need(pos + 1 <= end, ids, "truncated body (float column mode)")
    mode = buf[pos].astype(np.int64)
    known = (mode == _FLOAT_DECIMAL) | (mode == _FLOAT_XOR) | ((mode == _FLOAT_RESIDUAL) & v2)
    _need(known, ids, "unknown float column mode")
    k = len(pos)
    e = np.zeros(k, dtype=np.int64)
    base = np.zeros(k, dtype=np.int64)
    width = np.full(k, 8, dtype=np.int64)
    data = pos + 1
    residual = None
    dec = np.flatnonzero(mode != _FLOAT_XOR)
    xor = np.flatnonzero(mode == _FLOAT_XOR)
    if len(dec):
        p = pos[dec] + 1
        _need(p + 1 <= end[dec], ids[dec], "truncated body (decimal exponent)")
        e[dec] = buf[p]
        _need(e[dec] <= _MAX_DECIMALS, ids[dec], "bad decimal exponent")
        p += 1
        col = _walk_ints(buf, p, end[dec], m[dec], ids[dec])
        base[dec], width[dec], data[dec], pos[dec] = col.base, col.width, col.data, p
    res = np.flatnonzero(mode == _FLOAT_RESIDUAL)
    if len(res):
        p = pos[res]
        col = _walk_ints(buf, p, end[res], m[res], ids[res])
        pos[res] = p
        zeros = np.zeros(k, dtype=np.int64)
        residual = _Col(mode=zeros, e=zeros, base=zeros.copy(), width=zeros.copy(), data=zeros.copy())
        residual.base[res], residual.width[res], residual.data[res] = col.base, col.width, col.data
    if len(xor):
        pos[xor] = data[xor] + 8 * m[xor]
        _need(pos[xor] <= end[xor], ids[xor], "truncated body (XOR float column)")
    return _Col(mode=mode, e=e, base=base, width=width, data=data, residual=residual)


def _planes(buf: U8, data: I64, m: int, width: int, lo: int, hi: int) -> npt.NDArray[np.unsignedinteger[Any]]:
    """Values lo..hi of columns of m unsigned `width`-byte ints, byte-shuffled at the offsets
    `data`: (len(data), hi - lo)."""
    k, span = len(data), hi - lo
    if lo == 0 and hi == m:
        # Every window of `m * width` bytes of buf, as a zero-copy view: indexing it with the
        # start offsets copies one contiguous row per chunk.
        whole = np.lib.stride_tricks.as_strided(
            buf, shape=(len(buf) - m * width + 1, m * width), strides=(1, 1), writeable=False
        )
        rows = whole[data]
        if width == 1:
            return rows
        planes = rows.reshape(k, width, m)
        out = np.empty((k, m, width), dtype=np.uint8)
        for j in range(width):
            out[:, :, j] = planes[:, j, :]
        return out.view(f"<u{width}").reshape(k, m)
    windows = np.lib.stride_tricks.as_strided(buf, shape=(len(buf) - span + 1, span), strides=(1, 1), writeable=False)
    if width == 1:
        return windows[data + lo]
    out = np.empty((k, span, width), dtype=np.uint8)
    for j in range(width):
        out[:, :, j] = windows[data + (j * m + lo)]
    return out.view(f"<u{width}").reshape(k, span)


def _ints_2d(buf: U8, col: _Col, m: int, lo: int, hi: int) -> I64:
    """Values lo..hi of an integer column (frame of reference undone), one row per chunk."""
    k = len(col.width)
    if hi <= lo:
        return np.zeros((k, 0), dtype=np.int64)
    w0 = int(col.width[0])
    widths = [w0] if bool((col.width == w0).all()) else np.unique(col.width).tolist()
    out: I64 | None = None if len(widths) == 1 else np.empty((k, hi - lo), dtype=np.int64)
    for w in widths:
        sel = np.flatnonzero(col.width == w) if out is not None else np.arange(k)
        if w == 0:
            v = np.repeat(col.base[sel][:, None], hi - lo, axis=1)
        else:
            base = col.base[sel].view(np.uint64)[:, None]
            v = np.add(_planes(buf, col.data[sel], m, w, lo, hi), base, dtype=np.uint64).view(np.int64)
        if out is None:
            return v
        out[sel] = v
    assert out is not None
    return out


def _floats_2d(buf: U8, col: _Col, m: int, lo: int, hi: int, restart_points: int) -> F64:
    """Values lo..hi of a float column; lo must be a restart point."""
    raw = _ints_2d(buf, col, m, lo, hi)
    dec = col.mode != _FLOAT_XOR

    def decimal(rows: I64 | slice) -> F64:
        ints = _accumulate(np.add, raw[rows], restart_points)
        values: F64 = np.divide(ints, _POW10[col.e[rows]][:, None], dtype=np.float64)
        if col.residual is None:
            return values
        ulps = _int_values(buf, col.residual.rows(np.arange(len(dec))[rows]), m, lo, hi)
        with_ulps: F64 = (values.view(np.uint64) + ulps.view(np.uint64)).view(np.float64)
        return with_ulps

    def xor(rows: I64 | slice) -> F64:
        bits: F64 = _accumulate(np.bitwise_xor, raw[rows].view(np.uint64), restart_points).view(np.float64)
        return bits

    if bool(dec.all()):
        return decimal(slice(None))
    if not bool(dec.any()):
        return xor(slice(None))
    out = np.empty(raw.shape, dtype=np.float64)
    d, x = np.flatnonzero(dec), np.flatnonzero(~dec)
    out[d], out[x] = decimal(d), xor(x)
    return out


def _decode_batch(
    datas: Sequence[bytes],
    heads: list[_Head],
    groups: list[list[int]],
    single: bool,
    keys: I64,
    start_ms: int | None,
    end_ms: int | None,
) -> list[tuple[I64, I64, Points]]:
    """Chunks without sketch sections, all SINGLE or none, in groups of one point count and
    restart interval: the column heads of all of them are walked at once, then each group is
    decoded on (chunks, points) arrays - the same arithmetic as `_read_points`, so the same
    bits."""
    id_list = [i for g in groups for i in g]
    ids = np.array(id_list, dtype=np.int64)
    size = np.array([heads[i].body_len for i in id_list], dtype=np.int64)
    end = np.cumsum(size)
    pos = end - size
    # Bodies side by side in one buffer (+ 8 spare bytes: a column head read never runs off).
    scratch = _scratch(int(end[-1]) + 8)
    at = 0
    for i in id_list:
        body = _body(datas[i], heads[i], i)
        scratch[at : at + len(body)] = body
        at += len(body)
    buf = np.frombuffer(scratch, dtype=np.uint8)
    n = np.array([heads[i].n for i in id_list], dtype=np.int64)
    v2 = np.array([heads[i].version == 2 for i in id_list], dtype=np.bool_)
    cols = []
    for c, kind_char in enumerate(_column_kinds(FLAG_SINGLE if single else 0)):
        length = n - 1 if c == 0 else n
        if kind_char == _INT_COLUMN:
            cols.append(_walk_ints(buf, pos, end, length, ids))
        else:
            cols.append(_walk_floats(buf, pos, end, length, ids, v2))
    if not bool((pos == end).all()):
        bad = int(np.argmin(pos == end))
        raise CorruptData(f"decode chunk {int(ids[bad])}: {int(end[bad] - pos[bad])} trailing bytes")
    first = np.array([heads[i].first_slot for i in id_list], dtype=np.int64)
    start = np.array([heads[i].chunk_start_ms for i in id_list], dtype=np.int64)
    step = np.array([heads[i].step_ms for i in id_list], dtype=np.int64)

    out = []
    at = 0
    for g in groups:
        rows = np.arange(at, at + len(g), dtype=np.int64)
        at += len(g)
        m, restart_points = heads[g[0]].n, heads[g[0]].restart_points
        group = _decode_group(
            buf,
            [c.rows(rows) for c in cols],
            ids[rows],
            keys[ids[rows]],
            first[rows],
            start[rows],
            step[rows],
            m,
            restart_points,
            single,
            start_ms,
            end_ms,
        )
        if group is not None:
            out.append(group)
    return out


def _decode_group(
    buf: U8,
    cols: list[_Col],
    ids: I64,
    keys: I64,
    first: I64,
    start: I64,
    step: I64,
    m: int,
    restart_points: int,
    single: bool,
    start_ms: int | None,
    end_ms: int | None,
) -> tuple[I64, I64, Points] | None:
    """Chunks of m points each: their points in the window, on (chunks, m) arrays (or a
    single row broadcast to all chunks for what they share)."""
    slot_col = cols[0]
    if m > 1 and bool((slot_col.width == 0).all()) and _same(slot_col.base, first, start, step):
        # The usual case: every chunk has the same gap-free slots, so the same times.
        rows = slice(0, 1)
    else:
        rows = slice(None)
    slots = np.empty((len(first[rows]), m), dtype=np.int64)
    slots[:, 0] = first[rows]
    np.cumsum(
        _int_values(buf, slot_col.rows(np.arange(len(first))[rows]), m - 1, 0, m - 1, full=True),
        axis=1,
        out=slots[:, 1:],
    )
    slots[:, 1:] += first[rows][:, None]
    ts = start[rows][:, None] + slots * step[rows][:, None]
    mask = _in_window(ts, start_ms, end_ms)
    lo, hi = 0, m
    if mask is not None:
        keep = np.flatnonzero(mask.any(axis=1))
        if len(keep) == 0:
            return None
        if len(keep) < len(ts):
            # Chunks with nothing in the window: skip their value columns altogether.
            ids, keys, ts, mask = ids[keep], keys[keep], ts[keep], mask[keep]
            cols = [c.rows(keep) for c in cols]
        # Value columns only from the last restart point before the window to its end.
        inside = np.flatnonzero(mask.any(axis=0))
        lo, hi = int(inside[0]), int(inside[-1]) + 1
        lo = lo - lo % restart_points if restart_points else 0
        ts, mask = ts[:, lo:hi], mask[:, lo:hi]
        if bool(mask.all()):
            mask = None
    k, span = len(ids), hi - lo
    if mask is None:
        per_chunk = np.full(k, span, dtype=np.int64)
    else:
        mask = np.broadcast_to(mask, (k, span))
        per_chunk = mask.sum(axis=1)

    def flat(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Rows in the window, chunk after chunk, of a (k, span), (k, 1) or (1, span) array."""
        if mask is not None:
            return np.broadcast_to(a, (k, span))[mask]
        if a.shape[1] == 1 and span != 1:
            return np.repeat(a[:, 0], span)
        if a.shape[0] == 1 and k != 1:
            return np.tile(a[0], k)
        return a.ravel()

    offsets = _int_values(buf, cols[-1], m, lo, hi)
    last_ts = flat((offsets.view(np.uint64) + ts.view(np.uint64)).view(np.int64))
    if single:
        total = flat(_floats_2d(buf, cols[1], m, lo, hi, restart_points))
        mn, mx, last = total.copy(), total.copy(), total.copy()
        count = np.ones(len(total), dtype=np.int64)
    else:
        count = flat(_int_values(buf, cols[1], m, lo, hi))
        total, mn, mx, last = (flat(_floats_2d(buf, c, m, lo, hi, restart_points)) for c in cols[2:6])
    rows_out = len(total)
    points = Points(
        key=np.repeat(keys, per_chunk),
        ts=flat(ts),
        count=count,
        sum=total,
        min=mn,
        max=mx,
        last=last,
        last_ts=last_ts,
        sketch=Ragged.empty(rows_out),
        hll=Ragged.empty(rows_out),
    )
    return ids, per_chunk, points


def _same(*columns: I64) -> bool:
    return all(bool((c == c[0]).all()) for c in columns)


def _int_values(buf: U8, col: _Col, m: int, lo: int, hi: int, *, full: bool = False) -> I64:
    """`_ints_2d`, except that a column stored as one value per chunk (width 0 everywhere)
    comes back as (chunks, 1) unless `full`."""
    if not full and hi > lo and bool((col.width == 0).all()):
        return col.base[:, None]
    return _ints_2d(buf, col, m, lo, hi)
