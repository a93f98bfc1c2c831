"""AlertReadModelStore on DynamoDB: the alert read models of a distributed deployment, in one
table beside the hot store's (`{prefix}alert_read_models`, same URL, same connection code).
Layout, batching and crash behaviour: docs/decisions/0059-dynamodb-alert-read-models.md.

Items (`pk`/`sk` strings; `pk` a JSON array, so tenants, rules and ids may hold any character):

    pk                                 sk                     what
    ["i", space, tenant]               instance id            the instance (by id)
    ["s", space, tenant, state]        ["rule","instance"]    a copy of it, listed under its state
    ["a", space, tenant]               instance id            its newest ack
    ["h", space, tenant]               time.partition.offset  a timeline entry (sk sorts as the port's order)
    ["p", space]                       partition              the next offset to read
    ["meta"]                           "source"               the space of the event log now projected

`space` is a hash of the source event log's URL: models projected from another log are in
another key space, and the one of a replaced source is deleted at start (as the SQLite store
empties itself). Every read is a consistent GetItem/Query on one partition key, never a Scan.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final

import orjson
from botocore.exceptions import ClientError

from core.adapters.dynamodb_hot_store import (
    PARAMETER,
    DynamoDBConnection,
    DynamoDBOptions,
    item_size,
    parse_url,
    write_units,
)
from core.adapters.dynamodb_hot_store.client import CONDITION_FAILED, Item, attr_n, attr_s
from core.errors import StorageError
from core.ports import AlertModelBatch, StoredAck, StoredAlertInstance, StoredHistoryEntry

log = logging.getLogger(__name__)

TRANSACT_ITEMS: Final = 100  # TransactWriteItems limit
TRANSACT_BYTES: Final = 3_500_000  # its 4 MB aggregate limit, with headroom for the size estimate
_META = ("meta",)
_CANCELLED: Final = frozenset({"TransactionCanceledException"})
_RETRIED: Final = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_MIN_TIME = -(2**63)


def _key(*parts: str) -> str:
    """An unambiguous string key (tenants, rules and ids may hold any character)."""
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def _space(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _entry_sk(time_ms: int, partition: int, offset: int) -> str:
    # Fixed width, so string order is (time, partition, offset) order; time may be negative.
    return f"{time_ms - _MIN_TIME:020d}.{partition:010d}.{offset:020d}"


@dataclass(frozen=True, slots=True)
class _Held:
    """What apply needs of a stored instance: its sequence and where its listing copy is."""

    sequence: int
    state: str
    rule: str


@dataclass(slots=True)
class _Unit:
    """Writes that must land together (one instance's item and listing copies), with how to
    redo them when their condition fails: `instance` set means re-read and rebuild; unset,
    the failed condition means a newer or equal value is stored, so the unit is a no-op."""

    ops: list[Item]
    instance: StoredAlertInstance | None = None

    @property
    def size(self) -> int:
        return sum(item_size(next(iter(op.values())).get("Item") or {}) for op in self.ops)


class DynamoDBAlertReadModels(DynamoDBConnection):
    """`source`: the event log URL the models are projected from (see the module docstring)."""

    def __init__(self, options: DynamoDBOptions, *, source: str = "") -> None:
        super().__init__(options, tiers=())
        self.table = f"{options.table_prefix}alert_read_models"
        self._source = source
        self._space = _space(source)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        source: str = "",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        **overrides: Any,
    ) -> DynamoDBAlertReadModels:
        """The hot store's `dynamodb://` URL: same region, endpoint, prefix and credentials."""
        if access_key_id is not None:
            overrides["access_key_id"] = access_key_id
        if secret_access_key is not None:
            overrides["secret_access_key"] = secret_access_key
        return cls(replace(parse_url(url), **overrides), source=source)

    # -- lifecycle ------------------------------------------------------------------

    def _tables(self) -> list[tuple[str, str]]:
        # Only its own table (the connection's pk/sk string kind); the hot store's are the
        # hot store's to create.
        return [(self.table, "index")]

    async def start(self) -> None:
        await super().start()
        try:
            await self._check_source()
        except BaseException:
            await self.close()
            raise

    async def _check_source(self) -> None:
        # Only the source's hash is stored: an event-log URL may carry credentials.
        meta = {"pk": attr_s(_key(*_META)), "sk": attr_s("source")}
        while True:
            got = await self._call(
                "read the alert read models' source",
                partial(self.client.get_item, TableName=self.table, Key=meta, ConsistentRead=True),
            )
            held = got.get("Item")
            stored = None if held is None else str(held["sp"]["S"])
            if stored == self._space:
                return
            item = dict(meta, sp=attr_s(self._space))
            condition: dict[str, Any] = (
                {"ConditionExpression": "attribute_not_exists(pk)"}
                if stored is None
                else {"ConditionExpression": "sp = :old", "ExpressionAttributeValues": {":old": attr_s(stored)}}
            )
            try:
                await self._call(
                    "record the alert read models' source",
                    partial(self.client.put_item, TableName=self.table, Item=item, **condition),
                    passthrough=CONDITION_FAILED,
                )
            except ClientError:
                continue  # another process switched it first: read what it wrote
            if stored is not None:
                log.warning("alert read models were projected from another event log (space %s); rebuilding", stored)
                # A crash before the end leaves only unreachable items of the old key space.
                await self._drop_space(stored)
            return

    async def _drop_space(self, space: str) -> None:
        """Delete a replaced source's models: positions first, so a crash part-way leaves
        nothing that claims data the space no longer has."""
        what = "delete the alert read models of a replaced event log"
        positions = await self._query(
            what,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": attr_s(_key("p", space))},
            ProjectionExpression="pk, sk",
            ConsistentRead=True,
        )
        await self._batch_write(self.table, [{"DeleteRequest": {"Key": k}} for k in positions], what)
        # A one-off Scan of this table only (a source change is an operator's act).
        rest = await self._scan(
            what,
            TableName=self.table,
            FilterExpression="contains(pk, :space)",
            ExpressionAttributeValues={":space": attr_s(f'"{space}"')},
            ProjectionExpression="pk, sk",
        )
        await self._batch_write(self.table, [{"DeleteRequest": {"Key": k}} for k in rest], what)

    # -- keys and items -------------------------------------------------------------

    def _instance_key(self, tenant: str, instance_id: str) -> Item:
        return {"pk": attr_s(_key("i", self._space, tenant)), "sk": attr_s(instance_id)}

    def _listing_key(self, tenant: str, state: str, rule: str, instance_id: str) -> Item:
        return {"pk": attr_s(_key("s", self._space, tenant, state)), "sk": attr_s(_key(rule, instance_id))}

    def _ack_key(self, tenant: str, instance_id: str) -> Item:
        return {"pk": attr_s(_key("a", self._space, tenant)), "sk": attr_s(instance_id)}

    def _put(self, item: Item, condition: str | None = None, values: Item | None = None) -> Item:
        put: Item = {"TableName": self.table, "Item": item}
        if condition:
            put["ConditionExpression"] = condition
        if values:
            put["ExpressionAttributeValues"] = values
        return {"Put": put}

    def _instance_unit(self, i: StoredAlertInstance, held: _Held | None) -> _Unit | None:
        """The writes that move the instance to `i` from what is stored (None: already newer)."""
        if held is not None and held.sequence >= i.sequence:
            return None
        body: Item = {
            "tn": attr_s(i.tenant),
            "id": attr_s(i.instance_id),
            "ru": attr_s(i.rule),
            "st": attr_s(i.state),
            "sq": attr_n(i.sequence),
            "ep": attr_n(i.episode_sequence),
            "pl": {"B": i.payload},
        }
        # The by-id item carries the condition: the transaction applies only over the very
        # version read, so the listing copy it deletes is the one that exists.
        by_id = (
            self._put({**self._instance_key(i.tenant, i.instance_id), **body}, "attribute_not_exists(pk)")
            if held is None
            else self._put(
                {**self._instance_key(i.tenant, i.instance_id), **body}, "sq = :held", {":held": attr_n(held.sequence)}
            )
        )
        ops = [by_id, self._put({**self._listing_key(i.tenant, i.state, i.rule, i.instance_id), **body})]
        if held is not None and (held.state, held.rule) != (i.state, i.rule):
            old = self._listing_key(i.tenant, held.state, held.rule, i.instance_id)
            ops.append({"Delete": {"TableName": self.table, "Key": old}})
        return _Unit(ops, instance=i)

    async def _held(self, instances: Sequence[StoredAlertInstance]) -> dict[tuple[str, str], _Held]:
        items = await self._batch_get(
            self.table,
            [self._instance_key(i.tenant, i.instance_id) for i in instances],
            "read alert instances before applying",
            consistent=True,
            projection="tn, id, ru, st, sq",
        )
        return {
            (i["tn"]["S"], i["id"]["S"]): _Held(sequence=int(i["sq"]["N"]), state=i["st"]["S"], rule=i["ru"]["S"])
            for i in items
        }

    async def _instance_units(self, instances: Sequence[StoredAlertInstance]) -> list[_Unit]:
        held = await self._held(instances)
        units = [self._instance_unit(i, held.get((i.tenant, i.instance_id))) for i in instances]
        return [u for u in units if u is not None]

    # -- writes ---------------------------------------------------------------------

    async def positions(self) -> dict[int, int]:
        items = await self._query(
            "read alert read-model positions",
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": attr_s(_key("p", self._space))},
            ConsistentRead=True,
        )
        return {int(i["sk"]["S"]): int(i["o"]["N"]) for i in items}

    async def apply(self, batch: AlertModelBatch) -> None:
        newest: dict[tuple[str, str], StoredAlertInstance] = {}
        for i in batch.instances:
            had = newest.get((i.tenant, i.instance_id))
            if had is None or had.sequence < i.sequence:
                newest[(i.tenant, i.instance_id)] = i
        acks: dict[tuple[str, str], StoredAck] = {}
        for a in batch.acks:
            had_ack = acks.get((a.tenant, a.instance_id))
            if had_ack is None or had_ack.revision < a.revision:
                acks[(a.tenant, a.instance_id)] = a
        entries = {(e.tenant, e.time_ms, e.partition, e.offset): e for e in batch.entries}

        units = await self._instance_units(list(newest.values()))
        units += [self._ack_unit(a) for a in acks.values()]
        units += [self._entry_unit(e) for e in entries.values()]
        # Positions last: written only once every effect of the batch is, so they never claim
        # data the store lacks. A batch that fits one transaction is applied all at once.
        position_units = [
            _Unit(
                [
                    self._put(
                        {"pk": attr_s(_key("p", self._space)), "sk": attr_s(f"{p:010d}"), "o": attr_n(o)},
                        "attribute_not_exists(o) OR o < :o",
                        {":o": attr_n(o)},
                    )
                ]
            )
            for p, o in sorted(batch.positions.items())
        ]
        groups = _groups(units + position_units)
        if len(groups) <= 1:
            await self._all(self._transact(g) for g in groups)
            return
        await self._all(self._transact(g) for g in _groups(units))
        await self._all(self._transact(g) for g in _groups(position_units))

    def _ack_unit(self, a: StoredAck) -> _Unit:
        item: Item = {
            **self._ack_key(a.tenant, a.instance_id),
            "ak": {"BOOL": a.acked},
            "au": attr_s(a.author),
            "cm": attr_s(a.comment),
            "tm": attr_n(a.time_ms),
            "rv": attr_n(a.revision),
            "as": attr_n(a.alert_sequence),
        }
        return _Unit([self._put(item, "attribute_not_exists(pk) OR rv < :rv", {":rv": attr_n(a.revision)})])

    def _entry_unit(self, e: StoredHistoryEntry) -> _Unit:
        item: Item = {
            "pk": attr_s(_key("h", self._space, e.tenant)),
            "sk": attr_s(_entry_sk(e.time_ms, e.partition, e.offset)),
            "kd": attr_s(e.kind),
            "tm": attr_n(e.time_ms),
            "p": attr_n(e.partition),
            "o": attr_n(e.offset),
            "rl": attr_s(orjson.dumps(list(e.rules)).decode()),
            "in": attr_s(orjson.dumps(list(e.instances)).decode()),
            "dt": {"B": e.detail},
            "et": attr_s(e.event_type),
            "pl": {"B": e.payload},
        }
        return _Unit([self._put(item, "attribute_not_exists(pk)")])

    async def _transact(self, units: list[_Unit]) -> None:
        """One TransactWriteItems of `units`, until each is written or found a no-op: a unit
        whose condition failed is dropped (an ack, entry or position: something newer or
        equal is stored) or rebuilt from a fresh read (an instance another writer moved);
        conflicts with other transactions and throttling are retried with backoff."""
        what = "apply a batch to the alert read models"
        attempt = 0
        while units:
            if sum(len(u.ops) for u in units) > TRANSACT_ITEMS:  # a rebuilt instance grew
                await self._all(self._transact(g) for g in _groups(units))
                return
            ops = [op for u in units for op in u.ops]
            estimate = 2 * sum(write_units(next(iter(op.values())).get("Item") or {"k": {"S": ""}}) for op in ops)
            try:
                response = await self._call(
                    what,
                    partial(self.client.transact_write_items, TransactItems=ops, ReturnConsumedCapacity="TOTAL"),  # type: ignore[arg-type]
                    passthrough=_CANCELLED,
                )
            except ClientError as exc:
                self.stats.estimated_write_units += estimate
                error: Any = exc.response
                codes = [str(r.get("Code", "None")) for r in error.get("CancellationReasons", [])]
                if len(codes) != len(ops):
                    raise self._translate(exc, what) from exc
                failed: list[_Unit] = []
                keep: list[_Unit] = []
                at = 0
                for u in units:
                    unit_codes = codes[at : at + len(u.ops)]
                    at += len(u.ops)
                    (failed if "ConditionalCheckFailed" in unit_codes else keep).append(u)
                self.stats.conditional_skips += len([u for u in failed if u.instance is None])
                moved = [u.instance for u in failed if u.instance is not None]
                units = keep + (await self._instance_units(moved) if moved else [])
                other = {c for c in codes if c not in ("None", "ConditionalCheckFailed")}
                why = ", ".join(sorted(other)) or "instances moved by another writer"
                if other - _RETRIED:
                    raise StorageError(f"{PARAMETER}: {what}: DynamoDB cancelled the transaction ({why})") from exc
                if other or moved:
                    # Another transaction on the same items, throttling, or another writer that
                    # moved an instance meanwhile: bounded, with backoff when the server asks.
                    attempt += 1
                    if attempt >= self.options.max_attempts:
                        raise self._give_up(what, f"cancelled the transaction ({why})", attempt) from exc
                if other:
                    if "TransactionConflict" in other:
                        self.stats.transient_retries += 1
                    else:
                        self.stats.throttle_retries += 1
                    await self._backoff(attempt)
                continue
            self._account(response, write=True)
            self.stats.estimated_write_units += estimate
            self.stats.items_written += len(ops)
            return

    # -- reads ----------------------------------------------------------------------

    async def instances(
        self, tenant: str, states: Sequence[str], *, rule: str | None = None
    ) -> list[StoredAlertInstance]:
        async def one(state: str) -> list[Item]:
            condition = "pk = :pk"
            values: Item = {":pk": attr_s(_key("s", self._space, tenant, state))}
            if rule is not None:
                condition += " AND begins_with(sk, :rule)"
                values[":rule"] = attr_s(_key(rule)[:-1] + ",")  # ["rule",  : every id of the rule
            return await self._query(
                "read alert instances",
                TableName=self.table,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ConsistentRead=True,
            )

        parts = await self._all(one(s) for s in dict.fromkeys(states))
        return [_instance(item) for part in parts for item in part]

    async def get_instances(self, tenant: str, instance_ids: Sequence[str]) -> dict[str, StoredAlertInstance]:
        items = await self._batch_get(
            self.table, [self._instance_key(tenant, i) for i in instance_ids], "read alert instances", consistent=True
        )
        return {item["id"]["S"]: _instance(item) for item in items}

    async def acks(self, tenant: str, instance_ids: Sequence[str]) -> dict[str, StoredAck]:
        items = await self._batch_get(
            self.table, [self._ack_key(tenant, i) for i in instance_ids], "read alert acks", consistent=True
        )
        return {
            item["sk"]["S"]: StoredAck(
                tenant=tenant,
                instance_id=item["sk"]["S"],
                acked=bool(item["ak"]["BOOL"]),
                author=item["au"]["S"],
                comment=item["cm"]["S"],
                time_ms=int(item["tm"]["N"]),
                revision=int(item["rv"]["N"]),
                alert_sequence=int(item["as"]["N"]),
            )
            for item in items
        }

    async def entries(
        self, tenant: str, *, since_ms: int, after: tuple[int, int, int] | None, limit: int
    ) -> list[StoredHistoryEntry]:
        if limit <= 0:
            return []
        start = max((since_ms, -1, -1), after or (since_ms, -1, -1))
        # Strictly after the start: a bare time sorts before every key of that time.
        bound = _entry_sk(*start) if start[1] >= 0 else _entry_sk(start[0], 0, 0).split(".")[0]
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk > :after",
            "ExpressionAttributeValues": {":pk": attr_s(_key("h", self._space, tenant)), ":after": attr_s(bound)},
            "ConsistentRead": True,
        }
        found: list[StoredHistoryEntry] = []
        async for page in self._pages("read the alert timeline", "query", dict(request, Limit=limit)):
            found.extend(_entry(tenant, item) for item in page.get("Items", []))
            if len(found) >= limit:
                break
        return found[:limit]


