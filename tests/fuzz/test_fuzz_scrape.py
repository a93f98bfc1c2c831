"""Fuzz the Prometheus / OpenMetrics text the agent scrapes (agent.scrape): a body never
makes the parser or the converter raise; each bad line is reported with its number and why;
converted series carry finite values and counters never go negative."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.scrape import ExpositionConverter, parse_exposition
from contracts.argus.metrics.v1 import metrics_pb2
from tests.fuzz.bounds import bounded, fuzz

NAMES = st.sampled_from(["http_requests_total", "up", "go_gc_seconds", "x_created", "a:b", "1bad", "", "é"])
LABELS = st.one_of(
    st.just(""),
    st.lists(
        st.tuples(st.sampled_from(["job", "le", "region", "", "1x", "a b"]), st.text(max_size=6)).map(
            lambda kv: f'{kv[0]}="{kv[1]}"'
        ),
        max_size=3,
    ).map(lambda items: "{" + ",".join(items) + "}"),
    st.sampled_from(['{job="a', "{job=a}", '{="x"}', '{job="a\\"b"}', '{job="a",}', "{", "}", '{job="\\n"}']),
)
VALUES = st.one_of(
    st.sampled_from(["1", "-1", "0", "NaN", "+Inf", "-Inf", "1e309", "0x1", "", "1 2", "1_0", "nan"]),
    st.floats().map(repr),
)
TYPES = st.sampled_from(
    ["# TYPE http_requests_total counter", "# TYPE up gauge", "# TYPE x histogram", "# HELP x y", "#"]
)
LINES = st.one_of(
    st.tuples(NAMES, LABELS, st.just(" "), VALUES, st.sampled_from(["", " 1700000000000", " x"])).map("".join),
    TYPES,
    st.text(max_size=30),
)


@fuzz(scale=1.5)
@given(scrapes=st.lists(st.lists(LINES, max_size=10).map("\n".join), min_size=1, max_size=3))
def test_expositions_parse_and_convert_or_report_each_bad_line(scrapes: list[str]) -> None:
    converter = ExpositionConverter(region="eu", labels={"instance": "h:9100"})
    for n, body in enumerate(scrapes):
        with bounded("parse and convert a scrape"):
            samples, errors = parse_exposition(body)
            series = converter.convert(samples, now_ms=1_764_000_000_000 + n * 15_000)
        assert all(e.startswith("line ") and e.split(":", 1)[1].strip() for e in errors), errors
        for s in series:
            assert s.metric and len(s.values) == len(s.timestamps_ms) == 1
            assert all(v == v and abs(v) != float("inf") for v in s.values)
            if s.kind == metrics_pb2.METRIC_KIND_COUNTER:
                assert s.values[0] >= 0
