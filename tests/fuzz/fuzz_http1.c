/* libFuzzer target for the HTTP/1.1 response parser. The first input byte chooses a mode and a
 * chunking. Mode 0: the rest is what an upstream sent; parsing it whole and in pieces must give the
 * same heads, body bytes and end, every body slice must lie in the piece it came from, and no byte
 * may be read past a piece (each is a copy of exactly its size, for ASan). Mode 1: the rest is a
 * body, framed chunked (chunk sizes drawn from the first byte) or by Content-Length; the parser
 * must give back exactly that body, once, and a reusable connection. */

#include "http1.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define RECORD_MAX ((size_t)1 << 30)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct record {
	struct buf events; /* the heads and the end, with their fields */
	struct buf body;
	int reusable;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (buf_append(b, p, n) < 0)
		abort();
}

static void put_head(struct record *r, const struct http1 *p)
{
	put(&r->events, "H", 1);
	put(&r->events, &p->status, sizeof p->status);
	put(&r->events, &r->body.len, sizeof r->body.len);
	const char *fields[] = {p->request_id, p->content_type, p->retry_after, p->retry_after_ms,
				p->should_retry};
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		put(&r->events, fields[i], strlen(fields[i]) + 1);
}

/* Feeds p (n bytes) in pieces of step, then the end of the connection. */
static void run(const char *p, size_t n, size_t step, struct record *r)
{
	struct http1 h;
	http1_init(&h);
	enum http1_event end = HTTP1_MORE;
	int rest = 0; /* bytes after the end: the parser sees them only when they share its read */
	for (size_t off = 0; end == HTTP1_MORE && off < n; off += step) {
		size_t k = step && n - off > step ? step : n - off;
		char *piece = xmalloc(k);
		memcpy(piece, p + off, k);
		const char *in = piece;
		size_t left = k;
		while (end == HTTP1_MORE) {
			const char *body;
			size_t len;
			enum http1_event ev = http1_parse(&h, &in, &left, &body, &len);
			if (ev == HTTP1_MORE)
				break;
			if (ev == HTTP1_HEAD)
				put_head(r, &h);
			if (ev == HTTP1_BODY) {
				if (len == 0 || body < piece || body + len > piece + k)
					abort();
				put(&r->body, body, len);
			}
			if (ev == HTTP1_DONE || ev == HTTP1_ERROR) {
				end = ev;
				rest = left > 0 || off + k < n;
			}
		}
		free(piece);
	}
	if (end == HTTP1_MORE)
		end = http1_eof(&h);
	if (end == HTTP1_ERROR && !h.error)
		abort();
	if (r->body.len > n)
		abort();
	put(&r->events, end == HTTP1_DONE ? "D" : "E", 1);
	r->reusable = end == HTTP1_DONE && h.reusable && !rest;
}

static void record_init(struct record *r)
{
	buf_init(&r->events, RECORD_MAX);
	buf_init(&r->body, RECORD_MAX);
	r->reusable = 0;
}

static void record_release(struct record *r)
{
	buf_release(&r->events);
	buf_release(&r->body);
}

static int same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void split(const char *p, size_t n, size_t step)
{
	struct record whole, pieces;
	record_init(&whole);
	record_init(&pieces);
	run(p, n, n, &whole);
	run(p, n, step, &pieces);
	if (!same(&whole.events, &pieces.events) || !same(&whole.body, &pieces.body) ||
	    whole.reusable != pieces.reusable)
		abort();
	record_release(&whole);
	record_release(&pieces);
}

/* body framed chunked (chunk sizes from seed) or by Content-Length, parsed back. */
static void round_trip(const char *body, size_t n, unsigned seed)
{
	struct buf msg;
	buf_init(&msg, RECORD_MAX);
	int chunked = seed & 1;
	int bad = chunked ? buf_appends(&msg, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			  : buf_printf(&msg, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n) ||
				    buf_append(&msg, body, n);
	if (bad)
		abort();
	for (size_t off = 0; chunked && off <= n;) {
		seed = seed * 1103515245u + 12345u;
		size_t k = off == n ? 0 : 1 + (seed >> 16) % 64;
		if (k > n - off)
			k = n - off;
		if (buf_printf(&msg, "%zx%s\r\n", k, seed & 0x8000 ? ";ext=1" : "") < 0 ||
		    buf_append(&msg, body + off, k) < 0 || buf_appends(&msg, "\r\n") < 0)
			abort();
		off += k ? k : 1;
	}
	struct record r;
	record_init(&r);
	run(msg.data, msg.len, 1 + seed % 13, &r);
	if (r.body.len != n || (n && memcmp(r.body.data, body, n) != 0) || !r.reusable ||
	    r.events.data[r.events.len - 1] != 'D')
		abort();
	record_release(&r);
	buf_release(&msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned char sel = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	if (sel & 1)
		round_trip(p, n, sel >> 1);
	else
		split(p, n, 1 + (sel >> 1) % 17);
	return 0;
}
