"""The Argus client library: counters, gauges, timers and distinct counts for applications.

    from agent import counter, gauge, timer, distinct
    requests = counter("http_requests", {"route": "/login"})
    requests.inc()
    with timer("http_latency_ms", {"route": "/login"}).time():
        ...

The hot path (`inc`, `set`, `observe`, `add`) appends one tuple to a bounded deque and
returns: no lock, no I/O, no allocation beyond the tuple, so it never blocks a thread or an
event loop (deque.append is atomic under the GIL; see bench/bench_client.py for its cost).
A background thread drains the deque every `flush_interval_s`, pre-aggregates what it drained
(counter sums, gauge min/max/last, timer values, distinct sets) and either

- sends StatsD lines (agent/statsd.py) in datagrams to the local daemon over UDP or a Unix
  datagram socket (mode "statsd", the default), or
- aggregates them per interval with `IntervalAggregator` and pushes batches itself with
  `PushClient` to an ingest address with an API key (mode "direct", for short-lived jobs
  without a daemon), or
- drops them (mode "off").

Pending data is flushed on `close()` and when the main thread ends (the drain thread is a
non-daemon thread that notices, flushes and exits), and by an atexit hook as a last resort.
If writes outpace the drain thread, the oldest unsent writes are dropped (the deque is
bounded by `max_queue`). A forked child starts with a fresh drain thread on first use.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import functools
import inspect
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, ParamSpec, TypeVar

from agent.aggregate import IntervalAggregator
from agent.statsd import KIND_TYPES, MAX_LINE_BYTES, format_number, format_tags
from contracts.argus.metrics.v1 import metrics_pb2
from core import validation
from core.errors import ArgusError, InvalidArgument
from core.model import DEFAULT_REGION, Labels, MetricKind, canonical_labels
from core.settings import IngestLimits

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_LIMITS: Final = IngestLimits()
_TIMER_VALUES_PER_LINE: Final = 256
MODES: Final = ("statsd", "direct", "off")
DEFAULT_ADDR: Final = "udp://127.0.0.1:8125"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """How a client delivers. `from_env` reads ARGUS_AGENT_MODE, ARGUS_AGENT_ADDR,
    ARGUS_INGEST_ADDR, ARGUS_API_KEY and ARGUS_REGION."""

    mode: str = "statsd"
    addr: str = DEFAULT_ADDR
    """statsd mode: `udp://host:port`, `host:port` or `unix:///path/to/socket`."""
    ingest_addr: str | None = None
    """direct mode: the ingest gRPC address host:port."""
    api_key: str | None = None
    region: str = DEFAULT_REGION
    labels: Mapping[str, str] = field(default_factory=dict)
    """Added to every series (a metric's own labels win)."""
    interval_s: float = 5.0
    """direct mode: aggregation interval."""
    flush_interval_s: float = 0.1
    max_queue: int = 262_144
    max_datagram_bytes: int = 8_192

    @staticmethod
    def from_env(env: Mapping[str, str] | None = None) -> ClientConfig:
        e = os.environ if env is None else env
        config = ClientConfig()
        return replace(
            config,
            mode=e.get("ARGUS_AGENT_MODE", config.mode),
            addr=e.get("ARGUS_AGENT_ADDR", config.addr),
            ingest_addr=e.get("ARGUS_INGEST_ADDR", config.ingest_addr),
            api_key=e.get("ARGUS_API_KEY", config.api_key),
            region=e.get("ARGUS_REGION", config.region),
        )

    def check(self) -> None:
        if self.mode not in MODES:
            raise InvalidArgument(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}", parameter="mode")
        if self.mode == "statsd":
            parse_addr(self.addr)
        if self.mode == "direct" and not (self.ingest_addr and self.api_key):
            raise InvalidArgument(
                "direct mode needs ingest_addr and api_key (or ARGUS_INGEST_ADDR and ARGUS_API_KEY)",
                parameter="ingest_addr",
            )
        problem = validation.region_problem(self.region)
        if problem:
            raise InvalidArgument(problem, parameter="region")
        if self.flush_interval_s <= 0 or self.interval_s <= 0:
            raise InvalidArgument("flush_interval_s and interval_s must be positive", parameter="flush_interval_s")
        if self.max_datagram_bytes < 512:
            raise InvalidArgument("max_datagram_bytes must be at least 512", parameter="max_datagram_bytes")
        _check_labels("labels", canonical_labels(self.labels))


def parse_addr(addr: str) -> tuple[int, Any]:
    """(socket family, address) of `udp://host:port`, `host:port` or `unix:///path`."""
    if addr.startswith("unix://"):
        path = addr[len("unix://") :]
        if not path:
            raise InvalidArgument(f"addr {addr!r} has no socket path", parameter="addr")
        return socket.AF_UNIX, path
    rest = addr[len("udp://") :] if addr.startswith("udp://") else addr
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"addr {addr!r} is not udp://host:port, host:port or unix:///path", parameter="addr")
    return socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET, (host.strip("[]"), int(port))


