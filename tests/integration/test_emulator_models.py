#!/usr/bin/env python3
"""Issue 12: the emulator's late-2026 API, straight at llm-emu: retired, emulator-retired and
unknown models get 404 not_found_error "model: ID"; thinking blocks (signature, deltas) come
before the text and count against max_tokens (worst case by default); sampling and forced
tool_choice refused where the catalogue says; thinking blocks must come back intact with tool
results; cache_creation in usage."""
import json
import os
import tempfile

from harness import API_KEY, LLM_EMU, clean_env, http, run_tests, spawn, sse_events, wait_for

H = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}


def start(tmp):
    pf = os.path.join(tmp, "emu.port")
    spawn([LLM_EMU, "--port-file", pf, "--key", API_KEY, "--retire", "claude-opus-4-8"], env=clean_env(),
          log=os.path.join(tmp, "emu.log"))
    wait_for(lambda: os.path.exists(pf), what="emulator port file")
    with open(pf) as f:
        return "http://127.0.0.1:%d" % int(f.read())


def post(url, body):
    st, _, raw = http("POST", url + "/v1/messages", json.dumps(body).encode(), H)
    return st, json.loads(raw) if raw.startswith(b"{") else raw


def msg(model, text="a b", **kw):
    return dict({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}, **kw)


def main(tap):
    url = start(tempfile.mkdtemp(prefix="emu-models."))
    for model, why in (("claude-sonnet-4-20250514", "retired"), ("claude-3-5-haiku-latest", "retired alias"),
                       ("claude-opus-4-8", "retired by --retire"), ("claude-nonesuch", "unknown")):
        st, js = post(url, msg(model))
        tap.ok(st == 404 and js["error"] == {"type": "not_found_error", "message": "model: " + model},
               "%s model -> 404 not_found_error 'model: ID'" % why, js)
    st, js = post(url, msg("claude-sonnet-5-5"))
    tap.ok(st == 200 and [b["type"] for b in js["content"]] == ["thinking"] and js["stop_reason"] == "max_tokens"
           and js["usage"]["output_tokens"] == 64, "no thinking setting: thinking runs to max_tokens, no text", js)
    tap.ok(js["usage"]["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
           "usage has cache_creation (5m, 1h)", js["usage"])
    st, js = post(url, msg("claude-opus-5-5", thinking={"type": "adaptive"}, output_config={"effort": "low"}))
    tap.ok(st == 200 and [b["type"] for b in js["content"]] == ["thinking", "text"]
           and js["usage"]["output_tokens"] == 16 + 20 and js["stop_reason"] == "end_turn",
           "low effort: a quarter of max_tokens thinking, then the text", js)
    sig_block = js["content"][0]
    st, js = post(url, msg("claude-opus-5-5", thinking={"type": "disabled"}))
    tap.ok(st == 400 and "disabled" in js["error"]["message"], "always-on model refuses thinking disabled", js)
    st, js = post(url, msg("claude-sonnet-5-5", "x [[emu:thinking=60]]", thinking={"type": "adaptive"}))
    tap.ok(st == 200 and js["usage"]["output_tokens"] == 64 and js["content"][1]["text"] == "x x x x",
           "[[emu:thinking=N]] forces N thinking tokens", js)
    st, js = post(url, msg("claude-sonnet-5-5", temperature=0.5))
    tap.ok(st == 400 and js["error"]["message"] == "`temperature` is deprecated for this model.", "sampling refused", js)
    st, js = post(url, msg("claude-sonnet-4-5", temperature=0.5))
    tap.ok(st == 200, "sampling accepted where the catalogue says", js)
    st, js = post(url, msg("claude-opus-5-5", tool_choice={"type": "any"}, tools=[]))
    tap.ok(st == 400 and "tool_choice" in js["error"]["message"], "forced tool_choice refused", js)
    turns = lambda first: [{"role": "user", "content": "weather?"},
                           {"role": "assistant", "content": first + [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
                           {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]}]
    base = {"model": "claude-opus-5-5", "max_tokens": 64, "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}
    st, js = post(url, dict(base, messages=turns([])))
    tap.ok(st == 400 and "Expected `thinking` or `redacted_thinking`" in js["error"]["message"],
           "tool results of a thinking turn without its thinking block -> 400", js)
    st, js = post(url, dict(base, messages=turns([sig_block])))
    tap.ok(st == 200, "with the thinking block back, signature intact -> 200", js)
    st, js = post(url, dict(base, messages=turns([dict(sig_block, signature="EmuSig0000000000000000")])))
    tap.ok(st == 400 and "Invalid `signature`" in js["error"]["message"], "an altered signature -> 400", js)
    st, h, raw = http("POST", url + "/v1/messages", json.dumps(msg("claude-opus-5-5", stream=True, thinking={"type": "adaptive"},
                                                                   output_config={"effort": "medium"})).encode(), H)
    evs = [json.loads(d) for _, _, d in sse_events(raw)]
    kinds = [e["delta"]["type"] for e in evs if e["type"] == "content_block_delta"]
    tap.ok(st == 200 and kinds[:1] == ["signature_delta"] and kinds[1:] == ["text_delta"] * 20
           and evs[-2]["usage"]["output_tokens"] == 32 + 20, "stream: signature_delta, then text at index 1", kinds)
    st, js = post(url, dict(msg("claude-sonnet-5-5", thinking={"type": "disabled"}), **{}))
    st2, _, _ = http("POST", url + "/v1/messages", json.dumps(msg("claude-sonnet-5-5")).encode(),
                     dict(H, **{"anthropic-beta": "compact-2026-01-12,fast-mode-2026-02-01"}))
    tap.ok(st == 200 and [b["type"] for b in js["content"]] == ["text"] and st2 == 200,
           "thinking disabled: text only; current anthropic-beta values accepted", js)


run_tests(main)
