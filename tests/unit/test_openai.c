/* OpenAI Chat Completions <-> Messages: request checks and translation, answers, streams. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "openai.h"
#include "tap.h"

static const struct openai_limits lim = {.max_tokens = 512, .max_tokens_limit = 8192};

/* The Messages body a Chat Completions body becomes (caller frees), or NULL with *e set. */
static char *translate_on(const char *body, const struct catalogue_model *info,
			  struct openai_error *e, struct openai_request *keep);

/* translate_on with no catalogue. */
static char *translate(const char *body, struct openai_error *e, struct openai_request *keep)
{
	return translate_on(body, NULL, e, keep);
}

static void test_requests(void)
{
	struct openai_error e;
	struct openai_request rq;
	char *out = translate(
		"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
		"{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"No \"},"
		"{\"type\":\"text\",\"text\":\"lists.\"}]},{\"role\":\"user\",\"content\":\"Hi\",\"name\":\"ann\"},"
		"{\"role\":\"assistant\",\"content\":\"Hello.\"},{\"role\":\"user\",\"content\":"
		"[{\"type\":\"text\",\"text\":\"\"},{\"type\":\"text\",\"text\":\"Name a prime.\"}]}],"
		"\"temperature\":0.20,\"top_p\":1,\"stop\":\"END\",\"user\":\"u\",\"seed\":1,"
		"\"frequency_penalty\":0.5,\"presence_penalty\":0,\"parallel_tool_calls\":true,\"store\":false,"
		"\"metadata\":{},\"service_tier\":\"auto\",\"logit_bias\":{},\"n\":1,\"tools\":[],"
		"\"tool_choice\":\"none\",\"response_format\":{\"type\":\"text\"},\"logprobs\":false,"
		"\"top_logprobs\":null,\"functions\":null,\"modalities\":[\"text\"]}",
		&e, &rq);
	tap_is_str(out,
		   "{\"model\":\"claude-x\",\"max_tokens\":512,\"system\":\"Be brief.\\n\\nNo lists.\","
		   "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":"
		   "\"Hello.\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Name a prime.\"}]}],"
		   "\"temperature\":0.20,\"top_p\":1,\"stop_sequences\":[\"END\"]}",
		   "a full request: system joined, turns kept, harmless fields dropped, numbers as sent");
	if (!out)
		tap_diag("refused: %s (%s)", e.message, e.param);
	tap_is_str(rq.model, "gpt-4o", "the requested model is kept for the answer");
	tap_ok(!rq.stream && !rq.include_usage, "not streamed");
	openai_request_release(&rq);
	free(out);

	out = translate("{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
			"\"max_tokens\":100,\"max_completion_tokens\":7,\"stop\":[\"a\",\"b\"],"
			"\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
			&e, &rq);
	tap_is_str(out,
		   "{\"model\":\"claude-x\",\"max_tokens\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		   "\"stop_sequences\":[\"a\",\"b\"],\"stream\":true}",
		   "streamed; max_completion_tokens wins over max_tokens; stop array");
	tap_ok(rq.stream && rq.include_usage, "stream with include_usage");
	openai_request_release(&rq);
	free(out);

	out = translate("{\"model\":\"m\",\"max_tokens\":8192,\"temperature\":1,\"stop\":null,"
			"\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
			&e, NULL);
	tap_ok(out && strstr(out, "\"max_tokens\":8192") && strstr(out, "\"temperature\":1") &&
		       !strstr(out, "stop"),
	       "max_tokens at the limit, temperature 1, stop null");
	free(out);

	static const struct {
		const char *extra; /* fields added to a valid request */
		const char *param, *code;
	} bad[] = {
		{"\"n\":2", "n", "unsupported_parameter"},
		{"\"n\":0", "n", "unsupported_parameter"},
		{"\"tools\":[{\"type\":\"function\"}]", "tools.[0].function.name", NULL},
		{"\"tools\":[{\"type\":\"custom\",\"custom\":{}}]", "tools.[0].type", "unsupported_value"},
		{"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]",
		 "tools.[0].function.name", NULL},
		{"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]",
		 "tools.[0].function", NULL},
		{"\"tools\":{}", "tools", NULL},
		{"\"tool_choice\":\"any\"", "tool_choice", "unsupported_value"},
		{"\"tool_choice\":{\"type\":\"function\"}", "tool_choice", "unsupported_value"},
		{"\"tool_choice\":\"required\"", "tool_choice", NULL},
		{"\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", "tool_choice",
		 NULL},
		{"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
		 "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}", "tool_choice", NULL},
		{"\"parallel_tool_calls\":1", "parallel_tool_calls", NULL},
		{"\"functions\":[{\"name\":\"f\"}]", "functions", "unsupported_parameter"},
		{"\"function_call\":\"auto\"", "function_call", "unsupported_parameter"},
		{"\"response_format\":{\"type\":\"yaml\"}", "response_format", "unsupported_value"},
		{"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{}}",
		 "response_format.json_schema", NULL},
		{"\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"n\",\"schema\":1}}",
		 "response_format.json_schema", NULL},
		{"\"reasoning_effort\":\"huge\"", "reasoning_effort", "unsupported_value"},
		{"\"logprobs\":true", "logprobs", "unsupported_parameter"},
		{"\"top_logprobs\":0", "top_logprobs", "unsupported_parameter"},
		{"\"logit_bias\":{\"1\":5}", "logit_bias", "unsupported_parameter"},
		{"\"modalities\":[\"text\",\"audio\"]", "modalities", "unsupported_parameter"},
		{"\"audio\":{}", "audio", "unsupported_parameter"},
		{"\"temperature\":1.2", "temperature", "unsupported_value"},
		{"\"temperature\":-0.1", "temperature", "unsupported_value"},
		{"\"temperature\":\"hot\"", "temperature", NULL},
		{"\"top_p\":2", "top_p", "unsupported_value"},
		{"\"max_tokens\":8193", "max_tokens", "invalid_value"},
		{"\"max_completion_tokens\":9000", "max_completion_tokens", "invalid_value"},
		{"\"max_tokens\":0", "max_tokens", NULL},
		{"\"max_tokens\":1.5", "max_tokens", NULL},
		{"\"max_tokens\":1e8", "max_tokens", NULL},
		{"\"max_tokens\":100000000.0", "max_tokens", NULL},
		{"\"max_tokens\":\"100000000\"", "max_tokens", NULL},
		{"\"max_completion_tokens\":1e3", "max_completion_tokens", NULL},
		{"\"max_tokens\":99999999999999999999999", "max_tokens", "invalid_value"},
		{"\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop", NULL},
		{"\"stop\":[1]", "stop", NULL},
		{"\"stream\":\"yes\"", "stream", NULL},
		{"\"stream_options\":{\"include_usage\":true}", "stream_options", NULL},
		{"\"stream\":true,\"stream_options\":{\"include_usage\":1}", "stream_options.include_usage", NULL},
		{"\"foo\":1", "foo", "unknown_parameter"},
		{"\"foo\":null", "foo", "unknown_parameter"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char body[512];
		snprintf(body, sizeof body,
			 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s}",
			 bad[i].extra);
		out = translate(body, &e, NULL);
		int code_ok = bad[i].code ? e.code && strcmp(e.code, bad[i].code) == 0 : e.code == NULL;
		tap_ok(!out && e.kind == ERR_BAD_REQUEST && strcmp(e.param, bad[i].param) == 0 && code_ok &&
			       strstr(e.message, bad[i].param) != NULL,
		       "refused %s: param %s (%s)", bad[i].extra, e.param, e.message);
		free(out);
	}

	static const struct {
		const char *messages, *param, *name;
	} bad_turns[] = {
		{"[]", "messages", "no messages"},
		{"\"hi\"", "messages", "messages not an array"},
		{"[{\"role\":\"system\",\"content\":\"s\"}]", "messages", "only a system turn"},
		{"[{\"content\":\"x\"}]", "messages.[0].role", "no role"},
		{"[\"x\"]", "messages.[0].role", "a turn that is not an object"},
		{"[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"tool\",\"content\":\"r\"}]",
		 "messages.[1].tool_call_id", "a tool turn without its call's id"},
		{"[{\"role\":\"function\",\"content\":\"r\"}]", "messages.[0].role", "a function turn"},
		{"[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":null,"
		 "\"tool_calls\":[{\"id\":\"t\"}]}]",
		 "messages.[1].tool_calls.[0]", "a tool call without a function"},
		{"[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":null,"
		 "\"tool_calls\":[{\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\","
		 "\"arguments\":\"[1]\"}}]}]",
		 "messages.[1].tool_calls.[0].function.arguments", "arguments that are not an object"},
		{"[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]",
		 "messages.[0].tool_calls", "tool calls on a user turn"},
		{"[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
		 "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]",
		 "messages.[1].content.[0].type", "an image in an assistant turn"},
		{"[{\"role\":\"user\"}]", "messages.[0].content", "no content"},
		{"[{\"role\":\"user\",\"content\":5}]", "messages.[0].content", "content a number"},
		{"[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_url\","
		 "\"image_url\":{\"url\":\"http://x/y.png\"}}]}]",
		 "messages.[0].content.[1].image_url.url", "an image over plain http"},
		{"[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{}}]}]",
		 "messages.[0].content.[0].type", "an audio part"},
		{"[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{}}]}]",
		 "messages.[0].content.[0].type", "a file part"},
		{"[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]", "messages.[0].content.[0].type",
		 "a part without a type"},
		{"[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":7}]}]",
		 "messages.[0].content.[0].text", "a text part without text"},
		{"[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\"}]},{\"role\":\"user\",\"content\":\"x\"}]",
		 "messages.[0].content", "an image in a system turn"},
	};
	for (size_t i = 0; i < sizeof bad_turns / sizeof bad_turns[0]; i++) {
		char body[512];
		snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":%s}", bad_turns[i].messages);
		out = translate(body, &e, NULL);
		tap_ok(!out && strcmp(e.param, bad_turns[i].param) == 0, "refused: %s (param %s: %s)",
		       bad_turns[i].name, e.param, e.message);
		free(out);
	}

	static const struct {
		const char *body, *param, *name;
	} bad_bodies[] = {
		{"{\"model\":\"m\",", "", "malformed JSON"},
		{"[1]", "", "not an object"},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\"}]}", "", "invalid UTF-8"},
		{"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model", "no model"},
		{"{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model", "empty model"},
		{"{\"model\":\"m\"}", "messages", "no messages"},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\x01\"}]}", "",
		 "a raw control character in a string"},
		{"{'model':\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "",
		 "a single-quoted key"},
	};
	for (size_t i = 0; i < sizeof bad_bodies / sizeof bad_bodies[0]; i++) {
		out = translate(bad_bodies[i].body, &e, NULL);
		tap_ok(!out && e.kind == ERR_BAD_REQUEST && strcmp(e.param, bad_bodies[i].param) == 0,
		       "refused: %s (%s)", bad_bodies[i].name, e.message);
		free(out);
	}

	/* A body whose tree would cost hundreds of times its size: 413, before json-c builds it. */
	struct buf big;
	buf_init(&big, 4 << 20);
	BUF_MUST(buf_appends(&big, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
				  "\"metadata\":["));
	for (int i = 0; i < 1000000; i++)
		BUF_MUST(buf_appends(&big, "{},"));
	BUF_MUST(buf_appends(&big, "{}]}"));
	out = translate(buf_cstr(&big), &e, NULL);
	tap_ok(!out && e.kind == ERR_TOO_LARGE && strstr(e.message, "too many JSON values"),
	       "refused: a 3 MB [{},{},...] -> 413 (%s)", e.message);
	free(out);
	buf_release(&big);
}

