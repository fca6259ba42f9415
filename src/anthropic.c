#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memmem */
#endif
#include "anthropic.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "catalogue.h"
#include "fastdelta.h"
#include "jscan.h"
#include "jx.h"
#include "num.h"

/* json-c ownership: the rules are in jx.h; a borrowed messages array goes in by json_object_get. */

/* Upstream JSON is trusted only as far as it parses: nesting beyond this is not an answer. */
#define JSON_DEPTH 64

/* One tokener per process, reset before each use: a stream parses one upstream event per delta,
 * and allocating a fresh tokener (a zeroed kilobyte) each time was among the largest costs of
 * relaying one (benchmark profile). Workers are single-threaded; it lives as long as the process.
 * A text that fails to parse drops it, though: json-c 0.16's reset leaves a half-read surrogate
 * pair behind ("\ud83d" at the cut), and the next text's first \u escape then came out with a
 * U+FFFD before it (found by fuzz_fastdelta). Failures are rare; a new tokener is cheap then. */
static struct json_tokener *shared_tok;

static struct json_tokener *tokener(void)
{
	if (!shared_tok)
		shared_tok = json_tokener_new_ex(JSON_DEPTH);
	else
		json_tokener_reset(shared_tok);
	return shared_tok;
}

static struct json_object *parse(const char *s, size_t len)
{
	struct json_tokener *tok = tokener();
	if (!tok || len > (size_t)0x7fffffff)
		return NULL;
	struct json_object *o = json_tokener_parse_ex(tok, s, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
		json_tokener_free(shared_tok);
		shared_tok = NULL;
	}
	return o;
}

/* The API refuses a smaller thinking budget. */
#define THINKING_BUDGET_MIN 1024

const char *anthropic_thinking_effort(enum anth_thinking t)
{
	switch (t) {
	case ANTH_THINKING_LOW: return "low";
	case ANTH_THINKING_MEDIUM: return "medium";
	case ANTH_THINKING_HIGH: return "high";
	default: return NULL;
	}
}

/* The body is written as text, not through a json-c tree: building, serialising and releasing the
 * tree cost about 20,000 instructions per request, most of the body's whole cost (README,
 * Performance). Only a client's messages array, already a tree, is serialised by json-c. */

/* s[0..n) as a JSON string, escaped as json-c escapes (short forms where JSON has them, else
 * \u00XX; '/' left alone). Bytes from 0x80 up pass as they are: the caller's text is UTF-8. At most
 * 6 bytes per byte of s and 2 quotes. */
static int put_json_str(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
	int bad = buf_appendc(b, '"');
	while (!bad) {
		while (p < end && *p >= 0x20 && *p != '"' && *p != '\\')
			p++;
		if (p == end)
			break;
		unsigned char c = *p;
		char t[6] = {'\\', (char)c, 0, 0, 0, 0};
		size_t tn = 2;
		switch (c) {
		case '"': case '\\': break;
		case '\b': t[1] = 'b'; break;
		case '\f': t[1] = 'f'; break;
		case '\n': t[1] = 'n'; break;
		case '\r': t[1] = 'r'; break;
		case '\t': t[1] = 't'; break;
		default:
			memcpy(t + 1, "u00", 3);
			t[4] = hex[c >> 4];
			t[5] = hex[c & 0xf];
			tn = 6;
			break;
		}
		bad = buf_append(b, run, (size_t)(p - run)) || buf_append(b, t, tn);
		run = ++p;
	}
	return bad || buf_append(b, run, (size_t)(end - run)) || buf_appendc(b, '"');
}

static int put_long(struct buf *b, long v)
{
	char t[24];
	size_t i = sizeof t;
	unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
	do
		t[--i] = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		t[--i] = '-';
	return buf_append(b, t + i, sizeof t - i);
}

