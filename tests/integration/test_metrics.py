#!/usr/bin/env python3
"""/metrics and /status through lighttpd and a prefork pool of 8 workers with a state file: who
may read them (metrics_allow, X-Forwarded-For from a loopback peer), the exposition checked by
promtool, then scraped by a real Prometheus server on loopback whose query API must return the
counters of a known sequence (sync answers, streams, a cancellation, a retry, a refusal); the
counters stay exact under concurrent load across a worker's SIGKILL and a SIGHUP reload (the
killed request counted once, as aborted); /status?full lists the workers' current requests.
LLM_TEST_LIMITS_STORE=redis://... keeps the counters in that Redis instead of the state file."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import fcgi_client as fc
from harness import (BROWSER_DIR, LLM_FCGI, SRCDIR, pool_env, Lighttpd, Managed, Proc, Stack, Stream,
                     browser_prerequisites, free_port, http, marker, new_tmp, q, remove_tmp,
                     run_tests, spawn, wait_for)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
STORE = os.environ.get("LLM_TEST_LIMITS_STORE", "")
ALICE, BOB = "sk-test-alice-0123456789", "sk-test-bob-0123456789"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_fcgi(s, addr="127.0.0.1", path="/metrics", extra=None):
    p = {"REMOTE_ADDR": addr}
    p.update(extra or {})
    return fc.request(s.pool.sock, fc.cgi_params("GET", path, extra=p), timeout=20)


def scrape(s):
    r = scrape_fcgi(s)
    assert r.status == 200, r
    return parse(r.body.decode())


def summarize(base, text, headers=None):
    h = dict(FORM)
    h.update(headers or {})
    return http("POST", base + "/summarize", "text=" + q(text), h)


def messages(base, key, text):
    return http("POST", base + "/v1/messages", json.dumps(
        {"model": "claude-sonnet-5-5", "max_tokens": 20, "messages": [{"role": "user", "content": text}]}),
        {"Content-Type": "application/json", "x-api-key": key})


class Prometheus(Managed):
    """A Prometheus server of the test's own on loopback, scraping url every second."""

    def __init__(self, tmp, url):
        u = urllib.parse.urlsplit(url)
        self.port = free_port()
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: llm\n    metrics_path: %s\n"
                    "    static_configs:\n      - targets: ['%s']\n" % (u.path, u.netloc))
        self.proc = spawn(["prometheus", "--config.file=" + cfg,
                           "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                           "--web.listen-address=127.0.0.1:%d" % self.port],
                          log=os.path.join(tmp, "prometheus.log"))
        Proc.track(self.proc.pid)

    def query(self, expr):
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (self.port, urllib.parse.quote(expr))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                js = json.loads(r.read())
        except OSError:
            return None
        res = js.get("data", {}).get("result", [])
        return float(res[0]["value"][1]) if res else None

    def stop(self):
        Proc.stop(self.proc.pid)


def check_access(tap, s):
    st, h, body = http("GET", s.base + "/metrics")
    tap.ok(st == 200 and h.get("content-type", "").startswith("text/plain; version=0.0.4"),
           "/metrics through lighttpd from loopback: 200, text format 0.0.4", (st, h))
    tap.eq(scrape_fcgi(s, "10.1.2.3").status, 403, "a remote address gets 403")
    tap.eq(scrape_fcgi(s, "127.0.0.1", extra={"HTTP_X_FORWARDED_FOR": "127.0.0.1"}).status, 403,
           "a loopback peer forwarding X-Forwarded-For (a local reverse proxy) counts as remote")
    tap.eq(scrape_fcgi(s, "10.1.2.3", "/status").status, 403, "/status: the same rule")
    r = scrape_fcgi(s, "::1", "/status")
    tap.ok(r.status == 200 and r.json()["mode"] == "pool", "/status from ::1: the pool as JSON", r)


def check_promtool(tap, s):
    body = scrape_fcgi(s).body
    out = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                         timeout=30)
    tap.ok(out.returncode == 0, "promtool check metrics accepts the exposition",
           (out.stdout + out.stderr).decode() + body.decode()[:3000])


