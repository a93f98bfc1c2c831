"""Input readers for `argus push`: NDJSON, CSV and Parquet files turned into SampleBatch protos.

Contract:
- Input is read in chunks (a few MB of text, or a few hundred thousand Parquet rows), never
  whole; memory stays bounded by the chunk size plus one batch.
- Within a chunk, rows are grouped by series (metric, kind, region, labels) with numpy; a
  series keeps its samples in input order. A batch holds one entry per series and chunk (a
  series whose samples span two chunks may have two entries in one batch).
- Batches hold at most `max_batch_samples` weighted samples (a timer or distinct sample weighs
  1 + its observation count, so huge observation lists cannot exceed the ingest limit) and
  about `max_batch_bytes` of encoded protobuf; a single oversized sample travels alone.
- Batch ids are stable: `<prefix>-<ordinal>-<sha256(source, ordinal, content)>`, so reading
  the same input again yields the same ids and pushing it twice is idempotent. Samples
  without a timestamp get the time of reading, which makes their batches differ per run.
- A bad record (bad JSON, missing metric, unknown kind, a value that is not a number, ...)
  is counted and skipped; the first few are kept with their line number (Parquet: row
  number). Bad records never stop the read.

Record fields (NDJSON keys, CSV / Parquet columns): `metric`, `kind` (default gauge),
`region` (default core.model.DEFAULT_REGION), `ts` (epoch ms; epoch seconds when < 1e11;
RFC 3339 text; default now), `value` (counter delta / gauge value; a timer takes it as one
observation), `values` (timer: list of numbers, distinct: list of values; a JSON text in CSV),
`labels` (an object, or a JSON object text). Every other field or column is a label.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import InvalidArgument
from core.model import DEFAULT_REGION, MetricKind

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]

RESERVED_FIELDS: Final = frozenset({"metric", "kind", "region", "ts", "value", "values", "labels"})
# The NDJSON fallback parser converts timestamps itself and hands them over in this column, so
# the seconds-vs-milliseconds rule is not applied twice.
_TS_MS_COLUMN: Final = "\x00ts_ms"
# Epoch numbers below this are seconds (1e11 s is the year 5138; 1e11 ms is 1973).
_SECONDS_BELOW: Final = 1e11
# Timestamps whose milliseconds do not fit int64 are invalid rows, not an overflow.
_MAX_ABS_MS: Final = 2.0**63 - 1024
_MIN_SECONDS: Final = -(2**63) // 1000 + 1
_KIND_CHOICES: Final = ", ".join(k.label for k in MetricKind)


class InputFormat(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"
    PARQUET = "parquet"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchingOptions:
    """How input is cut into batches and how batches are named.

    `source` is part of each batch's idempotency identity; `batch_id_prefix` only names it.
    """

    source: str
    batch_id_prefix: str = "push"
    max_batch_samples: int = 50_000
    max_batch_bytes: int = 4 * 1024 * 1024
    # Text read per chunk (NDJSON, CSV) and rows per chunk (Parquet). Changing them changes
    # how rows are grouped, so batch ids are stable only for equal settings.
    chunk_bytes: int = 8 * 1024 * 1024
    chunk_rows: int = 262_144
    max_reported_errors: int = 20

    def __post_init__(self) -> None:
        if self.max_batch_samples < 1:
            raise InvalidArgument("max_batch_samples must be >= 1", parameter="max_batch_samples")
        if self.max_batch_bytes < 1024:
            raise InvalidArgument("max_batch_bytes must be >= 1024", parameter="max_batch_bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class InputError:
    """One skipped record: its 1-based line (NDJSON, CSV) or row (Parquet) and why."""

    line: int
    message: str


@dataclass(slots=True, kw_only=True)
class InputStats:
    """Running totals of one read; updated as batches are produced."""

    records: int = 0
    samples: int = 0
    batches: int = 0
    error_count: int = 0
    errors: list[InputError] = field(default_factory=list)


def detect_format(name: str | None, head: bytes) -> InputFormat:
    """Format from the file name's extension (a trailing .gz ignored), else from the content."""
    lower = (name or "").lower().removesuffix(".gz")
    if lower.endswith((".ndjson", ".jsonl", ".json")):
        return InputFormat.NDJSON
    if lower.endswith(".csv"):
        return InputFormat.CSV
    if lower.endswith((".parquet", ".pq")):
        return InputFormat.PARQUET
    if head.startswith(b"PAR1"):
        return InputFormat.PARQUET
    if head.lstrip()[:1] == b"{":
        return InputFormat.NDJSON
    return InputFormat.CSV


# ---------------------------------------------------------------------------- reader


LineMap = Callable[[I64], I64]


