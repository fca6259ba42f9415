#!/usr/bin/env python3
"""Issue 5, Apache mod_proxy_fcgi in front of the prefork pool (conf/apache/llm-fcgi-proxy.conf;
spawn-fcgi -n -- llm-fcgi -c N), at the site root and under /ai/: sync, 404/405, /healthz
busy/total, a same-origin browser request, the body limits. Streaming through mod_proxy_fcgi is
proven by test_stream_apache.py; one text stream here checks it with the prefork pool."""
import harness
import streaming
from harness import Apache, Stack, run_tests


def main(tap):
    with Stack(web=None, pool="prefork", config=None, settings={"max_retries": 0}) as s:
        for prefix in ("/", "/ai/"):
            with Apache(s.tmp, ["proxy", "proxy_fcgi", "headers"],
                        {"LLM_FCGI_PREFIX": prefix, "LLM_FCGI_SOCKET": s.pool.sock}, ["llm-fcgi-proxy.conf"]) as web:
                where, tag = "mod_proxy_fcgi %s" % prefix, "px" + prefix.replace("/", "_")
                harness.check_basics(tap, where, web.base, s.emu, tag + "sync", workers=2)
                harness.check_same_origin(tap, where, web.base)
                streaming.check_text_stream(tap, where, web.base, s.pool, tag + "text")
                if prefix == "/":
                    harness.big_body_check(tap, where, web.base, s.emu, tag + "big")


run_tests(main)
