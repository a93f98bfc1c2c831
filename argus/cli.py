"""The `argus` command: one binary, many targets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from pathlib import Path

import click
from rich.panel import Panel

from argus.cli_common import (
    _check_listeners,
    _common_options,
    _open_data_dir,
    _run,
    _settings,
    _tls_options,
    console,
)
from argus.container import Container, Runtime, open_runtime
from argus.modules import IngestModule, Module, ProjectorModule, QueryModule
from argus.runtime import dev_api_key, serve, setup_logging
from argus.supervisor import ORPHAN_EXIT_DEADLINE_S, ProjectorProcess, supervised_name
from argus.versioned_projectors import VersionedProjectors
from core.data_dir import RoleLock
from core.settings import Settings
from core.tls import ClientTls


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="argus-metrics")
def main() -> None:
    """Argus: metrics monitoring on one machine or a fleet.

    \b
    Start everything on this machine (embedded storage, a live local collector):
      argus up
    Send samples, then read them back:
      argus push samples.ndjson
      argus query host_cpu_percent --where mode=user --since 1h
    Run the services one by one (same modules as `argus up`):
      argus ingest | argus project | argus query-server
    """


def _ingest(rt: Runtime) -> IngestModule:
    return IngestModule(
        settings=rt.settings, event_log=rt.event_log, hot_store=rt.hot_store, api_keys=rt.api_keys, clock_ms=rt.clock_ms
    )


ALL_PROJECTORS = ("rollups", "series-index", "cold-archive")


def _projector_roles(which: Sequence[str]) -> list[str]:
    return [f"projector-{name}" for name in which]


def _release(locks: Sequence[RoleLock]) -> None:
    for lock in locks:
        lock.release()


def _projectors(rt: Runtime, which: tuple[str, ...] = ALL_PROJECTORS) -> Module:
    # Re-made on the new store when `argus replay` activates a new read-model version.
    return VersionedProjectors(
        store=rt.hot_store,
        make=lambda store, version: ProjectorModule(
            settings=rt.settings,
            event_log=rt.event_log,
            hot_store=store,
            clock_ms=rt.clock_ms,
            projectors=which,
            version=version,
            cold_store=rt.cold_store,
            health=rt.health,
        ),
    )


def _query(rt: Runtime, projectors: ProjectorProcess | None = None) -> QueryModule:
    async def readiness() -> bool | str:
        # The projectors of this process (single process) or of the child: can they write?
        reason = rt.health.reason or (projectors.not_ready_reason() if projectors is not None else None)
        return reason or True

    return QueryModule(
        settings=rt.settings,
        hot_store=rt.hot_store,
        api_keys=rt.api_keys,
        clock_ms=rt.clock_ms,
        cold_store=rt.cold_store,
        readiness=readiness,
    )


def _collector(rt: Runtime, ingest: IngestModule, api_key: str) -> Module:
    from argus.collector_module import CollectorModule

    settings: Settings = rt.settings
    server_tls = settings.server_tls()
    tls = None
    server_name = ""
    if server_tls is not None:
        # It trusts the server's own certificate and, under mutual TLS, presents it too.
        tls = ClientTls(ca_file=server_tls.cert_file, cert_file=server_tls.cert_file, key_file=server_tls.key_file)
        host = settings.ingest_addr.rpartition(":")[0].strip("[]")
        if host and host not in ("0.0.0.0", "::"):
            server_name = host  # the name the certificate carries; we connect over loopback
    return CollectorModule(
        target=lambda: f"127.0.0.1:{ingest.port}",
        api_key=api_key,
        region=settings.region,
        interval_s=settings.collector_interval_s,
        host=socket.gethostname(),
        tls=tls,
        tls_server_name=server_name,
    )


@main.command()
@_common_options
@_tls_options
@click.option("--ingest-addr", default=None, help="gRPC ingest listen address [default 127.0.0.1:50051].")
@click.option("--query-addr", default=None, help="gRPC query listen address [default 127.0.0.1:50052].")
@click.option("--http-addr", default=None, help="HTTP API listen address [default 127.0.0.1:8080].")
@click.option("--api-key", envvar="ARGUS_API_KEY", default=None, help="Development API key [env ARGUS_API_KEY].")
@click.option("--no-collector", is_flag=True, help="Do not collect this host's metrics.")
@click.option("--region", default=None, help="Region label of this host's metrics [default local].")
@click.option(
    "--single-process",
    is_flag=True,
    envvar="ARGUS_UP_SINGLE_PROCESS",
    help="Run the projectors in this process too (one core; for debugging) [env ARGUS_UP_SINGLE_PROCESS=1].",
)
def up(
    data_dir: Path | None,
    log_level: str,
    ingest_addr: str | None,
    query_addr: str | None,
    http_addr: str | None,
    api_key: str | None,
    no_collector: bool,
    region: str | None,
    single_process: bool,
) -> None:
    """Run the whole platform on this machine on embedded storage.

    Starts ingest, the projectors (rollups, series index, cold archive) and the query API, plus a
    collector that pushes this host's CPU, memory, disk and network metrics every 5 s
    through the real ingest path. The projectors run in a child process (`argus project`,
    restarted if it dies) so that they have a core of their own; --single-process keeps
    them in this one. Ctrl-C stops everything cleanly; starting it again on the same
    --data-dir continues with nothing lost.
    """
    setup_logging(log_level)
    settings = _settings(
        data_dir=data_dir, ingest_addr=ingest_addr, query_addr=query_addr, http_addr=http_addr, region=region
    )
    _check_listeners(settings, "ingest_addr", "query_addr", "http_addr")
    # The projector roles are the child's to lock (it is `argus project`), unless they run here.
    locks = _open_data_dir(settings, ["ingest", *(_projector_roles(ALL_PROJECTORS) if single_process else ())])
    key = dev_api_key(settings.data_dir, api_key)
    child = None if single_process else ProjectorProcess(settings=settings, log_level=log_level)

    def build(rt: Runtime) -> Sequence[Module]:
        ingest = _ingest(rt)
        projectors = _projectors(rt) if child is None else child.following(rt.hot_store)
        modules: list[Module] = [ingest, projectors, _query(rt, child)]
        if not no_collector:
            modules.append(_collector(rt, ingest, key))
        return modules

    def on_ready(modules: Sequence[Module]) -> None:
        lines = [f"[bold]data dir[/]  {settings.data_dir.resolve()}"]
        for module in modules:
            for name, url in module.endpoints().items():
                lines.append(f"[bold]{name}[/]  {url}")
        lines.append(f"[bold]API key[/]  {key}   (tenant default; kept in {settings.data_dir / 'api_key'})")
        http = next((m.endpoints()["query (HTTP)"] for m in modules if "query (HTTP)" in m.endpoints()), "")
        lines.append("")
        lines.append("try:  argus query host_cpu_percent --group-by mode --since 15m")
        lines.append(f"      curl -H 'Authorization: Bearer {key}' '{http}/api/v1/metrics'")
        console.print(Panel("\n".join(lines), title="Argus is up", expand=False))

    async def run() -> None:
        if child is not None:
            await child.spawn()  # it boots while this process opens its stores
        try:
            await serve(settings, build, api_key=key, on_ready=on_ready)
        finally:
            if child is not None:
                await child.stop()  # already stopped unless serve failed to start

    _run(run())
    _release(locks)


@main.command()
@_common_options
@_tls_options
@click.option("--ingest-addr", default=None, help="gRPC listen address [default 127.0.0.1:50051].")
def ingest(data_dir: Path | None, log_level: str, ingest_addr: str | None) -> None:
    """Run only the ingest service (gRPC IngestService)."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir, ingest_addr=ingest_addr)
    _check_listeners(settings, "ingest_addr")
    locks = _open_data_dir(settings, ["ingest"])
    _run(serve(settings, lambda c: [_ingest(c)]))
    _release(locks)


