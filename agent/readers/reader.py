"""`SampleReader`: one input, of any format, read chunk by chunk into SampleBatch protos."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import IO

import numpy as np

from agent.readers.common import BatchingOptions, Chunk, InputError, InputFormat, InputStats, is_stream, open_stream
from agent.readers.csv_input import csv_chunks
from agent.readers.ndjson_input import ndjson_chunks
from agent.readers.normalize import Flags, Rows, build_rows
from agent.readers.packing import Packer
from agent.readers.parquet_input import parquet_chunks
from contracts.argus.metrics.v1 import metrics_pb2


class SampleReader:
    """Reads one input (a path, or a binary stream for NDJSON / CSV) into SampleBatch protos.

    Iterate `batches()` once; `stats` fills in while iterating. Not thread-safe, but it may
    be advanced from any one thread at a time.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | IO[bytes],
        *,
        fmt: InputFormat,
        options: BatchingOptions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._fmt = fmt
        self._options = options
        self._clock = clock
        self.stats = InputStats()

    @property
    def position_name(self) -> str:
        """What `InputError.line` counts: "row" for Parquet, else "line"."""
        return "row" if self._fmt is InputFormat.PARQUET else "line"

    def batches(self) -> Iterator[metrics_pb2.SampleBatch]:
        packer = Packer(self._options, self.stats)
        for chunk in self._chunks():
            rows = self._normalize(chunk)
            if rows is not None:
                yield from packer.add(rows)
        yield from packer.finish()

    # ------------------------------------------------------------------ chunking per format

    def _chunks(self) -> Iterator[Chunk]:
        if self._fmt is InputFormat.PARQUET:
            yield from parquet_chunks(self._source, self._options)
            return
        stream = open_stream(self._source)
        try:
            if self._fmt is InputFormat.NDJSON:
                yield from ndjson_chunks(stream, self._options)
            else:
                yield from csv_chunks(stream, self._options)
        finally:
            if not is_stream(self._source):
                stream.close()

    # ------------------------------------------------------------------ normalisation

    def _normalize(self, chunk: Chunk) -> Rows | None:
        """Validate one chunk: count and report its bad rows, return the good ones (or None)."""
        table = chunk.table
        n = table.num_rows
        self.stats.records += n + chunk.error_count
        flags = Flags(n)
        rows = build_rows(table, flags, now_ms=int(self._clock() * 1000))
        self._report(chunk, flags)
        if rows is None or not rows.n:
            return None
        return rows

    def _report(self, chunk: Chunk, flags: Flags) -> None:
        self.stats.error_count += chunk.error_count + int(flags.bad.sum())
        room = self._options.max_reported_errors - len(self.stats.errors)
        if room <= 0:
            return
        found = list(chunk.errors)
        first = flags.first(room)
        if first:
            lines = chunk.lines(np.asarray([r for r, _ in first], dtype=np.int64)).tolist()
            found.extend((line, message) for line, (_, message) in zip(lines, first, strict=True))
        found.sort(key=lambda item: item[0])
        self.stats.errors.extend(InputError(line=line, message=msg) for line, msg in found[:room])
