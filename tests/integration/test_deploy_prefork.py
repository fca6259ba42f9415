#!/usr/bin/env python3
"""Issue 5, the primary setup exactly as the README gives it: spawn-fcgi -n execs llm-fcgi -c 3,
whose supervisor forks three workers on one Unix socket, behind lighttpd with
conf/lighttpd/llm-fcgi.conf, at the site root and under /ai/. Sync, text and SSE streams (one
flush per delta), 404/405, /healthz busy/total, and a killed worker replaced by the supervisor."""
import os
import signal

import harness
import streaming
from harness import Lighttpd, PreforkPool, Stack, Stream, http_json, marker, q, run_tests, wait_for


def busy(base):
    return (http_json("GET", base + "/healthz")[2] or {}).get("workers", {})


def check_busy(tap, where, base):
    """/healthz counts itself as busy; a stream in flight is one more. (A worker counts as busy
    until its FastCGI connection is closed, a moment after the client has the answer.)"""
    w = wait_for(lambda: (lambda w: w if w.get("busy") == 1 else None)(busy(base)), timeout=5,
                 what="an idle pool")
    tap.eq(w, {"busy": 1, "total": 3}, "%s: idle pool: busy 1 of 3 (the /healthz request itself)" % where)
    st = Stream("POST", base + "/stream", "text=" + q(marker("busy", words=30, delay=50) + " slow words"),
                {"Content-Type": "application/x-www-form-urlencoded"})
    st.read_some()
    w = busy(base)
    tap.eq(w, {"busy": 2, "total": 3}, "%s: during a stream: busy 2 of 3" % where)
    st.read_all()


def main(tap):
    with Stack(web=None, pool=None) as s:
        pool = s.add(PreforkPool(s.tmp, s.emu.url, workers=3, settings={"max_retries": 0}, mode="0660",
                                  config=None))
        tap.eq(len(pool.pids()), 3, "spawn-fcgi -n -- llm-fcgi -c 3: one supervisor, three workers")
        for prefix in ("/", "/ai/"):
            with Lighttpd(s.tmp, pool.sock, prefix=prefix) as web:
                where, tag = "lighttpd+prefork %s" % prefix, "pf" + prefix.replace("/", "_")
                harness.check_basics(tap, where, web.base, s.emu, tag + "sync", workers=3)
                check_busy(tap, where, web.base)
                streaming.check_text_stream(tap, where, web.base, pool, tag + "text")
                streaming.check_sse_stream(tap, where, web.base, pool, tag + "sse")
                harness.check_same_origin(tap, where, web.base)
                if prefix == "/":
                    harness.big_body_check(tap, where, web.base, s.emu, tag + "big")
                    victim = pool.pids()[0]
                    os.kill(victim, signal.SIGKILL)
                    wait_for(lambda: victim not in pool.pids() and len(pool.pids()) == 3,
                             timeout=10, what="a replacement worker")
                    tap.ok(True, "%s: a worker killed with SIGKILL is replaced by the supervisor" % where)
                    harness.check_sync(tap, where + " after the kill", web.base, s.emu, tag + "sync2")


run_tests(main)
