/*
 * llm-emu: an emulator of Anthropic's Messages API for llm-fcgi's tests,
 * benchmarks and offline demo.
 *
 * One thread, one epoll loop (edge-triggered client sockets), non-blocking
 * I/O with an output queue per connection, and a min-heap of per-connection
 * deadlines for everything that happens later (stream deltas, delayed
 * answers, lingering closes).  Answers are deterministic, derived from the
 * last user message, so tests can predict every byte.  Faults are requested
 * with [[emu:...]] markers inside that message, because a gateway forwards
 * prompt text but not custom headers.
 *
 * The wire format follows /work/shared/reference/anthropic-api.md; the
 * command line, markers and /stats are described in tests/emulator/README.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

/* ---- limits ------------------------------------------------------------- */

#define HEAD_MAX       ((size_t)64 * 1024)          /* request line + headers: 431 above */
#define BODY_MAX       ((size_t)32 * 1024 * 1024)   /* the real API's 32 MB: 413 above */
#define DISCARD_MAX    ((size_t)40 * 1024 * 1024)   /* body bytes swallowed after a 413 */
#define OUT_MAX        ((size_t)160 * 1024 * 1024)  /* queued output per connection */
#define ANSWER_MAX     ((size_t)16 * 1024 * 1024)   /* generated answer text */
#define CHUNK_LINE_MAX ((size_t)4096)               /* chunk-size and trailer lines */
#define READ_CHUNK     ((size_t)16 * 1024)
#define HDRS_MAX       128
#define IDS_MAX        4096
#define IDS_SLOTS      8192                         /* hash slots: twice IDS_MAX */
#define ID_MAX         63
#define ID_LEN         29                           /* "req_"/"msg_" + 24 + NUL */
#define WORDS_MAX      100000L
#define MS_MAX         3600000L
#define COUNT_MAX      1000000L
#define HUGE_MAX       (64L * 1024 * 1024)
#define LINGER_MS      2000
#define SPLIT_GAP_MS   1                            /* pause between split pieces */
#define LISTEN_BACKLOG 4096
#define MAX_EVENTS     512
#define RL_REQUESTS    4000
#define RL_TOKENS      400000
#define NO_TIMER       SIZE_MAX
#define JFLAGS         (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- small utilities ---------------------------------------------------- */

static void warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("llm-emu: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("llm-emu: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* A test tool has no better answer to memory exhaustion than stopping loudly. */
static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		die("out of memory");
	return q;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("out of memory");
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *d = xrealloc(NULL, n + 1);

	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void xclose(int fd)
{
	if (close(fd) != 0 && errno != EINTR)
		warnmsg("close: %s", strerror(errno));
}

/* Byte buffer: p[off..len) is pending; consumed bytes are reclaimed lazily. */
struct buf {
	char *p;
	size_t off, len, cap;
};

static size_t buf_pending(const struct buf *b)
{
	return b->len - b->off;
}

static void buf_reserve(struct buf *b, size_t n)
{
	size_t cap;

	if (b->off && b->cap - b->len < n) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len >= n)
		return;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2)
			die("buffer size overflow");
		cap *= 2;
	}
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (!n)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* Try the room there is; on truncation grow to the size reported. */
	buf_reserve(b, 128);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf failed");
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* The pending bytes as a C string (always allocated, so never NULL). */
static const char *buf_cstr(struct buf *b)
{
	buf_reserve(b, 1);
	b->p[b->len] = '\0';
	return b->p + b->off;
}

static void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static int64_t mono_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double wall_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

static void http_date(char *d, size_t n, time_t t)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(d, n, "%a, %d %b %Y %H:%M:%S GMT", &tm))
		snprintf(d, n, "Thu, 01 Jan 1970 00:00:00 GMT");
}

static void rfc3339(char *d, size_t n, time_t t)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(d, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(d, n, "1970-01-01T00:00:00Z");
}

/* xorshift64*: ids only need to look random and be unique enough. */
static uint64_t rng_state;

