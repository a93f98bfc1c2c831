"""Remote write and Influx line protocol on the ingest HTTP entrypoint: mapping, exact counts
under retries and restarts, error shapes, one identity rule across paths."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import cramjam
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from command_side.ingest.accept import BatchAcceptor
from command_side.ingest.protocols.foreign import ForeignIngest, SeriesKey
from command_side.ingest.protocols.http import IngestHttp
from command_side.ingest.registry import TenantRegistry
from contracts.argus.events.v1 import events_pb2
from contracts.argus.ingest.v1 import prometheus_remote_pb2 as prw
from contracts.argus.metrics.v1 import metrics_pb2
from core.adapters.sqlite_cumulative_state import SqliteCumulativeStateStore
from core.cumulative import CumulativeDeltas, CumulativeStateStore
from core.errors import Unauthenticated, Unavailable
from core.ports import AppendResult, Event
from core.settings import IngestLimits

NOW = 1_764_000_000_000
KEY = "k-" + "x" * 40
STALE_NAN = 0x7FF0000000000002


class Keys:
    def tenant_for(self, api_key: str | None) -> str:
        if api_key == KEY:
            return "acme"
        if api_key == "other":
            return "other"
        raise Unauthenticated("unknown API key")


class Log:
    """In-memory log writer that dedups by event id and can be made to fail."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ids: set[bytes] = set()
        self.failing = False

    async def append(self, topic: str, events: Sequence[tuple[int, Event]]) -> AppendResult:
        if self.failing:
            raise Unavailable("event log down")
        offsets: list[int | None] = []
        for _, event in events:
            if event.event_id in self.ids:
                offsets.append(None)
                continue
            self.ids.add(event.event_id)
            self.events.append(event)
            offsets.append(len(self.events))
        return AppendResult(offsets=tuple(offsets))

    def series(self) -> list[tuple[str, metrics_pb2.SeriesSamples, int]]:
        out: list[tuple[str, metrics_pb2.SeriesSamples, int]] = []
        for event in self.events:
            payload = events_pb2.SampleBatchAccepted.FromString(event.payload)
            out.extend((payload.tenant, s, sid) for s, sid in zip(payload.series, payload.series_ids, strict=True))
        return out

    def total(self, metric: str) -> float:
        return sum(sum(s.values) for _, s, _ in self.series() if s.metric == metric)


def make_http(log: Log, store: CumulativeStateStore | None = None) -> IngestHttp:
    acceptor = BatchAcceptor(
        log_writer=log,
        registry=TenantRegistry(max_series_per_tenant=1000),
        limits=IngestLimits(),
        partitions=4,
        clock_ms=lambda: NOW,
    )
    deltas: CumulativeDeltas[SeriesKey] = CumulativeDeltas(store=store)
    return IngestHttp(ForeignIngest(acceptor, deltas), Keys(), max_body_bytes=1 << 20, clock_ms=lambda: NOW)


Served = tuple[TestClient[web.Request, web.Application], Log]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    log = Log()
    async with TestClient(TestServer(make_http(log).app())) as client:
        yield client, log


def rw_body(
    series: Sequence[tuple[dict[str, str], Sequence[tuple[int, float]]]], metadata: Sequence[tuple[str, int]] = ()
) -> bytes:
    request = prw.PrometheusWriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in sorted(labels.items()):
            ts.labels.add(name=name, value=value)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    for family, kind in metadata:
        request.metadata.add(metric_family_name=family, type=kind)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


async def test_remote_write_counters_become_exact_deltas_and_retries_count_once(
    served: Served,
) -> None:
    client, log = served
    labels = {"__name__": "http_requests_total", "job": "api", "instance": "h:9100"}
    first = rw_body([(labels, [(NOW - 30_000, 100.0), (NOW - 20_000, 110.0)])])
    second = rw_body([(labels, [(NOW - 10_000, 125.0), (NOW, 5.0)])])  # a reset to 5
    for body in (first, second, second, first):  # resends of both
        response = await client.post("/api/v1/write", data=body, headers=HEADERS)
        assert response.status == 204, await response.text()
    assert log.total("http_requests_total") == 10 + 15 + 5
    [(tenant, s, _), *_others] = log.series()
    assert tenant == "acme" and s.kind == metrics_pb2.METRIC_KIND_COUNTER
    assert {(lb.name, lb.value) for lb in s.labels} == {("job", "api"), ("instance", "h:9100")}


