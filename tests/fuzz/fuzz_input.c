/* libFuzzer target for input.c. The input is split into
 *   byte 0: low 4 bits pick a content type, bit 4 drops the query, bits 5-7 pick a small max
 *           for the direct input_url_decode / input_form_get calls;
 *   then the query string up to the first '\n' (cut at a NUL: it is a C string);
 *   then the body (copied to its own allocation, so ASan sees any read past it).
 * input_parse runs with and without INPUT_ALLOW_MESSAGES and its results are checked against the
 * contract; input_utf8_valid is checked against a table-driven reference (RFC 3629, section 4);
 * input_url_decode and input_form_get against a reference decoder and the buffer rules. */
#include "config.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const content_types[16] = {
	NULL,
	"",
	"application/json",
	"application/x-www-form-urlencoded",
	"text/plain",
	"Application/JSON; charset=utf-8",
	" application/x-www-form-urlencoded ;charset=UTF-8",
	"TEXT/PLAIN;charset=utf-8",
	"application/xml",
	"multipart/form-data; boundary=x",
	"; charset=utf-8",
	"application/json",
	"application/x-www-form-urlencoded",
	"text/plain",
	NULL,
	"application/jsonx",
};

/* RFC 3629's well-formed byte sequences, written as ranges: a second opinion on the validator. */
static int utf8_reference(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		unsigned lo = 0x80, hi = 0xBF;
		size_t len;
		if (c <= 0x7F)
			len = 1;
		else if (c >= 0xC2 && c <= 0xDF)
			len = 2;
		else if (c == 0xE0)
			len = 3, lo = 0xA0;
		else if (c == 0xED)
			len = 3, hi = 0x9F;
		else if (c >= 0xE1 && c <= 0xEF)
			len = 3;
		else if (c == 0xF0)
			len = 4, lo = 0x90;
		else if (c == 0xF4)
			len = 4, hi = 0x8F;
		else if (c >= 0xF1 && c <= 0xF3)
			len = 4;
		else
			return 0;
		if (n - i < len)
			return 0;
		if (len > 1 && (s[i + 1] < lo || s[i + 1] > hi))
			return 0;
		for (size_t k = 2; k < len; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return 0;
		i += len;
	}
	return 1;
}

static int hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The obvious byte-at-a-time decoder; returns the decoded length or -1. */
static long decode_reference(const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			if (n - i < 3 || hex((unsigned char)s[i + 1]) < 0 ||
			    hex((unsigned char)s[i + 2]) < 0)
				return -1;
			out[o++] = (char)(hex((unsigned char)s[i + 1]) << 4 | hex((unsigned char)s[i + 2]));
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	return (long)o;
}

static int role_is(struct json_object *turn, const char *role)
{
	struct json_object *r;
	return json_object_object_get_ex(turn, "role", &r) &&
	       strcmp(json_object_get_string(r), role) == 0;
}

static void check_messages(struct json_object *m)
{
	if (!json_object_is_type(m, json_type_array))
		abort();
	size_t n = json_object_array_length(m);
	if (n < 1 || n > 1000)
		abort();
	for (size_t i = 0; i < n; i++) {
		struct json_object *turn = json_object_array_get_idx(m, i), *content;
		if (json_object_object_length(turn) != 2 ||
		    !json_object_object_get_ex(turn, "content", &content) ||
		    (!role_is(turn, "user") && !role_is(turn, "assistant")))
			abort();
		if (json_object_is_type(content, json_type_string)) {
			const char *s = json_object_get_string(content);
			size_t len = (size_t)json_object_get_string_len(content);
			if (len == 0 || strlen(s) != len || !input_utf8_valid(s, len))
				abort();
		} else if (!json_object_is_type(content, json_type_array) ||
			   json_object_array_length(content) == 0) {
			abort();
		}
	}
	if (!role_is(json_object_array_get_idx(m, 0), "user") ||
	    !role_is(json_object_array_get_idx(m, n - 1), "user"))
		abort();
	/* What we forward must serialize to JSON that parses back. */
	struct json_object *back = json_tokener_parse(json_object_to_json_string(m));
	if (!back)
		abort();
	json_object_put(back);
}

static void check_parse(const char *ct, const char *body, size_t len, const char *query,
			unsigned flags)
{
	struct input in;
	const char *msg = "unset";
	enum err_kind e = input_parse(ct, body, len, query, flags, &in, &msg);
	if (e != ERR_OK) {
		if (!msg || (e != ERR_BAD_REQUEST && e != ERR_MEDIA_TYPE && e != ERR_TOO_LARGE) ||
		    in.text || in.messages || in.text_len || in.max_tokens)
			abort();
		return;
	}
	if (msg || !in.text == !in.messages || in.max_tokens < 0 || in.max_tokens > 1000000000)
		abort();
	if (in.text && (in.text_len == 0 || strlen(in.text) != in.text_len ||
			!input_utf8_valid(in.text, in.text_len)))
		abort();
	if (in.messages) {
		if (!(flags & INPUT_ALLOW_MESSAGES))
			abort();
		check_messages(in.messages);
	}
	input_release(&in);
}

static void check_decoding(const char *s, size_t n, size_t max)
{
	if (input_utf8_valid(s, n) != utf8_reference((const unsigned char *)s, n))
		abort();

	char *want = malloc(n + 1);
	long want_len = decode_reference(s, n, want);
	struct buf b;
	buf_init(&b, max + 1);
	BUF_MUST(buf_appendc(&b, '#'));
	int rc = input_url_decode(s, n, &b);
	if (want_len >= 0 && (size_t)want_len <= max) {
		if (rc != 0 || b.len != (size_t)want_len + 1 || memcmp(b.data + 1, want, b.len - 1))
			abort();
	} else if (rc != -1 || b.len != 1 || b.data[1] != '\0') {
		abort(); /* a failure leaves the buffer as it was */
	}
	free(want);

	buf_reset(&b);
	rc = input_form_get(s, n, "text", &b);
	if (rc < -1 || rc > 1 || (rc != 1 && b.len != 0) || b.len > max + 1 || b.len > n)
		abort();
	buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned sel = data[0];
	const char *rest = (const char *)data + 1;
	size_t n = size - 1;
	const char *nl = memchr(rest, '\n', n);
	size_t qlen = nl ? (size_t)(nl - rest) : n;
	char *query = NULL;
	if (!(sel & 0x10))
		query = strndup(rest, qlen); /* stops at a NUL, like any C string */
	size_t blen = nl ? n - qlen - 1 : 0;
	char *body = malloc(blen ? blen : 1);
	if (blen)
		memcpy(body, nl + 1, blen);

	const char *ct = content_types[sel & 0x0F];
	check_parse(ct, body, blen, query, 0);
	check_parse(ct, body, blen, query, INPUT_ALLOW_MESSAGES);
	check_decoding(body, blen, (sel >> 5) * 4);
	check_decoding(rest, n, n);

	free(body);
	free(query);
	return 0;
}