static void rng_seed(void)
{
	if (getrandom(&rng_state, sizeof rng_state, GRND_NONBLOCK) != (ssize_t)sizeof rng_state)
		rng_state = (uint64_t)mono_us() ^ ((uint64_t)getpid() << 32);
	if (!rng_state)
		rng_state = 0x9e3779b97f4a7c15ULL;
}

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static void make_id(char dst[ID_LEN], const char *prefix)
{
	static const char alnum[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

	memcpy(dst, prefix, 4);
	for (int i = 0; i < 24; i++)
		dst[4 + i] = alnum[rng_next() % (sizeof alnum - 1)];
	dst[ID_LEN - 1] = '\0';
}

/* Parses a decimal integer in [lo, hi]; at most 9 digits, so no overflow. */
static bool parse_long(const char *s, size_t n, long lo, long hi, long *out)
{
	long v = 0;

	if (n == 0 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* ---- configuration and statistics --------------------------------------- */

static struct {
	const char *listen, *port_file, *key, *log_path;
	long words, delay_ms, ttft_ms;
	bool verbose;
} cfg = { "127.0.0.1:0", NULL, NULL, NULL, 20, 0, 0, false };

static FILE *log_fp; /* request log; NULL unless -v or --log */

struct totals {
	long requests, attempts, messages_ok, errors_sent;
	long streams_started, streams_completed, streams_aborted, streams_cut, streams_errored;
	long connections_accepted;
};

struct idstat {
	char name[ID_MAX + 1];
	long attempts, faulted, completed, aborted;
	bool has_first;
	double first_delta_at;
	json_object *headers, *body; /* the latest attempt */
};

static struct {
	struct totals t;
	long active_streams, connections_active; /* gauges: a reset leaves them alone */
	struct idstat *slot[IDS_SLOTS];
	size_t nids;
	unsigned gen; /* bumped by a reset so answers begun before it stop counting */
} S;

/* Open addressing with linear probing; IDS_SLOTS > IDS_MAX keeps a free slot. */
static struct idstat **id_slot(const char *name)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	for (size_t i = h & (IDS_SLOTS - 1);; i = (i + 1) & (IDS_SLOTS - 1))
		if (!S.slot[i] || strcmp(S.slot[i]->name, name) == 0)
			return &S.slot[i];
}

static struct idstat *id_find(const char *name, bool create)
{
	struct idstat **sp = id_slot(name);

	if (*sp || !create || S.nids >= IDS_MAX)
		return *sp;
	*sp = xcalloc(1, sizeof **sp);
	snprintf((*sp)->name, sizeof (*sp)->name, "%s", name);
	S.nids++;
	return *sp;
}

static void ids_clear(void)
{
	for (size_t i = 0; i < IDS_SLOTS; i++) {
		if (!S.slot[i])
			continue;
		json_object_put(S.slot[i]->headers);
		json_object_put(S.slot[i]->body);
		free(S.slot[i]);
		S.slot[i] = NULL;
	}
	S.nids = 0;
}

/* ---- connections, requests, answers ------------------------------------- */

enum fault {
	F_NONE, F_STATUS, F_ECHO_KEY, F_HANG, F_SLOW_FIRST, F_CUT, F_ERROR_MID,
	F_GARBAGE, F_TRUNC_JSON, F_DRIP, F_HUGE, F_CRLF, F_CR, F_SPLIT, F_UNKNOWN_EVENT
};

/* Per-request settings parsed from [[emu:...]] markers; -1 means "not given". */
struct opts {
	char id[ID_MAX + 1];
	long times, words, delay_ms, ttft_ms;
	enum fault fault;
	long arg; /* status code, milliseconds, delta count or byte count */
	char retry_after[24], retry_after_ms[24];
	int should_retry;
};

/* The steps an answer goes through; streams use all, JSON answers SLOW/HEAD/FLUSH. */
enum phase { PH_SLOW, PH_HEAD, PH_TTFT, PH_DELTA, PH_GAP, PH_TAIL, PH_END, PH_FLUSH, PH_HANG };
enum ending { END_COMPLETED, END_BROKEN, END_ERRORED, END_CUT, END_ABORTED };

/* An answer to POST /v1/messages that takes time: everything but plain errors. */
struct job {
	enum fault fault;
	long arg;
	bool stream, started, pieces;
	enum phase ph;
	enum ending end_how;
	long delay_ms, ttft_ms, gap_ms;
	char id[ID_MAX + 1];
	unsigned gen;
	char msg_id[ID_LEN];
	char *model, *text, *stop_seq;
	size_t text_len;
	size_t *doff, ndeltas, sent; /* delta i is text[doff[i] .. doff[i + 1]) */
	const char *stop_reason, *nl;
	long in_tok, out_tok;
	struct buf body; /* JSON answers: the whole body, built up front */
	struct buf pend; /* drip/split: bytes still to go out piece by piece */
	unsigned piece_seq;
};

struct hdr {
	const char *name, *value;
};

struct req {
	char *head; /* private copy of the header block; the strings below point into it */
	const char *method, *path, *query;
	struct hdr h[HDRS_MAX];
	size_t nh;
	bool keep_alive, chunked;
	size_t clen;
	struct buf body;
	int ch_state;
	size_t ch_left;
	char rid[ID_LEN];
	int status;                 /* for the log line */
	char log_id[ID_MAX + 1], log_fault[32];
};

enum pkind { P_LISTEN, P_SIGNAL, P_CONN };

/* What epoll hands back: the first member of every polled object. */
struct pollable {
	enum pkind kind;
	int fd;
};

/* C_CLOSING: answer the last bytes, shut our side, swallow input until EOF. */
enum cstate { C_HEAD, C_BODY, C_BUSY, C_CLOSING };

struct conn {
	struct pollable pl;
	enum cstate st;
	struct buf in, out;
	size_t scanned; /* pending input already searched for the end of the headers */
	struct req rq;
	struct job *job;
	bool dead, peer_eof, shut_wr;
	size_t discarded;
	int64_t deadline;
	size_t heap_idx;
	struct conn *prev, *next;
};

static int epfd = -1;
static struct pollable listener = { P_LISTEN, -1 }, sigsrc = { P_SIGNAL, -1 };
static bool listen_paused;
static struct conn *conns;

/* ---- timers: a binary min-heap of connections by deadline --------------- */

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

static void timer_clear(struct conn *c)
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

static void timer_set(struct conn *c, long ms)
{
	timer_clear(c);
	if (heap.n == heap.cap) {
		heap.cap = heap.cap ? 2 * heap.cap : 64;
		heap.v = xrealloc(heap.v, heap.cap * sizeof *heap.v);
	}
	c->deadline = mono_us() + (int64_t)ms * 1000;
	heap.v[heap.n] = c;
	c->heap_idx = heap.n++;
	heap_up(c->heap_idx);
}

static int heap_timeout_ms(void)
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

/* ---- output ------------------------------------------------------------- */

static void conn_add(struct conn *c, const void *d, size_t n)
{
	if (c->dead)
		return;
	if (buf_pending(&c->out) + n > OUT_MAX) {
		warnmsg("output queue over %zu bytes, dropping connection", OUT_MAX);
		c->dead = true;
		return;
	}
	buf_add(&c->out, d, n);
}

/* Writes what the socket takes now; EPOLLOUT (edge-triggered) resumes the rest. */
static void conn_flush(struct conn *c)
{
	while (!c->dead && buf_pending(&c->out)) {
		ssize_t n = send(c->pl.fd, c->out.p + c->out.off, buf_pending(&c->out), MSG_NOSIGNAL);

		if (n > 0)
			buf_consume(&c->out, (size_t)n);
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		else
			c->dead = true; /* the peer is gone: EPIPE, ECONNRESET, ... */
	}
}

/* One piece of a response body: a chunk of its own when chunked, and sent now. */
static void conn_body(struct conn *c, bool chunked, const char *d, size_t n)
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

static const char *reason(int status)
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

/*
 * Status line and headers.  clen < 0 means a chunked event stream.  o carries
 * the retry knobs of an injected error (NULL otherwise).
 */
static void put_head(struct conn *c, int status, const char *ctype, long long clen,
		     const struct opts *o)
{
	struct buf h = { 0 };
	time_t now = time(NULL);
	char date[64], reset[32];
	const char *ra = NULL;

	http_date(date, sizeof date, now);
	buf_fmt(&h, "HTTP/1.1 %d %s\r\ndate: %s\r\ncontent-type: %s\r\n",
		status, reason(status), date, ctype);
	if (clen < 0)
		buf_str(&h, "transfer-encoding: chunked\r\ncache-control: no-cache\r\n");
	else
		buf_fmt(&h, "content-length: %lld\r\n", clen);
	buf_fmt(&h, "request-id: %s\r\nconnection: %s\r\n", c->rq.rid,
		conn_keeps(c) ? "keep-alive" : "close");
	if (status == 200 || status == 429) {
		bool limited = status == 429;

		rfc3339(reset, sizeof reset, now + 60);
		buf_fmt(&h,
			"anthropic-ratelimit-requests-limit: %d\r\n"
			"anthropic-ratelimit-requests-remaining: %d\r\n"
			"anthropic-ratelimit-requests-reset: %s\r\n"
			"anthropic-ratelimit-tokens-limit: %d\r\n"
			"anthropic-ratelimit-tokens-remaining: %d\r\n"
			"anthropic-ratelimit-tokens-reset: %s\r\n",
			RL_REQUESTS, limited ? 0 : RL_REQUESTS - 1, reset,
			RL_TOKENS, limited ? 0 : RL_TOKENS, reset);
	}
	if (status == 429 || status == 529)
		ra = "1";
	if (o && o->retry_after[0])
		ra = o->retry_after;
	if (ra)
		buf_fmt(&h, "retry-after: %s\r\n", ra);
	if (o && o->retry_after_ms[0])
		buf_fmt(&h, "retry-after-ms: %s\r\n", o->retry_after_ms);
	if (o && o->should_retry >= 0)
		buf_fmt(&h, "x-should-retry: %s\r\n", o->should_retry ? "true" : "false");
	buf_str(&h, "\r\n");
	conn_add(c, h.p, h.len);
	buf_free(&h);
	c->rq.status = status;
}

static json_object *jobj(void)
{
	json_object *o = json_object_new_object();

	if (!o)
		die("out of memory");
	return o;
}

static void jset(json_object *o, const char *k, json_object *v)
{
	if (json_object_object_add(o, k, v) != 0)
		die("out of memory");
}

/* A member of a validated request (NULL when absent; json-c getters accept NULL). */
static json_object *jget(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

static json_object *jint(int64_t v)
{
	return json_object_new_int64(v);
}

static void send_json(struct conn *c, int status, json_object *body, const struct opts *o)
{
	size_t n;
	const char *s = json_object_to_json_string_length(body, JFLAGS, &n);

	put_head(c, status, "application/json", (long long)n, o);
	conn_add(c, s, n);
	conn_flush(c);
}

static void send_error(struct conn *c, int status, const char *type, const char *msg,
		       const struct opts *o)
{
	json_object *e = jobj(), *inner = jobj();

	jset(inner, "type", jstr(type));
	jset(inner, "message", jstr(msg));
	jset(e, "type", jstr("error"));
	jset(e, "error", inner);
	jset(e, "request_id", jstr(c->rq.rid));
	send_json(c, status, e, o);
	json_object_put(e);
	S.t.errors_sent++;
}

/* Error type and message of an injected status, after the reference's table. */
static void status_error(int status, const char **type, const char **msg)
{
	*type = "api_error";
	*msg = reason(status);
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

static void log_req(const struct conn *c)
{
	const struct req *r = &c->rq;
	char ts[32], status[8];

	if (!log_fp)
		return;
	rfc3339(ts, sizeof ts, time(NULL));
	if (r->status)
		snprintf(status, sizeof status, "%d", r->status);
	else
		snprintf(status, sizeof status, "-");
	fprintf(log_fp, "%s %s %s id=%s status=%s fault=%s\n", ts,
		r->method ? r->method : "-", r->path ? r->path : "-",
		r->log_id[0] ? r->log_id : "-", status, r->log_fault[0] ? r->log_fault : "-");
}

/* ---- markers ------------------------------------------------------------ */

static const struct fault_spec {
	const char *name;
	enum fault f;
	long min, max; /* argument range; max == 0: the fault takes no argument */
} FAULTS[] = {
	{ "echo-key", F_ECHO_KEY, 0, 0 },
	{ "hang", F_HANG, 0, 0 },
	{ "garbage", F_GARBAGE, 0, 0 },
	{ "truncated-json", F_TRUNC_JSON, 0, 0 },
	{ "crlf", F_CRLF, 0, 0 },
	{ "cr", F_CR, 0, 0 },
	{ "split", F_SPLIT, 0, 0 },
	{ "unknown-event", F_UNKNOWN_EVENT, 0, 0 },
	{ "slow-first", F_SLOW_FIRST, 0, MS_MAX },
	{ "cut", F_CUT, 0, COUNT_MAX },
	{ "error-mid", F_ERROR_MID, 0, COUNT_MAX },
	{ "drip", F_DRIP, 0, MS_MAX },
	{ "huge", F_HUGE, 1, HUGE_MAX },
};
#define NFAULTS (sizeof FAULTS / sizeof FAULTS[0])

static void opts_init(struct opts *o)
{
	memset(o, 0, sizeof *o);
	o->times = o->words = o->delay_ms = o->ttft_ms = -1;
	o->fault = F_NONE;
	o->should_retry = -1;
}

/* Length of a complete [[emu:...]] marker starting at s, else 0. */
static size_t marker_len(const char *s, size_t n)
{
	const char *e;

	if (n < 8 || s[0] != '[' || memcmp(s, "[[emu:", 6) != 0)
		return 0;
	e = memmem(s + 6, n - 6, "]]", 2);
	return e ? (size_t)(e - s) + 2 : 0;
}

static bool key_is(const char *k, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(k, name, n) == 0;
}

static bool opt_id(struct opts *o, const char *v, size_t n)
{
	if (n == 0 || n > ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)v[i]) && !strchr("_.-", v[i]))
			return false;
	memcpy(o->id, v, n);
	o->id[n] = '\0';
	return true;
}

/* A retry header value: digits with at most one '.', copied verbatim. */
static bool opt_decimal(char *dst, size_t size, const char *v, size_t n)
{
	size_t digits = 0, dots = 0;

	if (n == 0 || n >= size)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '.')
			dots++;
		else if (v[i] >= '0' && v[i] <= '9')
			digits++;
		else
			return false;
	}
	if (!digits || dots > 1)
		return false;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return true;
}

