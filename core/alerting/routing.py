"""Where an alert goes and whether it is held back: the route tree, group keys, silences,
inhibition and mute time intervals. Pure (no I/O, times passed in).

- Routes: an alert enters at the root (which takes every alert); child routes are tried in
  order, the first that matches wins unless it says `continue_matching` (then later siblings
  are tried too); a route none of whose children match takes the alert itself.
- Matchers: `=`, `!=`, and RE2 `=~` / `!~` anchored at both ends (core/regex.py); a missing
  label is "" (as in Prometheus).
- Group key: the values of the route's `group_by` labels (`...`: every label).
- A silence holds an alert while `starts_ms <= now < ends_ms` and all its matchers match.
- Inhibition: a firing alert matching a rule's `source` mutes alerts matching its `target`
  whose `equal` labels have the same values; an alert never inhibits itself.
- A mute time interval holds a route's notifications on its weekdays and minute ranges in its
  timezone.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from core.alerting.model import InhibitRule, LabelMatcher, Route, Silence, TimeInterval
from core.errors import InvalidArgument
from core.regex import FullMatchRegex, compile_full_match

ALL_LABELS = "..."
"""A `group_by` entry meaning every label (one group per distinct alert)."""

GroupKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    path: tuple[int, ...]
    """Child indexes from the root (empty: the root)."""
    route: Route

    @property
    def path_text(self) -> str:
        return ".".join(str(i) for i in self.path)


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> FullMatchRegex:
    return compile_full_match(pattern, parameter="matchers")


def matches(matcher: LabelMatcher, labels: Mapping[str, str]) -> bool:
    value = labels.get(matcher.name, "")
    match matcher.op:
        case "=":
            return value == matcher.value
        case "!=":
            return value != matcher.value
        case "=~":
            return _regex(matcher.value).matches(value)
        case "!~":
            return not _regex(matcher.value).matches(value)
    raise InvalidArgument(f"matchers: unknown operator {matcher.op!r}", parameter="matchers")


def matches_all(matchers: Iterable[LabelMatcher], labels: Mapping[str, str]) -> bool:
    return all(matches(m, labels) for m in matchers)


def route_alert(root: Route, labels: Mapping[str, str]) -> list[RouteMatch]:
    """The routes that take an alert with `labels`, in tree order (at least the root)."""
    return _walk(root, labels, ()) or [RouteMatch((), root)]


def _walk(route: Route, labels: Mapping[str, str], path: tuple[int, ...]) -> list[RouteMatch]:
    if path and not matches_all(route.matchers, labels):
        return []
    out: list[RouteMatch] = []
    for i, child in enumerate(route.routes):
        found = _walk(child, labels, (*path, i))
        if found:
            out += found
            if not child.continue_matching:
                break
    return out or [RouteMatch(path, route)]


def group_key(route: Route, labels: Mapping[str, str]) -> GroupKey:
    if ALL_LABELS in route.group_by:
        return tuple(sorted(labels.items()))
    return tuple(sorted((name, labels.get(name, "")) for name in set(route.group_by)))


def group_key_text(key: GroupKey) -> str:
    return "{" + ",".join(f"{k}={v!r}" for k, v in key) + "}"


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now_ms: int) -> list[str]:
    """Ids of the silences active at `now_ms` whose matchers all match."""
    return [s.id for s in silences if s.starts_ms <= now_ms < s.ends_ms and matches_all(s.matchers, labels)]


def inhibited(labels: Mapping[str, str], firing: Sequence[Mapping[str, str]], rules: Iterable[InhibitRule]) -> bool:
    """Whether a firing source alert (one of `firing`, other than this alert) mutes it."""
    for rule in rules:
        if not matches_all(rule.target, labels):
            continue
        for source in firing:
            if source is labels or source == labels:
                continue
            if matches_all(rule.source, source) and all(
                source.get(name, "") == labels.get(name, "") for name in rule.equal
            ):
                return True
    return False


def in_interval(interval: TimeInterval, now_ms: int) -> bool:
    """Whether `now_ms` falls on one of the interval's weekdays and minute ranges, in its
    timezone (empty weekdays: every day; empty times: all day)."""
    local = datetime.fromtimestamp(now_ms / 1000, tz=ZoneInfo(interval.timezone))
    if interval.weekdays and local.weekday() not in interval.weekdays:
        return False
    if not interval.times:
        return True
    minute = local.hour * 60 + local.minute
    return any(r.start_minute <= minute < r.end_minute for r in interval.times)


def muted(route: Route, intervals: Mapping[str, TimeInterval], now_ms: int) -> bool:
    """Whether one of the route's mute time intervals holds now (unknown names never do)."""
    return any(name in intervals and in_interval(intervals[name], now_ms) for name in route.mute_time_intervals)
