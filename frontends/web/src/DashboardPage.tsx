import { useCallback, useEffect, useMemo, useRef, useState, type PointerEvent as RPointerEvent } from "react";
import { Code, dashboards, errorMessage, fromResult, isCode, queries, toRequest } from "./api";
import type { DashboardHistoryEntry } from "./gen/argus/dashboards/v1/dashboards_pb";
import { navigate } from "./hooks";
import { PanelBody, type PanelData } from "./Panel";
import { PanelEditor } from "./PanelEditor";
import { placeAndPush } from "./lib/layout";
import { mergeSeries, type Series } from "./lib/live";
import { buildQuery, interpolateText, targetLegend, type VariableValues } from "./lib/query";
import { canonicalJson, emptySpec, GRID_COLUMNS, newPanel, parseSpec, slugify, storedTime, targetsOf, timeOf, toDocument, UID_RE, variablesOf, type DashboardSpec, type GridPos, type Link, type Panel, type Variable } from "./lib/spec";
import { RELATIVE_CHOICES, rangeLabel, resolveRange } from "./lib/time";
import { dashboardHash, varsFromParams } from "./lib/url";
import { linkProps, type LinkState } from "./lib/links";

interface Meta {
  uid: string;
  title: string;
  folder: string;
  tags: string[];
  version: bigint;
}

interface Props {
  uid: string;
  params: URLSearchParams;
  onUnauthenticated: () => void;
}

const ROW_PX = 36;

interface Notice {
  kind: "ok" | "error" | "conflict";
  text: string;
}
let carried: Notice | null = null;
const REFRESHES = ["", "5s", "10s", "30s", "1m", "5m"];

function refreshMs(r: string): number {
  const m = /^(\d+)([sm])$/.exec(r);
  return m ? Number(m[1]) * (m[2] === "s" ? 1000 : 60_000) : 0;
}

