"""Settings: one place that reads the config file (TOML), the environment (ARGUS_*) and flags.

Keyword-only, with units in the names. Every module gets the slice it needs. Precedence:
flags > environment > config file > defaults. Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from core.errors import InvalidArgument
from core.events import DEFAULT_SAMPLE_PARTITIONS
from core.model import DAY_MS, DEFAULT_TIERS, MINUTE_MS, Tier
from core.tls import ServerTls


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestLimits:
    max_batch_samples: int = 1_000_000
    max_message_bytes: int = 16 * 1024 * 1024
    max_series_per_tenant: int = 100_000
    max_future_skew_ms: int = 10 * MINUTE_MS
    max_labels: int = 16
    max_metric_name_chars: int = 200
    max_label_value_bytes: int = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    data_dir: Path = Path(".argus")
    event_log_url: str = ""
    hot_store_url: str = ""
    cold_store_url: str = ""
    """Where closed periods go as Parquet: a folder (a path or file:///abs/path) or
    s3://bucket/prefix?endpoint=...&region=...; default: the `cold` folder of the data dir."""
    sample_partitions: int = DEFAULT_SAMPLE_PARTITIONS
    ingest_addr: str = "127.0.0.1:50051"
    query_addr: str = "127.0.0.1:50052"
    http_addr: str = "127.0.0.1:8080"
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    limits: IngestLimits = field(default_factory=IngestLimits)
    flush_interval_ms: int = 500
    tier_flush_interval_ms: Mapping[str, int] = field(default_factory=dict)
    """Per tier (by name) the least time between two writes of its changed chunks by the
    rollups projector; tiers not named write at every flush (`flush_interval_ms`)."""
    retention_check_interval_ms: int = 10 * MINUTE_MS
    applied_event_memory_ms: int = 7 * DAY_MS
    collector_interval_s: float = 5.0
    region: str = "local"
    tls_cert_file: str = ""
    """PEM certificate chain every listener (ingest, query gRPC, HTTP) presents; with
    `tls_key_file` it turns TLS on. Empty: plaintext (then only loopback addresses may be bound)."""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    """PEM CA bundle: when set, every client must present a certificate it signed (mutual TLS)."""
    allow_insecure_bind: bool = False
    """Let a listener bind a non-loopback address without TLS (a proxy in front terminates it)."""

    def server_tls(self) -> ServerTls | None:
        """The listeners' TLS (None: plaintext); InvalidArgument when half configured."""
        return ServerTls.from_files(
            cert_file=self.tls_cert_file, key_file=self.tls_key_file, client_ca_file=self.tls_client_ca_file
        )

    def resolved(self) -> Settings:
        """Fill URLs that default to files in the data dir; check the TLS files pair up."""
        self.server_tls()
        # An absolute data dir gives sqlite:////abs/..., a relative one sqlite:///rel/...
        return replace(
            self,
            event_log_url=self.event_log_url or f"sqlite:///{self.data_dir / 'events.db'}",
            hot_store_url=self.hot_store_url or f"sqlite:///{self.data_dir / 'hot.db'}",
            cold_store_url=self.cold_store_url or str(self.data_dir / "cold"),
        )


CONFIG_ENV = "ARGUS_CONFIG"
"""Environment variable naming the TOML config file (the `--config` flag wins over it)."""

_SECTION_LIMITS = "limits"
_SECTION_TIER_FLUSH = "tier_flush_interval_ms"
_NOT_CONFIGURABLE = frozenset({"tiers"})  # tier layout is code, not configuration (yet)


def _scalar_fields() -> dict[str, object]:
    """Settings fields a file or the environment may set, with their default values."""
    defaults = Settings()
    return {
        f.name: getattr(defaults, f.name)
        for f in fields(Settings)
        if f.name not in _NOT_CONFIGURABLE and f.name not in (_SECTION_LIMITS, _SECTION_TIER_FLUSH)
    }


def _coerce(name: str, default: object, raw: object, *, source: str) -> object:
    """`raw` as the type of `default`; a clear error naming the key and where it came from."""

    def bad(expected: str) -> InvalidArgument:
        return InvalidArgument(f"{source}: {name} must be {expected}, got {raw!r}", parameter=name)

    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "0", "false", "no"):
            return raw.lower() in ("1", "true", "yes")
        raise bad("true or false")
    if isinstance(default, int):
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.replace("_", ""))
            except ValueError:
                pass
        raise bad("an integer")
    if isinstance(default, float):
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
        raise bad("a number")
    if isinstance(default, Path):
        if isinstance(raw, str | Path) and str(raw):
            return Path(raw)
        raise bad("a path (string)")
    if isinstance(raw, str):
        return raw
    raise bad("a string")


