"""The host daemon, `argus agent`: StatsD/DogStatsD listeners, host metrics, Prometheus
scrapes -> per-interval aggregation -> batches -> disk spool -> Push stream to ingest.

Data path and its guarantees:

1. StatsD lines (UDP and a Unix datagram socket) are parsed as they arrive
   (`agent.statsd`); a malformed line is counted and skipped, never disturbing the other
   lines of its packet. Good lines are aggregated per `interval_s` per series
   (`agent.aggregate`). Host metrics (every `interval_s`) and scrapes (per target) arrive
   already as series.
2. Every `batch_interval_s` (or sooner when `max_batch_bytes` of series wait), the closed
   intervals are drained and cut into batches of at most `max_batch_bytes` (serialized).
   While ingest is unreachable or behind, every `outage_batch_interval_s` instead: a
   backlog of denser batches (several intervals per series) replays far faster.
   Each batch gets a unique id (`<start>-<n>`) and is written to the spool (compressed with
   `compression`: gzip by default, zstd or none) before anything is sent.
3. The sender (`agent.sender`) streams spooled batches to ingest, oldest first, at most
   `max_in_flight` unanswered, with gRPC gzip on the wire (`wire_compression`), and deletes a
   batch only when ingest has answered for it. A restart resends what is unanswered; ingest
   counts a resent batch once.

What is in memory only (lost on kill -9): the current, unclosed aggregation intervals and
series not yet cut into a batch, i.e. at most `interval_s + batch_interval_s` of StatsD data
(`interval_s + outage_batch_interval_s` while backed up).
A clean stop (SIGTERM) drains and spools them first.

The daemon reports itself as metrics `argus_agent_*` (see docs/agent.md) and in
`<spool_dir>/status.json`, rewritten every flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import aiohttp

from agent.aggregate import IntervalAggregator
from agent.collectors.host import HostCollector
from agent.config import AgentConfig
from agent.push_client import PushClient, RetryPolicy
from agent.scrape import Scraper
from agent.sender import SpoolSender
from agent.spool import Spool
from agent.statsd import parse_packet
from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import ArgusError

log = logging.getLogger(__name__)

STATUS_FILE: Final = "status.json"
MAX_DATAGRAM_BYTES: Final = 65_535
# Per-series overhead of a SampleBatch beyond SeriesSamples.ByteSize() (tag + length).
_SERIES_FRAMING: Final = 6
_MALFORMED_LOG_EVERY_S: Final = 10.0


class _StatsdProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_packet: Callable[[bytes], None], name: str) -> None:
        self._on_packet = on_packet
        self._name = name

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._on_packet(data)

    def error_received(self, exc: Exception) -> None:
        log.warning("statsd listener error: listener=%s error=%s", self._name, exc)


class AgentDaemon:
    """One agent. `await start()`, then `await stop()` (or `run_until(event)`)."""

    def __init__(self, config: AgentConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._source = config.source_name
        start_ms = int(clock() * 1000)
        self._id_prefix = f"{start_ms:x}{random.getrandbits(16):04x}"
        self._next_batch = 0
        self._aggregator = IntervalAggregator(
            interval_s=config.interval_s,
            region=config.region,
            default_labels=dict(config.labels),
            max_series=config.max_series,
        )
        self._waiting: list[metrics_pb2.SeriesSamples] = []  # series not from StatsD, not yet batched
        self._waiting_bytes = 0
        self._flush_now = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._transports: list[asyncio.DatagramTransport] = []
        self._udp_sock: socket.socket | None = None
        self._spool: Spool | None = None
        self._client: PushClient | None = None
        self._sender: SpoolSender | None = None
        self._session: aiohttp.ClientSession | None = None
        self._scrapers: list[Scraper] = []
        self._flush_lock = asyncio.Lock()
        self.statsd_port = 0
        # Totals since start (self-metrics report their deltas).
        self.statsd_packets = 0
        self.statsd_metrics = 0
        self.statsd_malformed = 0
        self.spooled_batches = 0
        self.spooled_samples = 0
        self.spool_errors = 0
        self.host_failures = 0
        self._malformed_examples: list[str] = []
        self._malformed_logged_at = 0.0
        self._reported: dict[str, float] = {}
        self._started_at = 0.0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        config = self.config
        self._started_at = self._clock()
        self._spool = await asyncio.to_thread(
            Spool.open,
            config.spool_dir,
            segment_bytes=config.segment_bytes,
            max_bytes=config.spool_max_bytes,
            codec=config.codec,
            fsync=config.fsync,
        )
        # Retries are the sender's (it owns the backoff and resends from the spool), so the
        # client gives up on the first failure of a stream.
        self._client = PushClient(
            config.ingest,
            config.api_key,
            max_in_flight=config.max_in_flight,
            timeout_s=config.timeout_s,
            retry=RetryPolicy(max_attempts=1),
            compression=config.wire_compression == "gzip",
            tls=config.client_tls,
        )
        self._sender = SpoolSender(
            self._spool,
            self._client,
            retry=RetryPolicy(initial_backoff_s=config.initial_backoff_s, max_backoff_s=config.max_backoff_s),
            max_in_flight=config.max_in_flight,
        )
        await self._sender.start()
        if self._spool.pending_batches:
            self._sender.notify()
        await self._listen()
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="agent-flush"))
        if config.host_metrics:
            self._tasks.append(asyncio.create_task(self._host_loop(), name="agent-host"))
        if config.scrape:
            self._session = aiohttp.ClientSession()
            for target in config.scrape:
                scraper = Scraper(
                    target, region=config.region, default_labels=dict(config.labels), session=self._session
                )
                self._scrapers.append(scraper)
                self._tasks.append(asyncio.create_task(self._scrape_loop(scraper), name=f"agent-scrape-{target.url}"))
        if config.self_metrics:
            self._tasks.append(asyncio.create_task(self._self_loop(), name="agent-self"))
        self._write_status(ready=True)
        log.info(
            "agent ready: ingest=%s source=%s statsd=%s statsd_socket=%s spool=%s pending_batches=%d",
            config.ingest,
            self._source,
            f"{config.statsd_addr.rpartition(':')[0]}:{self.statsd_port}" if config.statsd_addr else "off",
            config.statsd_socket or "off",
            config.spool_dir,
            self._spool.pending_batches,
        )

    async def stop(self) -> None:
        """Close the listeners, spool what is aggregated, give the sender a few seconds to
        deliver, and close everything. Unsent batches stay spooled."""
        self._stopping.set()
        for transport in self._transports:
            transport.close()
        self._transports.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._spool is not None:
            await self._flush(force=True)
        if self._sender is not None:
            await self._sender.stop()
        if self._session is not None:
            await self._session.close()
        if self._client is not None:
            await self._client.close()
        if self.config.statsd_socket:
            with contextlib.suppress(OSError):
                os.unlink(self.config.statsd_socket)
        if self._spool is not None:
            self._write_status(ready=False)
            self._spool.close()
        log.info("agent stopped")

    async def run_until(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # ------------------------------------------------------------------ StatsD

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        config = self.config
        if config.statsd_addr:
            host, _, port = config.statsd_addr.rpartition(":")
            host = host.strip("[]")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            self._set_recv_buffer(sock)
            try:
                sock.bind((host, int(port)))
            except OSError as exc:
                sock.close()
                raise ArgusError(f"listen for StatsD on {config.statsd_addr}: {exc}") from exc
            self.statsd_port = int(sock.getsockname()[1])
            self._udp_sock = sock
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _StatsdProtocol(self._on_packet, "udp"), sock=sock
            )
            self._transports.append(transport)
        if config.statsd_socket:
            path = config.statsd_socket
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a stale socket of a previous run
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            usock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._set_recv_buffer(usock)
            try:
                usock.bind(path)
            except OSError as exc:
                usock.close()
                raise ArgusError(f"listen for StatsD on unix socket {path}: {exc}") from exc
            os.chmod(path, 0o666)  # any local process (or container sharing the volume) may send
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _StatsdProtocol(self._on_packet, "unix"), sock=usock
            )
            self._transports.append(transport)

    def _set_recv_buffer(self, sock: socket.socket) -> None:
        # Bursts wait in the kernel buffer while the loop is busy; Linux caps the request
        # at net.core.rmem_max (and doubles it for bookkeeping).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.statsd_recv_buffer_bytes)

    def _on_packet(self, data: bytes) -> None:
        self.statsd_packets += 1
        now = self._clock()
        want_errors = now - self._malformed_logged_at >= _MALFORMED_LOG_EVERY_S
        errors: list[str] | None = [] if want_errors else None
        metrics, bad = parse_packet(data, errors=errors)
        self.statsd_metrics += len(metrics)
        if bad:
            self.statsd_malformed += bad
            if errors:
                self._malformed_logged_at = now
                log.warning(
                    "malformed statsd lines skipped: total=%d example=%s (logged at most every %.0f s)",
                    self.statsd_malformed,
                    errors[0],
                    _MALFORMED_LOG_EVERY_S,
                )
        if metrics:
            self._aggregator.add_many(metrics, now)

    def socket_drops(self) -> int | None:
        """Datagrams the kernel dropped on the UDP socket (its receive buffer was full);
        None where the platform does not say (Linux /proc/net/udp only)."""
        if self._udp_sock is None:
            return None
        try:
            inode = os.fstat(self._udp_sock.fileno()).st_ino
        except OSError:
            return None
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                with open(table) as handle:
                    next(handle, None)
                    for line in handle:
                        parts = line.split()
                        if len(parts) >= 13 and parts[9] == str(inode):
                            return int(parts[12])
            except OSError:
                continue
        return None

    # ------------------------------------------------------------------ other sources

    def _add_series(self, series: Iterable[metrics_pb2.SeriesSamples]) -> None:
        labels = self.config.labels
        for s in series:
            if labels:
                have = {label.name for label in s.labels}
                s.labels.extend(metrics_pb2.Label(name=k, value=v) for k, v in labels if k not in have)
            self._waiting.append(s)
            self._waiting_bytes += s.ByteSize() + _SERIES_FRAMING
        if self._waiting_bytes >= self.config.max_batch_bytes:
            self._flush_now.set()

    async def _every(self, interval_s: float, work: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stopping.is_set():
            await work()
            next_at = max(next_at + interval_s, loop.time())  # skip ticks we fell behind on
            await asyncio.sleep(next_at - loop.time())

    async def _host_loop(self) -> None:
        collector = HostCollector(host=self.config.host, region=self.config.region, interval_s=self.config.interval_s)

        async def collect() -> None:
            try:
                batch = await asyncio.to_thread(collector.collect)
            except Exception:
                self.host_failures += 1
                log.exception("collect host metrics failed: host=%s", self.config.host)
                return
            self._add_series(batch.series)

        await self._every(self.config.interval_s, collect)

    async def _scrape_loop(self, scraper: Scraper) -> None:
        failing = False

        async def scrape() -> None:
            nonlocal failing
            try:
                series = await scraper.scrape()
            except ArgusError as exc:
                if not failing:  # log the change, not every failed scrape
                    log.warning("scrape failed: url=%s error=%s", scraper.target.url, exc)
                failing = True
                return
            if failing:
                log.info("scrape works again: url=%s", scraper.target.url)
            failing = False
            self._add_series(series)

        await self._every(scraper.target.interval_s, scrape)

    # ------------------------------------------------------------------ batching

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_flush = loop.time()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), timeout=self.config.batch_interval_s)
            full = self._flush_now.is_set()
            self._flush_now.clear()
            if not full and loop.time() - last_flush < self._flush_every_s() - 0.001:
                self._write_status(ready=True)
                continue
            last_flush = loop.time()
            try:
                await self._flush()
            except Exception:
                # A full or failing disk must not stop collection; the next flush tries again.
                self.spool_errors += 1
                log.exception("spool batch failed")
            self._write_status(ready=True)

    def _flush_every_s(self) -> float:
        """batch_interval_s; outage_batch_interval_s while ingest is down or behind, so a
        backlog holds several intervals per series per batch: fewer, denser batches, which
        spool smaller and replay several times faster (ingest's cost is per series)."""
        assert self._sender is not None
        if self._sender.backed_up:
            return max(self.config.outage_batch_interval_s, self.config.batch_interval_s)
        return self.config.batch_interval_s

    async def _flush(self, *, force: bool = False) -> None:
        async with self._flush_lock:
            series = self._aggregator.drain(self._clock(), force=force)
            waiting, self._waiting, self._waiting_bytes = self._waiting, [], 0
            series.extend(waiting)
            for batch in self._cut(series):
                await self._spool_batch(batch)

    def _cut(self, series: Sequence[metrics_pb2.SeriesSamples]) -> Iterable[metrics_pb2.SampleBatch]:
        """Batches of at most max_batch_bytes (a single larger series travels alone)."""
        limit = self.config.max_batch_bytes
        batch: metrics_pb2.SampleBatch | None = None
        size = 0
        for s in series:
            need = s.ByteSize() + _SERIES_FRAMING
            if batch is not None and size + need > limit:
                yield batch
                batch = None
            if batch is None:
                batch = metrics_pb2.SampleBatch(batch_id=self._new_batch_id(), source=self._source)
                size = len(batch.batch_id) + len(self._source) + 4
            batch.series.append(s)
            size += need
        if batch is not None:
            yield batch

    def _new_batch_id(self) -> str:
        self._next_batch += 1
        return f"{self._id_prefix}-{self._next_batch}"

    async def _spool_batch(self, batch: metrics_pb2.SampleBatch) -> None:
        assert self._spool is not None and self._sender is not None
        samples = sum(len(s.timestamps_ms) for s in batch.series)
        data = batch.SerializeToString(deterministic=True)
        await asyncio.to_thread(self._spool.append, batch.batch_id, data, samples=samples)
        self.spooled_batches += 1
        self.spooled_samples += samples
        self._sender.notify()

    # ------------------------------------------------------------------ self-metrics and status

    def counters(self) -> dict[str, float]:
        """Totals since start, by self-metric name (without the `argus_agent_` prefix)."""
        assert self._spool is not None and self._sender is not None
        spool = self._spool.stats()
        sent = self._sender.stats
        totals: dict[str, float] = {
            "statsd_packets": self.statsd_packets,
            "statsd_metrics": self.statsd_metrics,
            "statsd_malformed_lines": self.statsd_malformed,
            "series_limit_drops": self._aggregator.dropped_series,
            "spooled_batches": self.spooled_batches,
            "spooled_samples": self.spooled_samples,
            "spool_errors": self.spool_errors,
            "spool_dropped_batches": spool.dropped_batches,
            "spool_dropped_samples": spool.dropped_samples,
            "spool_corrupt_records": spool.corrupt_records,
            "sent_batches": sent.answered_batches,
            "accepted_samples": sent.accepted_samples,
            "rejected_samples": sent.rejected_samples,
            "rejected_batches": sent.rejected_batches,
            "duplicate_batches": sent.duplicate_batches,
            "stream_failures": sent.stream_failures,
            "auth_failures": sent.auth_failures,
            "scrapes": sum(s.scrapes for s in self._scrapers),
            "scrape_failures": sum(s.failures for s in self._scrapers),
            "host_failures": self.host_failures,
        }
        drops = self.socket_drops()
        if drops is not None:
            totals["statsd_socket_drops"] = drops
        return totals

    def gauges(self) -> dict[str, float]:
        assert self._spool is not None and self._sender is not None
        spool = self._spool.stats()
        return {
            "spool_pending_batches": spool.pending_batches,
            "spool_pending_samples": spool.pending_samples,
            "spool_bytes": spool.disk_bytes,
            "in_flight_batches": self._sender.in_flight,
            "aggregator_series": self._aggregator.series_count,
            "batch_interval_s": self._flush_every_s(),
        }

    async def _self_loop(self) -> None:
        async def report() -> None:
            self._add_series(self._self_series())

        await self._every(self.config.interval_s, report)

    def _self_series(self) -> list[metrics_pb2.SeriesSamples]:
        assert self._sender is not None
        now_ms = int(self._clock() * 1000)
        out: list[metrics_pb2.SeriesSamples] = []

        def add(name: str, kind: metrics_pb2.MetricKind) -> metrics_pb2.SeriesSamples:
            series = metrics_pb2.SeriesSamples(metric=f"argus_agent_{name}", kind=kind, region=self.config.region)
            series.labels.add(name="host", value=self.config.host)
            series.timestamps_ms.append(now_ms)
            out.append(series)
            return series

        for name, value in self.gauges().items():
            add(name, metrics_pb2.METRIC_KIND_GAUGE).values.append(float(value))
        for name, total in self.counters().items():
            delta = total - self._reported.get(name, 0.0)
            self._reported[name] = total
            add(name, metrics_pb2.METRIC_KIND_COUNTER).values.append(max(delta, 0.0))
        latencies = self._sender.take_latencies_ms()
        if latencies:
            timer = add("send_latency_ms", metrics_pb2.METRIC_KIND_TIMER)
            timer.observation_counts.append(len(latencies))
            timer.observations.extend(latencies)
        return out

    def status(self) -> dict[str, Any]:
        assert self._sender is not None
        return {
            "source": self._source,
            "ingest": self.config.ingest,
            "statsd_port": self.statsd_port,
            "uptime_s": round(self._clock() - self._started_at, 3),
            "counters": self.counters(),
            "gauges": self.gauges(),
            "rejection_reasons": dict(self._sender.stats.rejection_reasons),
            "last_send_error": self._sender.stats.last_error,
        }

    def _write_status(self, *, ready: bool) -> None:
        """`<spool_dir>/status.json`, replaced atomically (readers never see half a file)."""
        try:
            data = {"ready": ready, "pid": os.getpid(), "time": self._clock(), **self.status()}
            path = self.config.spool_dir / STATUS_FILE
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("write agent status failed: error=%s", exc)
