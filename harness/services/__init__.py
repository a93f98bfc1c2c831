"""Real servers the tests and benchmarks start themselves (recipes in ../shared/services.md).

Two ways to get each, chosen by `ARGUS_TEST_SERVICES`:
- `local` (the default, and what the development machine needs): local binaries as child
  processes on free 127.0.0.1 ports: tansu (Kafka protocol, `kafka.TansuBroker`), DynamoDB
  Local's jar (`dynamodb.DynamoDBLocal`), SeaweedFS (`s3.SeaweedS3`).
- `containers`: the same services through a Docker engine with testcontainers
  (`containers`): Apache Kafka, DynamoDB Local, MinIO.

`kafka_service`, `dynamodb_service` and `s3_service` build the chosen one, not started
(`start()` returns it started); each satisfies the protocol of its kind below, which is all
a test may rely on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, Self

from harness.processes import ServiceFailed

if TYPE_CHECKING:
    from harness.services.s3 import S3Credentials

SERVICES_ENV: Final = "ARGUS_TEST_SERVICES"


class ServiceMode(StrEnum):
    LOCAL = "local"
    CONTAINERS = "containers"


def service_mode(env: Mapping[str, str] | None = None) -> ServiceMode:
    """The mode `ARGUS_TEST_SERVICES` asks for (unset or empty: local binaries)."""
    raw = (os.environ if env is None else env).get(SERVICES_ENV, "").strip().lower()
    if not raw:
        return ServiceMode.LOCAL
    try:
        return ServiceMode(raw)
    except ValueError:
        choices = " or ".join(m.value for m in ServiceMode)
        raise ServiceFailed(f"{SERVICES_ENV}={raw!r}: expected {choices}") from None


class KafkaService(Protocol):
    """A Kafka-protocol broker."""

    def start(self) -> Self: ...

    def stop(self) -> None: ...

    @property
    def bootstrap(self) -> str:
        """host:port for Kafka clients."""
        ...

    def url(self, *, idempotence: bool = False, **options: str | int) -> str:
        """Argus's `kafka://` event-log URL of this broker (test-friendly group timers)."""
        ...


class DynamoDBService(Protocol):
    """A DynamoDB-compatible endpoint that accepts any access key (DynamoDB Local)."""

    def start(self) -> Self: ...

    def stop(self) -> None: ...

    @property
    def endpoint(self) -> str: ...

    @property
    def credentials(self) -> dict[str, str]:
        """Keyword arguments for DynamoDBHotStore (access_key_id, secret_access_key)."""
        ...

    def url(self, *, prefix: str = "argus_", credentials: bool = True, **params: str) -> str:
        """Argus's `dynamodb://` hot-store URL; with `credentials`, the key rides in it."""
        ...


class S3Service(Protocol):
    """An S3-compatible server (path-style addressing)."""

    endpoint: str
    credentials: S3Credentials

    def start(self) -> Self: ...

    def stop(self) -> None: ...

    def url(self, bucket: str, prefix: str = "") -> str:
        """Argus's `s3://` cold-store URL for `bucket`/`prefix`."""
        ...

    def create_bucket(self, name: str) -> str: ...


def kafka_service(mode: ServiceMode, *, work_dir: Path) -> KafkaService:
    if mode is ServiceMode.CONTAINERS:
        from harness.services.containers import KafkaContainerService

        return KafkaContainerService()
    from harness.services.kafka import TansuBroker

    return TansuBroker(work_dir)


def dynamodb_service(mode: ServiceMode, *, work_dir: Path) -> DynamoDBService:
    if mode is ServiceMode.CONTAINERS:
        from harness.services.containers import DynamoDBContainerService

        return DynamoDBContainerService()
    from harness.services.dynamodb import DynamoDBLocal

    return DynamoDBLocal(work_dir=work_dir)


def s3_service(mode: ServiceMode, *, work_dir: Path) -> S3Service:
    if mode is ServiceMode.CONTAINERS:
        from harness.services.containers import MinioContainerService

        return MinioContainerService()
    from harness.services.s3 import SeaweedS3

    return SeaweedS3(work_dir)
