"""Versions of a read model, and the hot store that follows the active one.

`argus replay` rebuilds a read model into a fresh copy (version N+1) and, once it has caught
up with the log, appends `ReadModelActivated` to the config topic. Every process that reads
or projects the hot read model reads that topic through its `ConfigView` (state
`ReadModelVersions`) in a `VersionedHotStore`, which switches to the new version. See
docs/decisions/0011-replay-and-read-model-versions.md.

Version 1 is the store the configuration names; version N > 1 lives beside it at a URL
derived from the configured one (`versioned_store_url`), and its projectors use their own
consumer groups (`versioned_group`), so each version has its own offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from contracts.argus.events.v1 import events_pb2
from core.adapters.urls import open_hot_store, sqlite_path
from core.config_view import ConfigKind, ConfigView, config_change
from core.errors import Conflict, InvalidArgument, StorageError
from core.events import CONFIG_TOPIC, SAMPLES_TOPIC, make_event
from core.model import DEFAULT_TIERS, Tier
from core.ports import Event, EventLog, ForgetsGroups, HotStore, LabelFilter, MetricSummary, SeriesRecord, StoredChunk

log = logging.getLogger(__name__)

HOT_READ_MODEL = "hot"
"""The rollup tiers, the series index and projector state: one store, so one version."""

DEFAULT_DYNAMODB_PREFIX = "argus_"
"""Table prefix assumed when a dynamodb:// URL names none (keep in step with the adapter)."""


def versioned_store_url(base_url: str, version: int) -> str:
    """The store URL of `version` of a read model whose version 1 is `base_url`.

    sqlite:///dir/hot.db -> sqlite:///dir/hot.v2.db (a new file beside the live one);
    dynamodb://REGION?prefix=argus_ -> dynamodb://REGION?prefix=argus_v2_ (new tables).
    """
    if version < 1:
        raise InvalidArgument(f"read model version must be >= 1, got {version}", parameter="version")
    if version == 1:
        return base_url
    parsed = urlparse(base_url)
    if parsed.scheme == "sqlite":
        path = sqlite_path(base_url, parameter="hot_store")
        stem = path.stem
        new_path = path.with_name(f"{stem}.v{version}{path.suffix or '.db'}")
        return f"sqlite:///{new_path}"
    if parsed.scheme == "dynamodb":
        query = dict(parse_qsl(parsed.query, keep_blank_values=True))
        query["prefix"] = f"{query.get('prefix', DEFAULT_DYNAMODB_PREFIX)}v{version}_"
        return urlunparse(parsed._replace(query=urlencode(query, safe=":/")))
    raise InvalidArgument(
        f"hot_store: cannot derive a versioned copy of {base_url!r} (supported: sqlite, dynamodb)",
        parameter="hot_store",
    )


VERSIONED_GROUPS: Final = ("rollups", "series-index")
"""The projectors that write the hot read model: one consumer group each per version."""


def versioned_group(group: str, version: int) -> str:
    """Consumer group of a projector writing `version` (version 1 keeps the plain name)."""
    return group if version == 1 else f"{group}.v{version}"


