#!/usr/bin/env python3
"""Issue 5, lighttpd spawning the workers itself: conf/lighttpd/llm-fcgi-bin-path.conf
(bin-path, max-procs, bin-environment naming the settings file), at the site root and under
/ai/. Sync, text and SSE streams (one flush per delta), 404/405, /healthz; lighttpd's empty
environment leaks nothing in; a killed worker is respawned by lighttpd; a worker sent SIGTERM
(lighttpd's kill-signal) mid-stream finishes the stream, then exits."""
import os
import signal

from harness import LLM_FCGI, Emulator, Stream, http_json, marker, q, run_tests, wait_for
import servers
import streaming
from servers import LighttpdSite, SettingsFile

PROCS = 2


def worker_pids(web):
    return servers.children(web.proc.pid)


def main(tap):
    tmp = servers.new_tmp()
    emu = Emulator(tmp)
    settings = SettingsFile(tmp, emu.url, {"max_retries": 0}, uid=0, gid=0)
    try:
        for prefix in ("/", "/ai/"):
            sock = os.path.join(tmp, "lt-spawned.sock")
            web = LighttpdSite(tmp, "lighttpd-bin-path.conf.in", prefix, sock,
                               {"BIN": LLM_FCGI, "SETTINGS": settings.path, "PROCS": PROCS})
            base = web.url + prefix.rstrip("/")
            where = "lighttpd bin-path %s" % prefix
            tag = "bp" + prefix.replace("/", "_")
            try:
                wait_for(lambda: len(worker_pids(web)) == PROCS, what="lighttpd's workers")
                pids = worker_pids(web)
                tap.eq(len(pids), PROCS, "%s: lighttpd started max-procs = %d workers" % (where, PROCS))
                tap.ok(all(os.path.exists("%s-%d" % (sock, i)) for i in range(PROCS)),
                       "%s: one socket per worker (socket-0, socket-1)" % where)
                servers.check_sync(tap, where, base, emu, tag + "sync")
                servers.check_errors(tap, where, base, emu)
                js = servers.check_healthz(tap, where, base)
                tap.ok("workers" not in (js or {}), "%s: single workers: /healthz has no pool counts" % where, js)
                streaming.check_text_stream(tap, where, base, settings, tag + "text")
                streaming.check_sse_stream(tap, where, base, settings, tag + "sse")
                servers.check_same_origin(tap, where, base)
                if prefix != "/":
                    servers.big_body_check(tap, where, base, emu, tag + "big")
                    continue
                with open("/proc/%d/environ" % pids[0], "rb") as f:
                    names = sorted(e.split(b"=")[0].decode() for e in f.read().split(b"\0") if e)
                tap.ok("LLM_FCGI_CONFIG" in names and not any(n.startswith("ANTHROPIC") for n in names),
                       "%s: workers get bin-environment (LLM_FCGI_CONFIG), nothing else of ours" % where, names)
                os.kill(pids[0], signal.SIGKILL)
                wait_for(lambda: len(worker_pids(web)) == PROCS and pids[0] not in worker_pids(web),
                         timeout=15, what="lighttpd respawning a worker")
                tap.ok(True, "%s: lighttpd respawns a worker killed with SIGKILL" % where)
                ok = sum(http_json("GET", base + "/healthz")[0] == 200 for _ in range(10))
                tap.eq(ok, 10, "%s: 10 requests after the respawn succeed" % where)
            finally:
                web.stop()
        # lighttpd stops its workers with SIGTERM (kill-signal): one in a stream finishes it first.
        web = LighttpdSite(tmp, "lighttpd-bin-path.conf.in", "/", os.path.join(tmp, "lt2.sock"),
                           {"BIN": LLM_FCGI, "SETTINGS": settings.path, "PROCS": 1})
        wait_for(lambda: len(worker_pids(web)) == 1, what="lighttpd's worker")
        worker = worker_pids(web)[0]
        text = marker("bp-term", words=20, delay=50) + " one two"
        st = Stream("POST", web.url + "/stream", "text=" + q(text),
                    {"Content-Type": "application/x-www-form-urlencoded"})
        st.read_some()
        os.kill(worker, signal.SIGTERM)
        body = st.read_all().decode()
        tap.eq(body, streaming.answer(text), "lighttpd bin-path: SIGTERM mid-stream -> the stream still completes")
        wait_for(lambda: not os.path.exists("/proc/%d/stat" % worker) or
                 open("/proc/%d/stat" % worker).read().split(") ")[1][0] == "Z", timeout=5,
                 what="the worker to exit")
        tap.ok(True, "lighttpd bin-path: ... and the worker exits after it")
        web.stop()
    finally:
        emu.stop()
        servers.remove_tmp(tmp)


run_tests(main)
