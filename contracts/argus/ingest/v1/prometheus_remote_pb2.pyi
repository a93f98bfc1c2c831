from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PrometheusWriteRequest(_message.Message):
    __slots__ = ("timeseries", "metadata")
    TIMESERIES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    timeseries: _containers.RepeatedCompositeFieldContainer[PrometheusTimeSeries]
    metadata: _containers.RepeatedCompositeFieldContainer[PrometheusMetricMetadata]
    def __init__(self, timeseries: _Optional[_Iterable[_Union[PrometheusTimeSeries, _Mapping]]] = ..., metadata: _Optional[_Iterable[_Union[PrometheusMetricMetadata, _Mapping]]] = ...) -> None: ...

class PrometheusTimeSeries(_message.Message):
    __slots__ = ("labels", "samples")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[PrometheusLabel]
    samples: _containers.RepeatedCompositeFieldContainer[PrometheusSample]
    def __init__(self, labels: _Optional[_Iterable[_Union[PrometheusLabel, _Mapping]]] = ..., samples: _Optional[_Iterable[_Union[PrometheusSample, _Mapping]]] = ...) -> None: ...

class PrometheusLabel(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class PrometheusSample(_message.Message):
    __slots__ = ("value", "timestamp")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    value: float
    timestamp: int
    def __init__(self, value: _Optional[float] = ..., timestamp: _Optional[int] = ...) -> None: ...

class PrometheusMetricMetadata(_message.Message):
    __slots__ = ("type", "metric_family_name", "help", "unit")
    class MetricType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        METRIC_TYPE_UNSPECIFIED: _ClassVar[PrometheusMetricMetadata.MetricType]
        METRIC_TYPE_COUNTER: _ClassVar[PrometheusMetricMetadata.MetricType]
        METRIC_TYPE_GAUGE: _ClassVar[PrometheusMetricMetadata.MetricType]
        METRIC_TYPE_HISTOGRAM: _ClassVar[PrometheusMetricMetadata.MetricType]
        METRIC_TYPE_GAUGEHISTOGRAM: _ClassVar[PrometheusMetricMetadata.MetricType]
        METRIC_TYPE_SUMMARY: _ClassVar[PrometheusMetricMetadata.MetricType]
        METRIC_TYPE_INFO: _ClassVar[PrometheusMetricMetadata.MetricType]
        METRIC_TYPE_STATESET: _ClassVar[PrometheusMetricMetadata.MetricType]
    METRIC_TYPE_UNSPECIFIED: PrometheusMetricMetadata.MetricType
    METRIC_TYPE_COUNTER: PrometheusMetricMetadata.MetricType
    METRIC_TYPE_GAUGE: PrometheusMetricMetadata.MetricType
    METRIC_TYPE_HISTOGRAM: PrometheusMetricMetadata.MetricType
    METRIC_TYPE_GAUGEHISTOGRAM: PrometheusMetricMetadata.MetricType
    METRIC_TYPE_SUMMARY: PrometheusMetricMetadata.MetricType
    METRIC_TYPE_INFO: PrometheusMetricMetadata.MetricType
    METRIC_TYPE_STATESET: PrometheusMetricMetadata.MetricType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    HELP_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    type: PrometheusMetricMetadata.MetricType
    metric_family_name: str
    help: str
    unit: str
    def __init__(self, type: _Optional[_Union[PrometheusMetricMetadata.MetricType, str]] = ..., metric_family_name: _Optional[str] = ..., help: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...
