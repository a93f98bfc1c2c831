"""Session fixtures for the real servers (tests/services): started on first use, stopped at exit."""

from hypothesis import settings

pytest_plugins = ["tests.services.kafka", "tests.services.dynamodb", "tests.services.s3"]

# Hypothesis's per-example deadline is wall-clock time, which a shared 2-core machine running
# two test workers stretches at random; tests that promise a time bound measure it themselves
# (tests/fuzz/bounds.py).
settings.register_profile("argus", deadline=None)
settings.load_profile("argus")
