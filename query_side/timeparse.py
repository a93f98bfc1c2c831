"""Times and durations as users type them: RFC 3339, epoch numbers, relative offsets.

Every parser is pure: "now" is the `now_ms` argument, never the wall clock. Errors are
`InvalidArgument` naming the parameter and listing the accepted forms.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime

from core.errors import InvalidArgument
from core.model import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS

_UNIT_MS: dict[str, int] = {
    "ms": 1,
    "s": SECOND_MS,
    "m": MINUTE_MS,
    "h": HOUR_MS,
    "d": DAY_MS,
    "w": 7 * DAY_MS,
    "y": 365 * DAY_MS,
}

# One or more <number><unit> parts, e.g. "90s", "1h30m", "1.5h". "ms" must be tried before "m".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))+")
_RELATIVE = re.compile(r"(?:now)?\s*([+-])\s*(\S+)")
_EPOCH = re.compile(r"\d+(?:\.\d+)?")

# Epoch values at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
_EPOCH_MS_THRESHOLD = 100_000_000_000

TIME_FORMS = (
    "RFC 3339 (2026-11-25T10:00:00Z, 2026-11-25T12:00:00+02:00, 2026-11-25), "
    "epoch seconds (1764064800 or 1764064800.5), epoch milliseconds (1764064800000), "
    "or relative to now (now, -12h, now-30m, now-1h30m)"
)
# What `datetime` can show (years 1 to 9999); durations up to 10,000 years keep now +- them in int64.
_MIN_TIME_MS = -62_135_596_800_000
_MAX_TIME_MS = 253_402_300_799_999
_MAX_DURATION_MS = 10_000 * 365 * DAY_MS
DURATION_FORMS = "a number and a unit: ms, s, m, h, d, w or y (5s, 90s, 12h, 1h30m, 7d)"


def parse_duration(text: str, *, parameter: str) -> int:
    """Milliseconds of a positive duration such as `5s`, `12h`, `1h30m` or `7d`.

    A year (`y`) is 365 days. Raises InvalidArgument (naming `parameter`) for anything else,
    zero included.
    """
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise InvalidArgument(
            f"{parameter}: cannot parse {text!r} as a duration; use {DURATION_FORMS}",
            parameter=parameter,
        )
    total = sum(float(number) * _UNIT_MS[unit] for number, unit in _DURATION_PART.findall(value))
    if not total < _MAX_DURATION_MS:  # also NaN/inf from 400 nines (found by tests/fuzz)
        raise InvalidArgument(f"{parameter}: duration {text[:40]!r} is longer than 10,000 years", parameter=parameter)
    ms = round(total)
    if ms <= 0:
        raise InvalidArgument(f"{parameter}: duration {text!r} must be longer than 0", parameter=parameter)
    return ms


def parse_time(text: str, *, now_ms: int, parameter: str) -> int:
    """Milliseconds since the Unix epoch of an absolute or relative time.

    Accepted: RFC 3339 with `Z` or an offset (a bare date is midnight UTC), epoch seconds
    (integer or fractional), epoch milliseconds (13 digits), `now`, `-<duration>` and
    `now-<duration>` / `now+<duration>`. A date-time without an offset is rejected rather
    than guessed.
    """
    value = text.strip()
    if not value:
        raise InvalidArgument(f"{parameter}: empty time; use {TIME_FORMS}", parameter=parameter)
    lowered = value.lower()
    if lowered == "now":
        return now_ms
    relative = _RELATIVE.fullmatch(lowered)
    if relative is not None:
        sign, duration = relative.groups()
        try:
            offset = parse_duration(duration, parameter=parameter)
        except InvalidArgument:
            raise InvalidArgument(
                f"{parameter}: cannot parse {text!r} as a relative time; use {TIME_FORMS}",
                parameter=parameter,
            ) from None
        ms = now_ms - offset if sign == "-" else now_ms + offset
    elif _EPOCH.fullmatch(value):
        ms = _parse_epoch(value, parameter=parameter)
    else:
        return _parse_rfc3339(value, parameter=parameter)
    if not _MIN_TIME_MS <= ms <= _MAX_TIME_MS:  # found by tests/fuzz
        raise InvalidArgument(
            f"{parameter}: {text[:40]!r} is outside the years 1 to 9999; use {TIME_FORMS}", parameter=parameter
        )
    return ms


def _parse_epoch(value: str, *, parameter: str) -> int:
    number = float(value)
    if not math.isfinite(number):
        raise InvalidArgument(f"{parameter}: {value!r} is not a finite number", parameter=parameter)
    if number >= _EPOCH_MS_THRESHOLD:
        return int(value) if value.isdigit() else round(number)
    if value.isdigit():
        return int(value) * SECOND_MS
    return round(number * SECOND_MS)


def _parse_rfc3339(value: str, *, parameter: str) -> int:
    # fromisoformat (3.11) takes "Z", offsets, fractions and a space for "T"; it also takes
    # forms RFC 3339 does not (week dates...), which are harmless to accept.
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise InvalidArgument(
            f"{parameter}: cannot parse {value!r} as a time; use {TIME_FORMS}", parameter=parameter
        ) from None
    if parsed.tzinfo is None:
        if _is_bare_date(value):
            parsed = parsed.replace(tzinfo=UTC)
        else:
            raise InvalidArgument(
                f"{parameter}: {value!r} has no UTC offset; add 'Z' or an offset such as '+02:00'",
                parameter=parameter,
            )
    # timestamp() is float seconds; going through timedelta keeps microseconds exact.
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * SECOND_MS + delta.microseconds // 1000


def _is_bare_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def parse_range(
    start: str | None,
    end: str | None,
    *,
    now_ms: int,
    default_range_ms: int = HOUR_MS,
) -> tuple[int, int]:
    """`[start_ms, end_ms)` from user text; defaults: end = now, start = end - 1 h.

    Raises InvalidArgument naming `start` when the range is empty or reversed.
    """
    end_ms = now_ms if end is None or not end.strip() else parse_time(end, now_ms=now_ms, parameter="end")
    if start is None or not start.strip():
        start_ms = end_ms - default_range_ms
    else:
        start_ms = parse_time(start, now_ms=now_ms, parameter="start")
    if start_ms >= end_ms:
        raise InvalidArgument(
            f"start ({format_ms(start_ms)}) must be before end ({format_ms(end_ms)})", parameter="start"
        )
    return start_ms, end_ms


def format_ms(ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision, for messages."""
    seconds, millis = divmod(ms, 1000)
    try:
        text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def format_duration(ms: int) -> str:
    """Shortest exact form of a duration: 5s, 12h, 35d, 90m, 1500ms."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms % size == 0 and ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
