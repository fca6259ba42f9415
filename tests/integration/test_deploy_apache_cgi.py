#!/usr/bin/env python3
"""Issue 5, plain CGI under Apache mod_cgid, one process per request: conf/apache/llm-fcgi-cgi.conf
(ScriptAliasMatch, at the site root and under /ai/) and conf/apache/htaccess-cgi.example (the
binary uploaded as llm-fcgi.cgi into a directory of the site, configured by .htaccess, as on
shared hosting). Sync, text and SSE streams delta by delta (one flush per delta, from the
access log that log_file collects), 404/405, /healthz, the body limits, and a client that
leaves cancelling the upstream stream."""
import os
import shutil

import harness
import streaming
from harness import LLM_FCGI, Apache, SettingsFile, Stack, run_tests

MODULES = ["cgid", "rewrite", "headers"]


def check_all(tap, where, base, emu, settings, tag, big=False):
    n0 = len(settings.access())
    js = harness.check_basics(tap, where, base, emu, tag + "sync")
    tap.ok("workers" not in (js or {}), "%s: CGI: /healthz has no pool counts" % where, js)
    streaming.check_text_stream(tap, where, base, settings, tag + "text")
    streaming.check_sse_stream(tap, where, base, settings, tag + "sse")
    harness.check_same_origin(tap, where, base)
    if big:
        harness.big_body_check(tap, where, base, emu, tag + "big")
    lines = [l for l in settings.log_text().splitlines() if " access {" in l][n0:]
    procs = {l.split("llm-fcgi[", 1)[1].split("]", 1)[0] for l in lines}
    tap.ok(len(lines) >= 8 and len(procs) == len(lines),
           "%s: %d requests, %d processes (one per request, each logged to log_file)"
           % (where, len(lines), len(procs)))


def shared_hosting(tmp, settings, sub):
    """The binary as llm-fcgi.cgi and conf/apache/htaccess-cgi.example as .htaccess in the
    site's directory sub ("" for the root), next to a page of the site's own."""
    web = Apache(tmp, MODULES, extra='<Directory "%s">\n\tAllowOverride FileInfo Options=ExecCGI,Indexes\n'
                 '</Directory>\n' % os.path.join(tmp, "docroot"))
    d = os.path.join(web.docroot, sub)
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    shutil.copy(LLM_FCGI, os.path.join(d, "llm-fcgi.cgi"))
    os.chmod(os.path.join(d, "llm-fcgi.cgi"), 0o755)
    harness.copy_with_edits(os.path.join(harness.CONF, "apache", "htaccess-cgi.example"),
                            os.path.join(d, ".htaccess"),
                            [("/home/USER/llm-fcgi.conf", settings.path),
                             ("SetEnv LLM_FCGI_BASE_PATH /ai/", "SetEnv LLM_FCGI_BASE_PATH /" + sub)])
    with open(os.path.join(web.docroot, "index.html"), "w") as f:
        f.write("<p>the site</p>\n")
    return web


def main(tap):
    with Stack(web=None, pool=None) as s:
        emu = s.emu
        # keepalive_interval bounds how late Apache notices a client that left during silence.
        settings = SettingsFile(s.tmp, emu.url, {"max_retries": 0, "keepalive_interval": 1})
        for prefix in ("/", "/ai/"):
            with Apache(s.tmp, MODULES, {"LLM_FCGI_PREFIX": prefix, "LLM_FCGI_BIN": LLM_FCGI,
                                         "LLM_FCGI_CONFIG": settings.path}, ["llm-fcgi-cgi.conf"]) as web:
                check_all(tap, "CGI %s" % prefix, web.base, emu, settings,
                          "cgi" + prefix.replace("/", "_"), big=prefix == "/ai/")
                if prefix == "/":
                    # A client that leaves stops its process and the upstream stream, mid-stream
                    # or during the model's silence (at the next keep-alive write).
                    streaming.check_disconnects(tap, "CGI /", web.url, emu, "cgi-dc", clients=4)
                    streaming.check_silent_disconnect(tap, "CGI /", web.url, emu, "cgi-silent", 3.5)

        # Shared hosting: the binary and .htaccess in a directory of the site (and in the root).
        for sub in ("ai", ""):
            with shared_hosting(s.tmp, settings, sub) as web:
                where = ".htaccess /%s" % (sub + "/" if sub else "")
                check_all(tap, where, web.url + ("/" + sub if sub else ""), emu, settings, "ht" + (sub or "root"))
                if not sub:
                    st, h, b = harness.http("GET", web.url + "/index.html")
                    tap.ok(st == 200 and b"the site" in b, "%s: the site's own files are still served" % where)
            shutil.rmtree(os.path.join(web.docroot, sub) if sub else web.docroot, ignore_errors=True)


run_tests(main)
