"""The dashboard schema, checked in one place (documented in docs/dashboards.md).

A dashboard *document* (what `argus dashboards export` writes and `import` / provisioning /
the HTTP API read) is one JSON object: `uid`, `title`, `folder`, `tags` (the metadata every
listing shows) and the *spec* (everything else: `panels`, `variables`, `time`, `refresh`,
`links`, `description`, `options`, `schemaVersion`). The gRPC API keeps the spec as JSON in
`Dashboard.spec_json`.

Input is hostile: the spec is capped in bytes, nesting, panels, targets, strings; unknown
fields are errors (a typo'd `gridpos` must not silently vanish); every error names the JSON
path of the bad field (`panels[3].targets[0].metric: required`), and all errors (at most
`MAX_ERRORS`) are reported together as one InvalidArgument whose `parameter` is the first
path. Validation never changes a spec: what is stored is the canonical JSON (sorted keys) of
exactly what was given, so dashboards round-trip as code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from core.durations import parse_duration_ms
from core.errors import InvalidArgument
from core.regex import compile_full_match
from core.validation import LABEL_NAME, METRIC_NAME

SCHEMA_VERSION: Final = 1
MAX_SPEC_BYTES: Final = 256 * 1024
MAX_PANELS: Final = 200
MAX_TARGETS: Final = 16
MAX_VARIABLES: Final = 32
MAX_LINKS: Final = 32
MAX_TAGS: Final = 32
MAX_TAG_CHARS: Final = 64
MAX_TITLE_CHARS: Final = 200
MAX_FOLDER_CHARS: Final = 255
MAX_TEXT_CHARS: Final = 1_024
MAX_LIST_ITEMS: Final = 64
MAX_DEPTH: Final = 12
MAX_ERRORS: Final = 50

PANEL_TYPES: Final = ("timeseries", "stat", "gauge", "bar", "table", "toplist", "heatmap", "alerts")
PERIODS: Final = ("auto", "5s", "1m", "5m", "1h", "1d")
AGGS: Final = ("count", "sum", "min", "max", "avg", "last", "rate", "increase", "distinct")
LEGEND_VALUES: Final = ("min", "max", "avg", "last", "total")
GRID_COLUMNS: Final = 24
MAX_GRID_H: Final = 100
MAX_GRID_Y: Final = 10_000

UID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_VAR_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_VAR_REF: Final = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_REF_ID: Final = re.compile(r"[A-Za-z0-9_]{1,16}")
_PCT: Final = re.compile(r"p(\d{1,2}(?:\.\d{1,3})?|100)")
_MATCHER: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*)", re.S)
_RELATIVE: Final = re.compile(r"now(?:([-+])(.+))?")
_COLOR: Final = re.compile(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?(?:[0-9a-fA-F]{2})?|[a-z]{1,20}")
_FOLDER_PART: Final = re.compile(r"[^/\x00-\x1f\x7f]{1,64}")
METADATA_FIELDS: Final = ("uid", "title", "folder", "tags")
BUILT_IN_VARIABLES: Final = frozenset({"__interval", "__range", "__from", "__to"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardDocument:
    """A validated dashboard: its metadata and the canonical JSON of its spec."""

    uid: str
    title: str
    folder: str
    tags: tuple[str, ...]
    spec_json: str


class _Errors:
    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        if len(self.found) <= MAX_ERRORS:
            self.found.append((path or "spec", message))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        shown = self.found[:MAX_ERRORS]
        lines = [f"{path}: {message}" for path, message in shown]
        if len(self.found) > MAX_ERRORS:
            lines.append(f"... and more errors (only the first {MAX_ERRORS} are shown)")
        raise InvalidArgument("\n".join(lines), parameter=shown[0][0])


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _printable(text: str) -> bool:
    return not any((ord(c) < 32 and c not in "\t\n") or ord(c) == 127 for c in text)


class _Checker:
    """Walks one spec collecting errors; each method checks one field and returns the value
    when it is usable (None otherwise, the error recorded)."""

    def __init__(self) -> None:
        self.errors = _Errors()
        self.variables: set[str] = set(BUILT_IN_VARIABLES)

    def fail(self, path: str, message: str) -> None:
        self.errors.add(path, message)

    def obj(
        self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.fail(_join(path, str(key)[:64]), f"unknown field (expected one of: {', '.join(allowed)})")
        for key in required:
            if key not in value:
                self.fail(_join(path, key), "required")
        return value

    def items(self, value: Any, path: str, limit: int) -> list[Any]:
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {_kind(value)}")
            return []
        if len(value) > limit:
            self.fail(path, f"at most {limit} items, got {len(value)}")
            return value[:limit]
        return value

    def text(
        self, value: Any, path: str, *, limit: int = MAX_TEXT_CHARS, empty: bool = True, multiline: bool = False
    ) -> str | None:
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_kind(value)}")
            return None
        if len(value) > limit:
            self.fail(path, f"at most {limit} characters, got {len(value)}")
            return None
        if not _printable(value) or (not multiline and "\n" in value):
            self.fail(path, "control characters are not allowed")
            return None
        if not empty and not value.strip():
            self.fail(path, "required (not empty)")
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {_kind(value)}")
            return None
        return value

    def integer(self, value: Any, path: str, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected a whole number, got {_kind(value)}")
            return None
        if not low <= value <= high:
            self.fail(path, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def number(self, value: Any, path: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, f"expected a number, got {_kind(value)}")
            return None
        if not math.isfinite(value) or abs(value) > 1e300:
            self.fail(path, "must be a finite number")
            return None
        return float(value)

    def choice(self, value: Any, path: str, options: tuple[str, ...]) -> str | None:
        text = self.text(value, path, limit=64)
        if text is not None and text not in options:
            self.fail(path, f"expected one of {', '.join(options)}, got {text!r}")
            return None
        return text

    def refs(self, text: str, path: str) -> bool:
        """Check the `$name` references of `text`; True when it has any."""
        found = False
        for m in _VAR_REF.finditer(text):
            found = True
            name = m.group(1) or m.group(2)
            if name not in self.variables:
                self.fail(path, f"unknown variable ${name} (define it in variables)")
        return found

    def free_form(self, value: Any, path: str, depth: int = 0) -> None:
        """Options a client keeps for itself: any JSON, bounded."""
        if depth > MAX_DEPTH:
            self.fail(path, f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(value, dict):
            if len(value) > MAX_LIST_ITEMS:
                self.fail(path, f"at most {MAX_LIST_ITEMS} fields, got {len(value)}")
                return
            for key, item in value.items():
                self.text(key, path, limit=64)
                self.free_form(item, _join(path, str(key)[:64]), depth + 1)
        elif isinstance(value, list):
            for i, item in enumerate(self.items(value, path, MAX_LIST_ITEMS * 4)):
                self.free_form(item, f"{path}[{i}]", depth + 1)
        elif isinstance(value, str):
            self.text(value, path, multiline=True)
        elif isinstance(value, float) or (
            isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53
        ):
            self.number(value, path)
            if isinstance(value, int) and abs(value) > 2**53:
                self.fail(path, "integers beyond ±2^53 do not survive JSON in a browser")


def _check_time_point(c: _Checker, value: Any, path: str) -> int | None:
    """A relative time (`now`, `now-1h`) is None; an absolute one its epoch ms."""
    if isinstance(value, int) and not isinstance(value, bool):
        return c.integer(value, path, 0, 10**14)
    text = c.text(value, path, limit=64, empty=False)
    if text is None:
        return None
    m = _RELATIVE.fullmatch(text.strip())
    if m is not None:
        if m.group(2) is not None:
            try:
                parse_duration_ms(m.group(2), parameter=path)
            except InvalidArgument:
                c.fail(path, f"cannot read {text!r}: use now, now-1h, now-30m, now-7d or an RFC 3339 time")
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        c.fail(path, f"cannot read {text!r}: use now, now-1h, now-30m, now-7d or an RFC 3339 time")
        return None
    if parsed.tzinfo is None:
        c.fail(path, f"{text!r} has no time zone offset (add Z or +02:00)")
        return None
    return int(parsed.timestamp() * 1000)


def _check_time(c: _Checker, value: Any, path: str) -> None:
    t = c.obj(value, path, ("from", "to", "timezone"), required=("from",))
    if t is None:
        return
    start = _check_time_point(c, t["from"], _join(path, "from")) if "from" in t else None
    end = _check_time_point(c, t["to"], _join(path, "to")) if "to" in t else None
    if start is not None and end is not None and start >= end:
        c.fail(_join(path, "to"), "must be after from")
    if "timezone" in t:
        c.text(t["timezone"], _join(path, "timezone"), limit=64)


def _check_refresh(c: _Checker, value: Any, path: str) -> None:
    text = c.text(value, path, limit=16)
    if text is None or text in ("", "off", "live"):
        return
    try:
        ms = parse_duration_ms(text, parameter=path)
    except InvalidArgument:
        c.fail(path, f"expected off, live or an interval such as 30s or 5m, got {text!r}")
        return
    if not 1_000 <= ms <= 86_400_000:
        c.fail(path, "the refresh interval must be between 1s and 1d")


def _check_variable(c: _Checker, value: Any, path: str, seen: set[str]) -> None:
    allowed = (
        "name",
        "label",
        "type",
        "metric",
        "labelName",
        "options",
        "multi",
        "includeAll",
        "current",
        "regex",
        "hide",
    )
    v = c.obj(value, path, allowed, required=("name",))
    if v is None:
        return
    name = c.text(v.get("name", ""), _join(path, "name"), limit=64)
    if name is not None:
        if not _VAR_NAME.fullmatch(name):
            c.fail(_join(path, "name"), "a variable name is letters, digits and '_' (not starting with a digit)")
        elif name in seen or name in BUILT_IN_VARIABLES:
            c.fail(_join(path, "name"), f"variable {name} is defined twice")
        seen.add(name)
    kind = c.choice(v.get("type", "label_values"), _join(path, "type"), ("label_values", "custom"))
    if "label" in v:
        c.text(v["label"], _join(path, "label"), limit=MAX_TITLE_CHARS)
    if kind == "label_values":
        if "labelName" not in v:
            c.fail(_join(path, "labelName"), "required for a label_values variable")
        else:
            label = c.text(v["labelName"], _join(path, "labelName"), limit=128)
            if label is not None and label != "region" and not LABEL_NAME.fullmatch(label):
                c.fail(_join(path, "labelName"), f"{label!r} is not a label name")
        if "metric" in v:
            metric = c.text(v["metric"], _join(path, "metric"), limit=256)
            if metric and not METRIC_NAME.fullmatch(metric):
                c.fail(_join(path, "metric"), f"{metric!r} is not a metric name")
    elif kind == "custom" and "options" not in v:
        c.fail(_join(path, "options"), "required for a custom variable (a list of values)")
    if "options" in v:
        for i, option in enumerate(c.items(v["options"], _join(path, "options"), MAX_LIST_ITEMS * 4)):
            c.text(option, f"{path}.options[{i}]", limit=256)
    for flag in ("multi", "includeAll", "hide"):
        if flag in v:
            c.boolean(v[flag], _join(path, flag))
    if "regex" in v:
        regex = c.text(v["regex"], _join(path, "regex"), limit=1024)
        if regex:
            try:
                compile_full_match(regex, parameter=_join(path, "regex"))
            except InvalidArgument as exc:
                c.fail(_join(path, "regex"), str(exc))
    if "current" in v:
        current = v["current"]
        if isinstance(current, list):
            for i, item in enumerate(c.items(current, _join(path, "current"), MAX_LIST_ITEMS * 4)):
                c.text(item, f"{path}.current[{i}]", limit=256)
        else:
            c.text(current, _join(path, "current"), limit=256)


def _check_matcher(c: _Checker, value: Any, path: str) -> None:
    text = c.text(value, path, limit=MAX_TEXT_CHARS)
    if text is None:
        return
    m = _MATCHER.fullmatch(text)
    if m is None:
        c.fail(path, f"expected name=value, name!=value, name=~regex or name!~regex, got {text[:64]!r}")
        return
    op, pattern = m.group(2), m.group(3)
    if c.refs(pattern, path):
        return  # checked once its variables are replaced, when the panel queries
    if op in ("=~", "!~"):
        try:
            compile_full_match(pattern, parameter=path)
        except InvalidArgument as exc:
            c.fail(path, str(exc))


def _check_target(c: _Checker, value: Any, path: str, ref_ids: set[str]) -> None:
    allowed = ("refId", "metric", "where", "group_by", "agg", "period", "region", "legend", "hide")
    t = c.obj(value, path, allowed, required=("metric",))
    if t is None:
        return
    if "refId" in t:
        ref = c.text(t["refId"], _join(path, "refId"), limit=16)
        if ref is not None:
            if not _REF_ID.fullmatch(ref):
                c.fail(_join(path, "refId"), "1-16 letters, digits or '_'")
            elif ref in ref_ids:
                c.fail(_join(path, "refId"), f"refId {ref} is used twice in this panel")
            ref_ids.add(ref)
    if "metric" in t:
        metric = c.text(t["metric"], _join(path, "metric"), limit=256, empty=False)
        if metric is not None and not c.refs(metric, _join(path, "metric")) and not METRIC_NAME.fullmatch(metric):
            c.fail(_join(path, "metric"), f"{metric[:64]!r} is not a metric name")
    if "where" in t:
        for i, matcher in enumerate(c.items(t["where"], _join(path, "where"), MAX_LIST_ITEMS)):
            _check_matcher(c, matcher, f"{path}.where[{i}]")
    if "group_by" in t:
        for i, label in enumerate(c.items(t["group_by"], _join(path, "group_by"), MAX_LIST_ITEMS)):
            name = c.text(label, f"{path}.group_by[{i}]", limit=128)
            if (
                name is not None
                and name not in ("*", "region")
                and not c.refs(name, f"{path}.group_by[{i}]")
                and not LABEL_NAME.fullmatch(name)
            ):
                c.fail(f"{path}.group_by[{i}]", f"{name[:64]!r} is not a label name")
    if "agg" in t:
        agg = c.text(t["agg"], _join(path, "agg"), limit=16)
        if agg and agg not in AGGS and not _PCT.fullmatch(agg):
            c.fail(_join(path, "agg"), f"expected one of {', '.join(AGGS)} or pNN (p50, p99, p99.9), got {agg!r}")
    if "period" in t:
        c.choice(t["period"], _join(path, "period"), PERIODS)
    if "region" in t:
        region = c.text(t["region"], _join(path, "region"), limit=64)
        if region:
            c.refs(region, _join(path, "region"))
    if "legend" in t:
        legend = c.text(t["legend"], _join(path, "legend"), limit=MAX_TITLE_CHARS)
        if legend:
            c.refs(legend, _join(path, "legend"))
    if "hide" in t:
        c.boolean(t["hide"], _join(path, "hide"))


def _check_thresholds(c: _Checker, value: Any, path: str) -> None:
    for i, step in enumerate(c.items(value, path, MAX_LIST_ITEMS)):
        s = c.obj(step, f"{path}[{i}]", ("value", "color", "label"), required=("value", "color"))
        if s is None:
            continue
        if "value" in s and s["value"] is not None:
            c.number(s["value"], f"{path}[{i}].value")
        if "color" in s:
            color = c.text(s["color"], f"{path}[{i}].color", limit=32)
            if color is not None and not _COLOR.fullmatch(color):
                c.fail(f"{path}[{i}].color", f"expected #rgb, #rrggbb or a color name, got {color!r}")
        if "label" in s:
            c.text(s["label"], f"{path}[{i}].label", limit=MAX_TITLE_CHARS)


def _check_legend(c: _Checker, value: Any, path: str) -> None:
    legend = c.obj(value, path, ("show", "placement", "values", "sortBy", "sortDesc"))
    if legend is None:
        return
    if "show" in legend:
        c.boolean(legend["show"], _join(path, "show"))
    if "placement" in legend:
        c.choice(legend["placement"], _join(path, "placement"), ("bottom", "right"))
    if "values" in legend:
        for i, item in enumerate(c.items(legend["values"], _join(path, "values"), len(LEGEND_VALUES))):
            c.choice(item, f"{path}.values[{i}]", LEGEND_VALUES)
    if "sortBy" in legend:
        c.choice(legend["sortBy"], _join(path, "sortBy"), ("name", *LEGEND_VALUES))
    if "sortDesc" in legend:
        c.boolean(legend["sortDesc"], _join(path, "sortDesc"))


def _check_grid(c: _Checker, value: Any, path: str) -> None:
    g = c.obj(value, path, ("x", "y", "w", "h"), required=("x", "y", "w", "h"))
    if g is None:
        return
    x = c.integer(g["x"], _join(path, "x"), 0, GRID_COLUMNS - 1) if "x" in g else None
    w = c.integer(g["w"], _join(path, "w"), 1, GRID_COLUMNS) if "w" in g else None
    if "y" in g:
        c.integer(g["y"], _join(path, "y"), 0, MAX_GRID_Y)
    if "h" in g:
        c.integer(g["h"], _join(path, "h"), 1, MAX_GRID_H)
    if x is not None and w is not None and x + w > GRID_COLUMNS:
        c.fail(_join(path, "w"), f"x + w must be at most {GRID_COLUMNS} (the grid's width), got {x + w}")


def _check_panel(c: _Checker, value: Any, path: str, ids: set[int]) -> None:
    allowed = (
        "id",
        "type",
        "title",
        "description",
        "gridPos",
        "targets",
        "unit",
        "decimals",
        "min",
        "max",
        "thresholds",
        "legend",
        "style",
        "stack",
        "links",
        "options",
    )
    p = c.obj(value, path, allowed, required=("type", "gridPos"))
    if p is None:
        return
    if "id" in p:
        panel_id = c.integer(p["id"], _join(path, "id"), 1, 2**31 - 1)
        if panel_id is not None:
            if panel_id in ids:
                c.fail(_join(path, "id"), f"panel id {panel_id} is used twice")
            ids.add(panel_id)
    kind = c.choice(p["type"], _join(path, "type"), PANEL_TYPES) if "type" in p else None
    if "title" in p:
        title = c.text(p["title"], _join(path, "title"), limit=MAX_TITLE_CHARS)
        if title:
            c.refs(title, _join(path, "title"))
    if "description" in p:
        c.text(p["description"], _join(path, "description"), limit=4 * MAX_TEXT_CHARS, multiline=True)
    if "gridPos" in p:
        _check_grid(c, p["gridPos"], _join(path, "gridPos"))
    if "targets" in p:
        targets = c.items(p["targets"], _join(path, "targets"), MAX_TARGETS)
        if kind == "alerts" and targets:
            c.fail(_join(path, "targets"), "an alerts panel has no targets (filter it in options)")
        ref_ids: set[str] = set()
        for i, target in enumerate(targets):
            _check_target(c, target, f"{path}.targets[{i}]", ref_ids)
    if "unit" in p:
        c.text(p["unit"], _join(path, "unit"), limit=32)
    if "decimals" in p:
        c.integer(p["decimals"], _join(path, "decimals"), 0, 10)
    low = c.number(p["min"], _join(path, "min")) if "min" in p and p["min"] is not None else None
    high = c.number(p["max"], _join(path, "max")) if "max" in p and p["max"] is not None else None
    if low is not None and high is not None and low >= high:
        c.fail(_join(path, "max"), "must be greater than min")
    if "thresholds" in p:
        _check_thresholds(c, p["thresholds"], _join(path, "thresholds"))
    if "legend" in p:
        _check_legend(c, p["legend"], _join(path, "legend"))
    if "style" in p:
        c.choice(p["style"], _join(path, "style"), ("line", "area", "bars", "points"))
    if "stack" in p:
        c.boolean(p["stack"], _join(path, "stack"))
    if "links" in p:
        for i, link in enumerate(c.items(p["links"], _join(path, "links"), MAX_LINKS)):
            _check_link(c, link, f"{path}.links[{i}]")
    if "options" in p:
        if not isinstance(p["options"], dict):
            c.fail(_join(path, "options"), f"expected an object, got {_kind(p['options'])}")
        else:
            c.free_form(p["options"], _join(path, "options"))


def _check_link(c: _Checker, value: Any, path: str) -> None:
    allowed = ("title", "url", "dashboard", "includeVars", "keepTime", "targetBlank", "tooltip")
    link = c.obj(value, path, allowed, required=("title",))
    if link is None:
        return
    if "title" in link:
        c.text(link["title"], _join(path, "title"), limit=MAX_TITLE_CHARS, empty=False)
    if ("url" in link) == ("dashboard" in link):
        c.fail(path, "give exactly one of url and dashboard (a uid)")
    if "url" in link:
        url = c.text(link["url"], _join(path, "url"), limit=2_048, empty=False)
        # Only web links: a `javascript:` or `data:` URL in a shared dashboard runs in a viewer's browser.
        if url is not None and not re.match(r"(https?://|/(?!/)|\?|#)", url, re.I):
            c.fail(_join(path, "url"), "must start with http://, https://, a path (/...), ? or #")
    if "dashboard" in link:
        uid = c.text(link["dashboard"], _join(path, "dashboard"), limit=64)
        if uid is not None and not UID.fullmatch(uid):
            c.fail(_join(path, "dashboard"), f"{uid!r} is not a dashboard uid")
    for flag in ("includeVars", "keepTime", "targetBlank"):
        if flag in link:
            c.boolean(link[flag], _join(path, flag))
    if "tooltip" in link:
        c.text(link["tooltip"], _join(path, "tooltip"), limit=MAX_TITLE_CHARS)


SPEC_FIELDS: Final = (
    "schemaVersion",
    "description",
    "time",
    "refresh",
    "variables",
    "panels",
    "links",
    "options",
)


def _depth_ok(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def check_spec(spec: Any, *, path: str = "spec") -> str:
    """Validate a spec (parsed JSON); returns its canonical JSON. InvalidArgument listing
    every error by path otherwise."""
    c = _Checker()
    if not _depth_ok(spec, MAX_DEPTH + 6):
        c.fail(path, f"nested deeper than {MAX_DEPTH + 6} levels")
        c.errors.raise_if_any()
    s = c.obj(spec, path, SPEC_FIELDS)
    if s is None:
        c.errors.raise_if_any()
    assert isinstance(s, dict)
    prefix = "" if path == "spec" else path

    def at(key: str) -> str:
        return _join(prefix, key)  # paths read `panels[3]...`, as users write them

    if "schemaVersion" in s:
        c.integer(s["schemaVersion"], at("schemaVersion"), SCHEMA_VERSION, SCHEMA_VERSION)
    if "description" in s:
        c.text(s["description"], at("description"), limit=4 * MAX_TEXT_CHARS, multiline=True)
    # Variables first: panels may reference them.
    seen: set[str] = set()
    if "variables" in s:
        variables = c.items(s["variables"], at("variables"), MAX_VARIABLES)
        for variable in variables:
            if isinstance(variable, dict) and isinstance(variable.get("name"), str):
                c.variables.add(variable["name"])
        for i, variable in enumerate(variables):
            _check_variable(c, variable, f"{at('variables')}[{i}]", seen)
    if "time" in s:
        _check_time(c, s["time"], at("time"))
    if "refresh" in s:
        _check_refresh(c, s["refresh"], at("refresh"))
    if "panels" in s:
        ids: set[int] = set()
        for i, panel in enumerate(c.items(s["panels"], at("panels"), MAX_PANELS)):
            _check_panel(c, panel, f"{at('panels')}[{i}]", ids)
    if "links" in s:
        for i, link in enumerate(c.items(s["links"], at("links"), MAX_LINKS)):
            _check_link(c, link, f"{at('links')}[{i}]")
    if "options" in s:
        if not isinstance(s["options"], dict):
            c.fail(at("options"), f"expected an object, got {_kind(s['options'])}")
        else:
            c.free_form(s["options"], at("options"))
    c.errors.raise_if_any()
    try:
        canonical = orjson.dumps(s, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:  # e.g. an integer past 64 bits from a YAML file
        raise InvalidArgument(f"spec: cannot be written as JSON ({exc})", parameter="spec") from None
    if len(canonical.encode()) > MAX_SPEC_BYTES:
        raise InvalidArgument(
            f"spec: {len(canonical.encode()):,} bytes, over the limit of {MAX_SPEC_BYTES:,}", parameter="spec"
        )
    return canonical


def parse_spec_json(spec_json: str) -> Any:
    """The spec of a `spec_json` string ("" is an empty spec), bounded before parsing."""
    # Before parsing: twice the stored limit, as a client may send it indented (the limit
    # itself applies to the canonical JSON).
    if len(spec_json) > 2 * MAX_SPEC_BYTES:
        raise InvalidArgument(
            f"spec_json: {len(spec_json):,} characters, over twice the limit of {MAX_SPEC_BYTES:,} bytes",
            parameter="spec_json",
        )
    if not spec_json.strip():
        return {}
    try:
        return orjson.loads(spec_json)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"spec_json: not valid JSON ({exc})", parameter="spec_json") from None


def check_uid(uid: str, *, path: str = "uid") -> str:
    if not isinstance(uid, str) or not UID.fullmatch(uid):
        shown = uid[:70] if isinstance(uid, str) else _kind(uid)
        raise InvalidArgument(
            f"{path}: a uid is 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit, got {shown!r}",
            parameter=path,
        )
    return uid


def uid_from_title(title: str) -> str:
    """A uid derived from a title ("Web servers (EU)" -> "web-servers-eu")."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:64].strip("-")
    return slug or "dashboard"


