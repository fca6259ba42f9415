#!/usr/bin/env python3
"""Issue 5, Apache mod_fcgid spawning the workers (conf/apache/llm-fcgi-fcgid.conf), at the site
root and under /ai/: sync, 404/405, /healthz, a same-origin browser request, and the body
limits (FcgidMaxRequestLen matches the largest limit: a body just under 1 MiB reaches the
upstream, one just over gets llm-fcgi's JSON 413, one over 32 MiB mod_fcgid's 500). Streaming
through mod_fcgid is proven by test_stream_apache.py."""
import harness
from harness import Stack, run_tests


def main(tap):
    for prefix in ("/", "/ai/"):
        with Stack(prefix=prefix, web="apache-fcgid", settings={"max_retries": 0}) as s:
            where, tag = "mod_fcgid %s" % prefix, "fc" + prefix.replace("/", "_")
            harness.check_basics(tap, where, s.base, s.emu, tag + "sync")
            harness.check_same_origin(tap, where, s.base)
            if prefix == "/ai/":
                # mod_fcgid has no 413: above FcgidMaxRequestLen it answers 500.
                harness.big_body_check(tap, where, s.base, s.emu, tag + "big", over_status=500)


run_tests(main)
