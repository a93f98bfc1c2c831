// The URL holds the page state so a link can be shared:
//   #/                     dashboard list (?q=search&folder=...)
//   #/d/<uid>?from=now-6h&to=now&var-host=a&var-host=b&live=1&refresh=30s
//   #/alerts?state=firing&severity=page&q=host=a   active alerts (#/alerts/<instance id>: its timeline)
//   #/rules, #/rules/<name>, #/rules/new           alert rules and the rule editor
// A hash route keeps every page servable by the one index.html, whatever the server.

export interface Route {
  page: "list" | "dashboard" | "new" | "alerts" | "rules";
  uid: string;
  params: URLSearchParams;
}

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#/, "") || "/";
  const [path = "/", query = ""] = h.split("?", 2);
  const params = new URLSearchParams(query);
  const m = /^\/d\/([^/]+)$/.exec(path);
  if (m) return { page: "dashboard", uid: decodeURIComponent(m[1] as string), params };
  if (path === "/new") return { page: "new", uid: "", params };
  const a = /^\/(alerts|rules)(?:\/([^/]+))?$/.exec(path);
  if (a) return { page: a[1] as "alerts" | "rules", uid: a[2] === undefined ? "" : decodeURIComponent(a[2]), params };
  return { page: "list", uid: "", params };
}

// A variable set to "All" (no values) travels as this value, as in Grafana's links; without it an
// absent `var-x` would mean "the dashboard's default", which may not be All.
export const ALL_VALUE = "$__all";

export function dashboardHash(uid: string, state: { from: string; to: string; vars: Record<string, string[]>; live: boolean; refresh: string }): string {
  const p = new URLSearchParams();
  p.set("from", state.from);
  p.set("to", state.to);
  for (const [k, vs] of Object.entries(state.vars)) {
    if (vs.length === 0) p.append(`var-${k}`, ALL_VALUE);
    for (const v of vs) p.append(`var-${k}`, v);
  }
  if (state.live) p.set("live", "1");
  if (state.refresh !== "") p.set("refresh", state.refresh);
  return `#/d/${encodeURIComponent(uid)}?${p.toString()}`;
}

export function varsFromParams(params: URLSearchParams): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of params) {
    if (!k.startsWith("var-")) continue;
    const name = k.slice(4);
    const values = (out[name] ??= []);
    if (v !== ALL_VALUE) values.push(v);
  }
  return out;
}
