#include "admin.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limits_file.h"
#include "store.h"

struct store *admin_open_store(const struct config *cfg, struct buf *err)
{
	if (cfg->limits_store && *cfg->limits_store)
		return store_open_redis(cfg->limits_store, cfg->limits_store_timeout, err);
	if (cfg->state_file)
		return store_open_file(cfg->state_file, (size_t)cfg->state_counters, err);
	buf_note(err, "neither state_file nor limits_store is set: the counters live in the "
			 "pool's memory, which only its workers see");
	return NULL;
}

/* ---- usage ---- */

enum by { BY_WHO, BY_MODEL, BY_DAY };
enum metric { M_COST, M_REQUESTS, M_INPUT, M_OUTPUT, M_CACHE_WRITE, M_CACHE_READ, M__COUNT };
static const char metric_kind[M__COUNT] = {'$', 'n', 'i', 'o', 'w', 'r'};
static const char *const metric_name[M__COUNT] = {"cost_usd", "requests", "input_tokens",
	"output_tokens", "cache_write_tokens", "cache_read_tokens"};

struct row {
	char key[STORE_NAME_MAX];
	long long v[M__COUNT];
};

struct report {
	enum by by;
	long long since; /* YYYYMMDD */
	struct row *rows;
	size_t n, cap;
};

static struct row *row_for(struct report *r, const char *key)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->rows[i].key, key) == 0)
			return &r->rows[i];
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->rows = xrealloc(r->rows, r->cap * sizeof *r->rows);
	}
	struct row *row = &r->rows[r->n++];
	memset(row, 0, sizeof *row);
	snprintf(row->key, sizeof row->key, "%s", key);
	return row;
}

/* One counter "u|X|WHO|MODEL" of a day. */
static void take(void *arg, const char *name, long long bucket, long long value)
{
	struct report *r = arg;
	const char *who = name + 4, *bar = strrchr(name, '|');
	if (strlen(name) < 6 || name[3] != '|' || bar < who || bucket < r->since)
		return;
	const char *kind = memchr(metric_kind, name[2], M__COUNT);
	if (!kind)
		return;
	char key[STORE_NAME_MAX];
	if (r->by == BY_WHO)
		snprintf(key, sizeof key, "%.*s", (int)(bar - who), who);
	else if (r->by == BY_MODEL)
		snprintf(key, sizeof key, "%s", bar + 1);
	else
		snprintf(key, sizeof key, "%04lld-%02lld-%02lld", bucket / 10000, bucket / 100 % 100,
			 bucket % 100);
	row_for(r, key)->v[kind - metric_kind] += value;
}

static int by_cost(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->v[M_COST] != y->v[M_COST])
		return x->v[M_COST] < y->v[M_COST] ? 1 : -1;
	return strcmp(x->key, y->key);
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct row *)a)->key, ((const struct row *)b)->key);
}

static void print_table(const struct report *r, FILE *out)
{
	static const char *const head[] = {"who", "model", "day"};
	char usd[32];
	fprintf(out, "%-40s %12s %10s %12s %12s %12s %12s\n", head[r->by], "cost_usd", "requests",
		"input", "output", "cache_write", "cache_read");
	struct row total = {.key = "total"};
	for (size_t i = 0; i <= r->n; i++) {
		const struct row *row = i < r->n ? &r->rows[i] : &total;
		limits_format_usd(row->v[M_COST], usd, sizeof usd);
		fprintf(out, "%-40s %12s %10lld %12lld %12lld %12lld %12lld\n", row->key, usd,
			row->v[M_REQUESTS], row->v[M_INPUT], row->v[M_OUTPUT], row->v[M_CACHE_WRITE],
			row->v[M_CACHE_READ]);
		for (int m = 0; i < r->n && m < M__COUNT; m++)
			total.v[m] += row->v[m];
	}
}

