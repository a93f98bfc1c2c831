"""Naming rules for metrics, labels and regions, shared by the agent and ingest.

Patterns are matched whole (`fullmatch`: `$` would also match before a trailing newline).
Label values may hold any UTF-8 except control characters (C0, tab included, and DEL): they
reach logs, terminals, CSV and the query language, where a newline, a tab or an escape
sequence would be read as structure. Every problem message quotes at most a bounded prefix
of what was sent, so a hostile megabyte-long name does not come back in every answer.
"""

from __future__ import annotations

import re

from core.settings import IngestLimits

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:.]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
REGION = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
# "region" is part of a series' identity in its own field; as a label it would be ambiguous.
RESERVED_LABELS = frozenset({"region"})
# C0 controls (tab, newline and NUL included) and DEL.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
QUOTED_CHARS = 40
"""At most this many characters of a rejected string are quoted back in a message."""


def quoted(text: str, limit: int = QUOTED_CHARS) -> str:
    """`text` as repr, cut to `limit` characters (with the full length) when longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} chars)"


def text_problem(what: str, text: str) -> str | None:
    """Why `text` may not be stored as `what` (control characters, not UTF-8), or None."""
    found = CONTROL.search(text)
    if found:
        return f"{what} {quoted(text)} holds control character {found.group()!r} at {found.start()}"
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        return f"{what} {quoted(text)} is not valid UTF-8 ({exc.reason} at {exc.start})"
    return None


def metric_name_problem(name: str, limits: IngestLimits) -> str | None:
    if not name:
        return "metric name is empty"
    if len(name) > limits.max_metric_name_chars:
        return f"metric name {quoted(name)} is {len(name)} chars, more than {limits.max_metric_name_chars}"
    if not METRIC_NAME.fullmatch(name):
        return f"metric name {quoted(name)} does not match [a-zA-Z_:][a-zA-Z0-9_:.]*"
    return None


def labels_problem(labels: list[tuple[str, str]], limits: IngestLimits) -> tuple[str, bool] | None:
    """(message, too_many) for the first problem in a label set, or None."""
    if len(labels) > limits.max_labels:
        return f"{len(labels)} labels, more than {limits.max_labels}", True
    seen: set[str] = set()
    for name, value in labels:
        if len(name) > limits.max_label_name_chars:
            return f"label name {quoted(name)} is {len(name)} chars, more than {limits.max_label_name_chars}", False
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            return (
                f"label name {quoted(name)} does not match [a-zA-Z_][a-zA-Z0-9_]* (and may not start with __)",
                False,
            )
        if name in RESERVED_LABELS:
            return f"label name {name!r} is reserved: set the series' region field instead", False
        if name in seen:
            return f"label {name!r} appears twice", False
        seen.add(name)
        if not value:
            return f"label {name!r} has an empty value", False
        if len(value) > limits.max_label_value_bytes:  # chars <= bytes: no need to encode a huge value
            size = len(value)
            return f"label {name!r} value is at least {size} bytes, more than {limits.max_label_value_bytes}", False
        problem = text_problem(f"label {name!r} value", value)
        if problem:
            return problem, False
        size = len(value.encode())
        if size > limits.max_label_value_bytes:
            return f"label {name!r} value is {size} bytes, more than {limits.max_label_value_bytes}", False
    return None


def region_problem(region: str) -> str | None:
    if not REGION.fullmatch(region):
        return f"region {quoted(region, 70)} does not match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,63}}"
    return None
