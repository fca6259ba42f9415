#!/usr/bin/env python3
"""Issue 5, scale-out: two prefork pools on TCP (127.0.0.2 and 127.0.0.3 stand in for two
hosts; spawn-fcgi -a ADDR -p PORT -n -- llm-fcgi -c 2), behind lighttpd's fastcgi.server host
list (conf/lighttpd/llm-fcgi-hosts.conf), Apache mod_proxy_balancer with fcgi:// members
(conf/apache/llm-fcgi-balancer.conf) and an nginx upstream block (conf/nginx/llm-fcgi.conf).
Requests are spread over both pools; one pool is killed (SIGKILL, the host dies) during a loop
of requests in threads: every request started after the kill succeeds through the other pool,
and the few in flight on the killed one are counted; once the pool is back it gets requests
again. The pools accept FastCGI only from the web server's address (FCGI_WEB_SERVER_ADDRS)."""
import json
import os
import threading
import time

import fcgi_client as fc
import harness
from harness import (Apache, Lighttpd, Nginx, PreforkPool, Stack, expected_answer, free_port, http_json, marker,
                     run_tests, wait_for)

HOSTS = ("127.0.0.2", "127.0.0.3")


class Traffic:
    """Threads sending /summarize requests back to back; each result is (start, end, status,
    ok, body start, emulator id), ok meaning a 200 with the right summary."""

    def __init__(self, base, threads=4, words=4, delay_ms=60, tag="tr"):
        self.base = base
        self.results = []
        self.lock = threading.Lock()
        self.running = True
        self.words, self.delay_ms, self.tag = words, delay_ms, tag
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def _loop(self, i):
        n = 0
        while self.running:
            n += 1
            rid = "%s-%d-%d" % (self.tag, i, n)
            text = marker(rid, words=self.words, delay=self.delay_ms) + " w%d x%d" % (i, n)
            t0 = time.time()
            raw = b""
            try:
                st, _, js, raw = http_json("POST", self.base + "/summarize", json.dumps({"text": text}),
                                           {"Content-Type": "application/json"})
                ok = st == 200 and js.get("summary") == expected_answer(text, self.words)
            except Exception as e:  # noqa: BLE001 - a failed request is a result
                st, ok = repr(e), False
            with self.lock:
                self.results.append((t0, time.time(), st, ok, raw[:120], rid))

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(30)
        return sorted(self.results)


def start_pool(tmp, emu, i, port):
    return PreforkPool(tmp, emu.url, workers=2, settings={"max_retries": 0}, name="pool%d" % i, config=None,
                       tcp=(HOSTS[i], port), env_extra={"FCGI_WEB_SERVER_ADDRS": "127.0.0.1"})


def served(pool):
    return len([a for a in pool.access() if a.get("route") == "/summarize"])


