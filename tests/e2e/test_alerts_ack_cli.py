"""`argus alerts ack` / `unack` as real processes on one data dir: a firing instance (seeded
on the alerts topic) is acked, shows its ack in `argus alerts list --json`, is un-acked; an
unknown id and another tenant's id both fail as not found."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from argus.container import event_log_resource
from contracts.argus.alerts.v1 import alerts_pb2
from core import data_dir as data_dirs
from core.alerting.lifecycle import InstanceKey
from core.events import ALERTS_TOPIC, make_event
from core.settings import settings_from_env
from tests.e2e.conftest import run_argus

pytestmark = pytest.mark.e2e


async def seed_firing(data: Path, key: InstanceKey) -> None:
    settings = settings_from_env(data_dir=data)
    data_dirs.prepare(settings.data_dir)
    async with contextlib.asynccontextmanager(event_log_resource)(settings) as events:
        await events.ensure_topic(ALERTS_TOPIC, 4)
        message = alerts_pb2.AlertStateChanged(
            tenant="acme",
            rule="hot",
            instance_labels={"room": "lab"},
            from_state=alerts_pb2.ALERT_STATE_PENDING,
            to_state=alerts_pb2.ALERT_STATE_FIRING,
            evaluated_at_ms=1_000,
            since_ms=1_000,
            sequence=1,
            instance_id=key.instance_id,
        )
        event = make_event(message, identity=b"seed", partition_key=bytes.fromhex(key.instance_id), time_ms=1_000)
        await events.append(ALERTS_TOPIC, [(0, event)])


def test_ack_and_unack_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = InstanceKey.of("acme", "hot", {"room": "lab"})
    asyncio.run(seed_firing(data, key))
    where = ("--data-dir", str(data))

    acked = run_argus(
        "alerts", "ack", key.instance_id, *where, "--tenant", "acme", "--comment", "mine", "--author", "bob"
    )
    assert acked.returncode == 0, acked.stderr
    listed = run_argus("alerts", "list", *where, "--tenant", "acme", "--json")
    (row,) = map(json.loads, listed.stdout.splitlines())
    assert row["acknowledged"]["by"] == "bob" and row["acknowledged"]["comment"] == "mine"

    foreign = run_argus("alerts", "ack", key.instance_id, *where, "--tenant", "globex")
    unknown = run_argus("alerts", "ack", "0" * 64, *where, "--tenant", "globex")
    assert (foreign.returncode, unknown.returncode) == (1, 1)
    assert "does not exist" in foreign.stderr and "does not exist" in unknown.stderr

    unacked = run_argus("alerts", "unack", key.instance_id, *where, "--tenant", "acme")
    assert unacked.returncode == 0, unacked.stderr
    listed = run_argus("alerts", "list", *where, "--tenant", "acme", "--json")
    (row,) = map(json.loads, listed.stdout.splitlines())
    assert row["acknowledged"] is None
