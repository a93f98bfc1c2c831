"""The dashboard spec schema (core/dashboards/schema.py): valid specs pass unchanged (canonical
JSON of exactly what was given), every bad field is named by its JSON path, hostile sizes
are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.dashboards.schema import (
    MAX_PANELS,
    MAX_SPEC_BYTES,
    check_document,
    check_metadata,
    check_spec,
    document_of,
    uid_from_title,
)
from core.errors import InvalidArgument

THIS_HOST = Path(__file__).resolve().parents[2] / "argus" / "dashboards" / "this-host.json"


def panel(**over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "id": 1,
        "type": "timeseries",
        "title": "CPU",
        "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
        "targets": [{"refId": "A", "metric": "host_cpu_percent", "where": ["mode!=idle"], "group_by": ["host"]}],
    }
    p.update(over)
    return p


def full_spec() -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "description": "hosts",
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "variables": [
            {"name": "region", "labelName": "region", "multi": True, "includeAll": True},
            {"name": "host", "labelName": "host", "metric": "host_cpu_percent", "current": ["a", "b"]},
            {"name": "agg", "type": "custom", "options": ["avg", "max"]},
        ],
        "panels": [
            panel(
                unit="percent",
                thresholds=[{"value": None, "color": "green"}, {"value": 90, "color": "#ff0000"}],
                legend={"show": True, "placement": "right", "values": ["min", "max", "avg", "last"]},
                targets=[
                    {
                        "refId": "A",
                        "metric": "host_cpu_percent",
                        "where": ["host=~$host", "region=${region}"],
                        "group_by": ["host"],
                        "agg": "avg",
                        "period": "auto",
                        "region": "$region",
                        "legend": "{{host}}",
                    }
                ],
            ),
            panel(id=2, type="stat", gridPos={"x": 12, "y": 0, "w": 6, "h": 4}, decimals=1, min=0, max=100),
            panel(id=3, type="heatmap", targets=[{"metric": "http_latency", "agg": "p99.9"}]),
            {"id": 4, "type": "alerts", "gridPos": {"x": 0, "y": 8, "w": 24, "h": 6}, "options": {"state": ["firing"]}},
        ],
        "links": [{"title": "Docs", "url": "https://example.com/x"}, {"title": "Other", "dashboard": "web-2"}],
    }


def errors_of(spec: Any) -> str:
    with pytest.raises(InvalidArgument) as info:
        check_spec(spec)
    return str(info.value)


def test_a_full_spec_is_kept_as_canonical_json_of_what_was_given() -> None:
    spec = full_spec()
    canonical = check_spec(spec)
    assert json.loads(canonical) == spec
    assert canonical == orjson.dumps(spec, option=orjson.OPT_SORT_KEYS).decode()


def test_an_empty_spec_is_valid() -> None:
    assert check_spec({}) == "{}"


def test_errors_name_the_json_path_of_the_bad_field() -> None:
    spec = full_spec()
    spec["panels"][3] = panel(id=5, targets=[{"refId": "A"}])
    message = errors_of(spec)
    assert "panels[3].targets[0].metric: required" in message
    with pytest.raises(InvalidArgument) as info:
        check_spec(spec)
    assert info.value.parameter == "panels[3].targets[0].metric"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["panels"][0].update(type="pie"), "panels[0].type: expected one of timeseries"),
        (lambda s: s["panels"][0]["gridPos"].update(x=20, w=6), "panels[0].gridPos.w: x + w must be at most 24"),
        (lambda s: s["panels"][0]["gridPos"].pop("h"), "panels[0].gridPos.h: required"),
        (lambda s: s["panels"][0].update(gridpos={}), "panels[0].gridpos: unknown field"),
        (lambda s: s["panels"][1].update(id=1), "panels[1].id: panel id 1 is used twice"),
        (lambda s: s["panels"][0]["targets"][0].update(agg="median"), "panels[0].targets[0].agg: expected one of"),
        (lambda s: s["panels"][0]["targets"][0].update(period="2m"), "panels[0].targets[0].period: expected one of"),
        (lambda s: s["panels"][0]["targets"][0].update(metric="9bad"), "panels[0].targets[0].metric: '9bad' is not"),
        (lambda s: s["panels"][0]["targets"][0]["where"].append("host"), "panels[0].targets[0].where[2]: expected"),
        (lambda s: s["panels"][0]["targets"][0]["where"].append("h=~(a"), "panels[0].targets[0].where[2]"),
        (lambda s: s["panels"][0]["targets"][0]["where"].append("h=$hots"), "unknown variable $hots"),
        (lambda s: s["panels"][0]["thresholds"][1].update(color="red;x"), "panels[0].thresholds[1].color"),
        (lambda s: s["panels"][0]["legend"].update(values=["median"]), "panels[0].legend.values[0]"),
        (lambda s: s["panels"][1].update(min=100, max=0), "panels[1].max: must be greater than min"),
        (lambda s: s["panels"][3].update(targets=[{"metric": "x"}]), "panels[3].targets: an alerts panel"),
        (lambda s: s["time"].update(**{"from": "yesterday"}), "time.from: cannot read 'yesterday'"),
        (lambda s: s["time"].update(**{"from": "2026-01-01T00:00:00"}), "time.from: '2026-01-01T00:00:00' has no"),
        (
            lambda s: s.update(time={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
            "time.to: must be after from",
        ),
        (lambda s: s.update(refresh="100ms"), "refresh: the refresh interval must be between 1s and 1d"),
        (lambda s: s.update(refresh="often"), "refresh: expected off, live or an interval"),
        (lambda s: s["variables"].append({"name": "host", "labelName": "h"}), "variables[3].name: variable host is"),
        (lambda s: s["variables"][0].pop("labelName"), "variables[0].labelName: required"),
        (lambda s: s["variables"][2].pop("options"), "variables[2].options: required for a custom variable"),
        (lambda s: s["links"][0].update(url="javascript:alert(1)"), "links[0].url: must start with http://"),
        (lambda s: s["links"][0].update(dashboard="x"), "links[0]: give exactly one of url and dashboard"),
        (lambda s: s.update(schemaVersion=2), "schemaVersion: must be between 1 and 1"),
        (lambda s: s.update(colour="red"), "colour: unknown field"),
        (lambda s: s["panels"][0].update(title="a\x00b"), "panels[0].title: control characters"),
        (lambda s: s["panels"][0].update(title="x" * 201), "panels[0].title: at most 200 characters"),
    ],
)
def test_bad_fields_are_named(change: Any, expected: str) -> None:
    spec = full_spec()
    change(spec)
    assert expected in errors_of(spec)


def test_every_error_is_reported_at_once() -> None:
    spec = full_spec()
    spec["panels"][0]["type"] = "pie"
    spec["panels"][2]["targets"][0]["metric"] = ""
    message = errors_of(spec)
    assert "panels[0].type" in message and "panels[2].targets[0].metric" in message


def test_hostile_sizes_are_refused() -> None:
    too_many = {"panels": [panel(id=i + 1) for i in range(MAX_PANELS + 1)]}
    assert f"panels: at most {MAX_PANELS} items" in errors_of(too_many)
    big = {"description": "x" * 4000, "panels": [panel(id=i + 1, description="y" * 4000) for i in range(100)]}
    assert f"over the limit of {MAX_SPEC_BYTES:,}" in errors_of(big)
    deep: Any = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    assert "nested deeper" in errors_of({"options": deep})
    assert "expected an object" in errors_of([1, 2])


def test_metadata_is_checked_and_folders_normalized() -> None:
    assert check_metadata(uid="web", title="Web", folder="/team//web/", tags=["a", "a", "b"]) == (
        "web",
        "Web",
        "team/web",
        ("a", "b"),
    )
    with pytest.raises(InvalidArgument, match="uid: a uid is 1-64"):
        check_metadata(uid="Bad UID", title="x")
    with pytest.raises(InvalidArgument, match=r"title: required"):
        check_metadata(uid="ok", title=" ")
    assert uid_from_title("Web servers (EU)") == "web-servers-eu"


def test_a_document_round_trips_through_metadata_and_spec() -> None:
    document = {"uid": "hosts", "title": "Hosts", "folder": "ops", "tags": ["infra"], **full_spec()}
    checked = check_document(document)
    assert (checked.uid, checked.title, checked.folder, checked.tags) == ("hosts", "Hosts", "ops", ("infra",))
    again = document_of(
        uid=checked.uid, title=checked.title, folder=checked.folder, tags=checked.tags, spec_json=checked.spec_json
    )
    assert again == document


def test_the_shipped_this_host_dashboard_is_valid() -> None:
    checked = check_document(json.loads(THIS_HOST.read_text()))
    assert checked.uid == "this-host"
    metrics = {t["metric"] for p in json.loads(checked.spec_json)["panels"] for t in p.get("targets", [])}
    assert {"host_cpu_percent", "host_memory_used_bytes", "host_network_in_bytes"} <= metrics


def test_numbers_json_cannot_carry_are_refused() -> None:
    assert "options.big: integers beyond" in errors_of({"options": {"big": 2**60}})
    assert "options.x: must be a finite number" in errors_of({"options": {"x": float("inf")}})
    spec = full_spec()
    spec["panels"][0]["thresholds"][1]["value"] = 2**70
    assert "spec: cannot be written as JSON" in errors_of(spec)
