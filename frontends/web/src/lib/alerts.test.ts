import { describe, expect, it } from "vitest";
import {
  ago,
  backtestRangeMs,
  parseDurationMs,
  conditionLines,
  conditionText,
  fieldErrors,
  filterAlerts,
  firingSpans,
  formatDurationMs,
  formToDocument,
  matchersFor,
  mergeSpans,
  NEW_RULE,
  ruleToForm,
  sortAlerts,
  type AlertRow,
} from "./alerts";

const row = (over: Partial<AlertRow>): AlertRow => ({
  instanceId: "i",
  rule: "cpu",
  state: "firing",
  severity: "page",
  labels: { host: "a" },
  value: 1,
  sinceMs: 0,
  acked: false,
  silenced: false,
  ...over,
});

describe("alert filters", () => {
  const rows = [
    row({ instanceId: "1", labels: { host: "a", region: "eu" } }),
    row({ instanceId: "2", state: "pending", severity: "warning", labels: { host: "b" }, sinceMs: 5 }),
    row({ instanceId: "3", rule: "disk_full", acked: true, labels: { host: "c" }, sinceMs: 9 }),
    row({ instanceId: "4", silenced: true, labels: { host: "d" } }),
  ];
  const ids = (rs: AlertRow[]) => rs.map((r) => r.instanceId);

  it("filters by state, ack and silence", () => {
    expect(ids(filterAlerts(rows, { state: "pending", severity: "", text: "" }))).toEqual(["2"]);
    expect(ids(filterAlerts(rows, { state: "firing", severity: "", text: "" }))).toEqual(["1", "3", "4"]);
    expect(ids(filterAlerts(rows, { state: "acked", severity: "", text: "" }))).toEqual(["3"]);
    expect(ids(filterAlerts(rows, { state: "unacked", severity: "", text: "" }))).toEqual(["1", "2", "4"]);
    expect(ids(filterAlerts(rows, { state: "silenced", severity: "", text: "" }))).toEqual(["4"]);
  });

  it("filters by severity, exact labels (alertname too) and free text", () => {
    expect(ids(filterAlerts(rows, { state: "", severity: "warning", text: "" }))).toEqual(["2"]);
    expect(ids(filterAlerts(rows, { state: "", severity: "", text: "region=eu" }))).toEqual(["1"]);
    expect(ids(filterAlerts(rows, { state: "", severity: "", text: "alertname=disk_full" }))).toEqual(["3"]);
    expect(ids(filterAlerts(rows, { state: "", severity: "", text: "host=a, region=us" }))).toEqual([]);
    expect(ids(filterAlerts(rows, { state: "", severity: "", text: "DISK" }))).toEqual(["3"]);
  });

  it("sorts firing first, newest first", () => {
    expect(ids(sortAlerts(rows))).toEqual(["3", "1", "4", "2"]);
  });

  it("proposes the narrowest silence for an alert", () => {
    expect(matchersFor(rows[0] as AlertRow)).toEqual(["alertname=cpu", "host=a", "region=eu"]);
  });
});

describe("durations and conditions", () => {
  it("formats durations as the document writes them", () => {
    expect(formatDurationMs(90_000)).toBe("1m30s");
    expect(formatDurationMs(3_600_000)).toBe("1h");
    expect(formatDurationMs(1500)).toBe("1s500ms");
    expect(formatDurationMs(0)).toBe("0s");
    expect(ago(1000, 61_000 + 1000 * 3600)).toBe("1h1m");
    expect(ago(0, 42_000)).toBe("42s");
  });

  it("parses document durations and bounds the backtest range", () => {
    expect(parseDurationMs("1m30s")).toBe(90_000);
    expect(parseDurationMs("250ms")).toBe(250);
    expect(parseDurationMs("5 m")).toBeNull();
    expect(backtestRangeMs(3 * 3_600_000, "10s")).toBe(3 * 3_600_000);
    expect(backtestRangeMs(3 * 3_600_000, "1s")).toBe(4999_000);
    expect(backtestRangeMs(48 * 3_600_000, "1h")).toBe(86_400_000);
    expect(backtestRangeMs(3_600_000, "bogus")).toBe(3_600_000);
  });

  it("writes conditions in the document's text form", () => {
    expect(conditionText({ op: 1, threshold: 90, low: 0, high: 0, overMs: 0 })).toBe("> 90");
    expect(conditionText({ op: 4, threshold: 0.5, low: 0, high: 0, overMs: 0 })).toBe("<= 0.5");
    expect(conditionText({ op: 5, threshold: 0, low: 10, high: 20, overMs: 0 })).toBe("outside 10..20");
    expect(conditionText({ op: 8, threshold: 50, low: 0, high: 0, overMs: 3_600_000 })).toBe("percent_change > 50 over 1h");
  });

  it("reads the lines to draw from a condition", () => {
    expect(conditionLines("> 90")).toEqual({ lines: [90], kind: "above" });
    expect(conditionLines(" <= -1.5e2 ")).toEqual({ lines: [-150], kind: "below" });
    expect(conditionLines("inside 1..2")).toEqual({ lines: [1, 2], kind: "inside" });
    expect(conditionLines("change > 5 over 10m")).toEqual({ lines: [], kind: "change" });
    expect(conditionLines(">> 9")).toBeNull();
  });
});

