/* The relay on its own, with a small handler of its own making (echo each text delta, end with
 * a line naming the outcome), against the in-memory client and the scripted upstream: commit
 * timing, failures before and after commit, keep-alive, a client that leaves, scrubbing and the
 * access record. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"
#include "relay.h"
#include "tap.h"

#define KEY "sk-ant-test-0123456789abcdefSECRET"

static int echo_event(struct relay *r, const struct sse_event *e, const struct anth_event *ev)
{
	if (ev->kind == ANTH_EV_ERROR)
		return -1;
	if (ev->kind == ANTH_EV_TEXT)
		return buf_printf(relay_frame(r), "data: %.*s\n\n", (int)ev->text_len, ev->text);
	return 0;
}

static void echo_finish(struct relay *r, const struct relay_failure *f)
{
	/* Short (a failure's fields are 64 and 512 bytes) in a frame of 4 KiB and more. */
	if (f)
		BUF_MUST(buf_printf(relay_frame(r), "event: end\ndata: %s: %s\n\n", f->type, f->message));
	else
		BUF_MUST(buf_appends(relay_frame(r), "event: end\ndata: ok\n\n"));
}

static int echo_whole(struct relay *r, char *body, size_t len)
{
	if (strcmp(body, "bad") == 0)
		return -1;
	relay_answer(r, "text/plain", body, len);
	return 0;
}

static const struct relay_ops stream_ops = {
	.mode = RELAY_STREAM, .fmt = RESP_SSE, .on_event = echo_event, .on_finish = echo_finish};
static const struct relay_ops deadline_ops = {.mode = RELAY_STREAM, .fmt = RESP_SSE,
					      .commit_on_deadline = 1, .on_event = echo_event,
					      .on_finish = echo_finish};
static const struct relay_ops whole_ops = {.mode = RELAY_WHOLE, .on_whole = echo_whole};

static const char *const no_params[] = {NULL};

#define EV(name, json) "event: " name "\ndata: " json "\n\n"
#define START EV("message_start", "{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7}}}")
#define TEXT(t) EV("content_block_delta", "{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"" t "\"}}")
#define PING EV("ping", "{\"type\":\"ping\"}")
#define MDELTA EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}")
#define STOP EV("message_stop", "{\"type\":\"message_stop\"}")

/* One relayed call over a fresh request; the request is finished (and logged) by the caller. */
static void run(struct fake *f, struct request *rq, const struct relay_ops *ops)
{
	request_init(rq, &f->srv, &f->io);
	struct upstream_request ur = {.path = "/v1/messages", .body = "{}", .body_len = 2,
				      .stream = ops->mode == RELAY_STREAM};
	relay_run(rq, ops, NULL, &ur);
}

static const char *out(const struct fake *f)
{
	return buf_cstr(&f->client.out);
}

static void test_stream_ok(void)
{
	struct fake f;
	struct request rq;
	fake_init(&f, KEY, 1e9, no_params, NULL);
	fake_up.request_id = "req_abc";
	fake_up.body = START TEXT("Hel") PING TEXT("lo") MDELTA STOP;
	fake_up.chunk = 5; /* any split */
	run(&f, &rq, &stream_ops);
	tap_is_int(fake_status(&f), 200, "stream: 200");
	tap_ok(fake_has_header(&f, "request-id: req_abc") && fake_has_header(&f, "x-request-id: req_abc"),
	       "stream: request-id and x-request-id");
	tap_is_str(fake_body(&f), ": ok\n\ndata: Hel\n\ndata: lo\n\nevent: end\ndata: ok\n\n",
		   "stream: one frame per delta, then the finish frame");
	tap_is_int(f.client.flushes, 4, "stream: one flush at commit, one per frame");
	tap_ok(rq.acc.ttft_ms >= 0, "access: time to first token");
	tap_is_int(rq.acc.delta_flushes, 2, "access: delta flushes");
	tap_is_int(rq.acc.input_tokens, 7, "access: input tokens from message_start");
	tap_is_int(rq.acc.output_tokens, 3, "access: output tokens from message_delta");
	tap_is_int(rq.acc.attempts, 1, "access: attempts");
	tap_ok(!rq.acc.cancelled && !rq.acc.error, "access: neither cancelled nor failed");
	tap_is_str(rq.upstream_request_id, "req_abc", "access: upstream request id");
	request_finish(&rq);
	fake_release(&f);
}

