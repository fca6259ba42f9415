"""Integration harness: real servers on loopback, one temp directory and free ports per test.

Every test file is a script that prints TAP (Tap, run_tests). One place per concept:

  processes   spawn, Proc (everything started is stopped by PID at the end, whatever happens)
  Emulator    the project's upstream emulator (tests/emulator)
  pools       Pool (spawn-fcgi -F N), PreforkPool (spawn-fcgi -n -- llm-fcgi -c N, the README's
              recipe, on a Unix socket or TCP), SettingsFile (a settings file for workers a web
              server spawns: mod_fcgid, CGI, lighttpd bin-path, systemd)
  web servers Lighttpd, Apache, Nginx, each rendered from a template here that includes the
              shipped file from conf/
  Stack       emulator + pool + web server in a fresh temp directory; `with Stack(...) as s:`
              stops all of it, also when a check raises (so does `with` on any server above)
  HTTP        http, http_json, Stream (a response read as it arrives), send_big_body
  checks      what every deployment is checked for (sync, 404/405, /healthz, same origin,
              body limits); stream checks are in streaming.py, raw FastCGI in fcgi_client.py

ANTHROPIC_* and LLM_FCGI_* variables inherited from the shell are ignored.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.environ.get("LLM_SRCDIR", os.path.join(HERE, "..", "..")))
CONF = os.path.join(SRCDIR, "conf")
# scripts/build's tree, unless told otherwise (an in-tree build also works).
_DEFAULT_BUILD = os.path.join(SRCDIR, "_build", "normal")
BUILDDIR = os.path.abspath(os.environ.get("LLM_BUILDDIR", _DEFAULT_BUILD if os.path.isdir(_DEFAULT_BUILD) else SRCDIR))
LLM_FCGI = os.environ.get("LLM_FCGI_BIN", os.path.join(BUILDDIR, "src", "llm-fcgi"))
LLM_EMU = os.environ.get("LLM_EMU_BIN", os.path.join(BUILDDIR, "tests", "emulator", "llm-emu"))
API_KEY = "sk-test-integration-0123456789"
# Timing assertions are skipped, visibly, where instrumentation distorts time.
SLOW = os.environ.get("LLM_SLOW_RUN") == "1"
# A command the workers run under (scripts/valgrind sets it), e.g. "valgrind --log-file=...".
WRAP = os.environ.get("LLM_FCGI_WRAP", "").split()
WWW_UID = 33  # www-data: Apache's children, nginx's workers and what mod_fcgid spawns run as this user


# ---------------------------------------------------------------- TAP

class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok" if cond else "not ok") + " %d - %s" % (self.n, name), flush=True)
        if not cond and diag is not None:
            for line in str(diag).splitlines()[:40]:
                print("#   " + line, flush=True)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


def run_tests(fn):
    """Runs fn(tap); an exception is one failed test, never a silent pass."""
    tap = Tap()
    try:
        fn(tap)
    except Exception as e:  # noqa: BLE001 - report anything as a TAP failure
        import traceback
        tap.ok(False, "test script raised %s" % type(e).__name__, traceback.format_exc())
    finally:
        Proc.stop_all()
    tap.done()


# ---------------------------------------------------------------- processes and files

def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ANTHROPIC_") and not k.startswith("LLM_FCGI_")}
    env.update(extra or {})
    env.setdefault("LLM_FCGI_MODELS_FILE", os.path.join(SRCDIR, "data", "models.json"))  # not installed
    return env


def wait_for(cond, timeout=10.0, step=0.02, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise RuntimeError("timed out waiting for " + what)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Proc:
    """Processes started by the harness, stopped by PID at the end whatever happens."""
    pids = []

    @classmethod
    def track(cls, pid):
        cls.pids.append(pid)

    @classmethod
    def stop(cls, pid, sig=signal.SIGTERM, grace=5.0):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        end = time.time() + grace
        while time.time() < end:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    return
            except ChildProcessError:
                if not pid_alive(pid):
                    return
            time.sleep(0.02)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    @classmethod
    def stop_all(cls):
        for pid in reversed(cls.pids):
            cls.stop(pid)
        cls.pids = []


def spawn(argv, env=None, log=None, cwd=None, session=False):
    """Starts argv, tracked by Proc; session=True puts it in a session of its own, so that a
    whole pool can be signalled at once."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                         stdin=subprocess.DEVNULL, start_new_session=session)
    Proc.track(p.pid)
    return p


