#include "catalogue.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* A name in the lookup index: an id or an alias, and the model it means. */
struct catalogue_name_ {
	const char *name;
	size_t model;
};

/* ---- the fields of a model: one table drives parsing, merging and the completeness check ---- */

enum kind { K_ALIASES, K_STATUS, K_DATE, K_NAME, K_TOKENS, K_PRICE, K_THINKING, K_EFFORT, K_BOOL, K_NOTE };

/* need: every model that is not retired must have the field. */
struct field {
	const char *name;
	enum kind kind;
	size_t off;
	long max; /* K_TOKENS only */
	int need;
};

#define OFF(f) offsetof(struct catalogue_model, f)
static const struct field fields[] = {
	{"aliases", K_ALIASES, OFF(aliases), 0, 0},
	{"status", K_STATUS, OFF(status), 0, 1},
	{"deprecated", K_DATE, OFF(deprecated_on), 0, 0},
	{"retires", K_DATE, OFF(retires_on), 0, 0},
	{"replacement", K_NAME, OFF(replacement), 0, 0},
	{"context_window", K_TOKENS, OFF(context_window), 100000000, 1},
	{"max_output", K_TOKENS, OFF(max_output), 10000000, 1},
	{"price_input", K_PRICE, OFF(price.input), 0, 1},
	{"price_output", K_PRICE, OFF(price.output), 0, 1},
	{"price_cache_write_5m", K_PRICE, OFF(price.cache_write_5m), 0, 1},
	{"price_cache_write_1h", K_PRICE, OFF(price.cache_write_1h), 0, 1},
	{"price_cache_read", K_PRICE, OFF(price.cache_read), 0, 1},
	{"long_prompt_above", K_TOKENS, OFF(long_prompt_above), 100000000, 0},
	{"long_price_input", K_PRICE, OFF(long_price.input), 0, 0},
	{"long_price_output", K_PRICE, OFF(long_price.output), 0, 0},
	{"long_price_cache_write_5m", K_PRICE, OFF(long_price.cache_write_5m), 0, 0},
	{"long_price_cache_write_1h", K_PRICE, OFF(long_price.cache_write_1h), 0, 0},
	{"long_price_cache_read", K_PRICE, OFF(long_price.cache_read), 0, 0},
	{"thinking", K_THINKING, OFF(thinking), 0, 1},
	{"effort", K_EFFORT, OFF(effort), 0, 1},
	{"sampling", K_BOOL, OFF(sampling), 0, 1},
	{"forced_tool_choice", K_BOOL, OFF(forced_tool_choice), 0, 1},
	{"structured_output", K_BOOL, OFF(structured_output), 0, 1},
	{"note", K_NOTE, OFF(note), 0, 0},
};
#define NFIELDS (sizeof fields / sizeof fields[0])
enum { F_ALIASES = 0, F_STATUS, F_DEPRECATED, F_RETIRES, F_REPLACEMENT, F_LONG_ABOVE = 12,
       F_LONG_FIRST = 13, F_LONG_LAST = 17 };
#define BIT(i) (1ull << (i))

static const char *const status_names[] = {"current", "deprecated", "retired"};
static const char *const thinking_names[] = {"none", "extended", "adaptive", "always_on"};
static const char *const effort_names[] = {"low", "medium", "high", "xhigh", "max"};
#define NOTE_MAX 4096

/* ---- messages ---- */

__attribute__((format(printf, 5, 6))) static int bad(struct buf *err, const char *file,
						     const char *model, const char *field,
						     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int cut = buf_printf(err, "%s: ", file) || (model && buf_printf(err, "model '%s': ", model)) ||
		  (field && buf_printf(err, "%s: ", field)) || buf_vprintf(err, fmt, ap);
	va_end(ap);
	/* Past the caller's buffer (a file may quote long values) the message ends in a note. */
	if (cut && buf_appends(err, "(message too long)") < 0)
		return -1; /* not even the note fits: the -1 alone says the load failed */
	return -1;
}

