import { describe, expect, it } from "vitest";
import { formatValue, stats, thresholdColor } from "./format";
import { align, mergeSeries, stack } from "./live";
import { autoPeriod, resolveRange, resolveTime } from "./time";
import { dashboardHash, parseRoute, varsFromParams } from "./url";

describe("time", () => {
  const now = 1_700_000_000_000;
  it("resolves relative and absolute ends", () => {
    expect(resolveTime("now-6h", now)).toBe(now - 6 * 3_600_000);
    expect(resolveTime("1699990000000", now)).toBe(1_699_990_000_000);
    expect(resolveTime("yesterday-ish", now)).toBeNull();
  });
  it("rejects an inverted range", () => {
    expect(() => resolveRange({ from: "now", to: "now-1h" }, now)).toThrow(/starts after/);
  });
  it("shows the tier auto picks (at least ~300 points)", () => {
    expect(autoPeriod(3_600_000)).toBe("5s");
    expect(autoPeriod(6 * 3_600_000)).toBe("1m");
    expect(autoPeriod(30 * 86_400_000)).toBe("1h");
    expect(autoPeriod(365 * 86_400_000)).toBe("1d");
  });
});

describe("format", () => {
  it("formats units", () => {
    expect(formatValue(1536, "bytes")).toBe("1.50 KiB");
    expect(formatValue(0.25, "percentunit")).toBe("25.0%");
    expect(formatValue(12_300, "")).toBe("12.3k");
    expect(formatValue(0.004, "s")).toBe("4.00 ms");
    expect(formatValue(null, "s")).toBe("–");
    expect(formatValue(2048, "bytes/s")).toBe("2.00 KiB/s");
    expect(formatValue(95, "")).toBe("95");
    expect(formatValue(1000, "")).toBe("1.00k");
  });
  it("computes legend statistics, skipping gaps", () => {
    expect(stats([1, null, 3, 2])).toEqual({ min: 1, max: 3, avg: 2, last: 2, count: 3 });
    expect(stats([])).toBeNull();
  });
  it("picks the highest threshold reached", () => {
    const t = [{ value: 90, color: "red" }, { value: 80, color: "orange" }];
    expect(thresholdColor(85, t)).toBe("orange");
    expect(thresholdColor(95, t)).toBe("red");
    expect(thresholdColor(10, t, "green")).toBe("green");
  });
});

describe("live merge", () => {
  const s = (ts: number[], vs: number[], host = "a") => ({ labels: { host }, timestamps: ts, values: vs });
  it("replaces a resent bucket, appends new ones and keeps order", () => {
    const out = mergeSeries([s([1000, 2000], [1, 2])], [s([2000, 3000], [20, 3])], 0);
    expect(out).toEqual([s([1000, 2000, 3000], [1, 20, 3])]);
  });
  it("adds a new series and drops points older than the window", () => {
    const out = mergeSeries([s([1000, 2000], [1, 2])], [s([3000], [5], "b")], 1500);
    expect(out).toEqual([s([2000], [2]), s([3000], [5], "b")]);
  });
  it("aligns series on one x axis in seconds with gaps as null", () => {
    expect(align([s([1000, 3000], [1, 3]), s([2000], [2], "b")])).toEqual([[1, 2, 3], [1, null, 3], [null, 2, null]]);
  });
  it("stacks series as running sums", () => {
    expect(stack([[1, 2], [3, null]])).toEqual([[1, 2], [4, null]]);
  });
});

describe("url", () => {
  it("round-trips dashboard state", () => {
    const h = dashboardHash("host", { from: "now-6h", to: "now", vars: { host: ["a", "b"] }, live: true, refresh: "" });
    const r = parseRoute(h);
    expect(r.page).toBe("dashboard");
    expect(r.uid).toBe("host");
    expect(r.params.get("from")).toBe("now-6h");
    expect(r.params.get("live")).toBe("1");
    expect(varsFromParams(r.params)).toEqual({ host: ["a", "b"] });
  });
  it("falls back to the list", () => {
    expect(parseRoute("#/nowhere").page).toBe("list");
    expect(parseRoute("").page).toBe("list");
  });
});
