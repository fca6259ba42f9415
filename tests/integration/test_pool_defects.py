#!/usr/bin/env python3
"""Issue 10, items 3, 7, 8 and 13: the prefork pool spoken to in raw FastCGI on its socket.

3. a worker SIGKILLed mid-request leaves no phantom busy worker (/healthz, when_full = shed);
7. SIGHUP while a body is still arriving and a stream is back-pressured: both complete;
8. SIGHUP to a configuration with workers = 0 is refused, and the pool keeps serving;
13. a peer that stalls (one byte, or part of a body) loses its connection after
   client_read_timeout, and the worker serves the next request."""
import json
import os
import signal
import socket
import struct
import time

import fcgi_client as fc
from harness import PreforkPool, Stack, marker, run_tests, sse_events, wait_for

J = "application/json"


def healthz(sock, timeout=10):
    return fc.request(sock, fc.cgi_params("GET", "/healthz"), timeout=timeout)


def summarize(sock, text, timeout=20):
    body = json.dumps({"text": text}).encode()
    return fc.request(sock, fc.cgi_params("POST", "/summarize", J, len(body)), body, timeout=timeout)


def connect(sock):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(sock)
    return c


def begin_and_params(params):
    return (fc.record(fc.BEGIN_REQUEST, struct.pack(">HB5x", fc.RESPONDER, 0))
            + fc.stream_records(fc.PARAMS, fc.encode_params(params)))


def closed_within(c, timeout):
    """True when the peer answered or closed the connection within timeout."""
    c.settimeout(timeout)
    try:
        return c.recv(65536) is not None
    except socket.timeout:
        return False
    except OSError:
        return True


def check_phantom_busy(tap, tmp, emu):
    """Item 3: the busy count survives no dead worker."""
    pool = PreforkPool(tmp, emu.url, workers=2, settings={"when_full": "shed", "max_retries": 0},
                       name="phantom")
    held = None
    try:
        sock = pool.sock
        body = json.dumps({"text": marker("phantom", ttft=60000, words=2) + " x"}).encode()
        held = connect(sock)
        held.sendall(fc.encode_request(fc.cgi_params("POST", "/stream", J, len(body),
                                                     extra={"HTTP_ACCEPT": "text/event-stream"}), body))

        def busy():
            return (healthz(sock).json() or {}).get("workers", {}).get("busy")
        # The stream must be in flight before the first /healthz: with when_full = shed, a stream
        # arriving while the other worker answers a /healthz finds every worker busy and is shed.
        try:
            wait_for(lambda: emu.stats("phantom")["attempts"] == 1, timeout=10, what="the stream in flight")
        except RuntimeError:
            pass
        tap.eq(busy(), 2, "phantom: a worker in a stream and the /healthz one: busy 2")
        before = pool.pids()
        for pid in before:
            os.kill(pid, signal.SIGKILL)

        def respawned():
            now = pool.pids()
            return len(now) == 2 and not set(now) & set(before)
        try:
            wait_for(respawned, timeout=10, what="respawn")
        except RuntimeError:
            pass
        tap.ok(respawned(), "phantom: both SIGKILLed workers are respawned", pool.pids())
        js = healthz(sock).json() or {}
        tap.eq(js.get("workers"), {"busy": 1, "total": 2},
               "phantom: after the kill /healthz counts only itself busy")
        r = summarize(sock, "after the kill")
        tap.ok(r.status == 200, "phantom: when_full = shed: an idle pool serves a model call (no 503)",
               (r.status, r.body[:200]))
    finally:
        if held:
            held.close()
        pool.stop()


def in_syscall(pids, numbers):
    """PIDs whose current system call is one of numbers (from /proc/PID/syscall)."""
    out = []
    for pid in pids:
        try:
            with open("/proc/%d/syscall" % pid) as f:
                first = f.read().split()[0]
        except (OSError, IndexError):
            continue
        if first.isdigit() and int(first) in numbers:
            out.append(pid)
    return out


READ, WRITE = 0, 1  # x86_64 system call numbers