/* The file a model's field came from (field < 0: the file that introduced the model). */
static const char *origin(const struct catalogue *cat, const struct catalogue_model *m, int field)
{
	if (field >= 0 && (m->set_ & BIT(field)))
		return (m->from_override_ & BIT(field)) ? cat->override_path : cat->base_path;
	return m->created_by_override_ ? cat->override_path : cat->base_path;
}

/* ---- values ---- */

/* Model ids and aliases: printable ASCII without blanks, quotes or backslashes, which keeps them
 * safe to echo in messages and JSON. */
static int valid_name(const char *s, size_t n)
{
	if (n == 0 || n > CATALOGUE_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

static int parse_date(const char *s, int *out)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y = 0, mo = 0, d = 0;
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++) {
		if (i == 4 || i == 7)
			continue;
		if (s[i] < '0' || s[i] > '9')
			return -1;
		int v = s[i] - '0';
		if (i < 4)
			y = y * 10 + v;
		else if (i < 7)
			mo = mo * 10 + v;
		else
			d = d * 10 + v;
	}
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 2000 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
		return -1;
	*out = y * 10000 + mo * 100 + d;
	return 0;
}

/* Dollars per million tokens as decimal text ("0.125", at most 6 decimals) into micro-dollars per
 * million tokens. A JSON number with a fraction is refused: it went through a double. */
static int parse_price(const char *s, unsigned long long *out)
{
	unsigned long long whole = 0, frac = 0;
	int digits = 0, decimals = -1;
	for (; *s; s++) {
		if (*s == '.' && decimals < 0 && digits > 0) {
			decimals = 0;
			continue;
		}
		if (*s < '0' || *s > '9')
			return -1;
		if (decimals >= 0) {
			if (++decimals > 6)
				return -1;
			frac = frac * 10 + (unsigned)(*s - '0');
		} else {
			if (++digits > 6)
				return -1;
			whole = whole * 10 + (unsigned)(*s - '0');
		}
	}
	if (digits == 0 || decimals == 0)
		return -1;
	for (; decimals < 6; decimals++)
		frac *= 10;
	if (whole > CATALOGUE_MAX_PRICE_USD || (whole == CATALOGUE_MAX_PRICE_USD && frac))
		return -1;
	*out = whole * 1000000ull + frac;
	return 0;
}

static int find_name(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

static void free_aliases(struct catalogue_model *m)
{
	for (size_t i = 0; i < m->n_aliases; i++)
		free(m->aliases[i]);
	free(m->aliases);
	m->aliases = NULL;
	m->n_aliases = 0;
}

static int set_aliases(struct catalogue_model *m, struct json_object *v, const char *file,
		       const char *field, struct buf *err)
{
	if (!json_object_is_type(v, json_type_array))
		return bad(err, file, m->id, field, "expected an array of model names");
	size_t n = json_object_array_length(v);
	if (n > CATALOGUE_MAX_ALIASES)
		return bad(err, file, m->id, field, "more than %d aliases", CATALOGUE_MAX_ALIASES);
	char **list = xcalloc(n ? n : 1, sizeof *list);
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(v, i);
		const char *s = json_object_is_type(a, json_type_string) ? json_object_get_string(a) : NULL;
		if (!s || !valid_name(s, strlen(s))) {
			for (size_t j = 0; j < i; j++)
				free(list[j]);
			free(list);
			return bad(err, file, m->id, field, "entry %zu is not a model name (1..%d printable "
				   "characters, no blanks or quotes)", i + 1, CATALOGUE_MAX_NAME);
		}
		list[i] = xstrdup(s);
	}
	free_aliases(m);
	m->aliases = list;
	m->n_aliases = n;
	return 0;
}

static int set_effort(struct catalogue_model *m, struct json_object *v, const char *file,
		      const char *field, struct buf *err)
{
	if (!json_object_is_type(v, json_type_array))
		return bad(err, file, m->id, field, "expected an array of effort levels (low, medium, "
			   "high, xhigh, max), [] for none");
	unsigned bits = 0;
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(v, i);
		const char *s = json_object_is_type(a, json_type_string) ? json_object_get_string(a) : NULL;
		int k = s ? find_name(effort_names, 5, s) : -1;
		if (k < 0 || (bits & (1u << k)))
			return bad(err, file, m->id, field, "entry %zu is not an effort level (low, "
				   "medium, high, xhigh, max) or is repeated", i + 1);
		bits |= 1u << k;
	}
	m->effort = bits;
	return 0;
}

