import { useEffect, useState } from "react";
import { alerts, errorMessage } from "./api";
import { AlertState, type AlertStateChanged } from "./gen/argus/alerts/v1/alerts_pb";
import { TimeSeriesChart } from "./Chart";
import { formatValue, PALETTE, stats, thresholdColor } from "./lib/format";
import type { Series } from "./lib/live";
import { seriesName } from "./lib/query";
import type { LegendValue, Panel } from "./lib/spec";

export interface PanelData {
  series: Series[];
  error: string;
  tier: string;
  loading: boolean;
}

interface Props {
  panel: Panel;
  data: PanelData | undefined;
  range: { start: number; end: number };
  onZoom: (start: number, end: number) => void;
}

function lastOf(s: Series): number | null {
  return s.values.length > 0 ? (s.values[s.values.length - 1] as number) : null;
}

export function PanelBody({ panel, data, range, onZoom }: Props) {
  if (panel.type === "alerts") return <AlertsPanel options={panel.options ?? {}} refreshKey={Math.floor(range.end / 15_000)} />;
  if (!data || (data.loading && data.series.length === 0 && !data.error)) return <div className="panel-msg muted">Loading…</div>;
  if (data.error) {
    return (
      <div className="panel-msg error" role="alert" data-testid="panel-error">
        {data.error}
      </div>
    );
  }
  const metric = panel.targets?.[0]?.metric ?? "";
  const series = data.series;
  if (series.every((s) => s.timestamps.length === 0)) return <div className="panel-msg muted">No data</div>;
  const unit = panel.unit ?? "";
  const decimals = panel.decimals ?? null;
  const thresholds = panel.thresholds ?? [];
  const fmt = (v: number | null) => formatValue(v, unit, decimals);
  const name = (s: Series) => seriesName(s.labels, metric, s.legend ?? "");
  switch (panel.type) {
    case "timeseries":
      return (
        <div className="ts">
          <TimeSeriesChart series={series} legends={series.map((s) => s.legend ?? "")} metric={metric} unit={unit} decimals={decimals} thresholds={thresholds} style={panel.style ?? "line"} stack={panel.stack === true} range={range} min={panel.min ?? null} max={panel.max ?? null} onZoom={onZoom} />
          {panel.legend?.show !== false && <Legend series={series} name={name} fmt={fmt} values={panel.legend?.values ?? ["min", "max", "avg", "last"]} />}
        </div>
      );
    case "stat": {
      const v = series.length > 0 ? lastOf(series[0] as Series) : null;
      return (
        <div className="stat" style={{ color: thresholdColor(v, thresholds) }} data-testid="stat-value">
          {fmt(v)}
        </div>
      );
    }
    case "gauge": {
      const v = series.length > 0 ? lastOf(series[0] as Series) : null;
      return <Gauge value={v} min={panel.min ?? 0} max={panel.max ?? (unit === "percent" ? 100 : Math.max(1, ...series.flatMap((s) => s.values)))} color={thresholdColor(v, thresholds)} label={fmt(v)} />;
    }
    case "table":
      return <StatsTable series={series} name={name} fmt={fmt} />;
    case "bar":
    case "toplist": {
      const opts = panel.options ?? {};
      const asc = opts.sort === "asc";
      const limit = typeof opts.limit === "number" ? opts.limit : panel.type === "toplist" ? 10 : 50;
      let rows = series.map((s) => ({ name: name(s), v: lastOf(s) })).filter((r): r is { name: string; v: number } => r.v !== null);
      if (panel.type === "toplist") rows = rows.sort((a, b) => (asc ? a.v - b.v : b.v - a.v));
      rows = rows.slice(0, limit);
      const top = Math.max(...rows.map((r) => Math.abs(r.v)), 1e-12);
      return (
        <ol className={`toplist ${panel.type}`}>
          {rows.map((r) => (
            <li key={r.name}>
              <span className="name">{r.name}</span>
              <span className="bar" style={{ width: `${(Math.abs(r.v) / top) * 100}%`, background: thresholdColor(r.v, thresholds, "var(--accent)") }} />
              <span className="val">{fmt(r.v)}</span>
            </li>
          ))}
        </ol>
      );
    }
    case "heatmap":
      return <Heatmap series={series} name={name} fmt={fmt} />;
  }
}