/* Extended thinking: a budget in quarters of max_tokens, off below the API's minimum. */
static int put_extended(struct buf *b, const struct anth_request *rq)
{
	long quarters = rq->thinking == ANTH_THINKING_HIGH ? 3 : rq->thinking == ANTH_THINKING_MEDIUM ? 2 : 1;
	long budget = rq->max_tokens / 4 * quarters;
	if (rq->thinking == ANTH_THINKING_OFF || budget < THINKING_BUDGET_MIN)
		return buf_appends(b, ",\"thinking\":{\"type\":\"disabled\"}");
	return buf_appends(b, ",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":") ||
	       put_long(b, budget) || buf_appendc(b, '}');
}

/* The thinking members for rq->info (see anthropic.h). */
static int put_thinking(struct buf *b, const struct anth_request *rq)
{
	const struct catalogue_model *m = rq->info;
	enum anth_thinking level = rq->thinking;
	switch (m->thinking) {
	case CATALOGUE_THINKING_NONE:
		return 0;
	case CATALOGUE_THINKING_EXTENDED:
		return put_extended(b, rq);
	case CATALOGUE_THINKING_ALWAYS_ON:
		if (level == ANTH_THINKING_OFF)
			level = ANTH_THINKING_LOW;
		break;
	case CATALOGUE_THINKING_ADAPTIVE:
		if (level == ANTH_THINKING_OFF)
			return buf_appends(b, ",\"thinking\":{\"type\":\"disabled\"}");
		break;
	}
	int bad = buf_appends(b, ",\"thinking\":{\"type\":\"adaptive\"}");
	const char *effort = anthropic_thinking_effort(level);
	if (effort && catalogue_effort_ok(m, effort, strlen(effort)))
		bad = bad || buf_appends(b, ",\"output_config\":{\"effort\":\"") ||
		      buf_appends(b, effort) || buf_appends(b, "\"}");
	return bad;
}

/* The fixed text around the strings: members, braces and the thinking members, well under this. */
#define BODY_FRAME 512

char *anthropic_request_body(const struct anth_request *rq, size_t *len)
{
	const char *msgs = NULL;
	size_t msgs_len = 0, system_len = rq->system ? strlen(rq->system) : 0;
	if (rq->messages)
		msgs = json_object_to_json_string_length(
			rq->messages, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &msgs_len);
	struct buf b;
	/* Each escaped byte takes at most 6: the body fits by construction. */
	buf_init(&b, BODY_FRAME + msgs_len + 6 * (strlen(rq->model) + system_len + rq->text_len));
	int bad = buf_appends(&b, "{\"model\":") || put_json_str(&b, rq->model, strlen(rq->model)) ||
		  buf_appends(&b, ",\"max_tokens\":") || put_long(&b, rq->max_tokens);
	if (system_len)
		bad = bad || buf_appends(&b, ",\"system\":") || put_json_str(&b, rq->system, system_len);
	if (msgs)
		bad = bad || buf_appends(&b, ",\"messages\":") || buf_append(&b, msgs, msgs_len);
	else
		bad = bad || buf_appends(&b, ",\"messages\":[{\"role\":\"user\",\"content\":") ||
		      put_json_str(&b, rq->text, rq->text_len) || buf_appends(&b, "}]");
	if (rq->stream)
		bad = bad || buf_appends(&b, ",\"stream\":true");
	if (rq->info)
		bad = bad || put_thinking(&b, rq);
	BUF_MUST(bad || buf_appendc(&b, '}'));
	if (len)
		*len = b.len;
	return buf_detach(&b);
}

/* A token count at key, or -1 when absent or not a number. Clamped to ANTH_TOKENS_MAX: an
 * upstream's 1e30 or 2^64-1 must neither overflow a conversion nor the sums callers make of
 * several counts. */
static long read_tokens(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v))
		return -1;
	if (json_object_is_type(v, json_type_int)) {
		int64_t n = json_object_get_int64(v);
		return n < 0 ? 0 : n > ANTH_TOKENS_MAX ? ANTH_TOKENS_MAX : (long)n;
	}
	if (json_object_is_type(v, json_type_double))
		return num_clamp_long(json_object_get_double(v), 0, ANTH_TOKENS_MAX);
	return -1;
}

void anthropic_read_usage(struct json_object *usage, struct anth_usage *u)
{
	u->input_tokens = read_tokens(usage, "input_tokens");
	u->output_tokens = read_tokens(usage, "output_tokens");
	u->cache_creation_tokens = read_tokens(usage, "cache_creation_input_tokens");
	u->cache_read_tokens = read_tokens(usage, "cache_read_input_tokens");
}

