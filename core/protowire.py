"""Protobuf wire-format pieces for the paths that write messages as bytes instead of
through the message API (per-series message building costs microseconds per series, which
dominates when batches hold many small series): varints, one or a numpy column at a time,
and length-delimited fields."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


def _varint_slow(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL: Final = [_varint_slow(v) for v in range(1 << 14)]


def varint(value: int) -> bytes:
    """The varint of a non-negative int (sizes, tags, timestamps)."""
    return _SMALL[value] if value < 16384 else _varint_slow(value)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field `number` (wire type 2) holding `payload`."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def varints(values: npt.NDArray[Any]) -> tuple[U8, I64]:
    """Varint encoding of each value (a negative int64 as its two's complement, 10 bytes, as
    protobuf does), concatenated, and offsets: value i is out[offsets[i]:offsets[i + 1]]."""
    v = np.ascontiguousarray(values).astype(np.int64).view(np.uint64)
    n = len(v)
    sizes = varint_sizes(v)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    width = int(sizes.max()) if n else 1
    positions = np.arange(width)
    groups = ((v[:, None] >> (positions.astype(np.uint64) * np.uint64(7))[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    groups |= (positions[None, :] < (sizes[:, None] - 1)).astype(np.uint8) << np.uint8(7)
    return np.ascontiguousarray(groups[positions[None, :] < sizes[:, None]]), offsets


def varint_sizes(values: npt.NDArray[Any]) -> I64:
    """Bytes of each value's varint."""
    u = np.asarray(values).astype(np.int64).view(np.uint64)
    sizes = np.ones(len(u), dtype=np.int64)
    for k in range(1, 10):
        sizes += u >= np.uint64(1 << (7 * k))
    return sizes
