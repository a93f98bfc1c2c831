"""Durations in configuration files (`30s`, `5m`, `1h30m`, `1d`), for the command side.

The query side has its own, wider parser (query_side/timeparse.py: fractions, years); the
command side may not import it, and configuration wants less: whole numbers only.
"""

from __future__ import annotations

import re
from typing import Final

from core.errors import InvalidArgument

UNIT_MS: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION: Final = re.compile(r"(?:\d{1,9}(?:ms|s|m|h|d|w))+")
_PART: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")
FORMS: Final = "a whole number and a unit: ms, s, m, h, d or w (30s, 5m, 1h30m, 1d)"


def parse_duration_ms(text: str, *, parameter: str, allow_zero: bool = False) -> int:
    """Milliseconds of `text`; InvalidArgument naming `parameter` otherwise (0 only when
    `allow_zero`, written `0s` or `0`)."""
    value = text.strip().lower()
    if allow_zero and value == "0":
        return 0
    if not _DURATION.fullmatch(value):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise InvalidArgument(f"{parameter}: cannot parse {shown!r} as a duration; use {FORMS}", parameter=parameter)
    ms = sum(int(number) * UNIT_MS[unit] for number, unit in _PART.findall(value))
    if ms == 0 and not allow_zero:
        raise InvalidArgument(f"{parameter}: duration must be longer than 0", parameter=parameter)
    return ms


def format_duration_ms(ms: int) -> str:
    """Shortest exact form: 5s, 12h, 90m, 1500ms."""
    for unit in ("d", "h", "m", "s"):
        size = UNIT_MS[unit]
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
