"""Live queries (QueryService.Watch), transport-neutral: one shared subscription per (tenant,
query), fanned out to every viewer (docs/decisions/0037).

Guarantees:
- Each query of a stream first gets a snapshot (its whole range, `snapshot=True`), then only
  the buckets that are new or changed since the previous update of that query. A bucket sent
  again replaces the earlier value at its timestamp.
- Viewers of the same query in the same tenant share one `_Topic`: one engine query per poll
  interval however many viewers there are (`LiveHub.queries_run`, `LiveHub.topics` count
  it). A new viewer of a running topic gets its snapshot from the topic's state, no query.
- Freshness: a topic re-reads the tail of its range every `poll_interval_ms` (the rollups
  projector makes samples queryable every `flush_interval_ms`, 500 ms by default), so a
  pushed sample reaches a live panel within about flush + poll interval.
- Memory is bounded per viewer: deltas waiting for a slow viewer are merged (one value per
  bucket) up to `max_pending_points`; past that they are dropped and the viewer gets a fresh
  snapshot from the topic's state instead.
- Limits (ResourceExhausted / InvalidArgument): queries per stream, open streams per tenant,
  points per message (a larger update is split into several messages, by series).
- Tenant isolation: the tenant is part of a topic's key; a spec's own tenant is replaced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import ArgusError, InvalidArgument, ResourceExhausted
from core.transport_errors import public_message
from query_side.engine import Clock, QueryEngine, QueryResult, system_clock_ms
from query_side.planner import QuerySpec

log = logging.getLogger(__name__)

SeriesKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveLimits:
    max_queries_per_stream: int = 32
    max_streams_per_tenant: int = 1_000
    """Viewers share topics, so a stream costs little: memory for its pending deltas."""
    max_points_per_message: int = 50_000
    max_pending_points: int = 20_000
    """Merged deltas held for one slow viewer of one query before it falls back to a snapshot."""
    poll_interval_ms: int = 1_000
    """How often a topic re-reads the tail of its range."""
    min_interval_ms: int = 1_000
    """Least time between two messages of a stream when the request asks for 0."""
    floor_interval_ms: int = 100
    """A request may ask for a shorter interval than the default, but not below this."""
    tail_buckets: int = 12
    """Buckets re-read at the end of the range each poll (late samples change recent buckets)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveQuery:
    """One query to follow: `spec` with an absolute range; `follow` slides it to "now"."""

    spec: QuerySpec
    follow: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveSeries:
    labels: Mapping[str, str]
    ts: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveUpdate:
    query_index: int
    tier: str = ""
    series: tuple[LiveSeries, ...] = ()
    error: str = ""
    snapshot: bool = False

    @property
    def points(self) -> int:
        return sum(len(s.ts) for s in self.series)


Buckets = dict[SeriesKey, dict[int, float]]


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _series(buckets: Buckets) -> tuple[LiveSeries, ...]:
    out = []
    for key in sorted(buckets):
        points = buckets[key]
        ts = sorted(points)
        out.append(LiveSeries(labels=dict(key), ts=ts, values=[points[t] for t in ts]))
    return tuple(out)


def _buckets(result: QueryResult, since_ms: int) -> Buckets:
    out: Buckets = {}
    for s in result.series:
        keep = s.ts >= since_ms
        out[tuple(sorted(s.labels.items()))] = dict(
            zip(s.ts[keep].tolist(), np.asarray(s.values[keep], dtype=np.float64).tolist(), strict=True)
        )
    return out


class _Subscription:
    """One viewer of one topic: merged pending deltas, or "send a snapshot next"."""

    def __init__(self, topic: _Topic, query_index: int, wake: asyncio.Event, max_pending_points: int) -> None:
        self.topic = topic
        self.query_index = query_index
        self._wake = wake
        self._max_pending = max_pending_points
        self._pending: Buckets = {}
        self._pending_points = 0
        self._error = ""
        self.needs_snapshot = True

    def offer(self, delta: Buckets) -> bool:
        """Merge a delta; False when it overflowed and the viewer falls back to a snapshot."""
        if self.needs_snapshot:
            self._wake.set()
            return True
        for key, points in delta.items():
            mine = self._pending.setdefault(key, {})
            before = len(mine)
            mine.update(points)
            self._pending_points += len(mine) - before
        if self._pending_points > self._max_pending:
            self._pending.clear()
            self._pending_points = 0
            self.needs_snapshot = True
            self._wake.set()
            return False
        self._wake.set()
        return True

    def fail(self, message: str) -> None:
        self._error = message
        self._wake.set()

    def take(self) -> LiveUpdate | None:
        if self._error:
            error, self._error = self._error, ""
            return LiveUpdate(query_index=self.query_index, error=error)
        state = self.topic.state
        if self.needs_snapshot:
            if state is None:
                return None  # the topic's first query is still running
            self.needs_snapshot = False
            self._pending.clear()
            self._pending_points = 0
            return LiveUpdate(query_index=self.query_index, tier=self.topic.tier, series=_series(state), snapshot=True)
        if not self._pending:
            return None
        pending, self._pending, self._pending_points = self._pending, {}, 0
        return LiveUpdate(query_index=self.query_index, tier=self.topic.tier, series=_series(pending))


