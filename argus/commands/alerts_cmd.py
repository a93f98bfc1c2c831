"""`argus alerts apply | rules | silence | silences | expire-silence`: the alerting
configuration through its command handlers (command_side/config/alerts.py).

Like `argus keys`, only the event log is opened: each command reads the config topic once
into a `ConfigView`, validates, appends and confirms. Errors go to standard error as plain
text (they quote user input, which must not be read as console markup); exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from argus.cli_common import _common_options, _open_data_dir, _settings, fail, run_with_config, utc_text
from argus.commands.keys_cmd import default_author
from argus.container import event_log_resource, now_ms
from argus.runtime import setup_logging
from command_side.config.alerts import (
    AlertConfigPlan,
    ApplyAlertConfig,
    CreateSilence,
    ExpireSilence,
    apply_alert_config,
    create_silence,
    expire_silence,
)
from core import data_dir
from core.adapters.urls import open_alert_read_models
from core.alerting.acks import Ack, acknowledge, unacknowledge
from core.alerting.document import MAX_DOCUMENT_BYTES, parse_document, parse_label_matcher
from core.alerting.lifecycle import AlertState
from core.alerting.model import AlertRule, Condition, ConditionOp, LabelMatcher, Silence
from core.alerting.state import AlertConfigState
from core.config_view import ConfigView
from core.durations import format_duration_ms, parse_duration_ms
from core.errors import ArgusError, InvalidArgument
from core.ports import EventLog
from core.settings import Settings
from query_side.alerts.active import STATE_FILTERS, ActiveAlerts, AlertInstance, state_filter
from query_side.alerts.history import MAX_PAGE, AlertHistory, HistoryEntry
from query_side.alerts.read_models import AlertReadModelProjector


def condition_text(c: Condition) -> str:
    """A condition as the document writes it."""
    match c.op:
        case ConditionOp.OUTSIDE | ConditionOp.INSIDE:
            return f"{c.op.value} {c.low:g}..{c.high:g}"
        case ConditionOp.CHANGE | ConditionOp.PERCENT_CHANGE:
            return f"{c.op.value} > {c.threshold:g} over {format_duration_ms(c.over_ms)}"
        case _:
            return f"{c.op.value} {c.threshold:g}"


def _matcher_text(m: LabelMatcher) -> str:
    return f"{m.name}{m.op}{m.value}"


@click.group()
def alerts() -> None:
    """Alerting configuration: rules, receivers, routes (one YAML document) and silences.

    \b
      argus alerts apply alerts.yaml --tenant acme --dry-run
      argus alerts apply alerts.yaml --tenant acme
      argus alerts rules --tenant acme
      argus alerts silence --tenant acme --match alertname=host_down --for 2h --comment "reboots"
      argus alerts silences --tenant acme
      argus alerts expire-silence 3f9a1c0d2b7e4a55 --tenant acme
      argus alerts list --tenant acme
      argus alerts serve

    The document format and running alerting: docs/alerting.md.
    """


@alerts.command(name="apply")
@_common_options
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tenant", required=True, help="Tenant whose configuration the document becomes.")
@click.option("--dry-run", is_flag=True, help="Validate and print what would change; change nothing.")
@click.option("--author", default=None, help="Who makes the change [default user@host].")
def alerts_apply(
    data_dir: Path | None, log_level: str, file: Path, tenant: str, dry_run: bool, author: str | None
) -> None:
    """Make TENANT's alerting configuration what FILE says (a YAML document, docs/alerting.md).

    The whole document is validated first (every error with its line and field); then only
    what changed is appended: rules and receivers created, updated or deleted, and the
    routing. Applying the same file twice changes nothing.

    \b
      argus alerts apply alerts.yaml --tenant acme --dry-run
      argus alerts apply alerts.yaml --tenant acme --author alice
    """
    setup_logging(log_level)
    try:
        with file.open("rb") as f:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)  # never more: parse_document refuses what is longer
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    try:
        config = parse_document(raw, source=str(file))
    except InvalidArgument as exc:
        fail(f"{file} is not a valid alerting document:\n{exc}")
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)  # private and stamped before the log is created in it
    command = ApplyAlertConfig(tenant=tenant, config=config, author=author or default_author())
    plans: list[AlertConfigPlan] = []

    async def apply(view: ConfigView) -> None:
        plans.append(await apply_alert_config(command, view=view, clock_ms=now_ms, dry_run=dry_run))

    run_with_config(settings, [AlertConfigState()], apply)
    plan = plans[0]
    for change in plan.changes:
        verb = {"created": "create", "updated": "update", "deleted": "delete"}[change.action.value]
        click.echo(f"{'would ' + verb if dry_run else change.action.value} {change.kind} {change.name}")
    if plan.empty:
        click.echo(f"no changes for tenant {tenant}")
    else:
        count = f"{len(plan.changes)} change{'s' if len(plan.changes) != 1 else ''}"
        click.echo(
            f"{count} would be applied to tenant {tenant} (dry run)"
            if dry_run
            else f"{count} applied to tenant {tenant}"
        )


def _rule_json(rule: AlertRule) -> dict[str, Any]:
    row = dataclasses.asdict(rule)
    row["condition_text"] = condition_text(rule.condition)
    return row


@alerts.command(name="rules")
@_common_options
@click.option("--tenant", required=True, help="Whose rules.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per rule (NDJSON).")
def alerts_rules(data_dir: Path | None, log_level: str, tenant: str, as_json: bool) -> None:
    """List TENANT's alert rules: name, query, window, condition, for, interval, severity."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)  # opening the log creates it: stamp the data dir first
    found: list[AlertRule] = []

    async def read(view: ConfigView) -> None:
        found.extend(view.state(AlertConfigState).config(tenant).rules.values())

    run_with_config(settings, [AlertConfigState()], read)
    rules = sorted(found, key=lambda r: r.name)
    if as_json:
        for rule in rules:
            click.echo(json.dumps(_rule_json(rule), sort_keys=True))
        return
    if not rules:
        click.echo(f"no alert rules for tenant {tenant}", err=True)
        return
    table = Table(box=None, header_style="bold")
    for column in ("RULE", "QUERY", "WINDOW", "CONDITION", "FOR", "INTERVAL", "SEVERITY"):
        table.add_column(column)
    for r in rules:
        q = r.query
        query = f"{q.agg}({q.metric}{'{' + ','.join(q.where) + '}' if q.where else ''})"
        if q.group_by:
            query += f" by {','.join(q.group_by)}"
        cells = (
            r.name,
            query,
            format_duration_ms(r.window_ms),
            condition_text(r.condition),
            format_duration_ms(r.for_ms) if r.for_ms else "0s",
            format_duration_ms(r.interval_ms),
            r.severity,
        )
        table.add_row(*(escape(c) for c in cells))
    Console(width=200).print(table)


