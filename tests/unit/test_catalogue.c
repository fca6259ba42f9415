/* The model catalogue: the shipped file, merging an override, aliases, every error, prices. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalogue.h"
#include "tap.h"

#define COMPLETE                                                                                   \
	"\"context_window\": 1000000, \"max_output\": 128000, \"price_input\": \"3\", "            \
	"\"price_output\": \"15\", \"price_cache_write_5m\": \"3.75\", "                          \
	"\"price_cache_write_1h\": \"6\", \"price_cache_read\": \"0.30\", \"thinking\": "         \
	"\"adaptive\", \"effort\": [\"low\", \"high\"], \"sampling\": true, "                     \
	"\"forced_tool_choice\": false, \"structured_output\": true"

/* A small base: a current model with an alias, a deprecated one, a retired one. */
static const char base[] =
	"{\"_comment\": [\"test\"], \"sources\": [], \"models\": {\n"
	"\"m-new\": {\"aliases\": [\"m-latest\"], \"status\": \"current\", " COMPLETE "},\n"
	"\"m-mid\": {\"status\": \"deprecated\", \"deprecated\": \"2026-01-10\", \"retires\": "
	"\"2026-03-01\", \"replacement\": \"m-latest\", " COMPLETE "},\n"
	"\"m-old\": {\"aliases\": [\"m-old-latest\"], \"status\": \"retired\", \"retires\": "
	"\"2025-07-21\", \"replacement\": \"m-mid\"}\n}}\n";

static int parse2(struct catalogue *cat, const char *b, const char *o, struct buf *err)
{
	buf_reset(err);
	return catalogue_parse(cat, b, strlen(b), "base.json", o, o ? strlen(o) : 0, "over.json", err);
}

/* Loading base + override must fail with a message containing want. */
static void fails(const char *b, const char *o, const char *want, const char *what)
{
	struct catalogue cat;
	struct buf err;
	buf_init(&err, 4096);
	int rc = parse2(&cat, b, o, &err);
	if (!tap_ok(rc < 0 && strstr(buf_cstr(&err), want) != NULL, "error: %s", what))
		tap_diag("rc %d, message '%s', want '%s'", rc, buf_cstr(&err), want);
	if (rc == 0)
		catalogue_release(&cat);
	buf_release(&err);
}

/* A base with one model whose fields are text (after "status": "current"). */
static const char *one(const char *fields)
{
	static char text[4096];
	snprintf(text, sizeof text, "{\"models\": {\"x\": {\"status\": \"current\", %s}}}", fields);
	return text;
}

static void test_base(void)
{
	struct catalogue cat;
	struct buf err;
	buf_init(&err, 4096);
	tap_is_int(parse2(&cat, base, NULL, &err), 0, "the small base loads");
	tap_is_int(cat.n, 3, "three models");
	const struct catalogue_model *m = catalogue_find(&cat, "m-latest", 8);
	tap_is_str(m ? m->id : NULL, "m-new", "an alias resolves to its model");
	tap_ok(catalogue_find(&cat, "m-new", 5) == m, "and the id to the same");
	tap_ok(catalogue_find(&cat, "m-ne", 4) == NULL, "a prefix of a name is unknown");
	tap_ok(catalogue_find(&cat, "m-latestx", 9) == NULL, "a longer name is unknown");
	tap_ok(catalogue_find(&cat, "m-new\0x", 7) == NULL, "a name with a NUL is unknown");
	tap_ok(catalogue_find(&cat, "m-newer", 5) == m, "only n bytes of the name count");
	tap_is_int(m->context_window, 1000000, "context window");
	tap_is_int(m->max_output, 128000, "max output");
	tap_is_int(m->price.input, 3000000, "$3 is 3,000,000 micro-dollars per MTok");
	tap_is_int(m->price.cache_read, 300000, "$0.30");
	tap_is_int(m->price.cache_write_5m, 3750000, "$3.75");
	tap_is_int(m->thinking, CATALOGUE_THINKING_ADAPTIVE, "thinking");
	tap_is_str(catalogue_thinking_name(m->thinking), "adaptive", "thinking name");
	tap_is_int(catalogue_effort_ok(m, "high", 4), 1, "effort high accepted");
	tap_is_int(catalogue_effort_ok(m, "max", 3), 0, "effort max refused");
	tap_is_int(catalogue_effort_ok(m, "hig", 3), 0, "a prefix of a level is refused");
	tap_is_int(m->sampling, 1, "sampling");
	tap_is_int(m->forced_tool_choice, 0, "forced tool_choice");
	tap_is_int(m->structured_output, 1, "structured output");

	const struct catalogue_model *mid = catalogue_find(&cat, "m-mid", 5);
	tap_is_int(mid->status, CATALOGUE_DEPRECATED, "deprecated");
	tap_is_int(mid->deprecated_on, 20260110, "deprecation date");
	tap_is_int(mid->retires_on, 20260301, "retirement date");
	tap_is_int(catalogue_status_on(mid, 20260228), CATALOGUE_DEPRECATED, "deprecated the day before");
	tap_is_int(catalogue_status_on(mid, 20260301), CATALOGUE_RETIRED, "retired from its date");
	tap_ok(catalogue_suggest(&cat, mid) == m, "suggests its replacement through the alias");
	tap_ok(catalogue_suggest(&cat, m) == NULL, "a current model suggests nothing");

	const struct catalogue_model *old = catalogue_find(&cat, "m-old-latest", 12);
	tap_is_str(catalogue_status_name(old->status), "retired", "retired");
	tap_ok(catalogue_suggest(&cat, old) == m, "a retired model's suggestion skips the deprecated one");
	tap_is_int(old->context_window, 0, "a retired model may leave the rest out");
	catalogue_release(&cat);
	buf_release(&err);
}