/* Before commit nothing is written, so a failure keeps its own status. */
static void test_commit_timing(void)
{
	struct fake f;
	struct request rq;
	fake_init(&f, KEY, 1e9, no_params, NULL);
	fake_up.ticks_before = 5;
	fake_up.status = 429;
	fake_up.retry_after = 3;
	fake_up.body = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow\"}}";
	run(&f, &rq, &stream_ops);
	tap_is_int(fake_status(&f), 429, "before commit: the upstream's 429 keeps its status");
	tap_ok(fake_has_header(&f, "Retry-After: 3") && fake_has_header(&f, "x-should-retry: false"),
	       "before commit: Retry-After, x-should-retry: false");
	tap_is_str(rq.acc.error, "rate_limited", "access: error");
	tap_ok(rq.acc.ttft_ms < 0, "access: no time to first token");
	request_finish(&rq);
	fake_release(&f);

	/* A route that commits at the keep-alive deadline: then the failure is in the stream. */
	fake_init(&f, KEY, 0, no_params, NULL);
	fake_up.ticks_before = 1;
	fake_up.status = 529;
	fake_up.body = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}";
	run(&f, &rq, &deadline_ops);
	tap_is_int(fake_status(&f), 200, "deadline: committed 200 before the upstream answered");
	tap_ok(strstr(fake_body(&f), "event: end\ndata: api_error: ") != NULL,
	       "deadline: the later failure ends the stream in its own format");
	tap_is_str(rq.acc.error, "stream_failed", "deadline: access error");
	request_finish(&rq);
	fake_release(&f);
}

