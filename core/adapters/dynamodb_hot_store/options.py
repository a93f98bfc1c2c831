"""Options of the DynamoDB hot store and the `dynamodb://` URL that sets them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlparse

from core.errors import InvalidArgument

PARAMETER: Final = "hot_store"
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_REGION = re.compile(r"^[a-z0-9-]{2,32}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamoDBOptions:
    """Where the tables live and how the adapter talks to them (see `parse_url`)."""

    region: str
    endpoint_url: str | None = None
    prefix: str = "argus_"
    tenant: str | None = None
    billing: str = "on_demand"  # or "provisioned" with read_units / write_units per table
    read_units: int = 5
    write_units: int = 5
    create_tables: bool = True
    write_mode: str = "put"  # "put": concurrent conditional PutItem; "transact": TransactWriteItems
    max_concurrency: int = 32  # requests in flight per store
    max_attempts: int = 8  # per request, counting the first
    base_delay_ms: int = 25
    max_delay_ms: int = 5_000
    sweep_interval_s: float | None = 86_400.0  # retention scans at most this often; None: TTL only
    applied_event_ttl_s: int = 7 * 86_400
    # Reads refresh a coarse tier's last fresh_window_s seconds from the finer tiers
    # (decision 0058); 0: off. At least the longest coarse tier_flush_interval_ms.
    fresh_window_s: float = 0.0
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)

    @property
    def table_prefix(self) -> str:
        return self.prefix + (f"{self.tenant}_" if self.tenant else "")

    def chunk_table(self, tier: str) -> str:
        return f"{self.table_prefix}chunks_{tier}"

    @property
    def index_table(self) -> str:
        return f"{self.table_prefix}series_index"

    @property
    def applied_table(self) -> str:
        return f"{self.table_prefix}applied_events"


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(f"{PARAMETER}: {message}", parameter=PARAMETER)


_URL_HELP = "expected dynamodb://REGION?endpoint=http://host:port&prefix=argus_&billing=on_demand"


def parse_url(url: str) -> DynamoDBOptions:
    """Options from `dynamodb://[KEY:SECRET@]REGION?param=value&...`.

    Parameters: endpoint (http(s)://host[:port], default: AWS's endpoint of the region),
    prefix (table-name prefix, default argus_), tenant (adds `{tenant}_` to table names),
    billing (on_demand | provisioned), read_units / write_units (provisioned capacity per
    table), create (true | false: create missing tables), write_mode (put | transact),
    concurrency, max_attempts, base_delay_ms, max_delay_ms (throttling retries),
    sweep_s (seconds between retention scans, or `off` to rely on TTL alone), fresh_s
    (seconds: reads of a coarse tier take its last fresh_s seconds from the finer tiers when
    those hold more samples, so coarse tiers may be written rarely; 0, the default: off;
    at most 86400).
    """
    parsed = urlparse(url)
    if parsed.scheme != "dynamodb":
        raise _bad(f"{_URL_HELP}, got {url!r}")
    region = parsed.hostname or ""
    if not _REGION.match(region):
        raise _bad(f"{_URL_HELP}; the region {region!r} is not a region name like us-east-1")
    if parsed.path not in ("", "/"):
        raise _bad(f"{_URL_HELP}; unexpected path {parsed.path!r}")
    params: dict[str, str] = {}
    for key, value in parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=False):
        if key in params:
            raise _bad(f"parameter {key!r} given twice in {url!r}")
        params[key] = value
    options = DynamoDBOptions(
        region=region,
        access_key_id=unquote(parsed.username) if parsed.username else None,
        secret_access_key=unquote(parsed.password) if parsed.password else None,
    )
    changes: dict[str, Any] = {}
    for key, value in params.items():
        if key == "endpoint":
            ep = urlparse(value)
            if ep.scheme not in ("http", "https") or not ep.hostname:
                raise _bad(f"endpoint must be http(s)://host[:port], got {value!r}")
            changes["endpoint_url"] = value
        elif key == "prefix":
            changes["prefix"] = value
        elif key == "tenant":
            if not re.match(r"^[A-Za-z0-9_.-]+$", value):
                raise _bad(f"tenant {value!r} cannot be part of a table name (letters, digits, _ . -)")
            changes["tenant"] = value
        elif key == "billing":
            if value not in ("on_demand", "provisioned"):
                raise _bad(f"billing must be on_demand or provisioned, got {value!r}")
            changes["billing"] = value
        elif key == "write_mode":
            if value not in ("put", "transact"):
                raise _bad(f"write_mode must be put or transact, got {value!r}")
            changes["write_mode"] = value
        elif key == "create":
            if value not in ("true", "false"):
                raise _bad(f"create must be true or false, got {value!r}")
            changes["create_tables"] = value == "true"
        elif key == "fresh_s":
            changes["fresh_window_s"] = _number(key, value, minimum=0)
            if changes["fresh_window_s"] > 86_400:
                raise _bad(f"fresh_s must be <= 86400 (a day), got {value!r}")
        elif key == "sweep_s":
            changes["sweep_interval_s"] = None if value == "off" else _number(key, value, minimum=0)
        elif key in ("read_units", "write_units", "max_attempts", "base_delay_ms", "max_delay_ms"):
            changes[key] = int(_number(key, value, minimum=1))
        elif key == "concurrency":
            changes["max_concurrency"] = int(_number(key, value, minimum=1))
        else:
            raise _bad(f"unknown parameter {key!r} in {url!r} ({_URL_HELP})")
    options = replace(options, **changes)
    for table in (options.index_table, options.applied_table, options.chunk_table("5s")):
        if not _TABLE_NAME.match(table):
            raise _bad(f"prefix {options.prefix!r} gives the table name {table!r}; names take A-Z a-z 0-9 _ . -")
    return options


def _number(key: str, value: str, *, minimum: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _bad(f"{key} must be a number, got {value!r}") from None
    if number < minimum or not math.isfinite(number):
        raise _bad(f"{key} must be >= {minimum:g}, got {value!r}")
    return number
