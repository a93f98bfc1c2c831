from contracts.argus.metrics.v1 import metrics_pb2 as _metrics_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventEnvelope(_message.Message):
    __slots__ = ("event_id", "type", "schema_version", "time_ms", "partition_key", "payload")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_KEY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    event_id: bytes
    type: str
    schema_version: int
    time_ms: int
    partition_key: bytes
    payload: bytes
    def __init__(self, event_id: _Optional[bytes] = ..., type: _Optional[str] = ..., schema_version: _Optional[int] = ..., time_ms: _Optional[int] = ..., partition_key: _Optional[bytes] = ..., payload: _Optional[bytes] = ...) -> None: ...

class SampleBatchAccepted(_message.Message):
    __slots__ = ("tenant", "source", "batch_id", "series", "series_ids")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    SERIES_IDS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    source: str
    batch_id: str
    series: _containers.RepeatedCompositeFieldContainer[_metrics_pb2.SeriesSamples]
    series_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, tenant: _Optional[str] = ..., source: _Optional[str] = ..., batch_id: _Optional[str] = ..., series: _Optional[_Iterable[_Union[_metrics_pb2.SeriesSamples, _Mapping]]] = ..., series_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ConfigChange(_message.Message):
    __slots__ = ("author", "expected_version")
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    author: str
    expected_version: int
    def __init__(self, author: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ApiKeyCreated(_message.Message):
    __slots__ = ("key_sha256", "tenant", "name", "change")
    KEY_SHA256_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    key_sha256: bytes
    tenant: str
    name: str
    change: ConfigChange
    def __init__(self, key_sha256: _Optional[bytes] = ..., tenant: _Optional[str] = ..., name: _Optional[str] = ..., change: _Optional[_Union[ConfigChange, _Mapping]] = ...) -> None: ...

class ApiKeyRevoked(_message.Message):
    __slots__ = ("key_sha256", "change")
    KEY_SHA256_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    key_sha256: bytes
    change: ConfigChange
    def __init__(self, key_sha256: _Optional[bytes] = ..., change: _Optional[_Union[ConfigChange, _Mapping]] = ...) -> None: ...

class ReadModelReplayStarted(_message.Message):
    __slots__ = ("model", "version", "store_url", "change")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_URL_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    store_url: str
    change: ConfigChange
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., store_url: _Optional[str] = ..., change: _Optional[_Union[ConfigChange, _Mapping]] = ...) -> None: ...

class ReadModelActivated(_message.Message):
    __slots__ = ("model", "version", "store_url", "change")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_URL_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    store_url: str
    change: ConfigChange
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., store_url: _Optional[str] = ..., change: _Optional[_Union[ConfigChange, _Mapping]] = ...) -> None: ...
