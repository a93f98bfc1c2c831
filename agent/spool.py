"""The agent's durable spool: every batch is on disk before it is sent, and leaves the disk
only when ingest has answered for it (format: docs/formats/spool.md).

Guarantees:
- `append` returns only after the record is written to its segment file (and fsynced when
  `fsync` is on), so a batch survives a crash of the agent (and, with fsync, of the host).
- A record stays until `ack(batch_id)`; acks are written to a small ack file per segment,
  and a segment whose records are all acknowledged is deleted. After a restart, `open`
  finds every unacknowledged record again, in append order. An ack lost in a crash only
  means a resend, which ingest recognises by batch id and content (counted once).
- A torn tail (a record half-written when the process died) or a record whose checksum
  does not match ends the readable part of its segment: the rest is cut off, counted in
  `corrupt_records` / `corrupt_bytes` and logged. Nothing undecodable is ever handed out.
- The spool never holds more than `max_bytes` on disk (plus one record): when an append
  would pass the cap, whole segments are dropped, oldest first; their unacknowledged
  batches and samples are counted in `dropped_batches` / `dropped_samples` and logged.
- Thread-safe: the daemon appends from a worker thread while the sender reads and acks.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Final

import zstandard

from core.errors import CorruptData, InvalidArgument

log = logging.getLogger(__name__)

SEGMENT_MAGIC: Final = b"ARGSPOOL"
FORMAT_VERSION: Final = 1
SEGMENT_HEADER: Final = struct.Struct(">8sB3x")  # magic, version, reserved
RECORD_HEADER: Final = struct.Struct(">II")  # body length, CRC-32 of the body
BODY_HEADER: Final = struct.Struct(">BBHIQ")  # codec, reserved, batch id length, samples, created ms
ACK_ENTRY: Final = struct.Struct(">QI")  # record offset, CRC-32 of the offset bytes
MAX_RECORD_BYTES: Final = 256 * 1024 * 1024
SEGMENT_SUFFIX: Final = ".seg"
ACK_SUFFIX: Final = ".ack"
DEFAULT_SEGMENT_BYTES: Final = 50 * 1024 * 1024
DEFAULT_MAX_BYTES: Final = 1024 * 1024 * 1024
# A segment is at most this share of the cap, so dropping one loses a bounded part of it.
_SEGMENTS_PER_CAP: Final = 4
_GZIP_LEVEL: Final = 6
_ZSTD_LEVEL: Final = 3


class Codec(IntEnum):
    """How a record's payload is compressed (byte 0 of its body)."""

    NONE = 0
    GZIP = 1
    ZSTD = 2

    @classmethod
    def parse(cls, text: str) -> Codec:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown compression {text!r} (expected gzip, zstd or none)") from None


def compress(codec: Codec, data: bytes) -> bytes:
    if codec is Codec.GZIP:
        packer = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: gzip framing
        return packer.compress(data) + packer.flush()
    if codec is Codec.ZSTD:
        return zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(data)
    return data


def decompress(codec: int, data: bytes) -> bytes:
    if codec == Codec.GZIP:
        return zlib.decompress(data, 31)
    if codec == Codec.ZSTD:
        return zstandard.ZstdDecompressor().decompress(data)
    if codec == Codec.NONE:
        return data
    raise CorruptData(f"unknown spool codec {codec}")


@dataclass(slots=True, kw_only=True, eq=False)
class SpoolRecord:
    """Where one spooled batch lives. `seq` orders records across segments (append order)."""

    seq: int
    segment: int
    offset: int
    size: int  # bytes on disk, headers included
    batch_id: str
    samples: int
    created_ms: int
    codec: int
    acked: bool = False
    dropped: bool = False


