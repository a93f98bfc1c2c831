"""The alerting document (core/alerting/document.py): the documented example parses into the
configuration it describes; every invalid field is reported with its line and its path;
hostile YAML (aliases that expand, tags, size) is refused fast."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from core.alerting.document import MAX_DOCUMENT_BYTES, parse_document, parse_label_matcher, template_fields
from core.alerting.model import ConditionOp, LabelMatcher, NoDataPolicy, SecretRef
from core.durations import format_duration_ms, parse_duration_ms
from core.errors import InvalidArgument

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"


def example() -> str:
    """The complete example of docs/alerting.md (its first yaml block)."""
    match = re.search(r"```yaml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match is not None
    return match.group(1)


MINIMAL = """\
rules:
  - name: cpu
    query: {metric: cpu}
    window: 1m
    condition: "> 1"
"""


def errors(text: str) -> list[tuple[int, str, str]]:
    """(line, field, message) of every error parse_document reports for `text`."""
    with pytest.raises(InvalidArgument) as caught:
        parse_document(text, source="alerts.yaml")
    found = []
    for line in str(caught.value).splitlines():
        m = re.fullmatch(r"alerts\.yaml:(\d+): (\S+): (.*)", line)
        assert m is not None, f"error line without line and field: {line!r}"
        found.append((int(m.group(1)), m.group(2), m.group(3)))
    return found


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_the_documented_example_parses_into_what_it_says() -> None:
    config = parse_document(example())
    assert {op for op in ConditionOp} == {r.condition.op for r in config.rules.values()}
    cpu = config.rules["high_cpu"]
    assert cpu.query.where == ("host=~web-.*", "env!=staging") and cpu.query.group_by == ("host",)
    assert (cpu.window_ms, cpu.for_ms, cpu.keep_firing_for_ms, cpu.interval_ms) == (300_000, 120_000, 300_000, 10_000)
    assert cpu.condition.threshold == 90 and cpu.severity == "critical" and cpu.labels == {"team": "web"}
    assert template_fields(cpu.annotations["summary"]) == ["labels.host", "value"]
    band = config.rules["queue_depth_band"].condition
    assert (band.op, band.low, band.high) == (ConditionOp.OUTSIDE, 10, 20)
    jump = config.rules["traffic_jump"].condition
    assert (jump.op, jump.threshold, jump.over_ms) == (ConditionOp.CHANGE, 1000, 600_000)
    assert config.rules["slow_checkout"].no_data is NoDataPolicy.ALERT
    assert config.rules["slow_checkout"].no_data_timeout_ms == 600_000
    receivers = config.receivers
    assert receivers["team-email"].email[0].password == SecretRef(source="env", name="SMTP_PASSWORD")
    assert receivers["ops-hook"].webhook[0].secret == SecretRef(source="file", name="/etc/argus/webhook.secret")
    assert receivers["secondary"].apprise[0].url.name == "PAGERDUTY_APPRISE_URL"
    assert receivers["primary"].sms and receivers["primary"].push
    route = config.route
    assert route is not None and route.receiver == "team-email" and route.group_by == ("alertname", "region")
    critical, web = route.routes
    assert critical.matchers == (LabelMatcher(name="severity", op="=", value="critical"),)
    assert critical.escalation == "page-then-team" and critical.group_wait_ms == 0
    # A child takes its parent's grouping and timings unless it sets them.
    assert critical.group_by == route.group_by and critical.repeat_interval_ms == route.repeat_interval_ms
    assert web.continue_matching and web.mute_time_intervals == ("maintenance",)
    (inhibit,) = config.inhibit_rules
    assert inhibit.equal == ("region",) and inhibit.source[0].value == "region_down"
    window = config.time_intervals["maintenance"]
    assert window.weekdays == (5, 6) and (window.times[0].start_minute, window.times[0].end_minute) == (120, 240)
    steps = config.escalation_policies["page-then-team"].steps
    assert [(s.after_ms, s.receivers) for s in steps] == [(0, ("primary",)), (600_000, ("secondary", "team-email"))]


def test_an_empty_document_is_an_empty_configuration() -> None:
    config = parse_document("")
    assert not config.rules and not config.receivers and config.route is None


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ('condition: "> 90"', 'condition: "between 1 and 2"', "rules[0].condition", "expected one of >, >=, <, <="),
        ('condition: "> 90"', 'condition: "outside 20..10"', "rules[0].condition", "empty"),
        ('condition: "< 0.5"', 'condition: "change > 5 over soon"', "rules[1].condition", "duration"),
        ("window: 5m", "window: 2d", "rules[0].window", "1s to 1d"),
        ("window: 5m", "window: 500ms", "rules[0].window", "1s to 1d"),
        ("interval: 10s", "interval: 500ms", "rules[0].interval", "1s"),
        ("for: 2m", "for: two minutes", "rules[0].for", "duration"),
        ("timeout: 5s", "timeout: 11m", "receivers[3].webhook[0].timeout", "from 1ms to 10m"),
        ("agg: avg", "agg: median", "rules[0].query.agg", "expected one of"),
        ("agg: p99", "agg: p101", "rules[1].query.agg", "expected one of"),
        ("- name: high_cpu", "- name: 9cpu", "rules[0].name", "not a name"),
        ('"host=~web-.*"', '"host=~web-(?=x)"', "rules[0].query.where[0]", "regular expression"),
        ('"env!=staging"', '"env staging"', "rules[0].query.where[1]", "not a matcher"),
        ("no_data: alert", "no_data: page", "rules[1].no_data", "ok, alert, keep_last"),
        ("{{ labels.host }}", "{{ labels.host | upper }}", "rules[0].annotations.summary", "unknown template field"),
        ('"{{ query_url }}"', '"{{ query_url"', "rules[0].annotations.dashboard", "unbalanced"),
        ("severity: critical", "severity: [a, b]", "rules[0].severity", "single value"),
        ("keep_firing_for: 5m", "keep_firing_fro: 5m", "rules[0].keep_firing_fro", "unknown field"),
        ("password: env:SMTP_PASSWORD", "password: hunter2", "receivers[2].email[0].password", "secret reference"),
        ("url: env:PAGERDUTY", "url: pd://abc@def", "receivers[1].apprise[0].url", "secret reference"),
        ("headers: {X-Team: ops}", "headers: {Authorization: Bearer x}", "receivers[3].webhook[0].headers", "secret"),
        ('phone_numbers: ["+15551230001"]', "phone_numbers: ['555']", "receivers[0].sms[0].phone_numbers", "E.164"),
        ("smtp_port: 587", "smtp_port: 99999", "receivers[2].email[0].smtp_port", "1 to 65535"),
        ("starttls: true", "starttls: maybe", "receivers[2].email[0].starttls", "true or false"),
        ("receiver: ops-hook", "receiver: nobody", "route.routes[1].receiver", "'nobody' is not defined"),
        ("escalation: page-then-team", "escalation: nope", "route.routes[0].escalation", "not defined"),
        ("mute_time_intervals: [maintenance]", "mute_time_intervals: [lunch]", "route.routes[1]", "not defined"),
        ("receivers: [secondary, team-email]", "receivers: [secondary, ghost]", "escalation_policies[0]", "ghost"),
        ("group_wait: 30s", "group_wait: soon", "route.group_wait", "duration"),
        ("timezone: Europe/Berlin", "timezone: Mars/Olympus", "time_intervals[0].timezone", "time zone"),
        ('times: ["02:00-04:00"]', 'times: ["04:00-02:00"]', "time_intervals[0].times[0]", "HH:MM-HH:MM"),
        ("weekdays: [saturday, sunday]", "weekdays: [caturday]", "time_intervals[0].weekdays[0]", "weekday"),
        ("equal: [region]", "equal: [re-gion]", "inhibit_rules[0].equal[0]", "label name"),
        ("metric: queue.depth", "metric: 'queue depth'", "rules[2].query.metric", "metric name"),
    ],
)
def test_each_invalid_field_is_reported_with_its_line_and_path(old: str, new: str, field: str, message: str) -> None:
    text = example()
    assert old in text, old
    bad = text.replace(old, new, 1)
    found = errors(bad)
    line = line_of(bad, new)
    assert any(
        got_line == line and got_field.startswith(field) and message in got_message
        for got_line, got_field, got_message in found
    ), found


def test_every_error_is_reported_at_once() -> None:
    bad = (
        example()
        .replace("window: 5m", "window: 9d")
        .replace('"< 0.5"', '"<< 0.5"')
        .replace("receiver: primary", "receiver: x")
    )
    fields = [field for _, field, _ in errors(bad)]
    assert "rules[0].window" in fields and "rules[1].condition" in fields
    assert any(f.startswith("route.routes[0].receiver") for f in fields)


def test_required_fields_and_duplicates_are_named() -> None:
    doc = """\
