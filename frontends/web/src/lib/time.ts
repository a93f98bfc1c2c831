// Time ranges: relative ("now-6h", "now") or absolute (ms since the epoch, as digits).

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, y: 365 * 86_400_000 };

export function parseDuration(text: string): number | null {
  const m = /^(\d+)([smhdwy])$/.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

// One end of a range to ms; null when it does not parse.
export function resolveTime(text: string, now: number): number | null {
  const t = text.trim();
  if (t === "now") return now;
  const rel = /^now-(\d+[smhdwy])$/.exec(t);
  if (rel) {
    const d = parseDuration(rel[1] as string);
    return d === null ? null : now - d;
  }
  if (/^\d{10,14}$/.test(t)) return Number(t);
  const parsed = Date.parse(t);
  return Number.isNaN(parsed) ? null : parsed;
}

export interface Range {
  from: string;
  to: string;
}

export function resolveRange(r: Range, now: number): { start: number; end: number } {
  const start = resolveTime(r.from, now);
  const end = resolveTime(r.to, now);
  if (start === null) throw new Error(`bad time ${JSON.stringify(r.from)}`);
  if (end === null) throw new Error(`bad time ${JSON.stringify(r.to)}`);
  if (start >= end) throw new Error("the range starts after it ends");
  return { start, end };
}

export const RELATIVE_CHOICES = ["5m", "15m", "1h", "6h", "24h", "7d", "30d", "365d"];

// The tier the server's "auto" picks: the coarsest giving at least ~300 points (docs/query).
const TIERS: [string, number][] = [
  ["1d", 86_400_000],
  ["1h", 3_600_000],
  ["5m", 300_000],
  ["1m", 60_000],
  ["5s", 5_000],
];

export function autoPeriod(rangeMs: number): string {
  for (const [name, ms] of TIERS) if (rangeMs / ms >= 300) return name;
  return "5s";
}

export function rangeLabel(r: Range): string {
  if (r.to === "now" && r.from.startsWith("now-")) return `Last ${r.from.slice(4)}`;
  const f = (s: string) => {
    const ms = resolveTime(s, Date.now());
    return ms === null ? s : new Date(ms).toISOString().slice(0, 16).replace("T", " ");
  };
  return `${f(r.from)} → ${f(r.to)}`;
}
