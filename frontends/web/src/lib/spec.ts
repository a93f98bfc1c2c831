// The dashboard body kept in Dashboard.spec_json: the server's schema (docs/dashboards.md,
// core/dashboards/schema.py), which rejects unknown fields. The app reads and writes exactly
// those fields and keeps every field it does not edit, so a dashboard round-trips as code.

export type PanelType = "timeseries" | "stat" | "gauge" | "bar" | "table" | "toplist" | "heatmap" | "alerts";
export const PANEL_TYPES: PanelType[] = ["timeseries", "stat", "gauge", "bar", "table", "toplist", "heatmap", "alerts"];
export type DrawStyle = "line" | "area" | "bars" | "points";
export const LEGEND_VALUES = ["min", "max", "avg", "last", "total"] as const;
export type LegendValue = (typeof LEGEND_VALUES)[number];

export interface Target {
  refId?: string;
  metric: string;
  // Label matchers, one per item: `host=$host`, `region=~eu-.*`, `env!=dev`.
  where?: string[];
  group_by?: string[];
  agg?: string; // absent: the metric kind's default
  period?: string; // "auto" or a tier
  region?: string;
  legend?: string; // series name template: `in {{interface}}`
  hide?: boolean;
}

export interface Threshold {
  value: number | null; // null: the base colour
  color: string;
  label?: string;
}

export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Panel {
  id: number;
  type: PanelType;
  title?: string;
  description?: string;
  gridPos: GridPos;
  targets?: Target[];
  unit?: string;
  decimals?: number;
  min?: number | null;
  max?: number | null;
  thresholds?: Threshold[];
  legend?: { show?: boolean; placement?: "bottom" | "right"; values?: LegendValue[]; sortBy?: string; sortDesc?: boolean };
  style?: DrawStyle;
  stack?: boolean;
  links?: Link[];
  options?: Record<string, unknown>;
}

export interface Variable {
  name: string; // used as $name
  label?: string; // shown beside the picker
  type?: "label_values" | "custom";
  labelName?: string; // label_values: the label whose values it lists
  metric?: string; // optional: values within one metric
  options?: string[]; // custom
  multi?: boolean;
  includeAll?: boolean;
  current?: string | string[];
  regex?: string;
  hide?: boolean;
}

export interface Link {
  title: string;
  url?: string;
  dashboard?: string;
  includeVars?: boolean;
  keepTime?: boolean;
  targetBlank?: boolean;
  tooltip?: string;
}

export interface DashboardSpec {
  schemaVersion?: number;
  description?: string;
  time?: { from: string | number; to?: string | number; timezone?: string };
  refresh?: string; // "", "off", "live" or an interval ("30s")
  variables?: Variable[];
  panels: Panel[];
  links?: Link[];
  options?: Record<string, unknown>;
}

export const GRID_COLUMNS = 24;

export function newPanel(existing: readonly Panel[], type: PanelType = "timeseries"): Panel {
  const bottom = existing.reduce((m, p) => Math.max(m, p.gridPos.y + p.gridPos.h), 0);
  const id = existing.reduce((m, p) => Math.max(m, p.id), 0) + 1;
  return { id, type, title: "New panel", gridPos: { x: 0, y: bottom, w: 12, h: 8 }, targets: [{ refId: "A", metric: "" }] };
}

export function emptySpec(): DashboardSpec {
  return { schemaVersion: 1, time: { from: "now-1h", to: "now" }, panels: [] };
}

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
function clamp(v: unknown, lo: number, hi: number, d: number): number {
  const n = typeof v === "number" && Number.isFinite(v) ? Math.round(v) : d;
  return Math.min(hi, Math.max(lo, n));
}