def children(pid):
    """PIDs whose parent is pid (from /proc), sorted."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields and int(fields[1]) == pid:
            out.append(int(d))
    return sorted(out)


def pid_running(pid):
    """The process exists and has not exited (a zombie has: its sockets are closed)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def pss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def new_tmp():
    tmp = tempfile.mkdtemp(prefix="llm-fcgi-it.")
    os.chmod(tmp, 0o755)  # Apache's and nginx's children (www-data) must reach sockets and logs here
    return tmp


def remove_tmp(tmp):
    if os.environ.get("LLM_KEEP_TMP") != "1":
        shutil.rmtree(tmp, ignore_errors=True)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def render(template, dest, values):
    """A template from templates/ (or an absolute path) with each @KEY@ replaced."""
    with open(os.path.join(HERE, "templates", template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@" + k + "@", str(v))
    with open(dest, "w") as f:
        f.write(text)
    return dest


def copy_with_edits(src, dest, edits):
    """The operator's edit of a shipped file: replace each literal (it must be there)."""
    with open(src) as f:
        text = f.read()
    for old, new in edits:
        if old not in text:
            raise RuntimeError("%s no longer contains %r" % (src, old))
        text = text.replace(old, new)
    with open(dest, "w") as f:
        f.write(text)
    return dest


class Managed:
    """Something with stop(): `with` stops it on the way out, also when a check raises."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- the upstream emulator

class RedisMonitor:
    """Redis's MONITOR on a connection of its own, read by a thread: the commands clients send,
    each one round trip. What a Lua script runs inside the server is listed as "lua" and not
    counted. counts() is (commands, {COMMAND: calls}) so far."""

    LINE = re.compile(rb'^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"')

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"MONITOR\r\n")
        self.total, self.by = 0, {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        rest = b""
        self.sock.settimeout(None)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            *lines, rest = (rest + chunk).split(b"\r\n")
            with self.lock:
                for line in lines:
                    m = self.LINE.match(line)
                    if m and m.group(1) != b"lua":
                        cmd = m.group(2).decode("latin-1").upper()
                        self.total += 1
                        self.by[cmd] = self.by.get(cmd, 0) + 1

    def counts(self):
        with self.lock:
            return self.total, dict(self.by)

    def settled(self, quiet=1.0, timeout=30):
        """The counts once nothing has arrived for quiet seconds."""
        last, t0 = self.counts(), time.time()
        while time.time() - t0 < timeout:
            time.sleep(quiet)
            now = self.counts()
            if now == last:
                return now
            last = now
        return last

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


class Emulator(Managed):
    def __init__(self, tmp, words=20, delay_ms=0, ttft_ms=0, port=0):
        self.port_file = os.path.join(tmp, "emu.port")
        self.log = os.path.join(tmp, "emu.log")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)  # one left by an emulator this one replaces
        self.proc = spawn([LLM_EMU, "--listen", "127.0.0.1:%d" % port, "--port-file", self.port_file,
                           "--key", API_KEY, "--words", str(words), "--delay-ms", str(delay_ms),
                           "--ttft-ms", str(ttft_ms), "-v"], env=clean_env(), log=self.log)
        wait_for(lambda: os.path.exists(self.port_file), what="emulator port file")
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def stats(self, id=None):
        q = "/stats" + ("?id=" + urllib.parse.quote(id) if id else "")
        st, _, body = http("GET", self.url + q)
        assert st == 200, (st, body)
        return json.loads(body)

    def reset(self):
        http("POST", self.url + "/stats/reset", b"")

    def stop(self):
        Proc.stop(self.proc.pid)


# ---------------------------------------------------------------- worker pools

class WorkerLog:
    """The workers' log file (log_file): access records and text."""

    def access(self):
        """The access log records, oldest first."""
        out = []
        try:
            with open(self.log_file) as f:
                for line in f:
                    i = line.find(" access {")
                    if i >= 0:
                        out.append(json.loads(line[i + 8:]))
        except FileNotFoundError:
            pass
        return out

    def log_text(self):
        return read(self.log_file)


def pool_env(tmp, upstream, log_file, settings=None):
    """A pool's environment: the upstream, the key, the log, LLM_FCGI_<SETTING> for each setting,
    and an empty config file (one nobody asked for must not leak in from the machine)."""
    env = {"ANTHROPIC_BASE_URL": upstream, "ANTHROPIC_API_KEY": API_KEY,
           "LLM_FCGI_LOG_FILE": log_file, "LLM_FCGI_LOG_LEVEL": "debug"}
    for k, v in (settings or {}).items():
        env["LLM_FCGI_" + k.upper()] = str(v)
    env = clean_env(env)
    env["LLM_FCGI_CONFIG"] = os.path.join(tmp, "empty.conf")
    open(env["LLM_FCGI_CONFIG"], "a").close()
    return env


class Pool(Managed, WorkerLog):
    """llm-fcgi workers under spawn-fcgi -F N on a Unix socket (no supervisor)."""

    def __init__(self, tmp, upstream, workers=2, settings=None, name="pool", socket_path=None,
                 mode="0660"):
        self.tmp = tmp
        self.sock = socket_path or os.path.join(tmp, name + ".sock")
        self.pidfile = os.path.join(tmp, name + ".pids")
        self.log_file = os.path.join(tmp, name + ".log")
        self.env = pool_env(tmp, upstream, self.log_file, settings)
        out = subprocess.run(["spawn-fcgi", "-s", self.sock, "-M", mode, "-F", str(workers),
                              "-P", self.pidfile, "--"] + WRAP + [LLM_FCGI], env=self.env,
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError("spawn-fcgi failed: %s %s" % (out.stdout, out.stderr))
        for pid in self.pids():
            Proc.track(pid)

    def pids(self):
        with open(self.pidfile) as f:
            return sorted(int(x) for x in f.read().split())

    def alive(self):
        return [p for p in self.pids() if pid_alive(p)]

    def stop(self):
        for pid in self.pids():
            Proc.stop(pid)


class PreforkPool(Managed, WorkerLog):
    """The README's primary recipe: spawn-fcgi -n execs llm-fcgi -c N, whose supervisor forks N
    workers that share the socket and stays in the foreground (as under systemd), in a session of
    its own. On a Unix socket, or on TCP with tcp=(host, port). config=None: settings from the
    environment only; a string: written to a file passed with -f (write_config rewrites it for a
    reload). workers=None: no -c, the file sizes the pool (wait for `expect` workers)."""

    def __init__(self, tmp, upstream, workers=3, settings=None, name="prefork", config="",
                 sock=None, tcp=None, mode="0666", env_extra=None, expect=None):
        self.tmp = tmp
        self.name = name
        self.log_file = os.path.join(tmp, name + ".log")
        self.out = os.path.join(tmp, name + ".out")
        self.env = pool_env(tmp, upstream, self.log_file, settings)
        self.env.update(env_extra or {})
        self.workers = expect if workers is None else workers
        if tcp:
            self.host, self.port = tcp
            where = ["-a", self.host, "-p", str(self.port)]
            self.sock = None
        else:
            self.sock = sock or os.path.join(tmp, name + ".sock")
            where = ["-s", self.sock, "-M", mode]
        args = [] if workers is None else ["-c", str(workers)]
        if config is not None:
            self.config = os.path.join(tmp, name + ".conf")
            self.write_config(config)
            args += ["-f", self.config]
        self.proc = spawn(["spawn-fcgi"] + where + ["-n", "--"] + WRAP + [LLM_FCGI] + args,
                          env=self.env, log=self.out, session=True)
        self.parent = self.proc.pid
        wait_for(self.ready, timeout=10, what="%s: %d workers" % (name, self.workers))

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited: %s" % (self.name, read(self.out)))
        if self.sock and not os.path.exists(self.sock):
            return False
        if not self.sock and not port_open(self.port, self.host):
            return False
        return len(self.pids()) == self.workers

    def pids(self):
        """The workers (the supervisor is self.parent)."""
        return children(self.parent)

    def alive(self):
        return self.pids()

    def kill(self):
        """The host dies: every process of the pool gets SIGKILL at once. Returns when all have
        exited: until the last worker has, the listening socket still takes connections into its
        backlog (and resets them), so a request sent meanwhile was still in flight at the kill."""
        workers = self.pids()
        try:
            os.killpg(self.parent, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)
        wait_for(lambda: not any(pid_running(p) for p in workers), timeout=5, what="the killed workers to exit")

    def stop(self):
        """SIGTERM to the supervisor: workers finish their requests (grace_period), then exit."""
        Proc.stop(self.parent, grace=15)
        for p in self.pids():
            Proc.stop(p)


class SettingsFile(WorkerLog):
    """A settings file, the key in a mode-600 file, both owned by the workers' user (the way
    mod_fcgid, lighttpd bin-path, CGI and the systemd unit get their settings)."""

    def __init__(self, tmp, upstream, settings=None, uid=WWW_UID, gid=WWW_UID, name="llm-fcgi",
                 log_file=True):
        self.log_file = os.path.join(tmp, name + "-workers.log")
        open(self.log_file, "a").close()
        os.chown(self.log_file, uid, gid)
        self.key_file = os.path.join(tmp, name + ".key")
        with open(self.key_file, "w") as f:
            f.write(API_KEY + "\n")
        os.chmod(self.key_file, 0o600)
        os.chown(self.key_file, uid, gid)
        # The catalogue from the source tree: an installed binary finds its own in DATADIR.
        conf = {"upstream_url": upstream, "api_key_file": self.key_file, "log_file": self.log_file,
                "log_level": "debug", "models_file": os.path.join(SRCDIR, "data", "models.json")}
        if not log_file:  # log to stderr (the journal); the caller points log_file at its capture
            del conf["log_file"]
        conf.update(settings or {})
        self.path = os.path.join(tmp, name + ".conf")
        with open(self.path, "w") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.path, 0o644)


# ---------------------------------------------------------------- web servers

class WebServer(Managed):
    """A server process on a free port; base is its URL with the mount point (no trailing /)."""

    def start(self, argv, out, env=None, timeout=10):
        self.proc = spawn(argv, env=env, log=out)
        try:
            wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, timeout=timeout,
                     what="%s on port %d" % (argv[0], self.port))
        finally:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s %s" % (argv[0], read(out), read(self.log)))

    def stop(self):
        Proc.stop(self.proc.pid, grace=self.grace)


class Lighttpd(WebServer):
    """lighttpd from a template here (templates/lighttpd.conf.in includes the shipped
    conf/lighttpd/llm-fcgi.conf); values fill more @KEY@ placeholders."""
    grace = 5

    def __init__(self, tmp, sock, prefix="/", template="lighttpd.conf.in", values=None):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.base = self.url + prefix.rstrip("/")
        docroot = os.path.join(tmp, "docroot")
        os.makedirs(docroot, exist_ok=True)
        v = {"PORT": self.port, "DOCROOT": docroot, "DIR": tmp, "SOCKET": sock,
             "PREFIX": prefix, "CONF": CONF}
        v.update(values or {})
        self.conf = render(template, os.path.join(tmp, "lighttpd.conf"), v)
        self.log = os.path.join(tmp, "lighttpd-error.log")
        self.start(["lighttpd", "-D", "-f", self.conf], os.path.join(tmp, "lighttpd.log"))


def apache_modules(*names):
    return "\n".join("LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so" % (n, n) for n in names)


def fcgid_ipc(tmp):
    """mod_fcgid's run-time files in the temp dir, writable by its www-data processes."""
    ipc = os.path.join(tmp, "fcgid")
    os.makedirs(ipc, exist_ok=True)
    os.chown(ipc, WWW_UID, WWW_UID)
    return 'FcgidIPCDir "%s"\nFcgidProcessTableFile "%s/fcgid_shm"\n' % (ipc, tmp)


class Apache(WebServer):
    """Apache from templates/apache-site.conf.in: the base server and modules, then the Defines,
    extra configuration and the Includes of shipped files (a bare name is under conf/apache/)."""
    grace = 10

    def __init__(self, tmp, modules, defines=None, include=(), extra=""):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.base = self.url + (defines or {}).get("LLM_FCGI_PREFIX", "/").rstrip("/")
        self.docroot = os.path.join(tmp, "docroot")
        os.makedirs(self.docroot, exist_ok=True)
        os.chmod(self.docroot, 0o755)
        os.makedirs(os.path.join(tmp, "apache-run"), exist_ok=True)
        body = "".join("Define %s %s\n" % kv for kv in (defines or {}).items()) + extra
        body += "".join("Include %s\n" % os.path.join(CONF, "apache", f) for f in include)
        values = {"PORT": self.port, "DOCROOT": self.docroot, "DIR": tmp,
                  "MODULES": apache_modules(*modules), "BODY": body}
        self.conf = render("apache-site.conf.in", os.path.join(tmp, "apache.conf"), values)
        self.log = os.path.join(tmp, "apache-error.log")
        self.start(["apache2", "-f", self.conf, "-DFOREGROUND"], os.path.join(tmp, "apache.out"),
                   env=clean_env({"APACHE_RUN_DIR": os.path.join(tmp, "apache-run")}), timeout=15)

    def error_log(self):
        return read(self.log)


class Nginx(WebServer):
    """nginx (master as root, workers as www-data) with a server whose location includes
    conf/nginx/llm-fcgi.conf and an upstream block naming the pool's socket(s)."""
    grace = 5

    def __init__(self, tmp, servers, prefix="/"):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.base = self.url + prefix.rstrip("/")
        for d in ("client_body", "fastcgi", "proxy", "scgi", "uwsgi"):
            p = os.path.join(tmp, "nginx-" + d)
            os.makedirs(p, exist_ok=True)
            os.chown(p, WWW_UID, WWW_UID)
        docroot = os.path.join(tmp, "docroot")
        os.makedirs(docroot, exist_ok=True)
        values = {"PORT": self.port, "DIR": tmp, "DOCROOT": docroot, "PREFIX": prefix, "CONF": CONF,
                  "SERVERS": "\n".join("\t\tserver %s;" % s for s in servers)}
        self.conf = render("nginx.conf.in", os.path.join(tmp, "nginx.conf"), values)
        self.log = os.path.join(tmp, "nginx-error.log")
        self.start(["nginx", "-c", self.conf, "-p", tmp, "-g", "daemon off;"], os.path.join(tmp, "nginx.out"),
                   env=clean_env())


# ---------------------------------------------------------------- stacks

class Stack(Managed):
    """The emulator, a pool and a web server in front, in a fresh temp directory; everything it
    started is stopped, newest first, and the directory removed by stop() or on leaving
    `with Stack(...) as s:`. pool: "spawn-fcgi" (-F workers), "prefork" (PreforkPool, with -f
    and config unless config is None) or None. web: "lighttpd", "apache-proxy" (mod_proxy_fcgi),
    "nginx", "apache-fcgid" (Apache spawns the workers from a SettingsFile, s.pool), a function
    of the stack that starts another server in front of s.pool, or None.
    Servers started in s.tmp by the test itself go in s.add() or a `with` of their own."""

    def __init__(self, prefix="/", workers=2, settings=None, web="lighttpd", pool="spawn-fcgi", config="",
                 upstream=None):
        self.tmp = new_tmp()
        self.started = []
        try:
            self.emu = self.add(Emulator(self.tmp))
            up = upstream or self.emu.url
            if web == "apache-fcgid":
                self.pool = SettingsFile(self.tmp, up, settings)
                self.web = self.add(Apache(self.tmp, ["fcgid"], {"LLM_FCGI_PREFIX": prefix, "LLM_FCGI_BIN": LLM_FCGI,
                                                                 "LLM_FCGI_CONFIG": self.pool.path},
                                           ["llm-fcgi-fcgid.conf"], fcgid_ipc(self.tmp)))
            else:
                if pool == "prefork":
                    self.pool = self.add(PreforkPool(self.tmp, up, workers=workers, settings=settings,
                                                     config=config))
                elif pool == "spawn-fcgi":
                    self.pool = self.add(Pool(self.tmp, up, workers=workers, settings=settings,
                                              mode="0660" if web in ("lighttpd", None) else "0666"))
                else:
                    self.pool = None
                self.web = self.add(self.front(web, prefix)) if web else None
        except BaseException:
            self.stop()
            raise
        self.base = self.web.base if self.web else None

    def front(self, web, prefix):
        if callable(web):
            return web(self)
        if web == "lighttpd":
            return Lighttpd(self.tmp, self.pool.sock, prefix)
        if web == "apache-proxy":
            return Apache(self.tmp, ["proxy", "proxy_fcgi", "headers"],
                          {"LLM_FCGI_PREFIX": prefix, "LLM_FCGI_SOCKET": self.pool.sock}, ["llm-fcgi-proxy.conf"])
        if web == "nginx":
            return Nginx(self.tmp, ["unix:" + self.pool.sock], prefix)
        raise ValueError("no such web server: %r" % web)

    def add(self, thing):
        """thing.stop() will be called when the stack stops."""
        self.started.append(thing)
        return thing

    def stop(self):
        while self.started:
            self.started.pop().stop()
        remove_tmp(self.tmp)


# ---------------------------------------------------------------- HTTP

def _parse_head(head):
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.strip().lower().decode()] = v.strip().decode("latin-1")
    return status, headers


