"""Series identity: an unambiguous canonical encoding, and names and values that cannot forge one."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import validation
from core.model import SERIES_ID_VERSION, Labels, canonical_labels, canonical_series_bytes, series_id
from core.settings import IngestLimits

LIMITS = IngestLimits()


def test_labels_that_differ_only_in_where_separators_fall_are_different_series() -> None:
    two = canonical_labels({"a": "x", "b": "y"})
    one = canonical_labels({"a": "x\x00b=y"})
    assert series_id("t", "local", "m", two) != series_id("t", "local", "m", one)
    # The same shifts across the fixed fields: tenant/region/metric boundaries.
    assert series_id("t\x00r", "x", "m", ()) != series_id("t", "r\x00x", "m", ())


def _decode(data: bytes) -> tuple[str, str, str, Labels]:
    """Reads the documented format (docs/formats/series-id.md) back, independently of core."""
    domain = b"argus.series.v2\x00"
    assert data.startswith(domain)
    pos = len(domain)
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    texts = []
    for _ in range(3 + 2 * count):
        (size,) = struct.unpack_from(">I", data, pos)
        pos += 4
        texts.append(data[pos : pos + size].decode())
        pos += size
    assert pos == len(data)
    pairs = tuple((texts[i], texts[i + 1]) for i in range(3, len(texts), 2))
    return texts[0], texts[1], texts[2], pairs


ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(["", "=", "\x00", "a=b\x00"])
SERIES = st.tuples(ANY_TEXT, ANY_TEXT, ANY_TEXT, st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=4).map(canonical_labels))


@given(SERIES)
def test_the_canonical_encoding_reads_back_to_the_series_it_encodes(series: tuple[str, str, str, Labels]) -> None:
    # Decodable means injective: two different series cannot share an encoding.
    assert _decode(canonical_series_bytes(*series)) == series


@given(SERIES, SERIES)
def test_distinct_series_have_distinct_encodings(
    a: tuple[str, str, str, Labels], b: tuple[str, str, str, Labels]
) -> None:
    assert (canonical_series_bytes(*a) == canonical_series_bytes(*b)) == (a == b)


def test_series_id_is_the_first_8_bytes_of_sha256_of_the_documented_encoding() -> None:
    assert SERIES_ID_VERSION == 2
    raw = (
        b"argus.series.v2\x00"
        + b"\x00\x00\x00\x01"  # one label
        + b"\x00\x00\x00\x01t"
        + b"\x00\x00\x00\x05local"
        + b"\x00\x00\x00\x03cpu"
        + b"\x00\x00\x00\x04host"
        + b"\x00\x00\x00\x01a"
    )
    expected = int.from_bytes(hashlib.sha256(raw).digest()[:8], "big", signed=True)
    assert series_id("t", "local", "cpu", (("host", "a"),)) == expected


@pytest.mark.parametrize("name", ["metric\n", "metric\r\n", "me\ntric", "metric\x00", "metric "])
def test_a_metric_name_with_a_control_character_or_trailing_newline_is_refused(name: str) -> None:
    assert validation.metric_name_problem(name, LIMITS) is not None


@pytest.mark.parametrize("name", ["host\n", "ho\x00st"])
def test_a_label_name_with_a_control_character_is_refused(name: str) -> None:
    problem = validation.labels_problem([(name, "v")], LIMITS)
    assert problem is not None and "does not match" in problem[0]


def test_a_region_with_a_trailing_newline_is_refused() -> None:
    assert validation.region_problem("eu-west-1\n") is not None
    assert validation.region_problem("eu-west-1") is None


@pytest.mark.parametrize("value", ["x\x00b=y", "line\nbreak", "tab\there", "esc\x1b[31m", "del\x7f", "\x1f"])
def test_a_label_value_with_a_control_character_is_refused_with_its_position(value: str) -> None:
    problem = validation.labels_problem([("host", value)], LIMITS)
    assert problem is not None
    message, too_many = problem
    assert not too_many
    assert "control character" in message and "host" in message


@pytest.mark.parametrize("value", ["x=y", "naïve", "東京", "a b", "emoji 🙂", "back\\slash", "\u0085nel"])
def test_printable_unicode_label_values_are_accepted(value: str) -> None:
    assert validation.labels_problem([("host", value)], LIMITS) is None


def test_a_label_value_that_is_not_utf8_is_refused_not_raised() -> None:
    problem = validation.labels_problem([("host", "bad\udc80")], LIMITS)
    assert problem is not None and "UTF-8" in problem[0]


def test_problems_quote_only_a_bounded_prefix_of_huge_names() -> None:
    huge = "x-" * 500_000
    for problem in (
        validation.metric_name_problem(huge[:150], LIMITS),
        validation.labels_problem([(huge, "v")], LIMITS),
        validation.labels_problem([("host", "v" * 1_000_000)], LIMITS),
        validation.region_problem(huge),
    ):
        assert problem is not None
        text = problem if isinstance(problem, str) else problem[0]
        assert len(text) < 300, text[:300]
