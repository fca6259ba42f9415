/* Each handler, served whole (serve_request: route, method, body, handler, relay, access line)
 * against the in-memory client and the scripted upstream: what the client gets, what the
 * upstream was asked, the access line, and the key scrubbed from all of it. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"
#include "tap.h"

#define KEY "sk-ant-test-0123456789abcdefSECRET"

#define EV(name, json) "event: " name "\ndata: " json "\n\n"
#define START EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":7}}}")
#define TEXT(t) EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" t "\"}}")
#define MDELTA EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}")
#define STOP EV("message_stop", "{\"type\":\"message_stop\"}")
#define ERROR_EV EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}")
#define MESSAGE(t) "{\"type\":\"message\",\"id\":\"msg_1\",\"model\":\"claude-test\",\"stop_reason\":\"end_turn\"," \
	"\"content\":[{\"type\":\"text\",\"text\":\"" t "\"}],\"usage\":{\"input_tokens\":5,\"output_tokens\":2}}"

#define POST(uri, ct) "REQUEST_METHOD", "POST", "REQUEST_URI", uri, "CONTENT_TYPE", ct
#define SSE "HTTP_ACCEPT", "text/event-stream"

static long acc_long(const struct fake *f, const char *key)
{
	struct json_object *a = fake_access(f), *v;
	long n = a && json_object_object_get_ex(a, key, &v) ? (long)json_object_get_int64(v) : -999;
	json_object_put(a);
	return n;
}

static int acc_is(const struct fake *f, const char *key, const char *want)
{
	struct json_object *a = fake_access(f), *v;
	int same = a && json_object_object_get_ex(a, key, &v) &&
		   strcmp(json_object_get_string(v), want) == 0;
	json_object_put(a);
	return same;
}

static void no_key(const struct fake *f, const char *where)
{
	tap_ok(!strstr(buf_cstr(&f->client.out), KEY) && !strstr(fake_log(f), KEY),
	       "%s: the key reaches neither the client nor the log", where);
}

static void test_summarize(void)
{
	static const char *const params[] = {POST("/summarize", "application/json"), NULL};
	struct fake f;
	fake_init(&f, KEY, 1e9, params, "{\"text\":\"hello\"}");
	fake_up.request_id = "req_s";
	fake_up.body = MESSAGE("said " KEY);
	fake_serve(&f);
	tap_is_int(fake_status(&f), 200, "summarize: 200");
	tap_ok(strstr(fake_body(&f), "\"summary\":\"said ***") != NULL, "summarize: the summary");
	tap_ok(fake_has_header(&f, "request-id: req_s") && fake_has_header(&f, "x-request-id: req_s"),
	       "summarize: both request-id headers (one policy)");
	tap_ok(!fake_up.stream && strstr(buf_cstr(&fake_up.sent), "\"hello\"") != NULL,
	       "summarize: one non-streaming call with the text");
	tap_ok(acc_long(&f, "input_tokens") == 5 && acc_long(&f, "output_tokens") == 2 &&
		       acc_long(&f, "status") == 200,
	       "summarize: access line");
	no_key(&f, "summarize (the model's text)");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, "{\"text\":\"hello\"}");
	fake_up.status = 400;
	fake_up.body = "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"too long\"}}";
	fake_serve(&f);
	tap_ok(fake_status(&f) == 400 && strstr(fake_body(&f), "too long"),
	       "summarize: the upstream's 400 with its message");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, "{\"nope\":1}");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 400 && fake_up.calls == 0, "summarize: bad input, no upstream call");
	fake_release(&f);
}

static void test_stream(void)
{
	static const char *const sse[] = {POST("/stream", "application/json"), SSE, NULL};
	static const char *const text[] = {POST("/stream", "application/json"), NULL};
	struct fake f;
	fake_init(&f, KEY, 1e9, sse, "{\"text\":\"hi\"}");
	fake_up.body = START TEXT("one " KEY) TEXT("two") MDELTA STOP;
	fake_up.request_id = "req_t";
	fake_serve(&f);
	const char *b = fake_body(&f);
	tap_ok(strncmp(b, ": ok\n\nretry: 86400000\nid: 0\n\n", 29) == 0, "stream: retry and id first");
	tap_ok(strstr(b, "event: delta\nid: 1\ndata: {\"text\":\"one ***") &&
		       strstr(b, "event: delta\nid: 2\ndata: {\"text\":\"two\"}"),
	       "stream: delta events with ids");
	tap_ok(strstr(b, "event: done\nid: 3\ndata: {\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":7,\"output_tokens\":3}}") != NULL,
	       "stream: done with stop reason and usage");
	tap_ok(fake_has_header(&f, "request-id: req_t") && fake_has_header(&f, "x-request-id: req_t"),
	       "stream: both request-id headers (one policy)");
	tap_ok(fake_up.stream && acc_long(&f, "delta_flushes") == 2, "stream: access delta flushes");
	no_key(&f, "stream (the model's text)");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, text, "{\"text\":\"hi\"}");
	fake_up.body = START TEXT("par") TEXT("tial");
	fake_up.after = UP_BROKEN;
	fake_serve(&f);
	tap_is_str(fake_body(&f), "partial\n[error: api_error: The upstream API ended the stream before it finished]\n",
		   "stream, text: a cut answer ends with the error line");
	tap_ok(acc_is(&f, "error", "stream_failed"), "stream, text: access error");
	fake_release(&f);

	/* An upstream error event quoting the key, in its type too: scrubbed in the stream and in
	 * the log line the relay writes about it. */
	fake_init(&f, KEY, 1e9, sse, "{\"text\":\"hi\"}");
	fake_up.body = START EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"bad_" KEY "\",\"message\":\"" KEY "\"}}");
	fake_serve(&f);
	tap_ok(strstr(fake_body(&f), "event: error\nid: 1\ndata: {\"error\":{\"type\":\"bad_***") != NULL,
	       "stream: the upstream's error event, scrubbed");
	no_key(&f, "stream (an error event)");
	fake_release(&f);

	/* Commits at the keep-alive deadline, so a later upstream failure is an error event. */
	fake_init(&f, KEY, 0, sse, "{\"text\":\"hi\"}");
	fake_up.ticks_before = 1;
	fake_up.before = UP_FIRST_BYTE_TIMEOUT;
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && strstr(fake_body(&f), "event: error\nid: 1\ndata: {\"error\":{\"type\":\"timeout_error\""),
	       "stream: committed at the deadline, then the failure as an error event");
	fake_release(&f);
}