class _Topic:
    """One (tenant, query) followed for all its viewers."""

    def __init__(self, hub: LiveHub, key: object, query: LiveQuery) -> None:
        self._hub = hub
        self.key = key
        self._query = query
        self._window_ms = query.spec.end_ms - query.spec.start_ms
        self.subscribers: set[_Subscription] = set()
        self.state: Buckets | None = None
        self.tier = ""
        self._step_ms = 0
        self.task: asyncio.Task[None] | None = None

    def _range(self) -> tuple[int, int]:
        if not self._query.follow:
            return self._query.spec.start_ms, self._query.spec.end_ms
        end = self._hub.now_ms()
        return end - self._window_ms, end

    async def run(self) -> None:
        try:
            await self._snapshot()
            if not self._query.follow and self._query.spec.end_ms <= self._hub.now_ms():
                return  # a closed range in the past: nothing new will come (viewers keep it)
            loop = asyncio.get_running_loop()
            interval_s = self._hub.limits.poll_interval_ms / 1000
            next_at = loop.time()
            while True:
                # A fixed rate (not interval + query time); a late poll is not made up for.
                next_at = max(next_at + interval_s, loop.time())
                await asyncio.sleep(next_at - loop.time())
                await self._poll()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, ArgusError):
                log.exception("live query %s failed", self._query.spec.metric)
            for sub in self.subscribers:
                sub.fail(public_message(exc))
            self._hub._forget(self)

    async def _snapshot(self) -> None:
        start, end = self._range()
        result = await self._hub.run_query(dataclasses.replace(self._query.spec, start_ms=start, end_ms=end))
        self.tier, self._step_ms = result.tier, result.step_ms
        self.state = _buckets(result, start)
        for sub in self.subscribers:
            sub.offer({})

    async def _poll(self) -> None:
        assert self.state is not None
        start, end = self._range()
        step = self._step_ms
        tail = max(start, end - self._hub.limits.tail_buckets * step)
        tail -= tail % step
        # One bucket before the tail is read and not compared: an agg may need its neighbour.
        spec = dataclasses.replace(self._query.spec, start_ms=max(start, tail - step), end_ms=end, period=self.tier)
        try:
            result = await self._hub.run_query(spec)
        except ArgusError as exc:
            log.warning("live query %s poll failed: %s", self._query.spec.metric, exc)
            return  # transient (storage, deadline): the next poll tries again
        fresh = _buckets(result, tail)
        delta: Buckets = {}
        for key, points in fresh.items():
            known = self.state.setdefault(key, {})
            changed = {t: v for t, v in points.items() if t not in known or not _same(known[t], v)}
            if changed:
                known.update(changed)
                delta[key] = changed
        # The window slides: buckets before its start leave the state (viewers drop them too).
        for key in list(self.state):
            points = self.state[key]
            for t in [t for t in points if t < start - step]:
                del points[t]
            if not points and key not in fresh:
                del self.state[key]
        if delta:
            self._hub.deltas_published += 1
            for sub in self.subscribers:
                if not sub.offer(delta):
                    self._hub.snapshots_after_overflow += 1
            self._hub._notify()


