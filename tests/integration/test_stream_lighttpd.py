#!/usr/bin/env python3
"""Issue 3 through lighttpd + spawn-fcgi: text and SSE streams flushed per delta, mid-stream
failures, disconnects that cancel the upstream, keep-alive, cross-site protection."""
import streaming
from harness import Stack, run_tests


def main(tap):
    # keepalive_interval bounds how late lighttpd notices a client that left during upstream
    # silence (it closes the FastCGI connection only when a write to the client fails).
    with Stack(prefix="/", workers=3, settings={"keepalive_interval": 1, "max_retries": 0}) as s:
        where = "lighttpd /"
        streaming.check_text_stream(tap, where, s.base, s.pool, "lt-text")
        streaming.check_sse_stream(tap, where, s.base, s.pool, "lt-sse")
        streaming.check_sse_stream(tap, where + " GET", s.base, s.pool, "lt-sse-get", get=True)
        streaming.check_failures(tap, where, s.base, "lt-fail")
        pids = s.pool.pids()
        streaming.check_disconnects(tap, where, s.base, s.emu, "lt-dc")
        streaming.check_silent_disconnect(tap, where, s.base, s.emu, "lt-silent", bound=2.5)
        tap.eq(s.pool.alive(), pids, "%s: same workers after the disconnects" % where)
    with Stack(prefix="/ai/", workers=2, settings={"max_retries": 0}) as s:
        streaming.check_text_stream(tap, "lighttpd /ai/", s.base, s.pool, "lt-ai-text")
        streaming.check_sse_stream(tap, "lighttpd /ai/", s.base, s.pool, "lt-ai-sse")


run_tests(main)
