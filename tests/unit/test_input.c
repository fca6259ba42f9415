#include "config.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "input.h"
#include "tap.h"

#define J "application/json"
#define F "application/x-www-form-urlencoded"
#define P "text/plain"
#define M INPUT_ALLOW_MESSAGES

#define MSG_JSON "malformed JSON"
#define MSG_OBJECT "JSON body must be an object"
#define MSG_TYPE "text must be a string"
#define MSG_EMPTY "text must not be empty"
#define MSG_NUL "text must not contain NUL bytes"
#define MSG_UTF8 "text is not valid UTF-8"
#define MSG_MISSING "missing text"
#define MSG_ESCAPE "text has a malformed %-escape"
#define MSG_MEDIA "unsupported content type"
#define MSG_MAXTOK "max_tokens must be a positive integer"
#define MSG_TURNS "messages must be an array of 1 to 1000 turns"
#define MSG_TURN "each message must be an object with role and content"
#define MSG_ROLE "message role must be \"user\" or \"assistant\""
#define MSG_FIRST "the first message must be from the user"
#define MSG_LAST "the last message must be from the user"
#define MSG_CONTENT "message content must be a non-empty string or an array of text blocks"
#define MSG_CONTENT_NUL "message content must not contain NUL bytes"
#define MSG_CONTENT_UTF8 "message content is not valid UTF-8"

struct pcase {
	const char *name;
	const char *ct;
	const char *body;
	size_t body_len;
	const char *query;
	unsigned flags;
	enum err_kind err;
	const char *want; /* the text on ERR_OK (NULL when messages are expected), else the message */
	size_t want_len;
	long max_tokens;
	const char *messages; /* in->messages serialized, or NULL when none is expected */
};

/* Lengths from sizeof, so bodies and texts may hold NUL bytes. */
#define BODY(s) .body = (s), .body_len = sizeof(s) - 1
#define TEXT(s) .want = (s), .want_len = sizeof(s) - 1
#define FAIL(k, m) .err = (k), .want = (m)
#define BAD(m) FAIL(ERR_BAD_REQUEST, m)

#define TURN(role, content) "{\"role\":\"" role "\",\"content\":" content "}"

