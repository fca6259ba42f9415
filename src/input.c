#include "config.h"

#include "input.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hex.h"
#include "jscan.h"

/* json-c ownership: the rules are in jx.h. Here parse_json puts the client's tree on every path,
 * so text is copied out (xstrndup) first; in->messages is a separate tree built from
 * json_object_new_*, never a reference into the client's, so unknown keys are not forwarded
 * upstream, and the one put on it (input_release) frees it all. */

#define MESSAGES_MAX 1000
#define MAX_TOKENS_MAX 1000000000L

#define MSG_MALFORMED_JSON "malformed JSON"
#define MSG_COSTLY "request body is too large: it holds too many JSON values for its size"
#define MSG_MAX_TOKENS "max_tokens must be a positive integer"
#define MSG_CONTENT "message content must be a non-empty string or an array of text blocks"

/* The checks every piece of client text gets, with the message for each context. */
struct text_msgs {
	const char *empty, *nul, *utf8;
};

static const struct text_msgs text_msgs = {
	"text must not be empty",
	"text must not contain NUL bytes",
	"text is not valid UTF-8",
};

static const struct text_msgs content_msgs = {
	MSG_CONTENT,
	"message content must not contain NUL bytes",
	"message content is not valid UTF-8",
};

static enum err_kind bad(const char **msg, const char *m)
{
	*msg = m;
	return ERR_BAD_REQUEST;
}

/* ---- UTF-8 and form decoding ---- */

int input_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		/* Most text is ASCII: skip it eight bytes at a time. */
		if (n - i >= 8) {
			uint64_t w;
			memcpy(&w, p + i, sizeof w);
			if (!(w & UINT64_C(0x8080808080808080))) {
				i += 8;
				continue;
			}
		}
		unsigned c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp, min;
		if (c >= 0xC2 && c <= 0xDF) {
			len = 2, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3, cp = c & 0x0F, min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0; /* a continuation byte, C0/C1 (always overlong) or F5..FF */
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3F);
		}
		if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return 0;
		i += len;
	}
	return 1;
}

/* Decodes the byte at s[*i] ('+', %XX or itself) and moves *i past it; -1 on a bad escape. */
static int decode_at(const char *s, size_t n, size_t *i)
{
	char c = s[*i];
	if (c == '+') {
		*i += 1;
		return ' ';
	}
	if (c != '%') {
		*i += 1;
		return (unsigned char)c;
	}
	if (n - *i < 3)
		return -1;
	int hi = hex_value((unsigned char)s[*i + 1]), lo = hex_value((unsigned char)s[*i + 2]);
	if (hi < 0 || lo < 0)
		return -1;
	*i += 3;
	return hi << 4 | lo;
}

int input_url_decode(const char *s, size_t n, struct buf *out)
{
	size_t start = out->len, i = 0;
	while (i < n) {
		/* Copy plain runs in one append: a text field can be most of a large body. */
		size_t run = i;
		while (run < n && s[run] != '+' && s[run] != '%')
			run++;
		if (run > i && buf_append(out, s + i, run - i) < 0)
			goto fail;
		i = run;
		if (i == n)
			break;
		int c = decode_at(s, n, &i);
		if (c < 0 || buf_appendc(out, (char)c) < 0)
			goto fail;
	}
	return 0;
fail:
	/* Leave out as it was, so a failed field never shows up as a partial value. */
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return -1;
}

/* 1 when the encoded field name s[0..n) decodes to name. Decoding on the fly keeps the scan over
 * a form's fields free of allocations; a malformed escape simply does not match. */
static int form_name_is(const char *s, size_t n, const char *name)
{
	size_t i = 0, k = 0;
	while (i < n) {
		int c = decode_at(s, n, &i);
		if (c < 0 || name[k] == '\0' || (unsigned char)name[k] != c)
			return 0;
		k++;
	}
	return name[k] == '\0';
}

int input_form_get(const char *s, size_t n, const char *name, struct buf *out)
{
	size_t i = 0;
	while (i < n) {
		const char *field = s + i;
		const char *amp = memchr(field, '&', n - i);
		size_t flen = amp ? (size_t)(amp - field) : n - i;
		const char *eq = memchr(field, '=', flen);
		size_t nlen = eq ? (size_t)(eq - field) : flen;
		if (form_name_is(field, nlen, name)) {
			/* A field without '=' has an empty value. */
			size_t vlen = eq ? flen - nlen - 1 : 0;
			return input_url_decode(field + nlen + (eq ? 1 : 0), vlen, out) < 0 ? -1 : 1;
		}
		i += flen + 1;
	}
	return 0;
}

