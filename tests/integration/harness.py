"""Integration harness: real servers on loopback, one temp directory and free ports per test.

Every test file is a script that prints TAP. A Stack starts the project's upstream emulator, a
spawn-fcgi pool of llm-fcgi workers on a Unix socket and a web server whose configuration is
rendered from a template that includes the shipped example from conf/. Everything is torn down
by PID. ANTHROPIC_* and LLM_FCGI_* variables inherited from the shell are ignored.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.environ.get("LLM_SRCDIR", os.path.join(HERE, "..", "..")))
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


# ---------------------------------------------------------------- processes

def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


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


def spawn(argv, env=None, log=None, cwd=None):
    out = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                         stdin=subprocess.DEVNULL)
    Proc.track(p.pid)
    return p


# ---------------------------------------------------------------- the stack

class Emulator:
    def __init__(self, tmp, words=20, delay_ms=0, ttft_ms=0):
        self.port_file = os.path.join(tmp, "emu.port")
        self.log = os.path.join(tmp, "emu.log")
        self.proc = spawn([LLM_EMU, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
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


class Pool:
    """llm-fcgi workers under spawn-fcgi on a Unix socket."""

    def __init__(self, tmp, upstream, workers=2, settings=None, name="pool", socket_path=None,
                 mode="0660"):
        self.tmp = tmp
        self.sock = socket_path or os.path.join(tmp, name + ".sock")
        self.pidfile = os.path.join(tmp, name + ".pids")
        self.log_file = os.path.join(tmp, name + ".log")
        env = {"ANTHROPIC_BASE_URL": upstream, "ANTHROPIC_API_KEY": API_KEY,
               "LLM_FCGI_LOG_FILE": self.log_file, "LLM_FCGI_LOG_LEVEL": "debug"}
        for k, v in (settings or {}).items():
            env["LLM_FCGI_" + k.upper()] = str(v)
        self.env = clean_env(env)
        # A config file nobody asked for must not leak in from the machine.
        self.env["LLM_FCGI_CONFIG"] = os.path.join(tmp, "empty.conf")
        open(self.env["LLM_FCGI_CONFIG"], "a").close()
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
        try:
            with open(self.log_file) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        for pid in self.pids():
            Proc.stop(pid)


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


class PreforkPool(Pool):
    """llm-fcgi -c N (the prefork supervisor) under spawn-fcgi -n, configured by a file."""

    def __init__(self, tmp, upstream, workers=3, settings=None, name="prefork", config=""):
        self.tmp = tmp
        self.sock = os.path.join(tmp, name + ".sock")
        self.log_file = os.path.join(tmp, name + ".log")
        self.config = os.path.join(tmp, name + ".conf")
        self.write_config(config)
        env = {"ANTHROPIC_BASE_URL": upstream, "ANTHROPIC_API_KEY": API_KEY,
               "LLM_FCGI_LOG_FILE": self.log_file, "LLM_FCGI_LOG_LEVEL": "debug"}
        for k, v in (settings or {}).items():
            env["LLM_FCGI_" + k.upper()] = str(v)
        self.env = clean_env(env)
        self.workers = workers
        self.proc = spawn(["spawn-fcgi", "-s", self.sock, "-M", "0666", "-n", "--"] + WRAP +
                          [LLM_FCGI, "-c", str(workers), "-f", self.config], env=self.env,
                          log=os.path.join(tmp, name + ".out"))
        wait_for(lambda: len(self.pids()) == workers and os.path.exists(self.sock),
                 what="%d prefork workers" % workers)

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)

    @property
    def parent(self):
        return self.proc.pid

    def pids(self):
        return children(self.proc.pid)

    def alive(self):
        return self.pids()

    def stop(self):
        Proc.stop(self.proc.pid, grace=15)


def render(template, dest, values):
    with open(os.path.join(HERE, "templates", template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@" + k + "@", str(v))
    with open(dest, "w") as f:
        f.write(text)
    return dest


class Lighttpd:
    def __init__(self, tmp, sock, prefix="/", template="lighttpd.conf.in", extra=None):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        docroot = os.path.join(tmp, "docroot")
        os.makedirs(docroot, exist_ok=True)
        values = {"PORT": self.port, "DOCROOT": docroot, "DIR": tmp, "SOCKET": sock,
                  "PREFIX": prefix, "CONF": os.path.join(SRCDIR, "conf")}
        values.update(extra or {})
        self.conf = render(template, os.path.join(tmp, "lighttpd.conf"), values)
        self.log = os.path.join(tmp, "lighttpd.log")
        self.proc = spawn(["lighttpd", "-D", "-f", self.conf], log=self.log)
        wait_for(lambda: port_open(self.port), what="lighttpd on port %d" % self.port)

    def stop(self):
        Proc.stop(self.proc.pid)


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Stack:
    """Emulator + spawn-fcgi pool + lighttpd, in a fresh temp directory."""

    def __init__(self, prefix="/", workers=2, settings=None, emu=None, upstream=None, prefork=False,
                 config=""):
        self.tmp = tempfile.mkdtemp(prefix="llm-fcgi-it.")
        self.emu = emu if emu is not None else Emulator(self.tmp)
        up = upstream or self.emu.url
        if prefork:
            self.pool = PreforkPool(self.tmp, up, workers=workers, settings=settings, config=config)
        else:
            self.pool = Pool(self.tmp, up, workers=workers, settings=settings)
        self.web = Lighttpd(self.tmp, self.pool.sock, prefix=prefix)
        self.base = self.web.url + (prefix.rstrip("/"))

    def stop(self):
        self.web.stop()
        self.pool.stop()
        if self.emu:
            self.emu.stop()
        if os.environ.get("LLM_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)


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


def http(method, url, body=None, headers=None, timeout=30):
    """One request on a raw socket (so nothing is hidden or normalised): (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": u.netloc, "Connection": "close"}
    if body is not None and not any(k.lower() == "transfer-encoding" for k in (headers or {})):
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    req = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    try:
        s.sendall(req.encode("latin-1") + (body or b""))
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


class Stream:
    """A streamed response read chunk by chunk with arrival times (HTTP/1.1 chunked or close)."""

    def __init__(self, method, url, body=None, headers=None, timeout=30):
        u = urllib.parse.urlsplit(url)
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        if isinstance(body, str):
            body = body.encode()
        h = {"Host": u.netloc, "Connection": "close"}
        if body is not None:
            h["Content-Length"] = str(len(body))
        h.update(headers or {})
        req = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.t0 = time.time()
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        self.sock.sendall(req.encode("latin-1") + (body or b""))
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


# ---------------------------------------------------------------- Apache

WWW_UID = 33  # www-data: Apache's children, and the workers mod_fcgid spawns, run as this user


def apache_modules(*names):
    return "\n".join("LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so" % (n, n) for n in names)


class Apache:
    def __init__(self, tmp, snippet, prefix, modules, defines, extra=""):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        docroot = os.path.join(tmp, "docroot")
        os.makedirs(docroot, exist_ok=True)
        os.makedirs(os.path.join(tmp, "apache-run"), exist_ok=True)
        values = {"PORT": self.port, "DOCROOT": docroot, "DIR": tmp, "PREFIX": prefix,
                  "CONF": os.path.join(SRCDIR, "conf"), "SNIPPET": snippet,
                  "MODULES": apache_modules(*modules),
                  "DEFINES": "\n".join("Define %s %s" % kv for kv in defines.items()),
                  "EXTRA": extra}
        self.conf = render("apache.conf.in", os.path.join(tmp, "apache.conf"), values)
        self.log = os.path.join(tmp, "apache-error.log")
        self.proc = spawn(["apache2", "-f", self.conf, "-DFOREGROUND"], log=os.path.join(tmp, "apache.out"),
                          env=clean_env({"APACHE_RUN_DIR": os.path.join(tmp, "apache-run")}))
        wait_for(lambda: port_open(self.port), timeout=15, what="apache on port %d" % self.port)

    def stop(self):
        Proc.stop(self.proc.pid, grace=10)


def open_tmp(tmp):
    """Apache's children run as www-data and must reach sockets and files in the temp dir."""
    os.chmod(tmp, 0o755)


class ApacheProxyStack:
    """Emulator + spawn-fcgi pool + Apache mod_proxy_fcgi."""

    def __init__(self, prefix="/", workers=2, settings=None):
        self.tmp = tempfile.mkdtemp(prefix="llm-fcgi-it.")
        open_tmp(self.tmp)
        self.emu = Emulator(self.tmp)
        self.pool = Pool(self.tmp, self.emu.url, workers=workers, settings=settings, mode="0666")
        self.web = Apache(self.tmp, "llm-fcgi-proxy.conf", prefix, ["proxy", "proxy_fcgi", "headers"],
                          {"LLM_FCGI_SOCKET": self.pool.sock})
        self.base = self.web.url + prefix.rstrip("/")

    def stop(self):
        self.web.stop()
        self.pool.stop()
        self.emu.stop()
        if os.environ.get("LLM_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)


class FcgidPool:
    """The workers mod_fcgid spawns: found by their log file, configured by a settings file."""

    def __init__(self, tmp, upstream, settings=None):
        self.log_file = os.path.join(tmp, "fcgid-workers.log")
        open(self.log_file, "a").close()
        os.chown(self.log_file, WWW_UID, WWW_UID)
        key = os.path.join(tmp, "api-key")
        with open(key, "w") as f:
            f.write(API_KEY + "\n")
        os.chmod(key, 0o600)
        os.chown(key, WWW_UID, WWW_UID)
        conf = {"upstream_url": upstream, "api_key_file": key, "log_file": self.log_file,
                "log_level": "debug"}
        conf.update(settings or {})
        self.config = os.path.join(tmp, "llm-fcgi.conf")
        with open(self.config, "w") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))

    def pids(self):
        out = subprocess.run(["pgrep", "-f", "-u", str(WWW_UID), "^" + LLM_FCGI], capture_output=True, text=True)
        return sorted(int(x) for x in out.stdout.split())

    access = Pool.access
    log_text = Pool.log_text

    def stop(self):
        pass


class ApacheFcgidStack:
    """Emulator + Apache mod_fcgid spawning the workers."""

    def __init__(self, prefix="/", settings=None):
        self.tmp = tempfile.mkdtemp(prefix="llm-fcgi-it.")
        open_tmp(self.tmp)
        ipc = os.path.join(self.tmp, "fcgid")
        os.makedirs(ipc)
        os.chown(ipc, WWW_UID, WWW_UID)
        self.emu = Emulator(self.tmp)
        self.pool = FcgidPool(self.tmp, self.emu.url, settings)
        extra = 'FcgidIPCDir "%s"\nFcgidProcessTableFile "%s/fcgid_shm"\n' % (ipc, self.tmp)
        self.web = Apache(self.tmp, "llm-fcgi-fcgid.conf", prefix, ["fcgid"],
                          {"LLM_FCGI_BIN": LLM_FCGI, "LLM_FCGI_CONFIG": self.pool.config}, extra)
        self.base = self.web.url + prefix.rstrip("/")

    def stop(self):
        self.web.stop()
        self.emu.stop()
        if os.environ.get("LLM_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)
