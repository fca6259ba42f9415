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
