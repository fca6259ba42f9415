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

#include "buf.h"

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

/* xrealloc, xcalloc, xstrndup, xstrdup come from the gateway's src/buf.c, linked in with
 * src/catalogue.c (which uses them): they abort when memory runs out, which suits a test tool. */
void xclose(int fd);

/* Byte buffer: p[off..len) is pending; consumed bytes are reclaimed lazily. */
struct obuf {
	char *p;
	size_t off, len, cap;
};

size_t obuf_pending(const struct obuf *b);
void obuf_reserve(struct obuf *b, size_t n);
void obuf_add(struct obuf *b, const void *d, size_t n);
void obuf_str(struct obuf *b, const char *s);
void obuf_fmt(struct obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *obuf_cstr(struct obuf *b); /* the pending bytes as a C string, never NULL */
void obuf_consume(struct obuf *b, size_t n);
void obuf_free(struct obuf *b);

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
