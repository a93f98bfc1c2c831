// Browser tests of the dashboards app in real headless Chromium (Debian `chromium`, driven by
// playwright-core) against a real `argus up` that tests/e2e/test_web_app.py starts and feeds.
// Environment: ARGUS_URL, ARGUS_KEY, ARTIFACTS (screenshots), CHROMIUM (binary),
// E2E_DASHBOARD_FILE (a dashboard to import). Prints one JSON line per step (and push requests,
// answered on stdin); exits 1 on the first failure.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const URL_ = process.env.ARGUS_URL;
const KEY = process.env.ARGUS_KEY;
const ART = process.env.ARTIFACTS ?? "tmp/artifacts";
mkdirSync(ART, { recursive: true });

const results = [];
let shot = 0;

async function snap(page, name) {
  shot += 1;
  await page.screenshot({ path: join(ART, `${String(shot).padStart(2, "0")}-${name}.png`) });
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    const extra = (await fn()) ?? {};
    const r = { step: name, ok: true, ms: Date.now() - t0, ...extra };
    results.push(r);
    console.log(JSON.stringify(r));
  } catch (e) {
    await snap(page, "failed").catch(() => undefined);
    console.log(JSON.stringify({ step: name, ok: false, ms: Date.now() - t0, error: String(e?.stack ?? e) }));
    throw e;
  }
}

// A push goes through the test process (it holds a gRPC channel to ingest): ask on stdout,
// wait for its answer on stdin, sent once ingest acknowledged the batch.
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function push(sample) {
  console.log(JSON.stringify({ push: sample }));
  const { value, done } = await stdinLines.next();
  if (done) throw new Error("the test process closed stdin");
  const answer = JSON.parse(value);
  if (!answer.acked) throw new Error(`push failed: ${value}`);
  return Date.now();
}

async function login(page) {
  await page.goto(`${URL_}/`);
  await page.fill("input[name=apikey]", KEY);
  await page.click("button[type=submit]");
  await page.waitForSelector("input[aria-label='Search dashboards']");
}

// A new tab has no key (it lives in the tab's sessionStorage): sign in, landing on `url`.
async function openSignedIn(p, url) {
  await p.goto(url);
  await p.fill("input[name=apikey]", KEY);
  await p.click("button[type=submit]");
}

