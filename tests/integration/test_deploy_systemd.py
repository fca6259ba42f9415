#!/usr/bin/env python3
"""Issue 5, conf/systemd/llm-fcgi.service (as make generates it from its .in with the build's
paths, and installs it): systemd-analyze verify accepts the shipped unit and
the copy with this machine's paths; its ExecStart line, parsed from the unit and run as systemd
would (its Environment, stdout/stderr as the journal), creates the socket for www-data (owner,
group, mode 0660) and runs the supervisor and workers as the dedicated user, never root;
lighttpd running as www-data serves sync, a stream (one flush per delta, from the access lines
in the journal), 404/405 and /healthz through it; ExecReload (SIGHUP) replaces the workers;
KillSignal=SIGTERM lets a stream in flight finish and the pool exit well within
TimeoutStopSec."""
import os
import pwd
import re
import shlex
import signal
import stat
import subprocess
import time

import harness
import streaming
from harness import (API_KEY, LLM_FCGI, WWW_UID, Lighttpd, SettingsFile, Stack, Stream, children, clean_env,
                     copy_with_edits, marker, Proc, q, run_tests, spawn, wait_for)

UNIT = os.path.join(harness.BUILDDIR, "conf", "systemd", "llm-fcgi.service")
# The dedicated user the unit names does not exist on a test machine; nobody stands in for it.
USER, GROUP = "nobody", "nogroup"


def verify(path):
    # --man=no: the unit's man: pages exist once installed (test_package.py verifies it there).
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(path))
    return r.returncode, (r.stdout + r.stderr).strip()


def unit_value(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key + "="):
                return line.split("=", 1)[1].strip()
    return None


def unit_exec_start(path):
    """ExecStart of a unit file as argv (continuation lines joined, prefixes dropped), and its
    Environment= assignments."""
    lines, cur = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.lstrip().startswith(("#", ";")) and not cur:
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            lines.append(cur + line)
            cur = ""
    env, exec_start = {}, None
    for line in lines:
        k, sep, v = line.partition("=")
        if not sep:
            continue
        k = k.strip()
        if k == "Environment":
            for kv in shlex.split(v):
                a, _, b = kv.partition("=")
                env[a] = b
        elif k == "ExecStart":
            exec_start = v.strip().lstrip("-@+!:")
    if exec_start is None:
        raise RuntimeError("no ExecStart in " + path)
    return shlex.split(exec_start), env


def expand(argv, env):
    """systemd's $VAR / ${VAR} substitution in ExecStart."""
    out = []
    for a in argv:
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", a)
        if m:
            out.extend(env.get(m.group(1), "").split())
            continue
        out.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), a))
    return out


def user_ids(name):
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def run_unit(tap, proc, sock, uid, emu, settings):
    """The pool the unit started: its socket, users, and lighttpd (www-data) in front; reload
    and stop as systemctl does them."""
    wait_for(lambda: os.path.exists(sock) and len(children(proc.pid)) == 2, timeout=10,
             what="the unit's pool")
    st = os.stat(sock)
    tap.ok(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
           and st.st_uid == WWW_UID and st.st_gid == WWW_UID,
           "the socket is www-data:www-data, mode 0660", (oct(st.st_mode), st.st_uid, st.st_gid))
    workers = children(proc.pid)
    tap.ok(all(harness.proc_uid(p) == uid for p in [proc.pid] + workers),
           "supervisor and workers run as the dedicated user (uid %d), not root" % uid)

    tmp = os.path.dirname(os.path.dirname(sock))
    errorlog = os.path.join(tmp, "lighttpd-error.log")  # opened after lighttpd drops to www-data
    open(errorlog, "a").close()
    os.chown(errorlog, WWW_UID, WWW_UID)
    with Lighttpd(tmp, sock, "/", "lighttpd-systemd.conf.in") as web:
        where = "systemd unit + lighttpd (www-data)"
        harness.check_basics(tap, where, web.url, emu, "sd-sync", workers=2)
        streaming.check_text_stream(tap, where, web.url, settings, "sd-text")

        # systemctl reload: SIGHUP replaces the workers.
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(lambda: len(children(proc.pid)) == 2 and not set(children(proc.pid)) & set(workers),
                 timeout=10, what="new workers after SIGHUP")
        tap.ok(True, "ExecReload (SIGHUP): two new workers replace the old ones")
        harness.check_sync(tap, where + " after reload", web.url, emu, "sd-sync2")

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
        tap.eq(children(proc.pid), [], "... leaving no worker behind")


def main(tap):
    rc, out = verify(UNIT)
    tap.ok(rc == 0 and not out, "systemd-analyze verify: the shipped unit", out)

    with Stack(web=None, pool=None) as stack:
        tmp = stack.tmp
        uid, gid = user_ids(USER)
        settings = SettingsFile(tmp, stack.emu.url, {"max_retries": 0}, uid=uid, gid=gid, log_file=False)
        run = os.path.join(tmp, "run")  # RuntimeDirectory=llm-fcgi
        os.makedirs(run, mode=0o755)
        sock = os.path.join(run, "llm-fcgi.sock")
        envfile = os.path.join(tmp, "default-llm-fcgi")  # EnvironmentFile=-/etc/default/llm-fcgi
        with open(envfile, "w") as f:
            f.write("# settings for the workers\nLLM_FCGI_LOG_LEVEL=debug\n")
        shipped, _ = unit_exec_start(UNIT)
        installed_bin, installed_conf = shipped[shipped.index("--") + 1], shipped[shipped.index("-f") + 1]
        # The unit names the key file (ConditionPathExists=, LLM_FCGI_API_KEY_FILE) beside the settings.
        installed_key = os.path.join(os.path.dirname(installed_conf), "keys", "api-key")
        unit = copy_with_edits(UNIT, os.path.join(tmp, "llm-fcgi.service"), [
            (installed_bin, LLM_FCGI), ("/run/llm-fcgi/llm-fcgi.sock", sock),
            (installed_conf, settings.path), (installed_key, settings.key_file), ("-u llm-fcgi -g llm-fcgi", "-u %s -g %s" % (USER, GROUP)),
            ("-c 8", "-c 2"), ("EnvironmentFile=-/etc/default/llm-fcgi", "EnvironmentFile=-" + envfile)])
        rc, out = verify(unit)
        tap.ok(rc == 0 and not out, "systemd-analyze verify: the unit with this machine's paths", out)

        argv, env = unit_exec_start(unit)
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
        proc = spawn(expand(argv, env), env=clean_env(env), log=journal, session=True)
        settings.log_file = journal
        try:
            run_unit(tap, proc, sock, uid, stack.emu, settings)
        finally:
            Proc.stop(proc.pid)
            text = harness.read(journal)
            tap.ok(" access {" in text and API_KEY not in text, "the journal has the access lines and no key")


run_tests(main)