static void test_names(void)
{
	static const struct {
		const char *stop, *finish;
	} finish[] = {
		{"end_turn", "stop"},	   {"stop_sequence", "stop"},
		{"max_tokens", "length"},  {"tool_use", "tool_calls"},
		{"refusal", "content_filter"}, {"pause_turn", "stop"},
		{"model_context_window_exceeded", "length"}, {"something_new", "stop"},
		{NULL, "stop"},
	};
	for (size_t i = 0; i < sizeof finish / sizeof finish[0]; i++)
		tap_is_str(openai_finish_reason(finish[i].stop), finish[i].finish, "finish_reason for %s",
			   finish[i].stop ? finish[i].stop : "none");
	tap_is_str(openai_error_type("overloaded_error"), "server_error", "overloaded -> server_error");
	tap_is_str(openai_error_type("rate_limit_error"), "rate_limit_exceeded", "rate limit");
	tap_is_str(openai_error_type("invalid_request_error"), "invalid_request_error", "invalid request");
	tap_is_str(openai_error_type("timeout_error"), "timeout", "timeout");
	tap_is_str(openai_error_type(NULL), "server_error", "none");

	struct json_object *o = openai_error_body("bad \"n\"", "invalid_request_error", "n", NULL);
	tap_is_str(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
		   "{\"error\":{\"message\":\"bad \\\"n\\\"\",\"type\":\"invalid_request_error\",\"param\":\"n\","
		   "\"code\":null}}",
		   "error body: message, type, param, code");
	json_object_put(o);
	o = openai_error_body("m", "server_error", "", "");
	tap_is_str(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
		   "{\"error\":{\"message\":\"m\",\"type\":\"server_error\",\"param\":null,\"code\":null}}",
		   "error body: empty param and code are null");
	json_object_put(o);
}