// Parse a stored spec. The server has validated it; the app still guards what it relies on
// (panels with a grid position and a unique id) so a hand-edited file cannot crash the page.
export function parseSpec(json: string): DashboardSpec {
  let raw: unknown;
  try {
    raw = json.trim() === "" ? {} : JSON.parse(json);
  } catch (e) {
    throw new Error(`dashboard spec is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isObj(raw)) throw new Error("a dashboard spec is a JSON object");
  const panels = (Array.isArray(raw.panels) ? raw.panels : []).filter(isObj).map((p, i) => {
    const g = isObj(p.gridPos) ? p.gridPos : {};
    const w = clamp(g.w, 1, GRID_COLUMNS, 12);
    const gridPos = { x: clamp(g.x, 0, GRID_COLUMNS - w, 0), y: clamp(g.y, 0, 10_000, i * 8), w, h: clamp(g.h, 1, 100, 8) };
    const type = PANEL_TYPES.includes(p.type as PanelType) ? (p.type as PanelType) : "timeseries";
    return { ...p, type, gridPos, id: typeof p.id === "number" ? p.id : 0 } as Panel;
  });
  // Missing or repeated ids get fresh ones: the id keys the panel's data and editor.
  const seen = new Set<number>();
  let next = panels.reduce((m, p) => Math.max(m, p.id), 0) + 1;
  for (const p of panels) {
    if (p.id < 1 || seen.has(p.id)) p.id = next++;
    seen.add(p.id);
  }
  return { ...(raw as Partial<DashboardSpec>), panels };
}

// Canonical JSON (sorted keys), as the server stores it: an unchanged dashboard is the same bytes.
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isObj(v)) {
    const out: Json = {};
    for (const k of Object.keys(v).sort()) if (v[k] !== undefined) out[k] = sortKeys(v[k]);
    return out;
  }
  return v;
}

export function slugify(title: string): string {
  const s = title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64)
    .replace(/-+$/g, "");
  return s === "" ? "dashboard" : s;
}

export const UID_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const METADATA = ["uid", "title", "folder", "tags"];

// A dashboard document (what `argus dashboards export` writes): metadata and spec in one object.
export interface DashboardDocument {
  uid: string;
  title: string;
  folder: string;
  tags: string[];
  spec: DashboardSpec;
}

export function toDocument(d: DashboardDocument): Json {
  const doc: Json = { uid: d.uid, title: d.title };
  if (d.folder) doc.folder = d.folder;
  if (d.tags.length > 0) doc.tags = d.tags;
  return { ...doc, ...(JSON.parse(canonicalJson(d.spec)) as Json) };
}

export function parseDocument(text: string): DashboardDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`not a JSON file: ${(e as Error).message}`, { cause: e });
  }
  if (!isObj(raw)) throw new Error("a dashboard file is a JSON object");
  const title = typeof raw.title === "string" ? raw.title : "";
  if (title.trim() === "") throw new Error("title: required");
  const uid = typeof raw.uid === "string" && raw.uid !== "" ? raw.uid : slugify(title);
  if (!UID_RE.test(uid)) throw new Error(`uid: ${JSON.stringify(uid)} is not [a-z0-9][a-z0-9_-]{0,63}`);
  const spec: Json = {};
  for (const [k, v] of Object.entries(raw)) if (!METADATA.includes(k)) spec[k] = v;
  return {
    uid,
    title,
    folder: typeof raw.folder === "string" ? raw.folder : "",
    tags: Array.isArray(raw.tags) ? raw.tags.filter((t): t is string => typeof t === "string") : [],
    spec: parseSpec(JSON.stringify(spec)),
  };
}

// Helpers the editor uses to read optional fields.
export const targetsOf = (p: Panel): Target[] => p.targets ?? [];
export const thresholdsOf = (p: Panel): Threshold[] => p.thresholds ?? [];
export const variablesOf = (s: DashboardSpec): Variable[] => s.variables ?? [];
export function timeOf(s: DashboardSpec): { from: string; to: string } {
  const f = s.time?.from ?? "now-1h";
  const t = s.time?.to ?? "now";
  return { from: String(f), to: String(t) };
}
// A time for the stored spec: epoch ms as a number (the schema's absolute form), else the text.
export function storedTime(t: string): string | number {
  return /^\d{10,14}$/.test(t) ? Number(t) : t;
}
