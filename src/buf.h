/* buf: a growable byte buffer with a mandatory maximum, and the xmalloc family.
 *
 * Every buffer fed from outside the process (request bodies, upstream responses, SSE events) is a
 * struct buf whose max is a named limit; going past it is an error the caller maps to 413 or 502,
 * never silent growth or truncation. data is always NUL-terminated (data[len] == 0) once anything
 * was appended, so text can be handed to C string functions without a copy. */
#ifndef LLM_BUF_H
#define LLM_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* bytes of content allowed, not counting the terminating NUL */
};

void buf_init(struct buf *b, size_t max);
/* Returns 0, or -1 (and appends nothing) when the result would exceed b->max. The result must be
 * looked at (GCC warns on a discard, even through a (void) cast): a full buffer is an answer to
 * give, or, where the size holds by construction, BUF_MUST's abort. */
#define BUF_RESULT __attribute__((warn_unused_result))
BUF_RESULT int buf_append(struct buf *b, const void *p, size_t n);
BUF_RESULT int buf_appends(struct buf *b, const char *s);
BUF_RESULT int buf_appendc(struct buf *b, char c);
/* v in decimal: what buf_printf's "%llu" / "%lld" give, without their cost on a per-request path. */
BUF_RESULT int buf_append_u(struct buf *b, unsigned long long v);
BUF_RESULT int buf_append_i(struct buf *b, long long v);
/* The same into a plain array (no NUL): returns how many bytes were written, at most
 * BUF_DIGITS_MAX (18446744073709551615 and -9223372036854775808 have 20). */
#define BUF_DIGITS_MAX 20
size_t buf_digits_u(char *out, unsigned long long v);
size_t buf_digits(char *out, long long v);
BUF_RESULT int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
BUF_RESULT int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* For the few writes that cannot fail by construction (text of a known bound into a buffer whose
 * max is above it), each with a comment saying why: an overflow there is a bug in that bound, so
 * it aborts naming the place instead of sending a cut or empty text. rc is a result of the calls
 * above, or several joined with || (they run in order and stop at the first failure): nonzero
 * aborts. Never for text whose size comes from outside: that is an answer to give. */
#define BUF_MUST(rc) buf_must((rc) != 0, __FILE__, __LINE__)
void buf_must(int failed, const char *file, int line);
/* A message for a person (an error the caller reports): as much of it as fits, and when it does
 * not fit whole, as much as fits of what was there before plus "...". Never fails: a cut message
 * still says what went wrong first, which is the part that matters. */
void buf_note(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Empties the buffer but keeps its memory, for reuse across requests. */
void buf_reset(struct buf *b);
/* A NUL-terminated view of the content, valid until the next change ("" when empty). */
BUF_RESULT const char *buf_cstr(const struct buf *b);
/* Hands the content to the caller (caller frees; never NULL) and leaves b empty. */
BUF_RESULT char *buf_detach(struct buf *b);
void buf_release(struct buf *b);

/* Allocation failure aborts: hard caps keep memory bounded, so running out means the host is. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
