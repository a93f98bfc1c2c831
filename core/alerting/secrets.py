"""Secret references of the alerting configuration (`env:NAME`, `file:/path`), read only at
send time so that no secret value enters an event, a log line or an error message."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from core.alerting.model import SecretRef
from core.errors import FailedPrecondition, InvalidArgument

_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,255}")


def parse_secret_ref(text: str, *, parameter: str) -> SecretRef:
    """`env:NAME` or `file:/absolute/path`; InvalidArgument naming `parameter` otherwise (a
    literal secret is refused: it would travel in config events)."""
    source, sep, name = text.partition(":")
    if sep and source == "env" and _ENV_NAME.fullmatch(name):
        return SecretRef(source="env", name=name)
    if sep and source == "file" and name.startswith("/") and "\0" not in name:
        return SecretRef(source="file", name=name)
    raise InvalidArgument(
        f"{parameter}: expected a secret reference `env:VARIABLE` or `file:/absolute/path`, not a literal "
        "value (secrets are never stored in the configuration)",
        parameter=parameter,
    )


def resolve_secret(ref: SecretRef) -> str:
    """The secret's value now. FailedPrecondition (naming the reference, never a value) when
    the variable is unset or the file unreadable."""
    if ref.source == "env":
        value = os.environ.get(ref.name)
        if value is None:
            raise FailedPrecondition(f"secret {ref}: environment variable {ref.name} is not set")
        return value
    try:
        return Path(ref.name).read_text().strip()
    except OSError as exc:
        raise FailedPrecondition(f"secret {ref}: cannot read the file ({exc.strerror})") from None
