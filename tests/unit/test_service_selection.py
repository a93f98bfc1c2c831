"""Which launcher the service fixtures use: ARGUS_TEST_SERVICES picks the local binaries
(default) or containers through a Docker engine (harness/services). Nothing is started here."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.processes import ServiceFailed
from harness.services import (
    SERVICES_ENV,
    ServiceMode,
    dynamodb_service,
    kafka_service,
    s3_service,
    service_mode,
)
from harness.services.containers import (
    MINIO_CREDENTIALS,
    DynamoDBContainerService,
    KafkaContainerService,
    MinioContainerService,
    require_docker,
)
from harness.services.dynamodb import DynamoDBLocal, dynamodb_url
from harness.services.kafka import TansuBroker, kafka_url
from harness.services.s3 import SeaweedS3


@pytest.mark.parametrize(
    ("value", "mode"),
    [(None, ServiceMode.LOCAL), ("", ServiceMode.LOCAL), ("local", ServiceMode.LOCAL),
     (" Containers ", ServiceMode.CONTAINERS), ("containers", ServiceMode.CONTAINERS)],
)  # fmt: skip
def test_the_environment_variable_picks_the_mode(value: str | None, mode: ServiceMode) -> None:
    env = {} if value is None else {SERVICES_ENV: value}
    assert service_mode(env) is mode


def test_an_unknown_mode_is_refused_naming_the_choices() -> None:
    with pytest.raises(ServiceFailed, match=r"ARGUS_TEST_SERVICES='docker': expected local or containers"):
        service_mode({SERVICES_ENV: "docker"})


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVICES_ENV, "containers")
    assert service_mode() is ServiceMode.CONTAINERS
    monkeypatch.delenv(SERVICES_ENV)
    assert service_mode() is ServiceMode.LOCAL


def test_local_mode_builds_the_local_launchers_unstarted(tmp_path: Path) -> None:
    kafka = kafka_service(ServiceMode.LOCAL, work_dir=tmp_path / "k")
    dynamodb = dynamodb_service(ServiceMode.LOCAL, work_dir=tmp_path / "d")
    s3 = s3_service(ServiceMode.LOCAL, work_dir=tmp_path / "s")
    assert isinstance(kafka, TansuBroker) and not kafka.running
    assert isinstance(dynamodb, DynamoDBLocal)
    assert isinstance(s3, SeaweedS3) and s3.process.proc is None


def test_containers_mode_builds_container_services_without_touching_docker(tmp_path: Path) -> None:
    kafka = kafka_service(ServiceMode.CONTAINERS, work_dir=tmp_path)
    dynamodb = dynamodb_service(ServiceMode.CONTAINERS, work_dir=tmp_path)
    s3 = s3_service(ServiceMode.CONTAINERS, work_dir=tmp_path)
    assert isinstance(kafka, KafkaContainerService) and not kafka.running
    assert isinstance(dynamodb, DynamoDBContainerService) and not dynamodb.running
    assert isinstance(s3, MinioContainerService) and not s3.running
    # MinIO refuses secrets under 8 characters: its credentials are its own.
    assert s3.credentials == MINIO_CREDENTIALS and len(s3.credentials.secret_access_key) >= 8
    with pytest.raises(ServiceFailed, match="used before start"):
        _ = dynamodb.endpoint


@pytest.mark.parametrize("make", [kafka_service, dynamodb_service, s3_service])
def test_containers_without_a_docker_engine_fail_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make: object
) -> None:
    # An engine that cannot exist, whatever machine runs this.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    service = make(ServiceMode.CONTAINERS, work_dir=tmp_path)  # type: ignore[operator]
    with pytest.raises(ServiceFailed, match=r"needs a running Docker engine \(unix://.*no-docker\.sock\)"):
        service.start()
    assert not service.running
    with pytest.raises(ServiceFailed, match="unset it to use the local binaries"):
        require_docker()


def test_container_and_local_services_give_the_same_urls() -> None:
    # The URL helpers both kinds use: only the address differs.
    assert kafka_url("h:1", client_id="c") == (
        "kafka://h:1?idempotence=false&session_timeout_ms=1000&heartbeat_interval_ms=250&client_id=c"
    )
    assert dynamodb_url("http://h:2", prefix="p_") == "dynamodb://test:test@us-east-1?endpoint=http://h:2&prefix=p_"
    assert dynamodb_url("http://h:2", credentials=False) == "dynamodb://us-east-1?endpoint=http://h:2&prefix=argus_"
