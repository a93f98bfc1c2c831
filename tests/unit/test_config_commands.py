"""Config commands (API keys) and the ConfigView's rules, on an embedded event log in tmp_path."""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from argus.container import Container, open_runtime
from argus.runtime import API_KEY_FILE, dev_api_key, register_dev_key
from command_side.config.commands import CreateApiKey, RevokeApiKey
from command_side.config.handlers import create_api_key, revoke_api_key
from contracts.argus.events.v1 import events_pb2
from core.adapters.sqlite_event_log import SqliteEventLog
from core.auth import ApiKeyRegistry, api_key_entity, check_key_strength, generate_key, hash_key, key_id
from core.config_view import ConfigView
from core.errors import Conflict, CorruptData, FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from core.events import CONFIG_TOPIC, make_event
from core.model import DEFAULT_TENANT
from core.ports import EventLog
from core.read_models import HOT_READ_MODEL, ReadModelVersions, reserve_version
from core.settings import settings_from_env

NOW_MS = 1_700_000_000_000


def clock() -> int:
    return NOW_MS


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
    return ConfigView(log, [ApiKeyRegistry(), ReadModelVersions()])


async def create(view: ConfigView, key: str, tenant: str = "acme", name: str = "") -> bool:
    command = CreateApiKey(api_key=key, tenant=tenant, name=name, author="tester")
    return (await create_api_key(command, view=view, clock_ms=clock)).changed


# ---------------------------------------------------------------------------- key strength


@pytest.mark.parametrize(
    "weak",
    ["kfull", "k" * 64, "ab" * 20, "0123456789abcdef01234", "passwordpasswordpassword", "argus_e2e_" + "0" * 24],
)
def test_weak_keys_are_refused_with_how_to_generate_one(weak: str) -> None:
    with pytest.raises(InvalidArgument, match="argus keys create"):
        check_key_strength(weak)


def test_keys_with_spaces_or_non_ascii_are_refused() -> None:
    for bad in ("argus_" + secrets.token_urlsafe(24) + " x", "argus_" + secrets.token_urlsafe(24) + "é"):
        with pytest.raises(InvalidArgument, match="printable ASCII"):
            check_key_strength(bad)


def test_generated_and_fixture_keys_are_strong_enough() -> None:
    for _ in range(300):
        check_key_strength(generate_key())
        check_key_strength("argus_e2e_" + secrets.token_hex(12))  # tests/e2e/conftest.py
        check_key_strength("argus_bench_" + secrets.token_hex(12))  # bench/


# ---------------------------------------------------------------------------- create / revoke


async def test_a_created_key_authenticates_its_tenant_in_every_view(log: EventLog) -> None:
    key = generate_key()
    assert await create(new_view(log), key, "acme", "ci")
    other = new_view(log)
    await other.refresh()
    registry = other.state(ApiKeyRegistry)
    assert registry.tenant_for(key) == "acme"
    [info] = registry.keys()
    assert (info.tenant, info.name, info.created_ms, info.created_by) == ("acme", "ci", NOW_MS, "tester")
    assert key not in repr(info) and key not in repr(CreateApiKey(api_key=key, tenant="acme", author="a"))


async def test_the_same_create_twice_changes_nothing(log: EventLog) -> None:
    key = generate_key()
    view = new_view(log)
    assert await create(view, key, name="ci")
    end = await log.end_offset(CONFIG_TOPIC, 0)
    assert not await create(view, key, name="ci")
    assert not await create(new_view(log), key, name="ci")
    assert await log.end_offset(CONFIG_TOPIC, 0) == end


async def test_a_key_is_never_re_bound_to_another_tenant(log: EventLog) -> None:
    key = generate_key()
    await create(new_view(log), key, "acme")
    view = new_view(log)
    with pytest.raises(Conflict, match="another tenant"):
        await create(view, key, DEFAULT_TENANT)
    assert view.state(ApiKeyRegistry).tenant_for(key) == "acme"


async def test_old_events_without_a_change_keep_the_first_binding(log: EventLog) -> None:
    key = generate_key()
    digest = hash_key(key)
    for n, tenant in enumerate(("acme", DEFAULT_TENANT)):  # what `argus up --api-key` wrote before
        payload = events_pb2.ApiKeyCreated(key_sha256=digest, tenant=tenant, name="dev")
        event = make_event(payload, identity=digest + tenant.encode(), partition_key=digest, time_ms=NOW_MS + n)
        await log.append(CONFIG_TOPIC, [(0, event)])
    view = new_view(log)
    await view.refresh()
    assert view.state(ApiKeyRegistry).tenant_for(key) == "acme"
    assert view.version(api_key_entity(digest)) == 1


async def test_a_revoked_key_stops_authenticating_and_stays_revoked(log: EventLog) -> None:
    key = generate_key()
    view = new_view(log)
    await create(view, key)
    revoke = RevokeApiKey(key_id=key_id(hash_key(key))[:8], author="ops")
    assert (await revoke_api_key(revoke, view=view, clock_ms=clock)).changed
    with pytest.raises(Unauthenticated):
        view.state(ApiKeyRegistry).tenant_for(key)
    assert not (await revoke_api_key(revoke, view=view, clock_ms=clock)).changed
    with pytest.raises(FailedPrecondition, match="revoked"):
        await create(view, key)
    [info] = view.state(ApiKeyRegistry).keys()
    assert info.revoked and info.revoked_by == "ops"
    assert view.state(ApiKeyRegistry).known_keys == 0


