/* buf: the capped buffer every outside input goes through. The cap is exact (max bytes fit, one
 * more does not), a refused append leaves the buffer as it was, and data stays NUL-terminated. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"

/* The invariants every buffer keeps after any call. */
static int sound(const struct buf *b)
{
	if (!b->data)
		return b->len == 0 && b->cap == 0;
	return b->len <= b->max && b->len < b->cap && b->cap <= b->max + 1 && b->data[b->len] == '\0';
}

static void test_empty(void)
{
	struct buf b;
	buf_init(&b, 16);
	tap_ok(b.data == NULL && b.len == 0 && b.cap == 0 && b.max == 16, "init: nothing allocated");
	tap_is_str(buf_cstr(&b), "", "cstr of a new buffer is \"\"");
	buf_reset(&b);
	tap_ok(sound(&b), "reset of a new buffer");
	buf_consume(&b, 0);
	tap_ok(sound(&b), "consume of a new buffer");
	char *p = buf_detach(&b);
	tap_is_str(p, "", "detach of a new buffer gives an allocated \"\"");
	free(p);
	buf_release(&b);
	tap_ok(b.data == NULL, "release of a new buffer");
}

static void test_append(void)
{
	struct buf b;
	buf_init(&b, 32);
	tap_is_int(buf_append(&b, "abc", 3), 0, "append");
	tap_is_int(buf_appends(&b, "de"), 0, "appends");
	tap_is_int(buf_appendc(&b, 'f'), 0, "appendc");
	tap_is_int(buf_append(&b, "x", 0), 0, "append of nothing");
	tap_is_int(buf_append(&b, "a\0b", 3), 0, "append takes NUL bytes");
	tap_ok(b.len == 9 && memcmp(b.data, "abcdefa\0b", 10) == 0 && sound(&b), "content and NUL");
	buf_release(&b);
}

/* Exactly max bytes fit, by each function; one more byte is refused and changes nothing. */
static void test_exact_cap(void)
{
	struct buf b;
	buf_init(&b, 8);
	tap_is_int(buf_append(&b, "1234567", 7), 0, "7 of 8");
	tap_is_int(buf_appendc(&b, '8'), 0, "appendc reaches max exactly");
	tap_ok(b.len == 8 && sound(&b), "full: len == max, still terminated");
	tap_is_int(buf_appendc(&b, '9'), -1, "appendc past max refused");
	tap_is_int(buf_append(&b, "9", 1), -1, "append past max refused");
	tap_is_int(buf_appends(&b, "9"), -1, "appends past max refused");
	tap_is_int(buf_printf(&b, "%d", 9), -1, "printf past max refused");
	tap_is_int(buf_append(&b, "", 0), 0, "an empty append still fits a full buffer");
	tap_is_str(buf_cstr(&b), "12345678", "refusals appended nothing");
	tap_ok(b.cap == 9, "cap never above max + 1 (%zu)", b.cap);
	buf_release(&b);

	buf_init(&b, 8);
	tap_is_int(buf_append(&b, "123456789", 9), -1, "one append over max refused whole");
	tap_ok(b.len == 0 && sound(&b), "and left the buffer empty");
	tap_is_int(buf_appends(&b, "12345678"), 0, "appends of exactly max");
	buf_reset(&b);
	tap_is_int(buf_printf(&b, "%s%d", "1234567", 8), 0, "printf of exactly max");
	tap_is_str(buf_cstr(&b), "12345678", "printf content");
	buf_reset(&b);
	tap_is_int(buf_printf(&b, "%s", "123456789"), -1, "printf one over max refused, not cut");
	tap_ok(b.len == 0 && sound(&b), "and appended nothing");
	buf_release(&b);
}

static void test_zero_max(void)
{
	struct buf b;
	buf_init(&b, 0);
	tap_is_int(buf_appendc(&b, 'x'), -1, "max 0: a byte is refused");
	tap_is_int(buf_printf(&b, "x"), -1, "max 0: printf refused");
	tap_is_int(buf_append(&b, "", 0), 0, "max 0: nothing fits");
	tap_is_int(buf_printf(&b, "%s", ""), 0, "max 0: an empty printf fits");
	tap_ok(sound(&b) && b.len == 0, "max 0: still empty and sound");
	tap_is_str(buf_cstr(&b), "", "max 0: cstr");
	buf_release(&b);
}

