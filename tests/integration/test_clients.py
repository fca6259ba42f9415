#!/usr/bin/env python3
"""Issue 14: real clients through lighttpd, unmodified and pinned in sdk/package-lock.json: the
Vercel AI SDK (`ai` with @ai-sdk/openai in its default Responses mode and in chat mode, and
@ai-sdk/anthropic) and LangChain JS
(@langchain/openai, @langchain/anthropic), each with plain text, a stream and a tool round trip
(the client runs the tool and sends the result back); both official SDKs' models.retrieve on
GET /v1/models/{id}; and over raw HTTP the Chat Completions translations the clients do not reach:
parallel tool calls streamed piece by piece, images, structured output, reasoning, the catalogue's
refusals."""
import json
import os
import re
import subprocess

from harness import Stack, http_json, marker, run_tests, sse_events
from test_api_compat import SDK_DIR, node_ready

CLIENT_KEY = "sk-any"
OPENAI_TARGET = "claude-sonnet-5-5"          # adaptive thinking, refuses a forced tool_choice
ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"  # extended thinking: thinks only when asked
MODELS = "%s %s claude-haiku-5-5 claude-opus-5-5 gpt-4o=%s gpt-5=%s" % (
    OPENAI_TARGET, ANTHROPIC_MODEL, OPENAI_TARGET, OPENAI_TARGET)


def expected_answer(text, words=20):
    ws = re.sub(r"\[\[emu:[^\]]*\]\]", " ", text).split() or ["ok"]
    return " ".join(ws[i % len(ws)] for i in range(words))


def run_node(tap, node, script, env):
    out = subprocess.run([node, os.path.join(SDK_DIR, script)], cwd=SDK_DIR, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, **env))
    ok = tap.ok(out.returncode == 0, "%s (%s) ran" % (script, env.get("PROVIDER", "")), out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1]) if ok and out.stdout.strip() else {}


def check_upstream_tools(tap, emu, id, name, openai):
    body = emu.stats(id)["last_request"].get("body") or {}
    tools = body.get("tools") or [{}]
    tap.ok(tools[0].get("name") == "get_weather" and tools[0].get("input_schema", {}).get("type") == "object",
           "%s: the tool reached the upstream as a Messages tool" % name, body)
    if openai:
        tap.eq(body.get("thinking"), {"type": "disabled"},
               "%s: translated requests run without thinking unless reasoning was asked for" % name)


def check_ai_sdk(tap, node, s, provider, model):
    name = "AI SDK %s" % provider
    id = "ai-" + {"openai-responses": "r"}.get(provider, provider[0])
    r = run_node(tap, node, "ai-sdk.mjs", {"PROVIDER": provider, "BASE_URL": s.base, "CLIENT_KEY": CLIENT_KEY,
                                            "MODEL": model, "ID": id})
    t = r.get("text", {})
    tap.ok(t.get("ok") and t["text"] == expected_answer("alpha beta gamma", 6) and t["finishReason"] == "stop"
           and t["usage"]["outputTokens"] == 6, "%s: generateText" % name, t)
    st = r.get("stream", {})
    want = expected_answer("one two three", 9)
    tap.ok(st.get("ok") and "".join(st["parts"]) == want and len(st["parts"]) == 9
           and st["finishReason"] == "stop", "%s: streamText, one part per delta" % name, st)
    to = r.get("tools", {})
    steps = to.get("steps") or [{}, {}]
    tap.ok(to.get("ok") and len(steps) == 2 and steps[0]["finishReason"] == "tool-calls"
           and [(c["name"], c["input"]) for c in steps[0]["toolCalls"]] == [("get_weather", {"city": "Paris"})]
           and steps[0]["toolResults"][0]["output"] == "sunny in Paris"
           and to["text"] == expected_answer("sunny in Paris"),
           "%s: a tool round trip (the client runs the tool, the model answers its result)" % name, to)
    check_upstream_tools(tap, s.emu, id + "-tools", name, provider.startswith("openai"))
    ts = r.get("tools_stream", {})
    steps = ts.get("steps") or [{}, {}]
    tap.ok(ts.get("ok") and len(steps) == 2
           and [(c["name"], c["input"]) for c in steps[0]["toolCalls"]] == [("get_weather", {"city": "Rome"})]
           and "".join(ts["deltas"]) == '{"city":"Rome"}' and len(ts["deltas"]) >= 2
           and ts["text"] == expected_answer("sunny in Rome"),
           "%s: a streamed tool round trip, the arguments in pieces" % name, ts)
    return r


