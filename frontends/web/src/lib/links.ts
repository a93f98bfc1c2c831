// Dashboard and panel links (spec `links`): where a link goes, with the viewer's time range
// (`keepTime`) and template-variable values (`includeVars`) carried Grafana-style as
// `from=`, `to=` and `var-<name>=` query parameters.
import type { Link } from "./spec";
import { ALL_VALUE } from "./url";

export interface LinkState {
  from: string; // as the app's URL holds it: "now-6h" or epoch ms digits
  to: string;
  vars: Record<string, string[]>; // current values; an empty list is "All"
  names: readonly string[]; // the dashboard's variables (only these are carried)
}

export interface LinkProps {
  href: string;
  target?: "_blank";
  rel?: string;
}

// Web links only, as the server's schema: a `javascript:`/`data:` URL in a shared dashboard
// would run in a viewer's browser. `/\` is refused too: browsers read it as `//` (another host).
const SAFE_URL = /^(https?:\/\/|\/(?![/\\])|\?|#)/i;

function carried(link: Link, s: LinkState): [string, string][] {
  const out: [string, string][] = [];
  if (link.keepTime) out.push(["from", s.from], ["to", s.to]);
  if (link.includeVars) {
    for (const name of s.names) {
      const values = s.vars[name];
      if (values === undefined) continue; // unset: the target's own default applies
      if (values.length === 0) out.push([`var-${name}`, ALL_VALUE]);
      for (const v of values) out.push([`var-${name}`, v]);
    }
  }
  return out;
}

function keyOf(piece: string): string {
  const raw = piece.split("=", 1)[0] as string;
  try {
    return decodeURIComponent(raw.replace(/\+/g, " "));
  } catch {
    return raw;
  }
}

// Append parameters to a query string kept verbatim, dropping the pieces they replace (a
// stale `from=` or `var-host=` in the stored URL must not win over the viewer's state).
function withParams(query: string, params: [string, string][]): string {
  if (params.length === 0) return query;
  const replaced = new Set(params.map(([k]) => k));
  const kept = query.split("&").filter((p) => p !== "" && !replaced.has(keyOf(p)));
  const added = new URLSearchParams(params).toString();
  return [...kept, added].join("&");
}

// Split `base?query#fragment` at the first `?` before the fragment.
function addToUrl(url: string, params: [string, string][]): string {
  const hashAt = url.indexOf("#");
  const beforeHash = hashAt < 0 ? url : url.slice(0, hashAt);
  const fragment = hashAt < 0 ? "" : url.slice(hashAt);
  const qAt = beforeHash.indexOf("?");
  const base = qAt < 0 ? beforeHash : beforeHash.slice(0, qAt);
  const query = withParams(qAt < 0 ? "" : beforeHash.slice(qAt + 1), params);
  return `${base}${query === "" ? "" : `?${query}`}${fragment}`;
}

// Browsers drop tabs and newlines inside a URL, so `java\nscript:` would still be a scheme.
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

// The href of a link, or null when it has no safe destination (the caller shows plain text).
// An in-app hash route (`#/d/other?...`) takes the parameters inside the fragment, where the
// app reads its state; any other URL in its query string, before the fragment.
export function linkHref(link: Link, s: LinkState): string | null {
  const params = carried(link, s);
  if (link.dashboard !== undefined && link.url === undefined) {
    if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(link.dashboard)) return null;
    return `#${addToUrl(`/d/${link.dashboard}`, params)}`;
  }
  const url = (link.url ?? "").trim();
  if (!SAFE_URL.test(url) || hasControl(url)) return null;
  if (url.startsWith("#")) return `#${addToUrl(url.slice(1), params)}`;
  return addToUrl(url, params);
}

export function linkProps(link: Link, s: LinkState): LinkProps | null {
  const href = linkHref(link, s);
  if (href === null) return null;
  // A new tab must not get a handle on this page (window.opener) nor our URL (it may hold vars).
  return link.targetBlank ? { href, target: "_blank", rel: "noopener noreferrer" } : { href, rel: "noreferrer" };
}
