#include "serve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_keys.h"
#include "handlers/handlers.h"
#include "metrics.h"
#include "pool.h"
#include "route.h"
#include "spend.h"

#define READ_CHUNK 16384

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

/* Which of the listed keys the request presents (x-api-key, what the Anthropic SDKs sent so far,
 * or Authorization: Bearer, what the OpenAI SDK and newer Anthropic SDKs send), or -1. Both are
 * tried, so a client sending both is judged by either (and pays as the x-api-key one). */
static long client_key(struct request *rq)
{
	const struct client_keys *keys = &rq->srv->cfg->client_keys;
	const char *key = io_param(rq->io, "HTTP_X_API_KEY");
	size_t n;
	long found = -1, bearer = -1;
	if (key && *key)
		found = client_keys_find(keys, key, strlen(key));
	key = client_keys_bearer(io_param(rq->io, "HTTP_AUTHORIZATION"), &n);
	if (key && n)
		bearer = client_keys_find(keys, key, n);
	return found >= 0 ? found : bearer;
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
	rq->route = handlers_route_match(buf_cstr(&rq->path), mount_point(rq), &m);
	if (!rq->route)
		rq->route = handlers_route_match_config(rq->srv->cfg, buf_cstr(&rq->path),
							mount_point(rq), &m);
	rq->route_id = m.id;
	rq->route_id_len = m.id_len;
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
		response_add_header(&rq->resp, "Allow", route_allow(rq->route));
		request_fail(rq, ERR_METHOD, NULL);
		return -1;
	}
	return 0;
}

static void serve(struct request *rq, struct spend *sp)
{
	const struct config *cfg = rq->srv->cfg;
	long key = -1;
	if (resolve(rq, route_method_bit(rq->method)) < 0)
		return;
	/* Before the body is read: an unauthenticated client costs no more than its headers. */
	if (rq->route->api && cfg->client_keys_file && (key = client_key(rq)) < 0) {
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
	/* Limits and budgets: a refused request is answered here and never reaches the upstream. */
	if (rq->route->calls_upstream && spend_begin(rq, sp, key) < 0)
		return;
	if (!rq->route->calls_upstream && rq->route->api)
		spend_identify(rq, sp, key);
	metrics_enter(rq, sp->who);
	rq->route->handle(rq);
}

void serve_request(struct server *srv, struct io *io)
{
	struct request rq;
	struct spend sp = {.checked = 0};
	request_init(&rq, srv, io);
	metrics_begin();
	serve(&rq, &sp);
	spend_end(&rq, &sp); /* the usage the relay recorded, for the counters */
	request_record(&rq);
	metrics_end(&rq, sp.who); /* the access record into the counters, with spend's in one call */
	request_finish(&rq);
}
