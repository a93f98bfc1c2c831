"""`argus keys create | list | revoke`: API keys through the config command handlers.

Only the event log is opened (no stores, no followers running in the background): each
command reads the config topic once into a `ConfigView`, validates, appends and confirms.
A new key is printed once, to standard output, and never logged; `list` shows key ids
(the first hex digits of a key's SHA-256), never keys.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

from argus.cli_common import _common_options, _open_data_dir, _run, _settings
from argus.container import event_log_resource, now_ms
from argus.runtime import setup_logging
from command_side.config.commands import CreateApiKey, RevokeApiKey
from command_side.config.handlers import create_api_key, revoke_api_key
from core.auth import ApiKeyInfo, ApiKeyRegistry, generate_key, hash_key, key_id
from core.config_view import ConfigView
from core.settings import Settings

T = TypeVar("T")

err = Console(stderr=True)


def default_author() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry / no login name (containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def _with_view(settings: Settings, use: Callable[[ConfigView], Awaitable[T]]) -> T:
    async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
        view = ConfigView(events, [ApiKeyRegistry()])
        await view.refresh()
        return await use(view)


def _time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group()
def keys() -> None:
    """Manage API keys (each key belongs to one tenant for good).

    \b
      argus keys create --tenant acme --name ci
      argus keys list
      argus keys revoke 3f9a1c0d2b7e4a55
    """


@keys.command(name="create")
@_common_options
@click.option("--tenant", required=True, help="Tenant the key gives access to.")
@click.option("--name", default="", help="A note to recognise the key by.")
@click.option("--author", default=None, help="Who makes the change [default user@host].")
def keys_create(data_dir: Path | None, log_level: str, tenant: str, name: str, author: str | None) -> None:
    """Create an API key for TENANT and print it (shown only this once; only its hash is kept)."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)  # private and stamped before the first event lands in it
    key = generate_key()
    command = CreateApiKey(api_key=key, tenant=tenant, name=name, author=author or default_author())

    async def create(view: ConfigView) -> None:
        await create_api_key(command, view=view, clock_ms=now_ms)

    _run(_with_view(settings, create))
    err.print(f"created API key {key_id(hash_key(key))} for tenant {tenant}; it is not shown again:")
    click.echo(key)  # stdout, for the user or a pipe; never through logging


@keys.command(name="list")
@_common_options
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@click.option("--revoked/--no-revoked", default=True, show_default=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key (NDJSON).")
def keys_list(data_dir: Path | None, log_level: str, tenant: str | None, revoked: bool, as_json: bool) -> None:
    """List API keys: id, tenant, name, created, author, revoked. Never the keys themselves."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    found: list[ApiKeyInfo] = []

    async def read(view: ConfigView) -> None:
        found.extend(view.state(ApiKeyRegistry).keys())

    _run(_with_view(settings, read))
    shown = [k for k in found if (tenant is None or k.tenant == tenant) and (revoked or not k.revoked)]
    if as_json:
        for k in shown:
            row = {
                "key_id": k.key_id,
                "tenant": k.tenant,
                "name": k.name,
                "created": _time(k.created_ms),
                "created_by": k.created_by,
                "revoked": _time(k.revoked_ms) or None,
                "revoked_by": k.revoked_by or None,
            }
            click.echo(json.dumps(row))
        return
    table = Table(box=None, header_style="bold")
    for column in ("KEY ID", "TENANT", "NAME", "CREATED", "AUTHOR", "REVOKED"):
        table.add_column(column)
    for k in shown:
        gone = f"{_time(k.revoked_ms)} by {k.revoked_by or '?'}" if k.revoked else "no"
        table.add_row(k.key_id, k.tenant, k.name, _time(k.created_ms), k.created_by, gone)
    Console(width=200).print(table)


@keys.command(name="revoke")
@_common_options
@click.argument("key_id_prefix", metavar="KEY_ID")
@click.option("--author", default=None, help="Who makes the change [default user@host].")
def keys_revoke(data_dir: Path | None, log_level: str, key_id_prefix: str, author: str | None) -> None:
    """Revoke the key KEY_ID (8+ leading hex digits of an id from `argus keys list`) for good.

    Services refuse it within their config refresh interval (about a second).
    """
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    command = RevokeApiKey(key_id=key_id_prefix, author=author or default_author())
    changed: list[bool] = []

    async def revoke(view: ConfigView) -> None:
        changed.append((await revoke_api_key(command, view=view, clock_ms=now_ms)).changed)

    _run(_with_view(settings, revoke))
    err.print(f"revoked API key {key_id_prefix}" if changed[0] else f"API key {key_id_prefix} was already revoked")
