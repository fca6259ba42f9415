/* api: see api.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif

#include "api.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "faults.h"
#include "message.h"
#include "models.h"
#include "stats.h"
#include "stream.h"

#define ANSWER_MAX ((size_t)16 * 1024 * 1024) /* generated answer text */

struct api_config api_config = { NULL, 20, 0, 0 };

/* Error type and message of an injected status, after the reference's table. */
static void status_error(int status, const char **type, const char **msg)
{
	*type = "api_error";
	*msg = conn_reason(status);
	switch (status) {
	case 400: *type = "invalid_request_error"; *msg = "Invalid request"; break;
	case 401: *type = "authentication_error"; *msg = "invalid x-api-key"; break;
	case 402:
		*type = "billing_error";
		*msg = "Your credit balance is too low to access the Anthropic API.";
		break;
	case 403:
		*type = "permission_error";
		*msg = "Your API key does not have permission to use the specified resource.";
		break;
	case 404: *type = "not_found_error"; *msg = "Not Found"; break;
	case 413: *type = "request_too_large"; *msg = "Request exceeds the maximum size"; break;
	case 429:
		*type = "rate_limit_error";
		*msg = "This request would exceed the rate limit for your organization.";
		break;
	case 500: *msg = "Internal server error"; break;
	case 504: *type = "timeout_error"; *msg = "Request timed out"; break;
	case 529: *type = "overloaded_error"; *msg = "Overloaded"; break;
	default: break;
	}
}

/* What a request gets of thinking: whether a thinking block comes before the text, its tokens
 * (at most max_tokens), and whether its text is shown. */
struct think {
	bool on, shown;
	long tokens;
};

/* ---- text --------------------------------------------------------------- */

struct span {
	const char *p;
	size_t n;
};

/*
 * Counts the whitespace-separated words of s (complete markers act as
 * whitespace), storing them in *out when out is not NULL (caller frees).
 */
static size_t scan_words(const char *s, size_t n, struct span **out)
{
	size_t count = 0, cap = 0, i = 0;

	while (i < n) {
		size_t m = faults_marker_len(s + i, n - i), start;

		if (m) {
			i += m;
			continue;
		}
		if (is_space(s[i])) {
			i++;
			continue;
		}
		start = i;
		while (i < n && !is_space(s[i]) && !faults_marker_len(s + i, n - i))
			i++;
		if (out) {
			if (count == cap) {
				cap = cap ? 2 * cap : 16;
				*out = xrealloc(*out, cap * sizeof **out);
			}
			(*out)[count].p = s + start;
			(*out)[count].n = i - start;
		}
		count++;
	}
	return count;
}

/*
 * Appends the text of a content value: a string, or the text of its blocks
 * joined by spaces.  Lenient, since it also runs on requests that will fail
 * validation (to find their id).
 */
static void content_text(struct obuf *out, json_object *content)
{
	bool first = true;
	size_t n;

	if (json_object_is_type(content, json_type_string)) {
		obuf_add(out, json_object_get_string(content),
			(size_t)json_object_get_string_len(content));
		return;
	}
	if (!json_object_is_type(content, json_type_array))
		return;
	n = json_object_array_length(content);
	for (size_t i = 0; i < n; i++) {
		json_object *t, *b = json_object_array_get_idx(content, i);

		/* A tool result's content is text the model reads: an answer to it repeats it. */
		if (json_object_object_get_ex(b, "type", &t) && json_object_is_type(t, json_type_string) &&
		    strcmp(json_object_get_string(t), "tool_result") == 0 &&
		    json_object_object_get_ex(b, "content", &t)) {
			if (!first)
				obuf_add(out, " ", 1);
			first = false;
			content_text(out, t);
			continue;
		}
		if (!json_object_object_get_ex(b, "text", &t) ||
		    !json_object_is_type(t, json_type_string))
			continue;
		if (!first)
			obuf_add(out, " ", 1);
		first = false;
		obuf_add(out, json_object_get_string(t), (size_t)json_object_get_string_len(t));
	}
}

static void last_user_text(json_object *root, struct obuf *out)
{
	json_object *msgs, *role, *content;

	if (!json_object_object_get_ex(root, "messages", &msgs) ||
	    !json_object_is_type(msgs, json_type_array))
		return;
	for (size_t i = json_object_array_length(msgs); i-- > 0;) {
		json_object *m = json_object_array_get_idx(msgs, i);

		if (json_object_object_get_ex(m, "role", &role) &&
		    json_object_is_type(role, json_type_string) &&
		    strcmp(json_object_get_string(role), "user") == 0) {
			if (json_object_object_get_ex(m, "content", &content))
				content_text(out, content);
			return;
		}
	}
}

/* input_tokens: the words of system plus every message, markers not counted. */
static long input_tokens(json_object *root)
{
	struct obuf t = { 0 };
	json_object *v;
	long n;

	if (json_object_object_get_ex(root, "system", &v))
		content_text(&t, v);
	if (json_object_object_get_ex(root, "messages", &v) &&
	    json_object_is_type(v, json_type_array)) {
		size_t len = json_object_array_length(v);

		for (size_t i = 0; i < len; i++) {
			json_object *content;

			if (json_object_object_get_ex(json_object_array_get_idx(v, i), "content",
						      &content)) {
				obuf_add(&t, " ", 1);
				content_text(&t, content);
			}
		}
	}
	n = (long)scan_words(t.p ? t.p : "", t.len, NULL);
	obuf_free(&t);
	return n;
}

