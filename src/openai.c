#include "openai.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "jx.h"
#include "sse.h"

/* json-c ownership: the rules are in jx.h. */

#define ENCODE_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
/* The most stop strings OpenAI takes. */
#define MAX_STOP 4

int openai_refuse(struct openai_error *e, const char *param, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	e->kind = ERR_BAD_REQUEST;
	snprintf(e->param, sizeof e->param, "%s", param ? param : "");
	e->code = code;
	return -1;
}

static int is_null(struct json_object *v)
{
	return v == NULL; /* json-c represents JSON null as a NULL member value */
}

static int is_number(struct json_object *v)
{
	return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* ---- the request ---- */

/* Fields that neither change the answer nor can be honoured: accepted and not sent on. */
static const char *const ignored_fields[] = {
	"user", "seed", "frequency_penalty", "presence_penalty", "store", "metadata",
	"service_tier", "prompt_cache_key", "safety_identifier", NULL,
};

/* Fields that would change the answer and have no Messages counterpart here. */
static const char *const unsupported_fields[] = {
	"audio", "prediction", "web_search_options", "verbosity", NULL,
};

static int listed(const char *const *list, const char *key)
{
	for (; *list; list++)
		if (strcmp(*list, key) == 0)
			return 1;
	return 0;
}

static struct json_object *text_block(struct json_object *text)
{
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", json_object_new_string("text"));
	json_object_object_add(b, "text", json_object_get(text));
	return b;
}

/* A function or tool name as both APIs take it: 1 to 64 of [A-Za-z0-9_-]. */
int openai_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	return n >= 1 && n <= 64 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Appends the text of content (a string, or an array of text parts) to out for a system turn.
 * Returns 0 or -1 (refused). out is bounded only by memory (the body holds the text already): its
 * writes cannot fail. */
static int system_text(struct json_object *content, size_t i, struct buf *out,
		       struct openai_error *e)
{
	char param[64];
	snprintf(param, sizeof param, "messages.[%zu].content", i);
	if (out->len)
		BUF_MUST(buf_appends(out, "\n\n"));
	if (json_object_is_type(content, json_type_string)) {
		BUF_MUST(buf_append(out, json_object_get_string(content),
				    (size_t)json_object_get_string_len(content)));
		return 0;
	}
	if (!json_object_is_type(content, json_type_array))
		return openai_refuse(e, param, NULL, "%s: must be a string or an array of text parts", param);
	size_t n = json_object_array_length(content);
	for (size_t j = 0; j < n; j++) {
		struct json_object *part = json_object_array_get_idx(content, j), *t;
		const char *type = jx_string(part, "type");
		if (!type || strcmp(type, "text") != 0 || !json_object_object_get_ex(part, "text", &t) ||
		    !json_object_is_type(t, json_type_string))
			return openai_refuse(e, param, NULL, "%s: a system message takes text parts only",
				      param);
		BUF_MUST(buf_append(out, json_object_get_string(t),
				    (size_t)json_object_get_string_len(t)));
	}
	return 0;
}

/* ---- images ---- */

/* The bytes base64 text of n characters decodes to, or -1 when it is not base64. */
static long long base64_size(const char *s, size_t n)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789+/";
	size_t pad = 0;
	while (pad < 2 && n > pad && s[n - 1 - pad] == '=')
		pad++;
	if (n == 0 || n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n - pad; i++)
		if (!memchr(alphabet, s[i], sizeof alphabet - 1))
			return -1;
	return (long long)(n / 4 * 3 - pad);
}

/* The source of an image block for an image_url url: a data: URL with base64 data of one of the
 * types the Messages API reads, or an https URL. Returns a new reference, or NULL (refused). */
struct json_object *openai_image_source(const char *url, size_t len, const char *param,
					struct openai_error *e)
{
	static const char *const types[] = {"image/jpeg", "image/png", "image/gif", "image/webp"};
	struct json_object *src = json_object_new_object();
	if (strncmp(url, "https://", 8) == 0 && len > 8 && strcspn(url, " \t\r\n\"<>\\") == len) {
		json_object_object_add(src, "type", json_object_new_string("url"));
		json_object_object_add(src, "url", json_object_new_string_len(url, (int)len));
		return src;
	}
	const char *comma = strchr(url, ',');
	size_t head = comma ? (size_t)(comma - url) : 0;
	size_t t = 0;
	for (; comma && t < sizeof types / sizeof types[0]; t++)
		if (head == 5 + strlen(types[t]) + 7 && strncmp(url, "data:", 5) == 0 &&
		    strncmp(url + 5, types[t], strlen(types[t])) == 0 &&
		    strncmp(url + 5 + strlen(types[t]), ";base64", 7) == 0)
			break;
	json_object_put(src);
	if (!comma || t == sizeof types / sizeof types[0]) {
		openai_refuse(e, param, "invalid_image_url",
		       "%s: must be an https URL or a data: URL of base64 image/jpeg, image/png, "
		       "image/gif or image/webp", param);
		return NULL;
	}
	long long size = base64_size(comma + 1, len - head - 1);
	if (size < 0) {
		openai_refuse(e, param, "invalid_image_url", "%s: the data: URL's data is not base64", param);
		return NULL;
	}
	if (size > OPENAI_IMAGE_MAX) {
		openai_refuse(e, param, "image_too_large", "%s: the image is %lld bytes; the most is %u (5 MiB)",
		       param, size, OPENAI_IMAGE_MAX);
		return NULL;
	}
	src = json_object_new_object();
	json_object_object_add(src, "type", json_object_new_string("base64"));
	json_object_object_add(src, "media_type", json_object_new_string(types[t]));
	json_object_object_add(src, "data", json_object_new_string_len(comma + 1, (int)(len - head - 1)));
	return src;
}

/* An image_url part → an image block (new reference), or NULL (refused). */
static struct json_object *image_block(struct json_object *part, size_t i, size_t j,
				       struct openai_error *e)
{
	char param[96];
	struct json_object *iu, *u;
	snprintf(param, sizeof param, "messages.[%zu].content.[%zu].image_url.url", i, j);
	if (!json_object_object_get_ex(part, "image_url", &iu) ||
	    !json_object_object_get_ex(iu, "url", &u) || !json_object_is_type(u, json_type_string)) {
		openai_refuse(e, param, NULL, "%s: must be a string", param);
		return NULL;
	}
	struct json_object *src = openai_image_source(json_object_get_string(u),
					       (size_t)json_object_get_string_len(u), param, e);
	if (!src)
		return NULL;
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", json_object_new_string("image"));
	json_object_object_add(b, "source", src);
	return b;
}

/* ---- turns ---- */

/* What a turn's parts are allowed to be. */
struct parts {
	int images;       /* image_url parts accepted (user turns) */
	size_t *n_images; /* counted against OPENAI_IMAGES_MAX */
};

/* One content part → a Messages block appended to blocks. Returns 0, or -1 (refused). */
static int add_part(struct json_object *blocks, struct json_object *part, size_t i, size_t j,
		    const struct parts *p, struct openai_error *e)
{
	char param[80];
	struct json_object *t;
	const char *type = jx_string(part, "type");
	snprintf(param, sizeof param, "messages.[%zu].content.[%zu].type", i, j);
	if (!type)
		return openai_refuse(e, param, NULL, "%s: a content part needs a type", param);
	if (strcmp(type, "image_url") == 0 && p->images) {
		if (++*p->n_images > OPENAI_IMAGES_MAX)
			return openai_refuse(e, param, "too_many_images", "%s: more than %d images in one "
				      "request", param, OPENAI_IMAGES_MAX);
		struct json_object *b = image_block(part, i, j, e);
		if (!b)
			return -1;
		json_object_array_add(blocks, b);
		return 0;
	}
	if (strcmp(type, "text") != 0)
		return openai_refuse(e, param, "unsupported_value",
			      "%s: content parts of type '%.40s' are not supported by this server "
			      "here; %s", param, type, p->images ? "text and image_url are" : "only text is");
	if (!json_object_object_get_ex(part, "text", &t) || !json_object_is_type(t, json_type_string)) {
		snprintf(param, sizeof param, "messages.[%zu].content.[%zu].text", i, j);
		return openai_refuse(e, param, NULL, "%s: must be a string", param);
	}
	/* The Messages API refuses empty text blocks; an empty part says nothing. */
	if (json_object_get_string_len(t))
		json_object_array_add(blocks, text_block(t));
	return 0;
}

/* The Messages form of a turn's content: a string stays a string, parts become blocks. Returns
 * a new reference, or NULL (refused). */
static struct json_object *turn_content(struct json_object *content, size_t i,
					const struct parts *p, struct openai_error *e)
{
	char param[80];
	snprintf(param, sizeof param, "messages.[%zu].content", i);
	if (json_object_is_type(content, json_type_string))
		return json_object_get(content);
	if (!json_object_is_type(content, json_type_array)) {
		openai_refuse(e, param, NULL, "%s: must be a string or an array of content parts", param);
		return NULL;
	}
	struct json_object *blocks = json_object_new_array();
	size_t n = json_object_array_length(content);
	for (size_t j = 0; j < n; j++)
		if (add_part(blocks, json_object_array_get_idx(content, j), i, j, p, e) < 0) {
			json_object_put(blocks);
			return NULL;
		}
	return blocks;
}

