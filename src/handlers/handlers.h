/* The endpoint handlers: each answers one route family for a request whose method was checked
 * and whose body was read against the route's cap. A handler checks what the client asked for
 * and builds the upstream request; the relay (relay.h) calls the upstream and answers, through
 * the handler's table of hooks. The built-in route table names them (routes.c). */
#ifndef LLM_HANDLERS_H
#define LLM_HANDLERS_H

#include <stddef.h>

#include "../route.h"

struct config;
struct request;

void handle_summarize(struct request *rq);
void handle_stream(struct request *rq);
void handle_healthz(struct request *rq);
/* The Anthropic-compatible routes: POST /v1/messages, POST /v1/messages/count_tokens,
 * GET /v1/models and /v1/models/{id} (messages.c). */
void handle_messages(struct request *rq);
void handle_count_tokens(struct request *rq);
void handle_models(struct request *rq);
/* The OpenAI-compatible POST /v1/chat/completions (chat.c). */
void handle_chat(struct request *rq);
void handle_responses(struct request *rq);
/* The model an OpenAI-dialect request names (chat completions, responses), its catalogue rules
 * applied. Returns the upstream's model id (caller frees), or NULL when it has answered. */
struct openai_request;
char *handlers_openai_model(struct request *rq, struct openai_request *orq);
/* The max_tokens rules an OpenAI-dialect request is parsed with: an identified request's limit
 * depends on its model, so handlers_openai_model checks it once the model is known. */
struct openai_limits;
void handlers_openai_limits(const struct request *rq, struct openai_limits *lim);

/* The operator's routes (status.c): the Prometheus metrics and the pool's JSON status, for
 * metrics_allow only (403 for anyone else). */
void handle_metrics(struct request *rq);
void handle_status(struct request *rq);

/* The built-in route table (routes.c), matched as route_match_in says. */
const struct route *handlers_route_match(const char *path, const char *prefix,
					 struct route_match *m);
/* The routes whose paths come from cfg (metrics_path, status_path), matched the same way after
 * the built-in table. The row returned stays valid until the next call. */
const struct route *handlers_route_match_config(const struct config *cfg, const char *path,
						const char *prefix, struct route_match *m);
/* The built-in row for an exact route path ("/summarize"), or NULL. */
const struct route *handlers_route_lookup(const char *path);

/* Shared by the handlers that spend upstream tokens: the cross-site check (403). Returns 0 when the
 * request may go on; otherwise it has already answered. */
int handlers_check_origin(struct request *rq);
/* CORS for the origins allowed_origins lists (origin.c): adds Access-Control-Allow-Origin and the
 * exposed headers to whatever the request is answered with, when it comes from such an origin. */
void handlers_cors_headers(struct request *rq);
/* Answers a preflight (OPTIONS with Access-Control-Request-Method) on a known route: from a listed
 * origin 204 with the route's methods and the request headers it asked for; from any other 403;
 * for a method the route does not take 405. */
void handlers_preflight(struct request *rq);

/* Our own endpoints answer text: an answer that ended at max_tokens before any (the model spent
 * them all thinking) is an error, never an empty 200. Writes its message for max_tokens under
 * the server's limit to out (summarize.c; stream.c uses it too). */
void handlers_no_text(char *out, size_t cap, long max_tokens, long limit);
/* A client that names a retired model gets 404 not_found_error naming it and the catalogue's
 * suggestion, before the allowlist check: what the API would answer, said more usefully. Returns
 * 1 with that message in out when the catalogue lists name (n bytes) as retired today (UTC),
 * else 0 (messages.c; chat.c uses it too). */
int handlers_model_retired(const struct request *rq, const char *name, size_t n, char *out,
			   size_t cap);

/* 1 when the request presented a client key or came through the web server's authentication:
 * spend.c's identity is key:LABEL or user:NAME (read, not worked out again). */
int handlers_identified(const struct request *rq);
/* A model name a /v1/ client sent (n bytes): config_model_find's, and for an identified request
 * (a client key or the web server's user) with "*" in models, any model the catalogue lists as
 * current today, sent as named. Returns 1 with *m set (pointing into name or the config), or 0. */
struct config_model;
int handlers_model_find(const struct request *rq, const char *name, size_t n,
			struct config_model *m);
/* The most max_tokens a request to target (n bytes) may ask for: for an identified request the
 * model's own maximum output from the catalogue, else (and without an entry) max_tokens_limit. */
long handlers_max_tokens_limit(const struct request *rq, const char *target, size_t n);

/* The body of an API request is JSON: a missing content type passes, any other gets 415.
 * Returns 0, or -1 when it has answered (messages.c; chat.c uses it too). */
int handlers_check_json(struct request *rq);

/* The relay's on_upstream_error for the OpenAI dialects (chat.c): the upstream's error status with
 * its message in OpenAI's error shape. */
struct relay;
int handlers_openai_upstream_error(struct relay *r, int status, const char *type,
				   const char *message, const char *body, size_t len);

#endif
