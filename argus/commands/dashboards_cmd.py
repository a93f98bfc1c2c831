"""`argus dashboards list | get | export | import | delete`: dashboards as code, through the
command handlers (command_side/config/dashboards.py).

Like `argus alerts`, only the event log is opened: each command reads the config topic once
into a `ConfigView`, validates, appends and confirms, so it works beside a running
`argus up` on the same data dir (or the same Kafka). Files are JSON or YAML, one dashboard
or a list (docs/dashboards.md). Errors go to standard error; exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from argus.cli_common import _common_options, _open_data_dir, _settings, fail, run_with_config, utc_text
from argus.commands.keys_cmd import default_author
from argus.container import now_ms
from argus.runtime import setup_logging
from command_side.config.dashboards import (
    DeleteDashboard,
    SaveDashboard,
    delete_dashboard,
    save_dashboard,
)
from core.config_view import ConfigView
from core.dashboards.files import read_dashboard_file
from core.dashboards.schema import DashboardDocument, document_of
from core.dashboards.state import DashboardState, DashboardVersion
from core.errors import ArgusError
from core.model import DEFAULT_TENANT
from core.settings import Settings

_TENANT = click.option(
    "--tenant", default=DEFAULT_TENANT, show_default=True, help="Whose dashboards (argus up's is default)."
)


def _open(data_dir_path: Path | None) -> Settings:
    settings = _settings(data_dir=data_dir_path)
    _open_data_dir(settings)  # opening the log creates it: stamp the data dir first
    return settings


def document(d: DashboardVersion) -> dict[str, Any]:
    """A dashboard as a file holds it (metadata and spec in one object)."""
    return document_of(uid=d.uid, title=d.title, folder=d.folder, tags=d.tags, spec_json=d.spec_json)


def _encode(body: Any, fmt: str) -> bytes:
    if fmt == "yaml":
        return yaml.safe_dump(body, sort_keys=False, allow_unicode=True).encode()
    return orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n"


@click.group()
def dashboards() -> None:
    """Dashboards as code: list, get, export, import and delete a tenant's dashboards.

    \b
      argus dashboards list
      argus dashboards export --all -o dashboards/
      argus dashboards import dashboards/*.json
      argus dashboards get this-host
      argus dashboards delete old-board

    The file format: docs/dashboards.md. `argus up --dashboards-dir DIR` keeps a folder applied.
    """


@dashboards.command(name="list")
@_common_options
@_TENANT
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dashboard (NDJSON).")
def dashboards_list(data_dir: Path | None, log_level: str, tenant: str, as_json: bool) -> None:
    """List TENANT's dashboards: uid, title, folder, tags, version, last change."""
    setup_logging(log_level)
    found: list[DashboardVersion] = []

    async def read(view: ConfigView) -> None:
        found.extend(view.state(DashboardState).dashboards(tenant))

    run_with_config(_open(data_dir), [DashboardState()], read)
    if as_json:
        for d in found:
            row = {k: v for k, v in document(d).items() if k in ("uid", "title", "folder", "tags")}
            row.update(version=d.version, updated_ms=d.updated_ms, updated_by=d.updated_by, provisioned=d.provisioned)
            click.echo(orjson.dumps(row).decode())
        return
    if not found:
        click.echo(f"no dashboards for tenant {tenant}", err=True)
        return
    table = Table(box=None, header_style="bold")
    for column in ("UID", "TITLE", "FOLDER", "TAGS", "VERSION", "UPDATED", "BY"):
        table.add_column(column)
    for d in found:
        by = d.updated_by + (" (provisioned)" if d.provisioned else "")
        cells = (d.uid, d.title, d.folder, ",".join(d.tags), str(d.version), utc_text(d.updated_ms), by)
        table.add_row(*(escape(cell) for cell in cells))
    Console(width=200).print(table)


@dashboards.command(name="get")
@_common_options
@_TENANT
@click.argument("uid")
@click.option("--version", type=int, default=0, help="A kept version [default: the latest].")
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json", show_default=True)
def dashboards_get(data_dir: Path | None, log_level: str, tenant: str, uid: str, version: int, fmt: str) -> None:
    """Print one dashboard as a file holds it (metadata and spec)."""
    setup_logging(log_level)
    found: list[DashboardVersion] = []

    async def read(view: ConfigView) -> None:
        found.append(view.state(DashboardState).get(tenant, uid, version))

    run_with_config(_open(data_dir), [DashboardState()], read)
    click.echo(_encode(document(found[0]), fmt).decode(), nl=False)


@dashboards.command(name="export")
@_common_options
@_TENANT
@click.argument("uids", nargs=-1)
@click.option("--all", "export_all", is_flag=True, help="Every dashboard of the tenant.")
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    default=None,
    help="A folder (one <uid>.json per dashboard; it exists or ends in /) or a file [default: standard output].",
)
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json", show_default=True)
def dashboards_export(
    data_dir: Path | None,
    log_level: str,
    tenant: str,
    uids: tuple[str, ...],
    export_all: bool,
    output: str | None,
    fmt: str,
) -> None:
    """Write dashboards as files that `argus dashboards import` and --dashboards-dir read back.

    \b
      argus dashboards export this-host > this-host.json
      argus dashboards export --all -o dashboards/
    """
    setup_logging(log_level)
    if not uids and not export_all:
        raise click.UsageError("name the dashboards to export, or give --all")
    found: list[DashboardVersion] = []

    async def read(view: ConfigView) -> None:
        state = view.state(DashboardState)
        found.extend(state.dashboards(tenant) if export_all else [state.get(tenant, uid) for uid in uids])

    run_with_config(_open(data_dir), [DashboardState()], read)
    # A Path drops a trailing "/": decide on the text.
    to_folder = output is not None and (Path(output).is_dir() or output.endswith("/"))
    if to_folder:
        assert output is not None
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        for d in found:
            path = folder / f"{d.uid}.{fmt}"
            path.write_bytes(_encode(document(d), fmt))
        click.echo(f"exported {len(found)} dashboard{'s' if len(found) != 1 else ''} to {output}", err=True)
        return
    body: Any = document(found[0]) if len(found) == 1 and not export_all else [document(d) for d in found]
    raw = _encode(body, fmt)
    if output is None:
        click.echo(raw.decode(), nl=False)
    else:
        Path(output).write_bytes(raw)
        click.echo(f"exported {len(found)} dashboard{'s' if len(found) != 1 else ''} to {output}", err=True)


@dashboards.command(name="import")
@_common_options
@_TENANT
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--message", default="", help="A note kept in each dashboard's history.")
@click.option("--author", default=None, help="Who makes the change [default user@host].")
def dashboards_import(
    data_dir: Path | None, log_level: str, tenant: str, files: tuple[Path, ...], message: str, author: str | None
) -> None:
    """Make TENANT's dashboards what FILES say (JSON or YAML, one dashboard or a list each).

    Every file is validated first (errors name the file and field); then each dashboard is
    created or updated over its current version. An unchanged dashboard appends nothing.
    """
    setup_logging(log_level)
    docs: list[DashboardDocument] = []
    errors: list[str] = []
    for path in files:
        try:
            docs.extend(read_dashboard_file(path))
        except ArgusError as exc:
            errors.append(str(exc))
    if errors:
        fail("\n".join(errors))
    uids = [d.uid for d in docs]
    twice = sorted({u for u in uids if uids.count(u) > 1})
    if twice:
        fail(f"uid {twice[0]!r} is in more than one dashboard of these files")
    who = author or default_author()
    results: list[tuple[str, str, int]] = []

    async def apply(view: ConfigView) -> None:
        state = view.state(DashboardState)
        for doc in docs:
            latest = state.latest(tenant, doc.uid)
            expected = latest.version if latest is not None else 0
            saved = await save_dashboard(
                SaveDashboard(
                    tenant=tenant,
                    uid=doc.uid,
                    title=doc.title,
                    folder=doc.folder,
                    tags=doc.tags,
                    spec_json=doc.spec_json,
                    expected_version=expected,
                    author=who,
                    message=message,
                ),
                view=view,
                clock_ms=now_ms,
            )
            what = (
                "created"
                if latest is None or latest.deleted
                else "updated"
                if saved.version != expected
                else "unchanged"
            )
            results.append((doc.uid, what, saved.version))

    run_with_config(_open(data_dir), [DashboardState()], apply)
    for uid, what, version in results:
        click.echo(f"{what} {uid} (version {version})")


@dashboards.command(name="delete")
@_common_options
@_TENANT
@click.argument("uid")
@click.option("--version", type=int, default=0, help="Only if it is still at this version.")
@click.option("--author", default=None, help="Who makes the change [default user@host].")
def dashboards_delete(
    data_dir: Path | None, log_level: str, tenant: str, uid: str, version: int, author: str | None
) -> None:
    """Delete a dashboard (its history stays: it can be restored)."""
    setup_logging(log_level)
    made: list[int] = []

    async def apply(view: ConfigView) -> None:
        command = DeleteDashboard(
            tenant=tenant, uid=uid, expected_version=version or None, author=author or default_author()
        )
        made.append(await delete_dashboard(command, view=view, clock_ms=now_ms))

    run_with_config(_open(data_dir), [DashboardState()], apply)
    click.echo(f"deleted {uid} (version {made[0]})")
