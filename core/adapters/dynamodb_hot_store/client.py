"""The connection under every table of the DynamoDB hot store: lifecycle and table creation,
one request under the concurrency bound with retries (throttling, unprocessed items, transient
failures: exponential backoff with full jitter, counted in `stats`), library errors translated
into the `core.errors` tree, batched reads and writes, paged queries and scans, TTL helpers."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

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

from core.adapters.dynamodb_hot_store.options import PARAMETER, DynamoDBOptions
from core.errors import ArgusError, StorageError, Unavailable
from core.model import DEFAULT_TIERS, Tier

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

T = TypeVar("T")
Item = dict[str, Any]  # a DynamoDB item in the low-level attribute-value form

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
CONDITION_FAILED: Final = frozenset({"ConditionalCheckFailedException"})
BATCH_WRITE_ITEMS: Final = 25  # BatchWriteItem limit
BATCH_GET_KEYS: Final = 100  # BatchGetItem limit


class DynamoDBAccessDenied(StorageError):
    """DynamoDB refused the credentials: retrying with the same ones cannot help."""

    retryable = False


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


def attr_n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def attr_s(value: str) -> dict[str, str]:
    return {"S": value}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoDBConnection:
    """What every table of the store shares: options, stats, the client, the concurrency
    bound and the retry policy. The table classes (chunks, series index, applied events)
    build on it; `DynamoDBHotStore` is all three."""

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
            await self._all(self._ensure_table(name, kind) for name, kind in self._tables())
        except BaseException:
            self._client_ref = None
            await stack.aclose()
            raise
        self._stack = stack

    def _tables(self) -> list[tuple[str, str]]:
        """(name, kind) of the tables `start` ensures: the hot store's, unless a store on
        this connection keeps others."""
        o = self.options
        tables = [(o.chunk_table(t), "chunks") for t in self._tiers]
        return [*tables, (o.index_table, "index"), (o.applied_table, "applied")]

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
            try:
                await self._call(
                    f"enable TTL on {name}",
                    lambda: client.update_time_to_live(
                        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "x"}
                    ),
                    passthrough=frozenset({"ValidationException"}),
                )
            except ClientError as exc:
                # Another process starting at the same moment enabled it between our two calls.
                if "already enabled" not in str(exc):
                    raise self._translate(exc, f"enable TTL on {name}") from exc

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
        return attr_n(-(-expires_ms // 1000))