/* A field's value from its JSON form, replacing what the model had. */
static int set_field(struct catalogue_model *m, const struct field *f, struct json_object *v,
		     const char *file, struct buf *err)
{
	char *at = (char *)m + f->off;
	const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
	int k;
	switch (f->kind) {
	case K_ALIASES:
		return set_aliases(m, v, file, f->name, err);
	case K_EFFORT:
		return set_effort(m, v, file, f->name, err);
	case K_STATUS:
		if (!s || (k = find_name(status_names, 3, s)) < 0)
			return bad(err, file, m->id, f->name, "expected \"current\", \"deprecated\" or \"retired\"");
		*(enum catalogue_status *)(void *)at = (enum catalogue_status)k;
		return 0;
	case K_THINKING:
		if (!s || (k = find_name(thinking_names, 4, s)) < 0)
			return bad(err, file, m->id, f->name, "expected \"none\", \"extended\", \"adaptive\" or \"always_on\"");
		*(enum catalogue_thinking *)(void *)at = (enum catalogue_thinking)k;
		return 0;
	case K_DATE:
		if (!s || parse_date(s, (int *)(void *)at) < 0)
			return bad(err, file, m->id, f->name, "expected a date as \"YYYY-MM-DD\"");
		return 0;
	case K_NAME:
		if (!s || !valid_name(s, strlen(s)))
			return bad(err, file, m->id, f->name, "expected a model name");
		free(*(char **)(void *)at);
		*(char **)(void *)at = xstrdup(s);
		return 0;
	case K_NOTE:
		if (!s || strlen(s) > NOTE_MAX)
			return bad(err, file, m->id, f->name, "expected a string of at most %d bytes", NOTE_MAX);
		free(*(char **)(void *)at);
		*(char **)(void *)at = xstrdup(s);
		return 0;
	case K_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return bad(err, file, m->id, f->name, "expected true or false");
		*(int *)(void *)at = json_object_get_boolean(v);
		return 0;
	case K_TOKENS: {
		int64_t n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
		if (n < 1 || n > f->max)
			return bad(err, file, m->id, f->name, "expected a number of tokens (1..%ld)", f->max);
		*(long *)(void *)at = (long)n;
		return 0;
	}
	case K_PRICE: {
		char text[32];
		if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0) {
			snprintf(text, sizeof text, "%lld", (long long)json_object_get_int64(v));
			s = text;
		}
		if (!s || parse_price(s, (unsigned long long *)(void *)at) < 0)
			return bad(err, file, m->id, f->name, "expected dollars per million tokens as a "
				   "string such as \"0.125\" (at most 6 decimals, up to %d)",
				   CATALOGUE_MAX_PRICE_USD);
		return 0;
	}
	}
	return -1;
}

/* ---- documents ---- */

static void model_free(struct catalogue_model *m)
{
	free(m->id);
	free_aliases(m);
	free(m->replacement);
	free(m->note);
}

static struct catalogue_model *model_get(struct catalogue *cat, const char *id, int override,
					 const char *file, struct buf *err)
{
	for (size_t i = 0; i < cat->n; i++)
		if (strcmp(cat->models[i].id, id) == 0)
			return &cat->models[i];
	if (cat->n >= CATALOGUE_MAX_MODELS) {
		bad(err, file, NULL, NULL, "more than %d models", CATALOGUE_MAX_MODELS);
		return NULL;
	}
	/* Growing one at a time is fine: at most CATALOGUE_MAX_MODELS, once per load. */
	cat->models = xrealloc(cat->models, (cat->n + 1) * sizeof *cat->models);
	struct catalogue_model *m = &cat->models[cat->n++];
	memset(m, 0, sizeof *m);
	m->id = xstrdup(id);
	m->created_by_override_ = override;
	return m;
}