def check_ai_sdk_responses(tap, node, s):
    """The AI SDK's default OpenAI mode: /v1/responses with store: true."""
    r = check_ai_sdk(tap, node, s, "openai-responses", "gpt-4o")
    m = r.get("multi", {})
    steps = m.get("steps") or [{}]
    tap.ok(m.get("ok") and [(c["name"], c["input"]) for c in steps[0]["toolCalls"]] == [("get_weather", {"city": "Oslo"})]
           and m["second"] == expected_answer("and tomorrow") and m["third"] == expected_answer("once more")
           and all(i.startswith("resp_") for i in m["responseIds"]),
           "AI SDK responses: a multi-turn tool conversation with store: true (item references, "
           "previous_response_id)", m)
    # The follow-up named the earlier items by id; the gateway sent them upstream in full.
    body = s.emu.stats("ai-r-multi2")["last_request"].get("body") or {}
    msgs = body.get("messages") or []
    kinds = [[b.get("type") for b in (x["content"] if isinstance(x["content"], list) else [{"type": "text"}])]
             for x in msgs]
    tap.eq([x["role"] for x in msgs], ["user", "assistant", "user", "assistant", "user"],
           "AI SDK responses: the referenced turns reached the upstream in order")
    tap.ok(["tool_use"] in kinds and ["tool_result"] in kinds,
           "AI SDK responses: the referenced call and its result travel as tool_use and tool_result", kinds)
    body = s.emu.stats("ai-r-multi3")["last_request"].get("body") or {}
    tap.eq(len(body.get("messages") or []), 7,
           "AI SDK responses: previous_response_id brings the whole earlier conversation back")
    rs = r.get("reasoning", {})
    sent = s.emu.stats("ai-r-reason")["last_request"].get("body") or {}
    tap.ok(rs.get("ok") and rs["kinds"][0] == "reasoning-start" and rs["kinds"][-1] == "reasoning-end"
           and "reasoning-delta" in rs["kinds"] and rs["reasoningText"] and "".join(rs["deltas"]) == rs["reasoningText"]
           and rs["text"] == expected_answer("think first", 4)
           and sent.get("thinking") == {"type": "adaptive", "display": "summarized"},
           "AI SDK responses: reasoning asked for streams as a reasoning summary (start, deltas, end), "
           "asked upstream as summarized thinking", (rs, sent.get("thinking")))
    u = r.get("unknown_previous", {})
    tap.ok(not u.get("ok") and u["error"]["status"] == 400 and "previous_response_id" in u["error"]["message"],
           "AI SDK responses: an unknown previous_response_id is a 400 naming the field", u)


def check_langchain(tap, node, s, provider, model):
    name = "LangChain %s" % provider
    id = "lc-" + provider[0]
    r = run_node(tap, node, "langchain.mjs", {"PROVIDER": provider, "BASE_URL": s.base, "CLIENT_KEY": CLIENT_KEY,
                                               "MODEL": model, "ID": id})
    t = r.get("text", {})
    tap.ok(t.get("ok") and t["text"] == expected_answer("alpha beta gamma", 6), "%s: invoke" % name, t)
    st = r.get("stream", {})
    tap.ok(st.get("ok") and "".join(st["parts"]) == expected_answer("one two three", 9) and len(st["parts"]) == 9,
           "%s: stream, one chunk per delta" % name, st)
    to = r.get("tools", {})
    tap.ok(to.get("ok") and [(c["name"], c["args"]) for c in to["calls"]] == [("get_weather", {"city": "Paris"})]
           and to["answer"] == expected_answer("sunny in Paris"),
           "%s: a tool round trip with bindTools and a ToolMessage" % name, to)
    check_upstream_tools(tap, s.emu, id + "-tools", name, provider.startswith("openai"))