int anthropic_content_text(struct json_object *content, struct buf *out)
{
	size_t n = json_object_array_length(content);
	for (size_t i = 0; i < n; i++) {
		struct json_object *block = json_object_array_get_idx(content, i);
		const char *btype = jx_string(block, "type");
		struct json_object *t;
		if (!btype || strcmp(btype, "text") != 0 || !json_object_object_get_ex(block, "text", &t) ||
		    !json_object_is_type(t, json_type_string))
			continue;
		if (buf_append(out, json_object_get_string(t), (size_t)json_object_get_string_len(t)) < 0)
			return -1;
	}
	return 0;
}

int anthropic_parse_message(const char *body, size_t len, struct anth_message *m)
{
	memset(m, 0, sizeof *m);
	struct json_object *root = parse(body, len);
	struct json_object *content, *usage;
	const char *type = root ? jx_string(root, "type") : NULL;
	if (!type || strcmp(type, "message") != 0 ||
	    !json_object_object_get_ex(root, "content", &content) ||
	    !json_object_is_type(content, json_type_array)) {
		json_object_put(root);
		return -1;
	}
	struct buf text;
	buf_init(&text, len);
	/* The text is a part of the body's strings, unescaped: never longer than the body. */
	BUF_MUST(anthropic_content_text(content, &text));
	m->text = buf_detach(&text);
	const char *model = jx_string(root, "model");
	const char *stop = jx_string(root, "stop_reason");
	m->model = xstrdup(model ? model : "");
	m->stop_reason = xstrdup(stop ? stop : "");
	anthropic_read_usage(json_object_object_get_ex(root, "usage", &usage) ? usage : NULL,
			     &m->usage);
	json_object_put(root);
	return 0;
}

int anthropic_stop_reason_known(const char *reason)
{
	static const char *const known[] = {
		"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
		"model_context_window_exceeded",
	};
	for (size_t i = 0; reason && i < sizeof known / sizeof known[0]; i++)
		if (strcmp(reason, known[i]) == 0)
			return 1;
	return 0;
}

void anthropic_message_release(struct anth_message *m)
{
	free(m->text);
	free(m->model);
	free(m->stop_reason);
	memset(m, 0, sizeof *m);
}

int anthropic_parse_error(const char *body, size_t len, char **type, char **message)
{
	*type = *message = NULL;
	struct json_object *root = parse(body, len);
	struct json_object *e;
	if (!root || !json_object_object_get_ex(root, "error", &e) ||
	    !json_object_is_type(e, json_type_object)) {
		json_object_put(root);
		return -1;
	}
	const char *t = jx_string(e, "type");
	const char *msg = jx_string(e, "message");
	if (!t) {
		json_object_put(root);
		return -1;
	}
	*type = xstrdup(t);
	*message = xstrdup(msg ? msg : "");
	json_object_put(root);
	return 0;
}

/* Only the events that carry what we relay are parsed; ping and unknown types are skipped
 * without touching their data, as the SDKs do. */
static enum anth_event_kind event_kind(const char *name)
{
	static const struct {
		const char *name;
		enum anth_event_kind kind;
	} known[] = {
		{"content_block_delta", ANTH_EV_TEXT}, {"message_start", ANTH_EV_MESSAGE_START},
		{"message_delta", ANTH_EV_MESSAGE_DELTA}, {"message_stop", ANTH_EV_MESSAGE_STOP},
		{"error", ANTH_EV_ERROR},
	};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(name, known[i].name) == 0)
			return known[i].kind;
	return ANTH_EV_IGNORE;
}

/* The token counts of a usage object (o's member "usage"), when o has one. */
static void event_usage(struct json_object *o, struct anth_event *ev)
{
	struct json_object *u;
	if (!json_object_object_get_ex(o, "usage", &u))
		return;
	ev->input_tokens = read_tokens(u, "input_tokens");
	ev->output_tokens = read_tokens(u, "output_tokens");
}

/* The member "index" as its readers took it before fastdelta: json_object_get_int64, whatever
 * the member's type. */