static void test_completion(void)
{
	const char *msg = "{\"id\":\"msg_01abc\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\","
			  "\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\"},{\"type\":\"text\",\"text\":\"Hello\"},"
			  "{\"type\":\"text\",\"text\":\", world\"}],\"stop_reason\":\"max_tokens\",\"stop_sequence\":null,"
			  "\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":3,"
			  "\"cache_read_input_tokens\":4,\"output_tokens\":5}}";
	struct openai_usage u;
	size_t n;
	struct openai_request rq = {.model = "gpt-4o"};
	char *out = openai_completion(msg, strlen(msg), &rq, 1767225600, &u, &n);
	tap_is_str(out,
		   "{\"id\":\"chatcmpl-01abc\",\"object\":\"chat.completion\",\"created\":1767225600,"
		   "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		   "\"content\":\"Hello, world\",\"refusal\":null},\"finish_reason\":\"length\",\"logprobs\":null}],"
		   "\"usage\":{\"prompt_tokens\":17,\"completion_tokens\":5,\"total_tokens\":22,"
		   "\"prompt_tokens_details\":{\"cached_tokens\":4}}}",
		   "a chat.completion: text joined, thinking skipped, cache tokens in the prompt count");
	tap_is_int(n, out ? strlen(out) : 0, "its length");
	tap_ok(u.input_tokens == 10 && u.output_tokens == 5 && u.cache_read_tokens == 4, "usage read");
	free(out);
	const char *plain = "{\"id\":\"msg_2\",\"type\":\"message\",\"content\":[],\"stop_reason\":\"end_turn\","
			    "\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}";
	out = openai_completion(plain, strlen(plain), &rq, 1, &u, &n);
	tap_ok(out && strstr(out, "\"content\":\"\"") && strstr(out, "\"finish_reason\":\"stop\"") &&
		       strstr(out, "{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}") &&
		       !strstr(out, "prompt_tokens_details"),
	       "an empty answer; no cache details without cache reads");
	free(out);
	tap_ok(openai_completion("{\"type\":\"error\"}", 16, &rq, 1, &u, &n) == NULL, "not a message");
	tap_ok(openai_completion("{\"type\":\"message\",\"content\":[", 29, &rq, 1, &u, &n) == NULL,
	       "truncated");
}

/* Feeds one upstream event; returns what it became. */
static enum openai_step feed(struct openai_stream *s, const char *name, const char *data, struct buf *out)
{
	struct anth_event ev;
	anthropic_parse_event(name, data, strlen(data), &ev);
	enum openai_step step = openai_stream_event(s, name, data, strlen(data), &ev, out);
	anthropic_event_release(&ev);
	return step;
}

static void test_stream(int include_usage)
{
	const char *with = include_usage ? "with usage" : "without usage";
	struct openai_stream s;
	struct buf out;
	buf_init(&out, 1 << 20);
	struct openai_request rq = {.model = "gpt-4o", .include_usage = include_usage};
	openai_stream_init(&s, &rq, 1767225600);
	const char *u = include_usage ? ",\"usage\":null" : "";
	char want[1024];

	tap_is_int(feed(&s, "message_start",
			"{\"type\":\"message_start\",\"message\":{\"id\":\"msg_7\",\"type\":\"message\",\"content\":[],"
			"\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}",
			&out),
		   OPENAI_GO_ON, "%s: message_start", with);
	snprintf(want, sizeof want,
		 "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,"
		 "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
		 "\"logprobs\":null,\"finish_reason\":null}]%s}\n\n",
		 u);
	tap_is_str(buf_cstr(&out), want, "%s: the role chunk first", with);
	buf_reset(&out);
	feed(&s, "content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
		 "{\"type\":\"text\",\"text\":\"\"}}", &out);
	tap_is_int(out.len, 0, "%s: content_block_start says nothing", with);
	feed(&s, "ping", "{\"type\": \"ping\"}", &out);
	tap_is_str(buf_cstr(&out), ": ping\n\n", "%s: ping -> a comment", with);
	buf_reset(&out);
	feed(&s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
		 "{\"type\":\"text_delta\",\"text\":\"Hi \\\"you\\\"\\n\"}}", &out);
	snprintf(want, sizeof want,
		 "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,"
		 "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \\\"you\\\"\\n\"},"
		 "\"logprobs\":null,\"finish_reason\":null}]%s}\n\n",
		 u);
	tap_is_str(buf_cstr(&out), want, "%s: a text delta", with);
	buf_reset(&out);
	feed(&s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":"
		 "{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}", &out);
	feed(&s, "future_event", "{\"type\":\"future_event\"}", &out);
	feed(&s, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}", &out);
	tap_is_int(out.len, 0, "%s: other deltas, block stops and unknown events say nothing", with);
	tap_is_int(feed(&s, "message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
			"\"stop_sequence\"},\"usage\":{\"output_tokens\":6}}", &out),
		   OPENAI_GO_ON, "%s: message_delta", with);
	tap_is_int(out.len, 0, "%s: the finish waits for message_stop", with);
	tap_is_int(feed(&s, "message_stop", "{\"type\":\"message_stop\"}", &out), OPENAI_DONE,
		   "%s: message_stop ends it", with);
	char usage[256] = "";
	if (include_usage)
		snprintf(usage, sizeof usage,
			 "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,"
			 "\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":14,"
			 "\"completion_tokens\":6,\"total_tokens\":20,\"prompt_tokens_details\":"
			 "{\"cached_tokens\":2}}}\n\n");
	snprintf(want, sizeof want,
		 "data: {\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,"
		 "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
		 "\"finish_reason\":\"stop\"}]%s}\n\n%sdata: [DONE]\n\n",
		 u, usage);
	tap_is_str(buf_cstr(&out), want, "%s: finish chunk, usage chunk when asked, [DONE]", with);
	tap_ok(s.finished && s.usage.input_tokens == 12 && s.usage.output_tokens == 6,
	       "%s: input tokens from message_start, output from message_delta", with);
	openai_stream_release(&s);
	buf_release(&out);
}

