"""The distributed hot store: tier chunks, the series index and projector state in DynamoDB.

URL: `dynamodb://[KEY:SECRET@]REGION?endpoint=http://127.0.0.1:8000&prefix=argus_&billing=on_demand`
(see `parse_url` for every parameter). Credentials come from the constructor, else the URL's
user info (meant for local servers), else the standard AWS chain (environment, profile,
instance role).

Tables (names `{prefix}[{tenant}_]...`; layout and costs in docs/decisions/0006):
- `chunks_{tier}`, one per tier: partition key `s` (series id, N), sort key `t` (chunk start
  ms, N); `d` the encoded chunk, `p`/`o` the partition and last applied offset, `x` the TTL
  (epoch seconds when the chunk leaves the tier's retention).
- `series_index`: `pk`/`sk` strings holding series items, label postings, label values,
  metrics and tenants, so every index read is a Query on one partition, never a Scan.
- `applied_events`: the projectors' applied event ids (`k` = projector NUL event id), TTL'd.

Exactly-once: a chunk write is a PutItem conditioned on the stored applied offset being
lower than the new one (`attribute_not_exists(o) OR o < :o`); a refused condition is the
no-op the port asks for. Throttling (and unprocessed batch items/keys) is retried with
exponential backoff and full jitter, counted in `stats`. Reads filter out items whose TTL
has passed (DynamoDB deletes them lazily). Retention scans (`delete_before`,
`forget_events_before`) are a backstop for TTL and run at most once per `sweep_interval_s`.

Fresh reads (`fresh_s`, decision 0058): a coarse tier's last `fresh_s` seconds are read from
the finer tiers too, per bucket the view with more samples, so the coarse tiers can be
written every few minutes and still be as fresh as the 5s tier.

Modules: `options` (the URL and its options), `client` (connection, tables, retries, errors),
`chunks`, `series_index`, `applied_events` (one per kind of table), `fresh` (the pure
refresh of a coarse tier from a finer one) and `store` (the three over one connection).
"""

from core.adapters.dynamodb_hot_store.client import (
    BATCH_GET_KEYS,
    BATCH_WRITE_ITEMS,
    CREDENTIAL_CODES,
    THROTTLE_CODES,
    TRANSIENT_CODES,
    DynamoDBAccessDenied,
    DynamoDBConnection,
    DynamoDBStats,
    item_size,
    write_units,
)
from core.adapters.dynamodb_hot_store.options import PARAMETER, DynamoDBOptions, parse_url
from core.adapters.dynamodb_hot_store.store import DynamoDBHotStore

__all__ = [
    "BATCH_GET_KEYS",
    "BATCH_WRITE_ITEMS",
    "CREDENTIAL_CODES",
    "PARAMETER",
    "THROTTLE_CODES",
    "TRANSIENT_CODES",
    "DynamoDBAccessDenied",
    "DynamoDBConnection",
    "DynamoDBHotStore",
    "DynamoDBOptions",
    "DynamoDBStats",
    "item_size",
    "parse_url",
    "write_units",
]
