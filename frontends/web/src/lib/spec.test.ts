import { describe, expect, it } from "vitest";
import { canonicalJson, GRID_COLUMNS, newPanel, parseExport, parseSpec, slugify } from "./spec";
import { placeAndPush, overlaps } from "./layout";

describe("parseSpec", () => {
  it("fills defaults for an empty body", () => {
    const s = parseSpec("");
    expect(s.panels).toEqual([]);
    expect(s.time).toEqual({ from: "now-1h", to: "now" });
  });
  it("rejects text that is not JSON with a clear message", () => {
    expect(() => parseSpec("{nope")).toThrow(/not JSON/);
  });
  it("clamps hostile grid positions and renames duplicate ids", () => {
    const s = parseSpec(JSON.stringify({ panels: [{ id: "a", gridPos: { x: 99, y: -5, w: 500, h: 0 } }, { id: "a", type: "nonsense" }] }));
    expect(s.panels[0]?.gridPos).toEqual({ x: 0, y: 0, w: GRID_COLUMNS, h: 2 });
    expect(s.panels.map((p) => p.id)).toEqual(["a", "a-2"]);
    expect(s.panels[1]?.type).toBe("timeseries");
  });
  it("drops variables whose names cannot be referenced", () => {
    const s = parseSpec(JSON.stringify({ variables: [{ name: "ok_1", label: "host" }, { name: "bad name" }, { name: "$x" }] }));
    expect(s.variables.map((v) => v.name)).toEqual(["ok_1"]);
  });
  it("keeps unknown fields so a newer app's dashboard round-trips", () => {
    const s = parseSpec(JSON.stringify({ future: { a: 1 }, panels: [{ id: "p", extra: true }] }));
    expect((s as unknown as Record<string, unknown>).future).toEqual({ a: 1 });
    expect((s.panels[0] as unknown as Record<string, unknown>).extra).toBe(true);
  });
  it("round-trips through canonical JSON unchanged", () => {
    const s = parseSpec(JSON.stringify({ panels: [newPanel([])], refresh: "30s" }));
    expect(parseSpec(canonicalJson(s))).toEqual(s);
  });
});

describe("canonicalJson", () => {
  it("sorts keys at every depth", () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: 2 } })).toBe('{"a":{"c":2,"d":[{"y":2,"z":1}]},"b":1}');
  });
});

describe("parseExport", () => {
  it("derives a uid from the title", () => {
    expect(parseExport(JSON.stringify({ title: "My Host!", spec: {} })).uid).toBe("my-host");
    expect(slugify("!!!")).toBe("dashboard");
  });
  it("rejects a bad uid and a missing title", () => {
    expect(() => parseExport(JSON.stringify({ title: "x", uid: "../etc" }))).toThrow(/bad uid/);
    expect(() => parseExport(JSON.stringify({ spec: {} }))).toThrow(/no title/);
  });
});

describe("layout", () => {
  it("pushes an overlapped panel below the dropped one", () => {
    const a = { id: "a", gridPos: { x: 0, y: 0, w: 12, h: 8 } };
    const b = { id: "b", gridPos: { x: 12, y: 0, w: 12, h: 8 } };
    const out = placeAndPush([a, b], "a", { x: 8, y: 0, w: 12, h: 8 });
    const pa = out.find((p) => p.id === "a")?.gridPos;
    const pb = out.find((p) => p.id === "b")?.gridPos;
    expect(pb).toEqual({ x: 12, y: 8, w: 12, h: 8 });
    expect(overlaps(pa!, pb!)).toBe(false);
  });
  it("new panels go below the others", () => {
    const p1 = newPanel([]);
    const p2 = newPanel([p1]);
    expect(p2.gridPos.y).toBe(p1.gridPos.y + p1.gridPos.h);
    expect(p2.id).not.toBe(p1.id);
  });
});
