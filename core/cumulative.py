"""Cumulative counters -> Argus deltas: the one converter every cumulative path uses.

Argus stores counters as deltas; exporters (Prometheus scrapes and remote write, OTLP
cumulative sums, host counters, `argus push --cumulative`) send running totals. Per series
the converter keeps the last point it counted (timestamp, value, start time) and turns each
new point into the increase since that one.

Semantics (docs/ingest-protocols.md, docs/decisions/0042-one-cumulative-converter.md):
- **First point** of a series with no state: a baseline, no delta (as Prometheus's
  `increase` ignores the first sample: the counter's past is unknown). Exception: a point
  that carries its start time (OTLP `start_time_unix_nano`) and started within `ttl_ms`
  counts whole: had the series been seen since it started, its state would still be held.
- **Reset**: a value below the previous one, or a start time later than the previous one,
  means the counter restarted from zero, so the new value itself is the delta.
- **Old or repeated points** (timestamp <= the last counted one) give nothing: a retried
  request or a replayed sample is never counted twice.
- **Bounded memory**: at most `max_series` states in memory (least recently used go first)
  and a state idle for longer than `ttl_ms` (by sample time) is forgotten, so its series
  starts over with a baseline. With a `CumulativeStateStore` behind it, evicted states are
  read back on demand and survive restarts (states idle past the TTL are pruned there too).
- **Commit after durability**: `begin()` computes deltas against the held state without
  changing it; `commit()` applies them once the caller's append is durable. A request whose
  append failed is converted the same way when it is retried (so its events, derived from
  its content, are the same ones and the event log deduplicates them).

Not thread-safe: one event loop. Two requests converting the same series at once would
both read the same state, so a caller holds `reserve(keys)` (or `reserve(None)`: every
key) across begin() .. commit(): requests with disjoint series run together (their appends
share the event log's group commit), those sharing a series wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

K = TypeVar("K", bound=Hashable)

DEFAULT_MAX_SERIES = 200_000
DEFAULT_TTL_MS = 6 * 3_600_000


class CumulativeState(NamedTuple):
    """The last counted point of one series (a tuple: cheap to make by the thousand)."""

    ts_ms: int
    value: float
    start_ms: int = 0


class CumulativeStateStore(Protocol):
    """Durable states of the converter, keyed by an opaque key (bytes).

    `load` returns the states it holds for the keys asked (absent keys are new series);
    `save` is durable when it returns; `prune` forgets states last counted before
    `before_ms`. Order between calls is the caller's: one writer."""

    async def load(self, keys: Iterable[bytes]) -> dict[bytes, CumulativeState]: ...

    async def save(self, states: Mapping[bytes, CumulativeState]) -> None: ...

    async def prune(self, before_ms: int) -> int: ...


def encode_key(key: Hashable) -> bytes:
    """A stable byte form of a key made of str/int/float tuples (for the durable store); a
    key that is bytes already is its own form."""
    if isinstance(key, bytes):
        return key
    # A copy of exact size: orjson's bytes keep their ~4 KB buffer, and these are held in
    # memory by the hundred thousand (converter states, remote write's series shapes).
    return bytes(memoryview(orjson.dumps(key)))


