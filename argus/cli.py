"""The `argus` command: one binary, many targets.

Subcommands are imported when they run (`LazyGroup`): `argus push` loads the push client, not
the server (decision 0056). The service commands below keep their heavy imports inside.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from argus.cli_common import (
    _check_listeners,
    _common_options,
    _open_data_dir,
    _run,
    _settings,
    _tls_options,
    console,
)
from argus.projector_names import ALL_PROJECTORS
from core.errors import FailedPrecondition

if TYPE_CHECKING:
    from argus.modules import Module
    from argus.registry import Wiring
    from core.data_dir import RoleLock
    from core.settings import Settings

LAZY_COMMANDS: Final[Mapping[str, str]] = {
    "push": "argus.commands.push_cmd:push",
    "query": "argus.commands.query_cmd:query",
    "replay": "argus.commands.replay_cmd:replay",
    "agent": "argus.commands.agent_cmd:agent",
    "keys": "argus.commands.keys_cmd:keys",
    "admin": "argus.commands.admin_cmd:admin",
    "alerts": "argus.commands.alerts_cmd:alerts",
    "dashboards": "argus.commands.dashboards_cmd:dashboards",
}
"""Subcommand name -> "module:attribute" of its click command, imported on first use."""


class LazyGroup(click.Group):
    """A group whose `lazy_commands` are imported only when looked up: running one imports
    that one (`argus --help` imports them all, to show their summaries)."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_commands.get(cmd_name)
        if target is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise FailedPrecondition(f"argus {cmd_name}: {target} is not a click command")
        self.commands[cmd_name] = command  # imported once
        return command


@click.group(
    cls=LazyGroup,
    lazy_commands=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
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


def _open(settings: Settings, names: Sequence[str], wiring: Wiring, *, wait_s: float = 0.0) -> list[RoleLock]:
    """Before anything starts: the listeners' TLS rule, then the data dir and its role locks
    (each exits with code 2 and the reason when refused)."""
    from argus import registry

    _check_listeners(settings, *registry.listens(names))
    return _open_data_dir(settings, registry.locks(names, wiring), wait_s=wait_s)


def _serve(
    settings: Settings,
    names: Sequence[str],
    wiring: Wiring,
    *,
    api_key: str | None = None,
    on_ready: Callable[[Sequence[Module]], None] | None = None,
) -> Coroutine[Any, Any, None]:
    """Serve the registry's modules `names` on just the resources they need."""
    from argus import registry
    from argus.runtime import serve

    return serve(
        settings,
        registry.build(names, wiring),
        api_key=api_key,
        on_ready=on_ready,
        needs=registry.needs(names, wiring) | ({"event_log", "config"} if api_key else set()),
    )


def _release(locks: Sequence[RoleLock]) -> None:
    for lock in locks:
        lock.release()


@main.command()
@_common_options
@_tls_options
@click.option("--ingest-addr", default=None, help="gRPC ingest listen address [default 127.0.0.1:50051].")
@click.option(
    "--ingest-http-addr",
    default=None,
    help="HTTP write APIs (Prometheus remote write, Influx, OTLP/HTTP) [default 127.0.0.1:9201].",
)
@click.option("--query-addr", default=None, help="gRPC query listen address [default 127.0.0.1:50052].")
@click.option("--http-addr", default=None, help="HTTP API listen address [default 127.0.0.1:8080].")
@click.option("--api-key", envvar="ARGUS_API_KEY", default=None, help="Development API key [env ARGUS_API_KEY].")
@click.option("--no-collector", is_flag=True, help="Do not collect this host's metrics.")
@click.option("--region", default=None, help="Region label of this host's metrics [default local].")
@click.option(
    "--no-alerts",
    is_flag=True,
    help="Do not evaluate alert rules in this process (setting alerts_enabled) [env ARGUS_ALERTS_ENABLED=false].",
)
@click.option(
    "--dashboards-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Provision the dashboards of this folder (JSON/YAML, docs/dashboards.md), at start and on change.",
)
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
    ingest_http_addr: str | None,
    query_addr: str | None,
    http_addr: str | None,
    api_key: str | None,
    no_collector: bool,
    region: str | None,
    no_alerts: bool,
    dashboards_dir: Path | None,
    single_process: bool,
) -> None:
    """Run the whole platform on this machine on embedded storage.

    Starts ingest, the projectors (rollups, series index, cold archive), the alert evaluator
    (--no-alerts: not), the dashboards (the default "This host" one, and --dashboards-dir's)
    and the query API, plus a
    collector that pushes this host's CPU, memory, disk and network metrics every 5 s
    through the real ingest path. The projectors run in a child process (`argus project`,
    restarted if it dies) so that they have a core of their own; --single-process keeps
    them in this one. Ctrl-C stops everything cleanly; starting it again on the same
    --data-dir continues with nothing lost.
    """
    from rich.panel import Panel

    from argus import registry
    from argus.registry import Wiring
    from argus.runtime import API_KEY_FILE, dev_api_key, setup_logging
    from argus.supervisor import ProjectorProcess
    from core.auth import hash_key, key_id
    from core.errors import InvalidArgument

    setup_logging(log_level)
    settings = _settings(
        data_dir=data_dir,
        ingest_addr=ingest_addr,
        ingest_http_addr=ingest_http_addr,
        query_addr=query_addr,
        http_addr=http_addr,
        region=region,
        alerts_enabled=False if no_alerts else None,
    )
    # The child-placed modules run in a supervised `argus project` (which locks their roles).
    child = None if single_process else ProjectorProcess(settings=settings, log_level=log_level)
    names = list(registry.REGISTRY)  # every module, in the registry's (start) order
    if no_collector:
        names.remove("collector")
    if not settings.alerts_enabled:
        names.remove("alerts")
    if settings.self_metrics_interval_s <= 0:
        names.remove("self-metrics")
    wiring = Wiring(child=child, dashboards_dir=dashboards_dir)
    locks = _open(settings, names, wiring)
    try:
        key = dev_api_key(settings.data_dir, api_key)
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None
    wiring.api_key = key

    def on_ready(modules: Sequence[Module]) -> None:
        lines = [f"[bold]data dir[/]  {settings.data_dir.resolve()}"]
        for module in modules:
            for name, url in module.endpoints().items():
                lines.append(f"[bold]{name}[/]  {url}")
        key_file = settings.data_dir / API_KEY_FILE
        # A key goes to a terminal only, never into a file stdout was redirected to.
        shown = key if console.is_terminal else f"id {key_id(hash_key(key))} (not shown: output is not a terminal)"
        lines.append(f"[bold]API key[/]  {shown}   (tenant default; kept in {key_file})")
        http = next((m.endpoints()["query (HTTP)"] for m in modules if "query (HTTP)" in m.endpoints()), "")
        lines.append("")
        if http:
            lines.append(f"[bold]dashboards[/]  {http}/   (the web app; sign in with the API key)")
        lines.append("try:  argus query host_cpu_percent --group-by mode --since 15m")
        lines.append(f"      curl -H \"Authorization: Bearer $(cat {key_file})\" '{http}/api/v1/metrics'")
        console.print(Panel("\n".join(lines), title="Argus is up", expand=False))

    async def run() -> None:
        if child is not None:
            await child.spawn()  # it boots while this process opens its stores
        try:
            await _serve(settings, names, wiring, api_key=key, on_ready=on_ready)
        finally:
            if child is not None:
                await child.stop()  # already stopped unless serve failed to start

    _run(run())
    _release(locks)


