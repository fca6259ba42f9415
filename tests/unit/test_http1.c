/* Unit tests for http1: each response fed whole, one byte at a time and in pieces of 7 bytes, with
 * the same head, body and end every time; the framings (Content-Length, chunked, until close,
 * none), interim answers, reuse, the header fields upstream reads, and the malformed and oversized
 * answers it must refuse. */

#include "http1.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define BODY_MAX (256 * 1024)

struct run {
	enum http1_event end; /* HTTP1_DONE, HTTP1_ERROR, or HTTP1_MORE when the input ran out */
	int heads;
	int sliced; /* every body slice lay inside the input */
	size_t left;  /* input bytes not consumed after the end */
	char body[BODY_MAX];
	size_t body_len;
	struct http1 p;
};

/* Feeds in (n bytes) in pieces of step bytes (0: whole); with eof, tells of the connection's end
 * when the input runs out before the response does. */
static void feed(struct run *r, const char *in, size_t n, size_t step, int eof)
{
	memset(r, 0, sizeof *r);
	r->sliced = 1;
	http1_init(&r->p);
	r->end = HTTP1_MORE;
	size_t off = 0;
	while (off < n && r->end == HTTP1_MORE) {
		size_t k = step && n - off > step ? step : n - off;
		const char *p = in + off;
		size_t left = k;
		for (;;) {
			const char *body;
			size_t len;
			enum http1_event ev = http1_parse(&r->p, &p, &left, &body, &len);
			if (ev == HTTP1_MORE)
				break;
			if (ev == HTTP1_HEAD)
				r->heads++;
			if (ev == HTTP1_BODY) {
				if (body < in + off || body + len > in + off + k || len == 0)
					r->sliced = 0;
				if (r->body_len + len > BODY_MAX)
					abort();
				memcpy(r->body + r->body_len, body, len);
				r->body_len += len;
			}
			if (ev == HTTP1_DONE || ev == HTTP1_ERROR) {
				r->end = ev;
				r->left = left + (n - off - k);
				break;
			}
		}
		off += k;
	}
	if (r->end == HTTP1_MORE) {
		/* a response whose end needs no more bytes (204, Content-Length: 0) ends here */
		const char *p = in + n, *body;
		size_t left = 0, len;
		enum http1_event ev = http1_parse(&r->p, &p, &left, &body, &len);
		if (ev == HTTP1_DONE || ev == HTTP1_ERROR)
			r->end = ev;
		else if (eof)
			r->end = http1_eof(&r->p);
	}
}

struct want {
	enum http1_event end;
	long status;
	const char *body;
	int reusable;
};

static void check_n(const char *name, const char *in, size_t n, int eof, struct want w)
{
	static struct run whole, piece;
	feed(&whole, in, n, 0, eof);
	tap_is_int(whole.end, w.end, "%s: ends as it should", name);
	if (w.end == HTTP1_DONE) {
		tap_is_int(whole.p.status, w.status, "%s: status", name);
		tap_ok(whole.body_len == strlen(w.body) && memcmp(whole.body, w.body, whole.body_len) == 0,
		       "%s: body", name);
		tap_is_int(whole.p.reusable, w.reusable, "%s: reusable", name);
		tap_is_int(whole.heads, 1, "%s: one head", name);
		tap_ok(whole.sliced, "%s: body slices are the input's", name);
	}
	static const size_t steps[] = {1, 7};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		feed(&piece, in, n, steps[i], eof);
		int same = piece.end == whole.end && piece.heads == whole.heads &&
			   piece.body_len == whole.body_len &&
			   memcmp(piece.body, whole.body, whole.body_len) == 0 && piece.p.status == whole.p.status &&
			   piece.p.reusable == whole.p.reusable && piece.sliced &&
			   strcmp(piece.p.request_id, whole.p.request_id) == 0;
		tap_ok(same, "%s: the same in pieces of %zu", name, steps[i]);
	}
}

static void check(const char *name, const char *in, int eof, struct want w)
{
	check_n(name, in, strlen(in), eof, w);
}

static struct want done_ok(const char *body, int reusable)
{
	return (struct want){HTTP1_DONE, 200, body, reusable};
}

