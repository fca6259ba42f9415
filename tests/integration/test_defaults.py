#!/usr/bin/env python3
"""Issue 14, points 4 and 5, through lighttpd against the emulator.

Defaults that let today's clients in: a request that presented a client key gets the model's own
maximum output from the catalogue (a coding agent asks for 32,000) and, with `models = *`, any
model the catalogue lists as current (aliases still apply); an anonymous one keeps
max_tokens_limit and models.

Thinking across a Chat Completions tool round trip: on a model that always thinks the emulator,
as the API, wants the thinking blocks of the turn that called the tools back with the results;
the gateway keeps them under the tool call id and puts them back. An unknown or expired call id,
or another client's, is a clear 400."""
import hashlib
import json
import os
import shutil
import tempfile

from harness import SRCDIR, Stack, http_json, run_tests, sse_events
from test_api_compat import node_ready, run_sdk

CATALOGUE = os.path.join(SRCDIR, "data", "models.json")
KEY_A = "sk-defaults-alice-0123456789"
KEY_B = "sk-defaults-bob-0123456789"
ALWAYS = "claude-opus-5-5"  # always thinks
RETIRED = "claude-sonnet-4-20250514"
MODELS = "* fast=claude-haiku-5-5"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
ASK = {"role": "user", "content": "Call get_weather for Paris"}


def key_file(tmp):
    path = os.path.join(tmp, "client-keys")
    with open(path, "w") as f:
        for k, label in ((KEY_A, "alice"), (KEY_B, "bob")):
            f.write("%s  %s\n" % (hashlib.sha256(k.encode()).hexdigest(), label))
    os.chmod(path, 0o600)
    return path


def settings(**more):
    s = {"models": MODELS, "models_file": CATALOGUE, "models_override_file": "", "max_retries": 0}
    s.update(more)
    return s


