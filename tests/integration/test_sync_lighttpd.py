#!/usr/bin/env python3
"""Issue 2: the synchronous endpoints and every error case through lighttpd + a spawn-fcgi pool,
at the site root and under a prefix; workers survive every bad input."""
import json
import re

from harness import (API_KEY, Emulator, Stack, http, http_json, marker, q, run_tests)

PROMPT_DEFAULT = "Summarize the text the user sends in a few sentences. Reply with the summary only."


def expected_answer(text, words=20):
    ws = re.sub(r"\[\[emu:[^\]]*\]\]", " ", text).split() or ["ok"]
    return " ".join(ws[i % len(ws)] for i in range(words))


def error_of(tap, resp, status, etype, name):
    st, h, js, raw = resp
    good = st == status and isinstance(js, dict) and isinstance(js.get("error"), dict) \
        and js["error"].get("type") == etype and isinstance(js["error"].get("message"), str) \
        and h.get("content-type", "").startswith("application/json")
    tap.ok(good, name, "status %s headers %s body %r" % (st, h, raw[:300]))
    return js


def check_mount(tap, prefix):
    s = Stack(prefix=prefix, settings={"max_retries": 0, "max_body_bytes": 65536})
    try:
        base, emu, where = s.base, s.emu, "at %s" % prefix
        pids = s.pool.pids()
        tap.eq(len(pids), 2, "%s: two workers" % where)

        text = marker("sum" + prefix.replace("/", "_")) + " The quick brown fox jumps over the lazy dog"
        st, h, js, raw = http_json("POST", base + "/summarize", json.dumps({"text": text}),
                                   {"Content-Type": "application/json"})
        tap.eq(st, 200, "%s: POST /summarize JSON -> 200" % where)
        tap.ok(h.get("content-type", "").startswith("application/json"), "%s: JSON content type" % where)
        tap.eq(js and js.get("summary"), expected_answer(text), "%s: summary is the emulator's answer" % where)
        tap.ok(js and js.get("model") == "claude-sonnet-5-5" and js.get("stop_reason") == "end_turn"
               and js["usage"]["output_tokens"] == 20 and js["usage"]["input_tokens"] > 0,
               "%s: model, stop_reason and usage" % where, js)
        sent = emu.stats("sum" + prefix.replace("/", "_"))["last_request"]
        tap.eq(sent["headers"].get("x-api-key"), API_KEY, "%s: upstream got the server's key" % where)
        tap.eq(sent["headers"].get("anthropic-version"), "2023-06-01", "%s: anthropic-version" % where)
        tap.eq(sent["body"].get("system"), PROMPT_DEFAULT, "%s: summarize prompt as system" % where)
        tap.eq(sent["body"].get("messages"), [{"role": "user", "content": text}],
               "%s: the text as the user message" % where)
        tap.eq(sent["body"].get("max_tokens"), 1024, "%s: default max_tokens" % where)
        tap.eq(sent["body"].get("thinking"), {"type": "disabled"}, "%s: thinking off (summarize_thinking)" % where)
        tap.ok("stream" not in sent["body"], "%s: not a streaming call" % where)
        tap.ok(h.get("x-request-id", "").startswith("req_"), "%s: upstream request-id relayed" % where, h)

        # lighttpd answers 411 to a POST without Content-Length (curl -X POST without -d sends
        # none): the README's example adds -d ''.
        st, _, js, _ = http_json("POST", base + "/sync-summarize?text=" + q("alpha beta gamma"), "")
        tap.ok(st == 200 and js["summary"] == expected_answer("alpha beta gamma"),
               "%s: POST /sync-summarize?text=... -> 200" % where, (st, js))
        st, _, js, _ = http_json("POST", base + "/async-summarize", "text=" + q("one two & three"),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        tap.ok(st == 200 and js["summary"] == expected_answer("one two & three"),
               "%s: POST /async-summarize form -> 200" % where, (st, js))
        st, _, js, _ = http_json("POST", base + "/summarize", json.dumps({"text": "curl style form"}),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        tap.ok(st == 200 and js["summary"] == expected_answer("curl style form"),
               "%s: curl -d '{json}' (form content type) is read as JSON" % where, (st, js))
        st, _, js, _ = http_json("POST", base + "/summarize", "plain words here", {"Content-Type": "text/plain"})
        tap.ok(st == 200 and js["summary"] == expected_answer("plain words here"),
               "%s: text/plain body" % where, (st, js))
        st, _, js, _ = http_json("POST", base + "/summarize?text=" + q("from query"),
                                 json.dumps({"text": "from body"}), {"Content-Type": "application/json"})
        tap.ok(st == 200 and js["summary"] == expected_answer("from body"), "%s: body wins over query" % where)

        before = emu.stats()["attempts"]
        st, h, js, _ = http_json("GET", base + "/healthz")
        tap.ok(st == 200 and js == {"status": "ok"} or (st == 200 and js.get("status") == "ok"),
               "%s: GET /healthz -> ok" % where, js)
        tap.eq(emu.stats()["attempts"], before, "%s: /healthz does not call the upstream" % where)

        # ---- bad input: each a clear JSON error; the upstream sees none of it
        J = {"Content-Type": "application/json"}
        error_of(tap, http_json("POST", base + "/summarize", '{"text": "unterminated', J), 400,
                 "invalid_request_error", "%s: malformed JSON -> 400" % where)
        error_of(tap, http_json("POST", base + "/summarize", '{"other": 1}', J), 400,
                 "invalid_request_error", "%s: missing text -> 400" % where)
        for bad in ("42", "true", "null", "[\"a\"]", "{\"a\":1}"):
            error_of(tap, http_json("POST", base + "/summarize", '{"text": %s}' % bad, J), 400,
                     "invalid_request_error", "%s: text %s -> 400" % (where, bad))
        error_of(tap, http_json("POST", base + "/summarize", '{"text": ""}', J), 400,
                 "invalid_request_error", "%s: empty text -> 400" % where)
        error_of(tap, http_json("POST", base + "/summarize", b'{"text": "bad \xff\xfe utf8"}', J), 400,
                 "invalid_request_error", "%s: invalid UTF-8 in JSON -> 400" % where)
        error_of(tap, http_json("POST", base + "/summarize", "text=%FF%FE",
                                {"Content-Type": "application/x-www-form-urlencoded"}), 400,
                 "invalid_request_error", "%s: invalid UTF-8 in a form -> 400" % where)
        error_of(tap, http_json("POST", base + "/summarize", b"a\x00b", {"Content-Type": "text/plain"}), 400,
                 "invalid_request_error", "%s: NUL byte -> 400" % where)
        error_of(tap, http_json("POST", base + "/summarize", "<text>x</text>", {"Content-Type": "application/xml"}),
                 415, "invalid_request_error", "%s: unsupported content type -> 415" % where)
        error_of(tap, http_json("POST", base + "/nope", ""), 404, "not_found_error", "%s: unknown route -> 404" % where)
        r = http_json("GET", base + "/summarize")
        error_of(tap, r, 405, "invalid_request_error", "%s: GET /summarize -> 405" % where)
        tap.eq(r[1].get("allow"), "POST", "%s: 405 carries Allow" % where)
        r = http_json("DELETE", base + "/healthz")
        error_of(tap, r, 405, "invalid_request_error", "%s: DELETE /healthz -> 405" % where)
        tap.eq(r[1].get("allow"), "GET, HEAD", "%s: Allow lists GET, HEAD" % where)
        big = json.dumps({"text": "x" * 70000})
        error_of(tap, http_json("POST", base + "/summarize", big, J), 413, "request_too_large",
                 "%s: body over max_body_bytes -> 413" % where)
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big.encode())
        error_of(tap, http_json("POST", base + "/summarize", chunked,
                                {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}),
                 413, "request_too_large", "%s: chunked body over the limit -> 413" % where)
        tap.eq(emu.stats()["attempts"], before, "%s: the upstream saw none of the bad input" % where)

        # ---- upstream failures, mapped
        def fault(f, **kw):
            tag = "f%s%s" % (re.sub(r"[^A-Za-z0-9]", "", str(f)), prefix.replace("/", "_"))
            return json.dumps({"text": marker(tag, fault=f, **kw) + " words"})
        js = error_of(tap, http_json("POST", base + "/summarize", fault(400), J), 400, "invalid_request_error",
                      "%s: upstream 400 relayed as 400" % where)
        tap.ok(js and "emulator" not in js["error"]["message"] and len(js["error"]["message"]) > 0,
               "%s: upstream 400 message relayed" % where, js)
        for st_up in (401, 403):
            js = error_of(tap, http_json("POST", base + "/summarize", fault(st_up), J), 502, "api_error",
                          "%s: upstream %d -> 502" % (where, st_up))
            tap.ok(js and "credentials" in js["error"]["message"], "%s: says the credentials were rejected" % where, js)
        st, h, js, raw = http_json("POST", base + "/summarize", fault("echo-key"), J)
        tap.ok(st == 502 and API_KEY.encode() not in raw, "%s: a 401 echoing the key never shows it" % where, raw)
        r = http_json("POST", base + "/summarize", fault(429), J)
        error_of(tap, r, 429, "rate_limit_error", "%s: upstream 429 -> 429" % where)
        tap.eq(r[1].get("retry-after"), "1", "%s: 429 carries Retry-After" % where)
        tap.eq(r[1].get("x-should-retry"), "false", "%s: x-should-retry: false after our retries" % where)
        r = http_json("POST", base + "/summarize", fault(529), J)
        error_of(tap, r, 503, "overloaded_error", "%s: upstream 529 -> 503 overloaded_error" % where)
        tap.ok(r[1].get("retry-after") is not None, "%s: 503 carries Retry-After" % where, r[1])
        error_of(tap, http_json("POST", base + "/summarize", fault(500), J), 502, "api_error",
                 "%s: upstream 500 -> 502" % where)
        error_of(tap, http_json("POST", base + "/summarize", fault("garbage"), J), 502, "api_error",
                 "%s: upstream garbage -> 502" % where)
        error_of(tap, http_json("POST", base + "/summarize", fault("truncated-json"), J), 502, "api_error",
                 "%s: upstream truncated JSON -> 502" % where)
        error_of(tap, http_json("POST", base + "/summarize", fault("cut:2"), J), 502, "api_error",
                 "%s: upstream cut mid-body -> 502" % where)

        st, _, js, _ = http_json("POST", base + "/summarize", json.dumps({"text": "still serving"}), J)
        tap.ok(st == 200 and js["summary"] == expected_answer("still serving"),
               "%s: the pool still answers after all that" % where)
        tap.eq(s.pool.pids(), pids, "%s: same worker PIDs before and after" % where)
        tap.eq(len(s.pool.alive()), 2, "%s: both workers alive" % where)
        logs = s.pool.log_text()
        tap.ok(API_KEY not in logs, "%s: the key never appears in the log" % where)
        acc = s.pool.access()
        tap.ok(len(acc) > 20 and all("status" in a for a in acc), "%s: one access line per request" % where)
    finally:
        s.stop()


def check_refused(tap):
    from harness import free_port
    dead = "http://127.0.0.1:%d" % free_port()
    s = Stack(prefix="/", settings={"max_retries": 0}, upstream=dead)
    try:
        error_of(tap, http_json("POST", s.base + "/summarize", json.dumps({"text": "hello"}),
                                {"Content-Type": "application/json"}), 502, "api_error",
                 "upstream refuses the connection -> 502")
    finally:
        s.stop()


def main(tap):
    check_mount(tap, "/")
    check_mount(tap, "/ai/")
    check_refused(tap)


run_tests(main)
