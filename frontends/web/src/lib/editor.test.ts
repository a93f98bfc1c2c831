// The panel editor rendered to HTML (server-side render: no DOM needed): one editor per target.
import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { beforeAll, describe, expect, it, vi } from "vitest";
import type { Panel } from "./spec";

// uPlot reads `document` when imported; no chart is drawn here (no preview data).
vi.mock("../Chart", () => ({ TimeSeriesChart: () => null }));

let PanelEditor: typeof import("../PanelEditor").PanelEditor;

beforeAll(async () => {
  // api.ts builds its transport from the page's origin when imported; nothing is fetched here.
  vi.stubGlobal("window", { location: { origin: "http://127.0.0.1:1" } });
  ({ PanelEditor } = await import("../PanelEditor"));
});

function render(panel: Panel): string {
  return renderToStaticMarkup(
    createElement(PanelEditor, { panel, range: { start: 0, end: 3_600_000 }, preview: undefined, metrics: [], variables: ["host"], onChange: () => undefined, onClose: () => undefined }),
  );
}

const base: Panel = { id: 1, type: "timeseries", gridPos: { x: 0, y: 0, w: 12, h: 8 } };

describe("PanelEditor", () => {
  it("renders one editor per target with its own fields", () => {
    const html = render({ ...base, targets: [{ refId: "A", metric: "cpu", where: ["host=a"] }, { refId: "B", metric: "mem", legend: "mem {{host}}", hide: true }] });
    expect(html.match(/<fieldset/g)?.length).toBe(2);
    expect(html).toMatch(/data-ref="A"[^>]*>/);
    expect(html).toMatch(/class="target hidden-target" data-ref="B"/);
    expect(html).toContain('value="cpu"');
    expect(html).toContain('value="mem"');
    expect(html).toContain('value="host=a"');
    expect(html).toContain('value="mem {{host}}"');
    expect(html.match(/id="metric-names"/g)?.length).toBe(1); // one datalist, not one per target
  });

  it("keeps the last target: its Remove is disabled; refIds are filled in", () => {
    const html = render({ ...base, targets: [{ metric: "cpu" }] });
    expect(html).toContain('data-ref="A"');
    expect(html).toMatch(/<button class="small danger" disabled=""[^>]*>Remove<\/button>/);
  });
});
