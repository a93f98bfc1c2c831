"""The built-in host collector as a module of `argus up`: it pushes through the real ingest
path, so it connects only once ingest is listening (its port may be chosen at start)."""

from __future__ import annotations

from collections.abc import Callable

from agent.collectors.host import HostCollector, LocalCollectorModule
from agent.push_client import PushClient, RetryPolicy
from core.telemetry import REGISTRY
from core.tls import ClientTls


class CollectorModule:
    name = "collector"

    def __init__(
        self,
        *,
        target: Callable[[], str],
        api_key: str,
        region: str,
        interval_s: float,
        host: str,
        tls: ClientTls | None = None,
        tls_server_name: str = "",
    ) -> None:
        self._target = target
        self._api_key = api_key
        self._region = region
        self._interval_s = interval_s
        self._host = host
        self._tls = tls
        self._tls_server_name = tls_server_name
        self._inner: LocalCollectorModule | None = None

    async def start(self) -> None:
        # Few quick retries inside a push: the module itself retries with longer backoff.
        client = PushClient(
            self._target(),
            self._api_key,
            timeout_s=10.0,
            retry=RetryPolicy(max_attempts=2, initial_backoff_s=0.2),
            tls=self._tls,
            tls_server_name=self._tls_server_name,
        )
        collector = HostCollector(host=self._host, region=self._region, interval_s=self._interval_s)
        inner = self._inner = LocalCollectorModule(collector=collector, pusher=client, on_close=client.close)
        # The in-process collector's figures (`argus agent` keeps its own spool statistics).
        REGISTRY.observed_counter(
            "argus_collector_pushed_batches_total", "Batches the in-process host collector pushed."
        ).set_function(lambda: float(inner.pushed_batches))
        REGISTRY.observed_counter(
            "argus_collector_dropped_batches_total",
            "Batches the in-process host collector dropped.",
        ).set_function(lambda: float(inner.dropped_batches))
        REGISTRY.gauge(
            "argus_collector_buffered_batches", "Batches the in-process host collector holds unsent."
        ).set_function(lambda: float(inner.buffered_batches))
        await inner.start()

    async def stop(self) -> None:
        if self._inner is not None:
            await self._inner.stop()

    def endpoints(self) -> dict[str, str]:
        return {"host collector": f"{self._host} every {self._interval_s:g} s"}
