"""The session's Kafka-protocol broker (tansu by default; Kafka in a container with
ARGUS_TEST_SERVICES=containers). Launchers: `harness.services.kafka`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.services import KafkaService, kafka_service, service_mode
from harness.services.kafka import (
    TEST_HEARTBEAT_INTERVAL_MS,
    TEST_SESSION_TIMEOUT_MS,
    S3Storage,
    TansuBroker,
    kafka_url,
    tansu_binary,
)

__all__ = [
    "TEST_HEARTBEAT_INTERVAL_MS",
    "TEST_SESSION_TIMEOUT_MS",
    "S3Storage",
    "TansuBroker",
    "kafka_broker",
    "kafka_url",
    "tansu_binary",
]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaService]:
    """One memory-backed broker for the whole session: give each test its own topics."""
    work = Path(tempfile.mkdtemp(prefix="argus-tansu-"))
    try:
        broker = kafka_service(service_mode(), work_dir=work).start()
        try:
            yield broker
        finally:
            broker.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