@alerts.command(name="silence")
@_common_options
@click.option("--tenant", required=True, help="Whose alerts to silence.")
@click.option(
    "--match",
    "matches",
    multiple=True,
    required=True,
    help="A label matcher (label=value, label!=value, label=~re2, label!~re2); repeat: all must match.",
)
@click.option("--for", "duration", required=True, help="How long from now, e.g. 30m, 2h, 1d.")
@click.option("--comment", required=True, help="Why (shown with the silence).")
@click.option("--author", default=None, help="Who silences [default user@host].")
def alerts_silence(
    data_dir: Path | None,
    log_level: str,
    tenant: str,
    matches: tuple[str, ...],
    duration: str,
    comment: str,
    author: str | None,
) -> None:
    """Silence TENANT's alerts matching every --match, from now for --for; prints the silence id.

    \b
      argus alerts silence --tenant acme --match alertname=host_down --match 'host=~web-.*' \\
          --for 2h --comment "rebooting the web tier"
    """
    setup_logging(log_level)
    try:
        matchers = tuple(parse_label_matcher(m, parameter=f"--match {m}") for m in matches)
        length_ms = parse_duration_ms(duration, parameter="--for")
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    now = now_ms()
    command = CreateSilence(
        tenant=tenant,
        matchers=matchers,
        starts_ms=now,
        ends_ms=now + length_ms,
        comment=comment,
        author=author or default_author(),
    )
    made: list[Silence] = []

    async def create(view: ConfigView) -> None:
        made.append(await create_silence(command, view=view, clock_ms=lambda: now))

    run_with_config(settings, [AlertConfigState()], create)
    silence = made[0]
    click.echo(
        f"silenced until {utc_text(silence.ends_ms)}: {', '.join(map(_matcher_text, silence.matchers))}", err=True
    )
    click.echo(silence.id)


