"""core/alerting/model.py's one piece of logic (when a condition is breached) and the secret
references of core/alerting/secrets.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.alerting.model import Condition, ConditionOp, SecretRef
from core.alerting.secrets import parse_secret_ref, resolve_secret
from core.errors import FailedPrecondition, InvalidArgument


@pytest.mark.parametrize(
    ("condition", "value", "earlier", "breached"),
    [
        (Condition(op=ConditionOp.ABOVE, threshold=90), 90.0, None, False),
        (Condition(op=ConditionOp.ABOVE, threshold=90), 90.5, None, True),
        (Condition(op=ConditionOp.AT_OR_ABOVE, threshold=90), 90.0, None, True),
        (Condition(op=ConditionOp.BELOW, threshold=0.5), 0.4, None, True),
        (Condition(op=ConditionOp.AT_OR_BELOW, threshold=0.5), 0.6, None, False),
        (Condition(op=ConditionOp.OUTSIDE, low=10, high=20), 9.9, None, True),
        (Condition(op=ConditionOp.OUTSIDE, low=10, high=20), 20.0, None, False),
        (Condition(op=ConditionOp.INSIDE, low=10, high=20), 20.0, None, True),
        (Condition(op=ConditionOp.CHANGE, threshold=5, over_ms=60_000), 10.0, 4.0, True),
        (Condition(op=ConditionOp.CHANGE, threshold=5, over_ms=60_000), 10.0, None, False),
        (Condition(op=ConditionOp.PERCENT_CHANGE, threshold=50, over_ms=60_000), 160.0, 100.0, True),
        (Condition(op=ConditionOp.PERCENT_CHANGE, threshold=50, over_ms=60_000), 140.0, 100.0, False),
        (Condition(op=ConditionOp.PERCENT_CHANGE, threshold=50, over_ms=60_000), 5.0, 0.0, False),
        (Condition(op=ConditionOp.BELOW, threshold=1), math.nan, None, False),
    ],
)
def test_condition_breached(condition: Condition, value: float, earlier: float | None, breached: bool) -> None:
    assert condition.breached(value, earlier) is breached


def test_secret_references_are_parsed_and_literals_refused() -> None:
    assert parse_secret_ref("env:SMTP_PASSWORD", parameter="p") == SecretRef(source="env", name="SMTP_PASSWORD")
    assert parse_secret_ref("file:/run/secrets/hook", parameter="p") == SecretRef(
        source="file", name="/run/secrets/hook"
    )
    for literal in ("hunter2", "env:", "env:1BAD", "file:relative/path", "https://hooks.example/T0K3N"):
        with pytest.raises(InvalidArgument) as caught:
            parse_secret_ref(literal, parameter="receivers[0].webhook[0].secret")
        assert literal not in str(caught.value) or literal in ("env:",), "the value is never echoed"
        assert caught.value.parameter == "receivers[0].webhook[0].secret"


def test_secrets_resolve_at_send_time_and_errors_name_only_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGUS_TEST_SECRET", "s3cr3t")
    assert resolve_secret(SecretRef(source="env", name="ARGUS_TEST_SECRET")) == "s3cr3t"
    secret_file = tmp_path / "token"
    secret_file.write_text("t0k3n\n")
    assert resolve_secret(SecretRef(source="file", name=str(secret_file))) == "t0k3n"
    monkeypatch.delenv("ARGUS_TEST_SECRET")
    with pytest.raises(FailedPrecondition, match="env:ARGUS_TEST_SECRET"):
        resolve_secret(SecretRef(source="env", name="ARGUS_TEST_SECRET"))
    with pytest.raises(FailedPrecondition, match="cannot read"):
        resolve_secret(SecretRef(source="file", name=str(tmp_path / "missing")))
