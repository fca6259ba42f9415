#include "upstream.h"

#include <curl/curl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "retry.h"
#include "tls.h"

/* An error body is a small JSON document; anything bigger is not one. */
#define ERROR_BODY_MAX (64 * 1024)
#define URL_MAX 4096

struct upstream {
	const struct config *cfg;
	CURLM *multi; /* keeps the connection cache across requests */
	CURL *easy;
	unsigned rand_state;
	struct buf url;
	/* The request headers, built once and kept while the key and the client's version and beta
	 * headers stay the same (they do from one request to the next): building the list cost a
	 * twentieth of a short synchronous request. The strings are copies of what it was built
	 * from; beta is NULL when none was sent. */
	struct curl_slist *headers;
	char *headers_key, *headers_version, *headers_beta;
	/* per attempt */
	const struct upstream_sink *sink;
	struct upstream_result *res;
	double started;
	double last_byte; /* 0 until the first byte */
	enum upstream_outcome abort_reason;
	int aborted;
	int headers_done;
};

int upstream_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void upstream_global_cleanup(void)
{
	curl_global_cleanup();
}

int upstream_tls_is_openssl(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	return v && v->ssl_version && strncmp(v->ssl_version, "OpenSSL", 7) == 0;
}

const char *upstream_outcome_name(enum upstream_outcome o)
{
	static const char *const names[] = {
		[UP_DONE] = "done",
		[UP_CONNECT_FAILED] = "connect_failed",
		[UP_BROKEN] = "broken",
		[UP_FIRST_BYTE_TIMEOUT] = "first_byte_timeout",
		[UP_IDLE_TIMEOUT] = "idle_timeout",
		[UP_TOTAL_TIMEOUT] = "total_timeout",
		[UP_ABORTED] = "aborted",
		[UP_TOO_LARGE] = "too_large",
	};
	return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "unknown";
}

static void forget_headers(struct upstream *u)
{
	curl_slist_free_all(u->headers);
	free(u->headers_key);
	free(u->headers_version);
	free(u->headers_beta);
	u->headers = NULL;
	u->headers_key = u->headers_version = u->headers_beta = NULL;
}

struct upstream *upstream_new(const struct config *cfg)
{
	struct upstream *u = xcalloc(1, sizeof *u);
	u->cfg = cfg;
	u->rand_state = (unsigned)getpid() ^ (unsigned)time(NULL);
	buf_init(&u->url, URL_MAX);
	return u;
}

void upstream_free(struct upstream *u)
{
	if (!u)
		return;
	if (u->easy)
		curl_easy_cleanup(u->easy);
	if (u->multi)
		curl_multi_cleanup(u->multi);
	buf_release(&u->url);
	forget_headers(u);
	free(u);
}

static void stop(struct upstream *u, enum upstream_outcome why)
{
	if (!u->aborted) {
		u->aborted = 1;
		u->abort_reason = why;
	}
}

/* The value of the last header called name in the current response, cut to fit dst (ids and
 * content types are only logged or compared by prefix); "" when absent. libcurl has stripped the
 * blanks around it. The last one, as a later header line would have overwritten an earlier. */
static void header_value(CURL *e, const char *name, char *dst, size_t cap)
{
	struct curl_header *hd;
	dst[0] = '\0';
	if (curl_easy_header(e, name, 0, CURLH_HEADER, -1, &hd) != CURLHE_OK)
		return;
	if (hd->amount > 1 && curl_easy_header(e, name, hd->amount - 1, CURLH_HEADER, -1, &hd) != CURLHE_OK)
		return;
	size_t n = strnlen(hd->value, cap - 1);
	memcpy(dst, hd->value, n);
	dst[n] = '\0';
}

/* Reads the response's status and the headers we use into res->h, from libcurl's own parse. */
static void read_headers(struct upstream *u)
{
	struct upstream_headers *h = &u->res->h;
	char ms[64], s[64], retry[64];
	memset(h, 0, sizeof *h);
	curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &h->status);
	header_value(u->easy, "request-id", h->request_id, sizeof h->request_id);
	header_value(u->easy, "content-type", h->content_type, sizeof h->content_type);
	header_value(u->easy, "retry-after-ms", ms, sizeof ms);
	header_value(u->easy, "retry-after", s, sizeof s);
	h->retry_after = retry_parse_after(ms, s, (double)time(NULL));
	header_value(u->easy, "x-should-retry", retry, sizeof retry);
	h->should_retry = strcasecmp(retry, "true") == 0 ? 1 : strcasecmp(retry, "false") == 0 ? 0 : -1;
}