/* ---- helpers ---- */

static int starts_with_brace(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i < n && s[i] == '{';
}

static enum err_kind check_text(const char *s, size_t n, const struct text_msgs *m, const char **msg)
{
	if (n == 0)
		return bad(msg, m->empty);
	if (memchr(s, '\0', n))
		return bad(msg, m->nul);
	if (!input_utf8_valid(s, n))
		return bad(msg, m->utf8);
	return ERR_OK;
}

/* A max_tokens from a form or query: digits only, 1..MAX_TOKENS_MAX. */
static int parse_count(const char *s, size_t n, long *out)
{
	long v = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > MAX_TOKENS_MAX)
			return -1;
	}
	if (v < 1)
		return -1;
	*out = v;
	return 0;
}

/* json-c reports allocation failure with NULL or -1; like xmalloc, that aborts. */
static struct json_object *jnew(struct json_object *o)
{
	if (!o)
		abort();
	return o;
}

static void jset(struct json_object *o, const char *key, struct json_object *v)
{
	if (json_object_object_add(o, key, v) != 0)
		abort();
}

static void jpush(struct json_object *a, struct json_object *v)
{
	if (json_object_array_add(a, v) != 0)
		abort();
}

/* ---- JSON bodies ---- */

/* 1 when o is a JSON string equal to want; lengths are compared so "user\u0000x" is not "user". */
static int string_is(struct json_object *o, const char *want)
{
	size_t n = strlen(want);
	return json_object_is_type(o, json_type_string) &&
	       (size_t)json_object_get_string_len(o) == n &&
	       memcmp(json_object_get_string(o), want, n) == 0;
}

/* Copies one turn's content: a non-empty string, or a non-empty array of text blocks. */
static enum err_kind copy_content(struct json_object *c, struct json_object **out, const char **msg)
{
	enum err_kind e;
	if (json_object_is_type(c, json_type_string)) {
		const char *s = json_object_get_string(c);
		size_t n = (size_t)json_object_get_string_len(c);
		if ((e = check_text(s, n, &content_msgs, msg)) != ERR_OK)
			return e;
		*out = jnew(json_object_new_string_len(s, (int)n));
		return ERR_OK;
	}
	size_t count;
	if (!json_object_is_type(c, json_type_array) || (count = json_object_array_length(c)) == 0)
		return bad(msg, MSG_CONTENT);
	struct json_object *blocks = jnew(json_object_new_array());
	for (size_t i = 0; i < count; i++) {
		struct json_object *block = json_object_array_get_idx(c, i), *type, *text;
		if (!json_object_is_type(block, json_type_object) ||
		    !json_object_object_get_ex(block, "type", &type) || !string_is(type, "text") ||
		    !json_object_object_get_ex(block, "text", &text) ||
		    !json_object_is_type(text, json_type_string)) {
			json_object_put(blocks);
			return bad(msg, MSG_CONTENT);
		}
		const char *s = json_object_get_string(text);
		size_t n = (size_t)json_object_get_string_len(text);
		if ((e = check_text(s, n, &content_msgs, msg)) != ERR_OK) {
			json_object_put(blocks);
			return e;
		}
		struct json_object *copy = jnew(json_object_new_object());
		jset(copy, "type", jnew(json_object_new_string("text")));
		jset(copy, "text", jnew(json_object_new_string_len(s, (int)n)));
		jpush(blocks, copy);
	}
	*out = blocks;
	return ERR_OK;
}

/* 1 when role is the JSON string "user", 0 for "assistant", -1 for anything else. */
static int role_is_user(struct json_object *role)
{
	if (string_is(role, "user"))
		return 1;
	return string_is(role, "assistant") ? 0 : -1;
}

