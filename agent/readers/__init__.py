"""Input readers for `argus push`: NDJSON, CSV and Parquet files turned into SampleBatch protos.

Contract:
- Input is read in chunks (NDJSON: 8 MB of text; CSV: 65,536 rows or 8 MB; Parquet: 65,536
  rows), never whole; memory stays bounded by the chunk size plus one batch, whatever the
  input size.
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

The package splits by input format: `ndjson_input`, `csv_input` and `parquet_input` cut their
input into chunks; `normalize` (checking rows) and `packing` (rows into batches) are shared,
as is `common` (options, stats, streams, scalar rules); `reader` drives them.
"""

from agent.readers.common import (
    RESERVED_FIELDS,
    BatchingOptions,
    InputError,
    InputFormat,
    InputStats,
    detect_format,
    input_name,
)
from agent.readers.reader import SampleReader

__all__ = [
    "RESERVED_FIELDS",
    "BatchingOptions",
    "InputError",
    "InputFormat",
    "InputStats",
    "SampleReader",
    "detect_format",
    "input_name",
]