/* Cuts the answer before the earliest stop sequence, if any occurs. */
static void answer_stop(struct message *m, json_object *stops)
{
	size_t best = SIZE_MAX, n, kept = 0;
	const char *match = NULL;

	if (!json_object_is_type(stops, json_type_array))
		return;
	n = json_object_array_length(stops);
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(stops, i);
		size_t sl = (size_t)json_object_get_string_len(s);
		const char *hit;

		if (!sl || !m->text_len)
			continue;
		hit = memmem(m->text, m->text_len, json_object_get_string(s), sl);
		if (hit && (size_t)(hit - m->text) < best) {
			best = (size_t)(hit - m->text);
			match = json_object_get_string(s);
		}
	}
	if (!match)
		return;
	while (kept < m->ndeltas && m->doff[kept] < best)
		kept++;
	m->ndeltas = kept;
	m->doff[kept] = best;
	m->text_len = best;
	m->text[best] = '\0';
	m->stop_reason = "stop_sequence";
	m->stop_seq = xstrndup(match, strlen(match));
}

/*
 * The deterministic answer: `words` words cycling through the words of src,
 * capped by max_tokens.  Delta 0 is the first word, every later delta is a
 * space and the next word, so the deltas concatenate to the text.
 */
static void answer_build(struct message *m, const char *src, size_t srclen, long words,
			 int64_t max_tokens, json_object *stops)
{
	static const struct span ok = { "ok", 2 };
	struct span *tok = NULL;
	size_t ntok = scan_words(src, srclen, &tok), k;
	long want = (int64_t)words < max_tokens ? words : max_tokens > 0 ? (long)max_tokens : 0;
	bool capped = want < words;
	struct obuf t = { 0 };

	m->doff = xcalloc((size_t)want + 1, sizeof *m->doff);
	for (k = 0; k < (size_t)want; k++) {
		const struct span *w = ntok ? &tok[k % ntok] : &ok;

		if (t.len + w->n + 1 > ANSWER_MAX) {
			capped = true;
			break;
		}
		m->doff[k] = t.len;
		if (k)
			obuf_add(&t, " ", 1);
		obuf_add(&t, w->p, w->n);
	}
	obuf_cstr(&t);
	m->text = t.p;
	m->text_len = t.len;
	m->ndeltas = k;
	m->doff[k] = t.len;
	m->stop_reason = capped ? "max_tokens" : "end_turn";
	free(tok);
	answer_stop(m, stops);
	m->out_tok = (long)m->ndeltas;
}

/* The thinking block before the text: thinking=N from a marker, else the request's share. Its
 * tokens count against max_tokens, so the text gets what is left. */
static void answer_think(struct message *m, const struct think *t, long forced, int64_t max_tokens)
{
	static const char shown[] = "Reading the request and planning the answer.";
	long tokens = forced >= 0 ? forced : t->tokens;

	m->think_tok = tokens < max_tokens ? tokens : (long)max_tokens;
	m->thinking = xstrndup(t->shown ? shown : "", t->shown ? sizeof shown - 1 : 0);
	message_signature(m->thinking, strlen(m->thinking), m->signature);
}

/* huge:BYTES: one text (one delta) of exactly BYTES bytes, for size caps. */
static void answer_huge(struct message *m, long bytes)
{
	static const char pat[] = "lorem ipsum dolor sit amet ";

	m->text = xrealloc(NULL, (size_t)bytes + 1);
	for (long i = 0; i < bytes; i++)
		m->text[i] = pat[(size_t)i % (sizeof pat - 1)];
	m->text[bytes] = '\0';
	m->text_len = (size_t)bytes;
	m->doff = xcalloc(2, sizeof *m->doff);
	m->doff[1] = (size_t)bytes;
	m->ndeltas = 1;
	m->stop_reason = "end_turn";
	m->out_tok = (long)scan_words(m->text, m->text_len, NULL);
}

/* ---- request validation ------------------------------------------------- */

static bool fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
	return false;
}

static bool is_str(json_object *v)
{
	return json_object_is_type(v, json_type_string);
}

/* Rejects keys of o missing from allowed[], as the real API's strict schema does. */
static bool check_keys(json_object *o, const char *const *allowed, const char *path,
		       char *err, size_t n)
{
	struct json_object_iterator it = json_object_iter_begin(o);
	struct json_object_iterator end = json_object_iter_end(o);

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *k = json_object_iter_peek_name(&it);
		const char *const *a = allowed;

		while (*a && strcmp(*a, k) != 0)
			a++;
		if (!*a)
			return fail(err, n, "%s%.100s: Extra inputs are not permitted", path, k);
	}
	return true;
}

/* A text block: the only kind in system, and the usual one in messages. */
static bool check_text_block(json_object *b, const char *path, const char *top, char *err,
			     size_t n)
{
	static const char *const keys[] = { "type", "text", "cache_control", "citations", NULL };
	json_object *x;
	char sub[96];

	if (!json_object_object_get_ex(b, "text", &x))
		return fail(err, n, "%s.text: Field required", path);
	if (!is_str(x))
		return fail(err, n, "%s.text: Input should be a valid string", path);
	if (!json_object_get_string_len(x))
		return fail(err, n, "%s: text content blocks must be non-empty", top);
	snprintf(sub, sizeof sub, "%s.", path);
	return check_keys(b, keys, sub, err, n);
}