async def test_a_request_whose_append_failed_is_counted_exactly_once_when_retried(
    served: Served,
) -> None:
    client, log = served
    labels = {"__name__": "jobs_total"}
    await client.post("/api/v1/write", data=rw_body([(labels, [(NOW - 20_000, 1.0)])]), headers=HEADERS)
    body = rw_body([(labels, [(NOW - 10_000, 4.0), (NOW, 9.0)])])
    log.failing = True
    response = await client.post("/api/v1/write", data=body, headers=HEADERS)
    assert response.status == 503  # Prometheus retries 5xx
    log.failing = False
    for _ in range(2):
        assert (await client.post("/api/v1/write", data=body, headers=HEADERS)).status == 204
    assert log.total("jobs_total") == 8.0


async def test_converter_states_survive_a_restart(tmp_path: Path) -> None:
    log = Log()
    labels = {"__name__": "bytes_total", "instance": "a"}
    for step, (ts, value) in enumerate([(NOW - 20_000, 50.0), (NOW - 10_000, 70.0), (NOW, 95.0)]):
        store = SqliteCumulativeStateStore(tmp_path / "states.db")
        await store.start()
        async with TestClient(TestServer(make_http(log, store).app())) as client:  # a new process each time
            response = await client.post("/api/v1/write", data=rw_body([(labels, [(ts, value)])]), headers=HEADERS)
            assert response.status == 204, (step, await response.text())
        await store.close()
    assert log.total("bytes_total") == 45.0


async def test_kinds_from_metadata_or_suffix_and_staleness_markers_skipped(
    served: Served,
) -> None:
    client, log = served
    stale = _stale()
    body = rw_body(
        [
            ({"__name__": "temperature"}, [(NOW - 1000, 21.5), (NOW, stale)]),
            ({"__name__": "errors"}, [(NOW - 1000, 3.0), (NOW, 4.0)]),  # counter by metadata
            ({"__name__": "lat_bucket", "le": "0.5"}, [(NOW - 1000, 3.0), (NOW, 7.0)]),
        ],
        metadata=[("errors", prw.PrometheusMetricMetadata.METRIC_TYPE_COUNTER)],
    )
    assert (await client.post("/api/v1/write", data=body, headers=HEADERS)).status == 204
    kinds = {s.metric: (s.kind, list(s.values)) for _, s, _ in log.series()}
    assert kinds == {
        "temperature": (metrics_pb2.METRIC_KIND_GAUGE, [21.5]),
        "errors": (metrics_pb2.METRIC_KIND_COUNTER, [1.0]),
        "lat_bucket": (metrics_pb2.METRIC_KIND_COUNTER, [4.0]),
    }


def _stale() -> float:
    import struct

    value: float = struct.unpack("<d", STALE_NAN.to_bytes(8, "little"))[0]
    assert math.isnan(value)
    return value


async def test_remote_write_errors_are_4xx_for_bad_data_and_401_without_a_key(
    served: Served,
) -> None:
    client, log = served
    garbage = await client.post("/api/v1/write", data=b"not snappy at all", headers=HEADERS)
    assert garbage.status == 400 and "snappy" in await garbage.text()
    not_proto = await client.post(
        "/api/v1/write", data=bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff")), headers=HEADERS
    )
    assert not_proto.status == 400
    nameless = await client.post("/api/v1/write", data=rw_body([({"job": "x"}, [(NOW, 1.0)])]), headers=HEADERS)
    assert nameless.status == 400 and "__name__" in await nameless.text()
    bad_label = rw_body(
        [({"__name__": "ok_metric", "bad-label": "x"}, [(NOW, 1.0)]), ({"__name__": "fine"}, [(NOW, 2.0)])]
    )
    partial = await client.post("/api/v1/write", data=bad_label, headers=HEADERS)
    assert partial.status == 400 and "1 of 2 samples rejected" in await partial.text()
    assert [s.metric for _, s, _ in log.series()] == ["fine"]
    anonymous = await client.post("/api/v1/write", data=rw_body([({"__name__": "m"}, [(NOW, 1.0)])]))
    assert anonymous.status == 401
    too_big = await client.post("/api/v1/write", data=io.BytesIO(b"\x00" * (2 << 20)), headers=HEADERS)
    assert too_big.status == 413