/* content as an array of blocks (a string becomes one text block; "" none). New reference. */
static struct json_object *as_blocks(struct json_object *content)
{
	if (json_object_is_type(content, json_type_array))
		return json_object_get(content);
	struct json_object *blocks = json_object_new_array();
	if (json_object_get_string_len(content))
		json_object_array_add(blocks, text_block(content));
	return blocks;
}

/* One assistant tool call → a tool_use block (new reference), or NULL (refused). */
static struct json_object *tool_use_block(struct json_object *call, size_t i, size_t j,
					  struct openai_error *e)
{
	char param[96];
	struct json_object *fn, *args;
	const char *id = jx_string(call, "id"), *type = jx_string(call, "type");
	snprintf(param, sizeof param, "messages.[%zu].tool_calls.[%zu]", i, j);
	if (!id || !*id || (type && strcmp(type, "function") != 0) ||
	    !json_object_object_get_ex(call, "function", &fn) || !openai_name_ok(jx_string(fn, "name"))) {
		openai_refuse(e, param, NULL, "%s: must be {\"id\", \"type\": \"function\", \"function\": "
		       "{\"name\", \"arguments\"}} with a name of 1 to 64 letters, digits, _ or -",
		       param);
		return NULL;
	}
	struct json_object *input = NULL;
	if (json_object_object_get_ex(fn, "arguments", &args) &&
	    json_object_is_type(args, json_type_string) && json_object_get_string_len(args))
		input = anthropic_json_parse_strict(json_object_get_string(args),
						    (size_t)json_object_get_string_len(args));
	else if (!args || json_object_is_type(args, json_type_string))
		input = json_object_new_object(); /* no arguments: "" or left out */
	if (!json_object_is_type(input, json_type_object)) {
		json_object_put(input);
		snprintf(param, sizeof param, "messages.[%zu].tool_calls.[%zu].function.arguments", i, j);
		openai_refuse(e, param, NULL, "%s: must be a JSON object in a string", param);
		return NULL;
	}
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", json_object_new_string("tool_use"));
	json_object_object_add(b, "id", json_object_new_string(id));
	json_object_object_add(b, "name", json_object_new_string(jx_string(fn, "name")));
	json_object_object_add(b, "input", input);
	return b;
}

/* An assistant turn with tool_calls: its text, then a tool_use block per call. Returns the
 * blocks (new reference), or NULL (refused). */
static struct json_object *assistant_blocks(struct json_object *content, struct json_object *calls,
					    size_t i, struct openai_error *e)
{
	static const struct parts text_only = {0};
	struct json_object *blocks;
	if (content) {
		struct json_object *c = turn_content(content, i, &text_only, e);
		if (!c)
			return NULL;
		blocks = as_blocks(c);
		json_object_put(c);
	} else {
		blocks = json_object_new_array();
	}
	size_t n = json_object_array_length(calls);
	for (size_t j = 0; j < n; j++) {
		struct json_object *b = tool_use_block(json_object_array_get_idx(calls, j), i, j, e);
		if (!b) {
			json_object_put(blocks);
			return NULL;
		}
		json_object_array_add(blocks, b);
	}
	return blocks;
}

/* A tool turn → a tool_result block (new reference), or NULL (refused). */
static struct json_object *tool_result_block(struct json_object *m, struct json_object *content,
					     size_t i, struct openai_error *e)
{
	static const struct parts text_only = {0};
	char param[64];
	const char *id = jx_string(m, "tool_call_id");
	if (!id || !*id) {
		snprintf(param, sizeof param, "messages.[%zu].tool_call_id", i);
		openai_refuse(e, param, NULL, "%s: a tool message needs the id of the call it answers", param);
		return NULL;
	}
	struct json_object *c = turn_content(content, i, &text_only, e);
	if (!c)
		return NULL;
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", json_object_new_string("tool_result"));
	json_object_object_add(b, "tool_use_id", json_object_new_string(id));
	json_object_object_add(b, "content", c);
	return b;
}

/* The state of the turns being built. */
struct turns {
	struct openai_request *rq;
	struct buf system;
	size_t n_images;
	int results_open; /* the last turn is a user turn of tool results, open for more */
};

/* Appends a turn; blocks after tool results join their user turn, as the Messages API wants
 * the results of one assistant turn (and what the user adds) in the next user turn. */
static void add_turn(struct turns *t, const char *role, struct json_object *content, int results)
{
	struct json_object *msgs = t->rq->messages;
	size_t n = json_object_array_length(msgs);
	if (t->results_open && strcmp(role, "user") == 0) {
		struct json_object *last = json_object_array_get_idx(msgs, n - 1), *blocks, *more;
		json_object_object_get_ex(last, "content", &blocks);
		more = as_blocks(content);
		for (size_t j = 0; j < json_object_array_length(more); j++)
			json_object_array_add(blocks, json_object_get(json_object_array_get_idx(more, j)));
		json_object_put(more);
		json_object_put(content);
		return; /* still the turn that hands the results back */
	}
	struct json_object *turn = json_object_new_object();
	json_object_object_add(turn, "role", json_object_new_string(role));
	json_object_object_add(turn, "content", results ? as_blocks(content) : content);
	if (results)
		json_object_put(content);
	json_object_array_add(msgs, turn);
	t->results_open = results;
}

/* One message of the client's. Returns 0, or -1 (refused). */
static int add_message(struct turns *t, struct json_object *m, size_t i, struct openai_error *e)
{
	char param[64];
	struct json_object *content = NULL, *calls = NULL, *v;
	const char *role = json_object_is_type(m, json_type_object) ? jx_string(m, "role") : NULL;
	snprintf(param, sizeof param, "messages.[%zu].role", i);
	if (!role)
		return openai_refuse(e, param, NULL, "%s: every message needs a role", param);
	int is_system = strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
	int is_tool = strcmp(role, "tool") == 0, is_assistant = strcmp(role, "assistant") == 0;
	if (!is_system && !is_tool && !is_assistant && strcmp(role, "user") != 0)
		return openai_refuse(e, param, "unsupported_value", "%s: '%.40s' messages are not supported "
			      "by this server; use system, developer, user, assistant and tool",
			      param, role);
	if (json_object_object_get_ex(m, "function_call", &v) && !is_null(v)) {
		snprintf(param, sizeof param, "messages.[%zu].function_call", i);
		return openai_refuse(e, param, "unsupported_parameter", "%s: the deprecated function calls "
			      "are not supported by this server; use tool_calls", param);
	}
	json_object_object_get_ex(m, "tool_calls", &calls);
	if (calls && !(is_assistant && json_object_is_type(calls, json_type_array))) {
		snprintf(param, sizeof param, "messages.[%zu].tool_calls", i);
		return openai_refuse(e, param, NULL, "%s: only assistant messages carry tool calls, as an "
			      "array", param);
	}
	if (calls && json_object_array_length(calls) == 0)
		calls = NULL;
	json_object_object_get_ex(m, "content", &content);
	if (!content && !calls) {
		snprintf(param, sizeof param, "messages.[%zu].content", i);
		return openai_refuse(e, param, NULL, "%s: is required", param);
	}
	if (is_system)
		return system_text(content, i, &t->system, e);
	struct parts p = {.images = strcmp(role, "user") == 0, .n_images = &t->n_images};
	struct json_object *c = is_tool ? tool_result_block(m, content, i, e)
			      : calls ? assistant_blocks(content, calls, i, e)
				      : turn_content(content, i, &p, e);
	if (!c)
		return -1;
	if (is_tool) {
		struct json_object *one = json_object_new_array();
		json_object_array_add(one, c);
		c = one;
	}
	add_turn(t, is_assistant ? "assistant" : "user", c, is_tool);
	return 0;
}

static int parse_messages(struct json_object *msgs, struct openai_request *rq,
			  struct openai_error *e)
{
	if (!json_object_is_type(msgs, json_type_array) || json_object_array_length(msgs) == 0)
		return openai_refuse(e, "messages", NULL, "messages: must be a non-empty array");
	struct turns t = {.rq = rq};
	buf_init(&t.system, (size_t)-1 / 2); /* bounded by the body it comes from */
	rq->messages = json_object_new_array();
	size_t n = json_object_array_length(msgs);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = add_message(&t, json_object_array_get_idx(msgs, i), i, e);
	if (rc == 0 && json_object_array_length(rq->messages) == 0)
		rc = openai_refuse(e, "messages", NULL, "messages: at least one user message is required");
	rq->ends_with_results = t.results_open;
	if (rc == 0 && t.system.len)
		rq->system = buf_detach(&t.system);
	buf_release(&t.system);
	return rc;
}

