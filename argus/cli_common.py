"""What every `argus` service command shares: storage options, settings, the run wrapper.

Its own module so that commands in argus/commands/ can use it without importing argus.cli
(which registers them: a cycle).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from core.errors import ArgusError, InvalidArgument
from core.settings import Settings, settings_from_env

console = Console()

F = TypeVar("F", bound=Callable[..., Any])


_SETTINGS_META = "argus.settings"


def _remember(setting: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A callback keeping a flag's value for `_settings` (so commands need no parameter for it)."""

    def keep(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            ctx.meta.setdefault(_SETTINGS_META, {})[setting] = value

    return keep


def _settings(**overrides: object) -> Settings:
    """Settings of this command: its flags > ARGUS_* environment > config file > defaults."""
    ctx = click.get_current_context(silent=True)
    given: dict[str, object] = dict(ctx.meta.get(_SETTINGS_META, {})) if ctx is not None else {}
    config = given.pop("config_file", None)
    try:
        return settings_from_env(config_file=config if isinstance(config, Path) else None, **given, **overrides)
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None


def _storage_options(func: F) -> F:
    """--config, --event-log, --store, --cold: where a service finds its log and stores."""
    options = [
        click.option(
            "--config",
            type=click.Path(path_type=Path, dir_okay=False),
            expose_value=False,
            callback=_remember("config_file"),
            help="TOML config file (docs/configuration.md) [env ARGUS_CONFIG]. Flags > env > file.",
        ),
        click.option(
            "--event-log",
            metavar="URL",
            expose_value=False,
            callback=_remember("event_log_url"),
            help="Event log: sqlite:///rel/events.db, sqlite:////abs/events.db, or Kafka brokers "
            "kafka://h1:9092,h2:9092 (?idempotence=false for brokers without idempotent producers) "
            "[env ARGUS_EVENT_LOG_URL; default sqlite in --data-dir].",
        ),
        click.option(
            "--store",
            metavar="URL",
            expose_value=False,
            callback=_remember("hot_store_url"),
            help="Hot read-model store: sqlite:///rel/hot.db, or DynamoDB "
            "dynamodb://REGION?endpoint=http://host:8000&prefix=argus_ (endpoint for DynamoDB Local) "
            "[env ARGUS_HOT_STORE_URL; default sqlite in --data-dir].",
        ),
        click.option(
            "--cold",
            metavar="URL",
            expose_value=False,
            callback=_remember("cold_store_url"),
            help="Cold store (Parquet): a folder (file:///abs/dir or a path), or S3 "
            "s3://bucket/prefix?endpoint=http://host:9000 [env ARGUS_COLD_STORE_URL].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _common_options(func: F) -> F:
    func = _storage_options(func)
    func = click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")(func)
    func = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Where the embedded event log and stores live [env ARGUS_DATA_DIR; default ./.argus].",
    )(func)
    return func


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run a service; turn start-up failures into one readable line and exit code 1."""
    try:
        asyncio.run(coro)
    except (OSError, ArgusError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
