"""The rollup projector's bookkeeping of what every tier holds: which event ids may be
recorded as applied and which offsets committed, when tiers write on their own cadence."""

from __future__ import annotations

import pytest

from core.model import DEFAULT_TIERS
from projectors.rollups import Settlement, tier_intervals_s

TIERS = ("fine", "coarse")


def test_nothing_settles_until_every_tier_holds_it() -> None:
    s = Settlement(TIERS)
    s.read(0, 10, b"a")
    s.read(1, 4, b"b")
    tick = s.close_tick()
    s.hold("fine", tick)
    assert s.settle() == ([], {})
    assert s.seen(b"a") and s.seen(b"b")  # still drops duplicates meanwhile
    assert s.pending
    s.hold("coarse", tick)
    assert s.settle() == ([b"a", b"b"], {0: 11, 1: 5})
    assert not s.seen(b"a")
    assert not s.pending


def test_commit_is_the_minimum_over_tiers_per_partition() -> None:
    s = Settlement(TIERS)
    s.read(0, 10, b"a")
    first = s.close_tick()
    s.read(0, 11, b"b")
    s.read(1, 3, b"c")
    second = s.close_tick()
    s.read(0, 12, b"d")
    third = s.close_tick()
    s.hold("fine", third)
    s.hold("coarse", first)
    # The coarse tier holds only the first tick: partition 0 through offset 10, ids of it.
    assert s.settle() == ([b"a"], {0: 11})
    assert s.seen(b"b") and s.seen(b"c") and s.seen(b"d")
    s.hold("coarse", second)
    assert s.settle() == ([b"b", b"c"], {0: 12, 1: 4})
    s.hold("coarse", third)
    assert s.settle() == ([b"d"], {0: 13})
    assert s.settle() == ([], {})


def test_holding_never_moves_back() -> None:
    s = Settlement(TIERS)
    s.read(0, 1, b"a")
    tick = s.close_tick()
    s.hold("fine", tick)
    s.hold("fine", tick - 1)
    assert s.held("fine") == tick


def test_dropped_duplicates_advance_offsets_without_an_id() -> None:
    s = Settlement(TIERS)
    s.read(2, 7, None)
    assert s.pending
    tick = s.close_tick()
    for tier in TIERS:
        s.hold(tier, tick)
    assert s.settle() == ([], {2: 8})


def test_ticks_without_reads_make_no_generation() -> None:
    s = Settlement(TIERS)
    s.read(0, 1, b"a")
    s.close_tick()
    empty = s.close_tick()
    assert s.partitions() == {0}
    s.hold("fine", empty)
    s.hold("coarse", empty)
    assert s.settle() == ([b"a"], {0: 2})
    assert s.partitions() == set()


def test_partitions_lists_open_and_unsettled_reads() -> None:
    s = Settlement(TIERS)
    s.read(0, 1, b"a")
    s.close_tick()
    s.read(3, 1, b"b")  # not yet closed into a generation
    assert s.partitions() == {0, 3}


def test_tier_intervals_default_to_every_flush() -> None:
    assert set(tier_intervals_s(DEFAULT_TIERS, 500, {}).values()) == {0.0}
    got = tier_intervals_s(DEFAULT_TIERS, 500, {"5s": 300, "1m": 500, "1h": 300_000})
    # Not above the flush interval: written at every flush tick.
    assert got == {"5s": 0.0, "1m": 0.0, "5m": 0.0, "1h": 300.0, "1d": 0.0}


def test_tier_intervals_reject_unknown_tiers_and_bad_values() -> None:
    with pytest.raises(ValueError, match=r"tier_flush_interval_ms: unknown tier '2h'"):
        tier_intervals_s(DEFAULT_TIERS, 500, {"2h": 1_000})
    with pytest.raises(ValueError, match=r"tier_flush_interval_ms\.1d must be a non-negative integer"):
        tier_intervals_s(DEFAULT_TIERS, 500, {"1d": -1})