def _check_labels(what: str, labels: Labels) -> None:
    problem = validation.labels_problem(list(labels), _LIMITS)
    if problem:
        raise InvalidArgument(problem[0], parameter=what)
    try:
        format_tags(labels)
    except ValueError as exc:
        raise InvalidArgument(str(exc), parameter=what) from None


# ---------------------------------------------------------------------------- handles


class _Handle:
    __slots__ = ("_append", "kind", "labels", "name", "prefix", "suffix")

    def __init__(self, queue: deque[tuple[_Handle, Any]], name: str, kind: MetricKind, labels: Labels) -> None:
        self._append = queue.append
        self.name = name
        self.kind = kind
        self.labels = labels
        self.prefix = f"{name}:"
        self.suffix = f"|{KIND_TYPES[kind]}{format_tags(labels)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {dict(self.labels)!r})"


class Counter(_Handle):
    __slots__ = ()

    def inc(self, n: float = 1) -> None:
        """Add n (>= 0) to the counter."""
        if n < 0:
            raise ValueError(f"counter {self.name!r}: inc({n}) is negative; counters only go up (use a gauge)")
        self._append((self, n))


class Gauge(_Handle):
    __slots__ = ()

    def set(self, value: float) -> None:
        self._append((self, value))


class Timer(_Handle):
    __slots__ = ()

    def observe(self, ms: float) -> None:
        """Record one duration (or any distribution value) in milliseconds."""
        self._append((self, ms))

    def time(self) -> _Timing:
        """Measure a block (`with t.time():`) or every call of a function or coroutine
        function (`@t.time()`), in milliseconds of time.perf_counter."""
        return _Timing(self)


class Distinct(_Handle):
    __slots__ = ()

    def add(self, value: str) -> None:
        """Count `value` among the distinct values of the interval."""
        self._append((self, value))


class _Timing:
    __slots__ = ("_start", "_timer")

    def __init__(self, timer: Timer) -> None:
        self._timer = timer
        self._start = 0.0

    def __enter__(self) -> _Timing:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.observe((time.perf_counter() - self._start) * 1000.0)

    def __call__(self, fn: Callable[_P, _R]) -> Callable[_P, _R]:
        observe = self._timer.observe
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    observe((time.perf_counter() - start) * 1000.0)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def timed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                observe((time.perf_counter() - start) * 1000.0)

        return timed


_HANDLE_TYPES: Final[dict[MetricKind, type[_Handle]]] = {
    MetricKind.COUNTER: Counter,
    MetricKind.GAUGE: Gauge,
    MetricKind.TIMER: Timer,
    MetricKind.DISTINCT: Distinct,
}


# ----------------------------------------------------------------------------- client


@dataclass(slots=True)
class ClientStats:
    drained: int = 0
    datagrams_sent: int = 0
    bytes_sent: int = 0
    datagrams_dropped: int = 0
    batches_pushed: int = 0
    batches_dropped: int = 0
    drain_seconds: float = 0.0
    queue_full: int = 0
    """Drains that found the queue at `max_queue`: writes were (probably) dropped."""


