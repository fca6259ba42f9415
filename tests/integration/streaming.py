"""Streaming checks shared by every server setup: arrival timing, flush count, byte-exact text,
SSE framing, mid-stream failures, disconnects. Each check takes a base URL and the pool whose
access log proves the flushes."""
import json
import re
import threading
import time

from harness import SLOW, Stream, http, marker, q, sse_events, wait_for

DELTAS = 20
DELAY_MS = 50


def answer(words_text, words=DELTAS):
    ws = re.sub(r"\[\[emu:[^\]]*\]\]", " ", words_text).split() or ["ok"]
    return " ".join(ws[i % len(ws)] for i in range(words))


def last_access(pool, route="/stream", after=0):
    """The access record of the latest /stream request (waiting for it to be written)."""
    def find():
        recs = [a for a in pool.access()[after:] if a.get("route") == route]
        return recs[-1] if recs else None
    return wait_for(find, timeout=10, what="access log line")


def check_arrivals(tap, where, st, deltas=DELTAS, delay_ms=DELAY_MS):
    """At least deltas-2 separate arrivals spread over most of the stream, not one burst."""
    n = len(st.arrivals)
    tap.ok(n >= deltas - 2, "%s: %d separate arrivals (>= %d)" % (where, n, deltas - 2),
           [(round(t, 3), d[:40]) for t, d in st.arrivals])
    if SLOW:
        tap.skip("%s: arrivals spread over the stream" % where, "timing not checked in instrumented runs")
        return
    times = [t for t, _ in st.arrivals]
    span = times[-1] - times[0] if times else 0
    want = (deltas - 1) * delay_ms / 1000.0
    tap.ok(span >= 0.6 * want, "%s: arrivals span %.2f s of a %.2f s stream" % (where, span, want))


def check_text_stream(tap, where, base, pool, idtag, path="/stream"):
    text = marker(idtag, words=DELTAS, delay=DELAY_MS) + " one two three four five"
    n0 = len(pool.access())
    st = Stream("POST", base + path, "text=" + q(text),
                {"Content-Type": "application/x-www-form-urlencoded"})
    tap.eq(st.status, 200, "%s: text stream 200" % where)
    tap.ok(st.headers.get("content-type", "").startswith("text/plain"), "%s: text/plain" % where, st.headers)
    tap.ok("content-length" not in st.headers, "%s: no Content-Length" % where, st.headers)
    tap.eq(st.headers.get("cache-control"), "no-cache", "%s: Cache-Control: no-cache" % where)
    body = st.read_all()
    tap.eq(body.decode(), answer(text), "%s: text equals the emulator's byte for byte" % where)
    check_arrivals(tap, where + " text", st)
    acc = last_access(pool, after=n0)
    tap.eq(acc.get("delta_flushes"), DELTAS, "%s: one flush per delta (%d)" % (where, DELTAS))
    tap.ok(acc.get("output_tokens") == DELTAS and acc.get("status") == 200 and not acc.get("cancelled"),
           "%s: access log has tokens and status" % where, acc)


def check_sse_stream(tap, where, base, pool, idtag, get=False):
    text = marker(idtag, words=DELTAS, delay=DELAY_MS) + " héllo wörld 日本 🎉"
    n0 = len(pool.access())
    hdrs = {"Accept": "text/event-stream"}
    if get:
        st = Stream("GET", base + "/stream?text=" + q(text), headers=hdrs)
    else:
        hdrs["Content-Type"] = "application/json"
        st = Stream("POST", base + "/stream", json.dumps({"text": text}), hdrs)
    tap.eq(st.status, 200, "%s: SSE 200" % where)
    tap.ok(st.headers.get("content-type", "").startswith("text/event-stream"), "%s: text/event-stream" % where)
    tap.ok("content-length" not in st.headers, "%s: SSE without Content-Length" % where)
    body = st.read_all()
    tap.ok(body.startswith(b":"), "%s: first bytes are a comment line" % where, body[:40])
    evs = sse_events(body)
    deltas = [e for e in evs if e[0] == "delta"]
    got = "".join(json.loads(d)["text"] for _, _, d in deltas)
    tap.eq(got, answer(text), "%s: SSE text equals the emulator's (UTF-8 intact)" % where)
    tap.eq([i for _, i, _ in deltas], [str(k) for k in range(1, DELTAS + 1)], "%s: delta ids 1..N" % where)
    tap.eq([e[0] for e in evs][-1:], ["done"], "%s: ends with done" % where)
    done = json.loads(evs[-1][2]) if evs else {}
    tap.ok(done.get("stop_reason") == "end_turn" and done.get("usage", {}).get("output_tokens") == DELTAS
           and done["usage"].get("input_tokens", 0) > 0, "%s: done carries stop_reason and usage" % where, done)
    check_arrivals(tap, where + " SSE", st)
    acc = last_access(pool, after=n0)
    tap.eq(acc.get("delta_flushes"), DELTAS, "%s: SSE one flush per delta" % where)


