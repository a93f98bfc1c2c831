"""Running a set of modules in one process: start in order, serve until a signal, stop in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from rich.logging import RichHandler

from argus.container import RESOURCES, Container, Runtime, open_runtime
from argus.modules import Module
from argus.supervisor import ParentLink, supervised_name
from command_side.config.commands import CreateApiKey
from command_side.config.handlers import create_api_key
from core.auth import check_key_strength, generate_key
from core.model import DEFAULT_TENANT
from core.settings import Settings

log = logging.getLogger("argus")

API_KEY_FILE = "api_key"


def setup_logging(level: str = "INFO") -> None:
    # A supervised child (`argus up`'s projector process) shares the terminal: say whose line it is.
    role = supervised_name()
    logging.basicConfig(
        level=level.upper(),
        format=f"[{role}] %(name)s: %(message)s" if role else "%(name)s: %(message)s",
        handlers=[RichHandler(show_path=False, rich_tracebacks=True)],
    )


def write_key_file(path: Path, api_key: str) -> None:
    """Keep a key in `path`, readable by the owner only (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)  # O_CREAT's mode does not apply to an existing file
        os.write(fd, (api_key + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def dev_api_key(data_dir: Path, given: str | None) -> str:
    """The development key of `argus up`: the one given (checked for strength), else the one
    kept in the data dir, else a new one (written there, readable by the owner only).

    A given key is written to the data dir by `register_dev_key`, once it is bound.
    Raises InvalidArgument for a weak key.
    """
    path = data_dir / API_KEY_FILE
    if given:
        check_key_strength(given, parameter="--api-key")
        return given
    if path.exists():
        key = path.read_text().strip()
        check_key_strength(key, parameter=str(path))
        return key
    key = generate_key()
    write_key_file(path, key)
    return key


async def register_dev_key(runtime: Runtime, data_dir: Path, api_key: str) -> None:
    """Bind the development key to tenant `default` (a no-op when it is already; refused with
    Conflict when the key belongs to another tenant) and keep it in `<data-dir>/api_key`."""
    command = CreateApiKey(api_key=api_key, tenant=DEFAULT_TENANT, name="dev", author="argus up")
    await create_api_key(command, view=runtime.config, clock_ms=runtime.clock_ms)
    write_key_file(data_dir / API_KEY_FILE, api_key)


async def serve(
    settings: Settings,
    build: Callable[[Runtime], Sequence[Module]],
    *,
    api_key: str | None = None,
    on_ready: Callable[[Sequence[Module]], None] | None = None,
    stop: asyncio.Event | None = None,
    needs: Collection[str] = RESOURCES,
) -> None:
    """Start the modules `build` makes from the container (opening only the resources in
    `needs`); stop on SIGINT/SIGTERM.

    Started by a supervisor (`argus up` runs `argus project` so), the process also stops
    when the supervisor dies, tells it when it is ready, and leaves Ctrl-C to it.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    parent = ParentLink.from_env()
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
    if parent is not None:
        # Ctrl-C reaches the terminal's whole process group; the supervisor stops us in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signals = (signal.SIGTERM,)
        await parent.open(stop)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    container = Container(settings=settings)
    runtime = await open_runtime(container, needs)
    if parent is not None:
        runtime.health.on_change(parent.report_health)
    started: list[Module] = []
    try:
        if api_key:
            await register_dev_key(runtime, settings.data_dir, api_key)
        for module in build(runtime):
            try:
                await module.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await module.stop()  # release what it bound before failing
                raise
            started.append(module)
        if on_ready:
            on_ready(started)
        log.info("ready (pid %d)", os.getpid())
        if parent is not None:
            await parent.ready(runtime.hot_store)
        await stop.wait()
        log.info("stopping")
    finally:
        if parent is not None:
            await parent.close()
        for module in reversed(started):
            try:
                await module.stop()
            except Exception:
                log.exception("stop module %s", module.name)
        await container.shutdown_resources()  # type: ignore[misc]