def known_sequence(tap, s):
    """Sync answers, two streams, a cancelled stream, a retried call, a refusal; returns what the
    counters must have grown by."""
    codes = [summarize(s.base, marker("m-sync%d" % i) + " hello")[0] for i in range(3)]
    tap.eq(codes, [200, 200, 200], "three sync answers")
    for i in range(2):
        st = Stream("POST", s.base + "/stream", "text=" + q(marker("m-st%d" % i, words=5) + " x"),
                    FORM, timeout=30)
        st.read_all()
    st = Stream("POST", s.base + "/stream", "text=" + q(marker("m-cut", words=400, delay=20) + " x"),
                FORM, timeout=30)
    got = b""
    while got.count(b" ") < 5 and not st.eof:
        got += st.read_some()
    st.close()
    wait_for(lambda: any(a.get("cancelled") for a in s.pool.access()), timeout=15,
             what="the cancelled stream's access line")
    st, _, _ = summarize(s.base, marker("m-retry", fault=500, times=1) + " x")
    tap.eq(st, 200, "a retried call answers 200")
    tap.eq([messages(s.base, BOB, "hi")[0], messages(s.base, BOB, "hi")[0]], [200, 429],
           "key:bob rpm=1: the second call is refused")
    tap.eq(messages(s.base, ALICE, "hi")[0], 200, "key:alice answered")
    return {
        ('llm_fcgi_requests_total{route="/summarize",status="200"}'): 4,
        ('llm_fcgi_requests_total{route="/stream",status="200"}'): 2,
        ('llm_fcgi_requests_total{route="/stream",status="499"}'): 1,
        ('llm_fcgi_requests_total{route="/v1/messages",status="200"}'): 2,
        ('llm_fcgi_requests_total{route="/v1/messages",status="429"}'): 1,
        ('llm_fcgi_upstream_attempts_total{outcome="ok"}'): 8,
        ('llm_fcgi_upstream_attempts_total{outcome="retried"}'): 1,
        ('llm_fcgi_upstream_attempts_total{outcome="cancelled"}'): 1,
        "llm_fcgi_upstream_retries_total": 1,
        "llm_fcgi_client_cancellations_total": 1,
        ('llm_fcgi_refusals_total{limit="rpm"}'): 1,
        "llm_fcgi_time_to_first_token_seconds_count": 3,
    }


def selector(expr):
    m = re.match(r'(\w+)(?:\{(.*)\})?$', expr)
    labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
    return m.group(1), labels


def check_known_sequence(tap, s, tmp):
    before = scrape(s)
    want = known_sequence(tap, s)
    after = scrape(s)
    for expr, n in want.items():
        key = selector(expr)
        tap.eq(after.get(key, 0) - before.get(key, 0), n, "/metrics: %s grew by %d" % (expr, n))
    alice = [v for (n, l), v in after.items()
             if n == "llm_fcgi_tokens_total" and ("identity", "key:alice") in l]
    tap.ok(alice and all(v > 0 for v in alice), "tokens by identity: key:alice has series", alice)
    tap.ok(any(n == "llm_fcgi_cost_usd_total" and ("identity", "other") in l for (n, l) in after),
           "addresses are folded into identity=\"other\"")
    tap.ok(val(after, "llm_fcgi_gateway_first_byte_seconds_count") >= 8 and
           val(after, "llm_fcgi_gateway_delta_flush_seconds_count") >= 10,
           "gateway-added latency histograms observed every answer and delta",
           {k: v for k, v in after.items() if "gateway" in k[0] and "count" in k[0]})
    if not shutil.which("prometheus"):
        tap.skip("a real Prometheus scrape", "prometheus is not installed (scripts/install-deps)")
        return
    with Prometheus(tmp, s.base + "/metrics") as prom:
        for expr in want:
            key = selector(expr)
            target = after.get(key, 0)
            got = []
            wait_for(lambda: got.append(prom.query(expr)) or got[-1] == target, timeout=60,
                     step=0.5, what="Prometheus: %s = %s" % (expr, target))
            tap.eq(got[-1], target, "Prometheus query API: %s = %g" % (expr, target))


def check_concurrent_kill_reload(tap, s):
    """80 requests from 8 clients across 8 workers; one worker SIGKILLed in a request and a SIGHUP
    reload during the load: every request is counted once, the killed one as aborted."""
    before = scrape(s)
    results = []
    lock = threading.Lock()

    def client(c):
        for i in range(10):
            st = summarize(s.base, marker("m-load%d-%d" % (c, i), ttft=150, words=3) + " x")[0]
            with lock:
                results.append(st)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    busy = []

    def find_busy():
        js = scrape_fcgi(s, path="/status", extra={"QUERY_STRING": "full"}).json()
        busy[:] = [w["pid"] for w in js.get("workers", [])
                   if w.get("request", {}).get("route") == "/summarize"]
        return busy
    wait_for(find_busy, timeout=20, what="a worker inside /summarize")
    os.kill(busy[0], signal.SIGKILL)
    time.sleep(0.3)
    os.kill(s.pool.parent, signal.SIGHUP)
    for t in threads:
        t.join(120)
    wait_for(lambda: len(s.pool.pids()) == 8, timeout=30, what="8 workers again")
    after = scrape(s)
    ok = sum(1 for r in results if r == 200)
    failed = len(results) - ok
    grew = val(after, "llm_fcgi_requests_total", route="/summarize", status="200") - \
        val(before, "llm_fcgi_requests_total", route="/summarize", status="200")
    aborted = val(after, "llm_fcgi_requests_aborted_total") - val(before, "llm_fcgi_requests_aborted_total")
    tap.eq(len(results), 80, "80 requests answered one way or another")
    # The client may have its whole answer before the worker is done with the request (the
    # accounting after the last byte): such a request is aborted too, and still counted once.
    tap.ok(failed <= aborted <= 1 and grew + aborted == 80 and grew <= ok,
           "every request counted exactly once: %d answered, %d aborted (%d failed at the "
           "client)" % (grew, aborted, failed), results)
    tap.ok(val(after, "llm_fcgi_worker_starts_total") - val(before, "llm_fcgi_worker_starts_total") >= 9,
           "worker starts counted the replacement and the new generation")
    st = scrape_fcgi(s, path="/status").json()
    tap.ok(st["total"] == 8 and st["max_busy"] >= 2 and st["accepted_requests"] >= 80 + 12,
           "/status: total, max busy seen, accepted requests", st)


