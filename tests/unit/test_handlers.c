/* Each handler, served whole (serve_request: route, method, body, handler, relay, access line)
 * against the in-memory client and the scripted upstream: what the client gets, what the
 * upstream was asked, the access line, and the key scrubbed from all of it. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"
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

/* ---- issue 12: today's answers (thinking first, blocks that are not text, new stop reasons) ---- */

#define BLOCK(i, json) EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":" #i ",\"content_block\":" json "}")
#define BSTOP(i) EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":" #i "}")
#define BDELTA(i, json) EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" #i ",\"delta\":" json "}")
#define THINK BLOCK(0, "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}") \
	BDELTA(0, "{\"type\":\"thinking_delta\",\"thinking\":\"SECRET THOUGHT\"}") \
	BDELTA(0, "{\"type\":\"thinking_delta\",\"thinking\":\" more\"}") \
	BDELTA(0, "{\"type\":\"signature_delta\",\"signature\":\"c2lnbmF0dXJl\"}") BSTOP(0)
#define MDELTA_R(reason) EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" reason "\"},\"usage\":{\"output_tokens\":9}}")
#define ANSWER(reason, blocks) "{\"type\":\"message\",\"id\":\"msg_1\",\"model\":\"claude-test\",\"stop_reason\":\"" reason "\"," \
	"\"content\":[" blocks "],\"usage\":{\"input_tokens\":5,\"output_tokens\":64}}"
#define THINKING_BLOCK "{\"type\":\"thinking\",\"thinking\":\"SECRET THOUGHT\",\"signature\":\"c2ln\"}"

static void test_summarize_today(void)
{
	static const char *const params[] = {POST("/summarize", "application/json"), NULL};
	struct fake f;
	fake_init(&f, KEY, 1e9, params, "{\"text\":\"hello\",\"max_tokens\":64}");
	fake_up.body = ANSWER("end_turn", THINKING_BLOCK ",{\"type\":\"redacted_thinking\",\"data\":\"ZZZ\"},"
		"{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{\"q\":\"TOOL INPUT\"}},"
		"{\"type\":\"text\",\"text\":\"the \"},{\"type\":\"server_tool_use\",\"id\":\"s\",\"name\":\"web_search\",\"input\":{}},"
		"{\"type\":\"text\",\"text\":\"answer\",\"citations\":[{\"type\":\"char_location\",\"cited_text\":\"CITED\"}]}");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && strstr(fake_body(&f), "\"summary\":\"the answer\",") &&
		       !strstr(fake_body(&f), "SECRET") && !strstr(fake_body(&f), "TOOL") &&
		       !strstr(fake_body(&f), "ZZZ") && !strstr(fake_body(&f), "CITED"),
	       "summarize: the text blocks only, never thinking, tool use or citations");
	fake_release(&f);

	/* Thinking used all of max_tokens: no text, a clear error, not an empty 200. */
	fake_init(&f, KEY, 1e9, params, "{\"text\":\"hello\",\"max_tokens\":64}");
	fake_up.body = ANSWER("max_tokens", THINKING_BLOCK);
	fake_serve(&f);
	tap_ok(fake_status(&f) == 400 && strstr(fake_body(&f), "\"type\":\"invalid_request_error\"") &&
		       strstr(fake_body(&f), "ended at max_tokens (64) before any text") &&
		       strstr(fake_body(&f), "up to 8192") && fake_has_header(&f, "x-should-retry: false"),
	       "summarize: an answer with no text at max_tokens is a 400 saying why");
	tap_ok(acc_long(&f, "output_tokens") == 64 && acc_long(&f, "status") == 400 &&
		       strstr(fake_log(&f), "ended at max_tokens (64) with no text"),
	       "summarize: the spent tokens are accounted for, and it is logged");
	fake_release(&f);

	/* Text cut at max_tokens is an answer (stop_reason says so). */
	fake_init(&f, KEY, 1e9, params, "{\"text\":\"hello\"}");
	fake_up.body = ANSWER("max_tokens", THINKING_BLOCK ",{\"type\":\"text\",\"text\":\"cut\"}");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && strstr(fake_body(&f), "\"summary\":\"cut\""),
	       "summarize: text cut at max_tokens is still a 200");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, params, "{\"text\":\"hello\"}");
	fake_up.body = ANSWER("future_reason", "{\"type\":\"text\",\"text\":\"ok\"}");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && strstr(fake_body(&f), "\"stop_reason\":\"future_reason\"") &&
		       strstr(fake_log(&f), "stop_reason 'future_reason' is new to this gateway"),
	       "summarize: an unknown stop_reason is relayed as it is and logged");
	fake_release(&f);
}

