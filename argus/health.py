"""Whether this process's projectors can write their read models (what `/readyz` reports).

The projectors retry a failed write from their committed offsets, so a full disk or a store
that refuses writes shows only as log lines and a growing lag. `watch_writes` wraps the hot
store a projector writes through: a write that raises marks that kind of write as failing
(with the error) until a write of the same kind succeeds; a successful `write_chunks`
(the rollups' main write, every flush) clears every kind, so a failed rare write (retention,
every 10 min) does not keep the process unready after the store recovered. Writes that fit
in pages the store already has may succeed on a full disk: clearing by kind keeps /readyz
from flapping then. Under `argus up` the projector
child reports every change over its link to the parent (argus/supervisor.py), whose
`/readyz` then answers 503 with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

from core.ports import HotStore

WRITE_METHODS: Final = frozenset(
    {"write_chunks", "delete_before", "upsert_series", "record_events", "forget_events_before"}
)
"""The HotStore methods that write (core/ports.py); reads failing are the query side's concern."""

MAIN_WRITE: Final = "write_chunks"
MAX_REASON_CHARS: Final = 300


class WriteHealth:
    """Failing writes by kind; listeners hear every change of `reason`."""

    def __init__(self) -> None:
        self._failing: dict[str, str] = {}
        self._listeners: list[Callable[[str | None], None]] = []

    @property
    def reason(self) -> str | None:
        """None while every kind of write succeeds, else what fails and why."""
        if not self._failing:
            return None
        detail = "; ".join(f"{what}: {error}" for what, error in sorted(self._failing.items()))
        return f"projectors cannot write their read models ({detail})"[:MAX_REASON_CHARS]

    def on_change(self, listener: Callable[[str | None], None]) -> None:
        self._listeners.append(listener)

    def failed(self, what: str, error: BaseException) -> None:
        text = " ".join(str(error).split()) or type(error).__name__
        self._set(what, text)

    def succeeded(self, what: str) -> None:
        if what in self._failing or (what.endswith(MAIN_WRITE) and self._failing):
            self._set(what if not what.endswith(MAIN_WRITE) else None, None)

    def _set(self, what: str | None, error: str | None) -> None:
        before = self.reason
        if what is None:
            self._failing.clear()
        elif error is None:
            self._failing.pop(what, None)
        else:
            self._failing[what] = error
        after = self.reason
        if after != before:
            for listener in self._listeners:
                listener(after)


class _WatchedStore:
    """A HotStore that tells `health` how its writes go; everything else passes through."""

    def __init__(self, inner: HotStore, health: WriteHealth, label: str) -> None:
        self._inner = inner
        self._health = health
        self._label = label

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in WRITE_METHODS:
            return value
        method = cast(Callable[..., Awaitable[Any]], value)
        what = f"{self._label} {name}"

        async def watched(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await method(*args, **kwargs)
            except Exception as exc:
                self._health.failed(what, exc)
                raise
            self._health.succeeded(what)
            return result

        return watched


def watch_writes(store: HotStore, health: WriteHealth, *, label: str = "hot store") -> HotStore:
    return cast(HotStore, _WatchedStore(store, health, label))
