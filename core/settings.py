"""Settings: one place that reads the config file (TOML), the environment (ARGUS_*) and flags.

Keyword-only, with units in the names. Every module gets the slice it needs. Precedence:
flags > environment > config file > defaults. Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
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
    # Added by issue 9 (hardened edges): bounds for hostile input and the ingest limits.
    max_label_name_chars: int = 200
    max_batch_series: int = 100_000
    """Series per batch, empty ones included (they cost a loop turn each, not a sample)."""
    max_batch_id_chars: int = 256
    """Length of a batch's `batch_id` and `source` (they are copied into every event)."""
    max_active_series: int = 1_000_000
    """All tenants together (besides `max_series_per_tenant`); 0: no global ceiling."""
    ingest_rate_samples_per_s: float = 0.0
    """Per tenant, samples and observations a second (token bucket); 0: no rate limit."""
    ingest_burst_samples: int = 0
    """Per tenant, the bucket's size; 0: max(one second at the rate, max_batch_samples)."""
    identity_cache_bytes: int = 64 * 1024 * 1024
    """Memory ingest may spend remembering validated series identities (estimated bytes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSettings:
    """What the ingest module uses (`Settings.ingest_settings()`)."""

    addr: str
    http_addr: str
    """Listen address of the write APIs of other ecosystems (remote write, Influx, OTLP/HTTP)."""
    state_dir: Path
    """Where ingest keeps the cumulative converter's states (core/cumulative.py)."""
    limits: IngestLimits
    retention_ms: int
    """The longest tier retention: older samples are refused."""
    tls: ServerTls | None
    allow_insecure_bind: bool
    metrics_token: str = ""
    """Bearer token `/metrics` wants (empty: open)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectorSettings:
    """What the projectors use (`Settings.projector_settings()`)."""

    tiers: tuple[Tier, ...]
    flush_interval_ms: int
    tier_flush_interval_ms: Mapping[str, int]
    retention_check_interval_ms: int
    applied_event_memory_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySettings:
    """What the query module uses (`Settings.query_settings()`)."""

    grpc_addr: str
    http_addr: str
    tiers: tuple[Tier, ...]
    max_message_bytes: int
    tls: ServerTls | None
    allow_insecure_bind: bool
    cors_origins: tuple[str, ...] = ()
    """Browser origins (other than the server's own) that may call the HTTP port's gRPC-web."""
    metrics_token: str = ""
    """Bearer token `/metrics` wants (empty: open)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectorSettings:
    """What `argus up`'s host collector uses (`Settings.collector_settings()`)."""

    interval_s: float
    region: str
    ingest_addr: str
    tls: ServerTls | None
    """The server's own TLS: the collector trusts (and, under mutual TLS, presents) it."""


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
    ingest_http_addr: str = "127.0.0.1:9201"
    """HTTP write APIs of other ecosystems: Prometheus remote write, Influx line protocol,
    OTLP/HTTP (docs/ingest-protocols.md)."""
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
    alerts_enabled: bool = True
    """Whether `argus up` runs the alerts module (the evaluator and what alerting runs beside it)."""
    region: str = "local"
    # Query limits (query_side/limits.py, docs/decisions/0014): each query's wall-time limit,
    # the stored points it may read (refused before decoding past it), and the worker
    # threads that run the CPU part of queries off the event loop.
    query_timeout_ms: int = 30_000
    query_max_points_decoded: int = 20_000_000
    query_workers: int = 2
    # Event log retention (decision 0020): 0 = no limit. Applies to the samples topic; the
    # embedded log deletes only what every consumer group has committed past.
    event_log_retention_ms: int = 0
    event_log_retention_bytes: int = 0
    tls_cert_file: str = ""
    """PEM certificate chain every listener (ingest, query gRPC, HTTP) presents; with
    `tls_key_file` it turns TLS on. Empty: plaintext (then only loopback addresses may be bound)."""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    """PEM CA bundle: when set, every client must present a certificate it signed (mutual TLS)."""
    allow_insecure_bind: bool = False
    """Let a listener bind a non-loopback address without TLS (a proxy in front terminates it)."""
    cors_origins: str = ""
    """Comma-separated origins (e.g. `http://localhost:5173`; `*`: any) whose pages may call
    gRPC-web on the HTTP port; the server's own origin needs no entry."""
    metrics_token: str = ""
    """When set, `/metrics` (every HTTP listener) wants `Authorization: Bearer <metrics_token>`;
    empty: open, as Prometheus exporters usually are (it shows no tenant data: docs/metrics.md)."""
    self_metrics_interval_s: float = 15.0
    """How often `argus up` writes its own metrics into the reserved tenant `_argus` (0: never)."""

    def server_tls(self) -> ServerTls | None:
        """The listeners' TLS (None: plaintext); InvalidArgument when half configured."""
        return ServerTls.from_files(
            cert_file=self.tls_cert_file, key_file=self.tls_key_file, client_ca_file=self.tls_client_ca_file
        )

    def ingest_settings(self) -> IngestSettings:
        return IngestSettings(
            addr=self.ingest_addr,
            http_addr=self.ingest_http_addr,
            state_dir=self.data_dir,
            limits=self.limits,
            retention_ms=max(t.retention_ms for t in self.tiers),
            tls=self.server_tls(),
            allow_insecure_bind=self.allow_insecure_bind,
            metrics_token=self.metrics_token,
        )

    def projector_settings(self) -> ProjectorSettings:
        return ProjectorSettings(
            tiers=self.tiers,
            flush_interval_ms=self.flush_interval_ms,
            tier_flush_interval_ms=self.tier_flush_interval_ms,
            retention_check_interval_ms=self.retention_check_interval_ms,
            applied_event_memory_ms=self.applied_event_memory_ms,
        )

    def query_settings(self) -> QuerySettings:
        return QuerySettings(
            grpc_addr=self.query_addr,
            http_addr=self.http_addr,
            tiers=self.tiers,
            max_message_bytes=self.limits.max_message_bytes,
            tls=self.server_tls(),
            allow_insecure_bind=self.allow_insecure_bind,
            cors_origins=tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()),
            metrics_token=self.metrics_token,
        )

    def collector_settings(self) -> CollectorSettings:
        return CollectorSettings(
            interval_s=self.collector_interval_s,
            region=self.region,
            ingest_addr=self.ingest_addr,
            tls=self.server_tls(),
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


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(value: object) -> bool:
    """A boolean setting, the same for the server and the agent, from a file, the environment
    or a flag: true/false, yes/no, on/off, 1/0 (any case); ValueError otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not true/false")


Parse = Callable[[str, object, str], object]
"""parse(key, raw value, where it came from) -> the value; raises InvalidArgument naming both."""


def layered_values(
    *,
    keys: Iterable[str],
    parse: Parse,
    file_values: Mapping[str, object] | None = None,
    file_source: str = "",
    env: Mapping[str, str],
    env_prefix: str,
    flags: Mapping[str, object] | None = None,
    env_source: Callable[[str], str] = lambda name: f"environment variable {name}",
    flag_source: Callable[[str], str] = lambda key: f"--{key.replace('_', '-')}",
) -> dict[str, object]:
    """The one precedence of every Argus setting, server and agent alike: defaults (absent
    here) < config file < environment (`env_prefix` + KEY in upper case) < flags (None or
    an empty tuple: not given). Every value goes through `parse` with its source."""
    known = tuple(keys)
    values: dict[str, object] = {}
    for key, raw in (file_values or {}).items():
        values[key] = parse(key, raw, f"{file_source}: {key}" if file_source else key)
    for key in known:
        name = env_prefix + key.upper()
        if name in env:
            values[key] = parse(key, env[name], env_source(name))
    for key, raw in (flags or {}).items():
        if raw is None or raw == ():
            continue
        values[key] = parse(key, raw, flag_source(key))
    return values


def _coerce(name: str, default: object, raw: object, *, source: str) -> object:
    """`raw` as the type of `default`; a clear error naming the key and where it came from."""

    def bad(expected: str) -> InvalidArgument:
        return InvalidArgument(f"{source}: {name} must be {expected}, got {raw!r}", parameter=name)

    if isinstance(default, bool):
        try:
            return parse_bool(raw)
        except ValueError:
            raise bad("true or false (yes/no, on/off, 1/0)") from None
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
    values.update(
        layered_values(
            keys=known,
            parse=lambda name, raw, source: _coerce(name, known[name], raw, source=source),
            env=env,
            env_prefix="ARGUS_",
        )
    )
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