static int count_keepalives(const char *b)
{
	int n = 0;
	for (const char *p = strstr(b, ": keep-alive\n\n"); p; p = strstr(p + 1, ": keep-alive\n\n"))
		n++;
	return n;
}

static int deltas_are(const char *b, const char *text)
{
	char want[256];
	snprintf(want, sizeof want, "data: {\"text\":\"%s\"}", text);
	return strstr(b, want) != NULL;
}

static void test_stream_today(void)
{
	static const char *const sse[] = {POST("/stream", "application/json"), SSE, NULL};
	static const char *const text[] = {POST("/stream", "application/json"), NULL};
	struct fake f;
	/* Keep-alive due at once: every thinking event, which sends nothing, is followed by one. */
	fake_init(&f, KEY, 0, sse, "{\"text\":\"hi\"}");
	fake_up.body = START THINK BLOCK(1, "{\"type\":\"text\",\"text\":\"\"}") TEXT("answer") BSTOP(1)
		BLOCK(2, "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{}}")
		BDELTA(2, "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"TOOL\"}") BSTOP(2) MDELTA STOP;
	fake_serve(&f);
	const char *b = fake_body(&f);
	tap_ok(!strstr(b, "SECRET") && !strstr(b, "more") && !strstr(b, "c2ln") && !strstr(b, "TOOL") &&
		       fake_count(&f, "event: delta") == 1 && strstr(b, "data: {\"text\":\"answer\"}"),
	       "stream, SSE: thinking and tool input never reach delta events");
	tap_ok(count_keepalives(b) >= 6, "stream, SSE: keep-alive comments flow while thinking deltas are dropped (%d)",
	       count_keepalives(b));
	fake_release(&f);

	fake_init(&f, KEY, 1e9, text, "{\"text\":\"hi\"}");
	fake_up.body = START THINK TEXT("just the answer") MDELTA STOP;
	fake_serve(&f);
	tap_is_str(fake_body(&f), "just the answer", "stream, text: the answer text only");
	fake_release(&f);

	/* Thinking to max_tokens, no text: the stream ends with an error, never done. */
	fake_init(&f, KEY, 1e9, sse, "{\"text\":\"hi\",\"max_tokens\":50}");
	fake_up.body = START THINK MDELTA_R("max_tokens") STOP;
	fake_serve(&f);
	b = fake_body(&f);
	tap_ok(fake_status(&f) == 200 && !strstr(b, "event: done") &&
		       strstr(b, "event: error\nid: 1\ndata: {\"error\":{\"type\":\"invalid_request_error\","
				 "\"message\":\"The answer ended at max_tokens (50) before any text"),
	       "stream, SSE: no text at max_tokens ends with an error event");
	tap_ok(acc_is(&f, "error", "stream_failed") && acc_long(&f, "output_tokens") == 9,
	       "stream, SSE: logged as failed, tokens accounted for");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, text, "{\"text\":\"hi\",\"max_tokens\":50}");
	fake_up.body = START THINK MDELTA_R("max_tokens") STOP;
	fake_serve(&f);
	tap_ok(strncmp(fake_body(&f), "\n[error: invalid_request_error: The answer ended at max_tokens (50)", 66) == 0,
	       "stream, text: no text at max_tokens ends with the error line");
	fake_release(&f);

	/* A plain-text stream waits total_timeout at most for its first text, SSE as long as it takes
	 * (its keep-alive comments keep the web server reading). */
	fake_init(&f, KEY, 1e9, text, "{\"text\":\"hi\"}");
	f.cfg.total_timeout = 1e-9;
	fake_up.body = START THINK TEXT("late") MDELTA STOP;
	fake_serve(&f);
	tap_is_str(fake_body(&f), "\n[error: timeout_error: No text within total_timeout: the model is still thinking]\n",
		   "stream, text: no text within total_timeout is a timeout");
	fake_release(&f);
	fake_init(&f, KEY, 1e9, sse, "{\"text\":\"hi\"}");
	f.cfg.total_timeout = 1e-9;
	fake_up.body = START THINK TEXT("late") MDELTA STOP;
	fake_serve(&f);
	tap_ok(deltas_are(fake_body(&f), "late") && fake_count(&f, "event: done") == 1,
	       "stream, SSE: thinks as long as it takes");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, sse, "{\"text\":\"hi\"}");
	fake_up.body = START TEXT("a") MDELTA_R("future_reason") STOP;
	fake_serve(&f);
	tap_ok(strstr(fake_body(&f), "event: done\nid: 2\ndata: {\"stop_reason\":\"future_reason\"") &&
		       strstr(fake_log(&f), "stop_reason 'future_reason' is new to this gateway") &&
		       acc_long(&f, "status") == 200 && !acc_is(&f, "error", "stream_failed"),
	       "stream: an unknown stop_reason is relayed as it is and logged, not a failure");
	fake_release(&f);
}

