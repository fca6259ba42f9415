/* upstream: the only module that includes curl/curl.h. One per worker process: it keeps one
 * connection (and one TLS session) across requests, which libcurl opens (DNS, proxy, TLS) and on
 * which it speaks HTTP/1.1 itself (http1.h parses the answers), applies the four timeouts, retries
 * what may be retried before the response commits, and hands the body to a sink. It knows
 * nothing of SSE or of our endpoints. */
#ifndef LLM_UPSTREAM_H
#define LLM_UPSTREAM_H

#include <stddef.h>

#include "buf.h"
#include "config.h"

struct upstream_headers {
	long status;
	char request_id[128];
	char content_type[128];
	double retry_after; /* seconds (retry-after-ms, else retry-after); -1 when absent */
	int should_retry;   /* x-should-retry: 1, 0, or -1 when absent */
};

struct upstream_sink {
	/* A 2xx status and its headers are in, before any body byte. Called once per attempt that
	 * gets that far: a sink that collects the body starts it over here, since an attempt whose
	 * body was cut off is retried (if nothing committed) and must not leave its half behind.
	 * Non-zero aborts. */
	int (*on_headers)(void *arg, const struct upstream_headers *h);
	/* Body bytes of a 2xx answer. Non-zero aborts. */
	int (*on_body)(void *arg, const char *p, size_t n);
	/* Called while waiting, at least once a second and whenever watch_fd stirs. Non-zero aborts
	 * (the client left). May be NULL. */
	int (*on_tick)(void *arg);
	/* When the caller next needs on_tick (a monotonic time, as CLOCK_MONOTONIC seconds), or < 0
	 * for "only when something happens": keep-alive writes are due on the caller's schedule, not
	 * on the upstream's. May be NULL. */
	double (*next_tick)(void *arg);
	/* Non-zero once the caller's response has committed: no retry is possible then. */
	int (*committed)(void *arg);
	int watch_fd; /* -1 for none */
	void *arg;
};

struct upstream_request {
	const char *path; /* "/v1/messages" */
	const char *body;
	size_t body_len;
	int stream; /* first-byte + idle timeouts instead of the total timeout */
	const char *anthropic_version; /* NULL: 2023-06-01 */
	const char *anthropic_beta;    /* NULL: none */
};

enum upstream_outcome {
	UP_DONE = 0,        /* a whole HTTP response arrived (any status: see h.status) */
	UP_CONNECT_FAILED,  /* refused, unreachable, DNS, TLS, connect timeout */
	UP_BROKEN,          /* the connection broke or the answer was not HTTP */
	UP_FIRST_BYTE_TIMEOUT,
	UP_IDLE_TIMEOUT,
	UP_TOTAL_TIMEOUT,
	UP_ABORTED,         /* a sink callback asked to stop */
	UP_TOO_LARGE,       /* an error body over its cap */
};

struct upstream_result {
	enum upstream_outcome outcome;
	struct upstream_headers h;
	struct buf error_body; /* the body of a non-2xx answer */
	int attempts;
	double first_byte_ms; /* from the start of the last attempt; -1 when none */
	char detail[320];     /* for logs: what went wrong (room for libcurl's 256-byte text) */
};

int upstream_global_init(void);
void upstream_global_cleanup(void);
/* 1 when libcurl's TLS backend is OpenSSL, so that tls.c's shared CA store fits its contexts. */
int upstream_tls_is_openssl(void);

/* cfg is borrowed and must outlive the handle. Opens no connection. */
struct upstream *upstream_new(const struct config *cfg);
void upstream_free(struct upstream *u);

/* Performs the request, retrying before commit as the policy says. *res is initialised here;
 * release it with upstream_result_release. */
void upstream_call(struct upstream *u, const struct upstream_request *rq,
		   const struct upstream_sink *sink, struct upstream_result *res);
void upstream_result_release(struct upstream_result *res);

const char *upstream_outcome_name(enum upstream_outcome o);

#endif
