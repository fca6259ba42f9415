/* relay: one upstream call relayed to one client, the only caller of the upstream.
 *
 * Everything every endpoint that calls the model must get right lives here once: the upstream
 * sink, the commit rule (a 2xx answer, or for a route that asks for it the keep-alive deadline),
 * keep-alive comments (on upstream silence and between events that produce no output),
 * noticing a client that left, the upstream's request id (relayed as request-id and
 * x-request-id on every route), every field of the access record the call decides (attempts,
 * time to first token, deltas, tokens, cancelled, error), scrubbing the server's key from every
 * byte it writes, the mapping of an upstream failure before commit, and the one ladder of
 * outcomes after the call. A handler only supplies a table of hooks (struct relay_ops) that
 * turn events or a whole answer into its own format, as lighttpd's gw_backend.c serves
 * mod_fastcgi.c and mod_scgi.c. Usage accounting, limits and metrics hook in here too.
 *
 *   handler: relay_run(&r, rq, &ops, state, &upstream_request)
 *     upstream 2xx (stream) -> commit -> ops.on_commit -> per event: relay bookkeeping,
 *       ops.on_event appends frames to r.frame -> relay_send (scrub, write, flush)
 *     upstream 2xx (whole)  -> ops.on_whole -> relay_answer / relay_answer_json
 *     failure before commit -> ops.on_upstream_error (the dialect's shape) or the error table
 *     end after commit      -> ops.on_finish(failure or NULL) -> its last frame */
#ifndef LLM_RELAY_H
#define LLM_RELAY_H

#include <stddef.h>

#include "anthropic.h"
#include "buf.h"
#include "request.h"
#include "response.h"
#include "sse.h"

struct upstream_request;
struct upstream_result;

enum relay_mode {
	RELAY_WHOLE,  /* one answer, collected up to max_response_bytes, then on_whole */
	RELAY_STREAM, /* SSE events, each handed to on_event as it arrives */
};

/* Why a committed stream ended without its last event, as the client will be told. */
struct relay_failure {
	char type[64];
	char message[512];
};

struct relay;

/* A handler's hooks. Frames a hook appends to relay_frame(r) are sent by the relay (scrubbed, one
 * write and one flush) when the hook returns. */
struct relay_ops {
	enum relay_mode mode;
	enum resp_format fmt;   /* RELAY_STREAM: RESP_SSE or RESP_TEXT */
	int commit_on_deadline; /* RELAY_STREAM: commit once keepalive_interval has passed
				 * without an answer, so that proxies see headers */
	/* Just after commit: the first frame of the body. May be NULL. Returns 0, or -1 to stop. */
	int (*on_commit)(struct relay *r);
	/* RELAY_STREAM: one upstream event, already parsed (ev) and accounted for by the relay.
	 * Returns 0 to go on, -1 to stop (with relay_fail for why, else the error event's). Never
	 * called for an event that is not what its name promises: the relay fails those itself. */
	int (*on_event)(struct relay *r, const struct sse_event *e, const struct anth_event *ev);
	/* RELAY_WHOLE: the 2xx answer (len bytes, NUL-terminated, writable). Sends the answer with
	 * relay_answer or relay_answer_json and returns 0, or returns -1 when the body is not what
	 * was asked for (the relay then answers 502). */
	int (*on_whole)(struct relay *r, char *body, size_t len);
	/* After commit, once: appends the stream's last frame, for fail == NULL a finished answer,
	 * else a failure. May be NULL. */
	void (*on_finish)(struct relay *r, const struct relay_failure *fail);
	/* Before commit, for an upstream error status whose body is the API's error (not 401/403,
	 * about the server's key): answers it in the handler's dialect with that status, the
	 * upstream's error type and message (scrubbed) and its body (scrubbed, len bytes). NULL: the
	 * error table's mapping (request_fail's shapes). Returns 0 or -1. */
	int (*on_upstream_error)(struct relay *r, int status, const char *type, const char *message,
				 const char *body, size_t len);
};

struct relay {
	struct request *rq;
	const struct relay_ops *ops;
	void *arg;               /* the handler's state, for its hooks */
	struct sse_decoder dec;
	struct buf body;         /* RELAY_WHOLE: the answer, up to max_response_bytes */
	struct buf frame;        /* the frames being sent, reused */
	const char *key;         /* the server's key, scrubbed from every byte written */
	double last_write;
	int gone;                /* the client left: nothing more can be written */
	int too_large;           /* the answer, or one of its events, over max_response_bytes */
	int finished;            /* message_stop arrived: the only proof the answer is whole */
	int final_usage;         /* message_delta's usage arrived: output_tokens is the upstream's */
	size_t text_bytes;       /* text the stream's deltas carried, for an estimate without it */
	int failed;              /* fail holds why the stream stopped */
	struct relay_failure fail;
};

/* Calls the upstream with ur and relays its answer to rq's client as ops says, arg being the
 * handler's state. Everything is answered and accounted for on return. */
void relay_run(struct request *rq, const struct relay_ops *ops, void *arg,
	       const struct upstream_request *ur);

/* The frame buffer hooks append to. */
static inline struct buf *relay_frame(struct relay *r)
{
	return &r->frame;
}

/* Records why the stream stopped (the first reason wins), scrubbed before it is cut to size. */
void relay_fail(struct relay *r, const char *type, const char *message);
/* Logs a stop_reason this gateway does not know (a newer API's): it is relayed as it is, never a
 * failure. Stream events are noted by the relay; a whole answer's by its handler. */
void relay_stop_reason(struct relay *r, const char *reason);
/* Records the usage a whole answer reports (stream events are accounted for by the relay). */
void relay_usage(struct relay *r, long input_tokens, long output_tokens);
/* Sends a whole 200 answer, body scrubbed in place. Returns 0, or -1 when the client is gone. */
int relay_answer(struct relay *r, const char *content_type, char *body, size_t len);
/* Sends obj (borrowed) as a whole 200 application/json answer, scrubbed. */
int relay_answer_json(struct relay *r, struct json_object *obj);

#endif
