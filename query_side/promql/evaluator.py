"""PromQL evaluation over Argus's read models (docs/promql.md).

`evaluate` parses with `promql-parser` (the full language, typed tree), picks one tier for
the whole expression from the step and the shortest range, then evaluates every node at all
steps at once (numpy arrays of steps), reading selectors through `SeriesReader`. Anything
not supported raises InvalidArgument naming the construct. Bounds: query length, nesting
depth, steps per series, samples held at once (series x steps of any node), the engine's
own limits on every read, and the caller's deadline.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import promql_parser as pp

from core.errors import InvalidArgument, ResourceExhausted
from core.model import MetricKind, Tier
from core.regex import compile_full_match
from query_side.engine import QueryEngine
from query_side.planner import Matcher, MatchOp, QuerySpec
from query_side.promql import kernels as k
from query_side.promql.storage import DELTAS_ONLY, SeriesReader, prom_name
from query_side.promql.values import (
    F64,
    I64,
    NAME,
    Labels,
    Matrix,
    RangeSeries,
    Scalar,
    Series,
    String,
    Value,
    Vector,
    drop_name,
    labels_of,
    type_name,
)

LOOKBACK_MS = 5 * 60_000
MAX_QUERY_CHARS = 16_384
MAX_DEPTH = 64
"""Deepest bracket nesting of the query text."""
MAX_TREE_DEPTH = 200
"""Deepest expression tree (`a + b + ... ` of 200 terms is 200 deep); bounds the recursion."""
MAX_STEPS = 11_000
"""Most steps of a range query (Prometheus's own limit)."""
DEFAULT_MAX_SAMPLES = 5_000_000
"""Most values any node may hold at once (series x steps), like Prometheus's max samples."""

MAX_WINDOW_SAMPLES = 50_000_000
"""Most samples deriv/predict_linear/holt_winters may visit (summed over every window of
every step), like Prometheus's --query.max-samples: their work is per window, not per step."""

SUBQUERY_DEFAULT_STEP_MS = 60_000
"""`m[5m:]` steps by Prometheus's default evaluation interval (1 m), whatever the query step."""

ARGUS_QUANTILE = "argus_quantile"

with contextlib.suppress(ValueError):  # already registered in this process
    pp.register_extra_functions(
        [
            pp.Function(
                ARGUS_QUANTILE,
                [pp.ValueType.Scalar, pp.ValueType.Matrix, pp.ValueType.String],
                pp.ValueType.Vector,
                variadic=-1,
            )
        ]
    )
with contextlib.suppress(ValueError):
    # Prometheus 2.x's name; the parser knows only the 3.x one (double_exponential_smoothing).
    pp.register_extra_functions(
        [
            pp.Function(
                "holt_winters",
                [pp.ValueType.Matrix, pp.ValueType.Scalar, pp.ValueType.Scalar],
                pp.ValueType.Vector,
            )
        ]
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PromQuery:
    tenant: str
    query: str
    start_ms: int
    end_ms: int
    step_ms: int
    """0 for an instant query (start == end)."""
    max_samples: int = DEFAULT_MAX_SAMPLES


@dataclass(slots=True)
class PromResult:
    value: Value
    times_ms: I64
    tier: str
    warnings: list[str] = field(default_factory=list)
    series_read: int = 0
    points_read: int = 0
    elapsed_ms: float = 0.0


def _err(message: str) -> InvalidArgument:
    return InvalidArgument(message, parameter="query")


def parse(query: str) -> Any:
    if len(query) > MAX_QUERY_CHARS:
        raise _err(f"query is {len(query):,} characters long, over the limit of {MAX_QUERY_CHARS:,}")
    if not query.strip():
        raise _err("query is empty")
    # The parser recurses per nesting level: refuse absurd nesting before it does.
    depth = level = 0
    for ch in query:
        if ch in "([{":
            level += 1
            depth = max(depth, level)
        elif ch in ")]}":
            level -= 1
    if depth > MAX_DEPTH:
        raise _err(f"expression nests {depth} levels deep, over the limit of {MAX_DEPTH}")
    try:
        return pp.parse(query)
    except (ValueError, TypeError) as exc:
        raise _err(f"cannot parse PromQL: {exc}") from None


def _children(node: Any) -> list[Any]:
    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, pp.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr):
        return [node.expr]
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    return []


def walk(expr: Any, visit: Callable[[Any], None]) -> None:
    """Visit every node, refusing a tree deeper than MAX_TREE_DEPTH (iterative, and it stops
    descending at the limit: the parser's own walk takes quadratic time on deep trees)."""
    stack = [(expr, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise _err(f"expression is deeper than {MAX_TREE_DEPTH} levels of operators and functions")
        visit(node)
        stack.extend((child, depth + 1) for child in _children(node))


def _ranges(expr: Any) -> list[int]:
    found: list[int] = []

    def visit(node: Any) -> None:
        if isinstance(node, pp.MatrixSelector | pp.SubqueryExpr) and node.range is not None:
            found.append(_ms(node.range))

    walk(expr, visit)
    return found


def _ms(delta: timedelta) -> int:
    return delta // timedelta(milliseconds=1)


def choose_tier(tiers: Sequence[Tier], *, step_ms: int, ranges: Sequence[int], oldest_ms: int, now_ms: int) -> Tier:
    """The coarsest tier whose step is at most the query's resolution, among the tiers whose
    retention reaches `oldest_ms` (else the finest of those). Resolution: a range query's
    step; an instant query's shortest range window / 60 (0 without one: the finest tier).
    A 30-day range at 1 h steps reads the 1h tier."""
    ordered = sorted(tiers, key=lambda t: t.step_ms)
    covering = [t for t in ordered if now_ms - t.retention_ms <= oldest_ms] or [ordered[-1]]
    resolution = step_ms if step_ms else (min(ranges) // 60 if ranges else 0)
    fitting = [t for t in covering if t.step_ms <= resolution]
    return fitting[-1] if fitting else covering[0]


async def evaluate(engine: QueryEngine, q: PromQuery, *, now_ms: int) -> PromResult:
    started = time.perf_counter()
    # Parsing 16 KiB of pathological text takes up to a second: long texts parse on a worker.
    expr = await engine.offload(parse, q.query, work=len(q.query) * 10)
    if q.step_ms < 0 or (q.step_ms == 0 and q.start_ms != q.end_ms):
        raise InvalidArgument("step: must be a positive duration", parameter="step")
    if q.end_ms < q.start_ms:
        raise InvalidArgument("end: must not be before start", parameter="end")
    steps = 1 if q.step_ms == 0 else (q.end_ms - q.start_ms) // q.step_ms + 1
    if steps > MAX_STEPS:
        raise InvalidArgument(
            f"step: {steps:,} points per series, over the limit of {MAX_STEPS:,}; use a larger step",
            parameter="step",
        )
    times = q.start_ms + np.arange(steps, dtype=np.int64) * max(q.step_ms, 1)
    ranges = _ranges(expr)
    longest = max(ranges, default=0) + LOOKBACK_MS
    tier = choose_tier(engine.tiers, step_ms=q.step_ms, ranges=ranges, oldest_ms=q.start_ms - longest, now_ms=now_ms)
    base = min(t.step_ms for t in engine.tiers)
    reader = SeriesReader(engine, tenant=q.tenant, tier=tier, base_step_ms=base, max_points=q.max_samples)
    ev = _Evaluator(reader, q, engine, base)
    value = await ev.eval(expr, times, 0)
    if isinstance(value, Vector):
        value = Vector(_dedupe(value.series), ordered=value.ordered)
    warnings = [f"argus: answered from the {tier.name} tier (step {tier.step_ms // 1000} s)", *ev.warnings]
    return PromResult(
        value=value,
        times_ms=times,
        tier=tier.name,
        warnings=warnings,
        series_read=reader.stats.series,
        points_read=reader.stats.points_read,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


_MATCH_OPS = {
    "=": MatchOp.EQUAL,
    "!=": MatchOp.NOT_EQUAL,
    "=~": MatchOp.REGEX,
    "!~": MatchOp.NOT_REGEX,
}
_PP_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}

_FIELDS_FOR = {
    "rate": (DELTAS_ONLY,),
    "increase": (DELTAS_ONLY,),
    "sum_over_time": ("sum",),
    "count_over_time": ("count",),
    "avg_over_time": ("sum", "count"),
    "min_over_time": ("min",),
    "max_over_time": ("max",),
}

_MATH: dict[str, Callable[[F64], F64]] = {
    "abs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "exp": np.exp,
    "ln": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sqrt": np.sqrt,
    "sgn": np.sign,
    "deg": np.degrees,
    "rad": np.radians,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
}

_DATE = {"day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year"}

_RANGE_FUNCS = {
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "present_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "absent_over_time",
    "deriv",
    "predict_linear",
    "holt_winters",
    "double_exponential_smoothing",
}
_SMOOTHING = {"holt_winters", "double_exponential_smoothing"}

_AGGS = {
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
}
_ARITH = {"+", "-", "*", "/", "%", "^", "atan2"}
_COMPARE = {"==", "!=", ">", "<", ">=", "<="}
_SET = {"and", "or", "unless"}


def _op(token: Any) -> str:
    return str(token).strip().lower()


class _Evaluator:
    def __init__(self, reader: SeriesReader, q: PromQuery, engine: QueryEngine, base_step_ms: int) -> None:
        self.reader = reader
        self.q = q
        self.engine = engine
        self.base_step_ms = base_step_ms
        # A tier coarser than the lookback has one sample per step: the lookback widens to
        # the step so a selector between two bucket stamps still sees the last bucket
        # that ended (docs/promql.md, "One tier answers a query").
        self.lookback_ms = max(LOOKBACK_MS, reader.tier.step_ms)
        self.warnings: list[str] = []

    def _check(self, series: int, steps: int) -> None:
        if series * steps > self.q.max_samples:
            raise ResourceExhausted(
                f"query would hold {series * steps:,} samples ({series:,} series x {steps:,} steps) at once, "
                f"over the limit of {self.q.max_samples:,}; narrow the selectors, shorten the range or raise the step"
            )

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    # ------------------------------------------------------------------ dispatch

    async def eval(self, node: Any, times: I64, depth: int) -> Value:
        if depth > MAX_TREE_DEPTH:
            raise _err(f"expression is deeper than {MAX_TREE_DEPTH} levels of operators and functions")
        d = depth + 1
        if isinstance(node, pp.NumberLiteral):
            return Scalar(np.full(len(times), float(node.val)))
        if isinstance(node, pp.StringLiteral):
            return String(node.val)
        if isinstance(node, pp.ParenExpr):
            return await self.eval(node.expr, times, d)
        if isinstance(node, pp.UnaryExpr):
            inner = await self.eval(node.expr, times, d)
            if isinstance(inner, Scalar):
                return Scalar(-inner.values)
            if isinstance(inner, Vector):
                return Vector([Series(drop_name(s.labels), -s.values) for s in inner.series])
            raise _err(f"unary minus is not defined on a {type_name(inner)}")
        if isinstance(node, pp.VectorSelector):
            return await self._selector(node, times)
        if isinstance(node, pp.MatrixSelector):
            return await self._matrix(node, times, fields=())
        if isinstance(node, pp.SubqueryExpr):
            return await self._subquery(node, times, d)
        if isinstance(node, pp.AggregateExpr):
            return await self._aggregate(node, times, d)
        if isinstance(node, pp.BinaryExpr):
            return await self._binary(node, times, d)
        if isinstance(node, pp.Call):
            return await self._call(node, times, d)
        raise _err(f"unsupported PromQL construct: {type(node).__name__}")

    # ------------------------------------------------------------------ selectors

    def _eff(self, times: I64, offset: Any, at: Any) -> I64:
        eff = times.copy()
        if at is not None:
            if at.type == pp.AtModifierType.Start:
                fixed = self.q.start_ms
            elif at.type == pp.AtModifierType.End:
                fixed = self.q.end_ms
            else:
                fixed = round(at.at.timestamp() * 1000)
            eff = np.full(len(times), fixed, dtype=np.int64)
        if offset is not None:
            eff = eff - _ms(offset)
        return eff

    @staticmethod
    def _matchers(node: Any) -> list[Matcher]:
        return selector_matchers(node)

    async def _read(self, node: Any, start: int, end: int, fields: Sequence[str] = ()) -> list[RangeSeries]:
        raw = await self.reader.read(node.name, self._matchers(node), start, end, fields=fields)
        return [RangeSeries(labels_of(r.labels), r.kind, r.ts, r.values, r.deltas, dict(r.fields)) for r in raw]

    async def _selector(self, node: Any, times: I64) -> Vector:
        eff = self._eff(times, node.offset, node.at)
        raw = await self._read(node, int(eff.min()) - self.lookback_ms, int(eff.max()))
        self._check(len(raw), len(times))
        out = []
        for r in raw:
            idx = np.searchsorted(r.ts, eff, side="right") - 1
            ok = idx >= 0
            ok[ok] = r.ts[idx[ok]] >= eff[ok] - self.lookback_ms
            values = np.full(len(times), np.nan)
            values[ok] = r.values[idx[ok]]
            stamps = np.full(len(times), np.nan)
            stamps[ok] = r.ts[idx[ok]] / 1000.0
            if ok.any():
                out.append(Series(r.labels, values, stamps))
        return Vector(out)

    async def _matrix(self, node: Any, times: I64, *, fields: Sequence[str]) -> Matrix:
        vs = node.vector_selector
        range_ms = _ms(node.range)
        tier = self.reader.tier
        if range_ms < tier.step_ms:
            # A window narrower than a bucket would see one bucket or none depending on where
            # it falls: it is widened to one bucket (rate divides by the widened window).
            self._warn(
                f"argus: range [{range_ms // 1000}s] is shorter than the {tier.name} tier's step: "
                f"widened to {tier.step_ms // 1000}s"
            )
            range_ms = tier.step_ms
        eff = self._eff(times, vs.offset, vs.at)
        raw = await self._read(vs, int(eff.min()) - range_ms, int(eff.max()), fields)
        return Matrix(raw, range_ms, eff)

    async def _subquery(self, node: Any, times: I64, depth: int) -> Matrix:
        range_ms = _ms(node.range)
        step_ms = _ms(node.step) if node.step is not None else SUBQUERY_DEFAULT_STEP_MS
        if step_ms <= 0:
            raise _err("subquery step must be positive")
        eff = self._eff(times, node.offset, node.at)
        first = int(eff.min()) - range_ms
        first = first - first % step_ms
        if first < int(eff.min()) - range_ms:
            first += step_ms
        count = (int(eff.max()) - first) // step_ms + 1
        if count > MAX_STEPS * 10:
            raise ResourceExhausted(
                f"subquery would evaluate {count:,} steps, over the limit of {MAX_STEPS * 10:,}; use a larger step"
            )
        inner_times = first + np.arange(max(count, 0), dtype=np.int64) * step_ms
        inner = await self.eval(node.expr, inner_times, depth)
        if not isinstance(inner, Vector):
            raise _err(f"subquery needs an instant vector expression, got a {type_name(inner)}")
        series = []
        for s in inner.series:
            ok = ~np.isnan(s.values)
            series.append(RangeSeries(s.labels, MetricKind.GAUGE, inner_times[ok], s.values[ok]))
        return Matrix(series, range_ms, eff)

    # ------------------------------------------------------------------ aggregation

    async def _aggregate(self, node: Any, times: I64, depth: int) -> Vector:
        op = _op(node.op)
        if op not in _AGGS:
            raise _err(f"unsupported aggregation: {op}")
        inner = await self.eval(node.expr, times, depth)
        if not isinstance(inner, Vector):
            raise _err(f"{op}: expected an instant vector, got a {type_name(inner)}")
        param: Value | None = None
        if node.param is not None:
            param = await self.eval(node.param, times, depth)
        by: list[str] | None = []  # no modifier: everything into one group
        without: list[str] | None = None
        if node.modifier is not None:
            if node.modifier.type == pp.AggModifierType.By:
                by = list(node.modifier.labels)
            else:
                by, without = None, list(node.modifier.labels)

        def key(labels: Labels) -> Labels:
            if by is not None:
                return tuple(kv for kv in labels if kv[0] in by)
            drop = set(without or ()) | {NAME}
            return tuple(kv for kv in labels if kv[0] not in drop)

        groups: dict[Labels, list[Series]] = {}
        for s in inner.series:
            groups.setdefault(key(s.labels), []).append(s)
        n = len(times)

        def compute() -> Vector:  # CPU only: on a query worker when large
            out: list[Series] = []
            if op in ("topk", "bottomk"):
                kk = _scalar_param(param, op)
                for members in groups.values():
                    stack = np.vstack([s.values for s in members])
                    order = np.where(np.isnan(stack), np.inf, -stack if op == "topk" else stack)
                    rank = np.argsort(np.argsort(order, axis=0, kind="stable"), axis=0, kind="stable")
                    for i, s in enumerate(members):
                        keep = (rank[i] < np.floor(kk)) & ~np.isnan(s.values)
                        if keep.any():
                            out.append(Series(s.labels, np.where(keep, s.values, np.nan)))
                return Vector(out)
            if op == "count_values":
                if not isinstance(param, String):
                    raise _err("count_values: the first argument must be a label name string")
                label = param.value
                counted: dict[Labels, F64] = {}
                for group, members in groups.items():
                    stack = np.vstack([s.values for s in members])
                    for step in range(n):
                        col = stack[:, step]
                        vals, counts = np.unique(col[~np.isnan(col)], return_counts=True)
                        for v, c in zip(vals.tolist(), counts.tolist(), strict=True):
                            lbl = labels_of({**dict(group), label: _fmt(v)})
                            counted.setdefault(lbl, np.full(n, np.nan))[step] = c
                return Vector([Series(lbl, v) for lbl, v in counted.items()])
            for group, members in groups.items():
                stack = np.vstack([s.values for s in members])
                present = (~np.isnan(stack)).sum(axis=0)
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    if op == "sum":
                        value = np.nansum(stack, axis=0)
                    elif op == "avg":
                        value = np.nanmean(stack, axis=0)
                    elif op == "min":
                        value = np.nanmin(stack, axis=0)
                    elif op == "max":
                        value = np.nanmax(stack, axis=0)
                    elif op == "count":
                        value = present.astype(np.float64)
                    elif op == "group":
                        value = np.ones(n)
                    elif op == "stddev":
                        value = np.nanstd(stack, axis=0)
                    elif op == "stdvar":
                        value = np.nanvar(stack, axis=0)
                    else:  # quantile
                        phi = _scalar_param(param, op)
                        if phi < 0:
                            value = np.full(n, -np.inf)
                        elif phi > 1:
                            value = np.full(n, np.inf)
                        else:
                            value = np.nanquantile(stack, phi, axis=0)
                out.append(Series(group, np.where(present > 0, value, np.nan)))
            self._check(len(out), n)
            return Vector(out)

        return await self.engine.offload(compute, work=len(inner.series) * n)

    # ------------------------------------------------------------------ binary operators

    async def _binary(self, node: Any, times: I64, depth: int) -> Value:
        op = _op(node.op)
        lhs = await self.eval(node.lhs, times, depth)
        rhs = await self.eval(node.rhs, times, depth)
        mod = node.modifier
        return_bool = bool(mod is not None and mod.return_bool)
        if op in _COMPARE and return_bool is False and isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            raise _err("comparisons between scalars must use the bool modifier")
        if isinstance(lhs, String) or isinstance(rhs, String) or isinstance(lhs, Matrix) or isinstance(rhs, Matrix):
            raise _err(f"binary operator {op} is not defined between a {type_name(lhs)} and a {type_name(rhs)}")
        if op in _SET:
            if not isinstance(lhs, Vector) or not isinstance(rhs, Vector):
                raise _err(f"set operator {op} needs instant vectors on both sides")
            return _set_op(op, lhs, rhs, mod)
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            return Scalar(_apply(op, lhs.values, rhs.values, return_bool=True))
        if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
            return _vector_scalar(op, lhs, rhs.values, scalar_left=False, return_bool=return_bool)
        if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
            return _vector_scalar(op, rhs, lhs.values, scalar_left=True, return_bool=return_bool)
        assert isinstance(lhs, Vector) and isinstance(rhs, Vector)
        work = (len(lhs.series) + len(rhs.series)) * len(times)
        return await self.engine.offload(
            functools.partial(_vector_vector, op, lhs, rhs, mod, return_bool=return_bool), work=work
        )

    # ------------------------------------------------------------------ functions

    async def _call(self, node: Any, times: I64, depth: int) -> Value:
        name = node.func.name
        args = list(node.args)
        n = len(times)
        if name == ARGUS_QUANTILE:
            return await self._sketch_quantile(args, times, depth, by_args=True)
        if name in _RANGE_FUNCS:
            return await self._range_call(name, args, times, depth)
        if name == "time":
            return Scalar(times / 1000.0)
        if name == "vector":
            given = await self._scalar_arg(args[0], times, depth, name)
            return Vector([Series((), given.values.copy())])
        if name == "scalar":
            vec = await self._vector_arg(args[0], times, depth, name)
            if not vec.series:
                return Scalar(np.full(n, np.nan))
            stack = np.vstack([s.values for s in vec.series])
            present = (~np.isnan(stack)).sum(axis=0)
            value = np.nansum(np.where(np.isnan(stack), 0.0, stack), axis=0)
            return Scalar(np.where(present == 1, value, np.nan))
        if name == "timestamp":
            vec = await self._vector_arg(args[0], times, depth, name)
            out = []
            for s in vec.series:
                stamps = s.sample_ts if s.sample_ts is not None else times / 1000.0
                out.append(Series(drop_name(s.labels), np.where(np.isnan(s.values), np.nan, stamps)))
            return Vector(out)
        if name in _MATH:
            vec = await self._vector_arg(args[0], times, depth, name)
            fn = _MATH[name]
            with np.errstate(all="ignore"):
                return Vector([Series(drop_name(s.labels), fn(s.values)) for s in vec.series])
        if name == "round":
            vec = await self._vector_arg(args[0], times, depth, name)
            to = (await self._scalar_arg(args[1], times, depth, name)).values if len(args) > 1 else np.ones(n)
            with np.errstate(all="ignore"):
                inv = 1.0 / to
                return Vector([Series(drop_name(s.labels), np.floor(s.values * inv + 0.5) / inv) for s in vec.series])
        if name in ("clamp", "clamp_min", "clamp_max"):
            vec = await self._vector_arg(args[0], times, depth, name)
            lo = (await self._scalar_arg(args[1], times, depth, name)).values if name != "clamp_max" else None
            hi_arg = args[2] if name == "clamp" else args[1] if name == "clamp_max" else None
            hi = (await self._scalar_arg(hi_arg, times, depth, name)).values if hi_arg is not None else None
            out = []
            for s in vec.series:
                v = s.values
                if lo is not None:
                    v = np.fmax(v, lo) if name == "clamp" else np.where(np.isnan(v), v, np.maximum(v, lo))
                if hi is not None:
                    v = np.where(np.isnan(v), v, np.minimum(v, hi))
                if name == "clamp" and lo is not None and hi is not None:
                    v = np.where(lo > hi, np.nan, np.where(np.isnan(s.values), np.nan, v))
                out.append(Series(drop_name(s.labels), v))
            return Vector(out)
        if name in _DATE:
            if args:
                vec = await self._vector_arg(args[0], times, depth, name)
            else:
                vec = Vector([Series((), times / 1000.0)])
            return Vector([Series(drop_name(s.labels), _date_part(name, s.values)) for s in vec.series])
        if name in ("sort", "sort_desc"):
            vec = await self._vector_arg(args[0], times, depth, name)
            last = [float(s.values[-1]) if not np.isnan(s.values[-1]) else math.nan for s in vec.series]
            pairs = sorted(zip(last, range(len(vec.series)), strict=True), key=lambda p: (math.isnan(p[0]), p[0]))
            if name == "sort_desc":
                pairs = sorted(pairs, key=lambda p: (math.isnan(p[0]), -p[0] if not math.isnan(p[0]) else 0))
            return Vector([vec.series[i] for _, i in pairs], ordered=True)
        if name == "label_replace":
            vec = await self._vector_arg(args[0], times, depth, name)
            dst, repl, src, regex = (_string_arg(a, name) for a in args[1:5])
            return Vector(_label_replace(vec.series, dst, repl, src, regex))
        if name == "label_join":
            vec = await self._vector_arg(args[0], times, depth, name)
            dst, sep = _string_arg(args[1], name), _string_arg(args[2], name)
            srcs = [_string_arg(a, name) for a in args[3:]]
            out = []
            for s in vec.series:
                d = dict(s.labels)
                d[dst] = sep.join(d.get(x, "") for x in srcs)
                out.append(Series(labels_of(d), s.values, s.sample_ts))
            return Vector(_dedupe(out))
        if name == "absent":
            vec = await self._vector_arg(args[0], times, depth, name)
            present = np.zeros(n, dtype=bool)
            for s in vec.series:
                present |= ~np.isnan(s.values)
            return Vector([Series(_absent_labels(args[0]), np.where(present, np.nan, 1.0))])
        if name == "histogram_quantile":
            over_timer = await self._timer_histogram(args)
            if over_timer is not None:
                matrix, stem, group_by = over_timer
                return await self._merged_quantile(name, args[0], matrix, stem, group_by, times)
            await self._refuse_timer_buckets(args[1])
            phi = await self._scalar_arg(args[0], times, depth, name)
            vec = await self._vector_arg(args[1], times, depth, name)
            return Vector(_histogram_quantile(phi.values, vec.series, n))
        raise _err(f"unsupported PromQL function: {name}()")

    async def _vector_arg(self, node: Any, times: I64, depth: int, fn: str) -> Vector:
        value = await self.eval(node, times, depth + 1)
        if not isinstance(value, Vector):
            raise _err(f"{fn}(): expected an instant vector argument, got a {type_name(value)}")
        return value

    async def _scalar_arg(self, node: Any, times: I64, depth: int, fn: str) -> Scalar:
        value = await self.eval(node, times, depth + 1)
        if not isinstance(value, Scalar):
            raise _err(f"{fn}(): expected a scalar argument, got a {type_name(value)}")
        return value

    async def _range_arg(self, node: Any, times: I64, depth: int, fn: str) -> Matrix:
        inner = node.expr if isinstance(node, pp.ParenExpr) else node
        if isinstance(inner, pp.MatrixSelector):
            return await self._matrix(inner, times, fields=_FIELDS_FOR.get(fn, ()))
        if isinstance(inner, pp.SubqueryExpr):
            return await self._subquery(inner, times, depth + 1)
        raise _err(f"{fn}(): expected a range vector argument (m[5m] or a subquery)")

    async def _range_call(self, name: str, args: list[Any], times: I64, depth: int) -> Vector:
        phi: F64 | None = None
        params: list[F64] = []
        if name in _SMOOTHING:
            sf = (await self._scalar_arg(args[1], times, depth, name)).values
            tf = (await self._scalar_arg(args[2], times, depth, name)).values
            for what, factor, short in (("smoothing", sf, "sf"), ("trend", tf, "tf")):
                bad = factor[(factor <= 0) | (factor >= 1)]
                if len(bad):
                    raise _err(f"{name}(): invalid {what} factor: expected 0 < {short} < 1, got {_fmt(float(bad[0]))}")
            params = [sf, tf]
        elif name == "predict_linear":
            duration = (await self._scalar_arg(args[1], times, depth, name)).values
            # The regression's intercept is at the evaluation time (not moved by offset). A
            # call whose arguments are all fixed (`m[5m] @ t`, a literal) is step invariant:
            # Prometheus evaluates it once, at the first step, and repeats the answer.
            at_ms = np.full(len(times), times[0]) if _step_invariant(args) else times
            params = [duration, at_ms.astype(np.float64)]
        if name == "quantile_over_time":
            matrix_node = args[1]
            inner = matrix_node.expr if isinstance(matrix_node, pp.ParenExpr) else matrix_node
            if isinstance(inner, pp.MatrixSelector) and await self._is_timer(inner.vector_selector):
                return await self._sketch_quantile(args, times, depth, by_args=False)
            phi = (await self._scalar_arg(args[0], times, depth, name)).values
            matrix = await self._range_arg(args[1], times, depth, name)
        else:
            matrix = await self._range_arg(args[0], times, depth, name)
        self._check(len(matrix.series), len(times))
        eff, r = matrix.eff, matrix.range_ms
        if name == "absent_over_time":
            present = np.zeros(len(times), dtype=bool)
            for s in matrix.series:
                lo = np.searchsorted(s.ts, eff - r, side="left")
                hi = np.searchsorted(s.ts, eff, side="right")
                present |= hi > lo
            node = args[0].expr if isinstance(args[0], pp.ParenExpr) else args[0]
            labels = _absent_labels(node.vector_selector) if isinstance(node, pp.MatrixSelector) else ()
            return Vector([Series(labels, np.where(present, np.nan, 1.0))])
        points = sum(len(rs.ts) for rs in matrix.series) + len(matrix.series) * len(times)
        return await self.engine.offload(_range_values, name, matrix, phi, params, work=points)

    async def _timer_histogram(self, args: list[Any]) -> tuple[Any, str, tuple[str, ...]] | None:
        """`histogram_quantile(φ, rate(t_bucket[r]))` and `histogram_quantile(φ, sum by (le,
        l...) (rate(t_bucket[r])))` (or `increase`) where `t` is an Argus timer: the same
        question asked of the timer's sketches: (the range selector, the timer's name, the
        labels to merge by, `*` per series); None for any other shape. A quantile does not
        depend on the rate's scale, and summing buckets by `le` is merging the sketches."""
        inner = _unparen(args[1])
        group_by: tuple[str, ...] = ("*",)  # per series
        if isinstance(inner, pp.AggregateExpr):
            mod = inner.modifier
            if (
                _op(inner.op) != "sum"
                or inner.param is not None
                or mod is None
                or mod.type != pp.AggModifierType.By
                or "le" not in mod.labels
            ):
                return None
            group_by = tuple(label for label in mod.labels if label != "le")
            inner = _unparen(inner.expr)
        if not (isinstance(inner, pp.Call) and inner.func.name in ("rate", "increase")):
            return None
        matrix = _unparen(inner.args[0])
        if not isinstance(matrix, pp.MatrixSelector):
            return None
        vs = matrix.vector_selector
        if not (vs.name and vs.name.endswith("_bucket")) or any(m.name == "le" for m in vs.matchers.matchers):
            return None
        stem = vs.name[: -len("_bucket")]
        kinds = {prom_name(m.name): MetricKind(m.kind) for m in await self.reader.metrics()}
        if vs.name in kinds or kinds.get(stem) is not MetricKind.TIMER:
            return None
        return matrix, stem, group_by

    async def _refuse_timer_buckets(self, node: Any) -> None:
        """`histogram_quantile` over `m_bucket` where `m` is an Argus timer, in a shape that
        `_timer_histogram` does not map onto the sketches: say what to write instead of
        answering nothing."""
        names: list[str] = []

        def visit(n: Any) -> None:
            if isinstance(n, pp.VectorSelector) and n.name and n.name.endswith("_bucket"):
                names.append(n.name)

        walk(node, visit)
        if not names:
            return
        metrics = {prom_name(m.name): MetricKind(m.kind) for m in await self.reader.metrics()}
        for bucket in names:
            stem = bucket[: -len("_bucket")]
            if bucket not in metrics and metrics.get(stem) is MetricKind.TIMER:
                raise _err(
                    f"histogram_quantile over {bucket}: {stem} is an Argus timer (a quantile sketch, "
                    f"no _bucket series); use argus_quantile(0.99, {stem}[5m]) for the percentile "
                    f"across series, or quantile_over_time(0.99, {stem}[5m]) per series"
                )

    async def _is_timer(self, vs: Any) -> bool:
        for summary in await self.reader.metrics():
            if prom_name(summary.name) == vs.name:
                return bool(summary.kind == MetricKind.TIMER)
        return False

    async def _sketch_quantile(self, args: list[Any], times: I64, depth: int, *, by_args: bool) -> Vector:
        """argus_quantile(φ, m[r], "label", ...) and quantile_over_time(φ, timer[r]): the
        quantile of the merged sketches of each window, merged across the matching series
        (grouped by the given labels) or per series."""
        fn = ARGUS_QUANTILE if by_args else "quantile_over_time"
        node = args[1].expr if isinstance(args[1], pp.ParenExpr) else args[1]
        if not isinstance(node, pp.MatrixSelector):
            raise _err(f"{fn}(): the second argument must be a range selector, e.g. latency[5m]")
        group_by: tuple[str, ...] = ("*",)
        if by_args:
            group_by = tuple(_string_arg(a, fn) for a in args[2:])
        return await self._merged_quantile(fn, args[0], node, node.vector_selector.name or "", group_by, times)

    async def _merged_quantile(
        self, fn: str, phi_node: Any, node: Any, metric: str, group_by: tuple[str, ...], times: I64
    ) -> Vector:
        """The φ-quantile of the merged sketches of each window of the timer `metric` (PromQL
        name), over the series matching the range selector `node` (its name aside), merged per
        `group_by` (`*`: per series)."""
        phi_node = _unparen(phi_node)
        if not isinstance(phi_node, pp.NumberLiteral):
            raise _err(f"{fn}(): φ must be a number literal for a timer")
        phi = float(phi_node.val)
        if not 0 <= phi <= 1:
            raise _err(f"{fn}(): φ must be between 0 and 1, got {phi:g}")
        vs = node.vector_selector
        range_ms = _ms(node.range)
        tier = next((t for t in self.engine.tiers if t.step_ms == range_ms), None)
        if tier is None:
            steps = ", ".join(t.name for t in self.engine.tiers)
            raise _err(f"{fn}(): over sketches the range must equal a tier step ({steps}), got {range_ms // 1000}s")
        eff = self._eff(times, vs.offset, vs.at)
        names = [s for s in await self.reader.metrics() if prom_name(s.name) == metric]
        if not names:
            return Vector([])
        matchers = tuple(m for m in self._matchers(vs) if m.name != NAME)
        shift = tier.step_ms - self.base_step_ms
        result = await self.engine.query(
            QuerySpec(
                tenant=self.q.tenant,
                metric=names[0].name,
                start_ms=max(0, int(eff.min()) - range_ms - shift),
                end_ms=int(eff.max()) - shift + 1,
                period=tier.name,
                agg=f"p{phi * 100:g}",
                matchers=matchers,
                group_by=group_by,
            ),
            max_result_points=self.q.max_samples,
        )
        self.reader.stats.points_read += result.stats.points_read
        self._warn(f"argus: {fn} read merged sketches of the {tier.name} tier")
        out = []
        for s in result.series:
            ts = s.ts + shift
            hi = np.searchsorted(ts, eff, side="right")
            lo = np.searchsorted(ts, eff - range_ms, side="right")
            value = k.window_last(s.values, lo, hi)
            labels = dict(s.labels)
            if group_by == ("*",):
                labels[NAME] = ""
            out.append(Series(labels_of(labels), value))
        return Vector(out)


def _range_values(name: str, matrix: Matrix, phi: F64 | None, params: Sequence[F64] = ()) -> Vector:
    """A range function over every series of `matrix` (CPU only: runs on a query worker)."""
    eff, r = matrix.eff, matrix.range_ms
    if name in _SMOOTHING or name in ("deriv", "predict_linear"):
        return _regression_values(name, matrix, params)
    out: list[Series] = []
    keep_name = name == "last_over_time"
    for s in matrix.series:
        lo = np.searchsorted(s.ts, eff - r, side="left")
        hi = np.searchsorted(s.ts, eff, side="right")
        v = s.values
        if name in ("rate", "increase") and s.deltas is not None:
            # Stored deltas: the exact increase over (t - range, t], no extrapolation.
            lo_open = np.searchsorted(s.ts, eff - r, side="right")
            inc = k.window_sum(s.deltas, lo_open, hi)
            value = inc / (r / 1000.0) if name == "rate" else inc
            value = np.where(hi > lo_open, value, np.nan)
        elif name in ("rate", "increase", "delta"):
            value = k.extrapolated(s.ts, v, lo, hi, eff, r, counter=name != "delta", rate=name == "rate")
        elif name in ("irate", "idelta"):
            value = k.instant_delta(s.ts, v, lo, hi, rate=name == "irate")
        elif name == "resets":
            value = k.window_resets(v, lo, hi)
        elif name == "changes":
            value = k.window_changes(v, lo, hi)
        elif name == "sum_over_time":
            value = k.window_sum(s.fields.get("sum", v), lo, hi)
        elif name == "count_over_time":
            counts = s.fields.get("count")
            value = k.window_sum(counts, lo, hi) if counts is not None else k.window_count(lo, hi)
        elif name == "avg_over_time":
            sums, counts = s.fields.get("sum"), s.fields.get("count")
            if sums is not None and counts is not None:
                value = k.window_sum(sums, lo, hi) / k.window_sum(counts, lo, hi)
            else:
                value = k.window_sum(v, lo, hi) / k.window_count(lo, hi)
        elif name == "min_over_time":
            value = k.window_min(s.fields.get("min", v), lo, hi)
        elif name == "max_over_time":
            value = k.window_max(s.fields.get("max", v), lo, hi)
        elif name == "last_over_time":
            value = k.window_last(v, lo, hi)
        elif name == "present_over_time":
            value = np.where(hi > lo, 1.0, np.nan)
        elif name == "stdvar_over_time":
            value = k.window_var(v, lo, hi)
        elif name == "stddev_over_time":
            value = np.sqrt(k.window_var(v, lo, hi))
        else:  # quantile_over_time
            assert phi is not None
            value = k.window_quantile(phi, v, lo, hi)
        if not np.all(np.isnan(value)):
            out.append(Series(s.labels if keep_name else drop_name(s.labels), value))
    return Vector(_dedupe(out))


def _regression_values(name: str, matrix: Matrix, params: Sequence[F64]) -> Vector:
    """deriv, predict_linear and holt_winters over all series at once: every series' windows
    are concatenated into one array of windows, so the kernels' numpy calls are per query,
    not per series."""
    eff, r = matrix.eff, matrix.range_ms
    series = [s for s in matrix.series if len(s.ts) >= 2]
    if not series:
        return Vector([])
    steps = len(eff)
    offsets = np.cumsum([0] + [len(s.ts) for s in series])
    ts = np.concatenate([s.ts for s in series])
    values = np.concatenate([s.values for s in series])
    lo = np.concatenate(
        [np.searchsorted(s.ts, eff - r, side="left") + off for s, off in zip(series, offsets, strict=False)]
    )
    hi = np.concatenate(
        [np.searchsorted(s.ts, eff, side="right") + off for s, off in zip(series, offsets, strict=False)]
    )
    visited = int((hi - lo).sum())
    if visited > MAX_WINDOW_SAMPLES:
        raise ResourceExhausted(
            f"{name}() would visit {visited:,} samples (every window of every step), over the limit of "
            f"{MAX_WINDOW_SAMPLES:,}; shorten the range or raise the step"
        )
    tiled = [np.tile(p, len(series)) for p in params]
    if name in _SMOOTHING:
        result = k.window_holt_winters(values, lo, hi, tiled[0], tiled[1])
    elif name == "deriv":
        result, _ = k.window_regression(ts, values, lo, hi)
    else:
        duration, at_ms = tiled
        slope, intercept = k.window_regression(ts, values, lo, hi, at_ms.astype(np.int64))
        result = slope * duration + intercept
    out = []
    for i, s in enumerate(series):
        value = result[i * steps : (i + 1) * steps]
        if not np.all(np.isnan(value)):
            out.append(Series(drop_name(s.labels), value))
    return Vector(_dedupe(out))


def _step_invariant(args: Sequence[Any]) -> bool:
    """Prometheus's step-invariance of call arguments: `@`-pinned selectors and literals."""

    def fixed(node: Any) -> bool:
        if isinstance(node, pp.ParenExpr | pp.UnaryExpr):
            return fixed(node.expr)
        if isinstance(node, pp.NumberLiteral | pp.StringLiteral):
            return True
        if isinstance(node, pp.MatrixSelector):
            return node.vector_selector.at is not None
        if isinstance(node, pp.SubqueryExpr | pp.VectorSelector):
            return node.at is not None
        return False

    return all(fixed(a) for a in args)


# ---------------------------------------------------------------------- helpers


def _unparen(node: Any) -> Any:
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node


def selector_matchers(node: Any) -> list[Matcher]:
    """The label matchers of a parsed vector selector (regexes checked: RE2, bounded)."""
    if node.matchers.or_matchers:
        raise _err("unsupported PromQL construct: `or` inside a label matcher list")
    out = []
    for m in node.matchers.matchers:
        op = _PP_OPS[str(m.op).split(".")[-1]]
        if op in ("=~", "!~"):
            compile_full_match(m.value, parameter="query", what=f"for label {m.name}")
        out.append(Matcher(name=m.name, op=_MATCH_OPS[op], value=m.value))
    return out


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e21:
        return str(int(v))
    return repr(v)


def _scalar_param(param: Value | None, op: str) -> float:
    if not isinstance(param, Scalar):
        raise _err(f"{op}: expected a scalar parameter")
    return float(param.values[0])


def _string_arg(node: Any, fn: str) -> str:
    if not isinstance(node, pp.StringLiteral):
        raise _err(f"{fn}(): expected a string literal argument")
    return str(node.val)


def _absent_labels(node: Any) -> Labels:
    if not isinstance(node, pp.VectorSelector):
        return ()
    out: dict[str, str] = {}
    seen: set[str] = set()
    for m in node.matchers.matchers:
        if m.name == NAME:
            continue
        if _PP_OPS[str(m.op).split(".")[-1]] == "=" and m.name not in seen:
            out[m.name] = m.value
        elif m.name in out:
            del out[m.name]
        seen.add(m.name)
    return labels_of(out)


def _date_part(name: str, seconds: F64) -> F64:
    out = np.full(len(seconds), np.nan)
    for i, s in enumerate(seconds.tolist()):
        if math.isnan(s):
            continue
        d = datetime.fromtimestamp(s, tz=UTC)
        if name == "day_of_month":
            out[i] = d.day
        elif name == "day_of_week":
            out[i] = (d.weekday() + 1) % 7
        elif name == "day_of_year":
            out[i] = d.timetuple().tm_yday
        elif name == "days_in_month":
            nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
            out[i] = (nxt - datetime(d.year, d.month, 1, tzinfo=UTC)).days
        elif name == "hour":
            out[i] = d.hour
        elif name == "minute":
            out[i] = d.minute
        elif name == "month":
            out[i] = d.month
        else:
            out[i] = d.year
    return out


def _expand(template: str, groups: Sequence[str | None], named: dict[str, str | None]) -> str:
    """Go regexp's Expand: $1, ${1}, $name, ${name}, $$."""
    out = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "$" or i + 1 >= len(template):
            out.append(ch)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = template.find("}", i + 2)
            if end < 0:
                out.append(ch)
                i += 1
                continue
            ref, i = template[i + 2 : end], end + 1
        else:
            j = i + 1
            while j < len(template) and (template[j].isalnum() or template[j] == "_"):
                j += 1
            if j == i + 1:
                out.append(ch)
                i += 1
                continue
            ref, i = template[i + 1 : j], j
        if ref.isdigit():
            idx = int(ref)
            value = groups[idx] if idx < len(groups) else ""
        else:
            value = named.get(ref)
        out.append(value or "")
    return "".join(out)


def _label_replace(series: list[Series], dst: str, repl: str, src: str, regex: str) -> list[Series]:
    import re2

    from core.regex import MAX_PATTERN_CHARS

    if len(regex) > MAX_PATTERN_CHARS:
        raise _err(f"label_replace(): regex over {MAX_PATTERN_CHARS} characters")
    compile_full_match(regex, parameter="query", what="in label_replace")  # linear-time check
    try:
        pattern = re2.compile(regex)
    except re2.error as exc:
        raise _err(f"label_replace(): bad regex {regex!r}: {exc}") from None
    if not dst or not all(c.isalnum() or c == "_" for c in dst) or dst[0].isdigit():
        raise _err(f"label_replace(): invalid destination label name {dst!r}")
    out = []
    for s in series:
        d = dict(s.labels)
        m = pattern.fullmatch(d.get(src, ""))
        if m is None:
            out.append(s)
            continue
        groups = [m.group(0), *m.groups()]
        d[dst] = _expand(repl, groups, m.groupdict())
        out.append(Series(labels_of(d), s.values, s.sample_ts))
    return _dedupe(out)


def _dedupe(series: list[Series]) -> list[Series]:
    """Series with the same labels merged (they must not both have a value at one step)."""
    by: dict[Labels, Series] = {}
    order: list[Labels] = []
    for s in series:
        prev = by.get(s.labels)
        if prev is None:
            by[s.labels] = s
            order.append(s.labels)
            continue
        both = ~np.isnan(prev.values) & ~np.isnan(s.values)
        if both.any():
            shown = "{" + ", ".join(f'{k}="{v}"' for k, v in s.labels) + "}"
            raise _err(f"vector cannot contain metrics with the same labelset {shown}")
        by[s.labels] = Series(s.labels, np.where(np.isnan(prev.values), s.values, prev.values))
    return [by[lbl] for lbl in order]


def _apply(op: str, a: F64, b: F64, *, return_bool: bool) -> F64:
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            return np.power(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
        cmp = {
            "==": np.equal,
            "!=": np.not_equal,
            ">": np.greater,
            "<": np.less,
            ">=": np.greater_equal,
            "<=": np.less_equal,
        }[op](a, b)
        if return_bool:
            return np.where(np.isnan(a) | np.isnan(b), np.nan, cmp.astype(np.float64))
        return np.where(cmp, a, np.nan)


def _vector_scalar(op: str, vec: Vector, scalar: F64, *, scalar_left: bool, return_bool: bool) -> Vector:
    out = []
    for s in vec.series:
        a, b = (scalar, s.values) if scalar_left else (s.values, scalar)
        if op in _COMPARE and not return_bool:
            value = _apply(op, a, b, return_bool=False)
            # The filter keeps the vector's own value.
            value = np.where(np.isnan(value), np.nan, s.values)
            labels = s.labels
        else:
            value = _apply(op, a, b, return_bool=return_bool)
            value = np.where(np.isnan(s.values), np.nan, value)
            # Prometheus 2.x keeps the name for atan2 (its name-dropping list omits it).
            labels = s.labels if op == "atan2" else drop_name(s.labels)
        if not np.all(np.isnan(value)):
            out.append(Series(labels, value))
    return Vector(_dedupe(out))


def _signature(labels: Labels, mod: Any) -> Labels:
    matching = mod.matching if mod is not None else None
    if matching is not None and matching.type == pp.LabelModifierType.Include:
        on = set(matching.labels)
        return tuple(kv for kv in labels if kv[0] in on)
    drop = {NAME} | (set(matching.labels) if matching is not None else set())
    return tuple(kv for kv in labels if kv[0] not in drop)


def _set_op(op: str, lhs: Vector, rhs: Vector, mod: Any) -> Vector:
    n = len(lhs.series[0].values) if lhs.series else len(rhs.series[0].values) if rhs.series else 0
    rhs_present: dict[Labels, np.ndarray[Any, np.dtype[np.bool_]]] = {}
    for s in rhs.series:
        sig = _signature(s.labels, mod)
        rhs_present[sig] = rhs_present.get(sig, np.zeros(n, dtype=bool)) | ~np.isnan(s.values)
    out = []
    if op == "and":
        for s in lhs.series:
            mask = rhs_present.get(_signature(s.labels, mod))
            if mask is not None:
                out.append(Series(s.labels, np.where(mask, s.values, np.nan), s.sample_ts))
    elif op == "unless":
        for s in lhs.series:
            mask = rhs_present.get(_signature(s.labels, mod))
            out.append(s if mask is None else Series(s.labels, np.where(mask, np.nan, s.values), s.sample_ts))
    else:
        lhs_present: dict[Labels, np.ndarray[Any, np.dtype[np.bool_]]] = {}
        for s in lhs.series:
            sig = _signature(s.labels, mod)
            lhs_present[sig] = lhs_present.get(sig, np.zeros(n, dtype=bool)) | ~np.isnan(s.values)
            out.append(s)
        for s in rhs.series:
            mask = lhs_present.get(_signature(s.labels, mod))
            out.append(s if mask is None else Series(s.labels, np.where(mask, np.nan, s.values), s.sample_ts))
    return Vector([s for s in out if not np.all(np.isnan(s.values))])


def _vector_vector(op: str, lhs: Vector, rhs: Vector, mod: Any, *, return_bool: bool) -> Vector:
    card = mod.card if mod is not None else pp.VectorMatchCardinality.OneToOne
    if card == pp.VectorMatchCardinality.ManyToMany:
        raise _err(f"binary operator {op} between vectors needs one-to-one or group_left/group_right matching")
    many, one = (rhs, lhs) if card == pp.VectorMatchCardinality.OneToMany else (lhs, rhs)
    n = len(many.series[0].values) if many.series else 0
    # The "one" side: per signature one value per step (two series there at once: an error).
    one_side: dict[Labels, tuple[F64, list[tuple[Labels, F64]]]] = {}
    for s in one.series:
        sig = _signature(s.labels, mod)
        merged, members = one_side.get(sig, (np.full(n, np.nan), []))
        clash = ~np.isnan(merged) & ~np.isnan(s.values)
        if clash.any():
            side = "right" if one is rhs else "left"
            raise _err(
                f"found duplicate series for the match group on the {side} hand-side of the operation "
                "(many-to-many matching not allowed: use group_left/group_right or on/ignoring)"
            )
        one_side[sig] = (np.where(np.isnan(merged), s.values, merged), [*members, (s.labels, s.values)])
    include = list(mod.group_labels or []) if mod is not None else []
    one_to_one = card == pp.VectorMatchCardinality.OneToOne
    matching = mod.matching if mod is not None else None
    is_compare = op in _COMPARE
    drop = (not is_compare and op != "atan2") or return_bool
    if one_to_one:
        seen: dict[Labels, F64] = {}
        for s in many.series:
            sig = _signature(s.labels, mod)
            prev = seen.get(sig)
            if prev is not None and (~np.isnan(prev) & ~np.isnan(s.values)).any():
                raise _err(
                    "found duplicate series for the match group on the left hand-side of the operation "
                    "(many-to-one matching must be explicit: group_left/group_right)"
                )
            seen[sig] = s.values if prev is None else np.where(np.isnan(prev), s.values, prev)
    out = []
    for s in many.series:
        sig = _signature(s.labels, mod)
        found = one_side.get(sig)
        if found is None:
            continue
        other, members = found
        a, b = (other, s.values) if many is rhs else (s.values, other)
        value = _apply(op, a, b, return_bool=return_bool)
        if is_compare and not return_bool:
            value = np.where(np.isnan(value), np.nan, a)
        value = np.where(np.isnan(a) | np.isnan(b), np.nan, value)
        if np.all(np.isnan(value)):
            continue
        labels = dict(drop_name(s.labels) if drop else s.labels)
        if one_to_one:
            if matching is not None and matching.type == pp.LabelModifierType.Include:
                keep = set(matching.labels)
                labels = {kk: vv for kk, vv in labels.items() if kk in keep}
            elif matching is not None:
                for name in matching.labels:
                    labels.pop(name, None)
            out.append(Series(labels_of(labels), value))
            continue
        if include:
            # Labels copied from the "one" side: per step they could differ (rare): take the
            # member present at the first step with a value.
            for lbls, vals in members:
                if (~np.isnan(vals) & ~np.isnan(value)).any():
                    one_labels = dict(lbls)
                    for name in include:
                        if one_labels.get(name):
                            labels[name] = one_labels[name]
                        else:
                            labels.pop(name, None)
                    break
        out.append(Series(labels_of(labels), value))
    return Vector(_dedupe(out))


def _histogram_quantile(phi: F64, series: list[Series], n: int) -> list[Series]:
    groups: dict[Labels, list[tuple[float, F64]]] = {}
    for s in series:
        d = dict(s.labels)
        le = d.pop("le", None)
        if le is None:
            continue
        try:
            bound = float(le.replace("+Inf", "inf"))
        except ValueError:
            continue
        d.pop(NAME, None)
        groups.setdefault(labels_of(d), []).append((bound, s.values))
    out = []
    for labels, buckets in groups.items():
        buckets.sort(key=lambda b: b[0])
        bounds = np.array([b for b, _ in buckets])
        counts = np.vstack([v for _, v in buckets])
        value = np.full(n, np.nan)
        for step in range(n):
            col = counts[:, step]
            ok = ~np.isnan(col)
            value[step] = _bucket_quantile(float(phi[step]), bounds[ok], col[ok])
        if not np.all(np.isnan(value)):
            out.append(Series(labels, value))
    return out


def _bucket_quantile(q: float, bounds: F64, counts: F64) -> float:
    """Prometheus's bucketQuantile over cumulative bucket counts."""
    if math.isnan(q) or len(bounds) < 2 or not math.isinf(bounds[-1]):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    counts = np.maximum.accumulate(counts)  # monotonic, as Prometheus forces it
    total = counts[-1]
    if total == 0 or math.isnan(total):
        return math.nan
    rank = q * total
    b = int(np.searchsorted(counts, rank, side="left"))
    if b == len(bounds) - 1:
        return float(bounds[-2])
    if b == 0 and bounds[0] <= 0:
        return float(bounds[0])
    start, end = (0.0, float(bounds[0])) if b == 0 else (float(bounds[b - 1]), float(bounds[b]))
    lower = 0.0 if b == 0 else float(counts[b - 1])
    count = float(counts[b]) - lower
    rank -= lower
    return start + (end - start) * (rank / count) if count else start
