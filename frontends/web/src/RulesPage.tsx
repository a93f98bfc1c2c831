// Alert rules: the list with each rule's state, and the editor. The editor previews the rule's
// query over the last hours with its threshold, shading where the backtest (decision 0029: the
// live evaluator replayed over the stored samples) says it would have fired. Save sends the
// rule as a one-rule document through the command side; errors land on their fields.
import { useEffect, useMemo, useState } from "react";
import { alerts, Code, errorMessage, fromResult, isCode, queries, toRequest } from "./api";
import { TimeSeriesChart } from "./Chart";
import type { RuleStatus } from "./gen/argus/alerts/v1/service_pb";
import { navigate } from "./hooks";
import {
  backtestRangeMs,
  conditionLines,
  fieldErrors,
  firingSpans,
  formatDurationMs,
  formToDocument,
  mergeSpans,
  NEW_RULE,
  ruleToForm,
  type RuleForm,
  type Span,
} from "./lib/alerts";
import type { Series } from "./lib/live";
import { parseMatcher } from "./lib/query";
import { autoPeriod } from "./lib/time";

const PREVIEW_HOURS = [1, 3, 6, 24];

interface Props {
  name: string;
  onUnauthenticated: () => void;
}

export function RulesPage({ name, onUnauthenticated }: Props) {
  const [rules, setRules] = useState<RuleStatus[] | null>(null);
  const [error, setError] = useState("");
  const [reload, setReload] = useState(0);
  useEffect(() => {
    alerts
      .listRules({})
      .then((r) => {
        setRules(r.rules);
        setError("");
      })
      .catch((e: unknown) => {
        if (isCode(e, Code.Unauthenticated)) onUnauthenticated();
        setError(errorMessage(e));
      });
  }, [reload, onUnauthenticated]);

  if (name !== "") {
    const found = rules?.find((r) => r.rule?.name === name);
    if (name !== "new" && rules === null) return <div className="page muted">loading…</div>;
    if (name !== "new" && found === undefined) return <div className="page error">No rule {name}.</div>;
    return (
      <RuleEditor
        key={`${name}@${found?.version ?? 0}`}
        status={found}
        onSaved={(saved) => {
          setReload((n) => n + 1);
          navigate(`#/rules/${encodeURIComponent(saved)}`);
        }}
      />
    );
  }
  return (
    <div className="page">
      <div className="toolbar">
        <h1>Alert rules</h1>
        <span className="spacer" />
        <a href="#/alerts">Active alerts</a>
        <button className="primary" onClick={() => navigate("#/rules/new")}>
          New rule
        </button>
      </div>
      {error !== "" && <div className="error">{error}</div>}
      <table className="rule-table">
        <thead>
          <tr>
            <th>Rule</th>
            <th>State</th>
            <th>Query</th>
            <th>Severity</th>
          </tr>
        </thead>
        <tbody>
          {(rules ?? []).map((r) => {
            const f = r.rule ? ruleToForm(r.rule) : NEW_RULE;
            const state = r.firing > 0 ? "firing" : r.pending > 0 ? "pending" : "ok";
            return (
              <tr key={f.name} data-rule={f.name}>
                <td>
                  <a href={`#/rules/${encodeURIComponent(f.name)}`}>{f.name}</a>
                </td>
                <td>
                  <span className={`badge ${state}`}>{state}</span>
                  {r.firing + r.pending > 0 && <span className="muted small"> {r.firing} firing, {r.pending} pending</span>}
                </td>
                <td className="muted">
                  {f.agg}({f.metric}
                  {f.where !== "" ? `{${f.where}}` : ""}) over {f.window} {f.condition}
                  {f.groupBy !== "" ? ` by ${f.groupBy}` : ""}
                </td>
                <td>{f.severity}</td>
              </tr>
            );
          })}
          {rules !== null && rules.length === 0 && (
            <tr>
              <td colSpan={4} className="muted">
                No rules yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

const FIELDS: [keyof RuleForm, string, string][] = [
  ["name", "Name", "high_cpu"],
  ["metric", "Metric", "host_cpu_percent"],
  ["agg", "Aggregation", "avg, max, p99, rate…"],
  ["where", "Where", "host=~web.*, region=eu"],
  ["groupBy", "Group by (one alert each)", "host"],
  ["region", "Region", ""],
  ["window", "Window", "5m"],
  ["condition", "Condition", "> 90, outside 10..20"],
  ["for", "For (pending)", "0s"],
  ["keepFiringFor", "Keep firing for", "0s"],
  ["noData", "No data (ok, alert, keep_last)", "ok"],
  ["noDataTimeout", "No-data timeout", "2 × window"],
  ["interval", "Evaluate every", "10s"],
  ["severity", "Severity", "warning"],
  ["labels", "Labels", "team=db"],
  ["summary", "Summary", "{{ labels.host }} is at {{ value }}"],
];

function RuleEditor({ status, onSaved }: { status: RuleStatus | undefined; onSaved: (name: string) => void }) {
  const initial = useMemo(() => (status?.rule ? ruleToForm(status.rule) : NEW_RULE), [status]);
  const annotations = useMemo(() => ({ ...(status?.rule?.annotations ?? {}) }), [status]);
  const [form, setForm] = useState<RuleForm>(initial);
  const [errors, setErrors] = useState<ReturnType<typeof fieldErrors>>({});
  const [saving, setSaving] = useState(false);
  const [notice, setNotice] = useState("");
  const [hours, setHours] = useState(3);
  const isNew = status === undefined;
  const set = (k: keyof RuleForm, v: string) => {
    setForm((f) => ({ ...f, [k]: v }));
    // An edited field's error is stale: the next save says again if it still holds.
    setErrors((e) => ({ ...e, [k]: undefined }));
  };

  const save = async () => {
    setSaving(true);
    setNotice("");
    try {
      const r = await alerts.saveRule({ document: formToDocument(form, annotations), expectedVersion: status?.version ?? 0n });
      setErrors({});
      setNotice(`Saved (${r.action}, version ${r.version}).`);
      onSaved(r.rule?.name ?? form.name);
    } catch (e) {
      setErrors(fieldErrors(errorMessage(e)));
    } finally {
      setSaving(false);
    }
  };

  return (
    <div className="page rule-editor">
      <div className="toolbar">
        <a href="#/rules">← Rules</a>
        <h1>{isNew ? "New rule" : `Rule ${initial.name}`}</h1>
        <span className="spacer" />
        {!isNew && <span className="muted small">version {String(status.version)}</span>}
        <button className="primary" disabled={saving} onClick={() => void save()}>
          Save
        </button>
      </div>
      {errors[""] !== undefined && <div className="error" data-testid="form-error">{errors[""]}</div>}
      {notice !== "" && <div className="notice">{notice}</div>}
      <div className="rule-form">
        {FIELDS.map(([k, label, placeholder]) => (
          <label key={k} className={errors[k] !== undefined ? "invalid" : ""}>
            {label}
            <input
              name={k}
              aria-label={label}
              value={form[k]}
              placeholder={placeholder}
              disabled={k === "name" && !isNew}
              onChange={(e) => set(k, e.target.value)}
            />
            {errors[k] !== undefined && (
              <span className="field-error" data-field={k}>
                {errors[k]}
              </span>
            )}
          </label>
        ))}
      </div>
      <div className="toolbar">
        <h2>Preview</h2>
        {PREVIEW_HOURS.map((h) => (
          <button key={h} className={h === hours ? "small primary" : "small"} onClick={() => setHours(h)}>
            {h} h
          </button>
        ))}
      </div>
      <Preview form={form} annotations={annotations} hours={hours} />
    </div>
  );
}

function Preview({ form, annotations, hours }: { form: RuleForm; annotations: Record<string, string>; hours: number }) {
  const [series, setSeries] = useState<Series[]>([]);
  const [spans, setSpans] = useState<Span[] | null>(null);
  const [error, setError] = useState("");
  const [backtestError, setBacktestError] = useState("");
  const [range, setRange] = useState({ start: Date.now() - hours * 3_600_000, end: Date.now() });
  const backMs = backtestRangeMs(hours * 3_600_000, form.interval);
  const document_ = formToDocument({ ...form, name: form.name.trim() || "preview" }, annotations);
  const queryKey = JSON.stringify([form.metric, form.agg, form.where, form.groupBy, form.region, hours]);

  // The rule's query, drawn as the query API answers it (debounced while typing).
  useEffect(() => {
    if (form.metric.trim() === "") return;
    const ac = new AbortController();
    const id = setTimeout(() => {
      const end = Date.now();
      const start = end - hours * 3_600_000;
      setRange({ start, end });
      let matchers;
      try {
        matchers = form.where.split(",").map((w) => w.trim()).filter((w) => w !== "").map(parseMatcher);
      } catch (e) {
        setError(errorMessage(e));
        return;
      }
      const groupBy = form.groupBy.split(",").map((g) => g.trim()).filter((g) => g !== "");
      const q = { metric: form.metric.trim(), agg: form.agg.trim() || "avg", period: autoPeriod(end - start), region: form.region.trim(), matchers, groupBy };
      queries
        .query(toRequest(q, start, end), { signal: ac.signal })
        .then((r) => {
          setSeries(fromResult(r.series));
          setError("");
        })
        .catch((e: unknown) => {
          if (!ac.signal.aborted) setError(errorMessage(e));
        });
    }, 400);
    return () => {
      clearTimeout(id);
      ac.abort();
    };
    // queryKey names what the query depends on.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [queryKey]);

  // Where it would have fired: the backtest of the rule as edited (not yet saved).
  useEffect(() => {
    if (form.metric.trim() === "") return;
    const ac = new AbortController();
    const id = setTimeout(() => {
      const until = Date.now();
      alerts
        .backtestRule({ document: document_, sinceMs: BigInt(until - backMs), untilMs: BigInt(until) }, { signal: ac.signal, timeoutMs: 60_000 })
        .then((r) => {
          setSpans(
            firingSpans(
              r.transitions.map((t) => ({ instanceId: t.instanceId, toState: t.toState, evaluatedAtMs: Number(t.evaluatedAtMs), labels: { ...t.instanceLabels } })),
              Number(r.untilMs),
            ),
          );
          setBacktestError("");
        })
        .catch((e: unknown) => {
          if (!ac.signal.aborted) {
            setSpans(null);
            setBacktestError(errorMessage(e));
          }
        });
    }, 800);
    return () => {
      clearTimeout(id);
      ac.abort();
    };
  }, [document_, backMs, form.metric]);

  const lines = conditionLines(form.condition);
  const thresholds = (lines?.lines ?? []).map((v) => ({ value: v, color: "#f2495c" }));
  const bands = useMemo(() => mergeSpans(spans ?? []), [spans]);
  if (form.metric.trim() === "") return <div className="muted">Pick a metric to preview the rule.</div>;
  return (
    <section className="card rule-preview" data-testid="rule-preview" data-fired={spans?.length ?? -1}>
      {error !== "" && <div className="error">{error}</div>}
      <div className="rule-preview-chart">
        <TimeSeriesChart
          series={series}
          metric={form.metric}
          unit=""
          decimals={null}
          thresholds={thresholds}
          style="line"
          stack={false}
          range={range}
          min={null}
          max={null}
          bands={bands}
        />
      </div>
      <div className="muted small" data-testid="backtest-summary">
        {backtestError !== ""
          ? `Backtest: ${backtestError}`
          : spans === null
            ? "Backtesting…"
            : spans.length === 0
              ? `Would not have fired in the last ${formatDurationMs(backMs)}.`
              : `Would have fired ${spans.length} time${spans.length === 1 ? "" : "s"} in the last ${formatDurationMs(backMs)} (shaded): ` +
                spans
                  .slice(0, 5)
                  .map((s) => `${new Date(s.start).toLocaleTimeString()}–${new Date(s.end).toLocaleTimeString()} ${Object.values(s.labels).join(",")}`)
                  .join("; ")}
      </div>
    </section>
  );
}
