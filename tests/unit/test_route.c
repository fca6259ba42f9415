/* The request path under every server's CGI variables, exact route matching below the mount
 * point, and the route table. */
#include <string.h>

#include "handlers/handlers.h"
#include "route.h"
#include "tap.h"

static const char *path_of(const char *uri, const char *script, const char *info)
{
	static struct buf out;
	buf_release(&out);
	buf_init(&out, 1024);
	if (route_path(uri, script, info, &out) < 0)
		return "(error)";
	return buf_cstr(&out);
}

/* The route path a request path matches below prefix, or "-" for none. */
static const char *routed(const char *path, const char *prefix)
{
	struct route_match m;
	const struct route *r = handlers_route_match(path, prefix, &m);
	return r ? r->path : "-";
}

static void test_request_path(void)
{
	/* lighttpd at "/" puts the first segment in SCRIPT_NAME; REQUEST_URI is whole. */
	tap_is_str(path_of("/summarize", "/summarize", ""), "/summarize", "REQUEST_URI wins");
	tap_is_str(path_of("/summarize?text=a", "/summarize", NULL), "/summarize", "query dropped");
	tap_is_str(path_of("/x/async-summarize#frag", NULL, NULL), "/x/async-summarize", "fragment dropped");
	tap_is_str(path_of("/ai/./stream?x", "/ai", "/stream"), "/ai/./stream", "kept raw, dot segment and all");
	tap_is_str(path_of(NULL, "/ai", "/healthz"), "/ai/healthz", "no REQUEST_URI: SCRIPT_NAME+PATH_INFO");
	tap_is_str(path_of(NULL, NULL, NULL), "/", "nothing at all: the root");
}

static void test_exact(void)
{
	tap_is_str(routed("/summarize", ""), "/summarize", "root mount");
	tap_is_str(routed("/summarize", "/"), "/summarize", "root mount spelt /");
	tap_is_str(routed("/ai/summarize", "/ai"), "/summarize", "prefix mount");
	tap_is_str(routed("/ai/summarize", "/ai/"), "/summarize", "prefix with its slash");
	tap_is_str(routed("/ai/v1/messages/count_tokens", "/ai/"), "/v1/messages/count_tokens",
		   "count_tokens, not /v1/messages");
	tap_is_str(routed("/ai/v1/chat/completions", "/ai"), "/v1/chat/completions", "chat below /ai");
	/* Issue 10, item 1: the suffix rule let these reach the model past Apache's open /healthz. */
	tap_is_str(routed("/ai/healthz/stream", "/ai/"), "-", "/ai/healthz/stream: no route");
	tap_is_str(routed("/ai/healthz/summarize", "/ai/"), "-", "/ai/healthz/summarize: no route");
	tap_is_str(routed("/ai/healthz/v1/chat/completions", "/ai/"), "-",
		   "/ai/healthz/v1/chat/completions: no route");
	tap_is_str(routed("/v2/summarize", ""), "-", "/v2/summarize at the root: no route");
	tap_is_str(routed("/anything/stream", ""), "-", "/anything/stream at the root: no route");
	tap_is_str(routed("/stream", "/ai"), "-", "outside the mount point: no route");
	tap_is_str(routed("/aix/stream", "/ai"), "-", "the prefix counts whole segments only");
	tap_is_str(routed("/ai", "/ai"), "-", "the mount point itself: no route");
	/* Servers normalise the path they match access rules on; the raw one must be literal. */
	tap_is_str(routed("/ai/./stream", "/ai"), "-", "dot segment: no route");
	tap_is_str(routed("/ai/x/../stream", "/ai"), "-", "dot-dot segment: no route");
	tap_is_str(routed("/ai//stream", "/ai"), "-", "double slash: no route");
	tap_is_str(routed("/ai/%73tream", "/ai"), "-", "percent-escape: no route");
	tap_is_str(routed("/ai/stream/", "/ai"), "-", "trailing slash: no route");
	tap_is_str(routed("/ai/Stream", "/ai"), "-", "case counts");
	tap_is_str(routed("/v1/messages/claude-x", ""), "-", "no id segment on a plain row");
	tap_is_str(routed("/v1/models/claude-x", ""), "/v1/models", "/v1/models takes an id segment");
	struct route_match m;
	handlers_route_match("/ai/nope", "/ai", &m);
	tap_is_str(m.rest, "/nope", "no route: the rest below the mount point");
	handlers_route_match("/other/nope", "/ai", &m);
	tap_is_str(m.rest, "/other/nope", "no route outside it: the whole path");
}