@alerts.command(name="silences")
@_common_options
@click.option("--tenant", required=True, help="Whose silences.")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per silence (NDJSON).")
def alerts_silences(data_dir: Path | None, log_level: str, tenant: str, show_all: bool, as_json: bool) -> None:
    """List TENANT's active and upcoming silences (--all: expired ones too)."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    found: list[Silence] = []

    async def read(view: ConfigView) -> None:
        found.extend(view.state(AlertConfigState).silences(tenant))

    run_with_config(settings, [AlertConfigState()], read)
    now = now_ms()
    shown = [s for s in found if show_all or s.ends_ms > now]
    if as_json:
        for s in shown:
            row = dataclasses.asdict(s)
            row["active"] = s.starts_ms <= now < s.ends_ms
            click.echo(json.dumps(row, sort_keys=True))
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "MATCHERS", "STARTS", "ENDS", "STATE", "AUTHOR", "COMMENT"):
        table.add_column(column)
    for s in shown:
        state = "active" if s.starts_ms <= now < s.ends_ms else ("expired" if s.ends_ms <= now else "pending")
        cells = (s.id, " ".join(map(_matcher_text, s.matchers)), utc_text(s.starts_ms), utc_text(s.ends_ms), state)
        table.add_row(*(escape(c) for c in (*cells, s.author, s.comment)))
    Console(width=200).print(table)


@alerts.command(name="expire-silence")
@_common_options
@click.argument("silence_id", metavar="ID")
@click.option("--tenant", required=True, help="Whose silence.")
@click.option("--author", default=None, help="Who expires it [default user@host].")
def alerts_expire_silence(
    data_dir: Path | None, log_level: str, silence_id: str, tenant: str, author: str | None
) -> None:
    """End TENANT's silence ID now (the id `argus alerts silence` printed)."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    command = ExpireSilence(tenant=tenant, silence_id=silence_id, author=author or default_author())
    changed: list[bool] = []

    async def expire(view: ConfigView) -> None:
        changed.append((await expire_silence(command, view=view, clock_ms=now_ms)).changed)

    run_with_config(settings, [AlertConfigState()], expire)
    click.echo(f"expired silence {silence_id}" if changed[0] else f"silence {silence_id} had already ended", err=True)


@alerts.command(name="serve")
@_common_options
@click.option(
    "--replica",
    envvar="ARGUS_ALERTS_REPLICA",
    default=None,
    help="This replica's name, unique among the replicas sharing one event log: it names its own "
    "consumer groups [env ARGUS_ALERTS_REPLICA; default the host name on Kafka, none on the embedded log].",
)
def alerts_serve(data_dir: Path | None, log_level: str, replica: str | None) -> None:
    """Run only alerting: the rule evaluator over the samples topic and the notifier (the
    `alerts` module of `argus up`, which then runs with --no-alerts or alerts_enabled = false).

    Run several on Kafka for high availability: the rules and notification groups are split
    between them by the consumer group `alert-owners`, and a replica that dies is replaced by
    the others (docs/alerting.md, "High availability")."""
    import socket

    from argus.cli import _open, _release, _serve
    from argus.cli_common import _run
    from argus.registry import Wiring

    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    if replica is None:
        replica = "" if settings.event_log_url.startswith("sqlite:") else socket.gethostname()
    if replica and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", replica):
        raise click.BadParameter("letters, digits, '_', '.' and '-' only (at most 64)", param_hint="--replica")
    wiring = Wiring(alerts_replica=replica)
    locks = _open(settings, ["alerts"], wiring)
    _run(_serve(settings, ["alerts"], wiring))
    _release(locks)


def _projector(settings: Settings, events: EventLog) -> AlertReadModelProjector:
    """The data dir's persisted alert read models (decision 0046), brought up to date by
    this command: it projects only what the topic gained since the last reader."""
    models = open_alert_read_models(
        hot_store_url=settings.hot_store_url, event_log_url=settings.event_log_url, data_dir=settings.data_dir
    )
    return AlertReadModelProjector(events, models)


