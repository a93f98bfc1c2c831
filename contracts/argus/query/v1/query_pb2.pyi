from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MatchOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCH_OP_UNSPECIFIED: _ClassVar[MatchOp]
    MATCH_OP_EQUAL: _ClassVar[MatchOp]
    MATCH_OP_NOT_EQUAL: _ClassVar[MatchOp]
    MATCH_OP_REGEX: _ClassVar[MatchOp]
    MATCH_OP_NOT_REGEX: _ClassVar[MatchOp]
MATCH_OP_UNSPECIFIED: MatchOp
MATCH_OP_EQUAL: MatchOp
MATCH_OP_NOT_EQUAL: MatchOp
MATCH_OP_REGEX: MatchOp
MATCH_OP_NOT_REGEX: MatchOp

class LabelMatcher(_message.Message):
    __slots__ = ("name", "op", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    op: MatchOp
    value: str
    def __init__(self, name: _Optional[str] = ..., op: _Optional[_Union[MatchOp, str]] = ..., value: _Optional[str] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("metric", "start_ms", "end_ms", "period", "agg", "matchers", "group_by", "region", "limit", "sort", "order")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    AGG_FIELD_NUMBER: _ClassVar[int]
    MATCHERS_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    metric: str
    start_ms: int
    end_ms: int
    period: str
    agg: str
    matchers: _containers.RepeatedCompositeFieldContainer[LabelMatcher]
    group_by: _containers.RepeatedScalarFieldContainer[str]
    region: str
    limit: int
    sort: str
    order: str
    def __init__(self, metric: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., period: _Optional[str] = ..., agg: _Optional[str] = ..., matchers: _Optional[_Iterable[_Union[LabelMatcher, _Mapping]]] = ..., group_by: _Optional[_Iterable[str]] = ..., region: _Optional[str] = ..., limit: _Optional[int] = ..., sort: _Optional[str] = ..., order: _Optional[str] = ...) -> None: ...

class ResultSeries(_message.Message):
    __slots__ = ("labels", "timestamps_ms", "values")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_MS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    timestamps_ms: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., timestamps_ms: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class QueryStats(_message.Message):
    __slots__ = ("series_matched", "chunks_read", "points_read", "elapsed_ms")
    SERIES_MATCHED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_READ_FIELD_NUMBER: _ClassVar[int]
    POINTS_READ_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    series_matched: int
    chunks_read: int
    points_read: int
    elapsed_ms: float
    def __init__(self, series_matched: _Optional[int] = ..., chunks_read: _Optional[int] = ..., points_read: _Optional[int] = ..., elapsed_ms: _Optional[float] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("tier", "series", "stats")
    TIER_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    tier: str
    series: _containers.RepeatedCompositeFieldContainer[ResultSeries]
    stats: QueryStats
    def __init__(self, tier: _Optional[str] = ..., series: _Optional[_Iterable[_Union[ResultSeries, _Mapping]]] = ..., stats: _Optional[_Union[QueryStats, _Mapping]] = ...) -> None: ...

class ListMetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MetricInfo(_message.Message):
    __slots__ = ("name", "kind", "series_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SERIES_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    series_count: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., series_count: _Optional[int] = ...) -> None: ...

class ListMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[MetricInfo]
    def __init__(self, metrics: _Optional[_Iterable[_Union[MetricInfo, _Mapping]]] = ...) -> None: ...

class ListLabelValuesRequest(_message.Message):
    __slots__ = ("label", "metric")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    label: str
    metric: str
    def __init__(self, label: _Optional[str] = ..., metric: _Optional[str] = ...) -> None: ...

class ListLabelValuesResponse(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("queries", "min_interval_ms")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[QueryRequest]
    min_interval_ms: int
    def __init__(self, queries: _Optional[_Iterable[_Union[QueryRequest, _Mapping]]] = ..., min_interval_ms: _Optional[int] = ...) -> None: ...

class WatchUpdate(_message.Message):
    __slots__ = ("query_index", "tier", "series", "error", "snapshot")
    QUERY_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    query_index: int
    tier: str
    series: _containers.RepeatedCompositeFieldContainer[ResultSeries]
    error: str
    snapshot: bool
    def __init__(self, query_index: _Optional[int] = ..., tier: _Optional[str] = ..., series: _Optional[_Iterable[_Union[ResultSeries, _Mapping]]] = ..., error: _Optional[str] = ..., snapshot: _Optional[bool] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[WatchUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[WatchUpdate, _Mapping]]] = ...) -> None: ...
