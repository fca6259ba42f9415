#!/usr/bin/env python3
"""Issue 5, lighttpd spawning the workers itself: conf/lighttpd/llm-fcgi-bin-path.conf
(bin-path, max-procs, bin-environment naming the settings file), at the site root and under
/ai/. Sync, text and SSE streams (one flush per delta), 404/405, /healthz; lighttpd's empty
environment leaks nothing in; a killed worker is respawned by lighttpd; a worker sent SIGTERM
(lighttpd's kill-signal) mid-stream finishes the stream, then exits."""
import os
import signal

import harness
import streaming
from harness import LLM_FCGI, Lighttpd, SettingsFile, Stack, Stream, children, http_json, marker, q, run_tests, \
    wait_for

PROCS = 2


def bin_path(tmp, settings, prefix, sock, procs):
    web = Lighttpd(tmp, sock, prefix, "lighttpd-bin-path.conf.in",
                   {"BIN": LLM_FCGI, "SETTINGS": settings.path, "PROCS": procs})
    wait_for(lambda: len(children(web.proc.pid)) == procs, what="lighttpd's workers")
    return web


def check_respawn(tap, where, web, pids):
    with open("/proc/%d/environ" % pids[0], "rb") as f:
        names = sorted(e.split(b"=")[0].decode() for e in f.read().split(b"\0") if e)
    tap.ok("LLM_FCGI_CONFIG" in names and not any(n.startswith("ANTHROPIC") for n in names),
           "%s: workers get bin-environment (LLM_FCGI_CONFIG), nothing else of ours" % where, names)
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: len(children(web.proc.pid)) == PROCS and pids[0] not in children(web.proc.pid),
             timeout=15, what="lighttpd respawning a worker")
    tap.ok(True, "%s: lighttpd respawns a worker killed with SIGKILL" % where)
    ok = sum(http_json("GET", web.base + "/healthz")[0] == 200 for _ in range(10))
    tap.eq(ok, 10, "%s: 10 requests after the respawn succeed" % where)


def exited(pid):
    """Gone or a zombie. Reaped between two looks at /proc is gone too (the open then fails)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def main(tap):
    with Stack(web=None, pool=None) as s:
        settings = SettingsFile(s.tmp, s.emu.url, {"max_retries": 0}, uid=0, gid=0)
        for prefix in ("/", "/ai/"):
            sock = os.path.join(s.tmp, "lt-spawned.sock")
            with bin_path(s.tmp, settings, prefix, sock, PROCS) as web:
                where, tag = "lighttpd bin-path %s" % prefix, "bp" + prefix.replace("/", "_")
                pids = children(web.proc.pid)
                tap.eq(len(pids), PROCS, "%s: lighttpd started max-procs = %d workers" % (where, PROCS))
                tap.ok(all(os.path.exists("%s-%d" % (sock, i)) for i in range(PROCS)),
                       "%s: one socket per worker (socket-0, socket-1)" % where)
                js = harness.check_basics(tap, where, web.base, s.emu, tag + "sync")
                tap.ok("workers" not in (js or {}), "%s: single workers: /healthz has no pool counts" % where, js)
                streaming.check_text_stream(tap, where, web.base, settings, tag + "text")
                streaming.check_sse_stream(tap, where, web.base, settings, tag + "sse")
                harness.check_same_origin(tap, where, web.base)
                if prefix == "/":
                    check_respawn(tap, where, web, pids)
                else:
                    harness.big_body_check(tap, where, web.base, s.emu, tag + "big")
        # lighttpd stops its workers with SIGTERM (kill-signal): one in a stream finishes it first.
        with bin_path(s.tmp, settings, "/", os.path.join(s.tmp, "lt2.sock"), 1) as web:
            worker = children(web.proc.pid)[0]
            text = marker("bp-term", words=20, delay=50) + " one two"
            st = Stream("POST", web.url + "/stream", "text=" + q(text),
                        {"Content-Type": "application/x-www-form-urlencoded"})
            st.read_some()
            os.kill(worker, signal.SIGTERM)
            body = st.read_all().decode()
            tap.eq(body, streaming.answer(text), "lighttpd bin-path: SIGTERM mid-stream -> the stream still completes")
            wait_for(lambda: exited(worker), timeout=5, what="the worker to exit")
            tap.ok(True, "lighttpd bin-path: ... and the worker exits after it")


run_tests(main)