static void test_override(void)
{
	struct catalogue cat;
	struct buf err;
	buf_init(&err, 4096);
	const char *over = "{\"models\": {"
			   "\"m-new\": {\"price_input\": \"2.5\", \"aliases\": [\"m-best\", \"m-latest\"]},"
			   "\"m-mid\": {\"status\": \"retired\"},"
			   "\"m-added\": {\"status\": \"current\", " COMPLETE ", \"max_output\": 64000}}}";
	tap_is_int(parse2(&cat, base, over, &err), 0, "an override merges");
	tap_diag("%s", buf_cstr(&err));
	const struct catalogue_model *m = catalogue_find(&cat, "m-best", 6);
	tap_is_str(m ? m->id : NULL, "m-new", "the override's alias list replaces the base's");
	tap_ok(m && m->n_aliases == 2 && catalogue_find(&cat, "m-latest", 8) == m, "both aliases");
	tap_is_int(m->price.input, 2500000, "an overridden price");
	tap_is_int(m->price.output, 15000000, "a price the override leaves alone");
	const struct catalogue_model *mid = catalogue_find(&cat, "m-mid", 5);
	tap_is_int(mid->status, CATALOGUE_RETIRED, "the override retires a model");
	tap_is_int(mid->retires_on, 20260301, "keeping the base's date");
	const struct catalogue_model *added = catalogue_find(&cat, "m-added", 7);
	tap_ok(added && added->max_output == 64000, "the override adds a model (a later field wins)");
	tap_is_int(cat.n, 4, "four models");
	tap_is_str(cat.override_path, "over.json", "the override is recorded");
	catalogue_release(&cat);

	fails(base, "{\"models\": {\"m-new\": {\"price_input\": 2.5}}}",
	      "over.json: model 'm-new': price_input: expected dollars", "a price as a JSON fraction");
	fails(base, "{\"models\": {\"m-added\": {\"status\": \"current\"}}}",
	      "over.json: model 'm-added': missing field 'context_window'", "a new model must be complete");
	fails(base, "{\"models\": {\"m-new\": {\"status\": \"retired\"}}}",
	      "over.json: model 'm-new': a retired model needs 'retires'", "retiring without a date");
	fails(base, "{\"models\": {\"m-new\": {\"status\": \"retired\", \"retires\": \"2026-12-01\", "
		    "\"replacement\": \"m-mid\"}}}",
	      "over.json: model 'm-new': replacement: 'm-mid' leads to no current model (the "
	      "replacements go round in a circle)", "retiring the model a chain ends at, pointing back into it");
	fails(base, "{\"models\": {\"m-x\": {\"aliases\": [\"m-latest\"], \"status\": \"retired\", "
		    "\"retires\": \"2026-12-01\", \"replacement\": \"m-new\"}}}",
	      "over.json: the name 'm-latest' is claimed by model 'm-new' and model 'm-x'",
	      "an alias two models claim");
	fails(base, "{\"models\": {\"m-latest\": {\"status\": \"current\", " COMPLETE "}}}",
	      "over.json: the name 'm-latest' is claimed", "a new model named like an alias");
	fails(base, "{\"bogus\": 1}", "over.json: unknown key 'bogus'", "an unknown top-level key");
	fails(base, "{\"models\": {\"m-new\": {\"aliases\": []}}}",
	      "base.json: model 'm-mid': replacement: 'm-latest' is not in the catalogue",
	      "dropping an alias a replacement uses");
	fails(base, "{\"models\": {\"m-new\": {\"replacement\": \"m-none\"}}}",
	      "over.json: model 'm-new': replacement: 'm-none' is not in the catalogue", "an unknown replacement");
	tap_is_int(parse2(&cat, base, "{}", &err), 0, "an empty override is fine");
	catalogue_release(&cat);
	buf_release(&err);
}

