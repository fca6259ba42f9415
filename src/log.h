/* log: levelled diagnostics and one JSON access line per request.
 *
 * Lines go to log_file (opened before the workers fork, reopened on request for logrotate) or
 * stderr. Each line is written with a single write(2) on an O_APPEND descriptor so lines from
 * several workers do not interleave. Prompts and keys are never logged: callers pass only
 * metadata, and log_access takes a fixed record, not free text. */
#ifndef LLM_LOG_H
#define LLM_LOG_H

/* The config key log_level names these (config.c's table); log itself depends on nothing. */
enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* path "" or NULL = stderr. Returns 0, or -1 with errno set and the log left as it was. */
int log_open(const char *path, enum log_level level);
/* Reopens the same path (after logrotate moved it). Returns 0 or -1. */
int log_reopen(void);
void log_close(void);
/* The id printed on every line until changed; NULL clears it. The string is copied. */
void log_set_request_id(const char *id);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* One request as the access log records it. */
struct access_record {
	const char *method;
	const char *route; /* the matched route, or the path when none matched */
	int status;        /* 499 when the client went away */
	int attempts;      /* upstream attempts, 0 when the upstream was not called */
	double ttft_ms;    /* time to the first text delta; < 0 when none */
	double duration_ms;
	long input_tokens;
	long output_tokens;
	int output_tokens_estimated; /* the upstream's final count never came: from the text sent */
	long cache_write_5m_tokens;
	long cache_write_1h_tokens;
	long cache_read_tokens;
	const char *who;   /* who pays: key:LABEL, user:NAME or addr:ADDRESS; NULL when nobody */
	char model[96];    /* the model that answered (the upstream's word), or "" */
	long long cost_micro_usd; /* at the catalogue's prices; < 0 when unknown */
	const char *refused; /* the limit that refused the request ("rpm", "usd_per_day"), or NULL */
	unsigned flushes;       /* every response flush */
	unsigned delta_flushes; /* flushes that carried a streamed text delta: one per delta */
	int cancelled;
	const char *error; /* err_name() of the failure, or NULL */
	const char *upstream_request_id;
};
void log_access(const struct access_record *a);

#endif
