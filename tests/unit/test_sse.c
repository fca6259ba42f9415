/* Unit tests for sse: the decoder against fixtures under every kind of chunking, the size cap, the
 * stop return, reset, and the encoder (byte-exact output and encode -> decode round trips).
 *
 * Fixtures live in $srcdir/tests/unit/fixtures/sse/: NAME.sse holds the raw stream bytes and
 * NAME.expected the events it must produce, one per line, as
 *     event=<name>|id=<id>|data=<data>
 * with backslash, LF, CR and NUL written as \\, \n, \r and \0. A stream that produces no event
 * has an empty .expected file. */

#include "sse.h"
#include "tap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE_MAX_EVENT ((size_t)1 << 20)
#define OUT_MAX ((size_t)1 << 24)

static const char *const fixtures[] = {
	"anthropic_text",
	"anthropic_tool_use",
	"anthropic_error",
	"crlf",
	"cr",
	"mixed_endings",
	"comments",
	"multiline_data",
	"unknown_events",
	"no_event_field",
	"field_no_colon",
	"data_no_space",
	"id",
	"trailing_no_blank",
	"utf8",
	"empty_data",
	"blank_lines",
	"nul_bytes",
};

/* ---- collecting events ---- */

struct collect {
	struct buf out;
	int calls;
	int stop_at; /* the callback asks to stop on this call; 0 = never */
};

static void escape(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '\\':
			BUF_MUST(buf_appends(b, "\\\\"));
			break;
		case '\n':
			BUF_MUST(buf_appends(b, "\\n"));
			break;
		case '\r':
			BUF_MUST(buf_appends(b, "\\r"));
			break;
		case '\0':
			BUF_MUST(buf_appends(b, "\\0"));
			break;
		default:
			BUF_MUST(buf_appendc(b, s[i]));
		}
	}
}

static void serialise(struct buf *b, const char *event, const char *id, const char *data,
	size_t len)
{
	BUF_MUST(buf_appends(b, "event="));
	escape(b, event, strlen(event));
	BUF_MUST(buf_appends(b, "|id="));
	escape(b, id, strlen(id));
	BUF_MUST(buf_appends(b, "|data="));
	escape(b, data, len);
	BUF_MUST(buf_appendc(b, '\n'));
}

static int on_event(void *arg, const struct sse_event *ev)
{
	struct collect *c = arg;
	/* The contract promises a NUL-terminated data; check it on every event. */
	if (ev->data[ev->data_len] != '\0')
		BUF_MUST(buf_appends(&c->out, "!! data not NUL-terminated\n"));
	serialise(&c->out, ev->event, ev->id, ev->data, ev->data_len);
	c->calls++;
	return c->stop_at && c->calls >= c->stop_at;
}

static void collect_init(struct collect *c)
{
	buf_init(&c->out, OUT_MAX);
	c->calls = 0;
	c->stop_at = 0;
}

/* ---- chunking patterns ---- */

/* Returns the size of the next piece (0 means an empty feed), given what is left. */
typedef size_t (*split_fn)(void *state, size_t left);

static size_t split_whole(void *state, size_t left)
{
	return left;
}

static size_t split_bytes(void *state, size_t left)
{
	return 1;
}

struct split_at {
	size_t first;
	int done;
};

static size_t split_at(void *state, size_t left)
{
	struct split_at *s = state;
	if (s->done)
		return left;
	s->done = 1;
	return s->first;
}

struct split_rand {
	uint32_t x;
	size_t max_piece;
};

