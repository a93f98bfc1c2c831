import { useEffect, useState } from "react";
import { errorMessage, queries } from "./api";
import { PanelBody, type PanelData } from "./Panel";
import { UNITS } from "./lib/format";
import { PANEL_TYPES, type DrawStyle, type Panel, type PanelType, type Target } from "./lib/spec";
import { autoPeriod } from "./lib/time";
import { splitMatchers } from "./lib/query";
import { addTarget, duplicateTarget, moveTarget, removeTarget, updateTarget, withRefIds } from "./lib/targets";

interface Props {
  panel: Panel;
  range: { start: number; end: number };
  preview: PanelData | undefined;
  metrics: { name: string; kind: string }[];
  variables: string[];
  onChange: (p: Panel) => void;
  onClose: () => void;
}

const AGGS = ["", "avg", "sum", "min", "max", "count", "last", "rate", "increase", "distinct", "p50", "p90", "p95", "p99"];
const PERIODS = ["auto", "5s", "1m", "5m", "1h", "1d"];
const LABELS = ["host", "region"];

export function PanelEditor({ panel, range, preview, metrics, variables, onChange, onClose }: Props) {
  // Every target gets a refId up front: it keys the target's editor state (its text fields).
  const targets = withRefIds(panel.targets ?? []);
  const setTargets = (ts: Target[]) => onChange({ ...panel, targets: ts });
  const auto = autoPeriod(range.end - range.start);
  const labelNames = [...new Set([...LABELS, ...(preview?.series.flatMap((s) => Object.keys(s.labels)) ?? [])])].sort();

  return (
    <div className="modal-back" onClick={onClose}>
      <div className="modal editor" role="dialog" aria-label="Edit panel" onClick={(e) => e.stopPropagation()}>
        <div className="editor-preview">
          <PanelBody panel={panel} data={preview} range={range} onZoom={() => undefined} />
        </div>
        <div className="editor-form">
          <label>
            Title
            <input name="title" value={panel.title ?? ""} onChange={(e) => onChange({ ...panel, title: e.target.value })} />
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
            <div className="row">
              <label>
                Draw
                <select name="style" value={panel.style ?? "line"} onChange={(e) => onChange({ ...panel, style: e.target.value as DrawStyle })}>
                  {(["line", "area", "bars", "points"] as const).map((d) => (
                    <option key={d}>{d}</option>
                  ))}
                </select>
              </label>
              <label className="check">
                <input type="checkbox" name="stack" checked={panel.stack === true} onChange={(e) => onChange({ ...panel, stack: e.target.checked })} />
                stacked
              </label>
            </div>
          )}
          <datalist id="metric-names">
            {metrics.map((m) => (
              <option key={m.name} value={m.name}>
                {m.kind}
              </option>
            ))}
          </datalist>
          <div className="targets" data-testid="targets">
            {targets.map((t, i) => (
              <TargetEditor
                key={t.refId}
                target={t}
                index={i}
                count={targets.length}
                auto={auto}
                labelNames={labelNames}
                variables={variables}
                onChange={(patch) => setTargets(updateTarget(targets, i, patch))}
                onMove={(d) => setTargets(moveTarget(targets, i, d))}
                onDuplicate={() => setTargets(duplicateTarget(targets, i))}
                onRemove={() => setTargets(removeTarget(targets, i))}
              />
            ))}
            <button className="small" data-testid="add-target" onClick={() => setTargets(addTarget(targets))}>
              + Add query
            </button>
          </div>
          <p className="muted small" data-testid="period-info">
            auto = {auto} for this range{preview?.tier ? `; answered by the ${preview.tier} tier` : ""}
          </p>
          <div className="row">
            <label>
              Unit
              <input name="unit" list="units" value={panel.unit ?? ""} onChange={(e) => onChange({ ...panel, unit: e.target.value === "" ? undefined : e.target.value })} />
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

interface TargetProps {
  target: Target;
  index: number;
  count: number;
  auto: string;
  labelNames: string[];
  variables: string[];
  onChange: (patch: Partial<Target>) => void;
  onMove: (delta: number) => void;
  onDuplicate: () => void;
  onRemove: () => void;
}