/* Every kind of block today's API sends, as events: /v1/messages relays them byte for byte. */
#define TODAY_EVENTS START THINK \
	BLOCK(1, "{\"type\":\"redacted_thinking\",\"data\":\"EmwKAhgBEgy3va3pzix\"}") BSTOP(1) \
	BLOCK(2, "{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}") \
	BDELTA(2, "{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"query\\\": \\\"x\\\"}\"}") BSTOP(2) \
	BLOCK(3, "{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_1\",\"content\":[]}") BSTOP(3) \
	BLOCK(4, "{\"type\":\"text\",\"text\":\"\",\"citations\":[]}") \
	BDELTA(4, "{\"type\":\"citations_delta\",\"citation\":{\"type\":\"web_search_result_location\",\"cited_text\":\"c\",\"url\":\"u\"}}") \
	BDELTA(4, "{\"type\":\"text_delta\",\"text\":\"t\"}") BSTOP(4) \
	BLOCK(5, "{\"type\":\"compaction\",\"content\":\"\"}") BDELTA(5, "{\"type\":\"compaction_delta\",\"content\":\"summary so far\"}") BSTOP(5) \
	EV("ping", "{\"type\": \"ping\"}") MDELTA_R("pause_turn") STOP

static void test_messages_today(void)
{
	static const char *const params[] = {POST("/v1/messages", "application/json"), NULL};
	static const char sbody[] = "{\"model\":\"claude-test\",\"max_tokens\":10,\"stream\":true,\"messages\":[]}";
	static const char body[] = "{\"model\":\"claude-test\",\"max_tokens\":10,\"messages\":[]}";
	struct fake f;
	fake_init(&f, KEY, 1e9, params, sbody);
	fake_up.body = TODAY_EVENTS;
	fake_serve(&f);
	tap_is_str(fake_body(&f), ": ok\n\n" TODAY_EVENTS,
		   "messages, stream: thinking, signatures, redacted thinking, server tools, citations, "
		   "compaction byte for byte");
	fake_release(&f);

	static const char answer[] = ANSWER("end_turn", THINKING_BLOCK ",{\"type\":\"redacted_thinking\",\"data\":\"ZZZ\"},"
		"{\"type\":\"compaction\",\"content\":\"c\"},{\"type\":\"text\",\"text\":\"a\",\"citations\":[{\"type\":\"char_location\"}]}");
	fake_init(&f, KEY, 1e9, params, body);
	fake_up.body = answer;
	fake_serve(&f);
	tap_is_str(fake_body(&f), answer, "messages: an answer with every kind of block byte for byte");
	fake_release(&f);
}

