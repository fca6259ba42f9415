/* The Messages API's JSON: request bodies, answers, errors, stream events, key scrubbing. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic.h"
#include "catalogue.h"
#include "tap.h"

/* The helpers of the /v1/messages pass-through: strict parsing, the model splice, scrubbing
 * frames that may hold NUL bytes. */
static void test_passthrough_helpers(void)
{
	static const struct {
		const char *json;
		int ok;
		const char *name;
	} docs[] = {
		{"{\"a\": [1, 2.50, {\"b\": null}]}\n", 1, "an object with trailing blanks"},
		{"{\"a\": 1} x", 0, "text after the value"},
		{"{\"a\": 1,}", 0, "a trailing comma (json-c's lenient mode takes it)"},
		{"{\"a\": 'x'}", 0, "a single-quoted string"},
		{"{\"a\": \"\xff\"}", 0, "invalid UTF-8"},
		{"", 0, "nothing"},
		{"{\"a\": \"x\x01y\"}", 0, "a raw control character in a string"},
		{"{\"a\": \"x\ty\"}", 0, "a raw tab in a string"},
		{"{'a': 1}", 0, "a single-quoted key (json-c's strict mode takes it)"},
		{"{\"a\": NaN}", 0, "NaN (json-c's strict mode takes it)"},
		{"{\"a\": \"x\\u0001y\"}", 1, "an escaped control character"},
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		struct json_object *o = anthropic_json_parse_strict(docs[i].json, strlen(docs[i].json));
		tap_ok((o != NULL) == docs[i].ok, "strict parse: %s", docs[i].name);
		json_object_put(o);
	}
	tap_ok(anthropic_json_parse_strict("{\"a\":1}\0", 8) == NULL, "strict parse: a NUL byte");

	static const struct {
		const char *in, *out, *name;
	} swaps[] = {
		{"{\"model\":\"fast\",\"max_tokens\":5}", "{\"model\":\"claude-x\",\"max_tokens\":5}",
		 "model first"},
		{" {\n \"messages\": [{\"model\": \"inner\"}],\n \"model\" :  \"fast\" ,\"t\":1.50}\n",
		 " {\n \"messages\": [{\"model\": \"inner\"}],\n \"model\" :  \"claude-x\" ,\"t\":1.50}\n",
		 "only the top level, every other byte kept"},
		{"{\"s\":\"a \\\" model \\\\\",\"o\":{\"x\":[\"}\"]},\"mod\\u0065l\":\"fast\"}",
		 "{\"s\":\"a \\\" model \\\\\",\"o\":{\"x\":[\"}\"]},\"mod\\u0065l\":\"claude-x\"}",
		 "escapes in strings and in the key"},
	};
	for (size_t i = 0; i < sizeof swaps / sizeof swaps[0]; i++) {
		size_t n = 0;
		char *out = anthropic_replace_model(swaps[i].in, strlen(swaps[i].in), "claude-x", 8, &n);
		tap_is_str(out, swaps[i].out, "replace model: %s", swaps[i].name);
		tap_is_int(n, out ? strlen(out) : 0, "replace model: length (%s)", swaps[i].name);
		free(out);
	}
	size_t n;
	char *out = anthropic_replace_model("{\"model\":\"a\"}", 13, "q\"\\/\n", 5, &n);
	tap_is_str(out, "{\"model\":\"q\\\"\\\\/\\n\"}", "replace model: the new name is JSON-escaped");
	free(out);
	static const char *const refused[] = {
		"{\"model\":\"a\",\"model\":\"b\"}", "{\"max_tokens\":1}", "{\"model\":7}", "[\"model\"]",
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		out = anthropic_replace_model(refused[i], strlen(refused[i]), "x", 1, &n);
		tap_ok(out == NULL, "replace model refuses %s", refused[i]);
		free(out);
	}

	static const char dup[] = "{\"model\":\"a\",\"x\":{\"model\":1},\"model\":\"b\"}";
	tap_is_int(anthropic_model_members(dup, sizeof dup - 1), 2,
		   "model members: duplicates at the top level counted, nested ones not");
	tap_is_int(anthropic_model_members("{'model':\"a\"}", 13), -1,
		   "model members: single-quoted keys are beyond the scan (and refused before it)");
	tap_is_int(anthropic_model_members(" {} ", 4), 0, "model members: none");

	char frame[] = "data: {\"k\":\"sk-1\"}\0 sk-1 sk-1\n";
	anthropic_scrub_len(frame, sizeof frame - 1, "sk-1");
	tap_ok(memcmp(frame, "data: {\"k\":\"****\"}\0 **** ****\n", sizeof frame - 1) == 0,
	       "scrub_len: past a NUL byte too");
}

