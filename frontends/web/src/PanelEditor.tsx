import { useEffect, useState } from "react";
import { errorMessage, queries } from "./api";
import { PanelBody, type PanelData } from "./Panel";
import { UNITS } from "./lib/format";
import { PANEL_TYPES, type DrawStyle, type Panel, type PanelType, type Target } from "./lib/spec";
import { autoPeriod } from "./lib/time";

interface Props {
  panel: Panel;
  range: { start: number; end: number };
  preview: PanelData | undefined;
  metrics: { name: string; kind: string }[];
  variables: string[];
  onChange: (p: Panel) => void;
  onClose: () => void;
}

const AGGS = ["", "avg", "sum", "min", "max", "count", "last", "rate", "increase", "p50", "p90", "p95", "p99", "distinct"];
const PERIODS = ["auto", "5s", "1m", "5m", "1h", "1d"];
const LABELS = ["host", "region"];

export function PanelEditor({ panel, range, preview, metrics, variables, onChange, onClose }: Props) {
  const t = panel.targets[0] as Target;
  const setTarget = (patch: Partial<Target>) => onChange({ ...panel, targets: [{ ...t, ...patch }, ...panel.targets.slice(1)] });
  const [label, setLabel] = useState("");
  const [values, setValues] = useState<string[]>([]);
  const [labelError, setLabelError] = useState("");
  const labelNames = [...new Set([...LABELS, ...(preview?.series.flatMap((s) => Object.keys(s.labels)) ?? [])])].sort();

  useEffect(() => {
    if (label === "") return;
    let live = true;
    queries
      .listLabelValues({ label, metric: t.metric })
      .then((r) => live && (setValues(r.values.slice(0, 200)), setLabelError("")))
      .catch((e: unknown) => live && setLabelError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, [label, t.metric]);

  const addMatcher = (text: string) => setTarget({ matchers: t.matchers.trim() === "" ? text : `${t.matchers.trim()}, ${text}` });
  const auto = autoPeriod(range.end - range.start);

  return (
    <div className="modal-back" onClick={onClose}>
      <div className="modal editor" role="dialog" aria-label="Edit panel" onClick={(e) => e.stopPropagation()}>
        <div className="editor-preview">
          <PanelBody panel={panel} data={preview} range={range} onZoom={() => undefined} />
        </div>
        <div className="editor-form">
          <label>
            Title
            <input name="title" value={panel.title} onChange={(e) => onChange({ ...panel, title: e.target.value })} />
          </label>
          <label>
            Type
            <select name="type" value={panel.type} onChange={(e) => onChange({ ...panel, type: e.target.value as PanelType })}>
              {PANEL_TYPES.map((p) => (
                <option key={p}>{p}</option>
              ))}
            </select>
          </label>
          {panel.type === "timeseries" && (
            <label>
              Draw
              <select name="style" value={panel.style} onChange={(e) => onChange({ ...panel, style: e.target.value as DrawStyle })}>
                <option value="lines">lines</option>
                <option value="area">area</option>
                <option value="stacked">stacked</option>
              </select>
            </label>
          )}
          <label>
            Metric
            <input name="metric" list="metric-names" value={t.metric} onChange={(e) => setTarget({ metric: e.target.value })} placeholder="e.g. system.cpu.percent" autoComplete="off" />
            <datalist id="metric-names">
              {metrics.map((m) => (
                <option key={m.name} value={m.name}>
                  {m.kind}
                </option>
              ))}
            </datalist>
          </label>
          <div className="row">
            <label>
              Aggregation
              <select name="agg" value={t.agg} onChange={(e) => setTarget({ agg: e.target.value })}>
                {AGGS.map((a) => (
                  <option key={a} value={a}>
                    {a === "" ? "default for kind" : a}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Period
              <select name="period" value={t.period} onChange={(e) => setTarget({ period: e.target.value })}>
                {PERIODS.map((p) => (
                  <option key={p} value={p}>
                    {p === "auto" ? `auto (${auto})` : p}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <p className="muted small" data-testid="period-info">
            auto = {auto} for this range{preview?.tier ? `; answered by the ${preview.tier} tier` : ""}
          </p>
          <label>
            Label matchers
            <input name="matchers" value={t.matchers} onChange={(e) => setTarget({ matchers: e.target.value })} placeholder={`host=$host, region=~eu-.*${variables.length ? `  (variables: ${variables.map((v) => `$${v}`).join(" ")})` : ""}`} />
          </label>
          <div className="chips">
            <span className="muted small">labels:</span>
            {labelNames.map((l) => (
              <button key={l} className={`chip ${l === label ? "on" : ""}`} onClick={() => setLabel(l === label ? "" : l)}>
                {l}
              </button>
            ))}
          </div>
          {label !== "" && (
            <div className="chips">
              <span className="muted small">{label} =</span>
              {labelError && <span className="error small">{labelError}</span>}
              {values.map((v) => (
                <button key={v} className="chip" onClick={() => addMatcher(`${label}=${v}`)}>
                  {v}
                </button>
              ))}
              {variables.map((v) => (
                <button key={`$${v}`} className="chip var" onClick={() => addMatcher(`${label}=$${v}`)}>
                  ${v}
                </button>
              ))}
            </div>
          )}
          <label>
            Group by (comma-separated, * for every series)
            <input name="groupBy" value={t.groupBy.join(", ")} onChange={(e) => setTarget({ groupBy: e.target.value.split(",").map((s) => s.trim()).filter(Boolean) })} />
          </label>
          <div className="row">
            <label>
              Unit
              <input name="unit" list="units" value={panel.unit} onChange={(e) => onChange({ ...panel, unit: e.target.value })} />
              <datalist id="units">
                {UNITS.map((u) => (
                  <option key={u} value={u} />
                ))}
              </datalist>
            </label>
            <label>
              Thresholds (value:color, …)
              <ThresholdInput panel={panel} onChange={onChange} />
            </label>
          </div>
          <div className="row end">
            <button className="primary" onClick={onClose}>
              Done
            </button>
          </div>
        </div>
      </div>
    </div>
  );
}

function ThresholdInput({ panel, onChange }: { panel: Panel; onChange: (p: Panel) => void }) {
  const [text, setText] = useState(panel.thresholds.map((t) => `${t.value}:${t.color}`).join(", "));
  return (
    <input
      name="thresholds"
      value={text}
      placeholder="80:orange, 90:red"
      onChange={(e) => {
        setText(e.target.value);
        const parsed = e.target.value
          .split(",")
          .map((s) => s.trim().split(":"))
          .filter((p) => p.length === 2 && p[0] !== "" && Number.isFinite(Number(p[0])))
          .map(([v, c]) => ({ value: Number(v), color: (c as string).trim() || "red" }));
        onChange({ ...panel, thresholds: parsed });
      }}
    />
  );
}
