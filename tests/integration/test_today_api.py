#!/usr/bin/env python3
"""Issue 12, points 2-4: the gateway against the emulator's late-2026 API, through lighttpd.

- Every current model of the catalogue, with the shipped defaults, gives a non-empty answer on
  /summarize and /stream (text and SSE); the always-on models think first.
- An answer whose thinking used all of max_tokens (the emulator's worst case, effort high) is a
  clear error on /summarize and /stream, never an empty 200 or a done event.
- Thinking never reaches /stream's text or delta events; SSE keep-alive comments flow during a
  long think.
- A model the catalogue lists as retired is a 404 naming it and the suggestion on /v1/messages,
  count_tokens and /v1/chat/completions, with no upstream call; one only the upstream retired
  (llm-emu --retire) is logged as a model not found.
- /v1/messages is faithful: streams and answers with thinking and signatures are byte-identical
  to the emulator's (but for the message id), thinking blocks go back intact, the client's
  anthropic-version and anthropic-beta pass unchanged, count_tokens passes."""
import json
import os
import re

from harness import (API_KEY, LLM_EMU, SRCDIR, Emulator, Lighttpd, Pool, clean_env, http,
                     new_tmp, remove_tmp, run_tests, spawn, sse_events, wait_for)

CATALOGUE = os.path.join(SRCDIR, "data", "models.json")
# Retired on the emulator's side only: the gateway's catalogue still lists it as current.
UPSTREAM_RETIRED = "claude-sonnet-4-6"
# Retired in the catalogue (2026-06-15), with claude-sonnet-4-6 as its replacement.
RETIRED = "claude-sonnet-4-20250514"
ANTH = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}


class RetiringEmulator(Emulator):
    def __init__(self, tmp):
        self.port_file = os.path.join(tmp, "emu.port")
        self.log = os.path.join(tmp, "emu.log")
        self.proc = spawn([LLM_EMU, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
                           "--key", API_KEY, "--words", "20", "--retire", UPSTREAM_RETIRED, "-v"],
                          env=clean_env(), log=self.log)
        wait_for(lambda: os.path.exists(self.port_file), what="emulator port file")
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port


class Setup:
    """The emulator and lighttpd stay; the pool behind lighttpd is replaced per configuration."""

    def __init__(self, tmp):
        self.tmp, self.n, self.pool = tmp, 0, None
        self.sock = os.path.join(tmp, "pool.sock")
        self.emu = RetiringEmulator(tmp)
        self.web = Lighttpd(tmp, self.sock, "/")
        self.base = self.web.base

    def configure(self, **settings):
        if self.pool:
            self.pool.stop()
        self.n += 1
        s = {"models_file": CATALOGUE, "models_override_file": "", "max_retries": 0}
        s.update(settings)
        self.pool = Pool(self.tmp, self.emu.url, workers=1, settings=s, name="p%d" % self.n,
                         socket_path=self.sock)
        wait_for(lambda: os.path.exists(self.sock), what="pool socket")
        return self.pool

    def stop(self):
        for p in (self.pool, self.web, self.emu):
            if p:
                p.stop()


def current_models():
    with open(CATALOGUE) as f:
        models = json.load(f)["models"]
    return [(mid, m["thinking"]) for mid, m in models.items() if m["status"] == "current"]


def summarize(base, text="alpha beta", **kw):
    st, _, raw = http("POST", base + "/summarize", json.dumps(dict({"text": text}, **kw)),
                      {"Content-Type": "application/json"})
    return st, json.loads(raw)


def stream(base, text="alpha beta", sse=False, **kw):
    h = {"Content-Type": "application/json"}
    if sse:
        h["Accept"] = "text/event-stream"
    st, _, raw = http("POST", base + "/stream", json.dumps(dict({"text": text}, **kw)), h)
    return st, raw


def deltas(raw):
    return "".join(json.loads(d)["text"] for ev, _, d in sse_events(raw) if ev == "delta")


def check_defaults(tap, s):
    """The shipped defaults (summarize_thinking = stream_thinking = off, max_tokens 1024) on
    every current model: always-on models think at low effort and still answer."""
    words = " ".join(["alpha", "beta"] * 10)
    for mid, thinking in current_models():
        if mid == UPSTREAM_RETIRED:  # check_retired's
            continue
        pool = s.configure(model=mid)
        st, js = summarize(s.base)
        st2, text = stream(s.base)
        st3, raw = stream(s.base, sse=True)
        ok = (st == 200 and js["summary"] == words and js["stop_reason"] == "end_turn" and
              st2 == 200 and text.decode() == words and st3 == 200 and deltas(raw) == words and
              b"event: done" in raw)
        tap.ok(ok, "defaults, %s (%s): /summarize, /stream text and SSE answer" % (mid, thinking),
               (st, js, st2, text[:200], st3, raw[-300:]))
        if thinking == "always_on":
            tap.ok(js["usage"]["output_tokens"] == 256 + 20,
                   "defaults, %s: thought at low effort (a quarter of max_tokens) first" % mid, js)
        pool.stop()
        s.pool = None