def _dechunk(data):
    out = b""
    while data:
        line, _, rest = data.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


def request_head(method, url, headers, length=None):
    """(host, port, the request's head as bytes): Host and Connection: close first, then
    Content-Length when length is given, then the caller's headers."""
    u = urllib.parse.urlsplit(url)
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    h = {"Host": u.netloc, "Connection": "close"}
    if length is not None:
        h["Content-Length"] = str(length)
    h.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return u.hostname, u.port, head.encode("latin-1")


def http(method, url, body=None, headers=None, timeout=30):
    """One request on a raw socket (so nothing is hidden or normalised): (status, headers, body)."""
    if isinstance(body, str):
        body = body.encode()
    chunked = any(k.lower() == "transfer-encoding" for k in (headers or {}))
    host, port, head = request_head(method, url, headers, None if body is None or chunked else len(body))
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(head + (body or b""))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status, hdrs = _parse_head(head)
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    return status, hdrs, rest


def http_json(method, url, body=None, headers=None):
    st, h, b = http(method, url, body, headers)
    try:
        js = json.loads(b) if b else None
    except ValueError:
        js = None
    return st, h, js, b


def send_big_body(url, length, timeout=30):
    """POSTs a JSON body of length bytes, sending it while reading the answer (a server may
    answer, and close, before the body is all sent): (status, body bytes)."""
    host, port, head = request_head("POST", url, {"Content-Type": "application/json"}, length)
    s = socket.create_connection((host, port), timeout=timeout)
    got = []

    def reader():
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        got.append(data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        s.sendall(head + b'{"text": "')
        piece = b"x" * 65536
        left = length - 12
        while left > 0:
            s.sendall(piece[:min(left, len(piece))])
            left -= len(piece)
        s.sendall(b'"}')
    except OSError:
        pass  # the server answered and closed first
    t.join(timeout)
    s.close()
    data = got[0] if got else b""
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ")[1]), body
    except (IndexError, ValueError):
        return None, data


class Stream:
    """A streamed response read chunk by chunk with arrival times (HTTP/1.1 chunked or close)."""

    def __init__(self, method, url, body=None, headers=None, timeout=30):
        if isinstance(body, str):
            body = body.encode()
        host, port, head = request_head(method, url, headers, None if body is None else len(body))
        self.t0 = time.time()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.sendall(head + (body or b""))
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the headers: %r" % self.buf)
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status, self.headers = _parse_head(head)
        self.t_headers = time.time()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.arrivals = []  # (time since start, bytes)
        self.eof = False
        self._pending = self.buf
        self.buf = b""

    def _recv(self):
        if self._pending:
            d, self._pending = self._pending, b""
            return d
        d = self.sock.recv(65536)
        if not d:
            self.eof = True
        return d

    def read_some(self):
        """Reads what arrives next (one recv); returns the decoded body bytes (may be b"")."""
        data = self._recv()
        now = time.time() - self.t0
        if not data:
            return b""
        if not self.chunked:
            self.arrivals.append((now, data))
            return data
        self.buf += data
        out = b""
        while True:
            line, sep, rest = self.buf.partition(b"\r\n")
            if not sep:
                break
            size = int(line.split(b";")[0], 16)
            if size == 0:
                self.eof = True
                self.buf = b""
                break
            if len(rest) < size + 2:
                break
            out += rest[:size]
            self.buf = rest[size + 2:]
        if out:
            self.arrivals.append((now, out))
        return out

    def read_all(self):
        while not self.eof:
            self.read_some()
        self.close()
        return self.body()

    def body(self):
        return b"".join(d for _, d in self.arrivals)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def sse_events(body):
    """Parses our SSE output into (event, id, data) tuples; comments are dropped."""
    out = []
    for block in body.decode().split("\n\n"):
        ev, id_, data = "", None, []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "event":
                ev = v
            elif k == "id":
                id_ = v
            elif k == "data":
                data.append(v)
        if ev or data:
            out.append((ev, id_, "\n".join(data)))
    return out


def marker(id, **kw):
    parts = ["id=" + id] + ["%s=%s" % (k, v) for k, v in kw.items()]
    return "[[emu:" + ",".join(parts) + "]]"


def q(text):
    return urllib.parse.quote(text, safe="")


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


# ---------------------------------------------------------------- a real browser

BROWSER_DIR = os.path.join(HERE, "browser")
CHROMIUM = "/usr/bin/chromium"


def browser_prerequisites(tap):
    """Chromium, node, and playwright-core in browser/node_modules (npm ci on the first run)."""
    missing = [what for what, ok in (("/usr/bin/chromium", os.access(CHROMIUM, os.X_OK)),
                                     ("node", shutil.which("node")), ("npm", shutil.which("npm")))
               if not ok]
    if not tap.ok(not missing, "chromium, node and npm are installed",
                  "missing: %s (scripts/install-deps test installs them)" % " ".join(missing)):
        return False
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                             capture_output=True, text=True, timeout=300)
        if not tap.ok(out.returncode == 0, "npm ci in tests/integration/browser",
                      out.stdout[-2000:] + out.stderr[-2000:]):
            return False
    return True


