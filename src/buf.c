#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
	fprintf(stderr, "llm-fcgi: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (!p)
		oom(nmemb * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	/* The NUL needs a byte past the content: max + 1 must not wrap to 0. */
	b->max = max < (size_t)-1 ? max : (size_t)-1 - 1;
}

static int buf_reserve(struct buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return -1;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_appends(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_appendc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

/* The decimal digits of v written backwards, ending at end; returns where they start. */
static char *digits_back(char *end, unsigned long long v)
{
	do
		*--end = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	return end;
}

/* v's digits, with a '-' when negative, ending at end (BUF_DIGITS_MAX bytes before it hold
 * them); returns where they start. */
static char *signed_back(char *end, long long v)
{
	if (v >= 0)
		return digits_back(end, (unsigned long long)v);
	char *p = digits_back(end, 0ull - (unsigned long long)v);
	*--p = '-';
	return p;
}

size_t buf_digits_u(char *out, unsigned long long v)
{
	char d[BUF_DIGITS_MAX], *p = digits_back(d + sizeof d, v);
	size_t n = (size_t)(d + sizeof d - p);
	memcpy(out, p, n);
	return n;
}

size_t buf_digits(char *out, long long v)
{
	char d[BUF_DIGITS_MAX], *p = signed_back(d + sizeof d, v);
	size_t n = (size_t)(d + sizeof d - p);
	memcpy(out, p, n);
	return n;
}

/* Straight from the digits' own place into b: one copy. */
int buf_append_u(struct buf *b, unsigned long long v)
{
	char d[BUF_DIGITS_MAX], *p = digits_back(d + sizeof d, v);
	return buf_append(b, p, (size_t)(d + sizeof d - p));
}

int buf_append_i(struct buf *b, long long v)
{
	char d[BUF_DIGITS_MAX], *p = signed_back(d + sizeof d, v);
	return buf_append(b, p, (size_t)(d + sizeof d - p));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || buf_reserve(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void buf_note(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	if (rc == 0)
		return;
	/* What fits below max, then the mark (itself cut when max is tiny); both fit in room. */
	size_t room = b->max > b->len ? b->max - b->len : 0;
	char text[256];
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	size_t n = strlen(text), dots = room < 3 ? room : 3, keep = room - dots;
	BUF_MUST(buf_append(b, text, keep < n ? keep : n) || buf_append(b, "...", dots));
}

void buf_must(int failed, const char *file, int line)
{
	if (!failed)
		return;
	fprintf(stderr, "llm-fcgi: %s:%d: a buffer sized to fit overflowed\n", file, line);
	abort();
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

const char *buf_cstr(const struct buf *b)
{
	return b->data ? b->data : "";
}

char *buf_detach(struct buf *b)
{
	char *p = b->data ? b->data : xstrdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void buf_release(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