def check_metadata(
    *, uid: Any, title: Any, folder: Any = "", tags: Any = (), path: str = ""
) -> tuple[str, str, str, tuple[str, ...]]:
    """The checked (uid, title, folder, tags) of a dashboard; the folder is normalized
    (no leading, trailing or doubled '/')."""
    c = _Checker()
    checked_uid: str | None = None
    try:
        checked_uid = check_uid(uid, path=_join(path, "uid"))
    except InvalidArgument as exc:
        c.fail(_join(path, "uid"), str(exc).split(": ", 1)[1])
    checked_title = c.text(title, _join(path, "title"), limit=MAX_TITLE_CHARS, empty=False)
    checked_folder = c.text(folder, _join(path, "folder"), limit=MAX_FOLDER_CHARS)
    parts: list[str] = []
    if checked_folder:
        parts = [part.strip() for part in checked_folder.split("/") if part.strip()]
        if any(not _FOLDER_PART.fullmatch(part) for part in parts) or len(parts) > 8:
            c.fail(_join(path, "folder"), "at most 8 '/'-separated names of 1-64 characters")
    checked_tags: list[str] = []
    tag_list = list(tags) if isinstance(tags, tuple) else tags
    for i, tag in enumerate(c.items(tag_list, _join(path, "tags"), MAX_TAGS)):
        text = c.text(tag, f"{_join(path, 'tags')}[{i}]", limit=MAX_TAG_CHARS, empty=False)
        if text is not None and text not in checked_tags:
            checked_tags.append(text)
    c.errors.raise_if_any()
    assert checked_uid is not None and checked_title is not None
    return checked_uid, checked_title, "/".join(parts), tuple(checked_tags)


