"""The chunk format: versions, header layouts, flags, column modes and the bounds every
decoder checks (docs/formats/chunk.md). What is written here changes only by addition."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from core.model import MetricKind
from core.points import Points

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
KNOWN_FLAGS: Final = FLAG_COMPRESSED | FLAG_SINGLE | FLAG_SKETCH | FLAG_HLL
RAGGED_FLAGS: Final = FLAG_SKETCH | FLAG_HLL

# version, flags, kind, n_points, step_ms, chunk_start_ms, first_slot, body_len
HEADER_V1: Final = struct.Struct("<BBBIqqqI")
# ... then restart_points (v2)
HEADER_V2: Final = struct.Struct("<BBBIqqqIH")
INT_HEAD: Final = struct.Struct("<qB")
FLOAT_DECIMAL: Final = 0
FLOAT_XOR: Final = 1
FLOAT_RESIDUAL: Final = 2
MAX_DECIMALS: Final = 9
POW10: Final = 10.0 ** np.arange(MAX_DECIMALS + 1, dtype=np.float64)
U64_MASK: Final = 0xFFFFFFFFFFFFFFFF
FLOAT_MODES: Final = {1: (FLOAT_DECIMAL, FLOAT_XOR), 2: (FLOAT_DECIMAL, FLOAT_XOR, FLOAT_RESIDUAL)}
KIND_NUMBERS: Final = frozenset(int(k) for k in MetricKind)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodedChunk:
    kind: MetricKind
    step_ms: int
    chunk_start_ms: int
    points: Points
