"""What a receiver is told: one notification per route-group change, listing every member
alert, with its renderings (title, plain text, a short SMS form) and the stable JSON body of
webhooks (docs/alerting-notifications.md). Pure values, no I/O.

Guarantees:
- `id` is the caller's deterministic id (rule, group, transition): every retry and every
  replica re-sending the same change carries the same id, so receivers can drop duplicates
  (`Idempotency-Key`, the email `Message-ID`).
- Every rendering is a function of the value alone (labels sorted, times in UTC): the same
  notification renders to the same bytes on every replica.
- `title` is one line (control characters become spaces), so it is safe as an email subject.
- `sms_text()` is at most `MAX_SMS_BYTES` UTF-8 bytes (the SNS limit), cut on a character
  boundary.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from core.errors import InvalidArgument

MAX_SMS_BYTES: Final = 1600
BODY_VERSION: Final = 1
"""Version of the webhook JSON body; it changes only by adding fields."""
TEST_ALERTNAME: Final = "ArgusTestNotification"

# Printable ASCII without spaces: the id travels in HTTP headers and mail headers as is.
_ID: Final = re.compile(r"[!-~]{1,256}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


class NotificationStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertMember:
    """One alert of the group, as it stands in this notification."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    value: float = math.nan
    """The rule's value at the transition (NaN: no data)."""
    starts_ms: int
    ends_ms: int = 0
    """0 while firing."""
    fingerprint: str
    """Stable id of the alert instance (rule + labels)."""
    status: NotificationStatus = NotificationStatus.FIRING


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    id: str
    """Deterministic (rule/group/transition), printable ASCII without spaces, ≤ 256 chars."""
    tenant: str
    receiver: str
    status: NotificationStatus
    group_labels: Mapping[str, str]
    """The route's `group_by` labels and their values: what makes this group one page."""
    alerts: tuple[AlertMember, ...]
    common_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels every member has with the same value (`common_labels_of`)."""
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    created_ms: int = 0
    """When the transition happened (epoch ms); part of the body, so fixed by the caller."""
    test: bool = False
    """A test notification (`argus alerts test`): says so in every rendering."""

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise InvalidArgument(
                "notification id: expected 1 to 256 printable ASCII characters without spaces",
                parameter="id",
            )

    # -- renderings ------------------------------------------------------------------

    @property
    def firing_count(self) -> int:
        return sum(1 for a in self.alerts if a.status is NotificationStatus.FIRING)

    @property
    def title(self) -> str:
        """`[FIRING:3] HighCpu region=eu` / `[RESOLVED] HighCpu region=eu`, one line."""
        head = f"[FIRING:{self.firing_count}]" if self.status is NotificationStatus.FIRING else "[RESOLVED]"
        if self.test:
            head = "[TEST] " + head
        name = self.common_labels.get("alertname") or self.group_labels.get("alertname") or ""
        group = _labels_text({k: v for k, v in self.group_labels.items() if k != "alertname"})
        return _one_line(" ".join(part for part in (head, name, group) if part))

    @property
    def text(self) -> str:
        """The plain-text body (email, apprise): title, the group, then every member."""
        lines = [self.title, ""]
        if self.test:
            lines += ["This is a test notification sent by `argus alerts test`; no alert is firing.", ""]
        lines.append(f"tenant: {self.tenant}")
        lines.append(f"receiver: {self.receiver}")
        if self.common_labels:
            lines.append(f"labels: {_labels_text(self.common_labels)}")
        for key in sorted(self.common_annotations):
            lines.append(f"{key}: {self.common_annotations[key]}")
        lines.append("")
        for member in self.alerts:
            own = {k: v for k, v in member.labels.items() if self.common_labels.get(k) != v}
            lines.append(f"- [{member.status.value}] {_labels_text(own) or _labels_text(member.labels)}")
            lines.append(f"  value: {_value_text(member.value)}")
            lines.append(f"  since: {_time_text(member.starts_ms)}")
            if member.ends_ms:
                lines.append(f"  until: {_time_text(member.ends_ms)}")
            for key in sorted(member.annotations):
                if self.common_annotations.get(key) != member.annotations[key]:
                    lines.append(f"  {key}: {member.annotations[key]}")
        lines.append("")
        lines.append(f"notification id: {self.id}")
        return "\n".join(lines)

    def sms_text(self, limit_bytes: int = MAX_SMS_BYTES) -> str:
        """The short form (SMS, push body): title, summary, one line per member while they
        fit, then `… and N more`; never over `limit_bytes` UTF-8 bytes."""
        lines = [self.title]
        summary = self.common_annotations.get("summary")
        if summary:
            lines.append(_one_line(summary))
        members = [
            _one_line(
                f"{_labels_text({k: v for k, v in m.labels.items() if self.common_labels.get(k) != v})}"
                f" = {_value_text(m.value)}"
            )
            for m in self.alerts
        ]
        text = "\n".join(lines)
        for i, line in enumerate(members):
            rest = len(members) - i - 1
            more = f"\n… and {rest} more" if rest else ""
            candidate = f"{text}\n{line}"
            # Keep room for the "and N more" line of the members that would still follow.
            if len((candidate + more).encode()) > limit_bytes:
                text += f"\n… and {len(members) - i} more"
                break
            text = candidate
        return _cut_utf8(text, limit_bytes)

    # -- webhook body ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The webhook body as a dict (docs/alerting-notifications.md)."""
        return {
            "version": BODY_VERSION,
            "id": self.id,
            "tenant": self.tenant,
            "receiver": self.receiver,
            "status": self.status.value,
            "test": self.test,
            "title": self.title,
            "created_ms": self.created_ms,
            "group_labels": dict(self.group_labels),
            "common_labels": dict(self.common_labels),
            "common_annotations": dict(self.common_annotations),
            "alerts": [
                {
                    "status": m.status.value,
                    "labels": dict(m.labels),
                    "annotations": dict(m.annotations),
                    "value": m.value if math.isfinite(m.value) else None,
                    "starts_ms": m.starts_ms,
                    "ends_ms": m.ends_ms,
                    "fingerprint": m.fingerprint,
                }
                for m in self.alerts
            ],
        }

    def body_bytes(self) -> bytes:
        """The webhook body: compact UTF-8 JSON with sorted keys (the same bytes everywhere)."""
        return json.dumps(
            self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()

    @property
    def message_id_local(self) -> str:
        """The left part of the email Message-ID: derived from `id` (a digest, since an id
        may hold characters a Message-ID may not)."""
        return "argus." + hashlib.sha256(self.id.encode()).hexdigest()[:32]


def notification_id(*parts: str) -> str:
    """A deterministic id from its parts (tenant, rule, group key, transition, ...): the
    SHA-256 of their length-prefixed concatenation, hex."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode()
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.hexdigest()


def common_labels_of(maps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The pairs every map has with the same value (empty for no maps)."""
    common: dict[str, str] | None = None
    for m in maps:
        common = dict(m) if common is None else {k: v for k, v in common.items() if m.get(k) == v}
    return common or {}


def make_notification(
    *,
    id: str,
    tenant: str,
    receiver: str,
    group_labels: Mapping[str, str],
    alerts: Iterable[AlertMember],
    created_ms: int,
    test: bool = False,
) -> Notification:
    """A notification with its status (firing while any member fires) and its common
    labels and annotations computed from the members."""
    members = tuple(alerts)
    status = (
        NotificationStatus.FIRING
        if any(m.status is NotificationStatus.FIRING for m in members)
        else NotificationStatus.RESOLVED
    )
    return Notification(
        id=id,
        tenant=tenant,
        receiver=receiver,
        status=status,
        group_labels=dict(group_labels),
        alerts=members,
        common_labels=common_labels_of(m.labels for m in members),
        common_annotations=common_labels_of(m.annotations for m in members),
        created_ms=created_ms,
        test=test,
    )


def _labels_text(labels: Mapping[str, str]) -> str:
    return " ".join(f"{k}={labels[k]}" for k in sorted(labels))


def _value_text(value: float) -> str:
    return "no data" if math.isnan(value) else f"{value:.6g}"


def _time_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def _cut_utf8(text: str, limit_bytes: int) -> str:
    data = text.encode()
    if len(data) <= limit_bytes:
        return text
    return data[:limit_bytes].decode(errors="ignore")