static void test_errors(void)
{
	fails("", NULL, "base.json: line 1: unexpected end", "an empty file");
	fails("{\"models\": {}", NULL, "base.json: line 1: unexpected end", "a truncated file");
	fails("{\"models\": {}}\n{}", NULL, "base.json: line 2: ", "text after the JSON value");
	fails("{\n\"models\": {,}}", NULL, "base.json: line 2: ", "a syntax error names its line");
	fails("[]", NULL, "base.json: expected a JSON object", "not an object");
	fails("{}", NULL, "base.json: no \"models\" object", "no models");
	fails("{\"models\": []}", NULL, "\"models\" must be an object", "models not an object");
	fails("{\"_comment\": 1, \"models\": {}}", NULL, "\"_comment\" must be", "a bad comment");
	fails("{\"sources\": {}, \"models\": {}}", NULL, "\"sources\" must be an array", "bad sources");
	fails("{\"models\": {\"a b\": {}}}", NULL, "base.json: 'a b' is not a model name", "a blank in an id");
	fails("{\"models\": {\"\": {}}}", NULL, "is not a model name", "an empty id");
	fails("{\"models\": {\"x\": 1}}", NULL, "model 'x': expected an object", "a model not an object");
	fails("{\"models\": {\"x\": {}}}", NULL, "base.json: model 'x': missing field 'status'", "no status");
	fails(one("\"colour\": 1"), NULL, "model 'x': unknown field 'colour'", "an unknown field");
	fails(one("\"context_window\": 1"), NULL, "model 'x': missing field 'max_output'", "an incomplete model");
	fails(one(COMPLETE ", \"status\": \"old\""), NULL, "status: expected \"current\"", "a bad status");
	fails(one(COMPLETE ", \"context_window\": 0"), NULL, "context_window: expected a number of tokens",
	      "a zero context window");
	fails(one(COMPLETE ", \"max_output\": 10000001"), NULL, "max_output: expected a number of tokens (1..10000000)",
	      "max output over its cap");
	fails(one(COMPLETE ", \"max_output\": \"5\""), NULL, "max_output: expected", "tokens as a string");
	fails(one(COMPLETE ", \"price_input\": \"-1\""), NULL, "price_input: expected dollars", "a negative price");
	fails(one(COMPLETE ", \"price_input\": -1"), NULL, "price_input: expected dollars", "a negative integer price");
	fails(one(COMPLETE ", \"price_input\": \"1.1234567\""), NULL, "price_input: expected", "7 decimals");
	fails(one(COMPLETE ", \"price_input\": \"1.\""), NULL, "price_input: expected", "a bare point");
	fails(one(COMPLETE ", \"price_input\": \".5\""), NULL, "price_input: expected", "no whole part");
	fails(one(COMPLETE ", \"price_input\": \"1e3\""), NULL, "price_input: expected", "an exponent");
	fails(one(COMPLETE ", \"price_input\": \"10000.000001\""), NULL, "price_input: expected", "over the cap");
	fails(one(COMPLETE ", \"price_input\": \"\""), NULL, "price_input: expected", "an empty price");
	fails(one(COMPLETE ", \"thinking\": \"sometimes\""), NULL, "thinking: expected \"none\"", "a bad thinking");
	fails(one(COMPLETE ", \"effort\": \"high\""), NULL, "effort: expected an array", "effort not an array");
	fails(one(COMPLETE ", \"effort\": [\"huge\"]"), NULL, "effort: entry 1 is not an effort level", "a bad level");
	fails(one(COMPLETE ", \"effort\": [\"low\", \"low\"]"), NULL, "effort: entry 2", "a repeated level");
	fails(one(COMPLETE ", \"sampling\": 1"), NULL, "sampling: expected true or false", "a bad boolean");
	fails(one(COMPLETE ", \"aliases\": \"y\""), NULL, "aliases: expected an array", "aliases not an array");
	fails(one(COMPLETE ", \"aliases\": [\"y\", 2]"), NULL, "aliases: entry 2 is not a model name", "a bad alias");
	fails(one(COMPLETE ", \"aliases\": [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\","
		  "\"m\",\"n\",\"o\",\"p\",\"q\"]"), NULL, "aliases: more than 16 aliases", "too many aliases");
	fails(one(COMPLETE ", \"aliases\": [\"x\"]"), NULL, "the name 'x' is claimed by model 'x' and model 'x'",
	      "a model's alias equal to its id");
	fails(one(COMPLETE ", \"deprecated\": \"2026-02-30\""), NULL, "deprecated: expected a date", "no 30 February");
	fails(one(COMPLETE ", \"deprecated\": \"2025-02-29\""), NULL, "deprecated: expected a date", "no 29 February 2025");
	fails(one(COMPLETE ", \"deprecated\": \"2026-1-01\""), NULL, "deprecated: expected a date", "a short month");
	fails(one(COMPLETE ", \"deprecated\": \"2026-03-01\", \"retires\": \"2026-02-01\""), NULL,
	      "retires: before 'deprecated'", "retiring before deprecating");
	fails(one(COMPLETE ", \"replacement\": \"x\""), NULL, "'x' leads to no current model (the replacements go round",
	      "a model replacing itself");
	fails(one(COMPLETE ", \"note\": 5"), NULL, "note: expected a string", "a bad note");
	fails(one(COMPLETE ", \"long_prompt_above\": 100000"), NULL,
	      "'long_prompt_above' and all five 'long_price_*' fields go together", "a threshold without prices");
	fails(one(COMPLETE ", \"long_price_input\": \"1\""), NULL, "go together", "a long price without a threshold");
	fails("{\"models\": {\"x\": {\"status\": \"deprecated\", \"retires\": \"2026-01-01\", " COMPLETE "}}}", NULL,
	      "a deprecated model needs 'replacement'", "deprecated without replacement");
	fails("{\"models\": {\"x\": {\"status\": \"retired\", \"retires\": \"2026-01-01\", \"replacement\": \"y\"},"
	      "\"y\": {\"status\": \"retired\", \"retires\": \"2026-01-01\", \"replacement\": \"x\"}}}", NULL,
	      "go round in a circle", "two retired models replacing each other");

	struct catalogue cat;
	struct buf err;
	buf_init(&err, 4096);
	static const char nul[] = "{\"models\": {}}\0";
	tap_is_int(catalogue_parse(&cat, nul, sizeof nul - 1, "n.json", NULL, 0, NULL, &err), -1, "a NUL byte");
	tap_ok(strstr(buf_cstr(&err), "n.json: contains a NUL byte") != NULL, "is named");
	buf_release(&err);
}

