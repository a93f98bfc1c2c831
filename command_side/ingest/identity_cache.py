"""A memory-bounded cache of validated series identities.

Two generations: hits in the old one move to the young one, and when the young one has
spent half the budget it becomes the old one (the previous old one is dropped). That keeps
roughly the most recently used identities in at most the budget, with O(1) work per hit
and no per-hit reordering. Sizes are estimated from the key's strings (`sys.getsizeof`, O(1)
per string) plus a fixed overhead per entry for the dict slots and the value.
"""

from __future__ import annotations

import sys
from typing import Generic, TypeVar

V = TypeVar("V")
# The key: (tenant, metric, kind, region, ((name, value), ...)).
IdentityKey = tuple[str, str, int, str, tuple[tuple[str, str], ...]]
# Or: (tenant, a series' serialized identity template).
TemplateKey = tuple[str, bytes]

_ENTRY_OVERHEAD = 256  # two dict slots, the key tuple, the value object and its fields


def key_bytes(key: IdentityKey | TemplateKey | TemplateKey) -> int:
    if len(key) == 2:
        return _ENTRY_OVERHEAD + sys.getsizeof(key[0]) + sys.getsizeof(key[1])
    tenant, metric, _, region, labels = key
    size = _ENTRY_OVERHEAD + sys.getsizeof(tenant) + sys.getsizeof(metric) + sys.getsizeof(region)
    size += sys.getsizeof(labels)
    for name, value in labels:
        size += 56 + sys.getsizeof(name) + sys.getsizeof(value)  # 56: the pair's tuple
    return size


class IdentityCache(Generic[V]):
    def __init__(self, *, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._young: dict[IdentityKey | TemplateKey, tuple[V, int]] = {}
        self._old: dict[IdentityKey | TemplateKey, tuple[V, int]] = {}
        self._young_bytes = 0
        self._old_bytes = 0

    def get(self, key: IdentityKey | TemplateKey) -> V | None:
        found = self._young.get(key)
        if found is not None:
            return found[0]
        found = self._old.pop(key, None)
        if found is None:
            return None
        self._old_bytes -= found[1]
        self._insert(key, found)
        return found[0]

    def put(self, key: IdentityKey | TemplateKey, value: V) -> None:
        if key in self._young:
            return
        stale = self._old.pop(key, None)
        if stale is not None:
            self._old_bytes -= stale[1]
        self._insert(key, (value, key_bytes(key)))

    def _insert(self, key: IdentityKey | TemplateKey, entry: tuple[V, int]) -> None:
        size = entry[1]
        half = self.budget_bytes // 2
        if size > half:  # would not fit a generation: not worth keeping
            return
        if self._young_bytes + size > half:
            self._old, self._old_bytes = self._young, self._young_bytes
            self._young, self._young_bytes = {}, 0
        self._young[key] = entry
        self._young_bytes += size

    @property
    def bytes(self) -> int:
        """Estimated bytes held (at most `budget_bytes`)."""
        return self._young_bytes + self._old_bytes

    def __len__(self) -> int:
        return len(self._young) + len(self._old)