@main.command()
@_common_options
@_tls_options
@click.option("--ingest-addr", default=None, help="gRPC listen address [default 127.0.0.1:50051].")
@click.option(
    "--ingest-http-addr",
    default=None,
    help="HTTP write APIs (Prometheus remote write, Influx, OTLP/HTTP) [default 127.0.0.1:9201].",
)
def ingest(data_dir: Path | None, log_level: str, ingest_addr: str | None, ingest_http_addr: str | None) -> None:
    """Run only the ingest service (gRPC IngestService)."""
    from argus.registry import Wiring
    from argus.runtime import setup_logging

    setup_logging(log_level)
    settings = _settings(data_dir=data_dir, ingest_addr=ingest_addr, ingest_http_addr=ingest_http_addr)
    wiring = Wiring()
    locks = _open(settings, ["ingest"], wiring)
    _run(_serve(settings, ["ingest"], wiring))
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
    from argus import registry
    from argus.registry import Wiring
    from argus.runtime import setup_logging
    from argus.supervisor import ORPHAN_EXIT_DEADLINE_S, supervised_name

    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    wiring = Wiring(projectors=ALL_PROJECTORS if projector == "all" else (projector,))
    # Supervised by `argus up`: every module it places in the child. An orphaned predecessor
    # may still hold the locks while it stops: wait for it.
    names = registry.placed("child") if supervised_name() else ("projectors",)
    wait_s = ORPHAN_EXIT_DEADLINE_S + 5.0 if supervised_name() else 0.0
    locks = _open(settings, names, wiring, wait_s=wait_s)
    _run(_serve(settings, names, wiring))
    _release(locks)


@main.command(name="query-server")
@_common_options
@_tls_options
@click.option("--query-addr", default=None, help="gRPC listen address [default 127.0.0.1:50052].")
@click.option("--http-addr", default=None, help="HTTP listen address [default 127.0.0.1:8080].")
@click.option(
    "--dashboards-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Provision the dashboards of this folder for --dashboards-tenant, at start and on change.",
)
@click.option("--dashboards-tenant", default="default", show_default=True, help="Tenant of --dashboards-dir.")
def query_server(
    data_dir: Path | None,
    log_level: str,
    query_addr: str | None,
    http_addr: str | None,
    dashboards_dir: Path | None,
    dashboards_tenant: str,
) -> None:
    """Run only the query service (gRPC QueryService, DashboardService and the HTTP API)."""
    from argus.registry import Wiring
    from argus.runtime import setup_logging

    setup_logging(log_level)
    settings = _settings(data_dir=data_dir, query_addr=query_addr, http_addr=http_addr)
    wiring = Wiring(dashboards_dir=dashboards_dir, dashboards_tenant=dashboards_tenant, default_dashboards=False)
    names = ["dashboards", "query"] if dashboards_dir is not None else ["query"]
    _open(settings, names, wiring)
    _run(_serve(settings, names, wiring))
