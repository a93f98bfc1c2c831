"""Routing, group keys, silences, inhibition and mute windows (core/alerting/routing.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.alerting.model import InhibitRule, LabelMatcher, Route, Silence, TimeInterval, TimeRange
from core.alerting.routing import (
    group_key,
    in_interval,
    inhibited,
    matches,
    muted,
    route_alert,
    silenced_by,
)
from core.errors import InvalidArgument


def m(name: str, op: str, value: str) -> LabelMatcher:
    return LabelMatcher(name=name, op=op, value=value)


def test_matchers_cover_every_operator_and_missing_labels_are_empty() -> None:
    labels = {"host": "web-1", "env": "prod"}
    assert matches(m("host", "=", "web-1"), labels)
    assert not matches(m("host", "=", "web-2"), labels)
    assert matches(m("host", "!=", "web-2"), labels)
    assert matches(m("host", "=~", "web-[0-9]+"), labels)
    assert not matches(m("host", "=~", "web"), labels)  # anchored at both ends
    assert matches(m("host", "!~", "db-.*"), labels)
    assert matches(m("team", "=", ""), labels)
    assert not matches(m("team", "=~", ".+"), labels)
    with pytest.raises(InvalidArgument):
        matches(m("host", "=~", "(a)\\1"), labels)  # RE2 rejects backreferences


TREE = Route(
    receiver="default",
    routes=(
        Route(receiver="db", matchers=(m("team", "=", "db"),), continue_matching=True),
        Route(
            receiver="prod",
            matchers=(m("env", "=", "prod"),),
            routes=(Route(receiver="prod-critical", matchers=(m("severity", "=", "critical"),)),),
        ),
        Route(receiver="never", matchers=(m("env", "=~", ".*"),)),
    ),
)


def receivers(labels: dict[str, str]) -> list[tuple[str, str]]:
    return [(r.path_text, r.route.receiver) for r in route_alert(TREE, labels)]


def test_first_match_wins_children_first_and_continue_goes_on() -> None:
    assert receivers({"env": "prod", "severity": "critical"}) == [("1.0", "prod-critical")]
    assert receivers({"env": "prod", "severity": "warning"}) == [("1", "prod")]
    # `db` continues: the next matching sibling takes it too, later ones do not.
    assert receivers({"team": "db", "env": "prod"}) == [("0", "db"), ("1", "prod")]
    # The catch-all third child takes whatever the earlier ones did not.
    assert receivers({"env": "dev"}) == [("2", "never")]
    assert route_alert(Route(receiver="root"), {"a": "b"})[0].route.receiver == "root"


def test_group_key_takes_the_group_by_labels_or_all() -> None:
    labels = {"alertname": "HighCpu", "host": "web-1", "region": "eu"}
    assert group_key(Route(receiver="r", group_by=("alertname", "region")), labels) == (
        ("alertname", "HighCpu"),
        ("region", "eu"),
    )
    assert group_key(Route(receiver="r", group_by=("zone",)), labels) == (("zone", ""),)
    assert group_key(Route(receiver="r", group_by=("...",)), labels) == tuple(sorted(labels.items()))


def test_silence_holds_only_while_active_and_all_matchers_match() -> None:
    s = Silence(id="s1", matchers=(m("host", "=~", "web-.*"), m("env", "=", "prod")), starts_ms=100, ends_ms=200)
    labels = {"host": "web-1", "env": "prod"}
    assert silenced_by(labels, [s], 100) == ["s1"]
    assert silenced_by(labels, [s], 199) == ["s1"]
    assert silenced_by(labels, [s], 200) == []
    assert silenced_by(labels, [s], 99) == []
    assert silenced_by({"host": "web-1", "env": "dev"}, [s], 150) == []


def test_inhibition_needs_a_firing_source_with_equal_labels() -> None:
    rule = InhibitRule(
        source=(m("alertname", "=", "RegionDown"),), target=(m("alertname", "=", "HostDown"),), equal=("region",)
    )
    host_eu = {"alertname": "HostDown", "region": "eu", "host": "a"}
    region_eu = {"alertname": "RegionDown", "region": "eu"}
    region_us = {"alertname": "RegionDown", "region": "us"}
    assert inhibited(host_eu, [region_eu, host_eu], [rule])
    assert not inhibited(host_eu, [region_us, host_eu], [rule])
    assert not inhibited(region_eu, [region_eu], [rule])
    # An alert matching both source and target does not inhibit itself.
    both = InhibitRule(source=(m("alertname", "=~", ".*"),), target=(m("alertname", "=~", ".*"),))
    assert not inhibited(host_eu, [host_eu], [both])


def ms(year: int, month: int, day: int, hour: int, minute: int, tz: str) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def test_mute_interval_weekdays_and_minutes_in_its_timezone() -> None:
    # Weekdays 09:00-17:00 in New York.
    office = TimeInterval(
        name="office",
        weekdays=(0, 1, 2, 3, 4),
        times=(TimeRange(start_minute=9 * 60, end_minute=17 * 60),),
        timezone="America/New_York",
    )
    # 2026-12-07 is a Monday.
    assert in_interval(office, ms(2026, 12, 7, 9, 0, "America/New_York"))
    assert not in_interval(office, ms(2026, 12, 7, 17, 0, "America/New_York"))
    # 15:00 UTC is 10:00 in New York; 22:30 UTC is 17:30 there.
    assert in_interval(office, ms(2026, 12, 7, 15, 0, "UTC"))
    assert not in_interval(office, ms(2026, 12, 7, 22, 30, "UTC"))
    assert not in_interval(office, ms(2026, 12, 12, 10, 0, "America/New_York"))  # Saturday
    every_day = TimeInterval(name="all")
    assert in_interval(every_day, ms(2026, 12, 12, 3, 0, "UTC"))
    route = Route(receiver="r", mute_time_intervals=("office", "unknown"))
    assert muted(route, {"office": office}, ms(2026, 12, 8, 12, 0, "America/New_York"))
    assert not muted(route, {"office": office}, ms(2026, 12, 8, 20, 0, "America/New_York"))
    assert not muted(Route(receiver="r"), {"office": office}, ms(2026, 12, 8, 12, 0, "America/New_York"))
