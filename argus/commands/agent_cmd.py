"""`argus agent`: the per-host daemon (StatsD, host metrics, Prometheus scrapes -> ingest)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import click
from rich.console import Console

from agent.config import ENV_PREFIX, AgentConfig, load_config
from agent.daemon import AgentDaemon
from argus.runtime import setup_logging
from core.data_dir import PRIVATE_UMASK
from core.errors import ArgusError, InvalidArgument

_EPILOG = f"""\b
What it does:
  - listens for StatsD / DogStatsD lines on UDP (--statsd-addr) and, if set,
    a Unix datagram socket (--statsd-socket), e.g.
      echo "checkout.latency:12.5|ms|#route:/pay" | nc -u -w0 127.0.0.1 8125
  - collects this host's CPU, memory, disks, network, load, processes
  - scrapes Prometheus /metrics endpoints (--scrape URL), counters -> deltas
  - aggregates per 5 s interval per series, batches every 2 s or 2 MiB,
    writes every batch to a disk spool (--spool-dir) BEFORE sending it, and
    streams batches to ingest; a batch leaves the spool only when ingest has
    answered. Ingest down? The spool grows (up to spool_max_bytes, then the
    oldest is dropped and counted) and drains when ingest is back. Restarted
    or killed? Unanswered batches are resent; ingest counts each once.

\b
Examples:
  argus agent --ingest 127.0.0.1:50051 --api-key "$KEY"
  argus agent --config /etc/argus/agent.toml
  argus agent --ingest ingest.internal:50051 --api-key "$KEY" \\
      --scrape http://127.0.0.1:9100/metrics --label team=payments
  argus agent --mode sidecar --statsd-socket /var/run/argus/statsd.sock ...

\b
Configuration: defaults < TOML file (--config) < environment < flags.
Every key works in all three: batch_interval_s in the file,
{ENV_PREFIX}BATCH_INTERVAL_S in the environment, --batch-interval-s here
(for the keys that have a flag). See deploy/agent.example.toml and docs/agent.md.

\b
Health: the agent reports itself as metrics argus_agent_* (spool depth and
bytes, send latency, drops, malformed lines, rejections) and in
<spool-dir>/status.json.
"""


@click.command("agent", epilog=_EPILOG, context_settings={"max_content_width": 100})
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"TOML configuration file [env {ENV_PREFIX}CONFIG].",
    envvar=f"{ENV_PREFIX}CONFIG",
)
@click.option("--ingest", metavar="HOST:PORT", default=None, help="Ingest gRPC address (required).")
@click.option("--api-key", metavar="KEY", default=None, help="API key of the tenant (required).")
@click.option(
    "--statsd-addr",
    metavar="HOST:PORT",
    default=None,
    help="UDP StatsD listen address; '' turns it off [default 127.0.0.1:8125].",
)
@click.option("--statsd-socket", metavar="PATH", default=None, help="Also listen on this Unix datagram socket.")
@click.option(
    "--spool-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where batches wait until ingest answers [default .argus/agent-spool].",
)
@click.option(
    "--mode",
    type=click.Choice(["daemon", "sidecar"]),
    default=None,
    help="daemon: one per host, with host metrics. sidecar: one per pod/container, no host metrics.",
)
@click.option("--region", default=None, help="Region of every series [default local].")
@click.option("--host", default=None, help="Host name in labels and the source name [default: this host's].")
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE", help="Label added to every series (repeat).")
@click.option("--scrape", multiple=True, metavar="URL", help="Prometheus endpoint to scrape every 15 s (repeat).")
@click.option("--interval-s", type=float, default=None, help="Aggregation interval [default 5].")
@click.option("--batch-interval-s", type=float, default=None, help="Send a batch at least this often [default 2].")
@click.option("--max-batch-bytes", default=None, metavar="SIZE", help="Largest batch, e.g. 2MiB [default 2MiB].")
@click.option("--spool-max-bytes", default=None, metavar="SIZE", help="Spool cap, e.g. 1GiB [default 1GiB].")
@click.option(
    "--compression",
    type=click.Choice(["gzip", "zstd", "none"]),
    default=None,
    help="Compression of spooled batches [default gzip].",
)
@click.option("--host-metrics/--no-host-metrics", default=None, help="Collect this host's metrics [default on].")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR [default INFO].")
@click.option("--tls-ca", "tls_ca_file", metavar="FILE", default=None, help="Reach ingest over TLS, trusting this CA.")
@click.option("--tls-cert", "tls_cert_file", metavar="FILE", default=None, help="Client certificate for mutual TLS.")
@click.option("--tls-key", "tls_key_file", metavar="FILE", default=None, help="Key of --tls-cert.")
def agent(
    config_file: Path | None,
    ingest: str | None,
    api_key: str | None,
    statsd_addr: str | None,
    statsd_socket: str | None,
    spool_dir: Path | None,
    mode: str | None,
    region: str | None,
    host: str | None,
    labels: tuple[str, ...],
    scrape: tuple[str, ...],
    interval_s: float | None,
    batch_interval_s: float | None,
    max_batch_bytes: str | None,
    spool_max_bytes: str | None,
    compression: str | None,
    host_metrics: bool | None,
    log_level: str | None,
    tls_ca_file: str | None,
    tls_cert_file: str | None,
    tls_key_file: str | None,
) -> None:
    """Run the host daemon: StatsD, host metrics and Prometheus scrapes, spooled to disk and
    streamed to Argus ingest."""
    err = Console(stderr=True, soft_wrap=True)
    flags: dict[str, object] = {
        "ingest": ingest,
        "api_key": api_key,
        "statsd_addr": statsd_addr,
        "statsd_socket": statsd_socket,
        "spool_dir": spool_dir,
        "mode": mode,
        "region": region,
        "host": host,
        "labels": list(labels) or None,
        "scrape": list(scrape) or None,
        "interval_s": interval_s,
        "batch_interval_s": batch_interval_s,
        "max_batch_bytes": max_batch_bytes,
        "spool_max_bytes": spool_max_bytes,
        "compression": compression,
        "host_metrics": host_metrics,
        "log_level": log_level,
        "tls_ca_file": tls_ca_file,
        "tls_cert_file": tls_cert_file,
        "tls_key_file": tls_key_file,
    }
    try:
        config = load_config(file=config_file, flags=flags)
    except InvalidArgument as exc:
        raise click.UsageError(str(exc)) from None
    setup_logging(config.log_level)
    # The spool holds tenants' samples: files for this user only (the StatsD socket is made
    # world-writable on purpose by the daemon itself).
    os.umask(PRIVATE_UMASK)
    try:
        asyncio.run(_run(config))
    except (OSError, ArgusError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass


async def _run(config: AgentConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await AgentDaemon(config).run_until(stop)
