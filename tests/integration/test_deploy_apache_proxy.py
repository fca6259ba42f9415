#!/usr/bin/env python3
"""Issue 5, Apache mod_proxy_fcgi in front of the prefork pool (conf/apache/llm-fcgi-proxy.conf;
spawn-fcgi -n -- llm-fcgi -c N), at the site root and under /ai/: sync, 404/405, /healthz
busy/total, a same-origin browser request, the body limits. Streaming through mod_proxy_fcgi is
proven by test_stream_apache.py; one text stream here checks it with the prefork pool."""
from harness import Emulator, run_tests
import servers
import streaming
from servers import ApacheSite, SpawnFcgiPool


def main(tap):
    tmp = servers.new_tmp()
    emu = Emulator(tmp)
    pool = SpawnFcgiPool(tmp, emu.url, workers=2, settings={"max_retries": 0})
    try:
        for prefix in ("/", "/ai/"):
            body = ("Define LLM_FCGI_PREFIX %s\nDefine LLM_FCGI_SOCKET %s\n"
                    "Include @CONF@/apache/llm-fcgi-proxy.conf\n" % (prefix, pool.sock))
            web = ApacheSite(tmp, ["proxy", "proxy_fcgi", "headers"], body)
            base = web.url + prefix.rstrip("/")
            where = "mod_proxy_fcgi %s" % prefix
            tag = "px" + prefix.replace("/", "_")
            try:
                servers.check_sync(tap, where, base, emu, tag + "sync")
                servers.check_errors(tap, where, base, emu)
                servers.check_healthz(tap, where, base, workers=2)
                servers.check_same_origin(tap, where, base)
                streaming.check_text_stream(tap, where, base, pool, tag + "text")
                if prefix == "/":
                    servers.big_body_check(tap, where, base, emu, tag + "big")
            finally:
                web.stop()
    finally:
        pool.stop()
        emu.stop()
        servers.remove_tmp(tmp)


run_tests(main)