/* libcurl parses the headers; this callback only marks time and spots the blank line that ends
 * a header block, after which curl_easy_header has the whole block. */
static size_t on_header(char *line, size_t size, size_t nitems, void *arg)
{
	struct upstream *u = arg;
	size_t n = size * nitems;

	if (!u->last_byte)
		u->res->first_byte_ms = (clock_now() - u->started) * 1000.0;
	u->last_byte = clock_now();
	if (u->headers_done || n > 2 || (line[0] != '\r' && line[0] != '\n'))
		return n; /* a header line, or a trailer after the body */
	long status = 0;
	curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200)
		return n; /* an interim response; the real one follows */
	read_headers(u);
	u->headers_done = 1;
	struct upstream_headers *h = &u->res->h;
	if (h->status >= 200 && h->status < 300 && u->sink->on_headers &&
	    u->sink->on_headers(u->sink->arg, h) != 0) {
		stop(u, UP_ABORTED);
		return 0;
	}
	return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct upstream *u = arg;
	size_t n = size * nmemb;
	long status = u->res->h.status;
	u->last_byte = clock_now();
	if (status >= 200 && status < 300) {
		if (u->sink->on_body && u->sink->on_body(u->sink->arg, p, n) != 0) {
			stop(u, UP_ABORTED);
			return CURL_WRITEFUNC_ERROR;
		}
		return n;
	}
	if (buf_append(&u->res->error_body, p, n) < 0) {
		stop(u, UP_TOO_LARGE);
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

static CURLcode on_ssl_ctx(CURL *e, void *ssl_ctx, void *arg)
{
	tls_attach(ssl_ctx);
	return CURLE_OK;
}

static int setup_handles(struct upstream *u)
{
	if (u->easy)
		return 0;
	/* Created on first use, in the worker: no connection is ever opened before the fork. */
	u->multi = curl_multi_init();
	u->easy = curl_easy_init();
	if (!u->multi || !u->easy)
		return -1;
	CURL *e = u->easy;
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 60L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 60L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, u);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, u);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "llm-fcgi/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (tls_shared()) {
		/* The parent's CA store replaces the bundle libcurl would parse in this worker. */
		curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	} else if (u->cfg->ca_file && *u->cfg->ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, u->cfg->ca_file);
	}
	return 0;
}

static struct curl_slist *build_headers(const struct upstream *u, const struct upstream_request *rq)
{
	struct buf line;
	buf_init(&line, 8192);
	struct curl_slist *list = NULL;
	/* The key is sent only here, in a header libcurl does not log (verbose is never on). */
	int bad = buf_printf(&line, "x-api-key: %s", u->cfg->api_key ? u->cfg->api_key : "");
	list = curl_slist_append(list, buf_cstr(&line));
	buf_reset(&line);
	bad = bad || buf_printf(&line, "anthropic-version: %s",
				rq->anthropic_version ? rq->anthropic_version : "2023-06-01");
	list = curl_slist_append(list, buf_cstr(&line));
	if (rq->anthropic_beta) {
		buf_reset(&line);
		bad = bad || buf_printf(&line, "anthropic-beta: %s", rq->anthropic_beta);
		list = curl_slist_append(list, buf_cstr(&line));
	}
	list = curl_slist_append(list, "content-type: application/json");
	list = curl_slist_append(list, "accept: application/json");
	/* 100-continue would cost a round trip per request for nothing. */
	list = curl_slist_append(list, "Expect:");
	buf_release(&line);
	if (bad) {
		/* A header cut to nothing would send a request the upstream must refuse. */
		curl_slist_free_all(list);
		return NULL;
	}
	return list;
}

static int same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The header list for rq (kept in u; NULL when a header is past its cap), rebuilt only when the
 * key, the version or the beta header differs from what it was built for. */
static struct curl_slist *headers_for(struct upstream *u, const struct upstream_request *rq)
{
	const char *key = u->cfg->api_key ? u->cfg->api_key : "";
	const char *version = rq->anthropic_version ? rq->anthropic_version : "2023-06-01";
	if (u->headers && same(u->headers_key, key) && same(u->headers_version, version) &&
	    same(u->headers_beta, rq->anthropic_beta))
		return u->headers;
	forget_headers(u);
	u->headers = build_headers(u, rq);
	if (u->headers) {
		u->headers_key = xstrdup(key);
		u->headers_version = xstrdup(version);
		u->headers_beta = rq->anthropic_beta ? xstrdup(rq->anthropic_beta) : NULL;
	}
	return u->headers;
}

