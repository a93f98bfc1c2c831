"""`argus agent` configuration: file < environment < flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config, parse_size
from core.errors import InvalidArgument

BASE = {"ingest": "127.0.0.1:50051", "api_key": "k"}


def test_flags_beat_environment_which_beats_the_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(
        'ingest = "file:1"\napi_key = "from-file"\nbatch_interval_s = 1.5\nregion = "eu-1"\n'
        '[labels]\nteam = "pay"\n[[scrape]]\nurl = "http://127.0.0.1:9100/metrics"\ninterval_s = 5\n'
    )
    env = {"ARGUS_AGENT_BATCH_INTERVAL_S": "0.5", "ARGUS_AGENT_API_KEY": "from-env", "OTHER": "x"}
    config = load_config(file=file, env=env, flags={"api_key": "from-flag", "ingest": None})
    assert config.ingest == "file:1"
    assert config.api_key == "from-flag"
    assert config.batch_interval_s == 0.5
    assert config.region == "eu-1"
    assert config.labels == (("team", "pay"),)
    assert [(t.url, t.interval_s, t.instance) for t in config.scrape] == [
        ("http://127.0.0.1:9100/metrics", 5.0, "127.0.0.1:9100")
    ]
    assert config.source_name == f"agent:{config.host}"


def test_sizes_take_units() -> None:
    assert parse_size("2MiB") == 2 * 1024 * 1024
    assert parse_size("50MB") == 50_000_000
    assert parse_size("1g") == 1_000_000_000
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    config = load_config(env={"ARGUS_AGENT_SPOOL_MAX_BYTES": "10MiB"}, flags={**BASE, "max_batch_bytes": "1MiB"})
    assert (config.spool_max_bytes, config.max_batch_bytes) == (10 * 1024 * 1024, 1024 * 1024)


def test_sidecar_mode_turns_host_metrics_off_unless_asked() -> None:
    assert not load_config(env={}, flags={**BASE, "mode": "sidecar"}).host_metrics
    assert load_config(env={}, flags={**BASE, "mode": "sidecar", "host_metrics": True}).host_metrics
    assert load_config(env={}, flags=BASE).host_metrics


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({}, {"api_key": "k"}, "ingest must be the ingest address"),
        ({}, {"ingest": "127.0.0.1:1"}, "api_key must be an API key"),
        ({"ARGUS_AGENT_INTERVAL_S": "soon"}, BASE, "environment ARGUS_AGENT_INTERVAL_S"),
        ({}, {**BASE, "batch_interval_s": -1.0}, "batch_interval_s must be a number of seconds > 0"),
        ({}, {**BASE, "compression": "lz4"}, "compression must be gzip, zstd or none"),
        ({}, {**BASE, "statsd_addr": "8125"}, "statsd_addr must be HOST:PORT"),
        ({}, {**BASE, "labels": ["region=x"]}, "labels: label name 'region' is reserved"),
        ({}, {**BASE, "fsync": "maybe"}, "--fsync: 'maybe' is not true/false"),
        ({}, {**BASE, "spool_max_bytes": "1MiB"}, "spool_max_bytes must be at least 4 x max_batch_bytes"),
        ({}, {**BASE, "scrape": ["localhost:9100"]}, "scrape url 'localhost:9100' must be http"),
    ],
)
def test_bad_values_name_their_source_and_what_was_expected(
    env: dict[str, str], flags: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        load_config(env=env, flags=flags)


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text('ingest = "h:1"\napi_key = "k"\nbatch_intervall_s = 2\n')
    with pytest.raises(InvalidArgument, match="unknown key\\(s\\) batch_intervall_s"):
        load_config(file=file, env={})
    file.write_text("ingest = [")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        load_config(file=file, env={})
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_config(file=tmp_path / "missing.toml", env={})


def test_the_example_config_in_deploy_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "agent.example.toml"
    config = load_config(file=example, env={"ARGUS_AGENT_API_KEY": "k"})
    assert config.ingest == "ingest.internal:50051"
    assert config.max_batch_bytes == 2 * 1024 * 1024
    assert [t.url for t in config.scrape] == ["http://127.0.0.1:9100/metrics"]