/* A catalogue with a current model, and a retired one whose replacement is deprecated and long
 * past its date (so retired too): the suggestion follows the chain to the current one. */
#define CAT_FIELDS "\"context_window\": 1000, \"max_output\": 100, \"price_input\": \"1\", \"price_output\": \"1\", " \
	"\"price_cache_write_5m\": \"1\", \"price_cache_write_1h\": \"1\", \"price_cache_read\": \"1\", " \
	"\"thinking\": \"adaptive\", \"effort\": [\"low\"], \"sampling\": true, \"forced_tool_choice\": true, " \
	"\"structured_output\": true"
static const char catalogue_text[] = "{\"models\": {"
	"\"claude-test\": {\"status\": \"current\", " CAT_FIELDS "},"
	"\"m-mid\": {\"status\": \"deprecated\", \"deprecated\": \"2020-01-01\", \"retires\": \"2020-02-01\", "
	"\"replacement\": \"claude-test\", " CAT_FIELDS "},"
	"\"m-old\": {\"aliases\": [\"m-old-latest\"], \"status\": \"retired\", \"retires\": \"2019-07-21\", "
	"\"replacement\": \"m-mid\"}}}";

static void with_catalogue(struct fake *f, const char *models)
{
	char *err = NULL;
	struct buf why;
	buf_init(&why, 4096);
	if (catalogue_parse(&f->cfg.catalogue, catalogue_text, strlen(catalogue_text), "test", NULL, 0,
			    NULL, &why) < 0 ||
	    config_set(&f->cfg, "models", models, &err) < 0) {
		fprintf(stderr, "catalogue: %s %s\n", buf_cstr(&why), err ? err : "");
		abort();
	}
	f->cfg.have_catalogue = 1;
	buf_release(&why);
}

static void test_retired(void)
{
	static const char *const msgs[] = {POST("/v1/messages", "application/json"), NULL};
	static const char *const count[] = {POST("/v1/messages/count_tokens", "application/json"), NULL};
	static const char *const chat[] = {POST("/v1/chat/completions", "application/json"), NULL};
	static const char *const sum[] = {POST("/summarize", "application/json"), NULL};
	static const char want[] = "model: 'm-old-latest' was retired on 2019-07-21; use 'claude-test' instead";
	struct fake f;
	/* Not in the allowlist: the 404 comes first, saying more than a 400 would. */
	fake_init(&f, KEY, 1e9, msgs, "{\"model\":\"m-old-latest\",\"max_tokens\":10,\"messages\":[]}");
	with_catalogue(&f, "claude-test");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 404 && strstr(fake_body(&f), "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\"") &&
		       strstr(fake_body(&f), want) && fake_up.calls == 0,
	       "messages: a retired model is a 404 naming it and the suggestion, before the allowlist");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, count, "{\"model\":\"m-old-latest\",\"messages\":[]}");
	with_catalogue(&f, "claude-test m-old-latest");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 404 && strstr(fake_body(&f), want) && fake_up.calls == 0,
	       "count_tokens: the same 404, even when the allowlist names it");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, msgs, "{\"model\":\"old\",\"max_tokens\":10,\"messages\":[]}");
	with_catalogue(&f, "claude-test old=m-old");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 404 && strstr(fake_body(&f), "model: 'm-old' was retired") && fake_up.calls == 0,
	       "messages: an alias of ours to a retired model, the same 404");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, chat, "{\"model\":\"m-old-latest\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	with_catalogue(&f, "claude-test");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 404 && strstr(fake_body(&f), "\"code\":\"model_not_found\"") &&
		       strstr(fake_body(&f), "\"param\":\"model\"") && strstr(fake_body(&f), want) &&
		       fake_up.calls == 0,
	       "chat: a retired model is a 404 model_not_found naming it and the suggestion");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, chat, "{\"model\":\"claude-test\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	with_catalogue(&f, "claude-test");
	fake_up.body = MESSAGE("fine");
	fake_serve(&f);
	tap_ok(fake_status(&f) == 200 && fake_up.calls == 1, "chat: a current model passes");
	fake_release(&f);

	/* The upstream's 404 for this server's own model: a clear 502 and a log line that says so. */
	fake_init(&f, KEY, 1e9, sum, "{\"text\":\"hi\"}");
	fake_up.status = 404;
	fake_up.body = "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: claude-test\"}}";
	fake_serve(&f);
	tap_ok(fake_status(&f) == 502 && strstr(fake_body(&f), "does not serve this server's model (not_found_error: model: claude-test)") &&
		       strstr(fake_log(&f), "model not found upstream (404)"),
	       "summarize: the upstream's 404 names the model, logged as such");
	fake_release(&f);

	fake_init(&f, KEY, 1e9, msgs, "{\"model\":\"claude-test\",\"max_tokens\":10,\"messages\":[]}");
	fake_up.status = 404;
	fake_up.body = "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: claude-test\"}}";
	fake_serve(&f);
	tap_ok(fake_status(&f) == 404 && strstr(fake_log(&f), "model not found upstream (404 not_found_error: model: claude-test)"),
	       "messages: the upstream's 404 passes, logged as a model not found");
	fake_release(&f);
}