static void framings(void)
{
	check("content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, done_ok("hello", 1));
	check("content-length 0", "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 0, done_ok("", 1));
	check("chunked",
	      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	      "5;name=value\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
	      0, done_ok("hello world0123456789", 1));
	check("chunked upper-case hex, LF only",
	      "HTTP/1.1 200 OK\nTransfer-Encoding: Chunked\n\n1B\nabcdefghijklmnopqrstuvwxyz!\n0\n\n", 0,
	      done_ok("abcdefghijklmnopqrstuvwxyz!", 1));
	check("until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", 1,
	      done_ok("all of it", 0));
	check("transfer-encoding not ending in chunked: until close",
	      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw", 1, done_ok("raw", 0));
	check("gzip, chunked is chunked",
	      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", 0,
	      done_ok("ab", 1));
	check("transfer-encoding wins over content-length, and closes",
	      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
	      0, done_ok("ab", 0));
	check("204 has no body", "HTTP/1.1 204 No Content\r\n\r\n", 0,
	      (struct want){HTTP1_DONE, 204, "", 1});
	check("an error status with a body",
	      "HTTP/1.1 529 Overloaded\r\ncontent-length: 2\r\n\r\n{}", 0,
	      (struct want){HTTP1_DONE, 529, "{}", 1});
	check("equal repeated lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 0,
	      done_ok("ok", 1));
}

static void reuse(void)
{
	check("connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", 0,
	      done_ok("x", 0));
	check("connection list with close", "HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 1\r\n\r\nx",
	      0, done_ok("x", 0));
	check("HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, done_ok("x", 0));
	check("HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", 0,
	      done_ok("x", 1));
	struct run *r = calloc(1, sizeof *r);
	const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n";
	feed(r, two, strlen(two), 0, 0);
	tap_ok(r->end == HTTP1_DONE && r->left == strlen(two) - 39 && !r->p.reusable,
	       "bytes after the end: done, and the connection is not reused");
	free(r);
}

static void interim(void)
{
	check("100 continue first",
	      "HTTP/1.1 100 Continue\r\nrequest-id: interim\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0,
	      done_ok("ok", 1));
	struct run *r = calloc(1, sizeof *r);
	const char *in = "HTTP/1.1 103 Early Hints\r\nrequest-id: early\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	feed(r, in, strlen(in), 0, 0);
	tap_is_str(r->p.request_id, "", "an interim answer's headers do not leak into the final one");
	check("101 was not asked for", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", 0,
	      (struct want){.end = HTTP1_ERROR});
	free(r);
}

static void fields(void)
{
	struct run *r = calloc(1, sizeof *r);
	const char *in = "HTTP/1.1 429 Too Many Requests\r\n"
			 "Request-Id:   req_1  \r\n"
			 "request-id: req_2\r\n"
			 "CONTENT-TYPE:application/json\r\n"
			 "retry-after: 3\r\nretry-after-ms: 2500\r\nx-should-retry: true\r\n"
			 "x-other: ignored\r\ncontent-length: 0\r\n\r\n";
	feed(r, in, strlen(in), 0, 0);
	tap_is_int(r->p.status, 429, "status 429");
	tap_is_str(r->p.request_id, "req_2", "the last request-id, blanks stripped");
	tap_is_str(r->p.content_type, "application/json", "content-type, case-insensitive name, no blank");
	tap_is_str(r->p.retry_after, "3", "retry-after");
	tap_is_str(r->p.retry_after_ms, "2500", "retry-after-ms");
	tap_is_str(r->p.should_retry, "true", "x-should-retry");
	char *big = malloc(1024);
	memset(big, 0, 1024);
	strcpy(big, "HTTP/1.1 200 OK\r\nrequest-id: ");
	size_t n = strlen(big);
	memset(big + n, 'a', 300);
	strcpy(big + n + 300, "\r\ncontent-length: 0\r\n\r\n");
	feed(r, big, strlen(big), 0, 0);
	tap_ok(r->end == HTTP1_DONE && strlen(r->p.request_id) == sizeof r->p.request_id - 1,
	       "a long value is cut to fit");
	check("a reason phrase is optional", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0, done_ok("", 1));
	free(big);
	free(r);
}

static void refused(void)
{
	const struct want err = {.end = HTTP1_ERROR};
	check("HTTP/2 status line", "HTTP/2 200\r\n\r\n", 0, err);
	check("not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", 0, err);
	check("a two-digit status", "HTTP/1.1 20 OK\r\n\r\n", 0, err);
	check("a header without a colon", "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", 0, err);
	check("a blank in a header name", "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx", 0, err);
	check("obsolete line folding", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  more\r\n\r\n", 0, err);
	check("lengths that differ", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 0, err);
	check("a length that is not a number", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nx", 0, err);
	check("a length past the limit", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0,
	      err);
	check("a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, err);
	check("a chunk size past the limit",
	      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", 0, err);
	check("chunk data longer than its size",
	      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 0, err);
	static const char nul[] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n";
	check_n("a NUL in a header", nul, sizeof nul - 1, 0, err);
	size_t n;
	char *line = tap_repeat("HTTP/1.1 200 OK\r\nX-Long: ", "a", HTTP1_LINE_MAX, "\r\n\r\n", &n);
	check("a header line past its cap", line, 0, err);
	free(line);
	char *many = tap_repeat("HTTP/1.1 200 OK\r\n", "X-Header: 0123456789012345678901234567890123456789\r\n",
				HTTP1_HEAD_MAX / 40, "\r\n", &n);
	check("a header block past its cap", many, 0, err);
	free(many);
	char *interims = tap_repeat("", "HTTP/1.1 100 Continue\r\n\r\n", HTTP1_HEAD_MAX / 20,
				    "HTTP/1.1 200 OK\r\n\r\n", &n);
	check("endless interim answers count against the cap", interims, 0, err);
	free(interims);
}

static void cut_off(void)
{
	const struct want err = {.end = HTTP1_ERROR};
	check("closed inside a length body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1, err);
	check("closed inside a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 1, err);
	check("closed before the last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", 1,
	      err);
	check("closed inside the headers", "HTTP/1.1 200 OK\r\nContent-Le", 1, err);
	struct http1 p;
	http1_init(&p);
	tap_ok(!http1_started(&p) && http1_eof(&p) == HTTP1_ERROR && p.error,
	       "closed before any byte: not started, an error with a reason");
	const char *in = "H", *body;
	size_t n = 1, len;
	http1_init(&p);
	http1_parse(&p, &in, &n, &body, &len);
	tap_ok(http1_started(&p), "started after one byte");
}

int main(void)
{
	framings();
	reuse();
	interim();
	fields();
	refused();
	cut_off();
	return tap_done();
}
