"""The agent's disk spool: framing, acks, rotation, the cap, and recovery after a crash."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.spool import (
    ACK_SUFFIX,
    FORMAT_VERSION,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    SEGMENT_SUFFIX,
    Codec,
    Spool,
)
from core.errors import CorruptData, InvalidArgument


def payload(i: int, size: int = 100) -> bytes:
    return (f"batch-{i}:".encode() * size)[:size]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SEGMENT_SUFFIX))


def pending_ids(spool: Spool) -> list[str]:
    return [r.batch_id for r in spool.pending()]


@pytest.mark.parametrize("codec", list(Codec))
def test_appended_batch_reads_back_with_every_codec(tmp_path: Path, codec: Codec) -> None:
    spool = Spool.open(tmp_path, codec=codec)
    record = spool.append("b1", payload(1, 5000), samples=7)
    assert spool.read(record) == payload(1, 5000)
    assert (record.batch_id, record.samples, record.codec) == ("b1", 7, int(codec))
    if codec is not Codec.NONE:
        assert record.size < 1000  # the repetitive payload compresses
    spool.close()


def test_pending_batches_survive_a_reopen_in_append_order_without_the_acked_ones(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, fsync=False)
    for i in range(10):
        spool.append(f"b{i}", payload(i), samples=i)
    assert spool.ack("b3") and spool.ack("b7")
    assert not spool.ack("b3"), "a second ack of one batch is a no-op"
    assert not spool.ack("never-spooled")
    spool.close()

    reopened = Spool.open(tmp_path)
    assert pending_ids(reopened) == [f"b{i}" for i in range(10) if i not in (3, 7)]
    stats = reopened.stats()
    assert stats.pending_batches == 8
    assert stats.pending_samples == sum(range(10)) - 3 - 7
    assert [reopened.read(r) for r in reopened.pending()] == [payload(i) for i in range(10) if i not in (3, 7)]
    # New appends go to a new segment; old ids cannot be spooled twice.
    with pytest.raises(InvalidArgument, match="already in the spool"):
        reopened.append("b0", b"x", samples=1)
    reopened.append("b10", payload(10), samples=1)
    assert pending_ids(reopened)[-1] == "b10"
    assert len(segments(tmp_path)) == 2
    reopened.close()


def test_segments_rotate_and_a_fully_acked_sealed_segment_is_deleted(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE, segment_bytes=1000, fsync=False)
    for i in range(10):
        spool.append(f"b{i}", payload(i, 300), samples=1)
    files = segments(tmp_path)
    assert len(files) >= 4
    assert all(f.stat().st_size <= 1000 for f in files)
    first = [r.batch_id for r in spool.pending() if r.segment == int(files[0].stem)]
    for batch_id in first:
        spool.ack(batch_id)
    assert not files[0].exists(), "a sealed segment whose batches are all answered is deleted"
    assert not files[0].with_suffix(ACK_SUFFIX).exists()
    # The active segment stays (it is still being written) until it is sealed.
    last = [r.batch_id for r in spool.pending() if r.segment == int(files[-1].stem)]
    for batch_id in last:
        spool.ack(batch_id)
    assert files[-1].exists()
    assert spool.stats().disk_bytes == sum(f.stat().st_size for f in segments(tmp_path))
    spool.close()


def test_full_spool_drops_oldest_segments_first_and_counts_them(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE, segment_bytes=2_000, max_bytes=8_000, fsync=False)
    for i in range(100):
        spool.append(f"b{i}", payload(i, 300), samples=5)
        assert spool.stats().disk_bytes <= 8_000
    stats = spool.stats()
    assert stats.dropped_batches > 0
    assert stats.dropped_samples == 5 * stats.dropped_batches
    assert stats.pending_batches + stats.dropped_batches == 100
    ids = pending_ids(spool)
    assert ids == [f"b{i}" for i in range(100 - len(ids), 100)], "the newest batches are kept, in order"
    assert stats.disk_bytes == sum(f.stat().st_size for f in segments(tmp_path))
    spool.close()


def test_acked_batches_are_not_counted_as_dropped(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE, segment_bytes=2_000, max_bytes=8_000, fsync=False)
    for i in range(100):
        record = spool.append(f"b{i}", payload(i, 300), samples=1)
        if i % 2 == 0:
            spool.ack(record.batch_id)
    stats = spool.stats()
    assert stats.pending_batches + stats.dropped_batches == 50
    spool.close()


def test_a_record_dropped_while_in_flight_reads_as_none_and_its_ack_is_ignored(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE, segment_bytes=2_000, max_bytes=8_000, fsync=False)
    first = spool.append("b0", payload(0, 300), samples=1)
    for i in range(1, 60):
        spool.append(f"b{i}", payload(i, 300), samples=1)
    assert first.dropped
    assert spool.read(first) is None
    assert not spool.ack("b0")
    spool.close()


def test_torn_tail_is_cut_off_and_counted_while_whole_records_survive(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE)
    for i in range(3):
        spool.append(f"b{i}", payload(i), samples=1)
    spool.close()
    [segment] = segments(tmp_path)
    whole = segment.stat().st_size
    # A crash in the middle of writing a fourth record: only part of it reached the file.
    other = Spool.open(tmp_path / "other", codec=Codec.NONE)
    other.append("b3", payload(3), samples=1)
    other.close()
    [other_segment] = segments(tmp_path / "other")
    record = other_segment.read_bytes()[SEGMENT_HEADER.size :]
    with segment.open("ab") as handle:
        handle.write(record[: len(record) // 2])

    reopened = Spool.open(tmp_path, codec=Codec.NONE)
    assert pending_ids(reopened) == ["b0", "b1", "b2"]
    stats = reopened.stats()
    assert (stats.corrupt_records, stats.corrupt_bytes) == (1, len(record) // 2)
    assert segment.stat().st_size == whole, "the torn bytes are removed from the file"
    reopened.close()


def test_a_flipped_byte_ends_the_readable_part_of_its_segment(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE)
    records = [spool.append(f"b{i}", payload(i), samples=1) for i in range(4)]
    spool.close()
    [segment] = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[records[2].offset + records[2].size - 1] ^= 0xFF
    segment.write_bytes(bytes(data))

    reopened = Spool.open(tmp_path)
    assert pending_ids(reopened) == ["b0", "b1"]
    assert reopened.stats().corrupt_records == 1
    reopened.close()


def test_a_record_corrupted_after_it_was_written_is_refused_on_read(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE)
    record = spool.append("b0", payload(0), samples=1)
    [segment] = segments(tmp_path)
    with segment.open("r+b") as handle:
        handle.seek(record.offset + record.size - 1)
        handle.write(b"\x00")
    with pytest.raises(CorruptData, match="b0"):
        spool.read(record)
    spool.close()


def test_segment_of_an_unknown_version_is_refused_loudly(tmp_path: Path) -> None:
    (tmp_path / f"{0:020d}{SEGMENT_SUFFIX}").write_bytes(SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION + 1))
    with pytest.raises(CorruptData, match="format version 2"):
        Spool.open(tmp_path)


def test_a_file_that_is_not_a_spool_segment_is_refused(tmp_path: Path) -> None:
    (tmp_path / f"{0:020d}{SEGMENT_SUFFIX}").write_bytes(b"hello world, not a spool")
    with pytest.raises(CorruptData, match="not a spool file"):
        Spool.open(tmp_path)


def test_next_pending_walks_the_unacked_records_after_a_cursor(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE, segment_bytes=700, fsync=False)
    records = [spool.append(f"b{i}", payload(i, 200), samples=1) for i in range(8)]
    spool.ack("b1")
    spool.ack("b2")
    seen = []
    cursor = -1
    while (record := spool.next_pending(cursor)) is not None:
        seen.append(record.batch_id)
        cursor = record.seq
    assert seen == ["b0", "b3", "b4", "b5", "b6", "b7"]
    assert spool.next_pending(records[-1].seq) is None
    spool.close()


def test_a_record_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, codec=Codec.NONE, max_bytes=4096)
    with pytest.raises(InvalidArgument, match="spool cap"):
        spool.append("big", os.urandom(5000), samples=1)
    spool.close()


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(1, 600)),
            st.tuples(st.just("ack"), st.integers(0, 50)),
            st.tuples(st.just("reopen"), st.just(0)),
        ),
        max_size=60,
    )
)
def test_spool_matches_a_model_through_appends_acks_and_reopens(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        spool = Spool.open(directory, codec=Codec.NONE, segment_bytes=1500, max_bytes=1 << 30, fsync=False)
        model: dict[str, bytes] = {}
        appended = 0
        for op, arg in ops:
            if op == "append":
                data = os.urandom(arg)
                spool.append(f"b{appended}", data, samples=1)
                model[f"b{appended}"] = data
                appended += 1
            elif op == "ack":
                batch_id = f"b{arg}"
                assert spool.ack(batch_id) == (batch_id in model)
                model.pop(batch_id, None)
            else:
                spool.close()
                spool = Spool.open(directory, codec=Codec.NONE, segment_bytes=1500, fsync=False)
            assert pending_ids(spool) == list(model)
        assert {r.batch_id: spool.read(r) for r in spool.pending()} == model
        assert spool.stats().disk_bytes == sum(f.stat().st_size for f in segments(directory))
        spool.close()
