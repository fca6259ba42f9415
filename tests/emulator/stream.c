/* stream: see stream.h. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

#define SPLIT_GAP_MS 1 /* pause between split pieces */

/* The steps an answer goes through; streams use all, JSON answers SLOW/HEAD/FLUSH. */
enum phase { PH_SLOW, PH_HEAD, PH_TTFT, PH_DELTA, PH_GAP, PH_TAIL, PH_END, PH_FLUSH, PH_HANG };
enum ending { END_COMPLETED, END_BROKEN, END_ERRORED, END_CUT, END_ABORTED };

/* An answer to POST /v1/messages that takes time: everything but plain errors. */
struct job {
	enum fault fault;
	long arg;
	bool stream, started, pieces;
	enum phase ph;
	enum ending end_how;
	long delay_ms, ttft_ms, gap_ms;
	char id[ID_MAX + 1];
	unsigned gen;
	struct message msg;
	size_t sent; /* deltas out so far */
	const char *nl;
	struct obuf body; /* JSON answers: the whole body, built up front */
	struct obuf pend; /* drip/split: bytes still to go out piece by piece */
	unsigned piece_seq;
};

static bool job_live(const struct job *j)
{
	return j->gen == stats.gen;
}

static struct idstat *job_stat(const struct job *j)
{
	return j->id[0] && job_live(j) ? stats_id(j->id, false) : NULL;
}

static void note_first_delta(const struct job *j)
{
	struct idstat *s = job_stat(j);

	if (s) {
		s->first_delta_at = wall_now();
		s->has_first = true;
	}
}

static void job_free(struct job *j)
{
	message_free(&j->msg);
	obuf_free(&j->body);
	obuf_free(&j->pend);
	free(j);
}

/* Accounts for how the answer ended and releases it. */
static void job_end(struct conn *c, enum ending how)
{
	struct job *j = c->job;
	struct idstat *s = job_stat(j);

	if (j->started)
		stats.active_streams--;
	if (job_live(j)) {
		switch (how) {
		case END_COMPLETED:
			stats.t.messages_ok++;
			if (j->stream)
				stats.t.streams_completed++;
			if (s)
				s->completed++;
			break;
		case END_ABORTED:
			if (j->stream)
				stats.t.streams_aborted++;
			if (s)
				s->aborted++;
			break;
		case END_CUT:
			if (j->stream)
				stats.t.streams_cut++;
			break;
		case END_ERRORED:
			stats.t.streams_errored++;
			break;
		case END_BROKEN:
			break;
		}
	}
	conn_timer_clear(c);
	job_free(j);
	c->job = NULL;
}

/* Body bytes of an answer: queued for piecewise sending (drip/split) or sent now. */
static void job_emit(struct conn *c, const char *d, size_t n)
{
	struct job *j = c->job;

	if (j->pieces)
		obuf_add(&j->pend, d, n);
	else
		conn_body(c, j->stream, d, n);
}

/* One SSE event, with the line ending the fault asks for. */
static void emit_event(struct conn *c, const char *name, const char *data, size_t n)
{
	struct job *j = c->job;
	struct obuf e = { 0 };

	obuf_fmt(&e, "event: %s%s", name, j->nl);
	if (j->fault == F_UNKNOWN_EVENT && strcmp(name, "content_block_delta") == 0)
		obuf_fmt(&e, ": a comment line inside an event%s", j->nl);
	obuf_str(&e, "data: ");
	obuf_add(&e, data, n);
	obuf_str(&e, j->nl);
	obuf_str(&e, j->nl);
	job_emit(c, e.p, e.len);
	obuf_free(&e);
}

static void emit_lit(struct conn *c, const char *name, const char *data)
{
	emit_event(c, name, data, strlen(data));
}

static void emit_json(struct conn *c, const char *name, json_object *o) /* consumes o */
{
	size_t n;
	const char *s = json_object_to_json_string_length(o, JFLAGS, &n);

	emit_event(c, name, s, n);
	json_object_put(o);
}

static void emit_future_event(struct conn *c)
{
	emit_lit(c, "future_event",
		 "{\"type\":\"future_event\",\"note\":\"clients must ignore unknown event types\"}");
}

