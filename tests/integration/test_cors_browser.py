#!/usr/bin/env python3
"""Issue 10, item 10: allowed_origins works from a browser. A page served by one lighttpd
(http://127.0.0.1:P1, listed in allowed_origins) calls the API behind another lighttpd
(http://127.0.0.1:P2/ai/, the shipped conf/lighttpd/llm-fcgi.conf) in headless Chromium
(tests/integration/browser/cors.mjs): JSON fetches with the SDKs' x-stainless-* headers (each
preflighted, the preflight passing client_keys_file without a key), the Anthropic-compatible
API whose request-id, retry-after and x-should-retry the page can read, an error page it can
read, and an EventSource stream. The same page from an unlisted origin (the page server's second
port) gets nothing and spends nothing. Raw preflights are checked too: an unlisted origin 403, a
method the route does not take 405, a plain OPTIONS 405 as before, none reaching the upstream.

Needs /usr/bin/chromium and node/npm, as test_demo_browser.py (which sets up node_modules)."""
import hashlib
import json
import os
import subprocess

from harness import (API_KEY, BROWSER_DIR, Lighttpd, Managed, PreforkPool, Proc, Stack, browser_prerequisites, free_port,
                     http, port_open, run_tests, spawn, wait_for)
from streaming import answer

CLIENT_KEY = "client-key"
PAGE = "<!doctype html><title>another site</title><p>A page on another origin.</p>\n"


class PageServer(Managed):
    """A static lighttpd on two ports: two origins serving the same page."""

    def __init__(self, tmp):
        self.ports = (free_port(), free_port())
        docroot = os.path.join(tmp, "pages")
        os.makedirs(docroot, exist_ok=True)
        with open(os.path.join(docroot, "index.html"), "w") as f:
            f.write(PAGE)
        conf = os.path.join(tmp, "pages.conf")
        with open(conf, "w") as f:
            f.write('server.document-root = "%s"\nserver.bind = "127.0.0.1"\nserver.port = %d\n'
                    '$SERVER["socket"] == "127.0.0.1:%d" { }\n'
                    'server.errorlog = "%s/pages-error.log"\nmimetype.assign = ( ".html" => "text/html" )\n'
                    % (docroot, self.ports[0], self.ports[1], tmp))
        self.proc = spawn(["lighttpd", "-D", "-f", conf], log=os.path.join(tmp, "pages.log"))
        wait_for(lambda: all(port_open(p) for p in self.ports), what="page lighttpd")
        self.origins = ["http://127.0.0.1:%d" % p for p in self.ports]

    def stop(self):
        Proc.stop(self.proc.pid)


def check_raw_preflights(tap, api, listed, emu):
    before = emu.stats()["attempts"]
    ask = {"Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type,x-api-key,anthropic-version,x-stainless-os"}
    st, h, raw = http("OPTIONS", api + "/v1/messages", None, dict(ask, Origin=listed))
    tap.ok(st == 204 and h.get("access-control-allow-origin") == listed
           and h.get("access-control-allow-headers") == ask["Access-Control-Request-Headers"]
           and h.get("access-control-allow-methods") == "POST"
           and h.get("vary") == "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
           "preflight from the listed origin, no client key -> 204, headers echoed", (st, h, raw[:200]))
    st, h, raw = http("OPTIONS", api + "/v1/messages", None, dict(ask, Origin="http://evil.example"))
    tap.ok(st == 403 and "access-control-allow-origin" not in h, "preflight from an unlisted origin -> 403",
           (st, h, raw[:200]))
    st, h, raw = http("OPTIONS", api + "/healthz", None, dict(ask, Origin=listed))
    tap.ok(st == 405 and h.get("allow") == "GET, HEAD", "preflight for a method the route lacks -> 405",
           (st, h, raw[:200]))
    st, h, raw = http("OPTIONS", api + "/stream", None, {})
    tap.ok(st == 405 and h.get("allow") == "GET, POST", "plain OPTIONS (no preflight) -> 405 with Allow", (st, h))
    st, h, raw = http("OPTIONS", api + "/nope", None, dict(ask, Origin=listed))
    tap.ok(st == 404 and h.get("access-control-allow-origin") == listed,
           "preflight on no route -> 404 (a simple request there gets a readable 404)", (st, h))
    bad = dict(ask, Origin=listed)
    bad["Access-Control-Request-Headers"] = "x-a;b"
    st, h, raw = http("OPTIONS", api + "/stream", None, bad)
    tap.ok(st == 204 and "access-control-allow-headers" not in h,
           "request headers that are not a list of names are not echoed", (st, h))
    tap.eq(emu.stats()["attempts"], before, "no preflight reached the upstream")


