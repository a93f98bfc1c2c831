"""Alerting as a module of `argus up` (and of `argus alerts serve`): the streaming evaluator
(query_side/alerts/evaluator.py) on a consumer runner over the samples topic, with every
tenant's rules taken from the config view, plus the sub-services alerting runs beside it.

Sub-services (`services`) are other modules started with the evaluator and stopped after it:
the notifier (`NotifierService`, below) runs there, without a module of its own. Both start
only once some tenant has a rule: until then alerting reads neither the samples topic nor the
alerts topic.

Several replicas (`argus alerts serve --replica NAME`) split the work: a member of consumer
group `alert-owners` tells each which shards (alerts-topic partitions) are its own, and the
evaluator and notifier act only on the rules and groups of those (query_side/alerts/
ownership.py, docs/decisions/0030-alerting-high-availability.md). One process owns them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from argus.modules import Module
from core.alerting.model import AlertRule
from core.alerting.state import AlertConfigState
from core.alerting.watchdog import with_watchdog
from core.config_view import ConfigView
from core.consumer import ConsumerRunner
from core.events import ALERTS_TOPIC, SAMPLES_TOPIC
from core.ports import EventLog
from core.telemetry import REGISTRY
from query_side.alerts.evaluator import ALERT_PARTITIONS, EVALUATOR_GROUP, AlertEvaluator, RuleStatus, run_evaluator
from query_side.alerts.ownership import OWNERS_GROUP, OWNERS_SESSION_TIMEOUT_MS, Ownership
from query_side.engine import QueryEngine

log = logging.getLogger(__name__)

RULES_CHECK_INTERVAL_S = 1.0
"""How soon a first rule applied while `argus up` runs starts the evaluator."""
EVALUATOR_FLUSH_INTERVAL_MS = 200
"""How often the runner hands the evaluator a turn (`housekeeping` evaluates due rules): well
under the shortest rule interval, so a 1 s rule is evaluated on time."""


def replica_group(group: str, replica: str) -> str:
    """The consumer group of a replica's own full reader of a topic (`group` with no replica)."""
    return f"{group}.{replica}" if replica else group


