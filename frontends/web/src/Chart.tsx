// Time series with uPlot (lines, areas, stacked): thresholds drawn as dashed lines, a shared
// crosshair across the page's panels (cursor sync), a tooltip and drag-to-zoom.
import { useEffect, useMemo, useRef } from "react";
import uPlot from "uplot";
import { formatValue, PALETTE } from "./lib/format";
import { align, stack, type Series } from "./lib/live";
import { seriesName } from "./lib/query";
import type { DrawStyle, Threshold } from "./lib/spec";

interface Props {
  series: Series[];
  metric: string;
  unit: string;
  decimals: number | null;
  thresholds: Threshold[];
  style: DrawStyle;
  stack: boolean;
  legends?: string[];
  range: { start: number; end: number };
  min: number | null;
  max: number | null;
  bars?: boolean;
  // Shaded time spans (ms), e.g. where a rule would have fired.
  bands?: { start: number; end: number }[];
  onZoom?: (start: number, end: number) => void;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function TimeSeriesChart(props: Props) {
  const { series, metric, unit, decimals, thresholds, style, stack: stacked, range, min, max, onZoom } = props;
  const box = useRef<HTMLDivElement>(null);
  const tip = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const bands = props.bands;
  const latest = useRef({ unit, decimals, thresholds, onZoom, range, bands });
  latest.current = { unit, decimals, thresholds, onZoom, range, bands };
  const names = useMemo(() => series.map((s, i) => seriesName(s.labels, metric, props.legends?.[i] ?? "")), [series, metric, props.legends]);
  const data = useMemo(() => {
    const [x, ...ys] = align(series);
    return [x, ...(stacked ? stack(ys) : ys)] as uPlot.AlignedData;
  }, [series, stacked]);
  const shape = `${names.join("\u0000")}|${style}|${stacked}|${min}|${max}|${props.bars === true}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const axis = { stroke: cssVar("--muted"), grid: { stroke: cssVar("--grid"), width: 1 }, ticks: { stroke: cssVar("--grid") } };
    const opts: uPlot.Options = {
      width: Math.max(100, el.clientWidth),
      height: Math.max(60, el.clientHeight),
      legend: { show: false },
      cursor: {
        sync: { key: "argus-dashboard" },
        drag: { x: true, y: false, setScale: false },
      },
      scales: {
        x: { time: true },
        y: { range: (_u, lo, hi) => [min ?? Math.min(0, lo), max ?? (hi === lo ? hi + 1 : hi + (hi - lo) * 0.05)] },
      },
      axes: [axis, { ...axis, size: 86, values: (_u, vals) => vals.map((v) => formatValue(v, latest.current.unit, null)) }],
      series: [
        {},
        ...names.map((label, i) => {
          const color = PALETTE[i % PALETTE.length] as string;
          return {
            label,
            stroke: color,
            fill: style === "line" && !stacked && !props.bars ? undefined : `${color}40`,
            points: { show: style === "points", size: 4 },
            width: style === "points" ? 0 : 1.5,
            spanGaps: false,
            paths: props.bars || style === "bars" ? uPlot.paths.bars?.({ size: [0.8, 40] }) : undefined,
          } satisfies uPlot.Series;
        }),
      ],
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.fillStyle = "rgba(242, 73, 92, 0.18)";
            for (const b of latest.current.bands ?? []) {
              const x0 = Math.max(u.bbox.left, u.valToPos(b.start / 1000, "x", true));
              const x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(b.end / 1000, "x", true));
              if (x1 > x0) ctx.fillRect(x0, u.bbox.top, Math.max(x1 - x0, 3 * devicePixelRatio), u.bbox.height);
            }
            ctx.setLineDash([6, 4]);
            ctx.lineWidth = 1.5 * devicePixelRatio;
            for (const t of latest.current.thresholds) {
              if (t.value === null) continue;
              const y = u.valToPos(t.value, "y", true);
              if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
              ctx.strokeStyle = t.color;
              ctx.beginPath();
              ctx.moveTo(u.bbox.left, y);
              ctx.lineTo(u.bbox.left + u.bbox.width, y);
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
        setSelect: [
          (u) => {
            if (u.select.width > 4 && latest.current.onZoom) {
              const a = u.posToVal(u.select.left, "x") * 1000;
              const b = u.posToVal(u.select.left + u.select.width, "x") * 1000;
              latest.current.onZoom(Math.round(a), Math.round(b));
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
        setCursor: [
          (u) => {
            const t = tip.current;
            if (!t) return;
            const idx = u.cursor.idx;
            if (idx === null || idx === undefined || u.cursor.left === undefined || u.cursor.left < 0) {
              t.style.display = "none";
              return;
            }
            const x = u.data[0][idx];
            if (x === undefined) return;
            const rows = u.series
              .slice(1)
              .map((s, i) => ({ label: String(s.label ?? ""), v: u.data[i + 1]?.[idx], color: PALETTE[i % PALETTE.length] as string }))
              .filter((r) => r.v !== null && r.v !== undefined)
              .slice(0, 8);
            t.replaceChildren();
            const head = document.createElement("div");
            head.className = "tip-time";
            head.textContent = new Date(x * 1000).toLocaleString();
            t.append(head);
            for (const r of rows) {
              const row = document.createElement("div");
              const dot = document.createElement("span");
              dot.className = "dot";
              dot.style.background = r.color;
              row.append(dot, `${r.label}: ${formatValue(r.v as number, latest.current.unit, latest.current.decimals)}`);
              t.append(row);
            }
            t.style.display = rows.length > 0 ? "block" : "none";
            const left = (u.cursor.left ?? 0) + u.bbox.left / devicePixelRatio;
            t.style.left = `${Math.min(left + 12, u.width - 200)}px`;
            t.style.top = `${(u.cursor.top ?? 0) + 8}px`;
          },
        ],
      },
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(100, el.clientWidth), height: Math.max(60, el.clientHeight) }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // The plot is rebuilt only when its shape changes; new data goes through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.setData(data, false);
    u.setScale("x", { min: range.start / 1000, max: range.end / 1000 });
  }, [data, range.start, range.end, shape, bands]);

  return (
    <div className="chart" ref={box} data-points={data[0].length}>
      <div className="tooltip" ref={tip} />
    </div>
  );
}
