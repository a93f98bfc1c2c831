import { describe, expect, it } from "vitest";
import { buildQuery, interpolate, interpolateText, parseMatchers, seriesName, targetLegend, usedVariables } from "./query";

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
  it("escapes the literal around a multi-value variable", () => {
    expect(interpolate({ name: "host", op: "=", value: "web.$n" }, { n: ["1", "2"] })).toEqual({ name: "host", op: "=~", value: "web\\.(1|2)" });
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
    expect(() => buildQuery({ metric: " " }, {})).toThrow(/no metric/);
  });
  it("changes with the variable's value", () => {
    const t = { metric: "cpu", where: ["region=$region"], region: "$dc" };
    expect(buildQuery(t, { region: ["eu"] }).matchers[0]?.value).toBe("eu");
    expect(buildQuery(t, { region: ["us"] }).matchers[0]?.value).toBe("us");
    expect(buildQuery(t, { dc: ["eu"] }).region).toBe("eu");
    expect(usedVariables(t).sort()).toEqual(["dc", "region"]);
  });
});

describe("seriesName", () => {
  it("fills a legend template from the labels", () => {
    expect(seriesName({ interface: "eth0" }, "net", "in {{interface}}")).toBe("in eth0");
    expect(seriesName({ b: "2", a: "1" }, "m")).toBe("a=1, b=2");
    expect(seriesName({}, "m")).toBe("m");
  });
});

describe("interpolateText", () => {
  it("fills a title with the chosen values, or All", () => {
    expect(interpolateText("Requests of $host", { host: ["a", "b"] }, "All")).toBe("Requests of a,b");
    expect(interpolateText("Requests of ${host}", {}, "All")).toBe("Requests of All");
  });
});

describe("targetLegend", () => {
  it("keeps a template, and tells the queries of a multi-query panel apart", () => {
    expect(targetLegend("in {{if}}", "A", true, { if: "eth0" })).toBe("in {{if}}");
    expect(targetLegend(undefined, "A", false, { host: "a" })).toBe("");
    expect(targetLegend(undefined, "B", true, {})).toBe("B");
    expect(targetLegend("", "B", true, { region: "eu", host: "a" })).toBe("B: host=a, region=eu");
  });
});
