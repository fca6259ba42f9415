/* request: one request from the web server to the access log line.
 *
 * struct server is what a worker process keeps across requests; struct request owns everything a
 * request allocates and releases it in one place. request_serve reads the CGI parameters, derives
 * the route, checks the method, reads the body against the route's cap, dispatches to a handler
 * and writes the access log line. */
#ifndef LLM_REQUEST_H
#define LLM_REQUEST_H

#include "buf.h"
#include "config.h"
#include "io.h"
#include "log.h"
#include "response.h"
#include "route.h"

struct pool_shared;
struct upstream;
struct upstream_result;

struct server {
	const struct config *cfg; /* borrowed */
	struct upstream *up;      /* this worker's upstream handle */
	struct pool_shared *shared; /* the prefork pool's counters, or NULL for a lone worker */
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
	struct buf body;
	char id[24];
	double started; /* monotonic seconds */
	char upstream_request_id[128];
	struct access_record acc;
};

void server_init(struct server *srv, const struct config *cfg, struct upstream *up);
void request_serve(struct server *srv, struct io *io);

/* Ends the request with an error: written in the route's dialect unless the response already
 * committed. message may be NULL for the kind's default. */
void request_fail(struct request *rq, enum err_kind kind, const char *message);
/* Ends the request with the error an upstream result maps to (after the retries were spent). */
void request_fail_upstream(struct request *rq, const struct upstream_result *res);
/* The error kind and client-facing message (caller frees) an upstream result maps to. */
enum err_kind request_upstream_error(const struct request *rq, const struct upstream_result *res,
				     char **message);
/* Records what the access log needs from an upstream call (attempts, request id) and relays the
 * upstream's request id to the client as x-request-id while the headers are still open. */
void request_note_upstream(struct request *rq, const struct upstream_result *res);
/* The max_tokens to ask the upstream for: the request's, capped by max_tokens_limit, or the
 * configured default. */
long request_max_tokens(const struct request *rq, long asked);
double request_now(void);

#endif
