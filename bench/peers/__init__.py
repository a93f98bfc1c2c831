"""The peers Argus is benchmarked against, on the same machine in the same run (issue 5)."""

from __future__ import annotations

from pathlib import Path

from bench.peers.base import Peer
from bench.peers.influxdb import InfluxDB
from bench.peers.prometheus import Prometheus
from bench.peers.victoriametrics import VictoriaMetrics

PEERS: dict[str, type[Peer]] = {p.name: p for p in (VictoriaMetrics, Prometheus, InfluxDB)}


def make_peer(name: str, workdir: Path) -> Peer:
    try:
        return PEERS[name](workdir)
    except KeyError:
        raise ValueError(f"--peers: unknown peer {name!r}; expected some of {', '.join(PEERS)}") from None


__all__ = ["PEERS", "Peer", "make_peer"]
