/* config: the settings of a process. One table below describes every key; defaults, the file
 * parser, the environment, -o arguments and the dump are loops over it, so adding a key takes one
 * entry there (and its field in struct config). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* explicit_bzero, and the POSIX calls a -std=c11 build hides */
#endif
#include "config.h" /* this module's header: quotes search src/ before -I. */

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef DATADIR
#define DATADIR "/usr/share"
#endif
#define DEFAULT_PATH SYSCONFDIR "/llm-fcgi/llm-fcgi.conf"
/* Where the settings lived before they moved into their directory (README, "Install"): still
 * read, with a warning, when the default file is missing. */
static const char *const legacy_paths[] = {SYSCONFDIR "/llm-fcgi.conf", "/etc/llm-fcgi.conf"};
#define DEFAULT_MODELS DATADIR "/llm-fcgi/models.json"

#define CONF_LINE_MAX 65536 /* bytes in one line of the file, without its newline */
#define KEY_FILE_MAX 4096   /* bytes in api_key_file; real keys are about 100 */
#define CLIENT_KEYS_FILE_MAX (1024 * 1024) /* bytes in client_keys_file: some 15,000 hashes */
#define SHOW_MAX 64         /* bytes of a value quoted in an error message */
#define ENV_PREFIX "LLM_FCGI_"
/* Messages are built in a buf without a practical cap: their parts are numbers, values cut to
 * SHOW_MAX, and paths, which the caller and the file bound. */
#define MSG_MAX ((size_t)-1 / 2)

/* Enum keys are stored through an int lvalue. */
_Static_assert(sizeof(enum when_full) == sizeof(int), "enum when_full is stored as an int");
_Static_assert(sizeof(enum store_down) == sizeof(int), "enum store_down is stored as an int");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum log_level is stored as an int");
_Static_assert(sizeof(enum anth_thinking) == sizeof(int), "enum anth_thinking is stored as an int");

enum opt_type {
	OPT_STRING,  /* char *, xstrdup'd; check() vets and may normalise it */
	OPT_LONG,    /* long: a decimal integer within [min, max] */
	OPT_SECONDS, /* double: a decimal number of seconds within [min, max] */
	OPT_SIZE,    /* size_t: bytes, with an optional k/m/g suffix (x1024^n), within [min, max] */
	OPT_ENUM,    /* an enum stored as int: the index of the value in names[] */
};

struct opt {
	const char *key;
	enum opt_type type;
	size_t offset;    /* of the field in struct config */
	double min, max;  /* OPT_LONG, OPT_SECONDS, OPT_SIZE; exact for every integer bound used */
	const char *def;  /* the default in the file's syntax; NULL leaves the field NULL */
	const char *help; /* one line, printed by config_dump */
	/* OPT_STRING: returns NULL, or why *value is refused. It may shorten the string in place,
	 * or replace it (with NULL for "unset"). */
	const char *(*check)(char **value);
	const char *const *names; /* OPT_ENUM: the values, indexed by the enum, NULL-terminated */
	const char *env_alias;    /* a foreign variable also read, below LLM_FCGI_<KEY> */
};

static int is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int is_control(int c)
{
	return (c >= 0 && c < 0x20) || c == 0x7f;
}

/* ---- checks for string keys ---- */

/* Values end up in log lines, HTTP headers and file names: none may hide a line break. */
static const char *check_line(char **value)
{
	for (const char *p = *value; *p; p++)
		if (is_control((unsigned char)*p))
			return "must not contain control characters";
	return NULL;
}

static const char *check_name(char **value)
{
	return **value ? check_line(value) : "must not be empty";
}

/* An empty value means "none", stored as NULL (api_key_file). */
static const char *check_optional_path(char **value)
{
	const char *bad = check_line(value);
	if (!bad && !**value) {
		free(*value);
		*value = NULL;
	}
	return bad;
}

/* A prompt is text sent as JSON, so newlines and tabs are fine there. */
static const char *check_prompt(char **value)
{
	if (!**value)
		return "must not be empty";
	for (const char *p = *value; *p; p++)
		if (is_control((unsigned char)*p) && *p != '\n' && *p != '\t')
			return "must not contain control characters other than newline and tab";
	return NULL;
}

static const char *check_url(char **value)
{
	char *s = *value;
	size_t scheme;
	if (strncasecmp(s, "https://", 8) == 0)
		scheme = 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		scheme = 7;
	else
		return "must start with http:// or https://";
	if (!s[scheme] || s[scheme] == '/')
		return "has no host";
	for (const char *p = s; *p; p++)
		if (is_control((unsigned char)*p) || *p == ' ')
			return "must not contain spaces or control characters";
	/* The gateway appends "/v1/messages": "https://host/" would give "https://host//v1/..." */
	size_t n = strlen(s);
	while (s[n - 1] == '/')
		s[--n] = '\0';
	return NULL;
}

/* Routes are matched as base_path + "/route", so the root "/" is stored as "". */
static const char *check_base_path(char **value)
{
	char *s = *value;
	if (*s && *s != '/')
		return "must be empty or start with '/'";
	const char *bad = check_line(value);
	if (bad)
		return bad;
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
	return NULL;
}

/* The separators between entries of models. */
#define LIST_SEPARATORS " ,"

/* One entry of models: "id" or "alias=id". */
static void split_model(const char *p, size_t n, struct config_model *m)
{
	const char *eq = memchr(p, '=', n);
	m->name = p;
	m->name_len = eq ? (size_t)(eq - p) : n;
	m->target = eq ? eq + 1 : p;
	m->target_len = eq ? n - m->name_len - 1 : n;
}

/* Steps over one entry of a models list; returns 0 at its end. */
static int next_entry(const char **pos, const char **p, size_t *n)
{
	*pos += strspn(*pos, LIST_SEPARATORS);
	if (!**pos)
		return 0;
	*p = *pos;
	*n = strcspn(*pos, LIST_SEPARATORS);
	*pos += *n;
	return 1;
}

