#include "http1.h"

#include <string.h>
#include <strings.h>

enum {
	ST_STATUS,
	ST_HEADER,
	ST_BODY_LEN,   /* length bytes left */
	ST_BODY_CLOSE, /* until the connection ends */
	ST_CHUNK_SIZE,
	ST_CHUNK_DATA, /* length bytes of this chunk left */
	ST_CHUNK_END,  /* the CRLF after a chunk's data */
	ST_TRAILER,
	ST_DONE,
	ST_ERROR,
};

/* Content-Length and chunk sizes above this are not an answer (and cannot overflow below). */
#define SIZE_LIMIT (1ULL << 60)

static void clear_head(struct http1 *p)
{
	p->minor = 0;
	p->status = 0;
	p->request_id[0] = p->content_type[0] = p->retry_after[0] = '\0';
	p->retry_after_ms[0] = p->should_retry[0] = '\0';
	p->close = p->keep_alive = p->chunked = p->te_seen = p->length_seen = 0;
	p->length = 0;
}

void http1_init(struct http1 *p)
{
	clear_head(p);
	p->reusable = 0;
	p->error = NULL;
	p->state = ST_STATUS;
	p->head_done = 0;
	p->head_bytes = 0;
	p->line_len = 0;
}

int http1_started(const struct http1 *p)
{
	return p->head_bytes > 0;
}

static enum http1_event fail(struct http1 *p, const char *why)
{
	p->state = ST_ERROR;
	p->error = why;
	p->reusable = 0;
	return HTTP1_ERROR;
}

/* Gathers one line into p->line (its end, LF or CRLF, dropped; NUL-terminated; *len bytes).
 * Returns 1 when a whole line is there, 0 when the input ran out first, -1 when it is too long.
 * Lines of the head and the trailers also count against HTTP1_HEAD_MAX. */
static int take_line(struct http1 *p, const char **in, size_t *n, size_t *len)
{
	const char *lf = memchr(*in, '\n', *n);
	size_t k = lf ? (size_t)(lf - *in) + 1 : *n;
	if (p->line_len + k > HTTP1_LINE_MAX - 1)
		return -1;
	if (!p->head_done || p->state == ST_TRAILER) {
		p->head_bytes += k;
		if (p->head_bytes > HTTP1_HEAD_MAX)
			return -1;
	}
	memcpy(p->line + p->line_len, *in, k);
	p->line_len += k;
	*in += k;
	*n -= k;
	if (!lf)
		return 0;
	*len = p->line_len - 1;
	if (*len && p->line[*len - 1] == '\r')
		(*len)--;
	p->line[*len] = '\0';
	p->line_len = 0;
	return 1;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "HTTP/1.x NNN[ reason]" */
static int status_line(struct http1 *p, const char *s)
{
	if (strncmp(s, "HTTP/1.", 7) != 0 || !is_digit(s[7]) || s[8] != ' ')
		return -1;
	s += 9;
	while (*s == ' ')
		s++;
	if (!is_digit(s[0]) || !is_digit(s[1]) || !is_digit(s[2]) || (s[3] && s[3] != ' '))
		return -1;
	p->minor = p->line[7] - '0';
	p->status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	return p->status >= 100 ? 0 : -1;
}

/* Copies v (n bytes) into dst, cut to fit: the last of repeated headers wins, as it would have
 * overwritten an earlier one. */
static void keep(char *dst, size_t cap, const char *v, size_t n)
{
	if (n > cap - 1)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* Whether the comma-separated list v (n bytes) holds token (case-insensitive); with last, only
 * its last element counts (Transfer-Encoding: the final coding). */
static int has_token(const char *v, size_t n, const char *token, int last)
{
	size_t tl = strlen(token);
	int found = 0;
	size_t i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		size_t a = i, b = j;
		while (a < b && (v[a] == ' ' || v[a] == '\t'))
			a++;
		while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
			b--;
		int match = b - a == tl && strncasecmp(v + a, token, tl) == 0;
		if (last)
			found = match;
		else
			found = found || match;
		i = j + 1;
	}
	return found;
}

static int content_length(struct http1 *p, const char *v, size_t n)
{
	unsigned long long x = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(v[i]) || x > SIZE_LIMIT)
			return -1;
		x = x * 10 + (unsigned)(v[i] - '0');
	}
	if (x > SIZE_LIMIT || (p->length_seen && x != p->length))
		return -1; /* two lengths that differ: no way to know where the body ends */
	p->length = x;
	p->length_seen = 1;
	return 0;
}