// Text of a stat panel (by panel title as written, before variables are filled in), once it matches.
async function waitStat(page, title, re, timeout = 10_000) {
  const loc = page.locator(`section.panel:has(.panel-title[title="${title}"]) [data-testid=stat-value]`);
  await loc.filter({ hasText: re }).waitFor({ timeout });
  return loc.textContent();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
const page = await context.newPage();
page.on("pageerror", (e) => console.log(JSON.stringify({ pageerror: String(e) })));
let exitCode = 0;

try {
  await step("login rejects a bad key, accepts the right one", async () => {
    await page.goto(`${URL_}/`);
    await page.fill("input[name=apikey]", "argus_wrong_key_000000000000");
    await page.click("button[type=submit]");
    await page.getByRole("alert").filter({ hasText: "not valid" }).waitFor();
    await snap(page, "login-bad-key");
    await login(page);
    await page.getByText("This host").first().waitFor();
    await snap(page, "dashboard-list");
  });

  await step("default dashboard draws this host's points", async () => {
    await page.click("a.dash-link:text-is('This host')");
    const chart = page.locator("section.panel:has(.panel-title:text-is('CPU by mode')) .chart");
    await chart.waitFor();
    // Points drawn: the chart holds data and its canvas has non-background pixels.
    await page.waitForFunction(() => Number(document.querySelector("section.panel[data-type=timeseries] .chart")?.dataset.points ?? 0) > 0, null, { timeout: 15_000 });
    const drawn = await page.evaluate(() => {
      const c = document.querySelector("section.panel[data-type=timeseries] canvas");
      const ctx = c.getContext("2d");
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    if (drawn < 500) throw new Error(`only ${drawn} pixels drawn`);
    const cpu = await waitStat(page, "CPU busy", /\d/);
    // The alerts panel reads AlertService over gRPC-web (no rules here: none active).
    await page.locator("section.panel:has(.panel-title:text-is('Alerts'))").getByText("No active alerts").waitFor();
    await snap(page, "default-dashboard");
    return { pixels: drawn, cpu };
  });

  await step("create a dashboard, add a panel, save, reload: unchanged", async () => {
    await page.goto(`${URL_}/#/new`);
    await page.fill("input[aria-label='Dashboard title']", "E2E created");
    await page.fill("input[aria-label='Folder']", "e2e");
    await page.click("button:text-is('Variables')");
    await page.click("text=+ Add variable");
    await page.fill("[aria-label=Variables] input[aria-label='variable name']", "host");
    await page.fill("[aria-label=Variables] input[aria-label='metric']", "e2e_requests");
    await page.click("[aria-label=Variables] >> text=Done");
    await page.click("text=+ Add panel");
    await page.click("section.panel >> text=Edit");
    await page.fill(".editor input[name=title]", "Requests");
    await page.fill(".editor input[name=metric]", "e2e_requests");
    await page.fill(".editor input[name=matchers]", "host=~$host");
    await page.fill(".editor input[name=groupBy]", "host");
    await page.selectOption(".editor select[name=agg]", "avg");
    await page.locator(".editor .chart").waitFor({ timeout: 10_000 });
    const periodInfo = await page.textContent("[data-testid=period-info]");
    if (!/auto = 5s/.test(periodInfo)) throw new Error(`auto period not shown: ${periodInfo}`);
    await snap(page, "panel-editor");
    await page.click(".editor >> text=Done");
    await page.click("button:has-text('Save')");
    await page.locator("[data-testid=notice-ok]").waitFor();
    await page.waitForURL(/#\/d\/e2e-created/);
    const before = await page.evaluate(() => document.querySelector(".grid").innerText);
    await page.reload();
    await page.locator("section.panel .chart").waitFor();
    await page.locator(".dash-title:has-text('E2E created')").waitFor();
    const after = await page.evaluate(() => document.querySelector(".grid").innerText);
    if (!after.includes("Requests") || !after.includes("host=")) throw new Error(`after reload: ${after}`);
    if (before.split("\n")[0] !== after.split("\n")[0]) throw new Error("panel title changed");
    await page.locator("select[aria-label='variable host'] option[value=web-b]").waitFor({ state: "attached" });
    await page.click("text=Edit");
    await page.click("section.panel >> text=Edit");
    if ((await page.inputValue(".editor input[name=matchers]")) !== "host=~$host") throw new Error("matchers lost");
    const metric = await page.inputValue(".editor input[name=metric]");
    const agg = await page.inputValue(".editor select[name=agg]");
    if (metric !== "e2e_requests" || agg !== "avg") throw new Error(`reloaded panel: ${metric} ${agg}`);
    await page.click(".editor >> text=Done");
    if (await page.locator("button:has-text('Save *')").count()) throw new Error("reloaded dashboard is dirty");
    await snap(page, "created-reloaded");
  });

  await step("import a dashboard file (variables, live stat, bad query)", async () => {
    await page.goto(`${URL_}/#/`);
    await page.setInputFiles("[data-testid=import-file]", process.env.E2E_DASHBOARD_FILE);
    await page.waitForURL(/#\/d\/e2e-vars/);
    await page.locator(".dash-title:has-text('E2E variables')").waitFor();
    await snap(page, "imported");
  });

  await step("bad query shows its error on the panel", async () => {
    const err = page.locator("section.panel:has(.panel-title:text-is('Bad query')) [data-testid=panel-error]");
    await err.waitFor({ timeout: 10_000 });
    const text = await err.textContent();
    if (!/distinct/.test(text)) throw new Error(`panel error: ${text}`);
    // The other panels still draw.
    await waitStat(page, "Requests of $host", /\d/);
    await snap(page, "bad-query");
    return { error: text };
  });

  await step("template variable changes the query", async () => {
    const sel = page.locator("select[aria-label='variable host']");
    await sel.selectOption("web-a");
    const a = await waitStat(page, "Requests of $host", /^10(\.0)?$/);
    if (!/var-host=web-a/.test(page.url())) throw new Error(`URL lacks the variable: ${page.url()}`);
    await sel.selectOption("web-b");
    const b = await waitStat(page, "Requests of $host", /^1\.00k$/);
    await page.locator(".panel-title:text-is('Requests of web-b')").waitFor();
    await snap(page, "variable-web-b");
    // The URL alone restores the state (shareable link).
    const url = page.url();
    const p2 = await context.newPage();
    await openSignedIn(p2, url);
    await waitStat(p2, "Requests of $host", /^1\.00k$/);
    await p2.close();
    return { a, b };
  });

  await step("live panel shows a just-pushed sample within 2 s", async () => {
    await page.click("button.live");
    await page.waitForURL(/live=1/);
    await waitStat(page, "Live value", /\d/);
    const value = 4000 + Math.floor(Math.random() * 999);
    const shown = waitStat(page, "Live value", new RegExp(`^${(value / 1000).toFixed(2)}k$`), 15_000).then(() => Date.now());
    const acked = await push({ metric: "e2e_live", host: "web-a", ts: Date.now(), value });
    const at = await shown;
    const ms = Math.max(0, at - acked);
    if (ms > 2000) throw new Error(`the pushed sample showed ${ms} ms after its ack`);
    await snap(page, "live");
    await page.click("button.live");
    return { ackToPixelMs: ms };
  });

  await step("export then import gives the same dashboard", async () => {
    const [dl1] = await Promise.all([page.waitForEvent("download"), page.click("text=Export JSON")]);
    const first = readFileSync(await dl1.path(), "utf8");
    writeFileSync(join(ART, "exported.json"), first);
    await page.goto(`${URL_}/#/`);
    await page.setInputFiles("[data-testid=import-file]", join(ART, "exported.json"));
    await page.getByRole("alert").filter({ hasText: "exists" }).waitFor();
    await snap(page, "import-exists");
    await page.click("button:text-is('Replace')");
    await page.waitForURL(/#\/d\/e2e-vars/);
    await page.locator(".dash-title:has-text('E2E variables')").waitFor();
    const [dl2] = await Promise.all([page.waitForEvent("download"), page.click("text=Export JSON")]);
    const second = readFileSync(await dl2.path(), "utf8");
    if (first !== second) throw new Error(`export differs after import:\n${first}\n---\n${second}`);
    return { bytes: first.length };
  });

  await step("two tabs: the second save gets a conflict, not a lost update", async () => {
    const a = page;
    const b = await context.newPage();
    const url = `${URL_}/#/d/e2e-created`;
    await a.goto(url);
    await openSignedIn(b, url);
    for (const p of [a, b]) await p.locator(".dash-title:has-text('E2E created')").waitFor();
    await a.click("text=Edit");
    await a.fill("input[aria-label='Dashboard title']", "E2E created (tab A)");
    await a.click("button:has-text('Save')");
    await a.locator("[data-testid=notice-ok]").waitFor();
    await b.click("text=Edit");
    await b.fill("input[aria-label='Dashboard title']", "E2E created (tab B)");
    await b.click("button:has-text('Save')");
    const conflict = b.locator("[data-testid=notice-conflict]");
    await conflict.waitFor();
    const text = await conflict.textContent();
    await snap(b, "conflict");
    // Tab A's save survived.
    await b.click("text=Reload theirs");
    await conflict.waitFor({ state: "detached" });
    const title = await b.inputValue("input[aria-label='Dashboard title']");
    if (title !== "E2E created (tab A)") throw new Error(`after reload, title is ${title}`);
    await b.close();
    return { conflict: text.slice(0, 120) };
  });

  await step("history lists the versions and restores one", async () => {
    await page.click("text=History");
    await page.locator("[role=dialog][aria-label=History] tr").nth(1).waitFor();
    await snap(page, "history");
    await page.locator("[role=dialog][aria-label=History] tr:has-text('v1') button:text-is('Restore')").click();
    await page.locator("[data-testid=notice-ok]").filter({ hasText: "Restored version 1" }).waitFor();
    await page.click("text=Done editing");
    await page.waitForFunction(() => document.querySelector(".dash-title")?.textContent === "e2e / E2E created");
  });

  await step("drag to zoom, and resize a panel by its corner", async () => {
    const over = page.locator("section.panel .u-over").first();
    const box = await over.boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.waitForURL(/from=\d{13}&to=\d{13}/);
    await page.getByText("back to relative").waitFor();
    await page.click("text=Edit");
    const panel = page.locator("section.panel").first();
    const before = (await panel.boundingBox()).width;
    const corner = (await page.locator("section.panel .resize").first().boundingBox());
    await page.mouse.move(corner.x + 5, corner.y + 5);
    await page.mouse.down();
    await page.mouse.move(corner.x + 5 + 300, corner.y + 5, { steps: 5 });
    await page.mouse.up();
    const after = (await panel.boundingBox()).width;
    if (after < before + 200) throw new Error(`panel width ${before} -> ${after}`);
    await page.locator("button:has-text('Save *')").waitFor();
    await snap(page, "zoomed-resized");
    return { width: [Math.round(before), Math.round(after)], url: page.url().split("?")[1] };
  });

  await step("delete from the list, then restore it from the deleted ones", async () => {
    await page.goto(`${URL_}/#/`);
    const row = page.locator("ul.dash-list li:has(a.dash-link:text-is('E2E created'))");
    page.once("dialog", (d) => d.accept());
    await row.getByRole("button", { name: "Delete" }).click();
    await row.waitFor({ state: "detached" });
    await page.getByLabel("deleted").check();
    await row.getByRole("button", { name: "Restore" }).click();
    await row.getByRole("button", { name: "Delete" }).waitFor();
    await snap(page, "restored-from-list");
  });

  await step("another tenant sees none of these dashboards", async () => {
    const other = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await other.newPage();
    await p.goto(`${URL_}/`);
    await p.fill("input[name=apikey]", process.env.ARGUS_OTHER_KEY);
    await p.click("button[type=submit]");
    await p.getByText("No dashboards").waitFor();
    await p.goto(`${URL_}/#/d/e2e-created`);
    const err = p.getByRole("alert").filter({ hasText: "Cannot open dashboard" });
    await err.waitFor();
    const text = await err.textContent();
    await snap(p, "other-tenant");
    await other.close();
    return { error: text.slice(0, 120) };
  });

  await step("rule editor: a field error, then a breaching rule saved with its preview", async () => {
    await page.goto(`${URL_}/#/rules/new`);
    const fill = async (label, v) => page.getByLabel(label, { exact: true }).fill(v);
    await fill("Name", "e2e_live_high");
    await fill("Metric", "e2e_live");
    await fill("Aggregation", "max");
    await fill("Window", "0s");
    await fill("Condition", "> 100");
    await fill("Evaluate every", "1s");
    await fill("Severity", "page");
    await page.click("button:has-text('Save')");
    // The server's validation error, on the field it names.
    const err = await page.locator(".field-error[data-field=window]").textContent({ timeout: 10_000 });
    await fill("Window", "30s");
    await page.locator("[data-testid=backtest-summary]").filter({ hasText: /Would (not )?have fired/ }).waitFor({ timeout: 30_000 });
    await page.locator("[data-testid=rule-preview] .chart canvas").waitFor();
    await snap(page, "rule-editor-preview");
    await page.click("button:has-text('Save')");
    await page.waitForURL(/#\/rules\/e2e_live_high$/);
    // A sample over the threshold, pushed after the rule exists: the evaluator sees it stream by.
    await push({ metric: "e2e_live", host: "web-a", ts: Date.now(), value: 5000 });
    await page.goto(`${URL_}/#/alerts`);
    const row = page.locator("li.alert-item[data-rule=e2e_live_high][data-state=firing]");
    await row.waitFor({ timeout: 20_000 });
    await snap(page, "alerts-firing");
    return { fieldError: err };
  });

  await step("Ack changes the alert's state; silence preview; phone layout", async () => {
    const row = page.locator("li.alert-item[data-rule=e2e_live_high]");
    await row.getByRole("button", { name: "Ack", exact: true }).click();
    await page.locator("li.alert-item[data-rule=e2e_live_high][data-acked=true] .badge.acked").waitFor({ timeout: 10_000 });
    await row.locator("a.alert-main").click();
    await page.locator("[data-testid=timeline] li.ack").waitFor({ timeout: 10_000 });
    await row.getByRole("button", { name: "Silence" }).click();
    const preview = page.locator("[data-testid=silence-preview]").filter({ hasText: "Would silence 1 active alert" });
    await preview.waitFor({ timeout: 10_000 });
    await snap(page, "silence-preview");
    await page.getByRole("button", { name: "Cancel" }).click();
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    await openSignedIn(p, `${URL_}/#/alerts`);
    await p.goto(`${URL_}/#/alerts?state=firing`);
    const phoneRow = p.locator("li.alert-item[data-rule=e2e_live_high]");
    await phoneRow.waitFor({ timeout: 10_000 });
    const box = await phoneRow.getByRole("button", { name: /Ack|Un-ack/ }).boundingBox();
    const scrollWidth = await p.evaluate(() => document.documentElement.scrollWidth);
    await snap(p, "phone-alerts");
    await phone.close();
    if (box === null || box.height < 44 || box.width < 150) throw new Error(`phone ack button too small: ${JSON.stringify(box)}`);
    if (scrollWidth > 400) throw new Error(`phone layout scrolls sideways: ${scrollWidth}px wide`);
    return { ackButton: box, scrollWidth };
  });

  await step("light theme renders", async () => {
    await page.click("text=☀ Light");
    await page.goto(`${URL_}/#/d/this-host`);
    await page.locator("section.panel .chart").first().waitFor();
    await snap(page, "light-theme");
    await page.click("text=☾ Dark");
  });
} catch {
  exitCode = 1;
} finally {
  await browser.close();
}
writeFileSync(join(ART, "results.json"), JSON.stringify(results, null, 2));
process.exit(exitCode);