static bool wait_ms(struct conn *c, long ms)
{
	if (ms <= 0)
		return false;
	conn_timer_set(c, ms);
	return true;
}

/* cut:N: drop the connection now, without finishing the body. */
static bool job_cut(struct conn *c)
{
	c->st = C_CLOSING;
	job_end(c, END_CUT);
	conn_request_done(c);
	return true;
}

/* Whether cut:N / error-mid:N is due now (N is capped at the answer length). */
static bool fault_due(const struct job *j)
{
	size_t at;

	if (j->fault != F_CUT && j->fault != F_ERROR_MID)
		return false;
	at = (size_t)j->arg < j->msg.ndeltas ? (size_t)j->arg : j->msg.ndeltas;
	return j->sent == at;
}

static bool text_block(const struct job *j)
{
	return message_has_text(&j->msg);
}

static void emit_block_start(struct conn *c, int index, const char *type)
{
	json_object *o = jobj(), *b = jobj();

	jset(b, "type", jstr(type));
	jset(b, type, jstr(""));
	if (strcmp(type, "thinking") == 0)
		jset(b, "signature", jstr(""));
	jset(o, "type", jstr("content_block_start"));
	jset(o, "index", jint(index));
	jset(o, "content_block", b);
	emit_json(c, "content_block_start", o);
}

static void emit_delta(struct conn *c, int index, const char *type, const char *key,
		       const char *text, size_t n)
{
	json_object *o = jobj(), *d = jobj();

	jset(o, "type", jstr("content_block_delta"));
	jset(o, "index", jint(index));
	jset(d, "type", jstr(type));
	jset(d, key, json_object_new_string_len(text, (int)n));
	jset(o, "delta", d);
	emit_json(c, "content_block_delta", o);
}

/* One tool_use block: its start (id, name, empty input), its input in pieces of input_json_delta
 * (one event each, as the API streams it), its stop. */
static void emit_tool(struct conn *c, int index, const struct tool_call *t)
{
	json_object *o = jobj(), *b = jobj();
	char stop[64];
	size_t n = strlen(t->input);

	jset(b, "type", jstr("tool_use"));
	jset(b, "id", jstr(t->id));
	jset(b, "name", jstr(t->name));
	jset(b, "input", jobj());
	jset(o, "type", jstr("content_block_start"));
	jset(o, "index", jint(index));
	jset(o, "content_block", b);
	emit_json(c, "content_block_start", o);
	for (size_t off = 0, k; off < n; off += k) {
		k = message_piece_len(t->input + off, n - off);
		emit_delta(c, index, "input_json_delta", "partial_json", t->input + off, k);
	}
	snprintf(stop, sizeof stop, "{\"type\":\"content_block_stop\",\"index\":%d}", index);
	emit_lit(c, "content_block_stop", stop);
}

/* The thinking block, whole, before the text: its text (none when omitted), its signature. */
static void emit_thinking(struct conn *c)
{
	const struct message *m = &c->job->msg;

	emit_block_start(c, 0, "thinking");
	if (*m->thinking)
		emit_delta(c, 0, "thinking_delta", "thinking", m->thinking, strlen(m->thinking));
	emit_delta(c, 0, "signature_delta", "signature", m->signature, strlen(m->signature));
	emit_lit(c, "content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}");
}

static void stream_head(struct conn *c)
{
	static const char *const garbage[] = {
		"this is not an event stream\n",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"del\n\n",
		"data: \xff\xfe not json at all }}}\n\n",
	};
	struct job *j = c->job;
	json_object *start;

	conn_head(c, 200, "text/event-stream; charset=utf-8", -1, NULL);
	conn_flush(c);
	j->started = true;
	stats.active_streams++;
	if (job_live(j))
		stats.t.streams_started++;
	if (j->fault == F_GARBAGE) {
		for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
			job_emit(c, garbage[i], strlen(garbage[i]));
		j->end_how = END_BROKEN;
		return;
	}
	start = jobj();
	jset(start, "type", jstr("message_start"));
	jset(start, "message", message_json(&j->msg, true));
	emit_json(c, "message_start", start);
	if (j->msg.thinking)
		emit_thinking(c);
	if (text_block(j))
		emit_block_start(c, j->msg.thinking ? 1 : 0, "text");
	emit_lit(c, "ping", "{\"type\": \"ping\"}");
	if (j->fault == F_UNKNOWN_EVENT) {
		static const char comment[] = ": a comment between events\n\n";

		job_emit(c, comment, sizeof comment - 1);
		emit_future_event(c);
	}
}

