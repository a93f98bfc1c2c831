"""Packing, shared by every format: rows grouped by series into bounded, deterministically
named SampleBatch protos."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from agent.readers.common import I64, U8, BatchingOptions, InputStats
from agent.readers.normalize import Rows, to_f64
from contracts.argus.metrics.v1 import metrics_pb2
from core.model import MetricKind
from core.protowire import varint, varints

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


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _text_field(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode())


def _label_bytes(name: str, value: str) -> bytes:
    return _field(_TAG_LABEL, _text_field(_TAG_LABEL_NAME, name) + _text_field(_TAG_LABEL_VALUE, value))


def _label_column_bytes(name: str, values: list[str]) -> list[bytes]:
    """`_label_bytes(name, v)` for every value of one label column (inlined: this runs once
    per distinct value per chunk, which is per row for high-cardinality labels)."""
    name_part = _text_field(_TAG_LABEL_NAME, name) + _TAG_LABEL_VALUE
    base = len(name_part)

    out = []
    for value in values:
        data = value.encode()
        size = varint(len(data))
        out.append(_TAG_LABEL + varint(base + len(size) + len(data)) + name_part + size + data)
    return out


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


def _encode_rows(rows: Rows, order: I64) -> _Encoded:
    n = rows.n
    ts, ts_off = varints(rows.ts_ms[order])
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
        observations = to_f64(flat).astype("<f8").view(np.uint8)
    if rows.distinct is not None:
        distinct_counts, flat = _sorted_lists(rows.distinct, order)
        counts += distinct_counts
        distinct, entry_off = _string_entries(flat)
        distinct_off[1:] = entry_off[np.cumsum(distinct_counts)]
    counts_bytes, counts_off = varints(counts)
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
    length_bytes, length_off = varints(lengths)
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


class Packer:
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

    def add(self, rows: Rows) -> Iterator[metrics_pb2.SampleBatch]:
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
        size_bytes, size_off = varints(lengths)
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
    body_bytes, body_off = varints(body)
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


def _merged_labels(rows: Rows) -> _LabelSets | None:
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


def _group(rows: Rows, merged: _LabelSets | None) -> tuple[I64, I64, I64]:
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


def _header_segments(rows: Rows, rep: I64, merged: _LabelSets | None) -> tuple[list[_Segment], I64]:
    """Byte segments that spell each group's series header (metric, kind, region, labels
    sorted by name) in wire format, and each header's size."""
    kind_table = _Table([_TAG_KIND + varint(k) for k in range(5)])
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