static int parse_model(struct catalogue *cat, const char *id, struct json_object *obj,
		       int override, const char *file, struct buf *err)
{
	if (!valid_name(id, strlen(id)))
		return bad(err, file, NULL, NULL, "'%.*s' is not a model name (1..%d printable characters, "
			   "no blanks or quotes)", CATALOGUE_MAX_NAME, id, CATALOGUE_MAX_NAME);
	if (!json_object_is_type(obj, json_type_object))
		return bad(err, file, id, NULL, "expected an object of fields");
	struct catalogue_model *m = model_get(cat, id, override, file, err);
	if (!m)
		return -1;
	json_object_object_foreach(obj, key, val)
	{
		size_t i = 0;
		while (i < NFIELDS && strcmp(fields[i].name, key) != 0)
			i++;
		if (i == NFIELDS)
			return bad(err, file, id, NULL, "unknown field '%.*s'", CATALOGUE_MAX_NAME, key);
		if (set_field(m, &fields[i], val, file, err) < 0)
			return -1;
		m->set_ |= BIT(i);
		if (override)
			m->from_override_ |= BIT(i);
		else
			m->from_override_ &= ~BIT(i);
	}
	return 0;
}

static unsigned long line_of(const char *text, size_t off)
{
	unsigned long line = 1;
	for (size_t i = 0; i < off; i++)
		line += text[i] == '\n';
	return line;
}

static struct json_object *parse_json(const char *text, size_t len, const char *file,
				      struct buf *err)
{
	if (len > CATALOGUE_MAX_BYTES) {
		bad(err, file, NULL, NULL, "larger than %u bytes", CATALOGUE_MAX_BYTES);
		return NULL;
	}
	if (memchr(text, 0, len)) {
		bad(err, file, NULL, NULL, "contains a NUL byte");
		return NULL;
	}
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	if (!doc || e != json_tokener_success) {
		size_t at = json_tokener_get_parse_end(tok);
		bad(err, file, NULL, NULL, "line %lu: %s", line_of(text, at < len ? at : len),
		    e == json_tokener_continue ? "unexpected end of the JSON text"
					       : json_tokener_error_desc(e));
		json_object_put(doc);
		doc = NULL;
	}
	json_tokener_free(tok);
	return doc;
}

static int check_comment(struct json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return -1;
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
			return -1;
	return 0;
}

static int parse_top(struct json_object *doc, const char *file, struct json_object **models,
		     struct buf *err)
{
	if (!json_object_is_type(doc, json_type_object))
		return bad(err, file, NULL, NULL, "expected a JSON object with \"models\"");
	json_object_object_foreach(doc, key, val)
	{
		if (strcmp(key, "models") == 0) {
			if (!json_object_is_type(val, json_type_object))
				return bad(err, file, NULL, NULL, "\"models\" must be an object of model ids");
			*models = val;
		} else if (strcmp(key, "_comment") == 0) {
			if (check_comment(val) < 0)
				return bad(err, file, NULL, NULL, "\"_comment\" must be a string or an array of strings");
		} else if (strcmp(key, "sources") == 0) {
			if (!json_object_is_type(val, json_type_array))
				return bad(err, file, NULL, NULL, "\"sources\" must be an array");
		} else {
			return bad(err, file, NULL, NULL, "unknown key '%.*s' (expected \"_comment\", "
				   "\"sources\", \"models\")", CATALOGUE_MAX_NAME, key);
		}
	}
	return 0;
}

static int parse_doc(struct catalogue *cat, const char *text, size_t len, const char *file,
		     int override, struct buf *err)
{
	struct json_object *doc = parse_json(text, len, file, err), *models = NULL;
	if (!doc)
		return -1;
	int rc = parse_top(doc, file, &models, err);
	if (rc == 0 && !models && !override)
		rc = bad(err, file, NULL, NULL, "no \"models\" object");
	if (rc == 0 && models) {
		json_object_object_foreach(models, id, obj)
		{
			if ((rc = parse_model(cat, id, obj, override, file, err)) < 0)
				break;
		}
	}
	json_object_put(doc);
	return rc;
}

