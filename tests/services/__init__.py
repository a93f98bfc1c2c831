"""Real servers the tests start themselves (recipes in ../shared/services.md).

`base.ManagedProcess` starts one server process, waits until it answers and stops it by
PID; `kafka`, `dynamodb` and `s3` each define a launcher and a session-scoped pytest
fixture (registered in tests/conftest.py). Benchmarks import the launchers too.
"""