async def test_revoking_against_a_version_no_longer_current_is_a_conflict(log: EventLog) -> None:
    key = generate_key()
    view = new_view(log)
    await create(view, key)
    stale = RevokeApiKey(key_id=key_id(hash_key(key)), author="ops", expected_version=0)
    with pytest.raises(Conflict, match="version 0"):
        await revoke_api_key(stale, view=view, clock_ms=clock)
    assert view.state(ApiKeyRegistry).tenant_for(key) == "acme"


async def test_revoking_an_unknown_or_ambiguous_id_is_refused(log: EventLog) -> None:
    view = new_view(log)
    with pytest.raises(NotFound):
        await revoke_api_key(RevokeApiKey(key_id="deadbeef", author="a"), view=view, clock_ms=clock)
    with pytest.raises(InvalidArgument, match="hex"):
        await revoke_api_key(RevokeApiKey(key_id="kfull", author="a"), view=view, clock_ms=clock)


async def test_bad_tenants_and_names_are_refused(log: EventLog) -> None:
    view = new_view(log)
    with pytest.raises(InvalidArgument, match="tenant"):
        await create(view, generate_key(), "a b")
    with pytest.raises(InvalidArgument, match="name"):
        await create(view, generate_key(), "acme", "x\ny")


# ---------------------------------------------------------------------------- the view


async def test_an_undecodable_event_is_skipped_and_later_changes_apply(log: EventLog) -> None:
    bad = make_event(events_pb2.ApiKeyRevoked(key_sha256=b"x"), identity=b"bad", partition_key=b"", time_ms=NOW_MS)
    await log.append(CONFIG_TOPIC, [(0, replace(bad, payload=b"\xff\xff\xff"))])
    key = generate_key()
    view = new_view(log)
    await create(view, key)
    assert view.state(ApiKeyRegistry).tenant_for(key) == "acme"
    outcome = view.outcome(bad.event_id)
    assert outcome is not None and not outcome.applied


async def test_a_newer_schema_version_stops_the_view_loudly(log: EventLog) -> None:
    newer = make_event(events_pb2.ApiKeyRevoked(key_sha256=b"x"), identity=b"new", partition_key=b"", time_ms=NOW_MS)
    await log.append(CONFIG_TOPIC, [(0, replace(newer, schema_version=99))])
    view = new_view(log)
    with pytest.raises(CorruptData, match="upgrade Argus"):
        await view.refresh()
    assert view.position == 0


async def test_states_cannot_join_a_view_that_already_follows(log: EventLog) -> None:
    view = ConfigView(log, [ApiKeyRegistry()])
    await create(view, generate_key())
    with pytest.raises(Exception, match="after following began"):
        view.add(ReadModelVersions())


async def test_concurrent_replays_reserve_distinct_versions(log: EventLog, tmp_path: Path) -> None:
    base = f"sqlite:///{tmp_path / 'hot.db'}"
    got = await asyncio.gather(
        *(reserve_version(log, model=HOT_READ_MODEL, base_url=base, now_ms=NOW_MS) for _ in range(3))
    )
    assert sorted(v for v, _ in got) == [2, 3, 4]
    view = new_view(log)
    await view.refresh()
    assert view.state(ReadModelVersions).state(HOT_READ_MODEL).newest == 4


# ---------------------------------------------------------------------------- argus up's dev key


def test_dev_api_key_refuses_a_weak_given_key_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="argus keys create"):
        dev_api_key(tmp_path, "kfull")
    assert not (tmp_path / API_KEY_FILE).exists()


def test_a_generated_dev_key_is_kept_owner_readable_only(tmp_path: Path) -> None:
    key = dev_api_key(tmp_path / "data", None)
    path = tmp_path / "data" / API_KEY_FILE
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_api_key(tmp_path / "data", None) == key


async def test_up_binds_the_given_key_keeps_it_and_refuses_another_tenants_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = settings_from_env(data_dir=data)
    container = Container(settings=settings)
    runtime = await open_runtime(container)
    try:
        mine, theirs = generate_key(), generate_key()
        await create(runtime.config, theirs, "acme")
        (data / API_KEY_FILE).write_text("old\n")
        os.chmod(data / API_KEY_FILE, 0o644)
        await register_dev_key(runtime, data, mine)
        await register_dev_key(runtime, data, mine)  # every start: a no-op
        assert runtime.api_keys.tenant_for(mine) == DEFAULT_TENANT
        assert (data / API_KEY_FILE).read_text().strip() == mine
        assert stat.S_IMODE((data / API_KEY_FILE).stat().st_mode) == 0o600
        with pytest.raises(Conflict, match="another tenant"):
            await register_dev_key(runtime, data, theirs)
        assert runtime.api_keys.tenant_for(theirs) == "acme"
        assert (data / API_KEY_FILE).read_text().strip() == mine
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


async def test_new_data_files_are_not_world_readable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = SqliteEventLog(data / "events.db")
    await log.start()
    try:
        await log.ensure_topic(CONFIG_TOPIC, 1)
        await create(new_view(log), generate_key())
        files = [p for p in data.iterdir() if p.name.startswith("events.db")]
        assert {p.name for p in files} >= {"events.db", "events.db-wal"}
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
    finally:
        await log.close()
