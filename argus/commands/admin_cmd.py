"""`argus admin`: operators' views of a running (or stopped) Argus, read from the event log."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from argus.cli_common import _common_options, _run, _settings
from argus.runtime import setup_logging
from core.adapters.urls import open_event_log, sqlite_path
from core.errors import NotFound
from core.quarantine import QuarantineReport, read_quarantine
from core.settings import Settings
from query_side.admin import quarantine_body

console = Console()


@click.group()
def admin() -> None:
    """Operators' views: what the consumers set aside."""


@admin.command()
@_common_options
@click.option("--group", default=None, help="Only this consumer group (rollups, series-index, ...).")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON (the body of GET /api/v1/admin/quarantine, plus payload_prefix)."
)
def quarantine(data_dir: Path | None, log_level: str, group: str | None, as_json: bool) -> None:
    """Records the consumers could not decode and moved past, and partitions halted on a
    newer schema version (upgrade needed).

    \b
    Reads the quarantine topic of the event log (the embedded one in --data-dir, or
    --event-log kafka://...); works whether or not Argus is running.
      argus admin quarantine
      argus admin quarantine --group rollups --json
    """
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _run(_show(settings, group=group, as_json=as_json))


async def _show(settings: Settings, *, group: str | None, as_json: bool) -> None:
    url = settings.event_log_url
    if url.startswith("sqlite:") and not sqlite_path(url, parameter="event_log").exists():
        raise NotFound(f"no event log at {sqlite_path(url, parameter='event_log')}: check --data-dir or --event-log")
    log = open_event_log(url)
    await log.start()
    try:
        report = await read_quarantine(log)
    finally:
        await log.close()
    if as_json:
        body = quarantine_body(report, group=group)
        prefixes = {(r.group, r.topic, r.partition, r.offset): r.payload_prefix.hex() for r in report.records}
        for entry in body["records"]:
            entry["payload_prefix"] = prefixes[(entry["group"], entry["topic"], entry["partition"], entry["offset"])]
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _print_tables(report, group)


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_tables(report: QuarantineReport, group: str | None) -> None:
    records = [r for r in report.records if group is None or r.group == group]
    halts = [h for h in report.halts if group is None or h.group == group]
    if any(h.halted for h in halts):
        table = Table(title="Halted partitions: UPGRADE NEEDED", title_style="bold red")
        for column in ("group", "topic", "partition", "offset", "schema version", "since", "error"):
            table.add_column(column)
        for h in halts:
            if h.halted:
                version = f"{h.schema_version} (this build: {h.supported_version})"
                row = (h.group, h.topic, str(h.partition), str(h.offset), version, _time(h.halted_at_ms), h.error)
                table.add_row(*row)
        console.print(table)
    if not records:
        console.print("no quarantined records" + (f" for group {group}" if group else ""))
    else:
        table = Table(title=f"Quarantined records ({len(records)})")
        for column in ("group", "topic", "partition", "offset", "when", "bytes", "error"):
            table.add_column(column)
        for r in records:
            table.add_row(
                r.group,
                r.topic,
                str(r.partition),
                str(r.offset),
                _time(r.quarantined_at_ms),
                str(r.payload_bytes),
                r.error,
            )
        console.print(table)
    resumed = [h for h in halts if not h.halted]
    if resumed:
        console.print(f"{len(resumed)} halted partition(s) resumed by a newer build (see --json)")