export function DashboardPage({ uid, params, onUnauthenticated }: Props) {
  const [meta, setMeta] = useState<Meta>({ uid: "", title: "New dashboard", folder: "", tags: [], version: 0n });
  const [spec, setSpec] = useState<DashboardSpec | null>(uid === "" ? emptySpec() : null);
  const [savedJson, setSavedJson] = useState(uid === "" ? "" : "?");
  const [loadError, setLoadError] = useState("");
  const [editing, setEditing] = useState(uid === "");
  const [editPanel, setEditPanel] = useState<number | null>(null);
  const [notice, setNotice] = useState<Notice | null>(() => {
    // A first save moves the page to the new uid (a new page instance): it carries the notice.
    const n = carried;
    carried = null;
    return n;
  });
  const [history, setHistoryList] = useState<DashboardHistoryEntry[] | null>(null);
  const [editVars, setEditVars] = useState(false);
  const [from, setFrom] = useState(params.get("from") ?? "");
  const [to, setTo] = useState(params.get("to") ?? "");
  const [vars, setVars] = useState<VariableValues>(() => varsFromParams(params));
  const [live, setLive] = useState(params.get("live") === "1");
  const [refresh, setRefresh] = useState(params.get("refresh") ?? "");
  const [tick, setTick] = useState(0);
  const [data, setData] = useState<Record<number, PanelData>>({});
  const [metrics, setMetrics] = useState<{ name: string; kind: string }[]>([]);
  const [varOptions, setVarOptions] = useState<Record<string, string[]>>({});
  const [now, setNow] = useState(() => Date.now());

  const handleError = useCallback(
    (e: unknown) => {
      if (isCode(e, Code.Unauthenticated)) onUnauthenticated();
      return errorMessage(e);
    },
    [onUnauthenticated],
  );

  const applyLoaded = useCallback((d: { uid: string; title: string; folder: string; tags: string[]; version: bigint; specJson: string }) => {
    const s = parseSpec(d.specJson);
    setMeta({ uid: d.uid, title: d.title, folder: d.folder, tags: [...d.tags], version: d.version });
    setSpec(s);
    setSavedJson(canonicalJson({ t: d.title, f: d.folder, s }));
    return s;
  }, []);

  // Load the dashboard.
  useEffect(() => {
    if (uid === "") return;
    dashboards
      .getDashboard({ uid })
      .then((r) => {
        if (!r.dashboard) throw new Error("empty answer");
        const s = applyLoaded(r.dashboard);
        const t = timeOf(s);
        setFrom((f) => f || t.from);
        setTo((x) => x || t.to);
        const stored = s.refresh ?? "";
        if (params.get("refresh") === null && stored !== "live" && stored !== "off") setRefresh((x) => x || stored);
        setLive((l) => l || (params.get("live") === null && stored === "live"));
      })
      .catch((e: unknown) => setLoadError(handleError(e)));
    // Loaded once per uid (the page is keyed by uid).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [uid]);

  useEffect(() => {
    queries
      .listMetrics({})
      .then((r) => setMetrics(r.metrics.map((m) => ({ name: m.name, kind: m.kind }))))
      .catch(() => undefined);
  }, []);

  const specTime = spec ? timeOf(spec) : { from: "now-1h", to: "now" };
  const timeRange = { from: from || specTime.from, to: to || specTime.to };
  let range: { start: number; end: number };
  let rangeError = "";
  try {
    range = resolveRange(timeRange, now);
  } catch (e) {
    range = { start: now - 3_600_000, end: now };
    rangeError = (e as Error).message;
  }
  const rangeMs = range.end - range.start;
  const relative = timeRange.to === "now";

  // Variable options from label values, and defaults for unset variables.
  const variables = spec ? variablesOf(spec) : [];
  const variablesKey = canonicalJson(variables);
  useEffect(() => {
    for (const v of variables) {
      if (v.type === "custom") {
        setVarOptions((o) => ({ ...o, [v.name]: v.options ?? [] }));
        continue;
      }
      queries
        .listLabelValues({ label: v.labelName ?? v.name, metric: v.metric ?? "" })
        .then((r) => setVarOptions((o) => ({ ...o, [v.name]: filterOptions(r.values, v.regex) })))
        .catch(() => undefined);
    }
    setVars((cur) => {
      const next = { ...cur };
      for (const v of variables) {
        const current = v.current === undefined ? [] : Array.isArray(v.current) ? v.current : [v.current];
        if (next[v.name] === undefined && current.length > 0) next[v.name] = current.filter((c) => c !== "$__all");
      }
      return next;
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [variablesKey]);

  // Keep the URL in step with the state (replace: no history entry per keystroke).
  useEffect(() => {
    if (meta.uid === "") return;
    navigate(dashboardHash(meta.uid, { from: timeRange.from, to: timeRange.to, vars, live, refresh }), true);
  }, [meta.uid, timeRange.from, timeRange.to, vars, live, refresh]);

  // Auto refresh (not in live mode: the stream keeps the page current).
  useEffect(() => {
    const ms = refreshMs(refresh);
    if (ms === 0 || live) return;
    const t = setInterval(() => {
      setNow(Date.now());
      setTick((x) => x + 1);
    }, ms);
    return () => clearInterval(t);
  }, [refresh, live]);

  const queriesKey = canonicalJson((spec?.panels ?? []).map((p) => [p.id, p.targets ?? []]));

  // Fetch mode: one Query per panel target.
  const rangeKey = relative ? `${timeRange.from}|${tick}` : `${range.start}|${range.end}`;
  useEffect(() => {
    if (!spec || live || rangeError) return;
    const ac = new AbortController();
    const r = relative ? resolveRange(timeRange, Date.now()) : range;
    if (relative) setNow(Date.now());
    for (const p of spec.panels) {
      setData((d) => ({ ...d, [p.id]: { series: d[p.id]?.series ?? [], error: "", tier: d[p.id]?.tier ?? "", loading: true } }));
      const targets = targetsOf(p).filter((t) => !t.hide);
      Promise.all(
        targets.map(async (t) => {
          const q = buildQuery(t, vars);
          const res = await queries.query(toRequest(q, r.start, r.end), { signal: ac.signal });
          const series = fromResult(res.series).map((s) => ({ ...s, legend: targetLegend(t.legend, t.refId ?? q.metric, targets.length > 1, s.labels) }));
          return { series, tier: res.tier };
        }),
      )
        .then((parts) => setData((d) => ({ ...d, [p.id]: { series: parts.flatMap((x) => x.series), error: "", tier: parts[0]?.tier ?? "", loading: false } })))
        .catch((e: unknown) => {
          if (ac.signal.aborted) return;
          setData((d) => ({ ...d, [p.id]: { series: [], error: handleError(e), tier: "", loading: false } }));
        });
    }
    return () => ac.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [queriesKey, rangeKey, canonicalJson(vars), live, !!spec]);

  // Live mode: ONE Watch stream for the whole page, one query per panel target.
  useEffect(() => {
    if (!spec || !live) return;
    const ac = new AbortController();
    const slots: { panel: number; legend: string | undefined; refId: string; multi: boolean }[] = [];
    const reqs: ReturnType<typeof toRequest>[] = [];
    const errors: Record<number, string> = {};
    const start = Date.now() - rangeMs;
    for (const p of spec.panels) {
      const targets = targetsOf(p).filter((t) => !t.hide);
      targets.forEach((t) => {
        try {
          const q = buildQuery(t, vars);
          slots.push({ panel: p.id, legend: t.legend, refId: t.refId ?? q.metric, multi: targets.length > 1 });
          reqs.push({ ...toRequest(q, start, 0), endMs: 0n });
        } catch (e) {
          errors[p.id] = (e as Error).message;
        }
      });
    }
    setData((d) => {
      const next = { ...d };
      for (const p of spec.panels) next[p.id] = { series: [], error: errors[p.id] ?? "", tier: "", loading: !errors[p.id] };
      return next;
    });
    const perSlot = new Map<number, Series[]>();
    (async () => {
      try {
        for await (const res of queries.watch({ queries: reqs, minIntervalMs: 500 }, { signal: ac.signal, timeoutMs: 0 })) {
          const t = Date.now();
          const since = t - rangeMs;
          const touched = new Set<number>();
          const slotErrors: Record<number, string> = {};
          for (const u of res.updates) {
            const slot = slots[u.queryIndex];
            if (!slot) continue;
            touched.add(slot.panel);
            if (u.error) {
              slotErrors[slot.panel] = u.error;
              continue;
            }
            const delta = fromResult(u.series);
            perSlot.set(u.queryIndex, mergeSeries(u.snapshot ? [] : (perSlot.get(u.queryIndex) ?? []), delta, since));
          }
          setNow(t);
          setData((d) => {
            const next = { ...d };
            for (const pid of touched) {
              const series = slots.flatMap((s, i) => (s.panel === pid ? (perSlot.get(i) ?? []).map((x) => ({ ...x, legend: targetLegend(s.legend, s.refId, s.multi, x.labels) })) : []));
              next[pid] = { series, error: slotErrors[pid] ?? "", tier: res.updates.find((u) => slots[u.queryIndex]?.panel === pid)?.tier ?? "", loading: false };
            }
            return next;
          });
        }
      } catch (e) {
        if (ac.signal.aborted) return;
        const msg = `live stream: ${handleError(e)}`;
        setData((d) => Object.fromEntries(Object.entries(d).map(([k, v]) => [k, { ...v, error: msg, loading: false }])));
      }
    })();
    return () => ac.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [queriesKey, canonicalJson(vars), live, rangeMs, !!spec]);

  // In live mode the x axis slides every second even between updates.
  useEffect(() => {
    if (!live) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [live]);

  const currentJson = spec ? canonicalJson({ t: meta.title, f: meta.folder, s: spec }) : "";
  const dirty = spec !== null && currentJson !== savedJson;

  const updatePanel = (p: Panel) => setSpec((s) => (s ? { ...s, panels: s.panels.map((x) => (x.id === p.id ? p : x)) } : s));

  const save = async (expected?: bigint) => {
    if (!spec) return;
    const targetUid = meta.uid || slugify(meta.title);
    if (!UID_RE.test(targetUid)) return setNotice({ kind: "error", text: `bad uid ${targetUid}` });
    const body: DashboardSpec = { ...spec, time: { ...spec.time, from: storedTime(timeRange.from), to: storedTime(timeRange.to) } };
    const refreshValue = live ? "live" : refresh;
    if (refreshValue !== "" || body.refresh !== undefined) body.refresh = refreshValue;
    try {
      const r = await dashboards.saveDashboard({
        dashboard: { uid: targetUid, title: meta.title, folder: meta.folder, tags: meta.tags, specJson: canonicalJson(body) },
        expectedVersion: expected ?? meta.version,
      });
      if (!r.dashboard) return;
      applyLoaded(r.dashboard);
      const saved: Notice = { kind: "ok", text: `Saved version ${r.dashboard.version}.` };
      setNotice(saved);
      if (meta.uid === "") {
        carried = saved;
        navigate(`#/d/${targetUid}`, true);
      }
    } catch (e) {
      if (isCode(e, Code.Aborted) || isCode(e, Code.AlreadyExists)) {
        setNotice({ kind: "conflict", text: `Conflict: ${errorMessage(e)}. Someone else saved this dashboard since you opened version ${meta.version}.` });
      } else setNotice({ kind: "error", text: `Save failed: ${handleError(e)}` });
    }
  };

  const overwrite = async () => {
    try {
      const latest = (await dashboards.getDashboard({ uid: meta.uid })).dashboard;
      await save(latest?.version ?? 0n);
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  const reloadTheirs = async () => {
    const latest = (await dashboards.getDashboard({ uid: meta.uid })).dashboard;
    if (latest) applyLoaded(latest);
    setNotice(null);
  };

  const exportJson = () => {
    if (!spec) return;
    const body = toDocument({ uid: meta.uid, title: meta.title, folder: meta.folder, tags: meta.tags, spec });
    const blob = new Blob([JSON.stringify(body, null, 2) + "\n"], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${meta.uid || "dashboard"}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };

  const showHistory = async () => {
    try {
      setHistoryList((await dashboards.dashboardHistory({ uid: meta.uid, limit: 50 })).entries);
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  const restore = async (version: bigint) => {
    try {
      const r = await dashboards.restoreDashboard({ uid: meta.uid, version, expectedVersion: meta.version });
      if (r.dashboard) applyLoaded(r.dashboard);
      setHistoryList(null);
      setNotice({ kind: "ok", text: `Restored version ${version} as version ${r.dashboard?.version}.` });
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  const linkState: LinkState = { from: timeRange.from, to: timeRange.to, vars, names: variables.map((v) => v.name) };
  const zoom = (a: number, b: number) => {
    setFrom(String(a));
    setTo(String(b));
  };

  if (loadError) return <main className="page"><div className="error" role="alert">Cannot open dashboard "{uid}": {loadError}</div><a href="#/">Back to the list</a></main>;
  if (!spec) return <main className="page muted">Loading…</main>;

  const editing_ = spec.panels.find((p) => p.id === editPanel);
  return (
    <main className="page dashboard">
      <div className="toolbar">
        {editing ? (
          <>
            <input className="title-input" aria-label="Dashboard title" value={meta.title} onChange={(e) => setMeta({ ...meta, title: e.target.value })} />
            <input className="folder-input" aria-label="Folder" placeholder="folder" value={meta.folder} onChange={(e) => setMeta({ ...meta, folder: e.target.value })} />
          </>
        ) : (
          <h1 className="dash-title">
            {meta.folder && <span className="muted">{meta.folder} / </span>}
            {meta.title}
          </h1>
        )}
        {(spec.links ?? []).map((l, i) => (
          <LinkOut key={`${i}-${l.title}`} className="dash-linkout" link={l} state={linkState} />
        ))}
        <span className="spacer" />
        <TimePicker from={timeRange.from} to={timeRange.to} onChange={(f, t) => (setFrom(f), setTo(t))} />
        <select aria-label="Auto refresh" value={refresh} onChange={(e) => setRefresh(e.target.value)} disabled={live}>
          {REFRESHES.map((r) => (
            <option key={r} value={r}>
              {r === "" ? "refresh off" : `every ${r}`}
            </option>
          ))}
        </select>
        <button className={live ? "live on" : "live"} onClick={() => setLive(!live)} aria-pressed={live}>
          {live ? "● Live" : "○ Live"}
        </button>
        <button onClick={() => (setNow(Date.now()), setTick(tick + 1))} title="Refresh now">
          ⟳
        </button>
      </div>
      {variables.length > 0 && (
        <div className="toolbar vars">
          {variables.filter((v) => !v.hide).map((v) => (
            <VariablePicker
              key={v.name}
              name={v.name}
              label={v.label || `$${v.name}`}
              multi={v.multi === true}
              includeAll={v.includeAll !== false}
              options={varOptions[v.name] ?? []}
              value={vars[v.name] ?? []}
              onChange={(vals) => setVars({ ...vars, [v.name]: vals })}
            />
          ))}
        </div>
      )}
      <div className="toolbar actions">
        {editing ? (
          <>
            <button onClick={() => setSpec({ ...spec, panels: [...spec.panels, newPanel(spec.panels)] })}>+ Add panel</button>
            <button onClick={() => setEditVars(true)}>Variables</button>
            <button onClick={() => setEditing(false)}>Done editing</button>
          </>
        ) : (
          <button onClick={() => setEditing(true)}>Edit</button>
        )}
        <button className="primary" onClick={() => void save()} disabled={!dirty && meta.uid !== ""}>
          Save{dirty ? " *" : ""}
        </button>
        {meta.uid !== "" && <button onClick={exportJson}>Export JSON</button>}
        {meta.uid !== "" && <button onClick={() => void showHistory()}>History</button>}
        <span className="muted small">{meta.uid ? `v${meta.version}` : "not saved yet"}</span>
        {rangeError && <span className="error small">{rangeError}</span>}
      </div>
      {notice && (
        <div className={notice.kind === "ok" ? "notice" : "error"} role={notice.kind === "ok" ? "status" : "alert"} data-testid={`notice-${notice.kind}`}>
          {notice.text}
          {notice.kind === "conflict" && (
            <>
              {" "}
              <button onClick={() => void reloadTheirs()}>Reload theirs (discard mine)</button>
              <button className="danger" onClick={() => void overwrite()}>
                Overwrite with mine
              </button>
            </>
          )}
          <button className="ghost small" onClick={() => setNotice(null)} aria-label="Dismiss">
            ✕
          </button>
        </div>
      )}
      <Grid
        panels={spec.panels}
        titleOf={(p) => interpolateText(p.title ?? "", vars, "All")}
        editing={editing}
        onLayout={(id, pos) => setSpec({ ...spec, panels: placeAndPush(spec.panels, id, pos) })}
        render={(p) => <PanelBody panel={p} data={data[p.id]} range={live ? { start: now - rangeMs, end: now } : range} onZoom={zoom} />}
        actions={(p) => (
          <>
            {(p.links ?? []).map((l, i) => (
              <LinkOut key={`${i}-${l.title}`} className="panel-link small" link={l} state={linkState} />
            ))}
            {editing && (
            <>
              <button className="small" onClick={() => setEditPanel(p.id)}>
                Edit
              </button>
              <button className="small" onClick={() => setSpec({ ...spec, panels: [...spec.panels, { ...structuredClone(p), id: newPanel(spec.panels).id, gridPos: newPanel(spec.panels).gridPos, title: `${p.title ?? ""} (copy)` }] })}>
                Duplicate
              </button>
              <button className="small danger" onClick={() => setSpec({ ...spec, panels: spec.panels.filter((x) => x.id !== p.id) })}>
                Remove
              </button>
            </>
            )}
          </>
        )}
      />
      {spec.panels.length === 0 && <p className="muted">No panels yet: Edit, then “+ Add panel”.</p>}
      {editing_ && <PanelEditor panel={editing_} range={range} preview={data[editing_.id]} metrics={metrics} variables={variables.map((v) => v.name)} onChange={updatePanel} onClose={() => setEditPanel(null)} />}
      {editVars && <VariablesEditor variables={variables} metrics={metrics.map((m) => m.name)} onChange={(vs) => setSpec({ ...spec, variables: vs })} onClose={() => setEditVars(false)} />}
      {history && (
        <div className="modal-back" onClick={() => setHistoryList(null)}>
          <div className="modal" role="dialog" aria-label="History" onClick={(e) => e.stopPropagation()}>
            <h2>History of {meta.title}</h2>
            <table className="data-table">
              <tbody>
                {history.map((h) => (
                  <tr key={String(h.dashboard?.version)}>
                    <td>v{String(h.dashboard?.version)}</td>
                    <td>{new Date(Number(h.dashboard?.updatedMs ?? 0n)).toLocaleString()}</td>
                    <td>{h.dashboard?.updatedBy}</td>
                    <td>{h.dashboard?.deleted ? "deleted" : h.message}</td>
                    <td>{h.dashboard && h.dashboard.version !== meta.version && <button onClick={() => void restore(h.dashboard?.version ?? 0n)}>Restore</button>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <button onClick={() => setHistoryList(null)}>Close</button>
          </div>
        </div>
      )}
      {!relative && (
        <p className="muted small">
          Zoomed to {rangeLabel(timeRange)} · <button className="ghost small" onClick={() => (setFrom(`now-${Math.max(1, Math.round(rangeMs / 60_000))}m`), setTo("now"))}>back to relative</button>
        </p>
      )}
    </main>
  );
}

function TimePicker({ from, to, onChange }: { from: string; to: string; onChange: (from: string, to: string) => void }) {
  const [open, setOpen] = useState(false);
  const [f, setF] = useState(from);
  const [t, setT] = useState(to);
  useEffect(() => {
    setF(from);
    setT(to);
  }, [from, to]);
  return (
    <span className="timepicker">
      <button onClick={() => setOpen(!open)} aria-label="Time range">
        {rangeLabel({ from, to })}
      </button>
      {open && (
        <div className="popover">
          <div className="choices">
            {RELATIVE_CHOICES.map((c) => (
              <button key={c} className="small" onClick={() => (onChange(`now-${c}`, "now"), setOpen(false))}>
                Last {c}
              </button>
            ))}
          </div>
          <label>
            From <input aria-label="From" value={f} onChange={(e) => setF(e.target.value)} placeholder="now-6h or 2026-01-01T00:00" />
          </label>
          <label>
            To <input aria-label="To" value={t} onChange={(e) => setT(e.target.value)} placeholder="now" />
          </label>
          <button className="primary small" onClick={() => (onChange(f, t), setOpen(false))}>
            Apply
          </button>
        </div>
      )}
    </span>
  );
}

// CSS grid, 24 columns; in edit mode a panel moves by its title bar and resizes by its corner.
// Positions snap to cells while dragging; the drop pushes overlapped panels down.
function Grid({ panels, editing, onLayout, render, actions, titleOf }: { panels: Panel[]; titleOf: (p: Panel) => string; editing: boolean; onLayout: (id: number, pos: GridPos) => void; render: (p: Panel) => React.ReactNode; actions: (p: Panel) => React.ReactNode }) {
  const gridRef = useRef<HTMLDivElement>(null);
  const [drag, setDrag] = useState<{ id: number; pos: GridPos } | null>(null);
  const start = (e: RPointerEvent, p: Panel, mode: "move" | "resize") => {
    if (!editing || !gridRef.current) return;
    if ((e.target as HTMLElement).closest("button")) return;
    e.preventDefault();
    const colPx = gridRef.current.clientWidth / GRID_COLUMNS;
    const x0 = e.clientX;
    const y0 = e.clientY;
    const base = p.gridPos;
    let pos = base;
    const move = (ev: PointerEvent) => {
      const dx = Math.round((ev.clientX - x0) / colPx);
      const dy = Math.round((ev.clientY - y0) / ROW_PX);
      pos = mode === "move" ? { ...base, x: Math.max(0, Math.min(GRID_COLUMNS - base.w, base.x + dx)), y: Math.max(0, base.y + dy) } : { ...base, w: Math.max(2, Math.min(GRID_COLUMNS - base.x, base.w + dx)), h: Math.max(2, base.h + dy) };
      setDrag({ id: p.id, pos });
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      setDrag(null);
      if (pos !== base) onLayout(p.id, pos);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  };
  const rows = useMemo(() => panels.reduce((m, p) => Math.max(m, p.gridPos.y + p.gridPos.h), 0), [panels]);
  return (
    <div className={`grid ${editing ? "editing" : ""}`} ref={gridRef} style={{ gridTemplateRows: `repeat(${rows}, ${ROW_PX}px)` }}>
      {panels.map((p) => {
        const g = drag?.id === p.id ? drag.pos : p.gridPos;
        return (
          <section key={p.id} className={`panel ${drag?.id === p.id ? "dragging" : ""}`} data-panel={p.id} data-type={p.type} style={{ gridColumn: `${g.x + 1} / span ${g.w}`, gridRow: `${g.y + 1} / span ${g.h}` }}>
            <header className="panel-head" onPointerDown={(e) => start(e, p, "move")}>
              <span className="panel-title" title={p.title}>
                {titleOf(p) || "\u00a0"}
              </span>
              <span className="spacer" />
              {actions(p)}
            </header>
            <div className="panel-body">{render(p)}</div>
            {editing && <span className="resize" aria-label="Resize" onPointerDown={(e) => start(e, p, "resize")} />}
          </section>
        );
      })}
    </div>
  );
}

// A spec link with the viewer's time and variables when it asks for them; a URL that is not a
// web link (javascript:, data:, …) is shown as plain text, never as a live link.
function LinkOut({ link, state, className }: { link: Link; state: LinkState; className: string }) {
  const props = linkProps(link, state);
  if (props === null) {
    return (
      <span className={`${className} muted`} title="not a web link">
        {link.title}
      </span>
    );
  }
  return (
    <a className={className} {...props} title={link.tooltip} onPointerDown={(e) => e.stopPropagation()}>
      {link.title}
    </a>
  );
}

function filterOptions(values: string[], regex: string | undefined): string[] {
  if (!regex) return values;
  try {
    const re = new RegExp(`^(?:${regex})$`);
    return values.filter((v) => re.test(v));
  } catch {
    return values;
  }
}

// A single value is a select; several values a dropdown of checkboxes (none checked = All).
function VariablePicker(props: { name: string; label: string; multi: boolean; includeAll: boolean; options: string[]; value: string[]; onChange: (v: string[]) => void }) {
  const { name, label, multi, includeAll, options, value, onChange } = props;
  if (!multi) {
    return (
      <label className="var">
        {label}
        <select aria-label={`variable ${name}`} value={value[0] ?? ""} onChange={(e) => onChange(e.target.value === "" ? [] : [e.target.value])}>
          <option value="">{includeAll ? "All" : "(none)"}</option>
          {options.map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      </label>
    );
  }
  const chosen = new Set(value);
  return (
    <details className="var multi" aria-label={`variable ${name}`}>
      <summary>
        {label}: {value.length === 0 ? "All" : value.join(", ")}
      </summary>
      <div className="popover">
        {options.map((o) => (
          <label key={o} className="check">
            <input type="checkbox" checked={chosen.has(o)} onChange={(e) => onChange(e.target.checked ? [...value, o] : value.filter((x) => x !== o))} />
            {o}
          </label>
        ))}
        {value.length > 0 && (
          <button className="small" onClick={() => onChange([])}>
            All
          </button>
        )}
      </div>
    </details>
  );
}

// Template variables: each lists a label's values (optionally within one metric); panels use
// them as $name in matchers.
function VariablesEditor({ variables, metrics, onChange, onClose }: { variables: Variable[]; metrics: string[]; onChange: (v: Variable[]) => void; onClose: () => void }) {
  const set = (i: number, patch: Partial<Variable>) => onChange(variables.map((v, j) => (j === i ? { ...v, ...patch } : v)));
  const valid = (name: string) => /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name);
  return (
    <div className="modal-back" onClick={onClose}>
      <div className="modal" role="dialog" aria-label="Variables" onClick={(e) => e.stopPropagation()}>
        <h2>Variables</h2>
        <table className="data-table vars-table">
          <thead>
            <tr>
              <th>name ($name)</th>
              <th>label</th>
              <th>within metric</th>
              <th>multi</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {variables.map((v, i) => (
              <tr key={i}>
                <td>
                  <input aria-label="variable name" value={v.name} onChange={(e) => set(i, { name: e.target.value })} className={valid(v.name) ? "" : "invalid"} />
                </td>
                <td>
                  <input aria-label="label name" value={v.labelName ?? ""} onChange={(e) => set(i, { labelName: e.target.value })} placeholder="host" />
                </td>
                <td>
                  <input aria-label="metric" list="metric-names-vars" value={v.metric ?? ""} onChange={(e) => set(i, { metric: e.target.value === "" ? undefined : e.target.value })} />
                </td>
                <td>
                  <input type="checkbox" aria-label="multi" checked={v.multi === true} onChange={(e) => set(i, { multi: e.target.checked })} />
                </td>
                <td>
                  <button className="small danger" onClick={() => onChange(variables.filter((_, j) => j !== i))}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <datalist id="metric-names-vars">
          {metrics.map((m) => (
            <option key={m} value={m} />
          ))}
        </datalist>
        <div className="row end">
          <button onClick={() => onChange([...variables, { name: `var${variables.length + 1}`, labelName: "host", includeAll: true }])}>+ Add variable</button>
          <button className="primary" onClick={onClose}>
            Done
          </button>
        </div>
      </div>
    </div>
  );
}