@main.command()
@_common_options
@click.option(
    "--projector",
    type=click.Choice([*ALL_PROJECTORS, "all"]),
    default="all",
    show_default=True,
    help="Which projector to run.",
)
def project(data_dir: Path | None, log_level: str, projector: str) -> None:
    """Run the projectors that turn the event log into read models."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    which = ALL_PROJECTORS if projector == "all" else (projector,)
    # Under `argus up`, an orphaned predecessor may still hold the locks while it stops.
    wait_s = ORPHAN_EXIT_DEADLINE_S + 5.0 if supervised_name() else 0.0
    locks = _open_data_dir(settings, _projector_roles(which), wait_s=wait_s)
    _run(serve(settings, lambda c: [_projectors(c, which)]))
    _release(locks)


@main.command(name="query-server")
@_common_options
@_tls_options
@click.option("--query-addr", default=None, help="gRPC listen address [default 127.0.0.1:50052].")
@click.option("--http-addr", default=None, help="HTTP listen address [default 127.0.0.1:8080].")
def query_server(data_dir: Path | None, log_level: str, query_addr: str | None, http_addr: str | None) -> None:
    """Run only the query service (gRPC QueryService and the HTTP API)."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir, query_addr=query_addr, http_addr=http_addr)
    _check_listeners(settings, "query_addr", "http_addr")
    _open_data_dir(settings)
    _run(serve(settings, lambda c: [_query(c)]))


@main.group()
def keys() -> None:
    """Manage API keys (each key belongs to one tenant)."""


@keys.command(name="create")
@_common_options
@click.option("--tenant", required=True, help="Tenant the key gives access to.")
@click.option("--name", default="", help="A note to recognise the key by.")
def keys_create(data_dir: Path | None, log_level: str, tenant: str, name: str) -> None:
    """Create an API key for TENANT and print it (it is shown only once; only its hash is kept)."""
    from core.auth import generate_key, register_key

    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    key = generate_key()

    async def create() -> None:
        container = Container(settings=settings)
        runtime = await open_runtime(container)
        try:
            await register_key(runtime.event_log, key, tenant=tenant, name=name, now_ms=runtime.clock_ms())
        finally:
            await container.shutdown_resources()  # type: ignore[misc]

    asyncio.run(create())
    click.echo(key)


def _register_optional_commands() -> None:
    from argus.commands import agent_cmd, push_cmd, query_cmd, replay_cmd

    main.add_command(push_cmd.push)
    main.add_command(query_cmd.query)
    main.add_command(replay_cmd.replay)
    main.add_command(agent_cmd.agent)


_register_optional_commands()
