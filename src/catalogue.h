/* catalogue: what the gateway knows of each model, read from a data file (pure: no I/O but the
 * two files it is told to read).
 *
 * The base file ships in the data directory (data/models.json) and an optional operator override
 * in the settings directory is merged over it field by field, so prices, lifecycle and
 * capabilities change without a rebuild. For each model id: its aliases, lifecycle status
 * (current, deprecated with dates, retired) and the replacement to suggest, context window and
 * maximum output, prices per million tokens (the one price source spend control uses), thinking
 * mode, effort levels, and whether sampling parameters, a forced tool_choice and structured
 * output are accepted. data/README.md describes the format and where the values come from.
 *
 * Loading is strict, like the configuration: an unknown field, a value of the wrong type or out
 * of range, a missing field, a duplicate name, or a replacement that leads nowhere is an error
 * naming the file, the model and the field. */
#ifndef LLM_CATALOGUE_H
#define LLM_CATALOGUE_H

#include <stddef.h>

#include "buf.h"

/* Caps on what a catalogue file may hold: the files are trusted, but a wrong path or a broken
 * download must fail with a message, not exhaust memory. */
#define CATALOGUE_MAX_BYTES (1u << 20)
#define CATALOGUE_MAX_MODELS 1024
#define CATALOGUE_MAX_ALIASES 16
#define CATALOGUE_MAX_NAME 128 /* bytes in a model id or alias */
/* The highest price accepted, in dollars per million tokens: 100 times the dearest model ever
 * listed, so a misplaced decimal point is caught. */
#define CATALOGUE_MAX_PRICE_USD 10000

enum catalogue_status { CATALOGUE_CURRENT = 0, CATALOGUE_DEPRECATED, CATALOGUE_RETIRED };

/* none: the model cannot think; extended: thinking {type:"enabled", budget_tokens} only;
 * adaptive: {type:"adaptive"} (and it can be turned off); always_on: adaptive and cannot be turned
 * off ({type:"disabled"} is a 400). */
enum catalogue_thinking {
	CATALOGUE_THINKING_NONE = 0,
	CATALOGUE_THINKING_EXTENDED,
	CATALOGUE_THINKING_ADAPTIVE,
	CATALOGUE_THINKING_ALWAYS_ON
};

/* The values of output_config.effort, as bits of catalogue_model.effort. */
enum catalogue_effort {
	CATALOGUE_EFFORT_LOW = 1u << 0,
	CATALOGUE_EFFORT_MEDIUM = 1u << 1,
	CATALOGUE_EFFORT_HIGH = 1u << 2,
	CATALOGUE_EFFORT_XHIGH = 1u << 3,
	CATALOGUE_EFFORT_MAX = 1u << 4
};

/* Prices in micro-dollars per million tokens ($0.125/MTok is 125000), which is also
 * pico-dollars per token: integers, so costs are exact. */
struct catalogue_prices {
	unsigned long long input;
	unsigned long long output;
	unsigned long long cache_write_5m;
	unsigned long long cache_write_1h;
	unsigned long long cache_read;
};

/* One model. Read-only for everyone but catalogue.c; strings are owned by the catalogue. Fields a
 * retired model need not have are 0 (or NULL) when the file leaves them out. */
struct catalogue_model {
	char *id;
	char **aliases;
	size_t n_aliases;
	enum catalogue_status status;
	int deprecated_on; /* YYYYMMDD, 0 = not given */
	int retires_on;    /* YYYYMMDD: required for deprecated and retired models, else 0 */
	char *replacement; /* a model id; required for deprecated and retired models, else NULL */
	long context_window; /* tokens */
	long max_output;     /* tokens */
	struct catalogue_prices price;
	/* A prompt (input + cache writes + cache reads) of more than long_prompt_above tokens pays
	 * long_price for every token of the request, output included. 0 = one price band. */
	long long_prompt_above;
	struct catalogue_prices long_price;
	enum catalogue_thinking thinking;
	unsigned effort; /* enum catalogue_effort bits; 0 = the effort parameter is refused */
	int sampling;           /* temperature, top_p, top_k accepted */
	int forced_tool_choice; /* tool_choice {type:"any"} or {type:"tool"} accepted */
	int structured_output;  /* output_config.format accepted */
	char *note;             /* free text from the file, or NULL */
	/* which file each field came from, for messages (catalogue.c's business) */
	unsigned long long set_, from_override_;
	int created_by_override_;
};

struct catalogue {
	struct catalogue_model *models; /* in the order of the files: base, then models the override adds */
	size_t n;
	char *base_path;
	char *override_path; /* NULL when there was no override */
	struct catalogue_name_ *index_; /* every id and alias, sorted, for lookups */
	size_t n_index_;
};

/* Reads base_path (must exist) and, when override_path is not NULL and the file exists, merges it
 * over the base: a model the override names gets the override's fields in place of the base's
 * (the others stay); a model only the override names is added and must be complete. Returns 0
 * (the caller owns *cat: catalogue_release), or -1 with a message appended to err and *cat empty. */
int catalogue_load(struct catalogue *cat, const char *base_path, const char *override_path,
		   struct buf *err);

/* The same from text in memory (len bytes each; override NULL for none); the names are used in
 * messages only. */
int catalogue_parse(struct catalogue *cat, const char *base, size_t base_len,
		    const char *base_name, const char *override, size_t override_len,
		    const char *override_name, struct buf *err);

void catalogue_release(struct catalogue *cat);

/* The model a client's name (n bytes) means, by id or alias, or NULL when the catalogue does not
 * know it. */
const struct catalogue_model *catalogue_find(const struct catalogue *cat, const char *name,
					     size_t n);

/* The status on a day (YYYYMMDD): a deprecated model counts as retired from its retirement date,
 * so the file need not change on that day. */
enum catalogue_status catalogue_status_on(const struct catalogue_model *m, int yyyymmdd);

/* The current model to suggest instead of m: its replacement, followed through replacements that
 * are themselves deprecated or retired (loading checks the chain ends at a current model). NULL
 * when m names no replacement. */
const struct catalogue_model *catalogue_suggest(const struct catalogue *cat,
						const struct catalogue_model *m);

/* 1 when m accepts output_config.effort = level (n bytes), else 0. */
int catalogue_effort_ok(const struct catalogue_model *m, const char *level, size_t n);

/* Names as the file spells them ("deprecated", "always_on", ...). */
const char *catalogue_status_name(enum catalogue_status s);
const char *catalogue_thinking_name(enum catalogue_thinking t);

/* Token counts of one response, as the usage object reports them. */
struct catalogue_usage {
	unsigned long long input;
	unsigned long long output;
	unsigned long long cache_write_5m;
	unsigned long long cache_write_1h;
	unsigned long long cache_read;
};

/* An exact amount: micro micro-dollars plus pico pico-dollars (0..999999). */
struct catalogue_cost {
	unsigned long long micro;
	unsigned long pico;
};

/* The cost of usage at m's prices (the long-prompt band when the prompt is over its threshold).
 * Exact for any counts; returns 0, or -1 when the micro-dollars do not fit an unsigned long long
 * (more than $18 trillion). */
int catalogue_cost(const struct catalogue_model *m, const struct catalogue_usage *u,
		   struct catalogue_cost *out);

/* The cost in whole micro-dollars, rounded up, so that budgets never undercount. */
unsigned long long catalogue_cost_micro_ceil(const struct catalogue_cost *c);

#endif
