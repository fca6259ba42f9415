/* response: what goes back to the web server for one request.
 *
 * A response commits when its first byte is written to the web server: until then the status and
 * headers can still change (and an upstream retry is still possible); after it they are final, and
 * a failure can only be reported inside the body (an SSE error event, a last text line). A failed
 * write or flush means the client is gone; every later call then fails at once. */
#ifndef LLM_RESPONSE_H
#define LLM_RESPONSE_H

#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "io.h"

struct json_object;

enum resp_format {
	RESP_NONE = 0,
	RESP_JSON,
	RESP_TEXT, /* text/plain; charset=utf-8, streamed */
	RESP_SSE,  /* text/event-stream, our own events */
};

struct response {
	struct io *io;
	enum dialect dialect;
	int head_only; /* HEAD request: headers only */
	int committed;
	int client_gone;
	int status; /* the status sent (or to be sent) */
	enum resp_format format;
	struct buf headers; /* extra header lines, "Name: value\r\n" each */
	struct buf frame;   /* scratch for SSE frames and JSON text, reused */
	unsigned flushes;
	size_t body_bytes;
};

/* io is borrowed for the response's lifetime. */
void response_init(struct response *r, struct io *io, enum dialect d);
void response_release(struct response *r);

/* Adds a header before commit. The value must not contain CR or LF (it is dropped if it does).
 * Returns 0, or -1 when already committed. */
int response_add_header(struct response *r, const char *name, const char *value);

/* Sends a whole response (status, headers, Content-Length, body) and flushes. Returns 0 or -1. */
int response_send(struct response *r, int status, const char *content_type, const char *body,
		  size_t len);
/* Serialises obj (borrowed) and sends it as application/json. */
int response_json(struct response *r, int status, struct json_object *obj);
/* Sends an error in the response's dialect, unless already committed (then returns -1 and writes
 * nothing: the caller reports the failure in the stream's own format). message may be NULL. */
int response_error(struct response *r, enum err_kind kind, const char *message);

/* Commits a streamed response: status line, format headers (no Content-Length, no-cache,
 * X-Accel-Buffering: no) and the extra headers. For SSE the first body bytes are a comment line,
 * flushed, because Apache and nginx hold the headers back until body bytes arrive. */
int response_begin(struct response *r, int status, enum resp_format fmt);
/* Queues body bytes (no flush). Returns 0, or -1 when the client is gone. */
int response_write(struct response *r, const char *p, size_t n);
/* Sends what is queued. Every call counts as one flush. Returns 0, or -1 when the client is gone. */
int response_flush(struct response *r);

#endif