static void test_stream_failures(void)
{
	struct openai_stream s;
	struct buf out;
	buf_init(&out, 1 << 16);
	struct openai_request rq = {.model = "m", .include_usage = 1};
	openai_stream_init(&s, &rq, 1);
	struct anth_event ev;
	const char *d = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
	anthropic_parse_event("error", d, strlen(d), &ev);
	tap_is_int(openai_stream_event(&s, "error", d, strlen(d), &ev, &out), OPENAI_FAILED,
		   "an error event fails");
	tap_ok(out.len == 0 && !s.finished && strcmp(ev.error_type, "overloaded_error") == 0,
	       "and writes nothing itself");
	anthropic_event_release(&ev);
	tap_is_int(feed(&s, "content_block_delta", "{\"type\":\"content_block_delta\",\"delta\":", &out),
		   OPENAI_INVALID, "a truncated event is invalid");
	tap_is_int(openai_stream_error(&out, "overloaded_error", "Overloaded"), 0, "error frame");
	tap_is_str(buf_cstr(&out),
		   "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\",\"param\":null,"
		   "\"code\":\"overloaded_error\"}}\n\n",
		   "a failed stream ends with data: {error} and no [DONE]");
	openai_stream_release(&s);
	buf_release(&out);
}


/* ---- tools, images, structured output, reasoning: each mapping, and each refusal ---- */

/* Catalogue entries shaped like the current models'. */
static char cat_id_a[] = "claude-a", cat_id_o[] = "claude-o", cat_id_e[] = "claude-e", cat_id_n[] = "claude-n",
	    cat_id_t[] = "claude-t";
static const struct catalogue_model adaptive = {
	.id = cat_id_a, .thinking = CATALOGUE_THINKING_ADAPTIVE,
	.effort = CATALOGUE_EFFORT_LOW | CATALOGUE_EFFORT_MEDIUM | CATALOGUE_EFFORT_HIGH,
	.sampling = 0, .forced_tool_choice = 1, .structured_output = 1,
};
static const struct catalogue_model always_on = {
	.id = cat_id_o, .thinking = CATALOGUE_THINKING_ALWAYS_ON,
	.effort = CATALOGUE_EFFORT_LOW | CATALOGUE_EFFORT_MEDIUM | CATALOGUE_EFFORT_HIGH |
		  CATALOGUE_EFFORT_XHIGH | CATALOGUE_EFFORT_MAX,
	.sampling = 0, .forced_tool_choice = 0, .structured_output = 1,
};
static const struct catalogue_model extended = {
	.id = cat_id_e, .thinking = CATALOGUE_THINKING_EXTENDED, .effort = 0,
	.sampling = 1, .forced_tool_choice = 1, .structured_output = 0,
};
static const struct catalogue_model no_force = {
	.id = cat_id_n, .thinking = CATALOGUE_THINKING_ADAPTIVE, .effort = CATALOGUE_EFFORT_LOW,
	.sampling = 1, .forced_tool_choice = 0, .structured_output = 0,
};
static const struct catalogue_model thinkless = {
	.id = cat_id_t, .thinking = CATALOGUE_THINKING_NONE, .sampling = 1, .forced_tool_choice = 1,
	.structured_output = 1,
};

/* The Messages body for body on the model info (NULL: no catalogue), or NULL with *e set; rq
 * kept when keep is not NULL. */
static char *translate_on(const char *body, const struct catalogue_model *info,
			  struct openai_error *e, struct openai_request *keep)
{
	struct openai_request rq;
	if (openai_parse_request(body, strlen(body), &lim, &rq, e) < 0)
		return NULL;
	if (openai_apply_model(&rq, info, e) < 0) {
		openai_request_release(&rq);
		return NULL;
	}
	size_t n;
	char *out = openai_messages_body(&rq, "claude-x", &n);
	if (keep)
		*keep = rq;
	else
		openai_request_release(&rq);
	return out;
}

#define TOOL_F "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\"," \
	       "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}," \
	       "\"strict\":true}}"
#define TOOL_G "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}"
#define USER "{\"role\":\"user\",\"content\":\"x\"}"

static void test_tool_requests(void)
{
	struct openai_error e;
	char *out = translate_on("{\"model\":\"m\",\"messages\":[" USER "],\"tools\":[" TOOL_F "," TOOL_G "],"
				 "\"tool_choice\":\"auto\",\"parallel_tool_calls\":false}", &adaptive, &e, NULL);
	tap_is_str(out,
		   "{\"model\":\"claude-x\",\"max_tokens\":512,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		   "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":{\"type\":"
		   "\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}},\"strict\":true},{\"name\":"
		   "\"get_time\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],\"tool_choice\":"
		   "{\"type\":\"auto\",\"disable_parallel_tool_use\":true},\"thinking\":{\"type\":\"disabled\"}}",
		   "tools -> input_schema (none: an empty object schema), auto without parallel calls, "
		   "thinking off");
	free(out);
	static const struct {
		const char *choice, *want;
	} choices[] = {
		{"\"none\"", "\"tool_choice\":{\"type\":\"none\"}"},
		{"\"required\"", "\"tool_choice\":{\"type\":\"any\"}"},
		{"{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}",
		 "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_time\"}"},
		{"null", NULL},
	};
	for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
		char body[1024];
		snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[" USER "],\"tools\":[" TOOL_G "],"
			 "\"tool_choice\":%s}", choices[i].choice);
		out = translate_on(body, &adaptive, &e, NULL);
		tap_ok(out && (choices[i].want ? strstr(out, choices[i].want) != NULL
					       : strstr(out, "tool_choice") == NULL),
		       "tool_choice %s -> %s", choices[i].choice, choices[i].want ? choices[i].want : "none sent");
		free(out);
	}
	out = translate_on("{\"model\":\"m\",\"messages\":[" USER "],\"tool_choice\":\"auto\",\"tools\":[]}",
			   &adaptive, &e, NULL);
	tap_ok(out && !strstr(out, "tool"), "no tools: auto and [] send nothing");
	free(out);
	out = translate_on("{\"model\":\"m\",\"messages\":[" USER "],\"tools\":[" TOOL_G "],"
			   "\"tool_choice\":\"required\"}", &no_force, &e, NULL);
	tap_ok(!out && strcmp(e.param, "tool_choice") == 0 && strstr(e.message, "forced"),
	       "a forced tool_choice on a model that refuses it: 400 naming tool_choice (%s)", e.message);
	free(out);
	out = translate_on("{\"model\":\"m\",\"messages\":[" USER "],\"tools\":[" TOOL_G "],"
			   "\"tool_choice\":\"required\"}", NULL, &e, NULL);
	tap_ok(out && strstr(out, "{\"type\":\"any\"}"), "without a catalogue, required is sent as any");
	free(out);
}