static const struct pcase cases[] = {
	/* content types, parameters, case, whitespace */
	{"json", J, BODY("{\"text\":\"hello\"}"), TEXT("hello")},
	{"json charset", J "; charset=utf-8", BODY("{\"text\":\"hello\"}"), TEXT("hello")},
	{"json case", "Application/JSON", BODY("{\"text\":\"hello\"}"), TEXT("hello")},
	{"json spaces", "  application/json ;charset=UTF-8", BODY("{\"text\":\"hi\"}"), TEXT("hi")},
	{"form", F, BODY("text=hello+world"), TEXT("hello world")},
	{"form charset case", "Application/X-WWW-Form-URLencoded; charset=UTF-8", BODY("text=hi"),
	 TEXT("hi")},
	{"plain keeps every byte", P, BODY("  hello\r\n\t"), TEXT("  hello\r\n\t")},
	{"plain charset", P ";charset=utf-8", BODY("hi"), TEXT("hi")},
	{"plain case", "TEXT/Plain", BODY("hi"), TEXT("hi")},
	{"plain braces stay text", P, BODY("{\"text\":\"x\"}"), TEXT("{\"text\":\"x\"}")},
	{"plain multibyte", P, BODY("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
	 TEXT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")},
	{"no type, JSON", NULL, BODY(" \n{\"text\":\"hi\"}"), TEXT("hi")},
	{"no type, form", NULL, BODY("text=hi"), TEXT("hi")},
	{"empty type is none, JSON", "", BODY("{\"text\":\"hi\"}"), TEXT("hi")},
	{"empty type is none, form", "", BODY("text=hi"), TEXT("hi")},
	{"parameters only is none", "; charset=utf-8", BODY("text=hi"), TEXT("hi")},
	{"no type, not JSON, ambiguous", NULL, BODY("[\"hi\"]"), BAD(MSG_MISSING)},
	{"xml", "application/xml", BODY("<text>hi</text>"), FAIL(ERR_MEDIA_TYPE, MSG_MEDIA)},
	{"multipart", "multipart/form-data; boundary=x", BODY("--x\r\n"),
	 FAIL(ERR_MEDIA_TYPE, MSG_MEDIA)},
	{"html", "text/html", BODY("hi"), FAIL(ERR_MEDIA_TYPE, MSG_MEDIA)},
	{"json prefix only", "application/jsonx", BODY("{\"text\":\"hi\"}"),
	 FAIL(ERR_MEDIA_TYPE, MSG_MEDIA)},
	{"json suffix type", "application/vnd.api+json", BODY("{\"text\":\"hi\"}"),
	 FAIL(ERR_MEDIA_TYPE, MSG_MEDIA)},
	{"415 beats query text", "application/xml", BODY("x"), .query = "text=q",
	 FAIL(ERR_MEDIA_TYPE, MSG_MEDIA)},
	{"type ignored without body", "application/xml", .query = "text=hi", TEXT("hi")},

	/* form bodies that are really JSON (curl -d) */
	{"form with JSON body", F, BODY("{\"text\":\"hi\"}"), TEXT("hi")},
	{"form with JSON body, whitespace", F, BODY("\r\n {\"text\":\"hi\"}"), TEXT("hi")},
	{"form with JSON body holding =", F, BODY("{\"text\":\"a=b\"}"), TEXT("a=b")},
	{"form with JSON body holding %", F, BODY("{\"text\":\"100%\"}"), TEXT("100%")},
	{"form with JSON body holding &text=", F, BODY("{\"text\":\"a&text=b\"}"), TEXT("a&text=b")},
	{"form with JSON body holding &text=%zz", F, BODY("{\"text\":\"a&text=%zz\"}"), TEXT("a&text=%zz")},
	{"form with malformed JSON body", F, BODY("{\"text\":"), BAD(MSG_JSON)},
	{"form brace body with a text field", F, BODY("{x=1&text=hi"), TEXT("hi")},
	{"form with JSON max_tokens", F, BODY("{\"text\":\"hi\",\"max_tokens\":9}"), TEXT("hi"),
	 .max_tokens = 9},

	/* query string */
	{"query only", .query = "text=hi%20there", TEXT("hi there")},
	{"query among fields", .query = "a=1&text=x+y&b=2", TEXT("x y")},
	{"query without text", .query = "foo=bar", BAD(MSG_MISSING)},
	{"nothing at all", BAD(MSG_MISSING)},
	{"empty query", .query = "", BAD(MSG_MISSING)},
	{"query empty text", .query = "text=", BAD(MSG_EMPTY)},
	{"query bad escape", .query = "text=%zz", BAD(MSG_ESCAPE)},
	{"query invalid UTF-8", .query = "text=%ff", BAD(MSG_UTF8)},
	{"query NUL", .query = "text=a%00b", BAD(MSG_NUL)},
	{"query with empty body", J, BODY(""), .query = "text=q", TEXT("q")},

	/* the body wins */
	{"json body over query", J, BODY("{\"text\":\"body\"}"), .query = "text=query",
	 TEXT("body")},
	{"form body over query", F, BODY("text=body"), .query = "text=query", TEXT("body")},
	{"plain body over query", P, BODY("body"), .query = "text=query", TEXT("body")},
	{"body wins over a malformed query", P, BODY("body"), .query = "text=%zz", TEXT("body")},
	{"malformed body despite query", J, BODY("{"), .query = "text=q", BAD(MSG_JSON)},
	{"bad body escape despite query", F, BODY("text=%z"), .query = "text=q", BAD(MSG_ESCAPE)},
	{"empty body text despite query", J, BODY("{\"text\":\"\"}"), .query = "text=q",
	 BAD(MSG_EMPTY)},
	{"json body without text falls back", J, BODY("{\"other\":1}"), .query = "text=q",
	 TEXT("q")},
	{"form body without text falls back", F, BODY("a=b"), .query = "a=c&text=q", TEXT("q")},
	{"sniffed body without text falls back", NULL, BODY("a=b"), .query = "text=q", TEXT("q")},
	{"json body without text, no query", J, BODY("{}"), BAD(MSG_MISSING)},

	/* malformed JSON */
	{"unterminated", J, BODY("{\"text\":\"hi\""), BAD(MSG_JSON)},
	{"trailing comma", J, BODY("{\"text\":\"hi\",}"), BAD(MSG_JSON)},
	{"missing colon", J, BODY("{\"text\" \"hi\"}"), BAD(MSG_JSON)},
	{"not JSON at all", J, BODY("text=hi"), BAD(MSG_JSON)},
	{"whitespace only", J, BODY(" \n"), BAD(MSG_JSON)},
	{"trailing garbage", J, BODY("{\"text\":\"hi\"} x"), BAD(MSG_JSON)},
	{"second value", J, BODY("{\"text\":\"hi\"}{}"), BAD(MSG_JSON)},
	{"trailing whitespace", J, BODY("{\"text\":\"hi\"} \r\n\t"), TEXT("hi")},
	{"raw NUL inside", J, BODY("{\"text\":\"a\0b\"}"), BAD(MSG_JSON)},
	{"raw NUL after", J, BODY("{\"text\":\"a\"}\0"), BAD(MSG_JSON)},
	{"raw NUL after, sniffed", NULL, BODY("{\"text\":\"a\"}\0junk"), BAD(MSG_JSON)},
	{"top-level array", J, BODY("[\"hi\"]"), BAD(MSG_OBJECT)},
	{"top-level string", J, BODY("\"hi\""), BAD(MSG_OBJECT)},
	{"top-level null", J, BODY("null"), BAD(MSG_OBJECT)},
	{"top-level number", J, BODY("12"), BAD(MSG_OBJECT)},
	/* RFC 8259, not json-c's "strict": raw control characters, single quotes, NaN, "1." */
	{"raw U+0001 in text", J, BODY("{\"text\":\"a\x01" "b\"}"), BAD(MSG_JSON)},
	{"raw tab in text", J, BODY("{\"text\":\"a\tb\"}"), BAD(MSG_JSON)},
	{"raw newline in text", J, BODY("{\"text\":\"a\nb\"}"), BAD(MSG_JSON)},
	{"raw U+001F in a key", J, BODY("{\"x\x1f\":1,\"text\":\"a\"}"), BAD(MSG_JSON)},
	{"raw U+0001 sniffed", NULL, BODY("{\"text\":\"a\x01" "b\"}"), BAD(MSG_JSON)},
	{"raw U+0001 in a message turn", J,
	 BODY("{\"messages\":[{\"role\":\"user\",\"content\":\"a\x01" "b\"}]}"), .flags = M,
	 BAD(MSG_JSON)},
	{"escaped control characters are fine", J, BODY("{\"text\":\"a\\u0001\\tb\"}"),
	 TEXT("a\x01\tb")},
	{"single-quoted key", J, BODY("{'text':\"hi\"}"), BAD(MSG_JSON)},
	{"NaN", J, BODY("{\"text\":\"hi\",\"x\":NaN}"), BAD(MSG_JSON)},
	{"1.", J, BODY("{\"text\":\"hi\",\"x\":1.}"), BAD(MSG_JSON)},
	{"nesting within the limit", J, BODY("{\"a\":[[[[[[[[[[{\"b\":{}}]]]]]]]]]],\"text\":\"hi\"}"),
	 TEXT("hi")},

	/* text: types, emptiness, NUL, UTF-8, escapes */
	{"text int", J, BODY("{\"text\":1}"), BAD(MSG_TYPE)},
	{"text double", J, BODY("{\"text\":1.5}"), BAD(MSG_TYPE)},
	{"text bool", J, BODY("{\"text\":true}"), BAD(MSG_TYPE)},
	{"text null", J, BODY("{\"text\":null}"), .query = "text=q", BAD(MSG_TYPE)},
	{"text array", J, BODY("{\"text\":[\"hi\"]}"), BAD(MSG_TYPE)},
	{"text object", J, BODY("{\"text\":{\"text\":\"hi\"}}"), BAD(MSG_TYPE)},
	{"text empty", J, BODY("{\"text\":\"\"}"), BAD(MSG_EMPTY)},
	{"text \\u0000", J, BODY("{\"text\":\"a\\u0000b\"}"), BAD(MSG_NUL)},
	{"text escapes", J, BODY("{\"text\":\"a\\n\\\"\\u00e9\\ud83d\\ude00\"}"),
	 TEXT("a\n\"\xc3\xa9\xf0\x9f\x98\x80")},
	{"lone surrogate escape becomes U+FFFD", J, BODY("{\"text\":\"\\ud800\"}"),
	 TEXT("\xef\xbf\xbd")},
	{"json overlong", J, BODY("{\"text\":\"\xc0\x80\"}"), BAD(MSG_UTF8)},
	{"json surrogate", J, BODY("{\"text\":\"\xed\xa0\x80\"}"), BAD(MSG_UTF8)},
	{"json F5", J, BODY("{\"text\":\"\xf5\x80\x80\x80\"}"), BAD(MSG_UTF8)},
	{"json above U+10FFFF", J, BODY("{\"text\":\"\xf4\x90\x80\x80\"}"), BAD(MSG_UTF8)},
	{"json truncated", J, BODY("{\"text\":\"\xe2\x82\"}"), BAD(MSG_JSON)},
	{"json bad UTF-8 in another key", J, BODY("{\"x\":\"\xe2\x82\",\"text\":\"hi\"}"),
	 BAD(MSG_JSON)},

	/* form decoding */
	{"form plus and escaped plus", F, BODY("text=a+b%2Bc"), TEXT("a b+c")},
	{"form hex either case", F, BODY("text=%e2%82%ac%E2%82%AC"), TEXT("\xe2\x82\xac\xe2\x82\xac")},
	{"form multiple fields", F, BODY("a=1&text=hi&b=2"), TEXT("hi")},
	{"form first occurrence wins", F, BODY("text=one&text=two"), TEXT("one")},
	{"form encoded name", F, BODY("te%78t=hi"), TEXT("hi")},
	{"form name prefix is another field", F, BODY("texts=1&xtext=2&text=3"), TEXT("3")},
	{"form value with =", F, BODY("text=a=b"), TEXT("a=b")},
	{"form empty fields", F, BODY("&&text=hi&"), TEXT("hi")},
	{"form ; is no separator", F, BODY("a=1;text=hi"), BAD(MSG_MISSING)},
	{"form field without =", F, BODY("text"), BAD(MSG_EMPTY)},
	{"form field without = comes first", F, BODY("text&text=hi"), BAD(MSG_EMPTY)},
	{"form %zz", F, BODY("text=%zz"), BAD(MSG_ESCAPE)},
	{"form % at end", F, BODY("text=abc%"), BAD(MSG_ESCAPE)},
	{"form %4 at end", F, BODY("text=abc%4"), BAD(MSG_ESCAPE)},
	{"form %g1", F, BODY("text=a%g1"), BAD(MSG_ESCAPE)},
	{"form bad escape in another field", F, BODY("a=%zz&%zz=1&text=hi"), TEXT("hi")},
	{"form raw NUL", F, BODY("text=a\0b"), BAD(MSG_NUL)},
	{"form %00", F, BODY("text=a%00b"), BAD(MSG_NUL)},
	{"form overlong", F, BODY("text=%C0%80"), BAD(MSG_UTF8)},
	{"form surrogate", F, BODY("text=%ED%A0%80"), BAD(MSG_UTF8)},
	{"form F5", F, BODY("text=%F5%80%80%80"), BAD(MSG_UTF8)},
	{"form truncated", F, BODY("text=%E2%82"), BAD(MSG_UTF8)},
	{"form raw overlong", F, BODY("text=\xc0\x80"), BAD(MSG_UTF8)},
	{"form raw UTF-8", F, BODY("text=caf\xc3\xa9"), TEXT("caf\xc3\xa9")},

	/* plain bodies */
	{"plain NUL", P, BODY("a\0b"), BAD(MSG_NUL)},
	{"plain overlong", P, BODY("\xc0\x80"), BAD(MSG_UTF8)},
	{"plain surrogate", P, BODY("\xed\xa0\x80"), BAD(MSG_UTF8)},
	{"plain F5", P, BODY("\xf5\x80\x80\x80"), BAD(MSG_UTF8)},
	{"plain truncated", P, BODY("ab\xe2\x82"), BAD(MSG_UTF8)},
	{"plain lone continuation", P, BODY("\x80"), BAD(MSG_UTF8)},

	/* messages */
	{"messages multi-turn", J,
	 BODY("{\"messages\":[" TURN("user", "\"hi\"") "," TURN("assistant", "\"hello\"") ","
	      "{\"role\":\"user\",\"content\":\"bye\",\"name\":\"x\"}],\"model\":\"m\"}"),
	 .flags = M,
	 .messages = "[" TURN("user", "\"hi\"") "," TURN("assistant", "\"hello\"") "," TURN(
		 "user", "\"bye\"") "]"},
	{"messages one turn, keys reordered", J,
	 BODY("{\"messages\":[{\"content\":\"hi\",\"role\":\"user\"}]}"), .flags = M,
	 .messages = "[" TURN("user", "\"hi\"") "]"},
	{"messages blocks", J,
	 BODY("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\","
	      "\"cache_control\":{\"type\":\"ephemeral\"}},{\"text\":\"b\",\"type\":\"text\"}]}]}"),
	 .flags = M,
	 .messages = "[" TURN("user", "[{\"type\":\"text\",\"text\":\"a\"},"
				      "{\"type\":\"text\",\"text\":\"b\"}]") "]"},
	{"messages win over text", J,
	 BODY("{\"text\":\"t\",\"messages\":[" TURN("user", "\"m\"") "]}"), .flags = M,
	 .messages = "[" TURN("user", "\"m\"") "]"},
	{"messages win over a bad text", J,
	 BODY("{\"text\":1,\"messages\":[" TURN("user", "\"m\"") "]}"), .flags = M,
	 .messages = "[" TURN("user", "\"m\"") "]"},
	{"messages win over query text", J, BODY("{\"messages\":[" TURN("user", "\"m\"") "]}"),
	 .query = "text=q", .flags = M, .messages = "[" TURN("user", "\"m\"") "]"},
	{"text without the flag", J,
	 BODY("{\"text\":\"t\",\"messages\":[" TURN("user", "\"m\"") "]}"), TEXT("t")},
	{"messages without the flag", J, BODY("{\"messages\":[" TURN("user", "\"m\"") "]}"),
	 BAD(MSG_MISSING)},
	{"bad messages without the flag", J, BODY("{\"messages\":7}"), .query = "text=q",
	 TEXT("q")},
	{"messages with the flag, text only", J, BODY("{\"text\":\"t\"}"), .flags = M, TEXT("t")},
	{"messages in a curl -d form", F, BODY("{\"messages\":[" TURN("user", "\"m\"") "]}"),
	 .flags = M, .messages = "[" TURN("user", "\"m\"") "]"},
	{"messages and max_tokens", J,
	 BODY("{\"max_tokens\":5,\"messages\":[" TURN("user", "\"m\"") "]}"), .flags = M,
	 .max_tokens = 5, .messages = "[" TURN("user", "\"m\"") "]"},
	{"bad messages beat good text", J,
	 BODY("{\"text\":\"t\",\"messages\":[" TURN("assistant", "\"m\"") "]}"), .flags = M,
	 BAD(MSG_FIRST)},
	{"last turn assistant", J,
	 BODY("{\"messages\":[" TURN("user", "\"a\"") "," TURN("assistant", "\"b\"") "]}"),
	 .flags = M, BAD(MSG_LAST)},
	{"first turn assistant", J,
	 BODY("{\"messages\":[" TURN("assistant", "\"a\"") "," TURN("user", "\"b\"") "]}"),
	 .flags = M, BAD(MSG_FIRST)},
	{"role system", J, BODY("{\"messages\":[" TURN("system", "\"a\"") "]}"), .flags = M,
	 BAD(MSG_ROLE)},
	{"role User", J, BODY("{\"messages\":[" TURN("User", "\"a\"") "]}"), .flags = M,
	 BAD(MSG_ROLE)},
	{"role with NUL", J, BODY("{\"messages\":[" TURN("user\\u0000", "\"a\"") "]}"), .flags = M,
	 BAD(MSG_ROLE)},
	{"role not a string", J, BODY("{\"messages\":[{\"role\":1,\"content\":\"a\"}]}"),
	 .flags = M, BAD(MSG_ROLE)},
	{"role missing", J, BODY("{\"messages\":[{\"content\":\"a\"}]}"), .flags = M,
	 BAD(MSG_TURN)},
	{"content missing", J, BODY("{\"messages\":[{\"role\":\"user\"}]}"), .flags = M,
	 BAD(MSG_TURN)},
	{"turn not an object", J, BODY("{\"messages\":[\"hi\"]}"), .flags = M, BAD(MSG_TURN)},
	{"turn null", J, BODY("{\"messages\":[null]}"), .flags = M, BAD(MSG_TURN)},
	{"content empty", J, BODY("{\"messages\":[" TURN("user", "\"\"") "]}"), .flags = M,
	 BAD(MSG_CONTENT)},
	{"content number", J, BODY("{\"messages\":[" TURN("user", "1") "]}"), .flags = M,
	 BAD(MSG_CONTENT)},
	{"content null", J, BODY("{\"messages\":[" TURN("user", "null") "]}"), .flags = M,
	 BAD(MSG_CONTENT)},
	{"content object", J, BODY("{\"messages\":[" TURN("user", "{\"text\":\"a\"}") "]}"),
	 .flags = M, BAD(MSG_CONTENT)},
	{"content NUL", J, BODY("{\"messages\":[" TURN("user", "\"a\\u0000\"") "]}"), .flags = M,
	 BAD(MSG_CONTENT_NUL)},
	{"content overlong", J, BODY("{\"messages\":[" TURN("user", "\"\xc0\x80\"") "]}"),
	 .flags = M, BAD(MSG_CONTENT_UTF8)},
	{"content blocks empty", J, BODY("{\"messages\":[" TURN("user", "[]") "]}"), .flags = M,
	 BAD(MSG_CONTENT)},
	{"content block image", J,
	 BODY("{\"messages\":[" TURN("user", "[{\"type\":\"image\",\"text\":\"a\"}]") "]}"),
	 .flags = M, BAD(MSG_CONTENT)},
	{"content block without type", J,
	 BODY("{\"messages\":[" TURN("user", "[{\"text\":\"a\"}]") "]}"), .flags = M,
	 BAD(MSG_CONTENT)},
	{"content block empty text", J,
	 BODY("{\"messages\":[" TURN("user", "[{\"type\":\"text\",\"text\":\"\"}]") "]}"),
	 .flags = M, BAD(MSG_CONTENT)},
	{"content block text not a string", J,
	 BODY("{\"messages\":[" TURN("user", "[{\"type\":\"text\",\"text\":[]}]") "]}"),
	 .flags = M, BAD(MSG_CONTENT)},
	{"content block not an object", J, BODY("{\"messages\":[" TURN("user", "[\"a\"]") "]}"),
	 .flags = M, BAD(MSG_CONTENT)},
	{"content block surrogate", J,
	 BODY("{\"messages\":[" TURN("user", "[{\"type\":\"text\",\"text\":\"\xed\xa0\x80\"}]") "]}"),
	 .flags = M, BAD(MSG_CONTENT_UTF8)},
	{"messages empty", J, BODY("{\"messages\":[]}"), .flags = M, BAD(MSG_TURNS)},
	{"messages object", J, BODY("{\"messages\":{}}"), .flags = M, BAD(MSG_TURNS)},
	{"messages string", J, BODY("{\"messages\":\"hi\"}"), .flags = M, BAD(MSG_TURNS)},
	{"messages null", J, BODY("{\"messages\":null}"), .flags = M, BAD(MSG_TURNS)},

	/* max_tokens */
	{"max_tokens", J, BODY("{\"text\":\"hi\",\"max_tokens\":100}"), TEXT("hi"),
	 .max_tokens = 100},
	{"max_tokens 1", J, BODY("{\"text\":\"hi\",\"max_tokens\":1}"), TEXT("hi"), .max_tokens = 1},
	{"max_tokens 1e9", J, BODY("{\"text\":\"hi\",\"max_tokens\":1000000000}"), TEXT("hi"),
	 .max_tokens = 1000000000},
	{"max_tokens absent", J, BODY("{\"text\":\"hi\"}"), TEXT("hi"), .max_tokens = 0},
	{"max_tokens 1e9+1", J, BODY("{\"text\":\"hi\",\"max_tokens\":1000000001}"), BAD(MSG_MAXTOK)},
	{"max_tokens 0", J, BODY("{\"text\":\"hi\",\"max_tokens\":0}"), BAD(MSG_MAXTOK)},
	{"max_tokens -1", J, BODY("{\"text\":\"hi\",\"max_tokens\":-1}"), BAD(MSG_MAXTOK)},
	{"max_tokens 1.5", J, BODY("{\"text\":\"hi\",\"max_tokens\":1.5}"), BAD(MSG_MAXTOK)},
	{"max_tokens 10.0", J, BODY("{\"text\":\"hi\",\"max_tokens\":10.0}"), BAD(MSG_MAXTOK)},
	{"max_tokens 1e3", J, BODY("{\"text\":\"hi\",\"max_tokens\":1e3}"), BAD(MSG_MAXTOK)},
	{"max_tokens string", J, BODY("{\"text\":\"hi\",\"max_tokens\":\"10\"}"), BAD(MSG_MAXTOK)},
	{"max_tokens null", J, BODY("{\"text\":\"hi\",\"max_tokens\":null}"), BAD(MSG_MAXTOK)},
	{"max_tokens bool", J, BODY("{\"text\":\"hi\",\"max_tokens\":true}"), BAD(MSG_MAXTOK)},
	{"max_tokens huge", J, BODY("{\"text\":\"hi\",\"max_tokens\":99999999999999999999999}"),
	 BAD(MSG_MAXTOK)},
	{"max_tokens INT64_MAX+1", J,
	 BODY("{\"text\":\"hi\",\"max_tokens\":9223372036854775808}"), BAD(MSG_MAXTOK)},
	{"max_tokens hugely negative", J,
	 BODY("{\"text\":\"hi\",\"max_tokens\":-9223372036854775809}"), BAD(MSG_MAXTOK)},
	{"max_tokens with missing text", J, BODY("{\"max_tokens\":5}"), BAD(MSG_MISSING)},
	{"form max_tokens", F, BODY("text=hi&max_tokens=50"), TEXT("hi"), .max_tokens = 50},
	{"form max_tokens leading zeros", F, BODY("max_tokens=0005&text=hi"), TEXT("hi"),
	 .max_tokens = 5},
	{"form max_tokens 1e9", F, BODY("text=hi&max_tokens=1000000000"), TEXT("hi"),
	 .max_tokens = 1000000000},
	{"form max_tokens first wins", F, BODY("text=hi&max_tokens=3&max_tokens=x"), TEXT("hi"),
	 .max_tokens = 3},
	{"form max_tokens 0", F, BODY("text=hi&max_tokens=0"), BAD(MSG_MAXTOK)},
	{"form max_tokens -1", F, BODY("text=hi&max_tokens=-1"), BAD(MSG_MAXTOK)},
	{"form max_tokens +5", F, BODY("text=hi&max_tokens=%2B5"), BAD(MSG_MAXTOK)},
	{"form max_tokens space", F, BODY("text=hi&max_tokens=+5"), BAD(MSG_MAXTOK)},
	{"form max_tokens 1.5", F, BODY("text=hi&max_tokens=1.5"), BAD(MSG_MAXTOK)},
	{"form max_tokens 5x", F, BODY("text=hi&max_tokens=5x"), BAD(MSG_MAXTOK)},
	{"form max_tokens empty", F, BODY("text=hi&max_tokens="), BAD(MSG_MAXTOK)},
	{"form max_tokens no =", F, BODY("text=hi&max_tokens"), BAD(MSG_MAXTOK)},
	{"form max_tokens bad escape", F, BODY("text=hi&max_tokens=%zz"), BAD(MSG_MAXTOK)},
	{"form max_tokens 1e9+1", F, BODY("text=hi&max_tokens=1000000001"), BAD(MSG_MAXTOK)},
	{"form max_tokens overflow", F, BODY("text=hi&max_tokens=99999999999999999999999999"),
	 BAD(MSG_MAXTOK)},
	{"query max_tokens", .query = "text=hi&max_tokens=7", TEXT("hi"), .max_tokens = 7},
	{"query max_tokens for plain", P, BODY("hi"), .query = "max_tokens=7", TEXT("hi"),
	 .max_tokens = 7},
	{"query max_tokens for form", F, BODY("text=hi"), .query = "max_tokens=7", TEXT("hi"),
	 .max_tokens = 7},
	{"query max_tokens for messages", J, BODY("{\"messages\":[" TURN("user", "\"m\"") "]}"),
	 .query = "max_tokens=7", .flags = M, .max_tokens = 7,
	 .messages = "[" TURN("user", "\"m\"") "]"},
	{"body max_tokens over query", J, BODY("{\"text\":\"hi\",\"max_tokens\":5}"),
	 .query = "max_tokens=x", TEXT("hi"), .max_tokens = 5},
	{"form max_tokens over query", F, BODY("text=hi&max_tokens=5"), .query = "max_tokens=7",
	 TEXT("hi"), .max_tokens = 5},
	{"bad query max_tokens", P, BODY("hi"), .query = "max_tokens=0", BAD(MSG_MAXTOK)},
};

/* Runs one case and reports it as one TAP line; the struct input must come back zeroed on
 * failure and the message must be set exactly when something failed. */
static void run(const struct pcase *c)
{
	struct input in;
	const char *msg = "unset";
	memset(&in, 0xA5, sizeof in); /* garbage: input_parse must not read it */
	enum err_kind e = input_parse(c->ct, c->body, c->body_len, c->query, c->flags, &in, &msg);
	const char *why = NULL;
	char *got_messages = NULL;
	if (e != c->err) {
		why = "error kind";
	} else if (e != ERR_OK) {
		if (!msg || strcmp(msg, c->want) != 0)
			why = "message";
		else if (in.text || in.messages || in.text_len || in.max_tokens)
			why = "input not zeroed on failure";
	} else if (msg) {
		why = "message set on success";
	} else if (c->want && (!in.text || in.text_len != c->want_len ||
			       memcmp(in.text, c->want, c->want_len) != 0 ||
			       in.text[in.text_len] != '\0')) {
		why = "text";
	} else if (!c->want && in.text) {
		why = "text set with messages";
	} else if (in.max_tokens != c->max_tokens) {
		why = "max_tokens";
	} else if (!c->messages != !in.messages) {
		why = "messages presence";
	} else if (c->messages) {
		got_messages = strdup(json_object_to_json_string_ext(
			in.messages, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		if (strcmp(got_messages, c->messages) != 0)
			why = "messages";
	}
	if (!tap_ok(!why, "parse: %s", c->name)) {
		tap_diag("wrong %s: kind %d (want %d), msg '%s', text '%s' (%zu bytes), max_tokens %ld",
			 why, (int)e, (int)c->err, msg ? msg : "(null)",
			 e == ERR_OK && in.text ? in.text : "(null)", e == ERR_OK ? in.text_len : 0,
			 e == ERR_OK ? in.max_tokens : 0);
		if (got_messages)
			tap_diag("messages %s", got_messages);
	}
	free(got_messages);
	if (e == ERR_OK)
		input_release(&in);
}

/* 10,000 levels must fail fast on json-c's depth limit, not recurse or hang. */
static void test_deep_nesting(void)
{
	static const struct {
		const char *name, *head, *unit, *tail;
	} deep[] = {
		{"10000 arrays", "", "[", ""},
		{"10000 closed arrays", "", "[", "]"},
		{"10000 objects", "", "{\"a\":", "1}"},
		{"text of 10000 arrays", "{\"text\":", "[", ""},
		{"messages of 10000 arrays", "{\"messages\":", "[", ""},
	};
	for (size_t i = 0; i < sizeof deep / sizeof deep[0]; i++) {
		size_t len;
		char *body = tap_repeat(deep[i].head, deep[i].unit, 10000, deep[i].tail, &len);
		struct input in;
		const char *msg;
		clock_t t0 = clock();
		enum err_kind e = input_parse(J, body, len, "text=q", M, &in, &msg);
		double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
		tap_ok(e == ERR_BAD_REQUEST && msg && strcmp(msg, MSG_JSON) == 0 && secs < 1.0,
		       "deep nesting: %s -> 400 malformed JSON in %.3fs", deep[i].name, secs);
		free(body);
	}
}

static void test_turn_limit(void)
{
	for (size_t n = 1000; n <= 1001; n++) {
		struct buf b;
		buf_init(&b, 1 << 20);
		BUF_MUST(buf_appends(&b, "{\"messages\":["));
		for (size_t i = 0; i < n; i++) {
			int user = i % 2 == 0 || i == n - 1;
			BUF_MUST(buf_appends(&b, user ? TURN("user", "\"u\"") : TURN("assistant", "\"a\"")));
			BUF_MUST(buf_appends(&b, i == n - 1 ? "]}" : ","));
		}
		struct input in;
		const char *msg;
		enum err_kind e = input_parse(J, b.data, b.len, NULL, M, &in, &msg);
		if (n <= 1000) {
			tap_ok(e == ERR_OK && json_object_array_length(in.messages) == n,
			       "messages: %zu turns accepted", n);
			if (e == ERR_OK)
				input_release(&in);
		} else {
			tap_ok(e == ERR_BAD_REQUEST && strcmp(msg, MSG_TURNS) == 0,
			       "messages: %zu turns rejected", n);
		}
		buf_release(&b);
	}
}

/* Large values come back whole: nothing truncates to a fixed buffer. */
static void test_large(void)
{
	size_t len;
	char *plain = tap_repeat("", "abc\xc3\xa9", 250000, "", &len);
	struct input in;
	const char *msg;
	enum err_kind e = input_parse(P, plain, len, NULL, 0, &in, &msg);
	tap_ok(e == ERR_OK && in.text_len == len && memcmp(in.text, plain, len) == 0,
	       "large plain body kept whole (%zu bytes)", len);
	if (e == ERR_OK)
		input_release(&in);
	free(plain);

	char *form = tap_repeat("text=", "a+%C3%A9", 200000, "", &len);
	e = input_parse(F, form, len, NULL, 0, &in, &msg);
	int ok = e == ERR_OK && in.text_len == 200000 * 4;
	for (size_t i = 0; ok && i < in.text_len; i += 4)
		ok = memcmp(in.text + i, "a \xc3\xa9", 4) == 0;
	tap_ok(ok, "large form value decoded whole");
	if (e == ERR_OK)
		input_release(&in);
	free(form);

	char *json = tap_repeat("{\"text\":\"", "x\\u00e9", 200000, "\"}", &len);
	e = input_parse(J, json, len, NULL, 0, &in, &msg);
	tap_ok(e == ERR_OK && in.text_len == 200000 * 3 && strlen(in.text) == in.text_len,
	       "large JSON text whole");
	if (e == ERR_OK)
		input_release(&in);
	free(json);
}

/* A body whose json-c tree would cost hundreds of times its size is refused before json-c
 * builds it, with a 413, however it is labelled. */
static void test_costly(void)
{
	static const struct {
		const char *name, *ct;
	} as[] = {{"json", J}, {"sniffed", NULL}, {"form", F}};
	size_t len;
	char *body = tap_repeat("{\"text\":\"hi\",\"x\":[", "{},", 1 << 20, "{}]}", &len);
	for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
		struct input in;
		const char *msg;
		enum err_kind e = input_parse(as[i].ct, body, len, NULL, M, &in, &msg);
		tap_ok(e == ERR_TOO_LARGE && msg && strstr(msg, "too many JSON values"),
		       "costly: a 3 MB [{},{},...] as %s -> 413 (%s)", as[i].name, msg ? msg : "");
		if (e == ERR_OK)
			input_release(&in);
	}
	free(body);
}

static void test_release(void)
{
	struct input in = {0};
	input_release(&in);
	input_release(&in);
	tap_ok(!in.text && !in.messages, "release of a zeroed input is harmless");
	const char *msg;
	if (input_parse(J, "{\"text\":\"x\"}", 12, NULL, 0, &in, &msg) == ERR_OK) {
		input_release(&in);
		tap_ok(!in.text && !in.text_len && !in.messages && !in.max_tokens,
		       "release zeroes the input");
	} else {
		tap_ok(0, "release zeroes the input");
	}
}

struct ucase {
	const char *s;
	size_t n;
	int valid;
	const char *name;
};
#define U(s, v, name) {(s), sizeof(s) - 1, (v), (name)}

static const struct ucase ucases[] = {
	U("", 1, "empty"),
	U("hello", 1, "ascii"),
	U("a\0b", 1, "NUL is valid UTF-8 (callers reject it)"),
	U("0123456789abcdefghijklmnopqrstuvwxyz", 1, "long ascii"),
	U("\xc2\x80", 1, "U+0080"),
	U("\xdf\xbf", 1, "U+07FF"),
	U("\xe0\xa0\x80", 1, "U+0800"),
	U("\xed\x9f\xbf", 1, "U+D7FF"),
	U("\xee\x80\x80", 1, "U+E000"),
	U("\xef\xbf\xbf", 1, "U+FFFF"),
	U("\xf0\x90\x80\x80", 1, "U+10000"),
	U("\xf4\x8f\xbf\xbf", 1, "U+10FFFF"),
	U("0123456\xf0\x9f\x98\x80" "89abcdef\xc3\xa9", 1, "multibyte across words"),
	U("\xc0\x80", 0, "overlong C0 80"),
	U("\xc1\xbf", 0, "overlong C1 BF"),
	U("\xe0\x9f\xbf", 0, "overlong E0 9F BF"),
	U("\xf0\x8f\xbf\xbf", 0, "overlong F0 8F BF BF"),
	U("\xed\xa0\x80", 0, "surrogate D800"),
	U("\xed\xbf\xbf", 0, "surrogate DFFF"),
	U("\xf4\x90\x80\x80", 0, "U+110000"),
	U("\xf5\x80\x80\x80", 0, "F5"),
	U("\xf8\x88\x80\x80\x80", 0, "F8 (5 bytes)"),
	U("\xff", 0, "FF"),
	U("\x80", 0, "lone continuation"),
	U("\xe2\x82", 0, "truncated E2 82"),
	U("\xf0\x9f\x98", 0, "truncated 4-byte"),
	U("\xc3", 0, "truncated 2-byte"),
	U("\xe2\x28\xa1", 0, "bad continuation"),
	U("\xc3\xa9\xa9", 0, "extra continuation"),
	U("0123456789abcde\xc3", 0, "truncated after a word"),
};

static void test_utf8(void)
{
	for (size_t i = 0; i < sizeof ucases / sizeof ucases[0]; i++)
		tap_is_int(input_utf8_valid(ucases[i].s, ucases[i].n), ucases[i].valid, "utf8: %s",
			   ucases[i].name);
	/* One bad byte at every offset of a 24-byte ASCII string: the 8-byte fast path must
	 * not skip it wherever it falls. */
	int all = 1;
	for (size_t at = 0; at < 24; at++) {
		char s[24];
		memset(s, 'a', sizeof s);
		s[at] = (char)0x80;
		all &= input_utf8_valid(s, sizeof s) == 0;
		s[at] = (char)0xC3;
		all &= input_utf8_valid(s, sizeof s) == 0;
	}
	tap_ok(all, "utf8: a bad byte is found at every offset");
}

struct dcase {
	const char *in;
	size_t max; /* out's max */
	int rc;
	const char *out;
	size_t out_len;
};
#define D(in, max, rc, out) {(in), (max), (rc), (out), sizeof(out) - 1}

static const struct dcase dcases[] = {
	D("", 10, 0, "p"),
	D("abc", 10, 0, "pabc"),
	D("a+b+%2B", 10, 0, "pa b +"),
	D("%41%62%6a%6A", 10, 0, "pAbjj"),
	D("%00", 10, 0, "p\0"),
	D("%ff%FF", 10, 0, "p\xff\xff"),
	D("abc", 4, 0, "pabc"),
	D("a%20", 3, 0, "pa "),
	D("abcd", 4, -1, "p"),
	D("a%20b", 3, -1, "p"),
	D("%", 10, -1, "p"),
	D("ab%", 10, -1, "p"),
	D("%4", 10, -1, "p"),
	D("%zz", 10, -1, "p"),
	D("%g0", 10, -1, "p"),
	D("%0g", 10, -1, "p"),
	D("ok%+1", 10, -1, "p"),
};

static void test_url_decode(void)
{
	for (size_t i = 0; i < sizeof dcases / sizeof dcases[0]; i++) {
		const struct dcase *d = &dcases[i];
		struct buf b;
		buf_init(&b, d->max);
		BUF_MUST(buf_appendc(&b, 'p')); /* failures must leave what was there, and only that */
		int rc = input_url_decode(d->in, strlen(d->in), &b);
		tap_ok(rc == d->rc && b.len == d->out_len && memcmp(b.data, d->out, b.len) == 0 &&
			       b.data[b.len] == '\0',
		       "url_decode '%s' (max %zu) -> %d", d->in, d->max, d->rc);
		buf_release(&b);
	}
}

struct fcase {
	const char *s;
	const char *name;
	size_t max;
	int rc;
	const char *out;
};

static const struct fcase fcases[] = {
	{"", "text", 10, 0, ""},
	{"text=hi", "text", 10, 1, "hi"},
	{"a=1&text=h+i&b=2", "text", 10, 1, "h i"},
	{"text=1&text=2", "text", 10, 1, "1"},
	{"text", "text", 10, 1, ""},
	{"text=", "text", 10, 1, ""},
	{"t%65xt=x", "text", 10, 1, "x"},
	{"my+key=v", "my key", 10, 1, "v"},
	{"my%2Bkey=v&my+key=w", "my key", 10, 1, "w"},
	{"%zz=1&text=x", "text", 10, 1, "x"},
	{"texts=1&xtext=2&tex=3", "text", 10, 0, ""},
	{"text%00=1", "text", 10, 0, ""},
	{"a=b;text=c", "text", 10, 0, ""},
	{"&&&", "text", 10, 0, ""},
	{"text=%zz&text=ok", "text", 10, -1, ""},
	{"text=abcdef", "text", 5, -1, ""},
	{"text=abcde", "text", 5, 1, "abcde"},
};

static void test_form_get(void)
{
	for (size_t i = 0; i < sizeof fcases / sizeof fcases[0]; i++) {
		const struct fcase *f = &fcases[i];
		struct buf b;
		buf_init(&b, f->max);
		int rc = input_form_get(f->s, strlen(f->s), f->name, &b);
		tap_ok(rc == f->rc && strcmp(buf_cstr(&b), f->out) == 0 && b.len == strlen(f->out),
		       "form_get '%s' [%s] -> %d '%s'", f->s, f->name, f->rc, f->out);
		buf_release(&b);
	}
	/* n bounds the scan: the bytes after it are not part of the form. */
	struct buf b;
	buf_init(&b, 16);
	int rc = input_form_get("a=1&text=hi", 3, "text", &b);
	tap_ok(rc == 0 && b.len == 0, "form_get stops at n");
	rc = input_form_get("text=hi&x", 7, "text", &b);
	tap_ok(rc == 1 && strcmp(buf_cstr(&b), "hi") == 0, "form_get value ends at n");
	buf_release(&b);
}

int main(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run(&cases[i]);
	test_deep_nesting();
	test_turn_limit();
	test_large();
	test_costly();
	test_release();
	test_utf8();
	test_url_decode();
	test_form_get();
	return tap_done();
}
