"""The same services through a Docker engine (testcontainers), for machines that have one:
`ARGUS_TEST_SERVICES=containers` (see `harness.services`).

- Kafka: Confluent's image in KRaft mode (testcontainers' `KafkaContainer`, which sets the
  advertised listener to the mapped port).
- DynamoDB Local: Amazon's image, in memory with `-sharedDb` like the local jar.
- S3: MinIO (SeaweedFS has no maintained testcontainers recipe; MinIO speaks the same
  path-style S3 the cold store uses). Its credentials differ from the local server's
  (MinIO wants a secret of 8+ characters): read them from `credentials`, never assume.

Nothing here touches Docker at import or construction: `start()` checks the engine first and
fails with `ServiceFailed` naming it when there is none. Unverified on this project's
development machine, which has no Docker engine (docs/decisions/0019).
"""

from __future__ import annotations

import os
import socket
from typing import Any, Final, Self

from harness.processes import ServiceFailed, wait_for
from harness.services.dynamodb import answers as dynamodb_answers
from harness.services.dynamodb import dynamodb_url, local_credentials
from harness.services.kafka import kafka_url
from harness.services.s3 import S3Credentials, S3Endpoint
from harness.services.s3 import answers as s3_answers

KAFKA_IMAGE: Final = "confluentinc/cp-kafka:7.6.1"
DYNAMODB_IMAGE: Final = "amazon/dynamodb-local:2.5.4"
MINIO_IMAGE: Final = "minio/minio:RELEASE.2024-12-18T13-15-44Z"
DYNAMODB_PORT: Final = 8000
MINIO_PORT: Final = 9000
MINIO_CREDENTIALS: Final = S3Credentials("argus-test", "argus-test-secret", "us-east-1")
READY_TIMEOUT_S: Final = 120.0  # an image pull on first use
DEFAULT_DOCKER_HOST: Final = "unix:///var/run/docker.sock"


def require_docker() -> None:
    """Raise ServiceFailed unless a Docker engine answers (DOCKER_HOST or the default socket)."""
    host = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST

    def missing(why: object) -> ServiceFailed:
        return ServiceFailed(
            f"ARGUS_TEST_SERVICES=containers needs a running Docker engine ({host}): {why}; "
            "unset it to use the local binaries"
        )

    if host.startswith("unix://"):
        # Probe the socket first: docker-py leaks its socket when the connect fails.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(host.removeprefix("unix://"))
            except OSError as exc:
                raise missing(exc) from exc
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise ServiceFailed(f"ARGUS_TEST_SERVICES=containers needs the docker package: {exc}") from exc
    try:
        client = docker.from_env()
        try:
            client.ping()
        finally:
            client.close()
    except (DockerException, OSError) as exc:  # requests' errors are OSErrors
        raise missing(exc) from exc


class _Container:
    """One started testcontainers container, stopped by `stop()` (Ryuk removes it if the
    session dies first)."""

    def __init__(self) -> None:
        self._container: Any = None

    def _started(self) -> Any:
        if self._container is None:
            raise ServiceFailed(f"{type(self).__name__} used before start()")
        return self._container

    def _endpoint(self, port: int) -> tuple[str, int]:
        container = self._started()
        return str(container.get_container_host_ip()), int(container.get_exposed_port(port))

    def stop(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            container.stop()

    @property
    def running(self) -> bool:
        return self._container is not None


class KafkaContainerService(_Container):
    """A Kafka broker in a container; `url()` as `TansuBroker.url()`."""

    def __init__(self, *, image: str = KAFKA_IMAGE) -> None:
        super().__init__()
        self.image = image

    def start(self) -> Self:
        require_docker()
        from testcontainers.community.kafka import KafkaContainer

        self._container = KafkaContainer(self.image).with_kraft().start(timeout=int(READY_TIMEOUT_S))
        return self

    @property
    def bootstrap(self) -> str:
        return str(self._started().get_bootstrap_server())

    def url(self, *, idempotence: bool = False, **options: str | int) -> str:
        return kafka_url(self.bootstrap, idempotence=idempotence, **options)


class DynamoDBContainerService(_Container):
    """DynamoDB Local in a container; `url()` and `credentials` as `DynamoDBLocal`'s."""

    def __init__(self, *, image: str = DYNAMODB_IMAGE) -> None:
        super().__init__()
        self.image = image

    def start(self) -> Self:
        require_docker()
        from testcontainers.core.container import DockerContainer

        container = (
            DockerContainer(self.image)
            .with_command("-jar DynamoDBLocal.jar -inMemory -sharedDb -disableTelemetry")
            .with_exposed_ports(DYNAMODB_PORT)
        )
        self._container = container.start()
        host, port = self._endpoint(DYNAMODB_PORT)
        wait_for(
            "DynamoDB Local (container) to answer",
            lambda: dynamodb_answers(host, port),
            timeout_s=READY_TIMEOUT_S,
            interval_s=0.2,
            failure=ServiceFailed,
        )
        return self

    @property
    def endpoint(self) -> str:
        host, port = self._endpoint(DYNAMODB_PORT)
        return f"http://{host}:{port}"

    @property
    def credentials(self) -> dict[str, str]:
        return local_credentials()

    def url(self, *, prefix: str = "argus_", credentials: bool = True, **params: str) -> str:
        return dynamodb_url(self.endpoint, prefix=prefix, credentials=credentials, **params)


class MinioContainerService(_Container, S3Endpoint):
    """An S3 server (MinIO) in a container; `url()`, `client()` and `create_bucket()` as
    `SeaweedS3`'s."""

    def __init__(self, *, image: str = MINIO_IMAGE) -> None:
        super().__init__()
        self.image = image
        self.credentials = MINIO_CREDENTIALS
        self.endpoint = ""

    def start(self) -> Self:
        require_docker()
        from testcontainers.core.container import DockerContainer

        container = (
            DockerContainer(self.image)
            .with_env("MINIO_ROOT_USER", self.credentials.access_key_id)
            .with_env("MINIO_ROOT_PASSWORD", self.credentials.secret_access_key)
            .with_env("MINIO_REGION", self.credentials.region)
            .with_command("server /data")
            .with_exposed_ports(MINIO_PORT)
        )
        self._container = container.start()
        host, port = self._endpoint(MINIO_PORT)
        self.endpoint = f"http://{host}:{port}"
        wait_for(
            "MinIO (container) to answer",
            lambda: s3_answers(self.endpoint),
            timeout_s=READY_TIMEOUT_S,
            interval_s=0.2,
            failure=ServiceFailed,
        )
        return self