/* A row that takes an id, as /v1/models/{id} will, and a path from the configuration. */
static void test_tail_and_configured(void)
{
	const char *metrics = "/internal/metrics"; /* what a config key would hold */
	const struct route rows[] = {
		{.path = "/v1/models", .handle = handle_models, .methods = METHOD_GET,
		 .dialect = DIALECT_ANTHROPIC, .api = 1, .tail = TAIL_ID},
		{.path = metrics, .handle = handle_healthz, .methods = METHOD_GET},
	};
	struct route_match m;
	const struct route *r = route_match_in(rows, 2, "/ai/v1/models/claude-3-5-haiku@2024", "/ai", &m);
	tap_ok(r == &rows[0] && m.id && m.id_len == strlen("claude-3-5-haiku@2024") &&
		       strncmp(m.id, "claude-3-5-haiku@2024", m.id_len) == 0,
	       "TAIL_ID: one id segment");
	r = route_match_in(rows, 2, "/ai/v1/models", "/ai", &m);
	tap_ok(r == &rows[0] && !m.id, "TAIL_ID: the path alone");
	static const char *const bad[] = {"/v1/models/", "/v1/models/a/b", "/v1/models/..",
					  "/v1/models/.", "/v1/models/%2e%2e", "/v1/models//x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		tap_ok(!route_match_in(rows, 2, bad[i], "", &m), "TAIL_ID refuses %s", bad[i]);
	tap_ok(route_match_in(rows, 2, "/internal/metrics", "/", &m) == &rows[1], "configured path");
	tap_ok(!route_match_in(rows, 2, "/internal/metrics/x", "/", &m), "configured path, exactly");
}

static void test_table(void)
{
	const struct route *r = handlers_route_lookup("/summarize");
	tap_ok(r && r->handle == handle_summarize && r->methods == METHOD_POST, "summarize is POST only");
	tap_ok(handlers_route_lookup("/sync-summarize") && handlers_route_lookup("/async-summarize"), "seed route names");
	tap_ok(handlers_route_lookup("/nope") == NULL, "unknown route");
	r = handlers_route_lookup("/healthz");
	tap_is_str(route_allow(r), "GET, HEAD", "Allow for /healthz");
	tap_is_str(route_allow(handlers_route_lookup("/stream")), "GET, POST", "Allow for /stream");
	tap_is_str(route_allow(handlers_route_lookup("/v1/messages")), "POST", "Allow for /v1/messages");
	tap_is_int(route_method_bit("POST"), METHOD_POST, "POST bit");
	tap_is_int(route_method_bit("OPTIONS"), METHOD_OPTIONS, "OPTIONS bit");
	tap_is_int(route_method_bit("DELETE"), 0, "unknown method");
	tap_is_int(route_method_bit(NULL), 0, "no method");
	tap_is_int(route_dialect_for("/v1/nope"), DIALECT_ANTHROPIC, "/v1 errors in Anthropic's shape");
	tap_is_int(route_dialect_for("/ai/v1/chat/nope"), DIALECT_OPENAI, "/v1/chat errors in OpenAI's shape");
	tap_is_int(route_dialect_for("/nope"), DIALECT_NATIVE, "our own shape elsewhere");
	r = handlers_route_lookup("/v1/messages");
	tap_ok(r && r->handle == handle_messages && r->methods == METHOD_POST && r->api &&
		       r->limit == LIMIT_API && r->dialect == DIALECT_ANTHROPIC,
	       "/v1/messages: POST, client keys, max_body_bytes_api, Anthropic errors");
	r = handlers_route_lookup("/v1/chat/completions");
	tap_ok(r && r->handle == handle_chat && r->api && r->limit == LIMIT_API && r->dialect == DIALECT_OPENAI,
	       "/v1/chat/completions: OpenAI errors");
	r = handlers_route_lookup("/v1/models");
	tap_ok(r && r->handle == handle_models && r->api && r->limit == LIMIT_NONE && !r->calls_upstream &&
		       r->tail == TAIL_ID,
	       "/v1/models: answered locally, no body, an id segment for one model");
	tap_ok(!handlers_route_lookup("/summarize")->api && !handlers_route_lookup("/stream")->api,
	       "our own routes take no client key");
}

int main(void)
{
	test_request_path();
	test_exact();
	test_tail_and_configured();
	test_table();
	path_of("", "", ""); /* release the static buffer's last content */
	return tap_done();
}
