#!/usr/bin/env python3
"""Issue 5, nginx: conf/nginx/llm-fcgi.conf inside a location, fastcgi_pass to an upstream block
naming the prefork pool's socket, at the site root and under /ai/. Sync, text and SSE streams
delta by delta (one flush per delta, byte-exact), 404/405, /healthz, a same-origin browser
request on a non-default port, GET with nginx's CONTENT_LENGTH "", and the body limit."""
import harness
import streaming
from harness import Nginx, Stack, run_tests


def main(tap):
    with Stack(web=None, pool="prefork", config=None, settings={"max_retries": 0}) as s:
        for prefix in ("/", "/ai/"):
            with Nginx(s.tmp, ["unix:" + s.pool.sock], prefix) as web:
                where, tag = "nginx %s" % prefix, "ng" + prefix.replace("/", "_")
                harness.check_basics(tap, where, web.base, s.emu, tag + "sync", workers=2)
                streaming.check_text_stream(tap, where, web.base, s.pool, tag + "text")
                # GET /stream (EventSource): nginx passes CONTENT_LENGTH "" on a GET.
                streaming.check_sse_stream(tap, where + (" GET" if prefix == "/" else ""), web.base, s.pool,
                                           tag + "sse", get=prefix == "/")
                harness.check_same_origin(tap, where, web.base)
                if prefix == "/":
                    harness.big_body_check(tap, where, web.base, s.emu, tag + "big")


run_tests(main)
