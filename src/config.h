/* config: the immutable settings of a process, built once at startup (and again on SIGHUP).
 *
 * One declarative table {key, type, offset, min, max, default} drives the file parser, the
 * environment overrides and --check. Precedence, highest first: arguments (-o key=value), the
 * environment (LLM_FCGI_<KEY>, and ANTHROPIC_BASE_URL for upstream_url), the file, the built-in
 * default. Times are seconds (decimals allowed); sizes are bytes (k/K, m/M, g/G suffixes allowed).
 * Unknown keys and out-of-range values are errors naming the file and line. */
#ifndef LLM_CONFIG_H
#define LLM_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "anthropic.h"
#include "catalogue.h"
#include "client_keys.h"
#include "limits_file.h"
#include "log.h" /* enum log_level */

enum when_full { WHEN_FULL_QUEUE = 0, WHEN_FULL_SHED };
enum store_down { STORE_DOWN_ALLOW = 0, STORE_DOWN_DENY };

struct config {
	/* upstream */
	char *upstream_url;  /* https://api.anthropic.com; the gateway appends /v1/messages */
	char *api_key_file;  /* a file readable only by its owner; NULL when unset */
	char *api_key;       /* the secret itself: ANTHROPIC_API_KEY, else api_key_file. Never printed */
	char *ca_file;       /* PEM CA certificates for an https upstream; NULL = the system's */
	const char *api_key_origin; /* "environment" or "file" (static text), for --check */
	char *client_keys_file; /* hashes of the keys the /v1/ routes require; NULL: open */
	struct client_keys client_keys; /* read from client_keys_file by config_load */
	char *model;
	char *models; /* the model names the /v1/ routes accept: "id alias=id ..."; "" = only model */
	long max_tokens;       /* default for a request that names none */
	long max_tokens_limit; /* ceiling any request may ask for */
	/* thinking of the model behind /summarize and /stream (anthropic_request_body says what
	 * each level sends) */
	enum anth_thinking summarize_thinking;
	enum anth_thinking stream_thinking;
	char *models_file;          /* the model catalogue; NULL = none */
	char *models_override_file; /* merged over it when it exists; NULL = none */
	/* read from models_file (and the override) by config_load; have_catalogue is 0 when the
	 * built-in default path does not exist (a build run from its tree) */
	struct catalogue catalogue;
	int have_catalogue;
	char *summarize_prompt;
	long max_retries;
	double retry_after_cap; /* longest upstream retry-after we wait for, seconds */
	/* timeouts, seconds */
	double connect_timeout;
	double first_byte_timeout;
	double idle_timeout;
	double total_timeout;
	double keepalive_interval;
	double client_read_timeout; /* each read from the web server: params, body */
	/* limits, bytes */
	size_t max_body_bytes;     /* our own endpoints */
	size_t max_body_bytes_api; /* the API-compatible endpoints under /v1/ */
	size_t max_response_bytes; /* one upstream response (non-streaming) or one SSE event */
	/* routing */
	char *base_path;       /* the mount point without LLM_FCGI_BASE_PATH; "" = / */
	char *allowed_origins; /* space- or comma-separated CORS origins; "" = same origin */
	/* process */
	long workers;      /* 0 = this process is the one worker (spawn-fcgi -F, mod_fcgid, bin-path) */
	long max_requests; /* recycle a prefork worker after this many requests; 0 = never */
	double grace_period;
	enum when_full when_full;
	/* spend control (README, "Spend control") */
	char *limits_file;       /* the limits and budgets; NULL = none */
	struct limits limits;    /* read from limits_file by config_load */
	char *state_file;        /* the counters' file; NULL = the pool's shared memory */
	long state_counters;     /* counters the state file or memory holds */
	char *limits_store;      /* redis://HOST:PORT[/DB]; "" = state_file or shared memory */
	double limits_store_timeout;
	enum store_down limits_store_down;
	char *trusted_proxies;   /* addresses whose X-Forwarded-For is believed */
	long usage_days;         /* days the usage report's counters are kept */
	/* metrics and status (README, "Metrics and status") */
	char *metrics_path;      /* the Prometheus exposition's route; "" = none */
	char *status_path;       /* the pool's JSON status route; "" = none */
	char *metrics_allow;     /* client addresses both answer to */
	long metrics_identities; /* identities with series of their own; the rest are "other" */
	double slow_request;     /* seconds after which a request counts as slow */
	char *log_file; /* "" = stderr */
	enum log_level log_level;

	char *source; /* the file the settings came from, or NULL (for messages) */
};

struct config_arg {
	const char *key;
	const char *value;
};

/* Looks a variable up (getenv in the program; a table in the unit tests). */
typedef const char *(*config_getenv_fn)(const char *name);

/* Fills *cfg with the built-in defaults. */
void config_defaults(struct config *cfg);

/* Builds *cfg (which must not hold anything: it is overwritten) from the defaults, then the file, then the environment, then args.
 * path: the file to read; NULL means LLM_FCGI_CONFIG from the environment, else the built-in
 * default path (SYSCONFDIR "/llm-fcgi.conf"), which may be missing. A file named by path or
 * LLM_FCGI_CONFIG must exist. On error returns -1 and sets *errmsg (caller frees) to a message
 * such as "/etc/llm-fcgi.conf:12: max_tokens: 0 is out of range (1..1000000)"; *cfg is then
 * released. On success returns 0; the caller owns *cfg (config_release). */
int config_load(struct config *cfg, const char *path, const struct config_arg *args, size_t nargs,
		config_getenv_fn getenv_fn, char **errmsg);

/* Sets one key from its text form, as the file parser does. Returns 0, or -1 with *errmsg set
 * (without a file:line prefix; caller frees). */
int config_set(struct config *cfg, const char *key, const char *value, char **errmsg);

/* One model name the /v1/ endpoints accept: what clients send, and what the upstream gets (the
 * same for a plain id, the target for an alias). Both point into the config's strings. */
struct config_model {
	const char *name;
	size_t name_len;
	const char *target;
	size_t target_len;
};

/* Iterates over the accepted names in the order of models (just model when models is empty):
 * *pos starts as NULL. Returns 1 with *m set, 0 after the last. */
int config_model_next(const struct config *cfg, const char **pos, struct config_model *m);
/* 1 when models holds "*": identified clients (a client key, the web server's user) may also
 * name any model the catalogue lists as current (handlers_model_find). */
int config_models_any(const struct config *cfg);
/* Looks up a name a client sent (n bytes). Returns 1 with *m set, or 0 when not accepted. */
int config_model_find(const struct config *cfg, const char *name, size_t n, struct config_model *m);

/* The catalogue's entry for a model name (n bytes; an id or an alias the catalogue knows), or
 * NULL when there is no catalogue or it does not list the name. */
const struct catalogue_model *config_model_info(const struct config *cfg, const char *name, size_t n);

/* For --check: one line on out per model the settings send to (model, and the targets of models)
 * that the catalogue lists as deprecated (a warning) or retired on the day yyyymmdd (an error),
 * or does not list (a warning). Returns the number of errors. */
int config_check_models(const struct config *cfg, int yyyymmdd, FILE *out);

/* Writes "key = value" lines for every setting, with the API key shown only as set/unset. */
void config_dump(const struct config *cfg, FILE *out);

void config_release(struct config *cfg);

#endif
