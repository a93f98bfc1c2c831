"""`argus query`: read a metric through the HTTP query API and print it."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from argus.cli_common import _client_tls, _client_tls_options
from core.errors import ArgusError, InvalidArgument
from core.tls import ClientTls
from query_side.timeparse import parse_duration, parse_time

DEFAULT_HTTP = "http://127.0.0.1:8080"
DEFAULT_DATA_DIR = Path(".argus")
API_KEY_FILE = "api_key"
# More series than this are shown as one summary row each instead of one column each.
MAX_SERIES_COLUMNS = 6


class QueryFailed(ArgusError, click.ClickException):
    """An error the server (or the connection) reported; printed without a traceback."""

    def __init__(self, message: str, *, parameter: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.status = status

    def show(self, file: Any = None) -> None:
        console = Console(stderr=True)
        where = f" [dim](parameter: {self.parameter})[/]" if self.parameter else ""
        status = f" [dim]HTTP {self.status}[/]" if self.status else ""
        console.print(f"[bold red]error[/]{status}: {self.message}{where}", highlight=False)


@click.command(name="query", context_settings={"max_content_width": 110})
@click.argument("metric")
@click.option(
    "--where",
    "-w",
    multiple=True,
    metavar="MATCHER",
    help="Keep series whose label matches: name=value, name!=value, name=~regex, name!~regex "
    "(full match; repeatable, all must hold).",
)
@click.option("--since", default=None, metavar="DURATION", help="Range back from --end: 15m, 12h, 7d [default 1h].")
@click.option(
    "--start", default=None, metavar="TIME", help="Range start: RFC 3339, epoch seconds/ms, or relative (-12h)."
)
@click.option("--end", default=None, metavar="TIME", help="Range end (exclusive), same forms as --start [default now].")
@click.option(
    "--period", default="auto", show_default=True, help="Tier to read: 5s, 1m, 5m, 1h, 1d, or auto (~300+ points)."
)
@click.option(
    "--agg",
    default=None,
    help="sum, count, avg, min, max, last, rate, increase, p50/p99/pNN, distinct "
    "[default: avg for gauges, rate for counters, p99 for timers, distinct for distinct counts].",
)
@click.option(
    "--group-by",
    "-g",
    multiple=True,
    metavar="LABELS",
    help="Keep series apart by these labels (comma-separated or "
    "repeated); '*' keeps every series apart. Default: merge everything into one series.",
)
@click.option("--region", default=None, help="Only series of this region.")
@click.option(
    "--sort",
    type=click.Choice(["max", "min", "avg", "last", "sum"]),
    default=None,
    help="Rank the result series by this reduction of their points (server side).",
)
@click.option("--order", type=click.Choice(["desc", "asc"]), default=None, help="With --sort [default desc].")
@click.option("--limit", type=click.IntRange(1, 10_000), default=None, help="Only the first N result series.")
@click.option(
    "--http",
    "http_url",
    envvar="ARGUS_HTTP",
    default=DEFAULT_HTTP,
    show_default=True,
    help="Base URL of the Argus HTTP API [env ARGUS_HTTP].",
)
@click.option(
    "--api-key",
    envvar="ARGUS_API_KEY",
    default=None,
    help="API key [env ARGUS_API_KEY; default: the dev key in <data dir>/api_key].",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    envvar="ARGUS_DATA_DIR",
    default=None,
    help="Where `argus up` keeps its data (and the dev API key) [env ARGUS_DATA_DIR; default ./.argus].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON answer instead of a table.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the answer.")
@_client_tls_options
def query(
    metric: str,
    where: tuple[str, ...],
    since: str | None,
    start: str | None,
    end: str | None,
    period: str,
    agg: str | None,
    group_by: tuple[str, ...],
    region: str | None,
    sort: str | None,
    order: str | None,
    limit: int | None,
    http_url: str,
    api_key: str | None,
    data_dir: Path | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Read METRIC over a time range and print it as a table.

    One column per result series and one row per time bucket (local time); with more
    than a few series, one summary row per series (last, min, max, avg).

    \b
    Examples:
      argus query host_cpu_percent                       # last hour, all hosts merged
      argus query host_cpu_percent --since 12h --group-by host
      argus query http_requests --agg rate --where service=api --group-by region
      argus query http_latency_ms --agg p99 --where 'path=~/api/.*' --since 30m
      argus query host_cpu_percent -w host!=db-1 -g host,mode --period 1m
      argus query active_users --agg distinct --start 2026-11-25T00:00:00Z --end 2026-11-26T00:00:00Z
      argus query host_cpu_percent --since 7d --json | jq '.series[0].points[-1]'
      argus query host_cpu_percent --since 2h -g host --agg max --sort max --limit 10
    """
    params = _params(metric, where, since, start, end, period, agg, group_by, region)
    params.extend((name, str(value)) for name, value in (("sort", sort), ("order", order), ("limit", limit)) if value)
    key = api_key or _dev_key(data_dir)
    tls = _client_tls(enabled=http_url.lower().startswith("https://"))
    if tls is not None and http_url.lower().startswith("http://"):
        raise click.UsageError(f"TLS options given but --http {http_url} is plain http://; use https://")
    body = fetch_json(http_url, "/api/v1/query", params, api_key=key, timeout_s=timeout, tls=tls)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    render(body, metric=metric, console=Console())