static long long event_index(struct json_object *root)
{
	struct json_object *i;
	if (!json_object_object_get_ex(root, "index", &i))
		return ANTH_NO_INDEX;
	return json_object_get_int64(i);
}

void anthropic_parse_event(const char *name, const char *data, size_t len, struct anth_event *ev)
{
	/* Nearly every event of an answer: read without a tree (fastdelta.h), anything else below. */
	long long index;
	const char *text;
	size_t n;
	if (strcmp(name, "content_block_delta") == 0 && fastdelta_parse(data, len, &index, &text, &n)) {
		memset(ev, 0, sizeof *ev);
		ev->input_tokens = ev->output_tokens = -1;
		ev->kind = ANTH_EV_TEXT;
		ev->index = index;
		ev->text = text;
		ev->text_len = n;
		return;
	}
	anthropic_parse_event_tree(name, data, len, ev);
}

void anthropic_parse_event_tree(const char *name, const char *data, size_t len,
				struct anth_event *ev)
{
	memset(ev, 0, sizeof *ev);
	ev->input_tokens = ev->output_tokens = -1;
	ev->index = ANTH_NO_INDEX;
	enum anth_event_kind kind = event_kind(name);
	if (kind == ANTH_EV_IGNORE)
		return;
	ev->root = parse(data, len);
	const char *type = ev->root ? jx_string(ev->root, "type") : NULL;
	if (!type || strcmp(type, name) != 0) {
		ev->kind = ANTH_EV_INVALID;
		return;
	}
	struct json_object *o;
	switch (kind) {
	case ANTH_EV_TEXT: {
		struct json_object *t;
		const char *dtype;
		if (!json_object_object_get_ex(ev->root, "delta", &o) || !(dtype = jx_string(o, "type")))
			break;
		/* Tool input, thinking and citation deltas are not text for our endpoints. */
		if (strcmp(dtype, "text_delta") != 0)
			return;
		if (!json_object_object_get_ex(o, "text", &t) || !json_object_is_type(t, json_type_string))
			break;
		ev->kind = ANTH_EV_TEXT;
		ev->index = event_index(ev->root);
		ev->text = json_object_get_string(t);
		ev->text_len = (size_t)json_object_get_string_len(t);
		return;
	}
	case ANTH_EV_MESSAGE_START:
		if (!json_object_object_get_ex(ev->root, "message", &o))
			break;
		ev->kind = kind;
		event_usage(o, ev);
		return;
	case ANTH_EV_MESSAGE_DELTA:
		if (!json_object_object_get_ex(ev->root, "delta", &o))
			break;
		ev->kind = kind;
		ev->stop_reason = jx_string(o, "stop_reason");
		/* Usage here is cumulative: it replaces, never adds to, what came before. */
		event_usage(ev->root, ev);
		return;
	case ANTH_EV_MESSAGE_STOP:
		ev->kind = kind;
		return;
	case ANTH_EV_ERROR:
		if (!json_object_object_get_ex(ev->root, "error", &o))
			break;
		ev->kind = kind;
		ev->error_type = jx_string(o, "type");
		ev->error_message = jx_string(o, "message");
		if (!ev->error_type)
			ev->error_type = "api_error";
		if (!ev->error_message)
			ev->error_message = "";
		return;
	default:
		break;
	}
	ev->kind = ANTH_EV_INVALID;
}

void anthropic_event_release(struct anth_event *ev)
{
	json_object_put(ev->root);
	ev->root = NULL;
}

void anthropic_scrub_len(char *p, size_t n, const char *secret)
{
	if (!p || !secret || !*secret)
		return;
	size_t k = strlen(secret);
	char *end = p + n;
	for (char *q = memmem(p, n, secret, k); q; q = memmem(q + k, (size_t)(end - q - k), secret, k))
		memset(q, '*', k);
}

void anthropic_scrub(char *s, const char *secret)
{
	if (s)
		anthropic_scrub_len(s, strlen(s), secret);
}

struct json_object *anthropic_json_parse_strict(const char *s, size_t len)
{
	return jscan_parse(s, len, NULL);
}

