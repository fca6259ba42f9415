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
#include "http1.h"
#include "log.h"
#include "retry.h"
#include "tls.h"

/* An error body is a small JSON document; anything bigger is not one. */
#define ERROR_BODY_MAX (64 * 1024)
/* The request line and headers: the path, the key, the client's version and beta headers. */
#define REQUEST_HEAD_MAX (32 * 1024)
/* A body up to this size goes out in the same write (and packet) as the head; a bigger one is
 * sent from where it lies rather than copied. */
#define INLINE_BODY_MAX (64 * 1024)
/* One read: a few dozen deltas, or a piece of a long answer. */
#define READ_MAX (16 * 1024)
/* The host (with its port) and the path of upstream_url. */
#define URL_PART_MAX 4096

/* libcurl connects (DNS, proxy tunnel, TLS and its certificate checks) and keeps the connection;
 * the HTTP/1.1 exchange on it is ours (http1.h says why). */
struct upstream {
	const struct config *cfg;
	CURLM *multi; /* runs the connect, with the same waits as the exchange */
	CURL *easy;   /* CONNECT_ONLY: holds the one connection while it stays in multi */
	int connected;
	int fd;       /* the connection's socket while connected */
	const void *ssl; /* its OpenSSL SSL*, or NULL (plain, or another TLS backend) */
	unsigned rand_state;
	char *host;   /* the Host header, and the URL's path before rq->path, from upstream_url */
	char *prefix;
	struct buf out; /* the request head, and the body when it is small */
	struct http1 http;
	char errbuf[CURL_ERROR_SIZE];
	char in[READ_MAX];
	/* per attempt */
	const struct upstream_sink *sink;
	struct upstream_result *res;
	double started;
	double last_byte; /* 0 until the first byte */
	enum upstream_outcome abort_reason;
	int aborted;
	int headers_done;
	int watch;        /* the client's fd while it is watched */
	int stirred;      /* it was readable at the last wait */
	double tick_at;   /* when on_tick is due at the latest */
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

struct upstream *upstream_new(const struct config *cfg)
{
	struct upstream *u = xcalloc(1, sizeof *u);
	u->cfg = cfg;
	u->fd = -1;
	u->rand_state = (unsigned)getpid() ^ (unsigned)time(NULL);
	buf_init(&u->out, REQUEST_HEAD_MAX + INLINE_BODY_MAX);
	return u;
}

void upstream_free(struct upstream *u)
{
	if (!u)
		return;
	if (u->easy) {
		curl_multi_remove_handle(u->multi, u->easy);
		curl_easy_cleanup(u->easy);
	}
	if (u->multi)
		curl_multi_cleanup(u->multi);
	buf_release(&u->out);
	free(u->host);
	free(u->prefix);
	free(u);
}

static void stop(struct upstream *u, enum upstream_outcome why)
{
	if (!u->aborted) {
		u->aborted = 1;
		u->abort_reason = why;
	}
}

/* Closes the connection: removing a CONNECT_ONLY handle from its multi handle closes what it
 * holds, and that is how an unfinished upstream stream gets cancelled. */
static void disconnect(struct upstream *u)
{
	if (u->connected)
		curl_multi_remove_handle(u->multi, u->easy);
	u->connected = 0;
	u->fd = -1;
	u->ssl = NULL;
}

/* The status and the headers we use, from the parser, into res->h. */
static void read_headers(struct upstream *u)
{
	struct upstream_headers *h = &u->res->h;
	const struct http1 *p = &u->http;
	memset(h, 0, sizeof *h);
	h->status = p->status;
	memcpy(h->request_id, p->request_id, sizeof h->request_id);
	memcpy(h->content_type, p->content_type, sizeof h->content_type);
	h->retry_after = retry_parse_after(p->retry_after_ms, p->retry_after, (double)time(NULL));
	h->should_retry = strcasecmp(p->should_retry, "true") == 0	 ? 1 :
			  strcasecmp(p->should_retry, "false") == 0 ? 0 : -1;
}

static CURLcode on_ssl_ctx(CURL *e, void *ssl_ctx, void *arg)
{
	if (tls_shared())
		tls_attach(ssl_ctx);
	tls_read_ahead(ssl_ctx);
	return CURLE_OK;
}

/* The Host header and the path prefix, from upstream_url by libcurl's URL parser. */
static int parse_url(struct upstream *u)
{
	CURLU *h = curl_url();
	char *host = NULL, *port = NULL, *path = NULL;
	int bad = !h || curl_url_set(h, CURLUPART_URL, u->cfg->upstream_url, 0) != CURLUE_OK ||
		  curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		  curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK;
	if (!bad) {
		curl_url_get(h, CURLUPART_PORT, &port, 0); /* none when the URL names none */
		struct buf b;
		buf_init(&b, URL_PART_MAX);
		bad = buf_appends(&b, host) || (port && buf_printf(&b, ":%s", port));
		u->host = bad ? NULL : buf_detach(&b);
		buf_release(&b);
		size_t n = strlen(path);
		while (n && path[n - 1] == '/')
			n--;
		free(u->prefix);
		u->prefix = xstrndup(path, n);
	}
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(h);
	return bad || !u->host ? -1 : 0;
}

static int setup_handles(struct upstream *u)
{
	if (u->easy)
		return 0;
	if (!u->host && parse_url(u) < 0)
		return -1;
	/* Created on first use, in the worker: no connection is ever opened before the fork. */
	if (!u->multi)
		u->multi = curl_multi_init();
	u->easy = curl_easy_init();
	if (!u->multi || !u->easy)
		return -1;
	CURL *e = u->easy;
	curl_easy_setopt(e, CURLOPT_URL, u->cfg->upstream_url);
	curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
	/* Our requests are origin-form: through an HTTP proxy they must go in a CONNECT tunnel. */
	curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L);
	/* ALPN must not offer h2: what we speak on the connection is HTTP/1.1. */
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 60L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 60L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, u->errbuf);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(u->cfg->connect_timeout * 1000.0));
	if (upstream_tls_is_openssl())
		curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	if (tls_shared()) {
		/* The parent's CA store replaces the bundle libcurl would parse in this worker. */
		curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	} else if (u->cfg->ca_file && *u->cfg->ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, u->cfg->ca_file);
	}
	return 0;
}

