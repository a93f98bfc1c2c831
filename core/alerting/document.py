"""The alerting document (`argus alerts apply FILE`, docs/alerting.md): YAML validated as a
whole into an `AlertConfig`.

Every error names the line and the field (`alerts.yaml:14: rules[2].condition: ...`), and
all of them are reported at once (up to MAX_ERRORS). Hostile input is bounded: the document
is at most MAX_DOCUMENT_BYTES, YAML is only composed (SafeLoader: no Python tags, no object
construction), only the core YAML tags are accepted, and the node graph is walked with a
budget of MAX_NODES so that an alias bomb (`&a [*a, *a, ...]` nested) or a recursive alias
fails fast instead of expanding.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.alerting.model import (
    MAX_WINDOW_MS,
    MIN_INTERVAL_MS,
    MIN_WINDOW_MS,
    NAME_PATTERN,
    AlertConfig,
    AlertRule,
    AppriseTarget,
    Condition,
    ConditionOp,
    EmailTarget,
    EscalationPolicy,
    EscalationStep,
    InhibitRule,
    LabelMatcher,
    NoDataPolicy,
    PushTarget,
    Receiver,
    Route,
    RuleQuery,
    SecretRef,
    SmsTarget,
    TimeInterval,
    TimeRange,
    WebhookTarget,
)
from core.alerting.secrets import parse_secret_ref
from core.durations import format_duration_ms, parse_duration_ms
from core.errors import InvalidArgument
from core.regex import compile_full_match

MAX_DOCUMENT_BYTES: Final = 1 << 20
MAX_NODES: Final = 100_000
"""Nodes visited, aliases counted each time they are used (what a loader would build)."""
MAX_ERRORS: Final = 50
MAX_TEXT_CHARS: Final = 4_096

_NAME: Final = re.compile(NAME_PATTERN)
_LABEL: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:.]*")
_REGION: Final = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
_MATCHER: Final = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)(.*)", re.DOTALL)
_AGGS: Final = ("count", "sum", "min", "max", "avg", "last", "rate", "increase", "distinct")
_PERCENTILE: Final = re.compile(r"p(\d{1,3}(?:\.\d{1,6})?)")
_NUMBER: Final = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_COMPARE: Final = re.compile(rf"\s*(>=|<=|>|<)\s*{_NUMBER}\s*")
_RANGE: Final = re.compile(rf"\s*(outside|inside)\s+{_NUMBER}\s*\.\.\s*{_NUMBER}\s*")
_CHANGE: Final = re.compile(rf"\s*(change|percent_change)\s*>\s*{_NUMBER}\s+over\s+(\S+)\s*")
CONDITION_FORMS: Final = ", ".join(op.value for op in ConditionOp)
_TEMPLATE: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_TEMPLATE_FIELD: Final = re.compile(r"value|rule|query_url|labels\.[a-zA-Z_][a-zA-Z0-9_]*")
TEMPLATE_FIELDS: Final = "{{ value }}, {{ labels.NAME }}, {{ rule }}, {{ query_url }}"
_WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME_RANGE: Final = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_CORE_TAGS: Final = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq")
)

# libyaml's composer when PyYAML has it (4x faster: 1,000 rules in ~0.1 s instead of ~0.4 s).
_LOADER: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

T = TypeVar("T")


class _Invalid(InvalidArgument):
    """One error at one node; collected by the parser (never leaves this module)."""

    def __init__(self, node: Node | None, path: str, message: str) -> None:
        super().__init__(message, parameter=path)
        self.node = node
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class _Field:
    node: Node
    path: str


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[tuple[int, str, str]] = []
        self._constructor = SafeConstructor()

    # -- error collection

    def error(self, node: Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.errors.append((line, path or "document", message))

    def attempt(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Run one field's parse; record its error and carry on with the others."""
        try:
            return fn(*args, **kwargs)
        except _Skip:
            return None  # its fields reported their own errors
        except _Invalid as exc:
            self.error(exc.node, exc.path, exc.message)
            return None

    # -- node shapes

    def mapping(self, f: _Field, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, _Field]:
        if not isinstance(f.node, MappingNode):
            raise _Invalid(f.node, f.path, "expected a mapping (key: value)")
        out: dict[str, _Field] = {}
        for key_node, value_node in f.node.value:
            key = self._constructor.construct_object(key_node, deep=True) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                self.error(key_node, f.path, "keys must be strings")
                continue
            sub = f"{f.path}.{key}" if f.path else key
            if key not in allowed:
                self.error(key_node, sub, f"unknown field; expected one of {', '.join(allowed)}")
                continue
            if key in out:
                self.error(key_node, sub, "given twice")
                continue
            out[key] = _Field(value_node, sub)
        for key in required:
            if key not in out:
                self.error(f.node, f"{f.path}.{key}" if f.path else key, "required")
        return out

    def sequence(self, f: _Field) -> list[_Field]:
        if not isinstance(f.node, SequenceNode):
            raise _Invalid(f.node, f.path, "expected a list")
        return [_Field(node, f"{f.path}[{i}]") for i, node in enumerate(f.node.value)]

    def scalar(self, f: _Field) -> Any:
        if not isinstance(f.node, ScalarNode):
            raise _Invalid(f.node, f.path, "expected a single value, not a list or mapping")
        try:
            return self._constructor.construct_object(f.node, deep=True)
        except (ConstructorError, ValueError) as exc:
            raise _Invalid(f.node, f.path, f"cannot read the value ({exc})") from None

    def text(self, f: _Field, *, allow_empty: bool = False) -> str:
        value = self.scalar(f)
        if not isinstance(value, str):
            if value is None and allow_empty:
                return ""
            # `no`, `1e3`, `2026-01-01` would otherwise silently become booleans, numbers, dates.
            raise _Invalid(f.node, f.path, "expected text (quote it)")
        if not value and not allow_empty:
            raise _Invalid(f.node, f.path, "must not be empty")
        if len(value) > MAX_TEXT_CHARS:
            raise _Invalid(f.node, f.path, f"longer than {MAX_TEXT_CHARS} characters")
        return value

    def texts(self, f: _Field) -> tuple[str, ...]:
        return tuple(self.text(item) for item in self.sequence(f))

    def boolean(self, f: _Field) -> bool:
        value = self.scalar(f)
        if not isinstance(value, bool):
            raise _Invalid(f.node, f.path, "expected true or false")
        return value

    def number(self, f: _Field) -> float:
        value = self.scalar(f)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise _Invalid(f.node, f.path, "expected a number")
        return float(value)

    def integer(self, f: _Field, low: int, high: int) -> int:
        value = self.scalar(f)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(f.node, f.path, f"expected a whole number from {low} to {high}")
        return value

    def duration(self, f: _Field, *, allow_zero: bool = True) -> int:
        value = self.scalar(f)
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else self.text(f)
        try:
            return parse_duration_ms(text, parameter=f.path, allow_zero=allow_zero)
        except InvalidArgument as exc:
            raise _Invalid(f.node, f.path, str(exc).removeprefix(f"{f.path}: ")) from None

    def name(self, f: _Field) -> str:
        value = self.text(f)
        if not _NAME.fullmatch(value):
            raise _Invalid(
                f.node, f.path, f"{value[:40]!r} is not a name: a letter or _, then up to 127 letters, digits, _ . : -"
            )
        return value

    def label_name(self, f: _Field) -> str:
        value = self.text(f)
        if not _LABEL.fullmatch(value):
            raise _Invalid(f.node, f.path, f"{value[:40]!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        return value

    def string_map(self, f: _Field, *, templates: bool = False) -> dict[str, str]:
        if not isinstance(f.node, MappingNode):
            raise _Invalid(f.node, f.path, "expected a mapping (key: value)")
        out: dict[str, str] = {}
        for key_node, value_node in f.node.value:
            key = self.attempt(self.label_name, _Field(key_node, f.path))
            if key is None:
                continue
            sub = _Field(value_node, f"{f.path}.{key}")
            value = self.attempt(self.text, sub, allow_empty=True)
            if value is None:
                continue
            if templates:
                self.attempt(check_template, value, node=sub.node, path=sub.path)
            out[key] = value
        return out

    def secret(self, f: _Field) -> SecretRef:
        value = self.text(f)
        try:
            return parse_secret_ref(value, parameter=f.path)
        except InvalidArgument as exc:
            raise _Invalid(f.node, f.path, str(exc).removeprefix(f"{f.path}: ")) from None

    def matcher(self, f: _Field) -> LabelMatcher:
        value = self.text(f)
        try:
            return parse_label_matcher(value, parameter=f.path)
        except InvalidArgument as exc:
            raise _Invalid(f.node, f.path, str(exc).removeprefix(f"{f.path}: ")) from None

    def matchers(self, f: _Field) -> tuple[LabelMatcher, ...]:
        found = [self.attempt(self.matcher, item) for item in self.sequence(f)]
        return tuple(m for m in found if m is not None)


def parse_label_matcher(text: str, *, parameter: str) -> LabelMatcher:
    """`label=value`, `label!=value`, `label=~re2` or `label!~re2` (the value may be quoted);
    InvalidArgument naming `parameter` otherwise, or for a pattern RE2 refuses."""
    m = _MATCHER.fullmatch(text)
    if m is None or len(text) > MAX_TEXT_CHARS:
        raise InvalidArgument(
            f"{parameter}: {text[:40]!r} is not a matcher: label=value, label!=value, label=~re2, label!~re2",
            parameter=parameter,
        )
    name, op, raw = m.group(1), m.group(2), m.group(3).strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        raw = raw[1:-1]
    if op in ("=~", "!~"):
        compile_full_match(raw, parameter=parameter, what=f"for label {name}")
    return LabelMatcher(name=name, op=op, value=raw)


def check_template(text: str, *, node: Node | None = None, path: str = "") -> None:
    """A template may only use {{ value }}, {{ labels.NAME }}, {{ rule }} and {{ query_url }}."""
    rest = _TEMPLATE.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise _Invalid(node, path, "unbalanced {{ or }} in template")
    for m in _TEMPLATE.finditer(text):
        inner = m.group(1).strip()
        if not _TEMPLATE_FIELD.fullmatch(inner):
            raise _Invalid(node, path, f"unknown template field {{{{ {inner[:40]} }}}}; use {TEMPLATE_FIELDS}")


def template_fields(text: str) -> list[str]:
    """The fields a (valid) template uses, in order: `value`, `labels.host`, ..."""
    return [m.group(1).strip() for m in _TEMPLATE.finditer(text)]


def _budget(root: Node) -> None:
    """Walk the node graph as a loader would expand it; refuse it past MAX_NODES or with a
    tag outside core YAML."""
    seen = 0
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise _Invalid(node, "", f"document expands to more than {MAX_NODES:,} nodes (an alias bomb?)")
        if node.tag not in _CORE_TAGS:
            raise _Invalid(node, "", f"tag {node.tag!r} is not allowed (only plain YAML values)")
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def parse_document(text: str | bytes, *, source: str = "alerts.yaml") -> AlertConfig:
    """The AlertConfig of a document; InvalidArgument listing every error as
    `<source>:<line>: <field>: <message>` otherwise."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidArgument(
            f"{source}: the document is {len(raw):,} bytes, over the limit of {MAX_DOCUMENT_BYTES:,}",
            parameter="document",
        )
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{source}: not UTF-8 (byte {exc.start})", parameter="document") from None
    try:
        root = yaml.compose(body, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise InvalidArgument(f"{source}:{line}: not valid YAML: {exc.problem or exc}", parameter="document") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{source}: not valid YAML: {exc}", parameter="document") from None
    if root is None:
        return AlertConfig()
    parser = _Parser(source)
    try:
        _budget(root)
    except _Invalid as exc:
        parser.error(exc.node, exc.path or "document", exc.message)
        config = None
    else:
        config = _document(parser, _Field(root, ""))
    if parser.errors or config is None:
        unique = sorted(set(parser.errors))  # a node checked twice (shape, then references) reports once
        shown = unique[:MAX_ERRORS]
        lines = [f"{source}:{line}: {path}: {message}" for line, path, message in shown]
        if len(unique) > MAX_ERRORS:
            lines.append(f"... and {len(unique) - MAX_ERRORS} more errors")
        first_path = shown[0][1] if shown else "document"
        raise InvalidArgument("\n".join(lines), parameter=first_path)
    return config


def _unique(p: _Parser, items: Iterator[tuple[_Field, T | None]], key: Callable[[T], str], what: str) -> dict[str, T]:
    out: dict[str, T] = {}
    for f, item in items:
        if item is None:
            continue
        name = key(item)
        if name in out:
            p.error(f.node, f.path + ".name", f"{what} {name!r} is defined twice")
            continue
        out[name] = item
    return out


def _document(p: _Parser, root: _Field) -> AlertConfig | None:
    top = p.attempt(
        lambda: p.mapping(
            root, ("rules", "receivers", "route", "inhibit_rules", "time_intervals", "escalation_policies")
        )
    )
    if top is None:
        return None

    def each(key: str, parse: Callable[[_Parser, _Field], T]) -> list[tuple[_Field, T | None]]:
        if key not in top:
            return []
        items = p.attempt(lambda: p.sequence(top[key])) or []
        return [(item, p.attempt(parse, p, item)) for item in items]

    rules = _unique(p, iter(each("rules", _rule)), lambda r: r.name, "rule")
    receivers = _unique(p, iter(each("receivers", _receiver)), lambda r: r.name, "receiver")
    intervals = _unique(p, iter(each("time_intervals", _time_interval)), lambda t: t.name, "time interval")
    policies = _unique(p, iter(each("escalation_policies", _escalation)), lambda e: e.name, "escalation policy")
    inhibit = tuple(i for _, i in each("inhibit_rules", _inhibit) if i is not None)

    # References: escalation steps name receivers.
    if "escalation_policies" in top:
        for item in p.attempt(lambda: p.sequence(top["escalation_policies"])) or []:
            _check_escalation_refs(p, item, receivers)
    route: Route | None = None
    if "route" in top:
        route = p.attempt(lambda: _route(p, top["route"], root_route=True))
        if route is not None:
            _check_route_refs(p, top["route"], route, receivers, intervals, policies)
    return AlertConfig(
        rules=rules,
        receivers=receivers,
        route=route,
        inhibit_rules=inhibit,
        time_intervals=intervals,
        escalation_policies=policies,
    )


def _rule(p: _Parser, f: _Field) -> AlertRule:
    m = p.mapping(
        f,
        (
            "name", "query", "window", "condition", "for", "keep_firing_for", "no_data", "no_data_timeout",
            "interval", "severity", "labels", "annotations",
        ),
        required=("name", "query", "window", "condition"),
    )  # fmt: skip
    name = p.attempt(lambda: p.name(m["name"])) if "name" in m else None
    query = p.attempt(lambda: _query(p, m["query"])) if "query" in m else None
    window = p.attempt(lambda: _bounded(p, m["window"], MIN_WINDOW_MS, MAX_WINDOW_MS)) if "window" in m else None
    condition = p.attempt(lambda: _condition(p, m["condition"])) if "condition" in m else None
    opt: dict[str, Any] = {}
    for key, attr in (
        ("for", "for_ms"),
        ("keep_firing_for", "keep_firing_for_ms"),
        ("no_data_timeout", "no_data_timeout_ms"),
    ):
        if key in m:
            value = p.attempt(p.duration, m[key])
            if value is not None:
                opt[attr] = value
    if "interval" in m:
        interval = p.attempt(lambda: _bounded(p, m["interval"], MIN_INTERVAL_MS, MAX_WINDOW_MS))
        if interval is not None:
            opt["interval_ms"] = interval
    if "no_data" in m:
        policy = p.attempt(lambda: _choice(p, m["no_data"], [x.value for x in NoDataPolicy]))
        if policy is not None:
            opt["no_data"] = NoDataPolicy(policy)
    if "severity" in m:
        severity = p.attempt(lambda: p.label_name(m["severity"]))
        if severity is not None:
            opt["severity"] = severity
    if "labels" in m:
        labels = p.attempt(lambda: p.string_map(m["labels"]))
        if labels is not None:
            opt["labels"] = labels
    if "annotations" in m:
        annotations = p.attempt(lambda: p.string_map(m["annotations"], templates=True))
        if annotations is not None:
            opt["annotations"] = annotations
    if name is None or query is None or window is None or condition is None:
        raise _Skip()
    return AlertRule(name=name, query=query, window_ms=window, condition=condition, **opt)


class _Skip(_Invalid):
    """An item whose fields already reported their errors."""

    def __init__(self) -> None:
        super().__init__(None, "", "")


def _bounded(p: _Parser, f: _Field, low: int, high: int) -> int:
    ms = p.duration(f, allow_zero=False)
    if not low <= ms <= high:
        raise _Invalid(f.node, f.path, f"must be from {format_duration_ms(low)} to {format_duration_ms(high)}")
    return ms


def _choice(p: _Parser, f: _Field, options: list[str]) -> str:
    value = p.text(f)
    if value not in options:
        raise _Invalid(f.node, f.path, f"expected one of {', '.join(options)}")
    return value


def _query(p: _Parser, f: _Field) -> RuleQuery:
    m = p.mapping(f, ("metric", "region", "where", "group_by", "agg"), required=("metric",))
    metric = p.attempt(lambda: p.text(m["metric"])) if "metric" in m else None
    if metric is not None and not _METRIC.fullmatch(metric):
        p.error(m["metric"].node, m["metric"].path, f"{metric[:40]!r} is not a metric name")
        metric = None
    opt: dict[str, Any] = {}
    if "region" in m:
        region = p.attempt(lambda: p.text(m["region"]))
        if region is not None and not _REGION.fullmatch(region):
            p.error(m["region"].node, m["region"].path, f"{region[:40]!r} is not a region")
        elif region is not None:
            opt["region"] = region
    if "where" in m:
        items = p.attempt(lambda: p.sequence(m["where"])) or []
        where = [p.attempt(_where, p, item) for item in items]
        opt["where"] = tuple(w for w in where if w is not None)
    if "group_by" in m:
        items = p.attempt(lambda: p.sequence(m["group_by"])) or []
        group = [p.attempt(p.label_name, item) for item in items]
        opt["group_by"] = tuple(g for g in group if g is not None)
    if "agg" in m:
        agg = p.attempt(lambda: _agg(p, m["agg"]))
        if agg is not None:
            opt["agg"] = agg
    if metric is None:
        raise _Skip()
    return RuleQuery(metric=metric, **opt)


def _where(p: _Parser, f: _Field) -> str:
    """A matcher in the canonical text `/api/v1/query` parses (`name` `op` value verbatim):
    quotes and surrounding spaces the document may use are gone."""
    m = p.matcher(f)
    return f"{m.name}{m.op}{m.value}"


def _agg(p: _Parser, f: _Field) -> str:
    value = p.text(f)
    pct = _PERCENTILE.fullmatch(value)
    if value in _AGGS or (pct is not None and float(pct.group(1)) <= 100):
        return value
    raise _Invalid(f.node, f.path, f"expected one of {', '.join(_AGGS)} or pNN (p50, p99, p99.9)")


def _condition(p: _Parser, f: _Field) -> Condition:
    value = p.text(f)
    if m := _COMPARE.fullmatch(value):
        return Condition(op=ConditionOp(m.group(1)), threshold=float(m.group(2)))
    if m := _RANGE.fullmatch(value):
        low, high = float(m.group(2)), float(m.group(3))
        if low > high:
            raise _Invalid(f.node, f.path, f"range {low:g}..{high:g} is empty (low > high)")
        return Condition(op=ConditionOp(m.group(1)), low=low, high=high)
    if m := _CHANGE.fullmatch(value):
        return Condition(op=ConditionOp(m.group(1)), threshold=float(m.group(2)), over_ms=_over(f, m.group(3)))
    raise _Invalid(
        f.node,
        f.path,
        f"expected one of {CONDITION_FORMS} (e.g. '> 90', 'outside 10..20', 'percent_change > 50 over 1h')",
    )


def _over(f: _Field, text: str) -> int:
    try:
        ms = parse_duration_ms(text, parameter=f.path)
    except InvalidArgument as exc:
        raise _Invalid(f.node, f.path, str(exc).removeprefix(f"{f.path}: ")) from None
    if ms > MAX_WINDOW_MS:
        raise _Invalid(f.node, f.path, "`over` must be at most 1d")
    return ms


def _receiver(p: _Parser, f: _Field) -> Receiver:
    m = p.mapping(f, ("name", "email", "webhook", "sms", "push", "apprise"), required=("name",))
    name = p.attempt(lambda: p.name(m["name"])) if "name" in m else None

    def targets(key: str, parse: Callable[[_Parser, _Field], T]) -> tuple[T, ...]:
        if key not in m:
            return ()
        items = p.attempt(lambda: p.sequence(m[key])) or []
        found = [p.attempt(parse, p, item) for item in items]
        return tuple(t for t in found if t is not None)

    receiver_channels = {
        "email": targets("email", _email),
        "webhook": targets("webhook", _webhook),
        "sms": targets("sms", _sms),
        "push": targets("push", _push),
        "apprise": targets("apprise", _apprise),
    }
    if name is None:
        raise _Skip()
    if not any(key in m for key in receiver_channels):
        raise _Invalid(f.node, f.path, "a receiver needs at least one of email, webhook, sms, push, apprise")
    return Receiver(name=name, **receiver_channels)  # type: ignore[arg-type]


def _email(p: _Parser, f: _Field) -> EmailTarget:
    m = p.mapping(
        f,
        ("to", "from", "smtp_host", "smtp_port", "starttls", "implicit_tls", "username", "password", "timeout"),
        required=("to", "from", "smtp_host"),
    )
    to = p.attempt(lambda: p.texts(m["to"])) if "to" in m else None
    from_addr = p.attempt(lambda: p.text(m["from"])) if "from" in m else None
    host = p.attempt(lambda: p.text(m["smtp_host"])) if "smtp_host" in m else None
    opt: dict[str, Any] = {}
    for key, parse in (
        ("smtp_port", lambda x: p.integer(x, 1, 65535)),
        ("starttls", p.boolean),
        ("implicit_tls", p.boolean),
        ("username", p.text),
        ("password", p.secret),
        ("timeout", lambda x: _bounded(p, x, 1, 600_000)),
    ):
        if key in m:
            value = p.attempt(parse, m[key])
            if value is not None:
                opt["timeout_ms" if key == "timeout" else key] = value
    if to is not None and not to:
        p.error(m["to"].node, m["to"].path, "needs at least one address")
    if opt.get("starttls") and opt.get("implicit_tls"):
        p.error(f.node, f.path, "starttls and implicit_tls exclude each other")
    if to is None or from_addr is None or host is None:
        raise _Skip()
    return EmailTarget(to=to, from_addr=from_addr, smtp_host=host, **opt)


def _webhook(p: _Parser, f: _Field) -> WebhookTarget:
    m = p.mapping(f, ("url", "secret", "headers", "timeout"), required=("url",))
    url = p.attempt(lambda: p.text(m["url"])) if "url" in m else None
    if url is not None and not url.startswith(("http://", "https://")):
        p.error(m["url"].node, m["url"].path, "expected an http:// or https:// URL")
        url = None
    opt: dict[str, Any] = {}
    if "secret" in m:
        secret = p.attempt(lambda: p.secret(m["secret"]))
        if secret is not None:
            opt["secret"] = secret
    if "headers" in m:
        headers = p.attempt(lambda: _headers(p, m["headers"]))
        if headers is not None:
            opt["headers"] = headers
    if "timeout" in m:
        timeout = p.attempt(lambda: _bounded(p, m["timeout"], 1, 600_000))
        if timeout is not None:
            opt["timeout_ms"] = timeout
    if url is None:
        raise _Skip()
    return WebhookTarget(url=url, **opt)


def _headers(p: _Parser, f: _Field) -> dict[str, str]:
    if not isinstance(f.node, MappingNode):
        raise _Invalid(f.node, f.path, "expected a mapping (header: value)")
    out: dict[str, str] = {}
    for key_node, value_node in f.node.value:
        key = p.text(_Field(key_node, f.path))
        sub = _Field(value_node, f"{f.path}.{key}")
        if key.lower() in ("authorization", "proxy-authorization", "cookie"):
            # A credential in a header would travel in config events.
            raise _Invalid(key_node, sub.path, "credentials are not allowed in headers; use `secret` (HMAC signature)")
        out[key] = p.text(sub, allow_empty=True)
    return out


def _sms(p: _Parser, f: _Field) -> SmsTarget:
    m = p.mapping(f, ("phone_numbers", "region", "endpoint_url"), required=("phone_numbers",))
    numbers = p.attempt(lambda: p.texts(m["phone_numbers"])) if "phone_numbers" in m else None
    if numbers is not None:
        bad = [n for n in numbers if not re.fullmatch(r"\+[1-9]\d{6,14}", n)]
        if bad or not numbers:
            p.error(m["phone_numbers"].node, m["phone_numbers"].path, "expected E.164 numbers (+15551234567)")
            numbers = None
    opt = _aws(p, m)
    if numbers is None:
        raise _Skip()
    return SmsTarget(phone_numbers=numbers, **opt)


def _push(p: _Parser, f: _Field) -> PushTarget:
    m = p.mapping(f, ("target_arns", "region", "endpoint_url"), required=("target_arns",))
    arns = p.attempt(lambda: p.texts(m["target_arns"])) if "target_arns" in m else None
    if arns is not None and (not arns or any(not a.startswith("arn:") for a in arns)):
        p.error(m["target_arns"].node, m["target_arns"].path, "expected SNS endpoint ARNs (arn:aws:sns:...)")
        arns = None
    opt = _aws(p, m)
    if arns is None:
        raise _Skip()
    return PushTarget(target_arns=arns, **opt)


def _aws(p: _Parser, m: dict[str, _Field]) -> dict[str, Any]:
    opt: dict[str, Any] = {}
    for key in ("region", "endpoint_url"):
        if key in m:
            value = p.attempt(p.text, m[key])
            if value is not None:
                opt[key] = value
    return opt


def _apprise(p: _Parser, f: _Field) -> AppriseTarget:
    m = p.mapping(f, ("url",), required=("url",))
    if "url" not in m:
        raise _Skip()
    return AppriseTarget(url=p.secret(m["url"]))


_ROUTE_FIELDS: Final = (
    "receiver", "matchers", "group_by", "group_wait", "group_interval", "repeat_interval", "send_resolved",
    "continue", "mute_time_intervals", "escalation", "routes",
)  # fmt: skip


def _route(p: _Parser, f: _Field, *, root_route: bool = False, depth: int = 0, parent: Route | None = None) -> Route:
    """A route; a child takes its parent's grouping, timings and send_resolved unless it sets them."""
    if depth > 32:
        raise _Invalid(f.node, f.path, "routes nest deeper than 32 levels")
    m = p.mapping(f, _ROUTE_FIELDS, required=("receiver",))
    receiver = p.attempt(lambda: p.name(m["receiver"])) if "receiver" in m else None
    opt: dict[str, Any] = {}
    if parent is not None:
        opt.update(
            group_by=parent.group_by,
            group_wait_ms=parent.group_wait_ms,
            group_interval_ms=parent.group_interval_ms,
            repeat_interval_ms=parent.repeat_interval_ms,
            send_resolved=parent.send_resolved,
        )
    if "matchers" in m:
        if root_route:
            p.error(
                m["matchers"].node,
                m["matchers"].path,
                "the root route matches every alert; put matchers on child routes",
            )
        else:
            matchers = p.attempt(lambda: p.matchers(m["matchers"]))
            if matchers is not None:
                opt["matchers"] = matchers
    if "group_by" in m:
        items = p.attempt(lambda: p.sequence(m["group_by"])) or []
        group = [p.attempt(p.label_name, item) for item in items]
        opt["group_by"] = tuple(g for g in group if g is not None)
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in m:
            value = p.attempt(p.duration, m[key], allow_zero=key == "group_wait")
            if value is not None:
                opt[f"{key}_ms"] = value
    for key, attr in (("send_resolved", "send_resolved"), ("continue", "continue_matching")):
        if key in m:
            flag = p.attempt(p.boolean, m[key])
            if flag is not None:
                opt[attr] = flag
    if "mute_time_intervals" in m:
        items = p.attempt(lambda: p.sequence(m["mute_time_intervals"])) or []
        names = [p.attempt(p.name, item) for item in items]
        opt["mute_time_intervals"] = tuple(n for n in names if n is not None)
    if "escalation" in m:
        escalation = p.attempt(lambda: p.name(m["escalation"]))
        if escalation is not None:
            opt["escalation"] = escalation
    if receiver is None:
        raise _Skip()
    this = Route(receiver=receiver, **opt)
    if "routes" in m:
        items = p.attempt(lambda: p.sequence(m["routes"])) or []
        children = [p.attempt(_route, p, item, depth=depth + 1, parent=this) for item in items]
        this = replace(this, routes=tuple(c for c in children if c is not None))
    return this


def _check_route_refs(
    p: _Parser,
    f: _Field,
    route: Route,
    receivers: dict[str, Receiver],
    intervals: dict[str, TimeInterval],
    policies: dict[str, EscalationPolicy],
) -> None:
    """Every name a route uses exists (walks the nodes again for the lines)."""
    if not isinstance(f.node, MappingNode):
        return
    fields = {k.value: _Field(v, f"{f.path}.{k.value}") for k, v in f.node.value if isinstance(k, ScalarNode)}
    if route.receiver not in receivers:
        p.error(fields["receiver"].node, fields["receiver"].path, f"receiver {route.receiver!r} is not defined")
    if route.escalation and route.escalation not in policies:
        p.error(
            fields["escalation"].node,
            fields["escalation"].path,
            f"escalation policy {route.escalation!r} is not defined",
        )
    for i, name in enumerate(route.mute_time_intervals):
        if name not in intervals:
            node = fields["mute_time_intervals"].node
            item = node.value[i] if isinstance(node, SequenceNode) and i < len(node.value) else node
            p.error(item, f"{fields['mute_time_intervals'].path}[{i}]", f"time interval {name!r} is not defined")
    if route.routes and "routes" in fields and isinstance(fields["routes"].node, SequenceNode):
        nodes = fields["routes"].node.value
        if len(nodes) == len(route.routes):  # children with errors were dropped: their errors stand
            for i, (child, node) in enumerate(zip(route.routes, nodes, strict=True)):
                _check_route_refs(
                    p, _Field(node, f"{fields['routes'].path}[{i}]"), child, receivers, intervals, policies
                )


def _inhibit(p: _Parser, f: _Field) -> InhibitRule:
    m = p.mapping(f, ("source", "target", "equal"), required=("source", "target"))
    source = p.attempt(lambda: p.matchers(m["source"])) if "source" in m else None
    target = p.attempt(lambda: p.matchers(m["target"])) if "target" in m else None
    equal: tuple[str, ...] = ()
    if "equal" in m:
        items = p.attempt(lambda: p.sequence(m["equal"])) or []
        found = [p.attempt(p.label_name, item) for item in items]
        equal = tuple(e for e in found if e is not None)
    for key, value in (("source", source), ("target", target)):
        if value == ():
            p.error(m[key].node, m[key].path, "needs at least one matcher")
    if not source or not target:
        raise _Skip()
    return InhibitRule(source=source, target=target, equal=equal)


def _time_interval(p: _Parser, f: _Field) -> TimeInterval:
    m = p.mapping(f, ("name", "weekdays", "times", "timezone"), required=("name",))
    name = p.attempt(lambda: p.name(m["name"])) if "name" in m else None
    opt: dict[str, Any] = {}
    if "weekdays" in m:
        items = p.attempt(lambda: p.sequence(m["weekdays"])) or []
        days = [p.attempt(_weekday, p, item) for item in items]
        opt["weekdays"] = tuple(sorted({d for d in days if d is not None}))
    if "times" in m:
        items = p.attempt(lambda: p.sequence(m["times"])) or []
        ranges = [p.attempt(_time_range, p, item) for item in items]
        opt["times"] = tuple(r for r in ranges if r is not None)
    if "timezone" in m:
        tz = p.attempt(lambda: _timezone(p, m["timezone"]))
        if tz is not None:
            opt["timezone"] = tz
    if name is None:
        raise _Skip()
    return TimeInterval(name=name, **opt)


def _weekday(p: _Parser, f: _Field) -> int:
    value = p.text(f).lower()
    if value in _WEEKDAYS:
        return _WEEKDAYS.index(value)
    raise _Invalid(f.node, f.path, f"expected a weekday: {', '.join(_WEEKDAYS)}")


def _time_range(p: _Parser, f: _Field) -> TimeRange:
    value = p.text(f)
    m = _TIME_RANGE.fullmatch(value)
    if m is not None:
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 < 24 and m1 < 60 and m2 < 60 and start < end <= 1440:
            return TimeRange(start_minute=start, end_minute=end)
    raise _Invalid(f.node, f.path, "expected HH:MM-HH:MM with start before end (00:00-24:00 at most)")


def _timezone(p: _Parser, f: _Field) -> str:
    value = p.text(f)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _Invalid(
            f.node, f.path, f"unknown time zone {value[:40]!r} (an IANA name such as Europe/Berlin)"
        ) from None
    return value


def _escalation(p: _Parser, f: _Field) -> EscalationPolicy:
    m = p.mapping(f, ("name", "steps"), required=("name", "steps"))
    name = p.attempt(lambda: p.name(m["name"])) if "name" in m else None
    steps: list[EscalationStep] = []
    if "steps" in m:
        items = p.attempt(lambda: p.sequence(m["steps"])) or []
        for item in items:
            step = p.attempt(_step, p, item)
            if step is not None:
                steps.append(step)
        if not items:
            p.error(m["steps"].node, m["steps"].path, "needs at least one step")
        for prev, step in itertools.pairwise(steps):
            if step.after_ms < prev.after_ms:
                p.error(m["steps"].node, m["steps"].path, "steps must be in order of `after`")
                break
    if name is None or not steps:
        raise _Skip()
    return EscalationPolicy(name=name, steps=tuple(steps))


def _step(p: _Parser, f: _Field) -> EscalationStep:
    m = p.mapping(f, ("after", "receivers"), required=("after", "receivers"))
    after = p.attempt(lambda: p.duration(m["after"])) if "after" in m else None
    receivers = None
    if "receivers" in m:
        items = p.attempt(lambda: p.sequence(m["receivers"])) or []
        found = [p.attempt(p.name, item) for item in items]
        receivers = tuple(r for r in found if r is not None)
        if not items:
            p.error(m["receivers"].node, m["receivers"].path, "needs at least one receiver")
    if after is None or not receivers:
        raise _Skip()
    return EscalationStep(after_ms=after, receivers=receivers)


def _check_escalation_refs(p: _Parser, f: _Field, receivers: dict[str, Receiver]) -> None:
    """Every receiver an escalation step names exists."""
    if not isinstance(f.node, MappingNode):
        return
    for key, value in f.node.value:
        if not (isinstance(key, ScalarNode) and key.value == "steps" and isinstance(value, SequenceNode)):
            continue
        for i, step in enumerate(value.value):
            if not isinstance(step, MappingNode):
                continue
            for skey, svalue in step.value:
                if isinstance(skey, ScalarNode) and skey.value == "receivers" and isinstance(svalue, SequenceNode):
                    for j, item in enumerate(svalue.value):
                        if isinstance(item, ScalarNode) and _NAME.fullmatch(item.value) and item.value not in receivers:
                            p.error(
                                item, f"{f.path}.steps[{i}].receivers[{j}]", f"receiver {item.value!r} is not defined"
                            )
