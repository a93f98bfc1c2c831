"""Parquet input: record batches of a seekable file, errors reported by row."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from agent.readers.common import BatchingOptions, Chunk, is_stream, offset_lines
from core.errors import InvalidArgument


def parquet_chunks(source: str | os.PathLike[str] | IO[bytes], options: BatchingOptions) -> Iterator[Chunk]:
    """Record batches of `options.chunk_rows` rows."""
    if is_stream(source) and not getattr(source, "seekable", lambda: False)():
        raise InvalidArgument("Parquet input must be a file, not a pipe", parameter="file")
    parquet = pq.ParquetFile(source)
    names = parquet.schema_arrow.names
    if "metric" not in names:
        raise InvalidArgument(f"Parquet file has no 'metric' column (columns: {', '.join(names)})")
    row_base = 0
    for record_batch in parquet.iter_batches(batch_size=options.chunk_rows):
        yield Chunk(table=pa.Table.from_batches([record_batch]), lines=offset_lines(row_base + 1))
        row_base += record_batch.num_rows