/* An image block: a base64 source of a type the API reads, or a URL source. */
static bool check_image(json_object *b, const char *path, char *err, size_t n)
{
	static const char *const keys[] = { "type", "source", "cache_control", NULL };
	static const char *const types[] = { "image/jpeg", "image/png", "image/gif", "image/webp" };
	json_object *src = jget(b, "source");
	const char *st = json_object_get_string(jget(src, "type"));
	char sub[96];

	if (!json_object_is_type(src, json_type_object) || !st)
		return fail(err, n, "%s.source: Field required", path);
	if (strcmp(st, "url") == 0) {
		if (!is_str(jget(src, "url")))
			return fail(err, n, "%s.source.url: Field required", path);
	} else if (strcmp(st, "base64") == 0) {
		const char *mt = json_object_get_string(jget(src, "media_type"));
		bool known = false;

		for (size_t i = 0; mt && i < sizeof types / sizeof types[0]; i++)
			known = known || strcmp(mt, types[i]) == 0;
		if (!known)
			return fail(err, n, "%s.source.media_type: Input should be 'image/jpeg', "
				    "'image/png', 'image/gif' or 'image/webp'", path);
		if (!is_str(jget(src, "data")))
			return fail(err, n, "%s.source.data: Field required", path);
	} else {
		return fail(err, n, "%s.source.type: Input should be 'base64' or 'url'", path);
	}
	snprintf(sub, sizeof sub, "%s.", path);
	return check_keys(b, keys, sub, err, n);
}

/* The other blocks a conversation with thinking and tools carries back: their keys, and the
 * string members they need. A thinking block's signature must be the one the emulator gave it. */
static bool check_other_block(json_object *b, const char *type, const char *path, char *err,
			      size_t n)
{
	static const struct {
		const char *type, *need1, *need2;
		const char *keys[6];
	} kinds[] = {
		{ "thinking", "thinking", "signature", { "type", "thinking", "signature", NULL } },
		{ "redacted_thinking", "data", NULL, { "type", "data", NULL } },
		{ "tool_use", "id", "name", { "type", "id", "name", "input", "cache_control", NULL } },
		{ "tool_result", "tool_use_id", NULL,
		  { "type", "tool_use_id", "content", "is_error", "cache_control", NULL } },
	};
	char sub[96], sig[SIG_LEN];

	if (strcmp(type, "image") == 0)
		return check_image(b, path, err, n);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		json_object *t;

		if (strcmp(kinds[k].type, type) != 0)
			continue;
		if (!json_object_object_get_ex(b, kinds[k].need1, &t) || !is_str(t))
			return fail(err, n, "%s.%s: Field required", path, kinds[k].need1);
		if (kinds[k].need2 && (!json_object_object_get_ex(b, kinds[k].need2, &t) || !is_str(t)))
			return fail(err, n, "%s.%s: Field required", path, kinds[k].need2);
		snprintf(sub, sizeof sub, "%s.", path);
		if (!check_keys(b, kinds[k].keys, sub, err, n))
			return false;
		if (k > 0)
			return true;
		t = jget(b, "thinking");
		message_signature(json_object_get_string(t), (size_t)json_object_get_string_len(t), sig);
		if (strcmp(json_object_get_string(jget(b, "signature")), sig) != 0)
			return fail(err, n, "%s: Invalid `signature` in `thinking` block", path);
		return true;
	}
	return fail(err, n, "%s.type: Input should be 'text', 'image', 'thinking', "
		    "'redacted_thinking', 'tool_use' or 'tool_result'", path);
}

static bool check_block(json_object *b, const char *path, const char *top, char *err, size_t n)
{
	json_object *t;
	const char *type;

	if (!json_object_is_type(b, json_type_object))
		return fail(err, n, "%s: Input should be a valid dictionary", path);
	if (!json_object_object_get_ex(b, "type", &t))
		return fail(err, n, "%s.type: Field required", path);
	type = is_str(t) ? json_object_get_string(t) : "";
	if (strcmp(type, "text") == 0)
		return check_text_block(b, path, top, err, n);
	if (strcmp(top, "system") == 0)
		return fail(err, n, "%s.type: Input should be 'text'", path);
	return check_other_block(b, type, path, err, n);
}

static bool check_blocks(json_object *arr, const char *path, const char *top, char *err, size_t n)
{
	size_t len = json_object_array_length(arr);

	for (size_t k = 0; k < len; k++) {
		char p[80];

		snprintf(p, sizeof p, "%s.%zu", path, k);
		if (!check_block(json_object_array_get_idx(arr, k), p, top, err, n))
			return false;
	}
	return true;
}

static bool check_content(json_object *m, size_t i, bool may_be_empty, char *err, size_t n)
{
	json_object *content;
	char path[64];
	bool empty;

	snprintf(path, sizeof path, "messages.%zu.content", i);
	if (!json_object_object_get_ex(m, "content", &content))
		return fail(err, n, "%s: Field required", path);
	if (is_str(content))
		empty = json_object_get_string_len(content) == 0;
	else if (json_object_is_type(content, json_type_array))
		empty = json_object_array_length(content) == 0;
	else
		return fail(err, n, "%s: Input should be a valid list", path);
	if (empty && !may_be_empty)
		return fail(err, n, "messages.%zu: all messages must have non-empty content "
			    "except for the optional final assistant message", i);
	return is_str(content) || check_blocks(content, path, "messages", err, n);
}

static bool check_messages(json_object *msgs, char *err, size_t n)
{
	static const char *const keys[] = { "role", "content", NULL };
	size_t len;

	if (!json_object_is_type(msgs, json_type_array))
		return fail(err, n, "messages: Input should be a valid list");
	len = json_object_array_length(msgs);
	if (!len)
		return fail(err, n, "messages: List should have at least 1 item after validation, not 0");
	for (size_t i = 0; i < len; i++) {
		json_object *m = json_object_array_get_idx(msgs, i), *role;
		const char *rs;
		char path[48];
		bool assistant;

		if (!json_object_is_type(m, json_type_object))
			return fail(err, n, "messages.%zu: Input should be a valid dictionary", i);
		snprintf(path, sizeof path, "messages.%zu.", i);
		if (!check_keys(m, keys, path, err, n))
			return false;
		if (!json_object_object_get_ex(m, "role", &role))
			return fail(err, n, "messages.%zu.role: Field required", i);
		rs = is_str(role) ? json_object_get_string(role) : "";
		assistant = strcmp(rs, "assistant") == 0;
		if (!assistant && strcmp(rs, "user") != 0)
			return fail(err, n, "messages.%zu.role: Input should be 'user' or 'assistant'", i);
		if (!check_content(m, i, assistant && i + 1 == len, err, n))
			return false;
	}
	return true;
}

