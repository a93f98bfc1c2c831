// The alert views' pure logic: filters, the rule editor's form <-> document, the server's
// field errors, backtest firing spans and an instance's timeline. Shared by the pages and the
// unit tests.

export type StateName = "inactive" | "pending" | "firing" | "resolved" | "unknown";

// The proto enum's numbers (argus.alerts.v1.AlertState).
export function stateName(n: number): StateName {
  return (["unknown", "inactive", "pending", "firing", "resolved"] as const)[n] ?? "unknown";
}

export interface AlertRow {
  instanceId: string;
  rule: string;
  state: StateName;
  severity: string;
  labels: Record<string, string>;
  value: number;
  sinceMs: number;
  acked: boolean;
  silenced: boolean;
}

// What silences and routes match an alert on (query_side/alerts/notifier.alert_labels).
export function alertLabels(a: Pick<AlertRow, "rule" | "severity" | "labels"> & { ruleLabels?: Record<string, string> }): Record<string, string> {
  const out: Record<string, string> = { ...(a.ruleLabels ?? {}), ...a.labels, alertname: a.rule };
  if (a.severity !== "") out.severity = a.severity;
  return out;
}

export interface AlertFilter {
  state: "" | "firing" | "pending" | "acked" | "unacked" | "silenced";
  severity: string;
  // "host=a, region=eu" (exact) or free text found in the rule name or any label value.
  text: string;
}