static enum err_kind copy_messages(struct json_object *m, struct json_object **out,
				   const char **msg)
{
	size_t count;
	if (!json_object_is_type(m, json_type_array) || (count = json_object_array_length(m)) == 0 ||
	    count > MESSAGES_MAX)
		return bad(msg, "messages must be an array of 1 to 1000 turns");
	struct json_object *turns = jnew(json_object_new_array());
	enum err_kind e = ERR_OK;
	for (size_t i = 0; i < count && e == ERR_OK; i++) {
		struct json_object *turn = json_object_array_get_idx(m, i), *role, *content, *copy = NULL;
		int user;
		if (!json_object_is_type(turn, json_type_object) ||
		    !json_object_object_get_ex(turn, "role", &role) ||
		    !json_object_object_get_ex(turn, "content", &content))
			e = bad(msg, "each message must be an object with role and content");
		else if ((user = role_is_user(role)) < 0)
			e = bad(msg, "message role must be \"user\" or \"assistant\"");
		else if (i == 0 && !user)
			e = bad(msg, "the first message must be from the user");
		else if (i == count - 1 && !user)
			e = bad(msg, "the last message must be from the user");
		else if ((e = copy_content(content, &copy, msg)) == ERR_OK) {
			struct json_object *t = jnew(json_object_new_object());
			jset(t, "role", jnew(json_object_new_string(user ? "user" : "assistant")));
			jset(t, "content", copy);
			jpush(turns, t);
		}
	}
	if (e != ERR_OK) {
		json_object_put(turns);
		return e;
	}
	*out = turns;
	return ERR_OK;
}

/* Takes text, messages and max_tokens from a parsed top-level object. */
static enum err_kind json_fields(struct json_object *root, unsigned flags, struct input *r,
				 const char **msg)
{
	struct json_object *v;
	if (json_object_object_get_ex(root, "max_tokens", &v)) {
		/* json_type_int only: 1.0, 1e3 and "10" are not integers to us. json-c clamps
		 * out-of-range literals to INT64_MIN/MAX, which the range check rejects. */
		if (!json_object_is_type(v, json_type_int))
			return bad(msg, MSG_MAX_TOKENS);
		int64_t n = json_object_get_int64(v);
		if (n < 1 || n > MAX_TOKENS_MAX)
			return bad(msg, MSG_MAX_TOKENS);
		r->max_tokens = (long)n;
	}
	if ((flags & INPUT_ALLOW_MESSAGES) && json_object_object_get_ex(root, "messages", &v))
		return copy_messages(v, &r->messages, msg);
	if (!json_object_object_get_ex(root, "text", &v))
		return ERR_OK;
	if (!json_object_is_type(v, json_type_string))
		return bad(msg, "text must be a string");
	const char *s = json_object_get_string(v);
	size_t n = (size_t)json_object_get_string_len(v);
	/* JSON_TOKENER_VALIDATE_UTF8 only checks the byte structure: overlongs, surrogates and
	 * code points past U+10FFFF still get through it, so the text is checked again. */
	enum err_kind e = check_text(s, n, &text_msgs, msg);
	if (e != ERR_OK)
		return e;
	r->text = xstrndup(s, n);
	r->text_len = n;
	return ERR_OK;
}

static enum err_kind parse_json(const char *body, size_t len, unsigned flags, struct input *r,
				const char **msg)
{
	enum jscan_result why;
	struct json_object *root = jscan_parse(body, len, &why);
	enum err_kind e;
	if (why == JSCAN_COSTLY) {
		*msg = MSG_COSTLY;
		e = ERR_TOO_LARGE;
	} else if (why != JSCAN_OK) {
		e = bad(msg, MSG_MALFORMED_JSON);
	} else if (!json_object_is_type(root, json_type_object)) {
		e = bad(msg, "JSON body must be an object");
	} else {
		e = json_fields(root, flags, r, msg);
	}
	json_object_put(root);
	return e;
}

/* ---- forms, plain text, dispatch ---- */

/* Reads the "text" field of form-encoded s into r->text, if there is one (a text that is there
 * but empty or invalid is an error, so on ERR_OK r->text tells whether it was found). */
static enum err_kind form_text(const char *s, size_t n, struct input *r, const char **msg)
{
	struct buf v;
	buf_init(&v, n); /* a decoded value is never longer than its encoding */
	int rc = input_form_get(s, n, "text", &v);
	enum err_kind e = ERR_OK;
	if (rc < 0)
		e = bad(msg, "text has a malformed %-escape");
	else if (rc > 0 && (e = check_text(buf_cstr(&v), v.len, &text_msgs, msg)) == ERR_OK) {
		r->text_len = v.len;
		r->text = buf_detach(&v);
	}
	buf_release(&v);
	return e;
}

