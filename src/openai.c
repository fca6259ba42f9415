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

__attribute__((format(printf, 4, 5))) static int refuse(struct openai_error *e, const char *param,
							const char *code, const char *fmt, ...)
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
	"user", "seed", "frequency_penalty", "presence_penalty", "parallel_tool_calls", "store",
	"metadata", "service_tier", "prompt_cache_key", "safety_identifier", NULL,
};

/* Fields that would change the answer and have no Messages counterpart here. */
static const char *const unsupported_fields[] = {
	"audio", "prediction", "web_search_options", "reasoning_effort", "verbosity", NULL,
};

static int listed(const char *const *list, const char *key)
{
	for (; *list; list++)
		if (strcmp(*list, key) == 0)
			return 1;
	return 0;
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
		return refuse(e, param, NULL, "%s: must be a string or an array of text parts", param);
	size_t n = json_object_array_length(content);
	for (size_t j = 0; j < n; j++) {
		struct json_object *part = json_object_array_get_idx(content, j), *t;
		const char *type = jx_string(part, "type");
		if (!type || strcmp(type, "text") != 0 || !json_object_object_get_ex(part, "text", &t) ||
		    !json_object_is_type(t, json_type_string))
			return refuse(e, param, NULL, "%s: a system message takes text parts only",
				      param);
		BUF_MUST(buf_append(out, json_object_get_string(t),
				    (size_t)json_object_get_string_len(t)));
	}
	return 0;
}

/* The Messages form of a user or assistant turn's content: a string stays a string, text parts
 * become text blocks. Returns a new reference, or NULL (refused). */
static struct json_object *turn_content(struct json_object *content, size_t i,
					struct openai_error *e)
{
	char param[80];
	snprintf(param, sizeof param, "messages.[%zu].content", i);
	if (json_object_is_type(content, json_type_string))
		return json_object_get(content);
	if (!json_object_is_type(content, json_type_array)) {
		refuse(e, param, NULL, "%s: must be a string or an array of content parts", param);
		return NULL;
	}
	struct json_object *blocks = json_object_new_array();
	size_t n = json_object_array_length(content);
	for (size_t j = 0; j < n; j++) {
		struct json_object *part = json_object_array_get_idx(content, j), *t;
		const char *type = jx_string(part, "type");
		snprintf(param, sizeof param, "messages.[%zu].content.[%zu].type", i, j);
		if (!type) {
			refuse(e, param, NULL, "%s: a content part needs a type", param);
			json_object_put(blocks);
			return NULL;
		}
		if (strcmp(type, "text") != 0) {
			refuse(e, param, "unsupported_value",
			       "%s: content parts of type '%.40s' are not supported by this server; "
			       "only text is", param, type);
			json_object_put(blocks);
			return NULL;
		}
		if (!json_object_object_get_ex(part, "text", &t) ||
		    !json_object_is_type(t, json_type_string)) {
			snprintf(param, sizeof param, "messages.[%zu].content.[%zu].text", i, j);
			refuse(e, param, NULL, "%s: must be a string", param);
			json_object_put(blocks);
			return NULL;
		}
		/* The Messages API refuses empty text blocks; an empty part says nothing. */
		if (json_object_get_string_len(t) == 0)
			continue;
		struct json_object *b = json_object_new_object();
		json_object_object_add(b, "type", json_object_new_string("text"));
		json_object_object_add(b, "text", json_object_get(t));
		json_object_array_add(blocks, b);
	}
	return blocks;
}