static void test_caps(void)
{
	struct buf text, err;
	struct catalogue cat;
	buf_init(&text, 4u << 20);
	buf_init(&err, 4096);
	BUF_MUST(buf_appends(&text, "{\"models\": {"));
	for (int i = 0; i <= CATALOGUE_MAX_MODELS; i++)
		BUF_MUST(buf_printf(&text, "%s\"m%d\": {\"status\": \"retired\", \"retires\": \"2026-01-01\", "
				   "\"replacement\": \"m0\"}", i ? "," : "", i));
	BUF_MUST(buf_appends(&text, "}}"));
	tap_is_int(catalogue_parse(&cat, text.data, text.len, "big.json", NULL, 0, NULL, &err), -1,
		   "one model too many");
	tap_ok(strstr(buf_cstr(&err), "big.json: more than 1024 models") != NULL, "is named");
	buf_reset(&text);
	buf_reset(&err);
	BUF_MUST(buf_appends(&text, "{\"_comment\": \""));
	for (unsigned i = 0; i < CATALOGUE_MAX_BYTES; i += 8)
		BUF_MUST(buf_appends(&text, "xxxxxxxx"));
	BUF_MUST(buf_appends(&text, "\", \"models\": {}}"));
	tap_is_int(catalogue_parse(&cat, text.data, text.len, "huge.json", NULL, 0, NULL, &err), -1,
		   "a file over the size cap");
	tap_ok(strstr(buf_cstr(&err), "huge.json: larger than 1048576 bytes") != NULL, "is named");
	buf_release(&text);
	buf_release(&err);
}

