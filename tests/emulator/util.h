/*
 * util: the small helpers every emulator module uses.  Fatal errors and
 * warnings, allocation that stops the process when memory runs out, the byte
 * buffer, clocks and date strings, random ids, strict integer parsing and
 * short json-c wrappers.  Owns nothing but the random state; depends on no
 * other module.
 */
#ifndef EMU_UTIL_H
#define EMU_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <json-c/json.h>

/* Limits shared by several modules; each module keeps its own private ones. */
#define ID_MAX    63                 /* a marker id= (statistics name) */
#define ID_LEN    29                 /* "req_"/"msg_" + 24 + NUL */
#define WORDS_MAX 100000L
#define MS_MAX    3600000L
#define COUNT_MAX 1000000L
#define HUGE_MAX  (64L * 1024 * 1024)
#define JFLAGS    (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

void warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A test tool has no better answer to memory exhaustion than stopping loudly. */
void *xrealloc(void *p, size_t n);
void *xcalloc(size_t n, size_t size);
char *xstrndup(const char *s, size_t n);
void xclose(int fd);

/* Byte buffer: p[off..len) is pending; consumed bytes are reclaimed lazily. */
struct buf {
	char *p;
	size_t off, len, cap;
};

size_t buf_pending(const struct buf *b);
void buf_reserve(struct buf *b, size_t n);
void buf_add(struct buf *b, const void *d, size_t n);
void buf_str(struct buf *b, const char *s);
void buf_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *buf_cstr(struct buf *b); /* the pending bytes as a C string, never NULL */
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

int64_t mono_us(void);   /* monotonic microseconds, for deadlines */
double wall_now(void);   /* Unix time with microseconds, for /stats */
void http_date(char *d, size_t n, time_t t);
void rfc3339(char *d, size_t n, time_t t);

void rng_seed(void);
void make_id(char dst[ID_LEN], const char *prefix); /* prefix: 4 characters, "req_" or "msg_" */

bool parse_long(const char *s, size_t n, long lo, long hi, long *out);
bool is_space(char ch);

/* json-c wrappers: allocation failures stop the process, as with xrealloc. */
json_object *jobj(void);
void jset(json_object *o, const char *k, json_object *v); /* consumes v */
json_object *jget(json_object *o, const char *k);
json_object *jstr(const char *s);
json_object *jint(int64_t v);

#endif
