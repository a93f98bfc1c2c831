"""The StatsD / DogStatsD line format: parsing, rejection reasons, format -> parse round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.statsd import StatsdMetric, StatsdParseError, format_line, parse_line, parse_packet
from core.model import MetricKind


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"hits:1|c", StatsdMetric("hits", MetricKind.COUNTER, 1.0, ())),
        (b"hits:2.5|c|@0.1", StatsdMetric("hits", MetricKind.COUNTER, 2.5, (), 0.1)),
        (b"temp:-3|g", StatsdMetric("temp", MetricKind.GAUGE, -3.0, ())),
        (b"temp:+3|g", StatsdMetric("temp", MetricKind.GAUGE, 3.0, ())),
        (
            b"lat:12.5|ms|#route:/a,env:prod",
            StatsdMetric("lat", MetricKind.TIMER, 12.5, (("env", "prod"), ("route", "/a"))),
        ),
        (b"lat:1|h", StatsdMetric("lat", MetricKind.TIMER, 1.0, ())),
        (b"lat:1|d|#a:b|@0.5", StatsdMetric("lat", MetricKind.TIMER, 1.0, (("a", "b"),), 0.5)),
        (b"users:alice:x|s", StatsdMetric("users", MetricKind.DISTINCT, "alice:x", ())),
        (b"api.requests:1|c|c:abc123|T1700000000", StatsdMetric("api.requests", MetricKind.COUNTER, 1.0, ())),
        (
            b"hits:1|c|#url:http://x:8080/p",
            StatsdMetric("hits", MetricKind.COUNTER, 1.0, (("url", "http://x:8080/p"),)),
        ),
        (b"hits:1|c\r", StatsdMetric("hits", MetricKind.COUNTER, 1.0, ())),
    ],
)
def test_valid_lines_parse(line: bytes, expected: StatsdMetric) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"hits", "no ':'"),
        (b"hits:1", "no '|<type>'"),
        (b"hits:1|x", "unknown type"),
        (b"hits:abc|c", "not a number"),
        (b"hits:nan|g", "NaN"),
        (b"hits:inf|ms", "NaN or infinite"),
        (b"hits:-1|c", "negative"),
        (b"hits:1|c|@0", "sample rate"),
        (b"hits:1|c|@1.5", "sample rate"),
        (b"9hits:1|c", "does not match"),
        (b"my-app.hits:1|c", "does not match"),
        (b"hits:1|c|#production", "has no value"),
        (b"hits:1|c|#bad-name:x", "label name 'bad-name'"),
        (b"hits:1|c|#region:eu", "reserved"),
        (b"hits:1|c|#a:", "empty value"),
        (b"hits:1|c|#a:1,a:2", "appears twice"),
        (b"users:|s", "empty set value"),
        (b"_e{5,4}:title|text", "events"),
        (b"lat:1:2|ms", "parse_packet"),
        (b"x:" + b"1" * 9000 + b"|g", "more than"),
    ],
)
def test_bad_lines_are_rejected_with_a_reason(line: bytes, needle: str) -> None:
    with pytest.raises(StatsdParseError) as info:
        parse_line(line)
    assert needle in str(info.value)


def test_one_bad_line_never_affects_the_others() -> None:
    errors: list[str] = []
    metrics, bad = parse_packet(b"a:1|c\nbad line\n\nb:2|g\r\nc:1:2:3|ms|#k:v\nd:-1|c\n", errors=errors)
    assert bad == 2
    assert len(errors) == 2
    assert [(m.name, m.value) for m in metrics] == [("a", 1.0), ("b", 2.0), ("c", 1.0), ("c", 2.0), ("c", 3.0)]
    assert metrics[-1].labels == (("k", "v"),)


def test_cached_identity_still_rejects_every_time() -> None:
    for _ in range(3):
        with pytest.raises(StatsdParseError, match="has no value"):
            parse_line(b"hits:1|c|#production")


def test_format_rejects_what_cannot_travel() -> None:
    with pytest.raises(ValueError, match="cannot travel"):
        format_line(StatsdMetric("a:b", MetricKind.COUNTER, 1.0, ()))
    with pytest.raises(ValueError, match=r"'\|', ','"):
        format_line(StatsdMetric("a", MetricKind.COUNTER, 1.0, (("k", "x,y"),)))
    with pytest.raises(ValueError, match="NaN"):
        format_line(StatsdMetric("a", MetricKind.GAUGE, float("nan"), ()))


_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_.]{0,30}", fullmatch=True)
_label_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(lambda n: n != "region")
# Control characters (Cc) are refused in label values (core/validation.py).
_label_values = st.text(
    alphabet=st.characters(exclude_characters="|,\n\r", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=20
)
_finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def metrics(draw: st.DrawFn) -> StatsdMetric:
    kind = draw(st.sampled_from(list(MetricKind)))
    value: float | str
    if kind is MetricKind.DISTINCT:
        value = draw(st.text(alphabet=st.characters(exclude_characters="|\n\r", exclude_categories=["Cs"]), min_size=1))
    elif kind is MetricKind.COUNTER:
        value = draw(st.floats(min_value=0, allow_infinity=False))
    else:
        value = draw(_finite)
    labels = draw(st.dictionaries(_label_names, _label_values, max_size=5))
    rate = draw(st.sampled_from([1.0, 0.5, 0.1, 0.001]))
    return StatsdMetric(draw(_names), kind, value, tuple(sorted(labels.items())), rate)


@given(metrics())
def test_format_then_parse_is_identity(metric: StatsdMetric) -> None:
    parsed = parse_line(format_line(metric))
    assert parsed == metric
    if isinstance(metric.value, float):
        assert str(parsed.value) == str(metric.value)  # -0.0 stays -0.0


@given(st.binary(max_size=300))
def test_garbage_never_raises_anything_but_a_parse_error(data: bytes) -> None:
    metrics_, bad = parse_packet(data)
    assert bad + len(metrics_) >= 0


def test_rejected_identities_are_not_cached_and_the_cache_is_bounded_by_bytes() -> None:
    from agent import statsd

    statsd._identity_cache.clear()
    statsd._identity_cache_bytes = 0
    for i in range(200):
        with pytest.raises(StatsdParseError):
            parse_line(b"bad name %d:1|c" % i)
    assert statsd._identity_cache == {}
    tags = b",".join(b"t%d:%s" % (n, b"x" * 250) for n in range(16))
    for i in range(3000):
        parse_line(b"m%d:1|c|#%s" % (i, tags))
    assert 0 < statsd._identity_cache_bytes <= statsd._CACHE_MAX_BYTES
    assert len(statsd._identity_cache) < 3000
