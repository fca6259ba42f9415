#!/usr/bin/env python3
"""Issue 10, item 1: exact routing under every server setup that conf/ ships.

The route used to be the known route the request path *ended with*, so with Apache's shipped
Basic-auth example (whose <Location "/ai/healthz"> was open) /ai/healthz/stream reached the model
without credentials, and /v2/summarize or /anything/stream called it too. Now every snippet
passes its mount point with each request (LLM_FCGI_BASE_PATH) and the raw REQUEST_URI path must
be exactly that + a route. For each setup, the paths that used to slip through, and the same
routes spelt with dot segments, "//" or escapes (sent as-is on a raw socket, as `curl
--path-as-is` would), get a 4xx and never reach the upstream; the real routes still work. The
auth setups are also checked with credentials, so that llm-fcgi's own 404 is what stops them,
and with a CORS preflight, which must pass the auth examples without credentials."""
import json
import os
import shutil

import harness
from harness import LLM_FCGI, Apache, Lighttpd, Nginx, SettingsFile, Stack, basic, fcgid_ipc, htpasswd, http, \
    http_json, run_tests

USER, PASSWORD = "alice", "s3cret-Pa55"
ORIGIN = "http://page.example:8000"
SETTINGS = {"max_retries": 0, "allowed_origins": ORIGIN}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CHAT = json.dumps({"model": "claude-sonnet-5-5", "max_tokens": 8,
                   "messages": [{"role": "user", "content": "hi"}]})


def request_for(path):
    """A body the route at the end of path would take, so that only routing can refuse it."""
    if "chat/completions" in path:
        return CHAT, {"Content-Type": "application/json"}
    return "text=hello", FORM


def not_routes(prefix):
    """(method, path): what used to reach the model by its suffix, then dot segments and
    other spellings of real routes that only the server's normalised path would match."""
    p = prefix
    return [("GET", p + "healthz/stream?text=hi"), ("POST", p + "healthz/stream"),
            ("POST", p + "healthz/summarize"), ("POST", p + "healthz/v1/chat/completions"),
            ("POST", p + "v2/summarize"), ("POST", p + "anything/stream"),
            ("POST", p + "./stream"), ("POST", p + "x/../stream"), ("POST", p + "healthz/../stream"),
            ("POST", p + "healthz/%2e%2e/summarize"), ("POST", p + "/stream"), ("POST", p + "%73tream"),
            ("POST", p + "stream/"), ("POST", p + "STREAM")]


def check_exact(tap, where, url, prefix, emu, auth=None):
    before = emu.stats()["attempts"]
    refused = []
    for creds in ([None, auth] if auth else [None]):
        for method, path in not_routes(prefix):
            body, hdrs = request_for(path)
            hdrs = dict(hdrs, **(creds or {}))
            st, h, raw = http(method, url + path, body if method == "POST" else None, hdrs)
            ok = 400 <= st < 500
            if creds or not auth:
                # Past the server's own checks: the worker, if the server forwarded it at all.
                ok = ok and st != 401
            refused.append(ok)
            tap.ok(ok, "%s: %s %s%s -> %d" % (where, method, path, " (authenticated)" if creds else "", st),
                   (st, raw[:200]))
    tap.eq(emu.stats()["attempts"], before, "%s: none of them reached the upstream" % where)

    st, _, js, raw = http_json("GET", url + prefix + "healthz")
    tap.ok(st == 200 and js and js.get("status") == "ok", "%s: GET %shealthz -> 200, open" % (where, prefix),
           (st, raw[:200]))
    st, _, js, raw = http_json("POST", url + prefix + "summarize", "text=hello", dict(FORM, **(auth or {})))
    tap.ok(st == 200 and js and js.get("summary"), "%s: POST %ssummarize -> 200" % (where, prefix), (st, raw[:200]))
    tap.eq(emu.stats()["attempts"], before + 1, "%s: ... one upstream call" % where)


def check_preflight(tap, where, url, prefix):
    """A browser's preflight carries no credentials: the auth examples let OPTIONS through."""
    st, h, raw = http("OPTIONS", url + prefix + "stream", None,
                      {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                       "Access-Control-Request-Headers": "content-type,x-stainless-os"})
    tap.ok(st == 204 and h.get("access-control-allow-origin") == ORIGIN
           and h.get("access-control-allow-headers") == "content-type,x-stainless-os",
           "%s: CORS preflight without credentials -> 204 with the CORS headers" % where, (st, h, raw[:200]))


def lighttpd_pool(tmp, pool, prefix, template="lighttpd.conf.in", values=None):
    return Lighttpd(tmp, pool.sock, prefix, template, values)


