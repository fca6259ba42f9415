/* route: which endpoint a request is for (pure, allocation-free).
 *
 * The route is the request path exactly as the client sent it (REQUEST_URI up to '?'), minus the
 * mount point. No single CGI variable gives the mount point on every server (lighttpd at "/"
 * puts the first segment in SCRIPT_NAME, mod_proxy_fcgi may set no PATH_INFO, CGI rewrites put
 * the script there), so the caller names it: the LLM_FCGI_BASE_PATH parameter every shipped
 * snippet passes with each request, else base_path, else "/". The rest must equal a route of the
 * table literally: a path that only ends with a route, or spells it with dot segments, "//" or
 * percent-escapes, is no route (404). The web server matched its access rules on its own
 * normalised copy of the path; matching the raw one literally keeps the two from disagreeing
 * about which endpoint a request is for.
 *
 * A route whose path comes from the configuration (a metrics or status path) is a row like any
 * other, in a small table the caller fills from the configuration at startup and matches with
 * route_match_in after (or before) the built-in one; the built-in table stays declarative. The
 * built-in table lives with the handlers it names (handlers/routes.c): this module only matches. */
#ifndef LLM_ROUTE_H
#define LLM_ROUTE_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

struct request;

enum route_method {
	METHOD_GET = 1 << 0,
	METHOD_HEAD = 1 << 1,
	METHOD_POST = 1 << 2,
	METHOD_OPTIONS = 1 << 3, /* a CORS preflight is answered on every route; never in a row */
};

enum route_limit {
	LIMIT_NONE,    /* no body expected */
	LIMIT_OWN,     /* max_body_bytes */
	LIMIT_API,     /* max_body_bytes_api */
};

enum route_tail {
	TAIL_NONE, /* the path alone */
	TAIL_ID,   /* the path, or the path + "/" + one id segment ("/v1/models/{id}") */
};

/* One row of a route table; the built-in table is the handlers' (handlers/routes.c), since a row
 * names its handler and this module sits below them. */
struct route {
	const char *path;
	void (*handle)(struct request *rq); /* answers a request whose method and body were checked */
	unsigned methods; /* enum route_method bits */
	enum dialect dialect;
	enum route_limit limit;
	int calls_upstream; /* spends upstream tokens: subject to load shedding */
	int api;            /* an API-compatible route: client_keys_file applies */
	enum route_tail tail;
};

/* What a request path matched. Points into the path it was matched on (borrowed). */
struct route_match {
	const struct route *route; /* NULL: no route (404) */
	const char *rest;          /* the path below the mount point, or the whole path outside it */
	const char *id;            /* a TAIL_ID row's id segment, or NULL */
	size_t id_len;
};

/* Appends the request path to out: request_uri up to '?' or '#', or, when the server set no
 * REQUEST_URI, script_name + path_info. Returns 0, or -1 when out's max is exceeded. */
int route_path(const char *request_uri, const char *script_name, const char *path_info,
	       struct buf *out);
/* Matches path (borrowed, NUL-terminated) below the mount point prefix ("", "/", "/ai" or "/ai/":
 * trailing slashes do not count) against rows (borrowed). Returns m->route. */
const struct route *route_match_in(const struct route *rows, size_t n_rows, const char *path,
				   const char *prefix, struct route_match *m);
/* The row of rows for an exact route path ("/summarize"), or NULL. */
const struct route *route_lookup_in(const struct route *rows, size_t n_rows, const char *path);
/* The error dialect for a path no route matched. */
enum dialect route_dialect_for(const char *path);
/* enum route_method bit for a REQUEST_METHOD, 0 when unknown. */
unsigned route_method_bit(const char *method);
/* The methods of r as a header value ("GET, HEAD"), for Allow and CORS. */
const char *route_allow(const struct route *r);

#endif
