"""The configuration view: one follower of the config topic, typed state per kind.

Every configuration change (an API key, a read-model version; alert rules, receivers,
silences and dashboards next) is an event on the config topic. A `ConfigView` follows that
topic once per process and hands each event, by its type, to the state that registered for
it (`ApiKeyRegistry`, `ReadModelVersions`, ...). Every service reads that state.

Guarantees:
- **One order, one answer.** The topic has one partition; records are applied in offset
  order, each once. The same log gives every process the same state and the same outcome
  (applied or rejected, and why) for every event.
- **Conditional changes without a conditional append.** Neither SQLite nor Kafka can append
  "only if the entity is still at version N", so the check happens on the read side: every
  entity (an `entity` string such as `api_key:<sha256 hex>`) has a version, the number of
  its events applied so far. An event whose `ConfigChange.expected_version` differs from it
  is a conflict and changes nothing, in every follower alike. A writer learns the outcome of
  its own event by catching its view up past it (`append_change`), so two concurrent edits
  get one success and one `Conflict`, never a lost update.
- **Duplicates are no-ops.** An event id seen before (a Kafka producer retry, the same
  command sent twice) is skipped; its first outcome stands.
- **A newer schema stops the view loudly**, an undecodable payload is logged and skipped
  (it can never apply, and must not stop every later change).

See docs/decisions/0016-config-commands-and-view.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message

from contracts.argus.events.v1 import events_pb2
from core.errors import ArgusError, Conflict, CorruptData, StorageError, Unavailable
from core.events import CONFIG_TOPIC, SCHEMA_VERSION, config_records, decode_payload
from core.ports import Event, EventLog

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
S = TypeVar("S", bound="ConfigState")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigKind(Generic[M]):
    """How one event type changes one kind of state.

    `entity` names the entity an event changes (its version is checked and bumped);
    `apply` changes the state, or raises an ArgusError to reject the event (nothing changes).
    """

    payload: type[M]
    entity: Callable[[M], str]
    apply: Callable[[M, Event], None]


class ConfigState(Protocol):
    """Typed state built from config events (one object per kind, e.g. API keys)."""

    def kinds(self) -> Sequence[ConfigKind[Any]]:
        """The event types this state applies."""
        ...


def change_of(payload: Message) -> events_pb2.ConfigChange | None:
    """The `change` field of a config payload, or None when the event carries none."""
    if payload.HasField("change"):
        change = payload.change  # type: ignore[attr-defined]  # every config payload has one
        assert isinstance(change, events_pb2.ConfigChange)
        return change
    return None


def config_change(*, author: str, expected_version: int | None) -> events_pb2.ConfigChange:
    change = events_pb2.ConfigChange(author=author)
    if expected_version is not None:
        change.expected_version = expected_version
    return change


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What the view did with one config event."""

    offset: int
    entity: str
    version: int  # the entity's version after this event (unchanged when rejected)
    error_type: type[ArgusError] | None = None
    reason: str = ""

    @property
    def applied(self) -> bool:
        return self.error_type is None

    def raise_if_rejected(self) -> None:
        if self.error_type is not None:
            raise self.error_type(self.reason)