# ---------------------------------------------------------------- checks every deployment runs

def expected_answer(text, words=20):
    ws = re.sub(r"\[\[emu:[^\]]*\]\]", " ", text).split() or ["ok"]
    return " ".join(ws[i % len(ws)] for i in range(words))


def check_sync(tap, where, base, emu, idtag):
    """POST /summarize (JSON) and POST /sync-summarize?text= with an empty body."""
    text = marker(idtag) + " The quick brown fox jumps over the lazy dog"
    st, h, js, raw = http_json("POST", base + "/summarize", json.dumps({"text": text}),
                               {"Content-Type": "application/json"})
    tap.ok(st == 200 and isinstance(js, dict) and js.get("summary") == expected_answer(text)
           and js.get("stop_reason") == "end_turn" and js.get("usage", {}).get("output_tokens") == 20,
           "%s: POST /summarize -> 200 with the emulator's summary" % where, (st, h, raw[:300]))
    sent = emu.stats(idtag).get("last_request") or {}
    tap.eq((sent.get("headers") or {}).get("x-api-key"), API_KEY, "%s: upstream got the gateway's key" % where)
    st, _, js, raw = http_json("POST", base + "/sync-summarize?text=" + q("alpha beta gamma"), "")
    tap.ok(st == 200 and js and js.get("summary") == expected_answer("alpha beta gamma"),
           "%s: POST /sync-summarize?text=... -> 200" % where, (st, raw[:300]))


