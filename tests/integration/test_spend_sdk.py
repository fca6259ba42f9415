#!/usr/bin/env python3
"""Spend-control refusals through the official SDKs (Anthropic 1.x and the last 0.x, OpenAI), with
their default retries: a spent budget and a rate limit raise RateLimitError (429) at once, and each
SDK call is one request at the gateway and none at the upstream (x-should-retry: false keeps the
SDKs from retrying a refusal). The SDKs run on the pinned Node 22 (test_api_compat.py)."""
import json
import os

from harness import Stack, http, marker, new_tmp, q, remove_tmp, run_tests, wait_for
from test_api_compat import node_ready, run_sdk

BUDGET, RPM = "10.2.0.1", "10.2.0.2"
LIMITS = "addr:%s usd_per_day=0.000001\naddr:%s rpm=0\n" % (BUDGET, RPM)
CALLS = ("@anthropic-ai/sdk", "anthropic-sdk-0", "openai")


def main(tap):
    node = node_ready(tap)
    if not node:
        tap.skip("official SDKs", "node and npm are not installed (scripts/install-deps test)")
        return
    d = new_tmp()
    try:
        with open(os.path.join(d, "limits"), "w") as f:
            f.write(LIMITS)
        # Two workers under spawn-fcgi -F share the counters through the state file only.
        with Stack(settings={"limits_file": os.path.join(d, "limits"), "state_file": os.path.join(d, "state"),
                             "trusted_proxies": "127.0.0.1"}) as s:
            st, _, _ = http("POST", s.base + "/summarize", "text=" + q(marker("spend-first") + " hi"),
                            {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": BUDGET})
            tap.eq(st, 200, "a first request spends %s's budget" % BUDGET)
            wait_for(lambda: len(s.pool.access()) == 1, what="its access line")
            r = run_sdk(tap, node, "spend.mjs", {"BASE_URL": s.base, "WHO": json.dumps([BUDGET, RPM])})
            for who, kind in ((BUDGET, "budget"), (RPM, "rate limit")):
                for sdk in CALLS:
                    e = r.get("%s|%s" % (sdk, who), {}).get("error") or {}
                    want_type = ("insufficient_quota" if kind == "budget" else "requests") if sdk == "openai" \
                        else "rate_limit_error"
                    tap.ok(e.get("status") == 429 and e.get("name") == "RateLimitError" and e.get("type") == want_type
                           and e.get("retry_after"), "%s, %s refused: RateLimitError 429 %s" % (sdk, kind, want_type), e)
            wait_for(lambda: len(s.pool.access()) >= 7, what="the access lines")
            refused = [a for a in s.pool.access() if a["status"] == 429]
            per = {w: sum(1 for a in refused if a["who"] == "addr:" + w) for w in (BUDGET, RPM)}
            tap.eq(per, {BUDGET: 3, RPM: 3}, "one gateway request per SDK call: no SDK retried a refusal")
            tap.eq(sorted({a.get("refused") for a in refused}), ["rpm", "usd_per_day"],
                   "refused by the daily budget and by rpm")
            tap.eq(s.emu.stats()["attempts"], 1, "the upstream saw only the first request")
    finally:
        remove_tmp(d)


run_tests(main)
