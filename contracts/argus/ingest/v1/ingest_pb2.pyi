from contracts.argus.metrics.v1 import metrics_pb2 as _metrics_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_STATUS_UNSPECIFIED: _ClassVar[BatchStatus]
    BATCH_STATUS_ACCEPTED: _ClassVar[BatchStatus]
    BATCH_STATUS_PARTIAL: _ClassVar[BatchStatus]
    BATCH_STATUS_REJECTED: _ClassVar[BatchStatus]

class RejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECT_REASON_UNSPECIFIED: _ClassVar[RejectReason]
    REJECT_REASON_INVALID_METRIC_NAME: _ClassVar[RejectReason]
    REJECT_REASON_INVALID_LABEL: _ClassVar[RejectReason]
    REJECT_REASON_TOO_MANY_LABELS: _ClassVar[RejectReason]
    REJECT_REASON_NON_FINITE_VALUE: _ClassVar[RejectReason]
    REJECT_REASON_TIMESTAMP_TOO_NEW: _ClassVar[RejectReason]
    REJECT_REASON_TIMESTAMP_TOO_OLD: _ClassVar[RejectReason]
    REJECT_REASON_KIND_CONFLICT: _ClassVar[RejectReason]
    REJECT_REASON_SERIES_LIMIT: _ClassVar[RejectReason]
    REJECT_REASON_MALFORMED_SERIES: _ClassVar[RejectReason]
    REJECT_REASON_BATCH_TOO_LARGE: _ClassVar[RejectReason]
    REJECT_REASON_INVALID_REGION: _ClassVar[RejectReason]
    REJECT_REASON_NEGATIVE_COUNTER_DELTA: _ClassVar[RejectReason]
BATCH_STATUS_UNSPECIFIED: BatchStatus
BATCH_STATUS_ACCEPTED: BatchStatus
BATCH_STATUS_PARTIAL: BatchStatus
BATCH_STATUS_REJECTED: BatchStatus
REJECT_REASON_UNSPECIFIED: RejectReason
REJECT_REASON_INVALID_METRIC_NAME: RejectReason
REJECT_REASON_INVALID_LABEL: RejectReason
REJECT_REASON_TOO_MANY_LABELS: RejectReason
REJECT_REASON_NON_FINITE_VALUE: RejectReason
REJECT_REASON_TIMESTAMP_TOO_NEW: RejectReason
REJECT_REASON_TIMESTAMP_TOO_OLD: RejectReason
REJECT_REASON_KIND_CONFLICT: RejectReason
REJECT_REASON_SERIES_LIMIT: RejectReason
REJECT_REASON_MALFORMED_SERIES: RejectReason
REJECT_REASON_BATCH_TOO_LARGE: RejectReason
REJECT_REASON_INVALID_REGION: RejectReason
REJECT_REASON_NEGATIVE_COUNTER_DELTA: RejectReason

class PushRequest(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: _metrics_pb2.SampleBatch
    def __init__(self, batch: _Optional[_Union[_metrics_pb2.SampleBatch, _Mapping]] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: BatchResult
    def __init__(self, result: _Optional[_Union[BatchResult, _Mapping]] = ...) -> None: ...

class PushBatchRequest(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: _metrics_pb2.SampleBatch
    def __init__(self, batch: _Optional[_Union[_metrics_pb2.SampleBatch, _Mapping]] = ...) -> None: ...

class PushBatchResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: BatchResult
    def __init__(self, result: _Optional[_Union[BatchResult, _Mapping]] = ...) -> None: ...

class SampleRejection(_message.Message):
    __slots__ = ("series_index", "sample_index", "samples", "reason", "message")
    SERIES_INDEX_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    series_index: int
    sample_index: int
    samples: int
    reason: RejectReason
    message: str
    def __init__(self, series_index: _Optional[int] = ..., sample_index: _Optional[int] = ..., samples: _Optional[int] = ..., reason: _Optional[_Union[RejectReason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("batch_id", "status", "accepted_samples", "rejected_samples", "rejections", "duplicate", "error")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    status: BatchStatus
    accepted_samples: int
    rejected_samples: int
    rejections: _containers.RepeatedCompositeFieldContainer[SampleRejection]
    duplicate: bool
    error: str
    def __init__(self, batch_id: _Optional[str] = ..., status: _Optional[_Union[BatchStatus, str]] = ..., accepted_samples: _Optional[int] = ..., rejected_samples: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[SampleRejection, _Mapping]]] = ..., duplicate: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...
