import { describe, expect, it } from "vitest";
// The default dashboard Argus ships (argus/dashboards/), read as text.
import thisHost from "../../../../argus/dashboards/this-host.json?raw";
import { canonicalJson, GRID_COLUMNS, newPanel, parseDocument, parseSpec, slugify, storedTime, toDocument } from "./spec";
import { placeAndPush, overlaps } from "./layout";

describe("parseSpec", () => {
  it("gives an empty spec for an empty body", () => {
    expect(parseSpec("").panels).toEqual([]);
  });
  it("rejects text that is not JSON with a clear message", () => {
    expect(() => parseSpec("{nope")).toThrow(/not JSON/);
    expect(() => parseSpec("[1]")).toThrow(/JSON object/);
  });
  it("clamps hostile grid positions and renumbers repeated ids", () => {
    const s = parseSpec(JSON.stringify({ panels: [{ id: 3, type: "stat", gridPos: { x: 99, y: -5, w: 500, h: 0 } }, { id: 3, type: "nonsense" }] }));
    expect(s.panels[0]?.gridPos).toEqual({ x: 0, y: 0, w: GRID_COLUMNS, h: 1 });
    expect(s.panels.map((p) => p.id)).toEqual([3, 4]);
    expect(s.panels[1]?.type).toBe("timeseries");
  });
  it("keeps fields the app does not edit, so a save round-trips them", () => {
    const body = { description: "d", panels: [{ id: 1, type: "stat", gridPos: { x: 0, y: 0, w: 6, h: 4 }, options: { a: 1 }, legend: { show: false } }] };
    expect(JSON.parse(canonicalJson(parseSpec(JSON.stringify(body))))).toEqual(body);
  });
  it("reads the shipped This host dashboard", () => {
    const doc = parseDocument(thisHost);
    expect(doc.uid).toBe("this-host");
    expect(doc.spec.panels.length).toBeGreaterThan(3);
    expect(doc.spec.variables?.[0]?.name).toBe("host");
  });
});

describe("documents", () => {
  it("export then import gives the same dashboard", () => {
    const spec = parseSpec(JSON.stringify({ refresh: "30s", panels: [newPanel([])] }));
    const doc = { uid: "web", title: "Web", folder: "team/a", tags: ["x"], spec };
    expect(parseDocument(JSON.stringify(toDocument(doc)))).toEqual(doc);
  });
  it("derives a uid from the title", () => {
    expect(parseDocument(JSON.stringify({ title: "My Host!" })).uid).toBe("my-host");
    expect(slugify("!!!")).toBe("dashboard");
  });
  it("rejects a bad uid and a missing title", () => {
    expect(() => parseDocument(JSON.stringify({ title: "x", uid: "../etc" }))).toThrow(/uid/);
    expect(() => parseDocument(JSON.stringify({ panels: [] }))).toThrow(/title: required/);
  });
  it("stores absolute times as epoch ms numbers", () => {
    expect(storedTime("1700000000000")).toBe(1_700_000_000_000);
    expect(storedTime("now-1h")).toBe("now-1h");
  });
});

describe("canonicalJson", () => {
  it("sorts keys at every depth and drops undefined", () => {
    expect(canonicalJson({ b: 1, u: undefined, a: { d: [{ z: 1, y: 2 }], c: 2 } })).toBe('{"a":{"c":2,"d":[{"y":2,"z":1}]},"b":1}');
  });
});

describe("layout", () => {
  it("pushes an overlapped panel below the dropped one", () => {
    const a = { id: 1, gridPos: { x: 0, y: 0, w: 12, h: 8 } };
    const b = { id: 2, gridPos: { x: 12, y: 0, w: 12, h: 8 } };
    const out = placeAndPush([a, b], 1, { x: 8, y: 0, w: 12, h: 8 });
    const pa = out.find((p) => p.id === 1)?.gridPos;
    const pb = out.find((p) => p.id === 2)?.gridPos;
    expect(pb).toEqual({ x: 12, y: 8, w: 12, h: 8 });
    expect(overlaps(pa!, pb!)).toBe(false);
  });
  it("puts new panels below the others with a fresh id", () => {
    const p1 = newPanel([]);
    const p2 = newPanel([p1]);
    expect(p2.gridPos.y).toBe(p1.gridPos.y + p1.gridPos.h);
    expect(p2.id).toBe(p1.id + 1);
  });
});
