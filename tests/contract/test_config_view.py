"""The config view and the config command handlers on every event log (SQLite, Kafka).

Concurrent edits must give one success and one Conflict, duplicates must apply once, and
every view of the same log must end in the same state: on SQLite (which drops a duplicate
event id on append) and on Kafka (which appends it again, with no conditional append).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from command_side.config.commands import CreateApiKey, RevokeApiKey
from command_side.config.dashboards import SaveDashboard, save_dashboard
from command_side.config.handlers import create_api_key, revoke_api_key
from contracts.argus.events.v1 import events_pb2
from core.adapters.kafka_event_log import KafkaEventLog
from core.adapters.sqlite_event_log import SqliteEventLog
from core.auth import ApiKeyRegistry, api_key_entity, generate_key, hash_key
from core.config_view import ConfigView, config_change
from core.dashboards.state import DashboardState, DashboardVersion, dashboard_entity
from core.errors import Conflict, Unauthenticated
from core.events import make_event
from core.ports import EventLog
from core.read_models import ReadModelVersions
from tests.services.kafka import TansuBroker

NOW_MS = 1_700_000_000_000


def clock() -> int:
    return NOW_MS


class ConfigViewContract:
    async def make_log(self, tmp_path: Path) -> EventLog:
        raise NotImplementedError

    @pytest.fixture
    def topic(self) -> str:
        return "test.config.v1"

    @pytest.fixture
    async def log(self, tmp_path: Path, topic: str) -> AsyncIterator[EventLog]:
        log = await self.make_log(tmp_path)
        await log.start()
        await log.ensure_topic(topic, 1)
        try:
            yield log
        finally:
            await log.close()

    def view(self, log: EventLog, topic: str) -> ConfigView:
        return ConfigView(log, [ApiKeyRegistry(), ReadModelVersions()], topic=topic)

    async def test_concurrent_creates_of_one_key_for_two_tenants_give_one_conflict(
        self, log: EventLog, topic: str
    ) -> None:
        key = generate_key()
        a, b = self.view(log, topic), self.view(log, topic)
        results = await asyncio.gather(
            create_api_key(CreateApiKey(api_key=key, tenant="acme", author="a"), view=a, clock_ms=clock),
            create_api_key(CreateApiKey(api_key=key, tenant="evil", author="b"), view=b, clock_ms=clock),
            return_exceptions=True,
        )
        conflicts = [r for r in results if isinstance(r, Conflict)]
        assert len(conflicts) == 1, results
        winner = "acme" if not isinstance(results[0], BaseException) else "evil"
        third = self.view(log, topic)
        await third.refresh()
        for view in (a, b, third):
            await view.refresh()
            assert view.state(ApiKeyRegistry).tenant_for(key) == winner
            assert view.version(api_key_entity(hash_key(key))) == 1

    async def test_a_stale_expected_version_changes_nothing(self, log: EventLog, topic: str) -> None:
        key = generate_key()
        view = self.view(log, topic)
        await create_api_key(CreateApiKey(api_key=key, tenant="acme", author="a"), view=view, clock_ms=clock)
        digest = hash_key(key)
        # Written as by a handler that validated against version 0 (before the creation).
        stale = events_pb2.ApiKeyRevoked(key_sha256=digest, change=config_change(author="late", expected_version=0))
        with pytest.raises(Conflict, match="expected version 0"):
            await view.append_change(make_event(stale, identity=digest + b"0", partition_key=digest, time_ms=NOW_MS))
        assert view.state(ApiKeyRegistry).tenant_for(key) == "acme"
        assert view.version(api_key_entity(digest)) == 1

    async def test_the_same_event_appended_twice_applies_once(self, log: EventLog, topic: str) -> None:
        key = generate_key()
        digest = hash_key(key)
        payload = events_pb2.ApiKeyCreated(
            key_sha256=digest, tenant="acme", change=config_change(author="a", expected_version=0)
        )
        event = make_event(payload, identity=digest, partition_key=digest, time_ms=NOW_MS)
        view = self.view(log, topic)
        first = await view.append_change(event)
        again = await view.append_change(event)  # Kafka: a second record; SQLite: dropped
        assert first == again
        assert first.applied and first.version == 1
        fresh = self.view(log, topic)
        await fresh.refresh()
        assert fresh.version(api_key_entity(digest)) == 1
        assert fresh.outcome(event.event_id) == first

    async def test_revoke_races_with_a_second_revoke_and_both_see_it_revoked(self, log: EventLog, topic: str) -> None:
        key = generate_key()
        a, b = self.view(log, topic), self.view(log, topic)
        await create_api_key(CreateApiKey(api_key=key, tenant="acme", author="a"), view=a, clock_ms=clock)
        key_id = hash_key(key).hex()[:16]
        await asyncio.gather(
            revoke_api_key(RevokeApiKey(key_id=key_id, author="a"), view=a, clock_ms=clock),
            revoke_api_key(RevokeApiKey(key_id=key_id, author="b"), view=b, clock_ms=clock),
            return_exceptions=True,
        )
        for view in (a, b):
            await view.refresh()
            with pytest.raises(Unauthenticated):
                view.state(ApiKeyRegistry).tenant_for(key)
            assert view.version(api_key_entity(hash_key(key))) == 2

    async def test_dashboard_saves_racing_on_one_version_leave_the_same_one_in_every_view(
        self, log: EventLog, topic: str
    ) -> None:
        def view() -> ConfigView:
            return ConfigView(log, [DashboardState()], topic=topic)

        def save(panel: str, expected: int) -> SaveDashboard:
            spec = json.dumps(
                {"panels": [{"type": "stat", "title": panel, "gridPos": {"x": 0, "y": 0, "w": 4, "h": 4}}]}
            )
            return SaveDashboard(
                tenant="acme", uid="web", title="Web", spec_json=spec, expected_version=expected, author="a"
            )

        a, b = view(), view()
        await save_dashboard(save("first", 0), view=a, clock_ms=clock)
        await b.refresh()
        results = await asyncio.gather(
            save_dashboard(save("from a", 1), view=a, clock_ms=clock),
            save_dashboard(save("from b", 1), view=b, clock_ms=clock),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Conflict) for r in results) == 1, results
        winner = next(r for r in results if not isinstance(r, BaseException))
        assert isinstance(winner, DashboardVersion)
        third = view()
        await third.refresh()
        for v in (a, b, third):
            await v.refresh()
            assert v.state(DashboardState).get("acme", "web") == winner
            assert v.version(dashboard_entity("acme", "web")) == 2


class TestSqliteConfigView(ConfigViewContract):
    async def make_log(self, tmp_path: Path) -> EventLog:
        return SqliteEventLog(tmp_path / "events.db")


class TestKafkaConfigView(ConfigViewContract):
    @pytest.fixture(autouse=True)
    def _broker(self, kafka_broker: TansuBroker) -> None:
        self.broker = kafka_broker

    @pytest.fixture
    def topic(self) -> str:
        return f"test.config.{uuid.uuid4().hex[:12]}.v1"  # the broker is shared by the session

    async def make_log(self, tmp_path: Path) -> EventLog:
        return KafkaEventLog.from_url(self.broker.url())
