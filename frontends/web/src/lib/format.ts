// Units, legend statistics and thresholds.

export interface Stats {
  min: number;
  max: number;
  avg: number;
  last: number;
  count: number;
}

export function stats(values: readonly (number | null)[]): Stats | null {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let count = 0;
  let last = NaN;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
    count++;
    last = v;
  }
  return count === 0 ? null : { min, max, avg: sum / count, last, count };
}

const SI = ["", "k", "M", "G", "T", "P"];
const IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

function fixed(v: number, decimals: number | null): string {
  if (decimals !== null) return v.toFixed(decimals);
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.01) return v.toFixed(2);
  return v.toPrecision(2);
}

export const UNITS = ["", "percent", "percentunit", "bytes", "bytes/s", "s", "ms", "reqps", "short"];

export function formatValue(v: number | null | undefined, unit: string, decimals: number | null = null): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  switch (unit) {
    case "percent":
      return `${fixed(v, decimals)}%`;
    case "percentunit":
      return `${fixed(v * 100, decimals)}%`;
    case "bytes/s":
    case "Bps":
      return `${formatValue(v, "bytes", decimals)}/s`;
    case "bytes": {
      let i = 0;
      let x = v;
      while (Math.abs(x) >= 1024 && i < IEC.length - 1) {
        x /= 1024;
        i++;
      }
      return `${fixed(x, decimals)} ${IEC[i]}`;
    }
    case "s":
      return Math.abs(v) < 1 && v !== 0 ? `${fixed(v * 1000, decimals)} ms` : `${fixed(v, decimals)} s`;
    case "ms":
      return Math.abs(v) >= 1000 ? `${fixed(v / 1000, decimals)} s` : `${fixed(v, decimals)} ms`;
    case "reqps":
      return `${short(v, decimals)} req/s`;
    case "short":
      return short(v, decimals);
    default:
      return unit === "" ? short(v, decimals) : `${short(v, decimals)} ${unit}`;
  }
}

function short(v: number, decimals: number | null): string {
  let i = 0;
  let x = v;
  while (Math.abs(x) >= 1000 && i < SI.length - 1) {
    x /= 1000;
    i++;
  }
  // Counts read as counts: 95, not 95.0 (scaled values keep their decimals: 1.00k).
  if (decimals === null && i === 0 && Number.isInteger(x)) return String(x);
  return `${fixed(x, decimals)}${SI[i]}`;
}

// The colour of the highest threshold the value reaches (thresholds in any order).
export function thresholdColor(v: number | null, thresholds: readonly { value: number | null; color: string }[], base = "var(--ok)"): string {
  // A step with value null is the base colour (below every other step).
  const baseStep = thresholds.find((t) => t.value === null);
  const fallback = baseStep?.color ?? base;
  if (v === null || !Number.isFinite(v)) return fallback;
  let best: { value: number; color: string } | null = null;
  for (const t of thresholds) if (t.value !== null && v >= t.value && (best === null || t.value >= best.value)) best = { value: t.value, color: t.color };
  return best?.color ?? fallback;
}

export const PALETTE = ["#5794f2", "#73bf69", "#f2cc0c", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#96d98d", "#ffcb7d", "#ca95e5"];
