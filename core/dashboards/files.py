"""Dashboard files (dashboards as code): JSON or YAML, one dashboard or a list of them.

Read by `argus dashboards import` and by provisioning (`--dashboards-dir`). Files are
hostile input: at most `MAX_FILE_BYTES`; YAML is only *composed* (no Python object is ever
built from a tag), its nodes counted as a loader would expand aliases (an alias bomb is
refused, as in core/alerting/document.py), only core tags are accepted, then turned into
plain JSON values; each dashboard is then checked by core/dashboards/schema.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import orjson
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.dashboards.schema import DashboardDocument, check_document
from core.errors import InvalidArgument

MAX_FILE_BYTES: Final = 4 * 1024 * 1024
MAX_NODES: Final = 200_000
MAX_DASHBOARDS_PER_FILE: Final = 1_000
SUFFIXES: Final = (".json", ".yaml", ".yml")

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_CORE_TAGS: Final = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null", "map", "seq"))
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _plain(root: Node, source: str) -> Any:
    """JSON values of a composed YAML document; refused past MAX_NODES or with other tags."""
    seen = 0

    def walk(node: Node, depth: int) -> Any:
        nonlocal seen
        seen += 1
        if seen > MAX_NODES:
            raise InvalidArgument(f"{source}: expands to more than {MAX_NODES:,} nodes (an alias bomb?)")
        if depth > 64:
            raise InvalidArgument(f"{source}: nested deeper than 64 levels")
        if node.tag not in _CORE_TAGS:
            raise InvalidArgument(f"{source}:{node.start_mark.line + 1}: tag {node.tag!r} is not allowed")
        if isinstance(node, MappingNode):
            out: dict[str, Any] = {}
            for key, value in node.value:
                k = walk(key, depth + 1)
                if not isinstance(k, str):
                    raise InvalidArgument(f"{source}:{key.start_mark.line + 1}: keys must be strings")
                out[k] = walk(value, depth + 1)
            return out
        if isinstance(node, SequenceNode):
            return [walk(item, depth + 1) for item in node.value]
        assert isinstance(node, ScalarNode)
        kind = node.tag[len(_TAG) :]
        if kind == "str":
            return node.value
        if kind == "int":
            return _CONSTRUCTOR.construct_yaml_int(node)
        if kind == "float":
            return _CONSTRUCTOR.construct_yaml_float(node)
        if kind == "bool":
            return _CONSTRUCTOR.construct_yaml_bool(node)
        return None

    return walk(root, 0)


def parse_file_text(raw: bytes, *, source: str, yaml_allowed: bool = True) -> list[Any]:
    """The dashboards (plain JSON values, unchecked) a file holds: one object or a list."""
    if len(raw) > MAX_FILE_BYTES:
        raise InvalidArgument(f"{source}: {len(raw):,} bytes, over the limit of {MAX_FILE_BYTES:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{source}: not UTF-8 (byte {exc.start})") from None
    value: Any
    if source.endswith(".json") or not yaml_allowed:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"{source}: not valid JSON ({exc})") from None
    else:
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise InvalidArgument(f"{source}:{line}: not valid YAML: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"{source}: not valid YAML: {exc}") from None
        value = None if root is None else _plain(root, source)
    if isinstance(value, dict) and isinstance(value.get("dashboards"), list) and len(value) == 1:
        value = value["dashboards"]
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_DASHBOARDS_PER_FILE:
        raise InvalidArgument(f"{source}: {len(items):,} dashboards, more than {MAX_DASHBOARDS_PER_FILE:,}")
    return items


def read_dashboard_file(path: Path) -> list[DashboardDocument]:
    """The checked dashboards of a file; InvalidArgument naming the file (and the field)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read ({exc.strerror})") from None
    items = parse_file_text(raw, source=str(path))
    if len(items) == 1:
        return [check_document(items[0], source=str(path))]
    return [check_document(item, source=f"{path}[{i}]") for i, item in enumerate(items)]
