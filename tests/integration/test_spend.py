#!/usr/bin/env python3
"""Spend control through lighttpd with real workers and the emulator: the usage of a cancelled
stream, rate-limit and budget refusals in every dialect (none reaches the upstream), workers
racing to spend one small budget, budgets surviving a pool restart, a foreign state file, and the
operator's usage report. The store is the state file unless LLM_TEST_LIMITS_STORE names another
(redis://...), so the same checks run against every backend."""
import json
import os
import subprocess
import threading

from harness import (LLM_FCGI, Lighttpd, Managed, Pool, Stack, Stream, http, marker, new_tmp, q,
                     remove_tmp, run_tests, wait_for)

STORE = os.environ.get("LLM_TEST_LIMITS_STORE", "")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


REDIS_DBS = {}  # a settings directory's Redis database: its own counters, as a state file's


def store_for(tmp):
    """STORE with a database of tmp's own: Redis's counters outlive a stack, and one check's spend
    must not be the next one's (the pool restarted on the same directory gets the same one)."""
    base, _, db = STORE.rpartition("/")
    if not db.isdigit():
        return STORE
    n = REDIS_DBS.setdefault(tmp, len(REDIS_DBS))
    return "%s/%d" % (base, (int(db) + n) % 16)


def settings(tmp, limits, extra=None):
    path = os.path.join(tmp, "limits")
    with open(path, "w") as f:
        f.write(limits)
    s = {"limits_file": path, "state_file": os.path.join(tmp, "state")}
    if STORE:
        s["limits_store"] = store_for(tmp)
    s.update(extra or {})
    return s


class TmpDir(Managed):
    """A directory for the limits and state files, removed when the stack stops."""

    def __init__(self):
        self.path = new_tmp()

    def stop(self):
        remove_tmp(self.path)


def stack(limits, workers=2, extra=None):
    d = TmpDir()
    try:
        s = Stack(workers=workers, settings=settings(d.path, limits, extra))
    except BaseException:
        d.stop()
        raise
    s.started.insert(0, d)
    s.files = d.path
    return s


def summarize(base, text, headers=None):
    h = dict(FORM)
    h.update(headers or {})
    return http("POST", base + "/summarize", "text=" + q(text), h)


def check_cancelled_stream(tap):
    """The defect: a stream cancelled after 49 deltas logged output_tokens 0. No spend settings:
    the usage is counted whatever is configured (and this runs against older builds too)."""
    with Stack(workers=2) as s:
        text = marker("cut", words=400, delay=20) + " x"
        st = Stream("POST", s.base + "/stream", "text=" + q(text), FORM, timeout=60)
        got = b""
        while got.count(b" ") < 48 and not st.eof:  # 49 deltas: "w1", " w2", ...
            got += st.read_some()
        st.close()
        wait_for(lambda: any(a.get("cancelled") for a in s.pool.access()), timeout=15,
                 what="the cancelled stream's access line")
        a = [a for a in s.pool.access() if a.get("cancelled")][0]
        tap.ok(a["delta_flushes"] >= 49, "cancelled stream: %d deltas relayed" % a["delta_flushes"], a)
        tap.ok(a["output_tokens"] >= a["delta_flushes"],
               "cancelled after %d deltas: output_tokens %d, not 0" % (a["delta_flushes"], a["output_tokens"]), a)
        tap.ok(a.get("output_tokens_estimated") is True, "marked output_tokens_estimated", a)
        tap.ok(a.get("who", "").startswith("addr:"), "the access line says who: %s" % a.get("who"), a)
        tap.ok(a.get("cost_usd", 0) > 0, "and what it cost: $%s" % a.get("cost_usd"), a)


def check_rate_limit(tap):
    with stack("* rpm=3\n") as s:
        codes = [summarize(s.base, marker("rl-%d" % i) + " hello")[0] for i in range(3)]
        tap.eq(codes, [200, 200, 200], "rpm=3: three requests in a minute pass")
        st, h, body = summarize(s.base, marker("rl-over") + " hello")
        js = json.loads(body)
        ra = int(h.get("retry-after", "0"))
        tap.ok(st == 429 and 1 <= ra <= 60, "the fourth is 429 with Retry-After %d (to the minute's end)" % ra,
               (st, h, body))
        tap.eq(h.get("x-should-retry"), "false", "x-should-retry: false")
        tap.ok("3 requests per minute" in js["error"]["message"] and "addr:" in js["error"]["message"],
               "the message says which limit and for whom", js)
        tap.eq(s.emu.stats("rl-over")["attempts"], 0, "the refused request never reached the upstream")
        st, h, body = http("POST", s.base + "/v1/messages", json.dumps(
            {"model": "claude-sonnet-5-5", "max_tokens": 10,
             "messages": [{"role": "user", "content": "hi"}]}), {"Content-Type": "application/json"})
        js = json.loads(body)
        tap.ok(st == 429 and js.get("type") == "error" and js["error"]["type"] == "rate_limit_error",
               "Anthropic dialect: rate_limit_error", (st, body))
        st, h, body = http("POST", s.base + "/v1/chat/completions", json.dumps(
            {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "hi"}]}),
            {"Content-Type": "application/json"})
        js = json.loads(body)
        tap.ok(st == 429 and js["error"]["code"] == "rate_limit_exceeded",
               "OpenAI dialect: code rate_limit_exceeded", (st, body))
        a = [a for a in s.pool.access() if a["status"] == 429]
        tap.ok(a and all(x.get("refused") == "rpm" for x in a), "the access lines say refused: rpm", a)


