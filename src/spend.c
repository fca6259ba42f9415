#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memmem */
#endif

#include "spend.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anthropic.h"
#include "client_keys.h"
#include "hex.h"
#include "jscan.h"
#include "jx.h"
#include "store.h"

#define SERVER "*"           /* the whole server's counters */
#define WINDOW_KEEP 120      /* seconds a minute's counter is kept after its minute */
#define DOWN_LOG_INTERVAL 60 /* seconds between two "store down" lines */
#define KEY_HASH_DIGITS 12   /* hex digits naming an unlabelled key */

/* ---- who pays ---- */

/* Appends the n bytes of s to out (at *len), with the bytes that would break a counter's name
 * or a log line replaced. */
static void put_clean(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	for (size_t i = 0; i < n && *len + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		out[(*len)++] = c < 0x20 || c == 0x7f || c == '|' ? '_' : (char)c;
	}
	out[*len] = '\0';
}

static void make_who(char *who, size_t cap, const char *prefix, const char *s, size_t n)
{
	size_t len = 0, plen = strlen(prefix);
	put_clean(who, cap, &len, prefix, plen);
	if (plen + n < cap) {
		put_clean(who, cap, &len, s, n);
		return;
	}
	/* Too long to keep whole: a cut that two identities could share, plus a hash of the whole
	 * that they do not. */
	unsigned long long h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	put_clean(who, cap - 17, &len, s, n);
	snprintf(who + len, cap - len, "~%016llx", h);
}

static int is_address(const char *s, size_t n)
{
	char text[INET6_ADDRSTRLEN + 1];
	unsigned char a[16];
	if (n == 0 || n >= sizeof text)
		return 0;
	memcpy(text, s, n);
	text[n] = '\0';
	return inet_pton(strchr(text, ':') ? AF_INET6 : AF_INET, text, a) == 1;
}

/* X-Forwarded-For's right-most address that is not a trusted proxy's: each proxy appends the
 * address it saw, so everything left of the first untrusted one is the client's to invent. */
static int forwarded_client(const char *xff, const char *trusted, const char **p, size_t *n)
{
	size_t end = strlen(xff);
	while (end > 0) {
		size_t start = end;
		while (start > 0 && xff[start - 1] != ',')
			start--;
		const char *e = xff + start;
		size_t len = end - start;
		while (len && (*e == ' ' || *e == '\t'))
			e++, len--;
		while (len && (e[len - 1] == ' ' || e[len - 1] == '\t'))
			len--;
		if (!is_address(e, len))
			return 0;
		*p = e;
		*n = len;
		char text[INET6_ADDRSTRLEN + 1];
		memcpy(text, e, len);
		text[len] = '\0';
		if (!limits_addr_listed(trusted, text))
			return 1;
		end = start ? start - 1 : 0;
	}
	return *n > 0; /* every one a proxy: the left-most */
}

void spend_identity(const struct client_keys *keys, long key_index, const char *remote_user,
		    const char *remote_addr, const char *forwarded_for, const char *trusted_proxies,
		    char *who, size_t cap)
{
	if (keys && key_index >= 0 && (size_t)key_index < keys->n) {
		const char *label = keys->label[key_index];
		if (label) {
			make_who(who, cap, "key:", label, strlen(label));
			return;
		}
		char digits[2 * CLIENT_KEYS_DIGEST_SIZE + 1];
		for (size_t i = 0; i < CLIENT_KEYS_DIGEST_SIZE; i++)
			snprintf(digits + 2 * i, 3, "%02x", keys->hash[key_index][i]);
		make_who(who, cap, "key:", digits, KEY_HASH_DIGITS);
		return;
	}
	if (remote_user && *remote_user) {
		make_who(who, cap, "user:", remote_user, strlen(remote_user));
		return;
	}
	const char *addr = remote_addr ? remote_addr : "";
	const char *p = NULL;
	size_t n = 0;
	if (forwarded_for && *forwarded_for && *addr && limits_addr_listed(trusted_proxies, addr) &&
	    forwarded_client(forwarded_for, trusted_proxies, &p, &n)) {
		make_who(who, cap, "addr:", p, n);
		return;
	}
	make_who(who, cap, "addr:", *addr ? addr : "unknown", *addr ? strlen(addr) : 7);
}

/* ---- usage ---- */