describe("rule form", () => {
  const proto = {
    name: "hot",
    query: { metric: "cpu", region: "eu", where: ["host=~web.*"], groupBy: ["host"], agg: "max" },
    windowMs: 300_000n,
    condition: { op: 1, threshold: 90, low: 0, high: 0, overMs: 0n },
    forMs: 60_000n,
    intervalMs: 10_000n,
    severity: "page",
    labels: { team: "db" },
    annotations: { summary: "{{ labels.host }} hot", runbook: "http://x" },
    keepFiringForMs: 120_000n,
    noData: 2,
    noDataTimeoutMs: 0n,
  };

  it("round-trips a saved rule through the form to the document", () => {
    const form = ruleToForm(proto);
    expect(form).toMatchObject({ window: "5m", for: "1m", condition: "> 90", where: "host=~web.*", labels: "team=db" });
    const doc = JSON.parse(formToDocument(form, proto.annotations));
    expect(doc).toEqual({
      rules: [
        {
          name: "hot",
          query: { metric: "cpu", region: "eu", where: ["host=~web.*"], group_by: ["host"], agg: "max" },
          window: "5m",
          condition: "> 90",
          for: "1m",
          keep_firing_for: "2m",
          no_data: "alert",
          interval: "10s",
          severity: "page",
          labels: { team: "db" },
          annotations: { summary: "{{ labels.host }} hot", runbook: "http://x" },
        },
      ],
    });
  });

  it("leaves out what the new-rule form does not set", () => {
    const doc = JSON.parse(formToDocument({ ...NEW_RULE, name: "n", metric: "m" }));
    expect(Object.keys(doc.rules[0]).sort()).toEqual(["condition", "interval", "name", "query", "severity", "window"]);
  });

  it("puts the server's errors on their fields", () => {
    const msg = [
      "rule:1: rules[0].condition: expected one of >, <",
      "rule:1: rules[0].window: duration must be longer than 0",
      "rule:1: rules[0].query.where[1]: bad matcher",
      "rule:1: rules[0].query: missing metric",
      "rule:1: rules[0].bogus: unknown field",
      "rule:1: rules[0].no_data_timeout: bad duration",
      "rule:1: rules[0].no_data: expected one of ok, alert",
    ].join("\n");
    expect(fieldErrors(msg)).toEqual({
      condition: "expected one of >, <",
      window: "duration must be longer than 0",
      where: "bad matcher",
      metric: "missing metric",
      "": "rules[0].bogus: unknown field",
      noDataTimeout: "bad duration",
      noData: "expected one of ok, alert",
    });
    expect(fieldErrors("rule \"x\" changed since version 3")).toEqual({ "": 'rule "x" changed since version 3' });
  });
});

describe("backtest spans", () => {
  const t = (id: string, state: number, at: number) => ({ instanceId: id, toState: state, evaluatedAtMs: at, labels: { host: id } });

  it("pairs firing with what ended it, per instance; open spans run to the end", () => {
    const spans = firingSpans([t("a", 2, 10), t("a", 3, 20), t("b", 3, 25), t("a", 4, 40), t("a", 3, 50)], 100);
    expect(spans).toEqual([
      { start: 20, end: 40, labels: { host: "a" } },
      { start: 25, end: 100, labels: { host: "b" } },
      { start: 50, end: 100, labels: { host: "a" } },
    ]);
    expect(mergeSpans(spans)).toEqual([{ start: 20, end: 100 }]);
    expect(mergeSpans([{ start: 1, end: 2 }, { start: 5, end: 6 }])).toEqual([
      { start: 1, end: 2 },
      { start: 5, end: 6 },
    ]);
  });
});

describe("alert routes", () => {
  it("parses the alerts and rules pages", async () => {
    const { parseRoute } = await import("./url");
    expect(parseRoute("#/alerts?state=firing")).toMatchObject({ page: "alerts", uid: "" });
    expect(parseRoute("#/alerts?state=firing").params.get("state")).toBe("firing");
    expect(parseRoute("#/alerts/ab12")).toMatchObject({ page: "alerts", uid: "ab12" });
    expect(parseRoute("#/rules/high%20cpu")).toMatchObject({ page: "rules", uid: "high cpu" });
    expect(parseRoute("#/rules/new")).toMatchObject({ page: "rules", uid: "new" });
    expect(parseRoute("#/rules/a/b").page).toBe("list");
  });
});
