#!/usr/bin/env python3
"""Issue 4 through lighttpd: the four timeouts, every retry rule (attempts counted at the
emulator, backoff and retry-after honoured within a tolerance), and the prefork worker lifecycle
(respawn, recycling, reload during traffic, graceful stop during streams, a full pool that says
so, log reopening)."""
import json
import os
import re
import signal
import socket
import threading
import time

from harness import (SLOW, Emulator, Proc, Stack, Stream, http, http_json, marker, q, run_tests,
                     sse_events, wait_for)

J = {"Content-Type": "application/json"}
SSE = {"Accept": "text/event-stream", "Content-Type": "application/json"}


def timed(fn):
    t = time.time()
    r = fn()
    return r, time.time() - t


def within(tap, took, lo, hi, name):
    if SLOW:
        tap.skip(name, "timing not checked in instrumented runs")
    else:
        tap.ok(lo <= took <= hi, "%s (%.2f s in [%.2f, %.2f])" % (name, took, lo, hi))


def summarize(base, text):
    return http_json("POST", base + "/summarize", json.dumps({"text": text}), J)


def blackhole():
    """A listener whose accept queue is full: connects to it hang until they time out."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.2)
    return srv, fillers, "http://127.0.0.1:%d" % port


def check_timeouts(tap):
    srv, fillers, url = blackhole()
    s = Stack(settings={"max_retries": 0, "connect_timeout": 0.5}, upstream=url)
    try:
        (r, took) = timed(lambda: summarize(s.base, "hello"))
        tap.eq(r[0], 502, "connect timeout -> 502")
        within(tap, took, 0.4, 3.0, "connect timeout after connect_timeout")
    finally:
        s.stop()
        for c in fillers:
            c.close()
        srv.close()

    s = Stack(settings={"max_retries": 0, "first_byte_timeout": 1, "idle_timeout": 1,
                        "total_timeout": 1.5, "keepalive_interval": 5})
    try:
        b = s.base
        (r, took) = timed(lambda: summarize(b, marker("t-hang", fault="hang") + " x"))
        tap.ok(r[0] == 504 and r[2]["error"]["type"] == "timeout_error", "total timeout (sync hang) -> 504", r[3])
        within(tap, took, 1.4, 4.0, "total timeout after total_timeout")
        tap.eq(s.emu.stats("t-hang")["aborted"], 1, "the hung upstream request was abandoned")

        def stream_hang():
            st = Stream("POST", b + "/stream", json.dumps({"text": marker("t-sh", fault="hang") + " x"}), SSE)
            return st.status, st.read_all()
        ((status, body), took) = timed(stream_hang)
        tap.ok(status == 504 and b"timeout_error" in body, "first-byte timeout before commit -> 504", body)
        within(tap, took, 0.9, 3.5, "first-byte timeout after first_byte_timeout")

        st = Stream("POST", b + "/stream", json.dumps({"text": marker("t-idle", ttft=3000) + " x"}), SSE)
        evs = sse_events(st.read_all())
        tap.ok(st.status == 200 and evs and evs[-1][0] == "error"
               and json.loads(evs[-1][2])["error"]["type"] == "timeout_error",
               "idle timeout after commit -> SSE error event timeout_error", evs)
        st = Stream("POST", b + "/stream", json.dumps({"text": marker("t-idle2", ttft=3000) + " x"}), J)
        body = st.read_all().decode()
        tap.ok(re.search(r"\[error: timeout_error: [^\]]*\]\n$", body) is not None,
               "idle timeout in text/plain -> [error: timeout_error: ...]", body)
        st = Stream("POST", b + "/stream", json.dumps({"text": marker("t-drip", fault="drip:3", words=3) + " a b c"}), SSE)
        evs = sse_events(st.read_all())
        tap.ok(evs and evs[-1][0] == "done", "a slow drip under the idle timeout completes", [e[0] for e in evs])
    finally:
        s.stop()


def check_retries(tap):
    s = Stack(settings={"max_retries": 2, "keepalive_interval": 30})
    try:
        b, emu = s.base, s.emu

        def attempts(id):
            return emu.stats(id)["attempts"]

        (r, took) = timed(lambda: summarize(b, marker("r500", fault=500, times=2) + " ok then"))
        tap.ok(r[0] == 200 and attempts("r500") == 3, "500 twice then 200: three attempts, success", (r[0], attempts("r500")))
        within(tap, took, 0.375 + 0.75 - 0.05, 3.0, "exponential backoff with jitter (0.375-0.5 s, then 0.75-1 s)")
        r = summarize(b, marker("r529", fault=529) + " x")
        tap.ok(r[0] == 503 and r[2]["error"]["type"] == "overloaded_error" and attempts("r529") == 3,
               "529 every time: 1 + max_retries attempts, then 503 overloaded_error", (r[0], r[3], attempts("r529")))
        tap.ok(r[1].get("retry-after") and r[1].get("x-should-retry") == "false",
               "exhausted retries: Retry-After and x-should-retry: false", r[1])
        (r, took) = timed(lambda: summarize(b, marker("r429", fault=429, times=1, retry_after=2) + " x"))
        tap.ok(r[0] == 200 and attempts("r429") == 2, "429 with retry-after 2, then 200", (r[0], attempts("r429")))
        within(tap, took, 1.9, 4.0, "retry-after honoured")
        (r, took) = timed(lambda: summarize(b, marker("rms", fault=529, times=1, retry_after=5, retry_after_ms=300) + " x"))
        tap.ok(r[0] == 200 and attempts("rms") == 2, "retry-after-ms read first", (r[0], attempts("rms")))
        within(tap, took, 0.28, 2.0, "retry-after-ms wins over retry-after")
        (r, took) = timed(lambda: summarize(b, marker("rcap", fault=529, times=1, retry_after=120) + " x"))
        tap.ok(r[0] == 200 and attempts("rcap") == 2, "retry-after above retry_after_cap: backoff instead", r[0])
        within(tap, took, 0.3, 2.0, "an over-long retry-after is not waited for")
        r = summarize(b, marker("rno", fault=503, should_retry="false") + " x")
        tap.ok(r[0] == 502 and attempts("rno") == 1, "x-should-retry: false -> no retry", (r[0], attempts("rno")))
        r = summarize(b, marker("ryes", fault=400, times=1, should_retry="true") + " x")
        tap.ok(r[0] == 200 and attempts("ryes") == 2, "x-should-retry: true -> retried even a 400", (r[0], attempts("ryes")))
        for st_up in (400, 401, 403, 404, 413):
            r = summarize(b, marker("r%d" % st_up, fault=st_up) + " x")
            tap.eq(attempts("r%d" % st_up), 1, "%d is not retried" % st_up)
        for st_up in (408, 409, 500, 502, 503, 504, 529):
            r = summarize(b, marker("rt%d" % st_up, fault=st_up, times=1) + " x")
            tap.ok(r[0] == 200 and attempts("rt%d" % st_up) == 2, "%d is retried" % st_up, (r[0], attempts("rt%d" % st_up)))
        st = Stream("POST", b + "/stream", json.dumps({"text": marker("rs529", fault=529, times=1) + " a b"}), SSE)
        evs = sse_events(st.read_all())
        tap.ok(evs and evs[-1][0] == "done" and attempts("rs529") == 2, "a stream retries before it commits", [e[0] for e in evs])
        st = Stream("POST", b + "/stream", json.dumps({"text": marker("rsmid", fault="error-mid:2") + " a b"}), SSE)
        evs = sse_events(st.read_all())
        tap.ok(evs and evs[-1][0] == "error" and attempts("rsmid") == 1, "no retry after commit (error mid-stream)",
               ([e[0] for e in evs], attempts("rsmid")))
        log = s.pool.log_text()
        tap.ok(len(re.findall(r"upstream attempt [123]: done, status 529", log)) >= 3,
               "every attempt is logged")
    finally:
        s.stop()


def check_kept_connection(tap):
    """A worker keeps its upstream connection: later requests open none. When the upstream closed
    it meanwhile (here, a restart), the request goes again on a new connection, once, as a
    transparent resend rather than a retry (max_retries is 0)."""
    s = Stack(workers=1, settings={"max_retries": 0})
    try:
        r = summarize(s.base, "warm up")
        before = s.emu.stats()["connections_accepted"]
        codes = [summarize(s.base, "kept %d" % i)[0] for i in range(5)]
        st = Stream("POST", s.base + "/stream", json.dumps({"text": "kept stream"}), SSE)
        evs = sse_events(st.read_all())
        after = s.emu.stats()["connections_accepted"]
        # each stats() call is a connection of its own: the second one is the only new one
        tap.ok(r[0] == 200 and codes == [200] * 5 and evs and evs[-1][0] == "done" and after - before == 1,
               "six requests after the first open no upstream connection", (r[0], codes, after - before))
        port = s.emu.port
        Proc.stop(s.emu.proc.pid)
        s.emu = s.add(Emulator(s.tmp, port=port))
        r = summarize(s.base, marker("kept-restart") + " after a restart")
        tap.ok(r[0] == 200 and s.emu.stats("kept-restart")["attempts"] == 1,
               "a kept connection the upstream closed: the request is sent again on a new one", r[0])
        st = Stream("POST", s.base + "/stream", json.dumps({"text": "and a stream"}), SSE)
        evs = sse_events(st.read_all())
        tap.ok(evs and evs[-1][0] == "done", "the new connection is kept too", [e[0] for e in evs][-1:])
        acc = s.pool.access()[-2]
        tap.eq(acc.get("attempts"), 1, "the resend is not an attempt of its own")
    finally:
        s.stop()


def check_lifecycle(tap):
    s = Stack(pool="prefork", workers=3, settings={"grace_period": 10, "max_retries": 0},
              config="model = claude-sonnet-5-5\n")
    try:
        b, pool = s.base, s.pool
        st, _, js, _ = http_json("GET", b + "/healthz")
        tap.ok(st == 200 and js.get("workers", {}).get("total") == 3, "/healthz reports the pool's size", js)
        before = pool.pids()
        victim = before[0]
        os.kill(victim, signal.SIGKILL)

        def respawned():
            now = pool.pids()  # one snapshot: the victim may still be listed until it is reaped
            return len(now) == 3 and victim not in now
        try:
            wait_for(respawned, timeout=8, what="respawn")
        except RuntimeError:
            pass
        tap.ok(respawned(), "a SIGKILLed worker is respawned", "%s\n%s" % (pool.pids(), pool.log_text()[-1500:]))
        ok = sum(summarize(b, "after kill %d" % i)[0] == 200 for i in range(10))
        tap.eq(ok, 10, "the pool keeps answering")

        # SIGHUP during traffic: nothing lost, the new configuration takes over
        results, stop = [], threading.Event()

        def traffic():
            while not stop.is_set():
                r = summarize(b, "reload traffic")
                results.append((r[0], r[2].get("model") if r[2] else None))
        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        pool.write_config("model = claude-haiku-5-5\n")
        os.kill(pool.parent, signal.SIGHUP)
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(30)
        bad = [r for r in results if r[0] != 200]
        tap.ok(len(results) > 20 and not bad, "SIGHUP during traffic: %d requests, none lost" % len(results), bad[:5])
        r = summarize(b, "after reload")
        tap.eq(r[2] and r[2].get("model"), "claude-haiku-5-5", "the reloaded configuration is in effect")
        pool.write_config("model = model-c\nbogus_key = 1\n")
        os.kill(pool.parent, signal.SIGHUP)
        time.sleep(0.5)
        r = summarize(b, "after a bad reload")
        tap.ok(r[0] == 200 and r[2].get("model") == "claude-haiku-5-5", "an invalid configuration is refused; the old one stays", r[3])
        tap.ok("reload refused" in pool.log_text() and "bogus_key" in open(os.path.join(s.tmp, "prefork.out")).read(),
               "the refusal is logged with the reason")

        # SIGUSR1: logrotate moved the file; the workers reopen it
        os.rename(pool.log_file, pool.log_file + ".1")
        os.kill(pool.parent, signal.SIGUSR1)
        time.sleep(0.3)
        for i in range(4):
            summarize(b, "after reopen")
        try:
            wait_for(lambda: os.path.exists(pool.log_file) and "access" in pool.log_text(), timeout=5, what="new log")
        except RuntimeError:
            pass
        tap.ok(os.path.exists(pool.log_file) and "access" in pool.log_text(), "SIGUSR1 reopens the log file")

        def ids_match():
            # A worker writes its access line just after the answer left, so wait for it.
            ids = {a["req"] for a in pool.access()}
            lines = [l for l in pool.log_text().splitlines() if " req=" in l]
            return bool(ids and lines) and all(re.search(r" req=([0-9a-f]+):", l).group(1) in ids
                                               for l in lines)
        try:
            wait_for(ids_match, timeout=5, what="access lines")
        except RuntimeError:
            pass
        acc = pool.access()
        tap.ok(ids_match(), "every request's log lines carry its id", pool.log_text()[-1500:])
        tap.ok(all(set(a) >= {"route", "status", "attempts", "ttft_ms", "duration_ms", "input_tokens",
                              "output_tokens", "cancelled"} for a in acc), "access lines have the documented fields")
        tap.ok("reload traffic" not in pool.log_text() + open(pool.log_file + ".1").read(), "prompts are never logged")

    finally:
        s.stop()

    s = Stack(pool="prefork", workers=6, settings={"grace_period": 10, "max_retries": 0})
    try:
        b, pool = s.base, s.pool
        streams = [Stream("POST", b + "/stream", json.dumps({"text": marker("term%d" % i, words=20, delay=100) + " x y"}), SSE)
                   for i in range(5)]
        time.sleep(0.4)
        os.kill(pool.parent, signal.SIGTERM)
        done = 0
        for st in streams:
            evs = sse_events(st.read_all())
            done += bool(evs) and evs[-1][0] == "done" and sum(e[0] == "delta" for e in evs) == 20
        tap.eq(done, 5, "SIGTERM during 5 streams: all 5 finish whole")
        try:
            wait_for(lambda: pool.proc.poll() is not None, timeout=12, what="pool exit")
        except RuntimeError:
            pass
        tap.ok(pool.proc.poll() is not None, "then the pool exits")
    finally:
        s.stop()

    s = Stack(pool="prefork", workers=2, settings={"max_requests": 5, "max_retries": 0})
    try:
        before = s.pool.pids()
        ok = sum(summarize(s.base, "recycle %d" % i)[0] == 200 for i in range(30))
        tap.eq(ok, 30, "max_requests: 30 requests through 2 workers that retire after 5, none lost")
        tap.ok(not set(before) & set(s.pool.pids()), "the workers were replaced", (before, s.pool.pids()))
    finally:
        s.stop()

    s = Stack(pool="prefork", workers=3, settings={"when_full": "shed", "max_retries": 0})
    try:
        b = s.base
        streams = [Stream("POST", b + "/stream", json.dumps({"text": marker("shed%d" % i, ttft=3000, words=2) + " x"}), SSE)
                   for i in range(2)]
        st, _, js, _ = http_json("GET", b + "/healthz")
        tap.ok(st == 200 and js["workers"] == {"busy": 3, "total": 3}, "a full pool still answers /healthz, busy 3/3", js)
        r = summarize(b, "shed me")
        tap.ok(r[0] == 503 and r[2]["error"]["type"] == "overloaded_error" and r[1].get("retry-after"),
               "when_full = shed: a model call gets 503 + Retry-After at once", (r[0], r[1], r[3]))
        tap.eq(s.emu.stats()["attempts"], 2, "the shed call never reached the upstream")
        for st in streams:
            st.read_all()
        tap.eq(summarize(b, "room again")[0], 200, "with a free worker again, calls go through")
    finally:
        s.stop()


def main(tap):
    check_timeouts(tap)
    check_retries(tap)
    check_kept_connection(tap)
    check_lifecycle(tap)


run_tests(main)
