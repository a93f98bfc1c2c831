"""PromQL values as the evaluator holds them: every node is evaluated at all steps at once.

An instant vector is a list of series, each with one value per evaluation step (NaN where
the series has no sample at that step); a scalar is one value per step; a range vector is
the raw samples of each series plus the window bounds of every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.model import MetricKind

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

Labels = tuple[tuple[str, str], ...]
"""Sorted (name, value) pairs, `__name__` included when the series still has its name."""

NAME = "__name__"


def labels_of(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in mapping.items() if v != ""))


def drop_name(labels: Labels) -> Labels:
    return tuple(kv for kv in labels if kv[0] != NAME)


@dataclass(slots=True)
class Series:
    labels: Labels
    values: F64
    sample_ts: F64 | None = None
    """Timestamps (s) of the samples behind `values`, for timestamp() of a selector."""


@dataclass(slots=True)
class Vector:
    series: list[Series]
    ordered: bool = False
    """True after sort()/sort_desc(): an instant answer keeps this order."""


@dataclass(slots=True)
class Scalar:
    values: F64


@dataclass(slots=True)
class String:
    value: str


@dataclass(slots=True)
class RangeSeries:
    labels: Labels
    kind: MetricKind
    ts: I64
    values: F64
    deltas: F64 | None = None
    fields: dict[str, F64] = field(default_factory=dict)


@dataclass(slots=True)
class Matrix:
    """Samples per series, and for each step the window `[eff - range_ms, eff]` it reads."""

    series: list[RangeSeries]
    range_ms: int
    eff: I64
    """Each step's evaluation time after offset and @."""


Value = Vector | Scalar | String | Matrix


def type_name(value: Value) -> str:
    return {Vector: "instant vector", Scalar: "scalar", String: "string", Matrix: "range vector"}[type(value)]
