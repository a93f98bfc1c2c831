"""Fuzz the StatsD / DogStatsD parser (agent/statsd.py): a datagram never raises, every
malformed line is counted with a reason, and what parses formats back to itself."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.statsd import StatsdParseError, format_line, parse_line, parse_packet
from tests.fuzz.bounds import assert_reasoned, bounded, fuzz

NAMES = st.one_of(
    st.sampled_from([b"cpu", b"a.b_c", b"x" * 250, b"", b"1x", b"cpu\x00", b"caf\xc3\xa9"]), st.binary(max_size=12)
)
VALUES = st.one_of(
    st.sampled_from(
        [b"1", b"-1", b"1.5", b"nan", b"inf", b"-inf", b"1e309", b"0x10", b"1_000", b"", b"1:2:3", b"\xff"]
    ),
    st.floats(allow_nan=True).map(lambda f: repr(f).encode()),
    st.integers(-(10**30), 10**30).map(lambda i: str(i).encode()),
)
TYPES = st.sampled_from([b"c", b"g", b"ms", b"h", b"d", b"s", b"x", b"", b"C"])
SECTIONS = st.lists(
    st.one_of(
        st.sampled_from(
            [b"@0.5", b"@0", b"@2", b"@nan", b"@", b"#", b"#a:b", b"#a", b"#a:b,c:d", b"#a:b,a:c", b"c:123", b"T1"]
        ),
        st.binary(max_size=10).map(lambda b: b"#" + b),
        st.binary(max_size=10).map(lambda b: b"@" + b),
    ),
    max_size=4,
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    line = draw(NAMES) + b":" + draw(VALUES) + b"|" + draw(TYPES)
    for section in draw(SECTIONS):
        line += b"|" + section
    return line


def check_packet(packet: bytes) -> None:
    errors: list[str] = []
    with bounded("parse a StatsD packet"):
        metrics, bad = parse_packet(packet, errors=errors)
    assert bad == len(errors)
    assert all(e.strip() for e in errors), errors
    assert len(metrics) + bad <= packet.count(b"\n") + 1 + packet.count(b":")


@fuzz()
@given(packet=st.binary(max_size=600))
def test_random_datagrams_never_raise(packet: bytes) -> None:
    check_packet(packet)


@fuzz(scale=1.5)
@given(packet=st.lists(st.one_of(lines(), st.binary(max_size=20)), max_size=8).map(b"\n".join))
def test_dogstatsd_like_datagrams_never_raise(packet: bytes) -> None:
    check_packet(packet)


@fuzz(scale=1.5)
@given(line=lines())
def test_a_line_parses_and_round_trips_or_is_refused_with_a_reason(line: bytes) -> None:
    try:
        with bounded("parse a StatsD line"):
            metric = parse_line(line)
    except StatsdParseError as exc:
        assert_reasoned(exc, StatsdParseError)
        return
    try:
        text = format_line(metric)
    except ValueError as exc:  # what the line format cannot carry (documented)
        assert_reasoned(exc, ValueError)
        return
    assert parse_line(text) == metric
