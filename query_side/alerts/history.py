"""Alert history: the alerts topic (`argus.alerts.v1`) folded into per-tenant timelines.

Each entry is one event of the topic: an alert instance's state change (AlertStateChanged),
or a notification sent or failed (NotificationSent / NotificationFailed, with receiver,
channel and attempt). Entries are ordered by event time, then by position in the log, so
the order is the same in every process that reads the same log. A notification names its
alerts by fingerprint (= instance id); its `rules` are those instances' rules as the state
changes before it named them.

Pages are bounded (`MAX_PAGE`) and resumed by an opaque cursor: the position of the last
entry returned. The projector (query_side/alerts/read_models.py) keeps the timelines in an
AlertReadModelStore (persisted: decision 0046).

`TopicCursor` is the other kind of position, for following the topic live (the gRPC
`Subscribe`): the next offset of every partition, encoded as an opaque string.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from aiohttp import web
from google.protobuf.message import Message

from contracts.argus.alerts.v1 import alerts_pb2
from core.auth import Authenticator, bearer_token
from core.durations import parse_duration_ms
from core.errors import ArgusError, InvalidArgument
from core.events import ALERTS_TOPIC, decode_record
from core.ports import EventLog, LogRecord, StoredHistoryEntry
from query_side.alerts.active import _STATES, TOPIC_PARTITIONS

if TYPE_CHECKING:
    from query_side.alerts.read_models import AlertReadModelProjector

log = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PAGE = 1000
_READ_BATCH = 1000
_STATE_CHANGED = alerts_pb2.AlertStateChanged.DESCRIPTOR.full_name
_SENT = alerts_pb2.NotificationSent.DESCRIPTOR.full_name
_FAILED = alerts_pb2.NotificationFailed.DESCRIPTOR.full_name
_ACKED = alerts_pb2.AlertAcknowledged.DESCRIPTOR.full_name
_UNACKED = alerts_pb2.AlertUnacknowledged.DESCRIPTOR.full_name
_ESCALATED = alerts_pb2.AlertEscalated.DESCRIPTOR.full_name
HISTORY_TYPES = frozenset({_STATE_CHANGED, _SENT, _FAILED, _ACKED, _UNACKED, _ESCALATED})
"""The event types history (and Subscribe) shows; others on the topic are skipped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    tenant: str
    kind: str
    """`state`, `sent`, `failed`, `acknowledged`, `unacknowledged` or `escalated`."""
    time_ms: int
    partition: int
    offset: int
    rules: tuple[str, ...]
    instances: tuple[str, ...]
    detail: Mapping[str, object] = field(default_factory=dict)
    message: Message = field(compare=False, repr=False)
    """The decoded event (AlertStateChanged, NotificationSent or NotificationFailed)."""

    @property
    def position(self) -> tuple[int, int, int]:
        return (self.time_ms, self.partition, self.offset)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "time_ms": self.time_ms,
            "rules": list(self.rules),
            "instances": list(self.instances),
            **self.detail,
        }


_STATE_NAMES = {int(code): state.value for code, state in _STATES.items()}


def state_name(value: int) -> str:
    """The state's name (`firing`...), `unknown` for a value of a newer build."""
    state = _STATE_NAMES.get(value)
    return state if state is not None else "unknown"