@dataclass(slots=True)
class _Chunk:
    """Rows of one chunk plus how to find their input lines and errors found while parsing."""

    table: pa.Table
    lines: LineMap
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0


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
        packer = _Packer(self._options, self.stats)
        for chunk in self._chunks():
            rows = self._normalize(chunk)
            if rows is not None:
                yield from packer.add(rows)
        yield from packer.finish()

    # ------------------------------------------------------------------ chunking per format

    def _chunks(self) -> Iterator[_Chunk]:
        if self._fmt is InputFormat.PARQUET:
            yield from self._parquet_chunks()
            return
        stream = _open_stream(self._source)
        try:
            if self._fmt is InputFormat.NDJSON:
                yield from self._ndjson_chunks(stream)
            else:
                yield from self._csv_chunks(stream)
        finally:
            if not _is_stream(self._source):
                stream.close()

    def _ndjson_chunks(self, stream: Any) -> Iterator[_Chunk]:
        first_line = 1
        carry = b""
        while True:
            data = stream.read(self._options.chunk_bytes)
            if data:
                buf = carry + bytes(data)
                cut = buf.rfind(b"\n")
                if cut < 0:
                    carry = buf
                    continue
                carry, buf = buf[cut + 1 :], buf[: cut + 1]
            else:
                buf, carry = carry, b""
            if buf and not buf.isspace():
                yield _ndjson_block(buf, first_line)
            first_line += buf.count(b"\n")
            if not data:
                return

    def _csv_chunks(self, stream: Any) -> Iterator[_Chunk]:
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
            pending_errors.append(
                (line, f"expected {row.expected_columns} columns, got {row.actual_columns}: {text!r}")
            )
            return "skip"

        pending_errors: list[tuple[int, str]] = []
        try:
            reader = pcsv.open_csv(
                rest,
                read_options=pcsv.ReadOptions(
                    column_names=names, block_size=self._options.chunk_bytes, use_threads=False
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
        for record_batch in reader:
            table = pa.Table.from_batches([record_batch])
            errors, pending_errors[:] = list(pending_errors), []
            yield _Chunk(
                table=table,
                lines=_csv_line_map(row_base, np.asarray(skipped, dtype=np.int64)),
                errors=errors,
                error_count=len(errors),
            )
            row_base += table.num_rows
        if pending_errors:
            yield _Chunk(
                table=pa.table({"metric": pa.array([], pa.string())}),
                lines=_csv_line_map(row_base, np.asarray(skipped, dtype=np.int64)),
                errors=list(pending_errors),
                error_count=len(pending_errors),
            )

    def _parquet_chunks(self) -> Iterator[_Chunk]:
        if _is_stream(self._source) and not getattr(self._source, "seekable", lambda: False)():
            raise InvalidArgument("Parquet input must be a file, not a pipe", parameter="file")
        parquet = pq.ParquetFile(self._source)
        names = parquet.schema_arrow.names
        if "metric" not in names:
            raise InvalidArgument(f"Parquet file has no 'metric' column (columns: {', '.join(names)})")
        row_base = 0
        for record_batch in parquet.iter_batches(batch_size=self._options.chunk_rows):
            yield _Chunk(table=pa.Table.from_batches([record_batch]), lines=_offset_lines(row_base + 1))
            row_base += record_batch.num_rows

    # ------------------------------------------------------------------ normalisation

    def _normalize(self, chunk: _Chunk) -> _Rows | None:
        """Validate one chunk: count and report its bad rows, return the good ones (or None)."""
        table = chunk.table
        n = table.num_rows
        self.stats.records += n + chunk.error_count
        flags = _Flags(n)
        rows = _build_rows(table, flags, now_ms=int(self._clock() * 1000))
        self._report(chunk, flags)
        if rows is None or not rows.n:
            return None
        return rows

    def _report(self, chunk: _Chunk, flags: _Flags) -> None:
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


# ---------------------------------------------------------------------------- streams


def _is_stream(source: object) -> bool:
    return hasattr(source, "read")


def _open_stream(source: str | os.PathLike[str] | IO[bytes]) -> Any:
    if not isinstance(source, str | os.PathLike):
        return source
    path = os.fspath(source)
    if path.endswith(".gz"):
        return pa.input_stream(path, compression="gzip")
    return pa.OSFile(path, "rb")


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


def _offset_lines(first: int) -> LineMap:
    def lines(rows: I64) -> I64:
        return rows + first

    return lines


def _csv_line_map(row_base: int, skipped: I64) -> LineMap:
    # Data row r (0-based over the file) sits on line r + 2, shifted by every skipped line
    # before it: with skipped lines S sorted, the shift is #{j : S[j] - j <= r + 2}.
    adjusted = skipped - np.arange(len(skipped), dtype=np.int64)

    def lines(rows: I64) -> I64:
        target = rows + row_base + 2
        return np.asarray(target + np.searchsorted(adjusted, target, side="right"), dtype=np.int64)

    return lines


# ---------------------------------------------------------------------------- NDJSON


# Declaring the always-text fields spares Arrow's type inference for them (about 30 % faster);
# a line where one is not text fails the block over to the line-by-line parser.
_NDJSON_TEXT_FIELDS: Final = pa.schema([("metric", pa.string()), ("kind", pa.string()), ("region", pa.string())])


def _ndjson_block(buf: bytes, first_line: int) -> _Chunk:
    """Parse whole lines with Arrow's multi-threaded JSON reader; on any error (bad JSON, a
    field whose type changes between lines) parse this block line by line instead."""
    try:
        table = pjson.read_json(
            pa.BufferReader(buf),
            read_options=pjson.ReadOptions(use_threads=True, block_size=1 << 20),
            parse_options=pjson.ParseOptions(
                explicit_schema=_NDJSON_TEXT_FIELDS, newlines_in_values=False, unexpected_field_behavior="infer"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _ndjson_block_by_line(buf, first_line)
    try:
        # Arrow's JSON reader can build list columns whose offsets overrun their values (a
        # list starting with null after rows without the field; found by tests/fuzz).
        # The cheap validation checks lengths and offsets, not every value.
        table.validate()
    except pa.ArrowInvalid:
        return _ndjson_block_by_line(buf, first_line)

    def lines(rows: I64) -> I64:
        # Arrow skips blank lines; rows map onto the non-blank ones. Only computed for errors.
        nonblank = [i for i, text in enumerate(buf.split(b"\n")) if text.strip()]
        return np.asarray(nonblank, dtype=np.int64)[rows] + first_line

    return _Chunk(table=table, lines=lines)


def _ndjson_block_by_line(buf: bytes, first_line: int) -> _Chunk:
    metric: list[Any] = []
    kind: list[Any] = []
    region: list[Any] = []
    ts_ms: list[int | None] = []
    value: list[Any] = []
    values: list[str | None] = []
    labels: list[str | None] = []
    row_lines: list[int] = []
    errors: list[tuple[int, str]] = []
    error_count = 0
    for offset, text in enumerate(buf.split(b"\n")):
        if not text.strip():
            continue
        line = first_line + offset
        try:
            record = orjson.loads(text)
            if not isinstance(record, dict):
                raise ValueError("a line must be a JSON object")
            row = (
                _text_or_none(record, "metric"),
                _text_or_none(record, "kind"),
                _text_or_none(record, "region"),
                _ts_scalar_ms(record.get("ts")),
            )
            row_labels = _labels_of_record(record)
            row_values = record.get("values")
            if row_values is not None and not isinstance(row_values, list):
                raise ValueError("values must be a list")
        except orjson.JSONDecodeError as exc:
            error_count += 1
            errors.append((line, _short(f"bad JSON: {exc}")))
            continue
        except (ValueError, TypeError) as exc:
            error_count += 1
            errors.append((line, _short(f"{exc}")))
            continue
        metric.append(row[0])
        kind.append(row[1])
        region.append(row[2])
        ts_ms.append(row[3])
        value.append(record.get("value"))
        values.append(None if row_values is None else orjson.dumps(row_values).decode())
        labels.append(None if not row_labels else orjson.dumps(row_labels).decode())
        row_lines.append(line)
    table = pa.table(
        {
            "metric": pa.array(metric, pa.string()),
            "kind": pa.array(kind, pa.string()),
            "region": pa.array(region, pa.string()),
            _TS_MS_COLUMN: pa.array(ts_ms, pa.int64()),
            "value": _loose_value_array(value),
            "values": pa.array(values, pa.string()),
            "labels": pa.array(labels, pa.string()),
        }
    )
    line_numbers = np.asarray(row_lines, dtype=np.int64)
    return _Chunk(
        table=table,
        lines=lambda rows: line_numbers[rows],
        errors=errors[:100],
        error_count=error_count,
    )


def _text_or_none(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{name} must be text, got {_short(orjson.dumps(value).decode())}")


def _loose_value_array(values: list[Any]) -> pa.Array:
    """Numbers stay numbers; anything else goes through the text path (and its errors)."""
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array(
        [None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() for v in values],
        pa.string(),
    )


def _labels_of_record(record: dict[str, Any]) -> dict[str, str]:
    merged: dict[str, str] = {}
    nested = record.get("labels")
    if nested is not None:
        if not isinstance(nested, dict):
            raise ValueError("labels must be an object")
        merged.update(_label_dict(nested))
    extra = {k: v for k, v in record.items() if k not in RESERVED_FIELDS}
    merged.update(_label_dict(extra))
    return merged


def _label_dict(raw: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw.items():
        text = _scalar_text(value)
        if text is None and value is not None:
            raise ValueError(f"label {name!r} must be a string, number or boolean")
        if text:
            out[str(name)] = text
    return out


def _scalar_text(value: object) -> str | None:
    """Label / distinct value text, matching Arrow's casts so both parse paths agree."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    return None


def _ts_scalar_ms(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"ts must be a number or RFC 3339 text, got {value!r}")
    if isinstance(value, int | float):
        return _number_ms(float(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return _number_ms(float(text))
        except ValueError:
            pass
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"ts is neither epoch nor RFC 3339: {_short(text)!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return round(parsed.timestamp() * 1000)
    raise ValueError(f"ts must be a number or RFC 3339 text, got {type(value).__name__}")


def _number_ms(number: float) -> int:
    if not math.isfinite(number):
        raise ValueError(f"ts is not finite: {number!r}")
    ms = round(number * 1000) if number < _SECONDS_BELOW else round(number)
    if abs(ms) >= _MAX_ABS_MS:  # found by tests/fuzz
        raise ValueError(f"ts {number!r} is out of range")
    return ms


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------- normalisation


class _Flags:
    """Rows found bad so far, each with the first reason found for it."""

    def __init__(self, n: int) -> None:
        self.bad: Mask = np.zeros(n, dtype=np.bool_)
        self._found: list[tuple[I64, Callable[[int], str]]] = []

    def add(self, mask: Mask, message: str | Callable[[int], str]) -> None:
        new = mask & ~self.bad
        if not new.any():
            return
        self.bad |= new
        describe = message if callable(message) else (lambda _row, text=message: text)
        self._found.append((np.flatnonzero(new).astype(np.int64), describe))

    def first(self, k: int) -> list[tuple[int, str]]:
        """The first `k` bad rows in row order, with their reason."""
        if not self._found or k <= 0:
            return []
        rows = np.concatenate([r for r, _ in self._found])
        which = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, (r, _) in enumerate(self._found)])
        pick = np.argsort(rows, kind="stable")[:k]
        return [(int(rows[i]), _short(self._found[int(which[i])][1](int(rows[i])))) for i in pick.tolist()]


@dataclass(slots=True)
class _Codes:
    """Dictionary codes of a text column: codes[i] indexes values, -1 means absent."""

    codes: I64
    values: list[str]


@dataclass(slots=True)
class _Rows:
    """The valid rows of one chunk, column-wise."""

    n: int
    metric: _Codes
    kind: npt.NDArray[np.int8]
    region: _Codes
    label_columns: list[tuple[str, _Codes]]
    label_sets: I64  # per row: index into label_set_values, -1 = none
    label_set_values: list[dict[str, str]]
    ts_ms: I64
    value: F64
    timer: pa.ListArray | None  # list<double>, one entry per row (empty for non-timers)
    distinct: pa.ListArray | None  # list<string>, likewise

    def take(self, idx: I64) -> _Rows:
        index = pa.array(idx)
        return _Rows(
            n=len(idx),
            metric=_Codes(self.metric.codes[idx], self.metric.values),
            kind=self.kind[idx],
            region=_Codes(self.region.codes[idx], self.region.values),
            label_columns=[(name, _Codes(c.codes[idx], c.values)) for name, c in self.label_columns],
            label_sets=self.label_sets[idx],
            label_set_values=self.label_set_values,
            ts_ms=self.ts_ms[idx],
            value=self.value[idx],
            timer=None if self.timer is None else self.timer.take(index),
            distinct=None if self.distinct is None else self.distinct.take(index),
        )


def _column(table: pa.Table, name: str) -> pa.Array | None:
    i = table.schema.get_field_index(name)
    if i < 0:
        return None
    return table.column(i).combine_chunks()


def _is_text(type_: pa.DataType) -> bool:
    return bool(pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_string_view(type_))


def _encode(arr: pa.Array | None, n: int) -> _Codes:
    """Dictionary-encode a column as text; null and empty text become -1. Raises Arrow errors
    when the column cannot be cast to text (nested values)."""
    if arr is None or pa.types.is_null(arr.type):
        return _Codes(np.full(n, -1, dtype=np.int64), [])
    if pa.types.is_dictionary(arr.type) or not _is_text(arr.type):
        arr = pc.cast(arr, pa.string())
    encoded = pc.dictionary_encode(arr)
    codes = np.array(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    values: list[str] = encoded.dictionary.to_pylist()
    if "" in values:
        codes[codes == values.index("")] = -1
    return _Codes(codes, values)


def _build_rows(table: pa.Table, flags: _Flags, *, now_ms: int) -> _Rows | None:
    n = table.num_rows
    if n == 0:
        return None

    metric_arr = _column(table, "metric")
    try:
        metric = _encode(metric_arr, n)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        metric = _Codes(np.full(n, -1, dtype=np.int64), [])
        flags.add(_not_null(metric_arr, n), "metric must be text")
    flags.add(metric.codes < 0, "missing metric")

    kind = _kinds(_column(table, "kind"), n, flags)
    region = _regions(_column(table, "region"), n, flags)
    label_columns, label_sets, label_set_values = _labels(table, n, flags)
    ts_ms = _timestamps(table, n, flags, now_ms)
    value, value_missing = _values(_column(table, "value"), n, flags)

    scalar = (kind == MetricKind.COUNTER) | (kind == MetricKind.GAUGE)
    flags.add(scalar & value_missing, "missing value")
    values_arr = _column(table, "values")
    timer = _observations(values_arr, kind == MetricKind.TIMER, flags, n, pa.float64(), single=(value, value_missing))
    distinct = _observations(values_arr, kind == MetricKind.DISTINCT, flags, n, pa.string(), single=None)

    rows = _Rows(
        n=n,
        metric=metric,
        kind=kind,
        region=region,
        label_columns=label_columns,
        label_sets=label_sets,
        label_set_values=label_set_values,
        ts_ms=ts_ms,
        value=value,
        timer=timer,
        distinct=distinct,
    )
    if flags.bad.any():
        return rows.take(np.flatnonzero(~flags.bad).astype(np.int64))
    return rows


def _not_null(arr: pa.Array | None, n: int) -> Mask:
    if arr is None:
        return np.zeros(n, dtype=np.bool_)
    return np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _kinds(arr: pa.Array | None, n: int, flags: _Flags) -> npt.NDArray[np.int8]:
    try:
        codes = _encode(arr, n)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        flags.add(_not_null(arr, n), "kind must be text")
        return np.full(n, MetricKind.GAUGE, dtype=np.int8)
    parsed = np.zeros(len(codes.values) + 1, dtype=np.int8)
    for i, text in enumerate(codes.values):
        try:
            parsed[i] = MetricKind.parse(text.removeprefix("METRIC_KIND_"))
        except ValueError:
            parsed[i] = 0
    parsed[-1] = MetricKind.GAUGE  # code -1: no kind given
    kind = parsed[codes.codes]
    flags.add(
        kind == 0,
        lambda row: f"unknown kind {codes.values[codes.codes[row]]!r} (expected one of: {_KIND_CHOICES})",
    )
    return kind


def _regions(arr: pa.Array | None, n: int, flags: _Flags) -> _Codes:
    try:
        region = _encode(arr, n)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        flags.add(_not_null(arr, n), "region must be text")
        region = _Codes(np.full(n, -1, dtype=np.int64), [])
    if (region.codes < 0).any():
        if DEFAULT_REGION not in region.values:
            region.values.append(DEFAULT_REGION)
        region.codes[region.codes < 0] = region.values.index(DEFAULT_REGION)
    return region


def _labels(table: pa.Table, n: int, flags: _Flags) -> tuple[list[tuple[str, _Codes]], I64, list[dict[str, str]]]:
    """Label columns (a struct `labels` column's fields first, so top-level columns override
    them) and the label sets of a JSON-text `labels` column."""
    sources: list[tuple[str, pa.Array]] = []
    label_sets = np.full(n, -1, dtype=np.int64)
    set_values: list[dict[str, str]] = []
    nested = _column(table, "labels")
    if nested is not None and pa.types.is_map(nested.type):
        nested = pa.array(
            [None if m is None else orjson.dumps(dict(m)).decode() for m in nested.to_pylist()], pa.string()
        )
    if nested is not None and pa.types.is_struct(nested.type):
        sources.extend((nested.type.field(i).name, child) for i, child in enumerate(nested.flatten()))
    elif nested is not None and _is_text(nested.type):
        label_sets, set_values = _label_json(nested, n, flags)
    elif nested is not None and not pa.types.is_null(nested.type):
        flags.add(_not_null(nested, n), "labels must be an object")
    for name in table.column_names:
        if name not in RESERVED_FIELDS and not name.startswith("\x00"):
            sources.append((name, table.column(name).combine_chunks()))

    columns: list[tuple[str, _Codes]] = []
    for name, arr in sources:
        try:
            columns.append((name, _encode(arr, n)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            flags.add(_not_null(arr, n), f"label {name!r} must be a string, number or boolean")
    return columns, label_sets, set_values


def _label_json(arr: pa.Array, n: int, flags: _Flags) -> tuple[I64, list[dict[str, str]]]:
    # Parsed once per distinct text, not once per row.
    codes = _encode(arr, n)
    parsed: list[dict[str, str]] = []
    invalid = np.zeros(len(codes.values) + 1, dtype=np.bool_)
    problems: dict[int, str] = {}
    for i, text in enumerate(codes.values):
        try:
            obj = orjson.loads(text)
            if not isinstance(obj, dict):
                raise ValueError("labels must be a JSON object")
            parsed.append(_label_dict(obj))
        except (orjson.JSONDecodeError, ValueError) as exc:
            parsed.append({})
            invalid[i] = True
            problems[i] = f"labels: {exc}"
    flags.add(invalid[codes.codes], lambda row: problems[int(codes.codes[row])])
    return codes.codes, parsed


def _timestamps(table: pa.Table, n: int, flags: _Flags, now_ms: int) -> I64:
    converted = _column(table, _TS_MS_COLUMN)
    if converted is not None:
        ts = np.asarray(converted.fill_null(now_ms).to_numpy(zero_copy_only=False), dtype=np.int64)
        return ts
    arr = _column(table, "ts")
    if arr is None or pa.types.is_null(arr.type):
        return np.full(n, now_ms, dtype=np.int64)
    missing = ~_not_null(arr, n)
    if _is_text(arr.type):
        missing |= np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr), ""), False), dtype=np.bool_)
    ts, invalid = _ts_array_ms(arr)
    ts = np.array(ts, dtype=np.int64)
    ts[missing] = now_ms
    flags.add(invalid & ~missing, lambda row: f"ts is neither epoch nor RFC 3339: {arr[row].as_py()!r}")
    return ts


def _ts_array_ms(arr: pa.Array) -> tuple[I64, Mask]:
    """Epoch ms per row, and which rows could not be read (nulls come back as 0, not invalid)."""
    type_ = arr.type
    n = len(arr)
    ok: Mask = np.zeros(n, dtype=np.bool_)
    if pa.types.is_integer(type_):
        raw = np.asarray(pc.cast(arr, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        overflow = raw < _MIN_SECONDS  # seconds whose milliseconds do not fit int64 (found by tests/fuzz)
        return np.where(raw < _SECONDS_BELOW, np.where(overflow, 0, raw) * 1000, raw).astype(np.int64), overflow
    if pa.types.is_floating(type_):
        raw_f = np.asarray(pc.cast(arr, pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False))
        return _float_ms(raw_f)
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_):
        tz = type_.tz if pa.types.is_timestamp(type_) else None
        as_ms = pc.cast(arr, pa.timestamp("ms", tz=tz), safe=False)
        return np.asarray(as_ms.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64), ok
    if _is_text(type_):
        for target in (pa.int64(), pa.float64(), pa.timestamp("ms", tz="UTC")):
            try:
                return _ts_array_ms(pc.cast(arr, target))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        return _ts_texts_ms(arr.to_pylist())
    return np.zeros(n, dtype=np.int64), _not_null(arr, n)


def _float_ms(raw: F64) -> tuple[I64, Mask]:
    finite = np.isfinite(raw)
    safe = np.where(finite, raw, 0.0)
    ms = np.where(safe < _SECONDS_BELOW, np.rint(safe * 1000), np.rint(safe))
    ok = finite & (np.abs(ms) < _MAX_ABS_MS)  # beyond int64 (found by tests/fuzz)
    return np.where(ok, ms, 0.0).astype(np.int64), ~ok


def _ts_texts_ms(texts: Sequence[str | None]) -> tuple[I64, Mask]:
    # Mixed forms in one chunk (epoch next to RFC 3339, or zone-less times): row by row.
    out = np.zeros(len(texts), dtype=np.int64)
    invalid = np.zeros(len(texts), dtype=np.bool_)
    for i, text in enumerate(texts):
        try:
            out[i] = _ts_scalar_ms(text) or 0
        except ValueError:
            invalid[i] = True
    return out, invalid


def _values(arr: pa.Array | None, n: int, flags: _Flags) -> tuple[F64, Mask]:
    """`value` as float64 and which rows have none. Non-numbers are flagged."""
    if arr is None or pa.types.is_null(arr.type):
        return np.full(n, np.nan), np.ones(n, dtype=np.bool_)
    missing = ~_not_null(arr, n)
    if _is_text(arr.type):
        try:
            return _to_f64(pc.cast(arr, pa.float64())), missing
        except pa.ArrowInvalid:
            texts = arr.to_pylist()
            out = np.full(n, np.nan)
            invalid = np.zeros(n, dtype=np.bool_)
            for i, text in enumerate(texts):
                if text is None:
                    continue
                try:
                    out[i] = float(text)
                except ValueError:
                    invalid[i] = True
            flags.add(invalid, lambda row: f"value is not a number: {_short(str(texts[row]))!r}")
            return out, missing | invalid
    if pa.types.is_boolean(arr.type):
        flags.add(~missing, "value is not a number: a boolean")
        return np.full(n, np.nan), np.ones(n, dtype=np.bool_)
    try:
        return _to_f64(pc.cast(arr, pa.float64())), missing
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        flags.add(~missing, "value is not a number")
        return np.full(n, np.nan), np.ones(n, dtype=np.bool_)


def _to_f64(arr: pa.Array) -> F64:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _observations(
    arr: pa.Array | None,
    wanted: Mask,
    flags: _Flags,
    n: int,
    item_type: pa.DataType,
    *,
    single: tuple[F64, Mask] | None,
) -> pa.ListArray | None:
    """Per-row observation lists for the rows of one kind (`wanted`), as a full-length list
    array (other rows empty). Flags wanted rows without observations."""
    rows = np.flatnonzero(wanted & ~flags.bad).astype(np.int64)
    if not len(rows):
        return None
    noun = "timer" if pa.types.is_floating(item_type) else "distinct"
    sub, invalid = _lists_for(arr, rows, item_type)
    invalid_rows = np.zeros(n, dtype=np.bool_)
    invalid_rows[rows[invalid]] = True
    what = "numbers" if pa.types.is_floating(item_type) else "strings or numbers"
    flags.add(invalid_rows, f"{noun} values must be a list of {what}")
    if single is not None:
        value, value_missing = single
        single_lists = pa.ListArray.from_arrays(
            pa.array(np.arange(len(rows) + 1, dtype=np.int32)),
            pa.array(value[rows], pa.float64()),
            mask=pa.array(value_missing[rows]),
        )
        sub = pc.coalesce(sub, single_lists)
    counts = np.asarray(pc.list_value_length(sub).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    absent = np.zeros(n, dtype=np.bool_)
    absent[rows[counts < 0]] = True
    flags.add(absent, f"{noun} needs values (a list of observations)")
    empty = np.zeros(n, dtype=np.bool_)
    empty[rows[counts == 0]] = True
    flags.add(empty, f"{noun} values must not be empty")

    full_counts = np.zeros(n, dtype=np.int64)
    full_counts[rows] = np.maximum(counts, 0)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(full_counts, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise InvalidArgument("too many observations in one chunk; lower chunk_bytes")
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), sub.flatten())


def _lists_for(arr: pa.Array | None, rows: I64, item_type: pa.DataType) -> tuple[pa.ListArray, Mask]:
    """`values` of the given rows as list<item_type>, and which rows held something unusable."""
    m = len(rows)
    target = pa.list_(item_type)
    none = np.zeros(m, dtype=np.bool_)
    if arr is None or pa.types.is_null(arr.type):
        return pa.nulls(m, target), none
    sub = arr.take(pa.array(rows))
    if pa.types.is_list(sub.type) or pa.types.is_large_list(sub.type):
        try:
            return pc.cast(sub, target), none
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _lists_by_row(sub.to_pylist(), item_type)
    if _is_text(sub.type):
        parsed = _json_lists(sub, target)
        if parsed is not None:
            return parsed, none
        return _lists_by_row([None if t is None else _loads_or_bad(t) for t in sub.to_pylist()], item_type)
    return pa.nulls(m, target), _not_null(sub, m)


_BAD = object()


def _loads_or_bad(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _BAD


def _json_lists(texts: pa.Array, target: pa.DataType) -> pa.ListArray | None:
    """Parse a column of JSON list texts in one go by turning it into NDJSON for Arrow's JSON
    reader (the string buffer of `{"v":<text>}\\n` rows is that document). None if any fails."""
    if _is_text(texts.type) and not pa.types.is_string(texts.type):
        texts = pc.cast(texts, pa.string())
    wrapped = pc.binary_join_element_wise('{"v":', pc.fill_null(texts, "null"), "}\n", "")
    offsets = np.frombuffer(wrapped.buffers()[1], dtype=np.int32)[wrapped.offset : wrapped.offset + len(wrapped) + 1]
    start, stop = int(offsets[0]), int(offsets[-1])
    document = wrapped.buffers()[2].slice(start, stop - start)
    try:
        table = pjson.read_json(
            pa.BufferReader(document),
            parse_options=pjson.ParseOptions(explicit_schema=pa.schema([("v", target)]), newlines_in_values=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != len(texts):
        return None
    return table.column("v").combine_chunks()


def _lists_by_row(items: list[Any], item_type: pa.DataType) -> tuple[pa.ListArray, Mask]:
    numeric = pa.types.is_floating(item_type)
    out: list[list[Any] | None] = []
    invalid = np.zeros(len(items), dtype=np.bool_)
    for i, obj in enumerate(items):
        if obj is None:
            out.append(None)
            continue
        converted = _convert_list(obj, numeric=numeric)
        if converted is None:
            invalid[i] = True
        out.append(converted)
    return pa.array(out, pa.list_(item_type)), invalid


def _convert_list(obj: Any, *, numeric: bool) -> list[Any] | None:
    if not isinstance(obj, list):
        return None
    if numeric:
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in obj):
            return [float(v) for v in obj]
        return None
    texts = [_scalar_text(v) for v in obj]
    return None if any(t is None for t in texts) else texts


# ---------------------------------------------------------------------------- packing
#
# Batches are encoded straight to protobuf wire format with numpy and parsed once into a
# SampleBatch. Building them through the message API costs microseconds per series, which
# dominates when a chunk holds few samples per series (a fleet backfill); here every series
# entry of a batch is assembled by one vectorised scatter of byte segments, so the Python
# work is per batch, not per series. Tags are (field number << 3) | wire type.

_TAG_LABEL: Final = b"\x22"
_TAG_METRIC: Final = b"\x0a"
_TAG_KIND: Final = b"\x10"
_TAG_REGION: Final = b"\x1a"
_TAG_LABEL_NAME: Final = b"\x0a"
_TAG_LABEL_VALUE: Final = b"\x12"
_TAG_DISTINCT: Final = 0x4A
# One byte each, indexed by the _T_* positions below.
_TAGS: Final = np.frombuffer(b"\x1a\x2a\x32\x3a\x42", dtype=np.uint8)
_T_SERIES, _T_TIMESTAMPS, _T_VALUES, _T_COUNTS, _T_OBSERVATIONS = range(5)


def _varint_slow(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS: Final = [_varint_slow(v) for v in range(1 << 14)]


def _varint(value: int) -> bytes:
    return _SMALL_VARINTS[value] if value < 16384 else _varint_slow(value)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _text_field(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode())


def _label_bytes(name: str, value: str) -> bytes:
    return _field(_TAG_LABEL, _text_field(_TAG_LABEL_NAME, name) + _text_field(_TAG_LABEL_VALUE, value))


def _label_column_bytes(name: str, values: list[str]) -> list[bytes]:
    """`_label_bytes(name, v)` for every value of one label column (inlined: this runs once
    per distinct value per chunk, which is per row for high-cardinality labels)."""
    name_part = _text_field(_TAG_LABEL_NAME, name) + _TAG_LABEL_VALUE
    base = len(name_part)
    varint = _varint
    out = []
    for value in values:
        data = value.encode()
        size = varint(len(data))
        out.append(_TAG_LABEL + varint(base + len(size) + len(data)) + name_part + size + data)
    return out


def _varints(values: npt.NDArray[Any]) -> tuple[U8, I64]:
    """Varint encoding of each value (negative int64 as its two's complement, like protobuf),
    concatenated, plus offsets: value i is out[offsets[i]:offsets[i + 1]]."""
    v = np.ascontiguousarray(values).astype(np.int64).view(np.uint64)
    n = len(v)
    sizes = _varint_sizes(v)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    width = int(sizes.max()) if n else 1
    positions = np.arange(width)
    groups = ((v[:, None] >> (positions.astype(np.uint64) * np.uint64(7))[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    groups |= (positions[None, :] < (sizes[:, None] - 1)).astype(np.uint8) << np.uint8(7)
    return np.ascontiguousarray(groups[positions[None, :] < sizes[:, None]]), offsets


def _varint_sizes(v: npt.NDArray[Any]) -> I64:
    u = np.asarray(v).astype(np.int64).view(np.uint64)
    sizes = np.ones(len(u), dtype=np.int64)
    for k in range(1, 10):
        sizes += u >= np.uint64(1 << (7 * k))
    return sizes


class _Table:
    """Byte strings laid end to end, addressed by index: string i is buf[off[i]:off[i] + size[i]]."""

    def __init__(self, items: Sequence[bytes]) -> None:
        self.buf = np.frombuffer(b"".join(items) or b"\x00", dtype=np.uint8)
        sizes = np.fromiter((len(b) for b in items), dtype=np.int64, count=len(items))
        self.off = np.zeros(len(items), dtype=np.int64)
        if len(items) > 1:
            np.cumsum(sizes[:-1], out=self.off[1:])
        self.size = sizes


# One segment of every series entry: (source bytes, start in source, length), per piece.
_Segment = tuple[U8, I64, I64]


def _scatter(segments: list[_Segment], pieces: int) -> bytes:
    """For each piece p in order, the concatenation of every segment's bytes for p."""
    lengths = np.stack([length for _, _, length in segments])  # segments x pieces
    dest = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths.T.reshape(-1), out=dest[1:])
    dest_starts = dest[:-1].reshape(pieces, len(segments))
    out = np.empty(int(dest[-1]), dtype=np.uint8)
    for k, (source, start, length) in enumerate(segments):
        total = int(length.sum())
        if total == 0:
            continue
        before = np.zeros(pieces, dtype=np.int64)
        np.cumsum(length[:-1], out=before[1:])
        step = np.arange(total, dtype=np.int64)
        out[np.repeat(dest_starts[:, k] - before, length) + step] = source[np.repeat(start - before, length) + step]
    return out.tobytes()


@dataclass(slots=True)
class _Encoded:
    """Per-row wire pieces of one chunk in series order: row i's part of a packed field is
    buf[off[i]:off[i + 1]] (values: 8 bytes per row)."""

    ts: U8
    ts_off: I64
    values: U8
    counts: U8
    counts_off: I64
    observations: U8
    obs_off: I64
    distinct: U8  # complete distinct_values fields, one per observation
    distinct_off: I64
    weight: I64  # per row: 1 + observations
    size: I64  # per row: encoded bytes


def _encode_rows(rows: _Rows, order: I64) -> _Encoded:
    n = rows.n
    ts, ts_off = _varints(rows.ts_ms[order])
    kind = rows.kind[order]
    is_scalar = (kind == MetricKind.COUNTER) | (kind == MetricKind.GAUGE)
    counts = np.zeros(n, dtype=np.int64)
    observations = np.zeros(0, dtype=np.uint8)
    obs_off = np.zeros(n + 1, dtype=np.int64)
    distinct = np.zeros(0, dtype=np.uint8)
    distinct_off = np.zeros(n + 1, dtype=np.int64)
    if rows.timer is not None:
        timer_counts, flat = _sorted_lists(rows.timer, order)
        counts += timer_counts
        np.cumsum(timer_counts * 8, out=obs_off[1:])
        observations = _to_f64(flat).astype("<f8").view(np.uint8)
    if rows.distinct is not None:
        distinct_counts, flat = _sorted_lists(rows.distinct, order)
        counts += distinct_counts
        distinct, entry_off = _string_entries(flat)
        distinct_off[1:] = entry_off[np.cumsum(distinct_counts)]
    counts_bytes, counts_off = _varints(counts)
    size = np.diff(ts_off) + np.where(is_scalar, 8, np.diff(counts_off)) + np.diff(obs_off) + np.diff(distinct_off)
    return _Encoded(
        ts=ts,
        ts_off=ts_off,
        values=np.ascontiguousarray(rows.value[order], dtype="<f8").view(np.uint8),
        counts=counts_bytes,
        counts_off=counts_off,
        observations=observations,
        obs_off=obs_off,
        distinct=distinct,
        distinct_off=distinct_off,
        weight=1 + counts,
        size=size.astype(np.int64),
    )


def _sorted_lists(lists: pa.ListArray, order: I64) -> tuple[I64, pa.Array]:
    taken = lists.take(pa.array(order))
    counts = np.asarray(pc.list_value_length(taken).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return counts, taken.flatten()


def _string_entries(flat: pa.Array) -> tuple[U8, I64]:
    """Each string as a complete `distinct_values` field (tag, length, UTF-8), concatenated,
    with offsets per string."""
    flat = pc.cast(flat, pa.string())
    m = len(flat)
    if m == 0:
        return np.zeros(0, dtype=np.uint8), np.zeros(1, dtype=np.int64)
    src_offsets = np.frombuffer(flat.buffers()[1], dtype=np.int32)[flat.offset : flat.offset + m + 1].astype(np.int64)
    lengths = np.diff(src_offsets)
    length_bytes, length_off = _varints(lengths)
    data = np.frombuffer(flat.buffers()[2], dtype=np.uint8) if lengths.sum() else np.zeros(1, dtype=np.uint8)
    ones = np.ones(m, dtype=np.int64)
    out = _scatter(
        [
            (np.full(1, _TAG_DISTINCT, dtype=np.uint8), np.zeros(m, dtype=np.int64), ones),
            (length_bytes, length_off[:-1], np.diff(length_off)),
            (data, src_offsets[:-1], lengths),
        ],
        m,
    )
    starts = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(1 + np.diff(length_off) + lengths, out=starts[1:])
    return np.frombuffer(out, dtype=np.uint8), starts


class _Packer:
    """Groups rows by series and packs them into bounded, deterministically named batches.

    Batches fill in input order: a chunk's series entries go into the current batch until a
    limit is reached, splitting a series between two batches where needed. A series whose
    samples come from two chunks may appear twice in one batch.
    """

    def __init__(self, options: BatchingOptions, stats: InputStats) -> None:
        self._options = options
        self._stats = stats
        self._ordinal = 0
        self._parts: list[bytes] = []
        self._weight = 0
        self._bytes = 0

    def add(self, rows: _Rows) -> Iterator[metrics_pb2.SampleBatch]:
        merged = _merged_labels(rows)
        order, starts, ends = _group(rows, merged)
        header_segments, header_size = _header_segments(rows, order[starts], merged)
        enc = _encode_rows(rows, order)
        group_of_row = np.repeat(np.arange(len(starts), dtype=np.int64), ends - starts)
        row_bytes = enc.size.copy()
        row_bytes[starts] += header_size + 16  # entry overhead, charged to the series' first row
        cum_weight = np.zeros(rows.n + 1, dtype=np.int64)
        np.cumsum(enc.weight, out=cum_weight[1:])
        cum_bytes = np.zeros(rows.n + 1, dtype=np.int64)
        np.cumsum(row_bytes, out=cum_bytes[1:])
        kinds = rows.kind[order[starts]].astype(np.int64)

        r = 0
        while r < rows.n:
            room_w = self._options.max_batch_samples - self._weight
            room_b = self._options.max_batch_bytes - self._bytes
            stop = min(
                int(np.searchsorted(cum_weight, cum_weight[r] + room_w, side="right")) - 1,
                int(np.searchsorted(cum_bytes, cum_bytes[r] + room_b, side="right")) - 1,
                rows.n,
            )
            if stop <= r:
                if self._parts:
                    yield self._flush()
                    continue
                stop = r + 1  # one sample over the limit travels alone
            first, last = int(group_of_row[r]), int(group_of_row[stop - 1])
            groups = np.arange(first, last + 1, dtype=np.int64)
            piece_start = np.maximum(starts[groups], r)
            piece_end = np.minimum(ends[groups], stop)
            self._parts.append(
                _entries(enc, kinds[groups], [(s, o[groups], z[groups]) for s, o, z in header_segments],
                         header_size[groups], piece_start, piece_end)
            )  # fmt: skip
            self._weight += int(cum_weight[stop] - cum_weight[r])
            self._bytes += int(cum_bytes[stop] - cum_bytes[r])
            self._stats.samples += stop - r
            r = stop
            if r < rows.n:
                yield self._flush()

    def finish(self) -> Iterator[metrics_pb2.SampleBatch]:
        if self._parts:
            yield self._flush()

    def _flush(self) -> metrics_pb2.SampleBatch:
        content = b"".join(self._parts)
        self._ordinal += 1
        digest = hashlib.sha256()
        digest.update(self._options.source.encode())
        digest.update(b"\x00")
        digest.update(str(self._ordinal).encode())
        digest.update(b"\x00")
        digest.update(content)
        batch = metrics_pb2.SampleBatch.FromString(content)
        batch.batch_id = f"{self._options.batch_id_prefix}-{self._ordinal:06d}-{digest.hexdigest()[:24]}"
        batch.source = self._options.source
        self._stats.batches += 1
        self._parts = []
        self._weight = 0
        self._bytes = 0
        return batch


def _entries(
    enc: _Encoded,
    kinds: I64,
    header_segments: list[_Segment],
    header_size: I64,
    start: I64,
    end: I64,
) -> bytes:
    """`series` fields (wire format) for pieces of series: piece p holds sorted rows
    [start[p], end[p]) of one series whose header bytes come from `header_segments`."""
    pieces = len(start)
    zeros = np.zeros(pieces, dtype=np.int64)
    one = np.ones(pieces, dtype=np.int64)
    scalar = (kinds == MetricKind.COUNTER) | (kinds == MetricKind.GAUGE)
    timer = kinds == MetricKind.TIMER
    distinct = kinds == MetricKind.DISTINCT

    def field(tag: int, present: npt.NDArray[np.bool_], lengths: I64) -> tuple[list[_Segment], I64]:
        """Tag and length prefix of a field (nothing where absent), and its total size."""
        size_bytes, size_off = _varints(lengths)
        present_i = present.astype(np.int64)
        prefix = [
            (_TAGS, np.full(pieces, tag, dtype=np.int64), present_i),
            (size_bytes, size_off[:-1], np.diff(size_off) * present_i),
        ]
        return prefix, (1 + np.diff(size_off) + lengths) * present_i

    ts_len = enc.ts_off[end] - enc.ts_off[start]
    ts_prefix, ts_total = field(_T_TIMESTAMPS, np.ones(pieces, dtype=np.bool_), ts_len)
    val_len = 8 * (end - start) * scalar
    val_prefix, val_total = field(_T_VALUES, scalar, val_len)
    cnt_len = (enc.counts_off[end] - enc.counts_off[start]) * ~scalar
    cnt_prefix, cnt_total = field(_T_COUNTS, ~scalar, cnt_len)
    obs_len = (enc.obs_off[end] - enc.obs_off[start]) * timer
    obs_prefix, obs_total = field(_T_OBSERVATIONS, timer, obs_len)
    dis_len = (enc.distinct_off[end] - enc.distinct_off[start]) * distinct
    body = header_size + ts_total + val_total + cnt_total + obs_total + dis_len
    body_bytes, body_off = _varints(body)
    segments: list[_Segment] = [
        (_TAGS, np.full(pieces, _T_SERIES, dtype=np.int64), one),
        (body_bytes, body_off[:-1], np.diff(body_off)),
        *header_segments,
        *ts_prefix,
        (enc.ts, enc.ts_off[start], ts_len),
        *val_prefix,
        (enc.values, 8 * start, val_len),
        *cnt_prefix,
        (enc.counts, enc.counts_off[start], cnt_len),
        *obs_prefix,
        (enc.observations if len(enc.observations) else _TAGS, enc.obs_off[start] if timer.any() else zeros, obs_len),
        (enc.distinct if len(enc.distinct) else _TAGS, enc.distinct_off[start] if distinct.any() else zeros, dis_len),
    ]
    return _scatter(segments, pieces)


def _combine(parts: Sequence[tuple[I64, int]], n: int) -> I64:
    """One int64 key per row, equal exactly when all the parts' codes are equal. Each part is
    (codes in [0, size), size)."""
    key = np.zeros(n, dtype=np.int64)
    span = 1
    for codes, size in parts:
        if size <= 1:
            continue
        if span * size >= 2**62:
            # Re-number the combined key densely before it could overflow.
            _, key = np.unique(key, return_inverse=True)
            key = key.astype(np.int64)
            span = int(key.max()) + 1
        key = key * size + codes
        span *= size
    return key


@dataclass(slots=True)
class _LabelSets:
    """Rows' label sets when they must be merged (a JSON labels column, or one name in two
    sources): per row the id of its canonical label set, and each set in wire format."""

    ids: I64
    encoded: list[bytes]


def _merged_labels(rows: _Rows) -> _LabelSets | None:
    names = [name for name, _ in rows.label_columns]
    if not rows.label_set_values and len(set(names)) == len(names):
        return None
    parts = [(rows.label_sets + 1, len(rows.label_set_values) + 1)]
    parts.extend((c.codes + 1, len(c.values) + 1) for _, c in rows.label_columns)
    _, first, inverse = np.unique(_combine(parts, rows.n), return_index=True, return_inverse=True)
    canonical: dict[tuple[tuple[str, str], ...], int] = {}
    encoded: list[bytes] = []
    id_of_combo = np.empty(len(first), dtype=np.int64)
    for u, row in enumerate(first.tolist()):
        # Python per distinct combination of label codes, not per row.
        set_code = int(rows.label_sets[row])
        labels = dict(rows.label_set_values[set_code]) if set_code >= 0 else {}
        for name, codes in rows.label_columns:
            code = int(codes.codes[row])
            if code >= 0:
                labels[name] = codes.values[code]  # later sources win
        key = tuple(sorted(labels.items()))
        if key not in canonical:
            canonical[key] = len(encoded)
            encoded.append(b"".join(_label_bytes(k, v) for k, v in key))
        id_of_combo[u] = canonical[key]
    return _LabelSets(ids=id_of_combo[inverse.reshape(-1)], encoded=encoded)


def _group(rows: _Rows, merged: _LabelSets | None) -> tuple[I64, I64, I64]:
    """Row order that puts each series together (stable), and each series' [start, end)."""
    parts: list[tuple[I64, int]] = [
        (rows.metric.codes, len(rows.metric.values)),
        (rows.kind.astype(np.int64), 5),
        (rows.region.codes, len(rows.region.values)),
    ]
    if merged is not None:
        parts.append((merged.ids, len(merged.encoded)))
    else:
        parts.extend((codes.codes + 1, len(codes.values) + 1) for _, codes in rows.label_columns)
    key = _combine(parts, rows.n)
    order = np.argsort(key, kind="stable").astype(np.int64)
    sorted_key = key[order]
    cuts = np.flatnonzero(sorted_key[1:] != sorted_key[:-1]).astype(np.int64) + 1
    starts = np.concatenate(([0], cuts)).astype(np.int64)
    ends = np.concatenate((cuts, [rows.n])).astype(np.int64)
    return order, starts, ends


def _header_segments(rows: _Rows, rep: I64, merged: _LabelSets | None) -> tuple[list[_Segment], I64]:
    """Byte segments that spell each group's series header (metric, kind, region, labels
    sorted by name) in wire format, and each header's size."""
    kind_table = _Table([_TAG_KIND + _varint(k) for k in range(5)])
    sources: list[tuple[_Table, I64]] = [
        (_Table([_text_field(_TAG_METRIC, m) for m in rows.metric.values]), rows.metric.codes[rep]),
        (kind_table, rows.kind[rep].astype(np.int64)),
        (_Table([_text_field(_TAG_REGION, r) for r in rows.region.values]), rows.region.codes[rep]),
    ]
    if merged is not None:
        sources.append((_Table(merged.encoded), merged.ids[rep]))
    else:
        # Every label comes from its own column: columns in name order give the labels in
        # name order; an absent label (code -1) is the empty last entry of its table.
        for name, codes in sorted(rows.label_columns, key=lambda item: item[0]):
            sources.append((_Table([*_label_column_bytes(name, codes.values), b""]), codes.codes[rep]))
    segments = [(table.buf, table.off[codes], table.size[codes]) for table, codes in sources]
    return segments, np.sum([size for _, _, size in segments], axis=0).astype(np.int64)


def input_name(source: str | os.PathLike[str] | IO[bytes]) -> str:
    """Base name of the input for default sources and messages ("stdin" for a stream)."""
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    return "stdin"
