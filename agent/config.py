"""Configuration of `argus agent`: a TOML file, then ARGUS_AGENT_* environment variables,
then command-line flags (each later source overrides the earlier; defaults fill the rest).

Every key has the same name in the three places: `batch_interval_s` in the file,
`ARGUS_AGENT_BATCH_INTERVAL_S` in the environment, `--batch-interval-s` as a flag (the
common ones). A wrong value is refused with its source and what was expected; an unknown
key in the file is refused too (a typo would otherwise be silently ignored).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from agent.scrape import ScrapeTarget
from agent.spool import DEFAULT_MAX_BYTES, DEFAULT_SEGMENT_BYTES, Codec
from core import validation
from core.errors import InvalidArgument
from core.model import DEFAULT_REGION, Labels
from core.settings import IngestLimits, layered_values, parse_bool
from core.tls import ClientTls

ENV_PREFIX: Final = "ARGUS_AGENT_"
MODES: Final = ("daemon", "sidecar")
_SIZE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS: Final = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    """What `argus agent` runs with. Times in seconds, sizes in bytes."""

    ingest: str = ""
    api_key: str = ""
    mode: str = "daemon"
    # StatsD / DogStatsD listeners; "" turns one off.
    statsd_addr: str = "127.0.0.1:8125"
    statsd_socket: str = ""
    statsd_recv_buffer_bytes: int = 8 * 1024 * 1024
    spool_dir: Path = Path(".argus/agent-spool")
    host: str = field(default_factory=socket.gethostname)
    region: str = DEFAULT_REGION
    source: str = ""  # "" -> agent:<host>
    labels: Labels = ()
    interval_s: float = 5.0
    batch_interval_s: float = 2.0
    # While ingest is unreachable or behind, batches span this long (several intervals per
    # series): a backlog then spools smaller and replays ~7x faster (docs/agent.md).
    outage_batch_interval_s: float = 30.0
    max_batch_bytes: int = 2 * 1024 * 1024
    compression: str = "gzip"  # of spooled batches: gzip | zstd | none
    wire_compression: str = "gzip"  # gRPC call compression: gzip | none
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    fsync: bool = True
    max_in_flight: int = 8
    timeout_s: float = 30.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    host_metrics: bool = True
    self_metrics: bool = True
    scrape: tuple[ScrapeTarget, ...] = ()
    max_series: int = 100_000
    log_level: str = "INFO"
    # TLS to ingest: on when `tls` or a CA file is given; a client certificate for mutual TLS.
    tls: bool = False
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""

    @property
    def client_tls(self) -> ClientTls | None:
        return ClientTls.from_files(
            enabled=self.tls, ca_file=self.tls_ca_file, cert_file=self.tls_cert_file, key_file=self.tls_key_file
        )

    @property
    def source_name(self) -> str:
        return self.source or f"agent:{self.host}"

    @property
    def codec(self) -> Codec:
        return Codec.parse(self.compression)

    def validate(self) -> AgentConfig:
        """Check the whole configuration; raises InvalidArgument naming the key."""

        def need(ok: bool, key: str, expected: str, got: object) -> None:
            if not ok:
                raise InvalidArgument(f"{key} must be {expected}, got {got!r}", parameter=key)

        need(bool(self.ingest), "ingest", "the ingest address HOST:PORT (--ingest)", self.ingest)
        need(_is_host_port(self.ingest), "ingest", "HOST:PORT", self.ingest)
        need(bool(self.api_key), "api_key", "an API key (--api-key or ARGUS_AGENT_API_KEY)", "")
        need(self.mode in MODES, "mode", "daemon or sidecar", self.mode)
        need(
            not self.statsd_addr or _is_host_port(self.statsd_addr, any_port=True),
            "statsd_addr",
            "HOST:PORT (port 0: any free port) or ''",
            self.statsd_addr,
        )
        need(self.compression in ("gzip", "zstd", "none"), "compression", "gzip, zstd or none", self.compression)
        need(self.wire_compression in ("gzip", "none"), "wire_compression", "gzip or none", self.wire_compression)
        for key in (
            "interval_s",
            "batch_interval_s",
            "outage_batch_interval_s",
            "timeout_s",
            "initial_backoff_s",
            "max_backoff_s",
        ):
            value = getattr(self, key)
            need(value > 0, key, "a number of seconds > 0", value)
        for key in ("max_batch_bytes", "segment_bytes", "max_in_flight", "max_series", "statsd_recv_buffer_bytes"):
            value = getattr(self, key)
            need(value >= 1, key, "a positive integer", value)
        need(
            self.max_batch_bytes <= 8 * 1024 * 1024,
            "max_batch_bytes",
            "at most 8 MiB (ingest takes 16 MiB)",
            self.max_batch_bytes,
        )
        need(
            self.spool_max_bytes >= 4 * self.max_batch_bytes,
            "spool_max_bytes",
            f"at least 4 x max_batch_bytes ({4 * self.max_batch_bytes})",
            self.spool_max_bytes,
        )
        problem = validation.region_problem(self.region)
        need(problem is None, "region", "a region name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", self.region)
        label_problem = validation.labels_problem(list(self.labels), IngestLimits())
        if label_problem is not None:
            raise InvalidArgument(f"labels: {label_problem[0]}", parameter="labels")
        _ = self.client_tls  # raises InvalidArgument for a certificate without its key
        need(
            self.log_level in ("DEBUG", "INFO", "WARNING", "ERROR"),
            "log_level",
            "DEBUG, INFO, WARNING or ERROR",
            self.log_level,
        )
        return self


def _is_host_port(text: str, *, any_port: bool = False) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and (0 if any_port else 1) <= int(port) < 65536)


# ---------------------------------------------------------------------------- value parsing


def parse_size(text: str) -> int:
    """`2MB`, `2MiB`, `50m`, `1073741824` -> bytes (k/m/g/t are powers of 1000, ki/mi/gi 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 2MiB, 50MB, 1048576)")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    base = unit.rstrip("b")[:1]
    factor = _SIZE_UNITS[base] if "i" not in unit else 1024 ** ("kmgt".index(base) + 1)
    return int(number * factor)


