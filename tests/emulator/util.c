/* util: see util.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static void vwarn(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void vwarn(const char *fmt, va_list ap)
{
	fputs("llm-emu: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void warnmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	exit(1);
}

void xclose(int fd)
{
	if (close(fd) != 0 && errno != EINTR)
		warnmsg("close: %s", strerror(errno));
}

size_t obuf_pending(const struct obuf *b)
{
	return b->len - b->off;
}

void obuf_reserve(struct obuf *b, size_t n)
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

void obuf_add(struct obuf *b, const void *d, size_t n)
{
	if (!n)
		return;
	obuf_reserve(b, n);
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

void obuf_str(struct obuf *b, const char *s)
{
	obuf_add(b, s, strlen(s));
}

void obuf_fmt(struct obuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* Try the room there is; on truncation grow to the size reported. */
	obuf_reserve(b, 128);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf failed");
	if ((size_t)n >= b->cap - b->len) {
		obuf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* The pending bytes as a C string (always allocated, so never NULL). */
const char *obuf_cstr(struct obuf *b)
{
	obuf_reserve(b, 1);
	b->p[b->len] = '\0';
	return b->p + b->off;
}

void obuf_consume(struct obuf *b, size_t n)
{
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

void obuf_free(struct obuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

int64_t mono_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double wall_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

void http_date(char *d, size_t n, time_t t)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(d, n, "%a, %d %b %Y %H:%M:%S GMT", &tm))
		snprintf(d, n, "Thu, 01 Jan 1970 00:00:00 GMT");
}

void rfc3339(char *d, size_t n, time_t t)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(d, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(d, n, "1970-01-01T00:00:00Z");
}

/* xorshift64*: ids only need to look random and be unique enough. */
static uint64_t rng_state;

void rng_seed(void)
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

void make_id(char dst[ID_LEN], const char *prefix)
{
	static const char alnum[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

	memcpy(dst, prefix, 4);
	for (int i = 0; i < 24; i++)
		dst[4 + i] = alnum[rng_next() % (sizeof alnum - 1)];
	dst[ID_LEN - 1] = '\0';
}

/* Parses a decimal integer in [lo, hi]; at most 9 digits, so no overflow. */
bool parse_long(const char *s, size_t n, long lo, long hi, long *out)
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

bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}


json_object *jobj(void)
{
	json_object *o = json_object_new_object();

	if (!o)
		die("out of memory");
	return o;
}

void jset(json_object *o, const char *k, json_object *v)
{
	if (json_object_object_add(o, k, v) != 0)
		die("out of memory");
}

/* A member of a validated request (NULL when absent; json-c getters accept NULL). */
json_object *jget(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

json_object *jint(int64_t v)
{
	return json_object_new_int64(v);
}

