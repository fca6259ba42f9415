#!/usr/bin/env python3
"""Issue 10 (an outside review of b525240): streams, numbers, secrets and logs.

- item 4: every SSE stream, also one with no text or one that fails before its first delta,
  gives EventSource an id and a long retry, so its reconnect carries Last-Event-ID (204) and
  buys no second answer;
- item 9: GET /stream without Accept: text/event-stream (an <img> or <script> tag) is 406;
- item 11: an upstream retry-after of 1e23 reaches the client as a sane Retry-After;
- item 14: the key is in no worker's /proc/PID/environ, survives a reload, and an upstream error
  *type* that quotes it is scrubbed like its message;
- item 15: SIGUSR1 still reopens the log after a reload whose log_file could not be opened, and
  switching the log to stderr closes the file."""
import json
import os
import re
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fcgi_client as fc
from harness import (API_KEY, LLM_FCGI, Stack, children, clean_env, http, marker, q,
                     run_tests, spawn, wait_for)

J = "application/json"
SSE = {"Accept": "text/event-stream", "Content-Type": J}
DAY_MS = 86400000


def eventsource(body):
    """What a WHATWG EventSource makes of a body: (last event id, retry ms or None, events).
    Every blank line sets the last event id from the id buffer, even when no event dispatches."""
    last, buf_id, retry, events, data, ev = "", "", None, [], [], ""
    for line in body.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"):
        if line == "":
            last = buf_id
            if data:
                events.append((ev or "message", "\n".join(data)))
            data, ev = [], ""
            continue
        if line.startswith(":"):
            continue
        k, _, v = line.partition(":")
        v = v[1:] if v.startswith(" ") else v
        if k == "event":
            ev = v
        elif k == "data":
            data.append(v)
        elif k == "id" and "\0" not in v:
            buf_id = v
        elif k == "retry" and v.isdigit():
            retry = int(v)
    return last, retry, events


def check_reconnect_guard(tap, s):
    """Item 4: streams without text still leave an id and a day's retry; the reconnect is 204."""
    emu = s.emu
    cases = [("no text, POST", "POST", marker("es-empty", words=0) + " nothing", None),
             ("no text, GET", "GET", marker("es-empty-get", words=0) + " nothing", None),
             ("error before any delta", "POST", marker("es-err0", fault="error-mid:0") + " a b", "error")]
    for name, method, text, last_event in cases:
        tag = re.search(r"id=([\w.-]+)", text).group(1)
        if method == "POST":
            st, h, b = http("POST", s.base + "/stream", json.dumps({"text": text}), SSE)
        else:
            st, h, b = http("GET", s.base + "/stream?text=" + q(text), headers={"Accept": "text/event-stream"})
        last, retry, events = eventsource(b)
        names = [e[0] for e in events]
        tap.ok(st == 200 and names[-1:] == [last_event or "done"] and "delta" not in names,
               "SSE, %s: 200, no delta, ends with %s" % (name, last_event or "done"), (st, b[-300:]))
        tap.ok(last != "", "SSE, %s: EventSource has a Last-Event-ID to send on reconnect" % name, b[:200])
        tap.ok(retry is not None and retry >= DAY_MS,
               "SSE, %s: retry >= a day (got %s ms)" % (name, retry), b[:200])
        st, _, _ = http("GET", s.base + "/stream?text=" + q(text),
                        headers={"Accept": "text/event-stream", "Last-Event-ID": last or "x"})
        tap.eq(st, 204, "SSE, %s: the reconnect EventSource makes -> 204" % name)
        tap.eq(emu.stats(tag)["attempts"], 1, "SSE, %s: one paid call, not one per reconnect" % name)


