// The browser half of bench/bench_web.py: headless Debian chromium driven by playwright-core
// (frontends/web's copy) against the `argus up` the Python half started and seeded.
//
// Config: the JSON in BENCH_WEB_CONFIG (url, key, uid, panels, ranges, reloads, soakMinutes,
// soakIntervalS, chromium, timeoutMs). Prints one JSON line per measurement and waits for a
// line on stdin before going on, so the Python half samples the browser's RSS at that moment.
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";

const cfg = JSON.parse(process.env.BENCH_WEB_CONFIG ?? "{}");
const require = createRequire(join(cfg.webDir, "package.json"));
const { chromium } = require("playwright-core");

const acks = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function report(line) {
  console.log(JSON.stringify(line));
  const { done } = await acks.next();
  if (done) throw new Error("the bench process closed stdin");
}

// Runs in the page on every animation frame: true once every time-series panel has drawn (its
// chart holds points and its canvas has pixels) or shows an error. Records the time (ms since
// navigation start) and what each panel showed in window.__bench.
function allDrawn(expected) {
  const state = (window.__bench ??= { panels: {} });
  const panels = document.querySelectorAll("section.panel[data-type=timeseries]");
  if (panels.length < expected) return false;
  for (const p of panels) {
    const id = p.dataset.panel;
    if (state.panels[id]) continue;
    const err = p.querySelector("[data-testid=panel-error]");
    if (err) {
      state.panels[id] = { error: err.textContent };
      continue;
    }
    const chart = p.querySelector(".chart");
    const points = Number(chart?.dataset.points ?? 0);
    const canvas = chart?.querySelector("canvas");
    if (!(points > 0) || !canvas || canvas.width === 0 || canvas.height === 0) return false;
    // uPlot draws after React commits the chart: wait until the canvas has pixels.
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < px.length && painted < 200; i += 4) if (px[i] > 0) painted++;
    if (painted < 200) return false;
    state.panels[id] = { points };
  }
  state.drawnAt = performance.now();
  return true;
}

async function heap(cdp, collect) {
  if (collect) await cdp.send("HeapProfiler.collectGarbage");
  const { metrics } = await cdp.send("Performance.getMetrics");
  const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
  return { heapUsed: m.JSHeapUsedSize, heapTotal: m.JSHeapTotalSize, nodes: m.Nodes };
}

async function waitDrawn(page) {
  await page.waitForFunction(allDrawn, cfg.panels, { polling: "raf", timeout: cfg.timeoutMs });
  return page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    // The panels' gRPC-web queries: when the last answer was read (ms since navigation start).
    const q = performance.getEntriesByType("resource").filter((e) => e.name.includes("QueryService/Query"));
    return {
      drawMs: window.__bench.drawnAt,
      domContentLoadedMs: nav?.domContentLoadedEventEnd ?? null,
      firstQueryStartMs: q.length ? Math.min(...q.map((e) => e.startTime)) : null,
      lastQueryEndMs: q.length ? Math.max(...q.map((e) => e.responseEnd)) : null,
      queries: q.length,
      panels: window.__bench.panels,
    };
  });
}

function summary(drawn) {
  const ps = Object.values(drawn.panels);
  return {
    drawMs: Math.round(drawn.drawMs),
    domContentLoadedMs: drawn.domContentLoadedMs === null ? null : Math.round(drawn.domContentLoadedMs),
    firstQueryStartMs: drawn.firstQueryStartMs === null ? null : Math.round(drawn.firstQueryStartMs),
    lastQueryEndMs: drawn.lastQueryEndMs === null ? null : Math.round(drawn.lastQueryEndMs),
    queries: drawn.queries,
    errors: ps.filter((p) => p.error).map((p) => p.error),
    drawnPanels: ps.filter((p) => !p.error).length,
    points: ps.reduce((a, p) => a + (p.points ?? 0), 0),
  };
}

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: ["--headless=new", "--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"],
});
let exitCode = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  const cdp = await context.newCDPSession(page);
  await cdp.send("Performance.enable");
  // Sign in once: the key stays in the tab's sessionStorage across reloads.
  await page.goto(`${cfg.url}/`);
  await page.fill("input[name=apikey]", cfg.key);
  await page.click("button[type=submit]");
  await page.waitForSelector("input[aria-label='Search dashboards']");

  for (const range of cfg.ranges) {
    // The first open of each range (a same-document hash change) warms the server and the
    // browser cache; then each reload is a full navigation, timed from its start.
    await page.goto(`${cfg.url}/#/d/${cfg.uid}?from=now-${range}&to=now`);
    await page.evaluate(() => delete window.__bench);
    const warm = summary(await waitDrawn(page));
    await report({ event: "warmup", range, ...warm });
    for (let rep = 0; rep < cfg.reloads; rep++) {
      await page.reload({ waitUntil: "commit" });
      const drawn = summary(await waitDrawn(page));
      await report({ event: "draw", range, rep, ...drawn, ...(await heap(cdp, false)) });
    }
  }

  if (cfg.soakMinutes > 0) {
    await page.goto(`${cfg.url}/#/d/${cfg.uid}?from=now-${cfg.soakRange}&to=now&live=1`);
    await page.reload({ waitUntil: "commit" });
    const drawn = summary(await waitDrawn(page));
    await report({ event: "soak-start", range: cfg.soakRange, ...drawn });
    const began = Date.now();
    const end = began + cfg.soakMinutes * 60_000;
    for (let i = 0; ; i++) {
      // Sampling instants, not a wait for a condition: one sample every soakIntervalS.
      const at = began + i * cfg.soakIntervalS * 1000;
      if (at > end) break;
      await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));
      const points = await page.evaluate(() =>
        [...document.querySelectorAll(".chart")].reduce((a, c) => a + Number(c.dataset.points ?? 0), 0),
      );
      const errors = await page.locator("[data-testid=panel-error]").count();
      await report({ event: "soak", t: Math.round((Date.now() - began) / 1000), points, errors, ...(await heap(cdp, true)) });
    }
  }
  await report({ event: "done", pageErrors });
} catch (e) {
  console.log(JSON.stringify({ event: "failed", error: String(e?.stack ?? e) }));
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