class Client:
    """Handles plus the drain thread. Handles are cached per (kind, name, labels) and stay
    valid across `configure()`: they write to the client's queue, whatever the transport."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self._config = config or ClientConfig.from_env()
        self._config.check()
        self._queue: deque[tuple[_Handle, Any]] = deque(maxlen=self._config.max_queue)
        self._handles: dict[tuple[MetricKind, str, Labels], _Handle] = {}
        self._lock = threading.Lock()  # handle creation, start/stop, transport changes
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._transport: _Transport | None = None
        self._drain_lock = threading.Lock()
        self.stats = ClientStats()
        me = weakref.ref(self)

        def at_exit() -> None:
            client = me()
            if client is not None:
                client.close()

        atexit.register(at_exit)

        def after_fork() -> None:
            client = me()
            if client is not None:
                client._after_fork()

        os.register_at_fork(after_in_child=after_fork)

    @property
    def config(self) -> ClientConfig:
        return self._config

    # -- handles

    def _handle(self, kind: MetricKind, name: str, labels: Mapping[str, str] | None) -> _Handle:
        canonical = canonical_labels(labels) if labels else ()
        key = (kind, name, canonical)
        handle = self._handles.get(key)
        if handle is not None:
            return handle
        problem = validation.metric_name_problem(name, _LIMITS)
        if problem:
            raise InvalidArgument(problem, parameter="name")
        if ":" in name:
            raise InvalidArgument(f"metric name {name!r}: ':' cannot travel in a StatsD line", parameter="name")
        _check_labels("labels", canonical)
        with self._lock:
            handle = self._handles.setdefault(key, _HANDLE_TYPES[kind](self._queue, name, kind, canonical))
        self._ensure_running()
        return handle

    def counter(self, name: str, labels: Mapping[str, str] | None = None) -> Counter:
        h = self._handle(MetricKind.COUNTER, name, labels)
        assert isinstance(h, Counter)
        return h

    def gauge(self, name: str, labels: Mapping[str, str] | None = None) -> Gauge:
        h = self._handle(MetricKind.GAUGE, name, labels)
        assert isinstance(h, Gauge)
        return h

    def timer(self, name: str, labels: Mapping[str, str] | None = None) -> Timer:
        h = self._handle(MetricKind.TIMER, name, labels)
        assert isinstance(h, Timer)
        return h

    def distinct(self, name: str, labels: Mapping[str, str] | None = None) -> Distinct:
        h = self._handle(MetricKind.DISTINCT, name, labels)
        assert isinstance(h, Distinct)
        return h

    # -- lifecycle

    def configure(self, config: ClientConfig) -> None:
        """Switch delivery (pending writes are flushed the old way first)."""
        config.check()
        self.flush()
        with self._lock:
            if self._transport is not None:
                self._transport.close(self.stats)
                self._transport = None
            self._config = config

    def _after_fork(self) -> None:
        # The child has no drain thread and shares the parent's socket / channel: start over,
        # without the parent's unsent writes (the parent sends those).
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._queue.clear()
        self._pid, self._thread, self._transport = os.getpid(), None, None
        if self._handles:
            self._ensure_running()

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._stopping or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="argus-client-drain", daemon=False)
            self._thread.start()

    def _run(self) -> None:
        main = threading.main_thread()
        while not self._stopping:
            self._wake.wait(self._config.flush_interval_s)
            self._wake.clear()
            if not main.is_alive():
                break
            try:
                self._drain_once(force=False)
            except Exception:
                log.exception("argus client: drain failed")
        with contextlib.suppress(Exception):
            self._drain_once(force=True)

    def flush(self) -> None:
        """Deliver everything written so far (in direct mode: push every open interval).
        Blocks the caller until done; call it from a thread, not a coroutine."""
        self._drain_once(force=True)

    def close(self) -> None:
        """Flush and stop the drain thread. Idempotent; later writes are kept but not sent
        until the next handle is created."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30.0)
        try:
            self._drain_once(force=True)
        finally:
            with self._lock:
                if self._transport is not None:
                    self._transport.close(self.stats)
                    self._transport = None
                self._thread = None
                self._stopping = False

    def _drain_once(self, *, force: bool) -> None:
        with self._drain_lock:
            started = time.perf_counter()
            if len(self._queue) >= (self._queue.maxlen or 0):
                self.stats.queue_full += 1
                if self.stats.queue_full in (1, 10, 100) or self.stats.queue_full % 1000 == 0:
                    log.warning(
                        "argus client: write queue full (%d writes), oldest writes dropped: times=%d",
                        self._queue.maxlen,
                        self.stats.queue_full,
                    )
            drained = _drain(self._queue)
            with self._lock:
                if self._transport is None:
                    self._transport = _make_transport(self._config)
                transport = self._transport
            transport.deliver(drained, time.time(), force=force, stats=self.stats)
            self.stats.drain_seconds += time.perf_counter() - started


@dataclass(slots=True)
class _Drained:
    """What one drain collected, per handle."""

    sums: dict[_Handle, float] = field(default_factory=dict)
    gauges: dict[_Handle, list[float]] = field(default_factory=dict)  # [min, max, last]
    values: dict[_Handle, list[Any]] = field(default_factory=dict)  # timers and distinct
    items: int = 0


