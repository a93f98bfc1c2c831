"""Prometheus text exposition: parsing, and cumulative counters turned into deltas."""

from __future__ import annotations

import math

import pytest

from agent.scrape import ExpositionConverter, ExpositionSample, ScrapeTarget, parse_exposition
from contracts.argus.metrics.v1 import metrics_pb2
from core.errors import InvalidArgument

EXPOSITION = """\
# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{method="get",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3
# TYPE temperature gauge
temperature{room="a \\"big\\" one\\\\ \\n"} -3.5
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le="0.1"} 5
rpc_seconds_bucket{le="+Inf"} 8
rpc_seconds_sum 1.25
rpc_seconds_count 8
# TYPE gc_seconds summary
gc_seconds{quantile="0.99"} 0.2
gc_seconds_sum 4
gc_seconds_count 40
untyped_thing 7
odd_value NaN
"""


def by_key(series: list[metrics_pb2.SeriesSamples]) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[int, float]]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[int, float]] = {}
    for s in series:
        assert len(s.values) == 1 and len(s.timestamps_ms) == 1
        out[(s.metric, tuple((label.name, label.value) for label in s.labels))] = (int(s.kind), s.values[0])
    return out


def test_exposition_lines_parse_with_escapes_types_and_special_values() -> None:
    samples, errors = parse_exposition(EXPOSITION)
    assert errors == []
    found = {(s.name, s.labels): (s.value, s.family_type) for s in samples if not math.isnan(s.value)}
    assert found[("http_requests_total", (("code", "200"), ("method", "get")))] == (1027.0, "counter")
    assert found[("temperature", (("room", 'a "big" one\\ \n'),))] == (-3.5, "gauge")
    assert found[("rpc_seconds_bucket", (("le", "+Inf"),))] == (8.0, "histogram")
    assert found[("gc_seconds", (("quantile", "0.99"),))] == (0.2, "summary")
    assert found[("gc_seconds_count", ())] == (40.0, "summary")
    assert found[("untyped_thing", ())] == (7.0, "untyped")
    assert any(s.name == "odd_value" and math.isnan(s.value) for s in samples)


def test_a_bad_line_is_reported_and_skipped_without_losing_the_others() -> None:
    text = 'good 1\n{no_name="x"} 2\nbad_labels{a="1" 3\nbad_value{} x\nalso_good{a="b",} 4\n'
    samples, errors = parse_exposition(text)
    assert [(s.name, s.value) for s in samples] == [("good", 1.0), ("also_good", 4.0)]
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 3", "line 4"]


def test_first_scrape_sets_baselines_then_counters_become_deltas() -> None:
    converter = ExpositionConverter(region="eu-1", labels={"instance": "127.0.0.1:9100"})
    samples, _ = parse_exposition(EXPOSITION)
    first = by_key(converter.convert(samples, now_ms=1_000))
    # Gauges and summary quantiles are read at once; cumulative series wait for a baseline.
    assert first == {
        ("temperature", (("instance", "127.0.0.1:9100"), ("room", 'a "big" one\\ \n'))): (
            metrics_pb2.METRIC_KIND_GAUGE,
            -3.5,
        ),
        ("gc_seconds", (("instance", "127.0.0.1:9100"), ("quantile", "0.99"))): (metrics_pb2.METRIC_KIND_GAUGE, 0.2),
        ("untyped_thing", (("instance", "127.0.0.1:9100"),)): (metrics_pb2.METRIC_KIND_GAUGE, 7.0),
    }
    later = EXPOSITION.replace(" 1027 ", " 1030 ").replace('le="+Inf"} 8', 'le="+Inf"} 10')
    later = later.replace("rpc_seconds_count 8", "rpc_seconds_count 10").replace(
        "gc_seconds_count 40", "gc_seconds_count 2"
    )
    samples, _ = parse_exposition(later)
    second = by_key(converter.convert(samples, now_ms=6_000))
    inst = ("instance", "127.0.0.1:9100")
    counter = metrics_pb2.METRIC_KIND_COUNTER
    assert second[("http_requests_total", (("code", "200"), inst, ("method", "get")))] == (counter, 3.0)
    assert second[("http_requests_total", (("code", "400"), inst, ("method", "post")))] == (counter, 0.0)
    assert second[("rpc_seconds_bucket", (inst, ("le", "+Inf")))] == (counter, 2.0)
    assert second[("rpc_seconds_bucket", (inst, ("le", "0.1")))] == (counter, 0.0)
    assert second[("rpc_seconds_count", (inst,))] == (counter, 2.0)
    # 40 -> 2 is a reset (the process restarted): the new value is the delta.
    assert second[("gc_seconds_count", (inst,))] == (counter, 2.0)
    assert all(kind != counter or value >= 0 for kind, value in second.values())


def test_series_are_stamped_with_the_scrape_time_and_region() -> None:
    converter = ExpositionConverter(region="eu-1")
    [series] = converter.convert([ExpositionSample("g", (), 1.5, "gauge")], now_ms=42)
    assert (series.region, list(series.timestamps_ms), list(series.values)) == ("eu-1", [42], [1.5])


def test_a_counter_that_disappears_starts_over_from_a_new_baseline() -> None:
    converter = ExpositionConverter(region="r")
    c = [ExpositionSample("jobs_total", (), 10.0, "counter")]
    converter.convert(c, 1)
    converter.convert([], 2)
    assert converter.convert([ExpositionSample("jobs_total", (), 15.0, "counter")], 3) == []


def test_created_and_nan_and_infinite_counter_samples_are_skipped() -> None:
    converter = ExpositionConverter(region="r")
    samples = [
        ExpositionSample("jobs_created", (), 1.7e9, "counter"),
        ExpositionSample("jobs_total", (), math.inf, "counter"),
        ExpositionSample("level", (), math.nan, "gauge"),
        ExpositionSample("build_created", (), 3.0, "gauge"),
    ]
    converter.convert(samples, 1)
    assert [s.metric for s in converter.convert(samples, 2)] == ["build_created"]


def test_scraped_region_label_is_renamed_because_region_is_reserved() -> None:
    converter = ExpositionConverter(region="r")
    [series] = converter.convert([ExpositionSample("g", (("region", "x"),), 1.0, "gauge")], 1)
    assert [(label.name, label.value) for label in series.labels] == [("exported_region", "x")]


@pytest.mark.parametrize("url", ["localhost:9100/metrics", "ftp://h/metrics", "http://"])
def test_scrape_target_needs_an_http_url(url: str) -> None:
    with pytest.raises(InvalidArgument, match="scrape url"):
        ScrapeTarget(url=url)
