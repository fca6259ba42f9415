"""Deployment harness: every setup an operator would choose, built on harness.py.

harness.py runs the primary stack (spawn-fcgi -F N + lighttpd, and Apache with mod_proxy_fcgi or
mod_fcgid). This module adds the others, each rendered from a template that includes the
shipped file from conf/ (or a copy of it with the operator's edits applied, for the files that
are edited rather than included with variables):

  SpawnFcgiPool    spawn-fcgi -n -- llm-fcgi -c N (the README's recipe), on a Unix socket or TCP
  SettingsFile     a settings file + key file readable by the workers' user (bin-path, CGI, systemd)
  LighttpdSite     lighttpd from any template here (bin-path, mod_auth, several hosts, www-data)
  ApacheSite       Apache from templates/apache-site.conf.in (CGI, .htaccess, auth, balancer)
  Nginx            nginx with conf/nginx/llm-fcgi.conf and an upstream block

plus the checks every deployment runs (sync, 404/405, /healthz, same origin, body limits), HTTP
Basic checks, a traffic loop for the scale-out tests, a raw FastCGI client and a reader for
systemd units. Everything is stopped by PID (harness.Proc).
"""
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import (API_KEY, LLM_FCGI, SRCDIR, WWW_UID, Apache, Lighttpd, Pool, Proc, children,
                     apache_modules, clean_env, free_port, http, http_json, marker, open_tmp,
                     port_open, q, render, wait_for)

CONF = os.path.join(SRCDIR, "conf")
HERE = harness.HERE


def new_tmp():
    tmp = tempfile.mkdtemp(prefix="llm-fcgi-it.")
    open_tmp(tmp)  # Apache's and nginx's children (www-data) must reach sockets and logs here
    return tmp


def remove_tmp(tmp):
    if os.environ.get("LLM_KEEP_TMP") != "1":
        shutil.rmtree(tmp, ignore_errors=True)


def spawn_group(argv, env=None, log=None):
    """Starts argv in its own session (so a whole pool can be signalled at once), tracked."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    Proc.track(p.pid)
    return p


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


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


# ---------------------------------------------------------------- worker pools

def pool_env(upstream, log_file, settings=None, tmp=None):
    env = {"ANTHROPIC_BASE_URL": upstream, "ANTHROPIC_API_KEY": API_KEY,
           "LLM_FCGI_LOG_FILE": log_file, "LLM_FCGI_LOG_LEVEL": "debug"}
    for k, v in (settings or {}).items():
        env["LLM_FCGI_" + k.upper()] = str(v)
    env = clean_env(env)
    if tmp:
        env["LLM_FCGI_CONFIG"] = os.path.join(tmp, "empty.conf")
        open(env["LLM_FCGI_CONFIG"], "a").close()
    return env


class SpawnFcgiPool:
    """The README's primary recipe: spawn-fcgi -n execs llm-fcgi -c N, which forks N workers that
    share the socket; the supervisor stays in the foreground (as under systemd)."""

    def __init__(self, tmp, upstream, workers=3, settings=None, name="prefork", sock=None,
                 tcp=None, mode="0666", env_extra=None):
        self.tmp = tmp
        self.name = name
        self.log_file = os.path.join(tmp, name + ".log")
        self.out = os.path.join(tmp, name + ".out")
        self.env = pool_env(upstream, self.log_file, settings, tmp)
        self.env.update(env_extra or {})
        self.workers = workers
        if tcp:
            self.host, self.port = tcp
            where = ["-a", self.host, "-p", str(self.port)]
            self.sock = None
        else:
            self.sock = sock or os.path.join(tmp, name + ".sock")
            where = ["-s", self.sock, "-M", mode]
        self.argv = ["spawn-fcgi"] + where + ["-n", "--", LLM_FCGI, "-c", str(workers)]
        self.proc = spawn_group(self.argv, env=self.env, log=self.out)
        self.pid = self.proc.pid
        wait_for(self.ready, timeout=10, what="%s: %d workers" % (name, workers))

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited: %s" % (self.name, self.output()))
        if self.sock and not os.path.exists(self.sock):
            return False
        if not self.sock and not port_open(self.port, self.host):
            return False
        return len(self.worker_pids()) == self.workers

    def worker_pids(self):
        return children(self.pid)

    def pids(self):
        return [self.pid] + self.worker_pids()

    def alive(self):
        return [p for p in self.pids() if harness.pid_alive(p)]

    access = Pool.access
    log_text = Pool.log_text

    def output(self):
        try:
            with open(self.out) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kill(self):
        """The host dies: every process of the pool gets SIGKILL at once."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(5)

    def stop(self):
        """SIGTERM to the supervisor: workers finish their requests (grace_period), then exit."""
        Proc.stop(self.pid, grace=10)
        for p in self.worker_pids():
            Proc.stop(p)