// One query of the panel: its own metric, matchers, grouping, aggregation, period and legend.
function TargetEditor({ target: t, index, count, auto, labelNames, variables, onChange: setTarget, onMove, onDuplicate, onRemove }: TargetProps) {
  const [matchersText, setMatchersText] = useState((t.where ?? []).join(", "));
  const [groupText, setGroupText] = useState((t.group_by ?? []).join(", "));
  const [label, setLabel] = useState("");
  const [values, setValues] = useState<string[]>([]);
  const [labelError, setLabelError] = useState("");

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

  const setMatchers = (text: string) => {
    setMatchersText(text);
    setTarget({ where: splitMatchers(text) });
  };
  const addMatcher = (text: string) => setMatchers(matchersText.trim() === "" ? text : `${matchersText.trim()}, ${text}`);

  return (
    <fieldset className={`target ${t.hide ? "hidden-target" : ""}`} data-ref={t.refId}>
      <legend className="row">
        <strong className="ref-id">{t.refId}</strong>
        <label className="check">
          <input type="checkbox" name="hide" checked={t.hide === true} onChange={(e) => setTarget({ hide: e.target.checked ? true : undefined })} />
          hide
        </label>
        <span className="spacer" />
        <button className="small ghost" aria-label={`Move ${t.refId ?? ""} up`} disabled={index === 0} onClick={() => onMove(-1)}>
          ↑
        </button>
        <button className="small ghost" aria-label={`Move ${t.refId ?? ""} down`} disabled={index === count - 1} onClick={() => onMove(1)}>
          ↓
        </button>
        <button className="small" onClick={onDuplicate}>
          Duplicate
        </button>
        <button className="small danger" disabled={count === 1} title={count === 1 ? "a panel keeps at least one query" : undefined} onClick={onRemove}>
          Remove
        </button>
      </legend>
          <label>
            Metric
            <input name="metric" list="metric-names" value={t.metric} onChange={(e) => setTarget({ metric: e.target.value })} placeholder="e.g. system.cpu.percent" autoComplete="off" />
          </label>
          <div className="row">
            <label>
              Aggregation
              <select name="agg" value={t.agg ?? ""} onChange={(e) => setTarget({ agg: e.target.value === "" ? undefined : e.target.value })}>
                {AGGS.map((a) => (
                  <option key={a} value={a}>
                    {a === "" ? "default for kind" : a}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Period
              <select name="period" value={t.period ?? "auto"} onChange={(e) => setTarget({ period: e.target.value })}>
                {PERIODS.map((p) => (
                  <option key={p} value={p}>
                    {p === "auto" ? `auto (${auto})` : p}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <label>
            Label matchers
            <input name="matchers" value={matchersText} onChange={(e) => setMatchers(e.target.value)} placeholder={`host=$host, region=~eu-.*${variables.length ? `  (variables: ${variables.map((v) => `$${v}`).join(" ")})` : ""}`} />
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
            Legend (e.g. {"{{host}}"}; empty: the labels)
            <input name="legend" value={t.legend ?? ""} onChange={(e) => setTarget({ legend: e.target.value === "" ? undefined : e.target.value })} />
          </label>
          <label>
            Group by (comma-separated, * for every series)
            <input name="groupBy" value={groupText} onChange={(e) => (setGroupText(e.target.value), setTarget({ group_by: e.target.value.split(",").map((s) => s.trim()).filter(Boolean) }))} />
          </label>
    </fieldset>
  );
}

function ThresholdInput({ panel, onChange }: { panel: Panel; onChange: (p: Panel) => void }) {
  const [text, setText] = useState((panel.thresholds ?? []).map((t) => `${t.value ?? "base"}:${t.color}`).join(", "));
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
          .filter((p) => p.length === 2 && p[0] !== "" && (p[0] === "base" || Number.isFinite(Number(p[0]))))
          .map(([v, c]) => ({ value: v === "base" ? null : Number(v), color: (c as string).trim() || "red" }));
        onChange({ ...panel, thresholds: parsed });
      }}
    />
  );
}