static int parse_max_tokens(struct json_object *root, const struct openai_limits *lim,
			    struct openai_request *rq, struct openai_error *e)
{
	/* max_completion_tokens replaced max_tokens; a client sending both means the newer. */
	static const char *const names[] = {"max_completion_tokens", "max_tokens"};
	rq->max_tokens = lim->max_tokens;
	for (size_t i = 0; i < 2; i++) {
		struct json_object *v;
		if (!json_object_object_get_ex(root, names[i], &v) || is_null(v))
			continue;
		long long n;
		switch (anthropic_max_tokens(v, lim->max_tokens_limit, &n)) {
		case ANTH_MAX_TOKENS_OK:
			break;
		case ANTH_MAX_TOKENS_INVALID:
			return openai_refuse(e, names[i], NULL, "%s: must be an integer of at least 1",
				      names[i]);
		case ANTH_MAX_TOKENS_OVER:
			return openai_refuse(e, names[i], "invalid_value",
				      "%s: %lld is more than this server allows (%ld)", names[i], n,
				      lim->max_tokens_limit);
		}
		rq->max_tokens = (long)n;
		return 0;
	}
	return 0;
}

/* temperature or top_p: a number from 0 to 1 (OpenAI's temperature goes to 2; Claude's to 1). */
int openai_parse_unit(struct json_object *root, const char *name, struct json_object **out,
		      struct openai_error *e)
{
	struct json_object *v;
	*out = NULL;
	if (!json_object_object_get_ex(root, name, &v) || is_null(v))
		return 0;
	if (!is_number(v))
		return openai_refuse(e, name, NULL, "%s: must be a number", name);
	double d = json_object_get_double(v);
	if (!(d >= 0 && d <= 1))
		return openai_refuse(e, name, "unsupported_value",
			      "%s: %g is not supported by this server's models, which take 0 to 1",
			      name, d);
	*out = v;
	return 0;
}

static int parse_stop(struct json_object *v, struct openai_request *rq, struct openai_error *e)
{
	if (is_null(v))
		return 0;
	if (json_object_is_type(v, json_type_string)) {
		rq->stop_sequences = json_object_new_array();
		json_object_array_add(rq->stop_sequences, json_object_get(v));
		return 0;
	}
	if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > MAX_STOP)
		return openai_refuse(e, "stop", NULL, "stop: must be a string or an array of up to %d strings",
			      MAX_STOP);
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
			return openai_refuse(e, "stop", NULL, "stop: must be a string or an array of up to %d "
				      "strings", MAX_STOP);
	if (n)
		rq->stop_sequences = json_object_get(v);
	return 0;
}

/* ---- tools, tool_choice, response_format, reasoning_effort ---- */

/* One function definition → a Messages tool (new reference), or NULL (refused). */
static struct json_object *tool_def(struct json_object *t, size_t i, struct openai_error *e)
{
	char param[64];
	struct json_object *fn, *params = NULL, *strict = NULL, *desc = NULL;
	const char *type = jx_string(t, "type");
	snprintf(param, sizeof param, "tools.[%zu].type", i);
	if (!type || strcmp(type, "function") != 0) {
		openai_refuse(e, param, "unsupported_value", "%s: only function tools are supported", param);
		return NULL;
	}
	snprintf(param, sizeof param, "tools.[%zu].function.name", i);
	if (!json_object_object_get_ex(t, "function", &fn) || !openai_name_ok(jx_string(fn, "name"))) {
		openai_refuse(e, param, NULL, "%s: must be 1 to 64 letters, digits, _ or -", param);
		return NULL;
	}
	json_object_object_get_ex(fn, "parameters", &params);
	json_object_object_get_ex(fn, "strict", &strict);
	json_object_object_get_ex(fn, "description", &desc);
	if ((params && !json_object_is_type(params, json_type_object)) ||
	    (strict && !json_object_is_type(strict, json_type_boolean)) ||
	    (desc && !json_object_is_type(desc, json_type_string))) {
		snprintf(param, sizeof param, "tools.[%zu].function", i);
		openai_refuse(e, param, NULL, "%s: parameters must be an object, strict a boolean and "
		       "description a string", param);
		return NULL;
	}
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(jx_string(fn, "name")));
	if (desc && json_object_get_string_len(desc))
		json_object_object_add(o, "description", json_object_get(desc));
	json_object_object_add(o, "input_schema", params ? json_object_get(params)
				   : json_tokener_parse("{\"type\":\"object\",\"properties\":{}}"));
	if (strict && json_object_get_boolean(strict))
		json_object_object_add(o, "strict", json_object_new_boolean(1));
	return o;
}

static int parse_tools(struct json_object *v, struct openai_request *rq, struct openai_error *e)
{
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return openai_refuse(e, "tools", NULL, "tools: must be an array of function tools");
	size_t n = json_object_array_length(v);
	if (n == 0)
		return 0;
	rq->tools = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *t = tool_def(json_object_array_get_idx(v, i), i, e);
		if (!t)
			return -1;
		json_object_array_add(rq->tools, t);
	}
	return 0;
}

static int parse_tool_choice(struct json_object *v, struct openai_request *rq,
			     struct openai_error *e)
{
	static const struct {
		const char *name;
		enum openai_tool_choice tc;
	} modes[] = {{"none", OPENAI_TC_NONE}, {"auto", OPENAI_TC_AUTO}, {"required", OPENAI_TC_REQUIRED}};
	struct json_object *fn;
	if (is_null(v))
		return 0;
	for (size_t i = 0; json_object_is_type(v, json_type_string) && i < 3; i++)
		if (strcmp(json_object_get_string(v), modes[i].name) == 0) {
			rq->tool_choice = modes[i].tc;
			return 0;
		}
	const char *type = json_object_is_type(v, json_type_object) ? jx_string(v, "type") : NULL;
	if (type && strcmp(type, "function") == 0 && json_object_object_get_ex(v, "function", &fn) &&
	    openai_name_ok(jx_string(fn, "name"))) {
		rq->tool_choice = OPENAI_TC_NAMED;
		rq->tool_name = jx_string(fn, "name");
		return 0;
	}
	return openai_refuse(e, "tool_choice", "unsupported_value", "tool_choice: must be \"none\", \"auto\", "
		      "\"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}");
}

static int parse_response_format(struct json_object *v, struct openai_request *rq,
				 struct openai_error *e)
{
	struct json_object *js, *schema = NULL;
	const char *type = json_object_is_type(v, json_type_object) ? jx_string(v, "type") : NULL;
	if (is_null(v) || (type && strcmp(type, "text") == 0))
		return 0;
	if (type && strcmp(type, "json_object") == 0) {
		rq->format = OPENAI_FORMAT_JSON_OBJECT;
		return 0;
	}
	if (!type || strcmp(type, "json_schema") != 0)
		return openai_refuse(e, "response_format", "unsupported_value", "response_format: the type "
			      "must be text, json_object or json_schema");
	if (!json_object_object_get_ex(v, "json_schema", &js) || !openai_name_ok(jx_string(js, "name")) ||
	    !json_object_object_get_ex(js, "schema", &schema) ||
	    !json_object_is_type(schema, json_type_object))
		return openai_refuse(e, "response_format.json_schema", NULL, "response_format.json_schema: "
			      "needs a name of 1 to 64 letters, digits, _ or - and a schema object");
	rq->format = OPENAI_FORMAT_JSON_SCHEMA;
	rq->format_schema = schema;
	rq->format_name = jx_string(js, "name");
	return 0;
}

static int parse_reasoning(struct json_object *v, struct openai_request *rq,
			   struct openai_error *e)
{
	static const char *const levels[] = {"none", "minimal", "low", "medium", "high", "xhigh",
					      "max", NULL};
	if (is_null(v))
		return 0;
	if (!json_object_is_type(v, json_type_string) || !listed(levels, json_object_get_string(v)))
		return openai_refuse(e, "reasoning_effort", "unsupported_value", "reasoning_effort: must be "
			      "none, minimal, low, medium, high, xhigh or max");
	rq->reasoning = json_object_get_string(v);
	return 0;
}

/* Fields accepted only with a value that changes nothing (1, false, {}, ["text"]...). */
static int check_neutral(const char *key, struct json_object *v, struct openai_error *e)
{
	int neutral;
	const char *what;
	if (strcmp(key, "n") == 0) {
		neutral = json_object_is_type(v, json_type_int) && json_object_get_int64(v) == 1;
		what = "only 1 choice per request is supported by this server";
	} else if (strcmp(key, "functions") == 0) {
		neutral = json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0;
		what = "the deprecated functions are not supported by this server; use tools";
	} else if (strcmp(key, "function_call") == 0) {
		neutral = json_object_is_type(v, json_type_string) &&
			  strcmp(json_object_get_string(v), "none") == 0;
		what = "the deprecated function_call is not supported by this server; use tool_choice";
	} else if (strcmp(key, "logprobs") == 0) {
		neutral = json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v);
		what = "log probabilities are not supported by this server";
	} else if (strcmp(key, "top_logprobs") == 0) {
		neutral = 0;
		what = "log probabilities are not supported by this server";
	} else if (strcmp(key, "logit_bias") == 0) {
		neutral = json_object_is_type(v, json_type_object) && json_object_object_length(v) == 0;
		what = "token biases are not supported by this server";
	} else if (strcmp(key, "modalities") == 0) {
		neutral = json_object_is_type(v, json_type_array) &&
			  json_object_array_length(v) == 1 &&
			  json_object_is_type(json_object_array_get_idx(v, 0), json_type_string) &&
			  strcmp(json_object_get_string(json_object_array_get_idx(v, 0)), "text") == 0;
		what = "only the text modality is supported by this server";
	} else {
		return 1; /* not one of these */
	}
	if (neutral || is_null(v))
		return 0;
	return openai_refuse(e, key, "unsupported_parameter", "%s: %s", key, what);
}

