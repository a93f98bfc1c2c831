"""Alerting as a module of `argus up` (and of `argus alerts serve`): the streaming evaluator
(query_side/alerts/evaluator.py) on a consumer runner over the samples topic, with every
tenant's rules taken from the config view, plus the sub-services alerting runs beside it.

Sub-services (`services`) are other modules started with the evaluator and stopped after it:
the notifier (`NotifierService`, below) runs there, without a module of its own. Both start
only once some tenant has a rule: until then alerting reads neither the samples topic nor the
alerts topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from argus.modules import Module
from core.alerting.model import AlertRule
from core.alerting.state import AlertConfigState
from core.config_view import ConfigView
from core.consumer import ConsumerRunner
from core.events import ALERTS_TOPIC, SAMPLES_TOPIC
from core.ports import EventLog
from query_side.alerts.evaluator import EVALUATOR_GROUP, AlertEvaluator, RuleStatus, run_evaluator
from query_side.engine import QueryEngine

log = logging.getLogger(__name__)

RULES_CHECK_INTERVAL_S = 1.0
"""How soon a first rule applied while `argus up` runs starts the evaluator."""
EVALUATOR_FLUSH_INTERVAL_MS = 200
"""How often the runner hands the evaluator a turn (`housekeeping` evaluates due rules): well
under the shortest rule interval, so a 1 s rule is evaluated on time."""


class ConfigRules:
    """Every tenant's alert rules as the config view has them, re-read only when the
    alerting configuration changed (the evaluator asks on every turn)."""

    def __init__(self, config: ConfigView) -> None:
        self._state = config.state(AlertConfigState)
        self._generation = -1
        self._rules: Mapping[str, Sequence[AlertRule]] = {}

    def __call__(self) -> Mapping[str, Sequence[AlertRule]]:
        state = self._state
        if state.generation != self._generation:
            self._generation = state.generation
            self._rules = {
                tenant: tuple(rules.values()) for tenant in state.tenants() if (rules := state.config(tenant).rules)
            }
        return self._rules


class AlertsModule:
    name = "alerts"

    def __init__(
        self,
        *,
        event_log: EventLog,
        config: ConfigView,
        clock_ms: Callable[[], int],
        services: Sequence[Module] = (),
        engine: QueryEngine | None = None,
    ) -> None:
        self._rules = ConfigRules(config)
        # Rules over long windows query the read models through it (decision 0032).
        self._engine = engine
        self.evaluator = AlertEvaluator(log=event_log, rules=self._rules, clock_ms=clock_ms, engine=engine)
        self._runner = ConsumerRunner(
            name="alert-evaluator",
            log=event_log,
            topic=SAMPLES_TOPIC,
            group=EVALUATOR_GROUP,
            handler=self.evaluator,
            clock_ms=clock_ms,
            flush_interval_ms=EVALUATOR_FLUSH_INTERVAL_MS,
        )
        self.services = list(services)
        """Started with the evaluator once some tenant has a rule, stopped after it (the notifier)."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started: list[Module] = []

    async def start(self) -> None:
        # The evaluator restores its instances and catches up in its task: start returns at once.
        self._task = asyncio.create_task(self._run_once_configured(), name="alert-evaluator")

    async def _run_once_configured(self) -> None:
        """Run the evaluator and the sub-services (the notifier) from the first moment some
        tenant has a rule. Until then nothing reads the samples or alerts topics: a second full
        reader of every batch cost `argus up` about as much CPU as ingest itself (the smoke
        gate saw server CPU per sample double), for nothing. Once started they keep running."""
        while not self._rules():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), RULES_CHECK_INTERVAL_S)
            if self._stop.is_set():
                return
        log.info("alert rules configured: the evaluator starts reading the samples topic")
        for service in self.services:
            await service.start()
            self._started.append(service)
        await run_evaluator(self.evaluator, self._runner, self._stop)

    async def stop(self) -> None:
        # The evaluator first (its task may still be starting the services), then the services.
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, 30.0)
            except TimeoutError:
                log.error("the alert evaluator did not stop within 30 s; cancelled")
            except Exception as exc:  # it already ended with this: say so, stopping goes on
                log.error("the alert evaluator ended with %r", exc)
        for service in reversed(self._started):
            await service.stop()
        self._started.clear()
        if self._engine is not None:
            self._engine.close()

    def status(self) -> list[RuleStatus]:
        """Per evaluated rule: its route, series, instances, last evaluation, error."""
        return self.evaluator.status()

    def endpoints(self) -> dict[str, str]:
        # From the configuration: at start the evaluator may still be restoring its instances.
        rules = sum(len(r) for r in self._rules().values())
        text = f"evaluating {rules} rule{'s' if rules != 1 else ''}"
        errors = sum(1 for r in self.status() if r.error)
        if errors:
            text += f" ({errors} not evaluated now: warming up or over a limit)"
        out = {"alerts": text}
        for service in self.services:
            out.update(service.endpoints())
        return out


class NotifierService:
    """The notifier (query_side/alerts/notifier.py) as a sub-service of the alerts module: it
    follows the alerts topic in its own consumer group, routes and groups the alerts of each
    tenant's configuration, and delivers through long-lived senders (closed at stop)."""

    name = "alert-notifier"

    def __init__(self, *, event_log: EventLog, config: ConfigView, clock_ms: Callable[[], int]) -> None:
        self._event_log = event_log
        self._state = config.state(AlertConfigState)
        self._clock_ms = clock_ms
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._close: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        # Built here, not in __init__: its senders hold network clients, opened only when it runs.
        from query_side.alerts.delivery import Deliverer
        from query_side.alerts.notifier import NOTIFIER_GROUP, AlertNotifier, Decoded, run_notifier
        from query_side.alerts.senders import Senders

        senders = Senders()
        self._close = senders.aclose
        notifier = AlertNotifier(
            log=self._event_log,
            deliverer=Deliverer(senders),
            config=self._state.config,
            silences=self._state.silences,
            clock_ms=self._clock_ms,
        )
        runner: ConsumerRunner[Decoded] = ConsumerRunner(
            name="alert-notifier",
            log=self._event_log,
            topic=ALERTS_TOPIC,
            group=NOTIFIER_GROUP,
            handler=notifier,
            clock_ms=self._clock_ms,
            flush_interval_ms=EVALUATOR_FLUSH_INTERVAL_MS,
        )
        self._task = asyncio.create_task(run_notifier(notifier, runner, self._stop), name=self.name)

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        close, self._close = self._close, None
        try:
            if task is not None:
                await asyncio.wait_for(task, 30.0)
        except TimeoutError:
            log.error("the alert notifier did not stop within 30 s; cancelled")
        except Exception as exc:  # it already ended with this: say so, stopping goes on
            log.error("the alert notifier ended with %r", exc)
        finally:
            if close is not None:
                await close()

    def endpoints(self) -> dict[str, str]:
        return {}
