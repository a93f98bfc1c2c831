"""Argus's own metrics (core/telemetry.py): the exposition format, bounded labels, the
child-to-parent merge, the `/metrics` route and its token, the self-feed's batches, and
counters that move when ingest and queries do work."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from argus.self_metrics import SelfBatcher
from command_side.ingest.accept import INGEST_REJECTED, INGEST_SAMPLES
from contracts.argus.events.v1 import events_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.memory_event_log import MemoryEventLog
from core.consumer import FLUSH_SECONDS, LAG, QUARANTINED, RECORDS, ConsumerRunner, Delivery
from core.errors import CorruptData
from core.events import make_event
from core.ports import LogRecord
from core.telemetry import (
    MAX_LABEL_SETS,
    OVERFLOW,
    REGISTRY,
    Registry,
    add_metrics_route,
    from_json,
    render,
    to_json,
)
from tests.unit.test_ingest_accept import NOW, batch, gauge, make

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = rf'{_NAME}="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{({_LABEL}(?:,{_LABEL})*)\}})? (NaN|[+-]Inf|-?[0-9.]+(?:e[+-]?[0-9]+)?)$")
_TYPE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram)$")
_HELP = re.compile(rf"^# HELP ({_NAME}) .*$")


def parse_exposition(text: str) -> dict[str, tuple[str, list[tuple[str, str, float]]]]:
    """A strict reading of the text format 0.0.4: every line a HELP, a TYPE or a sample of
    the family declared last; family -> (type, [(sample name, labels, value)])."""
    assert text.endswith("\n")
    families: dict[str, tuple[str, list[tuple[str, str, float]]]] = {}
    current = ""
    for line in text.splitlines():
        if m := _HELP.match(line):
            current = m.group(1)
            continue
        if m := _TYPE.match(line):
            assert m.group(1) == current, f"TYPE of {m.group(1)} after HELP of {current}"
            assert current not in families, f"family {current} twice"
            families[current] = (m.group(2), [])
            continue
        m = _SAMPLE.match(line)
        assert m is not None, f"not a sample line: {line!r}"
        name = m.group(1)
        kind = families[current][0]
        allowed = {current} if kind != "histogram" else {current + s for s in ("_bucket", "_sum", "_count")}
        assert name in allowed, f"{name} under family {current}"
        families[current][1].append((name, m.group(2) or "", float(m.group(3))))
    return families


def test_exposition_is_strict_text_format_with_cumulative_buckets_and_escapes() -> None:
    registry = Registry()
    c = registry.counter("argus_test_things_total", "Things.\nSecond line \\ slash", ["reason"])
    c.inc('a "quoted"\nvalue\\', by=3)
    c.inc("plain")
    g = registry.gauge("argus_test_size_bytes", "Size.")
    g.set(2.5)
    h = registry.histogram("argus_test_seconds", "Latency.", ["tier"], buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 0.5, 7.0):
        h.observe(v, "raw")
    families = parse_exposition(render(registry.collect()).decode())

    kind, samples = families["argus_test_things_total"]
    assert kind == "counter"
    assert ("argus_test_things_total", 'reason="a \\"quoted\\"\\nvalue\\\\"', 3.0) in samples
    assert families["argus_test_size_bytes"] == ("gauge", [("argus_test_size_bytes", "", 2.5)])
    kind, samples = families["argus_test_seconds"]
    assert kind == "histogram"
    buckets = [(labels, v) for name, labels, v in samples if name.endswith("_bucket")]
    assert buckets == [('tier="raw",le="0.1"', 1.0), ('tier="raw",le="1"', 3.0), ('tier="raw",le="+Inf"', 4.0)]
    assert ("argus_test_seconds_count", 'tier="raw"', 4.0) in samples
    assert math.isclose(next(v for n, _, v in samples if n.endswith("_sum")), 8.05)


def test_conventions_and_misuse_are_refused() -> None:
    registry = Registry()
    with pytest.raises(ValueError, match="_total"):
        registry.counter("argus_things", "no suffix")
    c = registry.counter("argus_things_total", "x", ["a"])
    with pytest.raises(ValueError, match="only goes up"):
        c.inc("x", by=-1)
    with pytest.raises(ValueError, match="expected labels"):
        c.inc("x", "y")
    with pytest.raises(ValueError, match="different shapes"):
        registry.gauge("argus_things_total", "x", ["a"])
    assert registry.counter("argus_things_total", "x", ["a"]) is c  # re-registering is idempotent


def test_label_sets_are_bounded_whatever_the_input() -> None:
    registry = Registry()
    c = registry.counter("argus_test_total", "x", ["reason"])
    for i in range(MAX_LABEL_SETS * 3):
        c.inc(f"r{i}")
    samples = registry.collect()[0].samples
    assert len(samples) == MAX_LABEL_SETS + 1
    assert c.value(OVERFLOW) == MAX_LABEL_SETS * 2


def test_child_figures_join_the_parents_family_by_family() -> None:
    parent, child = Registry(), Registry()
    parent.counter("argus_consumer_records_total", "x", ["group"]).inc("alert-evaluator", by=2)
    child_records = child.counter("argus_consumer_records_total", "x", ["group"])
    child_records.inc("rollups-v1", by=5)
    child_records.inc("alert-evaluator", by=99)  # the same series: the parent's value stays
    child.gauge("argus_consumer_lag_records", "y", ["group", "partition"]).set(7, "rollups-v1", "0")
    parent.set_external("child", from_json(to_json(child.collect())))
    families = parse_exposition(render(parent.collect()).decode())
    assert sorted(families["argus_consumer_records_total"][1]) == [
        ("argus_consumer_records_total", 'group="alert-evaluator"', 2.0),
        ("argus_consumer_records_total", 'group="rollups-v1"', 5.0),
    ]
    assert families["argus_consumer_lag_records"][1] == [
        ("argus_consumer_lag_records", 'group="rollups-v1",partition="0"', 7.0)
    ]
    with pytest.raises(ValueError):
        from_json([{"name": "not_ours", "kind": "counter", "help": "", "samples": []}])


async def test_ingest_counters_move_by_what_was_accepted_and_refused() -> None:
    acceptor, _ = make()
    accepted_before = INGEST_SAMPLES.value()
    nonfinite_before = INGEST_REJECTED.value("non_finite_value")
    result = await acceptor.accept("t1", batch(gauge(values=(1.0, math.nan, 3.0), host="a")))
    assert result.accepted_samples == 2 and result.rejected_samples == 1
    assert INGEST_SAMPLES.value() - accepted_before == 2
    assert INGEST_REJECTED.value("non_finite_value") - nonfinite_before == 1
    text = REGISTRY.render().decode()
    families = parse_exposition(text)
    assert "argus_event_log_append_seconds" in families
    assert all("t1" not in labels for _, (_, s) in families.items() for _, labels, _ in s), "no tenant label"


async def test_metrics_route_is_open_by_default_and_wants_the_token_when_set() -> None:
    for token in ("", "s3cret-token"):
        app = web.Application()
        add_metrics_route(app, token=token)
        async with TestClient(TestServer(app)) as client:
            open_answer = await client.get("/metrics")
            if token:
                assert open_answer.status == 401
                wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
                assert wrong.status == 401
                answer = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            else:
                answer = open_answer
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            parse_exposition(await answer.text())


def test_self_batches_send_counter_deltas_gauges_and_histogram_totals() -> None:
    registry = Registry()
    c = registry.counter("argus_test_total", "x", ["reason"])
    g = registry.gauge("argus_test_bytes", "y")
    h = registry.histogram("argus_test_seconds", "z", buckets=(1.0,))
    batcher = SelfBatcher(registry=registry, region="local", host="h1")
    c.inc("a", by=10)
    g.set(5)
    h.observe(0.5)
    first = {(s.metric, s.kind): s for s in batcher.collect(NOW).series}
    # Counters start with a baseline; the gauge is there at once; buckets never are.
    assert set(first) == {("argus_test_bytes", metrics_pb2.METRIC_KIND_GAUGE)}
    c.inc("a", by=4)
    h.observe(2.0)
    second = {(s.metric, s.kind): s for s in batcher.collect(NOW + 15_000).series}
    counter = metrics_pb2.METRIC_KIND_COUNTER
    assert list(second[("argus_test_total", counter)].values) == [4.0]
    assert {(lbl.name, lbl.value) for lbl in second[("argus_test_total", counter)].labels} == {
        ("host", "h1"),
        ("reason", "a"),
    }
    assert list(second[("argus_test_seconds_count", counter)].values) == [1.0]
    assert list(second[("argus_test_seconds_sum", counter)].values) == [2.0]
    assert not any(m.endswith("_bucket") for m, _ in second)


def test_the_self_tenant_is_reserved_to_argus_up() -> None:
    from command_side.config.handlers import _check_tenant
    from core.errors import InvalidArgument
    from core.model import SELF_TENANT

    with pytest.raises(InvalidArgument):
        _check_tenant(SELF_TENANT)  # `argus keys create --tenant _argus` and the API refuse it
    _check_tenant(SELF_TENANT, reserved_ok=True)


class _Counting:
    """A consumer handler that only counts (core/consumer.py ConsumerHandler)."""

    def __init__(self) -> None:
        self.next: dict[int, int] = {}

    def decode(self, record: LogRecord) -> None:
        if record.event.payload == b"corrupt":
            raise CorruptData("not an event")

    async def apply(self, deliveries: Sequence[Delivery[None]]) -> None:
        for d in deliveries:
            self.next[d.record.partition] = d.record.offset + 1

    def skip(self, partition: int, offset: int) -> None:
        self.next[partition] = offset + 1

    def buffer_full(self) -> bool:
        return False

    async def settle(self, *, force: bool) -> Mapping[int, int]:
        return dict(self.next)

    def reset(self) -> None:
        self.next.clear()

    async def reassigned(self, partitions: frozenset[int]) -> None:
        return None

    async def housekeeping(self) -> None:
        return None


async def test_consumer_figures_move_with_records_flushes_quarantine_and_lag() -> None:
    log = MemoryEventLog()
    await log.start()
    await log.ensure_topic("t.v1", 2)
    payload = events_pb2.SampleBatchAccepted()
    good = [(i % 2, make_event(payload, identity=bytes([i]), partition_key=b"k", time_ms=NOW)) for i in range(5)]
    bad = dataclasses.replace(good[0][1], event_id=b"x" * 32, payload=b"corrupt")
    await log.append("t.v1", [*good, (0, bad)])
    group = "e2e-telemetry-group"
    runner: ConsumerRunner[None] = ConsumerRunner(
        name="test", log=log, topic="t.v1", group=group, handler=_Counting(), clock_ms=lambda: NOW
    )
    flushes = FLUSH_SECONDS.count(group)
    await runner.catch_up()
    assert RECORDS.value(group) == 6
    assert QUARANTINED.value(group) == 1
    assert FLUSH_SECONDS.count(group) > flushes
    await log.append("t.v1", [(1, make_event(payload, identity=b"later", partition_key=b"k", time_ms=NOW))])
    await runner._record_lag()
    assert LAG.value(group, "1") == 1 and LAG.value(group, "0") == 0
    await runner.close()
    await log.close()
