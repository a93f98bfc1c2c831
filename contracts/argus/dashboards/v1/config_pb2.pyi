from contracts.argus.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DashboardContent(_message.Message):
    __slots__ = ("uid", "title", "folder", "tags", "spec_json", "provisioned")
    UID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    PROVISIONED_FIELD_NUMBER: _ClassVar[int]
    uid: str
    title: str
    folder: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    spec_json: str
    provisioned: bool
    def __init__(self, uid: _Optional[str] = ..., title: _Optional[str] = ..., folder: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., spec_json: _Optional[str] = ..., provisioned: _Optional[bool] = ...) -> None: ...

class DashboardSaved(_message.Message):
    __slots__ = ("tenant", "dashboard", "message", "restored_from", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FROM_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    dashboard: DashboardContent
    message: str
    restored_from: int
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., dashboard: _Optional[_Union[DashboardContent, _Mapping]] = ..., message: _Optional[str] = ..., restored_from: _Optional[int] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...

class DashboardDeleted(_message.Message):
    __slots__ = ("tenant", "uid", "message", "change")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    uid: str
    message: str
    change: _events_pb2.ConfigChange
    def __init__(self, tenant: _Optional[str] = ..., uid: _Optional[str] = ..., message: _Optional[str] = ..., change: _Optional[_Union[_events_pb2.ConfigChange, _Mapping]] = ...) -> None: ...
