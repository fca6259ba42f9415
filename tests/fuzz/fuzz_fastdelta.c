/* libFuzzer target for fastdelta, differential: whenever fastdelta_parse takes an event, the
 * general json-c reading of it (anthropic_parse_event_tree, what anthropic_parse_event falls back
 * to) must give the same kind, index and text bytes, and the strict scan (jscan_check) must take
 * it too: the fast path may refuse more, never differ or accept more. anthropic_parse_event must
 * give the same answer as well. The input is tried twice: whole, as one event's data, and as an
 * SSE stream whose content_block_delta events are each tried (real streams are in the corpus). */

#include "anthropic.h"
#include "fastdelta.h"
#include "jscan.h"
#include "sse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVENT ((size_t)64 << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const struct anth_event *a, long long index, const char *text, size_t n)
{
	if (a->kind != ANTH_EV_TEXT || a->index != index || a->text_len != n ||
	    memcmp(a->text, text, n) != 0) {
		fprintf(stderr, "fastdelta differs: kind %d, index %lld (fast %lld), length %zu (fast %zu)\n",
			a->kind, a->index, index, a->text_len, n);
		abort();
	}
}

static void check(const char *name, const char *p, size_t n)
{
	/* A copy of exactly n bytes, so a read past the data is caught by ASan. */
	char *copy = xmalloc(n ? n : 1);
	memcpy(copy, p, n);
	long long index;
	const char *t;
	size_t len;
	if (fastdelta_parse(copy, n, &index, &t, &len)) {
		/* Its own copy: the calls below may reuse fastdelta's scratch. */
		char *text = xmalloc(len ? len : 1);
		memcpy(text, t, len);
		struct anth_event ev;
		anthropic_parse_event_tree("content_block_delta", copy, n, &ev);
		same(&ev, index, text, len);
		anthropic_event_release(&ev);
		anthropic_parse_event("content_block_delta", copy, n, &ev);
		same(&ev, index, text, len);
		anthropic_event_release(&ev);
		if (jscan_check(copy, n, NULL) != JSCAN_OK)
			abort();
		free(text);
	} else if (strcmp(name, "content_block_delta") == 0) {
		/* Refused: anthropic_parse_event is the general reading, root and all. */
		struct anth_event ev;
		anthropic_parse_event(name, copy, n, &ev);
		if (ev.kind != ANTH_EV_IGNORE && ev.kind != ANTH_EV_INVALID && !ev.root)
			abort();
		anthropic_event_release(&ev);
	}
	free(copy);
}

static int on_event(void *arg, const struct sse_event *e)
{
	(void)arg;
	check(e->event, e->data, e->data_len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check("content_block_delta", (const char *)data, size);
	struct sse_decoder d;
	sse_decoder_init(&d, MAX_EVENT, on_event, NULL);
	(void)sse_decoder_feed(&d, (const char *)data, size);
	sse_decoder_release(&d);
	return 0;
}