static void test_before_commit(void)
{
	static const struct {
		enum upstream_outcome before;
		long status;
		const char *body;
		int want;
		const char *error;
	} cases[] = {
		{UP_CONNECT_FAILED, 0, NULL, 502, "upstream_error"},
		{UP_FIRST_BYTE_TIMEOUT, 0, NULL, 504, "timeout"},
		{UP_DONE, 401, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"bad " KEY "\"}}", 502, "upstream_error"},
		{UP_DONE, 400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"no " KEY "\"}}", 400, "bad_request"},
		{UP_DONE, 500, "not json", 502, "upstream_error"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fake f;
		struct request rq;
		fake_init(&f, KEY, 1e9, no_params, NULL);
		fake_up.before = cases[i].before;
		fake_up.status = cases[i].status;
		fake_up.body = cases[i].body;
		run(&f, &rq, &stream_ops);
		tap_is_int(fake_status(&f), cases[i].want, "before commit, case %zu: status", i);
		tap_is_str(rq.acc.error, cases[i].error, "before commit, case %zu: access error", i);
		tap_ok(!strstr(out(&f), KEY), "before commit, case %zu: key scrubbed", i);
		request_finish(&rq);
		fake_release(&f);
	}
}

static void test_after_commit(void)
{
	static const struct {
		const char *body;
		enum upstream_outcome after;
		const char *want;
	} cases[] = {
		{START TEXT("a"), UP_BROKEN, "api_error: The upstream API ended the stream before it finished"},
		{START TEXT("a"), UP_IDLE_TIMEOUT, "timeout_error: The upstream API timed out during the stream"},
		{START EV("content_block_delta", "{\"type\":\"nope\"}"), UP_DONE,
		 "api_error: The upstream API sent an invalid stream event"},
		{START EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"key " KEY "\"}}"),
		 UP_DONE, "overloaded_error: key ******"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fake f;
		struct request rq;
		fake_init(&f, KEY, 1e9, no_params, NULL);
		fake_up.body = cases[i].body;
		fake_up.after = cases[i].after;
		run(&f, &rq, &stream_ops);
		tap_is_int(fake_status(&f), 200, "after commit, case %zu: 200 stays", i);
		tap_ok(strstr(fake_body(&f), cases[i].want) != NULL, "after commit, case %zu: %s", i,
		       cases[i].want);
		tap_ok(!strstr(out(&f), KEY), "after commit, case %zu: key scrubbed", i);
		tap_is_str(rq.acc.error, "stream_failed", "after commit, case %zu: access error", i);
		request_finish(&rq);
		fake_release(&f);
	}
	/* An event over max_response_bytes. */
	struct fake f;
	struct request rq;
	fake_init(&f, KEY, 1e9, no_params, NULL);
	f.cfg.max_response_bytes = 64;
	fake_up.body = START;
	run(&f, &rq, &stream_ops);
	tap_ok(strstr(fake_body(&f), "event larger than this server accepts") != NULL,
	       "after commit: an event over max_response_bytes");
	request_finish(&rq);
	fake_release(&f);
}

static void test_keepalive(void)
{
	struct fake f;
	struct request rq;
	/* Due at once: every silent tick and every event without output gets one. */
	fake_init(&f, KEY, 0, no_params, NULL);
	fake_up.body = START PING PING TEXT("x") STOP;
	fake_up.chunk = strlen(START);
	fake_up.ticks_between = 1;
	run(&f, &rq, &stream_ops);
	int n = 0;
	for (const char *p = strstr(out(&f), ": keep-alive\n\n"); p; p = strstr(p + 1, ": keep-alive\n\n"))
		n++;
	/* START (no output) + 2 pings (no output) = 3 from events; 1 silent tick after each of the
	 * first chunks sent nothing else (the chunks end mid-event or after an event). */
	tap_ok(n >= 3, "keep-alive on events without output and on silence (%d)", n);
	const char *b = fake_body(&f), *end = "event: end\ndata: ok\n\n";
	tap_ok(strstr(b, "\n\ndata: x\n\n") && strlen(b) > strlen(end) &&
		       strcmp(b + strlen(b) - strlen(end), end) == 0,
	       "keep-alive between frames, never inside one");
	request_finish(&rq);
	fake_release(&f);

	fake_init(&f, KEY, 1e9, no_params, NULL);
	fake_up.body = START PING PING TEXT("x") STOP;
	fake_up.ticks_between = 3;
	run(&f, &rq, &stream_ops);
	tap_ok(!strstr(out(&f), "keep-alive"), "no keep-alive within the interval");
	request_finish(&rq);
	fake_release(&f);
}

static void test_client_gone(void)
{
	struct fake f;
	struct request rq;
	/* Leaves while the upstream is silent, before any answer. */
	fake_init(&f, KEY, 1e9, no_params, NULL);
	fake_up.ticks_before = 10;
	f.client.gone_after_ticks = 2;
	run(&f, &rq, &stream_ops);
	tap_ok(fake_up.aborted, "gone while silent: the upstream transfer stops");
	tap_is_str(out(&f), "", "gone while silent: nothing written");
	tap_ok(rq.acc.cancelled && strcmp(rq.acc.error, "cancelled") == 0, "gone: access cancelled");
	request_finish(&rq);
	tap_is_int(rq.acc.status, 499, "gone: logged as 499");
	fake_release(&f);

	/* Leaves mid-stream: the next write fails. */
	fake_init(&f, KEY, 1e9, no_params, NULL);
	fake_up.body = START TEXT("a") TEXT("b") TEXT("c") STOP;
	fake_up.chunk = 8;
	/* head, ": ok", "a", "b", then "c" is written but its flush fails (the client left). */
	f.client.writes_left = 5;
	run(&f, &rq, &stream_ops);
	tap_ok(fake_up.aborted, "gone mid-stream: the upstream transfer stops");
	tap_is_int(rq.acc.delta_flushes, 2, "gone mid-stream: the deltas relayed");
	tap_ok(rq.acc.cancelled && !strstr(out(&f), "event: end"), "gone mid-stream: nothing more");
	request_finish(&rq);
	fake_release(&f);
}

static void test_whole(void)
{
	struct fake f;
	struct request rq;
	fake_init(&f, KEY, 1e9, no_params, NULL);
	fake_up.body = "answer with " KEY " inside";
	fake_up.request_id = "req_w";
	run(&f, &rq, &whole_ops);
	tap_is_int(fake_status(&f), 200, "whole: 200");
	tap_ok(!strstr(out(&f), KEY) && strncmp(fake_body(&f), "answer with ***", 15) == 0 &&
		       strlen(fake_body(&f)) == strlen("answer with " KEY " inside"),
	       "whole: key scrubbed from the answer, length kept");
	tap_ok(fake_has_header(&f, "request-id: req_w") && fake_has_header(&f, "x-request-id: req_w"),
	       "whole: both request-id headers");
	request_finish(&rq);
	fake_release(&f);

	fake_init(&f, KEY, 1e9, no_params, NULL);
	fake_up.body = "bad";
	run(&f, &rq, &whole_ops);
	tap_is_int(fake_status(&f), 502, "whole: an answer the handler cannot read is a 502");
	request_finish(&rq);
	fake_release(&f);

	fake_init(&f, KEY, 1e9, no_params, NULL);
	f.cfg.max_response_bytes = 8;
	fake_up.body = "0123456789";
	run(&f, &rq, &whole_ops);
	tap_ok(fake_status(&f) == 502 && strstr(fake_body(&f), "larger than this server accepts"),
	       "whole: an answer over max_response_bytes is a 502");
	request_finish(&rq);
	fake_release(&f);
}

int main(void)
{
	test_stream_ok();
	test_commit_timing();
	test_before_commit();
	test_after_commit();
	test_keepalive();
	test_client_gone();
	test_whole();
	return tap_done();
}