def check_models(tap, node, s):
    r = run_node(tap, node, "models.mjs", {"BASE_URL": s.base, "CLIENT_KEY": CLIENT_KEY,
                                            "IDS": "gpt-4o %s nope" % ANTHROPIC_MODEL})
    g = r.get("gpt-4o", {})
    a, o = g.get("anthropic", {}), g.get("openai", {})
    tap.ok(a.get("ok") and a["model"]["type"] == "model" and a["model"]["id"] == "gpt-4o"
           and a["model"]["display_name"] == "gpt-4o (%s)" % OPENAI_TARGET
           and a["model"]["created_at"] == "1970-01-01T00:00:00Z",
           "Anthropic SDK models.retrieve: an alias in the Anthropic shape", a)
    tap.ok(o.get("ok") and o["model"]["object"] == "model" and o["model"]["id"] == "gpt-4o"
           and o["model"]["owned_by"] == "anthropic" and o["model"]["created"] == 0,
           "OpenAI SDK models.retrieve: the same entry in OpenAI's shape", o)
    d = r.get(ANTHROPIC_MODEL, {}).get("openai", {})
    tap.ok(d.get("ok") and d["model"]["created"] == 1759104000, "a dated id: created is its snapshot date", d)
    n = r.get("nope", {})
    tap.ok(n.get("anthropic", {}).get("status") == 404 and n.get("openai", {}).get("status") == 404
           and n["openai"]["name"] == "NotFoundError", "an unknown id: 404 NotFoundError in both SDKs", n)


# ---------------------------------------------------------------- raw HTTP

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}, "hours": {"type": "integer"}}}}}


def chat(s, body):
    return http_json("POST", s.base + "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json", "Authorization": "Bearer " + CLIENT_KEY})