static enum upstream_outcome map_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return UP_DONE;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_OPERATION_TIMEDOUT: /* only the connect timeout is left to libcurl */
		return UP_CONNECT_FAILED;
	default:
		return UP_BROKEN;
	}
}

/* The deadline that applies now, as an absolute monotonic time, and what missing it means. */
static double deadline(const struct upstream *u, int stream, enum upstream_outcome *why)
{
	const struct config *c = u->cfg;
	if (!stream) {
		*why = UP_TOTAL_TIMEOUT;
		double total = u->started + c->total_timeout;
		if (u->last_byte) {
			double idle = u->last_byte + c->idle_timeout;
			if (idle < total) {
				*why = UP_IDLE_TIMEOUT;
				return idle;
			}
		}
		return total;
	}
	if (!u->last_byte) {
		*why = UP_FIRST_BYTE_TIMEOUT;
		return u->started + c->first_byte_timeout;
	}
	*why = UP_IDLE_TIMEOUT;
	return u->last_byte + c->idle_timeout;
}

/* Whether the sink's on_tick is due: at least once a second (a client that left while its
 * connection was not watched, see below), when its own schedule says so (keep-alives), or when the
 * client's connection stirred. Not on every wake-up: a stream wakes once per delta, and a check
 * of the client's connection each time was a system call per delta (benchmark strace). */
static int tick_due(const struct upstream_sink *sink, double now, double tick_at, int stirred)
{
	if (!sink->on_tick)
		return 0;
	if (stirred || now >= tick_at)
		return 1;
	double t = sink->next_tick ? sink->next_tick(sink->arg) : -1;
	return t >= 0 && now >= t;
}

/* Runs the transfer of e until it ends, a deadline passes or the sink stops it, waiting on the
 * client's connection too: the one wait per wake-up is also the check that the client is still
 * there (a close makes its connection readable). Returns libcurl's count of running transfers
 * (nonzero: unfinished). */
static int transfer(struct upstream *u, const struct upstream_request *rq,
		    const struct upstream_sink *sink)
{
	int watch = sink->watch_fd;
	int running = 1, stirred = 0;
	double tick_at = 0; /* the first pass ticks */
	while (!u->aborted) {
		if (curl_multi_perform(u->multi, &running) != CURLM_OK || !running || u->aborted)
			break;
		enum upstream_outcome why;
		double due = deadline(u, rq->stream, &why);
		double now = clock_now();
		if (now >= due) {
			stop(u, why);
			break;
		}
		if (tick_due(sink, now, tick_at, stirred)) {
			if (sink->on_tick(sink->arg) != 0) {
				stop(u, UP_ABORTED);
				break;
			}
			/* A readable client connection that is not closed would wake us in a loop: the
			 * once-a-second tick still notices a close, so stop watching it. */
			if (stirred)
				watch = -1;
			tick_at = now + 1.0;
		}
		double wait = (due < tick_at ? due : tick_at) - now;
		if (sink->next_tick) {
			double t = sink->next_tick(sink->arg);
			if (t >= 0 && t - now < wait)
				wait = t - now;
		}
		int wait_ms = wait > 0 ? (int)ceil(wait * 1000.0) : 0;
		struct curl_waitfd wfd = {.fd = watch, .events = CURL_WAIT_POLLIN, .revents = 0};
		curl_multi_poll(u->multi, watch >= 0 ? &wfd : NULL, watch >= 0 ? 1 : 0, wait_ms, NULL);
		stirred = watch >= 0 && wfd.revents;
	}
	return running;
}

