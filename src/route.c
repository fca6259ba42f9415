#include "route.h"

#include <string.h>

int route_path(const char *request_uri, const char *script_name, const char *path_info,
	       struct buf *out)
{
	if (request_uri && *request_uri)
		return buf_append(out, request_uri, strcspn(request_uri, "?#"));
	if (buf_appends(out, script_name ? script_name : "") < 0 ||
	    buf_appends(out, path_info ? path_info : "") < 0)
		return -1;
	return out->len ? 0 : buf_appends(out, "/");
}

/* An id segment names a model or an object: plain characters only, so that "." / "..", escapes
 * and separators never reach a handler as an id. */
static int id_ok(const char *s)
{
	static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789-_.:@";
	size_t n = strlen(s);
	if (n == 0 || strspn(s, allowed) != n)
		return 0;
	return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static const struct route *match_row(const struct route *r, const char *rest, struct route_match *m)
{
	size_t n = strlen(r->path);
	if (strncmp(rest, r->path, n) != 0)
		return NULL;
	if (rest[n] == '\0')
		return r;
	if (r->tail == TAIL_ID && rest[n] == '/' && id_ok(rest + n + 1)) {
		m->id = rest + n + 1;
		m->id_len = strlen(m->id);
		return r;
	}
	return NULL;
}

const struct route *route_match_in(const struct route *rows, size_t n_rows, const char *path,
				   const char *prefix, struct route_match *m)
{
	memset(m, 0, sizeof *m);
	m->rest = path;
	size_t b = prefix ? strlen(prefix) : 0;
	while (b > 0 && prefix[b - 1] == '/')
		b--;
	if (strncmp(path, prefix ? prefix : "", b) != 0 || path[b] != '/')
		return NULL;
	m->rest = path + b;
	for (size_t i = 0; i < n_rows && !m->route; i++)
		m->route = match_row(&rows[i], m->rest, m);
	return m->route;
}

const struct route *route_lookup_in(const struct route *rows, size_t n_rows, const char *path)
{
	for (size_t i = 0; i < n_rows; i++)
		if (strcmp(rows[i].path, path) == 0)
			return &rows[i];
	return NULL;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return m <= n && memcmp(s + n - m, suffix, m) == 0;
}

enum dialect route_dialect_for(const char *path)
{
	if (strstr(path, "/v1/chat/") || ends_with(path, "/v1/chat"))
		return DIALECT_OPENAI;
	if (strstr(path, "/v1/") || ends_with(path, "/v1"))
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
	if (strcmp(method, "OPTIONS") == 0)
		return METHOD_OPTIONS;
	return 0;
}

const char *route_allow(const struct route *r)
{
	/* Every set of a row's methods, indexed by their bits: nothing to build, nothing to fail. */
	static const char *const values[] = {
		[0] = "",
		[METHOD_GET] = "GET",
		[METHOD_HEAD] = "HEAD",
		[METHOD_GET | METHOD_HEAD] = "GET, HEAD",
		[METHOD_POST] = "POST",
		[METHOD_GET | METHOD_POST] = "GET, POST",
		[METHOD_HEAD | METHOD_POST] = "HEAD, POST",
		[METHOD_GET | METHOD_HEAD | METHOD_POST] = "GET, HEAD, POST",
	};
	return values[r->methods & (METHOD_GET | METHOD_HEAD | METHOD_POST)];
}