def _read_alerts(settings: Settings, tenant: str, states: frozenset[AlertState]) -> list[AlertInstance]:
    """The tenant's instances in `states`, read from the alerts topic once."""
    found: list[AlertInstance] = []

    async def read() -> None:
        async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
            projector = _projector(settings, events)
            try:
                view = ActiveAlerts(events, projector=projector)
                await view.refresh()
                found.extend(await view.instances(tenant, states))
            finally:
                await projector.close()

    try:
        asyncio.run(read())
    except data_dir.DataDirError as exc:
        fail(str(exc), 2)
    except (OSError, ArgusError) as exc:
        fail(str(exc))
    return found


@alerts.command(name="list")
@_common_options
@click.option("--tenant", required=True, help="Whose alerts.")
@click.option(
    "--state",
    type=click.Choice(list(STATE_FILTERS)),
    default="active",
    show_default=True,
    help="Which instances: active = pending and firing.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert instance (NDJSON).")
def alerts_list(data_dir: Path | None, log_level: str, tenant: str, state: str, as_json: bool) -> None:
    """List TENANT's alert instances and their states, read from the alerts topic (whether
    Argus runs or not)."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    found = _read_alerts(settings, tenant, state_filter(state))
    if as_json:
        for i in found:
            click.echo(json.dumps(i.to_json(), sort_keys=True))
        return
    if not found:
        click.echo(f"no {state} alerts for tenant {tenant}", err=True)
        return
    table = Table(box=None, header_style="bold")
    for column in ("RULE", "LABELS", "STATE", "SINCE", "VALUE", "SEVERITY"):
        table.add_column(column)
    for i in found:
        labels = ",".join(f"{k}={v}" for k, v in sorted(i.labels.items()))
        value = "no data" if math.isnan(i.value) else f"{i.value:g}"
        cells = (i.rule, labels, i.state.value, utc_text(i.since_ms), value, i.severity)
        style = "red" if i.state is AlertState.FIRING else ""
        table.add_row(*(escape(c) for c in cells), style=style)
    Console(width=200).print(table)


def _read_history(settings: Settings, tenant: str, since_ms: int, rule: str | None) -> list[HistoryEntry]:
    """The tenant's history entries, read from the alerts topic once, oldest first."""
    found: list[HistoryEntry] = []

    async def read() -> None:
        async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
            projector = _projector(settings, events)
            try:
                view = AlertHistory(events, projector=projector)
                await view.refresh()
                cursor = ""
                while True:
                    page = await view.page(tenant, since_ms=since_ms, rule=rule, cursor=cursor, limit=MAX_PAGE)
                    found.extend(page.entries)
                    cursor = page.next_cursor
                    if not cursor:
                        break
            finally:
                await projector.close()

    try:
        asyncio.run(read())
    except data_dir.DataDirError as exc:
        fail(str(exc), 2)
    except (OSError, ArgusError) as exc:
        fail(str(exc))
    return found


@alerts.command(name="history")
@_common_options
@click.option("--tenant", required=True, help="Whose alerts.")
@click.option("--since", default=None, help="Only entries this far back (e.g. 1h, 2d) or since epoch ms.")
@click.option("--rule", default=None, help="Only this rule's entries.")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True, help="At most this many (newest)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry (NDJSON), oldest first.")
def alerts_history(
    data_dir: Path | None, log_level: str, tenant: str, since: str | None, rule: str | None, limit: int, as_json: bool
) -> None:
    """TENANT's alert timeline from the alerts topic: state changes and notifications sent or
    failed (receiver, channel, attempt), oldest first."""
    from query_side.alerts.history import since_ms

    setup_logging(log_level)
    try:
        start = since_ms(since, now_ms())
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    found = _read_history(settings, tenant, start, rule)
    shown = found[-limit:]
    if as_json:
        for e in shown:
            click.echo(json.dumps(e.to_json(), sort_keys=True))
        return
    if not shown:
        click.echo(f"no alert history for tenant {tenant}", err=True)
        return
    table = Table(box=None, header_style="bold")
    for column in ("TIME", "RULE", "EVENT", "DETAIL"):
        table.add_column(column)
    for e in shown:
        d = e.detail
        if e.kind == "state":
            labels = d.get("labels")
            shown_labels = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) if isinstance(labels, dict) else ""
            what, detail = f"{d['from']} -> {d['to']}", shown_labels
        elif e.kind in ("acknowledged", "unacknowledged"):
            what = e.kind
            detail = f"by {d['author']}" + (f": {d['comment']}" if d["comment"] else "")
        elif e.kind == "escalated":
            receivers = d["receivers"]
            what = f"escalated (step {int(str(d['step'])) + 1} of {d['policy']})"
            detail = ", ".join(map(str, receivers)) if isinstance(receivers, list) else ""
        else:
            what = f"notification {e.kind}"
            detail = f"{d['receiver']} {d['channel']} attempt {d['attempt']}"
            if e.kind == "failed":
                detail += f": {d['error']}"
        table.add_row(*(escape(str(c)) for c in (utc_text(e.time_ms), ",".join(e.rules), what, detail)))
    Console(width=200).print(table)


