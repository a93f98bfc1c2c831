// A panel target to the query API's request: matcher text parsed, template variables
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
  matchers: Matcher[];
  groupBy: string[];
}

const MATCHER_RE = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/;

// "host=a, region=~eu.*": commas inside a value are allowed when quoted ("a,b").
export function parseMatchers(text: string): Matcher[] {
  const out: Matcher[] = [];
  for (const part of splitTopLevel(text)) {
    if (part.trim() === "") continue;
    const m = MATCHER_RE.exec(part);
    if (!m) throw new Error(`bad matcher ${JSON.stringify(part.trim())}: use name=value, !=, =~ or !~`);
    let value = m[3] as string;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.push({ name: m[1] as string, op: m[2] as Op, value });
  }
  return out;
}

function splitTopLevel(text: string): string[] {
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
  return parts;
}

export type VariableValues = Record<string, string[]>;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// $name / ${name} in a matcher value. A multi-value variable turns = into =~ (a|b).
// An unknown or empty variable matches everything (".*"), as Grafana's "All".
export function interpolate(m: Matcher, vars: VariableValues): Matcher {
  const ref = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;
  if (!ref.test(m.value)) return m;
  const whole = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(m.value);
  if (whole) {
    const values = vars[whole[1] as string] ?? [];
    if (values.length === 1 && (m.op === "=" || m.op === "!=")) return { ...m, value: values[0] as string };
    const alt = values.length === 0 ? ".*" : values.length === 1 && m.op.endsWith("~") ? (values[0] as string) : `(${values.map(escapeRegex).join("|")})`;
    const op: Op = m.op === "=" || m.op === "=~" ? "=~" : "!~";
    return { ...m, op, value: alt };
  }
  const value = m.value.replace(ref, (_, a: string | undefined, b: string | undefined) => {
    const vals = vars[(a ?? b) as string] ?? [];
    return vals.length === 1 ? (m.op.endsWith("~") ? escapeRegex(vals[0] as string) : (vals[0] as string)) : vals.length === 0 ? ".*" : `(${vals.map(escapeRegex).join("|")})`;
  });
  const multi = value !== m.value && /[(*]/.test(value) && !m.op.endsWith("~");
  return { ...m, value, op: multi ? (m.op === "=" ? "=~" : "!~") : m.op };
}

export function buildQuery(t: Target, vars: VariableValues): QueryParams {
  if (t.metric.trim() === "") throw new Error("no metric chosen");
  return {
    metric: t.metric.trim(),
    agg: t.agg.trim(),
    period: t.period.trim() || "auto",
    matchers: parseMatchers(t.matchers).map((m) => interpolate(m, vars)),
    groupBy: t.groupBy.filter((g) => g.trim() !== ""),
  };
}

// Variables a target uses, so a variable change refreshes only the panels that use it.
export function usedVariables(t: Target): string[] {
  const out = new Set<string>();
  for (const m of t.matchers.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)) out.add(m[1] as string);
  return [...out];
}

export function seriesName(labels: Record<string, string>, metric: string): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return metric;
  return keys.map((k) => `${k}=${labels[k]}`).join(", ");
}
