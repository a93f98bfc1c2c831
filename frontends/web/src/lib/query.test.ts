import { describe, expect, it } from "vitest";
import { buildQuery, interpolate, parseMatchers, usedVariables } from "./query";
import { defaultTarget } from "./spec";

describe("parseMatchers", () => {
  it("parses every operator and quoted commas", () => {
    expect(parseMatchers('host=a, region=~eu-.*, env!=dev, dc!~"x,y"')).toEqual([
      { name: "host", op: "=", value: "a" },
      { name: "region", op: "=~", value: "eu-.*" },
      { name: "env", op: "!=", value: "dev" },
      { name: "dc", op: "!~", value: "x,y" },
    ]);
  });
  it("rejects a matcher without an operator, naming it", () => {
    expect(() => parseMatchers("host")).toThrow(/bad matcher "host"/);
  });
  it("ignores empty parts", () => {
    expect(parseMatchers(" , ")).toEqual([]);
  });
});

describe("interpolate", () => {
  it("substitutes a single value as an equality", () => {
    expect(interpolate({ name: "host", op: "=", value: "$host" }, { host: ["web-1"] })).toEqual({ name: "host", op: "=", value: "web-1" });
  });
  it("turns several values into an escaped alternation", () => {
    expect(interpolate({ name: "host", op: "=", value: "${host}" }, { host: ["a.b", "c"] })).toEqual({ name: "host", op: "=~", value: "(a\\.b|c)" });
  });
  it("matches everything for an unset variable", () => {
    expect(interpolate({ name: "region", op: "=", value: "$region" }, {})).toEqual({ name: "region", op: "=~", value: ".*" });
    expect(interpolate({ name: "region", op: "!=", value: "$region" }, {})).toEqual({ name: "region", op: "!~", value: ".*" });
  });
  it("substitutes inside a regex with escaping", () => {
    expect(interpolate({ name: "host", op: "=~", value: "$host-.*" }, { host: ["a.b"] })).toEqual({ name: "host", op: "=~", value: "a\\.b-.*" });
  });
  it("leaves a plain value alone", () => {
    const m = { name: "host", op: "=" as const, value: "cost$" };
    expect(interpolate(m, { host: ["x"] })).toBe(m);
  });
});

describe("buildQuery", () => {
  it("needs a metric", () => {
    expect(() => buildQuery(defaultTarget(), {})).toThrow(/no metric/);
  });
  it("changes with the variable's value", () => {
    const t = { ...defaultTarget(), metric: "cpu", matchers: "region=$region" };
    expect(buildQuery(t, { region: ["eu"] }).matchers[0]?.value).toBe("eu");
    expect(buildQuery(t, { region: ["us"] }).matchers[0]?.value).toBe("us");
    expect(usedVariables(t)).toEqual(["region"]);
  });
});
