from contracts.argus.alerts.v1 import alerts_pb2 as _alerts_pb2
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
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[_alerts_pb2.AlertStateChanged]
    def __init__(self, alerts: _Optional[_Iterable[_Union[_alerts_pb2.AlertStateChanged, _Mapping]]] = ...) -> None: ...

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