enum anth_max_tokens anthropic_max_tokens(struct json_object *v, long limit, long long *n)
{
	/* json_type_int only: the upstream counts tokens in integers, and "1e8" or 1.5 are not
	 * worth guessing at. */
	if (!json_object_is_type(v, json_type_int) || (*n = json_object_get_int64(v)) < 1)
		return ANTH_MAX_TOKENS_INVALID;
	return *n > limit ? ANTH_MAX_TOKENS_OVER : ANTH_MAX_TOKENS_OK;
}

/* ---- a byte-exact scan of valid JSON, for anthropic_replace_model ---- */

static size_t skip_space(const char *p, size_t i, size_t n)
{
	while (i < n && jscan_space((unsigned char)p[i]))
		i++;
	return i;
}

/* p[i] is the opening quote: returns the index after the closing one. */
static size_t skip_string(const char *p, size_t i, size_t n)
{
	for (i++; i < n && p[i] != '"'; i++)
		if (p[i] == '\\')
			i++;
	return i + 1;
}

/* Returns the index after the value that starts at p[i]. */
static size_t skip_value(const char *p, size_t i, size_t n)
{
	if (p[i] == '"')
		return skip_string(p, i, n);
	if (p[i] != '{' && p[i] != '[') {
		while (i < n && !jscan_space((unsigned char)p[i]) && p[i] != ',' && p[i] != '}' && p[i] != ']')
			i++;
		return i;
	}
	int depth = 0;
	while (i < n) {
		char c = p[i];
		if (c == '"') {
			i = skip_string(p, i, n);
			continue;
		}
		i++;
		if (c == '{' || c == '[')
			depth++;
		else if ((c == '}' || c == ']') && --depth == 0)
			break;
	}
	return i;
}

/* Is the string token p[0..n) (quotes included) the key "model", escapes decoded? */
static int is_model_key(const char *p, size_t n)
{
	if (!memchr(p, '\\', n))
		return n == 7 && memcmp(p, "\"model\"", 7) == 0;
	struct json_object *k = anthropic_json_parse_strict(p, n);
	int yes = k && json_object_is_type(k, json_type_string) &&
		  strcmp(json_object_get_string(k), "model") == 0;
	json_object_put(k);
	return yes;
}

/* Finds the top-level "model" members of the JSON object in body: returns their number (the
 * last one's value spans [*start, *end)), or -1 when body is not an object as expected. */
static int scan_model(const char *body, size_t len, size_t *start, size_t *end)
{
	size_t i = skip_space(body, 0, len);
	int found = 0;
	if (i >= len || body[i] != '{')
		return -1;
	i = skip_space(body, i + 1, len);
	while (i < len && body[i] == '"') {
		size_t key = i;
		i = skip_string(body, i, len);
		if (i > len)
			return -1;
		int is_model = is_model_key(body + key, i - key);
		i = skip_space(body, i, len);
		if (i >= len || body[i] != ':')
			return -1;
		i = skip_space(body, i + 1, len);
		if (i >= len)
			return -1;
		size_t v = i;
		i = skip_value(body, i, len);
		if (i > len)
			return -1;
		if (is_model) {
			found++;
			*start = v;
			*end = i;
		}
		i = skip_space(body, i, len);
		if (i < len && body[i] == ',')
			i = skip_space(body, i + 1, len);
	}
	return i < len && body[i] == '}' ? found : -1;
}

int anthropic_model_members(const char *body, size_t len)
{
	size_t start, end;
	return scan_model(body, len, &start, &end);
}

char *anthropic_replace_model(const char *body, size_t len, const char *model, size_t model_len,
			      size_t *out_len)
{
	size_t start = 0, end = 0;
	if (scan_model(body, len, &start, &end) != 1 || body[start] != '"')
		return NULL;
	struct json_object *m = json_object_new_string_len(model, (int)model_len);
	size_t mlen;
	const char *ms = json_object_to_json_string_length(
		m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &mlen);
	struct buf out;
	buf_init(&out, (size_t)-1 / 2);
	/* Unbounded but for memory (the parts are in memory already): it cannot fill. */
	BUF_MUST(buf_append(&out, body, start) || buf_append(&out, ms, mlen) ||
		 buf_append(&out, body + end, len - end));
	json_object_put(m);
	*out_len = out.len;
	return buf_detach(&out);
}
