"""What every fuzz test shares: a bounded hypothesis profile, a wall-clock bound per call and
the rejection property ("only errors of the documented types, each with a reason").

`make test` runs a fixed, derandomised set of examples so the whole folder takes well under a
minute on a 2-core machine. For a longer, random hunt:
`ARGUS_FUZZ_EXAMPLES=5000 ARGUS_FUZZ_RANDOM=1 .venv/bin/pytest tests/fuzz`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("ARGUS_FUZZ_EXAMPLES", "200"))
RANDOM = os.environ.get("ARGUS_FUZZ_RANDOM", "") not in ("", "0")
# A parser call that takes longer than this is a hang (backtracking, a loop over a huge
# count): generous, because the machine is shared, and far below the pytest timeout.
CALL_BOUND_S = float(os.environ.get("ARGUS_FUZZ_CALL_BOUND_S", "3.0"))


def fuzz(scale: float = 1.0) -> settings:
    """Hypothesis settings of one fuzz test; `scale` shrinks or grows its share of examples."""
    common = settings(
        max_examples=max(10, int(EXAMPLES * scale)),
        deadline=None,  # the wall-clock bound is `bounded`, measured around the call itself
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    # Derandomised runs have nothing to replay: keep them out of the example database.
    return common if RANDOM else settings(common, derandomize=True, database=None)


@contextmanager
def bounded(what: str, seconds: float = CALL_BOUND_S) -> Iterator[None]:
    start = time.monotonic()
    yield
    took = time.monotonic() - start
    assert took < seconds, f"{what} took {took:.2f} s (bound {seconds} s): a hang or super-linear work"


def assert_reasoned(exc: BaseException, *allowed: type[BaseException]) -> None:
    """`exc` is one of the documented rejections and says why."""
    assert isinstance(exc, allowed), f"undocumented error {type(exc).__name__}: {exc!r}"
    assert str(exc).strip(), f"{type(exc).__name__} without a reason"