static bool check_optional(json_object *root, char *err, size_t n)
{
	json_object *v;

	if (json_object_object_get_ex(root, "system", &v) && !is_str(v)) {
		if (!json_object_is_type(v, json_type_array))
			return fail(err, n, "system: Input should be a valid list");
		if (!check_blocks(v, "system", "system", err, n))
			return false;
	}
	if (json_object_object_get_ex(root, "stream", &v) &&
	    !json_object_is_type(v, json_type_boolean))
		return fail(err, n, "stream: Input should be a valid boolean");
	if (json_object_object_get_ex(root, "temperature", &v)) {
		double t;

		if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
			return fail(err, n, "temperature: Input should be a valid number");
		t = json_object_get_double(v);
		if (t < 0 || t > 1)
			return fail(err, n, "temperature: range: 0..1");
	}
	if (json_object_object_get_ex(root, "stop_sequences", &v)) {
		size_t len;

		if (!json_object_is_type(v, json_type_array))
			return fail(err, n, "stop_sequences: Input should be a valid list");
		len = json_object_array_length(v);
		for (size_t i = 0; i < len; i++)
			if (!is_str(json_object_array_get_idx(v, i)))
				return fail(err, n, "stop_sequences.%zu: Input should be a valid string", i);
	}
	return true;
}

/* Schema of POST /v1/messages (count == false) or /v1/messages/count_tokens. */
static bool check_request(json_object *root, bool count, char *err, size_t n)
{
	static const char *const msg_keys[] = {
		"model", "max_tokens", "messages", "system", "stream", "temperature", "top_p",
		"top_k", "stop_sequences", "metadata", "tools", "tool_choice", "thinking",
		"service_tier", "output_config", NULL
	};
	static const char *const count_keys[] = {
		"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
		NULL
	};
	json_object *v;
	int ml;

	if (!json_object_is_type(root, json_type_object))
		return fail(err, n, "Input should be a valid dictionary");
	if (!json_object_object_get_ex(root, "model", &v))
		return fail(err, n, "model: Field required");
	if (!is_str(v))
		return fail(err, n, "model: Input should be a valid string");
	ml = json_object_get_string_len(v);
	if (ml < 1)
		return fail(err, n, "model: String should have at least 1 character");
	if (ml > 256)
		return fail(err, n, "model: String should have at most 256 characters");
	if (!count) {
		if (!json_object_object_get_ex(root, "max_tokens", &v))
			return fail(err, n, "max_tokens: Field required");
		if (!json_object_is_type(v, json_type_int))
			return fail(err, n, "max_tokens: Input should be a valid integer");
		if (json_object_get_int64(v) < 1)
			return fail(err, n, "max_tokens: Input should be greater than or equal to 1");
	}
	if (!json_object_object_get_ex(root, "messages", &v))
		return fail(err, n, "messages: Field required");
	if (!check_messages(v, err, n))
		return false;
	if (!check_keys(root, count ? count_keys : msg_keys, "", err, n))
		return false;
	return check_optional(root, err, n);
}

/* ---- the model's rules (from the catalogue) ----------------------------- */

/* Sampling parameters on a model that refuses them: the API's words. */
static bool check_sampling(json_object *root, const struct catalogue_model *m, char *err, size_t n)
{
	static const char *const params[] = { "temperature", "top_p", "top_k" };

	for (size_t i = 0; i < sizeof params / sizeof params[0] && !m->sampling; i++)
		if (jget(root, params[i]))
			return fail(err, n, "`%s` is deprecated for this model.", params[i]);
	return true;
}

static bool check_tool_choice(json_object *root, const struct catalogue_model *m, char *err,
			      size_t n)
{
	const char *t = json_object_get_string(jget(jget(root, "tool_choice"), "type"));

	if (!m->forced_tool_choice && t && (strcmp(t, "any") == 0 || strcmp(t, "tool") == 0))
		return fail(err, n, "tool_choice: forcing tool use (type `%s`) is not supported by "
			    "this model; use `auto` or `none`", t);
	return true;
}

/* output_config.effort: NULL when absent; a level the model refuses is a 400. */
static bool read_effort(json_object *root, const struct catalogue_model *m, const char **effort,
			char *err, size_t n)
{
	json_object *oc = jget(root, "output_config"), *e = jget(oc, "effort");

	*effort = NULL;
	if (oc && !json_object_is_type(oc, json_type_object))
		return fail(err, n, "output_config: Input should be a valid dictionary");
	if (!e)
		return true;
	if (!is_str(e))
		return fail(err, n, "output_config.effort: Input should be a valid string");
	if (!m->effort)
		return fail(err, n, "output_config.effort: effort is not supported by this model");
	if (!catalogue_effort_ok(m, json_object_get_string(e), (size_t)json_object_get_string_len(e)))
		return fail(err, n, "output_config.effort: `%.32s` is not supported by this model",
			    json_object_get_string(e));
	*effort = json_object_get_string(e);
	return true;
}