def demo_lighttpd(stack):
    """lighttpd as scripts/run configures it: www/ at "/" (the chat and status pages), the
    endpoints at the site root."""
    return Lighttpd(stack.tmp, stack.pool.sock, template=os.path.join(SRCDIR, "scripts", "lighttpd-demo.conf.in"),
                    values={"WWW": os.path.join(SRCDIR, "www"), "BIND": "127.0.0.1"})


def check_page(tap):
    """www/status.html in headless Chromium: charts draw and change as traffic flows; every
    request it makes stays on the site."""
    if not browser_prerequisites(tap):
        return
    with Stack(web=demo_lighttpd, pool="prefork", workers=3) as s:
        st, h, body = http("GET", s.base + "/status.html")
        tap.ok(st == 200 and b"<canvas" in body, "lighttpd serves www/status.html", (st, h))
        shot = os.path.join(s.tmp, "status.png")
        out = subprocess.run(["node", os.path.join(BROWSER_DIR, "status.mjs"),
                              s.base + "/status.html?interval=0.5", shot, s.base],
                             cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120)
        try:
            res = json.loads(out.stdout)
        except ValueError:
            res = {}
        if os.environ.get("LLM_STATUS_SCREENSHOT"):
            shutil.copy(shot, os.environ["LLM_STATUS_SCREENSHOT"])
        if not tap.ok(out.returncode == 0 and res.get("ok"), "the browser watched the page",
                      "rc=%s\n%s\n%s" % (out.returncode, res.get("error") or out.stdout[-3000:],
                                          out.stderr[-2000:])):
            return
        b, a = res["before"], res["after"]
        tap.eq(res["page_errors"] + a["errors"], [], "no script errors, every scrape answered")
        tap.ok(all(a["charts"][c] != b["charts"][c] for c in ("rps", "ttft", "gw")),
               "the request, latency and gateway charts changed as traffic flowed")
        tap.ok(max(v for v in a["series"]["rps"][0] if v is not None) > 0,
               "requests per second went above 0", a["series"]["rps"])
        tap.ok(any("other" in r or "addr:" in r for r in a["today"]), "today's spend per identity listed",
               a["today"])
        site = s.base + "/"
        tap.eq([u for u in res["requests"] if not u.startswith(site)], [],
               "no request leaves the site (%d made)" % len(res["requests"]))


def check_cgi(tap, tmp, settings, pool_counts):
    """Plain CGI has no pool: its /metrics reads the state file the pool left, and says so."""
    env = pool_env(tmp, "http://127.0.0.1:9", os.path.join(tmp, "cgi.log"), settings)
    env.update({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET", "REQUEST_URI": "/metrics",
                "SCRIPT_NAME": "/metrics", "REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": ""})
    with open(os.devnull, "rb") as null:
        out = subprocess.run([LLM_FCGI], env=env, stdin=null, capture_output=True, timeout=30)
    head, _, body = out.stdout.decode().partition("\r\n\r\n")
    tap.ok(out.returncode == 0 and head.startswith("Status: 200") and "# cgi: no pool" in body,
           "plain CGI: /metrics answers and says there is no pool", out.stdout[:600])
    got = parse(body)
    key = ("llm_fcgi_requests_total", frozenset({("route", "/summarize"), ("status", "200")}))
    tap.eq(got.get(key), pool_counts.get(key), "plain CGI reports the state file's counters")


def key_file(tmp):
    path = os.path.join(tmp, "client-keys")
    with open(path, "w") as f:
        for k, label in ((ALICE, "alice"), (BOB, "bob")):
            f.write("%s  %s\n" % (hashlib.sha256(k.encode()).hexdigest(), label))
    os.chmod(path, 0o600)
    return path


def main(tap):
    tmp = new_tmp()
    try:
        limits = os.path.join(tmp, "limits")
        with open(limits, "w") as f:
            f.write("key:bob rpm=1\n")
        settings = {"state_file": os.path.join(tmp, "state"), "limits_file": limits,
                    "client_keys_file": key_file(tmp), "max_retries": 2}
        if STORE:
            # A shared, loaded test machine: an update that times out would go uncounted.
            settings.update({"limits_store": STORE, "limits_store_timeout": 2})
        with Stack(pool="prefork", workers=8, settings=settings) as s:
            check_access(tap, s)
            check_known_sequence(tap, s, tmp)
            check_promtool(tap, s)
            check_concurrent_kill_reload(tap, s)
            counts = scrape(s)
        check_cgi(tap, tmp, settings, counts)
        check_page(tap)
    finally:
        remove_tmp(tmp)


if __name__ == "__main__":
    run_tests(main)