def setups(tmp, emu, pool, ht):
    """(name, prefix, start, auth): start() returns the running server."""
    www = SettingsFile(tmp, emu.url, SETTINGS, name="www")
    root = SettingsFile(tmp, emu.url, SETTINGS, uid=0, gid=0, name="root")
    fcgid = fcgid_ipc(tmp)
    auth = basic(USER, PASSWORD)
    for prefix in ("/", "/ai/"):
        yield ("lighttpd + pool " + prefix, prefix, lambda p=prefix: lighttpd_pool(tmp, pool, p), None)
        yield ("lighttpd mod_auth " + prefix, prefix,
               lambda p=prefix: lighttpd_pool(tmp, pool, p, "lighttpd-auth.conf.in", {"HTPASSWD": ht}), auth)
        yield ("nginx " + prefix, prefix, lambda p=prefix: Nginx(tmp, ["unix:" + pool.sock], p), None)
        yield ("Apache mod_proxy_fcgi " + prefix, prefix,
               lambda p=prefix: Apache(tmp, ["proxy", "proxy_fcgi", "headers"],
                                       {"LLM_FCGI_PREFIX": p, "LLM_FCGI_SOCKET": pool.sock},
                                       ["llm-fcgi-proxy.conf"]), None)
    yield ("Apache Basic /ai/", "/ai/",
           lambda: Apache(tmp, ["proxy", "proxy_fcgi", "headers", "auth_basic", "authn_file", "authz_user"],
                          {"LLM_FCGI_PREFIX": "/ai/", "LLM_FCGI_SOCKET": pool.sock, "LLM_FCGI_HTPASSWD": ht},
                          ["llm-fcgi-proxy.conf", "auth-basic.conf.example"]), auth)
    yield ("Apache Basic /", "/",
           lambda: Apache(tmp, ["proxy", "proxy_fcgi", "headers", "auth_basic", "authn_file", "authz_user"],
                          {"LLM_FCGI_PREFIX": "/", "LLM_FCGI_SOCKET": pool.sock, "LLM_FCGI_HTPASSWD": ht},
                          ["llm-fcgi-proxy.conf", "auth-basic.conf.example"]), auth)
    yield ("Apache mod_fcgid /ai/", "/ai/",
           lambda: Apache(tmp, ["fcgid"], {"LLM_FCGI_PREFIX": "/ai/", "LLM_FCGI_BIN": LLM_FCGI,
                                          "LLM_FCGI_CONFIG": www.path}, ["llm-fcgi-fcgid.conf"], fcgid), None)
    yield ("Apache CGI /ai/", "/ai/",
           lambda: Apache(tmp, ["cgid", "headers"], {"LLM_FCGI_PREFIX": "/ai/", "LLM_FCGI_BIN": LLM_FCGI,
                                                    "LLM_FCGI_CONFIG": www.path}, ["llm-fcgi-cgi.conf"]), None)
    yield ("Apache .htaccess /ai/", "/ai/", lambda: htaccess(tmp, www), None)
    yield ("lighttpd bin-path /ai/", "/ai/",
           lambda: Lighttpd(tmp, os.path.join(tmp, "bp.sock"), "/ai/", "lighttpd-bin-path.conf.in",
                            {"BIN": LLM_FCGI, "SETTINGS": root.path, "PROCS": 1}), None)


def htaccess(tmp, settings):
    """Shared hosting: the binary and conf/apache/htaccess-cgi.example in the site's /ai/."""
    web = Apache(tmp, ["cgid", "rewrite", "headers"], extra='<Directory "%s">\n\tAllowOverride FileInfo '
                 'Options=ExecCGI,Indexes\n</Directory>\n' % os.path.join(tmp, "docroot"))
    d = os.path.join(web.docroot, "ai")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    shutil.copy(LLM_FCGI, os.path.join(d, "llm-fcgi.cgi"))
    os.chmod(os.path.join(d, "llm-fcgi.cgi"), 0o755)
    harness.copy_with_edits(os.path.join(harness.CONF, "apache", "htaccess-cgi.example"),
                            os.path.join(d, ".htaccess"), [("/home/USER/llm-fcgi.conf", settings.path)])
    return web


def main(tap):
    with Stack(web=None, pool="prefork", config=None, settings=SETTINGS) as s:
        ht = htpasswd(os.path.join(s.tmp, "htpasswd"), {USER: PASSWORD})
        for name, prefix, start, auth in setups(s.tmp, s.emu, s.pool, ht):
            with start() as web:
                check_exact(tap, name, web.url, prefix, s.emu, auth)
                check_preflight(tap, name, web.url, prefix)


run_tests(main)
