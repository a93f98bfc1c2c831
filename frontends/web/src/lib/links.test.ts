import { describe, expect, it } from "vitest";
import { linkHref, linkProps, type LinkState } from "./links";
import { parseRoute, varsFromParams } from "./url";

const state: LinkState = {
  from: "now-6h",
  to: "now",
  vars: { host: ["web a", "b&c"], region: [], env: ["prod"] },
  names: ["host", "region"],
};

describe("links", () => {
  it("carries time and variables to another dashboard, round-tripping through the route", () => {
    const href = linkHref({ title: "db", dashboard: "db-hosts", keepTime: true, includeVars: true }, state) as string;
    const r = parseRoute(href);
    expect(r.page).toBe("dashboard");
    expect(r.uid).toBe("db-hosts");
    expect(r.params.get("from")).toBe("now-6h");
    expect(r.params.get("to")).toBe("now");
    // Multi-value kept in order, "All" kept explicit, a non-variable (env) not carried.
    expect(varsFromParams(r.params)).toEqual({ host: ["web a", "b&c"], region: [] });
  });

  it("carries nothing unless asked", () => {
    expect(linkHref({ title: "x", dashboard: "other" }, state)).toBe("#/d/other");
    expect(linkHref({ title: "x", dashboard: "other", keepTime: true }, { ...state, from: "1700000000000", to: "1700003600000" })).toBe("#/d/other?from=1700000000000&to=1700003600000");
  });

  it("adds Grafana-style parameters to an external URL, keeping its query and fragment", () => {
    const href = linkHref({ title: "g", url: "https://grafana.example/d/abc?orgId=1&from=now-1d#panel-2", keepTime: true, includeVars: true }, state) as string;
    const u = new URL(href);
    expect(u.hash).toBe("#panel-2");
    expect(u.searchParams.get("orgId")).toBe("1");
    // The stored from= is replaced by the viewer's range, not duplicated.
    expect(u.searchParams.getAll("from")).toEqual(["now-6h"]);
    expect(u.searchParams.getAll("var-host")).toEqual(["web a", "b&c"]);
    expect(u.searchParams.getAll("var-region")).toEqual(["$__all"]);
    expect(href.startsWith("https://grafana.example/d/abc?orgId=1&")).toBe(true);
  });

  it("keeps an existing query string verbatim and handles a URL without one", () => {
    expect(linkHref({ title: "p", url: "/runbook?q=a+b%20c", keepTime: true }, state)).toBe("/runbook?q=a+b%20c&from=now-6h&to=now");
    expect(linkHref({ title: "p", url: "https://x.example/#top", keepTime: true }, state)).toBe("https://x.example/?from=now-6h&to=now#top");
    expect(linkHref({ title: "p", url: "https://x.example/a" }, state)).toBe("https://x.example/a");
  });

  it("puts parameters inside an in-app hash route", () => {
    const href = linkHref({ title: "h", url: "#/d/other?live=1", includeVars: true }, state) as string;
    expect(href).toBe("#/d/other?live=1&var-host=web+a&var-host=b%26c&var-region=%24__all");
    expect(varsFromParams(parseRoute(href).params).host).toEqual(["web a", "b&c"]);
  });

  it("refuses script and protocol-relative URLs even if one got past the server", () => {
    for (const url of ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "//evil.example/", "/\\evil.example/", "vbscript:x", "http:/\n/x", ""]) {
      expect(linkHref({ title: "bad", url, keepTime: true }, state)).toBeNull();
      expect(linkProps({ title: "bad", url }, state)).toBeNull();
    }
    expect(linkHref({ title: "bad", dashboard: "../x" }, state)).toBeNull();
  });

  it("opens a new tab without an opener", () => {
    expect(linkProps({ title: "t", url: "https://x.example/", targetBlank: true }, state)).toEqual({ href: "https://x.example/", target: "_blank", rel: "noopener noreferrer" });
    expect(linkProps({ title: "t", dashboard: "d" }, state)?.target).toBeUndefined();
  });
});
