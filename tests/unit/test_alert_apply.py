"""Applying alerting documents and silences as config events (command_side/config/alerts.py)
on an embedded event log: only what changed is appended, the same document twice appends
nothing, stale versions are conflicts, tenants never touch each other, and the state every
follower rebuilds from the log is the applied document."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from argus.container import config_resource
from command_side.config.alerts import (
    ApplyAlertConfig,
    CreateSilence,
    ExpireSilence,
    apply_alert_config,
    create_silence,
    execute_plan,
    expire_silence,
    plan_alert_config,
)
from contracts.argus.alerts.v1 import config_pb2 as pb
from core.adapters.sqlite_event_log import SqliteEventLog
from core.alerting.document import parse_document
from core.alerting.events import rule_entity
from core.alerting.model import AlertConfig, LabelMatcher
from core.alerting.state import AlertConfigState
from core.auth import ApiKeyRegistry
from core.config_view import ConfigView, config_change
from core.errors import Conflict, InvalidArgument, NotFound
from core.events import CONFIG_TOPIC, decode_payload, make_event
from core.ports import EventLog

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"
NOW_MS = 1_700_000_000_000
HOUR_MS = 3_600_000


def clock() -> int:
    return NOW_MS


def example() -> AlertConfig:
    match = re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match is not None
    return parse_document(match.group(1))


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    log = SqliteEventLog(tmp_path / "events.db")
    await log.start()
    await log.ensure_topic(CONFIG_TOPIC, 1)
    try:
        yield log
    finally:
        await log.close()


def new_view(log: EventLog) -> ConfigView:
    return ConfigView(log, [AlertConfigState(), ApiKeyRegistry()])


async def apply(view: ConfigView, config: AlertConfig, tenant: str = "acme", *, dry_run: bool = False) -> list[str]:
    command = ApplyAlertConfig(tenant=tenant, config=config, author="alice@test")
    plan = await apply_alert_config(command, view=view, clock_ms=clock, dry_run=dry_run)
    return [f"{c.action.value} {c.kind} {c.name}" for c in plan.changes]


async def config_events(log: EventLog) -> int:
    return await log.end_offset(CONFIG_TOPIC, 0)


async def test_a_document_applies_once_and_every_follower_rebuilds_it(log: EventLog) -> None:
    view = new_view(log)
    config = example()
    changes = await apply(view, config)
    assert sorted(changes) == sorted(
        [f"created rule {n}" for n in config.rules]
        + [f"created receiver {n}" for n in config.receivers]
        + ["created routing routing"]
    )
    assert await config_events(log) == len(changes)
    assert view.state(AlertConfigState).config("acme") == config

    fresh = new_view(log)  # another process, reading the log from the start
    await fresh.refresh()
    assert fresh.state(AlertConfigState).config("acme") == config

    # The same document again: nothing to append, from either process.
    assert await apply(view, config) == []
    assert await apply(fresh, config) == []
    assert await config_events(log) == len(changes)


async def test_events_carry_the_author_and_expected_version_and_no_secret_values(log: EventLog) -> None:
    view = new_view(log)
    await apply(view, example())
    records = await log.read(CONFIG_TOPIC, 0, 0, 100)
    saved = [decode_payload(r.event, pb.ReceiverSaved) for r in records if r.event.type.endswith("ReceiverSaved")]
    assert saved and all(s.change.author == "alice@test" and s.change.expected_version == 0 for s in saved)
    email = next(s for s in saved if s.receiver.name == "team-email").receiver.email[0]
    assert (email.password.source, email.password.name) == ("env", "SMTP_PASSWORD")
    assert all(r.event.time_ms == NOW_MS for r in records)


async def test_only_what_changed_is_appended(log: EventLog) -> None:
    view = new_view(log)
    config = example()
    await apply(view, config)
    before = await config_events(log)
    rules = dict(config.rules)
    rules["high_cpu"] = replace(rules["high_cpu"], severity="page")
    del rules["users_drop"]
    receivers = {k: v for k, v in config.receivers.items()}
    edited = replace(config, rules=rules, receivers=receivers)
    assert await apply(view, edited, dry_run=True) == ["updated rule high_cpu", "deleted rule users_drop"]
    assert await config_events(log) == before  # a dry run appends nothing
    assert await apply(view, edited) == ["updated rule high_cpu", "deleted rule users_drop"]
    assert await config_events(log) == before + 2
    state = view.state(AlertConfigState).config("acme")
    assert state.rules["high_cpu"].severity == "page" and "users_drop" not in state.rules
    assert view.version(rule_entity("acme", "high_cpu")) == 2

    # Routing changes as one event; a receiver nothing uses any more is deleted after it.
    assert config.route is not None
    routing_only = replace(
        edited,
        route=replace(config.route, routes=()),
        receivers={k: v for k, v in receivers.items() if k not in ("ops-hook",)},
    )
    assert await apply(view, routing_only) == ["updated routing routing", "deleted receiver ops-hook"]
    assert view.state(AlertConfigState).config("acme") == routing_only

    # Deleted and then created again: the entity's history goes on (version 3).
    restored = replace(routing_only, rules={**rules, "users_drop": config.rules["users_drop"]})
    assert await apply(view, restored) == ["created rule users_drop"]
    assert view.version(rule_entity("acme", "users_drop")) == 3

    # An empty document deletes everything.
    await apply(view, AlertConfig())
    assert view.state(AlertConfigState).config("acme") == AlertConfig()


async def test_a_concurrent_edit_is_a_conflict_not_a_lost_update(log: EventLog) -> None:
    config = example()
    first, second = new_view(log), new_view(log)
    await apply(first, config)
    ours = replace(config, rules={**config.rules, "high_cpu": replace(config.rules["high_cpu"], severity="ours")})
    theirs = replace(config, rules={**config.rules, "high_cpu": replace(config.rules["high_cpu"], severity="theirs")})
    plan_ours = await plan_alert_config(
        ApplyAlertConfig(tenant="acme", config=ours, author="a"), view=first, clock_ms=clock
    )
    plan_theirs = await plan_alert_config(
        ApplyAlertConfig(tenant="acme", config=theirs, author="b"), view=second, clock_ms=clock
    )
    await execute_plan(plan_theirs, view=second)
    with pytest.raises(Conflict, match="alert_rule:acme/high_cpu"):
        await execute_plan(plan_ours, view=first)
    for view in (first, second):
        assert view.state(AlertConfigState).config("acme").rules["high_cpu"].severity == "theirs"
    # Applying again re-reads and wins on top of their change.
    assert await apply(first, ours) == ["updated rule high_cpu"]


async def test_tenants_are_isolated(log: EventLog) -> None:
    view = new_view(log)
    config = example()
    await apply(view, config, tenant="acme")
    assert view.state(AlertConfigState).config("globex") == AlertConfig()
    # globex's first apply creates everything for itself, and deleting it all leaves acme whole.
    assert len(await apply(view, config, tenant="globex")) == len(await apply(new_view(log), config, tenant="initech"))
    await apply(view, AlertConfig(), tenant="globex")
    assert view.state(AlertConfigState).config("acme") == config
    assert view.state(AlertConfigState).config("globex") == AlertConfig()
    assert view.state(AlertConfigState).tenants() == ["acme", "globex", "initech"]


async def test_an_invalid_tenant_or_author_is_refused(log: EventLog) -> None:
    view = new_view(log)
    for tenant, author in (("../etc", "a"), ("acme", "x\n" * 3)):
        with pytest.raises(InvalidArgument):
            await apply_alert_config(
                ApplyAlertConfig(tenant=tenant, config=example(), author=author), view=view, clock_ms=clock
            )
    assert await config_events(log) == 0


def silence_command(**overrides: object) -> CreateSilence:
    fields: dict[str, object] = {
        "tenant": "acme",
        "matchers": (LabelMatcher(name="alertname", op="=", value="host_down"),),
        "starts_ms": NOW_MS,
        "ends_ms": NOW_MS + 2 * HOUR_MS,
        "comment": "reboots",
        "author": "bob",
    }
    fields.update(overrides)
    return CreateSilence(**fields)  # type: ignore[arg-type]


async def test_silences_are_created_once_and_expired(log: EventLog) -> None:
    view = new_view(log)
    state = view.state(AlertConfigState)
    silence = await create_silence(silence_command(), view=view, clock_ms=clock)
    assert (silence.starts_ms, silence.ends_ms, silence.author) == (NOW_MS, NOW_MS + 2 * HOUR_MS, "bob")
    assert state.silences("acme", active_at_ms=NOW_MS + HOUR_MS) == [silence]
    assert state.silences("acme", active_at_ms=NOW_MS + 3 * HOUR_MS) == []
    # The same request again is the same silence (a retry), not a second one.
    assert await create_silence(silence_command(), view=view, clock_ms=clock) == silence
    assert await config_events(log) == 1

    later = NOW_MS + HOUR_MS
    changed = await expire_silence(
        ExpireSilence(tenant="acme", silence_id=silence.id, author="bob"), view=view, clock_ms=lambda: later
    )
    assert changed.changed and state.silences("acme", active_at_ms=later) == []
    assert state.silences("acme")[0].ends_ms == later
    again = await expire_silence(
        ExpireSilence(tenant="acme", silence_id=silence.id, author="bob"), view=view, clock_ms=lambda: later + 1
    )
    assert not again.changed

    fresh = new_view(log)
    await fresh.refresh()
    assert fresh.state(AlertConfigState).silences("acme") == state.silences("acme")


async def test_another_tenant_cannot_see_or_expire_a_silence(log: EventLog) -> None:
    view = new_view(log)
    silence = await create_silence(silence_command(), view=view, clock_ms=clock)
    assert view.state(AlertConfigState).silences("globex") == []
    with pytest.raises(NotFound):
        await expire_silence(
            ExpireSilence(tenant="globex", silence_id=silence.id, author="mallory"), view=view, clock_ms=clock
        )
    assert view.state(AlertConfigState).silences("acme", active_at_ms=NOW_MS) == [silence]


@pytest.mark.parametrize(
    ("overrides", "parameter"),
    [
        ({"matchers": ()}, "matchers"),
        ({"matchers": (LabelMatcher(name="host", op="=~", value="(a)\\1"),)}, "matchers[0]"),
        ({"ends_ms": NOW_MS}, "ends_ms"),
        ({"starts_ms": NOW_MS - 3 * HOUR_MS, "ends_ms": NOW_MS - HOUR_MS}, "ends_ms"),
        ({"comment": "  "}, "comment"),
    ],
)
async def test_invalid_silences_are_refused(log: EventLog, overrides: dict[str, object], parameter: str) -> None:
    view = new_view(log)
    with pytest.raises(InvalidArgument) as caught:
        await create_silence(silence_command(**overrides), view=view, clock_ms=clock)
    assert caught.value.parameter == parameter
    assert await config_events(log) == 0


async def test_deleting_what_does_not_exist_is_rejected_by_every_follower(log: EventLog) -> None:
    view = new_view(log)
    payload = pb.AlertRuleDeleted(tenant="acme", name="ghost", change=config_change(author="x", expected_version=None))
    event = make_event(payload, identity=b"ghost", partition_key=b"acme", time_ms=NOW_MS)
    with pytest.raises(NotFound, match="ghost"):
        await view.append_change(event)
    assert view.state(AlertConfigState).generation == 0


async def test_every_service_view_follows_the_alerting_configuration(log: EventLog) -> None:
    await apply(new_view(log), example())
    async with contextlib.asynccontextmanager(config_resource)(log) as view:
        assert view.state(AlertConfigState).config("acme") == example()
