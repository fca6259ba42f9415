#include <json-c/json.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "tap.h"

#define OK JSCAN_OK
#define BAD JSCAN_MALFORMED

struct scase {
	const char *name;
	const char *s;
	size_t len;
	enum jscan_result want;
};

/* Lengths from sizeof, so texts may hold NUL bytes. */
#define T(name, s, want) {name, s, sizeof(s) - 1, want}

static const struct scase syntax[] = {
	T("empty object", "{}", OK),
	T("blanks around", " \t\r\n{ } \n", OK),
	T("nested", "{\"a\":[1,-2.5e+3,\"x\",true,false,null,{},[]],\"b\":{\"c\":0}}", OK),
	T("top-level scalars", "\"s\"", OK),
	T("top-level number", "-0.5E-7", OK),
	T("every escape", "[\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00\"]", OK),
	T("DEL and UTF-8 are plain bytes", "[\"\x7f \xc3\xa9\"]", OK),
	T("empty", "", BAD),
	T("blanks only", " \n", BAD),
	T("raw U+0001 in a string", "{\"text\":\"a\x01" "b\"}", BAD),
	T("raw tab in a string", "{\"text\":\"a\tb\"}", BAD),
	T("raw newline in a string", "{\"text\":\"a\nb\"}", BAD),
	T("raw U+001F in a key", "{\"a\x1f\":1}", BAD),
	T("raw NUL in a string", "{\"a\":\"\0\"}", BAD),
	T("NUL after the value", "{}\0", BAD),
	T("form feed is not a blank", "{}\f", BAD),
	T("single-quoted key", "{'a':1}", BAD),
	T("single-quoted string", "[\"a\",'b']", BAD),
	T("NaN", "[NaN]", BAD),
	T("Infinity", "[Infinity]", BAD),
	T("-Infinity", "[-Infinity]", BAD),
	T("1.", "[1.]", BAD),
	T(".5", "[.5]", BAD),
	T("01", "[01]", BAD),
	T("+1", "[+1]", BAD),
	T("1e", "[1e]", BAD),
	T("1e+", "[1e+]", BAD),
	T("-", "[-]", BAD),
	T("0x10", "[0x10]", BAD),
	T("tru", "[tru]", BAD),
	T("nulll", "[nulll]", BAD),
	T("True", "[True]", BAD),
	T("bad escape", "[\"\\q\"]", BAD),
	T("short \\u", "[\"\\u12\"]", BAD),
	T("non-hex \\u", "[\"\\u12g4\"]", BAD),
	T("unterminated string", "[\"abc", BAD),
	T("escape at the end", "[\"abc\\", BAD),
	T("trailing comma in an array", "[1,]", BAD),
	T("trailing comma in an object", "{\"a\":1,}", BAD),
	T("leading comma", "[,1]", BAD),
	T("missing comma", "[1 2]", BAD),
	T("missing colon", "{\"a\" 1}", BAD),
	T("missing value", "{\"a\":}", BAD),
	T("number key", "{1:1}", BAD),
	T("mismatched close", "[1}", BAD),
	T("mismatched close 2", "{\"a\":1]", BAD),
	T("extra close", "{}}", BAD),
	T("unclosed", "{\"a\":[1", BAD),
	T("second value", "{}{}", BAD),
	T("trailing garbage", "{} x", BAD),
	T("comment", "{} // x", BAD),
};

static void test_syntax(void)
{
	for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
		const struct scase *c = &syntax[i];
		enum jscan_result r = jscan_check(c->s, c->len, NULL);
		tap_ok(r == c->want, "syntax: %s -> %s", c->name, c->want == OK ? "ok" : "malformed");
		/* What the scan accepts, json-c parses; what it refuses never reaches json-c. */
		enum jscan_result why;
		struct json_object *o = jscan_parse(c->s, c->len, &why);
		tap_ok(why == c->want && (c->want != OK) == (o == NULL),
		       "parse: %s -> %s", c->name, c->want == OK ? "a tree" : "NULL");
		json_object_put(o);
	}
}

static void test_invalid_utf8(void)
{
	enum jscan_result why;
	struct json_object *o = jscan_parse("[\"\xff\"]", 5, &why);
	tap_ok(!o && why == JSCAN_MALFORMED, "parse: invalid UTF-8 (json-c's check) -> malformed");
}