/* ---- checks once a layer is merged ---- */

static int check_complete(const struct catalogue *cat, const struct catalogue_model *m,
			  struct buf *err)
{
	if (!(m->set_ & BIT(F_STATUS)))
		return bad(err, origin(cat, m, -1), m->id, NULL, "missing field 'status'");
	if (m->status != CATALOGUE_CURRENT) {
		if (!(m->set_ & BIT(F_RETIRES)))
			return bad(err, origin(cat, m, F_STATUS), m->id, NULL, "a %s model needs 'retires' "
				   "(its retirement date)", status_names[m->status]);
		if (!(m->set_ & BIT(F_REPLACEMENT)))
			return bad(err, origin(cat, m, F_STATUS), m->id, NULL, "a %s model needs "
				   "'replacement' (the model to suggest)", status_names[m->status]);
	}
	if (m->status == CATALOGUE_RETIRED)
		return 0; /* nothing is sent to a retired model, so the rest may be left out */
	for (size_t i = 0; i < NFIELDS; i++)
		if (fields[i].need && !(m->set_ & BIT(i)))
			return bad(err, origin(cat, m, -1), m->id, NULL, "missing field '%s'", fields[i].name);
	return 0;
}

static int check_model(const struct catalogue *cat, const struct catalogue_model *m,
		       struct buf *err)
{
	if (check_complete(cat, m, err) < 0)
		return -1;
	int has_above = (m->set_ & BIT(F_LONG_ABOVE)) != 0;
	for (int i = F_LONG_FIRST; i <= F_LONG_LAST; i++)
		if (has_above != ((m->set_ & BIT(i)) != 0))
			return bad(err, origin(cat, m, has_above ? F_LONG_ABOVE : i), m->id, NULL,
				   "'long_prompt_above' and all five 'long_price_*' fields go together");
	if (m->deprecated_on && m->retires_on && m->deprecated_on > m->retires_on)
		return bad(err, origin(cat, m, F_RETIRES), m->id, "retires", "before 'deprecated'");
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct catalogue_name_ *)a)->name, ((const struct catalogue_name_ *)b)->name);
}

/* Sorts every id and alias, and refuses a name two models claim. */
static int build_index(struct catalogue *cat, struct buf *err)
{
	size_t n = 0;
	free(cat->index_);
	cat->index_ = xcalloc(cat->n * (1 + CATALOGUE_MAX_ALIASES) + 1, sizeof *cat->index_);
	for (size_t i = 0; i < cat->n; i++) {
		cat->index_[n++] = (struct catalogue_name_){cat->models[i].id, i};
		for (size_t j = 0; j < cat->models[i].n_aliases; j++)
			cat->index_[n++] = (struct catalogue_name_){cat->models[i].aliases[j], i};
	}
	qsort(cat->index_, n, sizeof *cat->index_, by_name);
	cat->n_index_ = n;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(cat->index_[i - 1].name, cat->index_[i].name) != 0)
			continue;
		size_t a = cat->index_[i - 1].model, b = cat->index_[i].model;
		const struct catalogue_model *later = &cat->models[a > b ? a : b];
		return bad(err, origin(cat, later, F_ALIASES), NULL, NULL, "the name '%s' is claimed by "
			   "model '%s' and model '%s'", cat->index_[i].name,
			   cat->models[a < b ? a : b].id, later->id);
	}
	return 0;
}