def entry_of(record: LogRecord, rule_of: Mapping[str, str]) -> HistoryEntry | None:
    """The history entry of a record of the alerts topic (None: another type, unreadable)."""
    kind = record.event.type
    if record.unreadable is not None or kind not in HISTORY_TYPES:
        return None
    try:
        if kind == _STATE_CHANGED:
            s = decode_record(record, alerts_pb2.AlertStateChanged)
            return HistoryEntry(
                tenant=s.tenant,
                kind="state",
                time_ms=s.evaluated_at_ms or record.event.time_ms,
                partition=record.partition,
                offset=record.offset,
                rules=(s.rule,),
                instances=(s.instance_id,),
                detail={
                    "labels": dict(s.instance_labels),
                    "from": state_name(s.from_state),
                    "to": state_name(s.to_state),
                    "value": None if math.isnan(s.value) else s.value,
                    "reason": s.reason,
                    "sequence": s.sequence,
                    "severity": s.severity,
                },
                message=s,
            )
        if kind in (_ACKED, _UNACKED):
            a: alerts_pb2.AlertAcknowledged | alerts_pb2.AlertUnacknowledged
            if kind == _ACKED:
                a = decode_record(record, alerts_pb2.AlertAcknowledged)
            else:
                a = decode_record(record, alerts_pb2.AlertUnacknowledged)
            return HistoryEntry(
                tenant=a.tenant,
                kind="acknowledged" if kind == _ACKED else "unacknowledged",
                time_ms=a.time_ms or record.event.time_ms,
                partition=record.partition,
                offset=record.offset,
                rules=(rule_of[a.instance_id],) if a.instance_id in rule_of else (),
                instances=(a.instance_id,),
                detail={"author": a.author, "comment": a.comment, "revision": a.revision},
                message=a,
            )
        if kind == _ESCALATED:
            e = decode_record(record, alerts_pb2.AlertEscalated)
            return HistoryEntry(
                tenant=e.tenant,
                kind="escalated",
                time_ms=e.created_ms or record.event.time_ms,
                partition=record.partition,
                offset=record.offset,
                rules=tuple(sorted({rule_of[i] for i in e.firing if i in rule_of})),
                instances=tuple(sorted(e.firing)),
                detail={"policy": e.policy, "step": e.step, "receivers": list(e.receivers)},
                message=e,
            )
        n: alerts_pb2.NotificationSent | alerts_pb2.NotificationFailed
        if kind == _SENT:
            n = decode_record(record, alerts_pb2.NotificationSent)
        else:
            n = decode_record(record, alerts_pb2.NotificationFailed)
    except ArgusError as exc:
        log.warning("alert history: skipping %s/%d@%d: %s", record.topic, record.partition, record.offset, exc)
        return None
    instances = tuple(sorted({*n.firing, *n.resolved}))
    detail: dict[str, object] = {
        "notification_id": n.notification_id,
        "receiver": n.receiver,
        "channel": n.channel,
        "target": n.target,
        "attempt": n.attempt,
        "firing": sorted(n.firing),
        "resolved": sorted(n.resolved),
    }
    if isinstance(n, alerts_pb2.NotificationFailed):
        detail["error"] = n.error
        detail["outcome"] = n.outcome
    return HistoryEntry(
        tenant=n.tenant,
        kind="sent" if kind == _SENT else "failed",
        time_ms=n.created_ms or record.event.time_ms,
        partition=record.partition,
        offset=record.offset,
        rules=tuple(sorted({rule_of[i] for i in instances if i in rule_of})),
        instances=instances,
        detail=detail,
        message=n,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str, parameter: str) -> object:
    try:
        return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidArgument(f"{parameter}: not a cursor this server gave out", parameter=parameter) from None


def encode_page_cursor(position: tuple[int, int, int]) -> str:
    return _b64(orjson.dumps(list(position)))


def decode_page_cursor(text: str) -> tuple[int, int, int]:
    value = _unb64(text, "cursor")
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value)):
        raise InvalidArgument("cursor: not a cursor this server gave out", parameter="cursor")
    return (value[0], value[1], value[2])


@dataclass(frozen=True, slots=True)
class TopicCursor:
    """The next offset to read of every partition of the alerts topic (absent: 0)."""

    offsets: Mapping[int, int] = field(default_factory=dict)

    def encode(self) -> str:
        return _b64(orjson.dumps({str(p): o for p, o in sorted(self.offsets.items())}))

    @classmethod
    def decode(cls, text: str) -> TopicCursor:
        """The empty string: the topic's beginning."""
        if not text:
            return cls({})
        value = _unb64(text, "cursor")
        if not isinstance(value, dict):
            raise InvalidArgument("cursor: not a cursor this server gave out", parameter="cursor")
        offsets: dict[int, int] = {}
        for p, o in value.items():
            if not (isinstance(p, str) and p.isdigit() and isinstance(o, int) and o >= 0):
                raise InvalidArgument("cursor: not a cursor this server gave out", parameter="cursor")
            offsets[int(p)] = o
        return cls(offsets)

    def after(self, record: LogRecord) -> TopicCursor:
        return TopicCursor({**self.offsets, record.partition: record.offset + 1})


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: str
    """Empty when this page holds the last entries there are (so far)."""