def cost_of_one(s):
    st, _, _ = summarize(s.base, marker("probe") + " hello")
    wait_for(lambda: any(a.get("cost_usd") for a in s.pool.access()), what="a cost")
    return [a for a in s.pool.access() if a.get("cost_usd")][0]["cost_usd"]


def check_budget_race(tap):
    """8 workers race to spend one small daily budget: the overshoot is bounded by the requests
    in flight (8), counted at the emulator."""
    with stack("", workers=8) as probe:
        c = cost_of_one(probe)
    budget = c * 5.5
    with stack("server usd_per_day=%.6f\n" % budget, workers=8) as s:
        results = []
        lock = threading.Lock()

        def client(i):
            for j in range(6):
                st, h, body = summarize(s.base, marker("race-%d-%d" % (i, j)) + " hello")
                with lock:
                    results.append((st, h, body))
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        ok = sum(1 for r in results if r[0] == 200)
        refused = [r for r in results if r[0] == 429]
        upstream = s.emu.stats()["attempts"]
        tap.eq(ok + len(refused), 48, "48 requests: each answered or refused")
        tap.eq(upstream, ok, "the emulator saw exactly the answered ones (%d)" % ok)
        need = 6  # the sixth crosses 5.5 requests' worth
        tap.ok(need <= ok <= need + 8 - 1 + 1,
               "budget of %.1f requests: %d answered, overshoot %d <= 8 in flight" % (5.5, ok, ok - need),
               results[:3])
        tap.ok(refused and "daily budget" in refused[0][2].decode() and "this server" in refused[0][2].decode(),
               "a budget refusal says whose and which budget", refused[:1])
        ra = int(refused[0][1].get("retry-after", "0")) if refused else 0
        tap.ok(1 <= ra <= 86400, "Retry-After %d s: until midnight UTC" % ra)
        st, _, body = http("POST", s.base + "/v1/chat/completions", json.dumps(
            {"model": "claude-sonnet-5-5", "messages": [{"role": "user", "content": "hi"}]}),
            {"Content-Type": "application/json"})
        js = json.loads(body)
        tap.ok(st == 429 and js["error"]["code"] == "insufficient_quota",
               "OpenAI dialect: a spent budget is insufficient_quota", body)
        # The counters outlive the pool: a new pool on the same state file still refuses.
        s.pool.stop()
        s.web.stop()
        pool = s.add(Pool(s.tmp, s.emu.url, workers=2, name="again",
                          settings=settings(s.files, "server usd_per_day=%.6f\n" % budget)))
        web = s.add(Lighttpd(s.tmp, pool.sock, "/"))
        st, _, _ = summarize(web.base, marker("after-restart") + " hello")
        tap.eq(st, 429, "after a pool restart the budget is still spent")
        tap.eq(s.emu.stats("after-restart")["attempts"], 0, "and nothing reached the upstream")
        if not STORE:
            env = dict(pool.env)
            out = subprocess.run([LLM_FCGI, "budget", "*", "raise", "%.6f" % (c * ok)], env=env,
                                 capture_output=True, text=True, timeout=30)
            tap.eq(out.returncode, 0, "llm-fcgi budget '*' raise: %s%s" % (out.stdout, out.stderr))
            st, _, _ = summarize(web.base, marker("raised") + " hello")
            tap.eq(st, 200, "after the raise a request passes again")
            out = subprocess.run([LLM_FCGI, "usage", "--by", "who", "--json"], env=env,
                                 capture_output=True, text=True, timeout=30)
            rows = json.loads(out.stdout) if out.returncode == 0 else []
            tap.ok(rows and rows[0]["who"].startswith("addr:") and rows[0]["requests"] >= ok,
                   "llm-fcgi usage --json: %s" % rows, out.stderr)


def check_foreign_state(tap):
    import harness
    tmp = harness.new_tmp()
    try:
        path = os.path.join(tmp, "state")
        with open(path, "w") as f:
            f.write("not a state file\n" * 100)
        os.chmod(path, 0o600)
        env = harness.pool_env(tmp, "http://127.0.0.1:1", os.path.join(tmp, "log"),
                               {"state_file": path})
        out = subprocess.run([LLM_FCGI, "--check"], env=env, capture_output=True, text=True, timeout=30)
        tap.ok(out.returncode == 1 and "not an llm-fcgi state file" in out.stderr,
               "--check refuses a foreign state file with a clear message", out.stderr)
        out = subprocess.run([LLM_FCGI, "-s", os.path.join(tmp, "s.sock")], env=env,
                             capture_output=True, text=True, timeout=30)
        log = harness.read(os.path.join(tmp, "log"))
        tap.ok(out.returncode == 1 and "not an llm-fcgi state file" in log,
               "the server refuses to start on it, saying why (exit %d)" % out.returncode, log)
    finally:
        harness.remove_tmp(tmp)


def main(tap):
    check_cancelled_stream(tap)
    check_rate_limit(tap)
    check_budget_race(tap)
    check_foreign_state(tap)


run_tests(main)
