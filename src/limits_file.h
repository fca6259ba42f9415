/* limits_file: the limits file, and the windows and budget periods limits are counted in (pure).
 *
 * The file (limits_file) has one rule per line: a pattern, then name=value pairs.
 *
 *   *                 rpm=20 tpm=40000 concurrent=2 usd_per_day=0.50   # every identity
 *   server            usd_per_day=20 usd_per_month=300                 # the whole server
 *   key:alice         usd_per_month=100                                # one client key's label
 *   key:team-*        usd_per_month=20                                 # labels starting team-
 *   addr:10.0.0.0/8   rpm=none                                         # an address range
 *
 * Limits: rpm (requests per minute), tpm (input + output tokens per minute), concurrent
 * (requests at once), usd_per_day and usd_per_month (budgets in dollars, to the micro-dollar);
 * "none" lifts a default. An identity gets the "*" line's limits, replaced name by name by the
 * first other line (in file order) whose pattern matches it: exactly, by a prefix ending in '*',
 * or for addr: by a CIDR range (IPv4 or IPv6). Minutes, days and months are UTC: a minute is a
 * fixed window, a day and a month are calendar periods. */
#ifndef LLM_LIMITS_FILE_H
#define LLM_LIMITS_FILE_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

#define LIMITS_FILE_MAX (1024 * 1024) /* bytes in limits_file */
#define LIMITS_NONE (-1LL)            /* no limit */
#define LIMITS_UNSET (-2LL)           /* a rule that does not name this limit */
#define LIMITS_MAX_USD 1000000000LL   /* a billion dollars: more is a typo */

enum limits_kind {
	LIMITS_RPM = 0,
	LIMITS_TPM,
	LIMITS_CONCURRENT,
	LIMITS_USD_DAY,   /* micro-dollars */
	LIMITS_USD_MONTH, /* micro-dollars */
	LIMITS__COUNT
};

struct limits_set {
	long long v[LIMITS__COUNT]; /* LIMITS_NONE, or the limit (USD in micro-dollars) */
};

struct limits_rule; /* limits.c's */

struct limits {
	struct limits_rule *rules;
	size_t n;
	struct limits_set def;    /* the "*" line, LIMITS_NONE where it says nothing */
	struct limits_set server; /* the "server" line */
};

/* Parses the file's text (len bytes). Returns 0 (l owns the rules: limits_release), or -1 with
 * "line N: why" appended to err and l empty. */
int limits_parse(struct limits *l, const char *text, size_t len, struct buf *err);
void limits_release(struct limits *l);
/* No limits at all (no limits_file). */
void limits_empty(struct limits *l);
/* 1 when some limit is set anywhere (the checks can be skipped otherwise). */
int limits_any(const struct limits *l);

/* The limits of an identity ("key:alice", "user:bob", "addr:192.0.2.1"). */
void limits_for(const struct limits *l, const char *who, struct limits_set *out);

/* The file's name of a limit ("rpm", "usd_per_day"). */
const char *limits_name(enum limits_kind k);

/* Periods: the bucket of a time (the minute since the epoch, YYYYMMDD, YYYYMM, all UTC), and the
 * first second of the next bucket. */
enum limits_period { LIMITS_MINUTE = 0, LIMITS_DAY, LIMITS_MONTH };
long long limits_bucket(enum limits_period p, time_t now);
time_t limits_period_end(enum limits_period p, time_t now);
/* Every period's bucket and end at now, from one gmtime_r: what a request needs once. */
struct limits_when {
	long long bucket[3]; /* by enum limits_period */
	long long end[3];
};
void limits_when(time_t now, struct limits_when *w);
/* The period a limit is counted in; concurrency has none (LIMITS_MINUTE is returned). */
enum limits_period limits_period_of(enum limits_kind k);

/* 1 when addr (text) is one of list's addresses or ranges (blank- or comma-separated,
 * "192.0.2.1 10.0.0.0/8 ::1"), else 0. */
int limits_addr_listed(const char *list, const char *addr);
/* NULL when every entry of list is an address or a range, else why not. */
const char *limits_check_addr_list(const char *list);

/* Parses "12.345678" dollars into micro-dollars (at most 6 decimals, at most LIMITS_MAX_USD).
 * Returns 0 or -1. */
int limits_parse_usd(const char *s, size_t n, long long *micro);
/* Formats micro-dollars as dollars with as many decimals as needed (at least 2). */
void limits_format_usd(long long micro, char *out, size_t cap);

#endif
