"""Every module a process can run, in one table: its name, the resources it needs, how to
build it, the addresses it listens on, the data-dir roles it locks, and where `argus up` runs
it (in its own process, or in the `argus project` child it supervises).

`argus up` is these same modules started together (placement decides the process); each
`argus <target>` starts a subset. A process opens only the resources its modules need
(argus/container.py), so `argus ingest` never opens the cold store. Adding a service (alerts,
dashboards) is one `ModuleSpec` in `REGISTRY` plus, if it wants one, its own command.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from argus.alerts_api import alerts_api
from argus.container import RESOURCES, Runtime
from argus.dashboards_api import dashboards_api
from argus.modules import IngestModule, Module, ProjectorModule, QueryModule
from argus.projector_names import ALL_PROJECTORS as ALL_PROJECTORS
from argus.supervisor import ProjectorProcess
from argus.versioned_projectors import VersionedProjectors
from core.adapters.urls import open_alert_read_models
from core.alerting.state import AlertConfigState
from core.model import DEFAULT_TENANT
from core.quarantine import QuarantineReport, read_quarantine
from core.tls import ClientTls
from query_side.alerts.active import ActiveAlerts
from query_side.alerts.http import AlertsApi
from query_side.alerts.read_models import AlertReadModelProjector

Placement = Literal["parent", "child"]


@dataclass(slots=True, kw_only=True)
class Wiring:
    """What one command adds to the registry's recipes: its options, and the modules built so
    far (a later module may use an earlier one, as the collector uses ingest's port)."""

    projectors: tuple[str, ...] = ALL_PROJECTORS
    api_key: str = ""
    child: ProjectorProcess | None = None
    """`argus up`'s projector process, when the child-placed modules run there."""
    built: dict[str, Module] = field(default_factory=dict)
    dashboards_dir: Path | None = None
    """`--dashboards-dir`: the folder the dashboards module provisions from."""
    dashboards_tenant: str = DEFAULT_TENANT
    default_dashboards: bool = True
    """Add the shipped dashboards (This host) for `dashboards_tenant` when absent (`argus up`)."""
    alerts_replica: str = ""
    """`argus alerts serve --replica`: this replica's own consumer groups (decision 0030)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSpec:
    name: str
    needs: frozenset[str]
    """Resources of argus/container.py `RESOURCES` the module uses."""
    build: Callable[[Runtime, Wiring], Module]
    placement: Placement
    """Where `argus up` runs it: `parent` (its own process) or `child` (the supervised
    `argus project` process, which has a core of its own)."""
    listens: tuple[str, ...] = ()
    """Settings naming its listen addresses (checked against TLS before anything starts)."""
    locks: Callable[[Wiring], tuple[str, ...]] = lambda _wiring: ()
    """Data-dir roles only one process may run at a time (core/data_dir.py)."""
    needs_for: Callable[[Wiring], frozenset[str]] | None = None
    """Needs that depend on the wiring (the cold store only for the cold-archive projector)."""

    def resources(self, wiring: Wiring) -> frozenset[str]:
        return self.needs_for(wiring) if self.needs_for is not None else self.needs


def _ingest(rt: Runtime, _wiring: Wiring) -> Module:
    return IngestModule(
        settings=rt.settings, event_log=rt.event_log, hot_store=rt.hot_store, api_keys=rt.api_keys, clock_ms=rt.clock_ms
    )


def _projectors(rt: Runtime, wiring: Wiring) -> Module:
    if wiring.child is not None:
        # `argus up`: they run in the child; this process's readers follow its versions.
        return wiring.child.following(rt.hot_store)
    # Re-made on the new store when `argus replay` activates a new read-model version.
    return VersionedProjectors(
        store=rt.hot_store,
        event_log=rt.event_log,
        make=lambda store, version: ProjectorModule(
            settings=rt.settings,
            event_log=rt.event_log,
            hot_store=store,
            clock_ms=rt.clock_ms,
            projectors=wiring.projectors,
            version=version,
            cold_store=rt.cold_store,
            health=rt.health,
        ),
    )


def _query(rt: Runtime, wiring: Wiring) -> Module:
    child = wiring.child
    event_log = rt.event_log

    async def quarantine() -> QuarantineReport:
        return await read_quarantine(event_log)

    async def readiness() -> bool | str:
        # The projectors of this process (single process) or of the child: can they write?
        reason = rt.health.reason or (child.not_ready_reason() if child is not None else None)
        if reason:
            return reason
        # A partition halted on a newer schema version is not being applied: not ready.
        halted = [h for h in (await quarantine()).halts if h.halted]
        if halted:
            h = halted[0]
            return (
                f"consumer group {h.group} halted {h.topic} partition {h.partition} "
                f"at offset {h.offset}: {h.error} (upgrade needed)"
            )
        return True

    # The alert read models persist (decision 0046): a restart projects only what the alerts
    # topic gained since. A DynamoDB hot store's prefix holds them, else alerts.db does (0059).
    s = rt.settings
    projector = AlertReadModelProjector(
        event_log,
        open_alert_read_models(hot_store_url=s.hot_store_url, event_log_url=s.event_log_url, data_dir=s.data_dir),
    )
    active = ActiveAlerts(event_log, projector=projector)
    return QueryModule(
        settings=rt.settings,
        hot_store=rt.hot_store,
        api_keys=rt.api_keys,
        clock_ms=rt.clock_ms,
        cold_store=rt.cold_store,
        readiness=readiness,
        quarantine=quarantine,
        alerts=AlertsApi(active=active, config=rt.config.state(AlertConfigState)),
        extensions=(
            alerts_api(
                event_log=event_log,
                keys=rt.api_keys,
                view=rt.config,
                active=active,
                clock_ms=rt.clock_ms,
            ),
            dashboards_api(keys=rt.api_keys, view=rt.config, clock_ms=rt.clock_ms),
        ),
    )


def _collector(rt: Runtime, wiring: Wiring) -> Module:
    from argus.collector_module import CollectorModule

    ingest = wiring.built["ingest"]
    assert isinstance(ingest, IngestModule), "the collector pushes through this process's ingest"
    config = rt.settings.collector_settings()
    tls, server_name = _loopback_tls(rt)
    return CollectorModule(
        target=lambda: f"127.0.0.1:{ingest.port}",
        api_key=wiring.api_key,
        region=config.region,
        interval_s=config.interval_s,
        host=socket.gethostname(),
        tls=tls,
        tls_server_name=server_name,
    )


def _loopback_tls(rt: Runtime) -> tuple[ClientTls | None, str]:
    """How a module of this process pushes to its own ingest: it trusts the server's own
    certificate and, under mutual TLS, presents it too."""
    config = rt.settings.collector_settings()
    server_tls = config.tls
    if server_tls is None:
        return None, ""
    tls = ClientTls(ca_file=server_tls.cert_file, cert_file=server_tls.cert_file, key_file=server_tls.key_file)
    host = config.ingest_addr.rpartition(":")[0].strip("[]")
    # The name the certificate carries; we connect over loopback.
    return tls, host if host and host not in ("0.0.0.0", "::") else ""


def _self_metrics(rt: Runtime, wiring: Wiring) -> Module:
    from argus.self_metrics import SelfMetricsModule

    ingest = wiring.built["ingest"]
    assert isinstance(ingest, IngestModule), "the self metrics go through this process's ingest"
    tls, server_name = _loopback_tls(rt)
    return SelfMetricsModule(
        target=lambda: f"127.0.0.1:{ingest.port}",
        data_dir=rt.settings.data_dir,
        config=rt.config,
        clock_ms=rt.clock_ms,
        region=rt.settings.region,
        host=socket.gethostname(),
        interval_s=rt.settings.self_metrics_interval_s,
        tls=tls,
        tls_server_name=server_name,
    )


def _alerts(rt: Runtime, wiring: Wiring) -> Module:
    from argus.alerts_module import AlertsModule, NotifierService
    from query_side.alerts.evaluator import ALERT_PARTITIONS
    from query_side.alerts.ownership import Ownership
    from query_side.engine import QueryEngine
    from query_side.limits import QueryLimits

    # The notifier runs beside the evaluator (started after it, stopped before it); both act
    # only on the shards this replica owns (decision 0030).
    ownership = Ownership(shards=ALERT_PARTITIONS)
    replica = wiring.alerts_replica
    notifier = NotifierService(
        event_log=rt.event_log, config=rt.config, clock_ms=rt.clock_ms, ownership=ownership, replica=replica
    )
    # Rules over long windows are queries on the read models (decision 0032): its own engine,
    # so alert queries never wait behind the API's (and `argus alerts serve` has one too).
    engine = QueryEngine(
        rt.hot_store,
        rt.hot_store,
        rt.settings.query_settings().tiers,
        rt.clock_ms,
        cold=rt.cold_store,
        limits=QueryLimits.from_settings(rt.settings),
    )
    return AlertsModule(
        event_log=rt.event_log,
        config=rt.config,
        clock_ms=rt.clock_ms,
        services=[notifier],
        ownership=ownership,
        replica=replica,
        watchdog=True,
        engine=engine,
    )


def _dashboards(rt: Runtime, wiring: Wiring) -> Module:
    from argus.dashboards_module import DashboardsModule

    return DashboardsModule(
        view=rt.config,
        tenant=wiring.dashboards_tenant,
        clock_ms=rt.clock_ms,
        folder=wiring.dashboards_dir,
        defaults=wiring.default_dashboards,
        # `argus up` writes its own metrics to `_argus` (when "self-metrics" runs): their dashboard
        self_defaults=wiring.default_dashboards and rt.settings.self_metrics_interval_s > 0,
    )


def _projector_needs(wiring: Wiring) -> frozenset[str]:
    if wiring.child is not None:
        return frozenset({"hot_store"})
    needs = {"event_log", "hot_store"}
    if "cold-archive" in wiring.projectors:
        needs.add("cold_store")
    return frozenset(needs)


# In start order: the projectors before the query API, so `argus up`'s ready panel and
# /readyz mean the read models are being kept current.
REGISTRY: Final[Mapping[str, ModuleSpec]] = {
    spec.name: spec
    for spec in (
        ModuleSpec(
            name="ingest",
            needs=frozenset({"event_log", "hot_store", "config"}),
            build=_ingest,
            placement="parent",
            listens=("ingest_addr", "ingest_http_addr"),
            locks=lambda _wiring: ("ingest",),
        ),
        ModuleSpec(
            name="projectors",
            needs=frozenset({"event_log", "hot_store", "cold_store"}),
            needs_for=_projector_needs,
            build=_projectors,
            placement="child",
            locks=lambda wiring: () if wiring.child is not None else tuple(f"projector-{p}" for p in wiring.projectors),
        ),
        ModuleSpec(
            name="alerts",
            needs=frozenset({"event_log", "config", "hot_store", "cold_store"}),
            build=_alerts,
            placement="parent",
            # One evaluator per data dir: `argus alerts serve` next to `argus up` is refused.
            locks=lambda _wiring: ("alert-evaluator",),
        ),
        # Before the query API: the default dashboard is there from its first request.
        ModuleSpec(name="dashboards", needs=frozenset({"event_log", "config"}), build=_dashboards, placement="parent"),
        ModuleSpec(
            name="query",
            needs=frozenset({"event_log", "hot_store", "config", "cold_store"}),
            build=_query,
            placement="parent",
            listens=("query_addr", "http_addr"),
        ),
        ModuleSpec(name="collector", needs=frozenset(), build=_collector, placement="parent"),
        # `argus up` writes its own metrics into the reserved tenant `_argus` (docs/metrics.md).
        ModuleSpec(name="self-metrics", needs=frozenset({"config"}), build=_self_metrics, placement="parent"),
    )
}
assert all(spec.needs <= set(RESOURCES) for spec in REGISTRY.values()), "a module needs an unknown resource"


def specs(names: Sequence[str]) -> list[ModuleSpec]:
    """The specs of `names`, in that order (the start order)."""
    return [REGISTRY[name] for name in names]


def needs(names: Sequence[str], wiring: Wiring) -> frozenset[str]:
    return frozenset().union(*(spec.resources(wiring) for spec in specs(names)))


def listens(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(addr for spec in specs(names) for addr in spec.listens)


def locks(names: Sequence[str], wiring: Wiring) -> list[str]:
    return [role for spec in specs(names) for role in spec.locks(wiring)]


def build(names: Sequence[str], wiring: Wiring) -> Callable[[Runtime], list[Module]]:
    """A builder for `argus.runtime.serve`: the modules of `names`, in order."""

    def make(rt: Runtime) -> list[Module]:
        wiring.built.clear()
        for spec in specs(names):
            wiring.built[spec.name] = spec.build(rt, wiring)
        return list(wiring.built.values())

    return make


def placed(placement: Placement) -> tuple[str, ...]:
    """The modules `argus up` runs in the parent or in the child."""
    return tuple(name for name, spec in REGISTRY.items() if spec.placement == placement)
