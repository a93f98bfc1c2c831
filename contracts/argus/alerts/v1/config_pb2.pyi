from contracts.argus.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConditionOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONDITION_OP_UNSPECIFIED: _ClassVar[ConditionOp]
    CONDITION_OP_ABOVE: _ClassVar[ConditionOp]
    CONDITION_OP_AT_OR_ABOVE: _ClassVar[ConditionOp]
    CONDITION_OP_BELOW: _ClassVar[ConditionOp]
    CONDITION_OP_AT_OR_BELOW: _ClassVar[ConditionOp]
    CONDITION_OP_OUTSIDE: _ClassVar[ConditionOp]
    CONDITION_OP_INSIDE: _ClassVar[ConditionOp]
    CONDITION_OP_CHANGE: _ClassVar[ConditionOp]
    CONDITION_OP_PERCENT_CHANGE: _ClassVar[ConditionOp]

class NoDataPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NO_DATA_POLICY_UNSPECIFIED: _ClassVar[NoDataPolicy]
    NO_DATA_POLICY_OK: _ClassVar[NoDataPolicy]
    NO_DATA_POLICY_ALERT: _ClassVar[NoDataPolicy]
    NO_DATA_POLICY_KEEP_LAST: _ClassVar[NoDataPolicy]
CONDITION_OP_UNSPECIFIED: ConditionOp
CONDITION_OP_ABOVE: ConditionOp
CONDITION_OP_AT_OR_ABOVE: ConditionOp
CONDITION_OP_BELOW: ConditionOp
CONDITION_OP_AT_OR_BELOW: ConditionOp
CONDITION_OP_OUTSIDE: ConditionOp
CONDITION_OP_INSIDE: ConditionOp
CONDITION_OP_CHANGE: ConditionOp
CONDITION_OP_PERCENT_CHANGE: ConditionOp
NO_DATA_POLICY_UNSPECIFIED: NoDataPolicy
NO_DATA_POLICY_OK: NoDataPolicy
NO_DATA_POLICY_ALERT: NoDataPolicy
NO_DATA_POLICY_KEEP_LAST: NoDataPolicy

