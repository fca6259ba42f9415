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
import time

from harness import Emulator, free_port, http_json, run_tests, wait_for
import servers
from servers import ApacheSite, LighttpdSite, Nginx, SpawnFcgiPool, Traffic

HOSTS = ("127.0.0.2", "127.0.0.3")


def start_pool(tmp, emu, i, port):
    return SpawnFcgiPool(tmp, emu.url, workers=2, settings={"max_retries": 0}, name="pool%d" % i,
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


def main(tap):
    tmp = servers.new_tmp()
    emu = Emulator(tmp)
    ports = [free_port(h) for h in HOSTS]
    pools = [start_pool(tmp, emu, i, ports[i]) for i in range(2)]

    def restart():
        return start_pool(tmp, emu, 0, ports[0])
    try:
        # The pools answer FastCGI from the web server's address only.
        ok = servers.fastcgi_request(HOSTS[0], ports[0], {"REQUEST_METHOD": "GET", "REQUEST_URI": "/healthz"},
                                     source="127.0.0.1")
        tap.ok(b'"status":"ok"' in ok, "a pool answers FastCGI from 127.0.0.1 (FCGI_WEB_SERVER_ADDRS)", ok[:200])
        bad = servers.fastcgi_request(HOSTS[0], ports[0], {"REQUEST_METHOD": "GET", "REQUEST_URI": "/healthz"},
                                      source="127.0.0.5")
        tap.eq(bad, b"", "... and closes a connection from any other address (127.0.0.5) unanswered")

        members = [("10.0.0.2:9000", "%s:%d" % (HOSTS[0], ports[0])), ("10.0.0.3:9000", "%s:%d" % (HOSTS[1], ports[1]))]
        edits = [('"host" => "%s", "port" => 9000' % m.split(":")[0],
                  '"host" => "%s", "port" => %s' % tuple(h.split(":"))) for m, h in members]
        conf = servers.copy_with_edits(os.path.join(servers.CONF, "lighttpd", "llm-fcgi-hosts.conf"),
                                       os.path.join(tmp, "llm-fcgi-hosts.conf"), edits)
        web = LighttpdSite(tmp, "lighttpd-hosts.conf.in", "/ai/", "", {"HOSTS_CONF": conf})
        try:
            check_failover(tap, "lighttpd host list /ai/", web.url + "/ai", emu, pools, restart, 5)
        finally:
            web.stop()

        conf = servers.copy_with_edits(os.path.join(servers.CONF, "apache", "llm-fcgi-balancer.conf"),
                                       os.path.join(tmp, "llm-fcgi-balancer.conf"),
                                       [("fcgi://" + m, "fcgi://" + h) for m, h in members])
        web = ApacheSite(tmp, ["proxy", "proxy_fcgi", "proxy_balancer", "slotmem_shm", "lbmethod_bybusyness",
                               "headers"], "Define LLM_FCGI_PREFIX /\nInclude %s\n" % conf)
        try:
            check_failover(tap, "Apache balancer /", web.url, emu, pools, restart, 5)
        finally:
            web.stop()

        web = Nginx(tmp, ["%s fail_timeout=5s" % h for _, h in members], "/")
        try:
            check_failover(tap, "nginx upstream /", web.url, emu, pools, restart, 5)
        finally:
            web.stop()
    finally:
        for p in pools:
            p.stop()
        emu.stop()
        servers.remove_tmp(tmp)


run_tests(main)