/* ---- the request as a whole ---- */

static int parse_flag(struct json_object *v, const char *name, int *out, struct openai_error *e)
{
	if (!is_null(v) && !json_object_is_type(v, json_type_boolean))
		return openai_refuse(e, name, NULL, "%s: must be a boolean", name);
	*out = is_null(v) ? -1 : json_object_get_boolean(v);
	return 0;
}

/* What the top-level loop has seen. */
struct seen {
	struct json_object *stream_options;
	int model, messages;
};

/* One top-level member. Returns 0, or -1 (refused). */
static int parse_member(struct openai_request *rq, const char *key, struct json_object *v,
			struct seen *seen, struct openai_error *e)
{
	int flag = -1;
	if (strcmp(key, "model") == 0) {
		if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v))
			return openai_refuse(e, "model", NULL, "model: must be a non-empty string");
		rq->model = json_object_get_string(v);
		seen->model = 1;
		return 0;
	}
	if (strcmp(key, "messages") == 0) {
		seen->messages = 1;
		return parse_messages(v, rq, e);
	}
	if (strcmp(key, "stream") == 0) {
		int rc = parse_flag(v, key, &flag, e);
		rq->stream = flag == 1;
		return rc;
	}
	if (strcmp(key, "stream_options") == 0) {
		if (!is_null(v) && !json_object_is_type(v, json_type_object))
			return openai_refuse(e, "stream_options", NULL, "stream_options: must be an object");
		seen->stream_options = v;
		return 0;
	}
	if (strcmp(key, "parallel_tool_calls") == 0)
		return parse_flag(v, key, &rq->parallel, e);
	if (strcmp(key, "stop") == 0)
		return parse_stop(v, rq, e);
	if (strcmp(key, "tools") == 0)
		return parse_tools(v, rq, e);
	if (strcmp(key, "tool_choice") == 0)
		return parse_tool_choice(v, rq, e);
	if (strcmp(key, "response_format") == 0)
		return parse_response_format(v, rq, e);
	if (strcmp(key, "reasoning_effort") == 0)
		return parse_reasoning(v, rq, e);
	if (strcmp(key, "max_tokens") == 0 || strcmp(key, "max_completion_tokens") == 0 ||
	    strcmp(key, "temperature") == 0 || strcmp(key, "top_p") == 0)
		return 0; /* read after the loop, in a fixed order */
	if (listed(unsupported_fields, key))
		return is_null(v) ? 0 : openai_refuse(e, key, "unsupported_parameter",
					       "%s: is not supported by this server", key);
	if (listed(ignored_fields, key))
		return 0;
	int rc = check_neutral(key, v, e);
	if (rc > 0)
		return openai_refuse(e, key, "unknown_parameter", "Unknown parameter: '%.60s'.", key);
	return rc;
}

/* What needs the whole request: required members, stream_options, the numbers. */
static int parse_rest(struct openai_request *rq, const struct seen *seen,
		      const struct openai_limits *lim, struct openai_error *e)
{
	struct json_object *iu;
	if (!seen->model)
		return openai_refuse(e, "model", NULL, "model: is required");
	if (!seen->messages)
		return openai_refuse(e, "messages", NULL, "messages: is required");
	if (seen->stream_options) {
		if (!rq->stream)
			return openai_refuse(e, "stream_options", NULL,
				      "stream_options: only allowed when stream is true");
		if (json_object_object_get_ex(seen->stream_options, "include_usage", &iu) &&
		    !is_null(iu)) {
			if (!json_object_is_type(iu, json_type_boolean))
				return openai_refuse(e, "stream_options.include_usage", NULL,
					      "stream_options.include_usage: must be a boolean");
			rq->include_usage = json_object_get_boolean(iu);
		}
	}
	if (parse_max_tokens(rq->root, lim, rq, e) < 0 ||
	    openai_parse_unit(rq->root, "temperature", &rq->temperature, e) < 0 ||
	    openai_parse_unit(rq->root, "top_p", &rq->top_p, e) < 0)
		return -1;
	return 0;
}

int openai_parse_request(const char *body, size_t len, const struct openai_limits *lim,
			 struct openai_request *rq, struct openai_error *e)
{
	memset(rq, 0, sizeof *rq);
	memset(e, 0, sizeof *e);
	rq->parallel = -1;
	enum jscan_result why;
	rq->root = jscan_parse(body, len, &why);
	if (why == JSCAN_COSTLY) {
		openai_refuse(e, NULL, NULL, "The request body holds too many JSON values for its size");
		e->kind = ERR_TOO_LARGE;
		goto fail;
	}
	if (why != JSCAN_OK) {
		openai_refuse(e, NULL, NULL, "The request body is not valid JSON");
		goto fail;
	}
	if (!json_object_is_type(rq->root, json_type_object)) {
		openai_refuse(e, NULL, NULL, "The request body must be a JSON object");
		goto fail;
	}
	struct seen seen = {0};
	json_object_object_foreach(rq->root, key, v)
	{
		if (parse_member(rq, key, v, &seen, e) < 0)
			goto fail;
	}
	if (parse_rest(rq, &seen, lim, e) < 0)
		goto fail;
	return 0;
fail:
	openai_request_release(rq);
	return -1;
}

void openai_request_release(struct openai_request *rq)
{
	json_object_put(rq->root);
	json_object_put(rq->messages);
	json_object_put(rq->stop_sequences);
	json_object_put(rq->tools);
	json_object_put(rq->tool_choice_out);
	json_object_put(rq->thinking);
	json_object_put(rq->output_format);
	free(rq->system);
	memset(rq, 0, sizeof *rq);
}

/* ---- the model's rules ---- */

/* A sampling parameter on a model that refuses them: a value equal to the default (1, for both
 * temperature and top_p) changes nothing and is dropped; any other is refused. */
static int apply_sampling(struct json_object **v, const char *name,
			  const struct catalogue_model *info, struct openai_error *e)
{
	if (!*v || !info || info->sampling)
		return 0;
	if (json_object_get_double(*v) == 1.0) {
		*v = NULL;
		return 0;
	}
	return openai_refuse(e, name, "unsupported_parameter", "%s: this model does not take %s; leave it "
		      "out (or send the default, 1)", name, name);
}

static struct json_object *choice(const char *type, const char *name, int parallel)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(type));
	if (name)
		json_object_object_add(o, "name", json_object_new_string(name));
	if (parallel == 0 && strcmp(type, "none") != 0)
		json_object_object_add(o, "disable_parallel_tool_use", json_object_new_boolean(1));
	return o;
}

static int has_tool(struct json_object *tools, const char *name)
{
	for (size_t i = 0; tools && i < json_object_array_length(tools); i++)
		if (strcmp(jx_string(json_object_array_get_idx(tools, i), "name"), name) == 0)
			return 1;
	return 0;
}

/* tool_choice: auto → auto, none → none, required → any, a named function → tool; a forced
 * choice where the model refuses one is a 400 naming tool_choice. */
static int apply_tool_choice(struct openai_request *rq, const struct catalogue_model *info,
			     struct openai_error *e)
{
	int forced = rq->tool_choice == OPENAI_TC_REQUIRED || rq->tool_choice == OPENAI_TC_NAMED;
	if (!rq->tools) {
		if (forced)
			return openai_refuse(e, "tool_choice", NULL, "tool_choice: a required or named tool "
				      "needs tools");
		return 0;
	}
	if (forced && info && !info->forced_tool_choice)
		return openai_refuse(e, "tool_choice", "unsupported_value", "tool_choice: this model does "
			      "not accept a forced tool choice (required or a named function); use "
			      "auto or none");
	if (rq->tool_choice == OPENAI_TC_NAMED && !has_tool(rq->tools, rq->tool_name))
		return openai_refuse(e, "tool_choice", NULL, "tool_choice: no tool is named '%.64s'",
			      rq->tool_name);
	switch (rq->tool_choice) {
	case OPENAI_TC_UNSET:
		if (rq->parallel == 0)
			rq->tool_choice_out = choice("auto", NULL, 0);
		break;
	case OPENAI_TC_NONE:
		rq->tool_choice_out = choice("none", NULL, rq->parallel);
		break;
	case OPENAI_TC_AUTO:
		rq->tool_choice_out = choice("auto", NULL, rq->parallel);
		break;
	case OPENAI_TC_REQUIRED:
		rq->tool_choice_out = choice("any", NULL, rq->parallel);
		break;
	case OPENAI_TC_NAMED:
		rq->tool_choice_out = choice("tool", rq->tool_name, rq->parallel);
		break;
	}
	return 0;
}

