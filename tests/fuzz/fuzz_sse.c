/* libFuzzer target for the SSE decoder. The first input byte chooses a chunking; the rest is the
 * stream. Decoding it whole and in pieces must give the same events and the same result, and
 * every event, encoded again with sse_encode and decoded, must come back unchanged. */

#include "sse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENT ((size_t)64 << 10)
#define RECORD_MAX ((size_t)1 << 30)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Length-prefixed so that no two different event lists serialise alike. */
static void put(struct buf *b, const char *p, size_t n)
{
	if (buf_append(b, &n, sizeof n) < 0 || buf_append(b, p, n) < 0)
		abort();
}

struct record {
	struct buf events; /* serialised events, for comparison */
	struct buf frames; /* the same events encoded again, when reencode is set */
	int reencode;
};

static int on_event(void *arg, const struct sse_event *ev)
{
	struct record *r = arg;
	/* Line ends only ever separate lines, so none can survive into a field; data lines are
	 * joined with LF alone. */
	if (ev->data[ev->data_len] != '\0' || memchr(ev->data, '\r', ev->data_len) ||
	    strpbrk(ev->event, "\r\n") || strpbrk(ev->id, "\r\n"))
		abort();
	put(&r->events, ev->event, strlen(ev->event));
	put(&r->events, ev->id, strlen(ev->id));
	put(&r->events, ev->data, ev->data_len);
	if (r->reencode && sse_encode(&r->frames, *ev->event ? ev->event : NULL,
				    *ev->id ? ev->id : NULL, ev->data, ev->data_len) < 0)
		abort();
	return 0;
}

static enum sse_result run(const char *p, size_t n, size_t max_event, size_t first, size_t step,
	struct record *r)
{
	struct sse_decoder d;
	sse_decoder_init(&d, max_event, on_event, r);
	enum sse_result rc = sse_decoder_feed(&d, p, first);
	for (size_t off = first; rc == SSE_OK && off < n; off += step) {
		size_t k = n - off < step ? n - off : step;
		/* A copy of exactly k bytes, so a read past the chunk is caught by ASan. */
		char *piece = xmalloc(k);
		memcpy(piece, p + off, k);
		rc = sse_decoder_feed(&d, piece, k);
		free(piece);
	}
	sse_decoder_release(&d);
	return rc;
}

static int same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned char sel = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;

	struct record whole = {.reencode = 1}, split = {.reencode = 0}, again = {.reencode = 0};
	buf_init(&whole.events, RECORD_MAX);
	buf_init(&whole.frames, RECORD_MAX);
	buf_init(&split.events, RECORD_MAX);
	buf_init(&again.events, RECORD_MAX);

	enum sse_result rc_whole = run(p, n, MAX_EVENT, n, 1, &whole);
	enum sse_result rc_split = run(p, n, MAX_EVENT, n * sel / 255, 1 + sel % 13, &split);
	if (rc_whole != rc_split || !same(&whole.events, &split.events))
		abort();

	/* A re-encoded line is at most a few bytes longer than the one it came from. */
	size_t flen = whole.frames.len;
	enum sse_result rc_again = run(whole.frames.data, flen, 2 * MAX_EVENT, flen, 1, &again);
	if (rc_again != SSE_OK || !same(&whole.events, &again.events))
		abort();

	buf_release(&whole.events);
	buf_release(&whole.frames);
	buf_release(&split.events);
	buf_release(&again.events);
	return 0;
}
