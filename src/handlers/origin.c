#include "handlers.h"

#include <string.h>
#include <strings.h>

#include "../request.h"

/* Is origin one of the space- or comma-separated entries of list ("*" matches any)? */
static int listed(const char *list, const char *origin)
{
	size_t n = strlen(origin);
	for (const char *p = list; *p;) {
		p += strspn(p, " ,\t");
		size_t k = strcspn(p, " ,\t");
		if (k == 1 && *p == '*')
			return 1;
		if (k && k == n && strncasecmp(p, origin, n) == 0)
			return 1;
		p += k;
	}
	return 0;
}

static int same_origin(struct request *rq, const char *origin)
{
	const char *host = io_param(rq->io, "HTTP_HOST");
	const char *https = io_param(rq->io, "HTTPS");
	const char *scheme = io_param(rq->io, "REQUEST_SCHEME");
	if (!host)
		return 0;
	if (https && strcasecmp(https, "on") == 0)
		scheme = "https";
	else if (!scheme)
		scheme = "http";
	size_t s = strlen(scheme);
	return strncasecmp(origin, scheme, s) == 0 && strncmp(origin + s, "://", 3) == 0 &&
	       strcasecmp(origin + s + 3, host) == 0;
}

/* A page on another site can make a browser send a simple GET or form POST here, and every such
 * request spends the operator's tokens: refuse what the browser marks as cross-site. Clients that
 * are not browsers send neither header and pass. */
int handlers_check_origin(struct request *rq)
{
	const char *site = io_param(rq->io, "HTTP_SEC_FETCH_SITE");
	const char *origin = io_param(rq->io, "HTTP_ORIGIN");
	const char *allowed = rq->srv->cfg->allowed_origins;
	if (origin && *origin && strcmp(origin, "null") != 0) {
		if (same_origin(rq, origin) || listed(allowed ? allowed : "", origin))
			return 0;
		request_fail(rq, ERR_FORBIDDEN, "Cross-origin requests are not allowed (origin not in allowed_origins)");
		return -1;
	}
	if (site && strcasecmp(site, "cross-site") == 0) {
		request_fail(rq, ERR_FORBIDDEN, "Cross-site requests are not allowed");
		return -1;
	}
	if (origin && strcmp(origin, "null") == 0 && !listed(allowed ? allowed : "", "null")) {
		request_fail(rq, ERR_FORBIDDEN, "Requests from an opaque origin are not allowed");
		return -1;
	}
	return 0;
}

/* The origin of a browser request from another origin that allowed_origins lists, or NULL. The
 * same origin needs no CORS headers; "*" echoes the caller's origin, which also works for the
 * requests browsers would refuse a literal "*" on. */
static const char *cors_origin(struct request *rq)
{
	const char *origin = io_param(rq->io, "HTTP_ORIGIN");
	const char *allowed = rq->srv->cfg->allowed_origins;
	if (!origin || !*origin || !allowed || !*allowed || same_origin(rq, origin))
		return NULL;
	return listed(allowed, origin) ? origin : NULL;
}

void handlers_cors_headers(struct request *rq)
{
	const char *origin = cors_origin(rq);
	if (!origin)
		return;
	response_add_header(&rq->resp, "Access-Control-Allow-Origin", origin);
	/* A preflight's answer also depends on what it asked for; one Vary line says it all. */
	response_add_header(&rq->resp, "Vary", route_method_bit(rq->method) == METHOD_OPTIONS
		? "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
		: "Origin");
	/* What the SDKs read besides the body: their retry logic and the request's id. */
	response_add_header(&rq->resp, "Access-Control-Expose-Headers",
			    "request-id, x-request-id, retry-after, x-should-retry");
}

/* Access-Control-Request-Headers is echoed: it must be a list of header names (the SDKs send
 * their own x-stainless-* names, which change between versions), short enough for one line. */
static int header_list_ok(const char *s)
{
	static const char token[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				    "!#$%&'*+-.^_`|~, \t";
	size_t n = strlen(s);
	return n > 0 && n <= 2048 && strspn(s, token) == n;
}

void handlers_preflight(struct request *rq)
{
	const char *want = io_param(rq->io, "HTTP_ACCESS_CONTROL_REQUEST_METHOD");
	const char *headers = io_param(rq->io, "HTTP_ACCESS_CONTROL_REQUEST_HEADERS");
	const char *methods = route_allow(rq->route);
	if (!cors_origin(rq)) {
		request_fail(rq, ERR_FORBIDDEN,
			     "Cross-origin requests are not allowed (origin not in allowed_origins)");
	} else if (!(route_method_bit(want) & rq->route->methods)) {
		response_add_header(&rq->resp, "Allow", methods);
		request_fail(rq, ERR_METHOD, NULL);
	} else {
		response_add_header(&rq->resp, "Access-Control-Allow-Methods", methods);
		if (headers && header_list_ok(headers))
			response_add_header(&rq->resp, "Access-Control-Allow-Headers", headers);
		response_add_header(&rq->resp, "Access-Control-Max-Age", "600");
		response_send(&rq->resp, 204, "text/plain", "", 0);
	}
}

int handlers_check_json(struct request *rq)
{
	/* Also what keeps other sites' pages out: a browser sends a cross-site request without a
	 * preflight only with a form or text/plain content type. */
	static const char json[] = "application/json";
	const char *ct = io_param(rq->io, "CONTENT_TYPE");
	size_t n = sizeof json - 1;
	if (!ct || !*ct ||
	    (strncasecmp(ct, json, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ')))
		return 0;
	request_fail(rq, ERR_MEDIA_TYPE, "Content-Type must be application/json");
	return -1;
}
