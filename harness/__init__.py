"""The process harness of the tests and benchmarks (not shipped: pyproject.toml leaves it out
of the distribution).

- `processes`: free ports, waiting on a condition with a deadline, `ManagedProcess` (one
  server process in its own session: started, waited for, stopped by PID, never leaked).
- `argus_up`: `ArgusUp`, one `argus up --no-collector` on free ports.
- `services`: Kafka, DynamoDB Local and S3 as local binaries or, with
  `ARGUS_TEST_SERVICES=containers`, through testcontainers.

tests/ and bench/ both build on it; neither copies it.
"""