def _params(
    metric: str,
    where: Sequence[str],
    since: str | None,
    start: str | None,
    end: str | None,
    period: str,
    agg: str | None,
    group_by: Sequence[str],
    region: str | None,
) -> list[tuple[str, str]]:
    if since and start:
        raise click.UsageError("give either --since or --start, not both")
    if since:
        try:
            since_ms = parse_duration(since, parameter="since")
            if end:
                end_ms = parse_time(end, now_ms=_now_ms(), parameter="end")
                start, end = str(end_ms - since_ms), str(end_ms)
            else:
                start = f"-{since.strip()}"
        except InvalidArgument as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[-1], param_hint=f"--{exc.parameter}") from None
    params = [("metric", metric), ("period", period)]
    for name, value in (("start", start), ("end", end), ("agg", agg), ("region", region)):
        if value:
            params.append((name, value))
    params.extend(("where", w) for w in where)
    params.extend(("group_by", g) for g in group_by)
    return params


def _now_ms() -> int:
    return int(datetime.now().timestamp() * 1000)


def _dev_key(data_dir: Path | None) -> str:
    path = (data_dir or DEFAULT_DATA_DIR) / API_KEY_FILE
    try:
        key = path.read_text().strip()
    except OSError:
        key = ""
    if not key:
        raise QueryFailed(f"no API key: pass --api-key, set ARGUS_API_KEY, or run `argus up` (it writes {path})")
    return key


def fetch_json(
    base_url: str,
    path: str,
    params: Sequence[tuple[str, str]],
    *,
    api_key: str,
    timeout_s: float,
    tls: ClientTls | None = None,
) -> dict[str, Any]:
    """GET `path` with `params`; the decoded JSON body, or QueryFailed with the server's
    message (and the parameter it blames)."""
    url = base_url.rstrip("/") + path + "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"})
    try:
        context = tls.ssl_context() if tls is not None else None
    except InvalidArgument as exc:
        raise QueryFailed(str(exc)) from None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            error = json.loads(raw)
            message, parameter = str(error.get("error", raw.decode(errors="replace"))), error.get("parameter")
        except (ValueError, AttributeError):
            message, parameter = raw.decode(errors="replace").strip() or str(exc.reason), None
        raise QueryFailed(message, parameter=parameter, status=exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise QueryFailed(f"cannot reach Argus at {base_url} ({reason}); is `argus up` running?") from None


# ------------------------------------------------------------------------------ rendering


def render(body: dict[str, Any], *, metric: str, console: Console) -> None:
    """Print a query answer: a time x series table, or a summary per series when there are
    more than MAX_SERIES_COLUMNS series."""
    series: list[dict[str, Any]] = body.get("series", [])
    stats = body.get("stats", {})
    caption = (
        f"tier {body.get('tier')} · agg {body.get('agg', '?')} · {stats.get('series_matched', 0)} series matched · "
        f"{stats.get('elapsed_ms', 0):.1f} ms"
    )
    if not series:
        console.print(f"[yellow]no data[/] for {metric} in this range [dim]({caption})[/]", highlight=False)
        return
    if len(series) > MAX_SERIES_COLUMNS:
        console.print(summary_table(series, metric=metric, caption=caption))
    else:
        console.print(time_table(series, metric=metric, caption=caption, step_ms=int(body.get("step_ms", 0))))


def series_name(labels: dict[str, str], metric: str) -> str:
    return " ".join(f"{k}={v}" for k, v in labels.items()) if labels else metric


def format_value(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.1f}"
    if magnitude >= 1:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def _time_format(timestamps: Sequence[int], step_ms: int) -> str:
    if step_ms >= 86_400_000:
        return "%Y-%m-%d"
    if not timestamps:
        return "%H:%M:%S"
    first = datetime.fromtimestamp(min(timestamps) / 1000).date()
    last = datetime.fromtimestamp(max(timestamps) / 1000).date()
    return "%H:%M:%S" if first == last else "%Y-%m-%d %H:%M:%S"


def time_table(series: Sequence[dict[str, Any]], *, metric: str, caption: str, step_ms: int) -> Table:
    """Rows = bucket start in local time, one column per series (– where a series has no point)."""
    columns: list[dict[int, float | None]] = [{int(t): v for t, v in s["points"]} for s in series]
    timestamps = sorted({t for col in columns for t in col})
    fmt = _time_format(timestamps, step_ms)
    table = Table(title=metric, caption=caption, caption_justify="left")
    table.add_column("time (local)", style="dim", no_wrap=True)
    for s in series:
        table.add_column(series_name(s["labels"], metric), justify="right")
    for t in timestamps:
        row = [datetime.fromtimestamp(t / 1000).strftime(fmt)]
        row.extend(format_value(col[t]) if t in col else "" for col in columns)
        table.add_row(*row)
    return table


def summary_table(series: Sequence[dict[str, Any]], *, metric: str, caption: str) -> Table:
    """One row per series: last, min, max, avg over its points (nulls skipped)."""
    table = Table(title=f"{metric} ({len(series)} series)", caption=caption, caption_justify="left")
    table.add_column("series")
    for name in ("last", "min", "max", "avg", "points"):
        table.add_column(name, justify="right")
    for s in series:
        values = [v for _, v in s["points"] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        last = values[-1] if values else None
        low = min(values) if values else None
        high = max(values) if values else None
        avg = sum(values) / len(values) if values else None
        table.add_row(
            series_name(s["labels"], metric),
            format_value(last),
            format_value(low),
            format_value(high),
            format_value(avg),
            str(len(s["points"])),
        )
    return table
