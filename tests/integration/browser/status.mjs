// Drives the operator page (www/status.html) in Debian's headless Chromium: the charts draw,
// then change while traffic flows, and the page asks nothing of any other site.
//
//   node status.mjs PAGE_URL SCREENSHOT.png BASE_URL
//
// Between two looks at the page this script sends traffic (from Node, not the page) to
// BASE_URL/summarize and BASE_URL/stream. Prints one JSON object; tests/integration/test_metrics.py asserts.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [pageUrl, screenshot, trafficUrl] = process.argv.slice(2);
if (!pageUrl || !screenshot || !trafficUrl) {
  console.error("usage: node status.mjs PAGE_URL SCREENSHOT.png TRAFFIC_URL");
  process.exit(2);
}

const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// What the page shows: each chart's pixels (as a data URL) and points, the table's rows.
function look() {
  const charts = {};
  for (const c of document.querySelectorAll("canvas")) charts[c.id] = c.toDataURL();
  return { charts, scrapes: window.__status.scrapes, errors: window.__status.errors,
    series: window.__status.series, state: document.getElementById("state").textContent,
    today: [...document.querySelectorAll("#today tr")].map((tr) => tr.textContent) };
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "llm-fcgi-chromium."));
const result = { ok: false, page_errors: [], console: [], requests: [] };
let context = null;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: ARGS,
    viewport: { width: 1100, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => result.page_errors.push(String(e)));
  page.on("console", (m) => result.console.push(m.type() + ": " + m.text()));
  page.on("request", (r) => result.requests.push(r.url()));
  const resp = await page.goto(pageUrl, { waitUntil: "load" });
  result.page_status = resp.status();
  await page.waitForFunction(() => window.__status && window.__status.scrapes >= 3, null, { timeout: 30000 });
  result.before = await page.evaluate(look);
  const n0 = result.before.scrapes;
  const post = (route, i) => fetch(trafficUrl + route, { method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: "text=" + encodeURIComponent(`[[emu:id=page${i},words=8,delay=20,ttft=${50 + 40 * (i % 8)}]] hello`) })
    .then((r) => r.text());
  for (let round = 0; round < 8; round++) {
    await Promise.all([0, 1, 2, 3].map((k) => post(k % 2 ? "/stream" : "/summarize", round * 4 + k)));
    await new Promise((r) => setTimeout(r, 300));
  }
  await page.waitForFunction((n) => window.__status.scrapes >= n + 3, n0, { timeout: 30000 });
  result.after = await page.evaluate(look);
  await page.screenshot({ path: screenshot, fullPage: true });
  result.ok = true;
} catch (e) {
  result.error = String(e.stack || e);
} finally {
  if (context) await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
