"""The projector process of `argus up` gets the parent's resolved settings through its
environment (argus.supervisor.settings_env), whatever their source was."""

from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path

import pytest

from argus.supervisor import settings_env
from core.settings import Settings, settings_from_env


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ARGUS_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize("tier_intervals", [{}, {"5s": 1_000, "1h": 300_000, "1d": 900_000}])
def test_settings_survive_the_trip_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier_intervals: dict[str, int]
) -> None:
    parent = settings_from_env(
        data_dir=tmp_path / "data dir",
        cold_store_url="s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=x",
        sample_partitions=5,
        flush_interval_ms=250,
        tier_flush_interval_ms=tier_intervals,
        retention_check_interval_ms=1_234,
        applied_event_memory_ms=5_678,
        collector_interval_s=2.5,
        region="eu-west-1",
        ingest_addr="127.0.0.1:0",
    )
    # Every field this test sets differs from its default, so a dropped one would show.
    changed = {f.name for f in fields(Settings) if getattr(parent, f.name) != getattr(Settings().resolved(), f.name)}
    assert changed >= {"data_dir", "sample_partitions", "flush_interval_ms", "collector_interval_s", "region"}

    for key, value in settings_env(parent).items():
        monkeypatch.setenv(key, value)
    child = settings_from_env()
    # Not passed on purpose: the ingest limits (no environment form, projectors do not use them).
    assert replace(child, limits=parent.limits) == parent
