#!/usr/bin/env python3
"""Issue 5, access control in the web server: Apache AuthType Basic + Require valid-user
(conf/apache/auth-basic.conf.example, in front of mod_proxy_fcgi) and lighttpd mod_auth with
the htpasswd backend (conf/lighttpd/auth.conf.example), with a password file made by htpasswd
-B. Without valid credentials: the server's 401, no worker and no upstream attempt; with them:
sync and a stream delta by delta; the client's Authorization header never goes upstream;
/healthz stays open."""
import os

from harness import Emulator, run_tests
import servers
from servers import ApacheSite, LighttpdSite, SpawnFcgiPool

USER, PASSWORD = "alice", "s3cret-Pa55"


def main(tap):
    tmp = servers.new_tmp()
    emu = Emulator(tmp)
    pool = SpawnFcgiPool(tmp, emu.url, workers=2, settings={"max_retries": 0})
    ht = servers.htpasswd(os.path.join(tmp, "htpasswd"), {USER: PASSWORD, "bob": "other-pass"})
    try:
        body = ("Define LLM_FCGI_PREFIX /ai/\nDefine LLM_FCGI_SOCKET %s\nDefine LLM_FCGI_HTPASSWD %s\n"
                "Include @CONF@/apache/llm-fcgi-proxy.conf\nInclude @CONF@/apache/auth-basic.conf.example\n"
                % (pool.sock, ht))
        web = ApacheSite(tmp, ["proxy", "proxy_fcgi", "headers", "auth_basic", "authn_file", "authz_user"], body)
        try:
            servers.check_basic_auth(tap, "Apache Basic /ai/", web.url + "/ai", emu, pool, "auth-ap", USER, PASSWORD)
        finally:
            web.stop()
        for prefix in ("/", "/ai/"):
            web = LighttpdSite(tmp, "lighttpd-auth.conf.in", prefix, pool.sock, {"HTPASSWD": ht})
            try:
                servers.check_basic_auth(tap, "lighttpd mod_auth %s" % prefix, web.url + prefix.rstrip("/"), emu,
                                         pool, "auth-lt" + prefix.replace("/", "_"), USER, PASSWORD)
            finally:
                web.stop()
    finally:
        pool.stop()
        emu.stop()
        servers.remove_tmp(tmp)


run_tests(main)
