"""Fuzz the config files: the server's TOML loader (core.settings) and the agent's
(agent.config), with random text and with TOML documents of known and unknown keys holding
values of every TOML type.

Properties: a file loads into well-typed settings or is refused with InvalidArgument naming
what is wrong (and the key, where one is at fault); never another exception; each load is
under a wall-clock bound."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from unittest import mock

from hypothesis import event, given
from hypothesis import strategies as st

from agent.config import KEYS as AGENT_KEYS
from agent.config import AgentConfig, load_config
from core.adapters.log_retention import LogRetention
from core.errors import InvalidArgument
from core.settings import IngestLimits, Settings, load_config_file, settings_from_env
from tests.fuzz.bounds import assert_reasoned, bounded, fuzz

SERVER_KEYS = [f.name for f in fields(Settings)] + [f"limits.{f.name}" for f in fields(IngestLimits)]


def toml_value(value: object) -> str:
    """`value` as TOML (strings escaped the JSON way, which TOML basic strings share)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"


SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        ["", "0", "-1", "true", "no", "1_000", "127.0.0.1:0", "sqlite:///x.db", "kafka://h:1", "1e999", "5s"]
    ),
)
PLAUSIBLE = st.one_of(
    st.integers(1, 10**7), st.floats(0.001, 100), st.booleans(), st.sampled_from(["eu", "none", "gzip"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)


@st.composite
def documents(draw: st.DrawFn, keys: list[str]) -> str:
    lines = []
    tables: dict[str, list[str]] = {}
    known = st.sampled_from(keys)
    for key in draw(st.lists(st.one_of(known, known, known, st.text(max_size=8)), max_size=5, unique=True)):
        table, dot, name = key.rpartition(".") if key.startswith("limits.") else ("", "", key)
        entry = f"{json.dumps(name)} = {toml_value(draw(st.one_of(PLAUSIBLE, PLAUSIBLE, VALUES)))}"
        if dot:
            tables.setdefault(table, []).append(entry)
        else:
            lines.append(entry)
    for table, entries in tables.items():
        lines.append(f"[{table}]")
        lines.extend(entries)
    return "\n".join(lines) + "\n"


def load_server(text: str, folder: Path) -> None:
    path = folder / "argus.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        with bounded("load a server config file"):
            values = load_config_file(path)
            settings = Settings(**values)  # type: ignore[arg-type]
            LogRetention.from_settings(settings)
    except InvalidArgument as exc:
        assert_reasoned(exc, InvalidArgument)
        event("refused")
        return
    event("loaded")
    for name, value in values.items():
        default = getattr(Settings(), name)
        assert isinstance(value, type(default)) or (isinstance(default, dict) and isinstance(value, dict)), name


def load_agent(text: str, folder: Path) -> None:
    path = folder / "agent.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        with bounded("load an agent config file"):
            config = load_config(file=path, env={}, flags={"ingest": "127.0.0.1:4317", "api_key": "k"})
    except InvalidArgument as exc:
        assert_reasoned(exc, InvalidArgument)
        event("refused")
        return
    event("loaded")
    assert isinstance(config, AgentConfig)


TEXT = st.text(max_size=200)


@fuzz()
@given(text=st.one_of(TEXT, documents(SERVER_KEYS)))
def test_server_config_files_load_or_are_refused(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        load_server(text, Path(folder))


@fuzz()
@given(text=st.one_of(TEXT, documents(list(AGENT_KEYS))))
def test_agent_config_files_load_or_are_refused(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        load_agent(text, Path(folder))


ENV_TEXT = st.one_of(
    st.sampled_from(["", "0", "1", "-1", "true", "off", "1_000", "1e3", "nan", "inf", "5s", "1h=300000", "x=1,y"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12),
)


@fuzz()
@given(env=st.dictionaries(st.sampled_from([k.split(".")[-1] for k in SERVER_KEYS]), ENV_TEXT, max_size=4))
def test_server_environment_variables_load_or_are_refused(env: dict[str, str]) -> None:
    variables = {f"ARGUS_{name.upper()}": value for name, value in env.items()}
    # Only these variables: the test's own environment must not leak in.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
    with mock.patch.dict(os.environ, {**clean, **variables}, clear=True):
        try:
            with bounded("read settings from the environment"):
                LogRetention.from_settings(settings_from_env())
        except InvalidArgument as exc:
            assert_reasoned(exc, InvalidArgument)


@fuzz()
@given(env=st.dictionaries(st.sampled_from(list(AGENT_KEYS)), ENV_TEXT, max_size=4))
def test_agent_environment_variables_load_or_are_refused(env: dict[str, str]) -> None:
    variables = {f"ARGUS_AGENT_{name.upper()}": value for name, value in env.items()}
    try:
        with bounded("read agent settings from the environment"):
            load_config(env=variables, flags={"ingest": "127.0.0.1:4317", "api_key": "k"})
    except InvalidArgument as exc:
        assert_reasoned(exc, InvalidArgument)