/* Model names go into JSON and upstream request bodies: the checks keep them plain. */
static const char *check_models(char **value)
{
	const char *bad = check_line(value);
	if (bad)
		return bad;
	const char *pos = *value, *p, *q;
	size_t n, k;
	while (next_entry(&pos, &p, &n)) {
		struct config_model m;
		split_model(p, n, &m);
		if (!m.name_len || !m.target_len || memchr(m.target, '=', m.target_len))
			return "must be model ids or alias=id, separated by spaces or commas";
		if (m.name != m.target && (memchr(m.name, '*', m.name_len) ||
					   memchr(m.target, '*', m.target_len)))
			return "has '*' in an alias: '*' stands alone";
		if (m.name_len > 256 || m.target_len > 256)
			return "has a model name longer than 256 bytes";
		for (const char *r = *value; next_entry(&r, &q, &k) && q < p;) {
			struct config_model o;
			split_model(q, k, &o);
			if (o.name_len == m.name_len && memcmp(o.name, m.name, m.name_len) == 0)
				return "names a model twice";
		}
	}
	return NULL;
}

/* Addresses and ranges only: a name would need a resolver on every request. */
static const char *check_addr_list(char **value)
{
	const char *bad = check_line(value);
	return bad ? bad : limits_check_addr_list(*value);
}

/* "" (the local store), or redis://HOST:PORT[/DB]: the Redis backend reads the rest. */
static const char *check_store_url(char **value)
{
	const char *bad = check_line(value);
	if (bad)
		return bad;
	if (**value && strncmp(*value, "redis://", 8) != 0)
		return "must be empty or redis://HOST:PORT[/DB]";
	return NULL;
}

/* ---- the table ---- */

static const char *const when_full_names[] = {
	[WHEN_FULL_QUEUE] = "queue",
	[WHEN_FULL_SHED] = "shed",
	[WHEN_FULL_SHED + 1] = NULL,
};

static const char *const thinking_names[] = {
	[ANTH_THINKING_OFF] = "off",
	[ANTH_THINKING_LOW] = "low",
	[ANTH_THINKING_MEDIUM] = "medium",
	[ANTH_THINKING_HIGH] = "high",
	[ANTH_THINKING_HIGH + 1] = NULL,
};

static const char *const store_down_names[] = {
	[STORE_DOWN_ALLOW] = "allow",
	[STORE_DOWN_DENY] = "deny",
	[STORE_DOWN_DENY + 1] = NULL,
};

static const char *const log_level_names[] = {
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warn",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
	[LOG_DEBUG + 1] = NULL,
};

/* The key is the field's name, so the two cannot drift apart. */
#define KEY(field, kind, ...)                                                                      \
	{                                                                                          \
		.key = #field, .type = kind, .offset = offsetof(struct config, field), __VA_ARGS__ \
	}
#define KIB 1024.0
#define MIB (1024.0 * KIB)
#define GIB (1024.0 * MIB)