static long usage_field(struct json_object *u, const char *name)
{
	struct json_object *v;
	if (!json_object_object_get_ex(u, name, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	int64_t n = json_object_get_int64(v);
	return n < 0 ? -1 : n > 1000000000000 ? 1000000000000 : (long)n;
}

/* A usage object's counts into acc: the ones it has replace what came before (message_delta's
 * are cumulative). Cache writes without the 5 m / 1 h split are 5 m ones (the API's default). */
static void take_usage(struct access_record *acc, struct json_object *u, int whole)
{
	long v;
	if (!u || !json_object_is_type(u, json_type_object))
		return;
	if (whole && (v = usage_field(u, "input_tokens")) >= 0)
		acc->input_tokens = v;
	if (whole && (v = usage_field(u, "output_tokens")) >= 0)
		acc->output_tokens = v;
	if ((v = usage_field(u, "cache_read_input_tokens")) >= 0)
		acc->cache_read_tokens = v;
	struct json_object *cc;
	if (json_object_object_get_ex(u, "cache_creation", &cc) &&
	    json_object_is_type(cc, json_type_object)) {
		if ((v = usage_field(cc, "ephemeral_5m_input_tokens")) >= 0)
			acc->cache_write_5m_tokens = v;
		if ((v = usage_field(cc, "ephemeral_1h_input_tokens")) >= 0)
			acc->cache_write_1h_tokens = v;
	} else if ((v = usage_field(u, "cache_creation_input_tokens")) >= 0) {
		acc->cache_write_5m_tokens = v;
		acc->cache_write_1h_tokens = 0;
	}
}

static void take_model(struct access_record *acc, struct json_object *m)
{
	if (m && json_object_is_type(m, json_type_string) && !acc->model[0]) {
		size_t len = 0;
		put_clean(acc->model, sizeof acc->model, &len, json_object_get_string(m),
			  (size_t)json_object_get_string_len(m));
	}
}

void spend_usage_event(struct access_record *acc, const struct anth_event *ev)
{
	struct json_object *msg = ev->root, *u = NULL, *m = NULL;
	if (!msg)
		return;
	if (ev->kind == ANTH_EV_MESSAGE_START) {
		if (!json_object_object_get_ex(msg, "message", &msg))
			return;
		json_object_object_get_ex(msg, "model", &m);
		take_model(acc, m);
	}
	if (json_object_object_get_ex(msg, "usage", &u))
		take_usage(acc, u, 0);
}

/* ---- usage in a whole answer, read without a parser ----
 *
 * The handler parses the answer right after, each its own way (a message, a completion, a
 * response), so the usage object is read here by a scan of its bytes instead: a json-c tokener
 * and tree for it had cost about a tenth of a sync request (bench/spend-cost). The scan takes
 * what json-c's tree would have given take_usage: integers only, the last of a repeated member,
 * and nothing at all from an object that does not close. */

/* What the scan keeps: the counts, and U_CC, whether cache_creation was an object. */
enum { U_IN, U_OUT, U_READ, U_WRITE, U_5M, U_1H, U_CC, U__COUNT };

struct scan {
	const char *p, *end;
};

static void scan_blanks(struct scan *s)
{
	while (s->p < s->end && jscan_space((unsigned char)*s->p))
		s->p++;
}

/* A string at s->p (its quote): its bytes between the quotes in *k, *n. Returns 0, -1 if it does
 * not end. */
static int scan_string(struct scan *s, const char **k, size_t *n)
{
	const char *q = ++s->p;
	while (q < s->end && *q != '"')
		q += *q == '\\' ? 2 : 1;
	if (q >= s->end)
		return -1;
	*k = s->p;
	*n = (size_t)(q - s->p);
	s->p = q + 1;
	return 0;
}

/* A scalar other than a string: a number, true, false or null. *v is a non-negative integer's
 * value (capped as usage_field caps it), else -1. Returns 0, -1 when there is none. */
static int scan_scalar(struct scan *s, long *v)
{
	const char *b = s->p;
	while (s->p < s->end && ((*s->p >= '0' && *s->p <= '9') || (*s->p >= 'a' && *s->p <= 'z') ||
				 *s->p == '-' || *s->p == '+' || *s->p == '.' || *s->p == 'E'))
		s->p++;
	if (s->p == b)
		return -1;
	long n = 0;
	const char *q = b;
	for (; q < s->p && *q >= '0' && *q <= '9'; q++)
		n = n > 1000000000000 / 10 ? 1000000000000 : n * 10 + (*q - '0');
	*v = q == s->p && q > b ? (n > 1000000000000 ? 1000000000000 : n) : -1;
	return 0;
}

static int scan_object(struct scan *s, long *u, int depth, int in_cache_creation);

/* Any value, skipped; an object's integers named as usage's are kept only where they belong. */
static int scan_value(struct scan *s, long *v, int depth)
{
	const char *k;
	size_t n;
	*v = -1;
	if (s->p >= s->end || depth > JSCAN_DEPTH)
		return -1;
	if (*s->p == '"')
		return scan_string(s, &k, &n);
	if (*s->p != '{' && *s->p != '[')
		return scan_scalar(s, v);
	if (*s->p == '{')
		return scan_object(s, NULL, depth + 1, 0);
	s->p++;
	scan_blanks(s);
	if (s->p < s->end && *s->p == ']')
		return s->p++, 0;
	for (;;) {
		long ignored;
		scan_blanks(s);
		if (scan_value(s, &ignored, depth + 1) < 0)
			return -1;
		scan_blanks(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p++ == ']')
			return 0;
		if (s->p[-1] != ',')
			return -1;
	}
}

static int key_is(const char *k, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* The object at s->p (its brace). u NULL: skipped. Else the usage object's integers (with
 * in_cache_creation, cache_creation's) go to u. Returns 0, -1 when it does not close. */
static int scan_object(struct scan *s, long *u, int depth, int in_cache_creation)
{
	static const char *const top[] = {
		[U_IN] = "input_tokens", [U_OUT] = "output_tokens",
		[U_READ] = "cache_read_input_tokens", [U_WRITE] = "cache_creation_input_tokens"};
	static const char *const cc[] = {[U_5M] = "ephemeral_5m_input_tokens",
					 [U_1H] = "ephemeral_1h_input_tokens"};
	s->p++;
	scan_blanks(s);
	if (s->p < s->end && *s->p == '}')
		return s->p++, 0;
	for (;;) {
		const char *k;
		size_t n;
		long v;
		scan_blanks(s);
		if (s->p >= s->end || *s->p != '"' || scan_string(s, &k, &n) < 0)
			return -1;
		scan_blanks(s);
		if (s->p >= s->end || *s->p++ != ':')
			return -1;
		scan_blanks(s);
		if (u && !in_cache_creation && s->p < s->end && *s->p == '{' &&
		    key_is(k, n, "cache_creation")) {
			u[U_5M] = u[U_1H] = -1; /* a repeated member: the last one counts */
			u[U_CC] = 1;
			if (scan_object(s, u, depth + 1, 1) < 0)
				return -1;
		} else {
			if (scan_value(s, &v, depth) < 0)
				return -1;
			if (u && !in_cache_creation && key_is(k, n, "cache_creation"))
				u[U_CC] = 0; /* not an object */
			for (int i = in_cache_creation ? U_5M : U_IN;
			     u && i <= (in_cache_creation ? U_1H : U_WRITE); i++)
				if (key_is(k, n, in_cache_creation ? cc[i] : top[i]))
					u[i] = v;
		}
		scan_blanks(s);
		if (s->p >= s->end)
			return -1;
		if (*s->p++ == '}')
			return 0;
		if (s->p[-1] != ',')
			return -1;
	}
}

/* take_usage's rules, for what the scan found. */
static void take_scanned(struct access_record *acc, const long *u)
{
	if (u[U_IN] >= 0)
		acc->input_tokens = u[U_IN];
	if (u[U_OUT] >= 0)
		acc->output_tokens = u[U_OUT];
	if (u[U_READ] >= 0)
		acc->cache_read_tokens = u[U_READ];
	if (u[U_CC]) {
		if (u[U_5M] >= 0)
			acc->cache_write_5m_tokens = u[U_5M];
		if (u[U_1H] >= 0)
			acc->cache_write_1h_tokens = u[U_1H];
	} else if (u[U_WRITE] >= 0) {
		acc->cache_write_5m_tokens = u[U_WRITE];
		acc->cache_write_1h_tokens = 0;
	}
}

/* The last "usage" member of the text: the API puts it after the content, and a "usage" inside
 * the content (a tool's input) comes before it. */
void spend_usage_json(struct access_record *acc, const char *body, size_t len)
{
	static const char key[] = "\"usage\"";
	const char *at = NULL;
	for (const char *p = body; (p = memmem(p, len - (size_t)(p - body), key, 7)) != NULL; p += 7)
		if (p == body || p[-1] != '\\')
			at = p;
	if (!at)
		return;
	struct scan s = {at + 7, body + len};
	long u[U__COUNT] = {-1, -1, -1, -1, -1, -1, 0};
	scan_blanks(&s);
	if (s.p < s.end && *s.p++ == ':') {
		scan_blanks(&s);
		if (s.p < s.end && *s.p == '{' && scan_object(&s, u, 1, 0) == 0)
			take_scanned(acc, u);
	}
	const char *m = memmem(body, len, "\"model\":\"", 9);
	if (m && !acc->model[0]) {
		m += 9;
		const char *q = memchr(m, '"', len - (size_t)(m - body));
		size_t n = 0;
		if (q)
			put_clean(acc->model, sizeof acc->model, &n, m, (size_t)(q - m));
	}
}

void spend_estimate_output(struct access_record *acc, size_t text_bytes, unsigned deltas)
{
	/* About 4 bytes of English text per token; at least one per delta, which is a token or
	 * more. */
	long est = (long)((text_bytes + 3) / 4);
	if (est < (long)deltas)
		est = (long)deltas;
	if (est < 1)
		est = 1;
	if (acc->output_tokens < est)
		acc->output_tokens = est;
	acc->output_tokens_estimated = 1;
}

/* ---- the store ---- */

/* What to do when the store cannot answer: allow (logged once a minute, with how many went
 * through uncounted) or deny. Returns 0 to go on. */
static int store_trouble(struct request *rq, enum store_result rc)
{
	static time_t last_log;
	static unsigned long uncounted;
	const struct config *cfg = rq->srv->cfg;
	time_t now = time(NULL);
	uncounted++;
	if (now - last_log >= DOWN_LOG_INTERVAL) {
		log_error("limits store %s (%s): %lu request(s) %s since the last report",
			  rc == STORE_FULL ? "full" : "unreachable", store_backend(rq->srv->store),
			  uncounted, cfg->limits_store_down == STORE_DOWN_DENY && rc == STORE_DOWN
				  ? "refused" : "let through uncounted");
		last_log = now;
		uncounted = 0;
	}
	/* A full table is the operator's sizing, not an outage: it never refuses. */
	if (rc == STORE_DOWN && cfg->limits_store_down == STORE_DOWN_DENY) {
		response_add_header(&rq->resp, "Retry-After", "1");
		request_fail(rq, ERR_OVERLOADED, "The limits store cannot be reached; retry later");
		return -1;
	}
	return 0;
}

/* Appends s to the name of len bytes, cut to fit cap; returns the new length. Names are built
 * by hand, not by snprintf: a request builds some twenty, and the formatting was most of what
 * accounting cost a request (bench/spend-cost). */
static size_t name_put(char *name, size_t cap, size_t len, const char *s)
{
	size_t n = strlen(s);
	if (n > cap - 1 - len)
		n = cap - 1 - len;
	memcpy(name + len, s, n);
	name[len + n] = '\0';
	return len + n;
}

/* ---- refusals ---- */

long spend_retry_after(enum limits_kind k, time_t now)
{
	if (k == LIMITS_CONCURRENT)
		return 1;
	long s = (long)(limits_period_end(limits_period_of(k), now) - now);
	return s < 1 ? 1 : s;
}

static void refusal_message(struct buf *m, const char *who, enum limits_kind k, long long limit,
			    time_t now, long wait)
{
	const char *whom = strcmp(who, SERVER) == 0 ? "this server" : who;
	char usd[32], when[32];
	time_t end = limits_period_end(limits_period_of(k), now);
	struct tm tm;
	gmtime_r(&end, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	switch (k) {
	case LIMITS_RPM:
		buf_note(m, "Rate limit reached for %s: %lld requests per minute; it resets in "
			      "%ld s", whom, limit, wait);
		break;
	case LIMITS_TPM:
		buf_note(m, "Token rate limit reached for %s: %lld input and output tokens per "
			      "minute; it resets in %ld s", whom, limit, wait);
		break;
	case LIMITS_CONCURRENT:
		buf_note(m, "Concurrency limit reached for %s: %lld requests at once; retry when "
			      "one has finished", whom, limit);
		break;
	default:
		limits_format_usd(limit, usd, sizeof usd);
		buf_note(m, "The %s budget of $%s for %s is spent; it resets at %s (in %ld s)",
			   k == LIMITS_USD_DAY ? "daily" : "monthly", usd, whom, when, wait);
		break;
	}
}

/* 429 in the route's dialect, never retried by an SDK: waiting is what helps. */
static void refuse(struct request *rq, const char *who, enum limits_kind k, long long limit)
{
	time_t now = time(NULL);
	long wait = spend_retry_after(k, now);
	struct buf m;
	char v[24];
	buf_init(&m, 1024);
	refusal_message(&m, who, k, limit, now, wait);
	log_info("refused: %s", buf_cstr(&m));
	snprintf(v, sizeof v, "%ld", wait);
	response_add_header(&rq->resp, "Retry-After", v);
	response_add_header(&rq->resp, "x-should-retry", "false");
	rq->acc.refused = limits_name(k);
	int budget = k == LIMITS_USD_DAY || k == LIMITS_USD_MONTH;
	if (rq->resp.dialect == DIALECT_OPENAI) {
		/* OpenAI's shapes: a rate limit is type "requests" or "tokens" with code
		 * rate_limit_exceeded; a spent budget is insufficient_quota. */
		struct json_object *body = json_object_new_object(), *e = json_object_new_object();
		json_object_object_add(e, "message", json_object_new_string(buf_cstr(&m)));
		json_object_object_add(e, "type", json_object_new_string(
			budget ? "insufficient_quota" : k == LIMITS_TPM ? "tokens" : "requests"));
		json_object_object_add(e, "param", NULL);
		json_object_object_add(e, "code", json_object_new_string(
			budget ? "insufficient_quota" : "rate_limit_exceeded"));
		json_object_object_add(body, "error", e);
		request_refuse(rq, ERR_RATE_LIMIT, body);
		json_object_put(body);
	} else {
		request_fail(rq, ERR_RATE_LIMIT, buf_cstr(&m));
	}
	buf_release(&m);
}

/* ---- the batches ----
 *
 * A request talks to the store twice: one batch checks every limit of both scopes, one settles
 * (gives the places back and adds what the request used). The check is one call of the store,
 * one round trip with Redis; the settle is held back to go with the metrics' batch. */

/* The most operations of one batch: the checks are five per scope, the settling two releases,
 * three adds per scope and the usage report's six. */
#define BATCH_MAX 16

struct batch {
	size_t n;
	struct store_op op[BATCH_MAX];
	enum limits_kind kind[BATCH_MAX]; /* the checks: the limit each enforces */
	int server[BATCH_MAX];            /* and whose: the identity's (0), the server's (1) */
	char name[BATCH_MAX][STORE_NAME_MAX];
};

/* The next operation, on the counter (kind, who). The sizes above hold by construction. */
_Static_assert(SPEND_WHO_MAX + 2 <= STORE_NAME_MAX, "a counter's name holds any identity");
static struct store_op *batch_push(struct batch *b, enum store_op_kind op, char kind,
				   const char *who)
{
	if (b->n == BATCH_MAX)
		abort();
	struct store_op *o = &b->op[b->n];
	/* "k|who", copied whole: who is an identity (under SPEND_WHO_MAX) or SERVER, so it fits;
	 * a request builds some twenty of these names, and each by name_put cost twice this. */
	char *name = b->name[b->n];
	name[0] = kind;
	name[1] = '|';
	memcpy(name + 2, who, strlen(who) + 1);
	o->kind = op;
	o->name = b->name[b->n++];
	return o;
}

/* One scope's (an identity's or the server's) checks, in the order they refuse: budgets, the
 * token window, then this request's place in the request window and among the concurrent
 * ones. */
static void push_checks(struct batch *b, int server, const char *who,
			const struct limits_set *lim, const struct limits_when *w)
{
	static const struct {
		enum limits_kind k;
		char counter;
		enum store_op_kind op;
		enum limits_period period; /* limits_period_of(k), not asked per request */
	} checks[] = {{LIMITS_USD_DAY, 'd', STORE_OP_GET, LIMITS_DAY},
		      {LIMITS_USD_MONTH, 'm', STORE_OP_GET, LIMITS_MONTH},
		      {LIMITS_TPM, 't', STORE_OP_GET, LIMITS_MINUTE},
		      {LIMITS_RPM, 'r', STORE_OP_ADD_CAPPED, LIMITS_MINUTE},
		      {LIMITS_CONCURRENT, 'c', STORE_OP_ACQUIRE, LIMITS_MINUTE}};
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		long long limit = lim->v[checks[i].k];
		if (limit < 0)
			continue;
		b->kind[b->n] = checks[i].k;
		b->server[b->n] = server;
		struct store_op *o = batch_push(b, checks[i].op, checks[i].counter, who);
		o->bucket = w->bucket[checks[i].period];
		o->delta = 1;
		o->limit = checks[i].op == STORE_OP_ACQUIRE && limit > 100000 ? 100000 : limit;
		o->expires_at = w->end[LIMITS_MINUTE] + WINDOW_KEEP;
	}
}

/* Runs b; a refusal is answered. Returns 0 to go on, -1 when the request is refused. */
static int check_all(struct request *rq, struct spend *sp, struct batch *b)
{
	const struct config *cfg = rq->srv->cfg;
	size_t refused;
	enum store_result rc = store_batch(rq->srv->store, b->op, b->n, &refused);
	if (rc != STORE_OK && store_trouble(rq, rc) < 0)
		return -1; /* the store is down: it holds no place of ours */
	if (refused < b->n) {
		/* The store gave back the places the batch took before the refusal. */
		int server = b->server[refused];
		refuse(rq, server ? SERVER : sp->who, b->kind[refused],
		       (server ? &cfg->limits.server : &sp->lim)->v[b->kind[refused]]);
		return -1;
	}
	for (size_t i = 0; i < b->n; i++)
		if (b->op[i].kind == STORE_OP_ACQUIRE && b->op[i].value > 0)
			*(b->server[i] ? &sp->held_server : &sp->held_who) = 1;
	return 0;
}

void spend_identify(struct request *rq, struct spend *sp, long key_index)
{
	const struct config *cfg = rq->srv->cfg;
	memset(sp, 0, sizeof *sp);
	spend_identity(&cfg->client_keys, key_index,
		       io_param(rq->io, "REMOTE_USER"), io_param(rq->io, "REMOTE_ADDR"),
		       io_param(rq->io, "HTTP_X_FORWARDED_FOR"), cfg->trusted_proxies, sp->who,
		       sizeof sp->who);
	rq->acc.who = sp->who;
}

int spend_begin(struct request *rq, struct spend *sp, long key_index)
{
	const struct config *cfg = rq->srv->cfg;
	spend_identify(rq, sp, key_index);
	rq->acc.cost_micro_usd = -1;
	sp->checked = 1;
	if (!rq->srv->store)
		return 0;
	limits_for(&cfg->limits, sp->who, &sp->lim);
	struct limits_when w;
	struct batch b;
	limits_when(time(NULL), &w);
	b.n = 0;
	push_checks(&b, 0, sp->who, &sp->lim, &w);
	push_checks(&b, 1, SERVER, &cfg->limits.server, &w);
	if (check_all(rq, sp, &b) < 0) {
		sp->checked = 0;
		return -1;
	}
	return 0;
}

/* ---- accounting ----
 *
 * A request adds only to the counters something reads: the usage report's six, and a limit's
 * counter only where that limit is set for the scope (so a budget set by a reload counts from
 * then). The periods are computed once; names are built once and their kind byte changed. */

static void push_add(struct batch *b, char kind, const char *who, const struct limits_when *w,
		     enum limits_period p, long long delta, long long keep)
{
	if (!delta)
		return;
	struct store_op *o = batch_push(b, STORE_OP_ADD, kind, who);
	o->bucket = w->bucket[p];
	o->delta = delta;
	o->expires_at = w->end[p] + keep;
}

/* The usage report's counters: per day, identity and model. */
static void push_history(struct batch *b, const struct request *rq, const struct spend *sp,
			 const struct limits_when *w, long long cost)
{
	const struct access_record *a = &rq->acc;
	const long long keep = rq->srv->cfg->usage_days * 86400LL;
	const struct {
		char kind;
		long long v;
	} h[] = {
		{'$', cost},
		{'n', 1},
		{'i', a->input_tokens},
		{'o', a->output_tokens},
		{'w', a->cache_write_5m_tokens + a->cache_write_1h_tokens},
		{'r', a->cache_read_tokens},
	};
	/* The identity is at most SPEND_WHO_MAX - 1 bytes: what a model id cannot keep is cut. The
	 * name is built once and copied, its kind byte changed. */
	char name[STORE_NAME_MAX];
	size_t len = name_put(name, sizeof name, 0, "u|$|");
	len = name_put(name, sizeof name, len, sp->who);
	len = name_put(name, sizeof name, len, "|");
	len = name_put(name, sizeof name, len, a->model[0] ? a->model : "unknown");
	for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
		if (!h[i].v)
			continue;
		if (b->n == BATCH_MAX)
			abort();
		struct store_op *o = &b->op[b->n];
		memcpy(b->name[b->n], name, len + 1);
		b->name[b->n][2] = h[i].kind;
		o->kind = STORE_OP_ADD;
		o->name = b->name[b->n++];
		o->bucket = w->bucket[LIMITS_DAY];
		o->delta = h[i].v;
		o->expires_at = w->end[LIMITS_DAY] + keep;
	}
}

/* The limits' counters of both scopes: a limit's counter only where that limit is set. */
static void push_limits(struct batch *b, const struct request *rq, const struct spend *sp,
			const struct limits_when *w, long long cost)
{
	const struct access_record *a = &rq->acc;
	const struct config *cfg = rq->srv->cfg;
	long long tokens = (a->input_tokens > 0 ? a->input_tokens : 0) +
			   (a->output_tokens > 0 ? a->output_tokens : 0);
	for (int i = 0; i < 2; i++) {
		const struct limits_set *lim = i ? &cfg->limits.server : &sp->lim;
		const char *who = i ? SERVER : sp->who;
		if (lim->v[LIMITS_TPM] >= 0)
			push_add(b, 't', who, w, LIMITS_MINUTE, tokens, WINDOW_KEEP);
		if (lim->v[LIMITS_USD_DAY] >= 0)
			push_add(b, 'd', who, w, LIMITS_DAY, cost, 86400);
		if (lim->v[LIMITS_USD_MONTH] >= 0)
			push_add(b, 'm', who, w, LIMITS_MONTH, cost, 86400);
	}
}

/* The cost at the catalogue's prices, in whole micro-dollars rounded up; -1 when the catalogue
 * does not know the model. */
static long long cost_of(const struct request *rq)
{
	const struct access_record *a = &rq->acc;
	const char *model = a->model[0] ? a->model : rq->srv->cfg->model;
	const struct catalogue_model *m = config_model_info(rq->srv->cfg, model, strlen(model));
	if (!m)
		return -1;
	struct catalogue_usage u = {
		.input = (unsigned long long)(a->input_tokens > 0 ? a->input_tokens : 0),
		.output = (unsigned long long)(a->output_tokens > 0 ? a->output_tokens : 0),
		.cache_write_5m = (unsigned long long)a->cache_write_5m_tokens,
		.cache_write_1h = (unsigned long long)a->cache_write_1h_tokens,
		.cache_read = (unsigned long long)a->cache_read_tokens,
	};
	struct catalogue_cost c;
	if (catalogue_cost(m, &u, &c) < 0)
		return -1;
	unsigned long long micro = catalogue_cost_micro_ceil(&c);
	return micro > (unsigned long long)LIMITS_MAX_USD * 1000000 ? LIMITS_MAX_USD * 1000000
								     : (long long)micro;
}

/* One batch: the places given back, then what the request used added (nothing when its
 * handler refused it before the upstream). */
void spend_end(struct request *rq, struct spend *sp)
{
	if (!sp->checked)
		return;
	struct access_record *a = &rq->acc;
	struct batch b;
	b.n = 0;
	if (sp->held_who)
		batch_push(&b, STORE_OP_RELEASE, 'c', sp->who);
	if (sp->held_server)
		batch_push(&b, STORE_OP_RELEASE, 'c', SERVER);
	sp->held_who = sp->held_server = 0;
	if (a->attempts != 0)
		a->cost_micro_usd = cost_of(rq);
	if (!rq->srv->store)
		return;
	if (a->attempts != 0) {
		struct limits_when w;
		limits_when(time(NULL), &w);
		long long cost = a->cost_micro_usd > 0 ? a->cost_micro_usd : 0;
		push_limits(&b, rq, sp, &w, cost);
		push_history(&b, rq, sp, &w, cost);
	}
	/* Held back with Redis, to go in the metrics' call or request_finish's flush: one round
	 * trip at the end of a request, and still before its access line. */
	enum store_result rc = b.n ? store_batch_later(rq->srv->store, b.op, b.n) : STORE_OK;
	if (rc != STORE_OK)
		(void)store_trouble(rq, rc);
}
