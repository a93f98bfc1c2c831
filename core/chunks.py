"""The chunk codec: the bytes stored for one series, one tier, one chunk span.

Layout, flags and the rules for adding a version: docs/formats/chunk.md. Round trips are
bit-exact (every float by its bits, -0.0 and NaN payloads included). Decoding never trusts
its input: an unknown version, truncated or inconsistent bytes raise `CorruptData`.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import zstandard

from core.errors import CorruptData, InvalidArgument
from core.model import MetricKind
from core.points import Points, Ragged

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

CODEC_VERSION: Final = 1
ZSTD_LEVEL: Final = 3
MAX_BODY_BYTES: Final = 256 << 20
"""Bound on a chunk's decompressed body, so corrupt input cannot make us allocate wildly."""
MAX_CHUNK_POINTS: Final = 1 << 22
"""Bound on points per chunk (real tiers hold 365..1,440)."""
MAX_LIST_LENGTH: Final = 1 << 17
"""Bound on one point's sketch or HLL list (above every possible DDSketch key or HLL register count)."""
MAX_LIST_ENTRIES: Final = 1 << 24
"""Bound on sketch (or HLL) entries in one chunk: a year of daily dense HLLs is 6M."""

FLAG_COMPRESSED: Final = 0x01
"""The body is a zstd frame (else it is stored raw: compression did not pay)."""
FLAG_SINGLE: Final = 0x02
"""Every point has count == 1 and sum == min == max == last: one value column stands for four."""
FLAG_SKETCH: Final = 0x04
"""A sketch section follows (some point has a non-empty quantile sketch)."""
FLAG_HLL: Final = 0x08
"""An HLL section follows (some point has non-empty HLL registers)."""
_KNOWN_FLAGS: Final = FLAG_COMPRESSED | FLAG_SINGLE | FLAG_SKETCH | FLAG_HLL

# version, flags, kind, n_points, step_ms, chunk_start_ms, first_slot, body_len
_HEADER: Final = struct.Struct("<BBBIqqqI")
_INT_HEAD: Final = struct.Struct("<qB")
_FLOAT_DECIMAL: Final = 0
_FLOAT_XOR: Final = 1
_MAX_DECIMALS: Final = 9
_POW10: Final = 10.0 ** np.arange(_MAX_DECIMALS + 1, dtype=np.float64)
_EXACT_INT: Final = float(2**53)


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


# ---------------------------------------------------------------------------- columns


def _shuffle(u: npt.NDArray[np.unsignedinteger], width: int) -> bytes:
    """Byte-transpose: all first bytes, then all second bytes... (zstd likes the runs)."""
    if width == 1:
        return u.astype(np.uint8).tobytes()
    return u.astype(f"<u{width}").view(np.uint8).reshape(-1, width).T.tobytes()


def _unshuffle(buf: bytes | memoryview, n: int, width: int) -> U64:
    raw = np.frombuffer(buf, dtype=np.uint8, count=n * width)
    if width == 1:
        return raw.astype(np.uint64)
    return np.ascontiguousarray(raw.reshape(width, n).T).view(f"<u{width}").reshape(n).astype(np.uint64)


def _put_ints(out: list[bytes], v: I64) -> None:
    """Frame of reference: base = min, then (v - base) at the narrowest width in {0,1,2,4,8}
    bytes (0: every value equals base). Wrapping uint64 arithmetic keeps any int64 exact."""
    if len(v) == 0:
        out.append(_INT_HEAD.pack(0, 0))
        return
    base = int(v.min())
    u = v.view(np.uint64) - np.uint64(base & 0xFFFFFFFFFFFFFFFF)
    top = int(u.max())
    width = 0 if top == 0 else 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    out.append(_INT_HEAD.pack(base, width))
    if width:
        out.append(_shuffle(u, width))


def _decimal_scaled(v: F64) -> tuple[int, F64] | None:
    """(e, rint(v * 10**e)) for the smallest e in 0..9 with which every value comes back bit for
    bit from integer / 10**e, or None. Candidates are found on a short head of the column,
    so a column usually costs one full check."""
    bits = v.view(np.int64)
    head = v[:16]
    with np.errstate(all="ignore"):
        scaled = np.rint(head[None, :] * _POW10[:, None])
        ok = ((np.abs(scaled) <= _EXACT_INT) & (_back_bits(scaled, _POW10[:, None]) == bits[None, :16])).all(axis=1)
        for e in np.flatnonzero(ok).tolist():
            full = np.rint(v * _POW10[e])
            if ((np.abs(full) <= _EXACT_INT) & (_back_bits(full, _POW10[e]) == bits)).all():
                return e, full
    return None


def _back_bits(scaled: F64, scale: F64 | np.float64) -> npt.NDArray[np.int64]:
    # + 0.0 turns -0.0 into +0.0, as the integer round trip would.
    return ((scaled + 0.0) / scale).view(np.int64)


def _put_floats(out: list[bytes], v: F64) -> None:
    """Decimal scaling when some e in 0..9 makes rint(v * 10**e) / 10**e give back every value
    bit for bit (then delta + frame of reference on the integers), else XOR with the previous
    value's bits, byte-shuffled."""
    found = _decimal_scaled(v) if len(v) else None
    if found is not None:
        e, scaled = found
        ints = scaled.astype(np.int64)
        deltas = np.empty(len(ints), dtype=np.int64)
        deltas[0] = ints[0]
        np.subtract(ints[1:], ints[:-1], out=deltas[1:])
        out.append(bytes((_FLOAT_DECIMAL, e)))
        _put_ints(out, deltas)
        return
    bits = v.view(np.int64)
    x = bits.copy()
    x[1:] ^= bits[:-1]
    out.append(bytes((_FLOAT_XOR,)))
    out.append(_shuffle(x.view(np.uint64), 8))