def _drain(queue: deque[tuple[_Handle, Any]]) -> _Drained:
    out = _Drained()
    n = len(queue)
    pop = queue.popleft
    sums, gauges, values = out.sums, out.gauges, out.values
    for _ in range(n):
        handle, v = pop()
        kind = handle.kind
        if kind is MetricKind.COUNTER:
            sums[handle] = sums.get(handle, 0.0) + v
        elif kind is MetricKind.GAUGE:
            g = gauges.get(handle)
            if g is None:
                gauges[handle] = [v, v, v]
            else:
                g[2] = v
                if v < g[0]:
                    g[0] = v
                elif v > g[1]:
                    g[1] = v
        else:
            lst = values.get(handle)
            if lst is None:
                values[handle] = [v]
            else:
                lst.append(v)
    out.items = n
    return out


class _Transport(abc.ABC):
    """Where drained writes go: StatsD datagrams or, in direct mode, gRPC pushes."""

    @abc.abstractmethod
    def deliver(self, drained: _Drained, now_s: float, *, force: bool, stats: ClientStats) -> None:
        """Send what `drained` holds; with `force`, everything pending (at exit, on flush)."""

    def close(self, stats: ClientStats) -> None:  # noqa: B027 (optional hook: most transports hold nothing)
        """Release resources; pending data was delivered by a forced `deliver` before."""


def _make_transport(config: ClientConfig) -> _Transport:
    if config.mode == "statsd":
        return _StatsdTransport(config)
    if config.mode == "direct":
        return _DirectTransport(config)
    return _NullTransport()


class _NullTransport(_Transport):
    def deliver(self, drained: _Drained, now_s: float, *, force: bool, stats: ClientStats) -> None:
        stats.drained += drained.items


def statsd_lines(drained: _Drained) -> list[str]:
    """StatsD lines for what was drained: one per counter (the sum), up to three per gauge
    (min, max, last in that order, so the daemon's last and extremes stay right), timers as
    multi-value lines, one line per distinct value."""
    lines: list[str] = []
    for h, total in drained.sums.items():
        lines.append(f"{h.prefix}{format_number(float(total))}{h.suffix}")
    for h, (mn, mx, last) in drained.gauges.items():
        for v in [*(v for v in dict.fromkeys((mn, mx)) if v != last), last]:
            lines.append(f"{h.prefix}{format_number(float(v))}{h.suffix}")
    for h, vs in drained.values.items():
        if h.kind is MetricKind.TIMER:
            for i in range(0, len(vs), _TIMER_VALUES_PER_LINE):
                chunk = ":".join([repr(float(v)) for v in vs[i : i + _TIMER_VALUES_PER_LINE]])
                lines.append(f"{h.prefix}{chunk}{h.suffix}")
        else:
            for v in dict.fromkeys(vs):
                text = str(v)
                if text and "\n" not in text and "|" not in text:
                    lines.append(f"{h.prefix}{text}{h.suffix}")
    return lines


