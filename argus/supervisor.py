"""`argus up` in two processes: the projectors run in a supervised `argus project` child.

Ingest, projectors and query in one interpreter share one GIL, so `argus up` could never use
a second core (docs/decisions/0012-up-uses-two-processes.md). The parent (ingest, query,
collector) starts `argus project` with the same interpreter and its resolved settings, and
the two talk over a socketpair, one line per message:

    child -> parent   ready V      projectors started, on version V of the hot read model
                      version V    projectors moved to version V (after `argus replay`)
                      health ok    the projectors' writes succeed again
                      health failing REASON
                                   their writes fail (disk full, store down): the parent's
                                   /readyz answers 503 with REASON (argus/health.py)
    parent -> child   switched V   the parent's queries read version V too

EOF is the other side's death: the kernel closes the parent's end even on `kill -9`, so an
orphaned child stops (gracefully, within `ORPHAN_EXIT_DEADLINE_S`) and releases its consumer
group locks for the next `argus up`. A child that dies on its own is restarted with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, fields
from typing import Self

from argus.launch import argus_argv, argus_env
from core.errors import StorageError
from core.ports import HotStore
from core.read_models import VersionedHotStore
from core.settings import Settings
from core.telemetry import REGISTRY, Family, from_json, to_json

log = logging.getLogger("argus.supervisor")

SUPERVISOR_FD_ENV = "ARGUS_SUPERVISOR_FD"
"""In a supervised child: the file descriptor of its end of the socketpair."""
SUPERVISED_NAME_ENV = "ARGUS_SUPERVISED_NAME"
"""In a supervised child: its role, prefixed to its log lines (they share the terminal)."""

ORPHAN_EXIT_DEADLINE_S = 10.0
"""An orphaned child stops gracefully (final flush) but exits after this many seconds anyway."""
SWITCH_TIMEOUT_S = 30.0
"""How long one side waits for the other while moving to a new read-model version."""

_NOT_PASSED = frozenset({"tiers", "limits", "tier_flush_interval_ms"})


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the ARGUS_* environment that `settings_from_env` reads back (units and
    names as in docs/configuration.md). Not passed: `tiers` (code, not configuration) and the
    ingest `limits` (no environment form; projectors do not use them)."""
    env: dict[str, str] = {}
    for f in fields(Settings):
        if f.name in _NOT_PASSED:
            continue
        value = getattr(settings, f.name)
        env["ARGUS_" + f.name.upper()] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    tiers = ",".join(f"{tier}={ms}" for tier, ms in settings.tier_flush_interval_ms.items())
    env["ARGUS_TIER_FLUSH_INTERVAL_MS"] = tiers
    return env