/* Every replacement names a known model and, followed through, reaches a current one. */
static int check_replacements(const struct catalogue *cat, struct buf *err)
{
	for (size_t i = 0; i < cat->n; i++) {
		const struct catalogue_model *m = &cat->models[i];
		if (m->replacement && !catalogue_find(cat, m->replacement, strlen(m->replacement)))
			return bad(err, origin(cat, m, F_REPLACEMENT), m->id, "replacement",
				   "'%s' is not in the catalogue", m->replacement);
	}
	for (size_t i = 0; i < cat->n; i++) {
		const struct catalogue_model *m = &cat->models[i], *r = m;
		if (!m->replacement)
			continue;
		/* Every name is known now, and every model that is not current names a replacement,
		 * so a chain that reaches no current model goes round in a circle. */
		size_t steps = 0;
		do
			r = catalogue_find(cat, r->replacement, strlen(r->replacement));
		while (r != m && r->status != CATALOGUE_CURRENT && r->replacement && ++steps <= cat->n);
		if (r == m || r->status != CATALOGUE_CURRENT)
			return bad(err, origin(cat, m, F_REPLACEMENT), m->id, "replacement",
				   "'%s' leads to no current model (the replacements go round in a "
				   "circle)", m->replacement);
	}
	return 0;
}

static int check_all(struct catalogue *cat, struct buf *err)
{
	for (size_t i = 0; i < cat->n; i++)
		if (check_model(cat, &cat->models[i], err) < 0)
			return -1;
	if (build_index(cat, err) < 0)
		return -1;
	return check_replacements(cat, err);
}

/* ---- the interface ---- */

int catalogue_parse(struct catalogue *cat, const char *base, size_t base_len,
		    const char *base_name, const char *override, size_t override_len,
		    const char *override_name, struct buf *err)
{
	memset(cat, 0, sizeof *cat);
	cat->base_path = xstrdup(base_name);
	int rc = parse_doc(cat, base, base_len, base_name, 0, err);
	if (rc == 0)
		rc = check_all(cat, err);
	if (rc == 0 && override) {
		cat->override_path = xstrdup(override_name);
		rc = parse_doc(cat, override, override_len, override_name, 1, err);
		if (rc == 0)
			rc = check_all(cat, err);
	}
	if (rc < 0)
		catalogue_release(cat);
	return rc;
}

/* Reads a whole file; 1 when it does not exist (and may be missing), 0 when read, else -1. */
static int read_all(const char *path, int may_be_missing, struct buf *out, struct buf *err)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		if (may_be_missing && errno == ENOENT)
			return 1;
		return bad(err, path, NULL, NULL, "cannot open: %s", strerror(errno));
	}
	char chunk[8192];
	size_t n;
	int rc = 0;
	while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(out, chunk, n) < 0)
			rc = bad(err, path, NULL, NULL, "larger than %u bytes", CATALOGUE_MAX_BYTES);
	if (rc == 0 && ferror(f))
		rc = bad(err, path, NULL, NULL, "cannot read: %s", strerror(errno));
	/* Nothing was written, so closing cannot lose data. */
	(void)fclose(f);
	return rc;
}

int catalogue_load(struct catalogue *cat, const char *base_path, const char *override_path,
		   struct buf *err)
{
	struct buf base, over;
	buf_init(&base, CATALOGUE_MAX_BYTES);
	buf_init(&over, CATALOGUE_MAX_BYTES);
	memset(cat, 0, sizeof *cat);
	int rc = read_all(base_path, 0, &base, err);
	int have_over = 0;
	if (rc == 0 && override_path) {
		int got = read_all(override_path, 1, &over, err);
		rc = got < 0 ? -1 : 0;
		have_over = got == 0;
	}
	if (rc == 0)
		rc = catalogue_parse(cat, buf_cstr(&base), base.len, base_path,
				     have_over ? buf_cstr(&over) : NULL, over.len, override_path, err);
	buf_release(&base);
	buf_release(&over);
	return rc;
}

void catalogue_release(struct catalogue *cat)
{
	for (size_t i = 0; i < cat->n; i++)
		model_free(&cat->models[i]);
	free(cat->models);
	free(cat->index_);
	free(cat->base_path);
	free(cat->override_path);
	memset(cat, 0, sizeof *cat);
}

