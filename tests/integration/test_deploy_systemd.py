#!/usr/bin/env python3
"""Issue 5, conf/systemd/llm-fcgi.service: systemd-analyze verify accepts the shipped unit and
the copy with this machine's paths; its ExecStart line, parsed from the unit and run as systemd
would (its Environment, stdout/stderr as the journal), creates the socket for www-data (owner,
group, mode 0660) and runs the supervisor and workers as the dedicated user, never root;
lighttpd running as www-data serves sync, a stream (one flush per delta, from the access lines
in the journal), 404/405 and /healthz through it; ExecReload (SIGHUP) replaces the workers;
KillSignal=SIGTERM lets a stream in flight finish and the pool exit well within
TimeoutStopSec."""
import os
import signal
import stat
import subprocess
import time

from harness import API_KEY, LLM_FCGI, WWW_UID, Emulator, Proc, Stream, clean_env, q, marker, run_tests, wait_for
import servers
import streaming
from servers import LighttpdSite, SettingsFile

UNIT = os.path.join(servers.CONF, "systemd", "llm-fcgi.service")
# The dedicated user the unit names does not exist on a test machine; nobody stands in for it.
USER, GROUP = "nobody", "nogroup"


def verify(path):
    r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(path))
    return r.returncode, (r.stdout + r.stderr).strip()


def unit_value(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key + "="):
                return line.split("=", 1)[1].strip()
    return None


def main(tap):
    rc, out = verify(UNIT)
    tap.ok(rc == 0 and not out, "systemd-analyze verify: the shipped unit", out)

    tmp = servers.new_tmp()
    emu = Emulator(tmp)
    uid, gid = servers.user_ids(USER)
    settings = SettingsFile(tmp, emu.url, {"max_retries": 0}, uid=uid, gid=gid, log_file=False)
    run = os.path.join(tmp, "run")  # RuntimeDirectory=llm-fcgi
    os.makedirs(run, mode=0o755)
    sock = os.path.join(run, "llm-fcgi.sock")
    envfile = os.path.join(tmp, "default-llm-fcgi")  # EnvironmentFile=-/etc/default/llm-fcgi
    with open(envfile, "w") as f:
        f.write("# settings for the workers\nLLM_FCGI_LOG_LEVEL=debug\n")
    unit = servers.copy_with_edits(UNIT, os.path.join(tmp, "llm-fcgi.service"), [
        ("/usr/local/bin/llm-fcgi", LLM_FCGI), ("/run/llm-fcgi/llm-fcgi.sock", sock),
        ("/etc/llm-fcgi.conf", settings.path), ("-u llm-fcgi -g llm-fcgi", "-u %s -g %s" % (USER, GROUP)),
        ("-c 8", "-c 2"), ("EnvironmentFile=-/etc/default/llm-fcgi", "EnvironmentFile=-" + envfile)])
    rc, out = verify(unit)
    tap.ok(rc == 0 and not out, "systemd-analyze verify: the unit with this machine's paths", out)

    argv, env = servers.unit_exec_start(unit)
    tap.ok(argv[0] == "/usr/bin/spawn-fcgi" and "-n" in argv and argv[argv.index("--") + 1] == LLM_FCGI,
           "ExecStart: spawn-fcgi -n ... -- llm-fcgi", argv)
    for k in ("-U", "-G"):
        tap.eq(argv[argv.index(k) + 1], "www-data", "ExecStart: socket %s www-data" % k)
    tap.eq(unit_value(UNIT, "KillSignal"), "SIGTERM", "KillSignal=SIGTERM")
    tap.ok(float(unit_value(UNIT, "TimeoutStopSec")) > 30, "TimeoutStopSec above grace_period (30 s)")
    tap.eq(unit_value(UNIT, "Restart"), "on-failure", "Restart=on-failure")

    # Run it as systemd would: the unit's environment plus the EnvironmentFile, stdout and stderr
    # to the journal (here a file), in its own process group.
    with open(envfile) as f:
        env.update(l.strip().split("=", 1) for l in f if "=" in l and not l.startswith("#"))
    journal = os.path.join(tmp, "journal")
    proc = servers.spawn_group(servers.expand(argv, env), env=clean_env(env), log=journal)
    settings.log_file = journal
    try:
        wait_for(lambda: os.path.exists(sock) and len(servers.children(proc.pid)) == 2, timeout=10,
                 what="the unit's pool")
        st = os.stat(sock)
        tap.ok(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
               and st.st_uid == WWW_UID and st.st_gid == WWW_UID,
               "the socket is www-data:www-data, mode 0660", (oct(st.st_mode), st.st_uid, st.st_gid))
        workers = servers.children(proc.pid)
        tap.ok(all(servers.proc_uid(p) == uid for p in [proc.pid] + workers),
               "supervisor and workers run as the dedicated user (uid %d), not root" % uid)

        errorlog = os.path.join(tmp, "lighttpd-error.log")  # opened after lighttpd drops to www-data
        open(errorlog, "a").close()
        os.chown(errorlog, WWW_UID, WWW_UID)
        web = LighttpdSite(tmp, "lighttpd-systemd.conf.in", "/", sock)
        try:
            where = "systemd unit + lighttpd (www-data)"
            servers.check_sync(tap, where, web.url, emu, "sd-sync")
            servers.check_errors(tap, where, web.url, emu)
            servers.check_healthz(tap, where, web.url, workers=2)
            streaming.check_text_stream(tap, where, web.url, settings, "sd-text")

            # systemctl reload: SIGHUP replaces the workers.
            os.kill(proc.pid, signal.SIGHUP)
            wait_for(lambda: len(servers.children(proc.pid)) == 2 and not set(servers.children(proc.pid)) & set(workers),
                     timeout=10, what="new workers after SIGHUP")
            tap.ok(True, "ExecReload (SIGHUP): two new workers replace the old ones")
            servers.check_sync(tap, where + " after reload", web.url, emu, "sd-sync2")

            # systemctl stop: SIGTERM to the main process (KillMode=mixed); a stream finishes.
            text = marker("sd-stop", words=20, delay=50) + " one two three"
            s = Stream("POST", web.url + "/stream", "text=" + q(text),
                       {"Content-Type": "application/x-www-form-urlencoded"})
            s.read_some()
            t0 = time.time()
            os.kill(proc.pid, signal.SIGTERM)
            body = s.read_all().decode()
            tap.eq(body, streaming.answer(text), "SIGTERM mid-stream: the stream still completes")
            proc.wait(45)
            took = time.time() - t0
            tap.ok(took < 10, "... and the pool exits %.1f s after SIGTERM (TimeoutStopSec 45)" % took)
            tap.eq(proc.returncode, 0, "... with status 0 (no Restart=on-failure)")
            tap.eq(servers.children(proc.pid), [], "... leaving no worker behind")
        finally:
            web.stop()
    finally:
        Proc.stop(proc.pid)
        emu.stop()
        text = servers.read(journal)
        tap.ok(" access {" in text and API_KEY not in text, "the journal has the access lines and no key")
        servers.remove_tmp(tmp)


run_tests(main)