# ---------------------------------------------------------------------------- parent side


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    """Backoff of a child that died: `first_delay_s`, doubling up to `max_delay_s`, back to
    `first_delay_s` once a child has run `stable_after_s`."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    stable_after_s: float = 60.0


class ProjectorProcess:
    """The projectors as a module of `argus up` that runs them in a child process.

    `start()` returns once the child's projectors run (spawning it first unless `spawn()`
    did already), so the ready panel means what it says. A child that exits while the parent
    runs is logged as an error and restarted per `policy`; one that fails its very first
    start fails `argus up` instead (a configuration problem, most likely). `stop()` sends
    SIGTERM and waits (SIGKILL after `stop_timeout_s`).
    """

    name = "projectors"

    def __init__(
        self,
        *,
        settings: Settings,
        log_level: str = "INFO",
        command: tuple[str, ...] = ("project",),
        ready_timeout_s: float = 120.0,
        stop_timeout_s: float = 45.0,
        policy: RestartPolicy = RestartPolicy(),
    ) -> None:
        self._settings = settings
        self._argv = argus_argv(*command, "--log-level", log_level)
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._policy = policy
        self._proc: asyncio.subprocess.Process | None = None
        self._link: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._ready_at = 0.0
        self._version = 0  # the read-model version the child's projectors are on
        self._version_seen = asyncio.Condition()
        self._hot_store: VersionedHotStore | None = None
        self._stopping = asyncio.Event()
        self._health: str | None = None  # the child's last "health failing" reason
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def following(self, hot_store: HotStore) -> Self:
        """Keep this process's readers in step with the child's projectors across read-model
        versions: readers switch only after the projectors moved (as in one process)."""
        if isinstance(hot_store, VersionedHotStore):
            self._hot_store = hot_store
        return self

    async def spawn(self) -> None:
        """Start the child early (`start()` waits for it): it boots while this process opens
        its own stores."""
        if self._proc is None:
            await self._spawn()

    async def _spawn(self) -> None:
        await self._close_link()
        parent_end, child_end = socket.socketpair()
        env = argus_env()
        env.update(settings_env(self._settings))
        env[SUPERVISOR_FD_ENV] = str(child_end.fileno())
        env[SUPERVISED_NAME_ENV] = self.name
        # argus_env sets a width for log files; a terminal's own width should win.
        env.pop("COLUMNS", None)
        if "COLUMNS" in os.environ:
            env["COLUMNS"] = os.environ["COLUMNS"]
        self._ready = asyncio.Event()
        try:
            # Same working directory (relative paths mean the same), stdout and stderr (its
            # logs appear with ours).
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv, env=env, stdin=asyncio.subprocess.DEVNULL, pass_fds=(child_end.fileno(),)
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent_end)
        self._link = (reader, writer)
        self._reader_task = asyncio.create_task(self._read_child(reader, writer), name="projector-process-link")
        log.info("projector process started (pid %d)", self._proc.pid)

    async def start(self) -> None:
        if self._hot_store is not None:
            self._hot_store.on_switch(self._projectors_moved)
        await self.spawn()
        await self._wait_ready()
        self._supervisor = asyncio.create_task(self._supervise(), name="projector-process-supervisor")

    async def stop(self) -> None:
        self._stopping.set()
        if self._hot_store is not None:
            self._hot_store.remove_listener(self._projectors_moved)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._terminate()
        await self._close_link()

    def endpoints(self) -> dict[str, str]:
        return {"projectors": f"process {self.pid} (argus project)"} if self.pid else {}

    def not_ready_reason(self) -> str | None:
        """Why the projectors do not keep the read models current now; None when they do."""
        proc = self._proc
        if proc is None or proc.returncode is not None or not self._ready.is_set():
            return "the projector process (argus project) is starting or being restarted"
        return self._health

    # -- the child's life ----------------------------------------------------------

    async def _wait_ready(self) -> None:
        """Wait until the child's projectors run; raise StorageError, with the child gone,
        if it exits or hangs first."""
        proc = self._proc
        assert proc is not None
        ready = asyncio.create_task(self._ready.wait())
        exited = asyncio.create_task(proc.wait())
        try:
            await asyncio.wait({ready, exited}, timeout=self._ready_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ready, exited):
                task.cancel()
        if self._ready.is_set():
            self._ready_at = time.monotonic()
            log.info("projector process ready (pid %d, read-model version %d)", proc.pid, self._version)
            return
        if proc.returncode is None:
            await self._terminate()
            raise StorageError(
                f"the projector process (argus project, pid {proc.pid}) was not ready within "
                f"{self._ready_timeout_s:.0f} s; its log is above"
            )
        raise StorageError(
            f"the projector process (argus project, pid {proc.pid}) exited with {_describe(proc.returncode)} "
            "before it was ready; its log is above"
        )

    async def _supervise(self) -> None:
        """Restart the child whenever it exits on its own, with backoff."""
        delay = self._policy.first_delay_s
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            if self._stopping.is_set():
                return
            ran_s = time.monotonic() - self._ready_at
            if ran_s >= self._policy.stable_after_s:
                delay = self._policy.first_delay_s
            log.error(
                "projector process (pid %d) exited with %s after %.0f s; restarting it in %.0f s "
                "(ingest and queries go on; data is not lost, it resumes from its committed offsets)",
                proc.pid,
                _describe(code),
                ran_s,
                delay,
            )
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return
                delay = min(delay * 2, self._policy.max_delay_s)
                try:
                    await self._spawn()
                    await self._wait_ready()
                except (OSError, StorageError) as exc:
                    log.error("restart the projector process: %s; next try in %.0f s", exc, delay)
                    continue
                self.restarts += 1
                log.warning("projector process restarted (pid %d, restart %d)", self.pid, self.restarts)
                break

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), self._stop_timeout_s)
        except TimeoutError:
            log.error("projector process (pid %d) not stopped after %.0f s; killing it", proc.pid, self._stop_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        if code != 0:
            log.warning("projector process (pid %d) stopped with %s", proc.pid, _describe(code))

    async def _close_link(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None
        if self._link is not None:
            _, writer = self._link
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._link = None

    # -- read-model versions -------------------------------------------------------

    async def _read_child(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._health = None  # a new child reports afresh
        while line := await reader.readline():
            kind, _, value = line.decode(errors="replace").strip().partition(" ")
            if kind == "metrics":
                # The child's own figures (projector lag, flushes), shown on our /metrics.
                try:
                    REGISTRY.set_external("projector-process", from_json(json.loads(value)))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("projector process sent unreadable metrics: %s", exc)
                continue
            if kind == "health":
                state, _, reason = value.partition(" ")
                self._health = None if state == "ok" else (reason or "the projectors report a failure")
                log.log(logging.INFO if self._health is None else logging.ERROR, "projector health: %s", value)
                continue
            if kind not in ("ready", "version") or not value.isdigit():
                log.warning("projector process sent an unknown message %r", line)
                continue
            version = int(value)
            async with self._version_seen:
                self._version = version if kind == "ready" else max(self._version, version)
                self._version_seen.notify_all()
            if kind == "ready":
                self._ready.set()
                continue
            if self._hot_store is not None:
                try:
                    await self._hot_store.refresh()  # switch now rather than at the next poll
                except Exception as exc:
                    log.warning("hot read model: cannot follow the projectors to version %d: %s", version, exc)
            with contextlib.suppress(ConnectionError):
                writer.write(f"switched {version}\n".encode())
                await writer.drain()

    async def _projectors_moved(self, _store: HotStore, version: int) -> None:
        """Switch listener of this process's hot store: wait until the child's projectors
        are on `version` (bounded: a child being restarted starts on the active version)."""
        try:
            async with asyncio.timeout(SWITCH_TIMEOUT_S), self._version_seen:
                await self._version_seen.wait_for(lambda: self._version >= version)
        except TimeoutError:
            log.warning(
                "hot read model: the projector process did not move to version %d within %.0f s; queries switch anyway",
                version,
                SWITCH_TIMEOUT_S,
            )


METRICS_REPORT_S = 5.0
_MAX_METRICS_LINE = 48 * 1024
"""Below the link's line limit (64 KiB, asyncio's default): a longer line would end it."""


def _metrics_line(families: list[Family]) -> str | None:
    """`metrics <json>`, without histogram buckets when too long; None if still too long."""
    for keep_buckets in (True, False):
        kept = [
            f
            if keep_buckets or f.kind != "histogram"
            else Family(f.name, f.kind, f.help, tuple(s for s in f.samples if not s.name.endswith("_bucket")))
            for f in families
        ]
        line = "metrics " + json.dumps(to_json(kept), separators=(",", ":"))
        if len(line) <= _MAX_METRICS_LINE:
            return line
    log.warning("this process's metrics are too many to report to the supervisor")
    return None


def _describe(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
    return f"code {returncode}"


# ---------------------------------------------------------------------------- child side


class ParentLink:
    """A supervised child's end of the socketpair (see the module docstring)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._store: VersionedHotStore | None = None
        self._switched = 0
        self._switched_seen = asyncio.Condition()
        self._reporter: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls) -> ParentLink | None:
        """The link when a supervisor started this process, else None."""
        raw = os.environ.get(SUPERVISOR_FD_ENV)
        if not raw:
            return None
        if not raw.isdigit():
            raise StorageError(f"{SUPERVISOR_FD_ENV} must be a file descriptor number, got {raw!r}")
        return cls(int(raw))

    async def open(self, stop: asyncio.Event) -> None:
        """Start watching the parent: when it is gone, set `stop`."""
        sock = socket.socket(fileno=self._fd)
        sock.set_inheritable(False)
        self._reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        self._watcher = asyncio.create_task(self._watch(self._reader, stop), name="supervisor-link")

    async def ready(self, hot_store: HotStore) -> None:
        """Tell the parent the modules run (and on which read-model version)."""
        version = 1
        if isinstance(hot_store, VersionedHotStore):
            # Registered after the modules started, so it runs after the projectors moved.
            hot_store.on_switch(self._report_switch)
            self._store, version = hot_store, hot_store.version
        await self._send(f"ready {version}")
        self._reporter = asyncio.create_task(self._report_metrics(), name="supervisor-metrics")

    async def _report_metrics(self) -> None:
        """Every few seconds, this process's figures to the parent: `argus up` has the
        listeners (and the self-feed); this child has none (decision 0048)."""
        while True:
            line = _metrics_line(REGISTRY.collect())
            if line is not None:
                await self._send(line)
            await asyncio.sleep(METRICS_REPORT_S)

    def report_health(self, reason: str | None) -> None:
        """Tell the parent whether the projectors' writes succeed (`reason` None) or fail."""
        if self._writer is None or self._writer.is_closing():
            return
        message = "health ok" if reason is None else "health failing " + " ".join(reason.split())
        self._writer.write(f"{message}\n".encode())

    async def close(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter
        if self._store is not None:
            self._store.remove_listener(self._report_switch)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def _send(self, message: str) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(ConnectionError):
            self._writer.write(f"{message}\n".encode())
            await self._writer.drain()

    async def _watch(self, reader: asyncio.StreamReader, stop: asyncio.Event) -> None:
        while line := await reader.readline():
            kind, _, value = line.decode(errors="replace").strip().partition(" ")
            if kind == "switched" and value.isdigit():
                async with self._switched_seen:
                    self._switched = max(self._switched, int(value))
                    self._switched_seen.notify_all()
        if stop.is_set():
            return
        # EOF: the parent died (even kill -9 closes its end). Stop like on SIGTERM, so the
        # consumer group locks are free for the next `argus up`; never outlive it for long.
        log.error("the supervising process is gone; stopping (exit within %.0f s)", ORPHAN_EXIT_DEADLINE_S)
        stop.set()
        deadline = threading.Timer(ORPHAN_EXIT_DEADLINE_S, os._exit, args=(1,))
        deadline.daemon = True
        deadline.start()

    async def _report_switch(self, _store: HotStore, version: int) -> None:
        """Switch listener: our projectors are on `version`; wait until the parent's queries
        are too, so a "switched ... to version V" line in the log means the whole server did."""
        await self._send(f"version {version}")
        try:
            async with asyncio.timeout(SWITCH_TIMEOUT_S), self._switched_seen:
                await self._switched_seen.wait_for(lambda: self._switched >= version)
        except TimeoutError:
            log.warning("hot read model: the supervising process did not confirm version %d", version)


def supervised_name() -> str | None:
    """The role a supervisor gave this process (for its log prefix), else None."""
    return os.environ.get(SUPERVISED_NAME_ENV) if os.environ.get(SUPERVISOR_FD_ENV) else None