/* Both API routes refuse a max_tokens that is not an integer in 1..limit. */
static void test_max_tokens(void)
{
	static const struct {
		const char *json;
		enum anth_max_tokens want;
		long long n;
	} cases[] = {
		{"1", ANTH_MAX_TOKENS_OK, 1},
		{"8192", ANTH_MAX_TOKENS_OK, 8192},
		{"8193", ANTH_MAX_TOKENS_OVER, 8193},
		{"100000000", ANTH_MAX_TOKENS_OVER, 100000000},
		{"99999999999999999999", ANTH_MAX_TOKENS_OVER, 9223372036854775807LL},
		{"0", ANTH_MAX_TOKENS_INVALID, 0},
		{"-5", ANTH_MAX_TOKENS_INVALID, 0},
		{"1e8", ANTH_MAX_TOKENS_INVALID, 0},
		{"100000000.0", ANTH_MAX_TOKENS_INVALID, 0},
		{"5.0", ANTH_MAX_TOKENS_INVALID, 0},
		{"\"100000000\"", ANTH_MAX_TOKENS_INVALID, 0},
		{"\"5\"", ANTH_MAX_TOKENS_INVALID, 0},
		{"null", ANTH_MAX_TOKENS_INVALID, 0},
		{"true", ANTH_MAX_TOKENS_INVALID, 0},
		{"[5]", ANTH_MAX_TOKENS_INVALID, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct json_object *v = anthropic_json_parse_strict(cases[i].json, strlen(cases[i].json));
		long long n = 0;
		enum anth_max_tokens got = anthropic_max_tokens(v, 8192, &n);
		tap_ok(got == cases[i].want && (got == ANTH_MAX_TOKENS_INVALID || n == cases[i].n),
		       "max_tokens %s under 8192 -> %d (%lld)", cases[i].json, (int)got, n);
		json_object_put(v);
	}
}

/* The thinking members anthropic_request_body adds for a model of the catalogue. */
static char *thinking_body(enum catalogue_thinking kind, unsigned effort, long max_tokens,
			   enum anth_thinking level)
{
	char id[] = "m";
	struct catalogue_model m = {.id = id, .thinking = kind, .effort = effort};
	struct anth_request rq = {.model = "m", .max_tokens = max_tokens, .text = "x", .text_len = 1,
				  .info = &m, .thinking = level};
	char *body = anthropic_request_body(&rq, NULL);
	/* Only what follows the messages matters here. */
	char *tail = strstr(body, "}]");
	char *out = strdup(tail ? tail + 2 : body);
	free(body);
	return out;
}

static void test_thinking(void)
{
	const unsigned all = CATALOGUE_EFFORT_LOW | CATALOGUE_EFFORT_MEDIUM | CATALOGUE_EFFORT_HIGH |
			     CATALOGUE_EFFORT_XHIGH | CATALOGUE_EFFORT_MAX;
	static const struct {
		enum catalogue_thinking kind;
		int effort_all;
		long max_tokens;
		enum anth_thinking level;
		const char *want, *name;
	} cases[] = {
		{CATALOGUE_THINKING_ADAPTIVE, 1, 1024, ANTH_THINKING_OFF,
		 ",\"thinking\":{\"type\":\"disabled\"}}", "adaptive model, off: disabled"},
		{CATALOGUE_THINKING_ADAPTIVE, 1, 1024, ANTH_THINKING_MEDIUM,
		 ",\"thinking\":{\"type\":\"adaptive\"},\"output_config\":{\"effort\":\"medium\"}}",
		 "adaptive model, medium: adaptive with that effort"},
		{CATALOGUE_THINKING_ALWAYS_ON, 1, 1024, ANTH_THINKING_OFF,
		 ",\"thinking\":{\"type\":\"adaptive\"},\"output_config\":{\"effort\":\"low\"}}",
		 "always-on model, off: low effort (disabled would be a 400)"},
		{CATALOGUE_THINKING_ALWAYS_ON, 0, 1024, ANTH_THINKING_HIGH,
		 ",\"thinking\":{\"type\":\"adaptive\"}}", "a level the model refuses is left out"},
		{CATALOGUE_THINKING_EXTENDED, 0, 8192, ANTH_THINKING_MEDIUM,
		 ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":4096}}",
		 "extended model, medium: half of max_tokens as the budget"},
		{CATALOGUE_THINKING_EXTENDED, 0, 1024, ANTH_THINKING_HIGH,
		 ",\"thinking\":{\"type\":\"disabled\"}}", "extended model: a budget under 1024 is off"},
		{CATALOGUE_THINKING_EXTENDED, 0, 1024, ANTH_THINKING_OFF,
		 ",\"thinking\":{\"type\":\"disabled\"}}", "extended model, off: disabled"},
		{CATALOGUE_THINKING_NONE, 0, 1024, ANTH_THINKING_HIGH, "}", "a model that cannot think: nothing"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *got = thinking_body(cases[i].kind, cases[i].effort_all ? all : 0,
					  cases[i].max_tokens, cases[i].level);
		tap_is_str(got, cases[i].want, "thinking: %s", cases[i].name);
		free(got);
	}
	struct anth_request plain = {.model = "m", .max_tokens = 5, .text = "x", .text_len = 1,
				     .thinking = ANTH_THINKING_HIGH};
	char *body = anthropic_request_body(&plain, NULL);
	tap_ok(strstr(body, "thinking") == NULL && strstr(body, "output_config") == NULL,
	       "thinking: without a catalogue entry nothing is sent, as before");
	free(body);

	/* Thinking and signature deltas are neither text nor errors. */
	static const char *const deltas[] = {
		"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}",
		"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}",
	};
	for (size_t i = 0; i < 2; i++) {
		struct anth_event ev;
		anthropic_parse_event("content_block_delta", deltas[i], strlen(deltas[i]), &ev);
		tap_is_int(ev.kind, ANTH_EV_IGNORE, "%s delta: ignored", i ? "signature" : "thinking");
		anthropic_event_release(&ev);
	}
	const char *start = "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
			    "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}";
	struct anth_event ev;
	anthropic_parse_event("content_block_start", start, strlen(start), &ev);
	tap_is_int(ev.kind, ANTH_EV_IGNORE, "a thinking block's start: ignored");
	anthropic_event_release(&ev);
	const char *msg = "{\"type\":\"message\",\"model\":\"m\",\"content\":[{\"type\":\"thinking\","
			  "\"thinking\":\"\",\"signature\":\"s\"},{\"type\":\"text\",\"text\":\"Hi\"}],"
			  "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":1,\"output_tokens\":9}}";
	struct anth_message m;
	tap_ok(anthropic_parse_message(msg, strlen(msg), &m) == 0 && strcmp(m.text, "Hi") == 0,
	       "a message with a thinking block: its text only");
	anthropic_message_release(&m);
}

/* An event cut inside a surrogate pair must not leak into the next event's text: the process's
 * shared json-c tokener kept the half pair across its reset, and the next \u escape came out
 * with a U+FFFD before it. */
static void test_cut_surrogate(void)
{
	const char *cut = "{\"type\":\"error\",\"error\":{\"type\":\"x\",\"message\":\"\\ud83d";
	const char *next = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
			   "\"message\":\"x\\u00e9\"}}";
	struct anth_event ev;
	anthropic_parse_event("error", cut, strlen(cut), &ev);
	tap_is_int(ev.kind, ANTH_EV_INVALID, "an event cut in a surrogate pair is invalid");
	anthropic_event_release(&ev);
	anthropic_parse_event("error", next, strlen(next), &ev);
	tap_ok(ev.kind == ANTH_EV_ERROR && strcmp(ev.error_message, "x\xc3\xa9") == 0,
	       "the next event's escapes are its own: %s", ev.error_message ? ev.error_message : "?");
	anthropic_event_release(&ev);
}

int main(void)
{
	test_passthrough_helpers();
	test_max_tokens();
	test_cut_surrogate();
	test_thinking();

	struct anth_request rq = {.model = "m1", .max_tokens = 7, .system = "be brief",
				  .text = "hi \"there\"\n/", .text_len = 12, .stream = 1};
	size_t n;
	char *body = anthropic_request_body(&rq, &n);
	tap_is_str(body, "{\"model\":\"m1\",\"max_tokens\":7,\"system\":\"be brief\",\"messages\":"
			 "[{\"role\":\"user\",\"content\":\"hi \\\"there\\\"\\n/\"}],\"stream\":true}",
		   "request body");
	tap_is_int(n, strlen(body), "length");
	free(body);

	/* The body is written by hand: every byte of a text escaped as json-c escapes it. */
	char all[257]; /* all + 1 is the system prompt: bytes 1 to 255, NUL-terminated */
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	all[256] = '\0';
	struct json_object *js = json_object_new_string_len(all, 256);
	const char *want = json_object_to_json_string_ext(js, JSON_C_TO_STRING_NOSLASHESCAPE);
	struct anth_request er = {.model = "m\"1", .max_tokens = -2, .system = all + 1, .text = all,
				  .text_len = 256};
	body = anthropic_request_body(&er, &n);
	char *at = strstr(body, "\"content\":");
	tap_ok(at && strncmp(at + 10, want, strlen(want)) == 0 && strcmp(at + 10 + strlen(want), "}]}") == 0,
	       "all 256 bytes escaped as json-c escapes them");
	tap_ok(strncmp(body, "{\"model\":\"m\\\"1\",\"max_tokens\":-2,\"system\":\"\\u0001", 48) == 0,
	       "model and system escaped too");
	json_object_put(js);
	free(body);

	struct json_object *turns = json_tokener_parse(
		"[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
		"{\"role\":\"user\",\"content\":\"c\"}]");
	struct anth_request mr = {.model = "m", .max_tokens = 1, .messages = turns};
	body = anthropic_request_body(&mr, NULL);
	tap_ok(strstr(body, "\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\"") != NULL,
	       "messages passed through");
	tap_ok(strstr(body, "system") == NULL && strstr(body, "stream") == NULL, "no system, no stream");
	free(body);
	tap_ok(json_object_array_length(turns) == 3, "the caller's array is intact");
	json_object_put(turns);

	const char *msg = "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m9\","
			  "\"content\":[{\"type\":\"text\",\"text\":\"Hello\"},{\"type\":\"tool_use\",\"id\":\"t\"},"
			  "{\"type\":\"text\",\"text\":\" world\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
			  "\"usage\":{\"input_tokens\":12,\"output_tokens\":3}}";
	struct anth_message m;
	struct anth_event ev;
	tap_is_int(anthropic_parse_message(msg, strlen(msg), &m), 0, "message parses");
	tap_is_str(m.text, "Hello world", "text blocks joined, others skipped");
	tap_is_str(m.model, "m9", "model");
	tap_is_str(m.stop_reason, "end_turn", "stop_reason");
	tap_is_int(m.usage.input_tokens, 12, "input tokens");
	tap_is_int(m.usage.output_tokens, 3, "output tokens");
	anthropic_message_release(&m);
	/* Issue 10 item 11: counts past any real answer (2^64 - 1, 1e30, negative) are clamped, so no
	 * conversion overflows and sums of several stay in a long. */
	static const struct {
		const char *usage;
		long in, out;
	} big[] = {
		{"\"input_tokens\":18446744073709551615,\"output_tokens\":9223372036854775807", ANTH_TOKENS_MAX, ANTH_TOKENS_MAX},
		{"\"input_tokens\":1e30,\"output_tokens\":99999999999999999999999", ANTH_TOKENS_MAX, ANTH_TOKENS_MAX},
		{"\"input_tokens\":-5,\"output_tokens\":-1e30", 0, 0},
		{"\"input_tokens\":7.0,\"output_tokens\":\"3\"", 7, -1},
	};
	for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
		char ubody[512];
		snprintf(ubody, sizeof ubody, "{\"type\":\"message\",\"content\":[],\"usage\":{%s}}", big[i].usage);
		tap_is_int(anthropic_parse_message(ubody, strlen(ubody), &m), 0, "message with usage {%s}", big[i].usage);
		tap_ok(m.usage.input_tokens == big[i].in && m.usage.output_tokens == big[i].out,
		       "usage {%s} -> %ld, %ld", big[i].usage, m.usage.input_tokens, m.usage.output_tokens);
		anthropic_message_release(&m);
		snprintf(ubody, sizeof ubody, "{\"type\":\"message_delta\",\"delta\":{},\"usage\":{%s}}", big[i].usage);
		anthropic_parse_event("message_delta", ubody, strlen(ubody), &ev);
		tap_ok(ev.input_tokens == big[i].in && ev.output_tokens == big[i].out,
		       "message_delta usage {%s} -> %ld, %ld", big[i].usage, ev.input_tokens, ev.output_tokens);
		anthropic_event_release(&ev);
	}
	tap_is_int(anthropic_parse_message("{\"type\":\"message\",\"content\":[", 30, &m), -1, "truncated JSON");
	tap_is_int(anthropic_parse_message("{\"type\":\"error\"}", 16, &m), -1, "not a message");
	tap_is_int(anthropic_parse_message("<html>", 6, &m), -1, "not JSON");

	char *type, *text;
	const char *err = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
	tap_is_int(anthropic_parse_error(err, strlen(err), &type, &text), 0, "error parses");
	tap_is_str(type, "overloaded_error", "error type");
	tap_is_str(text, "Overloaded", "error message");
	free(type);
	free(text);
	tap_is_int(anthropic_parse_error("nope", 4, &type, &text), -1, "error body not JSON");

	const char *d = "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"T\\u00e9\"}}";
	anthropic_parse_event("content_block_delta", d, strlen(d), &ev);
	tap_is_int(ev.kind, ANTH_EV_TEXT, "text delta");
	tap_ok(ev.text_len == 3 && memcmp(ev.text, "T\xc3\xa9", 3) == 0, "delta text decoded");
	anthropic_event_release(&ev);
	d = "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\"}}";
	anthropic_parse_event("content_block_delta", d, strlen(d), &ev);
	tap_is_int(ev.kind, ANTH_EV_IGNORE, "tool input delta is not text");
	anthropic_event_release(&ev);
	d = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":41}}";
	anthropic_parse_event("message_delta", d, strlen(d), &ev);
	tap_ok(ev.kind == ANTH_EV_MESSAGE_DELTA && ev.output_tokens == 41 && ev.input_tokens == -1 &&
		       strcmp(ev.stop_reason, "max_tokens") == 0, "message_delta");
	anthropic_event_release(&ev);
	d = "{\"type\":\"message_start\",\"message\":{\"id\":\"x\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}";
	anthropic_parse_event("message_start", d, strlen(d), &ev);
	tap_ok(ev.kind == ANTH_EV_MESSAGE_START && ev.input_tokens == 9, "message_start");
	anthropic_event_release(&ev);
	anthropic_parse_event("message_stop", "{\"type\":\"message_stop\"}", 23, &ev);
	tap_is_int(ev.kind, ANTH_EV_MESSAGE_STOP, "message_stop");
	anthropic_event_release(&ev);
	d = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
	anthropic_parse_event("error", d, strlen(d), &ev);
	tap_ok(ev.kind == ANTH_EV_ERROR && strcmp(ev.error_type, "overloaded_error") == 0, "error event");
	anthropic_event_release(&ev);
	anthropic_parse_event("ping", "{\"type\": \"ping\"}", 16, &ev);
	tap_is_int(ev.kind, ANTH_EV_IGNORE, "ping ignored");
	anthropic_event_release(&ev);
	anthropic_parse_event("future_event", "not json", 8, &ev);
	tap_is_int(ev.kind, ANTH_EV_IGNORE, "unknown event ignored unparsed");
	anthropic_event_release(&ev);
	anthropic_parse_event("content_block_delta", "{\"type\":\"content_block_de", 25, &ev);
	tap_is_int(ev.kind, ANTH_EV_INVALID, "truncated data is invalid");
	anthropic_event_release(&ev);
	anthropic_parse_event("message_stop", "{\"type\":\"ping\"}", 15, &ev);
	tap_is_int(ev.kind, ANTH_EV_INVALID, "data type must match the event name");
	anthropic_event_release(&ev);

	char s[] = "invalid x-api-key: sk-secret-123 (sk-secret-123)";
	anthropic_scrub(s, "sk-secret-123");
	tap_ok(strstr(s, "sk-secret") == NULL, "key scrubbed everywhere: %s", s);
	anthropic_scrub(s, NULL);
	anthropic_scrub(s, "");
	tap_ok(1, "scrub tolerates no key");
	return tap_done();
}