def check_document(document: Any, *, source: str = "") -> DashboardDocument:
    """A whole dashboard document (metadata and spec in one object, as files hold it)."""
    where = f"{source}: " if source else ""
    if not isinstance(document, dict):
        raise InvalidArgument(f"{where}a dashboard is a JSON object, got {_kind(document)}", parameter="dashboard")
    metadata = {k: document[k] for k in METADATA_FIELDS if k in document}
    spec = {k: v for k, v in document.items() if k not in METADATA_FIELDS}
    if "title" not in metadata:
        raise InvalidArgument(f"{where}title: required", parameter="title")
    title = metadata["title"]
    uid = metadata.get("uid") or (uid_from_title(title) if isinstance(title, str) else "")
    try:
        uid, title, folder, tags = check_metadata(
            uid=uid, title=title, folder=metadata.get("folder", ""), tags=metadata.get("tags", [])
        )
        spec_json = check_spec(spec, path="")
    except InvalidArgument as exc:
        if not source:
            raise
        raise InvalidArgument(f"{source}:\n{exc}", parameter=exc.parameter) from None
    return DashboardDocument(uid=uid, title=title, folder=folder, tags=tags, spec_json=spec_json)


def document_of(
    *, uid: str, title: str, folder: str, tags: tuple[str, ...] | list[str], spec_json: str
) -> dict[str, Any]:
    """The document (metadata + spec in one object) of a stored dashboard."""
    document: dict[str, Any] = {"uid": uid, "title": title}
    if folder:
        document["folder"] = folder
    if tags:
        document["tags"] = list(tags)
    spec = parse_spec_json(spec_json)
    if isinstance(spec, dict):
        document.update(spec)
    return document