class ConfigRules:
    """Every tenant's alert rules as the config view has them (plus the default watchdog),
    re-read only when the alerting configuration changed (the evaluator asks on every turn)."""

    def __init__(self, config: ConfigView, *, watchdog: bool = False) -> None:
        self._state = config.state(AlertConfigState)
        self._watchdog = watchdog
        self._generation = -1
        self._rules: Mapping[str, Sequence[AlertRule]] = {}

    def __call__(self) -> Mapping[str, Sequence[AlertRule]]:
        state = self._state
        if state.generation != self._generation:
            self._generation = state.generation
            rules = {tenant: tuple(r.values()) for tenant in state.tenants() if (r := state.config(tenant).rules)}
            # Every tenant with rules also has the default watchdog (core/alerting/watchdog.py).
            self._rules = with_watchdog(rules) if self._watchdog else rules
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
        ownership: Ownership | None = None,
        replica: str = "",
        watchdog: bool = False,
        engine: QueryEngine | None = None,
    ) -> None:
        self._event_log = event_log
        self._rules = ConfigRules(config, watchdog=watchdog)
        self.ownership = ownership if ownership is not None else Ownership(shards=ALERT_PARTITIONS)
        # Rules over long windows query the read models through it (decision 0032).
        self._engine = engine
        # A decisive breach (max above, min below) is evaluated as it is applied, not at the
        # next tick (decision 0055).
        self.evaluator = AlertEvaluator(
            log=event_log,
            rules=self._rules,
            clock_ms=clock_ms,
            ownership=self.ownership,
            engine=engine,
            evaluate_on_arrival=True,
        )
        # Membership only: the rules and groups of the shards (alerts-topic partitions) this
        # member is assigned are this replica's to evaluate and notify (decision 0030).
        self._owners: ConsumerRunner[None] = ConsumerRunner(
            name="alert-owners",
            log=event_log,
            topic=ALERTS_TOPIC,
            group=OWNERS_GROUP,
            session_timeout_ms=OWNERS_SESSION_TIMEOUT_MS,
            handler=self.ownership,
            clock_ms=clock_ms,
            flush_interval_ms=EVALUATOR_FLUSH_INTERVAL_MS,
        )
        owners = self._owners
        self.ownership.follow(lambda: owners.consumer.assigned if owners.consumer is not None else frozenset())
        self._runner = ConsumerRunner(
            name="alert-evaluator",
            log=event_log,
            topic=SAMPLES_TOPIC,
            # Every replica reads every samples partition (a rule's series are spread over
            # them), so each has a group of its own; one replica keeps today's group name.
            group=replica_group(EVALUATOR_GROUP, replica),
            handler=self.evaluator,
            clock_ms=clock_ms,
            flush_interval_ms=EVALUATOR_FLUSH_INTERVAL_MS,
        )
        self.services = list(services)
        """Started with the evaluator once some tenant has a rule, stopped after it (the notifier)."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._owners_task: asyncio.Task[None] | None = None
        self._owners_stop = asyncio.Event()
        self._started: list[Module] = []

    async def start(self) -> None:
        _observe_alerts(self)
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
        # The topic must exist before a group can be assigned its partitions.
        self.ownership.shards = await self._event_log.ensure_topic(ALERTS_TOPIC, ALERT_PARTITIONS)
        self._owners_task = asyncio.create_task(self._owners.run(self._owners_stop), name="alert-owners")
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
        owners, self._owners_task = self._owners_task, None
        self._owners_stop.set()
        if owners is not None:
            # Last: the group keeps our shards until the evaluator and notifier have stopped.
            try:
                await asyncio.wait_for(owners, 30.0)
            except TimeoutError:
                log.error("the alert shard membership did not stop within 30 s; cancelled")
            except Exception as exc:
                log.error("the alert shard membership ended with %r", exc)
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

    def __init__(
        self,
        *,
        event_log: EventLog,
        config: ConfigView,
        clock_ms: Callable[[], int],
        ownership: Ownership | None = None,
        replica: str = "",
    ) -> None:
        self._event_log = event_log
        self._ownership = ownership
        self._replica = replica
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
            ownership=self._ownership,
        )
        runner: ConsumerRunner[Decoded] = ConsumerRunner(
            name="alert-notifier",
            log=self._event_log,
            topic=ALERTS_TOPIC,
            # Every replica follows every partition (a group's members are spread over them).
            group=replica_group(NOTIFIER_GROUP, self._replica),
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


def _observe_alerts(module: AlertsModule) -> None:
    """The evaluator's figures, read at each collect."""
    REGISTRY.gauge("argus_alert_rules", "Alert rules configured (all tenants).").set_function(
        lambda: float(sum(len(r) for r in module._rules().values()))
    )
    REGISTRY.gauge(
        "argus_alert_rules_not_evaluated", "Rules the evaluator does not evaluate now (warming up, over a limit)."
    ).set_function(lambda: float(sum(1 for r in module.status() if r.error)))
    REGISTRY.gauge("argus_alert_instances", "Alert instances the evaluator holds.").set_function(
        lambda: float(sum(r.instances for r in module.status()))
    )
    REGISTRY.gauge(
        "argus_alert_last_evaluation_timestamp_seconds",
        "When the evaluator last evaluated a rule (Unix time; 0: never): stale means alerting is stuck.",
    ).set_function(lambda: max((r.last_evaluated_ms or 0 for r in module.status()), default=0) / 1000.0)
    REGISTRY.observed_counter(
        "argus_alert_transitions_total", "Alert state transitions appended to the alerts topic."
    ).set_function(lambda: float(module.evaluator.transitions_appended))
