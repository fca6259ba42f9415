#!/usr/bin/env python3
"""An https upstream (nginx terminating TLS with a self-signed certificate in front of the
emulator): the certificate is checked against ca_file, whose store the prefork parent builds once
for all workers; each worker keeps its TLS connection, so requests cost no handshake."""
import json
import os
import subprocess
import threading
import time

from harness import (Lighttpd, PreforkPool, Emulator, Proc, free_port, http_json, marker,
                     port_open, render, run_tests, spawn, sse_events, Stream, wait_for)
import shutil
import tempfile


class TlsFront:
    def __init__(self, tmp, emu_port):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", os.path.join(tmp, "key.pem"), "-out", os.path.join(tmp, "cert.pem"),
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        for d in ("nginx-body", "nginx-proxy"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        self.port = free_port()
        conf = render("nginx-tls.conf.in", os.path.join(tmp, "nginx-tls.conf"),
                      {"DIR": tmp, "PORT": self.port, "EMU_PORT": emu_port})
        self.access = os.path.join(tmp, "nginx-tls-access.log")
        self.proc = spawn(["nginx", "-c", conf, "-p", tmp], log=os.path.join(tmp, "nginx-tls.out"))
        wait_for(lambda: port_open(self.port), what="nginx TLS front")
        self.url = "https://127.0.0.1:%d" % self.port

    def lines(self):
        try:
            with open(self.access) as f:
                return [l.split() for l in f if l.strip()]
        except FileNotFoundError:
            return []


def stack(tmp, emu, front, workers, settings):
    pool = PreforkPool(tmp, front.url, workers=workers, settings=settings, name="tls%d" % workers)
    web = Lighttpd(tmp, pool.sock)
    return pool, web


def check_concurrent_streams(tap, tmp, emu, front, n=16, rounds=3):
    """Streams at once over TLS, their records read ahead: OpenSSL may hold several of them when
    the worker would wait on the socket, and a worker that waits without asking OpenSSL first
    stalls until the idle timeout (on 2026-12-04 half of 80 streams did, when the worker did not
    know its connection's SSL*)."""
    pool, web = stack(tmp, emu, front, n, {"ca_file": os.path.join(tmp, "cert.pem"), "max_retries": 0,
                                           "idle_timeout": 5})
    results = []

    def one(i):
        t = time.time()
        try:
            st = Stream("POST", web.url + "/stream", json.dumps({"text": marker("tls-c%d" % i, words=64, delay=10) + " a b"}),
                        {"Accept": "text/event-stream", "Content-Type": "application/json"})
            evs = sse_events(st.read_all())
            ok = evs and evs[-1][0] == "done" and sum(e[0] == "delta" for e in evs) == 64
        except Exception:
            ok = False
        results.append((bool(ok), time.time() - t))

    for r in range(rounds):
        threads = [threading.Thread(target=one, args=(r * n + i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    bad = [round(d, 1) for ok, d in results if not ok or d > 3]
    tap.ok(len(results) == n * rounds and not bad,
           "%d streams of 64 deltas, %d at once over TLS: every one whole, none stalled" % (len(results), n),
           sorted(bad)[:10])
    pool.stop()
    web.stop()


def main(tap):
    tmp = tempfile.mkdtemp(prefix="llm-fcgi-it.")
    try:
        emu = Emulator(tmp)
        front = TlsFront(tmp, emu.port)
        pool, web = stack(tmp, emu, front, 2, {"ca_file": os.path.join(tmp, "cert.pem"), "max_retries": 0})
        J = {"Content-Type": "application/json"}
        n = 30
        ok = 0
        for i in range(n):
            st, _, js, _ = http_json("POST", web.url + "/summarize", json.dumps({"text": "tls %d" % i}), J)
            ok += st == 200 and js["summary"].startswith("tls")
        tap.eq(ok, n, "%d requests over an https upstream checked against ca_file" % n)
        st = Stream("POST", web.url + "/stream", json.dumps({"text": marker("tls-s", words=10, delay=20) + " a b"}),
                    {"Accept": "text/event-stream", "Content-Type": "application/json"})
        evs = sse_events(st.read_all())
        tap.ok(evs and evs[-1][0] == "done" and sum(e[0] == "delta" for e in evs) == 10, "a stream over TLS")
        try:
            wait_for(lambda: len(front.lines()) >= n + 1, timeout=5, what="nginx access lines")
        except RuntimeError:
            pass
        lines = front.lines()
        conns = {l[0] for l in lines}
        new_sessions = sum(1 for l in lines if l[1] == "1")
        tap.ok(len(lines) == n + 1, "nginx saw every request (%d)" % len(lines))
        tap.ok(len(conns) <= 2, "%d requests on %d TLS connections (one per worker): %.2f handshakes per request"
               % (len(lines), len(conns), new_sessions / max(len(lines), 1)), sorted(conns))
        tap.ok("cannot load CA" not in pool.log_text(), "the parent loaded the CA store")
        pool.stop()
        web.stop()

        check_concurrent_streams(tap, tmp, emu, front)

        # The same upstream without its CA: the certificate is refused, nothing is relayed.
        pool, web = stack(tmp, emu, front, 1, {"max_retries": 0})
        st, _, js, _ = http_json("POST", web.url + "/summarize", json.dumps({"text": "untrusted"}), J)
        tap.ok(st == 502 and js["error"]["type"] == "api_error", "an upstream certificate outside the CA store -> 502",
               (st, js))
        pool.stop()
        web.stop()

        bad = os.path.join(tmp, "not-a-ca.pem")
        with open(bad, "w") as f:
            f.write("not a certificate\n")
        env = dict(os.environ, ANTHROPIC_BASE_URL=front.url, LLM_FCGI_CA_FILE=bad)
        out = subprocess.run([__import__("harness").LLM_FCGI, "-s", os.path.join(tmp, "x.sock")], env=env,
                             capture_output=True, text=True, timeout=10)
        tap.ok(out.returncode != 0 and "cannot load CA certificates" in out.stderr,
               "an unreadable ca_file stops the program at start", out.stderr)
    finally:
        Proc.stop_all()
        if os.environ.get("LLM_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


run_tests(main)