async def test_influx_v2_and_v1_with_precision_gzip_and_their_error_shapes(
    served: Served,
) -> None:
    client, log = served
    lines = (
        f'cpu,host=a\\ b,region=eu-west-1 usage_idle=90.5,usage_user=3i,up=true,note="text, with space" {NOW // 1000}\n'
        "# a comment\n"
        f"mem,host=a value=42 {NOW // 1000}\n"
    )
    token = {"Authorization": f"Token {KEY}"}
    ok = await client.post("/api/v2/write?org=o&bucket=b&precision=s", data=lines, headers=token)
    assert ok.status == 204, await ok.text()
    got = {
        (s.metric, s.region, tuple((lb.name, lb.value) for lb in s.labels)): list(s.values) for _, s, _ in log.series()
    }
    assert got == {
        ("cpu_usage_idle", "eu-west-1", (("host", "a b"),)): [90.5],
        ("cpu_usage_user", "eu-west-1", (("host", "a b"),)): [3.0],
        ("cpu_up", "eu-west-1", (("host", "a b"),)): [1.0],
        ("mem", "local", (("host", "a"),)): [42.0],
    }
    assert all(s.timestamps_ms[0] == NOW for _, s, _ in log.series())

    zipped = gzip.compress(f"disk,host=a used=7 {NOW}\n".encode())
    v1 = await client.post("/write?db=x&precision=ms", data=zipped, headers={**token, "Content-Encoding": "gzip"})
    assert v1.status == 204, await v1.text()
    assert log.total("disk_used") == 7.0

    bad = await client.post("/api/v2/write", data="cpu value=1\nbroken line here now\ncpu value=oops\n", headers=token)
    body = await bad.json()
    assert bad.status == 400 and body["code"] == "invalid"
    assert body["message"].startswith("partial write: ") and "line 2" in body["message"] and "line 3" in body["message"]
    huge = await client.post("/api/v2/write", data=f"cpu value=1 {10**30}\n", headers=token)
    assert huge.status == 400 and "out of range" in (await huge.json())["message"]
    escaped = 'we\\,ird\\ m,t\\=ag=v\\=al f\\ ield=1,s="a \\"quoted\\" = b" ' + str(NOW)
    assert (await client.post("/api/v2/write?precision=ms", data=escaped, headers=token)).status == 204
    assert log.total("we_ird_m_f_ield") == 1.0
    assert any(("t_ag", "v=al") in [(lb.name, lb.value) for lb in s.labels] for _, s, _ in log.series())
    bad_v1 = await client.post("/write?precision=fortnight", data="cpu value=1\n", headers=token)
    assert bad_v1.status == 400 and "precision" in (await bad_v1.json())["error"]
    unauthorized = await client.post("/api/v2/write", data="cpu value=1\n")
    assert unauthorized.status == 401 and (await unauthorized.json())["code"] == "unauthorized"


async def test_the_same_sample_through_two_paths_is_one_series(served: Served) -> None:
    client, log = served
    rw = rw_body([({"__name__": "room_temp", "host": "a", "region": "eu-west-1"}, [(NOW - 5000, 20.0)])])
    assert (await client.post("/api/v1/write", data=rw, headers=HEADERS)).status == 204
    influx = f"room_temp,region=eu-west-1,host=a value=21 {NOW}"
    assert (
        await client.post("/api/v2/write?precision=ms", data=influx, headers={"Authorization": f"Bearer {KEY}"})
    ).status == 204
    ids = {sid for _, s, sid in log.series()}
    assert len(log.series()) == 2 and len(ids) == 1


async def test_tenants_are_isolated_by_key_including_converter_state(
    served: Served,
) -> None:
    client, log = served
    labels = {"__name__": "shared_total"}
    for key, values in ((KEY, [(NOW - 2000, 10.0), (NOW - 1000, 12.0)]), ("other", [(NOW - 1000, 50.0), (NOW, 51.0)])):
        headers = {**HEADERS, "Authorization": f"Bearer {key}"}
        assert (await client.post("/api/v1/write", data=rw_body([(labels, values)]), headers=headers)).status == 204
    per_tenant = {tenant: sum(s.values) for tenant, s, _ in log.series()}
    assert per_tenant == {"acme": 2.0, "other": 1.0}
    assert json.dumps(per_tenant)  # plain numbers


async def test_the_influxdb_client_writes_through_the_v2_api(served: Served) -> None:
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write.point import Point
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.domain.write_precision import WritePrecision
    from influxdb_client.rest import ApiException

    client, log = served
    url = str(client.make_url("/")).rstrip("/")

    def write(records: list[Point] | str) -> None:
        with InfluxDBClient(url=url, token=KEY, org="acme-org", enable_gzip=True) as influx:
            influx.write_api(write_options=SYNCHRONOUS).write(
                bucket="b", record=records, write_precision=WritePrecision.MS
            )

    points = [
        Point("http")  # type: ignore[no-untyped-call]  # the client has no type hints
        .tag("host", "a")
        .field("latency_ms", 12.5)
        .field("status", "ok")
        .time(NOW - 1000, WritePrecision.MS),
        Point("http").tag("host", "a").field("latency_ms", 13.0).time(NOW, WritePrecision.MS),  # type: ignore[no-untyped-call]
    ]
    await asyncio.to_thread(write, points)
    [series] = log.series()
    assert (series[1].metric, list(series[1].timestamps_ms), list(series[1].values)) == (
        "http_latency_ms",
        [NOW - 1000, NOW],
        [12.5, 13.0],
    )
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(write, "http,host=a latency_ms=oops")
    assert caught.value.status == 400 and "not a number" in json.loads(caught.value.body)["message"]
