"""`argus up` runs its projectors in a supervised child process (docs/decisions/0012).

Ctrl-C (SIGINT to the terminal's process group) and SIGTERM stop both processes cleanly;
`kill -9` of `argus up` makes the orphaned child stop within seconds (a restarted server's
projectors then take its consumer groups); a child that dies is restarted and projection
goes on; `--single-process` keeps everything in one process.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable

import psutil
import pytest

from argus.launch import up_argv
from tests.e2e.conftest import STOP_TIMEOUT_S, ArgusServer, measured, wait_for

pytestmark = pytest.mark.e2e

ORPHAN_EXIT_TIMEOUT_S = 15.0  # the child's own deadline is 10 s (argus.supervisor)
RESTART_TIMEOUT_S = 60.0


def _children(server: ArgusServer) -> list[psutil.Process]:
    assert server.proc is not None
    return [p for p in psutil.Process(server.proc.pid).children() if _alive(p)]


def _projector_child(server: ArgusServer) -> psutil.Process:
    children = _children(server)
    assert len(children) == 1, f"expected one projector process, found {children}"
    assert "project" in children[0].cmdline(), children[0].cmdline()
    return children[0]


def _alive(proc: psutil.Process) -> bool:
    # An orphan is reaped by whoever adopts it; until then it is a zombie: dead all the same.
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _run_log(server: ArgusServer) -> str:
    """The log of the server's latest start."""
    return server.log_tail(5_000).rpartition("===== start ")[2]


def test_projectors_run_in_a_child_and_the_ready_panel_waits_for_them(
    server_factory: Callable[[], ArgusServer],
) -> None:
    server = server_factory().start()
    child = _projector_child(server)
    server.barrier("child-projects")  # pushed to the parent, visible only if the child projects
    text = _run_log(server)
    child_ready = text.find(f"[projectors] argus: ready (pid {child.pid})")
    assert child_ready >= 0, text
    assert child_ready < text.find("Argus is up"), "the ready panel came before the projectors ran"
    assert child.cpu_times().user > 0


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_both_processes_cleanly(server_factory: Callable[[], ArgusServer], how: str) -> None:
    server = server_factory().start()
    child = _projector_child(server)
    assert server.proc is not None
    if how == "ctrl-c":
        os.killpg(server.proc.pid, signal.SIGINT)  # what a terminal does: the whole group
    else:
        server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=STOP_TIMEOUT_S) == 0, server.log_tail()
    assert not _alive(child), "the projector process outlived argus up"
    text = _run_log(server)
    assert "[projectors] argus: stopping" in text, text
    assert "exited with" not in text and "restart" not in text, text


def test_kill_9_of_argus_up_stops_its_child_and_a_restart_takes_over(
    server_factory: Callable[[], ArgusServer],
) -> None:
    server = server_factory().start()
    server.barrier("before-kill")
    child = _projector_child(server)
    server.kill9()
    killed = time.monotonic()
    wait_for("the orphaned projector process to exit", lambda: not _alive(child), timeout_s=ORPHAN_EXIT_TIMEOUT_S)
    measured("orphan_exit_s", round(time.monotonic() - killed, 2))

    server.start()
    assert _projector_child(server).pid != child.pid
    server.barrier("after-kill")  # the new projectors hold the groups and project
    before = [("metric", "e2e_barrier"), ("agg", "count"), ("period", "1h"), ("start", "now-2h"), ("end", "now+1h")]
    assert server.total([*before, ("where", "round=before-kill")]) == 200
    assert "already consumed by another process" not in _run_log(server)


def test_a_projector_process_that_dies_is_restarted(server_factory: Callable[[], ArgusServer]) -> None:
    server = server_factory().start()
    first = _projector_child(server)
    first.kill()  # SIGKILL: no flush, no goodbye
    second = wait_for(
        "a new projector process",
        lambda: next((c for c in _children(server) if c.pid != first.pid), None),
        timeout_s=RESTART_TIMEOUT_S,
    )
    wait_for("the restart to finish", lambda: "projector process restarted" in _run_log(server), timeout_s=60.0)
    text = _run_log(server)
    assert f"projector process (pid {first.pid}) exited with signal SIGKILL" in text, text
    assert server.proc is not None and server.proc.poll() is None, "argus up must keep running"
    server.barrier("after-child-crash")
    assert _projector_child(server).pid == second.pid


def test_single_process_keeps_the_projectors_in_argus_up(
    server_factory: Callable[[], ArgusServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.e2e.conftest.up_argv", functools.partial(up_argv, extra=("--single-process",)))
    server = server_factory().start()
    assert _children(server) == []
    server.barrier("single-process")
    assert "projector process" not in _run_log(server)
