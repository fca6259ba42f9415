#include "fastdelta.h"

#include <string.h>

#include "buf.h"

struct cur {
	const unsigned char *p, *end;
};

/* The four blanks RFC 8259 allows between tokens. */
static void blanks(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* Blanks, then exactly the token lit. */
static int token(struct cur *c, const char *lit, size_t n)
{
	blanks(c);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
		return 0;
	c->p += n;
	return 1;
}

#define TOKEN(c, lit) token((c), (lit), sizeof(lit) - 1)

/* 0 or a digit run without a leading zero, of at most FASTDELTA_INDEX_DIGITS digits. */
static int number(struct cur *c, long long *v)
{
	blanks(c);
	const unsigned char *s = c->p;
	long long n = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9' && c->p - s < FASTDELTA_INDEX_DIGITS + 1)
		n = n * 10 + (*c->p++ - '0');
	size_t k = (size_t)(c->p - s);
	if (k == 0 || k > FASTDELTA_INDEX_DIGITS || (k > 1 && *s == '0'))
		return 0;
	*v = n;
	return 1;
}

/* The length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0: no overlong
 * forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	size_t left = (size_t)(end - p);
	unsigned char a = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;
	if (a >= 0xc2 && a <= 0xdf)
		n = 2;
	else if (a >= 0xe0 && a <= 0xef) {
		n = 3;
		lo = a == 0xe0 ? 0xa0 : 0x80;
		hi = a == 0xed ? 0x9f : 0xbf;
	} else if (a >= 0xf0 && a <= 0xf4) {
		n = 4;
		lo = a == 0xf0 ? 0x90 : 0x80;
		hi = a == 0xf4 ? 0x8f : 0xbf;
	} else
		return 0;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* Four hex digits after "\u" at p, or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
	if (end - p < 4)
		return -1;
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int c = p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* A code point of the BMP (no surrogate) in UTF-8. */
static size_t put_utf8(unsigned char *o, long cp)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	o[0] = (unsigned char)(0xe0 | cp >> 12);
	o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	o[2] = (unsigned char)(0x80 | (cp & 0x3f));
	return 3;
}

/* One escape after the backslash at c->p: writes its bytes to o, returns their count (0: not
 * one we take). \u0000 and every surrogate go to the general parser: json-c 0.16 decodes some
 * valid pairs to U+FFFD ("\ud837\ude00", found by fuzz_fastdelta), and the two readings must
 * agree; the API sends text as raw UTF-8, so escaped pairs are rare. */
static size_t escape(struct cur *c, unsigned char *o)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	if (c->end - c->p < 2)
		return 0;
	unsigned char e = c->p[1];
	const char *k = e ? strchr(from, e) : NULL;
	if (k) {
		c->p += 2;
		*o = (unsigned char)to[k - from];
		return 1;
	}
	if (e != 'u')
		return 0;
	long cp = hex4(c->p + 2, c->end);
	if (cp <= 0 || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	c->p += 6;
	return put_utf8(o, cp);
}

/* Where unescaped text goes: it is never longer than its escaped form, so data's length bounds
 * it, and that is bounded by the SSE decoder's event cap. Grown, never shrunk. */
static unsigned char *scratch(size_t n)
{
	static unsigned char *mem;
	static size_t cap;
	if (n > cap) {
		mem = xrealloc(mem, n);
		cap = n;
	}
	return mem;
}

/* The string whose opening quote is at c->p. Escape-free text is pointed at where it is. */
static int string(struct cur *c, const char **text, size_t *len)
{
	blanks(c);
	if (c->p >= c->end || *c->p != '"')
		return 0;
	const unsigned char *s = ++c->p;
	unsigned char *out = NULL;
	size_t n = 0; /* bytes in out */
	while (c->p < c->end) {
		unsigned char ch = *c->p;
		if (ch == '"') {
			*text = out ? (const char *)out : (const char *)s;
			*len = out ? n : (size_t)(c->p - s);
			c->p++;
			return 1;
		}
		if (ch < 0x20)
			return 0;
		if (ch == '\\') {
			if (!out) {
				out = scratch((size_t)(c->end - s));
				n = (size_t)(c->p - s);
				memcpy(out, s, n);
			}
			size_t k = escape(c, out + n);
			if (!k)
				return 0;
			n += k;
			continue;
		}
		size_t k = ch < 0x80 ? 1 : utf8_seq(c->p, c->end);
		if (!k)
			return 0;
		if (out)
			memcpy(out + n, c->p, k);
		n += k;
		c->p += k;
	}
	return 0;
}

/* The two runs of an event as the API writes it, without blanks: one memcmp each instead of a
 * token at a time (which the blank-tolerant path below still does for any other spacing). */
static const char head[] = "{\"type\":\"content_block_delta\",\"index\":";
static const char mid[] = ",\"delta\":{\"type\":\"text_delta\",\"text\":";

static int compact_prefix(struct cur *c, long long *index)
{
	size_t n = sizeof head - 1, m = sizeof mid - 1;
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, head, n) != 0)
		return 0;
	struct cur t = {c->p + n, c->end};
	if (!number(&t, index) || (size_t)(t.end - t.p) < m || memcmp(t.p, mid, m) != 0)
		return 0;
	c->p = t.p + m;
	return 1;
}

static int spaced_prefix(struct cur *c, long long *index)
{
	return TOKEN(c, "{") && TOKEN(c, "\"type\"") && TOKEN(c, ":") &&
	       TOKEN(c, "\"content_block_delta\"") && TOKEN(c, ",") && TOKEN(c, "\"index\"") &&
	       TOKEN(c, ":") && number(c, index) && TOKEN(c, ",") && TOKEN(c, "\"delta\"") &&
	       TOKEN(c, ":") && TOKEN(c, "{") && TOKEN(c, "\"type\"") && TOKEN(c, ":") &&
	       TOKEN(c, "\"text_delta\"") && TOKEN(c, ",") && TOKEN(c, "\"text\"") && TOKEN(c, ":");
}

int fastdelta_parse(const char *data, size_t len, long long *index, const char **text, size_t *text_len)
{
	struct cur c = {(const unsigned char *)data, (const unsigned char *)data + len};
	long long i;
	const char *t;
	size_t n;
	if (!compact_prefix(&c, &i)) {
		c.p = (const unsigned char *)data;
		if (!spaced_prefix(&c, &i))
			return 0;
	}
	if (!string(&c, &t, &n) || !TOKEN(&c, "}") || !TOKEN(&c, "}"))
		return 0;
	blanks(&c);
	if (c.p != c.end)
		return 0;
	*index = i;
	*text = t;
	*text_len = n;
	return 1;
}
