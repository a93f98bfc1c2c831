"""The chunk codec: the bytes stored for one series, one tier, one chunk span.

Layout, flags and the rules for adding a version: docs/formats/chunk.md. Round trips are
bit-exact (every float by its bits, -0.0 and NaN payloads included). Decoding never trusts
its input: an unknown version, truncated or inconsistent bytes raise `CorruptData`.

Version 2 (what `encode_chunk` writes) restarts its delta/XOR float columns every
RESTART_POINTS points, so a query for the last hour of a 12-hour chunk decodes the columns
from the last restart before that hour on, not from the chunk start; version 1 chunks stay
readable. `decode_chunks` decodes many chunks at once, vectorised across chunks, and
`encode_chunks` encodes many the same way (the bytes of `encode_chunk`, byte for byte).

The package splits along the codec's seams: `format` (versions, headers, flags, bounds),
`encode` and `decode`. Import from `core.chunks`; the submodules are its implementation.
"""

from core.chunks.decode import chunk_point_count, decode_chunk, decode_chunks
from core.chunks.encode import encode_chunk, encode_chunks
from core.chunks.format import (
    CODEC_VERSION,
    FLAG_COMPRESSED,
    FLAG_HLL,
    FLAG_SINGLE,
    FLAG_SKETCH,
    MAX_BODY_BYTES,
    MAX_CHUNK_POINTS,
    MAX_LIST_ENTRIES,
    MAX_LIST_LENGTH,
    READABLE_VERSIONS,
    RESTART_POINTS,
    ZSTD_LEVEL,
    DecodedChunk,
)

__all__ = [
    "CODEC_VERSION",
    "FLAG_COMPRESSED",
    "FLAG_HLL",
    "FLAG_SINGLE",
    "FLAG_SKETCH",
    "MAX_BODY_BYTES",
    "MAX_CHUNK_POINTS",
    "MAX_LIST_ENTRIES",
    "MAX_LIST_LENGTH",
    "READABLE_VERSIONS",
    "RESTART_POINTS",
    "ZSTD_LEVEL",
    "DecodedChunk",
    "chunk_point_count",
    "decode_chunk",
    "decode_chunks",
    "encode_chunk",
    "encode_chunks",
]