/* Adaptive thinking's tokens, the emulator's rule: low effort a quarter of max_tokens, medium
 * half, anything else (high, xhigh, max, or no effort: the API's default) all of it. */
static long adaptive_tokens(const char *effort, long max_tokens)
{
	if (effort && strcmp(effort, "low") == 0)
		return max_tokens / 4;
	if (effort && strcmp(effort, "medium") == 0)
		return max_tokens / 2;
	return max_tokens;
}

static bool check_enabled(json_object *th, const struct catalogue_model *m, long max_tokens,
			  struct think *t, char *err, size_t n)
{
	json_object *b = jget(th, "budget_tokens");

	if (m->thinking == CATALOGUE_THINKING_ALWAYS_ON)
		return fail(err, n, "thinking.type: `enabled` is not supported on this model; use "
			    "`adaptive` with `output_config.effort`");
	if (!b)
		return fail(err, n, "thinking.enabled.budget_tokens: Field required");
	if (!json_object_is_type(b, json_type_int) || json_object_get_int64(b) < 1024)
		return fail(err, n, "thinking.enabled.budget_tokens: Input should be greater than or "
			    "equal to 1024");
	if (json_object_get_int64(b) >= max_tokens)
		return fail(err, n, "`max_tokens` must be greater than `thinking.budget_tokens`. "
			    "Please consult our documentation at https://docs.claude.com/en/docs/"
			    "build-with-claude/extended-thinking#max-tokens-and-context-window-size");
	t->on = true;
	t->tokens = (long)json_object_get_int64(b);
	return true;
}

static bool check_adaptive(json_object *th, const struct catalogue_model *m, const char *effort,
			   long max_tokens, struct think *t, char *err, size_t n)
{
	const char *display = json_object_get_string(jget(th, "display"));

	if (m->thinking == CATALOGUE_THINKING_EXTENDED)
		return fail(err, n, "thinking.type: `adaptive` is not supported on this model; use "
			    "`enabled` with `budget_tokens`");
	if (display && strcmp(display, "summarized") != 0 && strcmp(display, "omitted") != 0 &&
	    strcmp(display, "updates") != 0)
		return fail(err, n, "thinking.adaptive.display: Input should be 'summarized', "
			    "'omitted' or 'updates'");
	t->on = true;
	t->shown = display && strcmp(display, "omitted") != 0;
	t->tokens = adaptive_tokens(effort, max_tokens);
	return true;
}

/* The thinking a request gets. No thinking member: an extended-thinking model does not think,
 * an adaptive or always-on one thinks adaptively at the default effort. */
static bool check_thinking(json_object *root, const struct catalogue_model *m, struct think *t,
			   char *err, size_t n)
{
	json_object *th = jget(root, "thinking");
	const char *type = json_object_get_string(jget(th, "type")), *effort;
	long max_tokens = (long)json_object_get_int64(jget(root, "max_tokens"));

	memset(t, 0, sizeof *t);
	if (th && !json_object_is_type(th, json_type_object))
		return fail(err, n, "thinking: Input should be a valid dictionary");
	if (th && !is_str(jget(th, "type")))
		return fail(err, n, "thinking.type: Field required");
	if (!read_effort(root, m, &effort, err, n))
		return false;
	if (m->thinking == CATALOGUE_THINKING_NONE && type && strcmp(type, "disabled") != 0)
		return fail(err, n, "thinking: this model does not support thinking");
	if (!type) {
		if (m->thinking == CATALOGUE_THINKING_ADAPTIVE || m->thinking == CATALOGUE_THINKING_ALWAYS_ON)
			return check_adaptive(th, m, effort, max_tokens, t, err, n);
		return true;
	}
	if (strcmp(type, "disabled") == 0) {
		if (m->thinking == CATALOGUE_THINKING_ALWAYS_ON)
			return fail(err, n, "thinking.type: `disabled` is not supported on this model; "
				    "its thinking is always on (use `adaptive` with a low "
				    "`output_config.effort`)");
		return true;
	}
	if (strcmp(type, "enabled") == 0)
		return check_enabled(th, m, max_tokens, t, err, n);
	if (strcmp(type, "adaptive") == 0)
		return check_adaptive(th, m, effort, max_tokens, t, err, n);
	return fail(err, n, "thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'");
}

static const char *block_type(json_object *content, size_t i)
{
	if (!json_object_is_type(content, json_type_array) || i >= json_object_array_length(content))
		return NULL;
	return json_object_get_string(jget(json_object_array_get_idx(content, i), "type"));
}

static bool has_block(json_object *content, const char *type)
{
	size_t len = json_object_is_type(content, json_type_array) ? json_object_array_length(content) : 0;

	for (size_t i = 0; i < len; i++)
		if (strcmp(block_type(content, i), type) == 0)
			return true;
	return false;
}

/* With thinking on, the assistant turn whose tool_use the last user message answers with
 * tool_result must come back with its thinking block first, as the API requires. */
static bool check_thinking_back(json_object *root, char *err, size_t n)
{
	json_object *msgs = jget(root, "messages");
	size_t len = json_object_array_length(msgs);
	json_object *user = json_object_array_get_idx(msgs, len - 1), *prev, *content;
	const char *first;

	if (len < 2 || strcmp(json_object_get_string(jget(user, "role")), "user") != 0 ||
	    !has_block(jget(user, "content"), "tool_result"))
		return true;
	prev = json_object_array_get_idx(msgs, len - 2);
	content = jget(prev, "content");
	if (strcmp(json_object_get_string(jget(prev, "role")), "assistant") != 0 ||
	    !has_block(content, "tool_use"))
		return true;
	first = block_type(content, 0);
	if (strcmp(first, "thinking") == 0 || strcmp(first, "redacted_thinking") == 0)
		return true;
	return fail(err, n, "messages.%zu.content.0.type: Expected `thinking` or `redacted_thinking`, "
		    "but found `%.32s`. When `thinking` is enabled, a final `assistant` message must "
		    "start with a thinking block (preceeding the lastmost set of `tool_use` and "
		    "`tool_result` blocks). We recommend you include thinking blocks from previous "
		    "turns. To avoid this requirement, disable `thinking`. Please consult our "
		    "documentation at https://docs.claude.com/en/docs/build-with-claude/"
		    "extended-thinking", len - 2, first);
}