static const struct opt opts[] = {
	/* upstream */
	KEY(upstream_url, OPT_STRING, .def = "https://api.anthropic.com", .check = check_url,
		.env_alias = "ANTHROPIC_BASE_URL",
		.help = "base URL of the Messages API; /v1/messages is appended"),
	KEY(api_key_file, OPT_STRING, .def = NULL, .check = check_optional_path,
		.help = "file holding the API key, mode 600, read when ANTHROPIC_API_KEY is unset"),
	KEY(ca_file, OPT_STRING, .def = NULL, .check = check_optional_path,
		.help = "CA certificates (PEM) the upstream's certificate is checked against; "
			"empty = the system's"),
	KEY(client_keys_file, OPT_STRING, .def = NULL, .check = check_optional_path,
		.help = "file of SHA-256 hashes of the keys /v1/ clients must send, mode 600; "
			"empty = /v1/ is open"),
	KEY(model, OPT_STRING, .def = "claude-sonnet-5-5", .check = check_name,
		.help = "model the requests are sent to"),
	KEY(models, OPT_STRING, .def = "", .check = check_models,
		.help = "models /v1/ clients may name (id or alias=id, space or comma separated); "
			"* adds every current catalogue model for keyed or authenticated clients; "
			"empty = model only"),
	/* Thinking counts against max_tokens: 1024 leaves a summary room even on a model that
	 * always thinks (at low effort). */
	KEY(max_tokens, OPT_LONG, .min = 1, .max = 1000000, .def = "1024",
		.help = "max_tokens of a request that names none"),
	KEY(max_tokens_limit, OPT_LONG, .min = 1, .max = 1000000, .def = "8192",
		.help = "largest max_tokens a request may ask for"),
	KEY(summarize_thinking, OPT_ENUM, .names = thinking_names, .def = "off",
		.help = "thinking before a /summarize answer: off (low effort where it cannot be "
			"turned off), low, medium or high"),
	KEY(stream_thinking, OPT_ENUM, .names = thinking_names, .def = "off",
		.help = "thinking before a /stream answer: off, low, medium or high"),
	KEY(models_file, OPT_STRING, .def = DEFAULT_MODELS, .check = check_optional_path,
		.help = "the model catalogue (JSON); empty = none"),
	KEY(models_override_file, OPT_STRING, .def = SYSCONFDIR "/llm-fcgi/models.override.json",
		.check = check_optional_path,
		.help = "operator changes merged over the catalogue, if the file exists; empty = none"),
	KEY(summarize_prompt, OPT_STRING,
		.def = "Summarize the text the user sends in a few sentences. "
		       "Reply with the summary only.",
		.check = check_prompt, .help = "system prompt of the summarize endpoints"),
	KEY(max_retries, OPT_LONG, .min = 0, .max = 10, .def = "2",
		.help = "retries of a failed upstream request"),
	KEY(retry_after_cap, OPT_SECONDS, .min = 0, .max = 3600, .def = "60",
		.help = "longest upstream retry-after waited for, seconds"),
	/* timeouts */
	KEY(connect_timeout, OPT_SECONDS, .min = 0.1, .max = 600, .def = "10",
		.help = "seconds to connect to the upstream"),
	KEY(first_byte_timeout, OPT_SECONDS, .min = 0.1, .max = 3600, .def = "60",
		.help = "seconds to wait for the first byte of the upstream answer"),
	KEY(idle_timeout, OPT_SECONDS, .min = 0.1, .max = 3600, .def = "60",
		.help = "seconds of upstream silence tolerated within an answer"),
	KEY(total_timeout, OPT_SECONDS, .min = 1, .max = 86400, .def = "600",
		.help = "seconds one request may take in all"),
	KEY(keepalive_interval, OPT_SECONDS, .min = 0.1, .max = 3600, .def = "15",
		.help = "seconds between keepalive comments on an idle stream"),
	KEY(client_read_timeout, OPT_SECONDS, .min = 0.1, .max = 3600, .def = "30",
		.help = "seconds a read from the web server (request params, each body read) may wait"),
	/* limits */
	KEY(max_body_bytes, OPT_SIZE, .min = KIB, .max = GIB, .def = "1M",
		.help = "largest request body accepted, bytes (k, m, g suffixes)"),
	KEY(max_body_bytes_api, OPT_SIZE, .min = KIB, .max = GIB, .def = "32M",
		.help = "largest request body accepted under /v1/, bytes"),
	KEY(max_response_bytes, OPT_SIZE, .min = 64 * KIB, .max = GIB, .def = "8M",
		.help = "largest upstream response or stream event, bytes"),
	/* routing */
	KEY(base_path, OPT_STRING, .def = "", .check = check_base_path,
		.help = "mount point when the server passes no LLM_FCGI_BASE_PATH; empty = /"),
	KEY(allowed_origins, OPT_STRING, .def = "", .check = check_line,
		.help = "other browser origins allowed (CORS); empty = the same origin only"),
	/* process */
	KEY(workers, OPT_LONG, .min = 0, .max = 10000, .def = "0",
		.help = "prefork workers; 0 = this process is the one worker"),
	KEY(max_requests, OPT_LONG, .min = 0, .max = 1e9, .def = "0",
		.help = "requests a prefork worker serves before it is replaced; 0 = never"),
	KEY(grace_period, OPT_SECONDS, .min = 0, .max = 3600, .def = "30",
		.help = "seconds running requests get to finish on shutdown or reload"),
	KEY(when_full, OPT_ENUM, .names = when_full_names, .def = "queue",
		.help = "every worker busy: queue (wait for one) or shed (answer 503)"),
	/* spend control */
	KEY(limits_file, OPT_STRING, .def = NULL, .check = check_optional_path,
		.help = "limits and budgets per identity and for the server; unset = none"),
	KEY(state_file, OPT_STRING, .def = NULL, .check = check_optional_path,
		.help = "the counters' file (mode 600), shared with CGI; unset = the pool's memory"),
	KEY(state_counters, OPT_LONG, .min = 1024, .max = 16777216, .def = "65536",
		.help = "counters the state holds (168 bytes each)"),
	KEY(limits_store, OPT_STRING, .def = "", .check = check_store_url,
		.help = "redis://HOST:PORT[/DB] to share counters between hosts; empty = local"),
	KEY(limits_store_timeout, OPT_SECONDS, .min = 0.001, .max = 10, .def = "0.05",
		.help = "seconds one call to limits_store may take"),
	KEY(limits_store_down, OPT_ENUM, .names = store_down_names, .def = "allow",
		.help = "limits_store unreachable: allow (uncounted) or deny (503)"),
	KEY(trusted_proxies, OPT_STRING, .def = "", .check = check_addr_list,
		.help = "proxies whose X-Forwarded-For names the client address"),
	KEY(usage_days, OPT_LONG, .min = 1, .max = 3660, .def = "92",
		.help = "days the usage report's counters are kept"),
	/* metrics and status */
	KEY(metrics_path, OPT_STRING, .def = "/metrics", .check = check_base_path,
		.help = "route of the Prometheus metrics; empty = none"),
	KEY(status_path, OPT_STRING, .def = "/status", .check = check_base_path,
		.help = "route of the pool's JSON status; empty = none"),
	KEY(metrics_allow, OPT_STRING, .def = "127.0.0.0/8 ::1", .check = check_addr_list,
		.help = "client addresses the metrics and status routes answer"),
	KEY(metrics_identities, OPT_LONG, .min = 0, .max = 10000, .def = "50",
		.help = "key labels and users with series of their own; the rest are other"),
	KEY(slow_request, OPT_SECONDS, .min = 0.001, .max = 86400, .def = "30",
		.help = "seconds after which a request counts as slow in the status"),
	/* logging */
	KEY(log_file, OPT_STRING, .def = "", .check = check_line,
		.help = "file to log to; empty = stderr"),
	KEY(log_level, OPT_ENUM, .names = log_level_names, .def = "info",
		.help = "error, warn, info or debug"),
};

#define NOPTS (sizeof opts / sizeof opts[0])

static const struct opt *find_opt(const char *key)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].key, key) == 0)
			return &opts[i];
	return NULL;
}

/* ---- messages ---- */

static void msg_init(struct buf *m)
{
	buf_init(m, MSG_MAX);
}

__attribute__((format(printf, 2, 3))) static void say(struct buf *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = buf_vprintf(m, fmt, ap);
	va_end(ap);
	/* MSG_MAX is out of reach: only vsnprintf itself failing gets here. */
	if (rc < 0)
		abort();
}

/* Appends text for a message, control characters escaped and cut after SHOW_MAX bytes (at a
 * UTF-8 boundary), so that a stray 64 KiB line does not become a 64 KiB log entry. */