/* response_format: a JSON schema becomes structured output where the model has it; otherwise,
 * and for json_object (structured output takes only schemas whose objects are closed, and "any
 * object" is not one), a forced tool whose input is the answer, where the model takes a forced
 * tool_choice and the request has no tools of its own; else a 400 naming response_format. */
static int apply_format(struct openai_request *rq, const struct catalogue_model *info,
			struct openai_error *e)
{
	if (rq->format == OPENAI_FORMAT_TEXT)
		return 0;
	if (rq->format == OPENAI_FORMAT_JSON_SCHEMA && (!info || info->structured_output)) {
		rq->output_format = json_object_new_object();
		json_object_object_add(rq->output_format, "type", json_object_new_string("json_schema"));
		json_object_object_add(rq->output_format, "schema", json_object_get(rq->format_schema));
		return 0;
	}
	if (rq->tools || (info && !info->forced_tool_choice))
		return openai_refuse(e, "response_format", "unsupported_value", "response_format: %s is not "
			      "available %s", rq->format == OPENAI_FORMAT_JSON_OBJECT ? "json_object"
			      : "json_schema", rq->tools ? "together with tools on this model"
			      : "on this model (it has no structured output for it and refuses a "
			      "forced tool)");
	const char *name = rq->format_name ? rq->format_name : "json_object";
	struct json_object *t = json_object_new_object();
	json_object_object_add(t, "name", json_object_new_string(name));
	json_object_object_add(t, "description", json_object_new_string(
		"Give the answer as this tool's input: it is the whole reply."));
	json_object_object_add(t, "input_schema", rq->format_schema ? json_object_get(rq->format_schema)
				   : json_tokener_parse("{\"type\":\"object\"}"));
	rq->tools = json_object_new_array();
	json_object_array_add(rq->tools, t);
	json_object_put(rq->tool_choice_out);
	rq->tool_choice_out = choice("tool", name, -1);
	snprintf(rq->format_tool, sizeof rq->format_tool, "%s", name);
	return 0;
}

/* A Messages tool_choice that forces a tool: any, or a named tool. */
static int is_forced(struct json_object *tool_choice)
{
	const char *t = tool_choice ? jx_string(tool_choice, "type") : NULL;
	return t && (strcmp(t, "any") == 0 || strcmp(t, "tool") == 0);
}

static struct json_object *thinking_of(const char *type, long budget)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string(type));
	if (budget)
		json_object_object_add(o, "budget_tokens", json_object_new_int64(budget));
	return o;
}

/* Adaptive thinking the client will see: the current models (Opus 4.7 on, the 5.x models) return
 * empty thinking unless asked for display "summarized" (their default is "omitted"; read in
 * the ThinkingConfigAdaptive references and gateways' fixes, 2026-12-04), and a client that asked
 * for reasoning would get none. */
static struct json_object *adaptive_shown(int shown)
{
	struct json_object *o = thinking_of("adaptive", 0);
	if (shown)
		json_object_object_add(o, "display", json_object_new_string("summarized"));
	return o;
}

/* The Messages API's minimum thinking budget. */
#define BUDGET_MIN 1024

/* reasoning_effort on a model with extended thinking: a budget of a quarter, half or three
 * quarters of max_tokens for low (and minimal), medium, high. */
static int apply_budget(struct openai_request *rq, const char *level, struct openai_error *e)
{
	long q = strcmp(level, "low") == 0 ? 1 : strcmp(level, "medium") == 0 ? 2
		 : strcmp(level, "high") == 0 ? 3 : 0;
	if (!q)
		return openai_refuse(e, "reasoning_effort", "unsupported_value", "reasoning_effort: this "
			      "model takes minimal, low, medium or high");
	long budget = rq->max_tokens / 4 * q;
	if (budget < BUDGET_MIN)
		return openai_refuse(e, "reasoning_effort", "unsupported_value", "reasoning_effort: %s gives "
			      "this model a thinking budget of %ld tokens (%ld/4 of max_tokens), below "
			      "the minimum of %d: raise max_completion_tokens", level, budget, q,
			      BUDGET_MIN);
	rq->thinking = thinking_of("enabled", budget);
	return 0;
}

/* Thinking: off where the model allows it unless the client asked for reasoning; shown as
 * reasoning_content only when asked for. A request that hands tool results back whose calling
 * turn's thinking this server no longer has (the blocks do not travel through Chat Completions,
 * and the API wants them back) runs without thinking where the model allows it, and is a 400 on
 * a model that always thinks. */
static int apply_thinking(struct openai_request *rq, const struct catalogue_model *info,
			  struct openai_error *e)
{
	const char *r = rq->reasoning;
	int asked = r && strcmp(r, "none") != 0;
	const char *level = !asked ? "low" : strcmp(r, "minimal") == 0 ? "low" : r;
	int forced = is_forced(rq->tool_choice_out);
	int lost = rq->ends_with_results && !rq->thinking_back; /* results without their thinking */
	if (!info) { /* no catalogue: the client's request as sent, or nothing */
		if (asked && !lost) {
			rq->thinking = adaptive_shown(1);
			rq->effort = level;
			rq->show_reasoning = 1;
		}
		return 0;
	}
	int always = info->thinking == CATALOGUE_THINKING_ALWAYS_ON;
	if (always && lost)
		return openai_refuse(e, "messages", "thinking_not_found", "messages: this model always "
			      "thinks, and the API needs the thinking of the turn that called the tools "
			      "back with their results; this server keeps it for %d hours for the tool "
			      "calls it answered, and has none for this one (expired, evicted, or answered "
			      "elsewhere): start the tool round again, or use /v1/messages",
			      OPENAI_KEEP_TTL_S / 3600);
	if (asked && (info->thinking == CATALOGUE_THINKING_NONE || (forced && !always)))
		return openai_refuse(e, "reasoning_effort", "unsupported_value", "reasoning_effort: %s",
			      forced ? "reasoning cannot be combined with a forced tool choice (or a "
			      "response_format that needs one)" : "this model does not reason");
	if (always && r && strcmp(r, "none") == 0)
		return openai_refuse(e, "reasoning_effort", "unsupported_value", "reasoning_effort: this "
			      "model always reasons; none is not available");
	if (info->thinking == CATALOGUE_THINKING_NONE)
		return 0;
	if (!always && (!asked || lost)) {
		rq->thinking = thinking_of("disabled", 0);
		return 0;
	}
	rq->show_reasoning = asked;
	if (info->thinking == CATALOGUE_THINKING_EXTENDED)
		return apply_budget(rq, level, e);
	rq->thinking = adaptive_shown(rq->show_reasoning);
	if (catalogue_effort_ok(info, level, strlen(level)))
		rq->effort = level;
	else if (asked)
		return openai_refuse(e, "reasoning_effort", "unsupported_value", "reasoning_effort: this "
			      "model does not take '%s'", r);
	return 0;
}

/* ---- thinking across a tool round trip ---- */

static int is_thinking(const char *type)
{
	return type && (strcmp(type, "thinking") == 0 || strcmp(type, "redacted_thinking") == 0);
}

/* A tool call id fit for a store key: 1 to OPENAI_CALL_ID_MAX of [A-Za-z0-9_-]. */
static int call_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	return n && n <= OPENAI_CALL_ID_MAX &&
	       strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* blocks as JSON text, when there are any to keep with a call id (caller frees). */
static char *kept_text(struct json_object *blocks, const char *id, size_t *len)
{
	if (!blocks || !json_object_array_length(blocks) || !*id)
		return NULL;
	const char *s = json_object_to_json_string_length(blocks, ENCODE_FLAGS, len);
	return xstrndup(s, *len);
}

char *openai_thinking_kept(const char *body, size_t len, char id[OPENAI_CALL_ID_MAX + 1],
			   size_t *out_len)
{
	struct json_object *root = anthropic_json_parse_strict(body, len), *content;
	struct json_object *blocks = json_object_new_array();
	id[0] = '\0';
	size_t n = json_object_object_get_ex(root, "content", &content) &&
		   json_object_is_type(content, json_type_array) ? json_object_array_length(content) : 0;
	for (size_t i = 0; i < n && !id[0]; i++) {
		struct json_object *b = json_object_array_get_idx(content, i);
		const char *type = jx_string(b, "type");
		if (is_thinking(type)) {
			json_object_array_add(blocks, json_object_get(b));
		} else if (type && strcmp(type, "tool_use") == 0) {
			if (!call_id_ok(jx_string(b, "id")))
				break;
			snprintf(id, OPENAI_CALL_ID_MAX + 1, "%s", jx_string(b, "id"));
		}
	}
	char *out = kept_text(blocks, id, out_len);
	json_object_put(blocks);
	json_object_put(root);
	return out;
}

