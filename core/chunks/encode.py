"""Encoding: `encode_chunk` for one chunk, `encode_chunks` for many on 2-D arrays (the bytes of
`encode_chunk`, byte for byte). Deterministic: equal input, equal bytes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import zstandard

from core.chunks.format import (
    CODEC_VERSION,
    F64,
    FLAG_COMPRESSED,
    FLAG_HLL,
    FLAG_SINGLE,
    FLAG_SKETCH,
    FLOAT_DECIMAL,
    FLOAT_RESIDUAL,
    FLOAT_XOR,
    HEADER_V1,
    HEADER_V2,
    I64,
    INT_HEAD,
    KIND_NUMBERS,
    MAX_BODY_BYTES,
    MAX_CHUNK_POINTS,
    MAX_DECIMALS,
    MAX_LIST_ENTRIES,
    MAX_LIST_LENGTH,
    POW10,
    READABLE_VERSIONS,
    RESTART_POINTS,
    U8,
    U64,
    U64_MASK,
    ZSTD_LEVEL,
)
from core.errors import InvalidArgument
from core.model import MetricKind
from core.points import Points, Ragged

_EXACT_INT: Final = float(2**53)

# zstd contexts are not thread-safe: one per thread, reused across calls.
_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if c is None:
        c = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False)
    return c


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


def _int_code(v: I64, mode: int = FLOAT_DECIMAL, e: int = 0) -> _Code:
    """Frame of reference: base = min, then (v - base) at the narrowest width in {0,1,2,4,8}
    bytes (0: every value equals base). Wrapping uint64 arithmetic keeps any int64 exact."""
    if len(v) == 0:
        return _Code(mode, e, 0, 0, np.zeros(0, dtype=np.uint64))
    base = int(v.min())
    u = v.view(np.uint64) - np.uint64(base & U64_MASK)
    top = int(u.max())
    width = 0 if top == 0 else 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    return _Code(mode, e, width, base, u)


def _put_ints(out: list[bytes], v: I64) -> None:
    """v1 IntColumn: head (base, width) then the shuffled values."""
    code = _int_code(v)
    out.append(INT_HEAD.pack(code.base, code.width))
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
        scaled = np.rint(head[None, :] * POW10[:, None])
        r = (bits[None, :16] - _back(scaled, POW10[:, None])).view(np.int64)
        fits = (np.abs(scaled) <= _EXACT_INT).all(axis=1)
        close = (r == 0) if not residuals else ((r > -(1 << 15)) & (r < 1 << 15))
        for e in np.flatnonzero(fits & close.all(axis=1)).tolist():
            full = np.rint(v * POW10[e])
            if not bool((np.abs(full) <= _EXACT_INT).all()):
                continue
            residual = (bits - _back(full, POW10[e])).view(np.int64)
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
        return [_int_code(_deltas(found[1], every), FLOAT_DECIMAL, found[0])]
    bits = v.view(np.int64)
    x = bits.copy()
    x[1:] ^= bits[:-1]
    if every:
        x[::every] = bits[::every]
    xor = [_Code(FLOAT_XOR, 0, 8, 0, x.view(np.uint64))]
    if found is None:
        return xor
    e, k, r = found
    codes = [_int_code(_deltas(k, every), FLOAT_RESIDUAL, e), _int_code(r)]
    return codes if codes[0].width + codes[1].width < 8 else xor


def _put_floats(out: list[bytes], v: F64, every: int, *, residuals: bool) -> None:
    """FloatColumn: mode byte, then (decimal) decimals and an IntColumn, (residual)
    decimals and two IntColumns, or (XOR) the shuffled 8-byte words."""
    codes = _float_codes(v, every, residuals=residuals)
    mode = codes[0].mode
    if mode == FLOAT_XOR:
        out.append(bytes((FLOAT_XOR,)))
        out.append(_shuffle(codes[0].u, 8))
        return
    out.append(bytes((mode, codes[0].e)))
    for code in codes:
        out.append(INT_HEAD.pack(code.base, code.width))
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
    header = HEADER_V1.pack(*fields) if version == 1 else HEADER_V2.pack(*fields, restart_points)
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
        scaled = np.rint(v[None, :, :16] * POW10[:, None, None])
        head_r = (bits[None, :, :16] - _back(scaled, POW10[:, None, None])).view(np.int64)
        fits = np.all(np.abs(scaled) <= _EXACT_INT, axis=2)
        close = np.all((head_r > -(1 << 15)) & (head_r < 1 << 15), axis=2)
        candidate = np.asarray(fits & close, dtype=np.bool_)
        for e in range(MAX_DECIMALS + 1):
            rows = np.flatnonzero(candidate[e] & (found < 0))
            if len(rows) == 0:
                continue
            full = np.rint((v if len(rows) == g else v[rows]) * POW10[e])
            whole = (np.abs(full) <= _EXACT_INT).all(axis=1)
            if len(rows) == g and bool(whole.all()):
                # The usual case: one exponent for every row, no fancy indexing.
                found[:] = e
                k = full.astype(np.int64)
                r = (bits - _back(full, POW10[e])).view(np.int64)
                break
            if k is None or r is None:
                k, r = np.zeros((g, m), dtype=np.int64), np.zeros((g, m), dtype=np.int64)
            rows, full = rows[whole], full[whole]
            found[rows] = e
            k[rows] = full.astype(np.int64)
            r[rows] = (bits[rows] - _back(full, POW10[e])).view(np.int64)
    if k is None or r is None:
        k, r = np.zeros((g, m), dtype=np.int64), np.zeros((g, m), dtype=np.int64)
    b1, w1, u1 = _int_codes_2d(_deltas_2d(k, every))
    b2, w2, u2 = _int_codes_2d(r)
    exact = ~r.any(axis=1)
    decimal = (found >= 0) & exact
    residual = (found >= 0) & ~exact & (w1 + w2 < 8)
    mode = np.where(decimal, FLOAT_DECIMAL, np.where(residual, FLOAT_RESIDUAL, FLOAT_XOR))
    xor = np.flatnonzero(mode == FLOAT_XOR)
    if len(xor):
        xb = bits[xor]
        x = xb.copy()
        x[:, 1:] ^= xb[:, :-1]
        x[:, ::every] = xb[:, ::every]
        u1[xor], b1[xor], w1[xor] = x, 0, 8
    w2 = np.where(mode == FLOAT_RESIDUAL, w2, _NO_MODE)
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
    head = np.empty((len(base), INT_HEAD.size), dtype=np.uint8)
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
            if mode == FLOAT_XOR:
                pieces.append(_shuffle_2d(col.u1[rows], 8))
                continue
            pieces.append(col.e[rows].astype(np.uint8)[:, None])
            _int_pieces(pieces, col.b1[rows], w1, col.u1[rows])
            if mode == FLOAT_RESIDUAL:
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
            and int(kind) in KIND_NUMBERS
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
                header = HEADER_V2.pack(
                    2, flags, int(kind), n, step_ms, chunk_start_ms, first_slots[at], body_len, every
                )
                out[i] = header + packed
