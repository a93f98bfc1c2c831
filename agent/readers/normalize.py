"""Normalisation, shared by every format: a chunk's table checked column by column with numpy
and Arrow (metric, kind, region, labels, ts, value, observation lists); bad rows are flagged
with their first reason and dropped, the good ones come back as `Rows`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pjson

from agent.readers.common import (
    F64,
    I64,
    MAX_TS_MS,
    MIN_TS_MS,
    RESERVED_FIELDS,
    SECONDS_BELOW,
    TS_MS_COLUMN,
    TWO_63,
    Mask,
    TimestampOutOfRange,
    label_dict,
    scalar_text,
    short,
    ts_out_of_range,
    ts_scalar_ms,
)
from core.errors import InvalidArgument
from core.model import DEFAULT_REGION, MetricKind

_KIND_CHOICES: Final = ", ".join(k.label for k in MetricKind)


class Flags:
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
        return [(int(rows[i]), short(self._found[int(which[i])][1](int(rows[i])))) for i in pick.tolist()]


@dataclass(slots=True)
class _Codes:
    """Dictionary codes of a text column: codes[i] indexes values, -1 means absent."""

    codes: I64
    values: list[str]


@dataclass(slots=True)
class Rows:
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

    def take(self, idx: I64) -> Rows:
        index = pa.array(idx)
        return Rows(
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


def build_rows(table: pa.Table, flags: Flags, *, now_ms: int) -> Rows | None:
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

    rows = Rows(
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


def _kinds(arr: pa.Array | None, n: int, flags: Flags) -> npt.NDArray[np.int8]:
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


def _regions(arr: pa.Array | None, n: int, flags: Flags) -> _Codes:
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


def _labels(table: pa.Table, n: int, flags: Flags) -> tuple[list[tuple[str, _Codes]], I64, list[dict[str, str]]]:
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


def _label_json(arr: pa.Array, n: int, flags: Flags) -> tuple[I64, list[dict[str, str]]]:
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
            parsed.append(label_dict(obj))
        except (orjson.JSONDecodeError, ValueError) as exc:
            parsed.append({})
            invalid[i] = True
            problems[i] = f"labels: {exc}"
    flags.add(invalid[codes.codes], lambda row: problems[int(codes.codes[row])])
    return codes.codes, parsed


def _timestamps(table: pa.Table, n: int, flags: Flags, now_ms: int) -> I64:
    converted = _column(table, TS_MS_COLUMN)
    if converted is not None:
        ts = np.asarray(converted.fill_null(now_ms).to_numpy(zero_copy_only=False), dtype=np.int64)
        return ts
    arr = _column(table, "ts")
    if arr is None or pa.types.is_null(arr.type):
        return np.full(n, now_ms, dtype=np.int64)
    missing = ~_not_null(arr, n)
    if _is_text(arr.type):
        missing |= np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(arr), ""), False), dtype=np.bool_)
    ts, invalid, out_of_range = _ts_array_ms(arr)
    ts = np.array(ts, dtype=np.int64)
    ts[missing] = now_ms
    flags.add(out_of_range & ~missing, lambda row: ts_out_of_range(arr[row].as_py()))
    flags.add(invalid & ~missing, lambda row: f"ts is neither epoch nor RFC 3339: {arr[row].as_py()!r}")
    return ts


def _ts_array_ms(arr: pa.Array) -> tuple[I64, Mask, Mask]:
    """Epoch ms per row, which rows could not be read (nulls come back as 0, not invalid), and
    which hold a number beyond 64-bit epoch milliseconds (0 in the first array)."""
    type_ = arr.type
    n = len(arr)
    ok: Mask = np.zeros(n, dtype=np.bool_)
    if pa.types.is_integer(type_):
        if pa.types.is_uint64(type_):
            wide = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.uint64)
            beyond = wide > np.uint64(MAX_TS_MS)
            arr = pa.array(np.where(beyond, 0, wide).astype(np.int64))
        else:
            beyond = ok
        raw = np.asarray(pc.cast(arr, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        seconds = raw < SECONDS_BELOW
        # Seconds below this times 1000 would wrap around int64.
        beyond = beyond | (seconds & (raw < MIN_TS_MS // 1000 + 1))
        ms = np.where(seconds & ~beyond, raw * 1000, np.where(beyond, 0, raw))
        return ms.astype(np.int64), ok, beyond
    if pa.types.is_floating(type_):
        raw_f = np.asarray(pc.cast(arr, pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False))
        return _float_ms(raw_f)
    if pa.types.is_timestamp(type_) or pa.types.is_date(type_):
        tz = type_.tz if pa.types.is_timestamp(type_) else None
        as_ms = pc.cast(arr, pa.timestamp("ms", tz=tz), safe=False)
        ms = np.asarray(as_ms.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        return ms, ok, ok
    if _is_text(type_):
        for target in (pa.int64(), pa.float64(), pa.timestamp("ms", tz="UTC")):
            try:
                return _ts_array_ms(pc.cast(arr, target))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        return _ts_texts_ms(arr.to_pylist())
    return np.zeros(n, dtype=np.int64), _not_null(arr, n), ok


def _float_ms(raw: F64) -> tuple[I64, Mask, Mask]:
    finite = np.isfinite(raw)
    safe = np.where(finite, raw, 0.0)
    with np.errstate(over="ignore"):  # huge values become inf here, then count as beyond
        ms = np.where(safe < SECONDS_BELOW, np.rint(safe * 1000), np.rint(safe))
    beyond = (ms < -TWO_63) | (ms >= TWO_63)
    return np.where(beyond, 0.0, ms).astype(np.int64), ~finite, beyond


def _ts_texts_ms(texts: Sequence[str | None]) -> tuple[I64, Mask, Mask]:
    # Mixed forms in one chunk (epoch next to RFC 3339, or zone-less times): row by row.
    out = np.zeros(len(texts), dtype=np.int64)
    invalid = np.zeros(len(texts), dtype=np.bool_)
    beyond = np.zeros(len(texts), dtype=np.bool_)
    for i, text in enumerate(texts):
        try:
            out[i] = ts_scalar_ms(text) or 0
        except TimestampOutOfRange:
            beyond[i] = True
        except ValueError:
            invalid[i] = True
    return out, invalid, beyond


def _values(arr: pa.Array | None, n: int, flags: Flags) -> tuple[F64, Mask]:
    """`value` as float64 and which rows have none. Non-numbers are flagged."""
    if arr is None or pa.types.is_null(arr.type):
        return np.full(n, np.nan), np.ones(n, dtype=np.bool_)
    missing = ~_not_null(arr, n)
    if _is_text(arr.type):
        try:
            return to_f64(pc.cast(arr, pa.float64())), missing
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
            flags.add(invalid, lambda row: f"value is not a number: {short(str(texts[row]))!r}")
            return out, missing | invalid
    if pa.types.is_boolean(arr.type):
        flags.add(~missing, "value is not a number: a boolean")
        return np.full(n, np.nan), np.ones(n, dtype=np.bool_)
    try:
        return to_f64(pc.cast(arr, pa.float64())), missing
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        flags.add(~missing, "value is not a number")
        return np.full(n, np.nan), np.ones(n, dtype=np.bool_)


def to_f64(arr: pa.Array) -> F64:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _observations(
    arr: pa.Array | None,
    wanted: Mask,
    flags: Flags,
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
    texts = [scalar_text(v) for v in obj]
    return None if any(t is None for t in texts) else texts
