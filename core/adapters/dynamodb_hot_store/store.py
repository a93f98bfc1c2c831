"""`DynamoDBHotStore`: the HotStore port on DynamoDB, the chunk, series-index and
applied-event tables over one connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from core.adapters.dynamodb_hot_store.applied_events import AppliedEventsTable
from core.adapters.dynamodb_hot_store.chunks import ChunkTables
from core.adapters.dynamodb_hot_store.options import parse_url
from core.adapters.dynamodb_hot_store.series_index import SeriesIndexTable
from core.model import DEFAULT_TIERS, Tier


class DynamoDBHotStore(ChunkTables, SeriesIndexTable, AppliedEventsTable):
    """HotStore on DynamoDB (`dynamodb://REGION?...`)."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        tiers: Sequence[Tier] = DEFAULT_TIERS,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        clock_ms: Callable[[], int] | None = None,
        **overrides: Any,
    ) -> DynamoDBHotStore:
        options = parse_url(url)
        if access_key_id is not None:
            overrides["access_key_id"] = access_key_id
        if secret_access_key is not None:
            overrides["secret_access_key"] = secret_access_key
        return cls(replace(options, **overrides), tiers=tiers, clock_ms=clock_ms)
