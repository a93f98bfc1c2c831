// Active alerts: filters, ack / un-ack, silence (with a preview of what it would mute), each
// alert's timeline, the silences and the notification log. Polls ListAlerts (decision 0053).
import { useCallback, useEffect, useMemo, useState } from "react";
import { alerts, Code, errorMessage, isCode } from "./api";
import type { AlertStateChanged } from "./gen/argus/alerts/v1/alerts_pb";
import type { AlertEvent, ListAlertsResponse, SilenceInfo } from "./gen/argus/alerts/v1/service_pb";
import { navigate } from "./hooks";
import {
  ago,
  alertLabels,
  filterAlerts,
  matchersFor,
  sortAlerts,
  sortTimeline,
  stateName,
  type AlertFilter,
  type AlertRow,
  type TimelineEntry,
} from "./lib/alerts";
import { formatValue } from "./lib/format";

const POLL_MS = 3000;
const SILENCE_FOR = ["30m", "1h", "2h", "4h", "12h", "1d", "7d"];

interface Props {
  instance: string;
  params: URLSearchParams;
  onUnauthenticated: () => void;
}

function toRow(a: AlertStateChanged, res: ListAlertsResponse): AlertRow {
  return {
    instanceId: a.instanceId,
    rule: a.rule,
    state: stateName(a.toState),
    severity: a.severity,
    labels: { ...a.instanceLabels },
    value: a.value,
    sinceMs: Number(a.sinceMs),
    acked: res.acknowledged[a.instanceId] !== undefined,
    silenced: (res.silenced[a.instanceId]?.ids.length ?? 0) > 0,
  };
}

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return parts.length > 0 ? parts.join(", ") : "(one instance)";
}

