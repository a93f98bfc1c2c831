"""The alerting configuration end to end through the CLI, as real processes on one data dir:
`argus alerts apply` (dry run, apply, the same file again, an edit, an invalid file),
`argus alerts rules` per tenant, and silences (`silence`, `silences`, `expire-silence`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import run_argus

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"


def example() -> str:
    match = re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match is not None
    return match.group(1)


def rules(data: Path, tenant: str) -> dict[str, dict[str, object]]:
    done = run_argus("alerts", "rules", "--data-dir", str(data), "--tenant", tenant, "--json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in map(json.loads, done.stdout.splitlines())}


def test_alerting_configuration_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    document = tmp_path / "alerts.yaml"
    document.write_text(example())
    apply = ("alerts", "apply", str(document), "--data-dir", str(data), "--tenant", "acme", "--author", "alice")

    dry = run_argus(*apply, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would create rule high_cpu" in dry.stdout and "(dry run)" in dry.stdout
    assert rules(data, "acme") == {}  # a dry run changes nothing

    first = run_argus(*apply)
    assert first.returncode == 0, first.stderr
    created = [line for line in first.stdout.splitlines() if line.startswith("created ")]
    assert "created rule high_cpu" in created and "created receiver team-email" in created
    assert "created routing routing" in created
    acme = rules(data, "acme")
    assert acme["high_cpu"]["condition_text"] == "> 90" and acme["high_cpu"]["window_ms"] == 300_000
    assert acme["traffic_jump"]["condition_text"] == "change > 1000 over 10m"
    assert rules(data, "globex") == {}  # another tenant sees none of it

    again = run_argus(*apply)
    assert again.returncode == 0 and again.stdout.strip() == "no changes for tenant acme", again.stdout

    document.write_text(example().replace('condition: "> 90"', 'condition: "> 95"'))
    edit = run_argus(*apply)
    assert edit.returncode == 0 and edit.stdout.splitlines()[0] == "updated rule high_cpu", edit.stdout
    assert rules(data, "acme")["high_cpu"]["condition_text"] == "> 95"

    # An invalid document: every error with file, line and field on stderr, nothing applied.
    bad = example().replace("window: 5m", "window: 2d").replace("password: env:SMTP_PASSWORD", "password: hunter2")
    document.write_text(bad)
    refused = run_argus(*apply)
    assert refused.returncode == 1
    window_line = next(i for i, line in enumerate(bad.splitlines(), 1) if "window: 2d" in line)
    assert f"{document}:{window_line}: rules[0].window: must be from 1s to 1d" in refused.stderr
    assert "receivers[2].email[0].password: expected a secret reference" in refused.stderr
    assert "hunter2" not in refused.stderr
    assert rules(data, "acme")["high_cpu"]["window_ms"] == 300_000

    # Silences.
    silence = run_argus(
        "alerts", "silence", "--data-dir", str(data), "--tenant", "acme",
        "--match", "alertname=host_down", "--match", "host=~web-[0-9]+", "--for", "2h", "--comment", "reboots",
    )  # fmt: skip
    assert silence.returncode == 0, silence.stderr
    silence_id = silence.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", silence_id)
    listed = run_argus("alerts", "silences", "--data-dir", str(data), "--tenant", "acme", "--json")
    (row,) = map(json.loads, listed.stdout.splitlines())
    assert row["id"] == silence_id and row["active"] and row["comment"] == "reboots"
    assert {"name": "host", "op": "=~", "value": "web-[0-9]+"} in row["matchers"]
    assert row["ends_ms"] - row["starts_ms"] == 2 * 3_600_000

    stolen = run_argus("alerts", "expire-silence", silence_id, "--data-dir", str(data), "--tenant", "globex")
    assert stolen.returncode == 1 and "no silence" in stolen.stderr
    expired = run_argus("alerts", "expire-silence", silence_id, "--data-dir", str(data), "--tenant", "acme")
    assert expired.returncode == 0 and "expired silence" in expired.stderr, expired.stderr
    active = run_argus("alerts", "silences", "--data-dir", str(data), "--tenant", "acme", "--json")
    assert active.stdout.strip() == ""
    everything = run_argus("alerts", "silences", "--data-dir", str(data), "--tenant", "acme", "--json", "--all")
    (row,) = map(json.loads, everything.stdout.splitlines())
    assert not row["active"]

    bad_match = run_argus(
        "alerts", "silence", "--data-dir", str(data), "--tenant", "acme",
        "--match", "host=~(a)\\1", "--for", "1h", "--comment", "x",
    )  # fmt: skip
    assert bad_match.returncode == 2 and "regular expression" in bad_match.stderr


def test_help_shows_examples() -> None:
    done = run_argus("alerts", "--help")
    assert done.returncode == 0
    for command in ("apply", "rules", "silence", "silences", "expire-silence"):
        assert f"argus alerts {command}" in done.stdout