def check_failures(tap, where, base, idtag):
    for fault, etype in (("error-mid:3", "overloaded_error"), ("cut:3", "api_error")):
        text = marker(idtag + fault.replace(":", ""), fault=fault, delay=10) + " alpha beta gamma"
        st = Stream("POST", base + "/stream", json.dumps({"text": text}),
                    {"Accept": "text/event-stream", "Content-Type": "application/json"})
        evs = sse_events(st.read_all())
        names = [e[0] for e in evs]
        tap.ok(names.count("delta") == 3 and names[-1] == "error" and "done" not in names,
               "%s: %s -> 3 deltas then an SSE error, never done" % (where, fault), names)
        err = json.loads(evs[-1][2]) if evs else {}
        tap.eq(err.get("error", {}).get("type"), etype, "%s: %s error type" % (where, fault))
        st = Stream("POST", base + "/stream", json.dumps({"text": text}), {"Content-Type": "application/json"})
        body = st.read_all().decode()
        tap.ok(re.search(r"\n\[error: %s: [^\]]*\]\n$" % etype, body) is not None
               and body.startswith(answer(text, 3)),
               "%s: %s -> text then the [error: ...] last line" % (where, fault), body[-120:])
    st, h, b = http("GET", base + "/stream?text=hello", headers={"Accept": "text/event-stream",
                                                                  "Last-Event-ID": "7"})
    tap.eq(st, 204, "%s: Last-Event-ID -> 204 (stops EventSource reconnects)" % where)
    st, h, b = http("GET", base + "/stream?text=hello", headers={"Sec-Fetch-Site": "cross-site"})
    tap.eq(st, 403, "%s: cross-site GET -> 403" % where)
    st, h, b = http("POST", base + "/stream", "text=hello", {"Origin": "http://evil.example",
                                                            "Content-Type": "application/x-www-form-urlencoded"})
    tap.eq(st, 403, "%s: foreign Origin -> 403" % where)


def check_disconnects(tap, where, base, emu, idtag, clients=10):
    """Each client reads three deltas and leaves. With fewer workers than clients the later ones
    wait in the backlog until a worker notices its client left, so this also proves that the
    worker is freed (and takes the next request) once it has cancelled the upstream."""
    errors = []

    def client(i):
        try:
            text = marker("%s-%d" % (idtag, i), words=40, delay=100) + " a b c d"
            st = Stream("POST", base + "/stream", "text=" + q(text),
                        {"Content-Type": "application/x-www-form-urlencoded"}, timeout=60)
            got = b""
            while got.count(b" ") < 2 and not st.eof:  # three deltas: "a", " b", " c"
                got += st.read_some()
            st.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append("%d: %r" % (i, e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    tap.ok(not errors, "%s: %d clients connected and read 3 deltas each" % (where, clients), errors)

    def aborted():
        return sum(emu.stats("%s-%d" % (idtag, i)).get("aborted", 0) for i in range(clients))
    try:
        wait_for(lambda: aborted() == clients, timeout=15, what="aborted streams")
    except RuntimeError:
        pass
    tap.eq(aborted(), clients, "%s: %d clients left after 3 deltas -> %d upstream streams aborted"
           % (where, clients, clients))
    completed = sum(emu.stats("%s-%d" % (idtag, i)).get("completed", 0) for i in range(clients))
    tap.eq(completed, 0, "%s: none of them ran to the end" % where)
    ok = 0
    for i in range(20):
        st, _, body = http("POST", base + "/stream", "text=after%20" + str(i),
                           {"Content-Type": "application/x-www-form-urlencoded"})
        ok += st == 200 and body.decode().startswith("after")
    tap.eq(ok, 20, "%s: then 20 requests in a row succeed" % where)


def check_silent_disconnect(tap, where, base, emu, idtag, bound):
    """The client leaves while the upstream is silent (5 s time to first token)."""
    text = marker(idtag, ttft=5000, words=5) + " slow start"
    st = Stream("POST", base + "/stream", json.dumps({"text": text}),
                {"Accept": "text/event-stream", "Content-Type": "application/json"})
    first = b""
    while not first:
        first = st.read_some()
    time.sleep(0.3)
    t_close = time.time()
    st.close()
    try:
        wait_for(lambda: emu.stats(idtag).get("aborted", 0) >= 1, timeout=bound + 3, step=0.05,
                 what="upstream abort")
    except RuntimeError:
        pass
    took = time.time() - t_close
    tap.ok(emu.stats(idtag).get("aborted", 0) == 1, "%s: client left during a 5 s TTFT -> upstream aborted" % where)
    if SLOW:
        tap.skip("%s: within %.1f s" % (where, bound), "timing not checked in instrumented runs")
    else:
        tap.ok(took <= bound, "%s: upstream aborted %.2f s after the client left (bound %.1f s)"
               % (where, took, bound))
