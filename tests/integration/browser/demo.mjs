// Drives the demo page (www/index.html) in Debian's headless Chromium, the way a person would:
// types a prompt, clicks Send, watches the answer grow, asks a follow-up, clicks Stop.
//
//   node demo.mjs PAGE_URL SCREENSHOT.png [EMULATOR_URL]
//
// Prints one JSON object to stdout (the turns, their DOM states with timings, page errors, the
// requests the page made); tests/integration/test_demo_browser.py makes the assertions. With
// EMULATOR_URL, it also measures how long after Stop the emulator sees the stream aborted.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [pageUrl, screenshot, emuUrl] = process.argv.slice(2);
if (!pageUrl || !screenshot) {
  console.error("usage: node demo.mjs PAGE_URL SCREENSHOT.png [EMULATOR_URL]");
  process.exit(2);
}

// This machine's network is closed: without these, Chromium keeps retrying its own connections
// (component updates, sync, QUIC probes) and startup gets slow and noisy.
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// Installed in the page: records every distinct text of the newest assistant turn, as the DOM
// changes (MutationObserver: each reader.read() that appends text is one state) and as frames
// are painted (requestAnimationFrame: what a person could have seen).
function installRecorder() {
  const log = document.getElementById("log");
  const before = log.querySelectorAll(".assistant").length;
  const t0 = performance.now();
  const rec = { states: [], frames: [], done: false };
  const current = () => {
    const all = log.querySelectorAll(".assistant");
    return all.length > before ? all[all.length - 1].textContent : null;
  };
  const push = (list, text) => {
    if (text === null) return;
    if (list.length && list[list.length - 1].text === text) return;
    list.push({ t: Math.round(performance.now() - t0), text });
  };
  const obs = new MutationObserver(() => push(rec.states, current()));
  obs.observe(log, { childList: true, subtree: true, characterData: true });
  const frame = () => {
    push(rec.frames, current());
    if (!rec.done) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  rec.finish = () => {
    push(rec.states, current());
    rec.done = true;
    obs.disconnect();
  };
  window.__rec = rec;
}

function collect() {
  const rec = window.__rec;
  rec.finish();
  return { states: rec.states, frames: rec.frames };
}

// Growth, not flicker: every state extends the one before it (the final "[stopped]" suffix aside).
function summarize(states, finalText) {
  const texts = states.map((s) => s.text).filter((t) => t !== "");
  const intermediate = texts.filter((t) => t !== finalText);
  let growing = true;
  for (let i = 1; i < intermediate.length; i++) {
    if (!intermediate[i].startsWith(intermediate[i - 1]) || intermediate[i].length <= intermediate[i - 1].length) growing = false;
  }
  if (intermediate.length && finalText !== null && !finalText.startsWith(intermediate[intermediate.length - 1])) growing = false;
  return { intermediate: intermediate.length, growing };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "llm-fcgi-chromium."));
const result = { ok: false, turns: [], page_errors: [], console: [], requests: [] };
let context = null;
try {
  const t = Date.now();
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    viewport: { width: 900, height: 700 },
  });
  result.launch_ms = Date.now() - t;
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => result.page_errors.push(String(e)));
  page.on("console", (m) => result.console.push(m.type() + ": " + m.text()));
  page.on("request", (r) => result.requests.push({ method: r.method(), url: r.url(),
    content_type: r.headers()["content-type"] ?? null }));
  page.on("requestfailed", (r) => result.requests.push({ failed: r.url(), error: r.failure()?.errorText }));

  const resp = await page.goto(pageUrl, { waitUntil: "load" });
  result.page_status = resp.status();
  result.title = await page.title();
  result.browser = await page.evaluate(() => navigator.userAgent);

  const idle = () => page.waitForFunction(() => !document.getElementById("send").disabled
    && document.getElementById("stop").disabled, null, { timeout: 20000 });

  // One turn: type, Send (or Enter), optionally Stop once `stopAfter` states were seen.
  async function turn(name, prompt, { stopAfter = 0, enter = false } = {}) {
    await page.fill("#prompt", prompt);
    await page.evaluate(installRecorder);
    const t0 = Date.now();
    if (enter) await page.press("#prompt", "Enter");
    else await page.click("#send");
    const busy = await page.evaluate(() => ({ send: document.getElementById("send").disabled,
      stop: document.getElementById("stop").disabled }));
    const out = { name, prompt, busy_after_send: busy };
    if (stopAfter) {
      await page.waitForFunction((n) => window.__rec.states.filter((s) => s.text !== "").length >= n,
        stopAfter, { timeout: 20000 });
      await page.click("#stop");
      out.stop_clicked_ms = Date.now() - t0;
      out.stop_clicked_at = Date.now() / 1000;
    }
    await idle();
    out.elapsed_ms = Date.now() - t0;
    Object.assign(out, await page.evaluate(collect));
    out.final = await page.evaluate(() => {
      const all = document.querySelectorAll("#log .assistant");
      return all.length ? all[all.length - 1].textContent : null;
    });
    out.errors = await page.$$eval("#log .error", (els) => els.map((e) => e.textContent));
    Object.assign(out, summarize(out.states, out.final));
    out.painted = summarize(out.frames, out.final).intermediate;
    delete out.frames;
    result.turns.push(out);
    return out;
  }

  await turn("turn1", "[[emu:id=turn1,words=30,delay=60]] tell me about streams");
  await turn("turn2", "[[emu:id=turn2,words=12,delay=30]] and what about chunks", { enter: true });
  const t3 = await turn("turn3", "[[emu:id=turn3,words=200,delay=100]] keep talking please",
    { stopAfter: 4 });
  // How long after the click the upstream stream was seen cancelled (the emulator's own count).
  if (emuUrl) {
    const end = Date.now() + 5000;
    for (;;) {
      const st = await (await fetch(emuUrl + "/stats?id=turn3")).json();
      if (st.aborted > 0 || Date.now() > end) {
        t3.emu_after_stop = { aborted: st.aborted, completed: st.completed,
          ms: Math.round(Date.now() - t3.stop_clicked_at * 1000) };
        break;
      }
      await sleep(25);
    }
  }
  // The page goes on after Stop, and the stopped answer stays in the conversation.
  await turn("turn4", "[[emu:id=turn4,words=6,delay=20]] one more");

  result.turn_count = await page.$$eval("#log .turn", (els) => els.length);
  result.prompt_focused = await page.evaluate(() => document.activeElement?.id ?? null);
  await page.screenshot({ path: screenshot, fullPage: true });
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result, null, 1) + "\n");
process.exit(result.ok ? 0 : 1);
