/* input: what a client asked for, taken from a request's query string and body (pure).
 *
 * Rules (shared by /summarize, /sync-summarize, /async-summarize and /stream):
 * - A non-empty body is parsed by its content type (parameters such as "; charset=utf-8" are
 *   ignored, the type is matched case-insensitively):
 *     application/json                  -> the "text" field
 *     application/x-www-form-urlencoded -> the "text" field; a form body with no text field that
 *                                          starts with '{' is read as JSON (curl -d '{"text":..}')
 *     text/plain                        -> the whole body is the text
 *     no content type                   -> JSON if the body starts with '{' (after whitespace),
 *                                          else form
 *     anything else                     -> ERR_MEDIA_TYPE
 * - The body wins over the query string: when the body gives no text, "text" from the query
 *   string (form-encoded) is used.
 * - A JSON body may carry "messages" (an array of {role, content} turns, role "user" or
 *   "assistant", content a non-empty string) instead of "text", when the caller allows it.
 * - A JSON body may carry "max_tokens" (a positive integer).
 * - Errors (ERR_BAD_REQUEST, with a message meant for the client): malformed JSON (jscan's
 *   RFC 8259 check: raw control characters in strings, nesting past JSCAN_DEPTH), a JSON body
 *   that is not an object, text that is not a string, an empty text, missing text, invalid
 *   UTF-8, a NUL byte, malformed %-escapes, a malformed messages array, a max_tokens that is not
 *   a positive integer. ERR_TOO_LARGE: a JSON body whose tree would cost more than jscan's
 *   budget for its size. */
#ifndef LLM_INPUT_H
#define LLM_INPUT_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

struct json_object;

struct input {
	char *text; /* NUL-terminated, valid UTF-8, no NUL bytes; NULL when messages is used */
	size_t text_len;
	struct json_object *messages; /* validated copy of the body's "messages" array, or NULL */
	long max_tokens;              /* from the request, 0 when absent */
};

enum input_flags {
	INPUT_ALLOW_MESSAGES = 1, /* accept "messages" instead of "text" (the /stream endpoint) */
};

/* Parses a request's input. content_type, query may be NULL. On success returns ERR_OK and fills
 * *in (caller releases it with input_release). On failure returns the error kind, fills nothing
 * that needs releasing, and points *msg at a static, client-safe message. */
enum err_kind input_parse(const char *content_type, const char *body, size_t body_len,
			  const char *query, unsigned flags, struct input *in, const char **msg);
void input_release(struct input *in);

/* Finds field name in a form-encoded string (a query string or a form body) and appends its
 * decoded value to out. Returns 1 when found, 0 when absent, -1 when the value is malformed or
 * does not fit in out. The first occurrence wins. */
int input_form_get(const char *s, size_t n, const char *name, struct buf *out);

/* Decodes application/x-www-form-urlencoded bytes ('+' is a space, %XX a byte) into out.
 * Returns 0, or -1 on a malformed escape or when out's max is exceeded. */
int input_url_decode(const char *s, size_t n, struct buf *out);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
int input_utf8_valid(const char *s, size_t n);

#endif
