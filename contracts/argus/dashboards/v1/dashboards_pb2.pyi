from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Dashboard(_message.Message):
    __slots__ = ("uid", "title", "folder", "tags", "spec_json", "version", "updated_ms", "updated_by", "provisioned", "deleted")
    UID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    PROVISIONED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    uid: str
    title: str
    folder: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    spec_json: str
    version: int
    updated_ms: int
    updated_by: str
    provisioned: bool
    deleted: bool
    def __init__(self, uid: _Optional[str] = ..., title: _Optional[str] = ..., folder: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., spec_json: _Optional[str] = ..., version: _Optional[int] = ..., updated_ms: _Optional[int] = ..., updated_by: _Optional[str] = ..., provisioned: _Optional[bool] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ListDashboardsRequest(_message.Message):
    __slots__ = ("search", "folder", "tags", "include_deleted")
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELETED_FIELD_NUMBER: _ClassVar[int]
    search: str
    folder: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    include_deleted: bool
    def __init__(self, search: _Optional[str] = ..., folder: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., include_deleted: _Optional[bool] = ...) -> None: ...

class ListDashboardsResponse(_message.Message):
    __slots__ = ("dashboards",)
    DASHBOARDS_FIELD_NUMBER: _ClassVar[int]
    dashboards: _containers.RepeatedCompositeFieldContainer[Dashboard]
    def __init__(self, dashboards: _Optional[_Iterable[_Union[Dashboard, _Mapping]]] = ...) -> None: ...

class GetDashboardRequest(_message.Message):
    __slots__ = ("uid", "version")
    UID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    uid: str
    version: int
    def __init__(self, uid: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetDashboardResponse(_message.Message):
    __slots__ = ("dashboard",)
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ...) -> None: ...

class SaveDashboardRequest(_message.Message):
    __slots__ = ("dashboard", "expected_version", "message")
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    expected_version: int
    message: str
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ..., expected_version: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class SaveDashboardResponse(_message.Message):
    __slots__ = ("dashboard",)
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ...) -> None: ...

class DeleteDashboardRequest(_message.Message):
    __slots__ = ("uid", "expected_version")
    UID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    uid: str
    expected_version: int
    def __init__(self, uid: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DeleteDashboardResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class DashboardHistoryRequest(_message.Message):
    __slots__ = ("uid", "limit")
    UID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    uid: str
    limit: int
    def __init__(self, uid: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class DashboardHistoryEntry(_message.Message):
    __slots__ = ("dashboard", "message")
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    message: str
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class DashboardHistoryResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[DashboardHistoryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[DashboardHistoryEntry, _Mapping]]] = ...) -> None: ...

class RestoreDashboardRequest(_message.Message):
    __slots__ = ("uid", "version", "expected_version")
    UID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    uid: str
    version: int
    expected_version: int
    def __init__(self, uid: _Optional[str] = ..., version: _Optional[int] = ..., expected_version: _Optional[int] = ...) -> None: ...

class RestoreDashboardResponse(_message.Message):
    __slots__ = ("dashboard",)
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ...) -> None: ...
