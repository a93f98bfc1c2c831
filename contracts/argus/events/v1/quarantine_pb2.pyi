from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RecordQuarantined(_message.Message):
    __slots__ = ("group", "topic", "partition", "offset", "error", "quarantined_at_ms", "event_id", "event_type", "schema_version", "payload_bytes", "payload_prefix")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_PREFIX_FIELD_NUMBER: _ClassVar[int]
    group: str
    topic: str
    partition: int
    offset: int
    error: str
    quarantined_at_ms: int
    event_id: bytes
    event_type: str
    schema_version: int
    payload_bytes: int
    payload_prefix: bytes
    def __init__(self, group: _Optional[str] = ..., topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., error: _Optional[str] = ..., quarantined_at_ms: _Optional[int] = ..., event_id: _Optional[bytes] = ..., event_type: _Optional[str] = ..., schema_version: _Optional[int] = ..., payload_bytes: _Optional[int] = ..., payload_prefix: _Optional[bytes] = ...) -> None: ...

class PartitionHalted(_message.Message):
    __slots__ = ("group", "topic", "partition", "offset", "event_type", "schema_version", "supported_version", "error", "halted_at_ms")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HALTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    group: str
    topic: str
    partition: int
    offset: int
    event_type: str
    schema_version: int
    supported_version: int
    error: str
    halted_at_ms: int
    def __init__(self, group: _Optional[str] = ..., topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., event_type: _Optional[str] = ..., schema_version: _Optional[int] = ..., supported_version: _Optional[int] = ..., error: _Optional[str] = ..., halted_at_ms: _Optional[int] = ...) -> None: ...

class PartitionResumed(_message.Message):
    __slots__ = ("group", "topic", "partition", "offset", "resumed_at_ms")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    RESUMED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    group: str
    topic: str
    partition: int
    offset: int
    resumed_at_ms: int
    def __init__(self, group: _Optional[str] = ..., topic: _Optional[str] = ..., partition: _Optional[int] = ..., offset: _Optional[int] = ..., resumed_at_ms: _Optional[int] = ...) -> None: ...