static void test_tool_turns(void)
{
	struct openai_error e;
	struct openai_request rq;
	char *out = translate_on(
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
		"{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":["
		"{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
		"\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
		"{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
		"\"{\\\"city\\\":\\\"Rome\\\"}\"}}]},"
		"{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"},"
		"{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"rain\"}]},"
		"{\"role\":\"user\",\"content\":\"Thanks\"}],\"tools\":[" TOOL_F "],\"reasoning_effort\":\"low\"}",
		&adaptive, &e, &rq);
	tap_is_str(out,
		   "{\"model\":\"claude-x\",\"max_tokens\":512,\"messages\":[{\"role\":\"user\",\"content\":"
		   "\"Weather in Paris and Rome?\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
		   "\"text\":\"Checking.\"},{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_weather\","
		   "\"input\":{\"city\":\"Paris\"}},{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":"
		   "\"get_weather\",\"input\":{\"city\":\"Rome\"}}]},{\"role\":\"user\",\"content\":[{\"type\":"
		   "\"tool_result\",\"tool_use_id\":\"call_1\",\"content\":\"sunny\"},{\"type\":\"tool_result\","
		   "\"tool_use_id\":\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"rain\"}]},{\"type\":"
		   "\"text\",\"text\":\"Thanks\"}]}],\"tools\":[{\"name\":\"get_weather\",\"description\":"
		   "\"Weather\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
		   "\"string\"}}},\"strict\":true}],\"thinking\":{\"type\":\"disabled\"}}",
		   "a parallel round trip: tool_calls -> tool_use, consecutive tool turns (and the user's "
		   "words after them) -> one user turn; tool results back: no thinking though asked");
	if (!out)
		tap_diag("refused: %s (%s)", e.message, e.param);
	else
		tap_ok(rq.ends_with_results && !rq.show_reasoning, "the request hands results back");
	if (out)
		openai_request_release(&rq);
	free(out);
	out = translate_on("{\"model\":\"m\",\"messages\":[" USER ",{\"role\":\"assistant\",\"content\":null,"
			   "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
			   "\"arguments\":\"\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"ok\"}]}",
			   &always_on, &e, NULL);
	tap_ok(!out && strcmp(e.param, "messages") == 0 && strstr(e.message, "always thinks"),
	       "tool results back on a model that always thinks: 400 naming messages (%s)", e.message);
	free(out);
	out = translate_on("{\"model\":\"m\",\"messages\":[" USER ",{\"role\":\"assistant\",\"content\":null,"
			   "\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\","
			   "\"arguments\":\"\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"ok\"}]}",
			   NULL, &e, NULL);
	tap_ok(out && strstr(out, "\"content\":[{\"type\":\"tool_use\",\"id\":\"c\",\"name\":\"f\",\"input\":{}}]"),
	       "empty arguments -> input {}; content null -> tool_use blocks only");
	free(out);
}

static void test_images(void)
{
	struct openai_error e;
	char *out = translate_on("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
				 "{\"type\":\"text\",\"text\":\"What is this?\"},"
				 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0K\","
				 "\"detail\":\"low\"}},"
				 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.org/cat.jpg\"}}]}]}",
				 NULL, &e, NULL);
	tap_is_str(out,
		   "{\"model\":\"claude-x\",\"max_tokens\":512,\"messages\":[{\"role\":\"user\",\"content\":["
		   "{\"type\":\"text\",\"text\":\"What is this?\"},{\"type\":\"image\",\"source\":{\"type\":"
		   "\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBORw0K\"}},{\"type\":\"image\","
		   "\"source\":{\"type\":\"url\",\"url\":\"https://example.org/cat.jpg\"}}]}]}",
		   "images: a data: URL -> a base64 source, https -> a URL source");
	free(out);
	static const struct {
		const char *url, *code, *name;
	} bad[] = {
		{"data:image/bmp;base64,AAAA", "invalid_image_url", "an unsupported type"},
		{"data:image/png,AAAA", "invalid_image_url", "data without base64"},
		{"data:image/png;base64,AA*A", "invalid_image_url", "data that is not base64"},
		{"data:image/png;base64,AAA", "invalid_image_url", "base64 of the wrong length"},
		{"ftp://x/y.png", "invalid_image_url", "another scheme"},
		{"https://x/a b.png", "invalid_image_url", "a URL with a blank"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char body[512];
		snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
			 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"%s\"}}]}]}", bad[i].url);
		out = translate_on(body, NULL, &e, NULL);
		tap_ok(!out && strcmp(e.param, "messages.[0].content.[0].image_url.url") == 0 && e.code &&
			       strcmp(e.code, bad[i].code) == 0,
		       "refused: %s (%s)", bad[i].name, e.message);
		free(out);
	}
	/* One byte over 5 MiB of image. */
	struct buf big;
	buf_init(&big, 8 << 20);
	/* 8 MiB holds the 7 MiB of base64 and the JSON around it. */
	BUF_MUST(buf_appends(&big, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
				   "\"image_url\":{\"url\":\"data:image/jpeg;base64,"));
	for (size_t i = 0; i <= OPENAI_IMAGE_MAX / 3; i++)
		BUF_MUST(buf_appends(&big, "AAAA"));
	BUF_MUST(buf_appends(&big, "\"}}]}]}"));
	out = translate_on(buf_cstr(&big), NULL, &e, NULL);
	tap_ok(!out && e.code && strcmp(e.code, "image_too_large") == 0 && strstr(e.message, "5242881"),
	       "an image of 5 MiB + 1 byte: 400 with its size (%s)", e.message);
	free(out);
	buf_release(&big);
}

static void test_formats(void)
{
	struct openai_error e;
	struct openai_request rq;
	const char *schema = "{\"model\":\"m\",\"messages\":[" USER "],\"response_format\":{\"type\":\"json_schema\","
			     "\"json_schema\":{\"name\":\"person\",\"strict\":true,\"schema\":{\"type\":\"object\","
			     "\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"],"
			     "\"additionalProperties\":false}}}}";
	char *out = translate_on(schema, &adaptive, &e, NULL);
	tap_ok(out && strstr(out, "\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":{\"type\":"
			     "\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"],"
			     "\"additionalProperties\":false}}}") && !strstr(out, "tools"),
	       "json_schema -> output_config.format where the model has structured output");
	free(out);
	out = translate_on(schema, &extended, &e, &rq);
	tap_ok(out && strstr(out, "\"tools\":[{\"name\":\"person\",\"description\":") &&
		       strstr(out, "\"tool_choice\":{\"type\":\"tool\",\"name\":\"person\"}") &&
		       strstr(out, "\"thinking\":{\"type\":\"disabled\"}") && !strstr(out, "output_config") &&
		       strcmp(rq.format_tool, "person") == 0,
	       "json_schema without structured output -> a forced tool named after the schema");
	if (out)
		openai_request_release(&rq);
	free(out);
	out = translate_on("{\"model\":\"m\",\"messages\":[" USER "],\"response_format\":{\"type\":\"json_object\"}}",
			   &adaptive, &e, &rq);
	tap_ok(out && strstr(out, "\"tools\":[{\"name\":\"json_object\",\"description\":") &&
		       strstr(out, "\"input_schema\":{\"type\":\"object\"}") &&
		       strstr(out, "\"tool_choice\":{\"type\":\"tool\",\"name\":\"json_object\"}"),
	       "json_object -> a forced tool taking any object");
	if (out)
		openai_request_release(&rq);
	free(out);
	out = translate_on(schema, &no_force, &e, NULL);
	tap_ok(!out && strcmp(e.param, "response_format") == 0,
	       "json_schema on a model with neither: 400 naming response_format (%s)", e.message);
	free(out);
	out = translate_on("{\"model\":\"m\",\"messages\":[" USER "],\"tools\":[" TOOL_G "],"
			   "\"response_format\":{\"type\":\"json_object\"}}", &adaptive, &e, NULL);
	tap_ok(!out && strcmp(e.param, "response_format") == 0,
	       "json_object with tools of the client's: 400 naming response_format (%s)", e.message);
	free(out);
}