/* Issue 14: an identified request (the web server's user here; a client key is the same) gets
 * the model's own maximum output and, with "*", any current catalogue model; an anonymous one
 * keeps max_tokens_limit and the list. */
static void identified_case(const char *const *params, const char *models, const char *body,
			    int want, const char *has, const char *name)
{
	struct fake f;
	char *err = NULL;
	fake_init(&f, KEY, 1e9, params, body);
	with_catalogue(&f, models);
	if (config_set(&f.cfg, "max_tokens_limit", "50", &err) < 0)
		abort();
	fake_up.body = MESSAGE("fine");
	fake_serve(&f);
	tap_ok(fake_status(&f) == want && (!has || strstr(fake_body(&f), has)), "%s (%d %s)", name,
	       fake_status(&f), fake_body(&f));
	fake_release(&f);
}

/* GET /v1/models and /v1/models/{id} list what this client may send: with "*", an identified
 * client also sees every current catalogue model, never a retired one; an anonymous one, the list.
 * has: must be in the body once; hasnt: must not be. */
static void models_case(const char *const *params, const char *models, int want, const char *has,
			const char *hasnt, const char *name)
{
	struct fake f;
	fake_init(&f, KEY, 1e9, params, "");
	with_catalogue(&f, models);
	fake_serve(&f);
	const char *at = has ? strstr(fake_body(&f), has) : NULL;
	tap_ok(fake_status(&f) == want && (!has || (at && !strstr(at + 1, has))) &&
		       (!hasnt || !strstr(fake_body(&f), hasnt)) && fake_up.calls == 0,
	       "%s (%d %s)", name, fake_status(&f), fake_body(&f));
	fake_release(&f);
}