static int parse_messages(struct json_object *msgs, struct openai_request *rq,
			  struct openai_error *e)
{
	if (!json_object_is_type(msgs, json_type_array) || json_object_array_length(msgs) == 0)
		return refuse(e, "messages", NULL, "messages: must be a non-empty array");
	struct buf system;
	buf_init(&system, (size_t)-1 / 2); /* bounded by the body it comes from */
	rq->messages = json_object_new_array();
	size_t n = json_object_array_length(msgs);
	char param[64];
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(msgs, i), *content, *v;
		const char *role = json_object_is_type(m, json_type_object) ? jx_string(m, "role") : NULL;
		snprintf(param, sizeof param, "messages.[%zu].role", i);
		if (!role) {
			refuse(e, param, NULL, "%s: every message needs a role", param);
			goto fail;
		}
		int is_system = strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
		if (!is_system && strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0) {
			refuse(e, param, "unsupported_value",
			       "%s: '%.40s' messages are not supported by this server (tool calling "
			       "is not available); use system, developer, user and assistant", param,
			       role);
			goto fail;
		}
		if (json_object_object_get_ex(m, "tool_calls", &v) && !is_null(v) &&
		    !(json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0)) {
			snprintf(param, sizeof param, "messages.[%zu].tool_calls", i);
			refuse(e, param, "unsupported_parameter",
			       "%s: tool calls are not supported by this server", param);
			goto fail;
		}
		if (json_object_object_get_ex(m, "function_call", &v) && !is_null(v)) {
			snprintf(param, sizeof param, "messages.[%zu].function_call", i);
			refuse(e, param, "unsupported_parameter",
			       "%s: function calls are not supported by this server", param);
			goto fail;
		}
		if (!json_object_object_get_ex(m, "content", &content) || is_null(content)) {
			snprintf(param, sizeof param, "messages.[%zu].content", i);
			refuse(e, param, NULL, "%s: is required", param);
			goto fail;
		}
		if (is_system) {
			if (system_text(content, i, &system, e) < 0)
				goto fail;
			continue;
		}
		struct json_object *c = turn_content(content, i, e);
		if (!c)
			goto fail;
		struct json_object *turn = json_object_new_object();
		json_object_object_add(turn, "role", json_object_new_string(role));
		json_object_object_add(turn, "content", c);
		json_object_array_add(rq->messages, turn);
	}
	if (json_object_array_length(rq->messages) == 0) {
		refuse(e, "messages", NULL, "messages: at least one user message is required");
		goto fail;
	}
	if (system.len)
		rq->system = buf_detach(&system);
	buf_release(&system);
	return 0;
fail:
	buf_release(&system);
	return -1;
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
			return refuse(e, names[i], NULL, "%s: must be an integer of at least 1",
				      names[i]);
		case ANTH_MAX_TOKENS_OVER:
			return refuse(e, names[i], "invalid_value",
				      "%s: %lld is more than this server allows (%ld)", names[i], n,
				      lim->max_tokens_limit);
		}
		rq->max_tokens = (long)n;
		return 0;
	}
	return 0;
}

