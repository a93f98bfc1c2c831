"""`argus replay`: rebuild a read model into a fresh version, then switch readers to it."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from argus.cli_common import _common_options, _open_data_dir, _run, _settings
from argus.container import event_log_resource, now_ms
from argus.runtime import setup_logging
from core.errors import InvalidArgument
from core.read_models import HOT_READ_MODEL, reserve_version
from core.settings import Settings
from projectors.replay import ReplayProgress, replay_hot_model
from query_side.timeparse import parse_duration, parse_time

console = Console(stderr=True)


def since_ms(text: str, *, now: int) -> int:
    """--since: a duration back from now (`6h`, `7d`) or a time (RFC 3339, epoch seconds, `now-2h`)."""
    try:
        return now - parse_duration(text, parameter="since")
    except InvalidArgument:
        return parse_time(text, now_ms=now, parameter="since")


@click.command()
@_common_options
@click.option(
    "--projector",
    type=click.Choice(["rollups"]),
    default="rollups",
    show_default=True,
    help="Read model to rebuild. rollups = the hot read model: every rollup tier and the series "
    "index, which live in one store and so get one new version together.",
)
@click.option("--from-beginning", is_flag=True, help="Rebuild from the first event of the log.")
@click.option(
    "--since",
    metavar="TIME",
    default=None,
    help="Rebuild from the events appended since TIME only (6h, 7d, 2026-11-20T00:00:00Z): "
    "samples ingested before TIME are left out of the new version.",
)
@click.option("--no-activate", is_flag=True, help="Build and catch up, but do not switch readers over.")
@click.option(
    "--max-lag",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Caught up = at most this many events behind the log's end (raise it under heavy ingest).",
)
def replay(
    data_dir: Path | None,
    log_level: str,
    projector: str,
    from_beginning: bool,
    since: str | None,
    no_activate: bool,
    max_lag: int,
) -> None:
    """Rebuild a read model into a fresh version and switch readers to it once caught up.

    \b
    The new version is built beside the live one (SQLite: hot.vN.db next to hot.db;
    DynamoDB: tables with prefix <prefix>vN_) by the same projectors, under their own
    consumer groups. Running services keep serving the old version until the replay has
    caught up; then a ReadModelActivated event on the config topic switches every query
    service and projector to the new version.
    \b
      argus replay --projector rollups --from-beginning
      argus replay --projector rollups --since 7d
    """
    if from_beginning == (since is not None):
        raise click.UsageError("give exactly one of --from-beginning or --since TIME")
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)  # the format check: never replay data of another series identity
    start_ms = None
    if since is not None:
        try:
            start_ms = since_ms(since, now=now_ms())
        except InvalidArgument as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    _run(_replay(settings, projector=projector, since=start_ms, activate=not no_activate, max_lag=max_lag))


async def _replay(settings: Settings, *, projector: str, since: int | None, activate: bool, max_lag: int) -> None:
    async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
        version, url = await reserve_version(
            events, model=HOT_READ_MODEL, base_url=settings.hot_store_url, now_ms=now_ms()
        )
        console.print(f"replay {projector}: building version {version} of the hot read model in {url}")
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} events/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("replaying", total=None, rate="-")
            started = time.monotonic()

            def show(p: ReplayProgress) -> None:
                elapsed = max(time.monotonic() - started, 1e-6)
                progress.update(
                    task, completed=p.events_done, total=p.events_total, rate=f"{p.events_done / elapsed:,.0f}"
                )

            result = await replay_hot_model(
                events,
                version=version,
                store_url=url,
                tiers=settings.tiers,
                clock_ms=now_ms,
                since_ms=since,
                flush_interval_ms=settings.flush_interval_ms,
                retention_check_interval_ms=settings.retention_check_interval_ms,
                applied_event_memory_ms=settings.applied_event_memory_ms,
                max_lag_events=max_lag,
                on_progress=show,
                activate=activate,
            )
    rate = result.events / result.seconds if result.seconds else 0.0
    console.print(
        f"replay {projector}: version {result.version} caught up: {result.events:,} events "
        f"({result.events_skipped:,} before --since), {result.samples_applied:,} samples in "
        f"{result.seconds:.1f} s ({rate:,.0f} events/s)"
    )
    if result.activated:
        console.print(f"replay {projector}: version {result.version} is active; readers switch within seconds")
    else:
        console.print(f"replay {projector}: version {result.version} built but not activated (--no-activate)")