static void test_cost(void)
{
	struct catalogue cat;
	struct buf err;
	struct catalogue_cost c;
	buf_init(&err, 4096);
	const char *doc = "{\"models\": {\"h\": {\"status\": \"current\", " COMPLETE ", "
			  "\"price_input\": \"0.10\", \"price_output\": \"0.50\", \"price_cache_write_5m\": "
			  "\"0.125\", \"price_cache_write_1h\": \"0.20\", \"price_cache_read\": \"0.01\", "
			  "\"long_prompt_above\": 100000, \"long_price_input\": \"0.50\", \"long_price_output\": "
			  "\"2.50\", \"long_price_cache_write_5m\": \"0.625\", \"long_price_cache_write_1h\": 1, "
			  "\"long_price_cache_read\": \"0.05\"}, \"dear\": {\"status\": \"current\", " COMPLETE
			  ", \"price_input\": \"10000\"}}}";
	tap_is_int(parse2(&cat, doc, NULL, &err), 0, "a two-band model loads");
	tap_diag("%s", buf_cstr(&err));
	const struct catalogue_model *h = catalogue_find(&cat, "h", 1);
	struct catalogue_usage u = {1, 0, 0, 0, 0};
	tap_is_int(catalogue_cost(h, &u, &c), 0, "one input token");
	tap_ok(c.micro == 0 && c.pico == 100000, "costs 0.1 micro-dollars exactly");
	tap_is_int(catalogue_cost_micro_ceil(&c), 1, "rounded up to one micro-dollar");
	u = (struct catalogue_usage){1000000, 1000000, 1000000, 1000000, 1000000};
	tap_is_int(catalogue_cost(h, &u, &c), 0, "a million of each");
	tap_ok(c.micro == 4675000 && c.pico == 0, "over the threshold: every token at the long band");
	tap_diag("got %llu micro + %lu pico", c.micro, c.pico);
	u = (struct catalogue_usage){100000, 1000, 0, 0, 0};
	catalogue_cost(h, &u, &c);
	tap_ok(c.micro == 10000 + 500 && c.pico == 0, "a prompt of exactly the threshold pays the low band");
	u = (struct catalogue_usage){99999, 0, 0, 0, 2};
	catalogue_cost(h, &u, &c);
	tap_ok(c.micro == 49999 && c.pico == 600000, "cache reads count towards the threshold");
	tap_diag("got %llu micro + %lu pico", c.micro, c.pico);
	u = (struct catalogue_usage){3, 7, 11, 13, 17};
	catalogue_cost(h, &u, &c);
	/* 0.3 + 3.5 + 1.375 + 2.6 + 0.17 micro-dollars */
	tap_ok(c.micro == 7 && c.pico == 945000, "small counts are summed exactly");
	u = (struct catalogue_usage){ULLONG_MAX, 0, 0, 0, 0};
	tap_is_int(catalogue_cost(h, &u, &c), 0, "2^64-1 tokens at $0.50/MTok fit");
	tap_ok(c.micro == (ULLONG_MAX / 1000000) * 500000 + (ULLONG_MAX % 1000000) * 500000 / 1000000 &&
		       c.pico == (ULLONG_MAX % 1000000) * 500000 % 1000000,
	       "and are exact");
	const struct catalogue_model *dear = catalogue_find(&cat, "dear", 4);
	tap_is_int(catalogue_cost(dear, &u, &c), -1, "2^64-1 tokens at $10,000/MTok overflow: an error");
	u = (struct catalogue_usage){1000000000000ull, 1000000000000ull, 0, 0, 0};
	tap_is_int(catalogue_cost(dear, &u, &c), 0, "a trillion tokens at $10,000/MTok");
	tap_ok(c.micro == 10000000000000000ull + 15000000000000ull && c.pico == 0, "are exact");
	struct catalogue_cost full = {ULLONG_MAX, 1};
	tap_ok(catalogue_cost_micro_ceil(&full) == ULLONG_MAX, "rounding up saturates");
	catalogue_release(&cat);
	buf_release(&err);
}

