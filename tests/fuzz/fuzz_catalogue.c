/* libFuzzer target for the model catalogue parser. The input is read twice: as a base file on its
 * own, and as an operator override merged over a small fixed base. Either load fails with a
 * message or succeeds, never crashes or leaks; a catalogue that loads keeps its promises: every
 * id and alias finds its own model, every model that is not current suggests a current one, and
 * the price arithmetic either fits or says it does not. */
#include "catalogue.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char base[] =
	"{\"models\": {\"a\": {\"aliases\": [\"a-latest\"], \"status\": \"current\", "
	"\"context_window\": 1000, \"max_output\": 100, \"price_input\": \"1\", \"price_output\": "
	"\"5\", \"price_cache_write_5m\": \"1.25\", \"price_cache_write_1h\": \"2\", "
	"\"price_cache_read\": \"0.10\", \"thinking\": \"none\", \"effort\": [], \"sampling\": true, "
	"\"forced_tool_choice\": true, \"structured_output\": false}, "
	"\"b\": {\"status\": \"retired\", \"retires\": \"2025-01-01\", \"replacement\": \"a-latest\"}}}";

static void check(const struct catalogue *cat)
{
	static const struct catalogue_usage small = {1, 2, 3, 4, 5};
	static const struct catalogue_usage big = {ULLONG_MAX, ULLONG_MAX, 0, 0, ULLONG_MAX};
	struct catalogue_cost c;
	for (size_t i = 0; i < cat->n; i++) {
		const struct catalogue_model *m = &cat->models[i];
		if (catalogue_find(cat, m->id, strlen(m->id)) != m)
			abort();
		for (size_t j = 0; j < m->n_aliases; j++)
			if (catalogue_find(cat, m->aliases[j], strlen(m->aliases[j])) != m)
				abort();
		const struct catalogue_model *s = catalogue_suggest(cat, m);
		if (m->status != CATALOGUE_CURRENT && (!s || s->status != CATALOGUE_CURRENT))
			abort();
		/* Five prices of at most $10,000/MTok on 1..5 tokens cannot overflow. */
		if (catalogue_cost(m, &small, &c) < 0 || c.pico >= 1000000)
			abort();
		if (catalogue_cost(m, &big, &c) == 0 && c.pico >= 1000000)
			abort();
	}
}

static void one(const char *b, size_t blen, const char *o, size_t olen)
{
	struct catalogue cat;
	struct buf err;
	buf_init(&err, 1u << 16);
	if (catalogue_parse(&cat, b, blen, "base", o, olen, "override", &err) < 0) {
		if (err.len == 0)
			abort();
	} else {
		if (err.len != 0)
			abort();
		check(&cat);
		catalogue_release(&cat);
	}
	buf_release(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = size ? (const char *)data : "";
	one(text, size, NULL, 0);
	one(base, sizeof base - 1, text, size);
	return 0;
}