/* The assistant turn whose tool calls the request's last turn answers, or NULL. */
static struct json_object *calling_turn(const struct openai_request *rq)
{
	size_t n = rq->messages ? json_object_array_length(rq->messages) : 0;
	struct json_object *t = n >= 2 ? json_object_array_get_idx(rq->messages, n - 2) : NULL, *c;
	const char *role = jx_string(t, "role");
	if (!rq->ends_with_results || !role || strcmp(role, "assistant") != 0 ||
	    !json_object_object_get_ex(t, "content", &c) || !json_object_is_type(c, json_type_array))
		return NULL;
	return t;
}

const char *openai_thinking_wanted(const struct openai_request *rq)
{
	struct json_object *t = calling_turn(rq), *c = NULL;
	if (t)
		json_object_object_get_ex(t, "content", &c);
	size_t n = c ? json_object_array_length(c) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *b = json_object_array_get_idx(c, i);
		const char *type = jx_string(b, "type");
		if (is_thinking(type))
			return NULL;
		if (type && strcmp(type, "tool_use") == 0)
			return call_id_ok(jx_string(b, "id")) ? jx_string(b, "id") : NULL;
	}
	return NULL;
}

int openai_thinking_insert(struct openai_request *rq, const char *blocks, size_t len)
{
	struct json_object *t = calling_turn(rq), *kept = anthropic_json_parse_strict(blocks, len), *c;
	size_t n = json_object_is_type(kept, json_type_array) ? json_object_array_length(kept) : 0;
	int ok = t && n;
	for (size_t i = 0; ok && i < n; i++)
		ok = is_thinking(jx_string(json_object_array_get_idx(kept, i), "type"));
	if (!ok) {
		json_object_put(kept);
		return -1;
	}
	const char *type = rq->thinking ? jx_string(rq->thinking, "type") : NULL;
	if (!type || strcmp(type, "disabled") != 0) {
		/* The blocks first, as the API wants them, then the turn's text and calls. */
		json_object_object_get_ex(t, "content", &c);
		for (size_t i = 0; i < json_object_array_length(c); i++)
			json_object_array_add(kept, json_object_get(json_object_array_get_idx(c, i)));
		json_object_object_add(t, "content", json_object_get(kept));
	}
	json_object_put(kept);
	return 0;
}

int openai_apply_model(struct openai_request *rq, const struct catalogue_model *info,
		       struct openai_error *e)
{
	if (apply_sampling(&rq->temperature, "temperature", info, e) < 0 ||
	    apply_sampling(&rq->top_p, "top_p", info, e) < 0 || apply_tool_choice(rq, info, e) < 0 ||
	    apply_format(rq, info, e) < 0 || apply_thinking(rq, info, e) < 0)
		return -1;
	return 0;
}

char *openai_messages_body(const struct openai_request *rq, const char *model, size_t *len)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "model", json_object_new_string(model));
	json_object_object_add(o, "max_tokens", json_object_new_int64(rq->max_tokens));
	if (rq->system)
		json_object_object_add(o, "system", json_object_new_string(rq->system));
	json_object_object_add(o, "messages", json_object_get(rq->messages));
	if (rq->temperature)
		json_object_object_add(o, "temperature", json_object_get(rq->temperature));
	if (rq->top_p)
		json_object_object_add(o, "top_p", json_object_get(rq->top_p));
	if (rq->stop_sequences)
		json_object_object_add(o, "stop_sequences", json_object_get(rq->stop_sequences));
	if (rq->tools)
		json_object_object_add(o, "tools", json_object_get(rq->tools));
	if (rq->tool_choice_out)
		json_object_object_add(o, "tool_choice", json_object_get(rq->tool_choice_out));
	if (rq->thinking)
		json_object_object_add(o, "thinking", json_object_get(rq->thinking));
	if (rq->effort || rq->output_format) {
		struct json_object *oc = json_object_new_object();
		if (rq->effort)
			json_object_object_add(oc, "effort", json_object_new_string(rq->effort));
		if (rq->output_format)
			json_object_object_add(oc, "format", json_object_get(rq->output_format));
		json_object_object_add(o, "output_config", oc);
	}
	if (rq->stream)
		json_object_object_add(o, "stream", json_object_new_boolean(1));
	size_t n;
	const char *s = json_object_to_json_string_length(o, ENCODE_FLAGS, &n);
	char *out = xstrndup(s, n);
	json_object_put(o);
	*len = n;
	return out;
}

/* ---- errors and names ---- */

struct json_object *openai_error_body(const char *message, const char *type, const char *param,
				      const char *code)
{
	struct json_object *root = json_object_new_object();
	struct json_object *e = json_object_new_object();
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(e, "type", json_object_new_string(type));
	json_object_object_add(e, "param", param && *param ? json_object_new_string(param) : NULL);
	json_object_object_add(e, "code", code && *code ? json_object_new_string(code) : NULL);
	json_object_object_add(root, "error", e);
	return root;
}

const char *openai_error_type(const char *anthropic_type)
{
	static const struct {
		const char *anthropic, *openai;
	} map[] = {
		{"invalid_request_error", "invalid_request_error"},
		{"authentication_error", "invalid_request_error"},
		{"permission_error", "invalid_request_error"},
		{"not_found_error", "invalid_request_error"},
		{"request_too_large", "invalid_request_error"},
		{"rate_limit_error", "rate_limit_exceeded"},
		{"billing_error", "insufficient_quota"},
		{"timeout_error", "timeout"},
	};
	for (size_t i = 0; anthropic_type && i < sizeof map / sizeof map[0]; i++)
		if (strcmp(anthropic_type, map[i].anthropic) == 0)
			return map[i].openai;
	return "server_error"; /* api_error, overloaded_error and whatever comes next */
}

const char *openai_finish_reason(const char *stop_reason)
{
	static const struct {
		const char *stop, *finish;
	} map[] = {
		{"end_turn", "stop"},
		{"stop_sequence", "stop"},
		{"pause_turn", "stop"},
		{"max_tokens", "length"},
		{"model_context_window_exceeded", "length"},
		{"tool_use", "tool_calls"},
		{"refusal", "content_filter"},
	};
	for (size_t i = 0; stop_reason && i < sizeof map / sizeof map[0]; i++)
		if (strcmp(stop_reason, map[i].stop) == 0)
			return map[i].finish;
	return "stop";
}

/* ---- answers ---- */

/* Counts from a Messages usage object; absent counts leave *u as it was (a stream's
 * message_delta need not repeat what message_start said). */
void openai_read_usage(struct json_object *usage, struct openai_usage *u)
{
	struct anth_usage a;
	anthropic_read_usage(usage, &a);
	if (a.input_tokens >= 0)
		u->input_tokens = a.input_tokens;
	if (a.cache_creation_tokens >= 0)
		u->cache_creation_tokens = a.cache_creation_tokens;
	if (a.cache_read_tokens >= 0)
		u->cache_read_tokens = a.cache_read_tokens;
	if (a.output_tokens >= 0)
		u->output_tokens = a.output_tokens;
}

static struct json_object *usage_json(const struct openai_usage *u)
{
	long prompt = u->input_tokens + u->cache_creation_tokens + u->cache_read_tokens;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "prompt_tokens", json_object_new_int64(prompt));
	json_object_object_add(o, "completion_tokens", json_object_new_int64(u->output_tokens));
	json_object_object_add(o, "total_tokens", json_object_new_int64(prompt + u->output_tokens));
	if (u->cache_read_tokens) {
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "cached_tokens", json_object_new_int64(u->cache_read_tokens));
		json_object_object_add(o, "prompt_tokens_details", d);
	}
	return o;
}

/* "chatcmpl-" and the message id without its "msg_". */
static void completion_id(const char *msg_id, char *out, size_t cap)
{
	if (!msg_id || !*msg_id)
		msg_id = "0";
	if (strncmp(msg_id, "msg_", 4) == 0)
		msg_id += 4;
	snprintf(out, cap, "chatcmpl-%s", msg_id);
}

/* A tool_use block → a tool call {id, type, function: {name, arguments}} (new reference). */
static struct json_object *tool_call(struct json_object *block)
{
	struct json_object *input = NULL, *fn = json_object_new_object(), *c = json_object_new_object();
	json_object_object_get_ex(block, "input", &input);
	const char *args = input ? json_object_to_json_string_ext(input, ENCODE_FLAGS) : "{}";
	const char *id = jx_string(block, "id"), *name = jx_string(block, "name");
	json_object_object_add(fn, "name", json_object_new_string(name ? name : ""));
	json_object_object_add(fn, "arguments", json_object_new_string(args));
	json_object_object_add(c, "id", json_object_new_string(id ? id : ""));
	json_object_object_add(c, "type", json_object_new_string("function"));
	json_object_object_add(c, "function", fn);
	return c;
}

/* What a message's content becomes: its text, its tool calls, its thinking. */
struct reply {
	struct buf text, reasoning;
	struct json_object *calls; /* owned, NULL for none */
	int format_answered;       /* the response_format tool gave the content */
};

