"""The modules a process can run. `argus up` starts all of them; each `argus <target>`
starts one. Each has `start()` (returns when serving), `stop()`, and `ready`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from aiohttp import web

from argus.health import WriteHealth, watch_writes
from command_side.ingest.accept import BatchAcceptor
from command_side.ingest.grpc_service import SERVICE_NAME as INGEST_SERVICE
from command_side.ingest.grpc_service import IngestService
from command_side.ingest.grpc_service import add_to_server as add_ingest
from command_side.ingest.protocols.foreign import ForeignIngest, SeriesKey
from command_side.ingest.protocols.http import IngestHttp
from command_side.ingest.protocols.otlp import SERVICE_NAME as OTLP_SERVICE
from command_side.ingest.protocols.otlp import OtlpMetricsService, otlp_http_handler
from command_side.ingest.protocols.otlp import add_to_server as add_otlp
from command_side.ingest.registry import TenantRegistry
from core.adapters.sqlite_cumulative_state import SqliteCumulativeStateStore
from core.auth import ApiKeyRegistry
from core.cumulative import CumulativeDeltas
from core.errors import ArgusError, StorageError
from core.events import SAMPLES_TOPIC
from core.grpc_server import add_health_and_reflection, bind, make_server
from core.ports import ColdStore, EventLog, HotStore
from core.read_models import versioned_group
from core.settings import Settings
from core.telemetry import REGISTRY, add_metrics_route
from core.tls import check_bind
from projectors.cold_archive import ColdArchiveProjector
from projectors.rollups import RollupProjector
from projectors.series_index import SeriesIndexProjector
from query_side.admin import QuarantineSource
from query_side.alerts.http import AlertsApi

if TYPE_CHECKING:
    from query_side.engine import QueryEngine
    from query_side.live import LiveHub

log = logging.getLogger(__name__)


Readiness = Callable[[], Awaitable[bool | str]]
"""True when ready; False or the reason (text) when not (`/readyz` answers 503)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryExtension:
    """What the composition adds to the query API that query_side cannot build itself
    (routes on command_side handlers) or that it adds beside QueryService: HTTP routes, a
    gRPC service (returns its full name, for reflection) and a view to follow."""

    http: Callable[[web.Application], None] | None = None
    grpc: Callable[[grpc.aio.Server], str] | None = None
    follow: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None
    prime: Callable[[], Awaitable[None]] | None = None
    """Run before serving (read the view's log once)."""
    close: Callable[[], Awaitable[None]] | None = None
    """Run after the server and `follow` stopped."""


