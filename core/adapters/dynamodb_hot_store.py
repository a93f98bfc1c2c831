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
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlparse

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from core.errors import ArgusError, InvalidArgument, StorageError, Unavailable
from core.model import DEFAULT_TIERS, Tier
from core.ports import LabelFilter, MetricSummary, SeriesRecord, StoredChunk

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

T = TypeVar("T")
Item = dict[str, Any]  # a DynamoDB item in the low-level attribute-value form

PARAMETER: Final = "hot_store"
THROTTLE_CODES: Final = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
TRANSIENT_CODES: Final = frozenset({"InternalServerError", "ServiceUnavailable", "TransactionConflictException"})
CREDENTIAL_CODES: Final = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
        "AccessDeniedException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
_CONNECTION_ERRORS: Final = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)
_CONDITION_FAILED: Final = frozenset({"ConditionalCheckFailedException"})
_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_REGION = re.compile(r"^[a-z0-9-]{2,32}$")
BATCH_WRITE_ITEMS: Final = 25  # BatchWriteItem limit
BATCH_GET_KEYS: Final = 100  # BatchGetItem limit
# read_range asks for chunk keys directly (BatchGetItem) up to this many chunks per series;
# beyond, one Query per series reads fewer keys that do not exist.
BATCH_READ_MAX_CHUNKS: Final = 8
TRANSACT_ITEMS: Final = 100  # TransactWriteItems limit
TRANSACT_BYTES: Final = 4_000_000  # TransactWriteItems aggregate size limit (4 MB), with headroom
MAX_ITEM_BYTES: Final = 400 * 1024


class DynamoDBAccessDenied(StorageError):
    """DynamoDB refused the credentials: retrying with the same ones cannot help."""

    retryable = False


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
    sweep_s (seconds between retention scans, or `off` to rely on TTL alone).
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


@dataclass(slots=True)
class DynamoDBStats:
    """Counters of one store (metric-like: only ever grow)."""

    requests: int = 0
    throttle_retries: int = 0  # ProvisionedThroughputExceeded / Throttling / RequestLimitExceeded
    unprocessed_retries: int = 0  # UnprocessedItems / UnprocessedKeys re-sent
    transient_retries: int = 0  # connection errors, 5xx, transaction conflicts
    conditional_skips: int = 0  # chunk writes refused by the applied-offset condition (no-ops)
    items_written: int = 0
    consumed_write_units: float = 0.0  # as the server reports (ReturnConsumedCapacity=TOTAL)
    consumed_read_units: float = 0.0
    estimated_write_units: float = 0.0  # AWS rule: 1 per started KB per item, x2 in transactions

    @property
    def retries(self) -> int:
        return self.throttle_retries + self.unprocessed_retries + self.transient_retries