static uint32_t xorshift32(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static size_t split_rand(void *state, size_t left)
{
	struct split_rand *s = state;
	uint32_t r = xorshift32(&s->x);
	if (r % 11 == 0)
		return 0;
	return 1 + (r >> 4) % s->max_piece;
}

/* Each piece gets its own exact-size allocation so the sanitizers catch any read past a chunk. */
static enum sse_result feed_pieces(struct sse_decoder *d, const char *p, size_t n, split_fn next,
	void *state)
{
	enum sse_result rc = SSE_OK;
	while (n > 0 && rc == SSE_OK) {
		size_t k = next(state, n);
		if (k > n)
			k = n;
		char *piece = xmalloc(k);
		memcpy(piece, p, k);
		rc = sse_decoder_feed(d, piece, k);
		free(piece);
		p += k;
		n -= k;
	}
	return rc;
}

/* Decodes p[0..n) in a fresh decoder; the events land in *out (caller releases). */
static enum sse_result decode(const char *p, size_t n, size_t max_event, split_fn next,
	void *state, struct buf *out)
{
	struct collect c;
	collect_init(&c);
	struct sse_decoder d;
	sse_decoder_init(&d, max_event, on_event, &c);
	enum sse_result rc = feed_pieces(&d, p, n, next, state);
	sse_decoder_release(&d);
	*out = c.out;
	return rc;
}

/* ---- fixtures ---- */

static int read_file(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	char chunk[4096];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		if (buf_append(b, chunk, n) < 0)
			rc = -1;
	if (ferror(f))
		rc = -1;
	fclose(f);
	return rc;
}

static int load_fixture(const char *name, const char *ext, struct buf *b)
{
	const char *srcdir = getenv("srcdir");
	struct buf path;
	buf_init(&path, 4096);
	BUF_MUST(buf_printf(&path, "%s/tests/unit/fixtures/sse/%s.%s", srcdir ? srcdir : ".", name, ext));
	buf_init(b, OUT_MAX);
	int rc = read_file(buf_cstr(&path), b);
	if (rc < 0)
		tap_diag("cannot read %s", buf_cstr(&path));
	buf_release(&path);
	return rc;
}

/* Decodes one way and compares with the expected text; returns 1 when they agree. */
static int check_decode(const struct buf *in, const char *want, split_fn next, void *state)
{
	struct buf got;
	enum sse_result rc = decode(in->data, in->len, FIXTURE_MAX_EVENT, next, state, &got);
	int same = rc == SSE_OK && strcmp(buf_cstr(&got), want) == 0;
	buf_release(&got);
	return same;
}

static void test_fixture(const char *name)
{
	struct buf in, want;
	int ok_in = load_fixture(name, "sse", &in) == 0;
	int ok_want = load_fixture(name, "expected", &want) == 0;
	if (!tap_ok(ok_in && ok_want, "%s: fixture and expected events read", name))
		goto out;
	const char *w = buf_cstr(&want);

	struct buf got;
	enum sse_result rc = decode(in.data, in.len, FIXTURE_MAX_EVENT, split_whole, NULL, &got);
	tap_is_int(rc, SSE_OK, "%s: whole: SSE_OK", name);
	tap_is_str(buf_cstr(&got), w, "%s: whole: expected events", name);
	buf_release(&got);

	rc = decode(in.data, in.len, FIXTURE_MAX_EVENT, split_bytes, NULL, &got);
	tap_is_int(rc, SSE_OK, "%s: one byte at a time: SSE_OK", name);
	tap_is_str(buf_cstr(&got), w, "%s: one byte at a time: expected events", name);
	buf_release(&got);

	size_t bad = 0;
	for (size_t i = 0; i <= in.len; i++) {
		struct split_at s = {i, 0};
		if (!check_decode(&in, w, split_at, &s)) {
			if (!bad)
				tap_diag("first failing split at byte %zu", i);
			bad++;
		}
	}
	tap_ok(bad == 0, "%s: all %zu two-piece splits give the expected events", name, in.len + 1);

	static const size_t max_piece[] = {2, 3, 7, 16, 64, 300};
	bad = 0;
	for (uint32_t seed = 1; seed <= 24; seed++) {
		struct split_rand s = {seed * 2654435761u, max_piece[seed % 6]};
		if (!check_decode(&in, w, split_rand, &s)) {
			tap_diag("random split with seed %u differs", (unsigned)seed);
			bad++;
		}
	}
	tap_ok(bad == 0, "%s: 24 seeded random splits (with empty feeds) give the expected events",
		name);
out:
	buf_release(&in);
	buf_release(&want);
}

/* ---- targeted decoder tests ---- */

/* Feeds a NULL-terminated list of C-string chunks (each may be "") to one decoder. */
static enum sse_result feed_list(struct sse_decoder *d, const char *const *chunks)
{
	enum sse_result rc = SSE_OK;
	for (; *chunks && rc == SSE_OK; chunks++)
		rc = sse_decoder_feed(d, *chunks, strlen(*chunks));
	return rc;
}

static void expect_chunks(const char *what, const char *const *chunks, const char *want)
{
	struct collect c;
	collect_init(&c);
	struct sse_decoder d;
	sse_decoder_init(&d, 1024, on_event, &c);
	tap_is_int(feed_list(&d, chunks), SSE_OK, "%s: SSE_OK", what);
	tap_is_str(buf_cstr(&c.out), want, "%s: events", what);
	sse_decoder_release(&d);
	buf_release(&c.out);
}

static void test_cr_across_chunks(void)
{
	expect_chunks("CR | LF across chunks is one line end",
		(const char *const[]){"data: a\r", "\ndata: b\r", "\n\r", "\n", NULL},
		"event=|id=|data=a\\nb\n");
	expect_chunks("CR | empty feed | LF is one line end",
		(const char *const[]){"data: a\r", "", "\n", "", "\n", NULL},
		"event=|id=|data=a\n");
	expect_chunks("CR | CR is two line ends",
		(const char *const[]){"data: a\r", "\r", "data: b\n\n", NULL},
		"event=|id=|data=a\nevent=|id=|data=b\n");
	expect_chunks("CR | other byte starts a new line",
		(const char *const[]){"data: a\r", "data: b\r", "\r", NULL},
		"event=|id=|data=a\\nb\n");
	expect_chunks("line split inside the field name",
		(const char *const[]){"ev", "ent: x\nda", "ta", ": y", "\n", "\n", NULL},
		"event=x|id=|data=y\n");
	/* "é" is C3 A9; "🎉" is F0 9F 8E 89. */
	expect_chunks("UTF-8 sequences split between chunks",
		(const char *const[]){"data: h\xc3", "\xa9llo \xf0\x9f", "\x8e", "\x89\n\n", NULL},
		"event=|id=|data=h\xc3\xa9llo \xf0\x9f\x8e\x89\n");
}

static void test_cap(void)
{
	static const char digits[] =
		"0123456789012345678901234567890123456789012345678901234567890123";
	char line[256];
	struct buf got;
	enum sse_result rc;

	/* "data: " + 58 bytes is a 64-byte line: exactly at max_event. */
	snprintf(line, sizeof line, "data: %.58s\n\n", digits);
	rc = decode(line, strlen(line), 64, split_whole, NULL, &got);
	tap_is_int(rc, SSE_OK, "cap: an event of exactly max_event bytes passes");
	tap_ok(strlen(buf_cstr(&got)) == strlen("event=|id=|data=\n") + 58,
		"cap: and is dispatched whole");
	buf_release(&got);
	rc = decode(line, strlen(line), 64, split_bytes, NULL, &got);
	tap_is_int(rc, SSE_OK, "cap: exactly max_event passes one byte at a time too");
	buf_release(&got);

	snprintf(line, sizeof line, "data: %.59s\n\n", digits);
	rc = decode(line, strlen(line), 64, split_whole, NULL, &got);
	tap_is_int(rc, SSE_TOO_LARGE, "cap: one byte over max_event is SSE_TOO_LARGE");
	tap_is_str(buf_cstr(&got), "", "cap: and nothing is dispatched");
	buf_release(&got);
	rc = decode(line, strlen(line), 64, split_bytes, NULL, &got);
	tap_is_int(rc, SSE_TOO_LARGE, "cap: one byte over, fed one byte at a time: SSE_TOO_LARGE");
	buf_release(&got);

	/* Two data lines: the second line counts on top of the data already held. */
	static const char two_fit[] = "data: 0123456789012345678901234567\n"
				      "data: 0123456789012345678901234567\n\n";
	rc = decode(two_fit, strlen(two_fit), 64, split_whole, NULL, &got);
	tap_is_int(rc, SSE_OK, "cap: two data lines within max_event pass");
	buf_release(&got);
	static const char two_over[] = "data: 012345678901234567890123456789\n"
				       "data: 012345678901234567890123456789\n\n";
	rc = decode(two_over, strlen(two_over), 64, split_whole, NULL, &got);
	tap_is_int(rc, SSE_TOO_LARGE, "cap: data accumulated over lines past max_event fails");
	buf_release(&got);
	static const char ev_over[] = "event: 0123456789012345678901234567890123456789\n"
				      "data: 0123456789012345678\n\n";
	rc = decode(ev_over, strlen(ev_over), 64, split_bytes, NULL, &got);
	tap_is_int(rc, SSE_TOO_LARGE, "cap: the event name counts too");
	buf_release(&got);

	/* The cap is per event: many events, each small, are fine however long the stream. */
	struct buf many;
	buf_init(&many, OUT_MAX);
	for (int i = 0; i < 100; i++)
		BUF_MUST(buf_appends(&many, "event: e\ndata: 01234567890123456789\n\n"));
	rc = decode(many.data, many.len, 64, split_whole, NULL, &got);
	tap_is_int(rc, SSE_OK, "cap: applies per event, not per stream");
	buf_release(&got);
	buf_release(&many);

	/* An unterminated line is bounded too: it fails on the byte that passes max_event. */
	struct collect c;
	collect_init(&c);
	struct sse_decoder d;
	sse_decoder_init(&d, 64, on_event, &c);
	int first_fail = -1;
	for (int i = 0; i < 100 && first_fail < 0; i++)
		if (sse_decoder_feed(&d, "x", 1) != SSE_OK)
			first_fail = i;
	tap_is_int(first_fail, 64, "cap: an endless line fails at byte 65, not before");
	tap_ok(d.line.len <= 64, "cap: the line buffer never held more than max_event");

	sse_decoder_reset(&d);
	static const char comment[] =
		": 0123456789012345678901234567890123456789012345678901234567890123\n";
	rc = sse_decoder_feed(&d, comment, strlen(comment));
	tap_is_int(rc, SSE_TOO_LARGE, "cap: an over-long comment line fails as well");

	sse_decoder_reset(&d);
	rc = sse_decoder_feed(&d, "data: ok\n\n", 10);
	tap_is_int(rc, SSE_OK, "cap: after SSE_TOO_LARGE, reset makes the decoder usable again");
	tap_is_str(buf_cstr(&c.out), "event=|id=|data=ok\n", "cap: and it decodes normally");
	sse_decoder_release(&d);
	buf_release(&c.out);
}

static void test_stop(void)
{
	static const char three[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	struct collect c;
	collect_init(&c);
	c.stop_at = 1;
	struct sse_decoder d;
	sse_decoder_init(&d, 1024, on_event, &c);
	tap_is_int(sse_decoder_feed(&d, three, strlen(three)), SSE_STOPPED,
		"stop: a non-zero callback return gives SSE_STOPPED");
	tap_is_int(c.calls, 1, "stop: processing stops at once (no further events)");

	sse_decoder_reset(&d);
	c.stop_at = 2;
	c.calls = 0;
	buf_reset(&c.out);
	tap_is_int(feed_pieces(&d, three, strlen(three), split_bytes, NULL), SSE_STOPPED,
		"stop: one byte at a time: SSE_STOPPED");
	tap_is_str(buf_cstr(&c.out), "event=|id=|data=1\nevent=|id=|data=2\n",
		"stop: one byte at a time: stops after the second event");

	sse_decoder_reset(&d);
	c.stop_at = 0;
	buf_reset(&c.out);
	tap_is_int(sse_decoder_feed(&d, "data: 4\n\n", 9), SSE_OK, "stop: usable after reset");
	tap_is_str(buf_cstr(&c.out), "event=|id=|data=4\n", "stop: after reset, only new events");
	sse_decoder_release(&d);
	buf_release(&c.out);
}

static void test_reset(void)
{
	struct collect c;
	collect_init(&c);
	struct sse_decoder d;
	sse_decoder_init(&d, 1024, on_event, &c);

	sse_decoder_feed(&d, "event: stale\nid: 9\ndata: stale\ndata: partial li", 47);
	sse_decoder_reset(&d);
	sse_decoder_feed(&d, "data: fresh\n\n", 13);
	tap_is_str(buf_cstr(&c.out), "event=|id=|data=fresh\n",
		"reset: forgets the partial line and the partial event");

	buf_reset(&c.out);
	sse_decoder_feed(&d, "data: x\r", 8);
	sse_decoder_reset(&d);
	/* Without the reset this LF would be eaten as the second half of CRLF. */
	sse_decoder_feed(&d, "\ndata: y\n\n", 10);
	tap_is_str(buf_cstr(&c.out), "event=|id=|data=y\n", "reset: forgets a pending CR");

	buf_reset(&c.out);
	sse_decoder_feed(&d, "data:\n", 6);
	sse_decoder_reset(&d);
	sse_decoder_feed(&d, "\n", 1);
	tap_is_str(buf_cstr(&c.out), "", "reset: forgets that an (empty) data field was seen");
	sse_decoder_release(&d);
	buf_release(&c.out);
}

/* After one pass over a stream, a second pass over it must not grow any buffer: no per-event
 * allocation once the decoder is warm. */
static void test_no_realloc(void)
{
	struct buf in;
	if (!tap_ok(load_fixture("anthropic_tool_use", "sse", &in) == 0, "warm: fixture read")) {
		buf_release(&in);
		return;
	}
	struct collect c;
	collect_init(&c);
	struct sse_decoder d;
	sse_decoder_init(&d, FIXTURE_MAX_EVENT, on_event, &c);
	feed_pieces(&d, in.data, in.len, split_bytes, NULL);
	sse_decoder_reset(&d);
	const struct buf *b[] = {&d.line, &d.event, &d.data, &d.id};
	char *ptr[4];
	size_t cap[4];
	for (int i = 0; i < 4; i++) {
		ptr[i] = b[i]->data;
		cap[i] = b[i]->cap;
	}
	feed_pieces(&d, in.data, in.len, split_bytes, NULL);
	struct split_rand s = {7, 64};
	feed_pieces(&d, in.data, in.len, split_rand, &s);
	int same = 1;
	for (int i = 0; i < 4; i++)
		same = same && ptr[i] == b[i]->data && cap[i] == b[i]->cap;
	tap_ok(same, "warm: a second pass reuses the buffers without reallocating");
	tap_is_int(c.calls, 3 * 13, "warm: every pass dispatched all 13 events");
	sse_decoder_release(&d);
	buf_release(&c.out);
	buf_release(&in);
}

/* ---- encoder ---- */

static void expect_encode(const char *what, const char *event, const char *id, const char *data,
	size_t len, const char *want)
{
	struct buf out;
	buf_init(&out, 4096);
	int rc = sse_encode(&out, event, id, data, len);
	tap_ok(rc == 0 && out.len == strlen(want) && memcmp(buf_cstr(&out), want, out.len) == 0,
		"encode: %s", what);
	if (rc != 0 || strcmp(buf_cstr(&out), want) != 0)
		tap_diag("rc %d; got '%s', want '%s'", rc, buf_cstr(&out), want);
	buf_release(&out);
}

static void test_encode(void)
{
	expect_encode("single line", NULL, NULL, "hello", 5, "data: hello\n\n");
	expect_encode("event and id", "message_start", "42", "{\"a\":1}", 7,
		"event: message_start\nid: 42\ndata: {\"a\":1}\n\n");
	expect_encode("event only", "ping", NULL, "{}", 2, "event: ping\ndata: {}\n\n");
	expect_encode("multi-line with LF", NULL, NULL, "a\nb\nc", 5,
		"data: a\ndata: b\ndata: c\n\n");
	expect_encode("multi-line with CRLF", NULL, NULL, "a\r\nb", 4, "data: a\ndata: b\n\n");
	expect_encode("multi-line with CR", NULL, NULL, "a\rb", 3, "data: a\ndata: b\n\n");
	expect_encode("mixed line ends, CR CR LF", NULL, NULL, "a\r\r\nb\n\rc", 8,
		"data: a\ndata: \ndata: b\ndata: \ndata: c\n\n");
	expect_encode("trailing LF gives an empty last line", NULL, NULL, "a\n", 2,
		"data: a\ndata: \n\n");
	expect_encode("empty payload", NULL, NULL, "", 0, "data: \n\n");
	expect_encode("empty payload from NULL", "e", NULL, NULL, 0, "event: e\ndata: \n\n");
	expect_encode("leading space kept (decoder drops only ours)", NULL, NULL, " x", 2,
		"data:  x\n\n");

	struct buf out;
	buf_init(&out, 4096);
	tap_is_int(sse_encode_comment(&out, "keepalive"), 0, "encode: comment returns 0");
	tap_is_str(buf_cstr(&out), ": keepalive\n\n", "encode: comment bytes");
	buf_reset(&out);
	tap_is_int(sse_encode_comment(&out, ""), 0, "encode: empty comment returns 0");
	tap_is_str(buf_cstr(&out), ": \n\n", "encode: empty comment bytes");

	buf_reset(&out);
	BUF_MUST(buf_appends(&out, "prefix|"));
	sse_encode(&out, "e", NULL, "x", 1);
	tap_is_str(buf_cstr(&out), "prefix|event: e\ndata: x\n\n",
		"encode: appends to what is there");
	buf_release(&out);

	/* A frame that does not fit leaves the buffer exactly as it was. */
	buf_init(&out, 20);
	BUF_MUST(buf_appends(&out, "keep"));
	tap_is_int(sse_encode(&out, "event_name", NULL, "some data", 9), -1,
		"encode: over the buffer's max returns -1");
	tap_is_str(buf_cstr(&out), "keep", "encode: and appends nothing");
	tap_is_int(sse_encode(&out, NULL, NULL, "012345678", 9), -1,
		"encode: over max on the final blank line returns -1");
	tap_is_str(buf_cstr(&out), "keep", "encode: and appends nothing either");
	tap_is_int(sse_encode(&out, NULL, NULL, "01234567", 8), 0,
		"encode: a frame that just fits");
	tap_is_int(out.len, 20, "encode: fills the buffer to its max");
	buf_reset(&out);
	tap_is_int(sse_encode_comment(&out, "0123456789012345678"), -1,
		"encode: comment over max returns -1");
	tap_is_str(buf_cstr(&out), "", "encode: and appends nothing");
	buf_release(&out);

	buf_init(&out, 4096);
	tap_is_int(sse_encode(&out, "a\nb", NULL, "x", 1), -1,
		"encode: LF in the event name refused");
	tap_is_int(sse_encode(&out, NULL, "1\r2", "x", 1), -1, "encode: CR in the id refused");
	tap_is_int(sse_encode_comment(&out, "a\nb"), -1, "encode: LF in a comment refused");
	tap_is_int(out.len, 0, "encode: refused frames append nothing");
	buf_release(&out);
}

struct frame {
	const char *event, *id;
	const char *data;
	size_t len;
	const char *want_data; /* CR and CRLF come back as LF */
	size_t want_len;
};

static void test_roundtrip(void)
{
	/* A string literal and its length, NULs included. */
#define LIT(s) s, sizeof(s) - 1
	static const struct frame frames[] = {
		{"message_start", NULL, LIT("{\"type\":\"message_start\"}"), NULL, 0},
		{NULL, NULL, LIT(""), NULL, 0},
		{NULL, "7", LIT("\n"), NULL, 0},
		{"e", "id-1", LIT("a\nb\n\nc"), NULL, 0},
		{NULL, NULL, LIT(" leading space"), NULL, 0},
		{NULL, NULL, LIT("  two"), NULL, 0},
		{NULL, NULL, LIT(":not a comment"), NULL, 0},
		{NULL, NULL, LIT("data: inner\n\nevent: fake"), NULL, 0},
		{"ping", NULL,
			LIT("h\xc3\xa9llo w\xc3\xb6rld "
			    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89"),
			NULL, 0},
		{NULL, NULL, LIT("nul\0inside"), NULL, 0},
		{"  spaced", " 1", LIT("x"), NULL, 0},
		{NULL, NULL, LIT("a\r\nb\rc\r"), LIT("a\nb\nc\n")},
		{NULL, NULL, LIT("\r\n\r\n"), LIT("\n\n")},
	};
#undef LIT
	size_t n = sizeof frames / sizeof frames[0];
	struct buf stream, want;
	buf_init(&stream, OUT_MAX);
	buf_init(&want, OUT_MAX);
	int enc_ok = 1;
	for (size_t i = 0; i < n; i++) {
		const struct frame *f = &frames[i];
		enc_ok = enc_ok && sse_encode(&stream, f->event, f->id, f->data, f->len) == 0;
		if (i % 3 == 0)
			enc_ok = enc_ok && sse_encode_comment(&stream, "keepalive") == 0;
		serialise(&want, f->event ? f->event : "", f->id ? f->id : "",
			f->want_data ? f->want_data : f->data, f->want_data ? f->want_len : f->len);
	}
	tap_ok(enc_ok, "round trip: %zu frames encoded", n);

	struct buf got;
	tap_is_int(decode(stream.data, stream.len, 1024, split_whole, NULL, &got), SSE_OK,
		"round trip: decodes whole");
	tap_is_str(buf_cstr(&got), buf_cstr(&want), "round trip: whole: same events back");
	buf_release(&got);
	tap_is_int(decode(stream.data, stream.len, 1024, split_bytes, NULL, &got), SSE_OK,
		"round trip: decodes one byte at a time");
	tap_is_str(buf_cstr(&got), buf_cstr(&want), "round trip: bytes: same events back");
	buf_release(&got);
	buf_release(&stream);
	buf_release(&want);
}

int main(void)
{
	for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
		test_fixture(fixtures[i]);
	test_cr_across_chunks();
	test_cap();
	test_stop();
	test_reset();
	test_no_realloc();
	test_encode();
	test_roundtrip();
	return tap_done();
}
