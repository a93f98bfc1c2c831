"""The projectors' applied event ids in DynamoDB: one table (`applied_events`, key `k` =
projector NUL event id), TTL'd after `applied_event_ttl_s`."""

from __future__ import annotations

from collections.abc import Sequence

from core.adapters.dynamodb_hot_store.client import DynamoDBConnection, Item, attr_n, attr_s


class AppliedEventsTable(DynamoDBConnection):
    """The HotStore's projector-state methods (applied event ids)."""

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
            item: Item = {"k": {"B": key}, "pj": attr_s(projector), "tm": attr_n(time_ms)}
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
            ExpressionAttributeValues={":p": attr_s(projector), ":t": attr_n(time_ms)},
        )
        await self._batch_write(table, [{"DeleteRequest": {"Key": key}} for key in old], what)
        return len(old)
