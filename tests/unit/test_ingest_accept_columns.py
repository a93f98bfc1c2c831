"""BatchAcceptor.accept_columns (what remote write and other foreign gauges and counters go
through): for the same request, the same answers and byte-identical events as `accept`, with
every limit applied as there (series limit, rate limit, rejections, tenant isolation)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from command_side.ingest.accept import BatchAcceptor, SeriesColumns
from command_side.ingest.protocols.foreign import ForeignIngest, ForeignSeries, SeriesKey, Temporality
from command_side.ingest.registry import TenantRegistry
from contracts.argus.ingest.v1 import ingest_pb2
from contracts.argus.metrics.v1 import metrics_pb2
from core.cumulative import CumulativeDeltas
from core.errors import InvalidArgument, ResourceExhausted
from core.model import DAY_MS
from core.settings import IngestLimits
from tests.unit.test_ingest_accept import NOW, MemoryLog

metrics = st.sampled_from(["up", "reqs_total", "bad name", "temp"])
labels = st.dictionaries(
    st.sampled_from(["job", "instance", "region", "bad-name", "z"]),
    st.sampled_from(["", "a", "b", "eu-west-1", "Not A Region!"]),
    max_size=3,
)
times = st.sampled_from([NOW - 60_000, NOW - 30_000, NOW, NOW + 10 * DAY_MS, NOW - 3000 * DAY_MS])
numbers = st.sampled_from([0.0, 1.5, -2.0, 7.0, math.nan, math.inf, -math.inf])
points = st.lists(st.tuples(times, numbers), max_size=4)
temporalities = st.sampled_from(list(Temporality))


def pair(limit: int, **limits: Any) -> list[tuple[ForeignIngest, MemoryLog, BatchAcceptor]]:
    out = []
    for _ in range(2):
        log = MemoryLog()
        acceptor = BatchAcceptor(
            log_writer=log,
            registry=TenantRegistry(max_series_per_tenant=limit),
            limits=IngestLimits(max_batch_samples=1000, **limits),
            partitions=12,
            clock_ms=lambda: NOW,
        )
        deltas: CumulativeDeltas[SeriesKey] = CumulativeDeltas()
        out.append((ForeignIngest(acceptor, deltas), log, acceptor))
    return out


def no_extra(_: object) -> list[metrics_pb2.SeriesSamples]:
    return []  # forces the per-message path (`accept`), the reference


async def both(
    ingests: list[tuple[ForeignIngest, MemoryLog, BatchAcceptor]], tenant: str, number: int, series: list[ForeignSeries]
) -> list[ingest_pb2.BatchResult]:
    request = f"request-{number}".encode()
    columns = await ingests[0][0].accept(tenant, source="rw", request_id=request, series=series)
    messages = await ingests[1][0].accept(tenant, source="rw", request_id=request, series=series, extra=no_extra)
    return [columns.result, messages.result]


def assert_same_events(ingests: list[tuple[ForeignIngest, MemoryLog, BatchAcceptor]]) -> None:
    columns, messages = ingests[0][1], ingests[1][1]
    assert [(p, e.event_id, e.payload) for _, p, e in columns.events] == [
        (p, e.event_id, e.payload) for _, p, e in messages.events
    ]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.tuples(metrics, labels, temporalities, points), max_size=8),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["t1", "t2"]),
)
async def test_columns_and_messages_give_the_same_answers_and_events(
    requests: list[list[tuple[str, dict[str, str], Temporality, list[tuple[int, float]]]]], tenant: str
) -> None:
    ingests = pair(limit=6)
    for number, request in enumerate(requests):
        series = [
            ForeignSeries(
                metric=metric,
                labels=dict(names),
                temporality=temporality,
                timestamps_ms=[t for t, _ in sorted(pts, key=lambda p: p[0])],
                values=[v for _, v in sorted(pts, key=lambda p: p[0])],
            )
            for metric, names, temporality, pts in request
        ]
        # The same request to both tenants: each resolves its own identities.
        for who in (tenant, "other"):
            got, want = await both(ingests, who, number, series)
            assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
    assert_same_events(ingests)
    # Only valid identities are remembered.
    assert len(ingests[0][2].templates) <= len(ingests[0][2].identities)


async def test_series_limit_and_tenant_isolation_hold_in_columns() -> None:
    ingests = pair(limit=2)
    series = [ForeignSeries(f"m{i}", {"job": "j"}, Temporality.GAUGE, [NOW], [1.0]) for i in range(3)]
    for tenant in ("t1", "t2"):
        got, want = await both(ingests, tenant, 0, series)
        assert got.SerializeToString() == want.SerializeToString()
        assert (got.status, got.accepted_samples, got.rejected_samples) == (ingest_pb2.BATCH_STATUS_PARTIAL, 2, 1)
        assert got.rejections[0].reason == ingest_pb2.REJECT_REASON_SERIES_LIMIT
        assert "limits.max_series_per_tenant" in got.rejections[0].message
    assert_same_events(ingests)
    accepted = ingests[0][1].accepted()
    assert {p.tenant for p in accepted} == {"t1", "t2"}
    ids = {p.tenant: set(p.series_ids) for p in accepted}
    assert not ids["t1"] & ids["t2"]  # same series, other tenant: other identity


async def test_rate_limit_refuses_columns_whole_as_it_does_messages() -> None:
    ingests = pair(limit=100, ingest_rate_samples_per_s=1.0, ingest_burst_samples=3)
    series = [ForeignSeries("up", {"job": "j"}, Temporality.GAUGE, [NOW - 2000, NOW - 1000], [1.0, 2.0])]
    got, want = await both(ingests, "t1", 0, series)
    assert got.accepted_samples == want.accepted_samples == 2
    errors = []
    for index, extra in ((0, None), (1, no_extra)):
        with pytest.raises(ResourceExhausted) as raised:
            await ingests[index][0].accept("t1", source="rw", request_id=b"again", series=series, extra=extra)
        errors.append(str(raised.value))
    assert errors[0] == errors[1] and "limits.ingest_rate_samples_per_s" in errors[0]
    assert_same_events(ingests)
    too_big = [ForeignSeries("up", {"job": "k"}, Temporality.GAUGE, [NOW - i for i in range(5)], [1.0] * 5)]
    got, want = await both(ingests, "t2", 1, too_big)
    assert got.SerializeToString() == want.SerializeToString()
    assert got.rejections[0].reason == ingest_pb2.REJECT_REASON_BATCH_TOO_LARGE


async def test_columns_that_do_not_match_the_batch_are_refused() -> None:
    (_, log, acceptor), _ = pair(limit=10)
    template = metrics_pb2.SeriesSamples(metric="up", kind=metrics_pb2.METRIC_KIND_GAUGE).SerializeToString()
    columns = SeriesColumns(
        templates=[template, template],
        counts=np.array([1, 1], dtype=np.int64),
        timestamps_ms=np.array([NOW, NOW], dtype=np.int64),
        values=np.array([1.0, 2.0]),
    )
    with pytest.raises(InvalidArgument):
        await acceptor.accept_columns("t1", metrics_pb2.SampleBatch(batch_id="b"), columns)
    assert log.events == []
