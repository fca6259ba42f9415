// Calls the llm-fcgi API from pages on other origins in Debian's headless Chromium, as a web app
// on another site would: fetch with JSON and the SDKs' own headers (a preflight each), the
// Anthropic-compatible API with its key, an error whose retry headers the SDKs read, and an
// EventSource stream; then the same from an origin allowed_origins does not list.
//
//   node cors.mjs LISTED_PAGE_URL UNLISTED_PAGE_URL API_BASE MARKER_PREFIX
//
// Prints one JSON object to stdout; tests/integration/test_cors_browser.py makes the assertions.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [listed, unlisted, api, tag] = process.argv.slice(2);
if (!listed || !unlisted || !api || !tag) {
  console.error("usage: node cors.mjs LISTED_PAGE_URL UNLISTED_PAGE_URL API_BASE MARKER_PREFIX");
  process.exit(2);
}

// As in demo.mjs: the machine's network is closed; keep Chromium from probing it.
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// Runs in the page. Every call reports what a script on that page could see: the status, the
// body, and the headers the browser lets it read, or the error fetch threw (CORS refused).
async function calls({ api, tag }) {
  const mark = (id, extra = "") => `[[emu:id=${tag}-${id}${extra}]]`;
  const sdk = { "x-stainless-os": "Linux", "x-stainless-lang": "js", "x-stainless-retry-count": "0" };
  const read = async (name, url, init) => {
    try {
      const r = await fetch(url, init);
      const headers = {};
      for (const h of ["request-id", "x-request-id", "retry-after", "x-should-retry", "content-type"])
        headers[h] = r.headers.get(h);
      return { name, status: r.status, body: await r.text(), headers };
    } catch (e) {
      return { name, error: String(e) };
    }
  };
  const out = [];
  out.push(await read("stream", api + "/stream", {
    method: "POST", headers: { "Content-Type": "application/json", ...sdk },
    body: JSON.stringify({ text: mark("stream") + " one two three" }) }));
  const msg = (id, extra) => JSON.stringify({ model: "claude-sonnet-5-5", max_tokens: 8,
    messages: [{ role: "user", content: mark(id, extra) + " hello" }] });
  const apiHeaders = { "Content-Type": "application/json", "x-api-key": "client-key",
    "anthropic-version": "2023-06-01", ...sdk };
  out.push(await read("messages", api + "/v1/messages", { method: "POST", headers: apiHeaders,
    body: msg("messages") }));
  out.push(await read("rate-limited", api + "/v1/messages", { method: "POST", headers: apiHeaders,
    body: msg("ratelimit", ",fault=429,retry_after=7") }));
  // A simple request (no preflight, which an unknown route would fail): the 404 is readable.
  out.push(await read("not-found", api + "/nope", { method: "POST", headers: { "Content-Type": "text/plain" },
    body: "hello" }));
  out.push(await new Promise((resolve) => {
    const es = new EventSource(api + "/stream?text=" + encodeURIComponent(mark("es") + " alpha beta"));
    const deltas = [];
    const end = (how) => { es.close(); resolve({ name: "eventsource", deltas, end: how }); };
    es.addEventListener("delta", (e) => deltas.push(JSON.parse(e.data).text));
    es.addEventListener("done", () => end("done"));
    es.onerror = () => end("error");
    setTimeout(() => end("timeout"), 15000);
  }));
  return out;
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "llm-fcgi-chromium."));
const result = { ok: false, pages: {}, console: [] };
let context = null;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: ARGS });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => result.console.push(m.type() + ": " + m.text()));
  for (const [name, url] of [["listed", listed], ["unlisted", unlisted]]) {
    const resp = await page.goto(url, { waitUntil: "load" });
    result.pages[name] = { status: resp.status(), origin: await page.evaluate(() => location.origin),
      calls: await page.evaluate(calls, { api, tag: tag + "-" + name }) };
  }
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (context) await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
