"""The session's DynamoDB Local (the jar by default; Amazon's image with
ARGUS_TEST_SERVICES=containers). Launchers: `harness.services.dynamodb`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from harness.services import DynamoDBService, dynamodb_service, service_mode
from harness.services.dynamodb import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, DynamoDBLocal, dynamodb_url, install

__all__ = [
    "ACCESS_KEY_ID",
    "REGION",
    "SECRET_ACCESS_KEY",
    "DynamoDBLocal",
    "dynamodb_local",
    "dynamodb_url",
    "install",
]


@pytest.fixture(scope="session")
def dynamodb_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynamoDBService]:
    """DynamoDB Local, started on first use, stopped at the end of the session."""
    work = tmp_path_factory.mktemp("dynamodb-local")
    server = dynamodb_service(service_mode(), work_dir=work).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
