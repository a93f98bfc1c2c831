"""One settings loader for server and agent: the same words mean the same booleans, and the
same precedence (file < environment < flags) holds in both."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from core.errors import InvalidArgument
from core.settings import layered_values, parse_bool, settings_from_env

AGENT = {"ingest": "ingest:50051", "api_key": "k" * 24}


@pytest.mark.parametrize(
    ("word", "value"),
    [("on", True), ("OFF", False), ("yes", True), ("No", False), ("1", True), ("0", False), ("true", True)],
)
def test_server_and_agent_read_a_boolean_word_the_same(word: str, value: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGUS_ALLOW_INSECURE_BIND", word)
    assert settings_from_env().allow_insecure_bind is value
    assert load_config(env={"ARGUS_AGENT_FSYNC": word}, flags=AGENT).fsync is value
    assert parse_bool(word) is value


@pytest.mark.parametrize("word", ["maybe", "", "2", "enabled"])
def test_server_and_agent_refuse_the_same_non_booleans(word: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGUS_ALLOW_INSECURE_BIND", word)
    with pytest.raises(InvalidArgument, match="ARGUS_ALLOW_INSECURE_BIND"):
        settings_from_env()
    with pytest.raises(InvalidArgument, match="ARGUS_AGENT_FSYNC"):
        load_config(env={"ARGUS_AGENT_FSYNC": word}, flags=AGENT)


def test_precedence_is_file_then_environment_then_flags(tmp_path: Path) -> None:
    def parse(key: str, raw: object, where: str) -> object:
        return f"{raw}@{where}"

    values = layered_values(
        keys=("a", "b", "c"),
        parse=parse,
        file_values={"a": 1, "b": 1, "c": 1},
        file_source="config file x.toml",
        env={"P_B": "2", "P_C": "2"},
        env_prefix="P_",
        flags={"c": 3, "a": None},
    )
    assert values == {"a": "1@config file x.toml: a", "b": "2@environment variable P_B", "c": "3@--c"}