static bool stream_delta(struct conn *c)
{
	struct job *j = c->job;
	const size_t *doff = j->msg.doff;

	if (fault_due(j)) {
		if (j->fault == F_CUT)
			return job_cut(c);
		emit_lit(c, "error", "{\"type\":\"error\",\"error\":"
				      "{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}");
		j->end_how = END_ERRORED;
		j->ph = PH_END;
		return false;
	}
	if (j->sent == j->msg.ndeltas) {
		j->ph = PH_TAIL;
		return false;
	}
	emit_delta(c, j->msg.thinking ? 1 : 0, "text_delta", "text", j->msg.text + doff[j->sent],
		   doff[j->sent + 1] - doff[j->sent]);
	if (j->sent++ == 0)
		note_first_delta(j);
	j->ph = PH_GAP;
	return false;
}

static void stream_tail(struct conn *c)
{
	struct job *j = c->job;
	json_object *o = jobj(), *d = jobj();

	if (j->fault == F_UNKNOWN_EVENT)
		emit_future_event(c);
	if (text_block(j)) {
		json_object *stop = jobj();

		jset(stop, "type", jstr("content_block_stop"));
		jset(stop, "index", jint(j->msg.thinking ? 1 : 0));
		emit_json(c, "content_block_stop", stop);
	}
	for (size_t i = 0; i < j->msg.ncalls; i++)
		emit_tool(c, (j->msg.thinking ? 1 : 0) + (text_block(j) ? 1 : 0) + (int)i,
			  &j->msg.calls[i]);
	jset(d, "stop_reason", jstr(j->msg.stop_reason));
	jset(d, "stop_sequence", j->msg.stop_seq ? jstr(j->msg.stop_seq) : NULL);
	jset(o, "type", jstr("message_delta"));
	jset(o, "delta", d);
	jset(o, "usage", message_usage_json(&j->msg, j->msg.out_tok, false));
	emit_json(c, "message_delta", o);
	emit_lit(c, "message_stop", "{\"type\":\"message_stop\"}");
	j->end_how = END_COMPLETED;
}

/* One step of a stream; true when it must wait (timer, flush) or has ended. */
static bool stream_phase(struct conn *c)
{
	struct job *j = c->job;

	switch (j->ph) {
	case PH_SLOW:
		j->ph = PH_HEAD;
		return wait_ms(c, j->fault == F_SLOW_FIRST ? j->arg : 0);
	case PH_HEAD:
		stream_head(c);
		j->ph = j->fault == F_GARBAGE ? PH_END : PH_TTFT;
		return false;
	case PH_TTFT:
		j->ph = PH_DELTA;
		return wait_ms(c, j->ttft_ms);
	case PH_DELTA:
		return stream_delta(c);
	case PH_GAP:
		j->ph = PH_DELTA;
		return wait_ms(c, fault_due(j) || j->sent == j->msg.ndeltas ? 0 : j->delay_ms);
	case PH_TAIL:
		stream_tail(c);
		j->ph = PH_END;
		return false;
	case PH_END:
		/* Reached only once pieces are out, so the terminator really is last. */
		conn_add(c, "0\r\n\r\n", 5);
		conn_flush(c);
		j->ph = PH_FLUSH;
		return true;
	case PH_FLUSH:
	case PH_HANG:
		return true;
	}
	return true;
}

