/* request: the context one request is served in, shared by every layer that serves it.
 *
 * struct server is what a worker process keeps across requests; struct request owns everything a
 * request allocates and releases it in one place (serve.c, the top, fills it, hands it to the
 * route's handler and writes its access line). The handlers and the relay below them read it and
 * answer through it; nothing here knows of routes, handlers or the upstream, so this module sits
 * below all of them and the include graph stays one-way. */
#ifndef LLM_REQUEST_H
#define LLM_REQUEST_H

#include "buf.h"
#include "config.h"
#include "err.h"
#include "io.h"
#include "log.h"
#include "response.h"

struct json_object;
struct pool_shared;
struct route;
struct store;
struct upstream;

struct server {
	const struct config *cfg; /* borrowed */
	struct upstream *up;      /* this worker's upstream handle */
	struct pool_shared *shared; /* the prefork pool's counters, or NULL for a lone worker */
	struct store *store;        /* spend control's counters (borrowed), or NULL */
	unsigned long served;
	unsigned id_prefix; /* request ids are prefix + counter: unique per worker, cheap */
};

struct request {
	struct server *srv;
	struct io *io;
	struct response resp;
	const char *method;
	const struct route *route;
	struct buf path;
	const char *route_id; /* a TAIL_ID route's id segment (points into path), or NULL */
	size_t route_id_len;
	struct buf body;
	char id[24];
	double started; /* monotonic seconds */
	char upstream_request_id[128];
	/* Written by this module, by serve.c and by the relay only: a handler reads it at most. */
	struct access_record acc;
	int recorded; /* request_record ran */
};

void server_init(struct server *srv, const struct config *cfg, struct upstream *up);

/* Sets rq up for one request read from io (borrowed); release it with request_release. */
void request_init(struct request *rq, struct server *srv, struct io *io);
/* Completes the access record (status, duration, flushes; 499 when the client left). */
void request_record(struct request *rq);
/* Completes the record unless request_record did, runs what the request left queued for the
 * store (store_batch_later), logs the record and releases what the request allocated. */
void request_finish(struct request *rq);

/* Ends the request with an error: written in the route's dialect unless the response already
 * committed. message may be NULL for the kind's default. */
void request_fail(struct request *rq, enum err_kind kind, const char *message);
/* Ends the request with an error whose body the caller built (borrowed), for a dialect that
 * names more than a type and a message (OpenAI's param and code). */
void request_refuse(struct request *rq, enum err_kind kind, struct json_object *body);
/* The max_tokens to ask the upstream for: the request's, capped by max_tokens_limit, or the
 * configured default. */
long request_max_tokens(const struct request *rq, long asked);
double request_now(void);

#endif