export function filterAlerts(rows: readonly AlertRow[], f: AlertFilter): AlertRow[] {
  const pairs: [string, string][] = [];
  const words: string[] = [];
  for (const part of f.text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const eq = part.indexOf("=");
    if (eq > 0) pairs.push([part.slice(0, eq).trim(), part.slice(eq + 1).trim()]);
    else words.push(part.toLowerCase());
  }
  return rows.filter((r) => {
    if (f.state === "firing" || f.state === "pending") {
      if (r.state !== f.state) return false;
    } else if (f.state === "acked" && !r.acked) return false;
    else if (f.state === "unacked" && r.acked) return false;
    else if (f.state === "silenced" && !r.silenced) return false;
    if (f.severity !== "" && r.severity !== f.severity) return false;
    const labels = alertLabels(r);
    for (const [k, v] of pairs) if (labels[k] !== v) return false;
    const hay = [r.rule, ...Object.values(r.labels)].join(" ").toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

// Firing first, then pending; newest breach first within each.
export function sortAlerts(rows: readonly AlertRow[]): AlertRow[] {
  const rank = (s: StateName) => (s === "firing" ? 0 : s === "pending" ? 1 : 2);
  return [...rows].sort((a, b) => rank(a.state) - rank(b.state) || b.sinceMs - a.sinceMs || a.instanceId.localeCompare(b.instanceId));
}

// A silence's matchers for an alert: its rule and its instance labels (the narrowest silence).
export function matchersFor(a: Pick<AlertRow, "rule" | "labels">): string[] {
  return [`alertname=${a.rule}`, ...Object.entries(a.labels).map(([k, v]) => `${k}=${v}`)];
}

// ---- durations, as the alerting document writes them (core/durations.py)

const UNITS: [string, number][] = [
  ["w", 604_800_000],
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1000],
  ["ms", 1],
];

export function formatDurationMs(ms: number): string {
  if (ms <= 0) return "0s";
  let rest = ms;
  let out = "";
  for (const [unit, size] of UNITS) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}

// "1m30s" -> 90000; null when it does not parse (the server then says why).
export function parseDurationMs(text: string): number | null {
  const t = text.trim();
  if (!/^(\d{1,9}(ms|s|m|h|d|w))+$/.test(t)) return null;
  let ms = 0;
  for (const m of t.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) ms += Number(m[1]) * (UNITS.find(([u]) => u === m[2])?.[1] ?? 0);
  return ms;
}

// The server replays at most 24 h and this many evaluations (grpc_service.MAX_BACKTEST_TICKS).
export const MAX_BACKTEST_TICKS = 5000;

// How far back a preview's backtest can go: the asked range, cut to what the server replays.
export function backtestRangeMs(rangeMs: number, interval: string): number {
  const every = parseDurationMs(interval) || 10_000;
  return Math.min(rangeMs, 86_400_000, (MAX_BACKTEST_TICKS - 1) * every);
}

export function ago(ms: number, now: number): string {
  const d = Math.max(0, now - ms);
  if (d < 60_000) return `${Math.floor(d / 1000)}s`;
  const parts = formatDurationMs(d - (d % 60_000)).match(/^\d+[a-z]+(\d+[a-z]+)?/);
  return parts ? parts[0] : formatDurationMs(d);
}

// ---- conditions (the document's text form <-> the proto's fields)

// argus.alerts.v1.ConditionOp numbers.
const OP_TEXT: Record<number, string> = { 1: ">", 2: ">=", 3: "<", 4: "<=", 5: "outside", 6: "inside", 7: "change", 8: "percent_change" };

export interface ConditionFields {
  op: number;
  threshold: number;
  low: number;
  high: number;
  overMs: number;
}

export function conditionText(c: ConditionFields): string {
  const op = OP_TEXT[c.op] ?? ">";
  if (op === "outside" || op === "inside") return `${op} ${c.low}..${c.high}`;
  if (op === "change" || op === "percent_change") return `${op} > ${c.threshold} over ${formatDurationMs(c.overMs)}`;
  return `${op} ${c.threshold}`;
}

// The lines to draw for a condition's text (null: it does not parse; the server says why).
export function conditionLines(text: string): { lines: number[]; kind: "above" | "below" | "outside" | "inside" | "change" } | null {
  const num = String.raw`([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)`;
  let m = new RegExp(String.raw`^\s*(>=|<=|>|<)\s*${num}\s*$`).exec(text);
  if (m) return { lines: [Number(m[2])], kind: (m[1] as string).startsWith(">") ? "above" : "below" };
  m = new RegExp(String.raw`^\s*(outside|inside)\s+${num}\s*\.\.\s*${num}\s*$`).exec(text);
  if (m) return { lines: [Number(m[2]), Number(m[3])], kind: m[1] as "outside" | "inside" };
  m = new RegExp(String.raw`^\s*(change|percent_change)\s*>\s*${num}\s+over\s+\S+\s*$`).exec(text);
  if (m) return { lines: [], kind: "change" };
  return null;
}

// ---- the rule editor's form

export interface RuleForm {
  name: string;
  metric: string;
  region: string;
  where: string; // "host=a, region=~eu.*"
  groupBy: string; // "host, region"
  agg: string;
  window: string;
  condition: string;
  for: string;
  interval: string;
  severity: string;
  labels: string; // "team=db, tier=1"
  summary: string; // annotations.summary
  keepFiringFor: string;
  noData: string; // ok, alert or keep_last
  noDataTimeout: string; // "": twice the window
}

export const NEW_RULE: RuleForm = {
  name: "",
  metric: "",
  region: "",
  where: "",
  groupBy: "",
  agg: "avg",
  window: "5m",
  condition: "> 90",
  for: "0s",
  interval: "10s",
  severity: "warning",
  labels: "",
  summary: "",
  keepFiringFor: "0s",
  noData: "ok",
  noDataTimeout: "",
};

// argus.alerts.v1.NoDataPolicy numbers.
const NO_DATA = ["ok", "ok", "alert", "keep_last"];

export interface RuleFields {
  name: string;
  query?: { metric: string; region: string; where: readonly string[]; groupBy: readonly string[]; agg: string };
  windowMs: bigint | number;
  condition?: Omit<ConditionFields, "overMs"> & { overMs: bigint | number };
  forMs: bigint | number;
  intervalMs: bigint | number;
  severity: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  keepFiringForMs?: bigint | number;
  noData?: number;
  noDataTimeoutMs?: bigint | number;
}

export function ruleToForm(r: RuleFields): RuleForm {
  const q = r.query;
  const c = r.condition;
  return {
    name: r.name,
    metric: q?.metric ?? "",
    region: q?.region ?? "",
    where: (q?.where ?? []).join(", "),
    groupBy: (q?.groupBy ?? []).join(", "),
    agg: q?.agg || "avg",
    window: formatDurationMs(Number(r.windowMs)),
    condition: c ? conditionText({ ...c, overMs: Number(c.overMs) }) : "",
    for: formatDurationMs(Number(r.forMs)),
    interval: formatDurationMs(Number(r.intervalMs)),
    severity: r.severity,
    labels: Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(", "),
    summary: r.annotations.summary ?? "",
    keepFiringFor: formatDurationMs(Number(r.keepFiringForMs ?? 0)),
    noData: NO_DATA[r.noData ?? 0] ?? "ok",
    noDataTimeout: Number(r.noDataTimeoutMs ?? 0) > 0 ? formatDurationMs(Number(r.noDataTimeoutMs)) : "",
  };
}

function list(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

// The rules document SaveRule / BacktestRule take (JSON is YAML): one rule, only the fields set.
export function formToDocument(f: RuleForm, annotations: Record<string, string> = {}): string {
  const query: Record<string, unknown> = { metric: f.metric.trim() };
  if (f.region.trim() !== "") query.region = f.region.trim();
  if (list(f.where).length > 0) query.where = list(f.where);
  if (list(f.groupBy).length > 0) query.group_by = list(f.groupBy);
  if (f.agg.trim() !== "") query.agg = f.agg.trim();
  const rule: Record<string, unknown> = { name: f.name.trim(), query, window: f.window.trim(), condition: f.condition.trim() };
  if (f.for.trim() !== "" && f.for.trim() !== "0s") rule.for = f.for.trim();
  if (f.keepFiringFor.trim() !== "" && f.keepFiringFor.trim() !== "0s") rule.keep_firing_for = f.keepFiringFor.trim();
  if (f.noData.trim() !== "" && f.noData.trim() !== "ok") rule.no_data = f.noData.trim();
  if (f.noDataTimeout.trim() !== "") rule.no_data_timeout = f.noDataTimeout.trim();
  if (f.interval.trim() !== "") rule.interval = f.interval.trim();
  if (f.severity.trim() !== "") rule.severity = f.severity.trim();
  const labels: Record<string, string> = {};
  for (const kv of list(f.labels)) {
    const eq = kv.indexOf("=");
    labels[eq < 0 ? kv : kv.slice(0, eq).trim()] = eq < 0 ? "" : kv.slice(eq + 1).trim();
  }
  if (Object.keys(labels).length > 0) rule.labels = labels;
  const notes = { ...annotations };
  if (f.summary.trim() !== "") notes.summary = f.summary;
  else delete notes.summary;
  if (Object.keys(notes).length > 0) rule.annotations = notes;
  return JSON.stringify({ rules: [rule] }, null, 2);
}

// The form field a document path names: "rules[0].query.where[1]" -> "where".
const PATH_FIELD: [RegExp, keyof RuleForm][] = [
  [/^rules\[0\]\.query\.metric/, "metric"],
  [/^rules\[0\]\.query\.region/, "region"],
  [/^rules\[0\]\.query\.where/, "where"],
  [/^rules\[0\]\.query\.group_by/, "groupBy"],
  [/^rules\[0\]\.query\.agg/, "agg"],
  [/^rules\[0\]\.query/, "metric"],
  [/^rules\[0\]\.name/, "name"],
  [/^rules\[0\]\.window/, "window"],
  [/^rules\[0\]\.condition/, "condition"],
  [/^rules\[0\]\.for/, "for"],
  [/^rules\[0\]\.keep_firing_for/, "keepFiringFor"],
  [/^rules\[0\]\.no_data_timeout/, "noDataTimeout"],
  [/^rules\[0\]\.no_data/, "noData"],
  [/^rules\[0\]\.interval/, "interval"],
  [/^rules\[0\]\.severity/, "severity"],
  [/^rules\[0\]\.labels/, "labels"],
  [/^rules\[0\]\.annotations/, "summary"],
];

// The server's validation errors ("rule:1: rules[0].window: must be ...", one a line) by form
// field; what names no field goes under "" (shown above the form).
export function fieldErrors(message: string): Partial<Record<keyof RuleForm | "", string>> {
  const out: Partial<Record<keyof RuleForm | "", string>> = {};
  for (const line of message.split("\n")) {
    const m = /^[^:]*:\d+: ([^:]+): (.*)$/.exec(line.trim());
    let field: keyof RuleForm | "" = "";
    let text = line.trim();
    if (m) {
      const path = (m[1] as string).trim();
      text = m[2] as string;
      const found = PATH_FIELD.find(([re]) => re.test(path));
      if (found) field = found[1];
      else text = `${path}: ${text}`;
    }
    if (text === "") continue;
    out[field] = out[field] === undefined ? text : `${out[field]}; ${text}`;
  }
  return out;
}

// ---- backtest: where the rule would have fired

export interface Span {
  start: number;
  end: number;
  labels: Record<string, string>;
}

// Transitions (in evaluation order) to the spans each instance spent firing, cut at `until`.
export function firingSpans(
  transitions: readonly { instanceId: string; toState: number; evaluatedAtMs: number; labels: Record<string, string> }[],
  until: number,
): Span[] {
  const open = new Map<string, { start: number; labels: Record<string, string> }>();
  const out: Span[] = [];
  for (const t of transitions) {
    const state = stateName(t.toState);
    const was = open.get(t.instanceId);
    if (state === "firing" && was === undefined) open.set(t.instanceId, { start: t.evaluatedAtMs, labels: t.labels });
    else if (state !== "firing" && was !== undefined) {
      out.push({ start: was.start, end: t.evaluatedAtMs, labels: was.labels });
      open.delete(t.instanceId);
    }
  }
  for (const { start, labels } of open.values()) out.push({ start, end: until, labels });
  return out.sort((a, b) => a.start - b.start);
}

// Overlapping spans merged (what the chart shades: "some instance fired here").
export function mergeSpans(spans: readonly { start: number; end: number }[]): { start: number; end: number }[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  const out: { start: number; end: number }[] = [];
  for (const s of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && s.start <= last.end) last.end = Math.max(last.end, s.end);
    else out.push({ start: s.start, end: s.end });
  }
  return out;
}

// ---- timeline of one instance

export interface TimelineEntry {
  atMs: number;
  kind: "state" | "ack" | "unack" | "notified" | "failed" | "escalated";
  text: string;
}

export function sortTimeline(entries: readonly TimelineEntry[]): TimelineEntry[] {
  return [...entries].sort((a, b) => b.atMs - a.atMs);
}