class SecretRef(_message.Message):
    __slots__ = ("source", "name")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    source: str
    name: str
    def __init__(self, source: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RuleQuery(_message.Message):
    __slots__ = ("metric", "region", "where", "group_by", "agg")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    AGG_FIELD_NUMBER: _ClassVar[int]
    metric: str
    region: str
    where: _containers.RepeatedScalarFieldContainer[str]
    group_by: _containers.RepeatedScalarFieldContainer[str]
    agg: str
    def __init__(self, metric: _Optional[str] = ..., region: _Optional[str] = ..., where: _Optional[_Iterable[str]] = ..., group_by: _Optional[_Iterable[str]] = ..., agg: _Optional[str] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("op", "threshold", "low", "high", "over_ms")
    OP_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    OVER_MS_FIELD_NUMBER: _ClassVar[int]
    op: ConditionOp
    threshold: float
    low: float
    high: float
    over_ms: int
    def __init__(self, op: _Optional[_Union[ConditionOp, str]] = ..., threshold: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ..., over_ms: _Optional[int] = ...) -> None: ...

class AlertRule(_message.Message):
    __slots__ = ("name", "query", "window_ms", "condition", "for_ms", "keep_firing_for_ms", "no_data", "no_data_timeout_ms", "interval_ms", "severity", "labels", "annotations")
    class LabelsEntry(_message.Message):
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
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    FOR_MS_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIRING_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    NO_DATA_FIELD_NUMBER: _ClassVar[int]
    NO_DATA_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    query: RuleQuery
    window_ms: int
    condition: Condition
    for_ms: int
    keep_firing_for_ms: int
    no_data: NoDataPolicy
    no_data_timeout_ms: int
    interval_ms: int
    severity: str
    labels: _containers.ScalarMap[str, str]
    annotations: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., query: _Optional[_Union[RuleQuery, _Mapping]] = ..., window_ms: _Optional[int] = ..., condition: _Optional[_Union[Condition, _Mapping]] = ..., for_ms: _Optional[int] = ..., keep_firing_for_ms: _Optional[int] = ..., no_data: _Optional[_Union[NoDataPolicy, str]] = ..., no_data_timeout_ms: _Optional[int] = ..., interval_ms: _Optional[int] = ..., severity: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., annotations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EmailTarget(_message.Message):
    __slots__ = ("to", "from_addr", "smtp_host", "smtp_port", "starttls", "implicit_tls", "username", "password", "timeout_ms")
    TO_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDR_FIELD_NUMBER: _ClassVar[int]
    SMTP_HOST_FIELD_NUMBER: _ClassVar[int]
    SMTP_PORT_FIELD_NUMBER: _ClassVar[int]
    STARTTLS_FIELD_NUMBER: _ClassVar[int]
    IMPLICIT_TLS_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    to: _containers.RepeatedScalarFieldContainer[str]
    from_addr: str
    smtp_host: str
    smtp_port: int
    starttls: bool
    implicit_tls: bool
    username: str
    password: SecretRef
    timeout_ms: int
    def __init__(self, to: _Optional[_Iterable[str]] = ..., from_addr: _Optional[str] = ..., smtp_host: _Optional[str] = ..., smtp_port: _Optional[int] = ..., starttls: _Optional[bool] = ..., implicit_tls: _Optional[bool] = ..., username: _Optional[str] = ..., password: _Optional[_Union[SecretRef, _Mapping]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class WebhookTarget(_message.Message):
    __slots__ = ("url", "secret", "headers", "timeout_ms")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    url: str
    secret: SecretRef
    headers: _containers.ScalarMap[str, str]
    timeout_ms: int
    def __init__(self, url: _Optional[str] = ..., secret: _Optional[_Union[SecretRef, _Mapping]] = ..., headers: _Optional[_Mapping[str, str]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class SmsTarget(_message.Message):
    __slots__ = ("phone_numbers", "region", "endpoint_url")
    PHONE_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    phone_numbers: _containers.RepeatedScalarFieldContainer[str]
    region: str
    endpoint_url: str
    def __init__(self, phone_numbers: _Optional[_Iterable[str]] = ..., region: _Optional[str] = ..., endpoint_url: _Optional[str] = ...) -> None: ...

class PushTarget(_message.Message):
    __slots__ = ("target_arns", "region", "endpoint_url")
    TARGET_ARNS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    target_arns: _containers.RepeatedScalarFieldContainer[str]
    region: str
    endpoint_url: str
    def __init__(self, target_arns: _Optional[_Iterable[str]] = ..., region: _Optional[str] = ..., endpoint_url: _Optional[str] = ...) -> None: ...

class AppriseTarget(_message.Message):
    __slots__ = ("url",)
    URL_FIELD_NUMBER: _ClassVar[int]
    url: SecretRef
    def __init__(self, url: _Optional[_Union[SecretRef, _Mapping]] = ...) -> None: ...

class Receiver(_message.Message):
    __slots__ = ("name", "email", "webhook", "sms", "push", "apprise")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    SMS_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    APPRISE_FIELD_NUMBER: _ClassVar[int]
    name: str
    email: _containers.RepeatedCompositeFieldContainer[EmailTarget]
    webhook: _containers.RepeatedCompositeFieldContainer[WebhookTarget]
    sms: _containers.RepeatedCompositeFieldContainer[SmsTarget]
    push: _containers.RepeatedCompositeFieldContainer[PushTarget]
    apprise: _containers.RepeatedCompositeFieldContainer[AppriseTarget]
    def __init__(self, name: _Optional[str] = ..., email: _Optional[_Iterable[_Union[EmailTarget, _Mapping]]] = ..., webhook: _Optional[_Iterable[_Union[WebhookTarget, _Mapping]]] = ..., sms: _Optional[_Iterable[_Union[SmsTarget, _Mapping]]] = ..., push: _Optional[_Iterable[_Union[PushTarget, _Mapping]]] = ..., apprise: _Optional[_Iterable[_Union[AppriseTarget, _Mapping]]] = ...) -> None: ...

class LabelMatcher(_message.Message):
    __slots__ = ("name", "op", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    op: str
    value: str
    def __init__(self, name: _Optional[str] = ..., op: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("receiver", "matchers", "group_by", "group_wait_ms", "group_interval_ms", "repeat_interval_ms", "send_resolved", "continue_matching", "mute_time_intervals", "escalation", "routes")
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    GROUP_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    GROUP_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    REPEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SEND_RESOLVED_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_MATCHING_FIELD_NUMBER: _ClassVar[int]
    MUTE_TIME_INTERVALS_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    receiver: str
    matchers: _containers.RepeatedCompositeFieldContainer[LabelMatcher]
    group_by: _containers.RepeatedScalarFieldContainer[str]
    group_wait_ms: int
    group_interval_ms: int
    repeat_interval_ms: int
    send_resolved: bool
    continue_matching: bool
    mute_time_intervals: _containers.RepeatedScalarFieldContainer[str]
    escalation: str
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    def __init__(self, receiver: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[LabelMatcher, _Mapping]]] = ..., group_by: _Optional[_Iterable[str]] = ..., group_wait_ms: _Optional[int] = ..., group_interval_ms: _Optional[int] = ..., repeat_interval_ms: _Optional[int] = ..., send_resolved: _Optional[bool] = ..., continue_matching: _Optional[bool] = ..., mute_time_intervals: _Optional[_Iterable[str]] = ..., escalation: _Optional[str] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ...) -> None: ...

class InhibitRule(_message.Message):
    __slots__ = ("source", "target", "equal")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    EQUAL_FIELD_NUMBER: _ClassVar[int]
    source: _containers.RepeatedCompositeFieldContainer[LabelMatcher]
    target: _containers.RepeatedCompositeFieldContainer[LabelMatcher]
    equal: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, source: _Optional[_Iterable[_Union[LabelMatcher, _Mapping]]] = ..., target: _Optional[_Iterable[_Union[LabelMatcher, _Mapping]]] = ..., equal: _Optional[_Iterable[str]] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start_minute", "end_minute")
    START_MINUTE_FIELD_NUMBER: _ClassVar[int]
    END_MINUTE_FIELD_NUMBER: _ClassVar[int]
    start_minute: int
    end_minute: int
    def __init__(self, start_minute: _Optional[int] = ..., end_minute: _Optional[int] = ...) -> None: ...

class TimeInterval(_message.Message):
    __slots__ = ("name", "weekdays", "times", "timezone")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WEEKDAYS_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    name: str
    weekdays: _containers.RepeatedScalarFieldContainer[int]
    times: _containers.RepeatedCompositeFieldContainer[TimeRange]
    timezone: str
    def __init__(self, name: _Optional[str] = ..., weekdays: _Optional[_Iterable[int]] = ..., times: _Optional[_Iterable[_Union[TimeRange, _Mapping]]] = ..., timezone: _Optional[str] = ...) -> None: ...

class EscalationStep(_message.Message):
    __slots__ = ("after_ms", "receivers")
    AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    RECEIVERS_FIELD_NUMBER: _ClassVar[int]
    after_ms: int
    receivers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, after_ms: _Optional[int] = ..., receivers: _Optional[_Iterable[str]] = ...) -> None: ...

class EscalationPolicy(_message.Message):
    __slots__ = ("name", "steps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    steps: _containers.RepeatedCompositeFieldContainer[EscalationStep]
    def __init__(self, name: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[EscalationStep, _Mapping]]] = ...) -> None: ...

class Silence(_message.Message):
    __slots__ = ("id", "matchers", "starts_ms", "ends_ms", "comment", "author")
    ID_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    STARTS_MS_FIELD_NUMBER: _ClassVar[int]
    ENDS_MS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    matchers: _containers.RepeatedCompositeFieldContainer[LabelMatcher]
    starts_ms: int
    ends_ms: int
    comment: str
    author: str
    def __init__(self, id: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[LabelMatcher, _Mapping]]] = ..., starts_ms: _Optional[int] = ..., ends_ms: _Optional[int] = ..., comment: _Optional[str] = ..., author: _Optional[str] = ...) -> None: ...

class AlertRuleSaved(_message.Message):
    __slots__ = ("tenant", "rule", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    rule: AlertRule
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., rule: _Optional[_Union[AlertRule, _Mapping]] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class AlertRuleDeleted(_message.Message):
    __slots__ = ("tenant", "name", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class ReceiverSaved(_message.Message):
    __slots__ = ("tenant", "receiver", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    receiver: Receiver
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., receiver: _Optional[_Union[Receiver, _Mapping]] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class ReceiverDeleted(_message.Message):
    __slots__ = ("tenant", "name", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class AlertRoutingSaved(_message.Message):
    __slots__ = ("tenant", "route", "inhibit_rules", "time_intervals", "escalation_policies", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    INHIBIT_RULES_FIELD_NUMBER: _ClassVar[int]
    TIME_INTERVALS_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_POLICIES_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    route: Route
    inhibit_rules: _containers.RepeatedCompositeFieldContainer[InhibitRule]
    time_intervals: _containers.RepeatedCompositeFieldContainer[TimeInterval]
    escalation_policies: _containers.RepeatedCompositeFieldContainer[EscalationPolicy]
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., route: _Optional[_Union[Route, _Mapping]] = ..., inhibit_rules: _Optional[_Iterable[_Union[InhibitRule, _Mapping]]] = ..., time_intervals: _Optional[_Iterable[_Union[TimeInterval, _Mapping]]] = ..., escalation_policies: _Optional[_Iterable[_Union[EscalationPolicy, _Mapping]]] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class SilenceCreated(_message.Message):
    __slots__ = ("tenant", "silence", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SILENCE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    silence: Silence
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., silence: _Optional[_Union[Silence, _Mapping]] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class SilenceExpired(_message.Message):
    __slots__ = ("tenant", "id", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    id: str
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., id: _Optional[str] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...