def _put_ragged(out: list[bytes], r: Ragged) -> None:
    base = int(r.offsets[0])
    index = r.index[base : base + r.total].astype(np.int64)
    _put_ints(out, r.lengths())
    # Plain deltas across point boundaries: small within a point, one jump per point.
    deltas = np.empty(len(index), dtype=np.int64)
    if len(index):
        deltas[0] = index[0]
        np.subtract(index[1:], index[:-1], out=deltas[1:])
    _put_ints(out, deltas)
    _put_ints(out, r.value[base : base + r.total])


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise CorruptData(f"decode chunk: truncated body (need {n} bytes at {self.pos} of {len(self.buf)})")
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
            raise CorruptData(f"decode chunk: bad integer column width {width}")
        u = _unshuffle(self.take(n * width), n, width)
        return (u + np.uint64(base & 0xFFFFFFFFFFFFFFFF)).view(np.int64)

    def floats(self, n: int) -> F64:
        mode = self.byte()
        if mode == _FLOAT_DECIMAL:
            e = self.byte()
            if e > _MAX_DECIMALS:
                raise CorruptData(f"decode chunk: bad decimal exponent {e}")
            ints = np.cumsum(self.ints(n))
            return np.asarray(ints.astype(np.float64) / _POW10[e], dtype=np.float64)
        if mode == _FLOAT_XOR:
            x = _unshuffle(self.take(n * 8), n, 8)
            return np.bitwise_xor.accumulate(x).view(np.float64)
        raise CorruptData(f"decode chunk: unknown float column mode {mode}")

    def ragged(self, n: int) -> Ragged:
        lens = self.ints(n)
        if n and (int(lens.min()) < 0 or int(lens.max()) > MAX_LIST_LENGTH):
            raise CorruptData("decode chunk: bad sketch list length")
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        total = int(offsets[-1])
        if total > MAX_LIST_ENTRIES:
            raise CorruptData(f"decode chunk: {total} sketch entries")
        index = np.cumsum(self.ints(total))
        if total and (int(index.min()) < -(2**31) or int(index.max()) >= 2**31):
            raise CorruptData("decode chunk: sketch index out of range")
        return Ragged(offsets=offsets, index=index.astype(np.int32), value=self.ints(total))


# ---------------------------------------------------------------------------- codec


def encode_chunk(points: Points, *, kind: MetricKind, step_ms: int, chunk_start_ms: int) -> bytes:
    """Bytes of the points of ONE key whose ts are chunk_start + slot * step (slot >= 0),
    strictly increasing (valid `Points` of one key are). Deterministic: equal input, equal bytes.

    Raises InvalidArgument(parameter="points") for several keys or misaligned/unsorted ts."""
    n = len(points)
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
        _put_floats(out, points.last)
    else:
        _put_ints(out, points.count)
        for col in (points.sum, points.min, points.max, points.last):
            _put_floats(out, col)
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
    header = _HEADER.pack(CODEC_VERSION, flags, int(kind), n, step_ms, chunk_start_ms, first_slot, len(body))
    return header + packed


def decode_chunk(data: bytes, *, key: int) -> DecodedChunk:
    """Inverse of `encode_chunk`, with every point's key set to `key`.

    Raises CorruptData for an unknown version, truncated, trailing or inconsistent bytes."""
    if len(data) < 1:
        raise CorruptData("decode chunk: empty input")
    version = data[0]
    if version != CODEC_VERSION:
        raise CorruptData(f"decode chunk: unknown codec version {version}")
    return _decode_v1(bytes(data), key)


def _decode_v1(data: bytes, key: int) -> DecodedChunk:
    if len(data) < _HEADER.size:
        raise CorruptData(f"decode chunk: truncated header ({len(data)} of {_HEADER.size} bytes)")
    _, flags, kind_no, n, step_ms, chunk_start_ms, first_slot, body_len = _HEADER.unpack_from(data)
    if flags & ~_KNOWN_FLAGS:
        raise CorruptData(f"decode chunk: unknown flags {flags:#x}")
    try:
        kind = MetricKind(kind_no)
    except ValueError:
        raise CorruptData(f"decode chunk: unknown metric kind {kind_no}") from None
    if step_ms <= 0 or body_len > MAX_BODY_BYTES or n > MAX_CHUNK_POINTS:
        raise CorruptData(f"decode chunk: bad header (step {step_ms} ms, {n} points, body {body_len} bytes)")
    packed = data[_HEADER.size :]
    if flags & FLAG_COMPRESSED:
        try:
            declared = zstandard.frame_content_size(packed)
            if declared != body_len:
                raise CorruptData(f"decode chunk: zstd frame declares {declared} bytes, header says {body_len}")
            body = _decompressor().decompress(packed, max_output_size=body_len, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise CorruptData(f"decode chunk: {exc}") from exc
    else:
        body = packed
    if len(body) != body_len:
        raise CorruptData(f"decode chunk: body is {len(body)} bytes, header says {body_len}")
    r = _Reader(body)
    try:
        points = _read_points(r, flags, n, step_ms, chunk_start_ms, first_slot, key)
    except (ValueError, struct.error) as exc:
        raise CorruptData(f"decode chunk: {exc}") from exc
    if r.pos != len(body):
        raise CorruptData(f"decode chunk: {len(body) - r.pos} trailing bytes")
    return DecodedChunk(kind=kind, step_ms=step_ms, chunk_start_ms=chunk_start_ms, points=points)


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