def check_failover(tap, where, base, emu, pools, restart, recovery_s):
    n = [served(p) for p in pools]
    traffic = Traffic(base, threads=4, words=4, delay_ms=60, tag="so" + where.split()[0])
    time.sleep(1.2)
    got = [served(p) - k for p, k in zip(pools, n)]
    tap.ok(all(g > 0 for g in got), "%s: concurrent requests are spread over both pools %s" % (where, got))
    before_b = served(pools[1])
    t_kill = time.time()
    pools[0].kill()
    t_dead = time.time()
    time.sleep(1.5)
    results = traffic.stop()
    after = [r for r in results if r[0] > t_dead]
    before = [r for r in results if r[1] < t_kill]
    # In flight: started before the kill was over (killpg returned and the supervisor was
    # reaped), still running when it began.
    inflight = [r for r in results if r[0] <= t_dead and r[1] >= t_kill]
    failed = [r for r in results if not r[3]]
    tap.ok(len(before) >= 8 and all(r[3] for r in before),
           "%s: %d requests before the kill, all 200" % (where, len(before)))
    tap.ok(len(after) >= 8 and all(r[3] for r in after),
           "%s: every request started after the kill succeeds (%d of %d)"
           % (where, sum(r[3] for r in after), len(after)),
           [(round(r[0] - t_kill, 3), r[2], r[4]) for r in after if not r[3]])
    tap.ok(all(r in inflight for r in failed),
           "%s: the only failures were in flight at the kill: %d of %d in flight failed"
           % (where, len(failed), len(inflight)), [(round(r[0] - t_kill, 3), round(r[1] - t_kill, 3), r[2], r[4]) for r in failed])
    tap.diag("%s: in flight at the kill: %d, failed: %d (%s)" % (where, len(inflight), len(failed),
                                                               ", ".join("%s %r" % (r[2], r[4][:60]) for r in failed) or "none"))
    tap.ok(served(pools[1]) - before_b >= len(after), "%s: the surviving pool served them" % where)
    twice = [r for r in results if emu.stats(r[5]).get("attempts", 0) > 1]
    tap.eq(twice, [], "%s: no request reached the upstream twice" % where)

    pools[0] = restart()
    n0 = served(pools[0])
    t0 = time.time()

    def back():
        http_json("POST", base + "/summarize", json.dumps({"text": "back"}), {"Content-Type": "application/json"})
        return served(pools[0]) > n0
    try:
        wait_for(back, timeout=recovery_s + 8, step=0.25, what="the restarted pool to get requests")
    except RuntimeError:
        pass
    tap.ok(served(pools[0]) > n0, "%s: the restarted pool gets requests again (after %.1f s)"
           % (where, time.time() - t0))


def check_source_address(tap, port):
    """The pools answer FastCGI from the web server's address only."""
    ok = fc.request((HOSTS[0], port), fc.cgi_params("GET", "/healthz"), timeout=5, source="127.0.0.1")
    tap.ok(b'"status":"ok"' in ok.body, "a pool answers FastCGI from 127.0.0.1 (FCGI_WEB_SERVER_ADDRS)", ok)
    bad = fc.request((HOSTS[0], port), fc.cgi_params("GET", "/healthz"), timeout=5, source="127.0.0.5")
    tap.eq(bad.stdout, b"", "... and closes a connection from any other address (127.0.0.5) unanswered")


def main(tap):
    with Stack(web=None, pool=None) as s:
        tmp, emu = s.tmp, s.emu
        ports = [free_port(h) for h in HOSTS]
        pools = [s.add(start_pool(tmp, emu, i, ports[i])) for i in range(2)]

        def restart():
            return s.add(start_pool(tmp, emu, 0, ports[0]))
        check_source_address(tap, ports[0])

        members = [("10.0.0.2:9000", "%s:%d" % (HOSTS[0], ports[0])), ("10.0.0.3:9000", "%s:%d" % (HOSTS[1], ports[1]))]
        edits = [('"host" => "%s", "port" => 9000' % m.split(":")[0],
                  '"host" => "%s", "port" => %s' % tuple(h.split(":"))) for m, h in members]
        conf = harness.copy_with_edits(os.path.join(harness.CONF, "lighttpd", "llm-fcgi-hosts.conf"),
                                       os.path.join(tmp, "llm-fcgi-hosts.conf"), edits)
        with Lighttpd(tmp, "", "/ai/", "lighttpd-hosts.conf.in", {"HOSTS_CONF": conf}) as web:
            check_failover(tap, "lighttpd host list /ai/", web.base, emu, pools, restart, 5)

        conf = harness.copy_with_edits(os.path.join(harness.CONF, "apache", "llm-fcgi-balancer.conf"),
                                       os.path.join(tmp, "llm-fcgi-balancer.conf"),
                                       [("fcgi://" + m, "fcgi://" + h) for m, h in members])
        with Apache(tmp, ["proxy", "proxy_fcgi", "proxy_balancer", "slotmem_shm", "lbmethod_bybusyness", "headers"],
                    {"LLM_FCGI_PREFIX": "/"}, [conf]) as web:
            check_failover(tap, "Apache balancer /", web.url, emu, pools, restart, 5)

        with Nginx(tmp, ["%s fail_timeout=5s" % h for _, h in members], "/") as web:
            check_failover(tap, "nginx upstream /", web.url, emu, pools, restart, 5)


run_tests(main)