static void test_messages(void)
{
	static const char *const params[] = {POST("/v1/messages", "application/json"), NULL};
	static const char body[] = "{\"model\":\"claude-test\",\"max_tokens\":10,\"messages\":[]}";
	static const char sbody[] = "{\"model\":\"claude-test\",\"max_tokens\":10,\"stream\":true,\"messages\":[]}";
	struct fake f;
	fake_init(&f, KEY, 1e9, params, body);
	fake_up.body = MESSAGE("hi");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && strcmp(fake_body(&f), MESSAGE("hi")) == 0,
	       "messages: the answer as it came");
	tap_is_str(buf_cstr(&fake_up.sent), body, "messages: the body passed through");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, sbody);
	fake_up.body = START TEXT("a") TEXT("b") MDELTA STOP;
	fake_up.request_id = "req_m";
	fake_serve(&f);
	tap_ok(strstr(fake_body(&f), TEXT("a") TEXT("b") MDELTA STOP) != NULL,
	       "messages, stream: every event relayed as it came");
	tap_ok(acc_long(&f, "flushes") == 6 && acc_long(&f, "delta_flushes") == 2 &&
		       acc_is(&f, "upstream_request_id", "req_m"),
	       "messages, stream: one flush per event, access line");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, sbody);
	fake_up.body = START TEXT("a") ERROR_EV;
	fake_serve(&f);
	tap_is_int(fake_count(&f, "event: error"), 1, "messages, stream: the upstream's error event, once");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, body);
	fake_up.status = 529;
	fake_up.body = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"" KEY "\"}}";
	fake_serve(&f);
	tap_ok(fake_status(&f) == 529 && strstr(fake_body(&f), "overloaded_error") &&
		       acc_is(&f, "error", "upstream_status"),
	       "messages: the upstream's 529 with its body");
	no_key(&f, "messages (an error body)");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, body);
	fake_up.status = 403;
	fake_up.body = "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"no\"}}";
	fake_serve(&f);
	tap_is_int(fake_status(&f), 502, "messages: the upstream's 403 (the server's key) is a 502");
	fake_release(&f);

	static const char *const count[] = {POST("/v1/messages/count_tokens", "application/json"), NULL};
	fake_init(&f, KEY, 1e9, count, "{\"model\":\"claude-test\",\"messages\":[]}");
	fake_up.body = "{\"input_tokens\":4}";
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && strcmp(fake_up.path, "/v1/messages/count_tokens") == 0,
	       "count_tokens: passed through");
	fake_release(&f);
}

