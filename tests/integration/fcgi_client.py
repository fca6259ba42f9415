"""A raw FastCGI client (Python standard library only), for talking to the pool's socket directly.

Web servers refuse some inputs themselves (lighttpd answers 411, 431, 413 and 501 before the
backend sees anything), so the worker's own handling of those inputs can only be tested by
speaking FastCGI to it. This client does exactly what the protocol allows and nothing more:

    BEGIN_REQUEST (role responder, keep_conn 0)
    PARAMS records (name-value pairs with 1- or 4-byte lengths, the stream cut into records of
                    at most 65535 bytes), then an empty PARAMS record
    STDIN records (at most 65535 bytes each), then an empty STDIN record (unless told not to)
    then reads STDOUT / STDERR until END_REQUEST (or EOF, or the timeout)

    resp = request(sock, {"REQUEST_METHOD": "POST", "REQUEST_URI": "/summarize", ...}, b"body")
    status, headers, body = resp        # status from the CGI "Status:" header (200 without one)

For the early-413 case, `stdin_eof=False` sends the params and the stdin given but never the
rest nor the end of stdin, and reads the answer anyway: a worker that waits for the body instead
of deciding from CONTENT_LENGTH shows up as a timeout.
"""
import socket
import struct
import time

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR, DATA = range(1, 9)
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER = 1
KEEP_CONN = 1
MAX_RECORD = 65535
REQUEST_ID = 1


class FcgiError(Exception):
    pass


class FcgiTimeout(FcgiError):
    pass


def record(rtype, content=b"", request_id=REQUEST_ID):
    """One record, padded to a multiple of 8 bytes as libfcgi itself does."""
    if len(content) > MAX_RECORD:
        raise ValueError("record content over 65535 bytes")
    pad = -len(content) % 8
    return struct.pack(">BBHHBx", VERSION, rtype, request_id, len(content), pad) + content + b"\0" * pad


def _length(n):
    if n < 128:
        return struct.pack(">B", n)
    if n > 0x7FFFFFFF:
        raise ValueError("name or value over 2^31-1 bytes")
    return struct.pack(">I", n | 0x80000000)


def _bytes(s):
    return s if isinstance(s, bytes) else str(s).encode("latin-1")


def encode_params(params):
    """Name-value pairs: each length on 1 byte below 128, else on 4 bytes with the top bit set."""
    out = []
    items = params.items() if isinstance(params, dict) else params
    for name, value in items:
        name, value = _bytes(name), _bytes(value)
        out.append(_length(len(name)) + _length(len(value)) + name + value)
    return b"".join(out)


def stream_records(rtype, data, end=True, chunk=MAX_RECORD):
    """A stream cut into records of at most `chunk` bytes, plus the empty record that ends it."""
    out = [record(rtype, data[i:i + chunk]) for i in range(0, len(data), chunk)]
    if end:
        out.append(record(rtype, b""))
    return b"".join(out)


def encode_request(params, stdin=b"", stdin_eof=True, keep_conn=False, role=RESPONDER):
    """The bytes of a whole request, ready to send (precompute them to send one many times)."""
    begin = struct.pack(">HB5x", role, KEEP_CONN if keep_conn else 0)
    return (record(BEGIN_REQUEST, begin) + stream_records(PARAMS, encode_params(params))
            + stream_records(STDIN, _bytes(stdin), end=stdin_eof))


class Response:
    """What came back. Unpacks as (status, headers, body)."""

    def __init__(self):
        self.stdout = b""
        self.stderr = b""
        self.ended = False          # END_REQUEST arrived
        self.app_status = None
        self.protocol_status = None
        self.status = None
        self.headers = {}           # lower-case name -> value (last wins)
        self.header_list = []       # (name, value) as sent
        self.body = b""
        self.elapsed = None         # seconds from the first byte sent to END_REQUEST / EOF

    def _parse(self):
        data = self.stdout
        for sep in (b"\r\n\r\n", b"\n\n"):
            i = data.find(sep)
            if i >= 0:
                head, self.body = data[:i], data[i + len(sep):]
                break
        else:
            head, self.body = data, b""
        for line in head.replace(b"\r\n", b"\n").split(b"\n"):
            if b":" not in line:
                continue
            k, v = line.split(b":", 1)
            k, v = k.strip().decode("latin-1"), v.strip().decode("latin-1")
            self.header_list.append((k, v))
            self.headers[k.lower()] = v
        st = self.headers.get("status")
        if st:
            try:
                self.status = int(st.split()[0])
            except ValueError:
                self.status = None
        elif self.stdout:
            self.status = 200  # CGI: no Status header means 200

    def json(self):
        import json
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "Response(status=%r, headers=%r, body=%r, ended=%r)" % (
            self.status, self.headers, self.body[:200], self.ended)


def _read_response(s, deadline):
    resp = Response()
    buf = b""
    while True:
        left = deadline - time.time()
        if left <= 0:
            raise FcgiTimeout("no END_REQUEST in time (got %d stdout bytes)" % len(resp.stdout))
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            raise FcgiTimeout("no END_REQUEST in time (got %d stdout bytes)" % len(resp.stdout))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            ver, rtype, rid, clen, plen = struct.unpack(">BBHHBx", buf[:8])
            if len(buf) < 8 + clen + plen:
                break
            content = buf[8:8 + clen]
            buf = buf[8 + clen + plen:]
            if ver != VERSION:
                raise FcgiError("bad record version %d" % ver)
            if rtype == STDOUT:
                resp.stdout += content
            elif rtype == STDERR:
                resp.stderr += content
            elif rtype == END_REQUEST:
                resp.app_status, resp.protocol_status = struct.unpack(">IB3x", content[:8])
                resp.ended = True
                return resp
            elif rtype == UNKNOWN_TYPE:
                raise FcgiError("the application did not know a record type: %r" % content)
    return resp


def read_response(s, timeout=10.0):
    """Reads an answer from a connection on which a request was sent (see request)."""
    t0 = time.time()
    resp = _read_response(s, t0 + timeout)
    resp.elapsed = time.time() - t0
    resp._parse()
    return resp


def request(addr, params, stdin=b"", timeout=10.0, stdin_eof=True, raw=None, source=None):
    """Sends one request on a new connection and reads the answer. Returns a Response (status,
    headers, body). addr: a Unix socket's path, or (host, port) for TCP, from the address source
    when given. stdin_eof=False: the empty STDIN record is never sent. raw: the request's bytes
    as encode_request made them (params and stdin are then ignored). Raises FcgiTimeout."""
    data = raw if raw is not None else encode_request(params, stdin, stdin_eof)
    t0 = time.time()
    deadline = t0 + timeout
    s = socket.socket(socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect(addr)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the application may answer and close before reading everything we send
        resp = _read_response(s, deadline)
    finally:
        s.close()
    resp.elapsed = time.time() - t0
    resp._parse()
    return resp


def cgi_params(method, uri, content_type=None, content_length=None, extra=None, query=None):
    """The params a web server sends for a request; None leaves a param out."""
    path, _, qs = uri.partition("?")
    if query is not None:
        qs = query
        uri = path + ("?" + qs if qs else "")
    p = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
         "SERVER_SOFTWARE": "fcgi_client.py", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
         "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000",
         "REQUEST_METHOD": method, "REQUEST_URI": uri, "SCRIPT_NAME": path,
         "QUERY_STRING": qs}
    if content_type is not None:
        p["CONTENT_TYPE"] = content_type
    if content_length is not None:
        p["CONTENT_LENGTH"] = str(content_length)
    for k, v in (extra or {}).items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    return p