def parse_labels(text: str) -> Labels:
    """`k=v,k2=v2` -> sorted labels."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"label {item!r} is not name=value")
        out.append((name.strip(), value.strip()))
    return tuple(sorted(out))


_bool = parse_bool  # the server's booleans too (core/settings.py)


def _float(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return float(value)  # type: ignore[arg-type]


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    return parse_size(str(value))


def _str(value: object) -> str:
    if not isinstance(value, str | Path):
        raise ValueError(f"{value!r} is not text")
    return str(value)


def _labels(value: object) -> Labels:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), str(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(sorted(_pair(item) for item in value))
    return parse_labels(_str(value))


def _pair(item: object) -> tuple[str, str]:
    if isinstance(item, tuple) and len(item) == 2:
        return str(item[0]), str(item[1])
    name, sep, value = _str(item).partition("=")
    if not sep:
        raise ValueError(f"label {item!r} is not name=value")
    return name, value


def _scrape(value: object) -> tuple[ScrapeTarget, ...]:
    """A list of URLs or of tables {url, interval_s, timeout_s, labels}; text: comma-separated URLs."""
    items: list[object] = list(value) if isinstance(value, list | tuple) else list(_str(value).split(","))
    targets = []
    for item in items:
        if isinstance(item, ScrapeTarget):
            targets.append(item)
        elif isinstance(item, Mapping):
            unknown = set(item) - {"url", "interval_s", "timeout_s", "labels"}
            if unknown:
                raise ValueError(f"unknown scrape key(s) {sorted(unknown)} (known: url, interval_s, timeout_s, labels)")
            targets.append(
                ScrapeTarget(
                    url=_str(item.get("url", "")),
                    interval_s=_float(item.get("interval_s", 15.0)),
                    timeout_s=_float(item.get("timeout_s", 5.0)),
                    labels=_labels(item.get("labels", {})),
                )
            )
        elif str(item).strip():
            targets.append(ScrapeTarget(url=str(item).strip()))
    return tuple(targets)


_PARSERS: Final[dict[str, Callable[[Any], Any]]] = {
    "ingest": _str,
    "api_key": _str,
    "mode": _str,
    "statsd_addr": _str,
    "statsd_socket": _str,
    "statsd_recv_buffer_bytes": _int,
    "spool_dir": lambda v: Path(_str(v)).expanduser(),
    "host": _str,
    "region": _str,
    "source": _str,
    "labels": _labels,
    "interval_s": _float,
    "batch_interval_s": _float,
    "outage_batch_interval_s": _float,
    "max_batch_bytes": _int,
    "compression": lambda v: _str(v).lower(),
    "wire_compression": lambda v: _str(v).lower(),
    "segment_bytes": _int,
    "spool_max_bytes": _int,
    "fsync": _bool,
    "max_in_flight": _int,
    "timeout_s": _float,
    "initial_backoff_s": _float,
    "max_backoff_s": _float,
    "host_metrics": _bool,
    "self_metrics": _bool,
    "scrape": _scrape,
    "max_series": _int,
    "log_level": lambda v: _str(v).upper(),
    "tls": _bool,
    "tls_ca_file": _str,
    "tls_cert_file": _str,
    "tls_key_file": _str,
}
KEYS: Final = tuple(f.name for f in fields(AgentConfig))
assert set(KEYS) == set(_PARSERS), "every config key needs a parser"


def _parse(key: str, value: object, where: str) -> object:
    try:
        return _PARSERS[key](value)
    except (ValueError, TypeError, InvalidArgument) as exc:
        raise InvalidArgument(f"{where}: {exc}", parameter=key) from None


def load_config(
    *,
    file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, object] | None = None,
) -> AgentConfig:
    """Defaults < TOML file < environment (ARGUS_AGENT_<KEY>) < flags (None = not given).

    `mode = "sidecar"` turns host metrics off unless a source sets `host_metrics`
    explicitly (a container sees its host's numbers, which the host's own agent reports)."""
    data: dict[str, object] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise InvalidArgument(f"config file {file} does not exist", parameter="config") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"config file {file} is not valid TOML: {exc}", parameter="config") from None
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise InvalidArgument(
                f"config file {file}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})",
                parameter="config",
            )
    for key in flags or {}:
        if key not in _PARSERS:
            raise InvalidArgument(f"unknown agent setting {key!r}", parameter=key)
    values = layered_values(
        keys=KEYS,
        parse=lambda key, value, where: _parse(key, value, where),
        file_values=data,
        file_source=f"config file {file}",
        env=os.environ if env is None else env,
        env_prefix=ENV_PREFIX,
        env_source=lambda name: f"environment {name}",
        flags=flags,
    )
    if values.get("mode") == "sidecar" and "host_metrics" not in values:
        values["host_metrics"] = False
    return replace(AgentConfig(), **values).validate()  # type: ignore[arg-type]