def load_config_file(path: Path) -> dict[str, object]:
    """Settings values from a TOML file: top-level keys are Settings fields, `[limits]` the
    ingest limits. Unknown keys, wrong types and bad TOML are errors naming the key and file."""
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise InvalidArgument(f"config file {path} does not exist", parameter="config") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read config file {path}: {exc.strerror}", parameter="config") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"config file {path} is not valid TOML: {exc}", parameter="config") from exc
    known = _scalar_fields()
    values: dict[str, object] = {}
    for key, raw in document.items():
        if key == _SECTION_LIMITS:
            values[_SECTION_LIMITS] = _limits_from(raw, path)
        elif key == _SECTION_TIER_FLUSH:
            if not isinstance(raw, dict):
                raise InvalidArgument(
                    f"config file {path}: [{key}] must be a table of tier = milliseconds, got {raw!r}", parameter=key
                )
            values[key] = _tier_intervals(raw, source=f"config file {path}")
        elif key in known:
            values[key] = _coerce(key, known[key], raw, source=f"config file {path}")
        else:
            raise InvalidArgument(
                f"config file {path}: unknown key {key!r}"
                f" (known: {', '.join(sorted([*known, _SECTION_LIMITS, _SECTION_TIER_FLUSH]))})",
                parameter=key,
            )
    return values


def _limits_from(raw: object, path: Path) -> IngestLimits:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"config file {path}: [limits] must be a table, got {raw!r}", parameter="limits")
    defaults = IngestLimits()
    known = {f.name for f in fields(IngestLimits)}
    values: dict[str, object] = {}
    for key, value in raw.items():
        if key not in known:
            raise InvalidArgument(
                f"config file {path}: unknown key 'limits.{key}' (known: {', '.join(sorted(known))})",
                parameter=f"limits.{key}",
            )
        values[key] = _coerce(f"limits.{key}", getattr(defaults, key), value, source=f"config file {path}")
    return IngestLimits(**values)  # type: ignore[arg-type]


def _tier_intervals(raw: Mapping[str, object], *, source: str) -> dict[str, int]:
    """`tier_flush_interval_ms` entries: known tier names, non-negative integers (ms)."""
    names = [t.name for t in DEFAULT_TIERS]
    out: dict[str, int] = {}
    for tier, value in raw.items():
        key = f"{_SECTION_TIER_FLUSH}.{tier}"
        if tier not in names:
            raise InvalidArgument(f"{source}: unknown tier in {key!r} (tiers: {', '.join(names)})", parameter=key)
        ms = _coerce(key, 0, value, source=source)
        assert isinstance(ms, int)
        if ms < 0:
            raise InvalidArgument(f"{source}: {key} must be a non-negative integer (ms), got {value!r}", parameter=key)
        out[tier] = ms
    return out


def parse_tier_intervals(text: str, *, source: str) -> dict[str, int]:
    """`tier_flush_interval_ms` from its text form `5s=1000,1m=5000,...` (the environment's; empty: none)."""
    pairs: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        tier, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument(
                f"{source}: {_SECTION_TIER_FLUSH} must be TIER=MS pairs separated by commas"
                f" (e.g. 1h=300000,1d=900000), got {item!r}",
                parameter=_SECTION_TIER_FLUSH,
            )
        pairs[tier.strip()] = value.strip()
    return _tier_intervals(pairs, source=source)


def settings_from_env(*, config_file: Path | None = None, **overrides: object) -> Settings:
    """Settings with precedence: explicit (non-None) overrides (the flags) > ARGUS_* environment
    variables > the TOML config file (`config_file`, else $ARGUS_CONFIG) > defaults."""
    env = os.environ
    known = _scalar_fields()
    values: dict[str, object] = {}
    if config_file is None and env.get(CONFIG_ENV):
        config_file = Path(env[CONFIG_ENV])
    if config_file is not None:
        values.update(load_config_file(config_file))
    for name, default in known.items():
        key = "ARGUS_" + name.upper()
        if key in env:
            values[name] = _coerce(name, default, env[key], source=f"environment variable {key}")
    tier_key = "ARGUS_" + _SECTION_TIER_FLUSH.upper()
    if tier_key in env:
        values[_SECTION_TIER_FLUSH] = parse_tier_intervals(env[tier_key], source=f"environment variable {tier_key}")
    for name, value in overrides.items():
        if value is None:
            continue
        if name == _SECTION_TIER_FLUSH and isinstance(value, Mapping):
            values[name] = _tier_intervals(value, source="setting")
            continue
        if name not in known:
            raise InvalidArgument(f"unknown setting {name!r}", parameter=name)
        values[name] = value
    return Settings(**values).resolved()  # type: ignore[arg-type]