def check_reload_in_flight(tap, tmp, emu):
    """Item 7: a reload interrupts no read or write of a request in flight."""
    pool = PreforkPool(tmp, emu.url, workers=3, settings={"max_retries": 0, "grace_period": 30},
                       config="model = claude-sonnet-5-5\n", name="inflight")
    up = st = None
    try:
        sock = pool.sock
        # A body arriving slowly: half now, the rest after the reload.
        text = marker("slow-body") + " " + "word " * 2000
        body = json.dumps({"text": text}).encode()
        half = len(body) // 2
        up = connect(sock)
        up.sendall(begin_and_params(fc.cgi_params("POST", "/summarize", J, len(body)))
                   + fc.record(fc.STDIN, body[:half]))
        # A stream whose client does not read: the worker's write blocks on a full socket.
        words = 8000
        sbody = json.dumps({"text": marker("pressed", words=words) + " a b c", "max_tokens": words}).encode()
        st = connect(sock)
        st.sendall(fc.encode_request(fc.cgi_params("POST", "/stream", J, len(sbody),
                                                   extra={"HTTP_ACCEPT": "text/event-stream"}), sbody))
        old = pool.pids()
        try:
            wait_for(lambda: in_syscall(old, {READ}) and in_syscall(old, {WRITE}), timeout=10,
                     what="one worker blocked reading, one writing")
        except RuntimeError:
            pass
        tap.diag("blocked in read: %s, in write: %s" % (in_syscall(old, {READ}), in_syscall(old, {WRITE})))
        pool.write_config("model = claude-haiku-5-5\n")
        os.kill(pool.parent, signal.SIGHUP)
        try:
            wait_for(lambda: len(set(pool.pids()) - set(old)) == 3, timeout=10, what="new generation")
        except RuntimeError:
            pass
        time.sleep(0.5)  # the old generation has had its SIGTERM
        try:
            up.sendall(fc.stream_records(fc.STDIN, body[half:]))
        except OSError as e:
            tap.diag("sending the rest of the body: %s" % e)
        r = fc.read_response(up, timeout=20)
        tap.ok(r.status == 200 and (r.json() or {}).get("summary"),
               "reload: a body still arriving during SIGHUP completes (200 with the summary)",
               (r.status, r.body[:300]))
        r = fc.read_response(st, timeout=30)
        evs = sse_events(r.body)
        deltas = sum(e[0] == "delta" for e in evs)
        tap.ok(r.status == 200 and evs and evs[-1][0] == "done" and deltas == words,
               "reload: a back-pressured stream during SIGHUP completes whole (%d deltas, then done)" % words,
               (r.status, deltas, evs[-1:] if evs else r.body[-300:]))
        r = summarize(sock, "after the reload")
        tap.ok(r.status == 200 and (r.json() or {}).get("model") == "claude-haiku-5-5",
               "reload: the new configuration is in effect", (r.status, r.body[:200]))
    finally:
        for c in (up, st):
            if c:
                c.close()
        pool.stop()


def check_reload_zero(tap, tmp, emu):
    """Item 8: a reload to workers = 0 is refused; the old generation keeps serving."""
    pool = PreforkPool(tmp, emu.url, workers=None, config="workers = 2\nmodel = claude-sonnet-5-5\n",
                       settings={"max_retries": 0}, name="filepool", expect=2)
    try:
        sock = pool.sock
        tap.eq(summarize(sock, "before").status, 200, "workers = 0: the pool serves before the reload")
        pool.write_config("workers = 0\nmodel = claude-haiku-5-5\n")
        os.kill(pool.parent, signal.SIGHUP)
        time.sleep(1.0)
        try:
            r = summarize(sock, "after", timeout=10)
            got = (r.status, (r.json() or {}).get("model"))
        except fc.FcgiTimeout as e:
            got = ("timeout", str(e))
        tap.eq(got, (200, "claude-sonnet-5-5"), "workers = 0: after SIGHUP the old configuration still serves")
        tap.eq(len(pool.pids()), 2, "workers = 0: the pool still has its 2 workers")
        tap.ok("workers = 0" in pool.log_text() and "reload refused" in pool.log_text(),
               "workers = 0: the refusal is logged", pool.log_text()[-800:])
    finally:
        pool.stop()


def check_stalled_peer(tap, tmp, emu):
    """Item 13: stalled peers pin no worker beyond client_read_timeout."""
    pool = PreforkPool(tmp, emu.url, workers=2, settings={"client_read_timeout": 2, "max_retries": 0},
                       name="stall")
    conns = []
    try:
        sock = pool.sock
        one = connect(sock)
        one.sendall(b"\x01")  # one byte of a record header, then nothing
        conns.append(one)
        part = connect(sock)
        part.sendall(begin_and_params(fc.cgi_params("POST", "/summarize", J, 100))
                     + fc.record(fc.STDIN, b'{"text": "'))
        conns.append(part)
        time.sleep(0.5)  # both workers now wait on them
        try:
            r = healthz(sock, timeout=20)
            got = r.status
        except fc.FcgiTimeout as e:
            got = "timeout: %s" % e
        tap.eq(got, 200, "stall: with both workers held by stalled peers, /healthz is served after the bound")
        tap.ok(closed_within(one, 20), "stall: a peer that sent one byte is dropped")
        tap.ok(closed_within(part, 20), "stall: a peer that stopped mid-body gets its connection closed")
        tap.eq(summarize(sock, "after the stalls").status, 200, "stall: the pool serves model calls afterwards")
    finally:
        for c in conns:
            c.close()
        pool.stop()


def main(tap):
    with Stack(web=None, pool=None) as s:
        check_phantom_busy(tap, s.tmp, s.emu)
        check_reload_in_flight(tap, s.tmp, s.emu)
        check_reload_zero(tap, s.tmp, s.emu)
        check_stalled_peer(tap, s.tmp, s.emu)


run_tests(main)
