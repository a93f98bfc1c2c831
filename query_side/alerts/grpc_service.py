"""gRPC `argus.alerts.v1.AlertService` on the query server (contracts/argus/alerts/v1/service.proto).

- ListAlerts: the tenant's instances from the active-alerts view (query_side/alerts/active.py).
- History: a page of the history view (query_side/alerts/history.py).
- Subscribe: a server stream of the tenant's alert events from a cursor (the next offset of
  every partition of the alerts topic, opaque to the client), read from the log itself, then
  live (polled). Each message carries the cursor after it, so a subscriber that reconnects
  with the last cursor it got misses nothing and sees nothing twice.
- The operator actions (docs/decisions/0053): Acknowledge / Unacknowledge
  (core/alerting/acks.py, as the HTTP routes), ListSilences / PreviewSilence / ListRules (the
  config view), CreateSilence / ExpireSilence / SaveRule (the command side's handlers, passed
  in as `AlertCommands` by the composition in argus/alerts_api.py: the query side cannot
  import the command side) and BacktestRule (query_side/alerts/backtest.py).

Auth as QueryService: the tenant of the `authorization: Bearer <key>` metadata
(core/tenancy.py); errors through core/transport_errors.py's table.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from contracts.argus.alerts.v1 import alerts_pb2, service_pb2, service_pb2_grpc
from core.alerting.acks import Ack, acknowledge, unacknowledge
from core.alerting.document import parse_document, parse_label_matcher
from core.alerting.events import rule_entity, rule_to_proto, silence_to_proto
from core.alerting.lifecycle import AlertState, Transition
from core.alerting.model import AlertConfig, AlertRule, LabelMatcher, Silence
from core.alerting.routing import matches_all, silenced_by
from core.alerting.state import AlertConfigState
from core.auth import Authenticator, hash_key, key_id
from core.config_view import ConfigView
from core.durations import parse_duration_ms
from core.errors import ArgusError, FailedPrecondition, InvalidArgument
from core.ports import EventLog
from core.tenancy import api_key_from_metadata, tenant_from_metadata
from core.transport_errors import grpc_status, is_server_fault
from query_side.alerts.active import _STATES as ACTIVE_STATE_CODES
from query_side.alerts.active import ActiveAlerts, AlertInstance, state_filter
from query_side.alerts.backtest import backtest, tick_count
from query_side.alerts.history import DEFAULT_PAGE, AlertHistory, HistoryEntry, TopicCursor, read_from
from query_side.alerts.notifier import alert_labels

log = logging.getLogger(__name__)

SERVICE_NAME: str = service_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name
_STATES = {v: k for k, v in ACTIVE_STATE_CODES.items()}

MAX_RULE_DOCUMENT_BYTES = 64 * 1024
MAX_MATCHERS = 32
MAX_BACKTEST_MS = 24 * 3_600_000
MAX_BACKTEST_TICKS = 5_000
"""A preview replays at most a day and 5,000 evaluations (a 10 s rule: 13.9 h; a 1 s rule:
1.4 h): it runs in the query server, on a request, at ~6 ms an evaluation (decision 0053)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedRule:
    rule: AlertRule
    action: str
    """created, updated or unchanged."""
    version: int


class AlertCommands(Protocol):
    """The configuration commands the operator RPCs run (command_side/config/alerts.py)."""

    async def create_silence(
        self,
        *,
        tenant: str,
        author: str,
        matchers: tuple[LabelMatcher, ...],
        starts_ms: int,
        ends_ms: int,
        comment: str,
    ) -> Silence: ...

    async def expire_silence(self, *, tenant: str, author: str, silence_id: str) -> bool: ...

    async def save_rule(
        self, *, tenant: str, author: str, rule: AlertRule, expected_version: int | None
    ) -> SavedRule: ...


def parse_rule_document(text: str) -> AlertRule:
    """The one rule of a document holding exactly one rule under `rules:` and nothing else;
    InvalidArgument naming the line and field (parse_document's) otherwise."""
    if len(text.encode()) > MAX_RULE_DOCUMENT_BYTES:
        raise InvalidArgument(f"document: at most {MAX_RULE_DOCUMENT_BYTES} bytes", parameter="document")
    config = parse_document(text, source="rule")
    if len(config.rules) != 1 or dataclasses.replace(config, rules={}) != AlertConfig():
        raise InvalidArgument("document: exactly one rule under `rules:` and nothing else", parameter="document")
    return next(iter(config.rules.values()))


