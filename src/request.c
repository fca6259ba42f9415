#include "request.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "anthropic.h"
#include "client_keys.h"
#include "clock.h"
#include "handlers/handlers.h"
#include "pool.h"
#include "upstream.h"

/* REQUEST_URI can be long; a route path never is. */
#define PATH_MAX_BYTES 8192
#define READ_CHUNK 16384
#define TRIM_AFTER_BYTES (16 * 1024)
#define TRIM_FREE_BYTES (4 * 1024 * 1024)

double request_now(void)
{
	return clock_now();
}

void server_init(struct server *srv, const struct config *cfg, struct upstream *up)
{
	memset(srv, 0, sizeof *srv);
	srv->cfg = cfg;
	srv->up = up;
	srv->id_prefix = ((unsigned)getpid() << 16) ^ (unsigned)time(NULL);
}

void request_fail(struct request *rq, enum err_kind kind, const char *message)
{
	if (!rq->acc.error)
		rq->acc.error = err_name(kind);
	if (kind == ERR_CANCELLED || rq->resp.client_gone) {
		rq->acc.cancelled = 1;
		return;
	}
	if (response_error(&rq->resp, kind, message) < 0 && rq->resp.client_gone)
		rq->acc.cancelled = 1;
}

long request_max_tokens(const struct request *rq, long asked)
{
	const struct config *c = rq->srv->cfg;
	if (asked <= 0)
		return c->max_tokens;
	return asked > c->max_tokens_limit ? c->max_tokens_limit : asked;
}

enum err_kind request_upstream_error(const struct request *rq, const struct upstream_result *res,
				     char **message)
{
	struct buf m;
	buf_init(&m, 2048);
	enum err_kind kind = ERR_UPSTREAM;
	switch (res->outcome) {
	case UP_CONNECT_FAILED:
		buf_appends(&m, "The upstream API could not be reached");
		break;
	case UP_BROKEN:
		buf_appends(&m, "The upstream API closed the connection or sent an invalid answer");
		break;
	case UP_TOO_LARGE:
		buf_appends(&m, "The upstream API sent an answer larger than this server accepts");
		break;
	case UP_FIRST_BYTE_TIMEOUT:
	case UP_IDLE_TIMEOUT:
	case UP_TOTAL_TIMEOUT:
		kind = ERR_TIMEOUT;
		buf_printf(&m, "The upstream API timed out (%s)", upstream_outcome_name(res->outcome));
		break;
	case UP_ABORTED:
		kind = ERR_CANCELLED;
		break;
	case UP_DONE: {
		long st = res->h.status;
		char *type = NULL, *msg = NULL;
		int parsed = anthropic_parse_error(res->error_body.data ? res->error_body.data : "",
						   res->error_body.len, &type, &msg) == 0;
		if (parsed) {
			/* Both are relayed below, and an upstream may quote the key in either. */
			anthropic_scrub(type, rq->srv->cfg->api_key);
			anthropic_scrub(msg, rq->srv->cfg->api_key);
		}
		if (st == 401 || st == 403) {
			/* The upstream's text may quote the key: never relay it. */
			buf_appends(&m, "The upstream API rejected this server's credentials");
		} else if (st == 400 && parsed) {
			kind = ERR_BAD_REQUEST;
			buf_appends(&m, msg);
		} else if (st == 413) {
			kind = ERR_TOO_LARGE;
			buf_appends(&m, "The request is too large for the upstream API");
		} else if (st == 429) {
			kind = ERR_RATE_LIMIT;
			buf_appends(&m, "The upstream API is rate limiting this server; retry later");
		} else if (st == 529) {
			kind = ERR_OVERLOADED;
			buf_appends(&m, "The upstream API is overloaded; retry later");
		} else if (st == 504) {
			kind = ERR_TIMEOUT;
			buf_appends(&m, "The upstream API timed out");
		} else if (parsed) {
			buf_printf(&m, "The upstream API answered %ld: %s: %s", st, type, msg);
		} else {
			buf_printf(&m, "The upstream API answered %ld with an invalid body", st);
		}
		free(type);
		free(msg);
		break;
	}
	}
	*message = buf_detach(&m);
	return kind;
}

void request_note_upstream(struct request *rq, const struct upstream_result *res)
{
	rq->acc.attempts = res->attempts;
	if (res->h.request_id[0]) {
		snprintf(rq->upstream_request_id, sizeof rq->upstream_request_id, "%s", res->h.request_id);
		response_add_header(&rq->resp, "x-request-id", rq->upstream_request_id);
	}
}

