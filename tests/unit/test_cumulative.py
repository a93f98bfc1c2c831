"""The one cumulative -> delta converter (core/cumulative.py): first point, resets, retries,
bounds, commit after durability, durable states."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections import defaultdict
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from core.adapters.sqlite_cumulative_state import SqliteCumulativeStateStore
from core.cumulative import CumulativeDeltas, encode_key

Key = tuple[str, str]
A: Key = ("t", "a")


@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=40), st.integers(0, 39))
def test_deltas_sum_to_the_increase_with_a_reset_anywhere(raw: list[int], cut: int) -> None:
    # Two runs of a counter: the second starts from zero after a restart.
    first, second = sorted(raw[: cut % len(raw) + 1]), sorted(raw[cut % len(raw) + 1 :])
    if second and first and second[0] >= first[-1]:
        second = []  # not a visible reset
    deltas: CumulativeDeltas[Key] = CumulativeDeltas()
    total = 0.0
    for ts, v in enumerate(first + second):
        total += sum(deltas.update({A: float(v)}, ts).values())
    expected = first[-1] - first[0] + (second[-1] if second else 0)
    assert total == expected


async def test_first_point_is_a_baseline_and_repeats_count_nothing() -> None:
    deltas: CumulativeDeltas[Key] = CumulativeDeltas()
    conv = await deltas.begin([A])
    assert conv.delta(A, 1_000, 10.0) is None
    assert conv.delta(A, 2_000, 15.0) == 5.0
    assert conv.delta(A, 2_000, 15.0) is None  # same point again (a retry inside one request)
    assert conv.delta(A, 1_500, 12.0) is None  # older than the last counted point
    assert conv.dropped == 2
    await conv.commit()
    again = await deltas.begin([A])
    assert again.delta(A, 2_000, 15.0) is None  # the whole request resent after success
    assert again.delta(A, 3_000, 4.0) == 4.0  # reset: the counter restarted from zero


async def test_nothing_changes_until_commit_so_a_failed_request_converts_the_same_when_retried() -> None:
    deltas: CumulativeDeltas[Key] = CumulativeDeltas()
    deltas.update({A: 1.0}, 0)
    first = await deltas.begin([A])
    assert first.delta(A, 10, 4.0) == 3.0
    # append failed: no commit
    retry = await deltas.begin([A])
    assert retry.delta(A, 10, 4.0) == 3.0


async def test_a_point_with_its_start_time_counts_whole_only_when_it_started_within_the_ttl() -> None:
    deltas: CumulativeDeltas[Key] = CumulativeDeltas(ttl_ms=60_000)
    conv = await deltas.begin([A, ("t", "old")])
    assert conv.delta(A, 10_000, 7.0, start_ms=5_000) == 7.0
    assert conv.delta(("t", "old"), 100_000, 7.0, start_ms=1_000) is None
    assert conv.delta(A, 20_000, 9.0, start_ms=5_000) == 2.0
    assert conv.delta(A, 30_000, 12.0, start_ms=25_000) == 12.0  # a later start: restarted


def test_memory_is_bounded_by_lru_and_idle_states_expire() -> None:
    deltas: CumulativeDeltas[Key] = CumulativeDeltas(max_series=2, ttl_ms=100)
    deltas.update({("t", "1"): 1.0, ("t", "2"): 1.0}, 0)
    deltas.update({("t", "1"): 2.0}, 1)  # "1" is now the most recently used
    deltas.update({("t", "3"): 1.0}, 2)
    assert len(deltas) == 2 and deltas.state(("t", "2")) is None
    assert deltas.update({("t", "1"): 5.0}, 50) == {("t", "1"): 3.0}
    assert deltas.update({("t", "1"): 9.0}, 500) == {}  # idle for longer than the ttl: a new baseline


async def test_durable_states_survive_a_restart_and_are_pruned(tmp_path: Path) -> None:
    store = SqliteCumulativeStateStore(tmp_path / "cumulative.db")
    await store.start()
    deltas: CumulativeDeltas[Key] = CumulativeDeltas(store=store, max_series=1)
    conv = await deltas.begin([A, ("t", "b")])
    conv.delta(A, 1_000, 10.0)
    conv.delta(("t", "b"), 1_000, 3.0)
    await conv.commit()
    await store.close()

    store = SqliteCumulativeStateStore(tmp_path / "cumulative.db")
    await store.start()
    restarted: CumulativeDeltas[Key] = CumulativeDeltas(store=store, max_series=1)
    conv = await restarted.begin([A])
    assert conv.delta(A, 2_000, 25.0) == 15.0
    await conv.commit()
    assert await store.prune(1_500) == 1  # b was last counted at 1 000
    conv = await restarted.begin([("t", "b")])
    assert conv.delta(("t", "b"), 3_000, 4.0) is None
    await store.close()


async def test_reservations_run_disjoint_series_together_and_serialise_shared_ones() -> None:
    deltas: CumulativeDeltas[bytes] = CumulativeDeltas()
    entered: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
    release: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
    inside: list[str] = []

    async def holder(name: str, keys: set[bytes] | None) -> None:
        async with deltas.reserve(keys):
            inside.append(name)
            entered[name].set()
            await release[name].wait()
            inside.remove(name)

    async def settle() -> None:
        for _ in range(20):  # let every runnable task take its turn (no wall-clock wait)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(holder("a", {b"x"}))]
    await asyncio.wait_for(entered["a"].wait(), 5)
    tasks.append(asyncio.create_task(holder("b", {b"y"})))
    await asyncio.wait_for(entered["b"].wait(), 5)
    assert sorted(inside) == ["a", "b"]  # disjoint: together
    tasks.append(asyncio.create_task(holder("c", {b"x", b"z"})))
    await settle()
    assert "c" not in inside  # shares x with a: waits
    release["b"].set()
    release["a"].set()
    await asyncio.wait_for(entered["c"].wait(), 5)
    tasks.append(asyncio.create_task(holder("everything", None)))
    await settle()
    tasks.append(asyncio.create_task(holder("d", {b"q"})))  # arrives after someone wants every key
    await settle()
    assert inside == ["c"]
    release["c"].set()
    await asyncio.wait_for(entered["everything"].wait(), 5)
    await settle()
    assert inside == ["everything"]
    release["everything"].set()
    await asyncio.wait_for(entered["d"].wait(), 5)
    release["d"].set()
    await asyncio.gather(*tasks)


def test_encoded_keys_are_exact_size_and_bytes_keys_are_their_own_form() -> None:
    key = ("tenant", "http_requests_total", "eu-west-1", (("instance", "a:9100"), ("job", "api")))
    encoded = encode_key(key)
    assert encoded == b'["tenant","http_requests_total","eu-west-1",[["instance","a:9100"],["job","api"]]]'
    # Held by the hundred thousand: no spare buffer behind each one.
    tracemalloc.start()
    try:
        held = [encode_key((*key[:3], (("n", str(i)),))) for i in range(1_000)]
        per_key = tracemalloc.get_traced_memory()[0] / len(held)
    finally:
        tracemalloc.stop()
    assert per_key < 4 * len(encoded)
    assert encode_key(encoded) is encoded