def parse_matchers(texts: Sequence[str]) -> tuple[LabelMatcher, ...]:
    if len(texts) > MAX_MATCHERS:
        raise InvalidArgument(f"matchers: at most {MAX_MATCHERS}", parameter="matchers")
    return tuple(parse_label_matcher(t, parameter=f"matchers[{i}]") for i, t in enumerate(texts))


def silence_state(silence: Silence, now_ms: int) -> str:
    if silence.ends_ms <= now_ms:
        return "expired"
    return "active" if silence.starts_ms <= now_ms else "pending"


def _ack(instance_id: str, ack: Ack) -> service_pb2.Acknowledgement:
    return service_pb2.Acknowledgement(
        instance_id=instance_id, acknowledged=ack.acked, by=ack.author, at_ms=ack.time_ms, comment=ack.comment
    )


def _transition(t: Transition, rule: AlertRule) -> alerts_pb2.AlertStateChanged:
    return alerts_pb2.AlertStateChanged(
        tenant=t.key.tenant,
        rule=t.key.rule,
        instance_labels=dict(t.key.labels),
        from_state=_STATES[t.from_state],
        to_state=_STATES[t.to_state],
        value=t.value,
        evaluated_at_ms=t.evaluated_at_ms,
        since_ms=t.since_ms,
        reason=t.reason,
        sequence=t.sequence,
        rule_labels=dict(rule.labels),
        severity=rule.severity,
        instance_id=t.key.instance_id,
    )


def alert_event(entry: HistoryEntry) -> service_pb2.AlertEvent:
    event = service_pb2.AlertEvent(rules=list(entry.rules))
    m = entry.message
    if isinstance(m, alerts_pb2.AlertStateChanged):
        event.state_changed.CopyFrom(m)
    elif isinstance(m, alerts_pb2.NotificationSent):
        event.notification_sent.CopyFrom(m)
    elif isinstance(m, alerts_pb2.NotificationFailed):
        event.notification_failed.CopyFrom(m)
    elif isinstance(m, alerts_pb2.AlertAcknowledged):
        event.acknowledged.CopyFrom(m)
    elif isinstance(m, alerts_pb2.AlertUnacknowledged):
        event.unacknowledged.CopyFrom(m)
    elif isinstance(m, alerts_pb2.AlertEscalated):
        event.escalated.CopyFrom(m)
    return event


def _alert(i: AlertInstance) -> alerts_pb2.AlertStateChanged:
    return alerts_pb2.AlertStateChanged(
        tenant=i.tenant,
        rule=i.rule,
        instance_labels=dict(i.labels),
        to_state=_STATES[i.state],
        value=i.value,
        evaluated_at_ms=i.evaluated_at_ms,
        since_ms=i.since_ms,
        reason=i.reason,
        sequence=i.sequence,
        annotations=dict(i.annotations),
        rule_labels=dict(i.rule_labels),
        severity=i.severity,
        instance_id=i.instance_id,
    )