static bool opt_fault(struct opts *o, const char *v, size_t n)
{
	const char *colon = memchr(v, ':', n);
	size_t name_len = colon ? (size_t)(colon - v) : n;
	long code;

	if (parse_long(v, n, 400, 599, &code)) {
		o->fault = F_STATUS;
		o->arg = code;
		return true;
	}
	for (size_t i = 0; i < NFAULTS; i++) {
		const struct fault_spec *s = &FAULTS[i];

		if (!key_is(v, name_len, s->name))
			continue;
		if (!s->max) {
			if (colon)
				return false;
			o->arg = 0;
		} else if (!colon ||
			   !parse_long(colon + 1, n - name_len - 1, s->min, s->max, &o->arg)) {
			return false;
		}
		o->fault = s->f;
		return true;
	}
	return false;
}

static bool opt_item(struct opts *o, const char *it, size_t n)
{
	const char *eq = memchr(it, '=', n);
	const char *v;
	size_t kn, vn;

	if (!eq)
		return false;
	kn = (size_t)(eq - it);
	v = eq + 1;
	vn = n - kn - 1;
	if (key_is(it, kn, "id"))
		return opt_id(o, v, vn);
	if (key_is(it, kn, "times"))
		return parse_long(v, vn, 0, COUNT_MAX, &o->times);
	if (key_is(it, kn, "words"))
		return parse_long(v, vn, 0, WORDS_MAX, &o->words);
	if (key_is(it, kn, "delay"))
		return parse_long(v, vn, 0, MS_MAX, &o->delay_ms);
	if (key_is(it, kn, "ttft"))
		return parse_long(v, vn, 0, MS_MAX, &o->ttft_ms);
	if (key_is(it, kn, "fault"))
		return opt_fault(o, v, vn);
	if (key_is(it, kn, "retry_after"))
		return opt_decimal(o->retry_after, sizeof o->retry_after, v, vn);
	if (key_is(it, kn, "retry_after_ms"))
		return opt_decimal(o->retry_after_ms, sizeof o->retry_after_ms, v, vn);
	if (key_is(it, kn, "should_retry") && (key_is(v, vn, "true") || key_is(v, vn, "false"))) {
		o->should_retry = key_is(v, vn, "true");
		return true;
	}
	return false;
}

/*
 * Applies every marker of s (later keys win).  Anything malformed is an
 * error rather than text, so a typo in a test fails loudly.
 */
static bool markers_parse(const char *s, size_t n, struct opts *o, char *err, size_t errsz)
{
	const char *end = s + n, *p = s;

	while ((p = memmem(p, (size_t)(end - p), "[[emu:", 6)) != NULL) {
		const char *it = p + 6;
		const char *close = memmem(it, (size_t)(end - it), "]]", 2);

		if (!close) {
			snprintf(err, errsz, "unknown emulator marker: unterminated %.*s",
				 (int)((end - p) < 60 ? (end - p) : 60), p);
			return false;
		}
		for (;;) {
			const char *comma = memchr(it, ',', (size_t)(close - it));
			const char *ie = comma ? comma : close;

			if (!opt_item(o, it, (size_t)(ie - it))) {
				snprintf(err, errsz, "unknown emulator marker: %.*s",
					 (int)((ie - it) < 80 ? (ie - it) : 80), it);
				return false;
			}
			if (!comma)
				break;
			it = comma + 1;
		}
		p = close + 2;
	}
	if (o->times >= 0 && !o->id[0]) {
		snprintf(err, errsz, "unknown emulator marker: times= needs an id=");
		return false;
	}
	return true;
}

static void fault_desc(enum fault f, long arg, char *d, size_t n)
{
	d[0] = '\0';
	if (f == F_STATUS) {
		snprintf(d, n, "%ld", arg);
		return;
	}
	for (size_t i = 0; i < NFAULTS; i++) {
		if (FAULTS[i].f != f)
			continue;
		if (FAULTS[i].max)
			snprintf(d, n, "%s:%ld", FAULTS[i].name, arg);
		else
			snprintf(d, n, "%s", FAULTS[i].name);
	}
}

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
		size_t m = marker_len(s + i, n - i), start;

		if (m) {
			i += m;
			continue;
		}
		if (is_space(s[i])) {
			i++;
			continue;
		}
		start = i;
		while (i < n && !is_space(s[i]) && !marker_len(s + i, n - i))
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
static void content_text(struct buf *out, json_object *content)
{
	bool first = true;
	size_t n;

	if (json_object_is_type(content, json_type_string)) {
		buf_add(out, json_object_get_string(content),
			(size_t)json_object_get_string_len(content));
		return;
	}
	if (!json_object_is_type(content, json_type_array))
		return;
	n = json_object_array_length(content);
	for (size_t i = 0; i < n; i++) {
		json_object *t;

		if (!json_object_object_get_ex(json_object_array_get_idx(content, i), "text", &t) ||
		    !json_object_is_type(t, json_type_string))
			continue;
		if (!first)
			buf_add(out, " ", 1);
		first = false;
		buf_add(out, json_object_get_string(t), (size_t)json_object_get_string_len(t));
	}
}

static void last_user_text(json_object *root, struct buf *out)
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
	struct buf t = { 0 };
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
				buf_add(&t, " ", 1);
				content_text(&t, content);
			}
		}
	}
	n = (long)scan_words(t.p ? t.p : "", t.len, NULL);
	buf_free(&t);
	return n;
}

/* Cuts the answer before the earliest stop sequence, if any occurs. */
static void answer_stop(struct job *j, json_object *stops)
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

		if (!sl || !j->text_len)
			continue;
		hit = memmem(j->text, j->text_len, json_object_get_string(s), sl);
		if (hit && (size_t)(hit - j->text) < best) {
			best = (size_t)(hit - j->text);
			match = json_object_get_string(s);
		}
	}
	if (!match)
		return;
	while (kept < j->ndeltas && j->doff[kept] < best)
		kept++;
	j->ndeltas = kept;
	j->doff[kept] = best;
	j->text_len = best;
	j->text[best] = '\0';
	j->stop_reason = "stop_sequence";
	j->stop_seq = xstrndup(match, strlen(match));
}

/*
 * The deterministic answer: `words` words cycling through the words of src,
 * capped by max_tokens.  Delta 0 is the first word, every later delta is a
 * space and the next word, so the deltas concatenate to the text.
 */
static void answer_build(struct job *j, const char *src, size_t srclen, long words,
			 int64_t max_tokens, json_object *stops)
{
	static const struct span ok = { "ok", 2 };
	struct span *tok = NULL;
	size_t ntok = scan_words(src, srclen, &tok), k;
	long want = (int64_t)words < max_tokens ? words : (long)max_tokens;
	bool capped = want < words;
	struct buf t = { 0 };

	j->doff = xcalloc((size_t)want + 1, sizeof *j->doff);
	for (k = 0; k < (size_t)want; k++) {
		const struct span *w = ntok ? &tok[k % ntok] : &ok;

		if (t.len + w->n + 1 > ANSWER_MAX) {
			capped = true;
			break;
		}
		j->doff[k] = t.len;
		if (k)
			buf_add(&t, " ", 1);
		buf_add(&t, w->p, w->n);
	}
	buf_cstr(&t);
	j->text = t.p;
	j->text_len = t.len;
	j->ndeltas = k;
	j->doff[k] = t.len;
	j->stop_reason = capped ? "max_tokens" : "end_turn";
	free(tok);
	answer_stop(j, stops);
	j->out_tok = (long)j->ndeltas;
}