static enum err_kind form_max_tokens(const char *s, size_t n, long *out, const char **msg)
{
	struct buf v;
	buf_init(&v, n);
	int rc = input_form_get(s, n, "max_tokens", &v);
	enum err_kind e = ERR_OK;
	if (rc < 0 || (rc > 0 && parse_count(buf_cstr(&v), v.len, out) < 0))
		e = bad(msg, MSG_MAX_TOKENS);
	buf_release(&v);
	return e;
}

static enum err_kind parse_form(const char *body, size_t len, unsigned flags, struct input *r,
				const char **msg)
{
	/* curl -d '{"text":...}' sends JSON labelled as a form. A body that parses as JSON is read as
	 * JSON first: otherwise "&text=" inside one of its strings would be taken for a form field. */
	enum err_kind json_err = ERR_OK;
	const char *json_msg = NULL;
	if (starts_with_brace(body, len)) {
		json_err = parse_json(body, len, flags, r, &json_msg);
		if (json_err == ERR_OK)
			return ERR_OK;
		input_release(r);
	}
	enum err_kind e = form_text(body, len, r, msg);
	if (e != ERR_OK)
		return e;
	if (!r->text && json_err != ERR_OK) {
		*msg = json_msg;
		return json_err;
	}
	return form_max_tokens(body, len, &r->max_tokens, msg);
}

enum body_type { BODY_SNIFF, BODY_JSON, BODY_FORM, BODY_PLAIN, BODY_UNSUPPORTED };

static enum body_type body_type(const char *ct)
{
	static const struct {
		const char *name;
		enum body_type type;
	} types[] = {
		{"application/json", BODY_JSON},
		{"application/x-www-form-urlencoded", BODY_FORM},
		{"text/plain", BODY_PLAIN},
	};
	if (!ct)
		return BODY_SNIFF;
	size_t n = strcspn(ct, ";");
	while (n > 0 && (*ct == ' ' || *ct == '\t'))
		ct++, n--;
	while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	if (n == 0)
		return BODY_SNIFF;
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strlen(types[i].name) == n && strncasecmp(ct, types[i].name, n) == 0)
			return types[i].type;
	return BODY_UNSUPPORTED;
}

static enum err_kind parse_body(const char *ct, const char *body, size_t len, unsigned flags,
				struct input *r, const char **msg)
{
	enum err_kind e;
	switch (body_type(ct)) {
	case BODY_JSON:
		return parse_json(body, len, flags, r, msg);
	case BODY_FORM:
		return parse_form(body, len, flags, r, msg);
	case BODY_PLAIN:
		if ((e = check_text(body, len, &text_msgs, msg)) != ERR_OK)
			return e;
		r->text = xstrndup(body, len);
		r->text_len = len;
		return ERR_OK;
	case BODY_SNIFF:
		return starts_with_brace(body, len) ? parse_json(body, len, flags, r, msg)
						    : parse_form(body, len, flags, r, msg);
	case BODY_UNSUPPORTED:
		break;
	}
	*msg = "unsupported content type";
	return ERR_MEDIA_TYPE;
}

enum err_kind input_parse(const char *content_type, const char *body, size_t body_len,
			  const char *query, unsigned flags, struct input *in, const char **msg)
{
	struct input r = {0};
	enum err_kind e = ERR_OK;
	*msg = NULL;
	*in = r;
	if (body_len > 0)
		e = parse_body(content_type, body, body_len, flags, &r, msg);
	/* The body wins; the query fills in what it left out, field by field (a text/plain body
	 * can only say how many tokens it wants through the query). */
	if (e == ERR_OK && !r.text && !r.messages && query)
		e = form_text(query, strlen(query), &r, msg);
	if (e == ERR_OK && !r.text && !r.messages)
		e = bad(msg, "missing text");
	if (e == ERR_OK && r.max_tokens == 0 && query)
		e = form_max_tokens(query, strlen(query), &r.max_tokens, msg);
	if (e != ERR_OK) {
		input_release(&r);
		return e;
	}
	*in = r;
	return ERR_OK;
}

void input_release(struct input *in)
{
	free(in->text);
	json_object_put(in->messages);
	in->text = NULL;
	in->text_len = 0;
	in->messages = NULL;
	in->max_tokens = 0;
}
