"""API keys end to end through the CLI: `argus keys create | list | revoke` against a data dir
that `argus up` serves, the dev key kept in `<data-dir>/api_key`, and the refusals (a weak
key, another tenant's key given to `argus up --api-key`)."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable

import pytest

from argus.launch import up_argv
from tests.e2e.conftest import ArgusServer, free_port, parse_push_summary, run_argus, wait_for

pytestmark = pytest.mark.e2e


def _up_once(server: ArgusServer, api_key: str) -> tuple[int, str]:
    """Run `argus up` with `api_key` until it exits (a refusal exits before it is ready)."""
    argv = up_argv(
        data_dir=server.data_dir,
        ingest_port=free_port(),
        query_port=free_port(),
        http_port=free_port(),
        api_key=api_key,
    )
    done = run_argus(*argv[argv.index("up") :], timeout_s=120)
    return done.returncode, done.stdout + done.stderr


def test_keys_go_through_the_command_path_and_are_never_moved_or_shown(
    server_factory: Callable[[], ArgusServer],
) -> None:
    server = server_factory()
    data = server.data_dir

    created = run_argus("keys", "create", "--data-dir", str(data), "--tenant", "acme", "--name", "ci")
    assert created.returncode == 0, created.stderr
    acme_key = created.stdout.strip().splitlines()[-1]

    code, output = _up_once(server, "kfull")
    assert code != 0 and "argus keys create" in output, output
    code, output = _up_once(server, acme_key)
    assert code != 0 and "another tenant" in output, output
    assert not (data / "api_key").exists() or (data / "api_key").read_text().strip() != acme_key

    server.start()
    key_file = data / "api_key"
    assert key_file.read_text().strip() == server.api_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    log_text = server.log_path.read_text(errors="replace")
    assert "Argus is up" in log_text and server.api_key not in log_text and acme_key not in log_text

    # `argus push --data-dir` finds the key `argus up` kept, and pushes as tenant default.
    samples = data.parent / "one.ndjson"
    now_ms = time.time_ns() // 1_000_000
    samples.write_text(json.dumps({"metric": "e2e_keys", "ts": now_ms, "value": 1.0}) + "\n")
    pushed = run_argus("push", str(samples), "--ingest", server.ingest_target, "--data-dir", str(data))
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert parse_push_summary(pushed.stdout + pushed.stderr).accepted == 1

    assert server.http_get("/api/v1/metrics", key=acme_key).status == 200
    listed = run_argus("keys", "list", "--data-dir", str(data), "--json")
    assert listed.returncode == 0, listed.stderr
    assert server.api_key not in listed.stdout and acme_key not in listed.stdout
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    assert sorted((r["tenant"], r["name"], r["revoked"]) for r in rows) == [
        ("_argus", "self-metrics", None),  # `argus up`'s own metrics (docs/metrics.md)
        ("acme", "ci", None),
        ("default", "dev", None),
    ]
    [acme] = [r for r in rows if r["tenant"] == "acme"]
    assert acme["created_by"] and acme["created"]

    revoked = run_argus("keys", "revoke", "--data-dir", str(data), acme["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    wait_for(
        "the revoked key to be refused",
        lambda: server.http_get("/api/v1/metrics", key=acme_key).status == 401,
        timeout_s=30,
    )
    assert server.http_get("/api/v1/metrics").status == 200
    again = run_argus("keys", "list", "--data-dir", str(data), "--json", "--tenant", "acme")
    assert json.loads(again.stdout.strip().splitlines()[-1])["revoked"]