/* temperature or top_p: a number from 0 to 1 (OpenAI's temperature goes to 2; Claude's to 1). */
static int parse_unit(struct json_object *root, const char *name, struct json_object **out,
		      struct openai_error *e)
{
	struct json_object *v;
	*out = NULL;
	if (!json_object_object_get_ex(root, name, &v) || is_null(v))
		return 0;
	if (!is_number(v))
		return refuse(e, name, NULL, "%s: must be a number", name);
	double d = json_object_get_double(v);
	if (!(d >= 0 && d <= 1))
		return refuse(e, name, "unsupported_value",
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
		return refuse(e, "stop", NULL, "stop: must be a string or an array of up to %d strings",
			      MAX_STOP);
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
			return refuse(e, "stop", NULL, "stop: must be a string or an array of up to %d "
				      "strings", MAX_STOP);
	if (n)
		rq->stop_sequences = json_object_get(v);
	return 0;
}

/* Fields accepted only with a value that changes nothing ("none", false, {"type":"text"}...). */
static int check_neutral(const char *key, struct json_object *v, struct openai_error *e)
{
	int neutral;
	const char *what;
	if (strcmp(key, "n") == 0) {
		neutral = json_object_is_type(v, json_type_int) && json_object_get_int64(v) == 1;
		what = "only 1 choice per request is supported by this server";
	} else if (strcmp(key, "tools") == 0 || strcmp(key, "functions") == 0) {
		neutral = json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0;
		what = "tool calling is not supported by this server";
	} else if (strcmp(key, "tool_choice") == 0 || strcmp(key, "function_call") == 0) {
		neutral = json_object_is_type(v, json_type_string) &&
			  strcmp(json_object_get_string(v), "none") == 0;
		what = "tool calling is not supported by this server (only \"none\")";
	} else if (strcmp(key, "response_format") == 0) {
		const char *t = json_object_is_type(v, json_type_object) ? jx_string(v, "type") : NULL;
		neutral = t && strcmp(t, "text") == 0;
		what = "only {\"type\": \"text\"} is supported by this server";
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
	return refuse(e, key, "unsupported_parameter", "%s: %s", key, what);
}

int openai_parse_request(const char *body, size_t len, const struct openai_limits *lim,
			 struct openai_request *rq, struct openai_error *e)
{
	memset(rq, 0, sizeof *rq);
	memset(e, 0, sizeof *e);
	enum jscan_result why;
	rq->root = jscan_parse(body, len, &why);
	if (why == JSCAN_COSTLY) {
		refuse(e, NULL, NULL, "The request body holds too many JSON values for its size");
		e->kind = ERR_TOO_LARGE;
		goto fail;
	}
	if (why != JSCAN_OK) {
		refuse(e, NULL, NULL, "The request body is not valid JSON");
		goto fail;
	}
	if (!json_object_is_type(rq->root, json_type_object)) {
		refuse(e, NULL, NULL, "The request body must be a JSON object");
		goto fail;
	}
	struct json_object *stream_options = NULL;
	int has_model = 0, has_messages = 0;
	json_object_object_foreach(rq->root, key, v)
	{
		if (strcmp(key, "model") == 0) {
			if (!json_object_is_type(v, json_type_string) || !json_object_get_string_len(v)) {
				refuse(e, "model", NULL, "model: must be a non-empty string");
				goto fail;
			}
			rq->model = json_object_get_string(v);
			has_model = 1;
		} else if (strcmp(key, "messages") == 0) {
			if (parse_messages(v, rq, e) < 0)
				goto fail;
			has_messages = 1;
		} else if (strcmp(key, "stream") == 0) {
			if (!is_null(v) && !json_object_is_type(v, json_type_boolean)) {
				refuse(e, "stream", NULL, "stream: must be a boolean");
				goto fail;
			}
			rq->stream = !is_null(v) && json_object_get_boolean(v);
		} else if (strcmp(key, "stream_options") == 0) {
			if (!is_null(v) && !json_object_is_type(v, json_type_object)) {
				refuse(e, "stream_options", NULL, "stream_options: must be an object");
				goto fail;
			}
			stream_options = v;
		} else if (strcmp(key, "stop") == 0) {
			if (parse_stop(v, rq, e) < 0)
				goto fail;
		} else if (strcmp(key, "max_tokens") == 0 || strcmp(key, "max_completion_tokens") == 0 ||
			   strcmp(key, "temperature") == 0 || strcmp(key, "top_p") == 0) {
			/* read below, in a fixed order */
		} else if (listed(unsupported_fields, key)) {
			if (!is_null(v)) {
				refuse(e, key, "unsupported_parameter",
				       "%s: is not supported by this server", key);
				goto fail;
			}
		} else if (!listed(ignored_fields, key)) {
			int rc = check_neutral(key, v, e);
			if (rc < 0)
				goto fail;
			if (rc > 0) {
				refuse(e, key, "unknown_parameter", "Unknown parameter: '%.60s'.", key);
				goto fail;
			}
		}
	}
	if (!has_model) {
		refuse(e, "model", NULL, "model: is required");
		goto fail;
	}
	if (!has_messages) {
		refuse(e, "messages", NULL, "messages: is required");
		goto fail;
	}
	if (stream_options) {
		struct json_object *iu;
		if (!rq->stream) {
			refuse(e, "stream_options", NULL,
			       "stream_options: only allowed when stream is true");
			goto fail;
		}
		if (json_object_object_get_ex(stream_options, "include_usage", &iu) && !is_null(iu)) {
			if (!json_object_is_type(iu, json_type_boolean)) {
				refuse(e, "stream_options.include_usage", NULL,
				       "stream_options.include_usage: must be a boolean");
				goto fail;
			}
			rq->include_usage = json_object_get_boolean(iu);
		}
	}
	if (parse_max_tokens(rq->root, lim, rq, e) < 0 ||
	    parse_unit(rq->root, "temperature", &rq->temperature, e) < 0 ||
	    parse_unit(rq->root, "top_p", &rq->top_p, e) < 0)
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
	free(rq->system);
	memset(rq, 0, sizeof *rq);
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
static void read_usage(struct json_object *usage, struct openai_usage *u)
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

char *openai_completion(const char *body, size_t len, const char *model, long created,
			struct openai_usage *u, size_t *out_len)
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
	struct buf text;
	buf_init(&text, len);
	/* Thinking and other block kinds have no place in a chat message. The text is a part of
	 * the body's strings, unescaped: never longer than the body. */
	BUF_MUST(anthropic_content_text(content, &text));
	if (json_object_object_get_ex(root, "usage", &usage))
		read_usage(usage, u);
	char id[160];
	completion_id(jx_string(root, "id"), id, sizeof id);

	struct json_object *o = json_object_new_object();
	struct json_object *choice = json_object_new_object();
	struct json_object *msg = json_object_new_object();
	struct json_object *choices = json_object_new_array();
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "object", json_object_new_string("chat.completion"));
	json_object_object_add(o, "created", json_object_new_int64(created));
	json_object_object_add(o, "model", json_object_new_string(model));
	json_object_object_add(msg, "role", json_object_new_string("assistant"));
	json_object_object_add(msg, "content", json_object_new_string_len(buf_cstr(&text), (int)text.len));
	json_object_object_add(msg, "refusal", NULL);
	json_object_object_add(choice, "index", json_object_new_int(0));
	json_object_object_add(choice, "message", msg);
	json_object_object_add(choice, "finish_reason",
			       json_object_new_string(openai_finish_reason(jx_string(root, "stop_reason"))));
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
	buf_release(&text);
	return out;
}

/* ---- streams ---- */

void openai_stream_init(struct openai_stream *s, const char *model, long created,
			int include_usage)
{
	memset(s, 0, sizeof *s);
	s->model = xstrdup(model);
	s->created = created;
	s->include_usage = include_usage;
	completion_id(NULL, s->id, sizeof s->id);
}

void openai_stream_release(struct openai_stream *s)
{
	free(s->model);
	s->model = NULL;
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

enum openai_step openai_stream_event(struct openai_stream *s, const char *name,
				     const struct anth_event *ev, struct buf *out)
{
	struct json_object *m, *u, *delta;
	switch (ev->kind) {
	case ANTH_EV_MESSAGE_START:
		if (json_object_object_get_ex(ev->root, "message", &m)) {
			completion_id(jx_string(m, "id"), s->id, sizeof s->id);
			if (json_object_object_get_ex(m, "usage", &u))
				read_usage(u, &s->usage);
		}
		delta = json_object_new_object();
		json_object_object_add(delta, "role", json_object_new_string("assistant"));
		json_object_object_add(delta, "content", json_object_new_string(""));
		put_chunk(s, out, delta, NULL);
		return OPENAI_GO_ON;
	case ANTH_EV_TEXT:
		delta = json_object_new_object();
		json_object_object_add(delta, "content",
				       json_object_new_string_len(ev->text, (int)ev->text_len));
		put_chunk(s, out, delta, NULL);
		return OPENAI_GO_ON;
	case ANTH_EV_MESSAGE_DELTA:
		if (ev->stop_reason)
			snprintf(s->stop_reason, sizeof s->stop_reason, "%s", ev->stop_reason);
		/* Cumulative: it replaces what message_start said. */
		if (json_object_object_get_ex(ev->root, "usage", &u))
			read_usage(u, &s->usage);
		return OPENAI_GO_ON;
	case ANTH_EV_MESSAGE_STOP:
		/* Only now is the answer known to be whole: the finish reason is a claim of that. */
		put_chunk(s, out, json_object_new_object(),
			  openai_finish_reason(s->stop_reason[0] ? s->stop_reason : NULL));
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
		/* Keeps idle timers of proxies and clients from firing while the model thinks. */
		if (strcmp(name, "ping") == 0)
			sse_encode_comment(out, "ping");
		return OPENAI_GO_ON;
	}
	return OPENAI_GO_ON;
}

int openai_stream_error(struct buf *out, const char *anthropic_type, const char *message)
{
	return put_frame(out, openai_error_body(message, openai_error_type(anthropic_type), NULL,
						anthropic_type));
}