/* A header value we send must not end the line it is on. */
static int one_line(const char *v)
{
	return !strpbrk(v, "\r\n");
}

/* The request into u->out: the head, then the body when it is small. -1 when a header is past
 * its cap or holds a line break (no such request can go). */
static int build_request(struct upstream *u, const struct upstream_request *rq)
{
	const char *key = u->cfg->api_key ? u->cfg->api_key : "";
	const char *version = rq->anthropic_version ? rq->anthropic_version : "2023-06-01";
	struct buf *b = &u->out;
	buf_reset(b);
	if (!one_line(rq->path) || strchr(rq->path, ' ') || !one_line(key) || !one_line(version) ||
	    (rq->anthropic_beta && !one_line(rq->anthropic_beta)))
		return -1;
	/* The key is sent only here, and this buffer is never logged. Appended piece by piece:
	 * buf_printf's two vsnprintf passes were 8,800 instructions a request (callgrind). */
	int bad = buf_appends(b, "POST ") || buf_appends(b, u->prefix) ||
		  buf_appends(b, rq->path) || buf_appends(b, " HTTP/1.1\r\nHost: ") ||
		  buf_appends(b, u->host) ||
		  buf_appends(b, "\r\nUser-Agent: llm-fcgi/" PACKAGE_VERSION "\r\nx-api-key: ") ||
		  buf_appends(b, key) || buf_appends(b, "\r\nanthropic-version: ") ||
		  buf_appends(b, version) || buf_appends(b, "\r\n");
	if (rq->anthropic_beta)
		bad = bad || buf_appends(b, "anthropic-beta: ") ||
		      buf_appends(b, rq->anthropic_beta) || buf_appends(b, "\r\n");
	bad = bad || buf_appends(b, "content-type: application/json\r\naccept: application/json\r\n"
				    "content-length: ") ||
	      buf_append_u(b, rq->body_len) || buf_appends(b, "\r\n\r\n");
	bad = bad || b->len > REQUEST_HEAD_MAX;
	if (!bad && rq->body_len <= INLINE_BODY_MAX)
		BUF_MUST(buf_append(b, rq->body, rq->body_len)); /* the head fits REQUEST_HEAD_MAX */
	return bad ? -1 : 0;
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

/* Before each wait: the deadline, and the sink's tick when due. Returns how long the wait may
 * last in ms, or -1 when the attempt stops (u->aborted). */
static int before_wait(struct upstream *u, const struct upstream_request *rq)
{
	const struct upstream_sink *sink = u->sink;
	enum upstream_outcome why;
	double due = deadline(u, rq->stream, &why);
	double now = clock_now();
	if (now >= due) {
		stop(u, why);
		return -1;
	}
	if (tick_due(sink, now, u->tick_at, u->stirred)) {
		if (sink->on_tick(sink->arg) != 0) {
			stop(u, UP_ABORTED);
			return -1;
		}
		/* A readable client connection that is not closed would wake us in a loop: the
		 * once-a-second tick still notices a close, so stop watching it. */
		if (u->stirred)
			u->watch = -1;
		u->stirred = 0;
		u->tick_at = now + 1.0;
	}
	double wait = (due < u->tick_at ? due : u->tick_at) - now;
	if (sink->next_tick) {
		double t = sink->next_tick(sink->arg);
		if (t >= 0 && t - now < wait)
			wait = t - now;
	}
	return wait > 0 ? (int)ceil(wait * 1000.0) : 0;
}

/* Runs libcurl's connect (DNS, proxy, TLS) until it ends, a deadline passes or the sink stops it,
 * waiting on the client's connection too. Returns 0 when connected; otherwise res says why. */
static int connect_upstream(struct upstream *u, const struct upstream_request *rq)
{
	int running = 1;
	if (curl_multi_add_handle(u->multi, u->easy) != CURLM_OK) {
		stop(u, UP_CONNECT_FAILED);
		return -1;
	}
	u->connected = 1; /* from here on, disconnect() takes the handle out again */
	tls_forget_connection(); /* the last one's SSL* may be freed by now */
	while (!u->aborted) {
		if (curl_multi_perform(u->multi, &running) != CURLM_OK || !running)
			break;
		int wait_ms = before_wait(u, rq);
		if (wait_ms < 0)
			break;
		struct curl_waitfd wfd = {.fd = u->watch, .events = CURL_WAIT_POLLIN, .revents = 0};
		curl_multi_poll(u->multi, u->watch >= 0 ? &wfd : NULL, u->watch >= 0 ? 1 : 0, wait_ms, NULL);
		u->stirred = u->watch >= 0 && wfd.revents;
	}
	CURLcode rc = CURLE_COULDNT_CONNECT; /* unless libcurl says how the connect ended */
	int msgs;
	CURLMsg *msg;
	while ((msg = curl_multi_info_read(u->multi, &msgs)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == u->easy)
			rc = msg->data.result;
	curl_socket_t fd = CURL_SOCKET_BAD;
	if (!u->aborted && rc == CURLE_OK &&
	    curl_easy_getinfo(u->easy, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK && fd != CURL_SOCKET_BAD) {
		u->fd = (int)fd;
		/* libcurl 7.88 answers CURLINFO_TLS_SSL_PTR of a CONNECT_ONLY handle with no SSL*
		 * (measured): tls.c notes the connection whose handshake just finished instead. */
		u->ssl = tls_connection();
		return 0;
	}
	if (!u->aborted)
		stop(u, rc == CURLE_OK ? UP_CONNECT_FAILED : map_curl(rc));
	disconnect(u);
	return -1;
}

/* Waits until the connection is ready for events (POLLIN, POLLOUT), watching the client too.
 * Returns 1 when the connection is ready (or failed), 0 when the wait ended for another reason
 * (the client stirred, a tick or deadline is due), -1 when the attempt stops. */
static int wait_io(struct upstream *u, const struct upstream_request *rq, short events)
{
	int wait_ms = before_wait(u, rq);
	if (wait_ms < 0)
		return -1;
	struct pollfd p[2] = {{.fd = u->fd, .events = events}, {.fd = u->watch, .events = POLLIN}};
	int r = poll(p, u->watch >= 0 ? 2 : 1, wait_ms);
	u->stirred = r > 0 && u->watch >= 0 && p[1].revents;
	return r > 0 && p[0].revents;
}

/* Stops the attempt as broken, saying why (static text, or libcurl's). */
static void broken(struct upstream *u, const char *why)
{
	if (!u->aborted && why && !u->errbuf[0])
		snprintf(u->errbuf, sizeof u->errbuf, "%s", why);
	stop(u, UP_BROKEN);
}

/* The final head is in: the sink hears of a 2xx answer before any body byte. */
static int on_head(struct upstream *u)
{
	read_headers(u);
	u->headers_done = 1;
	const struct upstream_headers *h = &u->res->h;
	if (h->status >= 200 && h->status < 300 && u->sink->on_headers &&
	    u->sink->on_headers(u->sink->arg, h) != 0) {
		stop(u, UP_ABORTED);
		return -1;
	}
	return 0;
}

static int on_body(struct upstream *u, const char *p, size_t n)
{
	long status = u->res->h.status;
	if (status >= 200 && status < 300) {
		if (u->sink->on_body && u->sink->on_body(u->sink->arg, p, n) != 0) {
			stop(u, UP_ABORTED);
			return -1;
		}
		return 0;
	}
	if (buf_append(&u->res->error_body, p, n) < 0) {
		stop(u, UP_TOO_LARGE);
		return -1;
	}
	return 0;
}

/* Parses what one read brought. Returns 1 when the attempt is over (the response is complete,
 * or it stopped), 0 for more. */
static int feed(struct upstream *u, const char *p, size_t n, int *done)
{
	for (;;) {
		const char *body = NULL;
		size_t len = 0;
		switch (http1_parse(&u->http, &p, &n, &body, &len)) {
		case HTTP1_MORE:
			return 0;
		case HTTP1_HEAD:
			if (on_head(u) < 0)
				return 1;
			break;
		case HTTP1_BODY:
			if (on_body(u, body, len) < 0)
				return 1;
			break;
		case HTTP1_DONE:
			*done = 1;
			return 1;
		case HTTP1_ERROR:
			broken(u, u->http.error);
			return 1;
		}
	}
}

enum { EXCHANGED, DEAD }; /* DEAD: the connection failed before any byte of a response */

/* Sends n bytes at p. Returns EXCHANGED when sent (or the attempt stopped), DEAD when the
 * connection failed. */
static int send_all(struct upstream *u, const struct upstream_request *rq, const char *p, size_t n)
{
	while (n && !u->aborted) {
		size_t sent = 0;
		CURLcode rc = curl_easy_send(u->easy, p, n, &sent);
		if (rc == CURLE_AGAIN) {
			wait_io(u, rq, POLLOUT);
			continue;
		}
		if (rc != CURLE_OK) {
			broken(u, curl_easy_strerror(rc));
			return DEAD;
		}
		p += sent;
		n -= sent;
	}
	return EXCHANGED;
}

/* The end of the connection (rc CURLE_OK: a clean close) while reading the response. */
static int ended(struct upstream *u, CURLcode rc, int *done)
{
	if (!http1_started(&u->http)) {
		broken(u, rc == CURLE_OK ? "the connection closed before the response" : curl_easy_strerror(rc));
		return DEAD;
	}
	if (rc == CURLE_OK && http1_eof(&u->http) == HTTP1_DONE)
		*done = 1;
	else
		broken(u, rc == CURLE_OK ? u->http.error : curl_easy_strerror(rc));
	return EXCHANGED;
}

/* Reads the response until it is complete or the attempt stops. Per wake-up in the steady state
 * of a stream: the one wait (upstream and client), one read, and the sink's write. */
static int receive(struct upstream *u, const struct upstream_request *rq, int *done)
{
	http1_init(&u->http);
	/* Bytes OpenSSL read ahead (a record after the last response) are invisible to poll. */
	int ready = u->ssl && tls_pending(u->ssl);
	for (;;) {
		int w = ready ? before_wait(u, rq) : wait_io(u, rq, POLLIN);
		if (w < 0)
			return EXCHANGED;
		if (!ready && !w)
			continue;
		size_t got = 0;
		CURLcode rc = curl_easy_recv(u->easy, u->in, sizeof u->in, &got);
		if (rc == CURLE_AGAIN) {
			ready = 0;
			continue;
		}
		if (rc != CURLE_OK || got == 0)
			return ended(u, rc, done);
		double now = clock_now();
		if (!u->last_byte)
			u->res->first_byte_ms = (now - u->started) * 1000.0;
		u->last_byte = now;
		if (feed(u, u->in, got, done))
			return EXCHANGED;
		/* A full buffer likely left more behind; so may a TLS record read ahead. */
		ready = got == sizeof u->in || (u->ssl && tls_pending(u->ssl));
	}
}

static int exchange(struct upstream *u, const struct upstream_request *rq, int *done)
{
	u->errbuf[0] = '\0';
	if (send_all(u, rq, u->out.data, u->out.len) == DEAD)
		return DEAD;
	if (rq->body_len > INLINE_BODY_MAX && send_all(u, rq, rq->body, rq->body_len) == DEAD)
		return DEAD;
	return u->aborted ? EXCHANGED : receive(u, rq, done);
}

static void start_attempt(struct upstream *u, const struct upstream_sink *sink,
			  struct upstream_result *res)
{
	u->sink = sink;
	u->res = res;
	u->aborted = 0;
	u->headers_done = 0;
	u->last_byte = 0;
	u->started = clock_now();
	u->watch = sink->watch_fd;
	u->stirred = 0;
	u->tick_at = 0; /* the first wait ticks */
	u->errbuf[0] = '\0';
	http1_init(&u->http);
	res->first_byte_ms = -1;
	memset(&res->h, 0, sizeof res->h);
	res->h.retry_after = -1;
	res->h.should_retry = -1;
	buf_reset(&res->error_body);
	res->detail[0] = '\0';
}

static void attempt(struct upstream *u, const struct upstream_request *rq,
		    const struct upstream_sink *sink, struct upstream_result *res)
{
	start_attempt(u, sink, res);
	if (setup_handles(u) < 0) {
		res->outcome = UP_CONNECT_FAILED;
		snprintf(res->detail, sizeof res->detail, "cannot set up libcurl for the upstream URL");
		return;
	}
	if (build_request(u, rq) < 0) {
		/* Configuration (a URL or key) or a client's header past the caps: no call can go. */
		res->outcome = UP_CONNECT_FAILED;
		snprintf(res->detail, sizeof res->detail, "the upstream request's headers are too long or break a line");
		return;
	}
	int done = 0;
	for (;;) {
		int reused = u->connected;
		if (!reused && connect_upstream(u, rq) < 0)
			break;
		if (exchange(u, rq, &done) != DEAD || !reused)
			break;
		/* A kept connection the upstream closed meanwhile fails before any byte of an answer:
		 * the request goes again once, on a new connection, as libcurl would do. */
		disconnect(u);
		u->aborted = 0;
		u->errbuf[0] = '\0';
	}
	/* A header block cut off still tells the log which status and request-id it carried. */
	if (!u->headers_done && http1_started(&u->http))
		read_headers(u);
	if (!done || !u->http.reusable)
		disconnect(u);
	res->outcome = u->aborted ? u->abort_reason : done ? UP_DONE : UP_BROKEN;
	if (res->outcome != UP_DONE)
		snprintf(res->detail, sizeof res->detail, "%s%s%s", upstream_outcome_name(res->outcome),
			 u->errbuf[0] ? ": " : "", u->errbuf);
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
