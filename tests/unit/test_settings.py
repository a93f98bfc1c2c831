"""Settings: precedence flags > environment > config file > defaults, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidArgument
from core.read_models import versioned_group, versioned_store_url
from core.settings import Settings, load_config_file, settings_from_env

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ARGUS_"):
            monkeypatch.delenv(key)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "argus.toml"
    path.write_text(text)
    return path


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _write(
        tmp_path,
        'region = "file-region"\nquery_addr = "0.0.0.0:1"\nhttp_addr = "0.0.0.0:2"\nflush_interval_ms = 250\n',
    )
    monkeypatch.setenv("ARGUS_QUERY_ADDR", "0.0.0.0:10")
    monkeypatch.setenv("ARGUS_HTTP_ADDR", "0.0.0.0:20")
    settings = settings_from_env(config_file=config, http_addr="0.0.0.0:200")
    assert settings.http_addr == "0.0.0.0:200"  # flag
    assert settings.query_addr == "0.0.0.0:10"  # environment over file
    assert settings.region == "file-region"  # file over default
    assert settings.flush_interval_ms == 250
    assert settings.ingest_addr == Settings().ingest_addr  # default


def test_config_file_from_argus_config_and_limits_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _write(tmp_path, 'data_dir = "/var/lib/argus"\n[limits]\nmax_batch_samples = 5_000\n')
    monkeypatch.setenv("ARGUS_CONFIG", str(config))
    settings = settings_from_env()
    assert settings.data_dir == Path("/var/lib/argus")
    assert settings.limits.max_batch_samples == 5_000
    assert settings.limits.max_labels == Settings().limits.max_labels
    assert settings.event_log_url == "sqlite:////var/lib/argus/events.db"


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = _write(tmp_path, 'evnet_log_url = "kafka://h:9092"\n')
    with pytest.raises(InvalidArgument, match=r"argus\.toml: unknown key 'evnet_log_url'") as info:
        load_config_file(config)
    assert info.value.parameter == "evnet_log_url"
    with pytest.raises(InvalidArgument, match=r"unknown key 'limits\.max_batch'"):
        load_config_file(_write(tmp_path, "[limits]\nmax_batch = 1\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('sample_partitions = "many"\n', r"sample_partitions must be an integer"),
        ("region = 3\n", r"region must be a string"),
        ("limits = 3\n", r"\[limits\] must be a table"),
        ("region = \n", r"is not valid TOML"),
    ],
)
def test_bad_values_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        load_config_file(_write(tmp_path, text))


def test_missing_file_and_bad_environment_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgument, match=r"config file .*nope\.toml does not exist"):
        settings_from_env(config_file=tmp_path / "nope.toml")
    monkeypatch.setenv("ARGUS_FLUSH_INTERVAL_MS", "soon")
    with pytest.raises(InvalidArgument, match=r"environment variable ARGUS_FLUSH_INTERVAL_MS: .* integer"):
        settings_from_env()


def test_example_config_in_deploy_loads() -> None:
    values = load_config_file(REPO / "deploy" / "argus.example.toml")
    assert str(values["event_log_url"]).startswith("kafka://")
    assert str(values["hot_store_url"]).startswith("dynamodb://")


def test_versioned_store_urls_and_groups() -> None:
    assert versioned_store_url("sqlite:////data/hot.db", 1) == "sqlite:////data/hot.db"
    assert versioned_store_url("sqlite:////data/hot.db", 2) == "sqlite:////data/hot.v2.db"
    assert versioned_store_url("sqlite:///rel/hot.db", 3) == "sqlite:///rel/hot.v3.db"
    url = versioned_store_url("dynamodb://us-east-1?endpoint=http://127.0.0.1:8000&prefix=prod_", 2)
    assert url == "dynamodb://us-east-1?endpoint=http://127.0.0.1:8000&prefix=prod_v2_"
    assert versioned_group("rollups", 1) == "rollups"
    assert versioned_group("rollups", 4) == "rollups.v4"
    with pytest.raises(InvalidArgument, match="cannot derive"):
        versioned_store_url("memory://x", 2)


def test_tier_flush_intervals_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().tier_flush_interval_ms == {}  # default: every tier at every flush
    config = _write(tmp_path, '[tier_flush_interval_ms]\n5s = 1_000\n1h = "300000"\n1d = 900_000\n')
    assert load_config_file(config)["tier_flush_interval_ms"] == {"5s": 1_000, "1h": 300_000, "1d": 900_000}
    assert settings_from_env(config_file=config).tier_flush_interval_ms["1d"] == 900_000
    monkeypatch.setenv("ARGUS_TIER_FLUSH_INTERVAL_MS", " 1m=5000, 5m=30_000 ")
    assert settings_from_env(config_file=config).tier_flush_interval_ms == {"1m": 5_000, "5m": 30_000}
    monkeypatch.setenv("ARGUS_TIER_FLUSH_INTERVAL_MS", "")
    assert settings_from_env().tier_flush_interval_ms == {}
    assert settings_from_env(tier_flush_interval_ms={"1d": 60_000}).tier_flush_interval_ms == {"1d": 60_000}


@pytest.mark.parametrize(
    ("text", "message", "parameter"),
    [
        ("tier_flush_interval_ms = 5\n", r"\[tier_flush_interval_ms\] must be a table", "tier_flush_interval_ms"),
        (
            "[tier_flush_interval_ms]\n2h = 5\n",
            r"unknown tier in 'tier_flush_interval_ms\.2h'",
            "tier_flush_interval_ms.2h",
        ),
        ("[tier_flush_interval_ms]\n1d = -5\n", r"1d must be a non-negative integer", "tier_flush_interval_ms.1d"),
        ('[tier_flush_interval_ms]\n1d = "soon"\n', r"1d must be an integer", "tier_flush_interval_ms.1d"),
    ],
)
def test_bad_tier_flush_intervals_name_the_key(tmp_path: Path, text: str, message: str, parameter: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        load_config_file(_write(tmp_path, text))
    assert info.value.parameter == parameter


def test_bad_tier_flush_intervals_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGUS_TIER_FLUSH_INTERVAL_MS", "1d:900000")
    with pytest.raises(InvalidArgument, match=r"ARGUS_TIER_FLUSH_INTERVAL_MS: .*TIER=MS pairs"):
        settings_from_env()
    monkeypatch.setenv("ARGUS_TIER_FLUSH_INTERVAL_MS", "1w=1")
    with pytest.raises(InvalidArgument, match=r"unknown tier"):
        settings_from_env()


def test_alerts_enabled_by_default_and_off_from_the_environment_or_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from_env().alerts_enabled is True
    assert settings_from_env(alerts_enabled=False).alerts_enabled is False  # `argus up --no-alerts`
    assert settings_from_env(alerts_enabled=None).alerts_enabled is True  # flag absent
    monkeypatch.setenv("ARGUS_ALERTS_ENABLED", "false")
    assert settings_from_env().alerts_enabled is False
