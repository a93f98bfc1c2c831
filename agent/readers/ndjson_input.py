"""NDJSON input: blocks of whole lines through Arrow's JSON reader, line by line when a
block does not parse (bad JSON, a field whose type changes between lines)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pjson

from agent.readers.common import (
    I64,
    RESERVED_FIELDS,
    TS_MS_COLUMN,
    BatchingOptions,
    Chunk,
    label_dict,
    short,
    ts_scalar_ms,
)

# Declaring the always-text fields spares Arrow's type inference for them (about 30 % faster);
# a line where one is not text fails the block over to the line-by-line parser.
_NDJSON_TEXT_FIELDS: Final = pa.schema([("metric", pa.string()), ("kind", pa.string()), ("region", pa.string())])


def ndjson_block(buf: bytes, first_line: int) -> Chunk:
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

    return Chunk(table=table, lines=lines)


def _ndjson_block_by_line(buf: bytes, first_line: int) -> Chunk:
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
                ts_scalar_ms(record.get("ts")),
            )
            row_labels = _labels_of_record(record)
            row_values = record.get("values")
            if row_values is not None and not isinstance(row_values, list):
                raise ValueError("values must be a list")
        except orjson.JSONDecodeError as exc:
            error_count += 1
            errors.append((line, short(f"bad JSON: {exc}")))
            continue
        except (ValueError, TypeError) as exc:
            error_count += 1
            errors.append((line, short(f"{exc}")))
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
            TS_MS_COLUMN: pa.array(ts_ms, pa.int64()),
            "value": _loose_value_array(value),
            "values": pa.array(values, pa.string()),
            "labels": pa.array(labels, pa.string()),
        }
    )
    line_numbers = np.asarray(row_lines, dtype=np.int64)
    return Chunk(
        table=table,
        lines=lambda rows: line_numbers[rows],
        errors=errors[:100],
        error_count=error_count,
    )


def _text_or_none(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{name} must be text, got {short(orjson.dumps(value).decode())}")


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
        merged.update(label_dict(nested))
    extra = {k: v for k, v in record.items() if k not in RESERVED_FIELDS}
    merged.update(label_dict(extra))
    return merged


def ndjson_chunks(stream: Any, options: BatchingOptions) -> Iterator[Chunk]:
    """Blocks of whole lines, about `options.chunk_bytes` each."""
    first_line = 1
    carry = b""
    while True:
        data = stream.read(options.chunk_bytes)
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
            yield ndjson_block(buf, first_line)
        first_line += buf.count(b"\n")
        if not data:
            return
