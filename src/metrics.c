#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* MAP_ANONYMOUS under -std=c11 */
#endif

#include "metrics.h"

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "limits_file.h"
#include "pool.h"
#include "route.h"
#include "self.h"
#include "spend.h"
#include "store.h"
#include "upstream.h"

#define OTHER "other"
#define KNOWN_CACHE 8        /* admitted identities a worker remembers, to skip the store read */
#define ROUTE_MAX 64         /* bytes of a route in a worker's current-request record */
#define LOOPBACK "127.0.0.0/8 ::1"

/* ---- the families ---- */

struct family {
	const char *key;  /* the store name's second field */
	const char *name; /* the exposed name */
	const char *help;
	const char *labels[3];
	double scale; /* stored value / scale = exposed value */
};

static const struct family counters[] = {
	{"req", "llm_fcgi_requests_total", "Requests answered, by route and status (499: the client "
	 "left).", {"route", "status"}, 1},
	{"aborted", "llm_fcgi_requests_aborted_total", "Requests whose worker died before answering "
	 "(SIGKILL, OOM); counted here only.", {NULL}, 1},
	{"up", "llm_fcgi_upstream_attempts_total", "Upstream attempts by outcome: ok, retried, 4xx, "
	 "5xx, timeout, connect_error, broken, cancelled.", {"outcome"}, 1},
	{"cancel", "llm_fcgi_client_cancellations_total", "Requests whose client left before the "
	 "answer ended.", {NULL}, 1},
	{"cut", "llm_fcgi_streams_cut_total", "Committed streams that ended without their last event "
	 "(the upstream cut it, sent an error, or went silent).", {NULL}, 1},
	{"tok", "llm_fcgi_tokens_total", "Tokens by model, identity (bounded: the rest are other) and "
	 "type (input, output, cache_write, cache_read).", {"model", "identity", "type"}, 1},
	{"cost", "llm_fcgi_cost_usd_total", "Cost at the catalogue's prices, US dollars, by model and "
	 "identity.", {"model", "identity"}, 1e6},
	{"refused", "llm_fcgi_refusals_total", "Requests refused by a limit or a budget, by limit.",
	 {"limit"}, 1},
	{"slow", "llm_fcgi_slow_requests_total", "Requests that took slow_request seconds or more.",
	 {NULL}, 1},
	{"starts", "llm_fcgi_worker_starts_total", "Prefork workers started (the first ones, "
	 "replacements and reloads).", {NULL}, 1},
};
#define N_COUNTERS (sizeof counters / sizeof counters[0])

enum histo_id { H_TTFT, H_FIRST_BYTE, H_DELTA, H__COUNT };

