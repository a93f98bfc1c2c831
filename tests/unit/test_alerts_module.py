"""The alerts module (argus/alerts_module.py): rules from the config view, sub-services
started after the evaluator and stopped before it, a clean stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from argus.alerts_module import AlertsModule, ConfigRules
from command_side.config.alerts import ApplyAlertConfig, apply_alert_config
from core.adapters.memory_event_log import MemoryEventLog
from core.alerting.model import AlertConfig, AlertRule, Condition, ConditionOp, RuleQuery
from core.alerting.state import AlertConfigState
from core.config_view import ConfigView
from core.events import ALERTS_TOPIC, CONFIG_TOPIC, SAMPLES_TOPIC


def rule(name: str, threshold: float = 90.0) -> AlertRule:
    return AlertRule(
        name=name,
        query=RuleQuery(metric="cpu", agg="avg"),
        window_ms=60_000,
        condition=Condition(op=ConditionOp.ABOVE, threshold=threshold),
        interval_ms=1000,
    )


async def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def config_with(log: MemoryEventLog, rules: dict[str, list[AlertRule]]) -> ConfigView:
    await log.ensure_topic(CONFIG_TOPIC, 1)
    view = ConfigView(log, [AlertConfigState()])
    await view.refresh()
    for tenant, listed in rules.items():
        await apply(view, tenant, listed)
    return view


async def apply(view: ConfigView, tenant: str, rules: list[AlertRule]) -> None:
    config = AlertConfig(rules={r.name: r for r in rules})
    await apply_alert_config(ApplyAlertConfig(tenant=tenant, config=config, author="t"), view=view, clock_ms=lambda: 1)


async def test_rules_are_every_tenants_and_follow_changes() -> None:
    log = MemoryEventLog()
    view = await config_with(log, {"a": [rule("cpu"), rule("mem")], "b": [rule("cpu")]})
    rules = ConfigRules(view)
    first = rules()
    assert {t: sorted(r.name for r in rs) for t, rs in first.items()} == {"a": ["cpu", "mem"], "b": ["cpu"]}
    assert rules() is first  # unchanged configuration: not rebuilt on every turn
    await apply(view, "b", [rule("cpu", threshold=95.0)])
    await apply(view, "a", [])
    assert {t: [r.condition.threshold for r in rs] for t, rs in rules().items()} == {"b": [95.0]}


class Recorder:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self._calls = calls

    async def start(self) -> None:
        self._calls.append(f"start {self.name}")

    async def stop(self) -> None:
        self._calls.append(f"stop {self.name}")

    def endpoints(self) -> dict[str, str]:
        return {self.name: "running"}


async def test_module_runs_the_evaluator_and_its_services_and_stops_cleanly() -> None:
    log = MemoryEventLog()
    await log.ensure_topic(SAMPLES_TOPIC, 2)
    view = await config_with(log, {"a": [rule("cpu")]})
    calls: list[str] = []
    module = AlertsModule(
        event_log=log,
        config=view,
        clock_ms=lambda: time.time_ns() // 1_000_000,
        services=[Recorder("one", calls), Recorder("two", calls)],
    )
    await module.start()
    # Started with the evaluator once a rule exists (here at once: the rule is configured).
    await wait_until("the services started", lambda: calls == ["start one", "start two"])

    # The runner drives the evaluator: the rule is evaluated at its 1 s ticks.
    await wait_until("the rule evaluated", lambda: any(s.last_evaluated_ms for s in module.status()))
    [status] = module.status()
    assert (status.tenant, status.rule, status.error) == ("a", "cpu", "")
    assert await log.partitions(ALERTS_TOPIC) > 0  # the evaluator made its topic
    assert module.endpoints() == {"alerts": "evaluating 1 rule", "one": "running", "two": "running"}
    await asyncio.wait_for(module.stop(), 10.0)
    assert calls == ["start one", "start two", "stop two", "stop one"]
    await module.stop()  # stopping twice is harmless


async def test_without_rules_alerting_reads_nothing_until_the_first_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    import argus.alerts_module as alerts_module

    monkeypatch.setattr(alerts_module, "RULES_CHECK_INTERVAL_S", 0.02)
    log = MemoryEventLog()
    await log.ensure_topic(SAMPLES_TOPIC, 2)
    view = await config_with(log, {})
    calls: list[str] = []
    module = AlertsModule(
        event_log=log,
        config=view,
        clock_ms=lambda: time.time_ns() // 1_000_000,
        services=[Recorder("notifier", calls)],
    )
    await module.start()
    await asyncio.sleep(0.2)  # several rule checks: nothing may start meanwhile
    assert calls == []
    assert log.committed_offsets("alert-evaluator", SAMPLES_TOPIC) == {}, "the samples topic is not read"

    await apply(view, "a", [rule("cpu")])
    await wait_until("the notifier started", lambda: calls == ["start notifier"])
    await wait_until("the rule evaluated", lambda: any(s.last_evaluated_ms for s in module.status()))
    await asyncio.wait_for(module.stop(), 10.0)
    assert calls == ["start notifier", "stop notifier"]