void request_fail_upstream(struct request *rq, const struct upstream_result *res)
{
	char *msg = NULL;
	enum err_kind kind = request_upstream_error(rq, res, &msg);
	log_warn("upstream failed after %d attempt(s): %s (status %ld)%s%s", res->attempts,
		 upstream_outcome_name(res->outcome), res->h.status, res->detail[0] ? ": " : "",
		 res->detail);
	if (kind == ERR_RATE_LIMIT || kind == ERR_OVERLOADED) {
		char v[32];
		double ra = res->h.retry_after > 0 ? res->h.retry_after : 1;
		snprintf(v, sizeof v, "%ld", (long)(ra + 0.999));
		response_add_header(&rq->resp, "Retry-After", v);
	}
	/* The retries were ours: an SDK client retrying on top would multiply upstream calls. */
	response_add_header(&rq->resp, "x-should-retry", "false");
	request_fail(rq, kind, msg);
	free(msg);
}

/* CONTENT_LENGTH is a hint: absent with a chunked upload under some servers, "" under nginx. */
static int parse_length(const char *s, long long *out)
{
	*out = -1;
	if (!s || !*s)
		return 0;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 0 || s[0] == '-' || s[0] == '+')
		return -1;
	*out = v;
	return 0;
}

static enum err_kind read_body(struct request *rq, size_t cap, const char **msg)
{
	long long length;
	if (parse_length(io_param(rq->io, "CONTENT_LENGTH"), &length) < 0) {
		*msg = "Content-Length is not a number";
		return ERR_BAD_REQUEST;
	}
	if (length > (long long)cap) {
		*msg = NULL;
		return ERR_TOO_LARGE;
	}
	buf_init(&rq->body, cap);
	/* Plain CGI gives no end-of-body marker beyond CONTENT_LENGTH itself. */
	long long want = rq->io->ops->is_cgi ? (length < 0 ? 0 : length) : -1;
	char chunk[READ_CHUNK];
	for (;;) {
		size_t n = sizeof chunk;
		if (want >= 0) {
			long long left = want - (long long)rq->body.len;
			if (left <= 0)
				break;
			if ((long long)n > left)
				n = (size_t)left;
		}
		ssize_t got = rq->io->ops->read(rq->io->ctx, chunk, n);
		if (got < 0) {
			*msg = "The request body could not be read";
			return ERR_BAD_REQUEST;
		}
		if (got == 0)
			break;
		if (buf_append(&rq->body, chunk, (size_t)got) < 0) {
			*msg = NULL;
			return ERR_TOO_LARGE;
		}
	}
	if (length >= 0 && (long long)rq->body.len != length) {
		*msg = "The request body does not match its Content-Length";
		return ERR_BAD_REQUEST;
	}
	return ERR_OK;
}

static void dispatch(struct request *rq)
{
	switch (rq->route->id) {
	case ROUTE_SUMMARIZE:
		handle_summarize(rq);
		break;
	case ROUTE_STREAM:
		handle_stream(rq);
		break;
	case ROUTE_HEALTHZ:
		handle_healthz(rq);
		break;
	case ROUTE_MESSAGES:
		handle_messages(rq);
		break;
	case ROUTE_COUNT_TOKENS:
		handle_count_tokens(rq);
		break;
	case ROUTE_MODELS:
		handle_models(rq);
		break;
	case ROUTE_CHAT:
		handle_chat(rq);
		break;
	}
}

/* Is one of the keys the request presents (x-api-key, what the Anthropic SDKs sent so far, or
 * Authorization: Bearer, what the OpenAI SDK and newer Anthropic SDKs send) listed? Both are
 * tried, so a client sending both is judged by either. */
static int client_key_ok(struct request *rq)
{
	const struct client_keys *keys = &rq->srv->cfg->client_keys;
	const char *key = io_param(rq->io, "HTTP_X_API_KEY");
	size_t n;
	int ok = 0;
	if (key && *key)
		ok |= client_keys_match(keys, key, strlen(key));
	key = client_keys_bearer(io_param(rq->io, "HTTP_AUTHORIZATION"), &n);
	if (key && n)
		ok |= client_keys_match(keys, key, n);
	return ok;
}

/* The mount point: what the web server passes with each request (every shipped snippet sets
 * LLM_FCGI_BASE_PATH), else base_path, else the site root. */
static const char *mount_point(const struct request *rq)
{
	const char *p = io_param(rq->io, "LLM_FCGI_BASE_PATH");
	if (p)
		return p;
	return rq->srv->cfg->base_path ? rq->srv->cfg->base_path : "";
}

/* Finds the route and checks the method. Returns 0 when the request goes on to its handler;
 * otherwise it has been answered (404, 405, or a CORS preflight). */