static void test_chat(void)
{
	static const char *const params[] = {POST("/v1/chat/completions", "application/json"), NULL};
	static const char body[] = "{\"model\":\"claude-test\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	static const char sbody[] = "{\"model\":\"claude-test\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
	struct fake f;
	fake_init(&f, KEY, 1e9, params, body);
	fake_up.body = MESSAGE("hello");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && strstr(fake_body(&f), "\"object\":\"chat.completion\"") &&
		       strstr(fake_body(&f), "\"content\":\"hello\""),
	       "chat: a chat.completion");
	tap_ok(acc_long(&f, "input_tokens") == 5 && acc_long(&f, "output_tokens") == 2, "chat: usage");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, sbody);
	fake_up.body = START TEXT("a") MDELTA STOP;
	fake_serve(&f);
	tap_ok(strstr(fake_body(&f), "chat.completion.chunk") && strstr(fake_body(&f), "data: [DONE]\n\n"),
	       "chat, stream: chunks and [DONE]");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, sbody);
	fake_up.body = START TEXT("a");
	fake_up.after = UP_BROKEN;
	fake_serve(&f);
	tap_ok(strstr(fake_body(&f), "\"error\":{") && !strstr(fake_body(&f), "[DONE]"),
	       "chat, stream: a cut stream ends with an error chunk, never [DONE]");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, body);
	fake_up.status = 429;
	fake_up.body = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow\"}}";
	fake_serve(&f);
	tap_ok(fake_status(&f) == 429 && strstr(fake_body(&f), "\"param\":null"),
	       "chat: the upstream's 429 in OpenAI's shape");
	fake_release(&f);
}

static void test_local(void)
{
	static const char *const health[] = {"REQUEST_METHOD", "GET", "REQUEST_URI", "/healthz", NULL};
	static const char *const models[] = {"REQUEST_METHOD", "GET", "REQUEST_URI", "/v1/models", NULL};
	static const char *const put[] = {"REQUEST_METHOD", "PUT", "REQUEST_URI", "/healthz", NULL};
	static const char *const none[] = {"REQUEST_METHOD", "GET", "REQUEST_URI", "/nope", NULL};
	struct fake f;
	fake_init(&f, KEY, 1e9, health, NULL);
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && fake_up.calls == 0, "healthz: answered locally");
	fake_release(&f);
	fake_init(&f, KEY, 1e9, models, NULL);
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && strstr(fake_body(&f), "\"id\":\"claude-test\"") && fake_up.calls == 0,
	       "models: the accepted models, locally");
	fake_release(&f);
	fake_init(&f, KEY, 1e9, put, NULL);
	fake_serve(&f);
	tap_ok(fake_status(&f) == 405 && fake_has_header(&f, "Allow: GET, HEAD"), "405 with Allow");
	fake_release(&f);
	fake_init(&f, KEY, 1e9, none, NULL);
	fake_serve(&f);
	tap_ok(fake_status(&f) == 404 && acc_long(&f, "status") == 404, "404, logged");
	fake_release(&f);
}

int main(void)
{
	test_summarize();
	test_stream();
	test_messages();
	test_chat();
	test_local();
	return tap_done();
}