class CumulativeDeltas(Generic[K]):
    """Per series cumulative -> delta state (see the module docstring for the semantics)."""

    def __init__(
        self,
        *,
        max_series: int = DEFAULT_MAX_SERIES,
        ttl_ms: int = DEFAULT_TTL_MS,
        store: CumulativeStateStore | None = None,
    ) -> None:
        if max_series < 1 or ttl_ms < 1:
            raise ValueError("max_series and ttl_ms must be positive")
        self.max_series = max_series
        self.ttl_ms = ttl_ms
        self._store = store
        self._states: OrderedDict[K, CumulativeState] = OrderedDict()
        self._reserved: set[K] = set()
        self._everything = False
        self._waiting_for_everything = 0
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._states)

    def state(self, key: K) -> CumulativeState | None:
        return self._states.get(key)

    @contextlib.asynccontextmanager
    async def reserve(self, keys: Collection[K] | None) -> AsyncIterator[None]:
        """Hold `keys` (None: every key) until the block ends, once no other holder has any of
        them. Someone waiting for every key goes before new holders of some keys."""
        async with self._changed:
            if keys is None:
                self._waiting_for_everything += 1
                try:
                    await self._changed.wait_for(lambda: not self._everything and not self._reserved)
                finally:
                    self._waiting_for_everything -= 1
                self._everything = True
            else:
                await self._changed.wait_for(
                    lambda: (
                        not self._everything and not self._waiting_for_everything and self._reserved.isdisjoint(keys)
                    )
                )
                self._reserved.update(keys)
        try:
            yield
        finally:
            async with self._changed:
                if keys is None:
                    self._everything = False
                else:
                    self._reserved.difference_update(keys)
                self._changed.notify_all()

    async def begin(self, keys: Iterable[K]) -> Conversion[K]:
        """A conversion over the held states (read back from the store for `keys` missing
        in memory). Nothing changes until `commit()`."""
        if self._store is not None:
            states = self._states
            missing = {encode_key(key): key for key in keys if key not in states}
            if missing:
                for raw, state in (await self._store.load(missing.keys())).items():
                    self._remember(missing[raw], state)
        return Conversion(self)

    def begin_memory(self) -> Conversion[K]:
        """A conversion over the states in memory only (no store is read)."""
        return Conversion(self)

    def update(self, current: Mapping[K, float], ts_ms: int, *, forget_missing: bool = False) -> dict[K, float]:
        """In-memory form for one reading of many counters at `ts_ms` (agent collectors):
        deltas of the keys that have one; states applied at once. `forget_missing`: the
        reading is complete, so a key absent from it went away (it starts over with a
        baseline when it comes back)."""
        conversion = Conversion(self)
        deltas = {}
        for key, value in current.items():
            delta = conversion.delta(key, ts_ms, value)
            if delta is not None:
                deltas[key] = delta
        conversion.apply()
        if forget_missing:
            for key in [key for key in self._states if key not in current]:
                del self._states[key]
        return deltas

    def _remember(self, key: K, state: CumulativeState) -> None:
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self.max_series:
            self._states.popitem(last=False)

    def _held(self, key: K, ts_ms: int) -> CumulativeState | None:
        state = self._states.get(key)
        if state is None:
            return None
        if ts_ms - state.ts_ms > self.ttl_ms:
            return None  # idle too long: its series starts over
        self._states.move_to_end(key)
        return state