rules:
  - name: a
    window: 1m
  - name: b
    query: {metric: m}
    window: 1m
    condition: '> 1'
  - name: b
    query: {metric: m}
    window: 1m
    condition: '> 2'
"""
    found = errors(doc)
    assert (2, "rules[0].query", "required") in found and (2, "rules[0].condition", "required") in found
    assert any(line == 8 and field == "rules[2].name" and "twice" in msg for line, field, msg in found)


def test_a_document_that_is_not_a_mapping_says_so() -> None:
    assert errors("- rules\n") == [(1, "document", "expected a mapping (key: value)")]
    assert errors("rules: null\n") == [(1, "rules", "expected a list")]
    assert errors("escalation_policies: 5\n") == [(1, "escalation_policies", "expected a list")]


def test_the_root_route_has_no_matchers() -> None:
    doc = (
        MINIMAL
        + "receivers:\n  - name: r\n    webhook: [{url: 'http://localhost:1/x'}]\n"
        + "route:\n  receiver: r\n  matchers: ['a=b']\n"
    )
    assert any(field == "route.matchers" for _, field, _ in errors(doc))


def test_values_that_yaml_would_turn_into_booleans_or_numbers_must_be_quoted() -> None:
    doc = MINIMAL.replace("metric: cpu", "metric: cpu, region: no")
    assert (3, "rules[0].query.region", "expected text (quote it)") in errors(doc)


def test_invalid_yaml_names_its_line() -> None:
    with pytest.raises(InvalidArgument, match=r"^alerts\.yaml:3: not valid YAML"):
        parse_document("rules:\n  - name: a\n    query: a: b\n", source="alerts.yaml")


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    lines.append("rules: *a9")
    started = time.monotonic()
    with pytest.raises(InvalidArgument, match="more than 100,000 nodes"):
        parse_document("\n".join(lines))
    assert time.monotonic() - started < 5


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="nodes"):
        parse_document("rules: &r [*r]\n")


def test_python_and_unknown_tags_are_refused() -> None:
    for tag in ("!!python/object/apply:os.system ['true']", "!custom 1", "!!binary aGVsbG8="):
        with pytest.raises(InvalidArgument, match="not allowed"):
            parse_document(f"rules: {tag}\n")


def test_an_oversized_document_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidArgument, match="over the limit"):
        parse_document("#" * (MAX_DOCUMENT_BYTES + 1))


def test_where_matchers_are_kept_in_the_query_apis_canonical_form() -> None:
    doc = MINIMAL.replace("metric: cpu", "metric: cpu, where: ['host =~ \"web-.*\"', \"env!='a b'\"]")
    assert parse_document(doc).rules["cpu"].query.where == ("host=~web-.*", "env!=a b")


def test_label_matchers_parse_quotes_and_check_re2() -> None:
    assert parse_label_matcher('host=~"web-.*"', parameter="m") == LabelMatcher(name="host", op="=~", value="web-.*")
    assert parse_label_matcher("env!=prod", parameter="m") == LabelMatcher(name="env", op="!=", value="prod")
    with pytest.raises(InvalidArgument, match="m: bad regular expression"):
        parse_label_matcher(r"a=~(x)\1", parameter="m")


@pytest.mark.parametrize(("text", "ms"), [("30s", 30_000), ("5m", 300_000), ("1h30m", 5_400_000), ("1d", 86_400_000)])
def test_durations_parse_and_format_back(text: str, ms: int) -> None:
    assert parse_duration_ms(text, parameter="d") == ms
    assert parse_duration_ms(format_duration_ms(ms), parameter="d") == ms


def test_durations_refuse_fractions_zero_and_junk() -> None:
    for bad in ("1.5h", "0s", "-5m", "5", "m", ""):
        with pytest.raises(InvalidArgument, match=r"^d: "):
            parse_duration_ms(bad, parameter="d")
    assert parse_duration_ms("0s", parameter="d", allow_zero=True) == 0
