"""Session fixtures of the real servers the tests use (registered in tests/conftest.py).

The launchers live in `harness.services` (shared with bench/): local binaries by default,
or containers through a Docker engine with `ARGUS_TEST_SERVICES=containers`. These modules
also re-export the launchers under their old names (`tests.services.kafka.TansuBroker`, ...).
"""
