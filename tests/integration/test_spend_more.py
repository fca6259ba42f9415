#!/usr/bin/env python3
"""Spend control end to end, the points test_spend.py leaves out: a budget surviving a SIGHUP of
the prefork supervisor (in the pool's memory, no state file); plain CGI processes and a pool
sharing one state file in both directions; workers SIGKILLed again and again while requests run,
leaving counters equal to what the emulator served, within the killed in-flight requests; tpm and
concurrent limits refused before the upstream; a worker killed holding a concurrent place leaking
nothing."""
import json
import os
import random
import signal
import subprocess
import threading
import time

from harness import (LLM_FCGI, Stack, Stream, http, marker, new_tmp, q, remove_tmp, run_tests,
                     wait_for)
from fcgi_client import cgi_params

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TINY = "0.000001"  # a budget the first request spends: the one after is refused


def limits_settings(tmp, limits, extra=None):
    path = os.path.join(tmp, "limits")
    with open(path, "w") as f:
        f.write(limits)
    s = {"limits_file": path}
    s.update(extra or {})
    return s


def stack_with(limits, extra=None, state=False, **kw):
    """A stack whose settings name a limits file (and with state, a state file) in a directory of
    its own, made before the pool starts and removed with the stack (s.files)."""
    d = new_tmp()
    settings = limits_settings(d, limits, extra)
    if state:
        settings["state_file"] = os.path.join(d, "state")
    try:
        s = Stack(settings=settings, **kw)
    except BaseException:
        remove_tmp(d)
        raise
    s.started.insert(0, type("Tmp", (), {"stop": lambda self: remove_tmp(d)})())
    s.files = d
    return s


def summarize(base, text, headers=None):
    h = dict(FORM)
    h.update(headers or {})
    return http("POST", base + "/summarize", "text=" + q(text), h)


def usage(env):
    out = subprocess.run([LLM_FCGI, "usage", "--by", "who", "--json"], env=env, capture_output=True,
                         text=True, timeout=30)
    return {r["who"]: r for r in json.loads(out.stdout)} if out.returncode == 0 else {"error": out.stderr}


def away_from_minute_edge():
    """Minute windows start over at :00; a check that needs one window waits out the last 15 s."""
    s = time.time() % 60
    if s > 45:
        time.sleep(61 - s)


# ---------------------------------------------------------------- SIGHUP

def check_sighup(tap):
    """The counters are the supervisor's: its next generation of workers keeps them, also when they
    live in the pool's memory (no state_file)."""
    with stack_with("* usd_per_day=%s\n" % TINY, workers=2, pool="prefork") as s:
        st, _, _ = summarize(s.base, marker("hup-1") + " hello")
        tap.eq(st, 200, "SIGHUP: the first request spends the budget")
        st, _, _ = summarize(s.base, marker("hup-2") + " hello")
        tap.eq(st, 429, "the next is refused")
        old = set(s.pool.pids())
        os.kill(s.pool.parent, signal.SIGHUP)
        wait_for(lambda: len(s.pool.pids()) == 2 and not old & set(s.pool.pids()), timeout=30,
                 what="a new generation of workers")
        st, _, body = summarize(s.base, marker("hup-3") + " hello")
        tap.ok(st == 429 and b"daily budget" in body,
               "after SIGHUP (new workers %s) the budget is still spent" % sorted(s.pool.pids()), body)
        tap.eq(s.emu.stats("hup-3")["attempts"], 0, "and the refused request never reached the upstream")
        tap.ok("counts alone" not in s.pool.log_text(), "the supervisor's workers share its memory: no warning")


def check_alone(tap):
    """spawn-fcgi -F starts each worker by itself: without a state file each would count alone, and
    the log says so (the counters of two workers would let twice the limit through)."""
    with stack_with("* rpm=100\n", workers=2) as s:
        wait_for(lambda: s.pool.log_text().count("counts alone") == 2, timeout=15, what="the warning")
        tap.ok(True, "limits_file, no state_file, no -c: each of the two workers warns it counts alone")
    with stack_with("* rpm=100\n", workers=2, state=True) as s:
        summarize(s.base, "hello")
        tap.ok("counts alone" not in s.pool.log_text(), "with a state_file: no warning")


# ---------------------------------------------------------------- plain CGI

