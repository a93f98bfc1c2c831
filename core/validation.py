"""Naming rules for metrics, labels and regions, shared by the agent and ingest."""

from __future__ import annotations

import re

from core.settings import IngestLimits

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
REGION = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
# "region" is part of a series' identity in its own field; as a label it would be ambiguous.
RESERVED_LABELS = frozenset({"region"})


def metric_name_problem(name: str, limits: IngestLimits) -> str | None:
    if not name:
        return "metric name is empty"
    if len(name) > limits.max_metric_name_chars:
        return f"metric name {name[:40]!r}... is {len(name)} chars, more than {limits.max_metric_name_chars}"
    if not METRIC_NAME.match(name):
        return f"metric name {name!r} does not match [a-zA-Z_:][a-zA-Z0-9_:.]*"
    return None


def labels_problem(labels: list[tuple[str, str]], limits: IngestLimits) -> tuple[str, bool] | None:
    """(message, too_many) for the first problem in a label set, or None."""
    if len(labels) > limits.max_labels:
        return f"{len(labels)} labels, more than {limits.max_labels}", True
    seen: set[str] = set()
    for name, value in labels:
        if not LABEL_NAME.match(name) or name.startswith("__"):
            return f"label name {name!r} does not match [a-zA-Z_][a-zA-Z0-9_]* (and may not start with __)", False
        if name in RESERVED_LABELS:
            return f"label name {name!r} is reserved: set the series' region field instead", False
        if name in seen:
            return f"label {name!r} appears twice", False
        seen.add(name)
        if not value:
            return f"label {name!r} has an empty value", False
        size = len(value.encode())
        if size > limits.max_label_value_bytes:
            return f"label {name!r} value is {size} bytes, more than {limits.max_label_value_bytes}", False
    return None


def region_problem(region: str) -> str | None:
    if not REGION.match(region):
        return f"region {region[:70]!r} does not match [a-zA-Z0-9][a-zA-Z0-9_.-]{{0,63}}"
    return None