/* Sizes that would wrap size_t arithmetic are refused, never turned into small allocations. */
static void test_overflow(void)
{
	struct buf b;
	buf_init(&b, 16);
	tap_is_int(buf_append(&b, "abc", 3), 0, "some content");
	tap_is_int(buf_append(&b, "", SIZE_MAX), -1, "append of SIZE_MAX refused");
	tap_is_int(buf_append(&b, "", SIZE_MAX - 2), -1, "append that wraps len + n refused");
	tap_is_int(buf_printf(&b, "%*s", INT_MAX, ""), -1, "printf of INT_MAX bytes refused");
	tap_is_str(buf_cstr(&b), "abc", "untouched");
	buf_release(&b);

	buf_init(&b, SIZE_MAX);
	tap_ok(b.max < SIZE_MAX, "max SIZE_MAX leaves room for the NUL (max + 1 does not wrap)");
	tap_is_int(buf_append(&b, "abc", 3), 0, "a huge max still appends");
	tap_is_int(buf_append(&b, "", SIZE_MAX - 3), -1, "len + n + 1 wrapping refused");
	tap_ok(sound(&b) && b.cap < 1024, "small content, small allocation");
	buf_release(&b);
}

/* Growth doubles from 64 and stops at max + 1; content survives every move. */
static void test_growth(void)
{
	struct buf b;
	buf_init(&b, 1000);
	int ok = 1;
	for (int i = 0; i < 1000; i++) {
		ok &= buf_appendc(&b, (char)('a' + i % 26)) == 0;
		ok &= sound(&b);
	}
	tap_ok(ok, "1000 appendc to max 1000, sound after each");
	tap_ok(b.cap == 1001, "cap clamped to max + 1 (%zu)", b.cap);
	ok = 1;
	for (int i = 0; i < 1000; i++)
		ok &= b.data[i] == (char)('a' + i % 26);
	tap_ok(ok, "content intact across reallocations");
	tap_is_int(buf_appendc(&b, 'z'), -1, "then full");
	buf_release(&b);

	buf_init(&b, 1 << 20);
	tap_is_int(buf_append(&b, "x", 1), 0, "first append");
	tap_ok(b.cap == 64, "first allocation is 64 (%zu)", b.cap);
	char big[100];
	memset(big, 'y', sizeof big);
	tap_is_int(buf_append(&b, big, sizeof big), 0, "append past 64");
	tap_ok(b.cap == 128, "doubled to 128 (%zu)", b.cap);
	tap_is_int(buf_printf(&b, "%0500d", 7), 0, "printf past 128");
	tap_ok(b.len == 601 && b.cap == 1024 && sound(&b), "doubled until it fits (%zu)", b.cap);
	tap_ok(b.data[b.len - 1] == '7' && b.data[101] == '0', "printf content");
	buf_release(&b);
}

static void test_consume_reset(void)
{
	struct buf b;
	buf_init(&b, 64);
	tap_is_int(buf_appends(&b, "hello world"), 0, "content");
	buf_consume(&b, 6);
	tap_is_str(buf_cstr(&b), "world", "consume drops the front");
	tap_ok(b.len == 5 && sound(&b), "consume: len and NUL");
	buf_consume(&b, 0);
	tap_is_str(buf_cstr(&b), "world", "consume 0 changes nothing");
	char *mem = b.data;
	size_t cap = b.cap;
	buf_consume(&b, 5);
	tap_ok(b.len == 0 && b.data == mem && b.cap == cap && sound(&b), "consume all keeps memory");
	tap_is_int(buf_appends(&b, "again"), 0, "append after consume");
	buf_consume(&b, 99);
	tap_ok(b.len == 0 && sound(&b), "consume more than len empties it");
	tap_is_int(buf_appends(&b, "abc"), 0, "append");
	buf_reset(&b);
	tap_ok(b.len == 0 && b.data == mem && b.cap == cap && b.max == 64, "reset keeps memory and max");
	tap_is_str(buf_cstr(&b), "", "reset: cstr is \"\"");
	buf_release(&b);
	tap_ok(b.data == NULL && b.len == 0 && b.cap == 0 && b.max == 64, "release: empty, max kept");
	tap_is_int(buf_appends(&b, "reuse"), 0, "a released buffer can be used again");
	tap_is_str(buf_cstr(&b), "reuse", "reuse content");
	buf_release(&b);
}

static void test_detach(void)
{
	struct buf b;
	buf_init(&b, 64);
	tap_is_int(buf_printf(&b, "%s=%d", "n", 42), 0, "printf");
	char *p = buf_detach(&b);
	tap_is_str(p, "n=42", "detach hands over the content");
	tap_ok(b.data == NULL && b.len == 0 && b.cap == 0 && b.max == 64, "and leaves b empty, max kept");
	tap_is_int(buf_appends(&b, "next"), 0, "b is usable after detach");
	tap_is_str(p, "n=42", "the detached string is independent of b");
	free(p);
	buf_release(&b);
}

