#include "request.h"

#include <json-c/json.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "route.h"
#include "store.h"

/* REQUEST_URI can be long; a route path never is. */
#define PATH_MAX_BYTES 8192
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

/* The request id: the worker's prefix and its count, each in at least 8 hex digits, as "%08x%08lx"
 * (cut to fit dst) without printf's cost. */
static void make_id(char *dst, size_t cap, unsigned prefix, unsigned long n)
{
	static const char hex[] = "0123456789abcdef";
	char t[8 + 2 * sizeof n];
	size_t len = 0;
	for (int shift = 28; shift >= 0; shift -= 4)
		t[len++] = hex[prefix >> shift & 0xf];
	int digits = 8;
	while (digits < (int)(2 * sizeof n) && n >> (4 * digits))
		digits++;
	while (digits-- > 0)
		t[len++] = hex[n >> (4 * digits) & 0xf];
	if (len > cap - 1)
		len = cap - 1;
	memcpy(dst, t, len);
	dst[len] = '\0';
}

void request_init(struct request *rq, struct server *srv, struct io *io)
{
	memset(rq, 0, sizeof *rq);
	rq->srv = srv;
	rq->io = io;
	rq->started = request_now();
	make_id(rq->id, sizeof rq->id, srv->id_prefix, ++srv->served);
	log_set_request_id(rq->id);
	rq->method = io_param(io, "REQUEST_METHOD");
	if (!rq->method)
		rq->method = "GET";
	buf_init(&rq->path, PATH_MAX_BYTES);
	buf_init(&rq->body, 0);
	response_init(&rq->resp, io, DIALECT_NATIVE);
	rq->acc.ttft_ms = -1;
}

void request_record(struct request *rq)
{
	/* Whatever wrote last, a failed write means the client left: one rule for every route. */
	if (rq->resp.client_gone)
		rq->acc.cancelled = 1;
	rq->acc.method = rq->method;
	rq->acc.route = rq->route ? rq->route->path : buf_cstr(&rq->path);
	rq->acc.status = rq->acc.cancelled ? 499 : rq->resp.status;
	rq->acc.duration_ms = (request_now() - rq->started) * 1000.0;
	rq->acc.flushes = rq->resp.flushes;
	rq->acc.upstream_request_id = rq->upstream_request_id;
	rq->recorded = 1;
}

void request_finish(struct request *rq)
{
	if (!rq->recorded)
		request_record(rq);
	/* What the request left for the store goes before its access line: a line in the log
	 * means its usage is in the counters (tests and the operator's scripts rely on it). */
	if (rq->srv->store)
		(void)store_flush(rq->srv->store);
	log_access(&rq->acc);
	log_set_request_id(NULL);
	response_release(&rq->resp);
	buf_release(&rq->path);
	size_t body_len = rq->body.len;
	buf_release(&rq->body);
	/* A large body may have been parsed into a json-c tree of up to jscan's budget, now freed
	 * in pieces that glibc keeps for the worker's life (only the top of the heap goes back on
	 * its own): when that left much free heap, give the pages back. Only after large bodies,
	 * so small requests pay nothing, and only when there is much to give, so the pages a
	 * worker keeps reusing are not given back and faulted in again on every request. */
	if (body_len >= TRIM_AFTER_BYTES && mallinfo2().fordblks >= TRIM_FREE_BYTES)
		malloc_trim(0);
}

void request_fail(struct request *rq, enum err_kind kind, const char *message)
{
	if (!rq->acc.error)
		rq->acc.error = err_name(kind);
	if (kind == ERR_CANCELLED || rq->resp.client_gone) {
		rq->acc.cancelled = 1;
		return;
	}
	response_error(&rq->resp, kind, message);
}

void request_refuse(struct request *rq, enum err_kind kind, struct json_object *body)
{
	if (!rq->acc.error)
		rq->acc.error = err_name(kind);
	response_json(&rq->resp, err_status(kind), body);
}

long request_max_tokens(const struct request *rq, long asked)
{
	const struct config *c = rq->srv->cfg;
	if (asked <= 0)
		return c->max_tokens;
	return asked > c->max_tokens_limit ? c->max_tokens_limit : asked;
}