def check_no_text(tap, s):
    """The worst case: effort high thinks all of max_tokens (the emulator's default for it)."""
    s.configure(model="claude-opus-5-5", summarize_thinking="high", stream_thinking="high")
    st, js = summarize(s.base, max_tokens=100)
    tap.ok(st == 400 and js["error"]["type"] == "invalid_request_error" and
           js["error"]["message"].startswith("The answer ended at max_tokens (100) before any text"),
           "thinking used all of max_tokens: /summarize is a 400 saying so", (st, js))
    st, raw = stream(s.base, sse=True, max_tokens=100)
    ev = sse_events(raw)
    tap.ok(st == 200 and ev[-1][0] == "error" and
           json.loads(ev[-1][2])["error"]["type"] == "invalid_request_error" and
           not any(e == "done" or e == "delta" for e, _, _ in ev),
           "... /stream SSE ends with an error event, no done", raw[-400:])
    st, raw = stream(s.base, max_tokens=100)
    tap.ok(st == 200 and raw.startswith(b"\n[error: invalid_request_error: The answer ended at max_tokens (100)"),
           "... /stream text ends with the error line", raw[:200])
    tap.ok("ended at max_tokens (100) with no text" in s.pool.log_text(), "... and it is logged")
    # Room left after high effort's thinking: a larger max_tokens answers.
    st, js = summarize(s.base, "a b [[emu:thinking=500]]", max_tokens=600)
    tap.ok(st == 200 and js["summary"], "with room after the thinking, an answer", js)


def check_thinking_hidden(tap, s):
    """An always-on model thinks first (a thinking block, its signature, then the text): only the
    text reaches /stream (the unit tests send thinking with text); a long think keeps SSE alive."""
    s.configure(model="claude-opus-5-5", keepalive_interval=0.5)
    st, raw = stream(s.base, "quiet words [[emu:ttft=2500]]", sse=True)
    body = raw.decode()
    first = body.find("event: delta")
    tap.ok(st == 200 and first > 0 and body[:first].count(": keep-alive\n") >= 1,
           "a long think: keep-alive comments before the first delta", body[:first])
    tap.ok(deltas(raw) == " ".join(["quiet", "words"] * 10) and "thinking" not in body and
           "signature" not in body, "thinking never reaches /stream SSE", body[-400:])
    st, raw = stream(s.base, "quiet words")
    tap.ok(st == 200 and raw.decode() == " ".join(["quiet", "words"] * 10),
           "thinking never reaches /stream text", raw[:200])


def strip(raw):
    """An SSE body with comment blocks dropped and the message id blanked."""
    blocks = [b for b in raw.split(b"\n\n") if b and not b.startswith(b":")]
    return re.sub(rb'"id":"msg_[^"]*"', b'"id":"msg"', b"\n\n".join(blocks))


