/* conn: see conn.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* MSG_NOSIGNAL */
#endif

#include "conn.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stats.h"

#define OUT_MAX     ((size_t)160 * 1024 * 1024) /* queued output per connection */
#define RL_REQUESTS 4000
#define RL_TOKENS   400000
#define NO_TIMER    SIZE_MAX

/* A binary min-heap of connections by deadline. */
static struct {
	struct conn **v;
	size_t n, cap;
} heap;

static void heap_swap(size_t a, size_t b)
{
	struct conn *t = heap.v[a];

	heap.v[a] = heap.v[b];
	heap.v[b] = t;
	heap.v[a]->heap_idx = a;
	heap.v[b]->heap_idx = b;
}

static void heap_up(size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (heap.v[p]->deadline <= heap.v[i]->deadline)
			return;
		heap_swap(i, p);
		i = p;
	}
}

static void heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < heap.n && heap.v[l]->deadline < heap.v[m]->deadline)
			m = l;
		if (r < heap.n && heap.v[r]->deadline < heap.v[m]->deadline)
			m = r;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

void conn_timer_clear(struct conn *c)
{
	size_t i = c->heap_idx;

	if (i == NO_TIMER)
		return;
	c->heap_idx = NO_TIMER;
	if (i != --heap.n) {
		heap.v[i] = heap.v[heap.n];
		heap.v[i]->heap_idx = i;
		heap_down(i);
		heap_up(i);
	}
}

void conn_timer_set(struct conn *c, long ms)
{
	conn_timer_clear(c);
	if (heap.n == heap.cap) {
		heap.cap = heap.cap ? 2 * heap.cap : 64;
		heap.v = xrealloc(heap.v, heap.cap * sizeof *heap.v);
	}
	c->deadline = mono_us() + (int64_t)ms * 1000;
	heap.v[heap.n] = c;
	c->heap_idx = heap.n++;
	heap_up(c->heap_idx);
}

int conn_timer_wait_ms(void)
{
	int64_t d;

	if (!heap.n)
		return -1;
	d = heap.v[0]->deadline - mono_us();
	if (d <= 0)
		return 0;
	d = (d + 999) / 1000; /* round up: waking early would just spin */
	return d > INT_MAX ? INT_MAX : (int)d;
}

struct conn *conn_timer_pop(int64_t now)
{
	struct conn *c;

	if (!heap.n || heap.v[0]->deadline > now)
		return NULL;
	c = heap.v[0];
	conn_timer_clear(c);
	return c;
}

void conn_timers_free(void)
{
	free(heap.v);
}

void conn_add(struct conn *c, const void *d, size_t n)
{
	if (c->dead)
		return;
	if (obuf_pending(&c->out) + n > OUT_MAX) {
		warnmsg("output queue over %zu bytes, dropping connection", OUT_MAX);
		c->dead = true;
		return;
	}
	obuf_add(&c->out, d, n);
}

void conn_flush(struct conn *c)
{
	while (!c->dead && obuf_pending(&c->out)) {
		ssize_t n = send(c->pl.fd, c->out.p + c->out.off, obuf_pending(&c->out), MSG_NOSIGNAL);

		if (n > 0)
			obuf_consume(&c->out, (size_t)n);
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		else
			c->dead = true; /* the peer is gone: EPIPE, ECONNRESET, ... */
	}
}

void conn_body(struct conn *c, bool chunked, const char *d, size_t n)
{
	if (chunked) {
		char h[24];
		int k = snprintf(h, sizeof h, "%zx\r\n", n);

		conn_add(c, h, (size_t)k);
		conn_add(c, d, n);
		conn_add(c, "\r\n", 2);
	} else {
		conn_add(c, d, n);
	}
	conn_flush(c);
}

const char *conn_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 529: return "Overloaded";
	default: return status < 500 ? "Client Error" : "Server Error";
	}
}

static bool conn_keeps(const struct conn *c)
{
	return c->rq.keep_alive && c->st != C_CLOSING;
}

/* The rate-limit headers of a 200 or a 429, with the window resetting in a minute. */
static void head_ratelimit(struct obuf *h, int status, time_t now)
{
	bool limited = status == 429;
	char reset[32];

	rfc3339(reset, sizeof reset, now + 60);
	obuf_fmt(h,
		"anthropic-ratelimit-requests-limit: %d\r\n"
		"anthropic-ratelimit-requests-remaining: %d\r\n"
		"anthropic-ratelimit-requests-reset: %s\r\n"
		"anthropic-ratelimit-tokens-limit: %d\r\n"
		"anthropic-ratelimit-tokens-remaining: %d\r\n"
		"anthropic-ratelimit-tokens-reset: %s\r\n",
		RL_REQUESTS, limited ? 0 : RL_REQUESTS - 1, reset,
		RL_TOKENS, limited ? 0 : RL_TOKENS, reset);
}

