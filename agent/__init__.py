"""Argus agent: the client library applications import, plus the per-host daemon parts.

from agent import counter, gauge, timer, distinct, configure
"""

from agent.client import (
    Client,
    ClientConfig,
    Counter,
    Distinct,
    Gauge,
    Timer,
    close,
    configure,
    counter,
    default_client,
    distinct,
    flush,
    gauge,
    timer,
)

__all__ = [
    "Client",
    "ClientConfig",
    "Counter",
    "Distinct",
    "Gauge",
    "Timer",
    "close",
    "configure",
    "counter",
    "default_client",
    "distinct",
    "flush",
    "gauge",
    "timer",
]