def check_retired(tap, s):
    s.configure(models="claude-sonnet-5-5 %s old=%s" % (UPSTREAM_RETIRED, RETIRED))
    before = s.emu.stats()["attempts"]
    body = {"model": RETIRED, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    want = "model: '%s' was retired on 2026-06-15; use 'claude-sonnet-4-6' instead" % RETIRED
    st, _, raw = http("POST", s.base + "/v1/messages", json.dumps(body), ANTH)
    js = json.loads(raw)
    tap.ok(st == 404 and js == {"type": "error", "error": {"type": "not_found_error", "message": want}},
           "/v1/messages: a retired model is a 404 naming it and the suggestion", js)
    st, _, raw = http("POST", s.base + "/v1/messages/count_tokens",
                      json.dumps({"model": RETIRED, "messages": body["messages"]}), ANTH)
    tap.ok(st == 404 and want in raw.decode(), "count_tokens: the same", raw)
    st, _, raw = http("POST", s.base + "/v1/messages", json.dumps(dict(body, model="old")), ANTH)
    tap.ok(st == 404 and ("model: '%s' was retired" % RETIRED) in raw.decode(),
           "/v1/messages: an alias to a retired model, the same", raw)
    st, _, raw = http("POST", s.base + "/v1/chat/completions",
                      json.dumps({"model": RETIRED, "messages": body["messages"]}),
                      {"Content-Type": "application/json"})
    js = json.loads(raw)
    tap.ok(st == 404 and js["error"]["code"] == "model_not_found" and js["error"]["param"] == "model"
           and js["error"]["message"] == want, "/v1/chat/completions: 404 model_not_found, same message", js)
    tap.eq(s.emu.stats()["attempts"], before, "retired models: no upstream call")

    # Retired upstream only: the API's 404 passes on /v1/messages, and the log says what it is.
    st, _, raw = http("POST", s.base + "/v1/messages", json.dumps(dict(body, model=UPSTREAM_RETIRED)), ANTH)
    tap.ok(st == 404 and json.loads(raw)["error"]["message"] == "model: " + UPSTREAM_RETIRED,
           "upstream-retired model: the API's 404 relayed", raw)
    tap.ok("model not found upstream (404 not_found_error: model: %s)" % UPSTREAM_RETIRED in s.pool.log_text(),
           "... logged as a model not found, not a generic upstream error")
    s.configure(model=UPSTREAM_RETIRED)
    st, js = summarize(s.base)
    tap.ok(st == 502 and ("does not serve this server's model (not_found_error: model: %s)" % UPSTREAM_RETIRED)
           in js["error"]["message"], "/summarize on a model the upstream retired: 502 naming it", js)
    tap.ok("model not found upstream (404)" in s.pool.log_text(), "... logged as a model not found")


def check_faithful(tap, s):
    s.configure(models="claude-opus-5-5 claude-sonnet-5-5")
    beta = "compact-2026-01-12, fast-mode-2026-02-01"
    h = dict(ANTH, **{"anthropic-version": "2026-10-21", "anthropic-beta": beta})
    direct_h = dict(h, **{"x-api-key": API_KEY})
    body = {"model": "claude-opus-5-5", "max_tokens": 64, "stream": True,
            "thinking": {"type": "adaptive", "display": "summarized"}, "output_config": {"effort": "low"},
            "messages": [{"role": "user", "content": "alpha beta [[emu:id=faithful]]"}]}
    st, _, gw = http("POST", s.base + "/v1/messages", json.dumps(body), h)
    _, _, direct = http("POST", s.emu.url + "/v1/messages", json.dumps(body), direct_h)
    tap.ok(st == 200 and b"thinking_delta" in direct and b"signature_delta" in direct,
           "the emulator's stream has thinking and signature deltas", direct[:300])
    tap.eq(strip(gw), strip(direct), "/v1/messages stream with thinking and signatures: byte-identical")
    sent = s.emu.stats("faithful")["last_request"]["headers"]
    tap.ok(sent.get("anthropic-beta") == beta and sent.get("anthropic-version") == "2026-10-21",
           "the client's anthropic-version and anthropic-beta pass unchanged", sent)

    body["stream"] = False
    st, _, gw = http("POST", s.base + "/v1/messages", json.dumps(body), h)
    _, _, direct = http("POST", s.emu.url + "/v1/messages", json.dumps(body), direct_h)
    tap.eq(strip(gw), strip(direct), "/v1/messages answer with thinking and signature: byte-identical")
    answer = json.loads(gw)
    # The thinking block goes back as it came: the emulator checks its signature.
    turns = body["messages"] + [{"role": "assistant", "content": answer["content"]},
                                {"role": "user", "content": "again"}]
    st, _, raw = http("POST", s.base + "/v1/messages", json.dumps(dict(body, messages=turns)), h)
    tap.ok(st == 200 and answer["content"][0]["type"] == "thinking",
           "a thinking block with its signature goes back intact", raw[:300])
    count = {"model": "claude-opus-5-5", "thinking": {"type": "adaptive"}, "messages": turns}
    st, _, gw = http("POST", s.base + "/v1/messages/count_tokens", json.dumps(count), h)
    _, _, direct = http("POST", s.emu.url + "/v1/messages/count_tokens", json.dumps(count), direct_h)
    tap.ok(st == 200 and gw == direct, "count_tokens passes", (gw, direct))


def main(tap):
    tmp = new_tmp()
    s = None
    try:
        s = Setup(tmp)
        check_defaults(tap, s)
        check_no_text(tap, s)
        check_thinking_hidden(tap, s)
        check_retired(tap, s)
        check_faithful(tap, s)
    finally:
        if s:
            s.stop()
        remove_tmp(tmp)


if __name__ == "__main__":
    run_tests(main)