static const double ttft_le[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
/* Gateway-added time is a copy and a write: microseconds, unless the web server pushes back. */
static const double gateway_le[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
				    0.01, 0.025, 0.1};
#define MAX_LE 10

static const struct histo {
	const char *key, *name, *help;
	const double *le;
	size_t n;
} histos[H__COUNT] = {
	[H_TTFT] = {"ttft", "llm_fcgi_time_to_first_token_seconds",
		    "From the request's start to its first text delta.", ttft_le, 10},
	[H_FIRST_BYTE] = {"gwfb", "llm_fcgi_gateway_first_byte_seconds",
			  "Gateway-added: from the upstream's answer (a stream's headers, a whole "
			  "answer's end) to its first byte to the web server.", gateway_le, 10},
	[H_DELTA] = {"gwdelta", "llm_fcgi_gateway_delta_flush_seconds",
		     "Gateway-added: from an upstream delta's arrival to its flush to the web "
		     "server.", gateway_le, 10},
};

/* ---- this process's state ---- */

/* A worker's current request, in the page shared by the pool; written by that worker only. */
struct current {
	atomic_int pid; /* the worker inside a request; 0 = none */
	atomic_llong started_ms;
	char route[ROUTE_MAX];
	char who[SPEND_WHO_MAX];
};

struct page {
	long long start_ms;
	atomic_uint max_busy;
	struct current cur[POOL_MAX_SLOTS];
};

static struct page *page;      /* mapped by the parent before the fork; NULL outside a pool */
static long slot_index = -1;   /* this worker's slot and record */

/* One request's notes, kept here until metrics_end adds them to the store. */
static struct {
	double upstream_at; /* when the upstream answered; 0 = not (yet) */
	double body_at;     /* when upstream bytes last arrived */
	double first_byte;  /* gateway-added seconds to the first byte; < 0 = none */
	unsigned delta[MAX_LE + 1];
	long long delta_us;
	unsigned deltas;
	int attempts;
	const char *outcome;
	int cut;
} note;

static char known[KNOWN_CACHE][SPEND_WHO_MAX];
static unsigned known_next;

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void metrics_init(void)
{
	void *p = mmap(NULL, sizeof(struct page), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	if (p == MAP_FAILED) {
		log_warn("metrics: no page for the workers' current requests; /status lists none");
		return;
	}
	page = p;
	page->start_ms = wall_ms();
}

static void add(struct store *st, const char *name, long long delta)
{
	long long after;
	if (st && delta)
		(void)store_add(st, name, 0, delta, 0, &after);
}

/* A killed worker's record: counted once, by whoever clears it first. */
static void sweep_one(struct store *st, struct current *c, int alive_pid)
{
	int pid = atomic_load(&c->pid);
	if (pid && pid != alive_pid && atomic_compare_exchange_strong(&c->pid, &pid, 0))
		add(st, "M|aborted", 1);
}

static void sweep(struct server *srv)
{
	if (!page || !srv->shared)
		return;
	unsigned n = atomic_load(&srv->shared->nslots);
	for (unsigned i = 0; i < n && i < POOL_MAX_SLOTS; i++)
		sweep_one(srv->store, &page->cur[i], atomic_load(&srv->shared->slot[i].pid));
}

void metrics_worker_start(struct server *srv, struct pool_slot *self)
{
	if (!srv->shared || !self)
		return;
	slot_index = self - srv->shared->slot;
	if (page)
		sweep_one(srv->store, &page->cur[slot_index], (int)self_pid());
	add(srv->store, "M|starts", 1);
}

/* ---- a request ---- */

void metrics_begin(void)
{
	memset(&note, 0, sizeof note);
	note.first_byte = -1;
}

void metrics_enter(struct request *rq, const char *who)
{
	if (!page || slot_index < 0)
		return;
	struct current *c = &page->cur[slot_index];
	atomic_store(&c->pid, 0); /* a reader skips the record while it changes */
	snprintf(c->route, sizeof c->route, "%s", rq->route ? rq->route->path : "");
	snprintf(c->who, sizeof c->who, "%s", who ? who : "");
	atomic_store(&c->started_ms, wall_ms());
	atomic_store(&c->pid, (int)self_pid());
	unsigned busy = pool_busy(rq->srv->shared), seen = atomic_load(&page->max_busy);
	while (busy > seen && !atomic_compare_exchange_weak(&page->max_busy, &seen, busy))
		;
}

void metrics_upstream_answered(void)
{
	if (!note.upstream_at)
		note.upstream_at = clock_now();
}

void metrics_first_byte(void)
{
	if (note.upstream_at && note.first_byte < 0)
		note.first_byte = clock_now() - note.upstream_at;
}

void metrics_body(void)
{
	note.body_at = clock_now();
}

static size_t bucket_of(const struct histo *h, double v)
{
	size_t i = 0;
	while (i < h->n && v > h->le[i])
		i++;
	return i;
}

void metrics_delta(void)
{
	if (!note.body_at)
		return;
	double v = clock_now() - note.body_at;
	note.delta[bucket_of(&histos[H_DELTA], v)]++;
	note.delta_us += (long long)(v * 1e6);
	note.deltas++;
}

void metrics_upstream(const struct upstream_result *res)
{
	note.attempts = res->attempts;
	metrics_upstream_answered(); /* a whole answer's end, when no stream headers came before */
	switch (res->outcome) {
	case UP_DONE:
		note.outcome = res->h.status < 400 ? "ok" : res->h.status < 500 ? "4xx" : "5xx";
		break;
	case UP_CONNECT_FAILED:
		note.outcome = "connect_error";
		break;
	case UP_FIRST_BYTE_TIMEOUT:
	case UP_IDLE_TIMEOUT:
	case UP_TOTAL_TIMEOUT:
		note.outcome = "timeout";
		break;
	case UP_ABORTED:
		note.outcome = "cancelled";
		break;
	case UP_BROKEN:
	case UP_TOO_LARGE:
		note.outcome = "broken";
		break;
	}
}

void metrics_stream_cut(void)
{
	note.cut = 1;
}

/* ---- adding a request's notes to the store ---- */

/* A counter's name built field by field: the per-request path builds a few of them, and
 * snprintf would cost more than the store updates themselves. */
struct name {
	char s[STORE_NAME_MAX];
	size_t n;
	int over; /* a field did not fit: the name is not to be used */
};

/* Appends a field, '|' first unless it is the first; a '|' inside it becomes '_'. */
static void field(struct name *nm, const char *v)
{
	if (nm->n && nm->n < sizeof nm->s - 1)
		nm->s[nm->n++] = '|';
	for (; *v && nm->n < sizeof nm->s - 1; v++)
		nm->s[nm->n++] = *v == '|' ? '_' : *v;
	nm->over |= *v != '\0' || nm->n >= sizeof nm->s - 1;
	nm->s[nm->n] = '\0';
}

static void name2(struct name *nm, const char *family, const char *v)
{
	nm->n = 0;
	nm->over = 0;
	field(nm, "M");
	field(nm, family);
	field(nm, v);
}

static void field_num(struct name *nm, long v)
{
	char d[BUF_DIGITS_MAX + 1];
	d[buf_digits(d, v)] = '\0';
	field(nm, d);
}

/* A request's adds, sent in one batch: one store call, one round trip with Redis. */
#define ADDS_MAX 32 /* metrics_end's most: 7 counters, histograms 2 + 2 + MAX_LE + 2, usage 5 */

struct adds {
	size_t n;
	struct store_op op[ADDS_MAX];
	char name[ADDS_MAX][STORE_NAME_MAX];
};

static void push(struct adds *a, const char *name, long long delta)
{
	if (!delta || a->n == ADDS_MAX) /* ADDS_MAX holds every add by construction */
		return;
	size_t len = strlen(name);
	memcpy(a->name[a->n], name, len + 1);
	a->op[a->n] = (struct store_op){.kind = STORE_OP_ADD, .name = a->name[a->n], .delta = delta};
	a->n++;
}

/* The identity's series, or "other" past metrics_identities (every address is "other"). */
static const char *series_who(struct request *rq, const char *who)
{
	long max = rq->srv->cfg->metrics_identities;
	struct store *st = rq->srv->store;
	if (!who || !*who || !strncmp(who, "addr:", 5) || max <= 0 || !st)
		return OTHER;
	for (unsigned i = 0; i < KNOWN_CACHE; i++)
		if (!strcmp(known[i], who))
			return who;
	struct name nm;
	name2(&nm, "id", who);
	long long v = 0, after;
	int taken = 0;
	if (store_get(st, nm.s, 0, &v) != STORE_OK)
		return OTHER;
	/* Two workers admitting the same new name at once may take two places: harmless. */
	if (!v && (store_add_capped(st, "M|ids", 0, 1, max, 0, &taken, &after) != STORE_OK ||
		   !taken || store_add(st, nm.s, 0, 1, 0, &after) != STORE_OK))
		return OTHER;
	snprintf(known[known_next++ % KNOWN_CACHE], SPEND_WHO_MAX, "%s", who);
	return who;
}

static void add_histo(struct adds *ad, enum histo_id id, const unsigned *counts,
		      long long sum_us)
{
	struct name nm;
	for (size_t i = 0; i <= histos[id].n; i++) {
		if (!counts[i])
			continue;
		name2(&nm, "h", histos[id].key);
		field_num(&nm, (long)i);
		push(ad, nm.s, counts[i]);
	}
	name2(&nm, "hs", histos[id].key);
	push(ad, nm.s, sum_us);
}

static void observe(struct adds *ad, enum histo_id id, double v)
{
	unsigned counts[MAX_LE + 1] = {0};
	counts[bucket_of(&histos[id], v)] = 1;
	add_histo(ad, id, counts, (long long)(v * 1e6));
}

/* tok|MODEL|WHO|TYPE or cost|MODEL|WHO; an identity that does not fit is other. */
static void add_usage_one(struct adds *ad, const char *family, const char *model,
			  const char *who, const char *type, long long v)
{
	struct name nm;
	if (v <= 0)
		return;
	for (int pass = 0; pass < 2; pass++) {
		name2(&nm, family, model);
		field(&nm, pass ? OTHER : who);
		if (type)
			field(&nm, type);
		if (!nm.over) {
			push(ad, nm.s, v);
			return;
		}
	}
}

static void add_usage(struct adds *ad, struct request *rq, const char *who)
{
	const struct access_record *a = &rq->acc;
	const char *model = a->model[0] ? a->model : "unknown";
	const char *sw = series_who(rq, who);
	add_usage_one(ad, "tok", model, sw, "input", a->input_tokens);
	add_usage_one(ad, "tok", model, sw, "output", a->output_tokens);
	add_usage_one(ad, "tok", model, sw, "cache_write",
		      a->cache_write_5m_tokens + a->cache_write_1h_tokens);
	add_usage_one(ad, "tok", model, sw, "cache_read", a->cache_read_tokens);
	add_usage_one(ad, "cost", model, sw, NULL, a->cost_micro_usd);
}

void metrics_end(struct request *rq, const char *who)
{
	struct store *st = rq->srv->store;
	const struct access_record *a = &rq->acc;
	const struct config *cfg = rq->srv->cfg;
	if (page && slot_index >= 0)
		atomic_store(&page->cur[slot_index].pid, 0);
	/* With neither route configured nobody reads the counters: none are kept. */
	if (!st || (!*cfg->metrics_path && !*cfg->status_path))
		return;
	struct name nm;
	struct adds ad;
	ad.n = 0;
	name2(&nm, "req", rq->route ? rq->route->path : "none");
	field_num(&nm, a->status);
	if (!nm.over)
		push(&ad, nm.s, 1);
	if (note.attempts && note.outcome) {
		name2(&nm, "up", note.outcome);
		push(&ad, nm.s, 1);
		push(&ad, "M|up|retried", note.attempts - 1);
	}
	if (a->cancelled)
		push(&ad, "M|cancel", 1);
	if (note.cut && !a->cancelled)
		push(&ad, "M|cut", 1);
	if (a->refused) {
		name2(&nm, "refused", a->refused);
		push(&ad, nm.s, 1);
	}
	if (a->duration_ms >= cfg->slow_request * 1000.0)
		push(&ad, "M|slow", 1);
	if (a->ttft_ms >= 0)
		observe(&ad, H_TTFT, a->ttft_ms / 1000.0);
	if (note.first_byte >= 0 && !a->cancelled)
		observe(&ad, H_FIRST_BYTE, note.first_byte);
	if (note.deltas)
		add_histo(&ad, H_DELTA, note.delta, note.delta_us);
	if (a->attempts > 0)
		add_usage(&ad, rq, who);
	size_t refused;
	(void)store_batch(st, ad.op, ad.n, &refused);
}

/* ---- who may look ---- */

int metrics_allowed(const struct request *rq)
{
	const struct config *cfg = rq->srv->cfg;
	const char *peer = io_param(rq->io, "REMOTE_ADDR");
	const char *fwd = io_param(rq->io, "HTTP_X_FORWARDED_FOR");
	if (!peer || !*peer)
		return 0;
	if (!fwd || !*fwd || !limits_addr_listed(cfg->trusted_proxies, peer))
		/* A local reverse proxy forwards everybody: its own address is nobody's. */
		return !(fwd && *fwd && limits_addr_listed(LOOPBACK, peer)) &&
		       limits_addr_listed(cfg->metrics_allow, peer);
	char who[SPEND_WHO_MAX];
	spend_identity(NULL, -1, NULL, peer, fwd, cfg->trusted_proxies, who, sizeof who);
	return limits_addr_listed(cfg->metrics_allow, who + 5 /* "addr:" */);
}

/* ---- reading the store ---- */

struct entry {
	char name[STORE_NAME_MAX];
	long long value;
};

struct entries {
	struct entry *e;
	size_t n, cap;
};

static void collect(void *arg, const char *name, long long bucket, long long value)
{
	struct entries *es = arg;
	if (bucket != 0)
		return;
	if (es->n == es->cap) {
		es->cap = es->cap ? 2 * es->cap : 256;
		es->e = xrealloc(es->e, es->cap * sizeof *es->e);
	}
	snprintf(es->e[es->n].name, STORE_NAME_MAX, "%s", name);
	es->e[es->n++].value = value;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Every metrics counter, sorted by name. When the store fails part-way (Redis timing out) what
 * arrived is shown: a scrape is better partial than absent. */
static void read_all(struct store *st, struct entries *es)
{
	memset(es, 0, sizeof *es);
	if (st && store_each(st, "M|", collect, es) != STORE_OK)
		log_warn("metrics: the %s store did not answer whole; the counters shown are partial",
			 store_backend(st));
	if (es->n)
		qsort(es->e, es->n, sizeof *es->e, by_name);
}

/* The value of one name, 0 when absent (the entries are sorted: a scrape of a full store makes
 * a few dozen of these lookups among 65,536 names). */
static long long value_of(const struct entries *es, const char *name)
{
	size_t lo = 0, hi = es->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(es->e[mid].name, name);
		if (!c)
			return es->e[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* The sum of every counter of a family ("M|req|"). */
static long long sum_of(const struct entries *es, const char *prefix)
{
	long long s = 0;
	size_t n = strlen(prefix);
	for (size_t i = 0; i < es->n; i++)
		if (!strncmp(es->e[i].name, prefix, n))
			s += es->e[i].value;
	return s;
}

/* ---- the exposition ---- */

static int label_value(struct buf *out, const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = v[i] == '\\' ? buf_appends(out, "\\\\")
			 : v[i] == '"' ? buf_appends(out, "\\\"")
			 : v[i] == '\n' ? buf_appends(out, "\\n")
					: buf_append(out, &v[i], 1);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* One sample of family f from a store name's label fields ("route|status"). */
static int sample(struct buf *out, const struct family *f, const char *fields, long long value)
{
	if (buf_appends(out, f->name) < 0)
		return -1;
	for (int i = 0; i < 3 && f->labels[i]; i++) {
		const char *end = strchr(fields, '|');
		size_t n = end ? (size_t)(end - fields) : strlen(fields);
		if (buf_printf(out, "%s%s=\"", i ? "," : "{", f->labels[i]) < 0 ||
		    label_value(out, fields, n) < 0 || buf_appends(out, "\"") < 0)
			return -1;
		fields = end ? end + 1 : fields + n;
	}
	if (f->labels[0] && buf_appends(out, "}") < 0)
		return -1;
	if (f->scale == 1)
		return buf_printf(out, " %lld\n", value);
	return buf_printf(out, " %.6f\n", (double)value / f->scale);
}

static int expose_family(struct buf *out, const struct family *f, const struct entries *es)
{
	char prefix[32];
	snprintf(prefix, sizeof prefix, "M|%s%s", f->key, f->labels[0] ? "|" : "");
	if (buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", f->name, f->help, f->name) < 0)
		return -1;
	if (!f->labels[0])
		return sample(out, f, "", value_of(es, prefix));
	size_t n = strlen(prefix);
	for (size_t i = 0; i < es->n; i++)
		if (!strncmp(es->e[i].name, prefix, n) &&
		    sample(out, f, es->e[i].name + n, es->e[i].value) < 0)
			return -1;
	return 0;
}

static int expose_histo(struct buf *out, const struct histo *h, const struct entries *es)
{
	char name[STORE_NAME_MAX];
	if (buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name) < 0)
		return -1;
	long long cum = 0;
	for (size_t i = 0; i <= h->n; i++) {
		snprintf(name, sizeof name, "M|h|%s|%zu", h->key, i);
		cum += value_of(es, name);
		int rc = i < h->n ? buf_printf(out, "%s_bucket{le=\"%g\"} %lld\n", h->name, h->le[i], cum)
				  : buf_printf(out, "%s_bucket{le=\"+Inf\"} %lld\n", h->name, cum);
		if (rc < 0)
			return -1;
	}
	snprintf(name, sizeof name, "M|hs|%s", h->key);
	return buf_printf(out, "%s_sum %.6f\n%s_count %lld\n", h->name, value_of(es, name) / 1e6,
			  h->name, cum);
}

static int gauge(struct buf *out, const char *name, const char *help, const char *labels,
		 double v)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s%s %.17g\n", name, help, name, name,
			  labels, v);
}

static const char *mode_of(const struct request *rq)
{
	return rq->io->ops->is_cgi ? "cgi" : rq->srv->shared ? "pool" : "worker";
}

static int expose_pool(struct buf *out, struct request *rq)
{
	struct pool_shared *sh = rq->srv->shared;
	if (!sh)
		return buf_printf(out, "# %s: no pool; the counters are those of the %s store shared "
				       "by every process that uses it\n", mode_of(rq),
				  rq->srv->store ? store_backend(rq->srv->store) : "(no)");
	if (gauge(out, "llm_fcgi_workers_busy", "Workers inside a request.", "",
		  pool_busy(sh)) < 0 ||
	    gauge(out, "llm_fcgi_workers", "Workers of the current generation.", "",
		  pool_total(sh)) < 0)
		return -1;
	if (!page)
		return 0;
	return gauge(out, "llm_fcgi_workers_busy_max", "The most workers busy at once.", "",
		     atomic_load(&page->max_busy)) < 0 ||
			       gauge(out, "llm_fcgi_start_time_seconds", "When the pool started, "
				     "Unix time.", "", page->start_ms / 1000.0) < 0
		       ? -1
		       : 0;
}

int metrics_expose(struct request *rq, struct buf *out)
{
	struct entries es;
	sweep(rq->srv);
	read_all(rq->srv->store, &es);
	int rc = 0;
	for (size_t i = 0; i < N_COUNTERS && rc == 0; i++)
		rc = expose_family(out, &counters[i], &es);
	if (rc == 0)
		rc = buf_printf(out, "# HELP llm_fcgi_upstream_retries_total Upstream attempts that "
				     "were retries.\n# TYPE llm_fcgi_upstream_retries_total counter\n"
				     "llm_fcgi_upstream_retries_total %lld\n",
				value_of(&es, "M|up|retried"));
	for (size_t i = 0; i < H__COUNT && rc == 0; i++)
		rc = expose_histo(out, &histos[i], &es);
	char labels[160];
	snprintf(labels, sizeof labels, "{version=\"%s\",mode=\"%s\",store=\"%s\"}", PACKAGE_VERSION,
		 mode_of(rq), rq->srv->store ? store_backend(rq->srv->store) : "none");
	if (rc == 0)
		rc = gauge(out, "llm_fcgi_build_info", "The version, how it runs (pool, worker, cgi) "
			   "and where the counters live.", labels, 1);
	if (rc == 0)
		rc = expose_pool(out, rq);
	free(es.e);
	return rc;
}

/* ---- the status ---- */

static struct json_object *workers_json(struct pool_shared *sh)
{
	struct json_object *a = json_object_new_array();
	unsigned gen = atomic_load(&sh->generation), n = atomic_load(&sh->nslots);
	long long now = wall_ms();
	for (unsigned i = 0; i < n && i < POOL_MAX_SLOTS; i++) {
		int pid = atomic_load(&sh->slot[i].pid);
		if (!pid || !atomic_load(&sh->slot[i].generation))
			continue;
		struct json_object *w = json_object_new_object();
		json_object_object_add(w, "pid", json_object_new_int(pid));
		json_object_object_add(w, "current_generation",
				       json_object_new_boolean(atomic_load(&sh->slot[i].generation) == gen));
		json_object_object_add(w, "started", json_object_new_int64(
			atomic_load(&sh->slot[i].started_ms) / 1000));
		json_object_object_add(w, "requests", json_object_new_int64(
			(int64_t)atomic_load(&sh->slot[i].served)));
		int busy = atomic_load(&sh->slot[i].busy) != 0;
		json_object_object_add(w, "state", json_object_new_string(busy ? "busy" : "idle"));
		struct current *c = page ? &page->cur[i] : NULL;
		if (busy && c && atomic_load(&c->pid) == pid) {
			struct json_object *r = json_object_new_object();
			json_object_object_add(r, "route", json_object_new_string(c->route));
			json_object_object_add(r, "age_s", json_object_new_double(
				(now - atomic_load(&c->started_ms)) / 1000.0));
			json_object_object_add(r, "identity", json_object_new_string(c->who));
			json_object_object_add(w, "request", r);
		}
		json_object_array_add(a, w);
	}
	return a;
}

/* Today's spend and tokens per identity, from spend's usage counters (u|X|WHO|MODEL, bucket
 * the UTC day): what the operator page charts. */
struct today {
	struct json_object *o;
	long long day;
};

static void today_one(void *arg, const char *name, long long bucket, long long value)
{
	struct today *t = arg;
	const char *who = name + 4, *end = strchr(who, '|');
	if (bucket != t->day || !end || name[3] != '|')
		return;
	const char *field = name[2] == '$' ? "usd" : name[2] == 'i' ? "input_tokens"
			    : name[2] == 'o' ? "output_tokens" : name[2] == 'n' ? "requests" : NULL;
	if (!field)
		return;
	char key[SPEND_WHO_MAX];
	snprintf(key, sizeof key, "%.*s", (int)(end - who), who);
	struct json_object *w, *v;
	if (!json_object_object_get_ex(t->o, key, &w)) {
		w = json_object_new_object();
		json_object_object_add(t->o, key, w);
	}
	double sum = (json_object_object_get_ex(w, field, &v) ? json_object_get_double(v) : 0) +
		     (name[2] == '$' ? value / 1e6 : (double)value);
	json_object_object_add(w, field, name[2] == '$' ? json_object_new_double(sum)
							: json_object_new_int64((int64_t)sum));
}

static struct json_object *today_json(struct store *st)
{
	struct today t = {json_object_new_object(), limits_bucket(LIMITS_DAY, time(NULL))};
	if (st)
		(void)store_each(st, "u|", today_one, &t);
	return t.o;
}

struct json_object *metrics_status(struct request *rq, int full)
{
	struct entries es;
	struct pool_shared *sh = rq->srv->shared;
	sweep(rq->srv);
	read_all(rq->srv->store, &es);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "mode", json_object_new_string(mode_of(rq)));
	json_object_object_add(o, "store", json_object_new_string(
		rq->srv->store ? store_backend(rq->srv->store) : "none"));
	if (!sh)
		json_object_object_add(o, "note", json_object_new_string(
			"no pool: the counters are the store's, shared by every process that uses it"));
	long long accepted = sum_of(&es, "M|req|") + value_of(&es, "M|aborted");
	json_object_object_add(o, "accepted_requests", json_object_new_int64(accepted));
	json_object_object_add(o, "aborted_requests",
			       json_object_new_int64(value_of(&es, "M|aborted")));
	json_object_object_add(o, "slow_requests", json_object_new_int64(value_of(&es, "M|slow")));
	json_object_object_add(o, "today", today_json(rq->srv->store));
	if (sh) {
		unsigned busy = pool_busy(sh), total = pool_total(sh);
		if (page) {
			json_object_object_add(o, "start_time",
					       json_object_new_int64(page->start_ms / 1000));
			json_object_object_add(o, "start_since", json_object_new_int64(
				(wall_ms() - page->start_ms) / 1000));
			json_object_object_add(o, "max_busy",
					       json_object_new_int(atomic_load(&page->max_busy)));
		}
		json_object_object_add(o, "busy", json_object_new_int(busy));
		json_object_object_add(o, "idle", json_object_new_int(busy < total ? total - busy : 0));
		json_object_object_add(o, "total", json_object_new_int(total));
		if (full)
			json_object_object_add(o, "workers", workers_json(sh));
	}
	free(es.e);
	return o;
}