def check_accept(tap, s):
    """Item 9: over plain HTTP an <img>/<script> GET has no Origin and no Sec-Fetch-Site."""
    text = marker("img-get") + " paid words"
    for accept in ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "*/*", None):
        hdrs = {"Accept": accept} if accept else {}
        st, h, b = http("GET", s.base + "/stream?text=" + q(text), headers=hdrs)
        err = (json.loads(b) if h.get("content-type", "").startswith(J) else {}).get("error", {})
        tap.ok(st == 406 and err.get("type") == "invalid_request_error" and "Accept" in err.get("message", ""),
               "GET /stream with Accept %r -> 406 invalid_request_error naming the header" % accept, (st, b[:200]))
    tap.eq(s.emu.stats("img-get")["attempts"], 0, "the 406s never reached the upstream")
    st, _, b = http("POST", s.base + "/stream", json.dumps({"text": "plain words"}), {"Content-Type": J})
    tap.ok(st == 200 and b.startswith(b"plain words"), "POST /stream without Accept: still text/plain", (st, b[:80]))


def check_retry_after(tap, s):
    """Item 11: 1e23 seconds became Retry-After: -9223372036854775808."""
    huge = "99999999999999999999999"
    for name, kw in (("retry-after", {"retry_after": huge}), ("retry-after-ms", {"retry_after_ms": huge})):
        text = marker("ra-" + name, fault=429, **kw) + " words"
        st, h, b = http("POST", s.base + "/summarize", json.dumps({"text": text}), {"Content-Type": J})
        ra = h.get("retry-after", "")
        tap.ok(st == 429 and ra.isdigit() and 1 <= int(ra) <= 86400,
               "upstream %s: %s -> 429 with Retry-After in 1..86400 (got %r)" % (name, huge, ra), (st, h))
        body = {"model": "claude-sonnet-5-5", "max_tokens": 8,
                "messages": [{"role": "user", "content": text}]}
        st, h, b = http("POST", s.base + "/v1/messages", json.dumps(body),
                        {"Content-Type": J, "anthropic-version": "2023-06-01"})
        ra = h.get("retry-after", "")
        tap.ok(st == 429 and ra.isdigit() and 1 <= int(ra) <= 86400,
               "/v1/messages, upstream %s: %s -> Retry-After in 1..86400 (got %r)" % (name, huge, ra), (st, h))


def environ_clean(tap, pids, where):
    """A worker scrubs the key as it starts, before it takes a request; spawn-fcgi's workers may
    still be starting when the test looks, so each gets a few seconds to get there."""
    for pid in pids:
        def read_env():
            with open("/proc/%d/environ" % pid, "rb") as f:
                return f.read()
        try:
            wait_for(lambda: API_KEY.encode() not in read_env(), timeout=10, what="the scrub")
        except RuntimeError:
            pass
        env = read_env()
        tap.ok(API_KEY.encode() not in env, "%s: the key is not in /proc/%d/environ" % (where, pid),
               [e for e in env.split(b"\0") if b"ANTHROPIC" in e])