class LiveHub:
    """Every live query of one query server. Counters (`queries_run`, `topics`, ...) are
    there for tests and benchmarks."""

    def __init__(self, engine: QueryEngine, clock: Clock = system_clock_ms, limits: LiveLimits | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self.limits = limits or LiveLimits()
        self._topics: dict[object, _Topic] = {}
        self._streams: dict[str, int] = {}
        self.queries_run = 0
        self.deltas_published = 0
        self.snapshots_after_overflow = 0
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, predicate: Callable[[], bool], *, timeout_s: float) -> None:
        """Wait until `predicate()` holds, checked after each query and (un)subscription
        (for tests and benchmarks); TimeoutError past `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await self._changed.wait()

    def now_ms(self) -> int:
        return self._clock()

    @property
    def topics(self) -> int:
        return len(self._topics)

    def subscribers(self) -> int:
        return sum(len(t.subscribers) for t in self._topics.values())

    async def run_query(self, spec: QuerySpec) -> QueryResult:
        self.queries_run += 1
        try:
            return await self._engine.query(spec)
        finally:
            self._notify()

    def close(self) -> None:
        for topic in list(self._topics.values()):
            if topic.task is not None:
                topic.task.cancel()
        self._topics.clear()

    async def watch(
        self, tenant: str, queries: Sequence[LiveQuery], *, min_interval_ms: int = 0
    ) -> AsyncGenerator[list[LiveUpdate], None]:
        """The stream's messages: each a list of updates (at most `max_points_per_message`
        points), at least `min_interval_ms` apart. Runs until the caller stops iterating."""
        if not queries:
            raise InvalidArgument("queries: at least one query is required", parameter="queries")
        if len(queries) > self.limits.max_queries_per_stream:
            raise ResourceExhausted(
                f"queries: {len(queries)} in one stream, over the limit of {self.limits.max_queries_per_stream}"
            )
        if self._streams.get(tenant, 0) >= self.limits.max_streams_per_tenant:
            raise ResourceExhausted(
                f"{self.limits.max_streams_per_tenant} live streams are already open for this tenant; close some"
            )
        interval_s = max(min_interval_ms or self.limits.min_interval_ms, self.limits.floor_interval_ms) / 1000
        wake = asyncio.Event()
        self._streams[tenant] = self._streams.get(tenant, 0) + 1
        subs: list[_Subscription] = []
        try:
            for i, query in enumerate(queries):
                subs.append(self._subscribe(tenant, i, query, wake))
            while True:
                await wake.wait()
                wake.clear()
                updates = [u for u in (s.take() for s in subs) if u is not None]
                for message in _split(updates, self.limits.max_points_per_message):
                    yield message
                await asyncio.sleep(interval_s)  # pacing: deltas arriving meanwhile merge
        finally:
            for sub in subs:
                self._unsubscribe(sub)
            left = self._streams[tenant] - 1
            if left:
                self._streams[tenant] = left
            else:
                del self._streams[tenant]

    def _subscribe(self, tenant: str, index: int, query: LiveQuery, wake: asyncio.Event) -> _Subscription:
        spec = dataclasses.replace(query.spec, tenant=tenant)
        query = dataclasses.replace(query, spec=spec)
        if query.follow:
            key: object = (dataclasses.replace(spec, start_ms=0, end_ms=spec.end_ms - spec.start_ms), True)
        else:
            key = (spec, False)
        topic = self._topics.get(key)
        if topic is None:
            topic = _Topic(self, key, query)
            self._topics[key] = topic
            topic.task = asyncio.create_task(topic.run(), name=f"live {spec.metric}")
        sub = _Subscription(topic, index, wake, self.limits.max_pending_points)
        topic.subscribers.add(sub)
        if topic.state is not None:
            wake.set()
        return sub

    def _unsubscribe(self, sub: _Subscription) -> None:
        topic = sub.topic
        topic.subscribers.discard(sub)
        if not topic.subscribers and self._topics.get(topic.key) is topic:
            self._forget(topic)

    def _forget(self, topic: _Topic) -> None:
        if self._topics.get(topic.key) is topic:
            del self._topics[topic.key]
        if topic.task is not None and topic.task is not asyncio.current_task():
            topic.task.cancel()
        self._notify()


def _split(updates: list[LiveUpdate], max_points: int) -> Iterator[list[LiveUpdate]]:
    """Messages of at most `max_points` points (an update too big alone is split by series;
    its later parts are not snapshots: they add buckets to the first)."""
    message: list[LiveUpdate] = []
    size = 0
    for update in updates:
        for part in _parts(update, max_points):
            if message and size + part.points > max_points:
                yield message
                message, size = [], 0
            message.append(part)
            size += part.points
    if message:
        yield message


def _parts(update: LiveUpdate, max_points: int) -> Iterator[LiveUpdate]:
    if update.points <= max_points:
        yield update
        return
    first = True
    chunk: list[LiveSeries] = []
    size = 0
    for s in update.series:
        for at in range(0, max(len(s.ts), 1), max_points):
            piece = LiveSeries(labels=s.labels, ts=s.ts[at : at + max_points], values=s.values[at : at + max_points])
            if chunk and size + len(piece.ts) > max_points:
                yield dataclasses.replace(update, series=tuple(chunk), snapshot=update.snapshot and first)
                first, chunk, size = False, [], 0
            chunk.append(piece)
            size += len(piece.ts)
    if chunk:
        yield dataclasses.replace(update, series=tuple(chunk), snapshot=update.snapshot and first)
