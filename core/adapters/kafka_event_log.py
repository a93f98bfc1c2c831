"""The distributed event log: Apache Kafka through aiokafka.

URL: `kafka://host1:9092,host2:9092?idempotence=false&client_id=argus-ingest&...`; every
query parameter is listed in `KafkaOptions`. See docs/decisions/0005-kafka-event-log.md.

Mapping of an Event onto a Kafka record: key = partition_key, value = payload, headers
`event_id` (32 raw bytes), `type`, `schema_version` and `time_ms` (ASCII decimals), record
timestamp = time_ms. The partition is the one Argus computed (series-keyed), sent explicitly.

Guarantees:
- `append` returns once every record is acknowledged by all in-sync replicas (`acks=all`);
  the records of one call are sent concurrently and awaited together. Order within a
  partition is kept (aiokafka has one request in flight per partition).
- Kafka cannot drop an event whose id is already in the topic: a resend gets a new offset
  (`dedups_on_append` is False) and consumers drop it by event id (ProjectorState). The
  idempotent producer (on by default) only stops the producer's own retries duplicating.
- A record without the Argus headers (another producer's) is returned with `unreadable`
  set, not raised, so a consumer can quarantine it and move on (core/consumer.py).
- A consumer commits only partitions it owns; rebalances are reported to a
  RebalanceListener before partitions move, so their new owner resumes exactly at the
  last commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, urlparse

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from core.adapters.log_retention import LogRetention, kafka_topic_configs
from core.errors import InvalidArgument, StorageError, Unavailable
from core.events import digest
from core.ports import AppendResult, Event, EventLogConsumer, LogRecord, RebalanceListener

log = logging.getLogger(__name__)

PARAMETER = "event_log"
_COMPRESSION = ("none", "gzip", "snappy", "lz4", "zstd")
_HEADER_NAMES = ("event_id", "type", "schema_version", "time_ms")


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaOptions:
    """Connection and client settings, each a query parameter of the `kafka://` URL."""

    bootstrap: tuple[str, ...]
    # Idempotent producer (no duplicates from the producer's own retries). Needs a broker
    # that speaks InitProducerId: real Kafka does, tansu does not (tests set false).
    idempotence: bool = True
    client_id: str = "argus"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    request_timeout_ms: int = 30_000
    # zstd (cramjam): the best of none/lz4/zstd in bench/bench_kafka.py, in rate and CPU.
    compression: str = "zstd"
    linger_ms: int = 5
    max_batch_bytes: int = 1024 * 1024
    # Above ingest's largest accepted message (16 MiB) plus the envelope.
    max_message_bytes: int = 32 * 1024 * 1024
    replication_factor: int = 3
    fetch_max_wait_ms: int = 100

    @classmethod
    def from_url(cls, url: str) -> KafkaOptions:
        parsed = urlparse(url)
        if parsed.scheme != "kafka" or not parsed.netloc:
            raise InvalidArgument(f"{PARAMETER}: expected kafka://host:port[,host:port...][?options], got {url!r}")
        hosts = tuple(h.strip() for h in parsed.netloc.split(","))
        for host in hosts:
            name, _, port = host.rpartition(":")
            if not name or not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidArgument(f"{PARAMETER}: broker {host!r} in {url!r} is not host:port", parameter=PARAMETER)
        known = {f.name: f for f in fields(cls) if f.name != "bootstrap"}
        values: dict[str, Any] = {}
        for name, raw in parse_qsl(parsed.query, keep_blank_values=True):
            if name not in known:
                raise InvalidArgument(
                    f"{PARAMETER}: unknown option {name!r} in {url!r} (known: {', '.join(sorted(known))})",
                    parameter=PARAMETER,
                )
            default = known[name].default
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise InvalidArgument(
                        f"{PARAMETER}: {name} must be true or false, got {raw!r}", parameter=PARAMETER
                    )
                values[name] = raw.lower() in ("true", "1")
            elif isinstance(default, int):
                if not raw.isdigit():
                    raise InvalidArgument(
                        f"{PARAMETER}: {name} must be a non-negative integer, got {raw!r}", parameter=PARAMETER
                    )
                values[name] = int(raw)
            else:
                values[name] = raw
        options = cls(bootstrap=hosts, **values)
        if options.compression not in _COMPRESSION:
            raise InvalidArgument(
                f"{PARAMETER}: compression must be one of {', '.join(_COMPRESSION)}, got {options.compression!r}",
                parameter=PARAMETER,
            )
        if options.replication_factor < 1:
            raise InvalidArgument(f"{PARAMETER}: replication_factor must be >= 1", parameter=PARAMETER)
        return options


def _headers(event: Event) -> list[tuple[str, bytes]]:
    return [
        ("event_id", event.event_id),
        ("type", event.type.encode()),
        ("schema_version", str(event.schema_version).encode()),
        ("time_ms", str(event.time_ms).encode()),
    ]


def _record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, headers: Any) -> LogRecord:
    found = dict(headers)
    missing = [name for name in _HEADER_NAMES if name not in found]
    if missing:
        return _unreadable(
            topic, partition, offset, key, value, f"record lacks the Argus envelope header(s) {', '.join(missing)}"
        )
    try:
        event = Event(
            event_id=bytes(found["event_id"]),
            type=bytes(found["type"]).decode(),
            schema_version=int(found["schema_version"]),
            time_ms=int(found["time_ms"]),
            partition_key=key or b"",
            payload=value or b"",
        )
    except (ValueError, UnicodeDecodeError) as exc:
        return _unreadable(topic, partition, offset, key, value, f"record has malformed Argus headers ({exc})")
    return LogRecord(topic=topic, partition=partition, offset=offset, event=event)


def _unreadable(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, why: str) -> LogRecord:
    """A record that is not an Argus event: returned (not raised) so that a consumer can set
    it aside and move on instead of meeting it again at every restart."""
    placeholder = Event(
        event_id=digest("unreadable", topic, str(partition), str(offset)),
        type="",
        schema_version=0,
        time_ms=0,
        partition_key=key or b"",
        payload=value or b"",
    )
    return LogRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        event=placeholder,
        unreadable=f"{topic}/{partition}@{offset}: {why}",
    )


def creation_refusal(topic: str, topic_errors: Sequence[tuple[Any, ...]]) -> str | None:
    """Why a CreateTopics response refused `topic` (None when created or already there)."""
    for name, code, *rest in topic_errors:
        error = for_code(code)
        if name != topic or code == 0 or error is TopicAlreadyExistsError:
            continue
        message = rest[0] if rest and rest[0] else "no message"
        return f"{error.__name__}: {message} (error {code})"
    return None


class KafkaEventLog:
    """EventLog on a Kafka cluster (`kafka://…`): one producer, one admin client and one
    group-less reader per process; one aiokafka consumer per `consumer()`."""

    dedups_on_append = False

    def __init__(self, options: KafkaOptions, *, retention: LogRetention | None = None) -> None:
        self.options = options
        # Set on the topics this log creates; the brokers enforce it (decision 0020).
        self.retention = retention
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._reader_lock = asyncio.Lock()
        self._partitions: dict[str, int] = {}

    @classmethod
    def from_url(cls, url: str, *, retention: LogRetention | None = None) -> KafkaEventLog:
        return cls(KafkaOptions.from_url(url), retention=retention)

    @property
    def bootstrap(self) -> str:
        return ",".join(self.options.bootstrap)

    def client_args(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap,
            "client_id": self.options.client_id,
            "request_timeout_ms": self.options.request_timeout_ms,
        }

    async def start(self) -> None:
        o = self.options
        producer = AIOKafkaProducer(
            **self.client_args(),
            acks="all",
            enable_idempotence=o.idempotence,
            compression_type=None if o.compression == "none" else o.compression,
            linger_ms=o.linger_ms,
            max_batch_size=o.max_batch_bytes,
            max_request_size=o.max_message_bytes,
        )
        admin = AIOKafkaAdminClient(**self.client_args())
        reader = AIOKafkaConsumer(
            **self.client_args(),
            enable_auto_commit=False,
            fetch_max_wait_ms=o.fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        try:
            await producer.start()
            await admin.start()
            await reader.start()
        except KafkaError as exc:
            await asyncio.gather(producer.stop(), admin.close(), reader.stop(), return_exceptions=True)
            hint = ""
            if o.idempotence and "UnknownError" in type(exc).__name__:
                hint = " (a broker without the idempotent producer, such as tansu, needs idempotence=false)"
            raise Unavailable(f"connect to Kafka at {self.bootstrap}: {exc!r}{hint}") from exc
        self._producer, self._admin, self._reader = producer, admin, reader

    async def close(self) -> None:
        for client in (self._reader, self._producer):
            if client is not None:
                await client.stop()
        if self._admin is not None:
            await self._admin.close()
        self._reader = self._producer = self._admin = None

    def _need(self) -> tuple[AIOKafkaProducer, AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._producer is None or self._admin is None or self._reader is None:
            raise StorageError(f"Kafka event log at {self.bootstrap} is not started")
        return self._producer, self._admin, self._reader

    # -- topics -----------------------------------------------------------------------

    async def ensure_topic(self, topic: str, partitions: int) -> int:
        if partitions < 1:
            raise InvalidArgument(f"topic {topic}: partitions must be >= 1", parameter="partitions")
        _, admin, _ = self._need()
        new = NewTopic(
            topic,
            partitions,
            self.options.replication_factor,
            topic_configs={
                "max.message.bytes": str(self.options.max_message_bytes),
                **kafka_topic_configs(topic, partitions, self.retention),
            },
        )
        try:
            response = await admin.create_topics([new])
        except KafkaError as exc:
            raise StorageError(f"create topic {topic} on {self.bootstrap}: {exc!r}") from exc
        refusal = creation_refusal(topic, response.topic_errors)
        if refusal is not None:
            raise StorageError(
                f"Kafka at {self.bootstrap} refused to create topic {topic} with {partitions} partitions and "
                f"replication factor {self.options.replication_factor}: {refusal}"
            )
        found = await self.partitions(topic, refresh=True)
        if found != partitions:
            log.warning("topic %s has %d partitions, not the %d asked for", topic, found, partitions)
        return found

    async def partitions(self, topic: str, *, refresh: bool = False) -> int:
        if not refresh and topic in self._partitions:
            return self._partitions[topic]
        producer, _, _ = self._need()
        try:
            found = await producer.partitions_for(topic)
        except KafkaError as exc:
            raise StorageError(f"read partitions of topic {topic} from {self.bootstrap}: {exc!r}") from exc
        if not found:
            raise StorageError(f"topic {topic!r} does not exist on {self.bootstrap}; create it first")
        self._partitions[topic] = len(found)
        return len(found)

    # -- writing ----------------------------------------------------------------------

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        producer, _, _ = self._need()
        partitions = await self.partitions(topic)
        for partition, _event in events:
            if not 0 <= partition < partitions:
                raise InvalidArgument(f"append to {topic}: partition {partition} not in [0, {partitions})")
        try:
            # send() only queues; every record is then awaited together, so the batch
            # shares producer batches and requests instead of one round trip per event.
            futures = [
                await producer.send(
                    topic,
                    value=event.payload,
                    key=event.partition_key,
                    partition=partition,
                    timestamp_ms=event.time_ms,
                    headers=_headers(event),
                )
                for partition, event in events
            ]
            metadata = await asyncio.gather(*futures)
        except KafkaError as exc:
            raise StorageError(f"append {len(events)} events to topic {topic} on {self.bootstrap}: {exc!r}") from exc
        return AppendResult(offsets=tuple(int(m.offset) for m in metadata))

    # -- reading ----------------------------------------------------------------------

    async def read(self, topic: str, partition: int, offset: int, max_records: int) -> list[LogRecord]:
        async with self._reader_lock:
            reader, tp = await self._point_reader(topic, partition, offset)
            deadline = time.monotonic() + self.options.request_timeout_ms / 1000
            while True:
                got = await reader.getmany(tp, timeout_ms=self.options.fetch_max_wait_ms, max_records=max_records)
                if got.get(tp):
                    return [_record(topic, partition, r.offset, r.key, r.value, r.headers) for r in got[tp]]
                # An empty answer only means "nothing yet": the end is known once a fetch
                # response carried the high watermark.
                highwater = reader.highwater(tp)
                if highwater is not None and offset >= highwater:
                    return []
                if time.monotonic() > deadline:
                    raise StorageError(f"read {topic}/{partition} from offset {offset} on {self.bootstrap}: timed out")

    async def end_offset(self, topic: str, partition: int) -> int:
        async with self._reader_lock:
            _, _, reader = self._need()
            tp = TopicPartition(topic, partition)
            try:
                listed = await reader.end_offsets([tp])
            except KafkaError as exc:
                raise StorageError(f"end offset of {topic}/{partition} on {self.bootstrap}: {exc!r}") from exc
            # Some brokers (tansu) list the start of the last batch as its end: fetch from
            # there and take the high watermark of the fetch response instead.
            reader, tp = await self._point_reader(topic, partition, max(0, int(listed[tp]) - 1))
            deadline = time.monotonic() + self.options.request_timeout_ms / 1000
            while (highwater := reader.highwater(tp)) is None:
                await reader.getmany(tp, timeout_ms=self.options.fetch_max_wait_ms, max_records=1)
                if time.monotonic() > deadline:
                    raise StorageError(f"end offset of {topic}/{partition} on {self.bootstrap}: timed out")
            return int(highwater)

    async def _point_reader(self, topic: str, partition: int, offset: int) -> tuple[AIOKafkaConsumer, TopicPartition]:
        """The group-less reader, assigned to one partition and positioned at `offset`."""
        _, _, reader = self._need()
        partitions = await self.partitions(topic)
        if not 0 <= partition < partitions:
            raise InvalidArgument(f"read {topic}: partition {partition} not in [0, {partitions})")
        tp = TopicPartition(topic, partition)
        reader.assign([tp])  # a fresh assignment also forgets the previous high watermark
        reader.seek(tp, offset)
        return reader, tp

    # -- consumer groups --------------------------------------------------------------

    def consumer(
        self,
        group: str,
        topic: str,
        *,
        listener: RebalanceListener | None = None,
        session_timeout_ms: int | None = None,
    ) -> EventLogConsumer:
        return KafkaConsumer(self, group, topic, listener=listener, session_timeout_ms=session_timeout_ms)


class KafkaConsumer:
    """A member of a Kafka consumer group on one topic; started on first use."""

    def __init__(
        self,
        log: KafkaEventLog,
        group: str,
        topic: str,
        *,
        listener: RebalanceListener | None = None,
        session_timeout_ms: int | None = None,
    ) -> None:
        self._log = log
        o = log.options
        # The shorter of the URL's setting and what this group asks for.
        self._session_timeout_ms = min(session_timeout_ms or o.session_timeout_ms, o.session_timeout_ms)
        # Kafka wants heartbeats well inside the session: a third of it, as its defaults.
        self._heartbeat_interval_ms = min(o.heartbeat_interval_ms, max(self._session_timeout_ms // 3, 100))
        self._group = group
        self._topic = topic
        self._listener = listener
        self._consumer: AIOKafkaConsumer | None = None
        self._owned: frozenset[int] = frozenset()
        self._first_assignment = asyncio.Event()
        self._closed = False

    def __repr__(self) -> str:
        return f"KafkaConsumer(group={self._group!r}, topic={self._topic!r}, owned={sorted(self._owned)})"

    @property
    def assigned(self) -> frozenset[int]:
        return self._owned

    @property
    def session(self) -> tuple[int, int]:
        """(session timeout, heartbeat interval) in ms this member joins with."""
        return self._session_timeout_ms, self._heartbeat_interval_ms

    async def _started(self) -> AIOKafkaConsumer:
        if self._closed:
            raise StorageError(f"consumer of group {self._group} on {self._topic} is closed")
        if self._consumer is None:
            o = self._log.options
            consumer = AIOKafkaConsumer(
                **self._log.client_args(),
                group_id=self._group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self._session_timeout_ms,
                heartbeat_interval_ms=self._heartbeat_interval_ms,
                fetch_max_wait_ms=o.fetch_max_wait_ms,
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
            consumer.subscribe([self._topic], listener=_Listener(self))
            try:
                await consumer.start()
            except KafkaError as exc:
                await consumer.stop()
                raise Unavailable(
                    f"join consumer group {self._group} on {self._topic} at {self._log.bootstrap}: {exc!r}"
                ) from exc
            self._consumer = consumer
        return self._consumer

    async def _member(self) -> AIOKafkaConsumer:
        """The started consumer once the group gave it its first assignment."""
        consumer = await self._started()
        if not self._first_assignment.is_set():
            # The join runs in aiokafka's coordinator task and takes a few heartbeats.
            timeout_s = max(30.0, 3 * self._session_timeout_ms / 1000)
            try:
                await asyncio.wait_for(self._first_assignment.wait(), timeout_s)
            except TimeoutError:
                raise Unavailable(
                    f"group {self._group} on {self._topic} at {self._log.bootstrap}: "
                    f"no partition assignment after {timeout_s:.0f} s"
                ) from None
        return consumer

    async def _revoked(self, partitions: frozenset[int]) -> None:
        try:
            if self._listener is not None and partitions:
                await self._listener.partitions_revoked(partitions)
        finally:
            self._owned = frozenset()  # nothing is ours until the next assignment

    async def _assigned(self, partitions: frozenset[int]) -> None:
        self._owned = partitions
        self._first_assignment.set()
        log.info("group %s on %s: assigned partitions %s", self._group, self._topic, sorted(partitions))
        if self._listener is not None:
            await self._listener.partitions_assigned(partitions)

    async def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        consumer = await self._member()
        try:
            got = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
            if got and (left := max_records - sum(len(v) for v in got.values())) > 0:
                # Whatever else is already fetched, without waiting.
                for tp, more in (await consumer.getmany(timeout_ms=0, max_records=left)).items():
                    got.setdefault(tp, []).extend(more)
        except KafkaError as exc:
            raise StorageError(f"poll group {self._group} on {self._topic}: {exc!r}") from exc
        records: list[LogRecord] = []
        for tp, batch in got.items():
            if tp.partition not in self._owned:
                continue  # fetched before a rebalance took the partition away
            records.extend(_record(tp.topic, tp.partition, r.offset, r.key, r.value, r.headers) for r in batch)
        return records

    async def commit(self, next_offsets: Mapping[int, int]) -> None:
        if not next_offsets:
            return
        consumer = await self._member()
        foreign = sorted(set(next_offsets) - self._owned)
        if foreign:
            raise StorageError(
                f"commit offsets of group {self._group} on {self._topic}: partition(s) {foreign} are not assigned "
                f"to this member (owned: {sorted(self._owned)}); their owner resumes from the last commit"
            )
        try:
            await consumer.commit({TopicPartition(self._topic, p): o for p, o in next_offsets.items()})
        except KafkaError as exc:
            raise StorageError(
                f"commit offsets {dict(next_offsets)} of group {self._group} on {self._topic}: {exc!r}"
            ) from exc

    async def committed(self) -> dict[int, int]:
        consumer = await self._started()
        partitions = await self._log.partitions(self._topic)
        out = {}
        try:
            for p in range(partitions):
                offset = await consumer.committed(TopicPartition(self._topic, p))
                if offset is not None and offset >= 0:
                    out[p] = int(offset)
        except KafkaError as exc:
            raise StorageError(f"read committed offsets of group {self._group} on {self._topic}: {exc!r}") from exc
        return out

    async def lag(self) -> dict[int, int]:
        consumer = await self._member()
        out = {}
        for p in sorted(self._owned):
            tp = TopicPartition(self._topic, p)
            try:
                position = await consumer.position(tp)
            except KafkaError as exc:
                raise StorageError(f"position of {self._topic}/{p} in group {self._group}: {exc!r}") from exc
            # The fetch's high watermark, not end_offsets (wrong on tansu); before the first
            # fetch of a partition, ask the log.
            highwater = consumer.highwater(tp)
            if highwater is None:
                highwater = await self._log.end_offset(self._topic, p)
            out[p] = max(0, int(highwater) - int(position))
        return out

    async def close(self) -> None:
        self._closed = True
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()  # leaves the group: its partitions move on at once
        self._owned = frozenset()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer._revoked(frozenset(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._consumer._assigned(frozenset(tp.partition for tp in assigned))