class Module(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def endpoints(self) -> dict[str, str]: ...


@dataclass(slots=True)
class _Tasks:
    """Background tasks of a module, stopped together."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    running: list[asyncio.Task[None]] = field(default_factory=list)

    def spawn(self, name: str, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self.running.append(asyncio.create_task(work(self.stop), name=name))

    async def close(self, timeout_s: float = 10.0) -> None:
        self.stop.set()
        if not self.running:
            return
        done, pending = await asyncio.wait(self.running, timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("task %s ended with %r", task.get_name(), task.exception())
        self.running.clear()


def _host_port(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


class IngestModule:
    name = "ingest"

    def __init__(
        self,
        *,
        settings: Settings,
        event_log: EventLog,
        hot_store: HotStore,
        api_keys: ApiKeyRegistry,
        clock_ms: Callable[[], int],
    ) -> None:
        self._config = settings.ingest_settings()
        self._log = event_log
        self._store = hot_store
        self._keys = api_keys
        self._clock_ms = clock_ms
        self._tasks = _Tasks()
        self._server = make_server(max_message_bytes=self._config.limits.max_message_bytes + 64 * 1024)
        self._runner: web.AppRunner | None = None
        self._states: SqliteCumulativeStateStore | None = None
        self.port = 0
        self.http_port = 0

    async def start(self) -> None:
        config = self._config
        registry = TenantRegistry(
            max_series_per_tenant=config.limits.max_series_per_tenant,
            max_active_series=config.limits.max_active_series,
        )
        await registry.seed(self._store, self._clock_ms())
        partitions = await self._log.partitions(SAMPLES_TOPIC)
        acceptor = BatchAcceptor(
            log_writer=self._log,
            registry=registry,
            limits=config.limits,
            partitions=partitions,
            retention_ms=config.retention_ms,
            clock_ms=self._clock_ms,
        )
        self._tasks.spawn("series-expiry", lambda stop: _every(stop, 60.0, lambda: registry.expire(self._clock_ms())))
        _observe_ingest(acceptor, registry)
        # Cumulative protocols (remote write, OTLP): one converter, its states kept in the
        # data dir so a restart neither loses nor double counts an increase (decision 0043).
        states: SqliteCumulativeStateStore | None = None
        candidate = SqliteCumulativeStateStore(config.state_dir / "ingest-cumulative.db")
        try:
            await candidate.start()
            states = candidate
        except (StorageError, OSError) as exc:
            # A read-only container without a data dir volume: states in memory only (a
            # restart then makes the next point of each series a baseline; never a double count).
            log.warning("cumulative converter states stay in memory: %s", exc)
            with contextlib.suppress(StorageError, OSError):
                await candidate.close()
        self._states = states
        deltas: CumulativeDeltas[SeriesKey] = CumulativeDeltas(store=states)
        foreign = ForeignIngest(acceptor, deltas)
        if states is not None:
            store = states
            self._tasks.spawn(
                "cumulative-prune",
                lambda stop: _every_async(stop, 600.0, lambda: store.prune(self._clock_ms() - deltas.ttl_ms)),
            )
        add_ingest(self._server, IngestService(acceptor, self._keys))
        add_otlp(self._server, OtlpMetricsService(foreign, self._keys, self._clock_ms))
        await add_health_and_reflection(self._server, [INGEST_SERVICE, OTLP_SERVICE])
        check_bind(config.addr, tls=config.tls, allow_insecure_bind=config.allow_insecure_bind, setting="ingest_addr")
        check_bind(
            config.http_addr, tls=config.tls, allow_insecure_bind=config.allow_insecure_bind, setting="ingest_http_addr"
        )
        self.port = bind(self._server, config.addr, config.tls)
        await self._server.start()
        http = IngestHttp(
            foreign,
            self._keys,
            max_body_bytes=config.limits.max_message_bytes,
            clock_ms=self._clock_ms,
            otlp_handler=otlp_http_handler(foreign, self._keys, self._clock_ms),
        )
        app = http.app()
        add_metrics_route(app, token=config.metrics_token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, port = _host_port(config.http_addr)
        site = web.TCPSite(self._runner, host, port, ssl_context=config.tls.ssl_context() if config.tls else None)
        try:
            await site.start()
        except OSError as exc:
            raise OSError(
                f"cannot listen on {config.http_addr} for ingest HTTP ({exc.strerror}); use --ingest-http-addr"
            ) from exc
        sockets = getattr(site._server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self._server.stop(grace=5.0)
        await self._tasks.close()
        if self._states is not None:
            await self._states.close()

    def endpoints(self) -> dict[str, str]:
        host, _ = _host_port(self._config.addr)
        http_host, _ = _host_port(self._config.http_addr)
        scheme = "https" if self._config.tls is not None else "http"
        return {"ingest (gRPC)": f"{host}:{self.port}", "ingest (HTTP)": f"{scheme}://{http_host}:{self.http_port}"}


async def _every(stop: asyncio.Event, interval_s: float, work: Callable[[], None]) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        work()


async def _every_async(stop: asyncio.Event, interval_s: float, work: Callable[[], Awaitable[object]]) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        if not stop.is_set():
            try:
                await work()
            except ArgusError as exc:
                log.warning("periodic work failed: %s", exc)


class ProjectorModule:
    name = "projectors"

    def __init__(
        self,
        *,
        settings: Settings,
        event_log: EventLog,
        hot_store: HotStore,
        clock_ms: Callable[[], int],
        projectors: tuple[str, ...] = ("rollups", "series-index"),
        version: int = 1,
        cold_store: ColdStore | None = None,
        health: WriteHealth | None = None,
    ) -> None:
        if health is not None:
            hot_store = watch_writes(hot_store, health)
        config = settings.projector_settings()
        # Each version of the hot read model has its own consumer groups (core/read_models.py).
        self.rollups = RollupProjector(
            log=event_log,
            store=hot_store,
            tiers=config.tiers,
            flush_interval_ms=config.flush_interval_ms,
            tier_flush_interval_ms=config.tier_flush_interval_ms,
            retention_check_interval_ms=config.retention_check_interval_ms,
            applied_event_memory_ms=config.applied_event_memory_ms,
            clock_ms=clock_ms,
            group=versioned_group("rollups", version),
        )
        self.series_index = SeriesIndexProjector(
            log=event_log,
            index=hot_store,
            flush_interval_ms=config.flush_interval_ms,
            group=versioned_group("series-index", version),
        )
        # Exports closed periods of the hot tiers to the cold store, on the retention cadence
        # (it must run before retention drops a period: see projectors/cold_archive.py).
        self.cold_archive = (
            ColdArchiveProjector(
                chunks=hot_store,
                index=hot_store,
                cold=cold_store,
                tiers=config.tiers,
                clock_ms=clock_ms,
                interval_ms=config.retention_check_interval_ms,
            )
            if cold_store is not None
            else None
        )
        if "cold-archive" in projectors and self.cold_archive is None:
            raise ValueError("the cold-archive projector needs a cold store")
        self._selected = projectors
        self._tasks = _Tasks()

    async def start(self) -> None:
        if "rollups" in self._selected:
            self._tasks.spawn("rollups", self.rollups.run)
        if "series-index" in self._selected:
            self._tasks.spawn("series-index", self.series_index.run)
        if "cold-archive" in self._selected and self.cold_archive is not None:
            self._tasks.spawn("cold-archive", self.cold_archive.run)

    async def stop(self) -> None:
        await self._tasks.close(timeout_s=30.0)

    def endpoints(self) -> dict[str, str]:
        return {}


class QueryModule:
    name = "query"

    def __init__(
        self,
        *,
        settings: Settings,
        hot_store: HotStore,
        api_keys: ApiKeyRegistry,
        clock_ms: Callable[[], int],
        cold_store: ColdStore | None = None,
        readiness: Readiness | None = None,
        quarantine: QuarantineSource | None = None,
        alerts: AlertsApi | None = None,
        extensions: tuple[QueryExtension, ...] = (),
    ) -> None:
        from query_side.engine import QueryEngine
        from query_side.limits import QueryLimits
        from query_side.live import LiveHub

        self._readiness = readiness
        self._quarantine = quarantine
        self._alerts = alerts
        self._extensions = extensions
        self._config = settings.query_settings()
        self._keys = api_keys
        self._clock_ms = clock_ms
        self._engine = QueryEngine(
            hot_store,
            hot_store,
            self._config.tiers,
            clock_ms,
            cold=cold_store,
            limits=QueryLimits.from_settings(settings),
        )
        self.live = LiveHub(self._engine, clock_ms)
        """The live queries (QueryService.Watch) of this server, shared by all its viewers."""
        self._server = make_server(max_message_bytes=self._config.max_message_bytes)
        self._runner: web.AppRunner | None = None
        self._tasks = _Tasks()
        self.grpc_port = 0
        self.http_port = 0

    async def start(self) -> None:
        from query_side import grpc_service
        from query_side.grpc_web import MethodTable, add_grpc_web_routes
        from query_side.http_gateway import HttpRunner, make_http_app
        from query_side.web_app import add_web_app_routes

        config = self._config
        tls = config.tls
        insecure_ok = config.allow_insecure_bind
        check_bind(config.grpc_addr, tls=tls, allow_insecure_bind=insecure_ok, setting="query_addr")
        check_bind(config.http_addr, tls=tls, allow_insecure_bind=insecure_ok, setting="http_addr")
        if self._alerts is not None:
            await self._alerts.active.refresh()  # serve the alerts the topic holds from the first request
            self._tasks.spawn("active-alerts", self._alerts.active.run)
        # Every servicer registered through `server` is served over gRPC also as gRPC-web on
        # the HTTP port (query_side/grpc_web.py): register here, nowhere else.
        web_methods = MethodTable()
        server = web_methods.recording(self._server)
        services = [grpc_service.SERVICE_NAME]
        for i, ext in enumerate(self._extensions):
            if ext.prime is not None:
                await ext.prime()
            if ext.follow is not None:
                self._tasks.spawn(f"query-extension-{i}", ext.follow)
            if ext.grpc is not None:
                services.append(ext.grpc(server))
        servicer = grpc_service.QueryServicer(self._engine, self._keys, self._clock_ms, live=self.live)
        grpc_service.add_to_server(server, servicer)
        await add_health_and_reflection(self._server, services)
        self.grpc_port = bind(self._server, config.grpc_addr, tls)
        await self._server.start()
        app = make_http_app(
            self._engine,
            self._keys,
            self._clock_ms,
            readiness=self._readiness,
            quarantine=self._quarantine,
            alerts=self._alerts,
        )
        for ext in self._extensions:
            if ext.http is not None:
                ext.http(app)
        add_metrics_route(app, token=config.metrics_token)
        _observe_query(self._engine, self.live)
        add_grpc_web_routes(
            app, web_methods, cors_origins=config.cors_origins, max_message_bytes=config.max_message_bytes
        )
        add_web_app_routes(app)  # last: every API route keeps precedence over the app's paths
        self._runner = HttpRunner(app, access_log=None)
        await self._runner.setup()
        host, port = _host_port(config.http_addr)
        site = web.TCPSite(self._runner, host, port, ssl_context=tls.ssl_context() if tls is not None else None)
        try:
            await site.start()
        except OSError as exc:
            raise OSError(f"cannot listen on {config.http_addr} for HTTP ({exc.strerror}); use --http-addr") from exc
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        # Running queries end first (Unavailable), so the listeners' graceful stop does not
        # wait up to a query timeout for them.
        self.live.close()
        self._engine.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._server.stop(grace=2.0)
        await self._tasks.close()
        for ext in self._extensions:
            if ext.close is not None:
                await ext.close()

    def endpoints(self) -> dict[str, str]:
        host, _ = _host_port(self._config.http_addr)
        qhost, _ = _host_port(self._config.grpc_addr)
        scheme = "https" if self._config.tls is not None else "http"
        return {"query (HTTP)": f"{scheme}://{host}:{self.http_port}", "query (gRPC)": f"{qhost}:{self.grpc_port}"}


def _observe_ingest(acceptor: BatchAcceptor, registry: TenantRegistry) -> None:
    """Ingest's memory and series, read at each collect (all tenants together: no tenant label)."""
    REGISTRY.gauge(
        "argus_ingest_identity_cache_bytes", "Estimated bytes of validated series identities kept."
    ).set_function(lambda: float(acceptor.identities.bytes))
    REGISTRY.gauge("argus_ingest_identity_cache_entries", "Validated series identities kept.").set_function(
        lambda: float(len(acceptor.identities))
    )
    REGISTRY.gauge("argus_ingest_active_series", "Series written recently, all tenants together.").set_function(
        lambda: float(registry.active_series())
    )


def _observe_query(engine: QueryEngine, live: LiveHub) -> None:
    """The query module's caches and live hub, read at each collect (the newest module wins)."""
    cache = REGISTRY.gauge("argus_query_cache_bytes", "Bytes of decoded chunks the query engine keeps.", ["cache"])
    cache.set_function(lambda: float(engine.cache_sizes()[0]), "decoded_chunks")
    entries = REGISTRY.gauge("argus_query_cache_entries", "Entries of the query engine's caches.", ["cache"])
    entries.set_function(lambda: float(engine.cache_sizes()[1]), "series")
    REGISTRY.gauge("argus_live_topics", "Distinct live queries (Watch) being kept current.").set_function(
        lambda: float(live.topics)
    )
    REGISTRY.gauge("argus_live_subscribers", "Viewers of live queries (Watch streams).").set_function(
        lambda: float(live.subscribers())
    )
    for name, help_text, read in (
        ("argus_live_queries_total", "Queries the live hub ran to refresh its topics.", lambda: live.queries_run),
        ("argus_live_deltas_total", "Deltas the live hub published to viewers.", lambda: live.deltas_published),
        (
            "argus_live_overflow_snapshots_total",
            "Snapshots sent to viewers that fell behind (their deltas dropped).",
            lambda: live.snapshots_after_overflow,
        ),
    ):
        REGISTRY.observed_counter(name, help_text).set_function(read)