export function AlertsPage({ instance, params, onUnauthenticated }: Props) {
  const [res, setRes] = useState<ListAlertsResponse | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState("");
  const [silenceFor, setSilenceFor] = useState<AlertRow | null>(null);
  const [tick, setTick] = useState(0);
  const filter: AlertFilter = {
    state: (params.get("state") ?? "") as AlertFilter["state"],
    severity: params.get("severity") ?? "",
    text: params.get("q") ?? "",
  };
  const setFilter = (f: Partial<AlertFilter>) => {
    const next = { ...filter, ...f };
    const p = new URLSearchParams();
    if (next.state !== "") p.set("state", next.state);
    if (next.severity !== "") p.set("severity", next.severity);
    if (next.text !== "") p.set("q", next.text);
    navigate(`#/alerts${instance !== "" ? `/${encodeURIComponent(instance)}` : ""}?${p.toString()}`, true);
  };

  const load = useCallback(async () => {
    try {
      setRes(await alerts.listAlerts({ state: "active" }));
      setError("");
    } catch (e) {
      if (isCode(e, Code.Unauthenticated)) onUnauthenticated();
      setError(errorMessage(e));
    }
  }, [onUnauthenticated]);

  useEffect(() => {
    void load();
    const id = setInterval(() => {
      // A hidden tab does not poll: nobody is looking.
      if (document.visibilityState === "visible") void load();
    }, POLL_MS);
    return () => clearInterval(id);
  }, [load, tick]);

  const rows = useMemo(() => (res === null ? [] : sortAlerts(res.alerts.map((a) => toRow(a, res)))), [res]);
  const shown = filterAlerts(rows, filter);
  const severities = [...new Set(rows.map((r) => r.severity))].sort();
  const now = Date.now();

  const ack = async (r: AlertRow) => {
    setBusy(r.instanceId);
    try {
      if (r.acked) await alerts.unacknowledge({ instanceId: r.instanceId });
      else await alerts.acknowledge({ instanceId: r.instanceId, comment: "" });
      await load();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy("");
    }
  };

  const selected = rows.find((r) => r.instanceId === instance);
  return (
    <div className="page alerts-page">
      <div className="toolbar">
        <h1>Alerts</h1>
        <span className="muted" data-testid="alert-count">
          {res === null ? "loading…" : `${shown.length} of ${rows.length} active`}
        </span>
        <span className="spacer" />
        <a href="#/rules">Rules</a>
      </div>
      <div className="toolbar filters">
        <select aria-label="State" value={filter.state} onChange={(e) => setFilter({ state: e.target.value as AlertFilter["state"] })}>
          <option value="">All states</option>
          <option value="firing">Firing</option>
          <option value="pending">Pending</option>
          <option value="unacked">Not acked</option>
          <option value="acked">Acked</option>
          <option value="silenced">Silenced</option>
        </select>
        <select aria-label="Severity" value={filter.severity} onChange={(e) => setFilter({ severity: e.target.value })}>
          <option value="">All severities</option>
          {severities.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <input
          className="search"
          aria-label="Filter alerts"
          placeholder="host=web-1, region=eu or text"
          value={filter.text}
          onChange={(e) => setFilter({ text: e.target.value })}
        />
      </div>
      {error !== "" && <div className="error">{error}</div>}
      <ul className="alert-list">
        {shown.map((r) => (
          <li key={r.instanceId} className={`alert-item ${r.state}${r.instanceId === instance ? " selected" : ""}`} data-rule={r.rule} data-state={r.state} data-acked={r.acked}>
            <a className="alert-main" href={`#/alerts/${encodeURIComponent(r.instanceId)}`}>
              <span className={`badge ${r.state}`}>{r.state}</span>
              <span className="alert-rule">{r.rule}</span>
              <span className="badge severity">{r.severity}</span>
              {r.acked && <span className="badge acked">acked</span>}
              {r.silenced && <span className="badge silenced">silenced</span>}
              <span className="alert-labels muted">{labelText(r.labels)}</span>
              <span className="alert-value">{Number.isNaN(r.value) ? "no data" : formatValue(r.value, "", null)}</span>
              <span className="muted small">for {ago(r.sinceMs, now)}</span>
            </a>
            <span className="alert-actions">
              <button className={r.acked ? "ack-button" : "ack-button primary"} disabled={busy === r.instanceId} onClick={() => void ack(r)}>
                {r.acked ? "Un-ack" : "Ack"}
              </button>
              <button className="silence-button" onClick={() => setSilenceFor(r)}>
                Silence
              </button>
            </span>
          </li>
        ))}
        {res !== null && shown.length === 0 && <li className="muted empty">No active alerts{rows.length > 0 ? " match the filter" : ""}.</li>}
      </ul>
      {silenceFor !== null && (
        <SilenceDialog
          initial={matchersFor(silenceFor)}
          onClose={(created) => {
            setSilenceFor(null);
            if (created) setTick((t) => t + 1);
          }}
        />
      )}
      {instance !== "" && <Timeline instanceId={instance} alert={selected} />}
      <Silences refresh={tick} onChanged={() => setTick((t) => t + 1)} />
      <NotificationLog />
    </div>
  );
}

function SilenceDialog({ initial, onClose }: { initial: string[]; onClose: (created: boolean) => void }) {
  const [matchers, setMatchers] = useState(initial.join("\n"));
  const [duration, setDuration] = useState("2h");
  const [comment, setComment] = useState("");
  const [preview, setPreview] = useState<AlertStateChanged[] | null>(null);
  const [error, setError] = useState("");
  const list = useMemo(() => matchers.split("\n").map((m) => m.trim()).filter((m) => m !== ""), [matchers]);

  useEffect(() => {
    let stale = false;
    const id = setTimeout(() => {
      alerts
        .previewSilence({ matchers: list })
        .then((r) => {
          if (!stale) {
            setPreview(r.alerts);
            setError("");
          }
        })
        .catch((e: unknown) => {
          if (!stale) {
            setPreview(null);
            setError(errorMessage(e));
          }
        });
    }, 250);
    return () => {
      stale = true;
      clearTimeout(id);
    };
  }, [list]);

  const create = async () => {
    try {
      await alerts.createSilence({ matchers: list, duration, comment });
      onClose(true);
    } catch (e) {
      setError(errorMessage(e));
    }
  };
  return (
    <div className="modal-back" role="dialog" aria-label="Silence alerts">
      <div className="modal card">
        <h2>Silence</h2>
        <label>
          Matchers (one a line: label=value, !=, =~, !~)
          <textarea aria-label="Matchers" rows={4} value={matchers} onChange={(e) => setMatchers(e.target.value)} />
        </label>
        <div className="toolbar">
          <label>
            For
            <select aria-label="Silence for" value={duration} onChange={(e) => setDuration(e.target.value)}>
              {SILENCE_FOR.map((d) => (
                <option key={d}>{d}</option>
              ))}
            </select>
          </label>
          <label className="grow">
            Comment (why)
            <input aria-label="Comment" value={comment} onChange={(e) => setComment(e.target.value)} />
          </label>
        </div>
        {error !== "" && <div className="error">{error}</div>}
        <div className="preview" data-testid="silence-preview">
          {preview === null ? (
            <span className="muted">…</span>
          ) : (
            <>
              <strong>Would silence {preview.length} active alert{preview.length === 1 ? "" : "s"} now</strong>
              <ul>
                {preview.slice(0, 20).map((a) => (
                  <li key={a.instanceId}>
                    {a.rule} <span className="muted">{labelText({ ...a.instanceLabels })}</span>
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
        <div className="toolbar">
          <span className="spacer" />
          <button onClick={() => onClose(false)}>Cancel</button>
          <button className="primary" disabled={list.length === 0 || comment.trim() === ""} onClick={() => void create()}>
            Silence for {duration}
          </button>
        </div>
      </div>
    </div>
  );
}

function eventEntry(e: AlertEvent, id: string): TimelineEntry | null {
  const ev = e.event;
  switch (ev.case) {
    case "stateChanged":
      if (ev.value.instanceId !== id) return null;
      return {
        atMs: Number(ev.value.evaluatedAtMs),
        kind: "state",
        text: `${stateName(ev.value.fromState)} → ${stateName(ev.value.toState)} (${ev.value.reason}, value ${Number.isNaN(ev.value.value) ? "no data" : formatValue(ev.value.value, "", null)})`,
      };
    case "acknowledged":
      if (ev.value.instanceId !== id) return null;
      return { atMs: Number(ev.value.timeMs), kind: "ack", text: `acknowledged by ${ev.value.author}${ev.value.comment ? `: ${ev.value.comment}` : ""}` };
    case "unacknowledged":
      if (ev.value.instanceId !== id) return null;
      return { atMs: Number(ev.value.timeMs), kind: "unack", text: `ack taken back by ${ev.value.author}` };
    case "notificationSent":
      if (!ev.value.firing.includes(id) && !ev.value.resolved.includes(id)) return null;
      return { atMs: Number(ev.value.createdMs), kind: "notified", text: `notified ${ev.value.receiver} via ${ev.value.channel} (attempt ${ev.value.attempt})` };
    case "notificationFailed":
      if (!ev.value.firing.includes(id) && !ev.value.resolved.includes(id)) return null;
      return { atMs: Number(ev.value.createdMs), kind: "failed", text: `notifying ${ev.value.receiver} via ${ev.value.channel} failed: ${ev.value.error}` };
    case "escalated":
      if (!ev.value.firing.includes(id)) return null;
      return { atMs: Number(ev.value.createdMs), kind: "escalated", text: `escalated to step ${ev.value.step} (${ev.value.receivers.join(", ")})` };
    default:
      return null;
  }
}

function Timeline({ instanceId, alert }: { instanceId: string; alert: AlertRow | undefined }) {
  const [entries, setEntries] = useState<TimelineEntry[] | null>(null);
  const [error, setError] = useState("");
  const rule = alert?.rule ?? "";
  const since = alert?.sinceMs ?? 0;
  useEffect(() => {
    let stale = false;
    (async () => {
      const out: TimelineEntry[] = [];
      let cursor = "";
      // Pages of the rule's history from a day before this episode began (all of the tenant's
      // when the alert is no longer active), at most 5.
      for (let page = 0; page < 5; page++) {
        const r = await alerts.history({ rule, cursor, limit: 1000, sinceMs: BigInt(Math.max(0, since - 86_400_000)) });
        for (const e of r.events) {
          const entry = eventEntry(e, instanceId);
          if (entry) out.push(entry);
        }
        if (r.nextCursor === "") break;
        cursor = r.nextCursor;
      }
      if (!stale) setEntries(sortTimeline(out));
    })().catch((e: unknown) => {
      if (!stale) setError(errorMessage(e));
    });
    return () => {
      stale = true;
    };
  }, [instanceId, rule, since, alert?.acked, alert?.state]);
  return (
    <section className="card timeline" data-testid="timeline">
      <div className="toolbar">
        <h2>
          Timeline{alert ? `: ${alert.rule}` : ""} <span className="muted small">{alert ? labelText(alertLabels(alert)) : instanceId.slice(0, 12)}</span>
        </h2>
        <span className="spacer" />
        <a href="#/alerts">Close</a>
      </div>
      {error !== "" && <div className="error">{error}</div>}
      {entries === null ? (
        <span className="muted">loading…</span>
      ) : (
        <ol className="events">
          {entries.map((e, i) => (
            <li key={i} className={e.kind}>
              <span className="muted small">{new Date(e.atMs).toLocaleString()}</span> {e.text}
            </li>
          ))}
          {entries.length === 0 && <li className="muted">No events.</li>}
        </ol>
      )}
    </section>
  );
}

function Silences({ refresh, onChanged }: { refresh: number; onChanged: () => void }) {
  const [list, setList] = useState<SilenceInfo[]>([]);
  const [error, setError] = useState("");
  useEffect(() => {
    alerts
      .listSilences({ all: false })
      .then((r) => setList(r.silences))
      .catch((e: unknown) => setError(errorMessage(e)));
  }, [refresh]);
  if (list.length === 0 && error === "") return null;
  return (
    <section className="card">
      <h2>Silences</h2>
      {error !== "" && <div className="error">{error}</div>}
      <ul className="silence-list">
        {list.map((s) => (
          <li key={s.silence?.id}>
            <span className={`badge ${s.state}`}>{s.state}</span>{" "}
            {(s.silence?.matchers ?? []).map((m) => `${m.name}${m.op}${m.value}`).join(", ")}{" "}
            <span className="muted small">
              until {new Date(Number(s.silence?.endsMs ?? 0)).toLocaleString()} · {s.silence?.comment} · {s.silence?.author}
            </span>{" "}
            <button
              className="small"
              onClick={() =>
                void alerts
                  .expireSilence({ id: s.silence?.id ?? "" })
                  .then(onChanged)
                  .catch((e: unknown) => setError(errorMessage(e)))
              }
            >
              Expire
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

function NotificationLog() {
  const [rows, setRows] = useState<TimelineEntry[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let stale = false;
    (async () => {
      const out: TimelineEntry[] = [];
      let cursor = "";
      // History pages run oldest first: the day's first 5 pages at most, newest shown first.
      for (let page = 0; page < 5; page++) {
        const r = await alerts.history({ sinceMs: BigInt(Date.now() - 86_400_000), cursor, limit: 1000 });
        for (const e of r.events) {
          const ev = e.event;
          if (ev.case === "notificationSent")
            out.push({ atMs: Number(ev.value.createdMs), kind: "notified", text: `${e.rules.join(", ")} → ${ev.value.receiver} via ${ev.value.channel}: ${ev.value.firing.length} firing, ${ev.value.resolved.length} resolved` });
          else if (ev.case === "notificationFailed")
            out.push({ atMs: Number(ev.value.createdMs), kind: "failed", text: `${e.rules.join(", ")} → ${ev.value.receiver} via ${ev.value.channel} failed (${ev.value.outcome}): ${ev.value.error}` });
        }
        if (r.nextCursor === "") break;
        cursor = r.nextCursor;
      }
      if (!stale) setRows(sortTimeline(out).slice(0, 50));
    })().catch((e: unknown) => {
      if (!stale) setError(errorMessage(e));
    });
    return () => {
      stale = true;
    };
  }, []);
  return (
    <section className="card">
      <h2>Notifications (last 24 h)</h2>
      {error !== "" && <div className="error">{error}</div>}
      <ol className="events">
        {(rows ?? []).map((e, i) => (
          <li key={i} className={e.kind}>
            <span className="muted small">{new Date(e.atMs).toLocaleString()}</span> {e.text}
          </li>
        ))}
        {rows !== null && rows.length === 0 && <li className="muted">None sent.</li>}
      </ol>
    </section>
  );
}
