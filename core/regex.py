"""Regular expressions from outside input, matched in linear time (RE2 semantics).

Python's `re` backtracks: `(a+)+$` against 30 `a`s and a `b` takes longer than the universe.
Every pattern a user sends (query matchers today, alert rules next) goes through here
instead: RE2 (`google-re2`, the engine Prometheus' matchers use through Go's regexp) runs in
time linear in the input, and rejects what it cannot do in linear time (backreferences,
lookaround) at compile time. Patterns are bounded in length and in compiled size.
"""

from __future__ import annotations

from dataclasses import dataclass

import re2

from core.errors import InvalidArgument

MAX_PATTERN_CHARS = 1_024
"""Longest pattern accepted (Prometheus has no limit; a label matcher needs far less)."""
MAX_PROGRAM_BYTES = 1 << 20
"""RE2's memory for one compiled pattern; a pattern that needs more fails to compile."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a bad pattern is the caller's error, not a log line
    options.never_capture = True  # only "does it match" is asked: no submatch bookkeeping
    options.max_mem = MAX_PROGRAM_BYTES
    return options


_OPTIONS = _options()


@dataclass(frozen=True, slots=True)
class FullMatchRegex:
    """A compiled pattern matched against a whole string (anchored at both ends, as a
    Prometheus label matcher is). Thread-safe: RE2 objects may be shared."""

    pattern: str
    _compiled: re2._Regexp

    def matches(self, text: str) -> bool:
        return self._compiled.fullmatch(text) is not None


def compile_full_match(pattern: str, *, parameter: str, what: str = "") -> FullMatchRegex:
    """Compile `pattern` with RE2 syntax. Raises InvalidArgument naming `parameter` for a
    pattern over MAX_PATTERN_CHARS, a syntax RE2 rejects (e.g. `(?=...)`, `\\1`) or one whose
    program exceeds MAX_PROGRAM_BYTES. `what` (e.g. "for label host") goes into the message."""
    suffix = f" {what}" if what else ""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidArgument(
            f"{parameter}: regular expression{suffix} is {len(pattern):,} characters long, "
            f"over the limit of {MAX_PATTERN_CHARS:,}",
            parameter=parameter,
        )
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise InvalidArgument(
            f"{parameter}: bad regular expression {pattern[:100]!r}{suffix}: {reason} "
            "(RE2 syntax: no backreferences or lookaround)",
            parameter=parameter,
        ) from None
    return FullMatchRegex(pattern, compiled)
