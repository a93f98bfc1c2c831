from contracts.argus.alerts.v1 import alerts_pb2 as _alerts_pb2
from contracts.argus.alerts.v1 import config_pb2 as _config_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListAlertsRequest(_message.Message):
    __slots__ = ("state", "rule")
    STATE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    state: str
    rule: str
    def __init__(self, state: _Optional[str] = ..., rule: _Optional[str] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "acknowledged", "silenced")
    class AcknowledgedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Acknowledgement
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Acknowledgement, _Mapping]] = ...) -> None: ...
    class SilencedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SilenceIds
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SilenceIds, _Mapping]] = ...) -> None: ...
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    SILENCED_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[_alerts_pb2.AlertStateChanged]
    acknowledged: _containers.MessageMap[str, Acknowledgement]
    silenced: _containers.MessageMap[str, SilenceIds]
    def __init__(self, alerts: _Optional[_Iterable[_Union[_alerts_pb2.AlertStateChanged, _Mapping]]] = ..., acknowledged: _Optional[_Mapping[str, Acknowledgement]] = ..., silenced: _Optional[_Mapping[str, SilenceIds]] = ...) -> None: ...

class SilenceIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Acknowledgement(_message.Message):
    __slots__ = ("instance_id", "acknowledged", "by", "at_ms", "comment")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    acknowledged: bool
    by: str
    at_ms: int
    comment: str
    def __init__(self, instance_id: _Optional[str] = ..., acknowledged: _Optional[bool] = ..., by: _Optional[str] = ..., at_ms: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("since_ms", "rule", "cursor", "limit")
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    since_ms: int
    rule: str
    cursor: str
    limit: int
    def __init__(self, since_ms: _Optional[int] = ..., rule: _Optional[str] = ..., cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class AlertEvent(_message.Message):
    __slots__ = ("state_changed", "notification_sent", "notification_failed", "acknowledged", "unacknowledged", "escalated", "rules")
    STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_SENT_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FAILED_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    UNACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    state_changed: _alerts_pb2.AlertStateChanged
    notification_sent: _alerts_pb2.NotificationSent
    notification_failed: _alerts_pb2.NotificationFailed
    acknowledged: _alerts_pb2.AlertAcknowledged
    unacknowledged: _alerts_pb2.AlertUnacknowledged
    escalated: _alerts_pb2.AlertEscalated
    rules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, state_changed: _Optional[_Union[_alerts_pb2.AlertStateChanged, _Mapping]] = ..., notification_sent: _Optional[_Union[_alerts_pb2.NotificationSent, _Mapping]] = ..., notification_failed: _Optional[_Union[_alerts_pb2.NotificationFailed, _Mapping]] = ..., acknowledged: _Optional[_Union[_alerts_pb2.AlertAcknowledged, _Mapping]] = ..., unacknowledged: _Optional[_Union[_alerts_pb2.AlertUnacknowledged, _Mapping]] = ..., escalated: _Optional[_Union[_alerts_pb2.AlertEscalated, _Mapping]] = ..., rules: _Optional[_Iterable[str]] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("events", "next_cursor")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AlertEvent]
    next_cursor: str
    def __init__(self, events: _Optional[_Iterable[_Union[AlertEvent, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "cursor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event: AlertEvent
    cursor: str
    def __init__(self, event: _Optional[_Union[AlertEvent, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class AcknowledgeRequest(_message.Message):
    __slots__ = ("instance_id", "comment")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    comment: str
    def __init__(self, instance_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class UnacknowledgeRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class AcknowledgeResponse(_message.Message):
    __slots__ = ("acknowledgement",)
    ACKNOWLEDGEMENT_FIELD_NUMBER: _ClassVar[int]
    acknowledgement: Acknowledgement
    def __init__(self, acknowledgement: _Optional[_Union[Acknowledgement, _Mapping]] = ...) -> None: ...

class SilenceInfo(_message.Message):
    __slots__ = ("silence", "state")
    SILENCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    silence: _config_pb2.Silence
    state: str
    def __init__(self, silence: _Optional[_Union[_config_pb2.Silence, _Mapping]] = ..., state: _Optional[str] = ...) -> None: ...

class UnacknowledgeResponse(_message.Message):
    __slots__ = ("acknowledgement",)
    ACKNOWLEDGEMENT_FIELD_NUMBER: _ClassVar[int]
    acknowledgement: Acknowledgement
    def __init__(self, acknowledgement: _Optional[_Union[Acknowledgement, _Mapping]] = ...) -> None: ...

class ListSilencesRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class ListSilencesResponse(_message.Message):
    __slots__ = ("silences",)
    SILENCES_FIELD_NUMBER: _ClassVar[int]
    silences: _containers.RepeatedCompositeFieldContainer[SilenceInfo]
    def __init__(self, silences: _Optional[_Iterable[_Union[SilenceInfo, _Mapping]]] = ...) -> None: ...

class CreateSilenceRequest(_message.Message):
    __slots__ = ("matchers", "duration", "starts_ms", "ends_ms", "comment")
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    STARTS_MS_FIELD_NUMBER: _ClassVar[int]
    ENDS_MS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    matchers: _containers.RepeatedScalarFieldContainer[str]
    duration: str
    starts_ms: int
    ends_ms: int
    comment: str
    def __init__(self, matchers: _Optional[_Iterable[str]] = ..., duration: _Optional[str] = ..., starts_ms: _Optional[int] = ..., ends_ms: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class CreateSilenceResponse(_message.Message):
    __slots__ = ("silence",)
    SILENCE_FIELD_NUMBER: _ClassVar[int]
    silence: SilenceInfo
    def __init__(self, silence: _Optional[_Union[SilenceInfo, _Mapping]] = ...) -> None: ...

class ExpireSilenceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExpireSilenceResponse(_message.Message):
    __slots__ = ("expired",)
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    expired: bool
    def __init__(self, expired: _Optional[bool] = ...) -> None: ...

class PreviewSilenceRequest(_message.Message):
    __slots__ = ("matchers",)
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    matchers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, matchers: _Optional[_Iterable[str]] = ...) -> None: ...

class PreviewSilenceResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[_alerts_pb2.AlertStateChanged]
    def __init__(self, alerts: _Optional[_Iterable[_Union[_alerts_pb2.AlertStateChanged, _Mapping]]] = ...) -> None: ...

class ListRulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RuleStatus(_message.Message):
    __slots__ = ("rule", "version", "firing", "pending")
    RULE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRING_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    rule: _config_pb2.AlertRule
    version: int
    firing: int
    pending: int
    def __init__(self, rule: _Optional[_Union[_config_pb2.AlertRule, _Mapping]] = ..., version: _Optional[int] = ..., firing: _Optional[int] = ..., pending: _Optional[int] = ...) -> None: ...

class ListRulesResponse(_message.Message):
    __slots__ = ("rules",)
    RULES_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[RuleStatus]
    def __init__(self, rules: _Optional[_Iterable[_Union[RuleStatus, _Mapping]]] = ...) -> None: ...

class SaveRuleRequest(_message.Message):
    __slots__ = ("document", "expected_version")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    document: str
    expected_version: int
    def __init__(self, document: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SaveRuleResponse(_message.Message):
    __slots__ = ("rule", "action", "version")
    RULE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    rule: _config_pb2.AlertRule
    action: str
    version: int
    def __init__(self, rule: _Optional[_Union[_config_pb2.AlertRule, _Mapping]] = ..., action: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class BacktestRuleRequest(_message.Message):
    __slots__ = ("document", "since_ms", "until_ms")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    document: str
    since_ms: int
    until_ms: int
    def __init__(self, document: _Optional[str] = ..., since_ms: _Optional[int] = ..., until_ms: _Optional[int] = ...) -> None: ...

class BacktestRuleResponse(_message.Message):
    __slots__ = ("transitions", "since_ms", "until_ms", "first_sample_ms", "ticks")
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SAMPLE_MS_FIELD_NUMBER: _ClassVar[int]
    TICKS_FIELD_NUMBER: _ClassVar[int]
    transitions: _containers.RepeatedCompositeFieldContainer[_alerts_pb2.AlertStateChanged]
    since_ms: int
    until_ms: int
    first_sample_ms: int
    ticks: int
    def __init__(self, transitions: _Optional[_Iterable[_Union[_alerts_pb2.AlertStateChanged, _Mapping]]] = ..., since_ms: _Optional[int] = ..., until_ms: _Optional[int] = ..., first_sample_ms: _Optional[int] = ..., ticks: _Optional[int] = ...) -> None: ...
