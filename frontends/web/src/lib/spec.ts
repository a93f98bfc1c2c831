// The dashboard body kept in Dashboard.spec_json (docs/dashboards.md). Loading is tolerant:
// unknown fields are kept, missing ones get defaults, so a dashboard written by hand or by a
// newer app still opens.

export type PanelType = "timeseries" | "stat" | "gauge" | "bar" | "table" | "toplist" | "heatmap";
export const PANEL_TYPES: PanelType[] = ["timeseries", "stat", "gauge", "bar", "table", "toplist", "heatmap"];

export type DrawStyle = "lines" | "area" | "stacked";

export interface Target {
  metric: string;
  agg: string; // "" = the metric kind's default
  period: string; // "auto" or a tier
  // Label matchers as text: `host=$host, region=~eu-.*, env!=dev`.
  matchers: string;
  groupBy: string[];
}

export interface Threshold {
  value: number;
  color: string;
}

export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Panel {
  id: string;
  title: string;
  type: PanelType;
  gridPos: GridPos;
  targets: Target[];
  unit: string;
  decimals: number | null;
  thresholds: Threshold[];
  style: DrawStyle;
  min: number | null;
  max: number | null;
  live: boolean;
}

export interface Variable {
  name: string; // used as $name
  label: string; // the label whose values it lists
  metric: string; // optional: values within one metric
  multi: boolean;
  default: string[];
}

export interface Link {
  title: string;
  url: string;
}

export interface DashboardSpec {
  schemaVersion: number;
  panels: Panel[];
  variables: Variable[];
  time: { from: string; to: string };
  refresh: string; // "" off, "5s", "30s", "1m", ...
  live: boolean;
  links: Link[];
}

export const GRID_COLUMNS = 24;

export function defaultTarget(): Target {
  return { metric: "", agg: "", period: "auto", matchers: "", groupBy: [] };
}

export function newPanel(existing: Panel[], type: PanelType = "timeseries"): Panel {
  const bottom = existing.reduce((m, p) => Math.max(m, p.gridPos.y + p.gridPos.h), 0);
  let n = existing.length + 1;
  const ids = new Set(existing.map((p) => p.id));
  while (ids.has(`p${n}`)) n++;
  return {
    id: `p${n}`,
    title: "New panel",
    type,
    gridPos: { x: 0, y: bottom, w: 12, h: 8 },
    targets: [defaultTarget()],
    unit: "",
    decimals: null,
    thresholds: [],
    style: "lines",
    min: null,
    max: null,
    live: false,
  };
}

export function emptySpec(): DashboardSpec {
  return {
    schemaVersion: 1,
    panels: [],
    variables: [],
    time: { from: "now-1h", to: "now" },
    refresh: "",
    live: false,
    links: [],
  };
}

type Json = Record<string, unknown>;

function obj(v: unknown): Json {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {};
}
function str(v: unknown, d = ""): string {
  return typeof v === "string" ? v : d;
}
function num(v: unknown, d: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : d;
}
function numOrNull(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}
function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, Math.round(v)));
}

function parseTarget(v: unknown): Target {
  const t = obj(v);
  return {
    metric: str(t.metric),
    agg: str(t.agg),
    period: str(t.period, "auto") || "auto",
    matchers: str(t.matchers),
    groupBy: arr(t.groupBy).filter((g): g is string => typeof g === "string"),
  };
}

function parsePanel(v: unknown, i: number): Panel {
  const p = obj(v);
  const g = obj(p.gridPos);
  const type = PANEL_TYPES.includes(p.type as PanelType) ? (p.type as PanelType) : "timeseries";
  const style = (["lines", "area", "stacked"] as const).find((s) => s === p.style) ?? "lines";
  const w = clamp(num(g.w, 12), 1, GRID_COLUMNS);
  const targets = arr(p.targets).map(parseTarget);
  return {
    ...p,
    id: str(p.id) || `p${i + 1}`,
    title: str(p.title),
    type,
    gridPos: { x: clamp(num(g.x, 0), 0, GRID_COLUMNS - w), y: clamp(num(g.y, i * 8), 0, 10000), w, h: clamp(num(g.h, 8), 2, 100) },
    targets: targets.length > 0 ? targets : [defaultTarget()],
    unit: str(p.unit),
    decimals: numOrNull(p.decimals),
    thresholds: arr(p.thresholds)
      .map(obj)
      .filter((t) => typeof t.value === "number")
      .map((t) => ({ value: t.value as number, color: str(t.color, "red") })),
    style,
    min: numOrNull(p.min),
    max: numOrNull(p.max),
    live: p.live === true,
  };
}

export function parseSpec(json: string): DashboardSpec {
  let raw: unknown;
  try {
    raw = json.trim() === "" ? {} : JSON.parse(json);
  } catch (e) {
    throw new Error(`dashboard spec is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const s = obj(raw);
  const time = obj(s.time);
  const panels = arr(s.panels).map(parsePanel);
  // Duplicate ids would make two panels share an editor and a live stream slot.
  const seen = new Set<string>();
  for (const p of panels) {
    let id = p.id;
    for (let n = 2; seen.has(id); n++) id = `${p.id}-${n}`;
    p.id = id;
    seen.add(id);
  }
  return {
    ...s,
    schemaVersion: num(s.schemaVersion, 1),
    panels,
    variables: arr(s.variables)
      .map(obj)
      .filter((v) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(str(v.name)))
      .map((v) => ({
        name: str(v.name),
        label: str(v.label, str(v.name)),
        metric: str(v.metric),
        multi: v.multi === true,
        default: arr(v.default).filter((d): d is string => typeof d === "string"),
      })),
    time: { from: str(time.from, "now-1h") || "now-1h", to: str(time.to, "now") || "now" },
    refresh: str(s.refresh),
    live: s.live === true,
    links: arr(s.links)
      .map(obj)
      .map((l) => ({ title: str(l.title), url: str(l.url) }))
      .filter((l) => l.url !== ""),
  };
}

// Canonical JSON (sorted keys) so an unchanged dashboard serialises to the same bytes.
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === "object") {
    const out: Json = {};
    for (const k of Object.keys(v as Json).sort()) out[k] = sortKeys((v as Json)[k]);
    return out;
  }
  return v;
}

export function slugify(title: string): string {
  const s = title
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "-")
    .replace(/^[-_]+|-+$/g, "")
    .slice(0, 48);
  return s === "" ? "dashboard" : s;
}

export const UID_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

// The export file: the dashboard's metadata and spec, without server-side fields.
export interface ExportedDashboard {
  uid: string;
  title: string;
  folder: string;
  tags: string[];
  spec: DashboardSpec;
}

export function parseExport(text: string): ExportedDashboard {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`not a JSON file: ${(e as Error).message}`, { cause: e });
  }
  const o = obj(raw);
  const title = str(o.title);
  if (title === "") throw new Error("the file has no title");
  const uid = str(o.uid) || slugify(title);
  if (!UID_RE.test(uid)) throw new Error(`bad uid ${JSON.stringify(uid)}: [a-z0-9][a-z0-9_-]{0,63}`);
  return {
    uid,
    title,
    folder: str(o.folder),
    tags: arr(o.tags).filter((t): t is string => typeof t === "string"),
    spec: parseSpec(JSON.stringify(o.spec ?? {})),
  };
}