def check_raw(tap, s):
    emu = s.emu
    # Parallel calls, streamed: each call's id and name first, then its arguments piece by piece.
    st, h, _, raw = http_json("POST", s.base + "/v1/chat/completions", json.dumps({
        "model": "gpt-4o", "stream": True, "tools": [WEATHER, TIME], "messages": [
            {"role": "user", "content": "Oslo get_weather and get_time " + marker("raw-par")}]}),
        {"Content-Type": "application/json", "Authorization": "Bearer " + CLIENT_KEY})
    chunks = [json.loads(d) for _, _, d in sse_events(raw) if d and d != "[DONE]"]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks
             if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    firsts = [c for c in calls if "id" in c]
    args = {i: "".join(c["function"]["arguments"] for c in calls if c["index"] == i) for i in (0, 1)}
    tap.ok(st == 200 and [(c["index"], c["function"]["name"]) for c in firsts] == [(0, "get_weather"), (1, "get_time")]
           and all(c["function"]["arguments"] == "" and c["type"] == "function" for c in firsts)
           and json.loads(args[0]) == {"city": "Oslo"} and json.loads(args[1]) == {"zone": "Oslo", "hours": 42}
           and len(calls) >= 6 and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls",
           "stream: parallel tool calls, id and name first, arguments in pieces, finish tool_calls", raw[-3000:])
    sent = emu.stats("raw-par")["last_request"]["body"]
    tap.ok([t["name"] for t in sent["tools"]] == ["get_weather", "get_time"] and "tool_choice" not in sent,
           "stream: tools translated, no tool_choice when the client set none", sent)

    # A round trip in raw form: the results of both calls back, in one user turn.
    st, _, js, raw = chat(s, {"model": "gpt-4o", "tools": [WEATHER, TIME], "messages": [
        {"role": "user", "content": "Oslo get_weather and get_time"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": '{"zone":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "cold"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon " + marker("raw-back")}]})
    tap.ok(st == 200 and js["choices"][0]["message"]["content"] == expected_answer("cold noon")
           and js["choices"][0]["finish_reason"] == "stop", "tool results back -> the answer", raw)
    sent = emu.stats("raw-back")["last_request"]["body"]
    tap.ok([m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
           and [b["type"] for b in sent["messages"][2]["content"]] == ["tool_result", "tool_result"],
           "consecutive tool turns -> one user turn of tool_result blocks", sent)

    img = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    st, _, js, raw = chat(s, {"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe " + marker("raw-img", words=3)},
        {"type": "image_url", "image_url": {"url": img}},
        {"type": "image_url", "image_url": {"url": "https://example.org/cat.jpg", "detail": "low"}}]}]})
    sent = emu.stats("raw-img")["last_request"]["body"]["messages"][0]["content"]
    tap.ok(st == 200 and sent[1]["source"]["type"] == "base64" and sent[1]["source"]["media_type"] == "image/png"
           and sent[2]["source"] == {"type": "url", "url": "https://example.org/cat.jpg"},
           "images: data: URL -> base64 source, https -> URL source; the upstream accepts them", raw)

    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    st, _, js, raw = chat(s, {"model": "gpt-4o", "response_format": {"type": "json_schema", "json_schema": {
        "name": "person", "strict": True, "schema": schema}}, "messages": [
        {"role": "user", "content": "Ada " + marker("raw-schema")}]})
    sent = emu.stats("raw-schema")["last_request"]["body"]
    tap.ok(st == 200 and json.loads(js["choices"][0]["message"]["content"]) == {"name": "Ada", "age": 42}
           and sent["output_config"] == {"format": {"type": "json_schema", "schema": schema}},
           "json_schema -> structured output; the content is the JSON", raw)
    st, _, js, raw = chat(s, {"model": "claude-haiku-5-5", "response_format": {"type": "json_object"},
                              "messages": [{"role": "user", "content": "Ada " + marker("raw-jobj")}]})
    sent = emu.stats("raw-jobj")["last_request"]["body"]
    tap.ok(st == 200 and json.loads(js["choices"][0]["message"]["content"]) == {}
           and js["choices"][0]["finish_reason"] == "stop" and sent["tool_choice"]["type"] == "tool",
           "json_object on a model that takes a forced tool -> the tool's input is the content", raw)
    st, _, js, raw = chat(s, {"model": "gpt-4o", "response_format": {"type": "json_object"},
                              "messages": [{"role": "user", "content": "Ada"}]})
    tap.ok(st == 400 and js["error"]["param"] == "response_format",
           "json_object on a model that refuses a forced tool -> 400 naming response_format", raw)

    st, _, js, raw = chat(s, {"model": "gpt-4o", "reasoning_effort": "medium", "messages": [
        {"role": "user", "content": "think " + marker("raw-reason", words=2)}]})
    sent = emu.stats("raw-reason")["last_request"]["body"]
    m = js["choices"][0]["message"] if st == 200 else {}
    tap.ok(st == 200 and sent["thinking"] == {"type": "adaptive", "display": "summarized"}
           and sent["output_config"] == {"effort": "medium"} and m.get("reasoning_content") and m.get("content"),
           "reasoning_effort -> adaptive thinking with that effort, summarized (the current models "
           "omit thinking by default): reasoning_content and content", raw)

    refusals = [
        ({"model": "gpt-4o", "temperature": 0.3}, "temperature"),
        ({"model": "gpt-4o", "tools": [WEATHER], "tool_choice": "required"}, "tool_choice"),
        ({"model": "claude-opus-5-5", "reasoning_effort": "none"}, "reasoning_effort"),
        ({"model": "claude-opus-5-5", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "r"}]}, "messages"),
    ]
    before = emu.stats()["attempts"]
    for extra, param in refusals:
        body = dict({"messages": [{"role": "user", "content": "x"}]}, **extra)
        st, _, js, raw = chat(s, body)
        tap.ok(st == 400 and js["error"]["param"] == param and param in js["error"]["message"],
               "the catalogue's rule: %s -> 400 naming %s" % (json.dumps(extra)[:70], param), raw)
    st, _, js, raw = chat(s, {"model": "gpt-4o", "temperature": 1, "messages": [
        {"role": "user", "content": "x " + marker("raw-temp", words=1)}]})
    tap.ok(st == 200 and "temperature" not in emu.stats("raw-temp")["last_request"]["body"],
           "a sampling value equal to the default is dropped silently", raw)
    tap.eq(emu.stats()["attempts"], before + 1, "refusals never reach the upstream")


def main(tap):
    with Stack(settings={"models": MODELS, "model": OPENAI_TARGET}) as s:
        check_raw(tap, s)
        node = node_ready(tap)
        if not node:
            tap.skip("real clients", "node and npm are not installed (scripts/install-deps test)")
            return
        with open(os.path.join(SDK_DIR, "package-lock.json")) as f:
            lock = json.load(f)["packages"]
        pins = {p: lock["node_modules/" + p]["version"] for p in
                ("ai", "@ai-sdk/openai", "@ai-sdk/anthropic", "@langchain/openai", "@langchain/anthropic")}
        tap.diag("clients: %s" % pins)
        check_models(tap, node, s)
        check_ai_sdk(tap, node, s, "openai", "gpt-4o")
        check_ai_sdk_responses(tap, node, s)
        check_ai_sdk(tap, node, s, "anthropic", ANTHROPIC_MODEL)
        check_langchain(tap, node, s, "openai", "gpt-4o")
        check_langchain(tap, node, s, "anthropic", ANTHROPIC_MODEL)
        tap.eq(len(s.pool.alive()), 2, "both workers alive at the end")


if __name__ == "__main__":
    run_tests(main)
