"""Tier chunks in DynamoDB: one table per tier (`chunks_{tier}`: partition key `s` series id,
sort key `t` chunk start ms; `d` the chunk, `p`/`o` partition and applied offset, `x` TTL).
A write is a PutItem (or TransactWriteItems) conditioned on the stored applied offset being
lower than the new one; a refused condition is the no-op the port asks for."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Final

from botocore.exceptions import ClientError

from core.adapters.dynamodb_hot_store.client import (
    CONDITION_FAILED,
    DynamoDBConnection,
    Item,
    attr_n,
    item_size,
    write_units,
)
from core.adapters.dynamodb_hot_store.fresh import finer_tier, fresh_bounds, stitch
from core.adapters.dynamodb_hot_store.options import PARAMETER
from core.errors import InvalidArgument, StorageError
from core.model import Tier
from core.ports import StoredChunk

# read_range asks for chunk keys directly (BatchGetItem) up to this many chunks per series;
# beyond, one Query per series reads fewer keys that do not exist.
BATCH_READ_MAX_CHUNKS: Final = 8
TRANSACT_ITEMS: Final = 100  # TransactWriteItems limit
TRANSACT_BYTES: Final = 4_000_000  # TransactWriteItems aggregate size limit (4 MB), with headroom
MAX_ITEM_BYTES: Final = 400 * 1024


class ChunkTables(DynamoDBConnection):
    """The HotStore's chunk methods."""

    def _tier(self, tier: str) -> Tier:
        found = self._tiers.get(tier)
        if found is None:
            raise InvalidArgument(f"unknown tier {tier!r} (known: {', '.join(self._tiers)})", parameter="tier")
        return found

    def _chunk_item(self, tier: Tier, c: StoredChunk) -> Item:
        item: Item = {
            "s": attr_n(c.series_id),
            "t": attr_n(c.chunk_start_ms),
            "p": attr_n(c.partition),
            "o": attr_n(c.applied_offset),
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
                passthrough=CONDITION_FAILED,
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
            [{"s": attr_n(sid), "t": attr_n(start)} for sid, start in keys],
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
        """The stored chunks; with `fresh_s`, a coarse tier's last `fresh_s` seconds are
        refreshed from the next finer tier, itself read the same way (fresh.py)."""
        stored = await self._read_stored(tier, series_ids, start_ms, end_ms, chunk_span_ms)
        t = self._tier(tier)
        finer = finer_tier(list(self._tiers.values()), t) if self.options.fresh_window_s else None
        if finer is None or not series_ids:
            return stored
        bounds = fresh_bounds(t, start_ms, end_ms, self._clock_ms(), int(self.options.fresh_window_s * 1000))
        if bounds is None:
            return stored
        lo, hi = bounds
        fine = await self.read_range(finer.name, series_ids, lo, hi, finer.chunk_span_ms)
        # Decoding and re-encoding is CPU work: off the event loop, like the engine's decode.
        return await asyncio.to_thread(stitch, t, stored, fine, lo, hi)

    async def _read_stored(
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
            keys = [{"s": attr_n(sid), "t": attr_n(t)} for sid in series for t in starts]
            items = await self._batch_get(table, keys, what, consistent=False)
            return [self._stored_chunk(i) for i in items if not self._expired(i, now_ms)]

        async def one(sid: int) -> list[Item]:
            return await self._query(
                what,
                TableName=table,
                KeyConditionExpression="#s = :s AND #t BETWEEN :a AND :b",
                ExpressionAttributeNames={"#s": "s", "#t": "t"},
                ExpressionAttributeValues={":s": attr_n(sid), ":a": attr_n(first), ":b": attr_n(end_ms - 1)},
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
            ExpressionAttributeValues={":cut": attr_n(before_ms - chunk_span_ms)},
        )
        await self._batch_write(table, [{"DeleteRequest": {"Key": key}} for key in old], what)
        return len(old)