static void attempt(struct upstream *u, const struct upstream_request *rq,
		    const struct upstream_sink *sink, struct upstream_result *res)
{
	u->sink = sink;
	u->res = res;
	u->aborted = 0;
	u->headers_done = 0;
	u->last_byte = 0;
	u->started = clock_now();
	res->first_byte_ms = -1;
	memset(&res->h, 0, sizeof res->h);
	res->h.retry_after = -1;
	res->h.should_retry = -1;
	buf_reset(&res->error_body);
	res->detail[0] = '\0';

	if (setup_handles(u) < 0) {
		res->outcome = UP_CONNECT_FAILED;
		snprintf(res->detail, sizeof res->detail, "cannot create a libcurl handle");
		return;
	}
	CURL *e = u->easy;
	char errbuf[CURL_ERROR_SIZE] = "";
	buf_reset(&u->url);
	int bad = buf_appends(&u->url, u->cfg->upstream_url);
	while (u->url.len && u->url.data[u->url.len - 1] == '/')
		u->url.data[--u->url.len] = '\0';
	bad = bad || buf_appends(&u->url, rq->path);
	struct curl_slist *headers = bad ? NULL : headers_for(u, rq);
	if (!headers) {
		/* Configuration (a URL or key) or a client's header past the caps: no call can go. */
		res->outcome = UP_CONNECT_FAILED;
		snprintf(res->detail, sizeof res->detail, "the upstream %s is too long",
			 bad ? "URL" : "request's headers");
		return;
	}
	curl_easy_setopt(e, CURLOPT_URL, buf_cstr(&u->url));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(u->cfg->connect_timeout * 1000.0));
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);

	curl_multi_add_handle(u->multi, e);
	int running = transfer(u, rq, sink);
	CURLcode rc = CURLE_OK;
	int msgs;
	CURLMsg *msg;
	while ((msg = curl_multi_info_read(u->multi, &msgs)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == e)
			rc = msg->data.result;
	/* A header block cut off still tells the log which status and request-id it carried. */
	if (!u->headers_done && u->last_byte)
		read_headers(u);
	/* Removing an unfinished transfer closes its connection: that is how the upstream stream
	 * gets cancelled; a finished one goes back to the cache for the next request. */
	curl_multi_remove_handle(u->multi, e);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);

	if (u->aborted)
		res->outcome = u->abort_reason;
	else if (running)
		res->outcome = UP_BROKEN;
	else
		res->outcome = map_curl(rc);
	if (res->outcome == UP_DONE && !u->headers_done)
		res->outcome = UP_BROKEN;
	if (res->outcome != UP_DONE)
		snprintf(res->detail, sizeof res->detail, "%s%s%s", upstream_outcome_name(res->outcome),
			 errbuf[0] ? ": " : "", errbuf);
}

static int retryable(const struct upstream_result *res)
{
	switch (res->outcome) {
	case UP_DONE:
		return res->h.status >= 300 && retry_wanted(res->h.status, res->h.should_retry);
	case UP_CONNECT_FAILED:
	case UP_BROKEN:
	case UP_FIRST_BYTE_TIMEOUT:
		return retry_wanted(0, -1);
	default:
		return 0;
	}
}

/* Sleeps before a retry, watching the client. Returns 0, or -1 when the client left. */
static int backoff(const struct upstream_sink *sink, double seconds)
{
	double until = clock_now() + seconds;
	for (;;) {
		double left = until - clock_now();
		if (left <= 0)
			return 0;
		if (sink->on_tick && sink->on_tick(sink->arg) != 0)
			return -1;
		int ms = left > 0.25 ? 250 : (int)ceil(left * 1000.0);
		if (sink->watch_fd >= 0) {
			struct pollfd p = {.fd = sink->watch_fd, .events = POLLIN | POLLRDHUP};
			if (poll(&p, 1, ms) > 0 && sink->on_tick && sink->on_tick(sink->arg) != 0)
				return -1;
		} else {
			struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
}

void upstream_call(struct upstream *u, const struct upstream_request *rq,
		   const struct upstream_sink *sink, struct upstream_result *res)
{
	memset(res, 0, sizeof *res);
	buf_init(&res->error_body, ERROR_BODY_MAX);
	for (int retries = 0;; retries++) {
		attempt(u, rq, sink, res);
		res->attempts++;
		/* A first attempt that succeeded is in the access line already (attempts, request id):
		 * logging it again would be a second write per request. */
		int first_ok = res->attempts == 1 && res->outcome == UP_DONE && res->h.status < 300;
		log_msg(first_ok ? LOG_DEBUG : LOG_INFO, "upstream attempt %d: %s, status %ld, request-id %s",
			res->attempts, upstream_outcome_name(res->outcome), res->h.status,
			res->h.request_id[0] ? res->h.request_id : "-");
		if (res->outcome == UP_DONE && res->h.status < 300)
			return;
		if (res->outcome == UP_ABORTED || (sink->committed && sink->committed(sink->arg)))
			return;
		if (retries >= u->cfg->max_retries || !retryable(res))
			return;
		double r = (double)rand_r(&u->rand_state) / ((double)RAND_MAX + 1.0);
		double wait = retry_delay(retries, res->h.retry_after, u->cfg->retry_after_cap, r);
		log_info("upstream retry in %.3f s", wait);
		if (backoff(sink, wait) < 0) {
			res->outcome = UP_ABORTED;
			return;
		}
	}
}

void upstream_result_release(struct upstream_result *res)
{
	buf_release(&res->error_body);
}
