"""Decoding: `decode_chunk` for one chunk, `decode_chunks` for many at once (vectorised across
chunks, columns decoded only from the last restart point before the window), and
`chunk_point_count` from the header alone. Decoding never trusts its input: an unknown
version, truncated or inconsistent bytes raise `CorruptData`."""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import zstandard

from core.chunks.format import (
    F64,
    FLAG_COMPRESSED,
    FLAG_HLL,
    FLAG_SINGLE,
    FLAG_SKETCH,
    FLOAT_DECIMAL,
    FLOAT_MODES,
    FLOAT_RESIDUAL,
    FLOAT_XOR,
    HEADER_V1,
    HEADER_V2,
    I64,
    INT_HEAD,
    KIND_NUMBERS,
    KNOWN_FLAGS,
    MAX_BODY_BYTES,
    MAX_CHUNK_POINTS,
    MAX_DECIMALS,
    MAX_LIST_ENTRIES,
    MAX_LIST_LENGTH,
    POW10,
    RAGGED_FLAGS,
    READABLE_VERSIONS,
    U8,
    U64,
    U64_MASK,
    DecodedChunk,
)
from core.errors import CorruptData, InvalidArgument
from core.model import MetricKind
from core.points import Points, Ragged, concat

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


# zstd contexts are not thread-safe: one per thread, reused across calls.
_local = threading.local()


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


def _unshuffle(buf: bytes | memoryview, n: int, width: int) -> U64:
    raw = np.frombuffer(buf, dtype=np.uint8, count=n * width)
    if width == 1:
        return raw.astype(np.uint64)
    return np.ascontiguousarray(raw.reshape(width, n).T).view(f"<u{width}").reshape(n).astype(np.uint64)


class _Reader:
    """Reads a body column after column, checking every length against the bytes left."""

    __slots__ = ("buf", "modes", "pos", "restart", "what")

    def __init__(self, buf: bytes, what: str, version: int, restart: int) -> None:
        self.buf = buf
        self.pos = 0
        self.what = what
        self.restart = restart
        self.modes = FLOAT_MODES[version]

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
        base, width = INT_HEAD.unpack(self.take(INT_HEAD.size))
        if width == 0:
            return np.full(n, base, dtype=np.int64)
        if width not in (1, 2, 4, 8):
            raise CorruptData(f"{self.what}: bad integer column width {width}")
        u = _unshuffle(self.take(n * width), n, width)
        return (u + np.uint64(base & U64_MASK)).view(np.int64)

    def floats(self, n: int) -> F64:
        mode = self.byte()
        if mode == FLOAT_XOR:
            x = _unshuffle(self.take(n * 8), n, 8)
            return _accumulate(np.bitwise_xor, x, self.restart).view(np.float64)
        if mode not in self.modes:
            raise CorruptData(f"{self.what}: unknown float column mode {mode}")
        e = self.byte()
        if e > MAX_DECIMALS:
            raise CorruptData(f"{self.what}: bad decimal exponent {e}")
        ints = _accumulate(np.add, self.ints(n), self.restart)
        values = np.asarray(ints.astype(np.float64) / POW10[e], dtype=np.float64)
        if mode == FLOAT_RESIDUAL:
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
    if len(data) < HEADER_V1.size or data[0] not in READABLE_VERSIONS:
        raise CorruptData("read chunk header: not a known chunk header")
    n: int = HEADER_V1.unpack_from(data)[3]  # n_points sits at the same place in every version
    return n


def _label(what: str | int) -> str:
    return what if isinstance(what, str) else f"decode chunk {what}"


def _header(data: bytes, what: str | int) -> _Head:
    """The checked header of a chunk of any readable version; `what` names the chunk in
    errors (an int: its position in a batch)."""
    version = data[0] if len(data) else -1
    head: _Head | None = None
    if version == 1 and len(data) >= HEADER_V1.size:
        _, flags, kind, n, step_ms, chunk_start_ms, first_slot, body_len = HEADER_V1.unpack_from(data)
        head = _Head(1, flags, kind, n, step_ms, chunk_start_ms, first_slot, body_len, 0, HEADER_V1.size)
    elif version == 2 and len(data) >= HEADER_V2.size:
        _, flags, kind, n, step_ms, chunk_start_ms, first_slot, body_len, restart = HEADER_V2.unpack_from(data)
        head = _Head(2, flags, kind, n, step_ms, chunk_start_ms, first_slot, body_len, restart, HEADER_V2.size)
    if (
        head is not None
        and not head.flags & ~KNOWN_FLAGS
        and head.kind in KIND_NUMBERS
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
        size = HEADER_V1.size if version == 1 else HEADER_V2.size
        raise CorruptData(f"{label}: truncated header ({len(data)} of {size} bytes)")
    if head.flags & ~KNOWN_FLAGS:
        raise CorruptData(f"{label}: unknown flags {head.flags:#x}")
    if head.kind not in KIND_NUMBERS:
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
        if h.flags & RAGGED_FLAGS or h.n == 0:
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
    _need(pos + INT_HEAD.size <= end, ids, "truncated body (integer column head)")
    base = np.ascontiguousarray(buf[pos[:, None] + _HEAD_BYTES]).view("<i8").reshape(len(pos))
    width = buf[pos + 8].astype(np.int64)
    _need((width == 0) | (width == 1) | (width == 2) | (width == 4) | (width == 8), ids, "bad integer column width")
    data = pos + INT_HEAD.size
    np.add(data, m * width, out=pos)
    _need(pos <= end, ids, "truncated body (integer column)")
    zeros = np.zeros(len(pos), dtype=np.int64)
    return _Col(mode=zeros, e=zeros, base=base.astype(np.int64), width=width, data=data)


def _walk_floats(buf: U8, pos: I64, end: I64, m: I64, ids: I64, v2: npt.NDArray[np.bool_]) -> _Col:
    """FloatColumn(m) heads at `pos`; moves `pos` past the columns."""
    _need(pos + 1 <= end, ids, "truncated body (float column mode)")
    mode = buf[pos].astype(np.int64)
    known = (mode == FLOAT_DECIMAL) | (mode == FLOAT_XOR) | ((mode == FLOAT_RESIDUAL) & v2)
    _need(known, ids, "unknown float column mode")
    k = len(pos)
    e = np.zeros(k, dtype=np.int64)
    base = np.zeros(k, dtype=np.int64)
    width = np.full(k, 8, dtype=np.int64)
    data = pos + 1
    residual = None
    dec = np.flatnonzero(mode != FLOAT_XOR)
    xor = np.flatnonzero(mode == FLOAT_XOR)
    if len(dec):
        p = pos[dec] + 1
        _need(p + 1 <= end[dec], ids[dec], "truncated body (decimal exponent)")
        e[dec] = buf[p]
        _need(e[dec] <= MAX_DECIMALS, ids[dec], "bad decimal exponent")
        p += 1
        col = _walk_ints(buf, p, end[dec], m[dec], ids[dec])
        base[dec], width[dec], data[dec], pos[dec] = col.base, col.width, col.data, p
    res = np.flatnonzero(mode == FLOAT_RESIDUAL)
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
    dec = col.mode != FLOAT_XOR

    def decimal(rows: I64 | slice) -> F64:
        ints = _accumulate(np.add, raw[rows], restart_points)
        values: F64 = np.divide(ints, POW10[col.e[rows]][:, None], dtype=np.float64)
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
