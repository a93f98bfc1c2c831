from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AlertState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_STATE_UNSPECIFIED: _ClassVar[AlertState]
    ALERT_STATE_INACTIVE: _ClassVar[AlertState]
    ALERT_STATE_PENDING: _ClassVar[AlertState]
    ALERT_STATE_FIRING: _ClassVar[AlertState]
    ALERT_STATE_RESOLVED: _ClassVar[AlertState]
ALERT_STATE_UNSPECIFIED: AlertState
ALERT_STATE_INACTIVE: AlertState
ALERT_STATE_PENDING: AlertState
ALERT_STATE_FIRING: AlertState
ALERT_STATE_RESOLVED: AlertState

class AlertStateChanged(_message.Message):
    __slots__ = ("tenant", "rule", "instance_labels", "from_state", "to_state", "value", "evaluated_at_ms", "since_ms", "reason", "sequence", "annotations", "rule_labels", "severity", "instance_id")
    class InstanceLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AnnotationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class RuleLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_LABELS_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    RULE_LABELS_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    rule: str
    instance_labels: _containers.ScalarMap[str, str]
    from_state: AlertState
    to_state: AlertState
    value: float
    evaluated_at_ms: int
    since_ms: int
    reason: str
    sequence: int
    annotations: _containers.ScalarMap[str, str]
    rule_labels: _containers.ScalarMap[str, str]
    severity: str
    instance_id: str
    def __init__(self, tenant: _Optional[str] = ..., rule: _Optional[str] = ..., instance_labels: _Optional[_Mapping[str, str]] = ..., from_state: _Optional[_Union[AlertState, str]] = ..., to_state: _Optional[_Union[AlertState, str]] = ..., value: _Optional[float] = ..., evaluated_at_ms: _Optional[int] = ..., since_ms: _Optional[int] = ..., reason: _Optional[str] = ..., sequence: _Optional[int] = ..., annotations: _Optional[_Mapping[str, str]] = ..., rule_labels: _Optional[_Mapping[str, str]] = ..., severity: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class NotificationSent(_message.Message):
    __slots__ = ("tenant", "notification_id", "receiver", "route_path", "group_key", "group_sequence", "firing", "resolved", "channel", "target", "attempt", "created_ms", "escalation_step")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    ROUTE_PATH_FIELD_NUMBER: _ClassVar[int]
    GROUP_KEY_FIELD_NUMBER: _ClassVar[int]
    GROUP_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FIRING_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_STEP_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    notification_id: str
    receiver: str
    route_path: str
    group_key: str
    group_sequence: int
    firing: _containers.RepeatedScalarFieldContainer[str]
    resolved: _containers.RepeatedScalarFieldContainer[str]
    channel: str
    target: str
    attempt: int
    created_ms: int
    escalation_step: int
    def __init__(self, tenant: _Optional[str] = ..., notification_id: _Optional[str] = ..., receiver: _Optional[str] = ..., route_path: _Optional[str] = ..., group_key: _Optional[str] = ..., group_sequence: _Optional[int] = ..., firing: _Optional[_Iterable[str]] = ..., resolved: _Optional[_Iterable[str]] = ..., channel: _Optional[str] = ..., target: _Optional[str] = ..., attempt: _Optional[int] = ..., created_ms: _Optional[int] = ..., escalation_step: _Optional[int] = ...) -> None: ...

class NotificationFailed(_message.Message):
    __slots__ = ("tenant", "notification_id", "receiver", "route_path", "group_key", "group_sequence", "firing", "resolved", "channel", "target", "attempt", "created_ms", "error", "outcome", "escalation_step")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    ROUTE_PATH_FIELD_NUMBER: _ClassVar[int]
    GROUP_KEY_FIELD_NUMBER: _ClassVar[int]
    GROUP_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FIRING_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_STEP_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    notification_id: str
    receiver: str
    route_path: str
    group_key: str
    group_sequence: int
    firing: _containers.RepeatedScalarFieldContainer[str]
    resolved: _containers.RepeatedScalarFieldContainer[str]
    channel: str
    target: str
    attempt: int
    created_ms: int
    error: str
    outcome: str
    escalation_step: int
    def __init__(self, tenant: _Optional[str] = ..., notification_id: _Optional[str] = ..., receiver: _Optional[str] = ..., route_path: _Optional[str] = ..., group_key: _Optional[str] = ..., group_sequence: _Optional[int] = ..., firing: _Optional[_Iterable[str]] = ..., resolved: _Optional[_Iterable[str]] = ..., channel: _Optional[str] = ..., target: _Optional[str] = ..., attempt: _Optional[int] = ..., created_ms: _Optional[int] = ..., error: _Optional[str] = ..., outcome: _Optional[str] = ..., escalation_step: _Optional[int] = ...) -> None: ...

class AlertAcknowledged(_message.Message):
    __slots__ = ("tenant", "instance_id", "author", "comment", "time_ms", "revision", "alert_sequence")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ALERT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    instance_id: str
    author: str
    comment: str
    time_ms: int
    revision: int
    alert_sequence: int
    def __init__(self, tenant: _Optional[str] = ..., instance_id: _Optional[str] = ..., author: _Optional[str] = ..., comment: _Optional[str] = ..., time_ms: _Optional[int] = ..., revision: _Optional[int] = ..., alert_sequence: _Optional[int] = ...) -> None: ...

class AlertUnacknowledged(_message.Message):
    __slots__ = ("tenant", "instance_id", "author", "comment", "time_ms", "revision", "alert_sequence")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ALERT_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    instance_id: str
    author: str
    comment: str
    time_ms: int
    revision: int
    alert_sequence: int
    def __init__(self, tenant: _Optional[str] = ..., instance_id: _Optional[str] = ..., author: _Optional[str] = ..., comment: _Optional[str] = ..., time_ms: _Optional[int] = ..., revision: _Optional[int] = ..., alert_sequence: _Optional[int] = ...) -> None: ...

class AlertEscalated(_message.Message):
    __slots__ = ("tenant", "route_path", "group_key", "policy", "step", "receivers", "episode_ms", "notification_id", "firing", "created_ms")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_PATH_FIELD_NUMBER: _ClassVar[int]
    GROUP_KEY_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    RECEIVERS_FIELD_NUMBER: _ClassVar[int]
    EPISODE_MS_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    FIRING_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    route_path: str
    group_key: str
    policy: str
    step: int
    receivers: _containers.RepeatedScalarFieldContainer[str]
    episode_ms: int
    notification_id: str
    firing: _containers.RepeatedScalarFieldContainer[str]
    created_ms: int
    def __init__(self, tenant: _Optional[str] = ..., route_path: _Optional[str] = ..., group_key: _Optional[str] = ..., policy: _Optional[str] = ..., step: _Optional[int] = ..., receivers: _Optional[_Iterable[str]] = ..., episode_ms: _Optional[int] = ..., notification_id: _Optional[str] = ..., firing: _Optional[_Iterable[str]] = ..., created_ms: _Optional[int] = ...) -> None: ...
