/* sse: an incremental Server-Sent Events decoder and a frame encoder (pure; no I/O).
 *
 * The decoder follows the WHATWG event-stream algorithm: bytes may be split anywhere (inside a
 * line, between CR and LF, inside a UTF-8 sequence); lines end in LF, CRLF or a lone CR; lines
 * starting with ':' are comments; "data" lines of one event are joined with '\n'; "event", "id",
 * "retry" are recognised and other fields ignored; an empty line dispatches the event if it has
 * data or an event name. A trailing event without its blank line is not dispatched. One event
 * (all of its field text) is capped at max_event bytes: past that sse_decoder_feed fails. */
#ifndef LLM_SSE_H
#define LLM_SSE_H

#include <stddef.h>

#include "buf.h"

struct sse_event {
	const char *event; /* "" when the event had no event: field (the spec's "message") */
	const char *data;  /* joined data lines, NUL-terminated; may contain '\n' */
	size_t data_len;
	const char *id; /* "" when none */
};

/* Called once per dispatched event; the pointers are valid only during the call.
 * Return 0 to go on, non-zero to stop: sse_decoder_feed then returns SSE_STOPPED. */
typedef int (*sse_event_fn)(void *arg, const struct sse_event *ev);

enum sse_result {
	SSE_OK = 0,
	SSE_TOO_LARGE = -1, /* one event grew past max_event */
	SSE_STOPPED = -2,   /* the callback asked to stop */
};

struct sse_decoder {
	sse_event_fn on_event;
	void *arg;
	struct buf line; /* the current, incomplete line */
	struct buf event;
	struct buf data;
	struct buf id;
	int pending_cr; /* last chunk ended in CR: an LF at the start of the next one belongs to it */
	int has_data;   /* a data: field was seen in the current event */
	size_t max_event;
};

void sse_decoder_init(struct sse_decoder *d, size_t max_event, sse_event_fn fn, void *arg);
/* Feeds bytes; events are dispatched from inside the call. After an error, reset before reuse. */
enum sse_result sse_decoder_feed(struct sse_decoder *d, const char *p, size_t n);
/* Forgets any partial line or event (for reuse on the next upstream response). */
void sse_decoder_reset(struct sse_decoder *d);
void sse_decoder_release(struct sse_decoder *d);

/* Appends one SSE frame to out: optional "event:" and "id:" lines, then the payload as one
 * "data:" line per line of data (CR, LF and CRLF in data all start a new data: line, so a payload
 * can never end the frame early), then the blank line. event/id may be NULL. Returns 0, or -1 (appending nothing) when
 * out's max is exceeded or event/id contain CR or LF (they would inject fields). */
int sse_encode(struct buf *out, const char *event, const char *id, const char *data, size_t len);
/* Appends a comment line (": text\n\n"). Returns -1 (appending nothing) when text contains CR or
 * LF or out's max is exceeded. */
int sse_encode_comment(struct buf *out, const char *text);

#endif