static void test_x(void)
{
	char *s = xstrdup("abc");
	tap_is_str(s, "abc", "xstrdup");
	free(s);
	s = xstrndup("abcdef", 3);
	tap_is_str(s, "abc", "xstrndup cuts and terminates");
	free(s);
	s = xstrndup("a\0c", 3);
	tap_ok(s[0] == 'a' && s[1] == '\0' && s[2] == 'c' && s[3] == '\0', "xstrndup copies n bytes");
	free(s);
	void *p = xmalloc(0);
	tap_ok(p != NULL, "xmalloc(0) is not NULL");
	p = xrealloc(p, 0);
	tap_ok(p != NULL, "xrealloc(p, 0) is not NULL");
	free(p);
	int *z = xcalloc(4, sizeof *z);
	tap_ok(z[0] == 0 && z[3] == 0, "xcalloc zeroes");
	free(z);
	p = xcalloc(0, 0);
	tap_ok(p != NULL, "xcalloc(0, 0) is not NULL");
	free(p);
}

/* buf_note: whole when it fits; otherwise cut with "..." exactly at max, never failing. */
static void test_note(void)
{
	struct buf b;
	buf_init(&b, 16);
	buf_note(&b, "short %d", 1);
	tap_is_str(buf_cstr(&b), "short 1", "note: fits whole");
	buf_note(&b, " and a much longer tail %s", "here");
	tap_ok(b.len == 16 && strcmp(buf_cstr(&b), "short 1 and a...") == 0 && sound(&b),
	       "note: cut at max with a mark (%s)", buf_cstr(&b));
	buf_note(&b, "more");
	tap_is_int((long)b.len, 16, "note: a full buffer stays as it is");
	buf_release(&b);
	buf_init(&b, 2);
	buf_note(&b, "abc");
	tap_is_str(buf_cstr(&b), "..", "note: a tiny max holds part of the mark");
	buf_release(&b);
}

/* buf_append_u against printf's "%llu", and its cap: all or nothing. */
static void test_append_u(void)
{
	static const unsigned long long v[] = {0, 7, 10, 99, 100, 4096, 18446744073709551615ull};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct buf b;
		char want[32];
		buf_init(&b, 64);
		snprintf(want, sizeof want, "x%llu", v[i]);
		tap_ok(buf_appendc(&b, 'x') == 0 && buf_append_u(&b, v[i]) == 0 &&
			       strcmp(buf_cstr(&b), want) == 0,
		       "buf_append_u(%llu) is printf's", v[i]);
		buf_release(&b);
	}
	struct buf b;
	buf_init(&b, 3);
	tap_ok(buf_append_u(&b, 1234) < 0 && b.len == 0, "buf_append_u: past the cap, nothing");
	buf_release(&b);
}

/* buf_digits and buf_append_i against printf's "%lld", the extremes included; BUF_DIGITS_MAX
 * holds the longest. */
static void test_digits(void)
{
	static const long long v[] = {0, -1, 9, -10, 123456, LLONG_MAX, LLONG_MIN, LLONG_MIN + 1};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char want[32], got[BUF_DIGITS_MAX + 1];
		snprintf(want, sizeof want, "%lld", v[i]);
		size_t n = buf_digits(got, v[i]);
		got[n] = '\0';
		tap_ok(n <= BUF_DIGITS_MAX && strcmp(got, want) == 0, "buf_digits(%lld) is printf's", v[i]);
		struct buf b;
		buf_init(&b, strlen(want));
		tap_ok(buf_append_i(&b, v[i]) == 0 && strcmp(buf_cstr(&b), want) == 0,
		       "buf_append_i(%lld) fits a buffer of its length", v[i]);
		buf_release(&b);
	}
	char got[BUF_DIGITS_MAX];
	tap_is_int((long long)buf_digits_u(got, 18446744073709551615ull), BUF_DIGITS_MAX,
		   "buf_digits_u: 2^64 - 1 is BUF_DIGITS_MAX digits");
}

int main(void)
{
	test_append_u();
	test_digits();
	test_empty();
	test_append();
	test_exact_cap();
	test_zero_max();
	test_overflow();
	test_growth();
	test_consume_reset();
	test_detach();
	test_x();
	test_note();
	return tap_done();
}