class _StatsdTransport(_Transport):
    def __init__(self, config: ClientConfig) -> None:
        self._family, self._addr = parse_addr(config.addr)
        self._max = min(config.max_datagram_bytes, 65_000)
        self._sock: socket.socket | None = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect(self._addr)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def deliver(self, drained: _Drained, now_s: float, *, force: bool, stats: ClientStats) -> None:
        stats.drained += drained.items
        lines = statsd_lines(drained)
        if not lines:
            return
        packets: list[bytes] = []
        buf: list[bytes] = []
        size = 0
        for text in lines:
            line = text.encode()
            if len(line) > MAX_LINE_BYTES:
                stats.datagrams_dropped += 1
                continue
            if buf and size + len(line) + 1 > self._max:
                packets.append(b"\n".join(buf))
                buf, size = [], 0
            buf.append(line)
            size += len(line) + 1
        if buf:
            packets.append(b"\n".join(buf))
        for packet in packets:
            try:
                self._socket().send(packet)
                stats.datagrams_sent += 1
                stats.bytes_sent += len(packet)
            except OSError:
                # No daemon listening, or its buffer is full: metrics are best effort here.
                stats.datagrams_dropped += 1
                if self._family == socket.AF_UNIX:
                    self.close(stats)

    def close(self, stats: ClientStats) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _DirectTransport(_Transport):
    """Aggregates like the daemon and pushes SampleBatches to ingest from the drain thread
    (its own event loop). Batches that fail with a retryable error wait for the next drain
    (at most `_MAX_PENDING`); refused ones are dropped and logged."""

    _MAX_PENDING: Final = 100

    def __init__(self, config: ClientConfig) -> None:
        from agent.push_client import PushClient, RetryPolicy

        assert config.ingest_addr is not None and config.api_key is not None
        self._aggregator = IntervalAggregator(
            interval_s=config.interval_s, region=config.region, default_labels=config.labels
        )
        self._loop = asyncio.new_event_loop()
        self._client = PushClient(config.ingest_addr, config.api_key, timeout_s=10.0, retry=RetryPolicy(max_attempts=3))
        self._source = f"client:{socket.gethostname()}:{os.getpid()}"
        self._seq = 0
        self._pending: deque[metrics_pb2.SampleBatch] = deque()

    def deliver(self, drained: _Drained, now_s: float, *, force: bool, stats: ClientStats) -> None:
        stats.drained += drained.items
        add = self._aggregator.add_value
        for h, total in drained.sums.items():
            add(h.name, h.kind, h.labels, total, now_s)
        for h, (mn, mx, last) in drained.gauges.items():
            for v in (mn, mx, last):
                add(h.name, h.kind, h.labels, v, now_s)
        for h, vs in drained.values.items():
            for v in vs:
                add(h.name, h.kind, h.labels, v, now_s)
        series = self._aggregator.drain(now_s, force=force)
        if series:
            self._seq += 1
            batch = metrics_pb2.SampleBatch(
                batch_id=f"{self._source}:{int(now_s * 1000)}:{self._seq}", source=self._source
            )
            batch.series.extend(series)
            self._pending.append(batch)
            while len(self._pending) > self._MAX_PENDING:
                self._pending.popleft()
                stats.batches_dropped += 1
        self._push(stats)

    def _push(self, stats: ClientStats) -> None:
        while self._pending:
            batch = self._pending[0]
            try:
                result = self._loop.run_until_complete(self._client.push_one(batch))
            except ArgusError as exc:
                if exc.retryable:
                    log.warning("argus client: push failed, will retry: batch_id=%s error=%s", batch.batch_id, exc)
                    return
                log.error("argus client: push refused, dropped batch: batch_id=%s error=%s", batch.batch_id, exc)
                self._pending.popleft()
                stats.batches_dropped += 1
                continue
            self._pending.popleft()
            stats.batches_pushed += 1
            if result.rejected_samples:
                first = result.rejections[0].message if result.rejections else ""
                log.warning(
                    "argus client: ingest rejected %d samples: batch_id=%s first=%s",
                    result.rejected_samples,
                    batch.batch_id,
                    first,
                )

    def close(self, stats: ClientStats) -> None:
        try:
            self._loop.run_until_complete(self._client.close())
        finally:
            self._loop.close()


# ----------------------------------------------------------------------- module level

_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client (created from the environment on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Client()
    return _default


def configure(
    *,
    mode: str | None = None,
    addr: str | None = None,
    ingest_addr: str | None = None,
    api_key: str | None = None,
    region: str | None = None,
    labels: Mapping[str, str] | None = None,
    interval_s: float | None = None,
    flush_interval_s: float | None = None,
    max_datagram_bytes: int | None = None,
) -> ClientConfig:
    """Change how the process-wide client delivers; unset arguments keep their value
    (environment defaults first). Existing handles keep working. Returns the new config."""
    global _default
    given: dict[str, Any] = {
        "mode": mode,
        "addr": addr,
        "ingest_addr": ingest_addr,
        "api_key": api_key,
        "region": region,
        "labels": dict(labels) if labels is not None else None,
        "interval_s": interval_s,
        "flush_interval_s": flush_interval_s,
        "max_datagram_bytes": max_datagram_bytes,
    }
    with _default_lock:
        base = _default.config if _default is not None else ClientConfig.from_env()
        config = replace(base, **{k: v for k, v in given.items() if v is not None})
        if _default is None:
            _default = Client(config)
            return config
        client = _default
    client.configure(config)
    return config


def counter(name: str, labels: Mapping[str, str] | None = None) -> Counter:
    return default_client().counter(name, labels)


def gauge(name: str, labels: Mapping[str, str] | None = None) -> Gauge:
    return default_client().gauge(name, labels)


def timer(name: str, labels: Mapping[str, str] | None = None) -> Timer:
    return default_client().timer(name, labels)


def distinct(name: str, labels: Mapping[str, str] | None = None) -> Distinct:
    return default_client().distinct(name, labels)


def flush() -> None:
    default_client().flush()


def close() -> None:
    if _default is not None:
        _default.close()
