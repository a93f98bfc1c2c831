from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidArgument
from query_side.timeparse import format_duration, format_ms, parse_duration, parse_range, parse_time

NOW_MS = 1_764_064_800_000  # 2025-11-25T10:00:00Z
SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def utc_ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T10:00:00Z", utc_ms(2026, 11, 25, 10)),
        ("2026-11-25t10:00:00z", utc_ms(2026, 11, 25, 10)),
        ("2026-11-25T12:00:00+02:00", utc_ms(2026, 11, 25, 10)),
        ("2026-11-25T05:30:00-04:30", utc_ms(2026, 11, 25, 10)),
        ("2026-11-25T10:00:00.250Z", utc_ms(2026, 11, 25, 10) + 250),
        ("2026-11-25 10:00:00Z", utc_ms(2026, 11, 25, 10)),
        ("2026-11-25", utc_ms(2026, 11, 25)),
    ],
)
def test_rfc3339_times_are_read_in_their_offset(text: str, expected: int) -> None:
    assert parse_time(text, now_ms=NOW_MS, parameter="start") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1764064800", 1_764_064_800_000),
        ("1764064800.5", 1_764_064_800_500),
        ("1764064800123", 1_764_064_800_123),
        ("0", 0),
        (" 1764064800 ", 1_764_064_800_000),
    ],
)
def test_epoch_numbers_are_seconds_unless_they_have_thirteen_digits(text: str, expected: int) -> None:
    assert parse_time(text, now_ms=NOW_MS, parameter="start") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW_MS),
        ("NOW", NOW_MS),
        ("-12h", NOW_MS - 12 * HOUR),
        ("-30m", NOW_MS - 30 * MINUTE),
        ("-7d", NOW_MS - 7 * DAY),
        ("now-1h", NOW_MS - HOUR),
        ("now - 1h30m", NOW_MS - 90 * MINUTE),
        ("now+5m", NOW_MS + 5 * MINUTE),
        ("-1w", NOW_MS - 7 * DAY),
    ],
)
def test_relative_times_count_from_the_injected_now(text: str, expected: int) -> None:
    assert parse_time(text, now_ms=NOW_MS, parameter="start") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5s", 5 * SECOND),
        ("12h", 12 * HOUR),
        ("7d", 7 * DAY),
        ("1h30m", 90 * MINUTE),
        ("250ms", 250),
        ("1.5h", 90 * MINUTE),
        ("2w", 14 * DAY),
        ("1y", 365 * DAY),
        (" 10M ", 10 * MINUTE),
    ],
)
def test_durations(text: str, expected: int) -> None:
    assert parse_duration(text, parameter="since") == expected


@pytest.mark.parametrize("text", ["", "yesterday", "12h", "h", "-5", "now-", "now-x", "2026-13-01T00:00:00Z", "1e9"])
def test_unparseable_time_names_the_parameter_and_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_time(text, now_ms=NOW_MS, parameter="end")
    assert info.value.parameter == "end"
    message = str(info.value)
    assert message.startswith("end:")
    if text.strip() not in ("-5", "now-", "now-x"):
        assert "RFC 3339" in message


def test_unparseable_relative_time_lists_the_accepted_forms() -> None:
    with pytest.raises(InvalidArgument, match=r"now-30m") as info:
        parse_time("now-x", now_ms=NOW_MS, parameter="start")
    assert info.value.parameter == "start"


def test_datetime_without_offset_is_rejected_not_guessed() -> None:
    with pytest.raises(InvalidArgument, match="no UTC offset") as info:
        parse_time("2026-11-25T10:00:00", now_ms=NOW_MS, parameter="start")
    assert info.value.parameter == "start"


@pytest.mark.parametrize("text", ["", "12", "0s", "5x", "-5m", "h5", "1h 30m"])
def test_bad_durations_name_the_parameter(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_duration(text, parameter="since")
    assert info.value.parameter == "since"
    assert str(info.value).startswith("since:")


def test_range_defaults_to_the_last_hour() -> None:
    assert parse_range(None, None, now_ms=NOW_MS) == (NOW_MS - HOUR, NOW_MS)
    assert parse_range("", "", now_ms=NOW_MS) == (NOW_MS - HOUR, NOW_MS)


def test_range_default_start_is_relative_to_an_explicit_end() -> None:
    assert parse_range(None, "-1d", now_ms=NOW_MS) == (NOW_MS - DAY - HOUR, NOW_MS - DAY)


def test_reversed_range_is_blamed_on_start() -> None:
    with pytest.raises(InvalidArgument, match="must be before end") as info:
        parse_range("now", "-1h", now_ms=NOW_MS)
    assert info.value.parameter == "start"


def test_bad_end_is_blamed_on_end() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_range("-1h", "soon", now_ms=NOW_MS)
    assert info.value.parameter == "end"


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_formatted_times_parse_back_to_the_same_millisecond(ms: int) -> None:
    assert parse_time(format_ms(ms), now_ms=NOW_MS, parameter="start") == ms


@given(st.integers(min_value=1, max_value=10 * 365 * DAY))
def test_formatted_durations_parse_back(ms: int) -> None:
    assert parse_duration(format_duration(ms), parameter="since") == ms