/* A JSON answer: wait as long as the stream would take, then send it whole. */
static bool json_phase(struct conn *c)
{
	struct job *j = c->job;
	size_t n;

	switch (j->ph) {
	case PH_SLOW:
		j->ph = PH_HEAD;
		return wait_ms(c, (j->fault == F_SLOW_FIRST ? j->arg : 0) + j->ttft_ms +
					  (long)j->msg.ndeltas * j->delay_ms);
	case PH_HEAD:
		n = obuf_pending(&j->body);
		conn_head(c, 200, "application/json", (long long)n, NULL);
		if (j->fault == F_CUT) {
			conn_body(c, false, j->body.p, n / 2);
			return job_cut(c);
		}
		job_emit(c, j->body.p, n);
		if (j->fault == F_GARBAGE || j->fault == F_TRUNC_JSON) {
			j->end_how = END_BROKEN;
		} else {
			j->end_how = END_COMPLETED;
			note_first_delta(j);
		}
		j->ph = PH_FLUSH;
		return false;
	default:
		return true;
	}
}

/* drip: one byte; split: odd sizes, always cutting multi-byte UTF-8 characters. */
static size_t piece_len(struct job *j, const char *p, size_t n)
{
	static const size_t sizes[] = { 1, 3, 7, 13, 29, 61 };
	size_t want;

	if (j->fault == F_DRIP)
		return 1;
	want = sizes[j->piece_seq++ % (sizeof sizes / sizeof sizes[0])];
	if (want > n)
		want = n;
	for (size_t i = 0; i < want; i++)
		if (((unsigned char)p[i] & 0xC0) == 0xC0) /* a lead byte: end the piece after it */
			return i + 1;
	return want;
}

void stream_step(struct conn *c)
{
	for (;;) {
		struct job *j = c->job;

		if (c->dead || !j)
			return;
		if (obuf_pending(&j->pend)) {
			const char *p = j->pend.p + j->pend.off;
			size_t n = piece_len(j, p, obuf_pending(&j->pend));

			conn_body(c, j->stream, p, n);
			obuf_consume(&j->pend, n);
			if (wait_ms(c, j->gap_ms))
				return;
			continue;
		}
		if (j->stream ? stream_phase(c) : json_phase(c))
			return;
	}
}

bool stream_finish(struct conn *c)
{
	struct job *j = c->job;

	if (!j || j->ph != PH_FLUSH || obuf_pending(&j->pend) || obuf_pending(&c->out))
		return false;
	job_end(c, j->end_how);
	conn_request_done(c);
	return true;
}

void stream_abort(struct conn *c)
{
	job_end(c, END_ABORTED);
}

/* A JSON answer's body, built up front: the Message, or what the fault makes of it. */
static void json_body(struct job *j)
{
	json_object *m;
	size_t n;
	const char *s;

	if (j->fault == F_TRUNC_JSON) {
		obuf_str(&j->body, "{\"id\":\"msg_x\",\"type\":\"message\","
				  "\"content\":[{\"type\":\"text\",\"text\":\"abc");
		return;
	}
	if (j->fault == F_GARBAGE) {
		obuf_str(&j->body, "{\"type\":\"message\",\"content\":[\xff\xfe<<garbage>>");
		return;
	}
	m = message_json(&j->msg, false);
	s = json_object_to_json_string_length(m, JFLAGS, &n);
	obuf_add(&j->body, s, n);
	json_object_put(m);
}

void stream_start(struct conn *c, const struct delivery *d, struct message *m)
{
	struct job *j = xcalloc(1, sizeof *j);
	enum fault f = d->fault;

	j->stream = d->stream;
	j->fault = f;
	j->arg = d->arg;
	j->gen = stats.gen;
	snprintf(j->id, sizeof j->id, "%s", d->id);
	j->delay_ms = d->delay_ms;
	j->ttft_ms = d->ttft_ms;
	j->msg = *m; /* the members are the job's now */
	memset(m, 0, sizeof *m);
	j->nl = f == F_CRLF ? "\r\n" : f == F_CR ? "\r" : "\n";
	j->pieces = f == F_DRIP || f == F_SPLIT;
	j->gap_ms = f == F_DRIP ? d->arg : SPLIT_GAP_MS;
	if (!j->stream)
		json_body(j);
	j->ph = f == F_HANG ? PH_HANG : PH_SLOW;
	c->job = j;
	c->rq.status = f == F_HANG ? 0 : 200;
	stream_step(c);
}