/* retry-after (1 on 429 and 529 unless a marker says otherwise) and the other retry knobs. */
static void head_retry(struct obuf *h, int status, const struct opts *o)
{
	const char *ra = NULL;

	if (status == 429 || status == 529)
		ra = "1";
	if (o && o->retry_after[0])
		ra = o->retry_after;
	if (ra)
		obuf_fmt(h, "retry-after: %s\r\n", ra);
	if (o && o->retry_after_ms[0])
		obuf_fmt(h, "retry-after-ms: %s\r\n", o->retry_after_ms);
	if (o && o->should_retry >= 0)
		obuf_fmt(h, "x-should-retry: %s\r\n", o->should_retry ? "true" : "false");
}

void conn_head(struct conn *c, int status, const char *ctype, long long clen,
	       const struct opts *o)
{
	struct obuf h = { 0 };
	time_t now = time(NULL);
	char date[64];

	http_date(date, sizeof date, now);
	obuf_fmt(&h, "HTTP/1.1 %d %s\r\ndate: %s\r\ncontent-type: %s\r\n",
		status, conn_reason(status), date, ctype);
	if (clen < 0)
		obuf_str(&h, "transfer-encoding: chunked\r\ncache-control: no-cache\r\n");
	else
		obuf_fmt(&h, "content-length: %lld\r\n", clen);
	obuf_fmt(&h, "request-id: %s\r\nconnection: %s\r\n", c->rq.rid,
		conn_keeps(c) ? "keep-alive" : "close");
	if (status == 200 || status == 429)
		head_ratelimit(&h, status, now);
	head_retry(&h, status, o);
	obuf_str(&h, "\r\n");
	conn_add(c, h.p, h.len);
	obuf_free(&h);
	c->rq.status = status;
}

void conn_send_json(struct conn *c, int status, json_object *body, const struct opts *o)
{
	size_t n;
	const char *s = json_object_to_json_string_length(body, JFLAGS, &n);

	conn_head(c, status, "application/json", (long long)n, o);
	conn_add(c, s, n);
	conn_flush(c);
}

void conn_send_error(struct conn *c, int status, const char *type, const char *msg,
		     const struct opts *o)
{
	json_object *e = jobj(), *inner = jobj();

	jset(inner, "type", jstr(type));
	jset(inner, "message", jstr(msg));
	jset(e, "type", jstr("error"));
	jset(e, "error", inner);
	jset(e, "request_id", jstr(c->rq.rid));
	conn_send_json(c, status, e, o);
	json_object_put(e);
	stats.t.errors_sent++;
}

const char *conn_header(const struct conn *c, const char *name)
{
	const struct req *r = &c->rq;

	for (size_t i = 0; i < r->nh; i++)
		if (strcmp(r->h[i].name, name) == 0)
			return r->h[i].value;
	return NULL;
}

json_object *conn_headers_json(const struct conn *c)
{
	const struct req *r = &c->rq;
	json_object *h = jobj(), *prev;

	for (size_t i = 0; i < r->nh; i++) {
		if (json_object_object_get_ex(h, r->h[i].name, &prev)) {
			struct obuf joined = { 0 };

			obuf_fmt(&joined, "%s, %s", json_object_get_string(prev), r->h[i].value);
			jset(h, r->h[i].name, jstr(obuf_cstr(&joined)));
			obuf_free(&joined);
		} else {
			jset(h, r->h[i].name, jstr(r->h[i].value));
		}
	}
	return h;
}

static void req_free(struct req *r)
{
	free(r->head);
	obuf_free(&r->body);
	memset(r, 0, sizeof *r);
}

void conn_request_done(struct conn *c)
{
	bool keep = conn_keeps(c);

	req_free(&c->rq);
	if (c->st != C_CLOSING)
		c->st = keep ? C_HEAD : C_CLOSING;
}

void conn_method_not_allowed(struct conn *c)
{
	conn_send_error(c, 405, "invalid_request_error", "Method Not Allowed", NULL);
}

struct conn *conn_alloc(int fd)
{
	struct conn *c = xcalloc(1, sizeof *c);

	c->pl.kind = P_CONN;
	c->pl.fd = fd;
	c->st = C_HEAD;
	c->heap_idx = NO_TIMER;
	return c;
}

void conn_free(struct conn *c)
{
	req_free(&c->rq);
	obuf_free(&c->in);
	obuf_free(&c->out);
	free(c);
}