def item_size(item: Mapping[str, Any]) -> int:
    """Approximate stored size of an item by AWS's rules (names + values)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if "B" in value:
            size += len(value["B"])
        elif "S" in value:
            size += len(value["S"].encode())
        elif "N" in value:
            size += (len(value["N"].lstrip("-").strip("0") or "0") + 1) // 2 + 1
        else:
            size += 1
    return size


def write_units(item: Mapping[str, Any]) -> int:
    return max(1, math.ceil(item_size(item) / 1024))


def _key(*parts: str) -> str:
    """An unambiguous string key from parts (label names and values may hold any character)."""
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoDBHotStore:
    """HotStore on DynamoDB (`dynamodb://REGION?...`)."""

    def __init__(
        self,
        options: DynamoDBOptions,
        *,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.options = options
        self._tiers = {t.name: t for t in tiers}
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.stats = DynamoDBStats()
        self._stack: AsyncExitStack | None = None
        self._client_ref: DynamoDBClient | None = None
        self._limit = asyncio.Semaphore(options.max_concurrency)
        self._last_sweep: dict[str, float] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        clock_ms: Callable[[], int] | None = None,
        **overrides: Any,
    ) -> DynamoDBHotStore:
        options = parse_url(url)
        if access_key_id is not None:
            overrides["access_key_id"] = access_key_id
        if secret_access_key is not None:
            overrides["secret_access_key"] = secret_access_key
        return cls(replace(options, **overrides), tiers=tiers, clock_ms=clock_ms)

    @property
    def client(self) -> DynamoDBClient:
        """The aiobotocore client (after start): tests hook its events to inject faults."""
        if self._client_ref is None:
            raise StorageError("hot store: DynamoDB store used before start()")
        return self._client_ref

    @property
    def where(self) -> str:
        return self.options.endpoint_url or f"the AWS endpoint of {self.options.region}"

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        o = self.options
        session = aioboto3.Session(
            aws_access_key_id=o.access_key_id, aws_secret_access_key=o.secret_access_key, region_name=o.region
        )
        config = AioConfig(
            # Retries are ours (counted, with full jitter); botocore's would hide throttling.
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=o.max_concurrency,
            connect_timeout=5,
            read_timeout=30,
        )
        stack = AsyncExitStack()
        try:
            self._client_ref = await stack.enter_async_context(
                session.client("dynamodb", endpoint_url=o.endpoint_url, config=config)
            )
            # One unretried call first: a wrong endpoint or key fails here, clearly and fast.
            await self._once("connect", lambda: self.client.list_tables(Limit=1))
            tables = [(o.chunk_table(t), "chunks") for t in self._tiers]
            tables += [(o.index_table, "index"), (o.applied_table, "applied")]
            await self._all(self._ensure_table(name, kind) for name, kind in tables)
        except BaseException:
            self._client_ref = None
            await stack.aclose()
            raise
        self._stack = stack

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client_ref = self._stack, None, None
            await stack.aclose()

    async def _ensure_table(self, name: str, kind: str) -> None:
        client = self.client
        try:
            status = (await self._once(f"describe table {name}", lambda: client.describe_table(TableName=name)))[
                "Table"
            ].get("TableStatus")
        except StorageError as exc:
            if not isinstance(exc.__cause__, ClientError) or _code(exc.__cause__) != "ResourceNotFoundException":
                raise
            status = None
        if status is None:
            if not self.options.create_tables:
                raise StorageError(f"{PARAMETER}: table {name} does not exist at {self.where} and create=false")
            await self._create_table(name, kind)
        if status != "ACTIVE":
            waiter = client.get_waiter("table_exists")
            await waiter.wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        # Control-plane calls are throttled too (many processes starting at once): retried.
        ttl = await self._call(f"describe TTL of {name}", lambda: client.describe_time_to_live(TableName=name))
        if ttl["TimeToLiveDescription"].get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            await self._call(
                f"enable TTL on {name}",
                lambda: client.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "x"}
                ),
            )

    async def _create_table(self, name: str, kind: str) -> None:
        if kind == "chunks":
            keys = [("s", "HASH", "N"), ("t", "RANGE", "N")]
        elif kind == "index":
            keys = [("pk", "HASH", "S"), ("sk", "RANGE", "S")]
        else:
            keys = [("k", "HASH", "B")]
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": [{"AttributeName": a, "KeyType": k} for a, k, _ in keys],
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": t} for a, _, t in keys],
        }
        if self.options.billing == "provisioned":
            request["BillingMode"] = "PROVISIONED"
            request["ProvisionedThroughput"] = {
                "ReadCapacityUnits": self.options.read_units,
                "WriteCapacityUnits": self.options.write_units,
            }
        else:
            request["BillingMode"] = "PAY_PER_REQUEST"
        try:
            await self._once(f"create table {name}", lambda: self.client.create_table(**request))
        except StorageError as exc:
            # Another process created it first: fine, wait for it like our own.
            if not isinstance(exc.__cause__, ClientError) or _code(exc.__cause__) != "ResourceInUseException":
                raise

    # -- calls, retries, errors -----------------------------------------------------

    def _translate(self, exc: Exception, what: str) -> ArgusError:
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return DynamoDBAccessDenied(
                f"{PARAMETER}: {what}: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE), or pass them to the store"
            )
        if isinstance(exc, _CONNECTION_ERRORS):
            return Unavailable(f"{PARAMETER}: {what}: cannot reach DynamoDB at {self.where}: {exc}")
        if isinstance(exc, ClientError):
            code = _code(exc)
            message = exc.response.get("Error", {}).get("Message", "")
            if code in CREDENTIAL_CODES:
                key = self.options.access_key_id or "from the AWS credential chain"
                return DynamoDBAccessDenied(
                    f"{PARAMETER}: {what}: DynamoDB at {self.where} refused the credentials "
                    f"(access key id {key}): {code}: {message}"
                )
            return StorageError(f"{PARAMETER}: {what}: DynamoDB {code}: {message}")
        return StorageError(f"{PARAMETER}: {what}: {exc}")

    async def _once(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """One call, no retry, library errors translated."""
        try:
            self.stats.requests += 1
            return await op()
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, what) from exc

    async def _backoff(self, attempt: int) -> None:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)] (AWS architecture blog)."""
        cap = min(self.options.max_delay_ms, self.options.base_delay_ms * 2**attempt)
        await asyncio.sleep(random.uniform(0, cap) / 1000)

    def _give_up(self, what: str, why: str, attempts: int) -> Unavailable:
        return Unavailable(f"{PARAMETER}: {what}: DynamoDB still {why} after {attempts} attempts")

    async def _call(self, what: str, op: Callable[[], Awaitable[T]], *, passthrough: frozenset[str] = frozenset()) -> T:
        """One request under the concurrency bound, retried on throttling and transient
        failures. ClientErrors whose code is in `passthrough` reach the caller as they are."""
        attempt = 0
        while True:
            why = ""
            try:
                async with self._limit:
                    self.stats.requests += 1
                    return await op()
            except ClientError as exc:
                code = _code(exc)
                if code in passthrough:
                    raise
                if code in THROTTLE_CODES:
                    why, self.stats.throttle_retries = "throttled", self.stats.throttle_retries + 1
                elif code in TRANSIENT_CODES:
                    why, self.stats.transient_retries = code, self.stats.transient_retries + 1
                else:
                    raise self._translate(exc, what) from exc
                last: Exception = exc
            except _CONNECTION_ERRORS as exc:
                why, self.stats.transient_retries = "unreachable", self.stats.transient_retries + 1
                last = exc
            except BotoCoreError as exc:
                raise self._translate(exc, what) from exc
            attempt += 1
            if attempt >= self.options.max_attempts:
                raise self._give_up(what, why, attempt) from last
            await self._backoff(attempt)

    async def _all(self, coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
        """Run concurrently (each request still takes the semaphore); the first failure
        cancels the rest and is raised as itself, not as an ExceptionGroup."""
        tasks: list[asyncio.Task[T]] = []
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(c) for c in coros]
        except BaseExceptionGroup as failed:
            first = failed.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from first.__cause__
        return [t.result() for t in tasks]

    def _account(self, response: Mapping[str, Any], *, write: bool) -> None:
        consumed = response.get("ConsumedCapacity") or []
        units = sum(c.get("CapacityUnits", 0.0) for c in (consumed if isinstance(consumed, list) else [consumed]))
        if write:
            self.stats.consumed_write_units += units
        else:
            self.stats.consumed_read_units += units

    async def _batch_write(self, table: str, requests: Sequence[Item], what: str) -> None:
        """BatchWriteItem in groups of 25, concurrently; unprocessed items are re-sent."""

        async def one(group: list[Item]) -> None:
            attempt = 0
            while group:
                batch = group
                response = await self._call(
                    what,
                    partial(
                        self.client.batch_write_item,
                        RequestItems={table: batch},  # type: ignore[dict-item]
                        ReturnConsumedCapacity="TOTAL",
                    ),
                )
                self._account(response, write=True)
                left: list[Item] = list(response.get("UnprocessedItems", {}).get(table, []))  # type: ignore[arg-type]
                done = [r for r in batch if r not in left] if left else batch
                for r in done:
                    if "PutRequest" in r:
                        self.stats.estimated_write_units += write_units(r["PutRequest"]["Item"])
                        self.stats.items_written += 1
                    else:
                        self.stats.estimated_write_units += 1  # a delete costs by the old item's size, >= 1
                if not left:
                    return
                attempt += 1
                self.stats.unprocessed_retries += 1
                if attempt >= self.options.max_attempts:
                    raise self._give_up(what, f"left {len(left)} items unprocessed", attempt)
                await self._backoff(attempt)
                group = left

        items = list(requests)
        await self._all(one(items[i : i + BATCH_WRITE_ITEMS]) for i in range(0, len(items), BATCH_WRITE_ITEMS))

    async def _batch_get(
        self, table: str, keys: Sequence[Item], what: str, *, consistent: bool, projection: str | None = None
    ) -> list[Item]:
        """BatchGetItem in groups of 100, concurrently; unprocessed keys are asked again."""

        async def one(group: list[Item]) -> list[Item]:
            found: list[Item] = []
            attempt = 0
            while group:
                request: dict[str, Any] = {"Keys": group, "ConsistentRead": consistent}
                if projection:
                    request["ProjectionExpression"] = projection
                response = await self._call(
                    what,
                    partial(
                        self.client.batch_get_item,
                        RequestItems={table: request},  # type: ignore[dict-item]
                        ReturnConsumedCapacity="TOTAL",
                    ),
                )
                self._account(response, write=False)
                found.extend(response.get("Responses", {}).get(table, []))
                unprocessed: Any = response.get("UnprocessedKeys", {})
                left: list[Item] = list(unprocessed.get(table, {}).get("Keys", []))
                if not left:
                    break
                attempt += 1
                self.stats.unprocessed_retries += 1
                if attempt >= self.options.max_attempts:
                    raise self._give_up(what, f"left {len(left)} keys unprocessed", attempt)
                await self._backoff(attempt)
                group = left
            return found

        # BatchGetItem refuses a request that names a key twice. Key attributes are scalars
        # ({"N": "..."}, {"S": "..."}, {"B": b"..."}), so their items are hashable as they are.
        unique = list({tuple((n, *a.items()) for n, a in sorted(k.items())): k for k in keys}.values())
        parts = await self._all(one(unique[i : i + BATCH_GET_KEYS]) for i in range(0, len(unique), BATCH_GET_KEYS))
        return [item for part in parts for item in part]

    async def _pages(self, what: str, operation: str, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every page of a Query or Scan (`operation`), capacity accounted."""
        call: Callable[..., Awaitable[Any]] = self.client.query if operation == "query" else self.client.scan
        start: Item | None = None
        while True:
            page = dict(request, ReturnConsumedCapacity="TOTAL")
            if start is not None:
                page["ExclusiveStartKey"] = start
            response: dict[str, Any] = await self._call(what, partial(call, **page))
            self._account(response, write=False)
            yield response
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    async def _query(self, what: str, **request: Any) -> list[Item]:
        """Every item of a Query."""
        return [item async for page in self._pages(what, "query", request) for item in page.get("Items", [])]

    async def _count(self, what: str, **request: Any) -> int:
        return sum(
            [int(page.get("Count", 0)) async for page in self._pages(what, "query", dict(request, Select="COUNT"))]
        )

    async def _scan(self, what: str, **request: Any) -> list[Item]:
        return [item async for page in self._pages(what, "scan", request) for item in page.get("Items", [])]

    def _sweep_due(self, what: str) -> bool:
        """Retention scans read a whole table: TTL does the work, scans are a bounded backstop."""
        interval = self.options.sweep_interval_s
        if interval is None:
            return False
        now = time.monotonic()
        last = self._last_sweep.get(what)
        if last is not None and now - last < interval:
            return False
        self._last_sweep[what] = now
        return True

    def _expired(self, item: Mapping[str, Any], now_ms: int) -> bool:
        x = item.get("x")
        return x is not None and int(x["N"]) * 1000 <= now_ms

    def _ttl(self, expires_ms: int) -> dict[str, str] | None:
        """TTL value, or None for an item that would be born expired: such an item (a
        backfill older than retention) stays until delete_before, like in the SQLite store,
        instead of vanishing at a time no reader can predict."""
        if expires_ms <= self._clock_ms():
            return None
        return _n(-(-expires_ms // 1000))

    # -- chunks ---------------------------------------------------------------------

    def _tier(self, tier: str) -> Tier:
        found = self._tiers.get(tier)
        if found is None:
            raise InvalidArgument(f"unknown tier {tier!r} (known: {', '.join(self._tiers)})", parameter="tier")
        return found

    def _chunk_item(self, tier: Tier, c: StoredChunk) -> Item:
        item: Item = {
            "s": _n(c.series_id),
            "t": _n(c.chunk_start_ms),
            "p": _n(c.partition),
            "o": _n(c.applied_offset),
            "d": {"B": c.data},
        }
        ttl = self._ttl(c.chunk_start_ms + tier.chunk_span_ms + tier.retention_ms)
        if ttl is not None:
            item["x"] = ttl
        if item_size(item) > MAX_ITEM_BYTES:
            raise StorageError(
                f"{PARAMETER}: chunk of series {c.series_id} at {c.chunk_start_ms} in tier {tier.name} is "
                f"{len(c.data)} bytes, over DynamoDB's 400 KB item limit"
            )
        return item

    async def write_chunks(self, tier: str, chunks: Sequence[StoredChunk]) -> None:
        """Conditional upserts: an item is replaced only by a higher applied offset."""
        if not chunks:
            return
        t = self._tier(tier)
        table = self.options.chunk_table(tier)
        # One request per key: the highest offset wins, the first of equals (as in SQLite).
        latest: dict[tuple[int, int], StoredChunk] = {}
        for c in chunks:
            held = latest.get((c.series_id, c.chunk_start_ms))
            if held is None or c.applied_offset > held.applied_offset:
                latest[(c.series_id, c.chunk_start_ms)] = c
        items = [self._chunk_item(t, c) for c in latest.values()]
        what = f"write {len(items)} chunks of tier {tier}"
        if self.options.write_mode == "transact":
            await self._write_transact(table, items, what)
        else:
            await self._all(self._put_chunk(table, item, what) for item in items)

    async def _put_chunk(self, table: str, item: Item, what: str) -> None:
        units = write_units(item)
        try:
            response = await self._call(
                what,
                lambda: self.client.put_item(
                    TableName=table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(#o) OR #o < :o",
                    ExpressionAttributeNames={"#o": "o"},
                    ExpressionAttributeValues={":o": item["o"]},
                    ReturnConsumedCapacity="TOTAL",
                ),
                passthrough=_CONDITION_FAILED,
            )
        except ClientError:
            # Stored offset is already >= ours: the write is a no-op (a failed condition
            # still costs write units in AWS).
            self.stats.conditional_skips += 1
            self.stats.estimated_write_units += units
            return
        self._account(response, write=True)
        self.stats.estimated_write_units += units
        self.stats.items_written += 1

    async def _write_transact(self, table: str, items: list[Item], what: str) -> None:
        groups: list[list[Item]] = [[]]
        size = 0
        for item in items:
            bytes_ = item_size(item)
            if len(groups[-1]) >= TRANSACT_ITEMS or size + bytes_ > TRANSACT_BYTES:
                groups.append([])
                size = 0
            groups[-1].append(item)
            size += bytes_
        await self._all(self._transact_group(table, g, what) for g in groups if g)

    async def _transact_group(self, table: str, group: list[Item], what: str) -> None:
        attempt = 0
        while group:
            pending = group
            request: list[Any] = [
                {
                    "Put": {
                        "TableName": table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(#o) OR #o < :o",
                        "ExpressionAttributeNames": {"#o": "o"},
                        "ExpressionAttributeValues": {":o": item["o"]},
                    }
                }
                for item in pending
            ]
            try:
                response = await self._call(
                    what,
                    partial(
                        self.client.transact_write_items,
                        TransactItems=request,
                        ReturnConsumedCapacity="TOTAL",
                    ),
                    passthrough=frozenset({"TransactionCanceledException"}),
                )
            except ClientError as exc:
                # All or nothing: drop the items whose condition failed (no-ops), resend the rest.
                error: Any = exc.response
                reasons = error.get("CancellationReasons", [])
                codes = [str(r.get("Code", "None")) for r in reasons] or ["None"] * len(pending)
                self.stats.estimated_write_units += 2 * sum(write_units(i) for i in pending)
                group = [i for i, code in zip(pending, codes, strict=False) if code != "ConditionalCheckFailed"]
                self.stats.conditional_skips += len(pending) - len(group)
                if any(code not in ("None", "ConditionalCheckFailed") for code in codes):
                    attempt += 1
                    self.stats.transient_retries += 1
                    if attempt >= self.options.max_attempts:
                        raise self._give_up(
                            what, f"cancelled the transaction ({', '.join(set(codes))})", attempt
                        ) from exc
                    await self._backoff(attempt)
                continue
            self._account(response, write=True)
            self.stats.estimated_write_units += 2 * sum(write_units(i) for i in pending)
            self.stats.items_written += len(pending)
            return

    def _stored_chunk(self, item: Mapping[str, Any]) -> StoredChunk:
        return StoredChunk(
            series_id=int(item["s"]["N"]),
            chunk_start_ms=int(item["t"]["N"]),
            data=bytes(item["d"]["B"]),
            partition=int(item["p"]["N"]),
            applied_offset=int(item["o"]["N"]),
        )

    async def get_chunks(self, tier: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredChunk]:
        if not keys:
            return {}
        self._tier(tier)
        # Consistent reads: a projector resuming after a crash must see the last write,
        # or it would merge into a stale chunk and overwrite the newer one.
        items = await self._batch_get(
            self.options.chunk_table(tier),
            [{"s": _n(sid), "t": _n(start)} for sid, start in keys],
            f"get {len(keys)} chunks of tier {tier}",
            consistent=True,
        )
        now_ms = self._clock_ms()
        out: dict[tuple[int, int], StoredChunk] = {}
        for item in items:
            if not self._expired(item, now_ms):
                c = self._stored_chunk(item)
                out[(c.series_id, c.chunk_start_ms)] = c
        return out

    async def read_range(
        self, tier: str, series_ids: Sequence[int], start_ms: int, end_ms: int, chunk_span_ms: int
    ) -> list[StoredChunk]:
        if not series_ids:
            return []
        self._tier(tier)
        first = start_ms - start_ms % chunk_span_ms
        if end_ms - 1 < first:
            return []
        table = self.options.chunk_table(tier)
        what = f"read tier {tier} range"
        series = list(dict.fromkeys(series_ids))
        starts = range(first, end_ms, chunk_span_ms)
        now_ms = self._clock_ms()
        if len(starts) <= BATCH_READ_MAX_CHUNKS:
            # The chunk keys are known: BatchGetItem asks for 100 per request where a Query
            # per series costs one request each (1,000 series: 10-20 requests, not 1,000).
            keys = [{"s": _n(sid), "t": _n(t)} for sid in series for t in starts]
            items = await self._batch_get(table, keys, what, consistent=False)
            return [self._stored_chunk(i) for i in items if not self._expired(i, now_ms)]

        async def one(sid: int) -> list[Item]:
            return await self._query(
                what,
                TableName=table,
                KeyConditionExpression="#s = :s AND #t BETWEEN :a AND :b",
                ExpressionAttributeNames={"#s": "s", "#t": "t"},
                ExpressionAttributeValues={":s": _n(sid), ":a": _n(first), ":b": _n(end_ms - 1)},
            )

        parts = await self._all(one(sid) for sid in series)
        return [self._stored_chunk(i) for part in parts for i in part if not self._expired(i, now_ms)]

    async def delete_before(self, tier: str, before_ms: int, chunk_span_ms: int) -> int:
        self._tier(tier)
        table = self.options.chunk_table(tier)
        if not self._sweep_due(table):
            return 0
        what = f"apply retention to tier {tier}"
        old = await self._scan(
            what,
            TableName=table,
            FilterExpression="#t <= :cut",
            ProjectionExpression="#s, #t",
            ExpressionAttributeNames={"#s": "s", "#t": "t"},
            ExpressionAttributeValues={":cut": _n(before_ms - chunk_span_ms)},
        )
        await self._batch_write(table, [{"DeleteRequest": {"Key": key}} for key in old], what)
        return len(old)

    # -- series index ---------------------------------------------------------------
    #
    # pk                                   sk            what
    # ["s", tenant, metric]                series id     the series (kind k, region r, labels lb, first f, last l)
    # ["p", tenant, metric, name, value]   series id     posting: the series has name=value
    # ["v", tenant, name]                  value         a value of the label in the tenant
    # ["mv", tenant, metric, name]         value         a value of the label in the metric
    # ["m", tenant]                        metric        a metric of the tenant (kind k: the smallest seen)
    # ["t"]                                tenant        a tenant
    #
    # A new series writes its postings, values, metric and tenant first, the series item
    # last with a not-exists condition: the series item is the commit mark, so a crash in
    # between leaves only idempotent items that re-delivery completes.

    async def upsert_series(self, records: Sequence[SeriesRecord]) -> None:
        if not records:
            return
        merged: dict[tuple[str, int], SeriesRecord] = {}
        for r in records:
            held = merged.get((r.tenant, r.series_id))
            if held is not None:
                r = replace(
                    held,
                    first_seen_ms=min(held.first_seen_ms, r.first_seen_ms),
                    last_seen_ms=max(held.last_seen_ms, r.last_seen_ms),
                )
            merged[(r.tenant, r.series_id)] = r
        table = self.options.index_table
        what = f"upsert {len(merged)} series"
        stored = await self._batch_get(
            table,
            [{"pk": _s(_key("s", r.tenant, r.metric)), "sk": _s(str(r.series_id))} for r in merged.values()],
            what,
            consistent=False,
            projection="pk, sk, f, l",
        )
        seen = {(json.loads(i["pk"]["S"])[1], int(i["sk"]["S"])): (int(i["f"]["N"]), int(i["l"]["N"])) for i in stored}
        new = [r for key, r in merged.items() if key not in seen]
        known = [(r, seen[key]) for key, r in merged.items() if key in seen]

        side: dict[tuple[str, str], Item] = {}
        kinds: dict[tuple[str, str], int] = {}
        for r in new:
            sid = str(r.series_id)
            for name, value in (*r.labels, ("region", r.region)):
                for pk, sk in (
                    (_key("p", r.tenant, r.metric, name, value), sid),
                    (_key("v", r.tenant, name), value),
                    (_key("mv", r.tenant, r.metric, name), value),
                ):
                    side[(pk, sk)] = {"pk": _s(pk), "sk": _s(sk)}
            side[(_key("t"), r.tenant)] = {"pk": _s(_key("t")), "sk": _s(r.tenant)}
            kinds[(r.tenant, r.metric)] = min(r.kind, kinds.get((r.tenant, r.metric), r.kind))
        await self._batch_write(table, [{"PutRequest": {"Item": i}} for i in side.values()], what)
        await self._all(self._note_metric(tenant, metric, kind, what) for (tenant, metric), kind in kinds.items())
        inserted_flags = await self._all(self._insert_series(r, what) for r in new)
        raced = [r for r, inserted in zip(new, inserted_flags, strict=True) if not inserted]
        await self._all(self._widen(r, cur, what) for r, cur in known)
        await self._all(self._widen(r, None, what) for r in raced)

    async def _note_metric(self, tenant: str, metric: str, kind: int, what: str) -> None:
        try:
            await self._call(
                what,
                lambda: self.client.update_item(
                    TableName=self.options.index_table,
                    Key={"pk": _s(_key("m", tenant)), "sk": _s(metric)},
                    UpdateExpression="SET #k = :k",
                    ConditionExpression="attribute_not_exists(#k) OR #k > :k",
                    ExpressionAttributeNames={"#k": "k"},
                    ExpressionAttributeValues={":k": _n(kind)},
                ),
                passthrough=_CONDITION_FAILED,
            )
        except ClientError:
            return  # a kind <= ours is stored already

    async def _insert_series(self, r: SeriesRecord, what: str) -> bool:
        """Put the series item unless it exists; False when another writer got there first."""
        item: Item = {
            "pk": _s(_key("s", r.tenant, r.metric)),
            "sk": _s(str(r.series_id)),
            "k": _n(r.kind),
            "r": _s(r.region),
            "lb": _s(json.dumps(r.labels, ensure_ascii=False, separators=(",", ":"))),
            "f": _n(r.first_seen_ms),
            "l": _n(r.last_seen_ms),
        }
        try:
            response = await self._call(
                what,
                lambda: self.client.put_item(
                    TableName=self.options.index_table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnConsumedCapacity="TOTAL",
                ),
                passthrough=_CONDITION_FAILED,
            )
        except ClientError:
            return False
        self._account(response, write=True)
        self.stats.estimated_write_units += write_units(item)
        self.stats.items_written += 1
        return True

    async def _widen(self, r: SeriesRecord, current: tuple[int, int] | None, what: str) -> None:
        """Widen first/last seen without ever narrowing: the update holds only while the
        stored range is inside ours; a concurrent wider write makes us re-read and retry."""
        key = {"pk": _s(_key("s", r.tenant, r.metric)), "sk": _s(str(r.series_id))}
        for _ in range(self.options.max_attempts):
            if current is None:
                got = await self._call(
                    what,
                    lambda: self.client.get_item(
                        TableName=self.options.index_table, Key=key, ConsistentRead=True, ProjectionExpression="f, l"
                    ),
                )
                found = got.get("Item")
                if found is None:
                    raise StorageError(f"{PARAMETER}: {what}: series {r.series_id} vanished while being widened")
                current = (int(found["f"]["N"]), int(found["l"]["N"]))
            first, last = min(current[0], r.first_seen_ms), max(current[1], r.last_seen_ms)
            if (first, last) == current:
                return
            try:
                await self._call(
                    what,
                    partial(
                        self.client.update_item,
                        TableName=self.options.index_table,
                        Key=key,
                        UpdateExpression="SET f = :f, l = :l",
                        ConditionExpression="f >= :f AND l <= :l",
                        ExpressionAttributeValues={":f": _n(first), ":l": _n(last)},
                    ),
                    passthrough=_CONDITION_FAILED,
                )
                self.stats.estimated_write_units += 1
                return
            except ClientError:
                current = None
        raise self._give_up(what, f"racing on series {r.series_id}", self.options.max_attempts)

    def _series(self, tenant: str, metric: str, item: Mapping[str, Any]) -> SeriesRecord:
        return SeriesRecord(
            tenant=tenant,
            series_id=int(item["sk"]["S"]),
            metric=metric,
            kind=int(item["k"]["N"]),
            region=str(item["r"]["S"]),
            labels=tuple((str(k), str(v)) for k, v in json.loads(item["lb"]["S"])),
            first_seen_ms=int(item["f"]["N"]),
            last_seen_ms=int(item["l"]["N"]),
        )

    async def _partition(self, what: str, pk: str, projection: str | None = None) -> list[Item]:
        request: dict[str, Any] = {
            "TableName": self.options.index_table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(pk)},
        }
        if projection:
            request["ProjectionExpression"] = projection
        return await self._query(what, **request)

    async def find_series(self, tenant: str, metric: str, where: LabelFilter | None = None) -> list[SeriesRecord]:
        equal = dict(where.equal) if where else {}
        what = f"find series of {metric}"
        if not equal:
            items = await self._partition(what, _key("s", tenant, metric))
        else:
            postings = await self._all(
                self._partition(what, _key("p", tenant, metric, name, value), "sk") for name, value in equal.items()
            )
            ids = set.intersection(*({i["sk"]["S"] for i in part} for part in postings))
            if not ids:
                return []
            pk = _s(_key("s", tenant, metric))
            items = await self._batch_get(
                self.options.index_table, [{"pk": pk, "sk": _s(i)} for i in ids], what, consistent=False
            )
        return sorted((self._series(tenant, metric, i) for i in items), key=lambda s: s.series_id)

    async def _metrics(self, tenant: str, what: str) -> list[tuple[str, int]]:
        return [(i["sk"]["S"], int(i["k"]["N"])) for i in await self._partition(what, _key("m", tenant))]

    async def list_metrics(self, tenant: str) -> list[MetricSummary]:
        what = "list metrics"
        metrics = await self._metrics(tenant, what)
        counts = await self._all(
            self._count(
                what,
                TableName=self.options.index_table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _s(_key("s", tenant, name))},
            )
            for name, _ in metrics
        )
        return sorted(
            (
                MetricSummary(name=name, kind=kind, series_count=n)
                for (name, kind), n in zip(metrics, counts, strict=True)
                if n
            ),
            key=lambda m: m.name,
        )

    async def label_values(self, tenant: str, label: str, metric: str | None = None) -> list[str]:
        pk = _key("mv", tenant, metric, label) if metric else _key("v", tenant, label)
        items = await self._partition(f"list values of label {label}", pk, "sk")
        return sorted(str(i["sk"]["S"]) for i in items)

    async def tenant_series(self, tenant: str | None = None) -> list[SeriesRecord]:
        what = "list series"
        tenants = [tenant] if tenant is not None else [i["sk"]["S"] for i in await self._partition(what, _key("t"))]
        out: list[SeriesRecord] = []
        for t in tenants:
            metrics = await self._metrics(t, what)
            parts = await self._all(self._partition(what, _key("s", t, name)) for name, _ in metrics)
            out.extend(self._series(t, name, i) for (name, _), part in zip(metrics, parts, strict=True) for i in part)
        return out

    # -- projector state ------------------------------------------------------------

    @staticmethod
    def _event_key(projector: str, event_id: bytes) -> bytes:
        return projector.encode() + b"\x00" + event_id

    async def filter_new_events(self, projector: str, event_ids: Sequence[bytes]) -> set[bytes]:
        if not event_ids:
            return set()
        prefix = len(projector.encode()) + 1
        items = await self._batch_get(
            self.options.applied_table,
            [{"k": {"B": self._event_key(projector, e)}} for e in event_ids],
            f"check applied events of {projector}",
            consistent=True,
            projection="k, x",
        )
        now_ms = self._clock_ms()
        seen = {bytes(i["k"]["B"])[prefix:] for i in items if not self._expired(i, now_ms)}
        return set(event_ids) - seen

    async def record_events(self, projector: str, event_ids: Sequence[bytes], time_ms: int) -> None:
        items: dict[bytes, Item] = {}
        ttl = self._ttl(time_ms + self.options.applied_event_ttl_s * 1000)
        for e in event_ids:
            key = self._event_key(projector, e)
            item: Item = {"k": {"B": key}, "pj": _s(projector), "tm": _n(time_ms)}
            if ttl is not None:
                item["x"] = ttl
            items[key] = item
        await self._batch_write(
            self.options.applied_table,
            [{"PutRequest": {"Item": i}} for i in items.values()],
            f"record applied events of {projector}",
        )

    async def forget_events_before(self, projector: str, time_ms: int) -> int:
        table = self.options.applied_table
        if not self._sweep_due(f"{table}/{projector}"):
            return 0
        what = f"forget old applied events of {projector}"
        old = await self._scan(
            what,
            TableName=table,
            FilterExpression="pj = :p AND tm < :t",
            ProjectionExpression="k",
            ExpressionAttributeValues={":p": _s(projector), ":t": _n(time_ms)},
        )
        await self._batch_write(table, [{"DeleteRequest": {"Key": key}} for key in old], what)
        return len(old)