class SettingsFile:
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
        conf = {"upstream_url": upstream, "api_key_file": self.key_file, "log_file": self.log_file,
                "log_level": "debug"}
        if not log_file:  # log to stderr (the journal); the caller points log_file at its capture
            del conf["log_file"]
        conf.update(settings or {})
        self.path = os.path.join(tmp, name + ".conf")
        with open(self.path, "w") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.path, 0o644)

    access = Pool.access
    log_text = Pool.log_text


# ---------------------------------------------------------------- web servers

class LighttpdSite(Lighttpd):
    """harness.Lighttpd with another template; values fill @KEY@ placeholders."""

    def __init__(self, tmp, template, prefix="/", sock="", values=None):
        super().__init__(tmp, sock, prefix=prefix, template=template, extra=values or {})


class ApacheSite(Apache):
    """Apache from templates/apache-site.conf.in: the base server, modules, then free-form
    configuration (Defines and Includes of shipped files)."""

    def __init__(self, tmp, modules, body, port=None):
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.docroot = os.path.join(tmp, "docroot")
        os.makedirs(self.docroot, exist_ok=True)
        os.chmod(self.docroot, 0o755)
        os.makedirs(os.path.join(tmp, "apache-run"), exist_ok=True)
        values = {"PORT": self.port, "DOCROOT": self.docroot, "DIR": tmp,
                  "MODULES": apache_modules(*modules), "BODY": body.replace("@CONF@", CONF)}
        self.conf = render("apache-site.conf.in", os.path.join(tmp, "apache.conf"), values)
        self.log = os.path.join(tmp, "apache-error.log")
        self.proc = harness.spawn(["apache2", "-f", self.conf, "-DFOREGROUND"],
                                  log=os.path.join(tmp, "apache.out"),
                                  env=clean_env({"APACHE_RUN_DIR": os.path.join(tmp, "apache-run")}))
        try:
            wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, timeout=15,
                     what="apache on port %d" % self.port)
        finally:
            if self.proc.poll() is not None:
                raise RuntimeError("apache exited: %s %s" % (read(os.path.join(tmp, "apache.out")),
                                                             read(self.log)))

    def error_log(self):
        return read(self.log)


class Nginx:
    """nginx (master as root, workers as www-data) with a server whose location includes
    conf/nginx/llm-fcgi.conf and an upstream block naming the pool's socket(s)."""

    def __init__(self, tmp, servers, prefix="/"):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
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
        self.proc = harness.spawn(["nginx", "-c", self.conf, "-p", tmp, "-g", "daemon off;"],
                                  log=os.path.join(tmp, "nginx.out"), env=clean_env())
        wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, timeout=10,
                 what="nginx on port %d" % self.port)
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: %s" % read(os.path.join(tmp, "nginx.out")))

    def stop(self):
        Proc.stop(self.proc.pid)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


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


def send_big_body(url, length, timeout=30):
    """POSTs a JSON body of length bytes, sending it while reading the answer (a server may
    answer, and close, before the body is all sent): (status, body bytes)."""
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    h = {"Host": u.netloc, "Connection": "close", "Content-Type": "application/json",
         "Content-Length": str(length)}
    req = "POST %s HTTP/1.1\r\n" % (u.path or "/") + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
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
        s.sendall(req.encode() + b'{"text": "')
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


# ---------------------------------------------------------------- traffic for the scale-out tests

class Traffic:
    """Threads sending /summarize requests back to back; each result is (start, end, status,
    ok, body start, emulator id), ok meaning a 200 with the right summary."""

    def __init__(self, base, threads=4, words=4, delay_ms=60, tag="tr"):
        self.base = base
        self.results = []
        self.lock = threading.Lock()
        self.running = True
        self.words, self.delay_ms, self.tag = words, delay_ms, tag
        self.threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def _loop(self, i):
        n = 0
        while self.running:
            n += 1
            rid = "%s-%d-%d" % (self.tag, i, n)
            text = marker(rid, words=self.words, delay=self.delay_ms) + " w%d x%d" % (i, n)
            t0 = time.time()
            raw = b""
            try:
                st, _, js, raw = http_json("POST", self.base + "/summarize", json.dumps({"text": text}),
                                           {"Content-Type": "application/json"})
                ok = st == 200 and js.get("summary") == expected_answer(text, self.words)
            except Exception as e:  # noqa: BLE001 - a failed request is a result
                st, ok = repr(e), False
            with self.lock:
                self.results.append((t0, time.time(), st, ok, raw[:120], rid))

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(30)
        return sorted(self.results)