static void test_depth(void)
{
	size_t len;
	char *s = tap_repeat("", "[", JSCAN_DEPTH, "", &len);
	char *t = tap_repeat(s, "]", JSCAN_DEPTH, "", &len);
	struct json_object *o = jscan_parse(t, len, NULL);
	tap_ok(o != NULL, "depth: %d nested arrays parse", JSCAN_DEPTH);
	json_object_put(o);
	free(s);
	free(t);
	s = tap_repeat("", "[", JSCAN_DEPTH + 1, "", &len);
	t = tap_repeat(s, "]", JSCAN_DEPTH + 1, "", &len);
	tap_ok(jscan_check(t, len, NULL) == BAD, "depth: %d nested arrays are malformed",
	       JSCAN_DEPTH + 1);
	free(s);
	free(t);
	s = tap_repeat("", "{\"a\":", 100000, "", &len);
	tap_ok(jscan_check(s, len, NULL) == BAD, "depth: 100000 open objects, no recursion");
	free(s);
}

static void test_counts(void)
{
	struct jscan_counts c = {0};
	const char *s = "{\"a\":[1,\"x\",null,{\"b\":true}],\"c\":[]}";
	enum jscan_result r = jscan_check(s, strlen(s), &c);
	tap_ok(r == OK && c.objects == 2 && c.arrays == 2 &&
		       c.members == 3 && c.scalars == 4,
	       "counts: 2 objects, 2 arrays, 3 members, 4 scalars (%zu %zu %zu %zu)", c.objects,
	       c.arrays, c.members, c.scalars);
	tap_ok(c.cost == 2 * 1024 + 2 * 256 + 3 * 128 + 4 * 128, "counts: cost %zu", c.cost);
}

/* The heap json-c actually takes for s, measured the way the budget's costs were. */
static size_t heap_of(const char *s, size_t len, int *parsed)
{
	struct mallinfo2 a = mallinfo2();
	struct json_object *o = jscan_parse(s, len, NULL);
	struct mallinfo2 b = mallinfo2();
	*parsed = o != NULL;
	json_object_put(o);
	return (b.uordblks + b.hblkhd) - (a.uordblks + a.hblkhd);
}

/* The estimate must not be below what json-c takes, per shape, or the budget bounds nothing. */
static void test_estimate(void)
{
	static const char *const units[] = {
		"{},", "[],", "1,", "\"\",", "1.5,", "true,", "null,", "{\"a\":1},", "[1],",
		"{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1,\"j\":1,"
		"\"k\":1,\"l\":1,\"m\":1,\"n\":1,\"o\":1,\"p\":1,\"q\":1,\"r\":1},",
		"[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],",
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		size_t len;
		char *s = tap_repeat("[", units[i], 2000, "0]", &len);
		struct jscan_counts c = {0};
		int parsed;
		enum jscan_result r = jscan_check(s, len, &c);
		size_t heap = heap_of(s, len, &parsed);
		tap_ok(r == OK && parsed && heap <= c.cost,
		       "estimate: 2000 x %.20s: json-c took %zu bytes, estimated %zu", units[i], heap,
		       c.cost);
		free(s);
	}
}

static void test_budget(void)
{
	/* [{},{},...]: 3 bytes and an estimated 1024 each. 16 MiB / 1024 = 16384 objects fit in
	 * the allowance, and each one's 3 bytes add 24 to the budget. */
	size_t len;
	char *s = tap_repeat("[", "{},", 16000, "{}]", &len);
	tap_ok(jscan_check(s, len, NULL) == OK, "budget: 16,001 empty objects (48 KB) pass");
	free(s);
	s = tap_repeat("[", "{},", 20000, "{}]", &len);
	tap_ok(jscan_check(s, len, NULL) == JSCAN_COSTLY, "budget: 20,001 empty objects are costly");
	free(s);
	/* The 4 MB body of the review: refused, and early. */
	s = tap_repeat("[", "{},", (4 << 20) / 3, "{}]", &len);
	struct jscan_counts c = {0};
	enum jscan_result r = jscan_check(s, len, &c);
	tap_ok(r == JSCAN_COSTLY && c.objects < 60000,
	       "budget: a 4 MB [{},{},...] is costly, seen after %zu objects", c.objects);
	enum jscan_result why;
	tap_ok(jscan_parse(s, len, &why) == NULL && why == JSCAN_COSTLY,
	       "budget: jscan_parse refuses it before json-c");
	free(s);
	/* A large body of text costs its bytes: a 32 MB string is fine. */
	s = tap_repeat("{\"text\":\"", "abcdefgh", 4 << 20, "\"}", &len);
	r = jscan_check(s, len, &c);
	tap_ok(r == OK && c.cost < 4096, "budget: a 32 MB string passes");
	free(s);
	/* A malformed body that is also costly: whichever comes first is the answer. */
	s = tap_repeat("[", "{},", 30000, "x", &len);
	tap_ok(jscan_check(s, len, NULL) == JSCAN_COSTLY, "budget: costly before the bad byte");
	free(s);
}

int main(void)
{
	test_syntax();
	test_invalid_utf8();
	test_depth();
	test_counts();
	test_estimate();
	test_budget();
	return tap_done();
}