def check_errors(tap, where, base, emu):
    """An unknown route is our JSON 404, a wrong method our 405 with Allow; the upstream sees
    neither."""
    before = emu.stats()["attempts"]
    st, h, js, raw = http_json("POST", base + "/nope", "")
    tap.ok(st == 404 and js and js.get("error", {}).get("type") == "not_found_error",
           "%s: unknown route -> 404 not_found_error (JSON from llm-fcgi)" % where, (st, h, raw[:300]))
    st, h, js, raw = http_json("GET", base + "/summarize")
    tap.ok(st == 405 and js and js.get("error", {}).get("type") == "invalid_request_error"
           and h.get("allow") == "POST", "%s: GET /summarize -> 405 with Allow: POST" % where, (st, h, raw[:300]))
    tap.eq(emu.stats()["attempts"], before, "%s: 404/405 never reach the upstream" % where)


def check_basics(tap, where, base, emu, idtag, workers=None):
    """The preamble of every deployment: check_sync, check_errors, check_healthz (returns
    /healthz's JSON)."""
    check_sync(tap, where, base, emu, idtag)
    check_errors(tap, where, base, emu)
    return check_healthz(tap, where, base, workers)


def check_same_origin(tap, where, base):
    """A browser on the site itself (Origin = the site, port included) may stream; another
    origin may not. Catches a server that passes HTTP_HOST without the port."""
    u = base.split("/")
    origin = u[0] + "//" + u[2]
    st, h, body = http("POST", base + "/stream", "text=same%20site",
                       {"Origin": origin, "Sec-Fetch-Site": "same-origin",
                        "Content-Type": "application/x-www-form-urlencoded"})
    tap.ok(st == 200 and body.startswith(b"same site"), "%s: same-origin browser POST /stream (Origin %s) -> 200"
           % (where, origin), (st, body[:200]))
    st, h, body = http("POST", base + "/stream", "text=x", {"Origin": "http://evil.example",
                                                           "Content-Type": "application/x-www-form-urlencoded"})
    tap.eq(st, 403, "%s: foreign Origin -> 403" % where)