static void say_text(struct buf *m, const char *text)
{
	size_t n = strlen(text), cut = n;
	if (cut > SHOW_MAX) {
		cut = SHOW_MAX;
		while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
			cut--;
	}
	for (size_t i = 0; i < cut; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\n')
			say(m, "\\n");
		else if (c == '\t')
			say(m, "\\t");
		else if (is_control(c))
			say(m, "\\x%02x", c);
		else
			say(m, "%c", c);
	}
	if (cut < n)
		say(m, "...");
}

static void say_quoted(struct buf *m, const char *text)
{
	say(m, "'");
	say_text(m, text);
	say(m, "'");
}

/* Splits a size into a number and the largest suffix that divides it exactly ("8M", "1536"). */
static const char *size_unit(unsigned long long *v)
{
	static const char *const units[] = {"", "K", "M", "G"};
	size_t i = 0;
	while (i + 1 < sizeof units / sizeof units[0] && *v && *v % 1024 == 0) {
		*v /= 1024;
		i++;
	}
	return units[i];
}

static void say_size(struct buf *m, unsigned long long v)
{
	const char *unit = size_unit(&v);
	say(m, "%llu%s", v, unit);
}

static int out_of_range(struct buf *why, const struct opt *o, const char *text)
{
	say_text(why, text);
	say(why, " is out of range (");
	if (o->type == OPT_SIZE) {
		say_size(why, (unsigned long long)o->min);
		say(why, "..");
		say_size(why, (unsigned long long)o->max);
		say(why, ")");
	} else {
		say(why, "%.15g..%.15g)", o->min, o->max);
	}
	return -1;
}

static int not_a(struct buf *why, const char *text, const char *what)
{
	say_quoted(why, text);
	say(why, " is not %s", what);
	return -1;
}

/* ---- value parsers: 0, or -1 when text is not of the type (ranges are checked after) ---- */