def _groups(units: list[_Unit]) -> list[list[_Unit]]:
    """Units packed into transactions of at most 100 items and ~3.5 MB, never split."""
    groups: list[list[_Unit]] = []
    count = size = 0
    for u in units:
        if not groups or count + len(u.ops) > TRANSACT_ITEMS or size + u.size > TRANSACT_BYTES:
            groups.append([])
            count = size = 0
        groups[-1].append(u)
        count += len(u.ops)
        size += u.size
    return groups


def _instance(item: Item) -> StoredAlertInstance:
    return StoredAlertInstance(
        tenant=item["tn"]["S"],
        instance_id=item["id"]["S"],
        rule=item["ru"]["S"],
        state=item["st"]["S"],
        sequence=int(item["sq"]["N"]),
        episode_sequence=int(item["ep"]["N"]),
        payload=bytes(item["pl"]["B"]),
    )


def _entry(tenant: str, item: Item) -> StoredHistoryEntry:
    return StoredHistoryEntry(
        tenant=tenant,
        kind=item["kd"]["S"],
        time_ms=int(item["tm"]["N"]),
        partition=int(item["p"]["N"]),
        offset=int(item["o"]["N"]),
        rules=tuple(orjson.loads(item["rl"]["S"])),
        instances=tuple(orjson.loads(item["in"]["S"])),
        detail=bytes(item["dt"]["B"]),
        event_type=item["et"]["S"],
        payload=bytes(item["pl"]["B"]),
    )