static int named(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* One header line: the framing headers and the few upstream reads. */
static int header_line(struct http1 *p, const char *s, size_t len)
{
	const char *colon = memchr(s, ':', len);
	if (!colon || colon == s)
		return -1;
	size_t nl = (size_t)(colon - s);
	for (size_t i = 0; i < nl; i++)
		if (s[i] == ' ' || s[i] == '\t')
			return -1; /* also refuses obsolete line folding, which starts with a blank */
	const char *v = colon + 1, *end = s + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	size_t vl = (size_t)(end - v);
	if (named(s, nl, "content-length"))
		return content_length(p, v, vl);
	if (named(s, nl, "transfer-encoding")) {
		p->te_seen = 1;
		p->chunked = has_token(v, vl, "chunked", 1);
	} else if (named(s, nl, "connection")) {
		p->close = p->close || has_token(v, vl, "close", 0);
		p->keep_alive = p->keep_alive || has_token(v, vl, "keep-alive", 0);
	} else if (named(s, nl, "request-id")) {
		keep(p->request_id, sizeof p->request_id, v, vl);
	} else if (named(s, nl, "content-type")) {
		keep(p->content_type, sizeof p->content_type, v, vl);
	} else if (named(s, nl, "retry-after")) {
		keep(p->retry_after, sizeof p->retry_after, v, vl);
	} else if (named(s, nl, "retry-after-ms")) {
		keep(p->retry_after_ms, sizeof p->retry_after_ms, v, vl);
	} else if (named(s, nl, "x-should-retry")) {
		keep(p->should_retry, sizeof p->should_retry, v, vl);
	}
	return 0;
}

/* The blank line after the headers: an interim answer starts over, a final one picks the body's
 * framing (RFC 9112 section 6.3; the request is never HEAD). */
static enum http1_event end_of_head(struct http1 *p)
{
	if (p->status < 200) {
		if (p->status == 101)
			return fail(p, "101 Switching Protocols, which was not asked for");
		clear_head(p);
		p->state = ST_STATUS;
		return HTTP1_MORE;
	}
	p->head_done = 1;
	int persistent = !p->close && (p->minor >= 1 || p->keep_alive);
	if (p->status == 204 || p->status == 304) {
		p->state = ST_DONE;
		p->length = 0;
	} else if (p->te_seen) {
		/* Transfer-Encoding overrides Content-Length; a sender of both must close after. */
		p->state = p->chunked ? ST_CHUNK_SIZE : ST_BODY_CLOSE;
		persistent = persistent && p->chunked && !p->length_seen;
	} else if (p->length_seen) {
		p->state = p->length ? ST_BODY_LEN : ST_DONE;
	} else {
		p->state = ST_BODY_CLOSE;
		persistent = 0;
	}
	p->reusable = persistent;
	return HTTP1_HEAD;
}

static enum http1_event head(struct http1 *p, const char **in, size_t *n)
{
	for (;;) {
		size_t len;
		int r = take_line(p, in, n, &len);
		if (r < 0)
			return fail(p, "a header block past its cap");
		if (r == 0)
			return HTTP1_MORE;
		if (strlen(p->line) != len)
			return fail(p, "a NUL in the header block");
		if (p->state == ST_STATUS) {
			if (status_line(p, p->line) < 0)
				return fail(p, "not an HTTP/1.x status line");
			p->state = ST_HEADER;
		} else if (len == 0) {
			enum http1_event ev = end_of_head(p);
			if (ev != HTTP1_MORE)
				return ev;
		} else if (header_line(p, p->line, len) < 0) {
			return fail(p, "a malformed header line");
		}
	}
}

/* A chunk-size line: hex digits, then maybe extensions (ignored). */
static int chunk_size(struct http1 *p, const char *s)
{
	unsigned long long x = 0;
	const char *start = s;
	for (;; s++) {
		int d = is_digit(*s) ? *s - '0' : (*s | 32) >= 'a' && (*s | 32) <= 'f' ? (*s | 32) - 'a' + 10 : -1;
		if (d < 0)
			break;
		if (x > SIZE_LIMIT)
			return -1;
		x = x * 16 + (unsigned)d;
	}
	if (s == start || x > SIZE_LIMIT || (*s && *s != ';' && *s != ' ' && *s != '\t'))
		return -1;
	p->length = x;
	return 0;
}

static enum http1_event slice(struct http1 *p, const char **in, size_t *n, const char **body,
			      size_t *body_len, int next)
{
	size_t k = *n;
	if (p->state != ST_BODY_CLOSE) {
		if ((unsigned long long)k > p->length)
			k = (size_t)p->length;
		p->length -= k;
		if (!p->length)
			p->state = next;
	}
	*body = *in;
	*body_len = k;
	*in += k;
	*n -= k;
	return HTTP1_BODY;
}

/* The lines of chunked framing: a size, the CRLF after a chunk, the trailers. */
static enum http1_event chunk_line(struct http1 *p, const char **in, size_t *n)
{
	size_t len;
	int r = take_line(p, in, n, &len);
	if (r < 0)
		return fail(p, "a chunk line past its cap");
	if (r == 0)
		return HTTP1_MORE;
	if (p->state == ST_CHUNK_SIZE) {
		if (chunk_size(p, p->line) < 0)
			return fail(p, "a malformed chunk size");
		p->state = p->length ? ST_CHUNK_DATA : ST_TRAILER;
	} else if (p->state == ST_CHUNK_END) {
		if (len)
			return fail(p, "chunk data longer than its size");
		p->state = ST_CHUNK_SIZE;
	} else if (!len) {
		p->state = ST_DONE;
	}
	return HTTP1_MORE;
}

enum http1_event http1_parse(struct http1 *p, const char **in, size_t *n, const char **body,
			     size_t *body_len)
{
	for (;;) {
		switch (p->state) {
		case ST_STATUS:
		case ST_HEADER:
			if (!*n)
				return HTTP1_MORE;
			return head(p, in, n);
		case ST_BODY_LEN:
		case ST_BODY_CLOSE:
			if (!*n)
				return HTTP1_MORE;
			return slice(p, in, n, body, body_len, ST_DONE);
		case ST_CHUNK_DATA:
			if (!*n)
				return HTTP1_MORE;
			return slice(p, in, n, body, body_len, ST_CHUNK_END);
		case ST_CHUNK_SIZE:
		case ST_CHUNK_END:
		case ST_TRAILER:
			if (!*n)
				return HTTP1_MORE;
			if (chunk_line(p, in, n) == HTTP1_ERROR)
				return HTTP1_ERROR;
			break;
		case ST_DONE:
			if (*n)
				p->reusable = 0; /* bytes after the end: the connection is out of step */
			return HTTP1_DONE;
		default:
			return HTTP1_ERROR;
		}
	}
}

enum http1_event http1_eof(struct http1 *p)
{
	if (p->state == ST_BODY_CLOSE || p->state == ST_DONE) {
		p->state = ST_DONE;
		p->reusable = 0;
		return HTTP1_DONE;
	}
	if (p->state == ST_ERROR)
		return HTTP1_ERROR;
	return fail(p, p->head_done ? "the connection closed inside the body" :
				      "the connection closed before the end of the headers");
}
