import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Code, dashboards, errorMessage, isCode } from "./api";
import type { Dashboard } from "./gen/argus/dashboards/v1/dashboards_pb";
import { navigate } from "./hooks";
import { canonicalJson, parseDocument, slugify, type DashboardDocument } from "./lib/spec";

interface Props {
  params: URLSearchParams;
  onUnauthenticated: () => void;
}

export function DashboardList({ params, onUnauthenticated }: Props) {
  const [search, setSearch] = useState(params.get("q") ?? "");
  const [items, setItems] = useState<Dashboard[] | null>(null);
  const [error, setError] = useState("");
  const [pendingImport, setPendingImport] = useState<DashboardDocument | null>(null);
  const [showDeleted, setShowDeleted] = useState(false);
  const fileRef = useRef<HTMLInputElement>(null);

  const load = useCallback(async () => {
    try {
      const res = await dashboards.listDashboards({ search, includeDeleted: showDeleted });
      setItems(res.dashboards);
    } catch (e) {
      if (isCode(e, Code.Unauthenticated)) onUnauthenticated();
      setError(errorMessage(e));
    }
  }, [search, showDeleted, onUnauthenticated]);

  useEffect(() => {
    const t = setTimeout(() => void load(), 150);
    history.replaceState(null, "", search ? `#/?q=${encodeURIComponent(search)}` : "#/");
    return () => clearTimeout(t);
  }, [load, search]);

  const folders = useMemo(() => {
    const m = new Map<string, Dashboard[]>();
    for (const d of items ?? []) {
      const list = m.get(d.folder) ?? [];
      list.push(d);
      m.set(d.folder, list);
    }
    return [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [items]);

  const duplicate = async (d: Dashboard) => {
    try {
      const full = (await dashboards.getDashboard({ uid: d.uid })).dashboard;
      if (!full) return;
      const taken = new Set((items ?? []).map((x) => x.uid));
      let uid = slugify(`${d.uid}-copy`);
      for (let n = 2; taken.has(uid); n++) uid = slugify(`${d.uid}-copy-${n}`);
      await dashboards.saveDashboard({
        dashboard: { uid, title: `${full.title} (copy)`, folder: full.folder, tags: full.tags, specJson: full.specJson },
        expectedVersion: 0n,
        message: `copy of ${d.uid}`,
      });
      await load();
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  const remove = async (d: Dashboard) => {
    if (!window.confirm(`Delete "${d.title}"? It stays in history and can be restored.`)) return;
    try {
      await dashboards.deleteDashboard({ uid: d.uid, expectedVersion: d.version });
      await load();
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  // A deleted dashboard's latest entry is the delete; its content is the version before it.
  const restore = async (d: Dashboard) => {
    try {
      await dashboards.restoreDashboard({ uid: d.uid, version: d.version - 1n, expectedVersion: d.version });
      setError("");
      await load();
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  const doImport = async (imp: DashboardDocument, replace: boolean) => {
    try {
      let expected = 0n;
      if (replace) expected = (await dashboards.getDashboard({ uid: imp.uid })).dashboard?.version ?? 0n;
      await dashboards.saveDashboard({
        dashboard: { uid: imp.uid, title: imp.title, folder: imp.folder, tags: imp.tags, specJson: canonicalJson(imp.spec) },
        expectedVersion: expected,
        message: "imported",
      });
      setPendingImport(null);
      navigate(`#/d/${imp.uid}`);
    } catch (e) {
      if (!replace && (isCode(e, Code.Aborted) || isCode(e, Code.AlreadyExists))) {
        setPendingImport(imp);
        setError(`A dashboard with uid "${imp.uid}" exists: replace it, or cancel.`);
      } else setError(errorMessage(e));
    }
  };

  const onFile = async (f: File | undefined) => {
    if (!f) return;
    try {
      await doImport(parseDocument(await f.text()), false);
    } catch (e) {
      setError(`Import failed: ${errorMessage(e)}`);
    }
    if (fileRef.current) fileRef.current.value = "";
  };

  return (
    <main className="page list">
      <div className="toolbar">
        <input className="search" type="search" placeholder="Search dashboards by title, folder or tag" value={search} onChange={(e) => setSearch(e.target.value)} aria-label="Search dashboards" />
        <button className="primary" onClick={() => navigate("#/new")}>
          New dashboard
        </button>
        <button onClick={() => fileRef.current?.click()}>Import JSON</button>
        <label className="check">
          <input type="checkbox" checked={showDeleted} onChange={(e) => setShowDeleted(e.target.checked)} />
          deleted
        </label>
        <input ref={fileRef} type="file" accept="application/json,.json" hidden data-testid="import-file" onChange={(e) => void onFile(e.target.files?.[0])} />
      </div>
      {error && (
        <div className="error" role="alert">
          {error}
          {pendingImport && (
            <>
              {" "}
              <button onClick={() => void doImport(pendingImport, true)}>Replace</button>
              <button onClick={() => (setPendingImport(null), setError(""))}>Cancel</button>
            </>
          )}
        </div>
      )}
      {items === null && !error && <p className="muted">Loading…</p>}
      {items !== null && items.length === 0 && <p className="muted">No dashboards{search ? ` matching "${search}"` : ""}.</p>}
      {folders.map(([folder, list]) => (
        <section key={folder} className="folder">
          <h2>{folder || "General"}</h2>
          <ul className="dash-list">
            {list.map((d) => (
              <li key={d.uid}>
                <a href={`#/d/${encodeURIComponent(d.uid)}`} className="dash-link">
                  {d.title}
                </a>
                {d.tags.map((t) => (
                  <span key={t} className="tag">
                    {t}
                  </span>
                ))}
                {d.provisioned && <span className="tag">provisioned</span>}
                <span className="spacer" />
                <span className="muted small">v{String(d.version)} · {d.updatedBy}</span>
                {d.deleted ? (
                  <>
                    <span className="tag">deleted</span>
                    <button className="small" onClick={() => void restore(d)}>
                      Restore
                    </button>
                  </>
                ) : (
                  <>
                    <button className="small" onClick={() => void duplicate(d)}>
                      Duplicate
                    </button>
                    <button className="small danger" onClick={() => void remove(d)}>
                      Delete
                    </button>
                  </>
                )}
              </li>
            ))}
          </ul>
        </section>
      ))}
    </main>
  );
}

