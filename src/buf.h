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
/* Returns 0, or -1 (and appends nothing) when the result would exceed b->max. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_appends(struct buf *b, const char *s);
int buf_appendc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drops the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Empties the buffer but keeps its memory, for reuse across requests. */
void buf_reset(struct buf *b);
/* A NUL-terminated view of the content, valid until the next change ("" when empty). */
const char *buf_cstr(const struct buf *b);
/* Hands the content to the caller (caller frees; never NULL) and leaves b empty. */
char *buf_detach(struct buf *b);
void buf_release(struct buf *b);

/* Allocation failure aborts: hard caps keep memory bounded, so running out means the host is. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