static void test_identified_models(void)
{
	static const char *const user[] = {"REQUEST_METHOD", "GET", "REQUEST_URI", "/v1/models",
					   "REMOTE_USER", "alice", NULL};
	static const char *const anon[] = {"REQUEST_METHOD", "GET", "REQUEST_URI", "/v1/models", NULL};
	static const char *const user_one[] = {"REQUEST_METHOD", "GET", "REQUEST_URI",
					       "/v1/models/claude-test", "REMOTE_USER", "alice", NULL};
	static const char *const anon_one[] = {"REQUEST_METHOD", "GET", "REQUEST_URI",
					       "/v1/models/claude-test", NULL};
	models_case(user, "* x=claude-test", 200, "\"id\":\"claude-test\"", "m-mid",
		    "models, user, '*': the list and every current catalogue model, no retired one");
	models_case(user, "* claude-test", 200, "\"id\":\"claude-test\"", "m-old",
		    "models, user, '*': a catalogue model the list names is listed once");
	models_case(anon, "* x=claude-test", 200, "\"id\":\"x\"", "\"id\":\"claude-test\"",
		    "models, anonymous, '*': only the list");
	models_case(user, "x=claude-test", 200, "\"id\":\"x\"", "\"id\":\"claude-test\"",
		    "models, user, without '*': only the list");
	models_case(user_one, "* x=claude-test", 200, "\"id\":\"claude-test\"", NULL,
		    "models/{id}, user, '*': a current catalogue model is found");
	models_case(anon_one, "* x=claude-test", 404, "not served here", NULL,
		    "models/{id}, anonymous, '*': the same model is a 404");
}

static void test_identified(void)
{
	static const char *const user[] = {POST("/v1/messages", "application/json"), "REMOTE_USER", "alice",
					   NULL};
	static const char *const anon[] = {POST("/v1/messages", "application/json"), NULL};
	static const char *const chat_user[] = {POST("/v1/chat/completions", "application/json"),
						"REMOTE_USER", "alice", NULL};
	static const char *const chat_anon[] = {POST("/v1/chat/completions", "application/json"), NULL};
	identified_case(user, "*", "{\"model\":\"claude-test\",\"max_tokens\":100,\"messages\":[]}", 200,
			NULL, "user: '*' opens a current catalogue model, up to its max_output over the limit");
	identified_case(user, "*", "{\"model\":\"claude-test\",\"max_tokens\":101,\"messages\":[]}", 400,
			"more than this server allows (100)", "user: above the model's max_output: 400");
	identified_case(user, "claude-sonnet-5-5", "{\"model\":\"claude-test\",\"max_tokens\":10,"
			"\"messages\":[]}", 400, "not available", "user: without '*' the list holds");
	identified_case(user, "*", "{\"model\":\"m-mid\",\"max_tokens\":10,\"messages\":[]}", 404,
			"was retired", "user: a retired model stays a 404");
	identified_case(user, "*", "{\"model\":\"claude-nope\",\"max_tokens\":10,\"messages\":[]}", 400,
			"not available", "user: a model the catalogue does not list: 400");
	identified_case(anon, "* claude-test", "{\"model\":\"claude-test\",\"max_tokens\":51,"
			"\"messages\":[]}", 400, "more than this server allows (50)",
			"anonymous: max_tokens_limit holds");
	identified_case(anon, "* x=claude-sonnet-5-5", "{\"model\":\"claude-test\",\"max_tokens\":10,"
			"\"messages\":[]}", 400, "not available", "anonymous: '*' opens nothing");
	identified_case(chat_user, "*", "{\"model\":\"claude-test\",\"max_completion_tokens\":100,"
			"\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 200, NULL,
			"chat, user: a catalogue model up to its max_output");
	identified_case(chat_user, "*", "{\"model\":\"claude-test\",\"max_completion_tokens\":101,"
			"\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400,
			"\"param\":\"max_completion_tokens\"", "chat, user: above it, 400 naming the field");
	identified_case(chat_anon, "claude-test", "{\"model\":\"claude-test\",\"max_completion_tokens\":51,"
			"\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400, "(50)",
			"chat, anonymous: max_tokens_limit holds");
}

int main(void)
{
	test_summarize();
	test_stream();
	test_messages();
	test_chat();
	test_local();
	test_summarize_today();
	test_stream_today();
	test_messages_today();
	test_retired();
	test_identified();
	test_identified_models();
	return tap_done();
}