@dataclass(slots=True, kw_only=True)
class _Segment:
    number: int
    path: Path
    size: int
    records: list[SpoolRecord] = field(default_factory=list)
    unacked: int = 0

    @property
    def ack_path(self) -> Path:
        return self.path.with_suffix(ACK_SUFFIX)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpoolStats:
    pending_batches: int
    pending_samples: int
    disk_bytes: int
    segments: int
    appended_batches: int
    acked_batches: int
    dropped_batches: int
    dropped_samples: int
    corrupt_records: int
    corrupt_bytes: int


def _segment_name(number: int) -> str:
    return f"{number:020d}{SEGMENT_SUFFIX}"


class Spool:
    """Segment files in one directory. Use `Spool.open(...)`, then `close()`."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        codec: Codec = Codec.GZIP,
        fsync: bool = True,
    ) -> None:
        if max_bytes < 1024:
            raise InvalidArgument(f"spool max_bytes must be at least 1024, got {max_bytes}", parameter="max_bytes")
        if segment_bytes < 1:
            raise InvalidArgument(
                f"spool segment_bytes must be positive, got {segment_bytes}", parameter="segment_bytes"
            )
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes, max(max_bytes // _SEGMENTS_PER_CAP, 1))
        self.codec = codec
        self.fsync = fsync
        self._lock = threading.RLock()
        self._append_lock = threading.Lock()
        self._segments: list[_Segment] = []  # oldest first; the last one is the active one
        self._by_id: dict[str, SpoolRecord] = {}
        self._active_fd: int | None = None
        self._read_fds: dict[int, int] = {}
        self._next_seq = 0
        self._next_segment = 0
        self._disk_bytes = 0
        self._pending_samples = 0
        self.appended_batches = 0
        self.acked_batches = 0
        self.dropped_batches = 0
        self.dropped_samples = 0
        self.corrupt_records = 0
        self.corrupt_bytes = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        codec: Codec = Codec.GZIP,
        fsync: bool = True,
    ) -> Spool:
        """Open (creating it if needed) the spool in `directory` and recover what it holds."""
        spool = cls(directory, segment_bytes=segment_bytes, max_bytes=max_bytes, codec=codec, fsync=fsync)
        directory.mkdir(parents=True, exist_ok=True)
        spool._recover()
        return spool

    def close(self) -> None:
        with self._lock:
            if self._active_fd is not None:
                os.close(self._active_fd)
                self._active_fd = None
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()

    def _recover(self) -> None:
        numbers = sorted(int(p.name.removesuffix(SEGMENT_SUFFIX)) for p in self.directory.glob("*" + SEGMENT_SUFFIX))
        for number in numbers:
            segment = self._load_segment(number)
            if segment.unacked == 0:  # empty, or every record answered
                self._delete_segment(segment)
                continue
            self._segments.append(segment)
            self._disk_bytes += segment.size
        # Stray ack files of deleted segments.
        for ack in self.directory.glob("*" + ACK_SUFFIX):
            if not ack.with_suffix(SEGMENT_SUFFIX).exists():
                ack.unlink(missing_ok=True)
        pending = sum(s.unacked for s in self._segments)
        if self._segments:
            log.info(
                "spool recovered: dir=%s segments=%d pending_batches=%d disk_bytes=%d",
                self.directory,
                len(self._segments),
                pending,
                self._disk_bytes,
            )
        # Recovered segments are never appended to: a new active segment starts now.
        self._next_segment = (numbers[-1] + 1) if numbers else 0

    def _load_segment(self, number: int) -> _Segment:
        path = self.directory / _segment_name(number)
        data = path.read_bytes()
        segment = _Segment(number=number, path=path, size=len(data))
        if len(data) < SEGMENT_HEADER.size:
            self._cut(segment, 0, len(data), "segment header is incomplete")
            return segment
        magic, version = SEGMENT_HEADER.unpack_from(data, 0)
        if magic != SEGMENT_MAGIC:
            raise CorruptData(f"spool segment {path} does not start with {SEGMENT_MAGIC!r}: not a spool file")
        if version != FORMAT_VERSION:
            raise CorruptData(
                f"spool segment {path} has format version {version}; this agent reads version {FORMAT_VERSION} "
                "(was it written by a newer agent?)"
            )
        offset = SEGMENT_HEADER.size
        while offset < len(data):
            parsed = _parse_record(data, offset)
            if isinstance(parsed, str):
                self._cut(segment, offset, len(data) - offset, parsed)
                break
            batch_id, samples, created_ms, codec, end = parsed
            if batch_id in self._by_id:
                # Only a bug could write one id twice; keep the first, never send it twice.
                log.error("spool holds batch id twice, ignoring the later copy: batch_id=%s", batch_id)
            else:
                record = SpoolRecord(
                    seq=self._next_seq,
                    segment=number,
                    offset=offset,
                    size=end - offset,
                    batch_id=batch_id,
                    samples=samples,
                    created_ms=created_ms,
                    codec=codec,
                )
                self._next_seq += 1
                segment.records.append(record)
                self._by_id[batch_id] = record
            offset = end
        by_offset = {r.offset: r for r in segment.records}
        for acked_offset in _read_acks(segment.ack_path):
            if (acked := by_offset.get(acked_offset)) is not None:
                acked.acked = True
        for record in segment.records:
            if record.acked:
                del self._by_id[record.batch_id]
            else:
                segment.unacked += 1
                self._pending_samples += record.samples
        return segment

    def _cut(self, segment: _Segment, offset: int, length: int, why: str) -> None:
        """Drop the unreadable end of a segment (a torn tail after a crash)."""
        self.corrupt_records += 1
        self.corrupt_bytes += length
        log.warning(
            "spool segment has an unreadable tail, cut it off: file=%s offset=%d bytes=%d reason=%s",
            segment.path,
            offset,
            length,
            why,
        )
        with open(segment.path, "r+b") as handle:
            handle.truncate(offset)
        segment.size = offset

    # ------------------------------------------------------------------ writing

    def append(self, batch_id: str, batch: bytes, *, samples: int, created_ms: int | None = None) -> SpoolRecord:
        """Compress and write one serialized SampleBatch; durable (fsync) when this returns.

        Raises InvalidArgument for an empty or already pending batch id, or a record larger
        than the cap; OSError when the disk refuses the write."""
        if not batch_id:
            raise InvalidArgument("every spooled batch needs a batch id", parameter="batch_id")
        id_bytes = batch_id.encode()
        if len(id_bytes) > 0xFFFF:
            raise InvalidArgument("batch id is longer than 65535 bytes", parameter="batch_id")
        payload = compress(self.codec, batch)
        created = int(time.time() * 1000) if created_ms is None else created_ms
        body = BODY_HEADER.pack(int(self.codec), 0, len(id_bytes), samples, created) + id_bytes + payload
        if len(body) > MAX_RECORD_BYTES:
            raise InvalidArgument(f"batch {batch_id} is {len(body)} bytes, more than a spool record may hold")
        record_bytes = RECORD_HEADER.pack(len(body), zlib.crc32(body)) + body
        # One appender at a time; the state lock is released during fsync so that the
        # sender's reads and acks on the event loop never wait on the disk.
        with self._append_lock:
            with self._lock:
                if batch_id in self._by_id:
                    raise InvalidArgument(f"batch id {batch_id!r} is already in the spool", parameter="batch_id")
                if len(record_bytes) + SEGMENT_HEADER.size > self.max_bytes:
                    raise InvalidArgument(
                        f"batch {batch_id} needs {len(record_bytes)} bytes on disk, more than the spool cap of "
                        f"{self.max_bytes}; raise spool_max_bytes or lower max_batch_bytes"
                    )
                active = self._active_for(len(record_bytes))
                self._make_room(len(record_bytes))
                fd = self._active_fd
                assert fd is not None
                offset = active.size
                written = os.write(fd, record_bytes)
                if written != len(record_bytes):  # a short write: disk full; undo it
                    os.ftruncate(fd, offset)
                    raise OSError(f"spool write of batch {batch_id} was short ({written} of {len(record_bytes)} bytes)")
                # Counted at once, so the cap holds even before the record is visible.
                active.size += len(record_bytes)
                self._disk_bytes += len(record_bytes)
            if self.fsync:
                os.fsync(fd)
            with self._lock:
                record = SpoolRecord(
                    seq=self._next_seq,
                    segment=active.number,
                    offset=offset,
                    size=len(record_bytes),
                    batch_id=batch_id,
                    samples=samples,
                    created_ms=created,
                    codec=int(self.codec),
                )
                self._next_seq += 1
                active.records.append(record)
                active.unacked += 1
                self._pending_samples += samples
                self._by_id[batch_id] = record
                self.appended_batches += 1
                return record

    def _active_for(self, record_size: int) -> _Segment:
        active = self._segments[-1] if self._segments and self._active_fd is not None else None
        if active is not None and active.records and active.size + record_size > self.segment_bytes:
            self._seal_active()
            active = None
        if active is None:
            active = self._new_segment()
        return active

    def _seal_active(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
            self._active_fd = None
        if self._segments and self._segments[-1].unacked == 0:
            self._delete_segment(self._segments[-1])

    def _new_segment(self) -> _Segment:
        number = self._next_segment
        self._next_segment += 1
        path = self.directory / _segment_name(number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        os.write(fd, SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION))
        if self.fsync:
            os.fsync(fd)
            _fsync_dir(self.directory)
        self._active_fd = fd
        segment = _Segment(number=number, path=path, size=SEGMENT_HEADER.size)
        self._segments.append(segment)
        self._disk_bytes += segment.size
        return segment

    def _make_room(self, record_size: int) -> None:
        """Drop the oldest sealed segments until the new record fits under the cap."""
        while self._disk_bytes + record_size > self.max_bytes and len(self._segments) > 1:
            oldest = self._segments[0]
            lost = [r for r in oldest.records if not r.acked]
            lost_samples = sum(r.samples for r in lost)
            for record in lost:
                record.dropped = True
                self._by_id.pop(record.batch_id, None)
            self._pending_samples -= lost_samples
            self.dropped_batches += len(lost)
            self.dropped_samples += lost_samples
            self._delete_segment(oldest)
            log.warning(
                "spool is full, dropped its oldest segment: dropped_batches=%d dropped_samples=%d "
                "total_dropped_batches=%d cap_bytes=%d oldest_created_ms=%s",
                len(lost),
                lost_samples,
                self.dropped_batches,
                self.max_bytes,
                lost[0].created_ms if lost else "-",
            )

    def _delete_segment(self, segment: _Segment) -> None:
        fd = self._read_fds.pop(segment.number, None)
        if fd is not None:
            os.close(fd)
        segment.path.unlink(missing_ok=True)
        segment.ack_path.unlink(missing_ok=True)
        if segment in self._segments:
            self._segments.remove(segment)
            self._disk_bytes -= segment.size

    # ------------------------------------------------------------------ reading and acks

    def next_pending(self, after_seq: int = -1) -> SpoolRecord | None:
        """The oldest unacknowledged record with `seq > after_seq`, or None."""
        with self._lock:
            for segment in self._segments:
                records = segment.records
                if not records or records[-1].seq <= after_seq:
                    continue
                start = bisect_right(records, after_seq, key=lambda r: r.seq)
                for record in records[start:]:
                    if not record.acked:
                        return record
            return None

    def pending(self) -> Iterator[SpoolRecord]:
        """Every unacknowledged record, oldest first (a snapshot)."""
        with self._lock:
            snapshot = [r for s in self._segments for r in s.records if not r.acked]
        return iter(snapshot)

    def read(self, record: SpoolRecord) -> bytes | None:
        """The serialized SampleBatch of a record; None if it was dropped or acknowledged
        meanwhile. Raises CorruptData if the bytes on disk changed since they were written."""
        with self._lock:
            if record.dropped or record.acked:
                return None
            fd = self._read_fds.get(record.segment)
            if fd is None:
                fd = os.open(self.directory / _segment_name(record.segment), os.O_RDONLY)
                self._read_fds[record.segment] = fd
            data = os.pread(fd, record.size, record.offset)
        parsed = _parse_record(data, 0)
        if isinstance(parsed, str):
            raise CorruptData(f"spooled batch {record.batch_id} no longer reads back: {parsed}")
        body_start = RECORD_HEADER.size + BODY_HEADER.size + len(record.batch_id.encode())
        try:
            return decompress(record.codec, data[body_start:])
        except (zlib.error, zstandard.ZstdError) as exc:
            raise CorruptData(f"spooled batch {record.batch_id} does not decompress: {exc}") from exc

    def ack(self, batch_id: str) -> bool:
        """Mark a batch answered; False if it is not pending (already acked, dropped, unknown)."""
        with self._lock:
            record = self._by_id.pop(batch_id, None)
            if record is None:
                return False
            record.acked = True
            self.acked_batches += 1
            self._pending_samples -= record.samples
            segment = next(s for s in self._segments if s.number == record.segment)
            segment.unacked -= 1
            is_active = segment is self._segments[-1] and self._active_fd is not None
            if segment.unacked == 0 and not is_active:
                self._delete_segment(segment)
                return True
            # A lost ack entry only costs a resend, which ingest counts once: no fsync.
            with open(segment.ack_path, "ab") as handle:
                handle.write(_ack_entry(record.offset))
            return True

    # ------------------------------------------------------------------ status

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(
                pending_batches=len(self._by_id),
                pending_samples=self._pending_samples,
                disk_bytes=self._disk_bytes,
                segments=len(self._segments),
                appended_batches=self.appended_batches,
                acked_batches=self.acked_batches,
                dropped_batches=self.dropped_batches,
                dropped_samples=self.dropped_samples,
                corrupt_records=self.corrupt_records,
                corrupt_bytes=self.corrupt_bytes,
            )

    @property
    def pending_batches(self) -> int:
        with self._lock:
            return len(self._by_id)


def _parse_record(data: bytes, offset: int) -> tuple[str, int, int, int, int] | str:
    """(batch id, samples, created ms, codec, end offset) of the record at `offset`, or why
    it cannot be read."""
    if len(data) - offset < RECORD_HEADER.size:
        return "record header is incomplete"
    length, crc = RECORD_HEADER.unpack_from(data, offset)
    if length < BODY_HEADER.size or length > MAX_RECORD_BYTES:
        return f"record length {length} is out of range"
    start = offset + RECORD_HEADER.size
    end = start + length
    if end > len(data):
        return f"record needs {length} bytes, only {len(data) - start} remain"
    body = data[start:end]
    if zlib.crc32(body) != crc:
        return "record checksum does not match"
    codec, _reserved, id_len, samples, created_ms = BODY_HEADER.unpack_from(body, 0)
    if BODY_HEADER.size + id_len > length:
        return "batch id runs past the record"
    if codec not in tuple(Codec):
        return f"unknown codec {codec}"
    try:
        batch_id = body[BODY_HEADER.size : BODY_HEADER.size + id_len].decode()
    except UnicodeDecodeError:
        return "batch id is not UTF-8"
    return batch_id, samples, created_ms, codec, end


def _ack_entry(offset: int) -> bytes:
    raw = offset.to_bytes(8, "big")
    return ACK_ENTRY.pack(offset, zlib.crc32(raw))


def _read_acks(path: Path) -> Iterator[int]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for start in range(0, len(data) - ACK_ENTRY.size + 1, ACK_ENTRY.size):
        offset, crc = ACK_ENTRY.unpack_from(data, start)
        if zlib.crc32(offset.to_bytes(8, "big")) == crc:
            yield offset


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
