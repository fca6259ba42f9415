#include "route.h"

#include <string.h>

static const struct route routes[] = {
	{"/summarize", ROUTE_SUMMARIZE, METHOD_POST, DIALECT_NATIVE, LIMIT_OWN, 1, 0},
	/* The seed's two names for the same handler: with blocking workers there is no difference
	 * between its sync and async endpoints (see README, "Concurrency"). */
	{"/sync-summarize", ROUTE_SUMMARIZE, METHOD_POST, DIALECT_NATIVE, LIMIT_OWN, 1, 0},
	{"/async-summarize", ROUTE_SUMMARIZE, METHOD_POST, DIALECT_NATIVE, LIMIT_OWN, 1, 0},
	{"/stream", ROUTE_STREAM, METHOD_GET | METHOD_POST, DIALECT_NATIVE, LIMIT_OWN, 1, 0},
	{"/healthz", ROUTE_HEALTHZ, METHOD_GET | METHOD_HEAD, DIALECT_NATIVE, LIMIT_NONE, 0, 0},
	/* Drop-in API compatibility: the paths the official SDKs call below their base URL. */
	{"/v1/messages", ROUTE_MESSAGES, METHOD_POST, DIALECT_ANTHROPIC, LIMIT_API, 1, 1},
	{"/v1/messages/count_tokens", ROUTE_COUNT_TOKENS, METHOD_POST, DIALECT_ANTHROPIC, LIMIT_API,
	 1, 1},
	{"/v1/models", ROUTE_MODELS, METHOD_GET | METHOD_HEAD, DIALECT_ANTHROPIC, LIMIT_NONE, 0, 1},
	{"/v1/chat/completions", ROUTE_CHAT, METHOD_POST, DIALECT_OPENAI, LIMIT_API, 1, 1},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

static int ends_with(const char *s, size_t n, const char *suffix)
{
	size_t m = strlen(suffix);
	return m <= n && memcmp(s + n - m, suffix, m) == 0;
}

int route_path(const char *request_uri, const char *script_name, const char *path_info,
	       const char *base_path, struct buf *out)
{
	struct buf full;
	buf_init(&full, out->max);
	int rc = -1;
	if (request_uri && *request_uri) {
		size_t n = strcspn(request_uri, "?#");
		if (buf_append(&full, request_uri, n) < 0)
			goto out;
	} else if (buf_appends(&full, script_name ? script_name : "") < 0 ||
		   buf_appends(&full, path_info ? path_info : "") < 0) {
		goto out;
	}
	const char *p = buf_cstr(&full);
	size_t n = full.len;

	if (base_path && *base_path) {
		size_t b = strlen(base_path);
		if (n >= b && memcmp(p, base_path, b) == 0 && (p[b] == '/' || p[b] == '\0')) {
			rc = buf_appends(out, p[b] ? p + b : "/");
			goto out;
		}
		rc = buf_append(out, p, n);
		goto out;
	}
	const char *best = NULL;
	for (size_t i = 0; i < N_ROUTES; i++)
		if (ends_with(p, n, routes[i].path) && (!best || strlen(routes[i].path) > strlen(best)))
			best = routes[i].path;
	rc = best ? buf_appends(out, best) : buf_append(out, n ? p : "/", n ? n : 1);
out:
	buf_release(&full);
	return rc;
}

const struct route *route_lookup(const char *path)
{
	for (size_t i = 0; i < N_ROUTES; i++)
		if (strcmp(routes[i].path, path) == 0)
			return &routes[i];
	return NULL;
}

enum dialect route_dialect_for(const char *path)
{
	if (strstr(path, "/v1/chat/") || ends_with(path, strlen(path), "/v1/chat"))
		return DIALECT_OPENAI;
	if (strstr(path, "/v1/") || ends_with(path, strlen(path), "/v1"))
		return DIALECT_ANTHROPIC;
	return DIALECT_NATIVE;
}

unsigned route_method_bit(const char *method)
{
	if (!method)
		return 0;
	if (strcmp(method, "GET") == 0)
		return METHOD_GET;
	if (strcmp(method, "HEAD") == 0)
		return METHOD_HEAD;
	if (strcmp(method, "POST") == 0)
		return METHOD_POST;
	return 0;
}

void route_allow(const struct route *r, struct buf *out)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{METHOD_GET, "GET"}, {METHOD_HEAD, "HEAD"}, {METHOD_POST, "POST"}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!(r->methods & names[i].bit))
			continue;
		if (out->len)
			buf_appends(out, ", ");
		buf_appends(out, names[i].name);
	}
}