class ConfigView:
    """Follows the config topic and dispatches each event by type to the registered states."""

    def __init__(
        self,
        events: EventLog,
        states: Iterable[ConfigState] = (),
        *,
        refresh_interval_s: float = 1.0,
        topic: str = CONFIG_TOPIC,
    ) -> None:
        self._events = events
        self._topic = topic  # another name only for tests on a shared broker
        self._refresh_interval_s = refresh_interval_s
        self._states: dict[type[Any], ConfigState] = {}
        self._kinds: dict[str, ConfigKind[Any]] = {}
        self._versions: dict[str, int] = {}
        self._outcomes: dict[bytes, Outcome] = {}
        self._next_offset = 0
        self._lock = asyncio.Lock()
        for state in states:
            self.add(state)

    @property
    def events(self) -> EventLog:
        return self._events

    @property
    def position(self) -> int:
        """Offset of the next config record this view will apply."""
        return self._next_offset

    def add(self, state: ConfigState) -> None:
        """Register a state; only before the first refresh (it must see every event)."""
        if self._next_offset:
            raise StorageError(f"config view: {type(state).__name__} added after following began")
        for kind in state.kinds():
            name = kind.payload.DESCRIPTOR.full_name
            if name in self._kinds:
                raise StorageError(f"config view: two states apply {name}")
            self._kinds[name] = kind
        self._states[type(state)] = state

    def state(self, cls: type[S]) -> S:
        """The registered state of that class."""
        state = self._states.get(cls)
        if state is None:
            raise StorageError(f"config view: no {cls.__name__} registered")
        assert isinstance(state, cls)
        return state

    def version(self, entity: str) -> int:
        """Events applied to `entity` so far (0 = it does not exist)."""
        return self._versions.get(entity, 0)

    def outcome(self, event_id: bytes) -> Outcome | None:
        return self._outcomes.get(event_id)

    async def refresh(self) -> None:
        """Apply config events appended since the last refresh."""
        async with self._lock:
            async for record in config_records(self._events, self._next_offset, topic=self._topic):
                self._apply(record.offset, record.event)
                self._next_offset = record.offset + 1

    def _apply(self, offset: int, event: Event) -> None:
        if event.event_id in self._outcomes:
            return  # a duplicate (Kafka retry): the first one's outcome stands
        kind = self._kinds.get(event.type)
        if kind is None:
            return  # a kind this process does not follow
        if event.schema_version > SCHEMA_VERSION:
            # Skipping it would leave this process with a different configuration than a newer one.
            raise CorruptData(
                f"config event at offset {offset} ({event.type}) has schema version {event.schema_version}, "
                f"newer than this build understands ({SCHEMA_VERSION}); upgrade Argus"
            )
        try:
            payload = decode_payload(event, kind.payload)
        except CorruptData as exc:
            event_id = event.event_id.hex()[:16]
            log.error("config topic: skip undecodable event: offset=%d event_id=%s error=%s", offset, event_id, exc)
            self._outcomes[event.event_id] = Outcome(
                offset=offset, entity="", version=0, error_type=CorruptData, reason=str(exc)
            )
            return
        entity = kind.entity(payload)
        version = self.version(entity)
        change = change_of(payload)
        if change is not None and change.HasField("expected_version") and change.expected_version != version:
            self._outcomes[event.event_id] = Outcome(
                offset=offset,
                entity=entity,
                version=version,
                error_type=Conflict,
                reason=f"{entity} changed concurrently: expected version {change.expected_version}, "
                f"it is at version {version}; re-read and retry",
            )
            return
        try:
            kind.apply(payload, event)
        except ArgusError as exc:
            self._outcomes[event.event_id] = Outcome(
                offset=offset, entity=entity, version=version, error_type=type(exc), reason=str(exc)
            )
            return
        self._versions[entity] = version + 1
        self._outcomes[event.event_id] = Outcome(offset=offset, entity=entity, version=version + 1)

    async def catch_up(self, offset: int, *, timeout_s: float = 10.0) -> None:
        """Refresh until every record before `offset` is applied (Unavailable after `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            await self.refresh()
            if self._next_offset >= offset:
                return
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"config view: offset {offset} of {self._topic} not readable after {timeout_s:.0f} s "
                    f"(at {self._next_offset})"
                )
            await asyncio.sleep(0.02)  # appended but not yet readable (a Kafka follower fetch)

    async def append_change(self, event: Event, *, timeout_s: float = 10.0) -> Outcome:
        """Append a config event, catch this view up past it, and return its outcome.

        Raises the rejection (Conflict when another change got there first, or the error
        the state raised). Idempotent: appending an event whose id is already in the log
        returns the first copy's outcome.
        """
        result = await self._events.append(self._topic, [(0, event)])
        offset = result.offsets[0]
        target = offset + 1 if offset is not None else await self._events.end_offset(self._topic, 0)
        await self.catch_up(target, timeout_s=timeout_s)
        outcome = self._outcomes.get(event.event_id)
        if outcome is None:
            raise StorageError(f"config view: event {event.event_id.hex()[:16]} appended but not found in the log")
        outcome.raise_if_rejected()
        return outcome

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the config topic until `stop` is set (keeps the last good state on errors)."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:  # keep serving the configuration we have
                log.warning("config view: cannot follow %s: %s", self._topic, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._refresh_interval_s)