class AlertHistory:
    """Per tenant, every history entry of the alerts topic, in (time, partition, offset)
    order, read from the alert read models that `projector` keeps (decision 0046)."""

    def __init__(self, events: EventLog, *, projector: AlertReadModelProjector | None = None) -> None:
        if projector is None:
            from core.adapters.memory_alert_read_models import MemoryAlertReadModels
            from query_side.alerts.read_models import AlertReadModelProjector

            projector = AlertReadModelProjector(events, MemoryAlertReadModels())
        self._projector = projector

    async def refresh(self) -> None:
        await self._projector.catch_up()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the alerts topic until `stop` is set (keeps what it has on errors)."""
        await self._projector.run(stop)

    async def page(
        self,
        tenant: str,
        *,
        since_ms: int = 0,
        rule: str | None = None,
        cursor: str = "",
        limit: int = DEFAULT_PAGE,
    ) -> HistoryPage:
        """The tenant's entries at or after `since_ms` (of `rule` if given), oldest first,
        after `cursor`; at most `limit` (1..MAX_PAGE)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidArgument(f"limit: 1 to {MAX_PAGE}", parameter="limit")
        after = decode_page_cursor(cursor) if cursor else None
        found: list[HistoryEntry] = []
        # One more than the page tells whether there is a next one; a rule filter reads on
        # in store pages until the page is full or the timeline ends.
        while True:
            rows = await self._projector.store.entries(tenant, since_ms=since_ms, after=after, limit=limit + 1)
            for row in rows:
                if rule is None or rule in row.rules:
                    if len(found) == limit:
                        return HistoryPage(entries=found, next_cursor=encode_page_cursor(found[-1].position))
                    found.append(_entry(row))
            if len(rows) <= limit:
                return HistoryPage(entries=found, next_cursor="")
            after = rows[-1].position


_MESSAGES: dict[str, type[Message]] = {
    _STATE_CHANGED: alerts_pb2.AlertStateChanged,
    _SENT: alerts_pb2.NotificationSent,
    _FAILED: alerts_pb2.NotificationFailed,
    _ACKED: alerts_pb2.AlertAcknowledged,
    _UNACKED: alerts_pb2.AlertUnacknowledged,
    _ESCALATED: alerts_pb2.AlertEscalated,
}


def _entry(row: StoredHistoryEntry) -> HistoryEntry:
    message = _MESSAGES[row.event_type]()
    message.ParseFromString(row.payload)
    detail = orjson.loads(row.detail)
    return HistoryEntry(
        tenant=row.tenant,
        kind=row.kind,
        time_ms=row.time_ms,
        partition=row.partition,
        offset=row.offset,
        rules=row.rules,
        instances=row.instances,
        detail=detail,
        message=message,
    )


async def read_from(
    events: EventLog, cursor: TopicCursor, *, tenant: str, limit: int = _READ_BATCH
) -> tuple[list[tuple[HistoryEntry, TopicCursor]], TopicCursor]:
    """The tenant's history entries appended since `cursor` (at most `limit` records read
    per partition), each with the cursor just after it, and the cursor after everything read
    (other tenants' records included). Entries come partition by partition, in log order
    within each: a cursor after an entry never passes an entry not yet returned."""
    partitions = await events.ensure_topic(ALERTS_TOPIC, TOPIC_PARTITIONS)
    found: list[tuple[HistoryEntry, TopicCursor]] = []
    for partition in range(partitions):
        records = await events.read(ALERTS_TOPIC, partition, cursor.offsets.get(partition, 0), limit)
        for record in records:
            # A live stream resolves no notification's rules: it has no past to look in.
            entry = entry_of(record, {})
            cursor = cursor.after(record)
            if entry is not None and entry.tenant == tenant:
                found.append((entry, cursor))
    return found, cursor


def add_history_routes(
    app: web.Application, authenticator: Authenticator, history: AlertHistory, clock_ms: Callable[[], int]
) -> None:
    """`GET /api/v1/alerts/history?since=1h|<ms>&rule=R&limit=N&cursor=C`: a page of the
    caller's tenant's history, oldest first, with `next_cursor` ("" at the end)."""

    async def handler(request: web.Request) -> web.Response:
        tenant = authenticator.tenant_for(bearer_token(request.headers.get("Authorization")))
        q = request.query
        limit_text = q.get("limit", str(DEFAULT_PAGE))
        if not limit_text.isdigit():
            raise InvalidArgument(f"limit: 1 to {MAX_PAGE}", parameter="limit")
        await history.refresh()
        page = await history.page(
            tenant,
            since_ms=since_ms(q.get("since"), clock_ms()),
            rule=q.get("rule") or None,
            cursor=q.get("cursor", ""),
            limit=int(limit_text),
        )
        body = {"entries": [e.to_json() for e in page.entries], "next_cursor": page.next_cursor}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    app.router.add_get("/api/v1/alerts/history", handler)


def since_ms(text: str | None, now_ms: int) -> int:
    """`since`: absent (everything), milliseconds since the epoch, or a duration back from now."""
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    return now_ms - parse_duration_ms(text, parameter="since")
