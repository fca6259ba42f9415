#!/usr/bin/env python3
"""Issue 5, access control in the web server: Apache AuthType Basic + Require valid-user
(conf/apache/auth-basic.conf.example, in front of mod_proxy_fcgi) and lighttpd mod_auth with
the htpasswd backend (conf/lighttpd/auth.conf.example), with a password file made by htpasswd
-B. Without valid credentials: the server's 401, no worker and no upstream attempt; with them:
sync and a stream delta by delta; the client's Authorization header never goes upstream;
/healthz stays open."""
import json
import os

import streaming
from harness import (API_KEY, Apache, Lighttpd, Stack, Stream, basic, expected_answer, htpasswd, http,
                     http_json, marker, q, run_tests)

USER, PASSWORD = "alice", "s3cret-Pa55"


def check_basic_auth(tap, where, base, emu, pool, idtag, user=USER, password=PASSWORD):
    """Unauthenticated and wrongly authenticated requests get the server's 401 and reach neither
    a worker nor the upstream; an authenticated sync call and stream work; the client's
    Authorization header never goes upstream."""
    before, n0 = emu.stats()["attempts"], len(pool.access())
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [("POST /summarize without credentials", "POST", "/summarize", "text=hello", form),
             ("GET /stream without credentials", "GET", "/stream?text=hello", None, {}),
             ("POST /stream with a wrong password", "POST", "/stream", "text=hello",
              dict(form, **basic(user, "wrong"))),
             ("POST /summarize as an unknown user", "POST", "/summarize", "text=hello",
              dict(form, **basic("mallory", password)))]
    for name, method, path, body, hdrs in cases:
        st, h, b = http(method, base + path, body, hdrs)
        tap.ok(st == 401 and h.get("www-authenticate", "").lower().startswith("basic"),
               "%s: %s -> 401 with WWW-Authenticate: Basic" % (where, name), (st, h))
    tap.eq(emu.stats()["attempts"], before, "%s: the 401s never reached the upstream" % where)
    tap.eq(len(pool.access()), n0, "%s: ... nor a worker (no access log line)" % where)

    auth = basic(user, password)
    text = marker(idtag + "-sync") + " authorised words here"
    st, h, js, raw = http_json("POST", base + "/summarize", json.dumps({"text": text}),
                               dict({"Content-Type": "application/json"}, **auth))
    tap.ok(st == 200 and js and js.get("summary") == expected_answer(text),
           "%s: with credentials: POST /summarize -> 200" % where, (st, raw[:300]))
    sent = (emu.stats(idtag + "-sync").get("last_request") or {}).get("headers", {})
    tap.ok("authorization" not in sent, "%s: the client's Authorization header is not forwarded upstream" % where,
           sorted(sent))
    tap.eq(sent.get("x-api-key"), API_KEY, "%s: upstream got the gateway's own key" % where)

    text = marker(idtag + "-stream", words=streaming.DELTAS, delay=streaming.DELAY_MS) + " one two three"
    n1 = len(pool.access())
    st = Stream("POST", base + "/stream", "text=" + q(text), dict(form, **auth))
    tap.eq(st.status, 200, "%s: with credentials: text stream 200" % where)
    tap.eq(st.read_all().decode(), streaming.answer(text), "%s: stream text byte for byte" % where)
    streaming.check_arrivals(tap, where + " stream", st)
    acc = streaming.last_access(pool, after=n1)
    tap.eq(acc.get("delta_flushes"), streaming.DELTAS, "%s: one flush per delta" % where)
    sent = (emu.stats(idtag + "-stream").get("last_request") or {}).get("headers", {})
    tap.ok("authorization" not in sent and sent.get("x-api-key") == API_KEY,
           "%s: stream: no Authorization upstream, the gateway's key" % where, sorted(sent))

    st, h, js, raw = http_json("GET", base + "/healthz")
    tap.ok(st == 200 and js and js.get("status") == "ok", "%s: /healthz stays open without credentials" % where,
           (st, raw[:200]))


def main(tap):
    with Stack(web=None, pool="prefork", config=None, settings={"max_retries": 0}) as s:
        ht = htpasswd(os.path.join(s.tmp, "htpasswd"), {USER: PASSWORD, "bob": "other-pass"})
        with Apache(s.tmp, ["proxy", "proxy_fcgi", "headers", "auth_basic", "authn_file", "authz_user"],
                    {"LLM_FCGI_PREFIX": "/ai/", "LLM_FCGI_SOCKET": s.pool.sock, "LLM_FCGI_HTPASSWD": ht},
                    ["llm-fcgi-proxy.conf", "auth-basic.conf.example"]) as web:
            check_basic_auth(tap, "Apache Basic /ai/", web.base, s.emu, s.pool, "auth-ap")
        for prefix in ("/", "/ai/"):
            with Lighttpd(s.tmp, s.pool.sock, prefix, "lighttpd-auth.conf.in", {"HTPASSWD": ht}) as web:
                check_basic_auth(tap, "lighttpd mod_auth %s" % prefix, web.base, s.emu, s.pool,
                                 "auth-lt" + prefix.replace("/", "_"))


run_tests(main)