static int resolve(struct request *rq, unsigned bit)
{
	if (route_path(io_param(rq->io, "REQUEST_URI"), io_param(rq->io, "SCRIPT_NAME"),
		       io_param(rq->io, "PATH_INFO"), &rq->path) < 0) {
		request_fail(rq, ERR_NOT_FOUND, "The request path is too long");
		return -1;
	}
	struct route_match m;
	rq->route = route_match(buf_cstr(&rq->path), mount_point(rq), &m);
	rq->resp.dialect = rq->route ? rq->route->dialect : route_dialect_for(m.rest);
	rq->resp.head_only = bit == METHOD_HEAD;
	/* Before anything else answers: a page on a listed origin must be able to read errors too. */
	handlers_cors_headers(rq);
	if (!rq->route) {
		request_fail(rq, ERR_NOT_FOUND, NULL);
		return -1;
	}
	/* Browsers send a preflight without credentials or keys: it is answered here, before the
	 * client-key check, and spends nothing. Any other OPTIONS is a method no route takes. */
	if (bit == METHOD_OPTIONS && io_param(rq->io, "HTTP_ACCESS_CONTROL_REQUEST_METHOD")) {
		handlers_preflight(rq);
		return -1;
	}
	if (!(rq->route->methods & bit)) {
		struct buf allow;
		buf_init(&allow, 64);
		route_allow(rq->route, &allow);
		response_add_header(&rq->resp, "Allow", buf_cstr(&allow));
		buf_release(&allow);
		request_fail(rq, ERR_METHOD, NULL);
		return -1;
	}
	return 0;
}

static void serve(struct request *rq)
{
	const struct config *cfg = rq->srv->cfg;
	if (resolve(rq, route_method_bit(rq->method)) < 0)
		return;
	/* Before the body is read: an unauthenticated client costs no more than its headers. */
	if (rq->route->api && cfg->client_keys_file && !client_key_ok(rq)) {
		log_info("client key missing or not listed");
		request_fail(rq, ERR_UNAUTHORIZED, rq->resp.dialect == DIALECT_OPENAI
			? "Incorrect API key provided"
			: "invalid x-api-key");
		return;
	}
	if (rq->route->calls_upstream && rq->srv->shared && cfg->when_full == WHEN_FULL_SHED &&
	    pool_busy(rq->srv->shared) >= pool_total(rq->srv->shared)) {
		/* This is the last free worker: keep it for health checks and say so at once rather
		 * than start a model call that would leave the next request waiting in the backlog. */
		response_add_header(&rq->resp, "Retry-After", "1");
		request_fail(rq, ERR_POOL_FULL, "Every worker is busy; retry shortly");
		return;
	}
	if (rq->route->limit != LIMIT_NONE) {
		const char *msg = NULL;
		enum err_kind e = read_body(rq, rq->route->limit == LIMIT_API ? cfg->max_body_bytes_api
									: cfg->max_body_bytes, &msg);
		if (e != ERR_OK) {
			request_fail(rq, e, msg);
			return;
		}
	}
	dispatch(rq);
}

void request_serve(struct server *srv, struct io *io)
{
	struct request rq;
	memset(&rq, 0, sizeof rq);
	rq.srv = srv;
	rq.io = io;
	rq.started = request_now();
	snprintf(rq.id, sizeof rq.id, "%08x%08lx", srv->id_prefix, ++srv->served);
	log_set_request_id(rq.id);
	rq.method = io_param(io, "REQUEST_METHOD");
	if (!rq.method)
		rq.method = "GET";
	buf_init(&rq.path, PATH_MAX_BYTES);
	buf_init(&rq.body, 0);
	response_init(&rq.resp, io, DIALECT_NATIVE);
	rq.acc.ttft_ms = -1;

	serve(&rq);

	rq.acc.method = rq.method;
	rq.acc.route = rq.route ? rq.route->path : buf_cstr(&rq.path);
	rq.acc.status = rq.acc.cancelled ? 499 : rq.resp.status;
	rq.acc.duration_ms = (request_now() - rq.started) * 1000.0;
	rq.acc.flushes = rq.resp.flushes;
	rq.acc.upstream_request_id = rq.upstream_request_id;
	log_access(&rq.acc);
	log_set_request_id(NULL);
	response_release(&rq.resp);
	buf_release(&rq.path);
	size_t body_len = rq.body.len;
	buf_release(&rq.body);
	/* A large body may have been parsed into a json-c tree of up to jscan's budget, now freed
	 * in pieces that glibc keeps for the worker's life (only the top of the heap goes back on
	 * its own): when that left much free heap, give the pages back. Only after large bodies,
	 * so small requests pay nothing, and only when there is much to give, so the pages a
	 * worker keeps reusing are not given back and faulted in again on every request. */
	if (body_len >= TRIM_AFTER_BYTES && mallinfo2().fordblks >= TRIM_FREE_BYTES)
		malloc_trim(0);
}
