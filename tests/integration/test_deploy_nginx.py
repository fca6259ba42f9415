#!/usr/bin/env python3
"""Issue 5, nginx: conf/nginx/llm-fcgi.conf inside a location, fastcgi_pass to an upstream block
naming the prefork pool's socket, at the site root and under /ai/. Sync, text and SSE streams
delta by delta (one flush per delta, byte-exact), 404/405, /healthz, a same-origin browser
request on a non-default port, GET with nginx's CONTENT_LENGTH "", and the body limit."""
from harness import Emulator, run_tests
import servers
import streaming
from servers import SpawnFcgiPool, Nginx


def main(tap):
    tmp = servers.new_tmp()
    emu = Emulator(tmp)
    pool = SpawnFcgiPool(tmp, emu.url, workers=2, settings={"max_retries": 0})
    try:
        for prefix in ("/", "/ai/"):
            web = Nginx(tmp, ["unix:" + pool.sock], prefix)
            base = web.url + prefix.rstrip("/")
            where = "nginx %s" % prefix
            tag = "ng" + prefix.replace("/", "_")
            try:
                servers.check_sync(tap, where, base, emu, tag + "sync")
                servers.check_errors(tap, where, base, emu)
                servers.check_healthz(tap, where, base, workers=2)
                streaming.check_text_stream(tap, where, base, pool, tag + "text")
                # GET /stream (EventSource): nginx passes CONTENT_LENGTH "" on a GET.
                streaming.check_sse_stream(tap, where + (" GET" if prefix == "/" else ""), base, pool, tag + "sse",
                                           get=prefix == "/")
                servers.check_same_origin(tap, where, base)
                if prefix == "/":
                    servers.big_body_check(tap, where, base, emu, tag + "big")
            finally:
                web.stop()
    finally:
        pool.stop()
        emu.stop()
        servers.remove_tmp(tmp)


run_tests(main)
