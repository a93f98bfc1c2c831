"""The series index in DynamoDB: one table (`series_index`) of `pk`/`sk` strings holding series
items, label postings, label values, metrics and tenants, so every index read is a Query on
one partition, never a Scan."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from core.adapters.dynamodb_hot_store.client import (
    CONDITION_FAILED,
    DynamoDBConnection,
    Item,
    attr_n,
    attr_s,
    write_units,
)
from core.adapters.dynamodb_hot_store.options import PARAMETER
from core.errors import StorageError
from core.ports import LabelFilter, MetricSummary, SeriesRecord


def _key(*parts: str) -> str:
    """An unambiguous string key from parts (label names and values may hold any character)."""
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


class SeriesIndexTable(DynamoDBConnection):
    """The HotStore's series-index methods."""

    # Items of the index table:
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
            [{"pk": attr_s(_key("s", r.tenant, r.metric)), "sk": attr_s(str(r.series_id))} for r in merged.values()],
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
                    side[(pk, sk)] = {"pk": attr_s(pk), "sk": attr_s(sk)}
            side[(_key("t"), r.tenant)] = {"pk": attr_s(_key("t")), "sk": attr_s(r.tenant)}
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
                    Key={"pk": attr_s(_key("m", tenant)), "sk": attr_s(metric)},
                    UpdateExpression="SET #k = :k",
                    ConditionExpression="attribute_not_exists(#k) OR #k > :k",
                    ExpressionAttributeNames={"#k": "k"},
                    ExpressionAttributeValues={":k": attr_n(kind)},
                ),
                passthrough=CONDITION_FAILED,
            )
        except ClientError:
            return  # a kind <= ours is stored already

    async def _insert_series(self, r: SeriesRecord, what: str) -> bool:
        """Put the series item unless it exists; False when another writer got there first."""
        item: Item = {
            "pk": attr_s(_key("s", r.tenant, r.metric)),
            "sk": attr_s(str(r.series_id)),
            "k": attr_n(r.kind),
            "r": attr_s(r.region),
            "lb": attr_s(json.dumps(r.labels, ensure_ascii=False, separators=(",", ":"))),
            "f": attr_n(r.first_seen_ms),
            "l": attr_n(r.last_seen_ms),
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
                passthrough=CONDITION_FAILED,
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
        key = {"pk": attr_s(_key("s", r.tenant, r.metric)), "sk": attr_s(str(r.series_id))}
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
                        ExpressionAttributeValues={":f": attr_n(first), ":l": attr_n(last)},
                    ),
                    passthrough=CONDITION_FAILED,
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
            "ExpressionAttributeValues": {":pk": attr_s(pk)},
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
            pk = attr_s(_key("s", tenant, metric))
            items = await self._batch_get(
                self.options.index_table, [{"pk": pk, "sk": attr_s(i)} for i in ids], what, consistent=False
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
                ExpressionAttributeValues={":pk": attr_s(_key("s", tenant, name))},
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
