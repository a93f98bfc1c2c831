"""The session's S3 server (SeaweedFS by default; MinIO in a container with
ARGUS_TEST_SERVICES=containers). Launchers: `harness.services.s3`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import ServiceFailed
from harness.services import S3Service, s3_service, service_mode
from harness.services.s3 import S3Credentials, S3Endpoint, SeaweedS3, weed_binary

__all__ = ["S3Credentials", "S3Endpoint", "SeaweedS3", "s3_server", "weed_binary"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Service]:
    """One S3 server for the test session (started on first use)."""
    directory = Path(tempfile.mkdtemp(prefix="argus-s3-"))
    try:
        server = s3_service(service_mode(), work_dir=directory).start()
    except ServiceFailed as exc:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"could not start the S3 test server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
