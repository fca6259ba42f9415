#!/usr/bin/env python3
"""Issue 17: the Debian package. scripts/deb builds it (DEB_BUILD_OPTIONS=nocheck); lintian finds
no error in it; apt-get installs it on this machine; the installed files are where README,
"Install" says (conffiles, the llm-fcgi user, the key directory made by postinst and not
shipped, the unit's ConditionPathExists=, logrotate's SIGUSR1, both man pages rendering without
a warning); the installed binary prints its libraries (--version) and checks the installed
settings (--check); lighttpd configured only with the installed snippet serves a sync call and
a stream from the installed binary; purge (in a finally) leaves no file of the package's list
behind, nor the directories postinst made.

Run once, in the normal pass (skipped under LLM_SLOW_RUN: the sanitizers have nothing to add to
a package), as root, and only where llm-fcgi is not installed already (it is purged at the end).
No system service is started: policy-rc.d refuses it while the package is installed."""
import glob
import os
import pwd
import shutil
import stat
import subprocess

os.environ["LLM_FCGI_BIN"] = "/usr/sbin/llm-fcgi"  # the installed binary, for the pool below
import harness  # noqa: E402 - after LLM_FCGI_BIN
import streaming  # noqa: E402
from harness import Emulator, Lighttpd, PreforkPool, run_tests  # noqa: E402