@dataclass(slots=True)
class Conversion(Generic[K]):
    """One request's points converted against the held states (and each other, in order)."""

    owner: CumulativeDeltas[K]
    pending: dict[K, CumulativeState] = field(default_factory=dict)
    dropped: int = 0
    """Points older than or as old as the last counted one (already counted or out of order)."""

    def delta(self, key: K, ts_ms: int, value: float, *, start_ms: int = 0) -> float | None:
        """The increase since the last counted point of `key`, or None (a baseline, a
        non-finite value, or a point not newer than the last)."""
        if not math.isfinite(value):
            return None
        previous = self.pending.get(key) or self.owner._held(key, ts_ms)
        if previous is None:
            self.pending[key] = CumulativeState(ts_ms, value, start_ms)
            started_recently = 0 < start_ms <= ts_ms and ts_ms - start_ms <= self.owner.ttl_ms
            return value if started_recently and value >= 0 else None
        if ts_ms <= previous.ts_ms:
            self.dropped += 1
            return None
        self.pending[key] = CumulativeState(ts_ms, value, start_ms or previous.start_ms)
        restarted = start_ms > previous.start_ms > 0 or value < previous.value
        return value if restarted else value - previous.value

    def deltas(
        self,
        keys: Sequence[K],
        counts: npt.NDArray[np.int64],
        ts_ms: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        start_ms: npt.NDArray[np.int64] | None = None,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], int]:
        """`delta()` over many series at once: `keys[i]` owns the next `counts[i]` points,
        which are in time order within their series and hold no NaN. The same answers and
        states as calling `delta()` point by point: (which points gave a delta, the deltas
        (meaningful where given), how many points only set a baseline)."""
        n = len(keys)
        if len(set(keys)) != n:
            return self._deltas_one_by_one(keys, counts, ts_ms, values, start_ms)
        total = len(ts_ms)
        starts = start_ms if start_ms is not None else np.zeros(total, dtype=np.int64)
        # The one per-series step: what each series was last counted at (this request's
        # pending states first, then the held ones; LRU order is refreshed on commit).
        pending = self.pending
        held = self.owner._states
        if pending:
            in_pending = [key in pending for key in keys]
            states = [pending.get(key) or held.get(key) for key in keys]
        else:
            in_pending = [False] * n
            states = list(map(held.get, keys))
        has_prev = np.fromiter((state is not None for state in states), dtype=bool, count=n)
        known = [state for state in states if state is not None]
        prev_ts = np.zeros(n, dtype=np.int64)
        prev_value = np.zeros(n, dtype=np.float64)
        prev_start = np.zeros(n, dtype=np.int64)
        if known:
            prev_value[has_prev] = [state.value for state in known]
            times = np.array([(state.ts_ms, state.start_ms) for state in known], dtype=np.int64)
            prev_ts[has_prev], prev_start[has_prev] = times[:, 0], times[:, 1]
        held_prev = has_prev & ~np.array(in_pending, dtype=bool)
        owner = np.repeat(np.arange(n), counts)
        finite = np.isfinite(values)
        old = finite & has_prev[owner] & (ts_ms <= prev_ts[owner])
        candidate = np.flatnonzero(finite & ~old)
        c_owner = owner[candidate]
        c_ts = ts_ms[candidate]
        repeated = np.zeros(len(candidate), dtype=bool)
        repeated[1:] = (c_owner[1:] == c_owner[:-1]) & (c_ts[1:] <= c_ts[:-1])
        self.dropped += int(old.sum()) + int(repeated.sum())
        kept = candidate[~repeated]
        o = owner[kept]
        t = ts_ms[kept]
        v = values[kept]
        s = starts[kept]
        first = np.ones(len(kept), dtype=bool)
        first[1:] = o[1:] != o[:-1]
        # A held state idle for longer than the TTL is forgotten (its series starts over).
        valid = has_prev[o] & ~(held_prev[o] & (t - prev_ts[o] > self.owner.ttl_ms))
        with_prev = ~first | valid
        before_value = np.empty(len(kept), dtype=np.float64)
        before_value[first] = prev_value[o[first]]
        before_value[1:][~first[1:]] = v[:-1][~first[1:]]
        # Start times carry forward: a point without one keeps its series' last known one.
        first_start = np.where(s != 0, s, np.where(valid, prev_start[o], 0))
        fill = np.where(first, first_start, s)
        marks = np.where(first | (s != 0), np.arange(len(kept)), 0)
        effective_start = fill[np.maximum.accumulate(marks)] if len(kept) else fill
        before_start = np.empty(len(kept), dtype=np.int64)
        before_start[first] = prev_start[o[first]]
        before_start[1:][~first[1:]] = effective_start[:-1][~first[1:]]
        restarted = ((s > before_start) & (before_start > 0)) | (v < before_value)
        delta = np.where(restarted, v, v - before_value)
        # A first point that carries a recent start time counts whole (module docstring).
        whole = ~with_prev & (s > 0) & (s <= t) & (t - s <= self.owner.ttl_ms) & (v >= 0)
        delta = np.where(whole, v, delta)
        given = with_prev | whole
        baselines = int((~given).sum())
        last = np.ones(len(kept), dtype=bool)
        last[:-1] = o[1:] != o[:-1]
        pending.update(
            zip(
                [keys[i] for i in o[last].tolist()],
                map(CumulativeState, t[last].tolist(), v[last].tolist(), effective_start[last].tolist()),
                strict=True,
            )
        )
        counted = np.zeros(total, dtype=bool)
        counted[kept] = given
        out = np.zeros(total, dtype=np.float64)
        out[kept] = delta
        return counted, out, baselines

    def _deltas_one_by_one(
        self,
        keys: Sequence[K],
        counts: npt.NDArray[np.int64],
        ts_ms: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        start_ms: npt.NDArray[np.int64] | None,
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64], int]:
        """`deltas()` when a key repeats in one call (each point sees the one before it)."""
        counted = np.zeros(len(ts_ms), dtype=bool)
        out = np.zeros(len(ts_ms), dtype=np.float64)
        baselines = 0
        owner = np.repeat(np.arange(len(keys)), counts).tolist()
        starts = start_ms.tolist() if start_ms is not None else [0] * len(ts_ms)
        for j, (i, ts, value, start) in enumerate(zip(owner, ts_ms.tolist(), values.tolist(), starts, strict=True)):
            before = self.dropped
            delta = self.delta(keys[i], ts, value, start_ms=start)
            if delta is None:
                baselines += 1 if self.dropped == before and math.isfinite(value) else 0
                continue
            counted[j] = True
            out[j] = delta
        return counted, out, baselines

    def apply(self) -> None:
        """Apply the pending states in memory only."""
        for key, state in self.pending.items():
            self.owner._remember(key, state)
        self.pending.clear()

    async def commit(self) -> None:
        """Apply the pending states (durably first when there is a store)."""
        store = self.owner._store
        if store is not None and self.pending:
            await store.save({encode_key(key): state for key, state in self.pending.items()})
        self.apply()