@alerts.command(name="test")
@_common_options
@click.argument("receiver")
@click.option("--tenant", required=True, help="Whose receiver.")
def alerts_test(data_dir: Path | None, log_level: str, receiver: str, tenant: str) -> None:
    """Send a test notification (marked [TEST], alertname ArgusTestNotification) to TENANT's
    RECEIVER on every channel; prints each channel's result. Exit code 1 if any failed."""
    from query_side.alerts.delivery import Deliverer, DeliveryReport, RetryPolicy, send_test_notification
    from query_side.alerts.senders import Senders

    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    reports: list[DeliveryReport] = []

    async def send(view: ConfigView) -> None:
        config = view.state(AlertConfigState).config(tenant)
        found = config.receivers.get(receiver)
        if found is None:
            known = ", ".join(sorted(config.receivers)) or "none"
            raise InvalidArgument(f"tenant {tenant} has no receiver {receiver!r} (receivers: {known})")
        async with Senders() as senders:
            # An operator at a terminal wants the answer now: one retry, not the notifier's minutes.
            deliverer = Deliverer(senders, policy=RetryPolicy(max_attempts=2, base_delay_ms=200, max_total_ms=5_000))
            reports.append(await send_test_notification(found, deliverer=deliverer, tenant=tenant))

    run_with_config(settings, [AlertConfigState()], send)
    report = reports[0]
    for a in report.finals:
        result = "ok" if not a.error else f"{a.outcome.value}: {a.error}"
        click.echo(f"{a.channel} {a.target}: {result} (attempt {a.attempt}, {a.elapsed_ms} ms)")
    if not report.finals:
        fail(f"receiver {receiver} has no channels")
    if not report.ok:
        raise SystemExit(1)


def _ack_command(use: Callable[[EventLog], Awaitable[Ack]], settings: Settings) -> Ack:
    done: list[Ack] = []

    async def run() -> None:
        async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
            done.append(await use(events))

    try:
        asyncio.run(run())
    except data_dir.DataDirError as exc:
        fail(str(exc), 2)
    except (OSError, ArgusError) as exc:
        fail(str(exc))
    return done[0]


@alerts.command(name="ack")
@_common_options
@click.argument("instance_id", metavar="ID")
@click.option("--tenant", required=True, help="Whose alert.")
@click.option("--comment", default="", help="Why, or who is on it.")
@click.option("--author", default=None, help="Who acknowledges [default user@host].")
def alerts_ack(
    data_dir: Path | None, log_level: str, instance_id: str, tenant: str, comment: str, author: str | None
) -> None:
    """Acknowledge TENANT's pending or firing alert ID (`instance_id` of `argus alerts list
    --json`): no repeats and no escalation for it until it resolves or is un-acked."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    who = author or default_author()
    ack = _ack_command(
        lambda events: acknowledge(
            events, tenant=tenant, instance_id=instance_id, author=who, comment=comment, now_ms=now_ms()
        ),
        settings,
    )
    click.echo(f"acknowledged {instance_id} (by {ack.author} at {utc_text(ack.time_ms)})", err=True)


@alerts.command(name="unack")
@_common_options
@click.argument("instance_id", metavar="ID")
@click.option("--tenant", required=True, help="Whose alert.")
@click.option("--author", default=None, help="Who takes the ack back [default user@host].")
def alerts_unack(data_dir: Path | None, log_level: str, instance_id: str, tenant: str, author: str | None) -> None:
    """Take back the acknowledgement of TENANT's alert ID: repeats and escalation resume."""
    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    who = author or default_author()
    _ack_command(
        lambda events: unacknowledge(events, tenant=tenant, instance_id=instance_id, author=who, now_ms=now_ms()),
        settings,
    )
    click.echo(f"un-acknowledged {instance_id}", err=True)