/* huge:BYTES: one text (one delta) of exactly BYTES bytes, for size caps. */
static void answer_huge(struct job *j, long bytes)
{
	static const char pat[] = "lorem ipsum dolor sit amet ";

	j->text = xrealloc(NULL, (size_t)bytes + 1);
	for (long i = 0; i < bytes; i++)
		j->text[i] = pat[(size_t)i % (sizeof pat - 1)];
	j->text[bytes] = '\0';
	j->text_len = (size_t)bytes;
	j->doff = xcalloc(2, sizeof *j->doff);
	j->doff[1] = (size_t)bytes;
	j->ndeltas = 1;
	j->stop_reason = "end_turn";
	j->out_tok = (long)scan_words(j->text, j->text_len, NULL);
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

static bool check_block(json_object *b, const char *path, const char *top, char *err, size_t n)
{
	static const char *const keys[] = { "type", "text", "cache_control", "citations", NULL };
	json_object *t, *x;
	char sub[96];

	if (!json_object_is_type(b, json_type_object))
		return fail(err, n, "%s: Input should be a valid dictionary", path);
	if (!json_object_object_get_ex(b, "type", &t))
		return fail(err, n, "%s.type: Field required", path);
	if (!is_str(t) || strcmp(json_object_get_string(t), "text") != 0)
		return fail(err, n, "%s.type: Input should be 'text'", path);
	if (!json_object_object_get_ex(b, "text", &x))
		return fail(err, n, "%s.text: Field required", path);
	if (!is_str(x))
		return fail(err, n, "%s.text: Input should be a valid string", path);
	if (!json_object_get_string_len(x))
		return fail(err, n, "%s: text content blocks must be non-empty", top);
	snprintf(sub, sizeof sub, "%s.", path);
	return check_keys(b, keys, sub, err, n);
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
		"service_tier", NULL
	};
	static const char *const count_keys[] = {
		"model", "messages", "system", "tools", "tool_choice", "thinking", NULL
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

/* Strict JSON (UTF-8 checked, no trailing bytes); NULL with err set otherwise. */
static json_object *body_json(const struct buf *b, char *err, size_t n)
{
	size_t len = buf_pending(b);
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

/* ---- the per-id attempt record ------------------------------------------ */

static const char *hdr_get(const struct req *r, const char *name)
{
	for (size_t i = 0; i < r->nh; i++)
		if (strcmp(r->h[i].name, name) == 0)
			return r->h[i].value;
	return NULL;
}

/* All request headers, lower-cased names; repeated headers joined by ", ". */
static json_object *headers_json(const struct req *r)
{
	json_object *h = jobj(), *prev;

	for (size_t i = 0; i < r->nh; i++) {
		if (json_object_object_get_ex(h, r->h[i].name, &prev)) {
			struct buf joined = { 0 };

			buf_fmt(&joined, "%s, %s", json_object_get_string(prev), r->h[i].value);
			jset(h, r->h[i].name, jstr(buf_cstr(&joined)));
			buf_free(&joined);
		} else {
			jset(h, r->h[i].name, jstr(r->h[i].value));
		}
	}
	return h;
}

/* Counts an attempt for o->id and returns its number (0 when untracked). */
static long id_attempt(const struct opts *o, const struct req *r, json_object *root)
{
	struct idstat *s;

	if (!o->id[0] || !(s = id_find(o->id, true)))
		return 0;
	s->attempts++;
	s->has_first = false;
	json_object_put(s->headers);
	s->headers = headers_json(r);
	json_object_put(s->body);
	s->body = json_object_get(root);
	return s->attempts;
}

static json_object *idstat_json(const struct idstat *s)
{
	json_object *o = jobj();

	jset(o, "attempts", jint(s ? s->attempts : 0));
	jset(o, "faulted", jint(s ? s->faulted : 0));
	jset(o, "completed", jint(s ? s->completed : 0));
	jset(o, "aborted", jint(s ? s->aborted : 0));
	if (s && s->has_first) {
		char d[40];

		snprintf(d, sizeof d, "%.6f", s->first_delta_at);
		jset(o, "first_delta_at", json_object_new_double_s(s->first_delta_at, d));
	} else {
		jset(o, "first_delta_at", NULL);
	}
	if (s && s->headers) {
		json_object *lr = jobj();

		jset(lr, "headers", json_object_get(s->headers));
		jset(lr, "body", json_object_get(s->body));
		jset(o, "last_request", lr);
	} else {
		jset(o, "last_request", NULL);
	}
	return o;
}

/* ---- answers in progress ------------------------------------------------ */

static bool job_live(const struct job *j)
{
	return j->gen == S.gen;
}

static struct idstat *job_stat(const struct job *j)
{
	return j->id[0] && job_live(j) ? id_find(j->id, false) : NULL;
}

static void note_first_delta(const struct job *j)
{
	struct idstat *s = job_stat(j);

	if (s) {
		s->first_delta_at = wall_now();
		s->has_first = true;
	}
}

static void job_free(struct job *j)
{
	free(j->model);
	free(j->text);
	free(j->stop_seq);
	free(j->doff);
	buf_free(&j->body);
	buf_free(&j->pend);
	free(j);
}

/* Accounts for how the answer ended and releases it. */
static void job_end(struct conn *c, enum ending how)
{
	struct job *j = c->job;
	struct idstat *s = job_stat(j);

	if (j->started)
		S.active_streams--;
	if (job_live(j)) {
		switch (how) {
		case END_COMPLETED:
			S.t.messages_ok++;
			if (j->stream)
				S.t.streams_completed++;
			if (s)
				s->completed++;
			break;
		case END_ABORTED:
			if (j->stream)
				S.t.streams_aborted++;
			if (s)
				s->aborted++;
			break;
		case END_CUT:
			if (j->stream)
				S.t.streams_cut++;
			break;
		case END_ERRORED:
			S.t.streams_errored++;
			break;
		case END_BROKEN:
			break;
		}
	}
	timer_clear(c);
	job_free(j);
	c->job = NULL;
}

static void req_free(struct req *r)
{
	free(r->head);
	buf_free(&r->body);
	memset(r, 0, sizeof *r);
}

/* The current request is answered: keep the connection for the next one, or wind down. */
static void request_done(struct conn *c)
{
	bool keep = conn_keeps(c);

	req_free(&c->rq);
	if (c->st != C_CLOSING)
		c->st = keep ? C_HEAD : C_CLOSING;
}

/* Body bytes of an answer: queued for piecewise sending (drip/split) or sent now. */
static void job_emit(struct conn *c, const char *d, size_t n)
{
	struct job *j = c->job;

	if (j->pieces)
		buf_add(&j->pend, d, n);
	else
		conn_body(c, j->stream, d, n);
}

/* One SSE event, with the line ending the fault asks for. */
static void emit_event(struct conn *c, const char *name, const char *data, size_t n)
{
	struct job *j = c->job;
	struct buf e = { 0 };

	buf_fmt(&e, "event: %s%s", name, j->nl);
	if (j->fault == F_UNKNOWN_EVENT && strcmp(name, "content_block_delta") == 0)
		buf_fmt(&e, ": a comment line inside an event%s", j->nl);
	buf_str(&e, "data: ");
	buf_add(&e, data, n);
	buf_str(&e, j->nl);
	buf_str(&e, j->nl);
	job_emit(c, e.p, e.len);
	buf_free(&e);
}

static void emit_lit(struct conn *c, const char *name, const char *data)
{
	emit_event(c, name, data, strlen(data));
}

static void emit_json(struct conn *c, const char *name, json_object *o) /* consumes o */
{
	size_t n;
	const char *s = json_object_to_json_string_length(o, JFLAGS, &n);

	emit_event(c, name, s, n);
	json_object_put(o);
}

static void emit_future_event(struct conn *c)
{
	emit_lit(c, "future_event",
		 "{\"type\":\"future_event\",\"note\":\"clients must ignore unknown event types\"}");
}

static json_object *usage_json(const struct job *j, long out_tokens, bool tier)
{
	json_object *u = jobj();

	jset(u, "input_tokens", jint(j->in_tok));
	jset(u, "cache_creation_input_tokens", jint(0));
	jset(u, "cache_read_input_tokens", jint(0));
	jset(u, "output_tokens", jint(out_tokens));
	if (tier)
		jset(u, "service_tier", jstr("standard"));
	return u;
}

/* The Message object: complete (JSON answers) or as message_start carries it. */
static json_object *message_json(const struct job *j, bool start)
{
	json_object *m = jobj(), *content = json_object_new_array();

	jset(m, "id", jstr(j->msg_id));
	jset(m, "type", jstr("message"));
	jset(m, "role", jstr("assistant"));
	jset(m, "model", jstr(j->model));
	if (!start) {
		json_object *b = jobj();

		jset(b, "type", jstr("text"));
		jset(b, "text", json_object_new_string_len(j->text, (int)j->text_len));
		if (json_object_array_add(content, b) != 0)
			die("out of memory");
	}
	jset(m, "content", content);
	jset(m, "stop_reason", start ? NULL : jstr(j->stop_reason));
	jset(m, "stop_sequence", !start && j->stop_seq ? jstr(j->stop_seq) : NULL);
	jset(m, "usage", usage_json(j, start ? 1 : j->out_tok, true));
	return m;
}

static bool wait_ms(struct conn *c, long ms)
{
	if (ms <= 0)
		return false;
	timer_set(c, ms);
	return true;
}

/* cut:N: drop the connection now, without finishing the body. */
static bool job_cut(struct conn *c)
{
	c->st = C_CLOSING;
	job_end(c, END_CUT);
	request_done(c);
	return true;
}

/* Whether cut:N / error-mid:N is due now (N is capped at the answer length). */
static bool fault_due(const struct job *j)
{
	size_t at;

	if (j->fault != F_CUT && j->fault != F_ERROR_MID)
		return false;
	at = (size_t)j->arg < j->ndeltas ? (size_t)j->arg : j->ndeltas;
	return j->sent == at;
}

static void stream_head(struct conn *c)
{
	static const char *const garbage[] = {
		"this is not an event stream\n",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"del\n\n",
		"data: \xff\xfe not json at all }}}\n\n",
	};
	struct job *j = c->job;
	json_object *start;

	put_head(c, 200, "text/event-stream; charset=utf-8", -1, NULL);
	conn_flush(c);
	j->started = true;
	S.active_streams++;
	if (job_live(j))
		S.t.streams_started++;
	if (j->fault == F_GARBAGE) {
		for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
			job_emit(c, garbage[i], strlen(garbage[i]));
		j->end_how = END_BROKEN;
		return;
	}
	start = jobj();
	jset(start, "type", jstr("message_start"));
	jset(start, "message", message_json(j, true));
	emit_json(c, "message_start", start);
	emit_lit(c, "content_block_start",
		 "{\"type\":\"content_block_start\",\"index\":0,"
		 "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
	emit_lit(c, "ping", "{\"type\": \"ping\"}");
	if (j->fault == F_UNKNOWN_EVENT) {
		static const char comment[] = ": a comment between events\n\n";

		job_emit(c, comment, sizeof comment - 1);
		emit_future_event(c);
	}
}

static bool stream_delta(struct conn *c)
{
	struct job *j = c->job;
	json_object *o, *d;

	if (fault_due(j)) {
		if (j->fault == F_CUT)
			return job_cut(c);
		emit_lit(c, "error", "{\"type\":\"error\",\"error\":"
				      "{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}");
		j->end_how = END_ERRORED;
		j->ph = PH_END;
		return false;
	}
	if (j->sent == j->ndeltas) {
		j->ph = PH_TAIL;
		return false;
	}
	o = jobj();
	d = jobj();
	jset(o, "type", jstr("content_block_delta"));
	jset(o, "index", jint(0));
	jset(d, "type", jstr("text_delta"));
	jset(d, "text", json_object_new_string_len(j->text + j->doff[j->sent],
						   (int)(j->doff[j->sent + 1] - j->doff[j->sent])));
	jset(o, "delta", d);
	emit_json(c, "content_block_delta", o);
	if (j->sent++ == 0)
		note_first_delta(j);
	j->ph = PH_GAP;
	return false;
}

static void stream_tail(struct conn *c)
{
	struct job *j = c->job;
	json_object *o = jobj(), *d = jobj();

	if (j->fault == F_UNKNOWN_EVENT)
		emit_future_event(c);
	emit_lit(c, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
	jset(d, "stop_reason", jstr(j->stop_reason));
	jset(d, "stop_sequence", j->stop_seq ? jstr(j->stop_seq) : NULL);
	jset(o, "type", jstr("message_delta"));
	jset(o, "delta", d);
	jset(o, "usage", usage_json(j, j->out_tok, false));
	emit_json(c, "message_delta", o);
	emit_lit(c, "message_stop", "{\"type\":\"message_stop\"}");
	j->end_how = END_COMPLETED;
}

/* One step of a stream; true when it must wait (timer, flush) or has ended. */
static bool stream_phase(struct conn *c)
{
	struct job *j = c->job;

	switch (j->ph) {
	case PH_SLOW:
		j->ph = PH_HEAD;
		return wait_ms(c, j->fault == F_SLOW_FIRST ? j->arg : 0);
	case PH_HEAD:
		stream_head(c);
		j->ph = j->fault == F_GARBAGE ? PH_END : PH_TTFT;
		return false;
	case PH_TTFT:
		j->ph = PH_DELTA;
		return wait_ms(c, j->ttft_ms);
	case PH_DELTA:
		return stream_delta(c);
	case PH_GAP:
		j->ph = PH_DELTA;
		return wait_ms(c, fault_due(j) || j->sent == j->ndeltas ? 0 : j->delay_ms);
	case PH_TAIL:
		stream_tail(c);
		j->ph = PH_END;
		return false;
	case PH_END:
		/* Reached only once pieces are out, so the terminator really is last. */
		conn_add(c, "0\r\n\r\n", 5);
		conn_flush(c);
		j->ph = PH_FLUSH;
		return true;
	case PH_FLUSH:
	case PH_HANG:
		return true;
	}
	return true;
}

/* A JSON answer: wait as long as the stream would take, then send it whole. */
static bool json_phase(struct conn *c)
{
	struct job *j = c->job;
	size_t n;

	switch (j->ph) {
	case PH_SLOW:
		j->ph = PH_HEAD;
		return wait_ms(c, (j->fault == F_SLOW_FIRST ? j->arg : 0) + j->ttft_ms +
					  (long)j->ndeltas * j->delay_ms);
	case PH_HEAD:
		n = buf_pending(&j->body);
		put_head(c, 200, "application/json", (long long)n, NULL);
		if (j->fault == F_CUT) {
			conn_body(c, false, j->body.p, n / 2);
			return job_cut(c);
		}
		job_emit(c, j->body.p, n);
		if (j->fault == F_GARBAGE || j->fault == F_TRUNC_JSON) {
			j->end_how = END_BROKEN;
		} else {
			j->end_how = END_COMPLETED;
			note_first_delta(j);
		}
		j->ph = PH_FLUSH;
		return false;
	default:
		return true;
	}
}

/* drip: one byte; split: odd sizes, always cutting multi-byte UTF-8 characters. */
static size_t piece_len(struct job *j, const char *p, size_t n)
{
	static const size_t sizes[] = { 1, 3, 7, 13, 29, 61 };
	size_t want;

	if (j->fault == F_DRIP)
		return 1;
	want = sizes[j->piece_seq++ % (sizeof sizes / sizeof sizes[0])];
	if (want > n)
		want = n;
	for (size_t i = 0; i < want; i++)
		if (((unsigned char)p[i] & 0xC0) == 0xC0) /* a lead byte: end the piece after it */
			return i + 1;
	return want;
}

/* Advances the answer until it has to wait for a timer or for the socket. */
static void job_step(struct conn *c)
{
	for (;;) {
		struct job *j = c->job;

		if (c->dead || !j)
			return;
		if (buf_pending(&j->pend)) {
			const char *p = j->pend.p + j->pend.off;
			size_t n = piece_len(j, p, buf_pending(&j->pend));

			conn_body(c, j->stream, p, n);
			buf_consume(&j->pend, n);
			if (wait_ms(c, j->gap_ms))
				return;
			continue;
		}
		if (j->stream ? stream_phase(c) : json_phase(c))
			return;
	}
}

/* Faults that make no sense for the request's mode are ignored. */
static bool fault_applies(enum fault f, bool stream)
{
	switch (f) {
	case F_CRLF:
	case F_CR:
	case F_UNKNOWN_EVENT:
	case F_ERROR_MID:
		return stream;
	case F_TRUNC_JSON:
		return !stream;
	default:
		return f != F_NONE;
	}
}

static void job_start(struct conn *c, json_object *root, const struct opts *o, enum fault f,
		      const char *last, size_t last_len)
{
	struct job *j = xcalloc(1, sizeof *j);
	json_object *model = jget(root, "model");

	j->stream = json_object_get_boolean(jget(root, "stream"));
	j->fault = f;
	j->arg = o->arg;
	j->gen = S.gen;
	memcpy(j->id, o->id, sizeof j->id);
	j->delay_ms = o->delay_ms >= 0 ? o->delay_ms : cfg.delay_ms;
	j->ttft_ms = o->ttft_ms >= 0 ? o->ttft_ms : cfg.ttft_ms;
	j->model = xstrndup(json_object_get_string(model), (size_t)json_object_get_string_len(model));
	make_id(j->msg_id, "msg_");
	j->in_tok = input_tokens(root);
	if (f == F_HUGE) {
		answer_huge(j, o->arg);
	} else {
		answer_build(j, last, last_len, o->words >= 0 ? o->words : cfg.words,
			     json_object_get_int64(jget(root, "max_tokens")),
			     jget(root, "stop_sequences"));
	}
	j->nl = f == F_CRLF ? "\r\n" : f == F_CR ? "\r" : "\n";
	j->pieces = f == F_DRIP || f == F_SPLIT;
	j->gap_ms = f == F_DRIP ? o->arg : SPLIT_GAP_MS;
	if (!j->stream) {
		if (f == F_TRUNC_JSON) {
			buf_str(&j->body, "{\"id\":\"msg_x\",\"type\":\"message\","
					  "\"content\":[{\"type\":\"text\",\"text\":\"abc");
		} else if (f == F_GARBAGE) {
			buf_str(&j->body, "{\"type\":\"message\",\"content\":[\xff\xfe<<garbage>>");
		} else {
			json_object *m = message_json(j, false);
			size_t n;
			const char *s = json_object_to_json_string_length(m, JFLAGS, &n);

			buf_add(&j->body, s, n);
			json_object_put(m);
		}
	}
	j->ph = f == F_HANG ? PH_HANG : PH_SLOW;
	c->job = j;
	c->rq.status = f == F_HANG ? 0 : 200;
	job_step(c);
}

/* ---- endpoints ---------------------------------------------------------- */

static const char *api_key(const struct req *r)
{
	const char *k = hdr_get(r, "x-api-key"), *a = hdr_get(r, "authorization");

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
	const char *ver = hdr_get(&c->rq, "anthropic-version"), *key = api_key(&c->rq);

	if (!ver) {
		send_error(c, 400, "invalid_request_error", "anthropic-version: header is required", NULL);
		return false;
	}
	if (!known_version(ver)) {
		char msg[128];

		snprintf(msg, sizeof msg, "anthropic-version: \"%.64s\" is not a valid version", ver);
		send_error(c, 400, "invalid_request_error", msg, NULL);
		return false;
	}
	if (!key) {
		send_error(c, 401, "authentication_error", "x-api-key header is required", NULL);
		return false;
	}
	if (cfg.key && strcmp(key, cfg.key) != 0) {
		send_error(c, 401, "authentication_error", "invalid x-api-key", NULL);
		return false;
	}
	return true;
}

/* After validation: an injected error, or a job that produces the answer. */
static void answer(struct conn *c, json_object *root, const struct opts *o, long attempt,
		   struct buf *last)
{
	bool stream = json_object_get_boolean(jget(root, "stream"));
	bool faulted = fault_applies(o->fault, stream) && (o->times < 0 || attempt <= o->times);
	enum fault f = faulted ? o->fault : F_NONE;
	struct idstat *s = o->id[0] ? id_find(o->id, false) : NULL;

	if (faulted && s)
		s->faulted++;
	fault_desc(f, o->arg, c->rq.log_fault, sizeof c->rq.log_fault);
	if (f == F_STATUS) {
		const char *type, *msg;

		status_error((int)o->arg, &type, &msg);
		send_error(c, (int)o->arg, type, msg, o);
	} else if (f == F_ECHO_KEY) {
		struct buf msg = { 0 };

		buf_fmt(&msg, "invalid x-api-key: %s", api_key(&c->rq));
		send_error(c, 401, "authentication_error", buf_cstr(&msg), o);
		buf_free(&msg);
	} else {
		job_start(c, root, o, f, buf_cstr(last), last->len);
	}
}

static void handle_messages(struct conn *c)
{
	struct req *r = &c->rq;
	char perr[160], verr[256], merr[160];
	struct opts o;
	struct buf last = { 0 };
	json_object *root = body_json(&r->body, perr, sizeof perr);
	bool marks_ok = true;
	long attempt;

	/* Markers are read first, leniently, so even a rejected attempt is recorded. */
	opts_init(&o);
	S.t.attempts++;
	if (json_object_is_type(root, json_type_object)) {
		last_user_text(root, &last);
		marks_ok = markers_parse(buf_cstr(&last), last.len, &o, merr, sizeof merr);
	}
	attempt = id_attempt(&o, r, root);
	memcpy(r->log_id, o.id, sizeof r->log_id);

	if (!auth_ok(c)) {
		/* auth_ok() has answered */
	} else if (!root)
		send_error(c, 400, "invalid_request_error", perr, NULL);
	else if (!check_request(root, false, verr, sizeof verr))
		send_error(c, 400, "invalid_request_error", verr, NULL);
	else if (!marks_ok)
		send_error(c, 400, "invalid_request_error", merr, NULL);
	else
		answer(c, root, &o, attempt, &last);
	json_object_put(root);
	buf_free(&last);
}

static void handle_count(struct conn *c)
{
	char err[256];
	json_object *root;

	if (!auth_ok(c))
		return;
	root = body_json(&c->rq.body, err, sizeof err);
	if (root && check_request(root, true, err, sizeof err)) {
		json_object *o = jobj();

		jset(o, "input_tokens", jint(input_tokens(root)));
		send_json(c, 200, o, NULL);
		json_object_put(o);
	} else {
		send_error(c, 400, "invalid_request_error", err, NULL);
	}
	json_object_put(root);
}

static const struct model {
	const char *id, *name, *created;
	long max_input, max_output;
} MODELS[] = { /* newest first, like the real list */
	{ "claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z", 200000, 64000 },
	{ "claude-opus-4-20250514", "Claude Opus 4", "2025-05-22T00:00:00Z", 200000, 32000 },
	{ "claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z", 200000, 8192 },
};
#define NMODELS (sizeof MODELS / sizeof MODELS[0])

static json_object *model_json(const struct model *m)
{
	json_object *o = jobj();

	jset(o, "type", jstr("model"));
	jset(o, "id", jstr(m->id));
	jset(o, "display_name", jstr(m->name));
	jset(o, "created_at", jstr(m->created));
	jset(o, "max_input_tokens", jint(m->max_input));
	jset(o, "max_tokens", jint(m->max_output));
	return o;
}

static void models_list(struct conn *c)
{
	json_object *o = jobj(), *data = json_object_new_array();

	if (!auth_ok(c)) {
		json_object_put(o);
		json_object_put(data);
		return;
	}
	for (size_t i = 0; i < NMODELS; i++)
		if (json_object_array_add(data, model_json(&MODELS[i])) != 0)
			die("out of memory");
	jset(o, "data", data);
	jset(o, "has_more", json_object_new_boolean(0));
	jset(o, "first_id", jstr(MODELS[0].id));
	jset(o, "last_id", jstr(MODELS[NMODELS - 1].id));
	send_json(c, 200, o, NULL);
	json_object_put(o);
}

static void models_get(struct conn *c, const char *id)
{
	char msg[128];

	if (!auth_ok(c))
		return;
	for (size_t i = 0; i < NMODELS; i++) {
		if (strcmp(MODELS[i].id, id) == 0) {
			json_object *o = model_json(&MODELS[i]);

			send_json(c, 200, o, NULL);
			json_object_put(o);
			return;
		}
	}
	snprintf(msg, sizeof msg, "model: %.100s", id);
	send_error(c, 404, "not_found_error", msg, NULL);
}

static json_object *stats_json(void)
{
	json_object *o = jobj(), *ids = jobj();

	jset(o, "requests", jint(S.t.requests));
	jset(o, "attempts", jint(S.t.attempts));
	jset(o, "messages_ok", jint(S.t.messages_ok));
	jset(o, "errors_sent", jint(S.t.errors_sent));
	jset(o, "streams_started", jint(S.t.streams_started));
	jset(o, "streams_completed", jint(S.t.streams_completed));
	jset(o, "streams_aborted", jint(S.t.streams_aborted));
	jset(o, "streams_cut", jint(S.t.streams_cut));
	jset(o, "streams_errored", jint(S.t.streams_errored));
	jset(o, "active_streams", jint(S.active_streams));
	jset(o, "connections_accepted", jint(S.t.connections_accepted));
	jset(o, "connections_active", jint(S.connections_active));
	for (size_t i = 0; i < IDS_SLOTS; i++)
		if (S.slot[i])
			jset(ids, S.slot[i]->name, idstat_json(S.slot[i]));
	jset(o, "ids", ids);
	return o;
}

/* GET /stats, or GET /stats?id=NAME for one id (zeros when unknown). */
static void stats_get(struct conn *c)
{
	const char *q = c->rq.query;
	json_object *o;

	while (q && strncmp(q, "id=", 3) != 0) {
		q = strchr(q, '&');
		if (q)
			q++;
	}
	if (q) {
		char name[ID_MAX + 1];
		size_t n = strcspn(q + 3, "&");

		snprintf(name, sizeof name, "%.*s", (int)(n < ID_MAX ? n : ID_MAX), q + 3);
		o = idstat_json(id_find(name, false));
	} else {
		o = stats_json();
	}
	send_json(c, 200, o, NULL);
	json_object_put(o);
}

static void stats_reset(struct conn *c)
{
	json_object *o = jobj();

	S.gen++;
	memset(&S.t, 0, sizeof S.t);
	ids_clear();
	jset(o, "reset", json_object_new_boolean(1));
	send_json(c, 200, o, NULL);
	json_object_put(o);
}

static void method_not_allowed(struct conn *c)
{
	send_error(c, 405, "invalid_request_error", "Method Not Allowed", NULL);
}

static void route_api(struct conn *c, bool get, bool post)
{
	const char *p = c->rq.path;

	if (strcmp(p, "/v1/messages") == 0) {
		if (post)
			handle_messages(c);
		else
			method_not_allowed(c);
	} else if (strcmp(p, "/v1/messages/count_tokens") == 0) {
		if (post)
			handle_count(c);
		else
			method_not_allowed(c);
	} else if (strcmp(p, "/v1/models") == 0) {
		if (get)
			models_list(c);
		else
			method_not_allowed(c);
	} else if (strncmp(p, "/v1/models/", 11) == 0 && p[11] && !strchr(p + 11, '/')) {
		if (get)
			models_get(c, p + 11);
		else
			method_not_allowed(c);
	} else {
		send_error(c, 404, "not_found_error", "Not Found", NULL);
	}
}

static void dispatch(struct conn *c)
{
	struct req *r = &c->rq;
	bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;

	c->st = C_BUSY;
	if (strcmp(r->path, "/stats") == 0) {
		if (get)
			stats_get(c);
		else
			method_not_allowed(c);
	} else if (strcmp(r->path, "/stats/reset") == 0) {
		if (post)
			stats_reset(c);
		else
			method_not_allowed(c);
	} else {
		S.t.requests++; /* the test harness's own /stats calls are not counted */
		route_api(c, get, post);
	}
	log_req(c);
	if (!c->job)
		request_done(c);
}

/* ---- HTTP input --------------------------------------------------------- */

/* A request that cannot be read further: answer it and close. */
static void reject(struct conn *c, int status, const char *type, const char *msg)
{
	c->st = C_CLOSING;
	buf_free(&c->in);
	S.t.requests++;
	send_error(c, status, type, msg, NULL);
	log_req(c);
}

static bool has_token(const char *list, const char *tok)
{
	size_t tn = strlen(tok);

	for (const char *p = list; *p;) {
		const char *e, *t;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		for (e = p; *e && *e != ','; e++)
			;
		for (t = e; t > p && (t[-1] == ' ' || t[-1] == '\t'); t--)
			;
		if ((size_t)(t - p) == tn && strncasecmp(p, tok, tn) == 0)
			return true;
		p = e;
	}
	return false;
}

static bool parse_size(const char *s, size_t *out)
{
	size_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* Splits the private header copy in place: 0, or the status to reject with. */
static int head_fields(struct req *r)
{
	char *line = r->head, *eol = strstr(line, "\r\n"), *target, *version, *q, *p;

	if (!eol)
		return 400;
	*eol = '\0';
	if (!(target = strchr(line, ' ')))
		return 400;
	*target++ = '\0';
	if (!(version = strchr(target, ' ')))
		return 400;
	*version++ = '\0';
	if (!*line || target[0] != '/')
		return 400;
	if (strcmp(version, "HTTP/1.1") == 0)
		r->keep_alive = true;
	else if (strcmp(version, "HTTP/1.0") != 0)
		return 400;
	if ((q = strchr(target, '?')) != NULL)
		*q++ = '\0';
	r->method = line;
	r->path = target;
	r->query = q ? q : "";
	for (p = eol + 2; *p; p = eol + 2) {
		char *colon, *v, *end;

		if (!(eol = strstr(p, "\r\n")))
			return 400;
		*eol = '\0';
		if (!(colon = strchr(p, ':')) || colon == p)
			return 400;
		for (char *k = p; k < colon; k++) {
			if (*k == ' ' || *k == '\t')
				return 400;
			*k = (char)tolower((unsigned char)*k);
		}
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
			;
		*end = '\0';
		if (r->nh == HDRS_MAX)
			return 431;
		r->h[r->nh].name = p;
		r->h[r->nh].value = v;
		r->nh++;
	}
	return 0;
}

/* Connection handling and body framing of a parsed head; false after a reject. */
static bool head_framing(struct conn *c)
{
	struct req *r = &c->rq;
	const char *te = hdr_get(r, "transfer-encoding"), *cl = hdr_get(r, "content-length");
	const char *cn = hdr_get(r, "connection"), *ex = hdr_get(r, "expect");

	if (cn && has_token(cn, "close"))
		r->keep_alive = false;
	else if (cn && has_token(cn, "keep-alive"))
		r->keep_alive = true;
	if (te) {
		if (strcasecmp(te, "chunked") != 0) {
			reject(c, 501, "api_error", "Unsupported transfer-encoding");
			return false;
		}
		r->chunked = true;
	} else if (cl && !parse_size(cl, &r->clen)) {
		reject(c, 400, "invalid_request_error", "Invalid Content-Length");
		return false;
	}
	if (!r->chunked && r->clen > BODY_MAX) {
		reject(c, 413, "request_too_large", "Request exceeds the maximum size");
		return false;
	}
	if (ex && strcasecmp(ex, "100-continue") == 0 && (r->chunked || r->clen)) {
		conn_add(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		conn_flush(c);
	}
	c->st = C_BODY;
	return true;
}

/* Looks for a complete head; true when the connection's state changed. */
static bool head_parse(struct conn *c)
{
	struct buf *in = &c->in;
	const char *base, *end;
	size_t avail, from, hlen;
	int rc;

	/* Stray CRLFs between requests are allowed (RFC 9112 section 2.2). */
	while (buf_pending(in) && (in->p[in->off] == '\r' || in->p[in->off] == '\n')) {
		buf_consume(in, 1);
		c->scanned = 0;
	}
	if (!c->rq.rid[0])
		make_id(c->rq.rid, "req_");
	avail = buf_pending(in);
	if (!avail)
		return false;
	base = in->p + in->off;
	from = c->scanned > 3 ? c->scanned - 3 : 0;
	end = memmem(base + from, avail - from, "\r\n\r\n", 4);
	if (!end) {
		c->scanned = avail;
		if (avail < HEAD_MAX)
			return false;
		reject(c, 431, "invalid_request_error", "Request header fields too large");
		return true;
	}
	hlen = (size_t)(end - base) + 4;
	c->rq.head = xstrndup(base, hlen - 2); /* keep the CRLF ending the last field */
	buf_consume(in, hlen);
	c->scanned = 0;
	rc = head_fields(&c->rq);
	if (rc == 431)
		reject(c, 431, "invalid_request_error", "Too many request header fields");
	else if (rc)
		reject(c, 400, "invalid_request_error", "Malformed HTTP request");
	else
		head_framing(c);
	return true;
}

enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };
enum { FEED_MORE = 0, FEED_DONE = 1 }; /* or an HTTP status to reject with */

static int chunk_line(struct req *r, const char *p, size_t n)
{
	size_t v = 0, i = 0;

	switch (r->ch_state) {
	case CH_SIZE:
		for (; i < n && isxdigit((unsigned char)p[i]); i++) {
			if (v > BODY_MAX)
				return 413;
			v = v * 16 + (size_t)(isdigit((unsigned char)p[i]) ? p[i] - '0'
							: (tolower((unsigned char)p[i]) - 'a' + 10));
		}
		if (i == 0 || (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t'))
			return 400;
		if (v > BODY_MAX - buf_pending(&r->body))
			return 413;
		r->ch_left = v;
		r->ch_state = v ? CH_DATA : CH_TRAILER;
		return FEED_MORE;
	case CH_DATA_END:
		if (n)
			return 400;
		r->ch_state = CH_SIZE;
		return FEED_MORE;
	case CH_TRAILER: /* trailer fields are read and ignored */
		return n ? FEED_MORE : FEED_DONE;
	default:
		return 400;
	}
}

static int chunked_feed(struct conn *c)
{
	struct req *r = &c->rq;
	struct buf *in = &c->in;

	for (;;) {
		size_t avail = buf_pending(in), ln;
		const char *p, *nl;
		int rc;

		if (!avail)
			return FEED_MORE;
		p = in->p + in->off;
		if (r->ch_state == CH_DATA) {
			size_t take = avail < r->ch_left ? avail : r->ch_left;

			buf_add(&r->body, p, take);
			buf_consume(in, take);
			r->ch_left -= take;
			if (!r->ch_left)
				r->ch_state = CH_DATA_END;
			continue;
		}
		if (!(nl = memchr(p, '\n', avail)))
			return avail > CHUNK_LINE_MAX ? 400 : FEED_MORE;
		ln = (size_t)(nl - p);
		if (ln > CHUNK_LINE_MAX)
			return 400;
		rc = chunk_line(r, p, ln && p[ln - 1] == '\r' ? ln - 1 : ln);
		buf_consume(in, ln + 1);
		if (rc != FEED_MORE)
			return rc;
	}
}

static int plain_feed(struct conn *c)
{
	struct req *r = &c->rq;
	size_t take = buf_pending(&c->in), need = r->clen - buf_pending(&r->body);

	if (take > need)
		take = need;
	if (take) {
		buf_add(&r->body, c->in.p + c->in.off, take);
		buf_consume(&c->in, take);
	}
	return buf_pending(&r->body) == r->clen ? FEED_DONE : FEED_MORE;
}

/* Moves body bytes out of the input buffer; true when the state changed. */
static bool body_read(struct conn *c)
{
	int rc = c->rq.chunked ? chunked_feed(c) : plain_feed(c);

	if (rc == FEED_MORE)
		return false;
	if (rc == 413)
		reject(c, 413, "request_too_large", "Request exceeds the maximum size");
	else if (rc == 400)
		reject(c, 400, "invalid_request_error", "Malformed chunked request body");
	else
		dispatch(c);
	return true;
}

/* Parses and answers buffered requests until one is busy or input runs out. */
static void conn_process(struct conn *c)
{
	for (;;) {
		if (c->dead)
			return;
		if (c->st == C_HEAD) {
			if (!head_parse(c))
				return;
		} else if (c->st == C_BODY) {
			if (!body_read(c))
				return;
		} else {
			return;
		}
	}
}

/* Ends the answer once all its bytes are with the kernel; true if it did. */
static bool job_finish(struct conn *c)
{
	struct job *j = c->job;

	if (!j || j->ph != PH_FLUSH || buf_pending(&j->pend) || buf_pending(&c->out))
		return false;
	job_end(c, j->end_how);
	request_done(c);
	return true;
}

/*
 * The client sent FIN.  An answer it has completely received counts as
 * completed (clients close as soon as they have it all); one still in
 * progress is aborted.  Queued output of a finished request may still go.
 */
static void conn_eof(struct conn *c)
{
	job_finish(c);
	c->peer_eof = true;
	if (c->job || c->st == C_CLOSING || !buf_pending(&c->out))
		c->dead = true;
	else
		c->st = C_CLOSING;
}

static void conn_read(struct conn *c)
{
	static char scratch[READ_CHUNK];

	while (!c->dead && !c->peer_eof) {
		ssize_t n;

		if (c->st == C_CLOSING) {
			n = recv(c->pl.fd, scratch, sizeof scratch, 0);
			if (n > 0)
				c->discarded += (size_t)n;
			if (c->discarded > DISCARD_MAX)
				c->dead = true;
		} else {
			size_t room = HEAD_MAX - buf_pending(&c->in);

			/* Only a busy connection with a pipelined request can fill up;
			 * reading resumes once the current answer is done. */
			if (!room)
				return;
			if (room > READ_CHUNK)
				room = READ_CHUNK;
			buf_reserve(&c->in, room);
			n = recv(c->pl.fd, c->in.p + c->in.len, room, 0);
			if (n > 0) {
				c->in.len += (size_t)n;
				conn_process(c);
			}
		}
		if (n == 0)
			conn_eof(c);
		else if (n < 0 && errno != EINTR) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->dead = true;
			return;
		}
	}
}

/* ---- connection lifecycle ----------------------------------------------- */

static void listener_events(uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = &listener };

	if (epoll_ctl(epfd, EPOLL_CTL_MOD, listener.fd, &ev) != 0)
		die("epoll_ctl(listener): %s", strerror(errno));
}

static void conn_close(struct conn *c)
{
	if (c->job)
		job_end(c, END_ABORTED);
	timer_clear(c);
	xclose(c->pl.fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	req_free(&c->rq);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
	S.connections_active--;
	if (listen_paused) {
		listen_paused = false;
		listener_events(EPOLLIN);
	}
}

/*
 * Run after every event on c: finish the answer whose bytes are all out,
 * move on to the next pipelined request, and close what is finished.
 */
static void conn_settle(struct conn *c)
{
	while (!c->dead && !buf_pending(&c->out)) {
		if (job_finish(c)) {
			conn_process(c);
			conn_read(c);
			continue;
		}
		if (c->st == C_CLOSING && !c->shut_wr) {
			/* Lingering close: shut our side, then swallow input briefly so
			 * the client reads the answer instead of a reset. */
			if (c->peer_eof || shutdown(c->pl.fd, SHUT_WR) != 0) {
				c->dead = true;
				break;
			}
			c->shut_wr = true;
			timer_set(c, LINGER_MS);
		}
		break;
	}
	if (c->dead)
		conn_close(c);
}

static void conn_event(struct conn *c, uint32_t ev)
{
	if (ev & (EPOLLERR | EPOLLHUP)) {
		c->dead = true;
	} else {
		if (ev & (EPOLLIN | EPOLLRDHUP))
			conn_read(c);
		/* FIN behind a full input buffer (pipelining while busy) */
		if ((ev & EPOLLRDHUP) && !c->peer_eof && !c->dead)
			conn_eof(c);
		if (ev & EPOLLOUT)
			conn_flush(c);
	}
	conn_settle(c);
}

static void conn_on_timer(struct conn *c)
{
	if (c->st == C_CLOSING)
		c->dead = true; /* the linger time is over */
	else
		job_step(c);
	conn_settle(c);
}

static void conn_new(int fd)
{
	struct conn *c = xcalloc(1, sizeof *c);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET };
	int one = 1;

	/* Every SSE event must leave at once, not wait for Nagle. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		warnmsg("TCP_NODELAY: %s", strerror(errno));
	c->pl.kind = P_CONN;
	c->pl.fd = fd;
	c->st = C_HEAD;
	c->heap_idx = NO_TIMER;
	ev.data.ptr = &c->pl;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		warnmsg("epoll_ctl(ADD): %s", strerror(errno));
		xclose(fd);
		free(c);
		return;
	}
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	S.t.connections_accepted++;
	S.connections_active++;
}

static void accept_all(void)
{
	for (;;) {
		int fd = accept4(listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_new(fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors: stop polling the listener (level-triggered,
			 * it would spin) until a connection closes. */
			warnmsg("accept: %s; pausing until a connection closes", strerror(errno));
			listen_paused = true;
			listener_events(0);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			warnmsg("accept: %s", strerror(errno));
		}
		return;
	}
}

static void run_timers(void)
{
	int64_t now = mono_us();

	while (heap.n && heap.v[0]->deadline <= now) {
		struct conn *c = heap.v[0];

		timer_clear(c);
		conn_on_timer(c);
	}
}

/* ---- startup ------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs("usage: llm-emu [--listen HOST:PORT] [--port-file FILE] [--key KEY] [--words N]\n"
	      "               [--delay-ms MS] [--ttft-ms MS] [--log FILE] [-v]\n", f);
}

static long arg_long(const char *name, const char *v, long lo, long hi)
{
	long out;

	if (!parse_long(v, strlen(v), lo, hi, &out))
		die("%s: expected an integer in %ld..%ld, got '%s'", name, lo, hi, v);
	return out;
}

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "key", required_argument, NULL, 'k' },
		{ "words", required_argument, NULL, 'w' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "ttft-ms", required_argument, NULL, 't' },
		{ "log", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l': cfg.listen = optarg; break;
		case 'p': cfg.port_file = optarg; break;
		case 'k': cfg.key = optarg; break;
		case 'w': cfg.words = arg_long("--words", optarg, 0, WORDS_MAX); break;
		case 'd': cfg.delay_ms = arg_long("--delay-ms", optarg, 0, MS_MAX); break;
		case 't': cfg.ttft_ms = arg_long("--ttft-ms", optarg, 0, MS_MAX); break;
		case 'L': cfg.log_path = optarg; break;
		case 'v': cfg.verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		exit(2);
	}
	if (cfg.key && !*cfg.key)
		die("--key must not be empty");
}

/* 1,000 concurrent streams need more descriptors than the usual soft limit. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		warnmsg("getrlimit: %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur == rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		warnmsg("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
}

/* SIGTERM/SIGINT arrive through epoll, so shutdown happens between events. */
static int signals_setup(void)
{
	struct sigaction sa;
	sigset_t set;
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		die("sigaction: %s", strerror(errno));
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		die("sigprocmask: %s", strerror(errno));
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		die("signalfd: %s", strerror(errno));
	return fd;
}

/* Readers poll for the file, so it must appear complete or not at all. */
static void write_port_file(const char *path, const char *port)
{
	struct buf tmp = { 0 };
	const char *t;
	FILE *f;
	int werr;

	buf_fmt(&tmp, "%s.tmp", path);
	t = buf_cstr(&tmp);
	if (!(f = fopen(t, "w")))
		die("%s: %s", t, strerror(errno));
	werr = fprintf(f, "%s\n", port) < 0;
	if (fclose(f) != 0 || werr)
		die("%s: write failed", t);
	if (rename(t, path) != 0)
		die("rename %s: %s", t, strerror(errno));
	buf_free(&tmp);
}

static void announce(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char host[NI_MAXHOST], port[NI_MAXSERV];
	int rc;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		die("getsockname: %s", strerror(errno));
	rc = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
			 NI_NUMERICHOST | NI_NUMERICSERV);
	if (rc != 0)
		die("getnameinfo: %s", gai_strerror(rc));
	if (cfg.port_file)
		write_port_file(cfg.port_file, port);
	if (ss.ss_family == AF_INET6)
		printf("listening on [%s]:%s\n", host, port);
	else
		printf("listening on %s:%s\n", host, port);
	if (fflush(stdout) != 0)
		warnmsg("stdout: %s", strerror(errno));
}

/* HOST:PORT or [V6]:PORT; an empty host means every address. */
static void listen_on(const char *spec)
{
	char host[256] = "";
	const char *colon = strrchr(spec, ':'), *port;
	struct addrinfo hints, *res, *ai;
	int fd = -1, err = 0, rc;

	if (!colon || !colon[1])
		die("--listen %s: expected HOST:PORT", spec);
	port = colon + 1;
	if (spec[0] == '[' && colon > spec && colon[-1] == ']')
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec - 2), spec + 1);
	else
		snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0)
		die("--listen %s: %s", spec, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
			break;
		err = errno;
		xclose(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		die("--listen %s: %s", spec, strerror(err));
	listener.fd = fd;
	announce(fd);
}

static void poll_add(struct pollable *p, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = p };

	if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &ev) != 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void event_loop(void)
{
	struct epoll_event evs[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(epfd, evs, MAX_EVENTS, heap_timeout_ms());

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			struct pollable *p = evs[i].data.ptr;

			if (p->kind == P_SIGNAL)
				return;
			if (p->kind == P_LISTEN)
				accept_all();
			else
				conn_event((struct conn *)p, evs[i].events);
		}
		run_timers();
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	if (cfg.log_path) {
		if (!(log_fp = fopen(cfg.log_path, "a")))
			die("%s: %s", cfg.log_path, strerror(errno));
	} else if (cfg.verbose) {
		log_fp = stderr;
	}
	if (log_fp && setvbuf(log_fp, NULL, _IOLBF, 0) != 0)
		warnmsg("setvbuf: cannot line-buffer the log");
	raise_nofile();
	sigsrc.fd = signals_setup();
	rng_seed();
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1: %s", strerror(errno));
	listen_on(cfg.listen);
	poll_add(&listener, EPOLLIN);
	poll_add(&sigsrc, EPOLLIN);

	event_loop();

	/* Free everything, so a leak checker sees a clean exit. */
	while (conns)
		conn_close(conns);
	free(heap.v);
	ids_clear();
	xclose(listener.fd);
	xclose(sigsrc.fd);
	xclose(epfd);
	if (log_fp && log_fp != stderr && fclose(log_fp) != 0)
		warnmsg("%s: %s", cfg.log_path, strerror(errno));
	return 0;
}
