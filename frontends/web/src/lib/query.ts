// A panel target to the query API's request: matchers parsed, template variables
// substituted. Pure, so the browser and the unit tests share it.
import type { Target } from "./spec";

export type Op = "=" | "!=" | "=~" | "!~";
export interface Matcher {
  name: string;
  op: Op;
  value: string;
}

export interface QueryParams {
  metric: string;
  agg: string;
  period: string;
  region: string;
  matchers: Matcher[];
  groupBy: string[];
}

const MATCHER_RE = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)(.*?)\s*$/s;

export function parseMatcher(text: string): Matcher {
  const m = MATCHER_RE.exec(text);
  if (!m) throw new Error(`bad matcher ${JSON.stringify(text.trim())}: use name=value, !=, =~ or !~`);
  let value = (m[3] as string).trim();
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  return { name: m[1] as string, op: m[2] as Op, value };
}

// The editor's one-line form, "host=a, region=~eu.*": commas inside quotes stay in the value.
export function splitMatchers(text: string): string[] {
  const parts: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

export function parseMatchers(text: string): Matcher[] {
  return splitMatchers(text).map(parseMatcher);
}

export type VariableValues = Record<string, string[]>;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

// $name / ${name} in a matcher value. Several values turn = into =~ (a|b); an unset
// variable (or "All") matches everything, as in Grafana.
export function interpolate(m: Matcher, vars: VariableValues): Matcher {
  if (!new RegExp(REF.source).test(m.value)) return m;
  const regex = m.op === "=~" || m.op === "!~";
  const whole = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(m.value);
  if (whole) {
    const values = vars[whole[1] as string] ?? [];
    if (values.length === 1) return { ...m, value: regex ? escapeRegex(values[0] as string) : (values[0] as string) };
    const alt = values.length === 0 ? ".*" : `(${values.map(escapeRegex).join("|")})`;
    return { ...m, op: m.op === "=" || m.op === "=~" ? "=~" : "!~", value: alt };
  }
  let widened = false;
  const value = m.value.replace(REF, (_, a: string | undefined, b: string | undefined) => {
    const vals = vars[(a ?? b) as string] ?? [];
    if (vals.length === 1) return regex ? escapeRegex(vals[0] as string) : (vals[0] as string);
    widened = true;
    return vals.length === 0 ? ".*" : `(${vals.map(escapeRegex).join("|")})`;
  });
  if (!widened || regex) return { ...m, value };
  // A literal around a widened part becomes a regex: escape the literal pieces.
  const pieces = m.value.split(REF);
  let out = "";
  for (let i = 0; i < pieces.length; i += 3) {
    out += escapeRegex(pieces[i] ?? "");
    const name = pieces[i + 1] ?? pieces[i + 2];
    if (name !== undefined) {
      const vals = vars[name] ?? [];
      out += vals.length === 1 ? escapeRegex(vals[0] as string) : vals.length === 0 ? ".*" : `(${vals.map(escapeRegex).join("|")})`;
    }
  }
  return { ...m, op: m.op === "=" ? "=~" : "!~", value: out };
}

// $name in free text (a metric name, a region, a panel title): the values joined by ",",
// or `empty` when the variable is unset.
export function interpolateText(text: string, vars: VariableValues, empty = ""): string {
  return text.replace(REF, (_, a: string | undefined, b: string | undefined) => {
    const vals = vars[(a ?? b) as string] ?? [];
    return vals.length === 0 ? empty : vals.join(",");
  });
}

export function buildQuery(t: Target, vars: VariableValues): QueryParams {
  const metric = interpolateText(t.metric ?? "", vars).trim();
  if (metric === "") throw new Error("no metric chosen");
  return {
    metric,
    agg: (t.agg ?? "").trim(),
    period: (t.period ?? "").trim() || "auto",
    region: interpolateText(t.region ?? "", vars),
    matchers: (t.where ?? []).map(parseMatcher).map((m) => interpolate(m, vars)),
    groupBy: (t.group_by ?? []).filter((g) => g.trim() !== ""),
  };
}

export function usedVariables(t: Target): string[] {
  const out = new Set<string>();
  for (const w of [t.metric, t.region ?? "", ...(t.where ?? [])]) for (const m of w.matchAll(REF)) out.add((m[1] ?? m[2]) as string);
  return [...out];
}

export function seriesName(labels: Record<string, string>, metric: string, legend = ""): string {
  if (legend !== "") return legend.replace(/\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g, (_, k: string) => labels[k] ?? "");
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return metric;
  return keys.map((k) => `${k}=${labels[k]}`).join(", ");
}

// The legend a series gets: the target's own template, else (in a panel of several queries)
// the refId before the labels, so the series of query A and B stay apart.
export function targetLegend(legend: string | undefined, refId: string, multi: boolean, labels: Record<string, string>): string {
  if (legend !== undefined && legend !== "") return legend;
  if (!multi) return "";
  const rest = seriesName(labels, "");
  return rest === "" ? refId : `${refId}: ${rest}`;
}