def check_healthz(tap, where, base, workers=None):
    st, h, js, raw = http_json("GET", base + "/healthz")
    tap.ok(st == 200 and js and js.get("status") == "ok", "%s: GET /healthz -> ok" % where, (st, raw[:200]))
    if workers is not None:
        tap.eq((js or {}).get("workers", {}).get("total"), workers, "%s: /healthz counts %d workers" % (where, workers))
    return js


MIB = 1048576
# The largest body llm-fcgi accepts on any route: max_body_bytes_api (32 MiB, the /v1/ routes);
# its own endpoints take max_body_bytes (1 MiB). The servers' limits match the largest.
SERVER_BODY_LIMIT = 32 * MIB


def big_body_check(tap, where, base, emu, idtag, server_limit=SERVER_BODY_LIMIT, over_status=413):
    """A body just under 1 MiB (max_body_bytes) reaches the upstream; one just over gets
    llm-fcgi's own JSON 413; one over the largest limit is refused by the server itself."""
    words = "lorem ipsum dolor sit amet "
    size = MIB - 1024
    filler = words * (size // len(words) + 1)
    body = json.dumps({"text": marker(idtag) + " " + filler})
    body = json.dumps({"text": marker(idtag) + " " + filler[:size - (len(body) - len(filler))]})
    st, h, js, raw = http_json("POST", base + "/summarize", body, {"Content-Type": "application/json"})
    tap.ok(st == 200 and js and js.get("summary", "").startswith("lorem ipsum"),
           "%s: a %d-byte body (just under 1 MiB) -> 200" % (where, len(body)), (st, raw[:300]))
    tap.eq(emu.stats(idtag).get("attempts"), 1, "%s: ... and reached the upstream once" % where)
    big = json.dumps({"text": "x" * MIB})
    try:
        st, h, js, raw = http_json("POST", base + "/summarize", big, {"Content-Type": "application/json"})
    except (OSError, IndexError, ValueError) as e:  # no (parsable) answer at all
        st, js, raw = "no answer (%s)" % type(e).__name__, None, b""
    tap.ok(st == 413 and js and js.get("error", {}).get("type") == "request_too_large",
           "%s: a body just over 1 MiB -> llm-fcgi's JSON 413 (the server passed it)" % where, (st, raw[:300]))
    before = emu.stats()["attempts"]
    st, raw = send_big_body(base + "/summarize", server_limit + 1024)
    tap.ok(st == over_status, "%s: a body over %d MiB -> %d" % (where, server_limit // MIB, over_status),
           (st, raw[:300]))
    tap.eq(emu.stats()["attempts"], before, "%s: ... which never reaches the upstream" % where)


def htpasswd(path, users):
    """A password file made by Apache's htpasswd (bcrypt), readable by www-data."""
    first = True
    for user, password in users.items():
        subprocess.run(["htpasswd", "-b", "-B"] + (["-c"] if first else []) + [path, user, password],
                       check=True, capture_output=True)
        first = False
    os.chmod(path, 0o640)
    os.chown(path, 0, WWW_UID)
    return path