static void test_reasoning_and_sampling(void)
{
	struct openai_error e;
	struct openai_request rq;
	static const struct {
		const char *extra;
		const struct catalogue_model *info;
		const char *want, *param; /* want: in the body; param: refused */
		int shown;
	} cases[] = {
		{"", &adaptive, "\"thinking\":{\"type\":\"disabled\"}", NULL, 0},
		{",\"reasoning_effort\":\"none\"", &adaptive, "\"thinking\":{\"type\":\"disabled\"}", NULL, 0},
		{",\"reasoning_effort\":\"medium\"", &adaptive,
		 "\"thinking\":{\"type\":\"adaptive\",\"display\":\"summarized\"},\"output_config\":"
		 "{\"effort\":\"medium\"}", NULL, 1},
		{",\"reasoning_effort\":\"minimal\"", &adaptive, "\"output_config\":{\"effort\":\"low\"}", NULL, 1},
		{",\"reasoning_effort\":\"max\"", &adaptive, NULL, "reasoning_effort", 0},
		{"", &always_on, "\"thinking\":{\"type\":\"adaptive\"},\"output_config\":{\"effort\":\"low\"}",
		 NULL, 0},
		{",\"reasoning_effort\":\"xhigh\"", &always_on, "\"output_config\":{\"effort\":\"xhigh\"}", NULL, 1},
		{",\"reasoning_effort\":\"none\"", &always_on, NULL, "reasoning_effort", 0},
		{",\"max_completion_tokens\":8000,\"reasoning_effort\":\"medium\"", &extended,
		 "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":4000}", NULL, 1},
		{",\"reasoning_effort\":\"low\"", &extended, NULL, "reasoning_effort", 0},
		{",\"reasoning_effort\":\"high\"", &thinkless, NULL, "reasoning_effort", 0},
		{"", &thinkless, "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL, 0},
		{",\"reasoning_effort\":\"high\"", NULL,
		 "\"thinking\":{\"type\":\"adaptive\",\"display\":\"summarized\"},\"output_config\":"
		 "{\"effort\":\"high\"}", NULL, 1},
		{",\"temperature\":0.5", &adaptive, NULL, "temperature", 0},
		{",\"top_p\":0.9", &always_on, NULL, "top_p", 0},
		{",\"temperature\":1,\"top_p\":1.0", &adaptive, "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
		 "\"thinking\"", NULL, 0},
		{",\"temperature\":0.5", &extended, "\"temperature\":0.5", NULL, 0},
		{",\"tools\":[" TOOL_G "],\"tool_choice\":\"required\",\"reasoning_effort\":\"low\"", &adaptive, NULL,
		 "reasoning_effort", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char body[1024];
		snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[" USER "]%s}", cases[i].extra);
		char *out = translate_on(body, cases[i].info, &e, &rq);
		const char *on = cases[i].info ? cases[i].info->id : "no catalogue";
		if (cases[i].param)
			tap_ok(!out && strcmp(e.param, cases[i].param) == 0 && strstr(e.message, cases[i].param),
			       "%s on %s: 400 naming %s (%s)", cases[i].extra, on, cases[i].param, e.message);
		else
			tap_ok(out && strstr(out, cases[i].want) && rq.show_reasoning == cases[i].shown,
			       "%s on %s -> %s%s", cases[i].extra, on, cases[i].want,
			       cases[i].shown ? ", reasoning shown" : "");
		if (out)
			openai_request_release(&rq);
		free(out);
	}
}

static void test_tool_answers(void)
{
	const char *msg = "{\"id\":\"msg_9\",\"type\":\"message\",\"content\":[{\"type\":\"thinking\",\"thinking\":"
			  "\"Two cities.\",\"signature\":\"s\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":"
			  "\"get_weather\",\"input\":{\"city\":\"Paris\"}},{\"type\":\"tool_use\",\"id\":\"toolu_2\","
			  "\"name\":\"get_weather\",\"input\":{\"city\":\"Rome\"}}],\"stop_reason\":\"tool_use\","
			  "\"usage\":{\"input_tokens\":3,\"output_tokens\":9}}";
	struct openai_request rq = {.model = "gpt-4o", .show_reasoning = 1};
	struct openai_usage u;
	size_t n;
	char *out = openai_completion(msg, strlen(msg), &rq, 7, &u, &n);
	tap_is_str(out,
		   "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"created\":7,\"model\":\"gpt-4o\","
		   "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,"
		   "\"reasoning_content\":\"Two cities.\",\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":"
		   "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
		   "{\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
		   "\"{\\\"city\\\":\\\"Rome\\\"}\"}}],\"refusal\":null},\"finish_reason\":\"tool_calls\","
		   "\"logprobs\":null}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9,\"total_tokens\":12}}",
		   "tool_use blocks -> tool_calls (parallel), content null, finish tool_calls, reasoning shown");
	free(out);
	rq.show_reasoning = 0;
	out = openai_completion(msg, strlen(msg), &rq, 7, &u, &n);
	tap_ok(out && !strstr(out, "reasoning_content"), "thinking not shown unless asked for");
	free(out);
	const char *fmt = "{\"id\":\"msg_f\",\"type\":\"message\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\","
			  "\"name\":\"person\",\"input\":{\"name\":\"Ada\"}}],\"stop_reason\":\"tool_use\","
			  "\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}";
	snprintf(rq.format_tool, sizeof rq.format_tool, "person");
	out = openai_completion(fmt, strlen(fmt), &rq, 7, &u, &n);
	tap_ok(out && strstr(out, "\"content\":\"{\\\"name\\\":\\\"Ada\\\"}\"") && !strstr(out, "tool_calls") &&
		       strstr(out, "\"finish_reason\":\"stop\""),
	       "response_format's forced tool: its input is the content, finish stop");
	free(out);
}

static void test_tool_stream(void)
{
	struct openai_request rq = {.model = "gpt-4o", .show_reasoning = 1};
	struct openai_stream s;
	struct buf out;
	buf_init(&out, 1 << 16);
	openai_stream_init(&s, &rq, 5);
	const char *head = "data: {\"id\":\"chatcmpl-3\",\"object\":\"chat.completion.chunk\",\"created\":5,"
			   "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":";
	const char *tail = ",\"logprobs\":null,\"finish_reason\":null}]}\n\n";
	char want[1024];
	feed(&s, "message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_3\",\"usage\":"
				  "{\"input_tokens\":4,\"output_tokens\":1}}}", &out);
	buf_reset(&out);
	feed(&s, "content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
					"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}", &out);
	feed(&s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
					"{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}", &out);
	snprintf(want, sizeof want, "%s{\"reasoning_content\":\"Hmm.\"}%s", head, tail);
	tap_is_str(buf_cstr(&out), want, "a thinking delta -> reasoning_content, when asked for");
	buf_reset(&out);
	feed(&s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
					"{\"type\":\"signature_delta\",\"signature\":\"sig\"}}", &out);
	feed(&s, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}", &out);
	tap_is_int(out.len, 0, "signatures and block stops say nothing");
	for (int call = 0; call < 2; call++) {
		char ev[512];
		snprintf(ev, sizeof ev, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":"
			 "\"tool_use\",\"id\":\"toolu_%d\",\"name\":\"get_weather\",\"input\":{}}}", call + 1, call);
		feed(&s, "content_block_start", ev, &out);
		snprintf(want, sizeof want, "%s{\"tool_calls\":[{\"id\":\"toolu_%d\",\"type\":\"function\",\"function\":"
			 "{\"name\":\"get_weather\",\"arguments\":\"\"},\"index\":%d}]}%s", head, call, call, tail);
		tap_is_str(buf_cstr(&out), want, "call %d: index, id, type and name first, empty arguments", call);
		buf_reset(&out);
		static const char *const pieces[] = {"", "{\\\"city\\\"", ": \\\"P\\u00e9\"", "}"};
		static const char *const sent[] = {NULL, "{\\\"city\\\"", ": \\\"Pé", "}"};
		for (int p = 0; p < 4; p++) {
			snprintf(ev, sizeof ev, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":"
				 "\"input_json_delta\",\"partial_json\":\"%s\"}}", call + 1, pieces[p]);
			if (p == 2)
				snprintf(ev, sizeof ev, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":"
					 "{\"type\":\"input_json_delta\",\"partial_json\":\": \\\"P\\u00e9\"}}", call + 1);
			feed(&s, "content_block_delta", ev, &out);
			if (!sent[p]) {
				tap_is_int(out.len, 0, "call %d: an empty piece says nothing", call);
				continue;
			}
			snprintf(want, sizeof want, "%s{\"tool_calls\":[{\"function\":{\"arguments\":\"%s\"},"
				 "\"index\":%d}]}%s", head, sent[p], call, tail);
			tap_is_str(buf_cstr(&out), want, "call %d: piece %d relayed as it arrives", call, p);
			buf_reset(&out);
		}
		snprintf(ev, sizeof ev, "{\"type\":\"content_block_stop\",\"index\":%d}", call + 1);
		feed(&s, "content_block_stop", ev, &out);
	}
	feed(&s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
					"\"input_json_delta\",\"partial_json\":\"{}\"}}", &out);
	tap_is_int(out.len, 0, "a piece for no block in progress says nothing");
	feed(&s, "message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},"
				  "\"usage\":{\"output_tokens\":12}}", &out);
	feed(&s, "message_stop", "{\"type\":\"message_stop\"}", &out);
	tap_ok(strstr(buf_cstr(&out), "\"finish_reason\":\"tool_calls\"") &&
		       strstr(buf_cstr(&out), "data: [DONE]\n\n"), "finish tool_calls, then [DONE]");
	openai_stream_release(&s);

	/* response_format's forced tool: its input pieces are the content. */
	snprintf(rq.format_tool, sizeof rq.format_tool, "person");
	rq.show_reasoning = 0;
	openai_stream_init(&s, &rq, 5);
	buf_reset(&out);
	feed(&s, "content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
					"\"tool_use\",\"id\":\"t\",\"name\":\"person\",\"input\":{}}}", &out);
	tap_is_int(out.len, 0, "the format tool's start says nothing");
	feed(&s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
					"\"input_json_delta\",\"partial_json\":\"{\\\"n\"}}", &out);
	snprintf(want, sizeof want, "data: {\"id\":\"chatcmpl-0\",\"object\":\"chat.completion.chunk\",\"created\":5,"
		 "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"{\\\"n\"}%s", tail);
	tap_is_str(buf_cstr(&out), want, "its pieces are content deltas");
	buf_reset(&out);
	feed(&s, "content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
					"{\"type\":\"thinking_delta\",\"thinking\":\"x\"}}", &out);
	tap_is_int(out.len, 0, "thinking not asked for is not shown");
	feed(&s, "message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}", &out);
	feed(&s, "message_stop", "{\"type\":\"message_stop\"}", &out);
	tap_ok(NULL != strstr(buf_cstr(&out), "\"finish_reason\":\"stop\""), "finish stop for the format tool");
	openai_stream_release(&s);
	buf_release(&out);
}

/* Thinking across a tool round trip: kept from the answer that calls tools, put back in front of
 * the calls when their results come back, signatures as the upstream sent them. */
#define KEPT "[{\"type\":\"thinking\",\"thinking\":\"Hmm.\",\"signature\":\"s1\"}," \
	     "{\"type\":\"redacted_thinking\",\"data\":\"d\"}]"
#define ROUND_TRIP "{\"model\":\"m\",\"messages\":[" USER ",{\"role\":\"assistant\",\"content\":null," \
		   "\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":" \
		   "\"f\",\"arguments\":\"\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\"," \
		   "\"content\":\"ok\"}]"

/* ROUND_TRIP plus more (the rest of the body), on info, with the kept blocks found (back) or
 * not: the Messages body, or NULL with *e set. */
static char *round_trip(const char *more, const struct catalogue_model *info, int back,
			struct openai_error *e)
{
	struct openai_request rq;
	char body[1024];
	size_t n;
	snprintf(body, sizeof body, "%s%s}", ROUND_TRIP, more);
	if (openai_parse_request(body, strlen(body), &lim, &rq, e) < 0)
		return NULL;
	const char *id = openai_thinking_wanted(&rq);
	tap_is_str(id, "toolu_1", "the calling turn's first call id is what its thinking is kept under");
	rq.thinking_back = back;
	char *out = NULL;
	if (openai_apply_model(&rq, info, e) == 0 &&
	    (!back || openai_thinking_insert(&rq, KEPT, strlen(KEPT)) == 0))
		out = openai_messages_body(&rq, "claude-x", &n);
	openai_request_release(&rq);
	return out;
}

static void test_thinking_kept(void)
{
	char id[OPENAI_CALL_ID_MAX + 1];
	size_t n;
	const char *answer = "{\"type\":\"message\",\"content\":[{\"type\":\"thinking\",\"thinking\":"
			     "\"Hmm.\",\"signature\":\"s1\"},{\"type\":\"redacted_thinking\",\"data\":\"d\"},"
			     "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}},"
			     "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"f\",\"input\":{}}]}";
	char *k = openai_thinking_kept(answer, strlen(answer), id, &n);
	tap_is_str(k, KEPT, "a whole answer: its thinking blocks before the first call, as they came");
	tap_is_str(id, "toolu_1", "kept under the first call's id");
	free(k);
	static const char *const none[] = {
		"{\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{}}]}",
		"{\"content\":[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"s\"},"
		"{\"type\":\"text\",\"text\":\"hi\"}]}",
		"{\"content\":[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"s\"},"
		"{\"type\":\"tool_use\",\"id\":\"a b\",\"name\":\"f\",\"input\":{}}]}",
		"not json",
	};
	for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
		k = openai_thinking_kept(none[i], strlen(none[i]), id, &n);
		tap_ok(!k, "nothing kept: no thinking, no call, an id unfit for a key, no JSON (%zu)", i);
		free(k);
	}

	struct openai_error e;
	const char *front = "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":"
			    "\"Hmm.\",\"signature\":\"s1\"},{\"type\":\"redacted_thinking\",\"data\":\"d\"},"
			    "{\"type\":\"tool_use\",\"id\":\"toolu_1\"";
	char *out = round_trip("", &always_on, 1, &e);
	tap_ok(out && strstr(out, front) && strstr(out, "\"thinking\":{\"type\":\"adaptive\"}"),
	       "always thinks, blocks found: put back in front of the calls, thinking on (%s)",
	       out ? out : e.message);
	free(out);
	out = round_trip("", &always_on, 0, &e);
	tap_ok(!out && strcmp(e.param, "messages") == 0 && e.code &&
	       strcmp(e.code, "thinking_not_found") == 0 && strstr(e.message, "expired"),
	       "always thinks, blocks gone: 400 naming messages, thinking_not_found (%s)", e.message);
	free(out);
	out = round_trip(",\"reasoning_effort\":\"low\"", &adaptive, 1, &e);
	tap_ok(out && strstr(out, front) && strstr(out, "\"effort\":\"low\""),
	       "adaptive with reasoning, blocks found: it thinks again with them (%s)",
	       out ? out : e.message);
	free(out);
	out = round_trip("", &adaptive, 1, &e);
	tap_ok(out && !strstr(out, "signature") && strstr(out, "\"thinking\":{\"type\":\"disabled\"}"),
	       "adaptive without reasoning: thinking off, and no blocks put back (%s)",
	       out ? out : e.message);
	free(out);
	out = round_trip("", NULL, 1, &e);
	tap_ok(out && strstr(out, front), "no catalogue: the blocks go back (%s)", out ? out : e.message);
	free(out);

	struct openai_request rq;
	const char *body = ROUND_TRIP "}";
	if (openai_parse_request(body, strlen(body), &lim, &rq, &e) == 0) {
		const char *text = "[{\"type\":\"text\",\"text\":\"x\"}]";
		tap_is_int(openai_thinking_insert(&rq, text, strlen(text)), -1,
			   "kept blocks that are not thinking are refused");
		tap_is_int(openai_thinking_insert(&rq, "[]", 2), -1, "and so is an empty array");
		openai_request_release(&rq);
	}
	body = "{\"model\":\"m\",\"messages\":[" USER "]}";
	if (openai_parse_request(body, strlen(body), &lim, &rq, &e) == 0) {
		tap_ok(!openai_thinking_wanted(&rq), "a request without tool results wants no thinking");
		openai_request_release(&rq);
	}
}

/* A stream keeps the thinking blocks before its first call, joined from their deltas. */
static void test_thinking_kept_stream(size_t cap, const char *want)
{
	struct openai_request rq = {.model = "gpt-4o"};
	struct openai_stream s;
	struct buf out;
	size_t n;
	buf_init(&out, 1 << 16);
	openai_stream_init(&s, &rq, 5);
	openai_stream_keep(&s, cap);
	static const char *const ev[][2] = {
		{"message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_3\"}}"},
		{"content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
					"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}"},
		{"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
					"{\"type\":\"thinking_delta\",\"thinking\":\"Hm\"}}"},
		{"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
					"{\"type\":\"thinking_delta\",\"thinking\":\"m.\"}}"},
		{"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
					"{\"type\":\"signature_delta\",\"signature\":\"s\"}}"},
		{"content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
					"{\"type\":\"signature_delta\",\"signature\":\"1\"}}"},
		{"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}"},
		{"content_block_start", "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
					"{\"type\":\"redacted_thinking\",\"data\":\"d\"}}"},
		{"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}"},
		{"content_block_start", "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":"
					"{\"type\":\"tool_use\",\"id\":\"toolu_9\",\"name\":\"f\",\"input\":{}}}"},
		{"content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}"},
		{"content_block_start", "{\"type\":\"content_block_start\",\"index\":3,\"content_block\":"
					"{\"type\":\"redacted_thinking\",\"data\":\"late\"}}"},
		{"message_stop", "{\"type\":\"message_stop\"}"},
	};
	for (size_t i = 0; i < sizeof ev / sizeof *ev; i++)
		feed(&s, ev[i][0], ev[i][1], &out);
	char *k = openai_stream_kept(&s, &n);
	if (want) {
		tap_is_str(k, want, "a stream keeps the blocks before its first call, deltas joined");
		tap_is_str(s.kept_id, "toolu_9", "under the first call's id");
	} else {
		tap_ok(!k, "a stream whose thinking is over the cap (%zu bytes) keeps none", cap);
	}
	free(k);
	openai_stream_release(&s);
	buf_release(&out);
}

int main(void)
{
	test_requests();
	test_names();
	test_completion();
	test_stream(1);
	test_stream(0);
	test_stream_failures();
	test_tool_requests();
	test_tool_turns();
	test_images();
	test_formats();
	test_reasoning_and_sampling();
	test_tool_answers();
	test_tool_stream();
	test_thinking_kept();
	test_thinking_kept_stream(1 << 16, KEPT);
	test_thinking_kept_stream(3, NULL);
	return tap_done();
}