/* The catalogue's rules for the model a valid request names: the model itself (a 404 when it
 * is unknown or retired), sampling, tool_choice, thinking. 0 when they pass (t filled), else the
 * status to answer with, and err. */
static int check_model(json_object *root, struct think *t, char *err, size_t n)
{
	json_object *model = jget(root, "model");
	const struct catalogue_model *m = models_find(json_object_get_string(model),
						      (size_t)json_object_get_string_len(model));

	if (!m) {
		snprintf(err, n, "model: %.200s", json_object_get_string(model));
		return 404;
	}
	if (!check_sampling(root, m, err, n) || !check_tool_choice(root, m, err, n) ||
	    !check_thinking(root, m, t, err, n) || (t->on && !check_thinking_back(root, err, n)))
		return 400;
	return 0;
}

/* Strict JSON (UTF-8 checked, no trailing bytes); NULL with err set otherwise. */
static json_object *body_json(const struct obuf *b, char *err, size_t n)
{
	size_t len = obuf_pending(b);
	json_tokener *tok;
	json_object *o;
	enum json_tokener_error e;

	if (!len) {
		snprintf(err, n, "request body: Input should be a valid dictionary");
		return NULL;
	}
	tok = json_tokener_new();
	if (!tok)
		die("out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, b->p + b->off, (int)len);
	e = json_tokener_get_error(tok);
	if (!o)
		snprintf(err, n, "invalid JSON in request body: %s",
			 e == json_tokener_continue || e == json_tokener_success
				 ? "unexpected end of input, or not an object"
				 : json_tokener_error_desc(e));
	json_tokener_free(tok);
	return o;
}


/* ---- tool calls and structured output ---------------------------------- */

/* A value that fits schema (a JSON Schema, leniently read): the first enum value, the word for a
 * string, 42 for a number, true, null, one item for an array, every property for an object. */
static json_object *schema_value(json_object *schema, const struct span *word, int depth)
{
	json_object *v = jget(schema, "enum"), *props;
	const char *type = NULL;

	if (json_object_is_type(v, json_type_array) && json_object_array_length(v))
		return json_object_get(json_object_array_get_idx(v, 0));
	if ((v = jget(schema, "anyOf")) && json_object_is_type(v, json_type_array) &&
	    json_object_array_length(v) && depth < 8)
		return schema_value(json_object_array_get_idx(v, 0), word, depth + 1);
	v = jget(schema, "type");
	if (json_object_is_type(v, json_type_array) && json_object_array_length(v))
		v = json_object_array_get_idx(v, 0);
	type = is_str(v) ? json_object_get_string(v) : (props = jget(schema, "properties")) ? "object" : "string";
	if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0)
		return jint(42);
	if (strcmp(type, "boolean") == 0)
		return json_object_new_boolean(1);
	if (strcmp(type, "null") == 0)
		return NULL;
	if (strcmp(type, "array") == 0) {
		json_object *a = json_object_new_array();

		if (depth < 8 && json_object_array_add(a, schema_value(jget(schema, "items"), word, depth + 1)))
			die("out of memory");
		return a;
	}
	if (strcmp(type, "object") == 0) {
		json_object *o = jobj();

		props = jget(schema, "properties");
		if (depth < 8 && json_object_is_type(props, json_type_object)) {
			json_object_object_foreach(props, k, sub)
				jset(o, k, schema_value(sub, word, depth + 1));
		}
		return o;
	}
	return json_object_new_string_len(word->p, (int)word->n);
}

/* The first word of the prompt, which generated values use ("emu" when it has none). */
static struct span first_word(const char *src, size_t n)
{
	static const struct span none = { "emu", 3 };
	struct span *tok = NULL, w = none;

	if (scan_words(src, n, &tok))
		w = tok[0];
	free(tok);
	return w;
}

/* Whether text names name as a word of its own (not inside a longer name). */
static bool names_tool(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; n && (p = strstr(p, name)); p++) {
		char before = p > text ? p[-1] : ' ', after = p[n];

		if (!isalnum((unsigned char)before) && before != '_' && before != '-' &&
		    !isalnum((unsigned char)after) && after != '_' && after != '-')
			return true;
	}
	return false;
}