function Legend({ series, name, fmt, values }: { series: Series[]; name: (s: Series) => string; fmt: (v: number | null) => string; values: readonly LegendValue[] }) {
  return (
    <table className="legend">
      <thead>
        <tr>
          <th />
          {values.map((v) => (
            <th key={v}>{v}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {series.slice(0, 20).map((s, i) => {
          const st = stats(s.values);
          const n = name(s);
          return (
            <tr key={`${n}-${i}`}>
              <td className="name">
                <span className="dot" style={{ background: PALETTE[i % PALETTE.length] }} />
                {n}
              </td>
              {values.map((v) => (
                <td key={v}>{fmt(st === null ? null : v === "total" ? st.avg * st.count : st[v])}</td>
              ))}
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function StatsTable({ series, name: nameOf, fmt }: { series: Series[]; name: (s: Series) => string; fmt: (v: number | null) => string }) {
  return (
    <div className="table-wrap">
      <table className="data-table">
        <thead>
          <tr>
            <th>series</th>
            <th>last</th>
            <th>min</th>
            <th>max</th>
            <th>avg</th>
            <th>points</th>
          </tr>
        </thead>
        <tbody>
          {series.map((s) => {
            const st = stats(s.values);
            const name = nameOf(s);
            return (
              <tr key={name}>
                <td>{name}</td>
                <td>{fmt(st?.last ?? null)}</td>
                <td>{fmt(st?.min ?? null)}</td>
                <td>{fmt(st?.max ?? null)}</td>
                <td>{fmt(st?.avg ?? null)}</td>
                <td>{st?.count ?? 0}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Gauge({ value, min, max, color, label }: { value: number | null; min: number; max: number; color: string; label: string }) {
  const frac = value === null || max <= min ? 0 : Math.min(1, Math.max(0, (value - min) / (max - min)));
  const a = Math.PI * (1 - frac);
  const x = 60 + 50 * Math.cos(a);
  const y = 60 - 50 * Math.sin(a);
  return (
    <svg className="gauge" viewBox="0 0 120 72" role="img" aria-label={label}>
      <path d="M10 60 A50 50 0 0 1 110 60" stroke="var(--grid)" strokeWidth="10" fill="none" />
      {frac > 0 && <path d={`M10 60 A50 50 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`} stroke={color} strokeWidth="10" fill="none" />}
      <text x="60" y="58" textAnchor="middle" fontSize="16" fill="currentColor">
        {label}
      </text>
    </svg>
  );
}

// One row per series, one cell per bucket, colour by value (e.g. a timer's p99 per host).
function Heatmap({ series, name: nameOf, fmt }: { series: Series[]; name: (s: Series) => string; fmt: (v: number | null) => string }) {
  const all = series.flatMap((s) => s.values);
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  return (
    <div className="heatmap">
      {series.slice(0, 30).map((s) => {
        const name = nameOf(s);
        return (
          <div className="hm-row" key={name} title={name}>
            <span className="name">{name}</span>
            <span className="cells">
              {s.values.map((v, i) => (
                <span key={i} className="cell" title={`${new Date(s.timestamps[i] as number).toLocaleTimeString()}: ${fmt(v)}`} style={{ opacity: hi > lo ? 0.15 + (0.85 * (v - lo)) / (hi - lo) : 1 }} />
              ))}
            </span>
          </div>
        );
      })}
    </div>
  );
}

// The tenant's active alerts (AlertService.ListAlerts), re-read when the range moves on
// (at most every 15 s in live mode). options.state: ["firing"], ["pending"] or both.
function AlertsPanel({ options, refreshKey }: { options: Record<string, unknown>; refreshKey: number }) {
  const [rows, setRows] = useState<AlertStateChanged[] | null>(null);
  const [error, setError] = useState("");
  const states = Array.isArray(options.state) ? options.state.filter((x): x is string => typeof x === "string") : [];
  const state = states.length === 1 ? (states[0] as string) : "active";
  useEffect(() => {
    let live = true;
    alerts
      .listAlerts({ state })
      .then((r) => live && (setRows(r.alerts), setError("")))
      .catch((e: unknown) => live && setError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, [state, refreshKey]);
  if (error) return <div className="panel-msg error" role="alert" data-testid="panel-error">{error}</div>;
  if (rows === null) return <div className="panel-msg muted">Loading…</div>;
  if (rows.length === 0) return <div className="panel-msg muted">No {state} alerts</div>;
  return (
    <div className="table-wrap">
      <table className="data-table">
        <thead>
          <tr>
            <th>rule</th>
            <th>instance</th>
            <th>state</th>
            <th>severity</th>
            <th>value</th>
            <th>since</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.instanceId}>
              <td>{a.rule}</td>
              <td>{seriesName(a.instanceLabels, "")}</td>
              <td className={a.toState === AlertState.FIRING ? "firing" : "pending"}>{AlertState[a.toState].toLowerCase()}</td>
              <td>{a.severity}</td>
              <td>{formatValue(a.value, "")}</td>
              <td>{new Date(Number(a.sinceMs)).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
