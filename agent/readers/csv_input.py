"""CSV input: a header line naming the columns, every cell read as text (conversion happens
per chunk in `normalize`), rows with the wrong column count skipped and reported by line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from agent.readers.common import I64, BatchingOptions, Chunk, LineMap
from core.errors import InvalidArgument

CSV_BLOCK_BYTES = 1024 * 1024
"""Text Arrow parses at once; chunks are several blocks (see `_grouped`)."""


class _PrefixedStream(io.RawIOBase):
    """`prefix` then the rest of `stream`: gives back bytes read ahead from a pipe."""

    def __init__(self, prefix: bytes, stream: Any) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(view))
        n = len(data)
        view[:n] = data
        return n


def _split_header(stream: Any) -> tuple[bytes, Any]:
    """The first line of `stream` and a stream positioned just after it."""
    buf = b""
    while b"\n" not in buf:
        data = stream.read(64 * 1024)
        if not data:
            break
        buf += bytes(data)
    cut = buf.find(b"\n")
    header, rest = (buf, b"") if cut < 0 else (buf[:cut], buf[cut + 1 :])
    if isinstance(stream, pa.OSFile):
        stream.seek(len(buf) - len(rest))
        return header, stream
    return header, io.BufferedReader(_PrefixedStream(rest, stream), buffer_size=1 << 20)


def _csv_names(header: bytes) -> list[str]:
    try:  # a header that is not UTF-8 or not one CSV line: found by tests/fuzz
        text = header.decode("utf-8-sig").rstrip("\r")
        names = next(csv.reader([text]), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidArgument(
            f"CSV header {header[:80]!r} is not a line of UTF-8 CSV: {exc}", parameter="file"
        ) from None
    return [name.strip() for name in names]


def _csv_line_map(row_base: int, skipped: I64) -> LineMap:
    # Data row r (0-based over the file) sits on line r + 2, shifted by every skipped line
    # before it: with skipped lines S sorted, the shift is #{j : S[j] - j <= r + 2}.
    adjusted = skipped - np.arange(len(skipped), dtype=np.int64)

    def lines(rows: I64) -> I64:
        target = rows + row_base + 2
        return np.asarray(target + np.searchsorted(adjusted, target, side="right"), dtype=np.int64)

    return lines


def csv_chunks(stream: Any, options: BatchingOptions) -> Iterator[Chunk]:
    """Record batches of about `options.chunk_bytes` of text; rows with the wrong column count
    are skipped and reported."""
    header, rest = _split_header(stream)
    if not header:
        return
    names = _csv_names(header)
    if "metric" not in names:
        raise InvalidArgument(f"CSV header has no 'metric' column (columns: {', '.join(names)})")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # found by tests/fuzz
        raise InvalidArgument(f"CSV header names column(s) {', '.join(map(repr, twice))} more than once")
    skipped: list[int] = []

    def on_invalid_row(row: Any) -> str:
        # row.number counts from the first data line (1-based) when use_threads=False.
        line = int(row.number) + 1 if row.number is not None else 0
        skipped.append(line)
        text = row.text if len(row.text) <= 80 else row.text[:77] + "..."
        pending_errors.append((line, f"expected {row.expected_columns} columns, got {row.actual_columns}: {text!r}"))
        return "skip"

    pending_errors: list[tuple[int, str]] = []
    try:
        reader = pcsv.open_csv(
            rest,
            # Arrow's streaming reader keeps dozens of blocks read ahead (~36x block_size in
            # its pool): small blocks, grouped into chunks below, keep that bounded.
            read_options=pcsv.ReadOptions(
                column_names=names, block_size=min(options.chunk_bytes, CSV_BLOCK_BYTES), use_threads=False
            ),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid_row),
            # Every column as text: inferring types from the first block would end the whole
            # read at the first later cell that does not fit; conversion happens per chunk.
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV" in str(exc):
            return  # a header and no rows: nothing to read (found by tests/fuzz)
        raise InvalidArgument(f"cannot read CSV: {exc}", parameter="file") from None
    row_base = 0
    for group in _grouped(reader, max_rows=options.chunk_rows, max_bytes=options.chunk_bytes):
        table = pa.Table.from_batches(group)
        errors, pending_errors[:] = list(pending_errors), []
        yield Chunk(
            table=table,
            lines=_csv_line_map(row_base, np.asarray(skipped, dtype=np.int64)),
            errors=errors,
            error_count=len(errors),
        )
        row_base += table.num_rows
    if pending_errors:
        yield Chunk(
            table=pa.table({"metric": pa.array([], pa.string())}),
            lines=_csv_line_map(row_base, np.asarray(skipped, dtype=np.int64)),
            errors=list(pending_errors),
            error_count=len(pending_errors),
        )


def _grouped(batches: Iterator[pa.RecordBatch], *, max_rows: int, max_bytes: int) -> Iterator[list[pa.RecordBatch]]:
    """Consecutive record batches in groups that reach `max_rows` rows or `max_bytes` bytes
    (whichever first; a group holds at least one batch)."""
    group: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in batches:
        group.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
        if rows >= max_rows or size >= max_bytes:
            yield group
            group, rows, size = [], 0, 0
    if group:
        yield group