def cgi(env, text, addr):
    """One plain-CGI request: llm-fcgi run with the request in its environment and body on stdin."""
    body = ("text=" + q(text)).encode()
    p = cgi_params("POST", "/summarize", FORM["Content-Type"], len(body),
                   extra={"REMOTE_ADDR": addr, "PATH_INFO": "", "SCRIPT_NAME": "/summarize"})
    out = subprocess.run([LLM_FCGI], env=dict(env, **p), input=body, capture_output=True, timeout=60)
    head = out.stdout.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = 200
    for line in head.split("\r\n"):
        if line.lower().startswith("status:"):
            status = int(line.split()[1])
    return status, out


def check_cgi(tap):
    """A pool and plain-CGI processes of the same user share the state file's counters, both ways.
    trusted_proxies lets the pool's requests name their client (X-Forwarded-For)."""
    with stack_with("* usd_per_day=%s\n" % TINY, {"trusted_proxies": "127.0.0.1"}, state=True) as s:
        env, web = s.pool.env, s.web
        st, out = cgi(env, marker("cgi-1") + " hello", "10.1.0.1")
        tap.ok(st == 200 and b"hello" in out.stdout, "plain CGI as 10.1.0.1 is answered and spends its budget",
               out.stdout[:300] + out.stderr[:300])
        st, _, body = summarize(web.base, marker("cgi-2") + " hello", {"X-Forwarded-For": "10.1.0.1"})
        tap.ok(st == 429 and b"addr:10.1.0.1" in body, "the pool refuses 10.1.0.1: CGI spent it", body)
        st, _, _ = summarize(web.base, marker("cgi-3") + " hello", {"X-Forwarded-For": "10.1.0.2"})
        tap.eq(st, 200, "the pool answers 10.1.0.2 and spends its budget")
        st, out = cgi(env, marker("cgi-4") + " hello", "10.1.0.2")
        tap.ok(st == 429 and b"addr:10.1.0.2" in out.stdout, "plain CGI refuses 10.1.0.2: the pool spent it",
               out.stdout[:500])
        tap.eq([s.emu.stats(i)["attempts"] for i in ("cgi-1", "cgi-2", "cgi-3", "cgi-4")], [1, 0, 1, 0],
               "only the two answered requests reached the upstream")
        u = usage(env)
        tap.ok(u.get("addr:10.1.0.1", {}).get("requests") == 1 and u.get("addr:10.1.0.2", {}).get("requests") == 1,
               "llm-fcgi usage counts one request for each, from either side", u)


# ---------------------------------------------------------------- SIGKILL in a loop