/* Returns 0, or -1 when a part is larger than the answer it came from could make it (r's
 * buffers hold the whole answer's size: only a re-serialised tool input could grow past it). */
static int reply_read(struct reply *r, struct json_object *content, const struct openai_request *rq)
{
	size_t n = json_object_array_length(content);
	int full = 0;
	for (size_t i = 0; i < n && !full; i++) {
		struct json_object *b = json_object_array_get_idx(content, i), *v;
		const char *type = jx_string(b, "type"), *s;
		if (!type)
			continue;
		if (strcmp(type, "text") == 0 && (s = jx_string(b, "text")))
			full = buf_appends(&r->text, s) < 0;
		else if (strcmp(type, "thinking") == 0 && rq->show_reasoning &&
			 (s = jx_string(b, "thinking")))
			full = buf_appends(&r->reasoning, s) < 0;
		else if (strcmp(type, "tool_use") == 0 && rq->format_tool[0] &&
			 strcmp(jx_string(b, "name") ? jx_string(b, "name") : "", rq->format_tool) == 0 &&
			 json_object_object_get_ex(b, "input", &v)) {
			/* The forced tool standing in for response_format: its input is the answer. */
			full = buf_appends(&r->text, json_object_to_json_string_ext(v, ENCODE_FLAGS)) < 0;
			r->format_answered = 1;
		} else if (strcmp(type, "tool_use") == 0) {
			if (!r->calls)
				r->calls = json_object_new_array();
			json_object_array_add(r->calls, tool_call(b));
		}
	}
	return full ? -1 : 0;
}

static struct json_object *reply_message(struct reply *r)
{
	struct json_object *msg = json_object_new_object();
	json_object_object_add(msg, "role", json_object_new_string("assistant"));
	/* OpenAI sends null content with tool calls and no text. */
	json_object_object_add(msg, "content", r->calls && !r->text.len ? NULL
				   : json_object_new_string_len(buf_cstr(&r->text), (int)r->text.len));
	if (r->reasoning.len)
		json_object_object_add(msg, "reasoning_content",
				       json_object_new_string_len(buf_cstr(&r->reasoning),
								  (int)r->reasoning.len));
	if (r->calls) {
		json_object_object_add(msg, "tool_calls", r->calls);
		r->calls = NULL;
	}
	json_object_object_add(msg, "refusal", NULL);
	return msg;
}

/* finish_reason: tool_use is "tool_calls", but "stop" when the only tool was response_format's. */
static const char *finish_of(const char *stop_reason, int format_only)
{
	if (format_only && stop_reason && strcmp(stop_reason, "tool_use") == 0)
		return "stop";
	return openai_finish_reason(stop_reason);
}

char *openai_completion(const char *body, size_t len, const struct openai_request *rq,
			long created, struct openai_usage *u, size_t *out_len)
{
	memset(u, 0, sizeof *u);
	struct json_object *root = anthropic_json_parse_strict(body, len), *content, *usage;
	const char *type = json_object_is_type(root, json_type_object) ? jx_string(root, "type") : NULL;
	if (!type || strcmp(type, "message") != 0 ||
	    !json_object_object_get_ex(root, "content", &content) ||
	    !json_object_is_type(content, json_type_array)) {
		json_object_put(root);
		return NULL;
	}
	struct reply r = {0};
	buf_init(&r.text, len);
	buf_init(&r.reasoning, len);
	if (reply_read(&r, content, rq) < 0) {
		buf_release(&r.text);
		buf_release(&r.reasoning);
		json_object_put(r.calls);
		json_object_put(root);
		return NULL; /* the relay answers 502: not an answer this server can pass on */
	}
	if (json_object_object_get_ex(root, "usage", &usage))
		openai_read_usage(usage, u);
	char id[160];
	completion_id(jx_string(root, "id"), id, sizeof id);

	struct json_object *o = json_object_new_object();
	struct json_object *choice = json_object_new_object();
	struct json_object *choices = json_object_new_array();
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "object", json_object_new_string("chat.completion"));
	json_object_object_add(o, "created", json_object_new_int64(created));
	json_object_object_add(o, "model", json_object_new_string(rq->model));
	json_object_object_add(choice, "index", json_object_new_int(0));
	json_object_object_add(choice, "message", reply_message(&r));
	json_object_object_add(choice, "finish_reason", json_object_new_string(finish_of(
		jx_string(root, "stop_reason"), r.format_answered)));
	json_object_object_add(choice, "logprobs", NULL);
	json_object_array_add(choices, choice);
	json_object_object_add(o, "choices", choices);
	json_object_object_add(o, "usage", usage_json(u));
	size_t sn;
	const char *s = json_object_to_json_string_length(o, ENCODE_FLAGS, &sn);
	char *out = xstrndup(s, sn);
	*out_len = sn;
	json_object_put(o);
	json_object_put(root);
	buf_release(&r.text);
	buf_release(&r.reasoning);
	return out;
}

/* ---- streams ---- */

/* What the content block in progress is. */
enum block_kind {
	BLOCK_OTHER = 0, /* text (its deltas are ANTH_EV_TEXT), thinking, anything else */
	BLOCK_TOOL,      /* a tool call: its input pieces are the call's arguments */
	BLOCK_FORMAT,    /* response_format's tool: its input pieces are the content */
};

void openai_stream_init(struct openai_stream *s, const struct openai_request *rq, long created)
{
	memset(s, 0, sizeof *s);
	s->model = xstrdup(rq->model);
	s->created = created;
	s->include_usage = rq->include_usage;
	s->show_reasoning = rq->show_reasoning;
	snprintf(s->format_tool, sizeof s->format_tool, "%s", rq->format_tool);
	s->block = -1;
	completion_id(NULL, s->id, sizeof s->id);
}

void openai_stream_release(struct openai_stream *s)
{
	free(s->model);
	s->model = NULL;
	json_object_put(s->kept);
	json_object_put(s->thinking);
	s->kept = s->thinking = NULL;
	buf_release(&s->think_text);
	buf_release(&s->think_sig);
}

void openai_stream_keep(struct openai_stream *s, size_t cap)
{
	s->keep_cap = cap;
	buf_init(&s->think_text, cap);
	buf_init(&s->think_sig, cap);
}

/* Stops keeping: the thinking is more than the store could hold. */
static void keep_none(struct openai_stream *s)
{
	s->keep_cap = 0;
	json_object_put(s->kept);
	json_object_put(s->thinking);
	s->kept = s->thinking = NULL;
}

/* content_block_start while keeping: a thinking block starts collecting its deltas, a redacted
 * one comes whole, the first tool call ends the collection. */
static void keep_start(struct openai_stream *s, struct json_object *b)
{
	const char *type = jx_string(b, "type");
	if (!s->keep_cap || s->kept_id[0] || !type)
		return;
	if (strcmp(type, "tool_use") == 0) {
		if (call_id_ok(jx_string(b, "id")))
			snprintf(s->kept_id, sizeof s->kept_id, "%s", jx_string(b, "id"));
		else
			keep_none(s);
		return;
	}
	if (!is_thinking(type))
		return;
	if (!s->kept)
		s->kept = json_object_new_array();
	if (strcmp(type, "redacted_thinking") == 0) {
		size_t n = strlen(json_object_to_json_string_ext(b, ENCODE_FLAGS));
		if ((s->kept_bytes += n) > s->keep_cap)
			keep_none(s);
		else
			json_object_array_add(s->kept, json_object_get(b));
		return;
	}
	json_object_put(s->thinking);
	s->thinking = json_object_get(b);
	buf_reset(&s->think_text);
	buf_reset(&s->think_sig);
}

/* A thinking or signature delta of the thinking block in progress. */
static void keep_delta(struct openai_stream *s, const char *type, struct json_object *d)
{
	struct json_object *v;
	int sig = strcmp(type, "signature_delta") == 0;
	if (!s->thinking || (!sig && strcmp(type, "thinking_delta") != 0) ||
	    !json_object_object_get_ex(d, sig ? "signature" : "thinking", &v) ||
	    !json_object_is_type(v, json_type_string))
		return;
	size_t n = (size_t)json_object_get_string_len(v);
	if ((s->kept_bytes += n) > s->keep_cap ||
	    buf_append(sig ? &s->think_sig : &s->think_text, json_object_get_string(v), n) < 0)
		keep_none(s);
}

/* content_block_stop of the thinking block in progress: it joins the kept blocks whole. */
static void keep_stop(struct openai_stream *s)
{
	if (!s->thinking || !s->kept)
		return;
	struct json_object *b = json_object_new_object();
	json_object_object_add(b, "type", json_object_new_string("thinking"));
	json_object_object_add(b, "thinking", json_object_new_string_len(s->think_text.data ?
		s->think_text.data : "", (int)s->think_text.len));
	json_object_object_add(b, "signature", json_object_new_string_len(s->think_sig.data ?
		s->think_sig.data : "", (int)s->think_sig.len));
	json_object_array_add(s->kept, b);
	json_object_put(s->thinking);
	s->thinking = NULL;
}