def _since_time(text: str, *, now: int, parameter: str) -> int:
    """A bare duration (`7d`) counts back from now; anything else is a query time (timeparse)."""
    from query_side.timeparse import parse_time

    with contextlib.suppress(ArgusError):
        return now - parse_duration_ms(text, parameter=parameter)
    return parse_time(text, now_ms=now, parameter=parameter)


@alerts.command(name="backtest")
@_common_options
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--tenant", required=True, help="Whose samples the rules are replayed over.")
@click.option("--since", default="1d", show_default=True, help="Start: a duration back from now (7d) or a time.")
@click.option("--until", default="now", show_default=True, help="End: a duration back from now or a time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per transition (NDJSON).")
def alerts_backtest(
    data_dir: Path | None, log_level: str, file: Path, tenant: str, since: str, until: str, as_json: bool
) -> None:
    """Replay TENANT's samples through the rules of FILE (an alerting document) with the live
    evaluator's code and print when each instance would have gone pending, fired and resolved.
    Nothing is notified or written. Samples older than the event log's retention are gone:
    the summary says from when samples were found.

    \b
    Examples:
      argus alerts backtest alerts.yaml --tenant acme --since 7d
      argus alerts backtest alerts.yaml --tenant acme --since 2026-12-01T00:00:00Z --until 1d --json
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from core.data_dir import DataDirError
    from query_side.alerts.backtest import BacktestResult, backtest

    setup_logging(log_level)
    settings = _settings(data_dir=data_dir)
    _open_data_dir(settings)
    try:
        with file.open("rb") as f:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)
        rules = list(parse_document(raw, source=str(file)).rules.values())
        now = now_ms()
        since_ms = _since_time(since, now=now, parameter="since")
        until_ms = _since_time(until, now=now, parameter="until")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
        return
    except ArgusError as exc:
        fail(str(exc))
        return
    if until_ms < since_ms:
        fail("--until is before --since")
    if not rules:
        fail(f"{file} has no rules")
    results: list[BacktestResult] = []
    progress = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("evaluations"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )

    async def run() -> None:
        async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
            task = progress.add_task("replay", total=None)
            with progress:
                results.append(
                    await backtest(
                        events,
                        tenant=tenant,
                        rules=rules,
                        since_ms=since_ms,
                        until_ms=until_ms,
                        progress=lambda done, total: progress.update(task, completed=done, total=total),
                    )
                )

    try:
        asyncio.run(run())
    except DataDirError as exc:
        fail(str(exc), 2)
    except (OSError, ArgusError) as exc:
        fail(str(exc))
    result = results[0]
    if as_json:
        for t in result.transitions:
            record = {
                "rule": t.key.rule,
                "labels": dict(t.key.labels),
                "from": t.from_state.value,
                "to": t.to_state.value,
                "at_ms": t.evaluated_at_ms,
                "since_ms": t.since_ms,
                "value": None if math.isnan(t.value) else t.value,
                "reason": t.reason,
            }
            click.echo(json.dumps(record, sort_keys=True))
    elif result.transitions:
        table = Table(box=None, header_style="bold")
        for column in ("AT", "RULE", "LABELS", "STATE", "VALUE", "REASON"):
            table.add_column(column)
        for t in result.transitions:
            labels = ",".join(f"{k}={v}" for k, v in t.key.labels)
            value = "no data" if math.isnan(t.value) else f"{t.value:g}"
            cells = (utc_text(t.evaluated_at_ms), t.key.rule, labels, t.to_state.value, value, t.reason)
            style = "red" if t.to_state is AlertState.FIRING else ""
            table.add_row(*(escape(c) for c in cells), style=style)
        Console(width=200).print(table)
    first = (
        "no samples in range" if result.first_sample_ms is None else f"samples from {utc_text(result.first_sample_ms)}"
    )
    click.echo(
        f"{len(result.transitions)} transitions of {len(rules)} rules over "
        f"{utc_text(since_ms)} .. {utc_text(until_ms)} "
        f"({result.ticks:,} evaluations, {result.records:,} sample records, {first})",
        err=True,
    )