# ---------------------------------------------------------------- systemd units

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


# ---------------------------------------------------------------- access control

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


def basic(user, password):
    import base64
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def check_basic_auth(tap, where, base, emu, pool, idtag, user, password):
    """Unauthenticated and wrongly authenticated requests get the server's 401 and reach neither
    a worker nor the upstream; an authenticated sync call and stream work; the client's
    Authorization header never goes upstream."""
    import streaming
    from harness import Stream
    before, n0 = emu.stats()["attempts"], len(pool.access())
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [("POST /summarize without credentials", "POST", "/summarize", "text=hello", form),
             ("GET /stream without credentials", "GET", "/stream?text=hello", None, {}),
             ("POST /stream with a wrong password", "POST", "/stream", "text=hello",
              dict(form, **basic(user, "wrong"))),
             ("POST /summarize as an unknown user", "POST", "/summarize", "text=hello",
              dict(form, **basic("mallory", password)))]
    for name, method, path, body, hdrs in cases:
        st, h, b = http(method, base + path, body, hdrs)
        tap.ok(st == 401 and h.get("www-authenticate", "").lower().startswith("basic"),
               "%s: %s -> 401 with WWW-Authenticate: Basic" % (where, name), (st, h))
    tap.eq(emu.stats()["attempts"], before, "%s: the 401s never reached the upstream" % where)
    tap.eq(len(pool.access()), n0, "%s: ... nor a worker (no access log line)" % where)

    auth = basic(user, password)
    text = marker(idtag + "-sync") + " authorised words here"
    st, h, js, raw = http_json("POST", base + "/summarize", json.dumps({"text": text}),
                               dict({"Content-Type": "application/json"}, **auth))
    tap.ok(st == 200 and js and js.get("summary") == expected_answer(text),
           "%s: with credentials: POST /summarize -> 200" % where, (st, raw[:300]))
    sent = (emu.stats(idtag + "-sync").get("last_request") or {}).get("headers", {})
    tap.ok("authorization" not in sent, "%s: the client's Authorization header is not forwarded upstream" % where,
           sorted(sent))
    tap.eq(sent.get("x-api-key"), API_KEY, "%s: upstream got the gateway's own key" % where)

    text = marker(idtag + "-stream", words=streaming.DELTAS, delay=streaming.DELAY_MS) + " one two three"
    n1 = len(pool.access())
    st = Stream("POST", base + "/stream", "text=" + q(text), dict(form, **auth))
    tap.eq(st.status, 200, "%s: with credentials: text stream 200" % where)
    tap.eq(st.read_all().decode(), streaming.answer(text), "%s: stream text byte for byte" % where)
    streaming.check_arrivals(tap, where + " stream", st)
    acc = streaming.last_access(pool, after=n1)
    tap.eq(acc.get("delta_flushes"), streaming.DELTAS, "%s: one flush per delta" % where)
    sent = (emu.stats(idtag + "-stream").get("last_request") or {}).get("headers", {})
    tap.ok("authorization" not in sent and sent.get("x-api-key") == API_KEY,
           "%s: stream: no Authorization upstream, the gateway's key" % where, sorted(sent))

    st, h, js, raw = http_json("GET", base + "/healthz")
    tap.ok(st == 200 and js and js.get("status") == "ok", "%s: /healthz stays open without credentials" % where,
           (st, raw[:200]))


# ---------------------------------------------------------------- a raw FastCGI client

def fastcgi_request(host, port, params, source=None, timeout=5):
    """One FastCGI request straight to a pool (as a web server would send it), from a chosen
    source address: returns the worker's stdout, or b"" when it closed without answering."""
    import struct

    def record(rtype, content):
        return struct.pack("!BBHHBx", 1, rtype, 1, len(content), 0) + content

    def length(n):
        return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)

    pairs = b"".join(length(len(k)) + length(len(v)) + k + v
                     for k, v in ((k.encode(), v.encode()) for k, v in params.items()))
    s = socket.socket()
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    out, data = b"", b""
    try:
        s.sendall(record(1, struct.pack("!HB5x", 1, 0)) + record(4, pairs) + record(4, b"") + record(5, b""))
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    finally:
        s.close()
    while len(data) >= 8:
        _, rtype, _, clen, plen = struct.unpack("!BBHHB", data[:7])
        if rtype == 6:
            out += data[8:8 + clen]
        data = data[8 + clen + plen:]
    return out
