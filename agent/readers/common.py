"""What every input format shares: options, stats and errors, the chunk a format hands
over, streams, and the scalar rules (timestamps, label text) both NDJSON parsers apply."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core.errors import InvalidArgument

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]

RESERVED_FIELDS: Final = frozenset({"metric", "kind", "region", "ts", "value", "values", "labels"})
# The NDJSON fallback parser converts timestamps itself and hands them over in this column, so
# the seconds-vs-milliseconds rule is not applied twice.
TS_MS_COLUMN: Final = "\x00ts_ms"
# Epoch numbers below this are seconds (1e11 s is the year 5138; 1e11 ms is 1973).
SECONDS_BELOW: Final = 1e11
# Timestamps travel as int64 epoch milliseconds (SampleSeries.timestamps_ms).
MIN_TS_MS: Final = -(2**63)
MAX_TS_MS: Final = 2**63 - 1
TWO_63: Final = 2.0**63


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
    # Text read per chunk (NDJSON, CSV) and rows per chunk (Parquet, CSV). Changing them
    # changes how rows are grouped, so batch ids are stable only for equal settings. A chunk's
    # working set (~1 KB per row while it is checked and packed) is most of `argus push`'s
    # memory beyond its imports: 65,536 rows keep a push under ~256 MB whatever the file
    # size (decision 0045), and still give each series entry dozens of samples.
    chunk_bytes: int = 8 * 1024 * 1024
    chunk_rows: int = 65_536
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


LineMap = Callable[[I64], I64]


@dataclass(slots=True)
class Chunk:
    """Rows of one chunk plus how to find their input lines and errors found while parsing."""

    table: pa.Table
    lines: LineMap
    errors: list[tuple[int, str]] = field(default_factory=list)
    error_count: int = 0


def is_stream(source: object) -> bool:
    return hasattr(source, "read")


def open_stream(source: str | os.PathLike[str] | IO[bytes]) -> Any:
    if not isinstance(source, str | os.PathLike):
        return source
    path = os.fspath(source)
    if path.endswith(".gz"):
        return pa.input_stream(path, compression="gzip")
    return pa.OSFile(path, "rb")


def offset_lines(first: int) -> LineMap:
    def lines(rows: I64) -> I64:
        return rows + first

    return lines


def label_dict(raw: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw.items():
        text = scalar_text(value)
        if text is None and value is not None:
            raise ValueError(f"label {name!r} must be a string, number or boolean")
        if text:
            out[str(name)] = text
    return out


def scalar_text(value: object) -> str | None:
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


class TimestampOutOfRange(InvalidArgument, ValueError):
    """A timestamp that is a number, but not one of epoch milliseconds in 64 bits."""

    def __init__(self, value: object) -> None:
        super().__init__(ts_out_of_range(value))


def ts_out_of_range(value: object) -> str:
    shown = short(value if isinstance(value, str) else repr(value))
    return f"ts {shown} is out of range: as epoch milliseconds it must fit in a signed 64-bit integer"


def ts_scalar_ms(value: object) -> int | None:
    """Epoch ms of one `ts` value (None: absent). Raises ValueError naming what is wrong,
    TimestampOutOfRange for a number beyond 64-bit epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"ts must be a number or RFC 3339 text, got {value!r}")
    if isinstance(value, int):
        # Exact, however large: float() would round it (or overflow past 1e308).
        ms = value * 1000 if value < SECONDS_BELOW else value
        if not MIN_TS_MS <= ms <= MAX_TS_MS:
            raise TimestampOutOfRange(value)
        return ms
    if isinstance(value, float):
        return _number_ms(value, value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return _number_ms(number, text)
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"ts is neither epoch nor RFC 3339: {short(text)!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return round(parsed.timestamp() * 1000)
    raise ValueError(f"ts must be a number or RFC 3339 text, got {type(value).__name__}")


def _number_ms(number: float, shown: object) -> int:
    if not math.isfinite(number):
        raise ValueError(f"ts is not finite: {number!r}")
    ms = number * 1000 if number < SECONDS_BELOW else number
    # Compared as floats, before rounding: round() of an infinite product would raise.
    if not -TWO_63 <= ms < TWO_63:
        raise TimestampOutOfRange(shown)
    return round(ms)


def short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def input_name(source: str | os.PathLike[str] | IO[bytes]) -> str:
    """Base name of the input for default sources and messages ("stdin" for a stream)."""
    if isinstance(source, str | os.PathLike):
        return Path(source).name
    return "stdin"
