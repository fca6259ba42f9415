/* metrics: requests served whole (serve_request against the in-memory client and the scripted
 * upstream) add to a store, and /metrics and /status read it back: the exposition's families,
 * labels escaped, histograms cumulative, identities folded into "other" past the bound, and
 * who may read them (metrics_allow, X-Forwarded-For). */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fake.h"
#include "store.h"
#include "tap.h"

#define KEY "sk-ant-test-0123456789abcdefSECRET"
#define MESSAGE "{\"type\":\"message\",\"id\":\"msg_1\",\"model\":\"claude-test\",\"stop_reason\":" \
	"\"end_turn\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],\"usage\":{\"input_tokens\":5," \
	"\"output_tokens\":2,\"cache_read_input_tokens\":4}}"
#define EV(name, json) "event: " name "\ndata: " json "\n\n"
#define STREAM EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-test\",\"usage\":{\"input_tokens\":7}}}") \
	EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}") \
	EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"b\"}}") \
	EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}") \
	EV("message_stop", "{\"type\":\"message_stop\"}")

static struct store *st;
static char out[1 << 16];

/* Serves one request (params borrowed) against the shared store; its body is left in out. */
static int serve(const char *const *params, const char *body, long identities, const char *allow,
		 const char *trusted)
{
	struct fake f;
	fake_init(&f, KEY, 1e9, params, body);
	f.srv.store = st;
	f.cfg.metrics_identities = identities;
	free(f.cfg.metrics_allow);
	f.cfg.metrics_allow = xstrdup(allow);
	free(f.cfg.trusted_proxies);
	f.cfg.trusted_proxies = xstrdup(trusted);
	fake_up.body = body && strstr(body, "stream") ? STREAM : MESSAGE;
	fake_serve(&f);
	snprintf(out, sizeof out, "%s", fake_body(&f));
	int status = fake_status(&f);
	fake_release(&f);
	return status;
}

#define GET(uri, addr) "REQUEST_METHOD", "GET", "REQUEST_URI", uri, "REMOTE_ADDR", addr
#define MSG(user) "REQUEST_METHOD", "POST", "REQUEST_URI", "/v1/messages", "CONTENT_TYPE", \
	"application/json", "REMOTE_ADDR", "192.0.2.7", "REMOTE_USER", user

static const char body[] = "{\"model\":\"claude-test\",\"max_tokens\":10,\"messages\":[]}";
static const char sbody[] = "{\"model\":\"claude-test\",\"max_tokens\":10,\"stream\":true,\"messages\":[]}";

static int metrics(void)
{
	static const char *const p[] = {GET("/metrics", "127.0.0.1"), NULL};
	return serve(p, NULL, 1, "127.0.0.0/8 ::1", "");
}

static void test_counts(void)
{
	static const char *const a[] = {MSG("a\"b\\c"), NULL};
	static const char *const b[] = {MSG("bob"), NULL};
	static const char *const anon[] = {"REQUEST_METHOD", "POST", "REQUEST_URI", "/v1/messages",
					   "CONTENT_TYPE", "application/json", "REMOTE_ADDR",
					   "192.0.2.7", NULL};
	tap_is_int(serve(a, body, 1, "", ""), 200, "a user's call");
	tap_is_int(serve(a, sbody, 1, "", ""), 200, "and a stream");
	tap_is_int(serve(b, body, 1, "", ""), 200, "another user's call");
	tap_is_int(serve(anon, body, 1, "", ""), 200, "an address's call");
	tap_is_int(metrics(), 200, "/metrics from loopback");
	tap_ok(strstr(out, "llm_fcgi_requests_total{route=\"/v1/messages\",status=\"200\"} 4\n") != NULL,
	       "requests by route and status");
	tap_ok(strstr(out, "llm_fcgi_tokens_total{model=\"claude-test\",identity=\"user:a\\\"b\\\\c\","
			   "type=\"input\"} 12\n") != NULL,
	       "tokens by model and identity, the label escaped (5 + 7 input)");
	tap_ok(strstr(out, "identity=\"user:a\\\"b\\\\c\",type=\"cache_read\"} 4\n") != NULL,
	       "cache reads");
	tap_ok(strstr(out, "identity=\"user:bob\"") == NULL &&
	       strstr(out, "llm_fcgi_tokens_total{model=\"claude-test\",identity=\"other\",type=\"input\"} 10\n"),
	       "past metrics_identities = 1, bob and the address are other");
	tap_ok(strstr(out, "llm_fcgi_upstream_attempts_total{outcome=\"ok\"} 4\n") != NULL,
	       "upstream attempts by outcome");
	tap_ok(strstr(out, "llm_fcgi_time_to_first_token_seconds_count 1\n") &&
	       strstr(out, "llm_fcgi_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1\n"),
	       "one time to first token (the stream), +Inf = count");
	tap_ok(strstr(out, "llm_fcgi_gateway_delta_flush_seconds_count 2\n") != NULL,
	       "two deltas flushed");
	tap_ok(strstr(out, "llm_fcgi_gateway_first_byte_seconds_count 4\n") != NULL,
	       "four answers started");
	tap_ok(strstr(out, "# TYPE llm_fcgi_requests_total counter\n") &&
	       strstr(out, "mode=\"worker\",store=\"shm\"} 1\n") &&
	       strstr(out, "# worker: no pool;"),
	       "types, build info, and a lone worker says it has no pool");
}

static void test_access(void)
{
	static const char *const remote[] = {GET("/metrics", "10.0.0.1"), NULL};
	static const char *const fwd[] = {GET("/metrics", "127.0.0.1"), "HTTP_X_FORWARDED_FOR",
					  "127.0.0.1", NULL};
	static const char *const fwd_remote[] = {GET("/metrics", "127.0.0.1"), "HTTP_X_FORWARDED_FOR",
						 "203.0.113.5", NULL};
	static const char *const proxied[] = {GET("/status", "10.0.0.1"), "HTTP_X_FORWARDED_FOR",
					      "192.0.2.9, 127.0.0.1", NULL};
	tap_is_int(serve(remote, NULL, 1, "127.0.0.0/8 ::1", ""), 403, "a remote address: 403");
	tap_is_int(serve(fwd, NULL, 1, "127.0.0.0/8 ::1", ""), 403,
		   "a loopback peer forwarding X-Forwarded-For: remote, 403");
	tap_is_int(serve(fwd_remote, NULL, 1, "127.0.0.0/8 ::1", "127.0.0.1"), 403,
		   "a trusted local proxy forwarding for a remote client: 403");
	tap_is_int(serve(proxied, NULL, 1, "127.0.0.0/8 ::1", "10.0.0.0/8"), 200,
		   "a trusted proxy forwarding for a loopback client: 200");
	tap_is_int(serve(proxied, NULL, 1, "10.0.0.0/8", ""), 200,
		   "an untrusted remote peer is judged by its own address");
	struct json_object *o = json_tokener_parse(out), *v;
	tap_ok(o && json_object_object_get_ex(o, "accepted_requests", &v) &&
	       json_object_get_int(v) >= 5, "/status: accepted requests");
	json_object_put(o);
	static const char *const off[] = {GET("/nope", "127.0.0.1"), NULL};
	tap_is_int(serve(off, NULL, 1, "127.0.0.0/8", ""), 404, "other paths stay 404");
}

int main(void)
{
	struct buf err;
	buf_init(&err, 256);
	st = store_open_shm(4096, &err);
	tap_ok(st != NULL, "a store in shared memory");
	test_counts();
	test_access();
	store_close(st);
	buf_release(&err);
	return tap_done();
}
