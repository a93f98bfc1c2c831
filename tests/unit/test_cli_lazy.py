"""The `argus` group imports a subcommand only when it runs (decision 0056): `argus push` must
not pay for the server's imports (issue 13: the push client's memory)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from argus.cli import LAZY_COMMANDS, LazyGroup, main
from argus.launch import REPO_ROOT, argus_env
from core.errors import FailedPrecondition

_PROBE = """
import json, sys
from argus.cli import main
try:
    main([*sys.argv[1:], "--help"])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def _modules_loaded_by(*args: str) -> set[str]:
    """The modules a fresh interpreter has imported after `argus ARGS... --help`."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=REPO_ROOT,
        env=argus_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return set(loaded)


def test_push_does_not_import_the_server_or_the_other_commands() -> None:
    loaded = _modules_loaded_by("push")

    assert "argus.commands.push_cmd" in loaded
    server = {"argus.registry", "argus.runtime", "argus.modules", "argus.container", "aiohttp"}
    assert not server & loaded, f"argus push imported {sorted(server & loaded)}"
    others = {module.partition(":")[0] for name, module in LAZY_COMMANDS.items() if name != "push"}
    assert not others & loaded, f"argus push imported {sorted(others & loaded)}"


def test_every_lazy_command_resolves_to_the_command_of_its_name() -> None:
    ctx = click.Context(main)
    for name in LAZY_COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name
    assert set(LAZY_COMMANDS) <= set(main.list_commands(ctx))
    assert {"up", "ingest", "project", "query-server"} <= set(main.list_commands(ctx))


def test_the_top_level_help_lists_lazy_and_eager_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])

    assert result.exit_code == 0, result.output
    for name in [*LAZY_COMMANDS, "up", "query-server"]:
        assert f"  {name} " in result.output, name


def test_a_lazy_entry_that_is_not_a_command_is_refused_by_name() -> None:
    group = LazyGroup(name="probe", lazy_commands={"oops": "argus.cli:LAZY_COMMANDS"})

    with pytest.raises(FailedPrecondition, match=r"argus oops: argus\.cli:LAZY_COMMANDS is not a click command"):
        group.get_command(click.Context(group), "oops")
    assert group.get_command(click.Context(group), "missing") is None