class KeyQuoting(BaseHTTPRequestHandler):
    """An upstream whose error *type* quotes the key it was sent."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        err = {"type": "error", "error": {"type": "bad_key_" + self.headers.get("x-api-key", ""),
                                          "message": "no"}}
        if '"stream":true' in body.replace(" ", ""):
            start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                          "content": [], "model": "m",
                                                          "usage": {"input_tokens": 1, "output_tokens": 1}}}
            out = ("event: message_start\ndata: %s\n\nevent: error\ndata: %s\n\n"
                   % (json.dumps(start), json.dumps(err))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
        else:
            out = json.dumps(err).encode()
            self.send_response(418)
            self.send_header("Content-Type", J)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


def check_type_scrubbed(tap):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), KeyQuoting)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    s = Stack(workers=1, upstream="http://127.0.0.1:%d" % srv.server_address[1],
              settings={"max_retries": 0})
    try:
        seen = []
        seen.append(http("POST", s.base + "/summarize", json.dumps({"text": "hi"}), {"Content-Type": J}))
        seen.append(http("POST", s.base + "/stream", json.dumps({"text": "hi"}), SSE))
        seen.append(http("POST", s.base + "/stream", json.dumps({"text": "hi"}), {"Content-Type": J}))
        seen.append(http("POST", s.base + "/v1/chat/completions", json.dumps(
            {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "hi"}]}),
            {"Content-Type": J}))
        for (st, h, b), name in zip(seen, ("sync 418", "SSE error event", "text error line", "chat 418")):
            tap.ok(st in (200, 418, 502) and API_KEY.encode() not in b and b"bad_key_" in b,
                   "an upstream error type quoting the key, %s: relayed scrubbed" % name, (st, b[-300:]))
        log = s.pool.log_text()
        tap.ok(API_KEY not in log, "... and the key is not in the log",
               [ln for ln in log.splitlines() if API_KEY in ln][:3])
    finally:
        s.stop()
        srv.shutdown()


def check_log_reopen(tap, emu):
    """Item 15, on the prefork parent: a reload to an unopenable log_file keeps the old log and
    its reopen; a reload to stderr closes the file."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="llm-fcgi-it.")
    log, conf, sock = os.path.join(tmp, "app.log"), os.path.join(tmp, "app.conf"), os.path.join(tmp, "app.sock")

    def configure(log_file):
        with open(conf, "w") as f:
            f.write("log_file = %s\nlog_level = debug\nupstream_url = %s\n" % (log_file, emu.url))

    configure(log)
    env = clean_env({"ANTHROPIC_API_KEY": API_KEY})
    p = spawn(["spawn-fcgi", "-s", sock, "-M", "0666", "-n", "--", LLM_FCGI, "-c", "2", "-f", conf],
              env=env, log=os.path.join(tmp, "out"))
    try:
        wait_for(lambda: len(children(p.pid)) == 2 and os.path.exists(sock), what="2 prefork workers")
        pids = children(p.pid)
        r = fc.request(sock, fc.cgi_params("POST", "/summarize", J, 14), b'{"text":"hi"}\n')
        tap.ok(r.status == 200, "prefork: a summary works with the key from the environment", r)
        environ_clean(tap, [p.pid] + pids, "prefork")
        configure(os.path.join(tmp, "missing", "app.log"))
        os.kill(p.pid, signal.SIGHUP)
        wait_for(lambda: "cannot open log_file" in open(log).read(), what="the failed reload logged")
        wait_for(lambda: len(children(p.pid)) == 2 and not set(children(p.pid)) & set(pids),
                 what="a new generation of workers")
        r = fc.request(sock, fc.cgi_params("POST", "/summarize", J, 14), b'{"text":"hi"}\n')
        tap.ok(r.status == 200, "after SIGHUP: the key is still there (200)", r)
        environ_clean(tap, children(p.pid), "after SIGHUP")
        os.rename(log, log + ".1")
        os.kill(p.pid, signal.SIGUSR1)
        try:
            wait_for(lambda: os.path.exists(log), timeout=5, what="the reopened log")
        except RuntimeError:
            pass
        tap.ok(os.path.exists(log), "SIGUSR1 after a reload whose log_file failed: the log is reopened")
        configure("")
        os.kill(p.pid, signal.SIGHUP)

        def open_logs():
            out = []
            for fd in os.listdir("/proc/%d/fd" % p.pid):
                try:
                    out.append(os.readlink("/proc/%d/fd/%s" % (p.pid, fd)))
                except OSError:
                    pass
            return [t for t in out if t.startswith(log)]
        try:
            wait_for(lambda: not open_logs(), timeout=5, what="the log file closed")
        except RuntimeError:
            pass
        tap.eq(open_logs(), [], "reload to log_file = \"\" (stderr): the parent holds no log descriptor")
    finally:
        from harness import Proc
        Proc.stop(p.pid, grace=15)


def main(tap):
    s = Stack(workers=2, settings={"max_retries": 0})
    try:
        check_reconnect_guard(tap, s)
        check_accept(tap, s)
        check_retry_after(tap, s)
        environ_clean(tap, s.pool.pids(), "spawn-fcgi workers")
        check_log_reopen(tap, s.emu)
    finally:
        s.stop()
    check_type_scrubbed(tap)


run_tests(main)