const struct catalogue_model *catalogue_find(const struct catalogue *cat, const char *name,
					     size_t n)
{
	size_t lo = 0, hi = cat->n_index_;
	if (memchr(name, 0, n))
		return NULL; /* a name with a NUL matches nothing */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *s = cat->index_[mid].name;
		int c = strncmp(s, name, n);
		if (c == 0 && s[n] != 0)
			c = 1; /* s is longer: it sorts after the n bytes */
		if (c == 0)
			return &cat->models[cat->index_[mid].model];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

enum catalogue_status catalogue_status_on(const struct catalogue_model *m, int yyyymmdd)
{
	if (m->status == CATALOGUE_DEPRECATED && m->retires_on && yyyymmdd >= m->retires_on)
		return CATALOGUE_RETIRED;
	return m->status;
}

const struct catalogue_model *catalogue_suggest(const struct catalogue *cat,
						const struct catalogue_model *m)
{
	const struct catalogue_model *r = m;
	/* Loading made sure the chain ends at a current model; the bound is only a guard. */
	for (size_t steps = 0; r && r->replacement && steps <= cat->n; steps++) {
		r = catalogue_find(cat, r->replacement, strlen(r->replacement));
		if (r && r->status == CATALOGUE_CURRENT)
			return r;
	}
	return NULL;
}

int catalogue_effort_ok(const struct catalogue_model *m, const char *level, size_t n)
{
	for (int i = 0; i < 5; i++)
		if (strlen(effort_names[i]) == n && memcmp(effort_names[i], level, n) == 0)
			return (m->effort & (1u << i)) != 0;
	return 0;
}

const char *catalogue_status_name(enum catalogue_status s)
{
	return (unsigned)s < 3 ? status_names[s] : "?";
}

const char *catalogue_thinking_name(enum catalogue_thinking t)
{
	return (unsigned)t < 4 ? thinking_names[t] : "?";
}

/* ---- prices ---- */

/* Adds tokens × price to the micro-dollars and the pico-dollar remainder. A price is micro-dollars
 * per million tokens, so a million tokens cost price micro-dollars and each of the rest price
 * pico-dollars: splitting the count keeps every product in range. */
static int add_cost(struct catalogue_cost *c, unsigned long long *pico, unsigned long long tokens,
		    unsigned long long price)
{
	unsigned long long millions = tokens / 1000000, rest = tokens % 1000000, micro;
	if (__builtin_mul_overflow(millions, price, &micro) ||
	    __builtin_add_overflow(c->micro, micro, &c->micro))
		return -1;
	*pico += rest * price; /* < 1e6 × 1e10 each, five of them: far below 2^64 */
	return 0;
}

int catalogue_cost(const struct catalogue_model *m, const struct catalogue_usage *u,
		   struct catalogue_cost *out)
{
	const struct catalogue_prices *p = &m->price;
	if (m->long_prompt_above > 0) {
		unsigned long long prompt = u->input, limit = (unsigned long long)m->long_prompt_above;
		/* Once past the threshold the exact sum no longer matters: saturate. */
		if (__builtin_add_overflow(prompt, u->cache_write_5m, &prompt) ||
		    __builtin_add_overflow(prompt, u->cache_write_1h, &prompt) ||
		    __builtin_add_overflow(prompt, u->cache_read, &prompt))
			prompt = ULLONG_MAX;
		if (prompt > limit)
			p = &m->long_price;
	}
	struct catalogue_cost c = {0, 0};
	unsigned long long pico = 0;
	if (add_cost(&c, &pico, u->input, p->input) < 0 ||
	    add_cost(&c, &pico, u->output, p->output) < 0 ||
	    add_cost(&c, &pico, u->cache_write_5m, p->cache_write_5m) < 0 ||
	    add_cost(&c, &pico, u->cache_write_1h, p->cache_write_1h) < 0 ||
	    add_cost(&c, &pico, u->cache_read, p->cache_read) < 0 ||
	    __builtin_add_overflow(c.micro, pico / 1000000, &c.micro))
		return -1;
	c.pico = (unsigned long)(pico % 1000000);
	*out = c;
	return 0;
}

unsigned long long catalogue_cost_micro_ceil(const struct catalogue_cost *c)
{
	if (c->pico && c->micro < ULLONG_MAX)
		return c->micro + 1;
	return c->micro;
}
