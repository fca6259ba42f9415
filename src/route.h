/* route: which endpoint a request is for (pure).
 *
 * The route is the request path below the mount point, wherever the app is mounted and whatever
 * the server put in SCRIPT_NAME / PATH_INFO (lighttpd at "/" splits off the first segment as
 * SCRIPT_NAME, mod_proxy_fcgi may set no PATH_INFO, CGI has the script's own path in front). So
 * the path is taken from REQUEST_URI (always set), and the mount point is either the configured
 * base_path or whatever precedes the longest known route that the path ends with. */
#ifndef LLM_ROUTE_H
#define LLM_ROUTE_H

#include "buf.h"
#include "err.h"

enum route_id {
	ROUTE_SUMMARIZE,
	ROUTE_STREAM,
	ROUTE_HEALTHZ,
	ROUTE_MESSAGES,     /* Anthropic Messages API, passed through */
	ROUTE_COUNT_TOKENS, /* Anthropic token counting, passed through */
	ROUTE_MODELS,       /* the accepted models, answered locally */
	ROUTE_CHAT,         /* OpenAI Chat Completions, translated to Messages */
};

enum route_method {
	METHOD_GET = 1 << 0,
	METHOD_HEAD = 1 << 1,
	METHOD_POST = 1 << 2,
};

enum route_limit {
	LIMIT_NONE,    /* no body expected */
	LIMIT_OWN,     /* max_body_bytes */
	LIMIT_API,     /* max_body_bytes_api */
};

struct route {
	const char *path;
	enum route_id id;
	unsigned methods; /* enum route_method bits */
	enum dialect dialect;
	enum route_limit limit;
	int calls_upstream; /* spends upstream tokens: subject to load shedding */
	int api;            /* an API-compatible route: client_keys_file applies */
};

/* Appends the route path to out ("/summarize"; the plain path when no route matches). request_uri
 * may carry a query string; when it is NULL, script_name + path_info are used. Returns 0, or -1
 * when out's max is exceeded. */
int route_path(const char *request_uri, const char *script_name, const char *path_info,
	       const char *base_path, struct buf *out);
/* The route for a route path, or NULL. */
const struct route *route_lookup(const char *path);
/* The error dialect for a path no route matched. */
enum dialect route_dialect_for(const char *path);
/* enum route_method bit for a REQUEST_METHOD, 0 when unknown. */
unsigned route_method_bit(const char *method);
/* Writes the Allow header value for r ("GET, HEAD"). */
void route_allow(const struct route *r, struct buf *out);

#endif
