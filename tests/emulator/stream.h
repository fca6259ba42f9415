/*
 * stream: an answer to POST /v1/messages that takes time, from the first
 * byte to the last.  Owns the answer in progress (struct job, c->job): the
 * SSE event sequence (message_start, content_block_start, ping, the deltas
 * at their times, content_block_stop, message_delta, message_stop), the
 * delayed JSON answer, what the faults do to either (slow-first, cut,
 * error-mid, garbage, truncated-json, drip, split, crlf, cr, unknown-event,
 * hang), and the statistics of how each answer ended.  The Messages API
 * module builds the message and chooses the fault; the HTTP module calls back
 * on timers, on flushed output and when the client leaves.  Depends on conn,
 * message, faults, stats and util.
 */
#ifndef EMU_STREAM_H
#define EMU_STREAM_H

#include "conn.h"
#include "faults.h"
#include "message.h"

/* How the Messages API wants an answer delivered. */
struct delivery {
	bool stream;            /* SSE events, else one JSON body */
	enum fault fault;       /* the fault applied, F_NONE if none */
	long arg;               /* its argument */
	long delay_ms, ttft_ms; /* between deltas; before the first */
	const char *id;         /* statistics id, "" for none */
};

/* Starts the answer on c (c->job), taking m's members; it runs until it waits. */
void stream_start(struct conn *c, const struct delivery *d, struct message *m);
/* Advances the answer until it has to wait for a timer or for the socket. */
void stream_step(struct conn *c);
/* Ends the answer once all its bytes are with the kernel; true if it did. */
bool stream_finish(struct conn *c);
/* The client left before the answer was complete. */
void stream_abort(struct conn *c);

#endif