static void add_call(struct message *m, json_object *tool, const struct span *word)
{
	struct tool_call *t;
	const char *js;

	m->calls = xrealloc(m->calls, (m->ncalls + 1) * sizeof *m->calls);
	t = &m->calls[m->ncalls];
	snprintf(t->id, sizeof t->id, "toolu_%s_%zu", m->msg_id + 4, m->ncalls);
	t->name = xstrndup(json_object_get_string(jget(tool, "name")),
			   (size_t)json_object_get_string_len(jget(tool, "name")));
	json_object *input = schema_value(jget(tool, "input_schema"), word, 0);
	js = json_object_to_json_string_ext(input, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	t->input = xstrndup(js, strlen(js));
	json_object_put(input);
	m->ncalls++;
}

/*
 * Tool calls, deterministic: when the request has tools, tool_choice is not none and the last
 * user turn is not tool results, a forced choice calls its tool (any: the first), else every
 * tool whose name the prompt mentions is called, in the order of tools. Returns the number of
 * calls (0: answer with text).
 */
static size_t answer_tools(struct message *m, json_object *root, const char *last, size_t n)
{
	json_object *tools = jget(root, "tools"), *msgs = jget(root, "messages");
	const char *choice = json_object_get_string(jget(jget(root, "tool_choice"), "type"));
	const char *forced = json_object_get_string(jget(jget(root, "tool_choice"), "name"));
	json_object *lastmsg = json_object_array_get_idx(msgs, json_object_array_length(msgs) - 1);
	size_t len = json_object_is_type(tools, json_type_array) ? json_object_array_length(tools) : 0;
	struct span word = first_word(last, n);

	if (!len || (choice && strcmp(choice, "none") == 0) || has_block(jget(lastmsg, "content"), "tool_result"))
		return 0;
	for (size_t i = 0; i < len; i++) {
		json_object *t = json_object_array_get_idx(tools, i);
		const char *name = json_object_get_string(jget(t, "name"));

		if (!name)
			continue;
		if (choice && strcmp(choice, "tool") == 0 ? forced && strcmp(name, forced) == 0
		    : choice && strcmp(choice, "any") == 0 ? i == 0 || names_tool(last, name)
		    : names_tool(last, name))
			add_call(m, t, &word);
		if (m->ncalls && json_object_get_boolean(jget(jget(root, "tool_choice"),
							     "disable_parallel_tool_use")))
			break;
	}
	if (m->ncalls) {
		m->text = xstrndup("", 0);
		m->doff = xcalloc(1, sizeof *m->doff);
		m->stop_reason = "tool_use";
		m->out_tok = (long)m->ncalls * 8;
	}
	return m->ncalls;
}

/* Structured output (output_config.format): the text is a value that fits the schema, in
 * pieces as a stream sends it. */
static bool answer_format(struct message *m, json_object *root, const char *last, size_t n)
{
	json_object *fmt = jget(jget(root, "output_config"), "format");
	struct span word = first_word(last, n);
	json_object *v;
	const char *js;
	size_t k = 0;

	if (!fmt)
		return false;
	v = schema_value(jget(fmt, "schema"), &word, 0);
	js = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	m->text_len = strlen(js);
	m->text = xstrndup(js, m->text_len);
	json_object_put(v);
	m->doff = xcalloc(m->text_len + 1, sizeof *m->doff);
	for (size_t off = 0; off < m->text_len; off += message_piece_len(m->text + off, m->text_len - off))
		m->doff[k++] = off;
	m->doff[k] = m->text_len;
	m->ndeltas = k;
	m->stop_reason = "end_turn";
	m->out_tok = (long)k;
	return true;
}

/* The answer of a valid request, started on c: the message, and how to deliver it. */
static void job_start(struct conn *c, json_object *root, const struct opts *o, enum fault f,
		      const struct think *t, const char *last, size_t last_len)
{
	int64_t max_tokens = json_object_get_int64(jget(root, "max_tokens"));
	json_object *model = jget(root, "model");
	struct message m = { 0 };
	struct delivery d = {
		.stream = json_object_get_boolean(jget(root, "stream")),
		.fault = f,
		.arg = o->arg,
		.delay_ms = o->delay_ms >= 0 ? o->delay_ms : api_config.delay_ms,
		.ttft_ms = o->ttft_ms >= 0 ? o->ttft_ms : api_config.ttft_ms,
		.id = o->id,
	};

	m.model = xstrndup(json_object_get_string(model), (size_t)json_object_get_string_len(model));
	make_id(m.msg_id, "msg_");
	m.in_tok = input_tokens(root);
	if (f == F_HUGE) {
		answer_huge(&m, o->arg);
	} else {
		if (t->on)
			answer_think(&m, t, o->thinking, max_tokens);
		if (!answer_tools(&m, root, last, last_len) && !answer_format(&m, root, last, last_len))
			answer_build(&m, last, last_len, o->words >= 0 ? o->words : api_config.words,
				     max_tokens - m.think_tok, jget(root, "stop_sequences"));
		m.out_tok += m.think_tok;
	}
	stream_start(c, &d, &m);
}

/* ---- endpoints ---------------------------------------------------------- */

static const char *api_key(const struct conn *c)
{
	const char *k = conn_header(c, "x-api-key"), *a = conn_header(c, "authorization");

	if (k && *k)
		return k;
	if (a && strncasecmp(a, "Bearer ", 7) == 0) {
		for (a += 7; *a == ' '; a++)
			;
		return *a ? a : NULL;
	}
	return NULL;
}

/* The versions the API knows: the initial release, the one every SDK sent for years, and the one
 * @anthropic-ai/sdk 1.x sends. An invented date is a 400, as on the real API. */
static bool known_version(const char *v)
{
	static const char *const known[] = {"2023-01-01", "2023-06-01", "2026-10-21"};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(v, known[i]) == 0)
			return true;
	return false;
}

/* anthropic-version, then the key, as every /v1 endpoint of the real API checks. */
static bool auth_ok(struct conn *c)
{
	const char *ver = conn_header(c, "anthropic-version"), *key = api_key(c);

	if (!ver) {
		conn_send_error(c, 400, "invalid_request_error", "anthropic-version: header is required", NULL);
		return false;
	}
	if (!known_version(ver)) {
		char msg[128];

		snprintf(msg, sizeof msg, "anthropic-version: \"%.64s\" is not a valid version", ver);
		conn_send_error(c, 400, "invalid_request_error", msg, NULL);
		return false;
	}
	if (!key) {
		conn_send_error(c, 401, "authentication_error", "x-api-key header is required", NULL);
		return false;
	}
	if (api_config.key && strcmp(key, api_config.key) != 0) {
		conn_send_error(c, 401, "authentication_error", "invalid x-api-key", NULL);
		return false;
	}
	return true;
}

