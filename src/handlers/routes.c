/* The built-in route table: each row names its handler, so a new endpoint is one row here and
 * one handler file. */
#include "handlers.h"

#include "../config.h"

static const struct route routes[] = {
	{.path = "/summarize", .handle = handle_summarize, .methods = METHOD_POST,
	 .dialect = DIALECT_NATIVE, .limit = LIMIT_OWN, .calls_upstream = 1},
	/* The seed's two names for the same handler: with blocking workers there is no difference
	 * between its sync and async endpoints (see README, "Concurrency"). */
	{.path = "/sync-summarize", .handle = handle_summarize, .methods = METHOD_POST,
	 .dialect = DIALECT_NATIVE, .limit = LIMIT_OWN, .calls_upstream = 1},
	{.path = "/async-summarize", .handle = handle_summarize, .methods = METHOD_POST,
	 .dialect = DIALECT_NATIVE, .limit = LIMIT_OWN, .calls_upstream = 1},
	{.path = "/stream", .handle = handle_stream, .methods = METHOD_GET | METHOD_POST,
	 .dialect = DIALECT_NATIVE, .limit = LIMIT_OWN, .calls_upstream = 1},
	{.path = "/healthz", .handle = handle_healthz, .methods = METHOD_GET | METHOD_HEAD,
	 .dialect = DIALECT_NATIVE, .limit = LIMIT_NONE},
	/* Drop-in API compatibility: the paths the official SDKs call below their base URL. */
	{.path = "/v1/messages", .handle = handle_messages, .methods = METHOD_POST,
	 .dialect = DIALECT_ANTHROPIC, .limit = LIMIT_API, .calls_upstream = 1, .api = 1},
	{.path = "/v1/messages/count_tokens", .handle = handle_count_tokens, .methods = METHOD_POST,
	 .dialect = DIALECT_ANTHROPIC, .limit = LIMIT_API, .calls_upstream = 1, .api = 1},
	{.path = "/v1/models", .handle = handle_models, .methods = METHOD_GET | METHOD_HEAD,
	 .dialect = DIALECT_ANTHROPIC, .limit = LIMIT_NONE, .api = 1, .tail = TAIL_ID},
	{.path = "/v1/chat/completions", .handle = handle_chat, .methods = METHOD_POST,
	 .dialect = DIALECT_OPENAI, .limit = LIMIT_API, .calls_upstream = 1, .api = 1},
	{.path = "/v1/responses", .handle = handle_responses, .methods = METHOD_POST,
	 .dialect = DIALECT_OPENAI, .limit = LIMIT_API, .calls_upstream = 1, .api = 1},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

const struct route *handlers_route_match(const char *path, const char *prefix,
					 struct route_match *m)
{
	return route_match_in(routes, N_ROUTES, path, prefix, m);
}

const struct route *handlers_route_lookup(const char *path)
{
	return route_lookup_in(routes, N_ROUTES, path);
}

const struct route *handlers_route_match_config(const struct config *cfg, const char *path,
						const char *prefix, struct route_match *m)
{
	/* Rows of a worker's own, refilled on each call: the configuration may have been reloaded,
	 * and a worker serves one request at a time. */
	static struct route own[2];
	size_t n = 0;
	const struct route base = {.methods = METHOD_GET | METHOD_HEAD, .dialect = DIALECT_NATIVE,
				   .limit = LIMIT_NONE};
	if (cfg->metrics_path && *cfg->metrics_path) {
		own[n] = base;
		own[n].path = cfg->metrics_path;
		own[n++].handle = handle_metrics;
	}
	if (cfg->status_path && *cfg->status_path) {
		own[n] = base;
		own[n].path = cfg->status_path;
		own[n++].handle = handle_status;
	}
	return route_match_in(own, n, path, prefix, m);
}
