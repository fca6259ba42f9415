/* spend: identities, usage from answers, the estimate of a cut stream, Retry-After. */
#include "spend.h"

#include <string.h>

#include "client_keys.h"
#include "tap.h"

static void test_identity(void)
{
	struct client_keys k;
	unsigned long line;
	const char *why;
	const char *file =
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  alice\n"
		"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752  -\n";
	tap_is_int(client_keys_parse(&k, file, strlen(file), &line, &why), 0, "keys parse");
	char who[SPEND_WHO_MAX];
	spend_identity(&k, 0, "bob", "192.0.2.1", NULL, "", who, sizeof who);
	tap_is_str(who, "key:alice", "a labelled key");
	spend_identity(&k, 1, NULL, "192.0.2.1", NULL, "", who, sizeof who);
	tap_is_str(who, "key:60303ae22b99", "an unlabelled key: 12 hex digits of its hash");
	spend_identity(&k, -1, "bob", "192.0.2.1", NULL, "", who, sizeof who);
	tap_is_str(who, "user:bob", "the web server's user");
	spend_identity(&k, -1, "", "192.0.2.1", "203.0.113.9", "", who, sizeof who);
	tap_is_str(who, "addr:192.0.2.1", "X-Forwarded-For from an untrusted peer is ignored");
	spend_identity(&k, -1, NULL, "127.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2",
		       "127.0.0.1 10.0.0.0/8", who, sizeof who);
	tap_is_str(who, "addr:203.0.113.9", "the right-most untrusted forwarded address");
	spend_identity(&k, -1, NULL, "127.0.0.1", "garbage", "127.0.0.1", who, sizeof who);
	tap_is_str(who, "addr:127.0.0.1", "a forwarded value that is no address: the peer");
	spend_identity(&k, -1, "a|b\nc", "192.0.2.1", NULL, "", who, sizeof who);
	tap_is_str(who, "user:a_b_c", "separators and control characters are replaced");
	char name[300];
	memset(name, 'n', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	spend_identity(&k, -1, name, NULL, NULL, "", who, sizeof who);
	tap_ok(strlen(who) == SPEND_WHO_MAX - 1 && who[SPEND_WHO_MAX - 18] == '~',
	       "a long identity is cut and hashed (%s)", who);
	name[0] = 'm';
	char other[SPEND_WHO_MAX];
	spend_identity(&k, -1, name, NULL, NULL, "", other, sizeof other);
	tap_ok(strcmp(who, other) != 0, "two long identities stay apart");
	spend_identity(&k, -1, NULL, NULL, NULL, "", who, sizeof who);
	tap_is_str(who, "addr:unknown", "no address at all");
	client_keys_release(&k);
}

static void test_usage(void)
{
	struct access_record a;
	memset(&a, 0, sizeof a);
	const char *body =
		"{\"id\":\"msg_1\",\"model\":\"claude-sonnet-5-5\",\"content\":[{\"type\":\"tool_use\","
		"\"input\":{\"usage\":{\"input_tokens\":999}}},{\"type\":\"text\",\"text\":"
		"\"say \\\"usage\\\": {}\"}],\"usage\":{\"input_tokens\":12,\"output_tokens\":34,"
		"\"cache_creation_input_tokens\":30,\"cache_read_input_tokens\":7,\"cache_creation\":"
		"{\"ephemeral_5m_input_tokens\":10,\"ephemeral_1h_input_tokens\":20}}}";
	spend_usage_json(&a, body, strlen(body));
	tap_is_int(a.input_tokens, 12, "input tokens from the last usage");
	tap_is_int(a.output_tokens, 34, "output tokens");
	tap_is_int(a.cache_write_5m_tokens, 10, "5 m cache writes");
	tap_is_int(a.cache_write_1h_tokens, 20, "1 h cache writes");
	tap_is_int(a.cache_read_tokens, 7, "cache reads");
	tap_is_str(a.model, "claude-sonnet-5-5", "the model");
	memset(&a, 0, sizeof a);
	const char *old = "{\"usage\":{\"input_tokens\":1,\"output_tokens\":2,"
			  "\"cache_creation_input_tokens\":5}}";
	spend_usage_json(&a, old, strlen(old));
	tap_is_int(a.cache_write_5m_tokens, 5, "cache writes without the split count as 5 m");
	memset(&a, 0, sizeof a);
	spend_usage_json(&a, "{\"input_tokens\":3}", 18);
	tap_is_int(a.input_tokens, 0, "count_tokens' answer is no usage");
}

/* The scan of the usage object reads what a JSON parser would, and nothing from a broken one. */
static void test_usage_scan(void)
{
	struct access_record a;
	memset(&a, 0, sizeof a);
	const char *body = "{\"content\":[{\"text\":\"a \\\"usage\\\": {\\\"input_tokens\\\":9}\"}],"
			   "\"usage\" : { \"service_tier\":\"standard \\\" }\", \"server_tool_use\":"
			   "{\"web_search_requests\":4,\"input_tokens\":99},\"x\":[1,[{}],\"]\",null],"
			   "\"input_tokens\" : 21 ,\"output_tokens\":2.5,\"cache_read_input_tokens\":-3,"
			   "\"cache_creation\":null,\"cache_creation_input_tokens\":8,"
			   "\"input_tokens\":22 }\n}";
	a.output_tokens = 7;
	spend_usage_json(&a, body, strlen(body));
	tap_is_int(a.input_tokens, 22, "scan: the last of a repeated member, nested ones skipped");
	tap_is_int(a.output_tokens, 7, "scan: a fraction is no count");
	tap_is_int(a.cache_read_tokens, 0, "scan: a negative is no count");
	tap_is_int(a.cache_write_5m_tokens, 8, "scan: cache_creation null: the total is 5 m writes");
	memset(&a, 0, sizeof a);
	const char *cut = "{\"usage\":{\"input_tokens\":5,\"output_tokens\":6";
	spend_usage_json(&a, cut, strlen(cut));
	tap_is_int(a.input_tokens + a.output_tokens, 0, "scan: an object that does not close gives nothing");
	memset(&a, 0, sizeof a);
	const char *big = "{\"usage\":{\"input_tokens\":123456789012345678901234}}";
	spend_usage_json(&a, big, strlen(big));
	tap_is_int(a.input_tokens, 1000000000000, "scan: a huge count is capped");
}

static void test_estimate(void)
{
	struct access_record a;
	memset(&a, 0, sizeof a);
	spend_estimate_output(&a, 400, 49);
	tap_is_int(a.output_tokens, 100, "400 bytes of text: 100 tokens");
	tap_ok(a.output_tokens_estimated, "marked estimated");
	memset(&a, 0, sizeof a);
	spend_estimate_output(&a, 49, 49);
	tap_is_int(a.output_tokens, 49, "at least one token per delta");
	memset(&a, 0, sizeof a);
	a.output_tokens = 500;
	spend_estimate_output(&a, 40, 10);
	tap_is_int(a.output_tokens, 500, "a larger count already known stays");
}

static void test_retry_after(void)
{
	time_t t = 1772323170; /* 2026-02-28T23:59:30Z */
	tap_is_int(spend_retry_after(LIMITS_RPM, t), 30, "rpm: to the next minute");
	tap_is_int(spend_retry_after(LIMITS_USD_DAY, t), 30, "a daily budget: to midnight UTC");
	tap_is_int(spend_retry_after(LIMITS_USD_MONTH, t - 86400), 86430, "a monthly budget");
	tap_is_int(spend_retry_after(LIMITS_CONCURRENT, t), 1, "concurrency: 1 s");
}

int main(void)
{
	test_identity();
	test_usage();
	test_usage_scan();
	test_estimate();
	test_retry_after();
	return tap_done();
}