static int parse_long(const char *text, long *out)
{
	/* strtol would skip leading blanks and take "" as 0. */
	if (!isdigit((unsigned char)text[text[0] == '+' || text[0] == '-']))
		return -1;
	char *end;
	/* On overflow strtol clamps to LONG_MIN/LONG_MAX, which every range rejects. */
	long v = strtol(text, &end, 10);
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int parse_size(const char *text, unsigned long long *out)
{
	/* No sign: strtoull would turn "-1" into a huge number. */
	if (!isdigit((unsigned char)text[0]))
		return -1;
	char *end;
	unsigned long long v = strtoull(text, &end, 10); /* clamps to ULLONG_MAX, out of range */
	if (*end) {
		static const char suffixes[] = "kmg";
		const char *s = strchr(suffixes, tolower((unsigned char)*end));
		if (!s || end[1])
			return -1;
		unsigned shift = 10 * (unsigned)(s - suffixes + 1);
		v = v > (ULLONG_MAX >> shift) ? ULLONG_MAX : v << shift;
	}
	*out = v;
	return 0;
}

static int parse_seconds(const char *text, double *out)
{
	/* Plain decimal only: strtod would also take "inf", "nan" and hex floats. The program never
	 * calls setlocale, so the decimal point is '.'. */
	if (!*text || text[strspn(text, "0123456789.eE+-")])
		return -1;
	char *end;
	/* Overflow gives HUGE_VAL, which every range rejects: what passes is finite. */
	double v = strtod(text, &end);
	if (end == text || *end)
		return -1;
	*out = v == 0 ? 0 : v; /* not -0, which config_dump would print as "-0" */
	return 0;
}

/* Sets one key from its text. Returns 0, or -1 with the reason appended to why; the field is
 * then unchanged. */
static int opt_set(struct config *cfg, const struct opt *o, const char *text, struct buf *why)
{
	void *field = (char *)cfg + o->offset;
	switch (o->type) {
	case OPT_STRING: {
		char *v = xstrdup(text);
		const char *bad = o->check(&v);
		if (bad) {
			free(v);
			say_quoted(why, text);
			say(why, " %s", bad);
			return -1;
		}
		free(*(char **)field);
		*(char **)field = v;
		return 0;
	}
	case OPT_LONG: {
		long v;
		if (parse_long(text, &v) < 0)
			return not_a(why, text, "an integer");
		if (v < o->min || v > o->max)
			return out_of_range(why, o, text);
		*(long *)field = v;
		return 0;
	}
	case OPT_SECONDS: {
		double v;
		if (parse_seconds(text, &v) < 0)
			return not_a(why, text, "a number of seconds");
		if (!(v >= o->min && v <= o->max))
			return out_of_range(why, o, text);
		*(double *)field = v;
		return 0;
	}
	case OPT_SIZE: {
		unsigned long long v;
		if (parse_size(text, &v) < 0)
			return not_a(why, text,
				"a size (bytes, with an optional k, m or g suffix)");
		if (v < o->min || v > o->max)
			return out_of_range(why, o, text);
		*(size_t *)field = (size_t)v;
		return 0;
	}
	case OPT_ENUM:
		for (int i = 0; o->names[i]; i++) {
			if (strcmp(text, o->names[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		say_quoted(why, text);
		for (int i = 0; o->names[i]; i++)
			say(why, "%s%s", i ? ", " : " is not one of ", o->names[i]);
		return -1;
	}
	abort(); /* every type returned above */
}

/* ---- the file ---- */

/* Reads one line, without its '\n', into line. Returns 1, 0 at the end of the file, -1 when the
 * line is longer than line->max, -2 on a read error (errno set). */
static int read_line(FILE *f, struct buf *line)
{
	int c;
	buf_reset(line);
	while ((c = getc(f)) != EOF && c != '\n')
		if (buf_appendc(line, (char)c) < 0)
			return -1;
	if (c == EOF && ferror(f))
		return -2;
	return c == EOF && line->len == 0 ? 0 : 1;
}

static char *skip_blanks(char *s)
{
	while (is_blank((unsigned char)*s))
		s++;
	return s;
}

static void trim_end(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && is_blank((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* Decodes a double-quoted value in place; q points at the opening quote. Returns NULL, or why
 * the line is refused. */
static const char *unquote(char *q)
{
	char *r = q + 1, *w = q;
	for (;;) {
		char c = *r++;
		if (c == '\0')
			return "missing closing quote";
		if (c == '"')
			break;
		if (c == '\\') {
			switch (c = *r++) {
			case '"':
			case '\\':
				break;
			case 'n':
				c = '\n';
				break;
			case '\0':
				return "missing closing quote";
			default:
				return "unknown escape in quotes (use \\\", \\\\ or \\n)";
			}
		}
		*w++ = c;
	}
	*w = '\0';
	r = skip_blanks(r);
	if (*r && *r != '#')
		return "text after the closing quote";
	return NULL;
}

/* Splits a line in place into *key and *value; *key is NULL for a blank or comment line.
 * Returns NULL, or why the line is refused. */
static const char *split_line(char *s, char **key, char **value)
{
	*key = NULL;
	s = skip_blanks(s);
	if (!*s || *s == '#')
		return NULL;
	char *eq = strchr(s, '=');
	if (!eq)
		return "expected 'key = value'";
	*eq = '\0';
	trim_end(s);
	if (!*s)
		return "missing key before '='";
	char *v = skip_blanks(eq + 1);
	if (*v == '"') {
		const char *bad = unquote(v);
		if (bad)
			return bad;
	} else {
		/* A '#' after a blank starts a comment; *eq is now '\0', so "key =#x" keeps "#x"
		 * but "key = #x" is empty. */
		for (char *p = eq + 1; *p; p++) {
			if (*p == '#' && is_blank((unsigned char)p[-1])) {
				*p = '\0';
				break;
			}
		}
		trim_end(v);
	}
	*key = s;
	*value = v;
	return NULL;
}

static int parse_line(struct config *cfg, char *s, size_t len, const char *path,
	unsigned long lineno, struct buf *why)
{
	if (memchr(s, '\0', len)) {
		say(why, "%s:%lu: NUL byte in line", path, lineno);
		return -1;
	}
	/* Editors on some systems start UTF-8 files with a byte order mark. */
	if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	char *key, *value;
	const char *bad = split_line(s, &key, &value);
	if (bad) {
		say(why, "%s:%lu: %s", path, lineno, bad);
		return -1;
	}
	if (!key)
		return 0;
	const struct opt *o = find_opt(key);
	if (!o) {
		say(why, "%s:%lu: unknown key ", path, lineno);
		say_quoted(why, key);
		return -1;
	}
	/* The prefix goes in first and opt_set appends the reason; on success it is dropped. */
	say(why, "%s:%lu: %s: ", path, lineno, o->key);
	if (opt_set(cfg, o, value, why) < 0)
		return -1;
	buf_reset(why);
	return 0;
}

static int parse_file(struct config *cfg, FILE *f, const char *path, struct buf *why)
{
	struct buf line;
	buf_init(&line, CONF_LINE_MAX);
	int rc = 0;
	for (unsigned long lineno = 1; rc == 0; lineno++) {
		int got = read_line(f, &line);
		if (got == 0)
			break;
		if (got == -2) {
			say(why, "cannot read %s: %s", path, strerror(errno));
			rc = -1;
		} else if (got == -1) {
			say(why, "%s:%lu: line longer than %d bytes", path, lineno, CONF_LINE_MAX);
			rc = -1;
		} else if (line.len > 0) { /* an empty line may have no data at all */
			rc = parse_line(cfg, line.data, line.len, path, lineno, why);
		}
	}
	buf_release(&line);
	return rc;
}

static int load_file(struct config *cfg, const char *path, config_getenv_fn env, struct buf *why)
{
	int must_exist = 1;
	if (!path) {
		path = env("LLM_FCGI_CONFIG");
		if (!path || !*path) {
			path = DEFAULT_PATH;
			must_exist = 0;
		}
	}
	FILE *f = fopen(path, "re");
	size_t nlegacy = sizeof legacy_paths / sizeof legacy_paths[0];
	for (size_t i = 0; !f && !must_exist && errno == ENOENT && i < nlegacy; i++) {
		path = legacy_paths[i];
		if ((f = fopen(path, "re")) != NULL)
			log_warn("reading %s, the settings file's old place: move it to %s", path,
				DEFAULT_PATH);
	}
	if (!f) {
		if (!must_exist && errno == ENOENT)
			return 0;
		say(why, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	cfg->source = xstrdup(path);
	int rc = parse_file(cfg, f, path, why);
	/* Nothing was written, so closing cannot lose data; a read error was seen above. */
	(void)fclose(f);
	return rc;
}

/* ---- environment and arguments ---- */

static int set_from_env(struct config *cfg, const struct opt *o, const char *var,
	const char *value, struct buf *why)
{
	say(why, "environment %s: ", var);
	if (opt_set(cfg, o, value, why) < 0)
		return -1;
	buf_reset(why);
	return 0;
}

static int load_env(struct config *cfg, config_getenv_fn env, struct buf *why)
{
	struct buf var;
	msg_init(&var);
	int rc = 0;
	for (size_t i = 0; i < NOPTS && rc == 0; i++) {
		const struct opt *o = &opts[i];
		/* A foreign variable counts only when non-empty: tools export it empty to mean
		 * "default". Ours are taken as they are, since "" is a value for several keys. */
		const char *alias = o->env_alias ? env(o->env_alias) : NULL;
		if (alias && *alias)
			rc = set_from_env(cfg, o, o->env_alias, alias, why);
		buf_reset(&var);
		say(&var, "%s", ENV_PREFIX);
		for (const char *k = o->key; *k; k++)
			say(&var, "%c", toupper((unsigned char)*k));
		const char *v = env(var.data);
		if (rc == 0 && v)
			rc = set_from_env(cfg, o, var.data, v, why);
	}
	buf_release(&var);
	return rc;
}

static int load_args(struct config *cfg, const struct config_arg *args, size_t nargs,
	struct buf *why)
{
	for (size_t i = 0; i < nargs; i++) {
		say(why, "argument ");
		say_text(why, args[i].key);
		say(why, "=");
		say_text(why, args[i].value);
		const struct opt *o = find_opt(args[i].key);
		if (!o) {
			say(why, ": unknown key ");
			say_quoted(why, args[i].key);
			return -1;
		}
		say(why, ": ");
		if (opt_set(cfg, o, args[i].value, why) < 0)
			return -1;
		buf_reset(why);
	}
	return 0;
}

/* Rules that tie keys together, checked once every source has been applied. */
static int check_all(const struct config *cfg, struct buf *why)
{
	if (cfg->max_tokens > cfg->max_tokens_limit) {
		say(why, "max_tokens (%ld) is greater than max_tokens_limit (%ld)", cfg->max_tokens,
			cfg->max_tokens_limit);
		return -1;
	}
	return 0;
}

/* ---- the API key ---- */

static void wipe_free(char *secret, size_t n)
{
	explicit_bzero(secret, n);
	free(secret);
}

static int is_key_blank(int c)
{
	return is_blank(c) || c == '\n';
}

/* Returns the n bytes at raw trimmed, in an allocation of their own (so that wiping strlen bytes
 * wipes all of it), or NULL with *bad set: the key goes into a header line. Never quotes it. */
static char *clean_key(const char *raw, size_t n, const char **bad)
{
	while (n > 0 && is_key_blank((unsigned char)raw[n - 1]))
		n--;
	while (n > 0 && is_key_blank((unsigned char)*raw)) {
		raw++;
		n--;
	}
	*bad = NULL;
	if (n == 0)
		*bad = "the key is empty";
	for (size_t i = 0; i < n && !*bad; i++)
		if (is_control((unsigned char)raw[i]))
			*bad = "the key contains a control character (CR, LF or NUL would break "
			       "the request headers)";
	return *bad ? NULL : xstrndup(raw, n);
}

/* Reads fd to its end into p, which has room for max + 1 bytes. Returns the length, -1 on an
 * error (errno set), or -2 when there are more than max bytes. */
static ssize_t read_small(int fd, char *p, size_t max)
{
	size_t n = 0;
	for (;;) {
		ssize_t got = read(fd, p + n, max + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -1 : (ssize_t)n;
		n += (size_t)got;
		if (n > max)
			return -2;
	}
}

/* Reads a file that must be private to the server: a regular file owned by the user the server
 * runs as, readable by nobody else. Returns its content (NUL-terminated, in an allocation of
 * max + 1 bytes, *len bytes long; caller frees), or NULL with why set. what names the setting
 * in messages. */
static char *read_private_file(const char *what, const char *path, size_t max, size_t *len,
	struct buf *why)
{
	/* O_NONBLOCK: a FIFO put there must not hang the start; fstat rejects it below. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		say(why, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	/* fstat on the open file, not stat on the name: the file checked is the file read. */
	struct stat st;
	char *raw = NULL;
	if (fstat(fd, &st) < 0) {
		say(why, "%s %s: %s", what, path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		say(why, "%s %s: not a regular file", what, path);
	} else if (st.st_uid != geteuid()) {
		say(why, "%s %s: must be owned by the user the server runs as (uid %lu)", what,
			path, (unsigned long)geteuid());
	} else if (st.st_mode & 077) {
		say(why, "%s %s: must be readable only by its owner (chmod 600)", what, path);
	} else {
		raw = xmalloc(max + 1);
		ssize_t n = read_small(fd, raw, max);
		if (n < 0) {
			if (n == -1)
				say(why, "%s %s: %s", what, path, strerror(errno));
			else
				say(why, "%s %s: larger than %zu bytes", what, path, max);
			wipe_free(raw, max + 1);
			raw = NULL;
		} else {
			raw[n] = '\0';
			*len = (size_t)n;
		}
	}
	/* Read-only: closing loses nothing. */
	(void)close(fd);
	return raw;
}

/* Reads and checks api_key_file. Returns the key, or NULL with why set. */
static char *read_key_file(const char *path, struct buf *why)
{
	size_t n;
	char *raw = read_private_file("api_key_file", path, KEY_FILE_MAX, &n, why);
	if (!raw)
		return NULL;
	const char *bad = NULL;
	char *key = clean_key(raw, n, &bad);
	if (!key)
		say(why, "api_key_file %s: %s", path, bad);
	wipe_free(raw, KEY_FILE_MAX + 1);
	return key;
}

/* The limits file is no secret, but whoever can write it sets the budgets. */
static int load_limits(struct config *cfg, struct buf *why)
{
	if (!cfg->limits_file)
		return 0;
	int fd = open(cfg->limits_file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	char *text = NULL;
	ssize_t n = -1;
	if (fd < 0 || fstat(fd, &st) < 0)
		say(why, "limits_file %s: %s", cfg->limits_file, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		say(why, "limits_file %s: not a regular file", cfg->limits_file);
	else if (st.st_mode & 022)
		say(why, "limits_file %s: must be writable by its owner only", cfg->limits_file);
	else if ((n = read_small(fd, text = xmalloc(LIMITS_FILE_MAX + 1), LIMITS_FILE_MAX)) < 0)
		say(why, "limits_file %s: %s", cfg->limits_file,
			n == -1 ? strerror(errno) : "larger than 1 MiB");
	if (fd >= 0)
		(void)close(fd);
	int rc = -1;
	if (n >= 0) {
		struct buf bad;
		msg_init(&bad);
		rc = limits_parse(&cfg->limits, text, (size_t)n, &bad);
		if (rc < 0)
			say(why, "limits_file %s: %s", cfg->limits_file, buf_cstr(&bad));
		buf_release(&bad);
	}
	free(text);
	return rc;
}

/* Reads the hashes once, at load: no request touches the file. */
static int load_client_keys(struct config *cfg, struct buf *why)
{
	if (!cfg->client_keys_file)
		return 0;
	size_t n;
	char *text = read_private_file("client_keys_file", cfg->client_keys_file,
		CLIENT_KEYS_FILE_MAX, &n, why);
	if (!text)
		return -1;
	unsigned long line;
	const char *bad;
	int rc = client_keys_parse(&cfg->client_keys, text, n, &line, &bad);
	if (rc < 0)
		say(why, "client_keys_file %s:%lu: %s", cfg->client_keys_file, line, bad);
	free(text);
	return rc;
}

static int load_api_key(struct config *cfg, config_getenv_fn env, struct buf *why)
{
	const char *v = env("ANTHROPIC_API_KEY");
	if (v && *v) {
		const char *bad;
		cfg->api_key = clean_key(v, strlen(v), &bad);
		if (!cfg->api_key) {
			say(why, "environment ANTHROPIC_API_KEY: %s", bad);
			return -1;
		}
		cfg->api_key_origin = "environment";
	} else if (cfg->api_key_file) {
		cfg->api_key = read_key_file(cfg->api_key_file, why);
		if (!cfg->api_key)
			return -1;
		cfg->api_key_origin = "file";
	} else {
		return 0; /* no key is for the caller to judge: --check needs none */
	}
	return 0;
}

/* ---- the model catalogue ---- */

static int load_catalogue(struct config *cfg, struct buf *why)
{
	if (!cfg->models_file)
		return 0;
	/* The installed default may be missing (a build run from its tree): the gateway then runs
	 * without one, as it did before the catalogue, and --check says so. A file the settings
	 * name must be there. */
	if (strcmp(cfg->models_file, DEFAULT_MODELS) == 0 && access(cfg->models_file, F_OK) < 0 &&
		errno == ENOENT)
		return 0;
	if (catalogue_load(&cfg->catalogue, cfg->models_file, cfg->models_override_file, why) < 0)
		return -1;
	cfg->have_catalogue = 1;
	return 0;
}

const struct catalogue_model *config_model_info(const struct config *cfg, const char *name, size_t n)
{
	return cfg->have_catalogue ? catalogue_find(&cfg->catalogue, name, n) : NULL;
}

static void say_date(FILE *out, int d)
{
	fprintf(out, "%04d-%02d-%02d", d / 10000, d / 100 % 100, d % 100);
}

/* One model for config_check_models: 1 when it is retired, else 0. */
static int check_one_model(const struct config *cfg, const char *name, size_t n, int today, FILE *out)
{
	const struct catalogue_model *m = config_model_info(cfg, name, n);
	if (!m) {
		fprintf(out, "llm-fcgi: warning: model '%.*s' is not in the catalogue %s\n", (int)n, name,
			cfg->models_file);
		return 0;
	}
	enum catalogue_status st = catalogue_status_on(m, today);
	if (st == CATALOGUE_CURRENT)
		return 0;
	const struct catalogue_model *r = catalogue_suggest(&cfg->catalogue, m);
	fprintf(out, "llm-fcgi: %s: model '%.*s' ", st == CATALOGUE_RETIRED ? "error" : "warning",
		(int)n, name);
	fputs(st == CATALOGUE_RETIRED ? "was retired on " : "is deprecated and retires on ", out);
	say_date(out, m->retires_on);
	fputs(st == CATALOGUE_RETIRED ? " (the API answers 404)" : "", out);
	fprintf(out, "; use '%s'\n", r ? r->id : "?");
	return st == CATALOGUE_RETIRED;
}

int config_check_models(const struct config *cfg, int yyyymmdd, FILE *out)
{
	if (!cfg->have_catalogue) {
		if (cfg->models_file)
			fprintf(out, "llm-fcgi: warning: no model catalogue: %s does not exist, so models "
				"are not checked\n", cfg->models_file);
		else
			fputs("llm-fcgi: warning: no model catalogue (models_file is empty), so models "
			      "are not checked\n", out);
		return 0;
	}
	int bad = check_one_model(cfg, cfg->model, strlen(cfg->model), yyyymmdd, out);
	const char *pos = NULL;
	struct config_model m;
	while (cfg->models && config_model_next(cfg, &pos, &m) && pos != cfg->model)
		if (m.target_len != strlen(cfg->model) || memcmp(m.target, cfg->model, m.target_len) != 0)
			bad += check_one_model(cfg, m.target, m.target_len, yyyymmdd, out);
	return bad;
}

/* ---- the interface ---- */

void config_defaults(struct config *cfg)
{
	struct buf why;
	*cfg = (struct config){0};
	limits_empty(&cfg->limits);
	msg_init(&why);
	for (size_t i = 0; i < NOPTS; i++) {
		if (opts[i].def && opt_set(cfg, &opts[i], opts[i].def, &why) < 0) {
			fprintf(stderr, "llm-fcgi: bad built-in default for %s: %s\n", opts[i].key,
				buf_cstr(&why));
			abort();
		}
	}
	buf_release(&why);
}

/* *cfg is overwritten, not released first: it must hold nothing (a reload loads into a new one). */
int config_load(struct config *cfg, const char *path, const struct config_arg *args, size_t nargs,
	config_getenv_fn getenv_fn, char **errmsg)
{
	struct buf why;
	msg_init(&why);
	*errmsg = NULL;
	config_defaults(cfg);
	if (load_file(cfg, path, getenv_fn, &why) < 0 || load_env(cfg, getenv_fn, &why) < 0 ||
		load_args(cfg, args, nargs, &why) < 0 || check_all(cfg, &why) < 0 ||
		load_api_key(cfg, getenv_fn, &why) < 0 || load_client_keys(cfg, &why) < 0 ||
		load_catalogue(cfg, &why) < 0 || load_limits(cfg, &why) < 0) {
		config_release(cfg);
		*errmsg = buf_detach(&why);
		return -1;
	}
	buf_release(&why);
	return 0;
}

int config_set(struct config *cfg, const char *key, const char *value, char **errmsg)
{
	struct buf why;
	msg_init(&why);
	*errmsg = NULL;
	const struct opt *o = find_opt(key);
	if (!o) {
		say(&why, "unknown key ");
		say_quoted(&why, key);
	} else {
		say(&why, "%s: ", o->key);
		if (opt_set(cfg, o, value, &why) == 0) {
			buf_release(&why);
			return 0;
		}
	}
	*errmsg = buf_detach(&why);
	return -1;
}

/* Writes a string so that the file parser reads it back unchanged. */
static void dump_string(FILE *out, const char *s)
{
	size_t n = strlen(s);
	if (n && !is_blank((unsigned char)s[0]) && !is_blank((unsigned char)s[n - 1]) &&
		!strpbrk(s, "#\"\\\n")) {
		fputs(s, out);
		return;
	}
	putc('"', out);
	for (; *s; s++) {
		if (*s == '\n')
			fputs("\\n", out);
		else if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else
			putc(*s, out);
	}
	putc('"', out);
}

/* Output errors are left in out's error flag for the caller's ferror(). */
void config_dump(const struct config *cfg, FILE *out)
{
	if (cfg->source)
		fprintf(out, "# settings from %s\n", cfg->source);
	else
		fputs("# settings: no file read\n", out);
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		const void *field = (const char *)cfg + o->offset;
		fprintf(out, "# %s\n%s = ", o->help, o->key);
		switch (o->type) {
		case OPT_STRING: {
			const char *s = *(char *const *)field;
			dump_string(out, s ? s : "");
			break;
		}
		case OPT_LONG:
			fprintf(out, "%ld", *(const long *)field);
			break;
		case OPT_SECONDS:
			/* 15 digits: what a decimal in the file said comes back as it was. */
			fprintf(out, "%.15g", *(const double *)field);
			break;
		case OPT_SIZE: {
			unsigned long long v = *(const size_t *)field;
			const char *unit = size_unit(&v);
			fprintf(out, "%llu%s", v, unit);
			break;
		}
		case OPT_ENUM: {
			int v = *(const int *)field, n = 0;
			while (o->names[n])
				n++;
			/* A caller may have stored anything in the enum. */
			if (v >= 0 && v < n)
				fputs(o->names[v], out);
			else
				fprintf(out, "%d", v);
			break;
		}
		}
		putc('\n', out);
	}
	if (cfg->client_keys_file)
		fprintf(out, "# client keys: %zu hash(es) loaded\n", cfg->client_keys.n);
	if (cfg->limits_file)
		fprintf(out, "# limits: %zu rule(s) besides * and server%s\n", cfg->limits.n,
			limits_any(&cfg->limits) ? "" : "; no limit is set");
	if (cfg->have_catalogue)
		fprintf(out, "# model catalogue: %zu model(s) from %s%s%s\n", cfg->catalogue.n,
			cfg->catalogue.base_path, cfg->catalogue.override_path ? " and " : "",
			cfg->catalogue.override_path ? cfg->catalogue.override_path : "");
	if (!cfg->api_key)
		fputs("# api key: not set\n", out);
	else
		fprintf(out, "# api key: set (from %s)\n", cfg->api_key_origin ? cfg->api_key_origin : "caller");
}

void config_release(struct config *cfg)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].type == OPT_STRING)
			free(*(char **)((char *)cfg + opts[i].offset));
	if (cfg->api_key) {
		wipe_free(cfg->api_key, strlen(cfg->api_key));
	}
	client_keys_release(&cfg->client_keys);
	limits_release(&cfg->limits);
	if (cfg->have_catalogue)
		catalogue_release(&cfg->catalogue);
	free(cfg->source);
	*cfg = (struct config){0};
	limits_empty(&cfg->limits);
}

/* The "*" entry of models: it names no model of its own (config_models_any). */
static int is_star(const char *p, size_t n)
{
	return n == 1 && *p == '*';
}

/* Steps to the next entry of models that names a model. */
static int next_named(const char **pos, const char **p, size_t *n)
{
	while (next_entry(pos, p, n))
		if (!is_star(*p, *n))
			return 1;
	return 0;
}

int config_model_next(const struct config *cfg, const char **pos, struct config_model *m)
{
	const char *p, *first = cfg->models;
	size_t n;
	/* A list that names models; "*" alone leaves the one configured model for everybody. */
	if (cfg->models && next_named(&first, &p, &n)) {
		if (!*pos)
			*pos = cfg->models;
		if (!next_named(pos, &p, &n))
			return 0;
		split_model(p, n, m);
		return 1;
	}
	/* No list: the one configured model, once. */
	if (*pos || !cfg->model)
		return 0;
	*pos = cfg->model;
	m->name = m->target = cfg->model;
	m->name_len = m->target_len = strlen(cfg->model);
	return 1;
}

int config_models_any(const struct config *cfg)
{
	const char *pos = cfg->models, *p;
	size_t n;
	while (pos && next_entry(&pos, &p, &n))
		if (is_star(p, n))
			return 1;
	return 0;
}

int config_model_find(const struct config *cfg, const char *name, size_t n, struct config_model *m)
{
	const char *pos = NULL;
	while (config_model_next(cfg, &pos, m))
		if (m->name_len == n && memcmp(m->name, name, n) == 0)
			return 1;
	return 0;
}