async def forget_replaced_groups(log: EventLog, active: int) -> None:
    """Forget the consumer groups of every version before `active`: once projectors write
    `active`, the replaced versions' groups would only hold the embedded log's retention back
    (their read models are no longer read). A no-op on a log whose retention ignores groups."""
    if not isinstance(log, ForgetsGroups):
        return
    for version in range(1, active):
        for group in VERSIONED_GROUPS:
            await log.forget_group(versioned_group(group, version), SAMPLES_TOPIC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadModelState:
    """What the config topic says about one read model."""

    active: int = 1
    newest: int = 1  # highest version reserved by a replay or activated


def read_model_entity(model: str) -> str:
    """The config entity of a read model (its version counts its config events)."""
    return f"read_model:{model}"


class ReadModelVersions:
    """Read model -> active and newest version: the read-model state of a `ConfigView`."""

    def __init__(self) -> None:
        self._states: dict[str, ReadModelState] = {}

    def kinds(self) -> Sequence[ConfigKind[Any]]:
        return (
            ConfigKind(
                payload=events_pb2.ReadModelReplayStarted,
                entity=lambda p: read_model_entity(p.model),
                apply=self._started,
            ),
            ConfigKind(
                payload=events_pb2.ReadModelActivated,
                entity=lambda p: read_model_entity(p.model),
                apply=self._activated,
            ),
        )

    def state(self, model: str = HOT_READ_MODEL) -> ReadModelState:
        return self._states.get(model, ReadModelState())

    def _started(self, started: events_pb2.ReadModelReplayStarted, _event: Event) -> None:
        old = self.state(started.model)
        self._states[started.model] = ReadModelState(active=old.active, newest=max(old.newest, started.version))

    def _activated(self, activated: events_pb2.ReadModelActivated, _event: Event) -> None:
        old = self.state(activated.model)
        self._states[activated.model] = ReadModelState(
            active=activated.version, newest=max(old.newest, activated.version)
        )


RESERVE_ATTEMPTS = 5


async def reserve_version(
    events: EventLog, *, model: str, base_url: str, now_ms: int, author: str = "argus replay"
) -> tuple[int, str]:
    """Reserve the next version of `model` for a replay; return (version, store URL).

    Conditional on the read model's config version, so two replays started together never
    get the same version: the loser re-reads and takes the next one.
    """
    view = ConfigView(events, [ReadModelVersions()])
    # Two replays are two requests, never one retried: their events must not share an id.
    request = secrets.token_bytes(16)
    for _ in range(RESERVE_ATTEMPTS):
        await view.refresh()
        entity = read_model_entity(model)
        expected = view.version(entity)
        version = view.state(ReadModelVersions).state(model).newest + 1
        url = versioned_store_url(base_url, version)
        payload = events_pb2.ReadModelReplayStarted(
            model=model, version=version, store_url=url, change=config_change(author=author, expected_version=expected)
        )
        identity = f"{model}\x00{version}\x00{expected}\x00".encode() + request
        try:
            await view.append_change(make_event(payload, identity=identity, partition_key=b"", time_ms=now_ms))
        except Conflict:
            continue
        return version, url
    raise Conflict(f"reserve a version of read model {model!r}: {RESERVE_ATTEMPTS} concurrent replays got there first")


async def activate_version(
    events: EventLog, *, model: str, version: int, store_url: str, now_ms: int, author: str = "argus replay"
) -> None:
    """Append ReadModelActivated: readers and projectors of `model` switch to `version`.

    Unconditional (no expected version): the replay that built `version` decides; the same
    activation twice is one event.
    """
    payload = events_pb2.ReadModelActivated(
        model=model, version=version, store_url=store_url, change=config_change(author=author, expected_version=None)
    )
    identity = f"{model}\x00{version}".encode()
    await events.append(CONFIG_TOPIC, [(0, make_event(payload, identity=identity, partition_key=b"", time_ms=now_ms))])


SwitchListener = Callable[[HotStore, int], Awaitable[None]]
"""Called with the new store and version before readers switch (projectors restart on it)."""


class VersionedHotStore:
    """The hot store of the active read-model version; follows the config topic and switches.

    A switch opens the new version, awaits the listeners (projectors move to the new store
    and their new consumer groups), then points every read and write made through this
    object at the new store. The old store is closed after `retire_grace_s`, so queries
    already running on it finish.
    """

    def __init__(
        self,
        events: EventLog,
        *,
        config: ConfigView | None = None,
        base_url: str,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        refresh_interval_s: float = 1.0,
        retire_grace_s: float = 5.0,
    ) -> None:
        self._events = events
        self._base_url = base_url
        self._tiers = tuple(tiers)
        self._refresh_interval_s = refresh_interval_s
        self._retire_grace_s = retire_grace_s
        # The process's shared view (it must have ReadModelVersions), else one of its own.
        self._config = config if config is not None else ConfigView(events, [ReadModelVersions()])
        self._versions = self._config.state(ReadModelVersions)
        self._current: HotStore | None = None
        self._listeners: list[SwitchListener] = []
        self._retiring: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.version = 0
        self.url = ""

    @property
    def current(self) -> HotStore:
        if self._current is None:
            raise StorageError("hot store used before start()")
        return self._current

    def on_switch(self, listener: SwitchListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: SwitchListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def start(self) -> None:
        await self._config.refresh()
        version = self._versions.state(HOT_READ_MODEL).active
        self._current = await self._open(version)
        self.version, self.url = version, versioned_store_url(self._base_url, version)
        if version > 1:
            log.info("hot read model: version %d (%s)", version, self.url)
        self._task = asyncio.create_task(self._follow(), name="read-model-versions")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        for task in self._retiring:
            task.cancel()
        for task in self._retiring:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._current is not None:
            await self._current.close()
            self._current = None

    async def _open(self, version: int) -> HotStore:
        url = versioned_store_url(self._base_url, version)
        # SQLite would create an empty file: a reader that cannot see the replayed copy
        # (another machine, another data dir) must not switch to nothing.
        if version > 1 and url.startswith("sqlite:") and not sqlite_path(url, parameter="hot_store").exists():
            raise StorageError(f"open version {version} of the hot read model: {url} does not exist here")
        store = open_hot_store(url, tiers=self._tiers)
        await store.start()
        return store

    async def refresh(self) -> None:
        """Read new config events; switch if another version became active."""
        async with self._lock:
            await self._config.refresh()
            version = self._versions.state(HOT_READ_MODEL).active
            if version != self.version:
                await self._switch(version)

    async def _switch(self, version: int) -> None:
        new = await self._open(version)
        for listener in list(self._listeners):
            await listener(new, version)
        old, self._current = self._current, new
        previous = self.version
        self.version, self.url = version, versioned_store_url(self._base_url, version)
        log.info("hot read model: switched from version %d to version %d (%s)", previous, version, self.url)
        if old is not None:
            self._retiring.append(asyncio.create_task(self._retire(old), name="retire-read-model"))

    async def _retire(self, store: HotStore) -> None:
        try:
            await asyncio.sleep(self._retire_grace_s)
        finally:
            await store.close()

    async def _follow(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._refresh_interval_s)
            if self._stop.is_set():
                return
            try:
                await self.refresh()
            except Exception as exc:  # keep serving the version we have
                log.warning("hot read model: cannot follow version changes: %s", exc)

    # ------------------------------------------------------------ HotStore, delegated

    async def write_chunks(self, tier: str, chunks: Sequence[StoredChunk]) -> None:
        await self.current.write_chunks(tier, chunks)

    async def get_chunks(self, tier: str, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredChunk]:
        return await self.current.get_chunks(tier, keys)

    async def read_range(
        self, tier: str, series_ids: Sequence[int], start_ms: int, end_ms: int, chunk_span_ms: int
    ) -> list[StoredChunk]:
        return await self.current.read_range(tier, series_ids, start_ms, end_ms, chunk_span_ms)

    async def delete_before(self, tier: str, before_ms: int, chunk_span_ms: int) -> int:
        return await self.current.delete_before(tier, before_ms, chunk_span_ms)

    async def upsert_series(self, records: Sequence[SeriesRecord]) -> None:
        await self.current.upsert_series(records)

    async def find_series(self, tenant: str, metric: str, where: LabelFilter | None = None) -> list[SeriesRecord]:
        return await self.current.find_series(tenant, metric, where)

    async def list_metrics(self, tenant: str) -> list[MetricSummary]:
        return await self.current.list_metrics(tenant)

    async def label_values(self, tenant: str, label: str, metric: str | None = None) -> list[str]:
        return await self.current.label_values(tenant, label, metric)

    async def tenant_series(self, tenant: str | None = None) -> list[SeriesRecord]:
        return await self.current.tenant_series(tenant)

    async def filter_new_events(self, projector: str, event_ids: Sequence[bytes]) -> set[bytes]:
        return await self.current.filter_new_events(projector, event_ids)

    async def record_events(self, projector: str, event_ids: Sequence[bytes], time_ms: int) -> None:
        await self.current.record_events(projector, event_ids, time_ms)

    async def forget_events_before(self, projector: str, time_ms: int) -> int:
        return await self.current.forget_events_before(projector, time_ms)