def check_kill_loop(tap):
    """Workers SIGKILLed while requests run: every answer is counted once, a request the kill cut
    is counted at most once, and the state file's lock and records survive every kill."""
    with stack_with("* usd_per_day=1000 rpm=1000000\nserver usd_per_day=1000\n", state=True, workers=4,
                    pool="prefork") as s:
        pool, web = s.pool, s.web
        stop = threading.Event()
        results = []
        lock = threading.Lock()

        def client(i):
            j = 0
            while not stop.is_set():
                st, _, _ = summarize(web.base, marker("kill-%d-%04d" % (i, j), delay=5) + " hello")
                with lock:
                    results.append(st)
                j += 1
        threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        kills = 0
        rnd = random.Random(13)
        try:
            wait_for(lambda: len(results) >= 10, timeout=60, what="traffic")
            for _ in range(25):
                pids = pool.pids()
                if pids:
                    try:
                        os.kill(rnd.choice(pids), signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                time.sleep(rnd.uniform(0.05, 0.3))
                wait_for(lambda: len(pool.pids()) == 4, timeout=30, what="the supervisor respawning")
        finally:
            stop.set()
            for t in threads:
                t.join(90)
        ok = results.count(200)
        served = s.emu.stats()["attempts"]
        u = usage(pool.env).get("addr:127.0.0.1", {})
        counted = u.get("requests", -1)
        tap.ok(ok > 20 and kills == 25, "%d requests answered, %d others, around %d SIGKILLs" %
               (ok, len(results) - ok, kills), results[-10:])
        tap.ok(ok <= counted <= served and served - counted <= kills,
               "counted %d: at least the %d answered, at most the %d the emulator served, short by at most "
               "the %d kills" % (counted, ok, served, kills), u)
        costs = {a["cost_usd"] for a in pool.access() if a.get("status") == 200 and a.get("cost_usd")}
        tap.ok(len(costs) == 1 and abs(u.get("cost_usd", 0) - counted * costs.pop()) < 1e-5,
               "the spend counted is exactly %d requests' worth: no add torn or doubled" % counted, (costs, u))
        taken = "took over the lock" in pool.log_text()
        tap.diag("a worker died holding the state file's lock: %s" % ("yes, taken over" if taken else "not this run"))
        st, _, _ = summarize(web.base, marker("after-kills") + " hello")
        u2 = usage(pool.env).get("addr:127.0.0.1", {})
        tap.ok(st == 200 and u2.get("requests") == counted + 1,
               "after the kills the store works: one more request, one more count (%s)" % u2.get("requests"), u2)


# ---------------------------------------------------------------- tpm and concurrent

def chat(base, text, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return http("POST", base + "/v1/chat/completions", json.dumps(
        {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": text}]}), h)


def check_tpm(tap):
    """tpm: tokens are added at the end of a request, so the request that crosses the limit
    completes and the next in the minute is refused."""
    with stack_with("* tpm=1\n", workers=2) as s:
        away_from_minute_edge()
        st, _, _ = summarize(s.base, marker("tpm-1") + " hello")
        wait_for(lambda: s.pool.access(), what="the first access line")
        a = s.pool.access()[-1]
        tap.ok(st == 200 and a["input_tokens"] + a["output_tokens"] > 1,
               "tpm=1: the first request passes and uses %d tokens" % (a["input_tokens"] + a["output_tokens"]), a)
        st, h, body = summarize(s.base, marker("tpm-over") + " hello")
        ra = int(h.get("retry-after", "0"))
        tap.ok(st == 429 and b"Token rate limit" in body and b"1 input and output tokens" in body
               and 1 <= ra <= 60, "the third is refused, Retry-After %d" % ra, (st, body))
        tap.eq(s.emu.stats("tpm-over")["attempts"], 0, "the refused request never reached the upstream")
        st, _, body = chat(s.base, "hi " + marker("tpm-chat"))
        js = json.loads(body)
        tap.ok(st == 429 and js["error"]["type"] == "tokens" and js["error"]["code"] == "rate_limit_exceeded",
               "OpenAI dialect: type tokens, code rate_limit_exceeded", js)
        a = [a for a in s.pool.access() if a["status"] == 429]
        tap.ok(a and all(x.get("refused") == "tpm" for x in a), "the access lines say refused: tpm", a)


def check_concurrent(tap):
    """concurrent=2 with four workers: two slow streams hold the places, a third request is
    refused at once; a place comes back when a stream ends, and a worker SIGKILLed holding one
    leaks nothing."""
    with stack_with("* concurrent=2\n", workers=4, pool="prefork") as s:
        slow = [Stream("POST", s.base + "/stream", "text=" + q(marker("cc-%d" % i, words=400, delay=50) + " x"),
                       FORM, timeout=60) for i in range(2)]
        for st in slow:
            st.read_some()
        wait_for(lambda: all(s.emu.stats("cc-%d" % i)["attempts"] == 1 for i in range(2)), timeout=30,
                 what="two streams upstream")
        st, h, body = summarize(s.base, marker("cc-over") + " hello")
        tap.ok(st == 429 and b"Concurrency limit" in body and b"2 requests at once" in body
               and h.get("retry-after") == "1", "a third request while two stream: 429, Retry-After 1", (st, h, body))
        tap.eq(s.emu.stats("cc-over")["attempts"], 0, "it never reached the upstream")
        st, _, body = chat(s.base, "hi " + marker("cc-chat"))
        tap.ok(st == 429 and json.loads(body)["error"]["code"] == "rate_limit_exceeded",
               "OpenAI dialect too", body)
        slow[0].close()
        wait_for(lambda: summarize(s.base, "free " + marker("cc-free"))[0] == 200, timeout=30,
                 what="a place after the first stream ended")
        tap.ok(True, "one stream closed: a request passes again")
        # The other stream's worker dies with its place: kill every worker (the one holding it
        # among them), the supervisor forks new ones, and both places are free.
        for pid in s.pool.pids():
            os.kill(pid, signal.SIGKILL)
        slow[1].close()
        wait_for(lambda: len(s.pool.pids()) == 4, timeout=30, what="new workers")
        a = Stream("POST", s.base + "/stream", "text=" + q(marker("cc-a", words=400, delay=50) + " x"), FORM, timeout=60)
        a.read_some()
        st, _, _ = summarize(s.base, marker("cc-b") + " hello")
        tap.eq(st, 200, "after the holder was SIGKILLed both places are free (a stream and a request run)")
        a.close()


def main(tap):
    check_sighup(tap)
    check_alone(tap)
    check_cgi(tap)
    check_tpm(tap)
    check_concurrent(tap)
    check_kill_loop(tap)


run_tests(main)
