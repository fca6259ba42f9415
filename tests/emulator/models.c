/* models: see models.h. */
#include "models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct catalogue cat;
static bool *retired_here; /* cat.n flags: retired by --retire */

void models_load(const char *path, const char *override)
{
	struct buf err;

	buf_init(&err, 4096);
	if (catalogue_load(&cat, path, override, &err) < 0)
		die("--models: %s", buf_cstr(&err));
	buf_release(&err);
	retired_here = xcalloc(cat.n, sizeof *retired_here);
}

void models_retire(const char *name)
{
	const struct catalogue_model *m = catalogue_find(&cat, name, strlen(name));

	if (!m)
		die("--retire %s: not in the catalogue", name);
	retired_here[m - cat.models] = true;
}

void models_free(void)
{
	catalogue_release(&cat);
	free(retired_here);
	retired_here = NULL;
}

static int today(void)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static bool serving(const struct catalogue_model *m)
{
	return !retired_here[m - cat.models] && catalogue_status_on(m, today()) != CATALOGUE_RETIRED;
}

const struct catalogue_model *models_find(const char *name, size_t n)
{
	const struct catalogue_model *m = catalogue_find(&cat, name, n);

	return m && serving(m) ? m : NULL;
}

/* "claude-opus-4-5-20251101" → "Claude Opus 4.5": the family capitalised, the version dotted,
 * the snapshot date left out. */
static void display_name(const char *id, char *out, size_t n)
{
	struct obuf b = { 0 };
	const char *p = strncmp(id, "claude-", 7) == 0 ? id + 7 : id;
	bool digits = false;

	obuf_str(&b, "Claude");
	while (*p) {
		size_t k = strcspn(p, "-");
		bool num = p[0] >= '0' && p[0] <= '9';

		if (!(num && k == 8)) {
			obuf_str(&b, num && digits ? "." : " ");
			obuf_fmt(&b, "%c%.*s", num ? p[0] : p[0] - ('a' <= p[0] && p[0] <= 'z' ? 32 : 0),
				 (int)k - 1, p + 1);
		}
		digits = num;
		p += k + (p[k] == '-');
	}
	snprintf(out, n, "%s", obuf_cstr(&b));
	obuf_free(&b);
}

static json_object *model_json(const struct catalogue_model *m)
{
	json_object *o = jobj();
	char name[160];

	display_name(m->id, name, sizeof name);
	jset(o, "type", jstr("model"));
	jset(o, "id", jstr(m->id));
	jset(o, "display_name", jstr(name));
	/* The catalogue holds no release dates: one fixed date keeps answers deterministic. */
	jset(o, "created_at", jstr("2026-01-01T00:00:00Z"));
	jset(o, "max_input_tokens", jint(m->context_window));
	jset(o, "max_tokens", jint(m->max_output));
	return o;
}

json_object *models_list_json(void)
{
	json_object *o = jobj(), *data = json_object_new_array();
	const char *first = NULL, *last = NULL;

	for (size_t i = 0; i < cat.n; i++) {
		if (!serving(&cat.models[i]))
			continue;
		if (json_object_array_add(data, model_json(&cat.models[i])) != 0)
			die("out of memory");
		if (!first)
			first = cat.models[i].id;
		last = cat.models[i].id;
	}
	jset(o, "data", data);
	jset(o, "has_more", json_object_new_boolean(0));
	jset(o, "first_id", first ? jstr(first) : NULL);
	jset(o, "last_id", last ? jstr(last) : NULL);
	return o;
}

json_object *models_get_json(const char *id)
{
	const struct catalogue_model *m = models_find(id, strlen(id));

	return m ? model_json(m) : NULL;
}