/* The shipped file loads, and holds what the issue names. */
static void test_shipped(void)
{
	const char *srcdir = getenv("srcdir");
	struct buf path, err;
	struct catalogue cat;
	buf_init(&path, 4096);
	buf_init(&err, 4096);
	BUF_MUST(buf_printf(&path, "%s/data/models.json", srcdir ? srcdir : "."));
	int rc = catalogue_load(&cat, buf_cstr(&path), "/nonexistent/llm-fcgi-models.json", &err);
	if (!tap_ok(rc == 0, "data/models.json loads (a missing override is no override)")) {
		tap_diag("%s", buf_cstr(&err));
		buf_release(&path);
		buf_release(&err);
		return;
	}
	tap_ok(cat.override_path == NULL, "no override recorded");
	const struct catalogue_model *s4 = catalogue_find(&cat, "claude-sonnet-4-20250514", 24);
	tap_ok(s4 && s4->status == CATALOGUE_RETIRED && s4->retires_on == 20260615,
	       "claude-sonnet-4-20250514 retired 2026-06-15");
	const struct catalogue_model *sug = s4 ? catalogue_suggest(&cat, s4) : NULL;
	tap_is_str(sug ? sug->id : NULL, "claude-sonnet-4-6", "with a current suggestion");
	const struct catalogue_model *h35 = catalogue_find(&cat, "claude-3-5-haiku-latest", 23);
	tap_ok(h35 && h35->status == CATALOGUE_RETIRED && h35->retires_on == 20260219,
	       "claude-3-5-haiku (by alias) retired 2026-02-19");
	const struct catalogue_model *o = catalogue_find(&cat, "claude-opus-5-5", 15);
	tap_ok(o && o->status == CATALOGUE_CURRENT && o->thinking == CATALOGUE_THINKING_ALWAYS_ON &&
		       !o->forced_tool_choice && !o->sampling && o->price.input == 4000000,
	       "claude-opus-5-5: current, always-on thinking, no forced tool_choice, $4 input");
	tap_ok(catalogue_find(&cat, "claude-haiku-5-5", 16) &&
		       catalogue_find(&cat, "claude-haiku-5-5", 16)->long_prompt_above == 100000,
	       "claude-haiku-5-5 has two price bands");
	for (size_t i = 0; i < cat.n; i++) {
		const struct catalogue_model *m = &cat.models[i];
		if (m->status != CATALOGUE_CURRENT && !catalogue_suggest(&cat, m))
			tap_ok(0, "%s has no suggestion", m->id);
	}
	catalogue_release(&cat);

	buf_reset(&err);
	tap_is_int(catalogue_load(&cat, "/nonexistent/models.json", NULL, &err), -1, "a missing base");
	tap_ok(strstr(buf_cstr(&err), "/nonexistent/models.json: cannot open") != NULL, "is named");
	buf_reset(&err);
	char tmp[] = "/tmp/test_catalogue_XXXXXX";
	int fd = mkstemp(tmp);
	static const char bad_over[] = "{\"models\": {\"claude-opus-5-5\": {\"sampling\": \"yes\"}}}";
	tap_ok(fd >= 0 && write(fd, bad_over, sizeof bad_over - 1) == (ssize_t)(sizeof bad_over - 1),
	       "an override file written");
	close(fd);
	tap_is_int(catalogue_load(&cat, buf_cstr(&path), tmp, &err), -1, "a bad override fails");
	tap_ok(strstr(buf_cstr(&err), "model 'claude-opus-5-5': sampling: expected true or false") &&
		       strncmp(buf_cstr(&err), tmp, strlen(tmp)) == 0,
	       "naming the override file, the model and the field");
	tap_diag("%s", buf_cstr(&err));
	unlink(tmp);
	buf_release(&path);
	buf_release(&err);
}

int main(void)
{
	test_base();
	test_override();
	test_errors();
	test_caps();
	test_cost();
	test_shipped();
	return tap_done();
}