char *openai_stream_kept(struct openai_stream *s, size_t *len)
{
	return s->keep_cap ? kept_text(s->kept, s->kept_id, len) : NULL;
}

/* Appends "data: JSON\n\n" for o (a new reference, put here). */
static int put_frame(struct buf *out, struct json_object *o)
{
	size_t n;
	const char *js = json_object_to_json_string_length(o, ENCODE_FLAGS, &n);
	int rc = sse_encode(out, NULL, NULL, js, n);
	json_object_put(o);
	return rc;
}

/* A chat.completion.chunk: one choice with delta (taken over) and finish_reason, or with
 * delta NULL the usage chunk, whose choices are empty. */
static int put_chunk(struct openai_stream *s, struct buf *out, struct json_object *delta,
		     const char *finish)
{
	struct json_object *o = json_object_new_object();
	struct json_object *choices = json_object_new_array();
	json_object_object_add(o, "id", json_object_new_string(s->id));
	json_object_object_add(o, "object", json_object_new_string("chat.completion.chunk"));
	json_object_object_add(o, "created", json_object_new_int64(s->created));
	json_object_object_add(o, "model", json_object_new_string(s->model));
	if (delta) {
		struct json_object *c = json_object_new_object();
		json_object_object_add(c, "index", json_object_new_int(0));
		json_object_object_add(c, "delta", delta);
		json_object_object_add(c, "logprobs", NULL);
		json_object_object_add(c, "finish_reason", finish ? json_object_new_string(finish) : NULL);
		json_object_array_add(choices, c);
	}
	json_object_object_add(o, "choices", choices);
	/* With include_usage every chunk carries "usage": null but the last, as OpenAI sends. */
	if (!delta)
		json_object_object_add(o, "usage", usage_json(&s->usage));
	else if (s->include_usage)
		json_object_object_add(o, "usage", NULL);
	return put_frame(out, o);
}

/* A delta with one member, key: a string of n bytes. */
static struct json_object *delta_of(const char *key, const char *text, size_t n)
{
	struct json_object *d = json_object_new_object();
	json_object_object_add(d, key, json_object_new_string_len(text, (int)n));
	return d;
}

/* A delta {tool_calls: [call]} for the call in progress; call taken over. */
static struct json_object *tool_delta(struct openai_stream *s, struct json_object *call)
{
	struct json_object *d = json_object_new_object(), *calls = json_object_new_array();
	json_object_object_add(call, "index", json_object_new_int(s->n_tools - 1));
	json_object_array_add(calls, call);
	json_object_object_add(d, "tool_calls", calls);
	return d;
}

/* content_block_start: a tool call's first chunk carries its index, id, type and name, with
 * empty arguments, as OpenAI sends it. */
static int block_start(struct openai_stream *s, const char *data, size_t len, struct buf *out)
{
	struct json_object *root = anthropic_json_parse_strict(data, len), *b, *idx;
	if (!json_object_object_get_ex(root, "content_block", &b) ||
	    !json_object_object_get_ex(root, "index", &idx) || !jx_string(b, "type")) {
		json_object_put(root);
		return -1;
	}
	s->block = json_object_get_int64(idx);
	s->block_kind = BLOCK_OTHER;
	keep_start(s, b);
	const char *name = jx_string(b, "name");
	if (strcmp(jx_string(b, "type"), "tool_use") == 0 && name) {
		if (s->format_tool[0] && strcmp(name, s->format_tool) == 0) {
			s->block_kind = BLOCK_FORMAT;
		} else {
			s->block_kind = BLOCK_TOOL;
			s->n_tools++;
			struct json_object *c = tool_call(b);
			struct json_object *fn;
			json_object_object_get_ex(c, "function", &fn);
			json_object_object_add(fn, "arguments", json_object_new_string(""));
			put_chunk(s, out, tool_delta(s, c), NULL);
		}
	}
	json_object_put(root);
	return 0;
}

/* A content_block_delta that is not text: a piece of a tool call's arguments (or of
 * response_format's answer), or of thinking; each goes out as it arrives. */
static void block_delta(struct openai_stream *s, const struct anth_event *ev, struct buf *out)
{
	struct json_object *d, *v, *idx;
	if (!ev->root || !json_object_object_get_ex(ev->root, "delta", &d))
		return;
	/* A piece belongs to the block in progress; one for any other block is no call's. */
	if (!json_object_object_get_ex(ev->root, "index", &idx) ||
	    json_object_get_int64(idx) != s->block)
		return;
	const char *type = jx_string(d, "type");
	if (type)
		keep_delta(s, type, d);
	if (type && strcmp(type, "input_json_delta") == 0 &&
	    json_object_object_get_ex(d, "partial_json", &v) &&
	    json_object_is_type(v, json_type_string) && json_object_get_string_len(v)) {
		const char *p = json_object_get_string(v);
		size_t n = (size_t)json_object_get_string_len(v);
		if (s->block_kind == BLOCK_FORMAT) {
			put_chunk(s, out, delta_of("content", p, n), NULL);
		} else if (s->block_kind == BLOCK_TOOL) {
			struct json_object *fn = json_object_new_object(), *c = json_object_new_object();
			json_object_object_add(fn, "arguments", json_object_new_string_len(p, (int)n));
			json_object_object_add(c, "function", fn);
			put_chunk(s, out, tool_delta(s, c), NULL);
		}
	} else if (type && strcmp(type, "thinking_delta") == 0 && s->show_reasoning &&
		   json_object_object_get_ex(d, "thinking", &v) &&
		   json_object_is_type(v, json_type_string) && json_object_get_string_len(v)) {
		put_chunk(s, out, delta_of("reasoning_content", json_object_get_string(v),
					   (size_t)json_object_get_string_len(v)), NULL);
	}
}

static void message_start(struct openai_stream *s, const struct anth_event *ev, struct buf *out)
{
	struct json_object *m, *u, *delta;
	if (json_object_object_get_ex(ev->root, "message", &m)) {
		completion_id(jx_string(m, "id"), s->id, sizeof s->id);
		if (json_object_object_get_ex(m, "usage", &u))
			openai_read_usage(u, &s->usage);
	}
	delta = json_object_new_object();
	json_object_object_add(delta, "role", json_object_new_string("assistant"));
	json_object_object_add(delta, "content", json_object_new_string(""));
	put_chunk(s, out, delta, NULL);
}

enum openai_step openai_stream_event(struct openai_stream *s, const char *name, const char *data,
				     size_t len, const struct anth_event *ev, struct buf *out)
{
	struct json_object *u;
	switch (ev->kind) {
	case ANTH_EV_MESSAGE_START:
		message_start(s, ev, out);
		return OPENAI_GO_ON;
	case ANTH_EV_TEXT:
		put_chunk(s, out, delta_of("content", ev->text, ev->text_len), NULL);
		return OPENAI_GO_ON;
	case ANTH_EV_MESSAGE_DELTA:
		if (ev->stop_reason)
			snprintf(s->stop_reason, sizeof s->stop_reason, "%s", ev->stop_reason);
		/* Cumulative: it replaces what message_start said. */
		if (json_object_object_get_ex(ev->root, "usage", &u))
			openai_read_usage(u, &s->usage);
		return OPENAI_GO_ON;
	case ANTH_EV_MESSAGE_STOP:
		/* Only now is the answer known to be whole: the finish reason is a claim of that. */
		put_chunk(s, out, json_object_new_object(),
			  finish_of(s->stop_reason[0] ? s->stop_reason : NULL, s->n_tools == 0 &&
				    s->format_tool[0]));
		if (s->include_usage)
			put_chunk(s, out, NULL, NULL);
		/* The frame holds 4 KiB past twice the largest event: the last frames are short. */
		BUF_MUST(buf_appends(out, "data: [DONE]\n\n"));
		s->finished = 1;
		return OPENAI_DONE;
	case ANTH_EV_ERROR:
		return OPENAI_FAILED;
	case ANTH_EV_INVALID:
		return OPENAI_INVALID;
	case ANTH_EV_IGNORE:
		break;
	}
	if (strcmp(name, "content_block_start") == 0)
		return block_start(s, data, len, out) < 0 ? OPENAI_INVALID : OPENAI_GO_ON;
	if (strcmp(name, "content_block_delta") == 0)
		block_delta(s, ev, out);
	else if (strcmp(name, "content_block_stop") == 0) {
		keep_stop(s);
		s->block = -1;
		s->block_kind = BLOCK_OTHER;
	}
	else if (strcmp(name, "ping") == 0)
		/* Keeps idle timers of proxies and clients from firing while the model thinks. */
		sse_encode_comment(out, "ping");
	return OPENAI_GO_ON;
}

int openai_stream_error(struct buf *out, const char *anthropic_type, const char *message)
{
	return put_frame(out, openai_error_body(message, openai_error_type(anthropic_type), NULL,
						anthropic_type));
}