def check_page(tap, res, listed, emu, tag):
    calls = {c["name"]: c for c in res["pages"]["listed"]["calls"]}
    tap.eq(res["pages"]["listed"]["origin"], listed, "the page runs on the listed origin")
    c = calls["stream"]
    tap.ok(c.get("status") == 200 and c.get("body") == answer("[[emu:id=%s-listed-stream]] one two three" % tag),
           "listed origin: fetch POST /stream (JSON, x-stainless-*) -> the page reads the answer", c)
    c = calls["messages"]
    body = json.loads(c.get("body") or "{}") if c.get("status") == 200 else {}
    tap.ok(body.get("type") == "message" and c["headers"].get("request-id"),
           "listed origin: POST /v1/messages with a client key -> the page reads the message and request-id", c)
    c = calls["rate-limited"]
    h = c.get("headers", {})
    tap.ok(c.get("status") == 429 and h.get("retry-after") == "7" and h.get("x-should-retry") is not None,
           "listed origin: an upstream 429 -> the page reads retry-after and x-should-retry", c)
    c = calls["not-found"]
    tap.ok(c.get("status") == 404 and "not_found_error" in c.get("body", ""),
           "listed origin: a 404 is readable by the page", c)
    c = calls["eventsource"]
    tap.ok(c.get("end") == "done" and "".join(c.get("deltas", [])) ==
           answer("[[emu:id=%s-listed-es]] alpha beta" % tag),
           "listed origin: EventSource GET /stream -> every delta, then done", c)

    calls = {c["name"]: c for c in res["pages"]["unlisted"]["calls"]}
    for name in ("stream", "messages", "rate-limited", "not-found"):
        tap.ok("error" in calls[name], "unlisted origin: %s -> the page cannot read it" % name, calls[name])
    tap.eq(calls["eventsource"].get("deltas"), [], "unlisted origin: EventSource gets no delta")
    spent = [emu.stats("%s-unlisted-%s" % (tag, n))["attempts"]
             for n in ("stream", "messages", "ratelimit", "es")]
    tap.eq(spent, [0, 0, 0, 0], "unlisted origin: no upstream call at all")


def main(tap):
    if not browser_prerequisites(tap):
        return
    with Stack(web=None, pool=None) as s:
        emu = s.emu
        keys = os.path.join(s.tmp, "client-keys")
        with open(keys, "w") as f:
            f.write("%s  page\n" % hashlib.sha256(CLIENT_KEY.encode()).hexdigest())
        os.chmod(keys, 0o600)
        pages = s.add(PageServer(s.tmp))
        listed = pages.origins[0]
        pool = s.add(PreforkPool(s.tmp, emu.url, workers=3, settings={
            "max_retries": 0, "allowed_origins": listed, "client_keys_file": keys}, config=None))
        web = s.add(Lighttpd(s.tmp, pool.sock, prefix="/ai/"))
        api = web.base
        check_raw_preflights(tap, api, listed, emu)
        tag = "cors"
        out = subprocess.run(["node", os.path.join(BROWSER_DIR, "cors.mjs"), listed + "/",
                              pages.origins[1] + "/", api, tag],
                             cwd=BROWSER_DIR, capture_output=True, text=True, timeout=120)
        try:
            res = json.loads(out.stdout)
        except ValueError:
            res = {}
        if tap.ok(out.returncode == 0 and res.get("ok"), "Chromium ran the calls from both origins",
                  "rc=%s\n%s\n%s" % (out.returncode, res.get("error") or out.stdout[-3000:], out.stderr[-2000:])):
            check_page(tap, res, listed, emu, tag)
        sent = (emu.stats(tag + "-listed-messages").get("last_request") or {}).get("headers", {})
        tap.ok(sent.get("x-api-key") == API_KEY and not any(k.startswith("x-stainless") for k in sent),
               "upstream got the gateway's key, not the page's headers", sorted(sent))


run_tests(main)
