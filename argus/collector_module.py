"""The built-in host collector as a module of `argus up`: it pushes through the real ingest
path, so it connects only once ingest is listening (its port may be chosen at start)."""

from __future__ import annotations

from collections.abc import Callable

from agent.collectors.host import LocalCollectorModule


class CollectorModule:
    name = "collector"

    def __init__(self, *, target: Callable[[], str], api_key: str, region: str, interval_s: float, host: str) -> None:
        self._target = target
        self._api_key = api_key
        self._region = region
        self._interval_s = interval_s
        self._host = host
        self._inner: LocalCollectorModule | None = None

    async def start(self) -> None:
        self._inner = LocalCollectorModule.connect(
            target=self._target(),
            api_key=self._api_key,
            host=self._host,
            region=self._region,
            interval_s=self._interval_s,
        )
        await self._inner.start()

    async def stop(self) -> None:
        if self._inner is not None:
            await self._inner.stop()

    def endpoints(self) -> dict[str, str]:
        return {"host collector": f"{self._host} every {self._interval_s:g} s"}
