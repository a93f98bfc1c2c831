"""The query side's use cases, written once for every transport: (tenant, request) -> response.

Transports are thin wrappers that read the tenant from their metadata (`authenticate`),
parse their wire format into these request values, call a handler and encode its answer:
`grpc_service.py` (grpc.aio, protobuf), `http_gateway.py` (HTTP JSON). A gRPC-web adapter is
the gRPC wrapper's proto codec (`spec_from_request`, `response_from_result`) over another
framing. Errors are `core/errors.py` exceptions; every transport maps them with the one
table in `core/transport_errors.py`. All handlers are read-only and idempotent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from core.auth import Authenticator
from core.errors import InvalidArgument
from core.ports import MetricSummary
from core.tenancy import Metadata, tenant_from_metadata
from query_side.engine import Clock, QueryEngine, QueryResult, system_clock_ms
from query_side.planner import QuerySpec

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelValuesRequest:
    label: str
    metric: str | None = None


class QueryHandlers:
    """Query, list metrics, list label values: over one QueryEngine, for any transport."""

    def __init__(self, engine: QueryEngine, authenticator: Authenticator, clock: Clock = system_clock_ms) -> None:
        self._engine = engine
        self._auth = authenticator
        self._clock = clock

    def authenticate(self, metadata: Metadata | None) -> str:
        """The tenant of the request (gRPC metadata or HTTP headers); raises Unauthenticated."""
        return tenant_from_metadata(self._auth, metadata)

    def now_ms(self) -> int:
        """ "now" for the relative times of a request being parsed."""
        return self._clock()

    async def query(self, tenant: str, request: QuerySpec) -> QueryResult:
        """Answer one query of `tenant` (the request's own tenant field is ignored): bounded by
        the engine's limits (see QueryEngine.query for the errors)."""
        return await self._engine.query(dataclasses.replace(request, tenant=tenant))

    async def list_metrics(self, tenant: str) -> list[MetricSummary]:
        """The tenant's metrics, sorted by name."""
        return await self._engine.list_metrics(tenant)

    async def label_values(self, tenant: str, request: LabelValuesRequest) -> list[str]:
        """Sorted distinct values of a label in the tenant or one metric; the label is required."""
        if not request.label:
            raise InvalidArgument("label: a label name is required", parameter="label")
        return await self._engine.label_values(tenant, request.label, (request.metric or "").strip() or None)

    async def encode(self, fn: Callable[..., _T], result: QueryResult) -> _T:
        """Run a transport's encoding of a query answer off the event loop (query worker
        threads) when it is large enough to matter."""
        return await self._engine.offload(fn, result, work=sum(len(s.ts) for s in result.series))
