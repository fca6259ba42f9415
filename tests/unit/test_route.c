/* Route derivation under every server's CGI variables, and the route table. */
#include <string.h>

#include "route.h"
#include "tap.h"

static const char *path_of(const char *uri, const char *script, const char *info, const char *base)
{
	static struct buf out;
	buf_release(&out);
	buf_init(&out, 1024);
	if (route_path(uri, script, info, base, &out) < 0)
		return "(error)";
	return buf_cstr(&out);
}

int main(void)
{
	/* lighttpd at "/" puts the first segment in SCRIPT_NAME; REQUEST_URI is whole. */
	tap_is_str(path_of("/summarize", "/summarize", "", ""), "/summarize", "root mount");
	tap_is_str(path_of("/summarize?text=a", "/summarize", NULL, ""), "/summarize", "query dropped");
	tap_is_str(path_of("/ai/summarize", "/ai", "/summarize", ""), "/summarize", "prefix mount");
	tap_is_str(path_of("/ai/sync-summarize?x=1", "/ai/sync-summarize", NULL, ""), "/sync-summarize",
		   "mod_proxy_fcgi: no PATH_INFO");
	tap_is_str(path_of("/cgi-bin/llm-fcgi.cgi/stream?text=a", "/cgi-bin/llm-fcgi.cgi", "/stream", ""),
		   "/stream", "CGI script path in front");
	tap_is_str(path_of(NULL, "/ai", "/healthz", ""), "/healthz", "no REQUEST_URI: SCRIPT_NAME+PATH_INFO");
	tap_is_str(path_of("/ai/nope", "/ai", "/nope", ""), "/ai/nope", "unknown route keeps the path");
	tap_is_str(path_of("/", "", "/", ""), "/", "site root");
	tap_is_str(path_of("/ai/summarize", NULL, NULL, "/ai"), "/summarize", "base_path strips");
	tap_is_str(path_of("/ai", NULL, NULL, "/ai"), "/", "base_path itself");
	tap_is_str(path_of("/aix/summarize", NULL, NULL, "/ai"), "/aix/summarize",
		   "base_path matches whole segments only");
	tap_is_str(path_of("/other/summarize", NULL, NULL, "/ai"), "/other/summarize",
		   "outside base_path: no route");
	tap_is_str(path_of("/x/async-summarize#frag", NULL, NULL, ""), "/async-summarize", "fragment dropped");

	const struct route *r = route_lookup("/summarize");
	tap_ok(r && r->id == ROUTE_SUMMARIZE && r->methods == METHOD_POST, "summarize is POST only");
	tap_ok(route_lookup("/sync-summarize") && route_lookup("/async-summarize"), "seed route names");
	tap_ok(route_lookup("/nope") == NULL, "unknown route");
	r = route_lookup("/healthz");
	struct buf allow;
	buf_init(&allow, 64);
	route_allow(r, &allow);
	tap_is_str(buf_cstr(&allow), "GET, HEAD", "Allow for /healthz");
	buf_reset(&allow);
	route_allow(route_lookup("/stream"), &allow);
	tap_is_str(buf_cstr(&allow), "GET, POST", "Allow for /stream");
	buf_release(&allow);
	tap_is_int(route_method_bit("POST"), METHOD_POST, "POST bit");
	tap_is_int(route_method_bit("DELETE"), 0, "unknown method");
	tap_is_int(route_method_bit(NULL), 0, "no method");
	tap_is_int(route_dialect_for("/v1/nope"), DIALECT_ANTHROPIC, "/v1 errors in Anthropic's shape");
	tap_is_int(route_dialect_for("/ai/v1/chat/nope"), DIALECT_OPENAI, "/v1/chat errors in OpenAI's shape");
	tap_is_int(route_dialect_for("/nope"), DIALECT_NATIVE, "our own shape elsewhere");
	/* The API-compatible routes, under a mount point too: the longest route wins. */
	tap_is_str(path_of("/ai/v1/messages/count_tokens", "/ai", "/v1/messages/count_tokens", ""),
		   "/v1/messages/count_tokens", "count_tokens, not /v1/messages");
	tap_is_str(path_of("/v1/chat/completions", "/v1", "/chat/completions", ""), "/v1/chat/completions",
		   "chat at the root");
	r = route_lookup("/v1/messages");
	tap_ok(r && r->id == ROUTE_MESSAGES && r->methods == METHOD_POST && r->api &&
		       r->limit == LIMIT_API && r->dialect == DIALECT_ANTHROPIC,
	       "/v1/messages: POST, client keys, max_body_bytes_api, Anthropic errors");
	r = route_lookup("/v1/chat/completions");
	tap_ok(r && r->id == ROUTE_CHAT && r->api && r->limit == LIMIT_API && r->dialect == DIALECT_OPENAI,
	       "/v1/chat/completions: OpenAI errors");
	r = route_lookup("/v1/models");
	tap_ok(r && r->id == ROUTE_MODELS && r->api && r->limit == LIMIT_NONE && !r->calls_upstream,
	       "/v1/models: answered locally, no body");
	tap_ok(!route_lookup("/summarize")->api && !route_lookup("/stream")->api,
	       "our own routes take no client key");
	path_of("", "", "", ""); /* release the static buffer's last content */
	return tap_done();
}