/* After validation: an injected error, or a job that produces the answer. */
static void answer(struct conn *c, json_object *root, const struct opts *o, const struct think *t,
		   long attempt, struct obuf *last)
{
	bool stream = json_object_get_boolean(jget(root, "stream"));
	bool faulted = faults_applies(o->fault, stream) && (o->times < 0 || attempt <= o->times);
	enum fault f = faulted ? o->fault : F_NONE;
	struct idstat *s = o->id[0] ? stats_id(o->id, false) : NULL;

	if (faulted && s)
		s->faulted++;
	faults_describe(f, o->arg, c->rq.log_fault, sizeof c->rq.log_fault);
	if (f == F_STATUS) {
		const char *type, *msg;

		status_error((int)o->arg, &type, &msg);
		conn_send_error(c, (int)o->arg, type, msg, o);
	} else if (f == F_ECHO_KEY) {
		struct obuf msg = { 0 };

		obuf_fmt(&msg, "invalid x-api-key: %s", api_key(c));
		conn_send_error(c, 401, "authentication_error", obuf_cstr(&msg), o);
		obuf_free(&msg);
	} else {
		job_start(c, root, o, f, t, obuf_cstr(last), last->len);
	}
}

/* Counts an attempt for o->id and returns its number (0 when untracked). */
static long id_attempt(const struct conn *c, const struct opts *o, json_object *root)
{
	struct idstat *s;

	if (!o->id[0] || !(s = stats_id(o->id, true)))
		return 0;
	return stats_attempt(s, conn_headers_json(c), root);
}

static void handle_messages(struct conn *c)
{
	struct req *r = &c->rq;
	char perr[160], verr[768], merr[160];
	struct opts o;
	struct think t;
	int status = 0;
	struct obuf last = { 0 };
	json_object *root = body_json(&r->body, perr, sizeof perr);
	bool marks_ok = true;
	long attempt;

	/* Markers are read first, leniently, so even a rejected attempt is recorded. */
	faults_init(&o);
	stats.t.attempts++;
	if (json_object_is_type(root, json_type_object)) {
		last_user_text(root, &last);
		marks_ok = faults_parse(obuf_cstr(&last), last.len, &o, merr, sizeof merr);
	}
	attempt = id_attempt(c, &o, root);
	memcpy(r->log_id, o.id, sizeof r->log_id);

	if (!auth_ok(c)) {
		/* auth_ok() has answered */
	} else if (!root)
		conn_send_error(c, 400, "invalid_request_error", perr, NULL);
	else if (!check_request(root, false, verr, sizeof verr))
		conn_send_error(c, 400, "invalid_request_error", verr, NULL);
	else if ((status = check_model(root, &t, verr, sizeof verr)) != 0)
		conn_send_error(c, status, status == 404 ? "not_found_error" : "invalid_request_error",
				verr, NULL);
	else if (!marks_ok)
		conn_send_error(c, 400, "invalid_request_error", merr, NULL);
	else
		answer(c, root, &o, &t, attempt, &last);
	json_object_put(root);
	obuf_free(&last);
}

static void handle_count(struct conn *c)
{
	char err[768];
	json_object *root, *model;

	if (!auth_ok(c))
		return;
	root = body_json(&c->rq.body, err, sizeof err);
	model = jget(root, "model");
	if (!root || !check_request(root, true, err, sizeof err)) {
		conn_send_error(c, 400, "invalid_request_error", err, NULL);
	} else if (!models_find(json_object_get_string(model),
				(size_t)json_object_get_string_len(model))) {
		snprintf(err, sizeof err, "model: %.200s", json_object_get_string(model));
		conn_send_error(c, 404, "not_found_error", err, NULL);
	} else {
		json_object *o = jobj();

		jset(o, "input_tokens", jint(input_tokens(root)));
		conn_send_json(c, 200, o, NULL);
		json_object_put(o);
	}
	json_object_put(root);
}

static void models_list(struct conn *c)
{
	json_object *o;

	if (!auth_ok(c))
		return;
	o = models_list_json();
	conn_send_json(c, 200, o, NULL);
	json_object_put(o);
}

static void models_get(struct conn *c, const char *id)
{
	char msg[160];
	json_object *o;

	if (!auth_ok(c))
		return;
	if ((o = models_get_json(id))) {
		conn_send_json(c, 200, o, NULL);
		json_object_put(o);
		return;
	}
	snprintf(msg, sizeof msg, "model: %.128s", id);
	conn_send_error(c, 404, "not_found_error", msg, NULL);
}

void api_route(struct conn *c, bool get, bool post)
{
	const char *p = c->rq.path;

	if (strcmp(p, "/v1/messages") == 0) {
		if (post)
			handle_messages(c);
		else
			conn_method_not_allowed(c);
	} else if (strcmp(p, "/v1/messages/count_tokens") == 0) {
		if (post)
			handle_count(c);
		else
			conn_method_not_allowed(c);
	} else if (strcmp(p, "/v1/models") == 0) {
		if (get)
			models_list(c);
		else
			conn_method_not_allowed(c);
	} else if (strncmp(p, "/v1/models/", 11) == 0 && p[11] && !strchr(p + 11, '/')) {
		if (get)
			models_get(c, p + 11);
		else
			conn_method_not_allowed(c);
	} else {
		conn_send_error(c, 404, "not_found_error", "Not Found", NULL);
	}
}

