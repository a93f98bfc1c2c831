"""Which share of alerting this replica runs: the partitions of the alerts topic that its
member of the consumer group `alert-owners` is assigned (docs/decisions/0030-alerting-ha.md).

Guarantees:

- **Split by the group.** Every rule and every notification group maps to one shard, a
  partition of `argus.alerts.v1` (`shard_of`: SHA-256 of its key modulo the partitions). A
  replica evaluates the rules and notifies the groups of the shards it is assigned; the log's
  group protocol gives each shard to one live member, and moves the shards of a member that
  left or died (its session timed out) to the others.
- **Nothing before the first assignment.** Until the group has assigned this member its
  partitions it owns nothing (`owns` is False), so a replica that is still joining never acts
  on a shard another one runs.
- **Changes are counted.** `generation` grows on every assignment and revocation: the
  evaluator and the notifier compare it to decide when to re-read what the previous owner
  recorded before they act on a shard they just took over.
- One member owning every partition (the embedded log, one Kafka replica) owns everything.

The handler reads nothing durable: it only holds the membership (the runner must poll to stay
in the group) and commits what it polled.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence

from core.consumer import Delivery
from core.ports import LogRecord

log = logging.getLogger(__name__)

OWNERS_GROUP = "alert-owners"
OWNERS_SESSION_TIMEOUT_MS = 6_000
"""How long a dead replica keeps its shards: the smallest session Kafka brokers allow by
default (group.min.session.timeout.ms), so that a takeover after kill -9 fits in 10 s (issue
10). Only this membership-only group gets it; the busy groups keep the log's default."""


def shard_of(key: str, shards: int) -> int:
    """The shard (alerts-topic partition) of a rule (`tenant\\0rule`) or a notification group."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(shards, 1)


def rule_shard_key(tenant: str, rule: str) -> str:
    return f"{tenant}\0{rule}"


class Ownership:
    """A ConsumerHandler of the alerts topic (group OWNERS_GROUP) that only records which
    partitions (shards) this member is assigned. Every call runs in the event loop of the
    evaluator and notifier that ask `owns`."""

    def __init__(self, *, shards: int) -> None:
        self.shards = shards
        self.assigned: frozenset[int] = frozenset()
        self.generation = 0
        self._next: dict[int, int] = {}
        self._live: Callable[[], frozenset[int]] | None = None

    def follow(self, live: Callable[[], frozenset[int]]) -> None:
        """Also ask the group member itself (its runner's consumer): a revocation empties its
        assignment at once, before the handler hears of the next one."""
        self._live = live

    def owns(self, shard: int) -> bool:
        return shard in self.assigned and (self._live is None or shard in self._live())

    def owns_key(self, key: str) -> bool:
        return self.owns(shard_of(key, self.shards))

    # -- ConsumerHandler ----------------------------------------------------------------

    def decode(self, record: LogRecord) -> None:
        return None

    async def apply(self, deliveries: Sequence[Delivery[None]]) -> None:
        for d in deliveries:
            self._next[d.record.partition] = d.record.offset + 1

    def skip(self, partition: int, offset: int) -> None:
        self._next[partition] = offset + 1

    def buffer_full(self) -> bool:
        return False

    async def settle(self, *, force: bool) -> Mapping[int, int]:
        return dict(self._next)

    def reset(self) -> None:
        self._next = {}
        self._set(frozenset())

    async def reassigned(self, partitions: frozenset[int]) -> None:
        self._next = {p: o for p, o in self._next.items() if p in partitions}
        self._set(partitions)

    async def housekeeping(self) -> None:
        return None

    def _set(self, partitions: frozenset[int]) -> None:
        if partitions != self.assigned:
            log.info("alert shards owned: %s of %d", sorted(partitions), self.shards)
            self.assigned = partitions
            self.generation += 1