def msgs(base, key, model, max_tokens):
    h = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    if key:
        h["x-api-key"] = key
    return http_json("POST", base + "/v1/messages", json.dumps({
        "model": model, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Hello"}]}), h)


def chat(base, key, body):
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    return http_json("POST", base + "/v1/chat/completions", json.dumps(body), h)


def check_keyed(tap, base):
    st, _, js, b = msgs(base, KEY_A, ALWAYS, 32000)
    tap.eq(st, 200, "keyed /v1/messages: %s with max_tokens 32000 (a coding agent's) passes" % ALWAYS)
    st, _, js, b = chat(base, KEY_A, {"model": ALWAYS, "max_completion_tokens": 32000,
                                      "messages": [{"role": "user", "content": "Hello"}]})
    tap.eq(st, 200, "keyed /v1/chat/completions: max_completion_tokens 32000 passes")
    st, _, js, b = msgs(base, KEY_A, "fast", 32000)
    tap.eq(st, 200, "keyed: the alias of models still applies")
    st, _, js, b = msgs(base, KEY_A, "claude-sonnet-5-5", 200000)
    tap.ok(st == 400 and b"(128000)" in b, "keyed: above the model's own maximum output is a 400 "
           "naming it", (st, b[:300]))
    st, _, js, b = chat(base, KEY_A, {"model": ALWAYS, "max_completion_tokens": 200000,
                                      "messages": [{"role": "user", "content": "Hello"}]})
    tap.ok(st == 400 and js["error"]["param"] == "max_completion_tokens" and b"(128000)" in b,
           "keyed chat: above the model's maximum, a 400 naming max_completion_tokens", (st, b[:300]))
    st, _, js, b = msgs(base, KEY_A, RETIRED, 1024)
    tap.eq(st, 404, "keyed: a retired model is still a 404")
    st, _, js, b = msgs(base, KEY_A, "claude-nonesuch-9", 1024)
    tap.eq(st, 400, "keyed: a model the catalogue does not list is a 400")


def model_ids(base, headers):
    st, _, js, b = http_json("GET", base + "/v1/models", None, headers)
    return st, [m["id"] for m in (js or {}).get("data", [])], b


def check_models_list(tap, base, key):
    """A model picker (Open WebUI, LibreChat) fills itself from GET /v1/models: with '*', an
    identified client's list holds every current catalogue model, never a retired one."""
    for name, h in (("x-api-key", {"x-api-key": key, "anthropic-version": "2023-06-01"}),
                    ("Bearer", {"Authorization": "Bearer " + key})):
        st, ids, b = model_ids(base, h)
        tap.ok(st == 200 and "fast" in ids and ALWAYS in ids and "claude-sonnet-5-5" in ids and
               RETIRED not in ids and len(ids) == len(set(ids)),
               "keyed GET /v1/models (%s): the list and every current catalogue model, once each" % name,
               (st, ids, b[:200]))
    st, _, js, b = http_json("GET", base + "/v1/models/" + ALWAYS, None, {"x-api-key": key})
    tap.ok(st == 200 and js.get("id") == ALWAYS, "keyed GET /v1/models/%s: found" % ALWAYS, (st, b[:200]))
    st, ids, b = model_ids(base, {"x-api-key": "sk-not-a-listed-key-000000"})
    tap.eq(st, 401, "GET /v1/models with a key that is not listed: 401")


def check_anonymous(tap, base):
    st, _, js, b = msgs(base, None, "fast", 32000)
    tap.ok(st == 400 and b"more than this server allows (8192)" in b,
           "anonymous: max_tokens 32000 is the 400 it was", (st, b[:300]))
    st, _, js, b = chat(base, None, {"model": "fast", "max_completion_tokens": 32000,
                                     "messages": [{"role": "user", "content": "Hello"}]})
    tap.ok(st == 400 and js["error"]["param"] == "max_completion_tokens" and b"(8192)" in b,
           "anonymous chat: max_completion_tokens 32000 is the 400 it was", (st, b[:300]))
    st, _, js, b = msgs(base, None, ALWAYS, 1024)
    tap.ok(st == 400 and b"not available" in b, "anonymous: '*' opens no catalogue model",
           (st, b[:300]))
    st, _, js, b = msgs(base, None, "fast", 8192)
    tap.eq(st, 200, "anonymous: the alias within max_tokens_limit passes")
    st, ids, b = model_ids(base, {})
    tap.ok(st == 200 and ids == ["fast"], "anonymous GET /v1/models: only the list", (st, ids))
    st, _, js, b = http_json("GET", base + "/v1/models/" + ALWAYS, None, {})
    tap.eq(st, 404, "anonymous GET /v1/models/%s: 404" % ALWAYS)


def first_turn(base, key, stream):
    body = {"model": ALWAYS, "max_completion_tokens": 4096, "tools": TOOLS, "messages": [ASK]}
    if stream:
        body["stream"] = True
    st, _, js, b = chat(base, key, body)
    if st != 200:
        return None, (st, b[:400])
    if not stream:
        calls = js["choices"][0]["message"].get("tool_calls") or []
        return [c["id"] for c in calls], js
    ids = []
    for _, _, data in sse_events(b):
        if data.startswith("{"):
            for ch in json.loads(data).get("choices", []):
                ids += [c["id"] for c in ch["delta"].get("tool_calls", []) if c.get("id")]
    return ids, b[-400:]


def results_turn(base, key, call_id):
    return chat(base, key, {"model": ALWAYS, "max_completion_tokens": 4096, "tools": TOOLS,
                            "messages": [ASK, {"role": "assistant", "content": None, "tool_calls": [
                                {"id": call_id, "type": "function", "function": {
                                    "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                                {"role": "tool", "tool_call_id": call_id,
                                 "content": "Sunny and mild"}]})


def check_round_trip(tap, base):
    for stream in (False, True):
        how = "streamed" if stream else "whole"
        ids, diag = first_turn(base, KEY_A, stream)
        if not tap.ok(ids, "%s: %s answers a tool call after thinking" % (how, ALWAYS), diag):
            continue
        st, _, js, b = results_turn(base, KEY_A, ids[0])
        tap.ok(st == 200 and "Sunny" in (js["choices"][0]["message"]["content"] or ""),
               "%s: the tool results come back with the kept thinking, and are answered" % how,
               (st, b[:600]))
    ids, diag = first_turn(base, KEY_A, False)
    st, _, js, b = results_turn(base, KEY_B, ids[0] if ids else "toolu_x")
    tap.ok(st == 400 and js["error"]["code"] == "thinking_not_found",
           "another client's tool call id gets no thinking back: 400", (st, b[:400]))
    st, _, js, b = results_turn(base, KEY_A, "toolu_neverseen_1")
    tap.ok(st == 400 and js["error"]["param"] == "messages" and
           js["error"]["code"] == "thinking_not_found" and "expired" in js["error"]["message"],
           "an unknown or expired tool call id: a clear 400 naming messages", (st, b[:400]))


def check_sdk(tap, base):
    node = node_ready(tap)
    if not node:
        tap.skip("OpenAI SDK tool round trip on %s" % ALWAYS, "no npm")
        return
    for stream in ("0", "1"):
        r = run_sdk(tap, node, "thinking-tools.mjs", {"BASE_URL": base + "/v1", "CLIENT_KEY": KEY_A,
                                                      "MODEL": ALWAYS, "STREAM": stream})
        tap.ok(r.get("ok") and r.get("calls") and "Sunny" in (r.get("answer") or ""),
               "OpenAI SDK (%s): a tool round trip on %s gets its thinking back" %
               ("stream" if stream == "1" else "create", ALWAYS), r)


def main(tap):
    tmp = tempfile.mkdtemp(prefix="llm-fcgi-defaults.")
    try:
        # The prefork pool (the primary setup): its workers share the store the thinking is kept in.
        s = Stack(settings=settings(client_keys_file=key_file(tmp)), pool="prefork")
        try:
            check_keyed(tap, s.base)
            check_models_list(tap, s.base, KEY_A)
            check_round_trip(tap, s.base)
            check_sdk(tap, s.base)
        finally:
            s.stop()
        s = Stack(settings=settings())
        try:
            check_anonymous(tap, s.base)
        finally:
            s.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests(main)
