from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MetricKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_KIND_UNSPECIFIED: _ClassVar[MetricKind]
    METRIC_KIND_COUNTER: _ClassVar[MetricKind]
    METRIC_KIND_GAUGE: _ClassVar[MetricKind]
    METRIC_KIND_TIMER: _ClassVar[MetricKind]
    METRIC_KIND_DISTINCT: _ClassVar[MetricKind]
METRIC_KIND_UNSPECIFIED: MetricKind
METRIC_KIND_COUNTER: MetricKind
METRIC_KIND_GAUGE: MetricKind
METRIC_KIND_TIMER: MetricKind
METRIC_KIND_DISTINCT: MetricKind

class Label(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SeriesSamples(_message.Message):
    __slots__ = ("metric", "kind", "region", "labels", "timestamps_ms", "values", "observation_counts", "observations", "distinct_values", "distinct_hashes", "sketch_sums", "sketch_mins", "sketch_maxs", "sketch_lasts", "sketch_sizes", "sketch_keys", "sketch_counts")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_MS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_COUNTS_FIELD_NUMBER: _ClassVar[int]
    OBSERVATIONS_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_VALUES_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_HASHES_FIELD_NUMBER: _ClassVar[int]
    SKETCH_SUMS_FIELD_NUMBER: _ClassVar[int]
    SKETCH_MINS_FIELD_NUMBER: _ClassVar[int]
    SKETCH_MAXS_FIELD_NUMBER: _ClassVar[int]
    SKETCH_LASTS_FIELD_NUMBER: _ClassVar[int]
    SKETCH_SIZES_FIELD_NUMBER: _ClassVar[int]
    SKETCH_KEYS_FIELD_NUMBER: _ClassVar[int]
    SKETCH_COUNTS_FIELD_NUMBER: _ClassVar[int]
    metric: str
    kind: MetricKind
    region: str
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    timestamps_ms: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    observation_counts: _containers.RepeatedScalarFieldContainer[int]
    observations: _containers.RepeatedScalarFieldContainer[float]
    distinct_values: _containers.RepeatedScalarFieldContainer[str]
    distinct_hashes: _containers.RepeatedScalarFieldContainer[int]
    sketch_sums: _containers.RepeatedScalarFieldContainer[float]
    sketch_mins: _containers.RepeatedScalarFieldContainer[float]
    sketch_maxs: _containers.RepeatedScalarFieldContainer[float]
    sketch_lasts: _containers.RepeatedScalarFieldContainer[float]
    sketch_sizes: _containers.RepeatedScalarFieldContainer[int]
    sketch_keys: _containers.RepeatedScalarFieldContainer[int]
    sketch_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, metric: _Optional[str] = ..., kind: _Optional[_Union[MetricKind, str]] = ..., region: _Optional[str] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., timestamps_ms: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., observation_counts: _Optional[_Iterable[int]] = ..., observations: _Optional[_Iterable[float]] = ..., distinct_values: _Optional[_Iterable[str]] = ..., distinct_hashes: _Optional[_Iterable[int]] = ..., sketch_sums: _Optional[_Iterable[float]] = ..., sketch_mins: _Optional[_Iterable[float]] = ..., sketch_maxs: _Optional[_Iterable[float]] = ..., sketch_lasts: _Optional[_Iterable[float]] = ..., sketch_sizes: _Optional[_Iterable[int]] = ..., sketch_keys: _Optional[_Iterable[int]] = ..., sketch_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class SampleBatch(_message.Message):
    __slots__ = ("batch_id", "source", "series")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    source: str
    series: _containers.RepeatedCompositeFieldContainer[SeriesSamples]
    def __init__(self, batch_id: _Optional[str] = ..., source: _Optional[str] = ..., series: _Optional[_Iterable[_Union[SeriesSamples, _Mapping]]] = ...) -> None: ...