PKG = "llm-fcgi"
ETC = "/etc/llm-fcgi"
POLICY = "/usr/sbin/policy-rc.d"


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def bare_env(extra=None):
    """This machine's environment without LLM_FCGI_* and ANTHROPIC_* (harness.clean_env would
    point models_file at the source tree; the installed binary has its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_FCGI_", "ANTHROPIC_"))}
    env.update(extra or {})
    return env


def installed():
    r = run(["dpkg-query", "-W", "-f=${Status}", PKG])
    return r.returncode == 0 and "ok installed" in r.stdout


def check_lintian(tap, deb):
    r = run(["lintian", "--allow-root", deb], timeout=300)
    tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:")]
    tap.ok(not [t for t in tags if t.startswith("E:")], "lintian: no error", r.stdout + r.stderr)
    for t in tags:
        tap.diag("lintian " + t)


def check_files(tap, files):
    for path in ("/usr/sbin/llm-fcgi", ETC + "/llm-fcgi.conf", "/usr/share/llm-fcgi/models.json",
                 "/usr/share/llm-fcgi/www/index.html", ETC + "/lighttpd/llm-fcgi.conf",
                 ETC + "/apache/llm-fcgi-proxy.conf", ETC + "/nginx/llm-fcgi.conf",
                 "/lib/systemd/system/llm-fcgi.service", "/etc/logrotate.d/llm-fcgi",
                 "/usr/share/man/man8/llm-fcgi.8.gz", "/usr/share/man/man5/llm-fcgi.conf.5.gz"):
        tap.ok(path in files and os.path.isfile(path), "installed: " + path)
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PKG]).stdout
    tap.ok(ETC + "/llm-fcgi.conf " in conffiles and "/etc/logrotate.d/llm-fcgi " in conffiles,
           "the settings file and logrotate's are conffiles", conffiles)
    left = run(["grep", "-rlE", "@(sbindir|sysconfdir|pkgsysconfdir|pkgdatadir|localstatedir|docdir)@",
                ETC, "/lib/systemd/system/llm-fcgi.service", "/etc/logrotate.d/llm-fcgi"]).stdout
    tap.eq(left, "", "no @placeholder@ left in the installed files")

    tap.ok(pwd.getpwnam(PKG).pw_uid < 1000, "postinst created the system user llm-fcgi")
    keys = ETC + "/keys"
    st = os.stat(keys)
    tap.ok(stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == pwd.getpwnam(PKG).pw_uid and keys not in files,
           "the key directory is made by postinst (llm-fcgi, 0700), not shipped", (oct(st.st_mode), st.st_uid))

    unit = harness.read("/lib/systemd/system/llm-fcgi.service")
    tap.ok("ConditionPathExists=%s/keys/api-key\n" % ETC in unit
           and "-- /usr/sbin/llm-fcgi -c 8 -f %s/llm-fcgi.conf" % ETC in unit,
           "the unit: ConditionPathExists= on the key file, the installed paths in ExecStart")
    r = run(["systemd-analyze", "verify", "/lib/systemd/system/llm-fcgi.service"], timeout=60)
    tap.ok(r.returncode == 0 and not (r.stdout + r.stderr).strip(),
           "systemd-analyze verify: the installed unit (its man: pages included)", r.stdout + r.stderr)
    rot = harness.read("/etc/logrotate.d/llm-fcgi")
    tap.ok("postrotate" in rot and "--signal=USR1" in rot and "/var/log/llm-fcgi/*.log" in rot,
           "logrotate: /var/log/llm-fcgi/*.log, postrotate sends SIGUSR1", rot)
    for page in ("/usr/share/man/man8/llm-fcgi.8.gz", "/usr/share/man/man5/llm-fcgi.conf.5.gz"):
        r = run(["man", "--warnings", "-E", "UTF-8", "-l", page], env=bare_env({"MANWIDTH": "80", "LC_ALL": "C.UTF-8"}))
        tap.ok(r.returncode == 0 and not r.stderr and "NAME" in r.stdout,
               "man -l %s: no warning (groff -ww)" % os.path.basename(page), r.stderr)


def check_binary(tap):
    r = run(["/usr/sbin/llm-fcgi", "--version"], env=bare_env())
    lines = r.stdout.splitlines()
    tap.ok(r.returncode == 0 and lines and lines[0].startswith("llm-fcgi ")
           and all(any(l.startswith(lib) and "built with" in l and "running" in l for l in lines)
                   for lib in ("libcurl", "json-c", "OpenSSL", "libfcgi")),
           "--version: the version, each library as built and as running", r.stdout + r.stderr)
    r = run(["/usr/sbin/llm-fcgi", "--check"], env=bare_env())
    tap.ok(r.returncode == 0 and "# settings from %s/llm-fcgi.conf" % ETC in r.stdout
           and "from /usr/share/llm-fcgi/models.json" in r.stdout,
           "--check reads the installed settings (the default path) and catalogue", r.stdout + r.stderr)


def check_serving(tap):
    """The installed binary as the unit runs it (spawn-fcgi -n, the installed settings file),
    lighttpd with nothing but the two variables and the installed snippet."""
    tmp = harness.new_tmp()
    try:
        with Emulator(tmp) as emu, \
                PreforkPool(tmp, emu.url, workers=2, config=None,
                            env_extra={"LLM_FCGI_CONFIG": ETC + "/llm-fcgi.conf",
                                       "LLM_FCGI_MODELS_FILE": "/usr/share/llm-fcgi/models.json"}) as pool, \
                Lighttpd(tmp, pool.sock, "/ai/", values={"CONF": ETC}) as web:
            where = "installed package + lighttpd"
            harness.check_sync(tap, where, web.base, emu, "pkg-sync")
            streaming.check_text_stream(tap, where, web.base, pool, "pkg-text")
    finally:
        harness.remove_tmp(tmp)


def purge(tap, files):
    r = run(["apt-get", "purge", "-y", "-q", PKG], timeout=300,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    tap.ok(r.returncode == 0 and not installed(), "apt-get purge llm-fcgi", r.stdout + r.stderr)
    left = [f for f in files if os.path.lexists(f)]
    tap.eq(left, [], "purge leaves no file of the package's list behind")
    gone = [ETC, ETC + "/keys", "/usr/share/llm-fcgi", "/usr/share/doc/llm-fcgi", "/var/log/llm-fcgi",
            "/var/lib/llm-fcgi", "/etc/systemd/system/multi-user.target.wants/llm-fcgi.service"]
    tap.eq([d for d in gone if os.path.lexists(d)], [], "nor its directories, the key's and the state's")


def main(tap):
    if os.environ.get("LLM_SLOW_RUN") == "1":
        tap.skip("the Debian package", "built and checked once, in the normal pass")
        return
    if os.geteuid() != 0 or not shutil.which("dpkg-buildpackage") or not shutil.which("lintian"):
        tap.skip("the Debian package", "needs root, dpkg-dev and lintian (scripts/install-deps)")
        return
    if installed():
        tap.skip("the Debian package", "llm-fcgi is installed on this machine: not purging it")
        return
    out = harness.new_tmp()
    try:
        r = run([os.path.join(harness.SRCDIR, "scripts", "deb"), out], timeout=900,
                env=dict(os.environ, DEB_BUILD_OPTIONS="nocheck"))
        debs = [d for d in glob.glob(os.path.join(out, "llm-fcgi_*.deb"))]
        if not tap.ok(r.returncode == 0 and len(debs) == 1, "scripts/deb builds llm-fcgi_*.deb",
                      (r.stdout + r.stderr)[-3000:]):
            return
        check_lintian(tap, debs[0])
        install(tap, debs[0])
    finally:
        harness.remove_tmp(out)


def install(tap, deb):
    made_policy = not os.path.exists(POLICY)
    if made_policy:  # no service starts while the package is here
        with open(POLICY, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(POLICY, 0o755)
    files = []
    try:
        r = run(["apt-get", "install", "-y", "-q", "./" + os.path.basename(deb)], timeout=300,
                cwd=os.path.dirname(deb), env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if not tap.ok(r.returncode == 0 and installed(), "apt-get install ./llm-fcgi_*.deb",
                      r.stdout + r.stderr):
            return
        listed = run(["dpkg", "-L", PKG]).stdout.split("\n")
        files = [f for f in listed if f and os.path.lexists(f) and not os.path.isdir(f)]
        check_files(tap, listed)
        check_binary(tap)
        check_serving(tap)
    finally:
        if installed() or files:
            purge(tap, files)
        if made_policy:
            os.remove(POLICY)


if __name__ == "__main__":
    run_tests(main)