static void print_json(const struct report *r, FILE *out)
{
	static const char *const head[] = {"who", "model", "day"};
	struct json_object *arr = json_object_new_array();
	char usd[32];
	for (size_t i = 0; i < r->n; i++) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, head[r->by], json_object_new_string(r->rows[i].key));
		snprintf(usd, sizeof usd, "%lld.%06lld", r->rows[i].v[M_COST] / 1000000,
			 r->rows[i].v[M_COST] % 1000000);
		json_object_object_add(o, metric_name[M_COST],
				       json_object_new_double_s(r->rows[i].v[M_COST] / 1e6, usd));
		for (int m = M_REQUESTS; m < M__COUNT; m++)
			json_object_object_add(o, metric_name[m],
					       json_object_new_int64(r->rows[i].v[m]));
		json_object_array_add(arr, o);
	}
	fprintf(out, "%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
}

static int parse_date(const char *s, long long *out)
{
	int y, m, d;
	char extra;
	if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || m < 1 || m > 12 || d < 1 ||
	    d > 31)
		return -1;
	*out = (long long)y * 10000 + m * 100 + d;
	return 0;
}

int admin_usage(struct store *st, int argc, char **argv, FILE *out)
{
	struct report r = {.by = BY_WHO, .since = limits_bucket(LIMITS_MONTH, time(NULL)) * 100 + 1};
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--by") == 0 && i + 1 < argc) {
			const char *b = argv[++i];
			r.by = !strcmp(b, "who") ? BY_WHO : !strcmp(b, "model") ? BY_MODEL
				: !strcmp(b, "day") ? BY_DAY : (enum by)-1;
			if ((int)r.by < 0) {
				fprintf(stderr, "llm-fcgi usage: --by who, model or day\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
			if (parse_date(argv[++i], &r.since) < 0) {
				fprintf(stderr, "llm-fcgi usage: --since YYYY-MM-DD\n");
				return 2;
			}
		} else {
			fprintf(stderr, "llm-fcgi usage: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (store_each(st, "u|", take, &r) != STORE_OK) {
		fprintf(stderr, "llm-fcgi usage: the store cannot be read\n");
		free(r.rows);
		return 1;
	}
	qsort(r.rows, r.n, sizeof *r.rows, r.by == BY_DAY ? by_key : by_cost);
	if (json)
		print_json(&r, out);
	else
		print_table(&r, out);
	free(r.rows);
	return 0;
}

/* ---- budget ---- */

int admin_budget(struct store *st, int argc, char **argv, FILE *out)
{
	if (argc < 3 || (strcmp(argv[2], "reset") && strcmp(argv[2], "raise")) ||
	    (!strcmp(argv[2], "raise") && argc < 4)) {
		fprintf(stderr, "llm-fcgi budget WHO reset [day|month] | WHO raise USD [day|month]\n");
		return 2;
	}
	int raise = strcmp(argv[2], "raise") == 0;
	const char *period = argc > 3 + raise ? argv[3 + raise] : "day";
	long long usd = 0;
	if (raise && limits_parse_usd(argv[3], strlen(argv[3]), &usd) < 0) {
		fprintf(stderr, "llm-fcgi budget: %s is not dollars (12.50)\n", argv[3]);
		return 2;
	}
	if (strcmp(period, "day") && strcmp(period, "month")) {
		fprintf(stderr, "llm-fcgi budget: the period is day or month\n");
		return 2;
	}
	enum limits_period p = period[0] == 'd' ? LIMITS_DAY : LIMITS_MONTH;
	time_t now = time(NULL);
	char name[STORE_NAME_MAX];
	snprintf(name, sizeof name, "%c|%s", period[0] == 'd' ? 'd' : 'm', argv[1]);
	long long bucket = limits_bucket(p, now), after = 0;
	long long expires = (long long)limits_period_end(p, now) + 86400;
	/* A raise lowers what counts as spent, below zero if need be: the identity may spend that
	 * much more before its limit, this period only. */
	enum store_result rc = raise ? store_add(st, name, bucket, -usd, expires, &after)
				     : store_set(st, name, bucket, 0, expires);
	if (rc != STORE_OK) {
		fprintf(stderr, "llm-fcgi budget: the store cannot be written\n");
		return 1;
	}
	char spent[32];
	limits_format_usd(after < 0 ? -after : after, spent, sizeof spent);
	fprintf(out, "%s: spent this %s: %s$%s\n", argv[1], period, after < 0 ? "-" : "", spent);
	return 0;
}
