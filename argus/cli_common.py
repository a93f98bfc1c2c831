"""What every `argus` service command shares: storage options, settings, the run wrapper.

Its own module so that commands in argus/commands/ can use it without importing argus.cli
(which registers them: a cycle).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click
from rich.console import Console

from core import data_dir
from core.data_dir import RoleLock
from core.errors import ArgusError, InvalidArgument
from core.settings import Settings, settings_from_env
from core.tls import ClientTls, check_bind

if TYPE_CHECKING:
    from core.config_view import ConfigState, ConfigView

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


def _check_listeners(settings: Settings, *names: str) -> None:
    """Refuse, before anything starts, to listen beyond this machine without TLS (core/tls.py)."""
    try:
        tls = settings.server_tls()
        for name in names:
            check_bind(getattr(settings, name), tls=tls, allow_insecure_bind=settings.allow_insecure_bind, setting=name)
        if tls is not None and names:
            tls.ssl_context()  # the files exist, parse, and the key is the certificate's
    except InvalidArgument as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None


def uses_data_dir(settings: Settings) -> bool:
    """Whether this process keeps anything in the data dir (embedded log or store, cold folder)."""
    embedded = settings.event_log_url.startswith("sqlite:") or settings.hot_store_url.startswith("sqlite:")
    return embedded or not settings.cold_store_url.startswith("s3://")


def _open_data_dir(settings: Settings, roles: Sequence[str] = (), *, wait_s: float = 0.0) -> list[RoleLock]:
    """Prepare the data dir (private, format-checked: core/data_dir.py) and take the locks of
    `roles` (only with the embedded event log, whose data dir is the instance); exit code 2,
    with the reason, when it cannot be used."""
    if not uses_data_dir(settings):
        return []
    locks: list[RoleLock] = []
    try:
        data_dir.prepare(settings.data_dir)
        if settings.event_log_url.startswith("sqlite:"):
            for role in roles:
                locks.append(data_dir.lock_role(settings.data_dir, role, wait_s=wait_s))
    except data_dir.DataDirError as exc:
        for lock in locks:
            lock.release()
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None
    return locks


def _apply(options: Sequence[Callable[[Any], Any]], func: F) -> F:
    """Decorate `func` with `options`, the first listed shown first in --help."""
    decorated: Any = func
    for option in reversed(options):
        decorated = option(decorated)
    return cast(F, decorated)


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
    return _apply(options, func)


def _tls_options(func: F) -> F:
    """TLS of a command's listeners (settings tls_cert_file, tls_key_file, tls_client_ca_file,
    allow_insecure_bind; docs/configuration.md)."""

    def keep_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:  # absent: the environment or config file decides
            _remember("allow_insecure_bind")(ctx, param, True)

    options = [
        click.option(
            "--tls-cert",
            metavar="FILE",
            expose_value=False,
            callback=_remember("tls_cert_file"),
            help="PEM certificate (chain) every listener presents; with --tls-key turns TLS on "
            "[env ARGUS_TLS_CERT_FILE].",
        ),
        click.option(
            "--tls-key",
            metavar="FILE",
            expose_value=False,
            callback=_remember("tls_key_file"),
            help="PEM private key of --tls-cert [env ARGUS_TLS_KEY_FILE].",
        ),
        click.option(
            "--tls-client-ca",
            metavar="FILE",
            expose_value=False,
            callback=_remember("tls_client_ca_file"),
            help="Require client certificates signed by this PEM CA (mutual TLS) [env ARGUS_TLS_CLIENT_CA_FILE].",
        ),
        click.option(
            "--allow-insecure-bind",
            is_flag=True,
            expose_value=False,
            callback=keep_flag,
            help="Allow listening on a non-loopback address without TLS (a proxy terminates TLS) "
            "[env ARGUS_ALLOW_INSECURE_BIND=true].",
        ),
    ]
    return _apply(options, func)


_CLIENT_TLS_META = "argus.client_tls"


def _client_tls_options(func: F) -> F:
    """--tls, --tls-ca, --tls-cert, --tls-key: how a client command reaches a TLS server."""

    def keep(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
        def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
            if value:
                ctx.meta.setdefault(_CLIENT_TLS_META, {})[name] = value

        return store

    options = [
        click.option(
            "--tls",
            is_flag=True,
            expose_value=False,
            callback=keep("enabled"),
            help="Connect over TLS, trusting the system's CAs (implied by --tls-ca or --tls-cert) [env ARGUS_TLS=1].",
            envvar="ARGUS_TLS",
        ),
        click.option(
            "--tls-ca",
            metavar="FILE",
            expose_value=False,
            callback=keep("ca_file"),
            envvar="ARGUS_TLS_CA_FILE",
            help="Trust the server's certificate by this PEM CA bundle (turns TLS on) [env ARGUS_TLS_CA_FILE].",
        ),
        click.option(
            "--tls-cert",
            metavar="FILE",
            expose_value=False,
            callback=keep("cert_file"),
            envvar="ARGUS_TLS_CLIENT_CERT_FILE",
            help="Client certificate (PEM) for servers that require one (mutual TLS) [env ARGUS_TLS_CLIENT_CERT_FILE].",
        ),
        click.option(
            "--tls-key",
            metavar="FILE",
            expose_value=False,
            callback=keep("key_file"),
            envvar="ARGUS_TLS_CLIENT_KEY_FILE",
            help="Private key of --tls-cert [env ARGUS_TLS_CLIENT_KEY_FILE].",
        ),
    ]
    return _apply(options, func)


def _client_tls(*, enabled: bool = False) -> ClientTls | None:
    """The client TLS the command's flags ask for (None: plaintext); `enabled` forces TLS
    (an https:// URL)."""
    ctx = click.get_current_context(silent=True)
    given: dict[str, Any] = dict(ctx.meta.get(_CLIENT_TLS_META, {})) if ctx is not None else {}
    try:
        return ClientTls.from_files(
            enabled=enabled or bool(given.get("enabled")),
            ca_file=str(given.get("ca_file", "")),
            cert_file=str(given.get("cert_file", "")),
            key_file=str(given.get("key_file", "")),
        )
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None


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
    except data_dir.DataDirError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None
    except (OSError, ArgusError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass


def fail(message: str, code: int = 1) -> NoReturn:
    """`error: message` on stderr, then exit with `code` (2: the data dir or usage)."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def run_with_config(
    settings: Settings, states: Iterable[ConfigState], use: Callable[[ConfigView], Awaitable[None]]
) -> None:
    """Open the event log, fold the config topic into `states`, then `use` the view; errors
    end the command with their message."""
    from argus.container import event_log_resource
    from core.config_view import ConfigView

    async def run() -> None:
        async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
            view = ConfigView(events, list(states))
            await view.refresh()
            await use(view)

    try:
        asyncio.run(run())
    except data_dir.DataDirError as exc:
        fail(str(exc), 2)
    except (OSError, ArgusError) as exc:
        fail(str(exc))


def utc_text(ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC time to the second."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