class AlertServicer(service_pb2_grpc.AlertServiceServicer):
    def __init__(
        self,
        *,
        keys: Authenticator,
        events: EventLog,
        active: ActiveAlerts,
        history: AlertHistory,
        view: ConfigView | None = None,
        commands: AlertCommands | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        poll_interval_s: float = 0.25,
    ) -> None:
        self._keys = keys
        self._events = events
        self._active = active
        self._history = history
        self._view = view
        self._commands = commands
        self._clock_ms = clock_ms
        self._poll_interval_s = poll_interval_s

    def _tenant(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        return tenant_from_metadata(self._keys, context.invocation_metadata())

    def _caller(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, str]:
        """(tenant, author): the author is the key's public id, never the key."""
        tenant = self._tenant(context)
        key = api_key_from_metadata(context.invocation_metadata()) or ""
        return tenant, f"key:{key_id(hash_key(key))}"

    async def _config(self) -> AlertConfigState:
        if self._view is None:
            raise FailedPrecondition("this server has no alerting configuration view")
        await self._view.refresh()
        return self._view.state(AlertConfigState)

    def _cmd(self) -> AlertCommands:
        if self._commands is None:
            raise FailedPrecondition("this server does not take alerting configuration commands")
        return self._commands

    async def ListAlerts(
        self, request: service_pb2.ListAlertsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.ListAlertsResponse:
        try:
            tenant = self._tenant(context)
            await self._active.refresh()
            found = await self._active.instances(tenant, state_filter(request.state or None), rule=request.rule or None)
            response = service_pb2.ListAlertsResponse(alerts=[_alert(i) for i in found])
            silences = (await self._config()).silences(tenant) if self._view is not None else []
            now = self._clock_ms()
            for i, message in zip(found, response.alerts, strict=True):
                if i.acknowledged is not None:
                    response.acknowledged[i.instance_id].CopyFrom(_ack(i.instance_id, i.acknowledged))
                ids = silenced_by(alert_labels(message), silences, now)
                if ids:
                    response.silenced[i.instance_id].ids.extend(ids)
            return response
        except Exception as exc:
            await _abort(context, "list alerts", exc)
            raise

    async def History(
        self, request: service_pb2.HistoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.HistoryResponse:
        try:
            tenant = self._tenant(context)
            await self._history.refresh()
            page = await self._history.page(
                tenant,
                since_ms=request.since_ms,
                rule=request.rule or None,
                cursor=request.cursor,
                limit=request.limit or DEFAULT_PAGE,
            )
            return service_pb2.HistoryResponse(
                events=[alert_event(e) for e in page.entries], next_cursor=page.next_cursor
            )
        except Exception as exc:
            await _abort(context, "alert history", exc)
            raise

    async def Subscribe(
        self, request: service_pb2.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[service_pb2.SubscribeResponse]:
        try:
            tenant = self._tenant(context)
            cursor = TopicCursor.decode(request.cursor)
        except Exception as exc:
            await _abort(context, "subscribe", exc)
            raise
        while True:
            try:
                found, cursor = await read_from(self._events, cursor, tenant=tenant)
            except Exception as exc:
                await _abort(context, "subscribe", exc)
                raise
            for entry, after in found:
                yield service_pb2.SubscribeResponse(event=alert_event(entry), cursor=after.encode())
            if not found:
                # Polling the log: the only way to learn of appends any EventLog offers.
                await asyncio.sleep(self._poll_interval_s)

    async def Acknowledge(
        self, request: service_pb2.AcknowledgeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.AcknowledgeResponse:
        try:
            tenant, author = self._caller(context)
            done = await acknowledge(
                self._events,
                tenant=tenant,
                instance_id=request.instance_id,
                author=author,
                comment=request.comment,
                now_ms=self._clock_ms(),
            )
            await self._active.refresh()  # the caller's next ListAlerts shows it
            return service_pb2.AcknowledgeResponse(acknowledgement=_ack(request.instance_id, done))
        except Exception as exc:
            await _abort(context, "acknowledge", exc)
            raise

    async def Unacknowledge(
        self, request: service_pb2.UnacknowledgeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.UnacknowledgeResponse:
        try:
            tenant, author = self._caller(context)
            done = await unacknowledge(
                self._events, tenant=tenant, instance_id=request.instance_id, author=author, now_ms=self._clock_ms()
            )
            await self._active.refresh()
            return service_pb2.UnacknowledgeResponse(acknowledgement=_ack(request.instance_id, done))
        except Exception as exc:
            await _abort(context, "unacknowledge", exc)
            raise

    async def ListSilences(
        self, request: service_pb2.ListSilencesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.ListSilencesResponse:
        try:
            tenant = self._tenant(context)
            now = self._clock_ms()
            found = (await self._config()).silences(tenant)
            return service_pb2.ListSilencesResponse(
                silences=[
                    service_pb2.SilenceInfo(silence=silence_to_proto(s), state=silence_state(s, now))
                    for s in found
                    if request.all or s.ends_ms > now
                ]
            )
        except Exception as exc:
            await _abort(context, "list silences", exc)
            raise

    async def CreateSilence(
        self, request: service_pb2.CreateSilenceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.CreateSilenceResponse:
        try:
            tenant, author = self._caller(context)
            commands = self._cmd()
            matchers = parse_matchers(request.matchers)
            now = self._clock_ms()
            starts = request.starts_ms or now
            if bool(request.duration) == bool(request.ends_ms):
                raise InvalidArgument("give exactly one of duration and ends_ms", parameter="duration")
            ends = request.ends_ms or starts + parse_duration_ms(request.duration, parameter="duration")
            silence = await commands.create_silence(
                tenant=tenant, author=author, matchers=matchers, starts_ms=starts, ends_ms=ends, comment=request.comment
            )
            return service_pb2.CreateSilenceResponse(
                silence=service_pb2.SilenceInfo(silence=silence_to_proto(silence), state=silence_state(silence, now))
            )
        except Exception as exc:
            await _abort(context, "create silence", exc)
            raise

    async def ExpireSilence(
        self, request: service_pb2.ExpireSilenceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.ExpireSilenceResponse:
        try:
            tenant, author = self._caller(context)
            expired = await self._cmd().expire_silence(tenant=tenant, author=author, silence_id=request.id)
            return service_pb2.ExpireSilenceResponse(expired=expired)
        except Exception as exc:
            await _abort(context, "expire silence", exc)
            raise

    async def PreviewSilence(
        self, request: service_pb2.PreviewSilenceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.PreviewSilenceResponse:
        try:
            tenant = self._tenant(context)
            matchers = parse_matchers(request.matchers)
            if not matchers:
                return service_pb2.PreviewSilenceResponse()  # as CreateSilence, which refuses none
            await self._active.refresh()
            found = await self._active.instances(tenant, state_filter("active"))
            alerts = [_alert(i) for i in found]
            # The notifier's view of an alert's labels: what a silence is matched against.
            hit = [a for a in alerts if matches_all(matchers, alert_labels(a))]
            return service_pb2.PreviewSilenceResponse(alerts=hit)
        except Exception as exc:
            await _abort(context, "preview silence", exc)
            raise

    async def ListRules(
        self, request: service_pb2.ListRulesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.ListRulesResponse:
        try:
            tenant = self._tenant(context)
            config = (await self._config()).config(tenant)
            assert self._view is not None
            await self._active.refresh()
            out = service_pb2.ListRulesResponse()
            for name in sorted(config.rules):
                instances = await self._active.instances(tenant, frozenset(AlertState), rule=name)
                out.rules.append(
                    service_pb2.RuleStatus(
                        rule=rule_to_proto(config.rules[name]),
                        version=self._view.version(rule_entity(tenant, name)),
                        firing=sum(1 for i in instances if i.state is AlertState.FIRING),
                        pending=sum(1 for i in instances if i.state is AlertState.PENDING),
                    )
                )
            return out
        except Exception as exc:
            await _abort(context, "list rules", exc)
            raise

    async def SaveRule(
        self, request: service_pb2.SaveRuleRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.SaveRuleResponse:
        try:
            tenant, author = self._caller(context)
            commands = self._cmd()
            rule = parse_rule_document(request.document)
            expected = request.expected_version if request.HasField("expected_version") else None
            saved = await commands.save_rule(tenant=tenant, author=author, rule=rule, expected_version=expected)
            return service_pb2.SaveRuleResponse(
                rule=rule_to_proto(saved.rule), action=saved.action, version=saved.version
            )
        except Exception as exc:
            await _abort(context, "save rule", exc)
            raise

    async def BacktestRule(
        self, request: service_pb2.BacktestRuleRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> service_pb2.BacktestRuleResponse:
        try:
            tenant = self._tenant(context)
            rule = parse_rule_document(request.document)
            until = request.until_ms or self._clock_ms()
            since = request.since_ms
            if not 0 < since < until or until - since > MAX_BACKTEST_MS:
                raise InvalidArgument("since_ms: a time before until_ms, at most 24 h before it", parameter="since_ms")
            ticks = tick_count([rule], since, until)
            if ticks > MAX_BACKTEST_TICKS:
                raise InvalidArgument(
                    f"since_ms: {ticks:,} evaluations at this rule's interval, over the limit of "
                    f"{MAX_BACKTEST_TICKS:,}: shorten the range",
                    parameter="since_ms",
                )
            result = await backtest(self._events, tenant=tenant, rules=[rule], since_ms=since, until_ms=until)
            return service_pb2.BacktestRuleResponse(
                transitions=[_transition(t, rule) for t in result.transitions],
                since_ms=since,
                until_ms=until,
                first_sample_ms=result.first_sample_ms or 0,
                ticks=result.ticks,
            )
        except Exception as exc:
            await _abort(context, "backtest rule", exc)
            raise


async def _abort(context: grpc.aio.ServicerContext[Any, Any], what: str, exc: BaseException) -> None:
    if not isinstance(exc, ArgusError):
        log.exception("%s failed", what)
    elif is_server_fault(exc):
        log.warning("%s failed: %s", what, exc, exc_info=exc)
    code, details, trailing = grpc_status(exc)
    await context.abort(code, details, trailing)


def add_to_server(server: grpc.aio.Server, servicer: AlertServicer) -> None:
    service_pb2_grpc.add_AlertServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
