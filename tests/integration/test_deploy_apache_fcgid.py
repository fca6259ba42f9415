#!/usr/bin/env python3
"""Issue 5, Apache mod_fcgid spawning the workers (conf/apache/llm-fcgi-fcgid.conf), at the site
root and under /ai/: sync, 404/405, /healthz, a same-origin browser request, and the body
limits (FcgidMaxRequestLen matches the largest limit: a body just under 1 MiB reaches the
upstream, one just over gets llm-fcgi's JSON 413, one over 32 MiB mod_fcgid's 500). Streaming
through mod_fcgid is proven by test_stream_apache.py."""
from harness import ApacheFcgidStack, run_tests
import servers


def main(tap):
    for prefix in ("/", "/ai/"):
        s = ApacheFcgidStack(prefix=prefix, settings={"max_retries": 0})
        where = "mod_fcgid %s" % prefix
        tag = "fc" + prefix.replace("/", "_")
        try:
            servers.check_sync(tap, where, s.base, s.emu, tag + "sync")
            servers.check_errors(tap, where, s.base, s.emu)
            servers.check_healthz(tap, where, s.base)
            servers.check_same_origin(tap, where, s.base)
            if prefix == "/ai/":
                # mod_fcgid has no 413: above FcgidMaxRequestLen it answers 500.
                servers.big_body_check(tap, where, s.base, s.emu, tag + "big", over_status=500)
        finally:
            s.stop()


run_tests(main)
