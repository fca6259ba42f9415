#!/usr/bin/env python3
"""Spend control on Redis end to end: two pools on two sockets, each behind its own lighttpd,
share one redis-server started here (a free loopback port, no persistence) and enforce one rate
limit and one budget together; then Redis stops answering (SIGSTOP) and goes away (SIGKILL)
mid-run: the pool with limits_store_down = allow answers uncounted, the one with deny answers 503
with Retry-After, and no request waits much past the store's timeout; a new Redis on the same
port brings the counting back. Skips without redis-server."""
import json
import os
import shutil
import signal
import subprocess
import time

from harness import (LLM_FCGI, Emulator, Lighttpd, Managed, Pool, Proc, RedisMonitor, free_port,
                     http, marker, new_tmp, port_open, q, remove_tmp, run_tests, spawn, wait_for)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TIMEOUT = 0.2  # limits_store_timeout
# Every identity has a limit, so every request asks the store before the upstream.
LIMITS = ("* usd_per_day=100\n"
          "addr:10.0.0.1 rpm=5\n"
          "addr:10.0.0.2 usd_per_day=0.000001\n")


class Redis(Managed):
    def __init__(self, tmp, port):
        self.port = port
        self.proc = spawn(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", tmp], log=os.path.join(tmp, "redis-%d.log" % port))
        wait_for(lambda: port_open(port), timeout=15, what="redis-server")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            Proc.stop(self.proc.pid)


def summarize(base, text, who, timeout=30):
    t0 = time.time()
    st, h, body = http("POST", base + "/summarize", "text=" + q(text),
                       dict(FORM, **{"X-Forwarded-For": who}), timeout=timeout)
    return st, h, body, time.time() - t0


def away_from_minute_edge():
    s = time.time() % 60
    if s > 45:
        time.sleep(61 - s)


def usage(env):
    out = subprocess.run([LLM_FCGI, "usage", "--by", "who", "--json"], env=env, capture_output=True,
                         text=True, timeout=30)
    return {r["who"]: r for r in json.loads(out.stdout)} if out.returncode == 0 else {"error": out.stderr}


def settled(pool, who, n):
    """Waits until pool's access log has n lines for who. A worker adds a request's spend just
    before it writes that line, after the client already has the answer: a request sent at once
    to the other pool is still one in flight, which the documented overshoot allows."""
    wait_for(lambda: sum(r.get("who") == who for r in pool.access()) >= n, timeout=10,
             what="the spend of %s counted" % who)


def check_shared(tap, emu, pa, a, b):
    away_from_minute_edge()
    codes = []
    for i in range(8):
        st, _, _, _ = summarize((a, b)[i % 2].base, marker("rpm-%d" % i) + " hello", "10.0.0.1")
        codes.append(st)
    tap.eq(codes, [200] * 5 + [429] * 3, "rpm=5 over two pools on one Redis: requests alternating "
           "between them, exactly five pass")
    tap.eq([emu.stats("rpm-%d" % i)["attempts"] for i in range(5, 8)], [0, 0, 0],
           "the refused ones never reached the upstream")
    st1, _, _, _ = summarize(a.base, marker("usd-a") + " hello", "10.0.0.2")
    settled(pa, "addr:10.0.0.2", 1)
    st2, _, body, _ = summarize(b.base, marker("usd-b") + " hello", "10.0.0.2")
    tap.ok(st1 == 200 and st2 == 429 and b"daily budget" in body,
           "a budget spent through pool A is refused by pool B", (st1, st2, body))
    tap.eq(emu.stats("usd-b")["attempts"], 0, "and pool B's refusal never reached the upstream")


def check_round_trips(tap, pa, a, port, n=20):
    """What a request costs Redis, counted by Redis (MONITOR): spend's checks are one batch, before
    the upstream; its settling is held back and goes with the metrics counters in a second, before
    the access log line: two EVALSHA, two round trips, and nothing else."""
    mon = RedisMonitor(port)
    try:
        before = mon.settled(quiet=0.3)
        codes = [summarize(a.base, marker("rt-%d" % i) + " hello", "10.0.0.20")[0] for i in range(n)]
        settled(pa, "addr:10.0.0.20", n)
        after = mon.settled()
    finally:
        mon.stop()
    commands = after[0] - before[0]
    by = {k: v - before[1].get(k, 0) for k, v in after[1].items() if v != before[1].get(k, 0)}
    # The allowance: a worker that (re)connects sends SELECT and two SCRIPT LOADs, once.
    tap.ok(codes == [200] * n and by.get("EVALSHA") == 2 * n and commands <= 2 * n + 6,
           "Redis sees %d requests as %d commands, %.2f round trips a request (checks; settling "
           "and metrics: one EVALSHA each; the others: %s)"
           % (n, commands, commands / n, {k: v for k, v in by.items() if k != "EVALSHA"} or "none"),
           (codes, by))


def check_outage(tap, emu, allow, deny, how, tag):
    got = {}
    for name, web in (("allow", allow), ("deny", deny)):
        got[name] = [summarize(web.base, marker("%s-%s-%d" % (tag, name, i)) + " hello", "10.0.0.%d" % (3 + i))
                     for i in range(3)]
    slowest = max(r[3] for rs in got.values() for r in rs)
    tap.ok(all(r[0] == 200 for r in got["allow"]),
           "Redis %s, limits_store_down = allow: answered uncounted" % how, [r[:3] for r in got["allow"]])
    tap.ok(all(r[0] == 503 and r[1].get("retry-after") == "1" and b"limits store" in r[2] for r in got["deny"]),
           "Redis %s, deny: 503 with Retry-After 1, saying why" % how, [r[:3] for r in got["deny"]])
    tap.eq([emu.stats("%s-allow-%d" % (tag, i))["attempts"] for i in range(3)], [1, 1, 1],
           "Redis %s: the allowed ones reached the upstream once each" % how)
    tap.eq([emu.stats("%s-deny-%d" % (tag, i))["attempts"] for i in range(3)], [0, 0, 0],
           "Redis %s: the refused requests never reached the upstream" % how)
    # limits_store_timeout is 0.2 s; a request makes a few store calls, the first failure marks the
    # store down for a second. 10 s is far past all of that and far short of a hang.
    tap.ok(slowest < 10, "Redis %s: no request hangs (the slowest took %.2f s)" % (how, slowest))


def main(tap):
    if not shutil.which("redis-server"):
        tap.skip("spend control on Redis", "redis-server is not installed")
        return
    tmp = new_tmp()
    started = []
    try:
        emu = Emulator(tmp)
        started.append(emu)
        port = free_port()
        redis = Redis(tmp, port)
        started.append(redis)
        limits = os.path.join(tmp, "limits")
        with open(limits, "w") as f:
            f.write(LIMITS)
        pools = []
        for name, down in (("allow", "allow"), ("deny", "deny")):
            pool = Pool(tmp, emu.url, workers=2, name=name, settings={
                "limits_file": limits, "limits_store": "redis://127.0.0.1:%d/3" % port,
                "limits_store_down": down, "limits_store_timeout": TIMEOUT, "trusted_proxies": "127.0.0.1"})
            started.append(pool)
            web = Lighttpd(tmp, pool.sock, "/")
            started.append(web)
            pools.append((pool, web))
        (pa, a), (pb, b) = pools
        check_shared(tap, emu, pa, a, b)
        u = usage(pa.env)
        tap.ok(u.get("addr:10.0.0.1", {}).get("requests") == 5 and u.get("addr:10.0.0.2", {}).get("requests") == 1,
               "llm-fcgi usage on the Redis store sees both pools' requests", u)
        check_round_trips(tap, pa, a, port)

        redis.signal(signal.SIGSTOP)
        check_outage(tap, emu, a, b, "stopped (SIGSTOP)", "stop")
        redis.signal(signal.SIGCONT)
        redis.signal(signal.SIGKILL)
        redis.proc.wait(10)
        check_outage(tap, emu, a, b, "gone (SIGKILL)", "gone")
        tap.ok("limits store unreachable" in pa.log_text() and "let through uncounted" in pa.log_text()
               and "refused" in pb.log_text(), "each pool logs the outage and what it did")

        redis = Redis(tmp, port)
        started.append(redis)
        time.sleep(1.5)  # each worker tries again a second after its last failure (STORE_REDIS_RETRY_S)
        wait_for(lambda: summarize(b.base, marker("back") + " hello", "10.0.0.9")[0] == 200, timeout=30,
                 what="pool B answering once Redis is back")
        done = sum(r.get("who") == "addr:10.0.0.2" for r in pa.access())
        st1, _, _, _ = summarize(a.base, marker("back-a") + " hello", "10.0.0.2")
        settled(pa, "addr:10.0.0.2", done + 1)
        st2, _, _, _ = summarize(b.base, marker("back-b") + " hello", "10.0.0.2")
        tap.eq((st1, st2), (200, 429), "a new Redis (empty) on the same port: counting is back, budget and all")
    finally:
        for thing in reversed(started):
            thing.stop()
        remove_tmp(tmp)


run_tests(main)
