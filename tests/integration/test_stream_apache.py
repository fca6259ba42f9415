#!/usr/bin/env python3
"""Issue 3 through Apache: mod_proxy_fcgi in front of a spawn-fcgi pool, and mod_fcgid spawning
the workers itself. Text and SSE streams arrive delta by delta, one flush per delta, byte-exact;
mid-stream failures and disconnects behave as through lighttpd."""
import streaming
from harness import Stack, run_tests

# Apache notices a client that left only when its next write to it fails: the keep-alive
# comment (every keepalive_interval = 1 s here) is that write, and it may take two of them.
APACHE_SILENT_BOUND = 3.5


def main(tap):
    with Stack(web="apache-proxy", prefix="/", workers=3, settings={"keepalive_interval": 1, "max_retries": 0}) as s:
        where = "mod_proxy_fcgi /"
        streaming.check_text_stream(tap, where, s.base, s.pool, "ap-text")
        streaming.check_sse_stream(tap, where, s.base, s.pool, "ap-sse")
        streaming.check_failures(tap, where, s.base, "ap-fail")
        streaming.check_disconnects(tap, where, s.base, s.emu, "ap-dc")
        streaming.check_silent_disconnect(tap, where, s.base, s.emu, "ap-silent", APACHE_SILENT_BOUND)
    with Stack(web="apache-proxy", prefix="/ai/", workers=2, settings={"max_retries": 0}) as s:
        streaming.check_text_stream(tap, "mod_proxy_fcgi /ai/", s.base, s.pool, "ap-ai-text")
        streaming.check_sse_stream(tap, "mod_proxy_fcgi /ai/", s.base, s.pool, "ap-ai-sse")
    with Stack(web="apache-fcgid", prefix="/ai/", settings={"keepalive_interval": 1, "max_retries": 0}) as s:
        where = "mod_fcgid /ai/"
        streaming.check_text_stream(tap, where, s.base, s.pool, "fc-text")
        streaming.check_sse_stream(tap, where, s.base, s.pool, "fc-sse")
        streaming.check_failures(tap, where, s.base, "fc-fail")
        streaming.check_disconnects(tap, where, s.base, s.emu, "fc-dc")
        streaming.check_silent_disconnect(tap, where, s.base, s.emu, "fc-silent", APACHE_SILENT_BOUND)
    with Stack(web="apache-fcgid", prefix="/", settings={"max_retries": 0}) as s:
        streaming.check_text_stream(tap, "mod_fcgid /", s.base, s.pool, "fc-root-text")
        streaming.check_sse_stream(tap, "mod_fcgid /", s.base, s.pool, "fc-root-sse")


run_tests(main)
