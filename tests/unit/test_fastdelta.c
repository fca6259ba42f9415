/* fastdelta: the shape it takes, what it refuses (each then read by json-c as before), and its
 * answers agree with the general reading (the fuzz target does this at scale). */
#include "anthropic.h"
#include "fastdelta.h"

#include <stdio.h>
#include <string.h>

#include "tap.h"

#define HEAD "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"

static void accepts(const char *data, long long index, const char *text, size_t n, const char *what)
{
	long long i = -7;
	const char *t = NULL;
	size_t len = 0;
	int ok = fastdelta_parse(data, strlen(data), &i, &t, &len);
	tap_ok(ok && i == index && len == n && memcmp(t, text, n) == 0, "takes %s", what);
	/* The general reading says the same. */
	struct anth_event ev;
	anthropic_parse_event_tree("content_block_delta", data, strlen(data), &ev);
	tap_ok(ev.kind == ANTH_EV_TEXT && ev.index == index && ev.text_len == n &&
		       memcmp(ev.text, text, n) == 0, "json-c agrees on %s", what);
	anthropic_event_release(&ev);
}

static void refuses(const char *data, size_t len, const char *what)
{
	long long i = -7;
	const char *t = NULL;
	size_t n = 99;
	tap_ok(!fastdelta_parse(data, len, &i, &t, &n) && i == -7 && !t && n == 99, "refuses %s", what);
}

#define REFUSES(data, what) refuses((data), sizeof(data) - 1, (what))

int main(void)
{
	accepts(HEAD "\"Hello\"}}", 0, "Hello", 5, "the usual delta");
	accepts(HEAD "\"\"}}", 0, "", 0, "an empty text");
	accepts(" {\r\n\t\"type\" : \"content_block_delta\" , \"index\" : 123456789 , \"delta\" : { "
		"\"type\" : \"text_delta\" , \"text\" : \"x\" } } \n",
		123456789, "x", 1, "JSON blanks between tokens, and a 9-digit index");
	accepts(HEAD "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}}", 0, "a\"b\\c/d\b\f\n\r\t", 12,
		"the short escapes");
	accepts(HEAD "\"\\u00e9\\u20AC\\u0001\"}}", 0, "\xc3\xa9\xe2\x82\xac\x01", 6, "\\u escapes");
	accepts(HEAD "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}}", 0,
		"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 13, "raw UTF-8 up to U+10FFFF");

	REFUSES(HEAD "\"x\"}}x", "trailing bytes");
	REFUSES(HEAD "\"x\"}", "a missing brace");
	REFUSES(HEAD "\"x\"", "a cut event");
	REFUSES(HEAD "\"a\tb\"}}", "a raw control character");
	REFUSES(HEAD "\"a\0b\"}}", "a raw NUL");
	REFUSES(HEAD "\"\\u0000\"}}", "\\u0000");
	REFUSES(HEAD "\"\\ud83d\"}}", "a lone high surrogate");
	REFUSES(HEAD "\"\\ud837\\ude00\"}}", "a surrogate pair (json-c 0.16 reads this one as U+FFFD)");
	REFUSES(HEAD "\"\\ud83dx\"}}", "a high surrogate before a plain character");
	REFUSES(HEAD "\"\\ude00\"}}", "a lone low surrogate");
	REFUSES(HEAD "\"\\ud83d\\u0041\"}}", "a high surrogate before a non-surrogate escape");
	REFUSES(HEAD "\"\\x\"}}", "an unknown escape");
	REFUSES(HEAD "\"\\u12g4\"}}", "a bad hex digit");
	REFUSES(HEAD "\"\xc3\"}}", "a cut UTF-8 sequence");
	REFUSES(HEAD "\"\xc0\xaf\"}}", "an overlong UTF-8 form");
	REFUSES(HEAD "\"\xed\xa0\x80\"}}", "a UTF-8 surrogate");
	REFUSES(HEAD "\"\xf4\x90\x80\x80\"}}", "UTF-8 above U+10FFFF");
	REFUSES(HEAD "\"\xff\"}}", "a byte never in UTF-8");
	REFUSES("{\"type\":\"content_block_delta\",\"index\":01,\"delta\":{\"type\":\"text_delta\","
		"\"text\":\"x\"}}", "an index with a leading zero");
	REFUSES("{\"type\":\"content_block_delta\",\"index\":1234567890,\"delta\":{\"type\":"
		"\"text_delta\",\"text\":\"x\"}}", "a 10-digit index");
	REFUSES("{\"type\":\"content_block_delta\",\"index\":-1,\"delta\":{\"type\":\"text_delta\","
		"\"text\":\"x\"}}", "a negative index");
	REFUSES("{\"type\":\"content_block_delta\",\"index\":1.0,\"delta\":{\"type\":\"text_delta\","
		"\"text\":\"x\"}}", "a fractional index");
	REFUSES("{\"index\":0,\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\","
		"\"text\":\"x\"}}", "another member order");
	REFUSES("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
		"\"text\":\"x\",\"more\":1}}", "an extra member");
	REFUSES("{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
		"\"partial_json\":\"{\"}}", "a tool input delta");
	REFUSES("{/**/\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
		"\"text\":\"x\"}}", "a comment (json-c takes one)");

	/* A refused delta is still read, the general way, by anthropic_parse_event. */
	const char *other = "{\"index\":3,\"type\":\"content_block_delta\",\"delta\":{\"text\":\"y\","
			    "\"type\":\"text_delta\"}}";
	struct anth_event ev;
	anthropic_parse_event("content_block_delta", other, strlen(other), &ev);
	tap_ok(ev.kind == ANTH_EV_TEXT && ev.root && ev.index == 3 && ev.text_len == 1 &&
		       ev.text[0] == 'y', "another member order: the general reading, index and all");
	anthropic_event_release(&ev);
	/* The usual one goes without a tree. */
	const char *usual = HEAD "\"z\\n\"}}";
	anthropic_parse_event("content_block_delta", usual, strlen(usual), &ev);
	tap_ok(ev.kind == ANTH_EV_TEXT && !ev.root && ev.index == 0 && ev.text_len == 2 &&
		       memcmp(ev.text, "z\n", 2) == 0, "the usual delta: no tree");
	anthropic_event_release(&ev);
	return tap_done();
}
