"""Session fixtures for the real servers (tests/services): started on first use, stopped at exit."""

pytest_plugins = ["tests.services.kafka", "tests.services.dynamodb", "tests.services.s3"]
