#include "handlers.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../anthropic.h"
#include "../input.h"
#include "../relay.h"
#include "../upstream.h"

/* How long EventSource waits before it reconnects after a stream ends: a day. */
#define STREAM_RETRY_MS 86400000

struct stream {
	enum resp_format fmt;
	unsigned long next_id;
	long max_tokens;
	int texted; /* a text delta went out */
	char stop_reason[64];
};

/* EventSource reconnects by itself whenever a stream ends, and a reconnect without Last-Event-ID
 * is a new paid call. So every SSE stream gives it an id at once (and one on its last event),
 * and asks it to wait a day before trying: an answer with no text, or one that failed before its
 * first delta, is no exception. Fields without data dispatch no event. */
static int on_commit(struct relay *r)
{
	struct stream *s = r->arg;
	if (s->fmt == RESP_SSE)
		return buf_printf(relay_frame(r), "retry: %d\nid: 0\n\n", STREAM_RETRY_MS);
	return 0;
}

/* Appends one SSE event whose data is obj serialised; takes ownership of obj. */
static int encode_event(struct buf *frame, const char *event, const char *id, struct json_object *obj)
{
	size_t n;
	const char *js = json_object_to_json_string_length(
		obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	int rc = sse_encode(frame, event, id, js, n);
	json_object_put(obj);
	return rc;
}

static int delta(struct stream *s, struct buf *frame, const char *text, size_t len)
{
	if (s->fmt == RESP_TEXT)
		return buf_append(frame, text, len);
	char id[24];
	snprintf(id, sizeof id, "%lu", ++s->next_id);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "text", json_object_new_string_len(text, (int)len));
	return encode_event(frame, "delta", id, o);
}

static int on_event(struct relay *r, const struct sse_event *e, const struct anth_event *ev)
{
	struct stream *s = r->arg;
	char msg[256];
	/* A plain-text body has no comment lines: while the model thinks, the web server reads
	 * nothing after the headers. total_timeout bounds that wait as it bounds a whole answer's,
	 * so the servers' read timeouts (above it) never cut a think. */
	if (s->fmt == RESP_TEXT && !s->texted &&
	    request_now() - r->rq->started > r->rq->srv->cfg->total_timeout) {
		relay_fail(r, "timeout_error", "No text within total_timeout: the model is still "
					       "thinking");
		return -1;
	}
	/* Only text deltas are the answer: thinking, signatures and tool input are parsed as
	 * ANTH_EV_IGNORE and send nothing (the relay keeps an SSE stream alive meanwhile). */
	switch (ev->kind) {
	case ANTH_EV_TEXT:
		s->texted |= ev->text_len > 0;
		return delta(s, relay_frame(r), ev->text, ev->text_len);
	case ANTH_EV_MESSAGE_DELTA:
		if (ev->stop_reason)
			snprintf(s->stop_reason, sizeof s->stop_reason, "%s", ev->stop_reason);
		if (!s->texted && strcmp(s->stop_reason, "max_tokens") == 0) {
			/* An empty answer is no answer: the last event is this error, never done. */
			handlers_no_text(msg, sizeof msg, s->max_tokens, r->rq->srv->cfg->max_tokens_limit);
			relay_fail(r, "invalid_request_error", msg);
		}
		return 0;
	case ANTH_EV_ERROR:
		return -1; /* the relay holds its type and message */
	default:
		return 0;
	}
}

/* The last event: done with the stop reason and usage, or the failure; in plain text the
 * documented last line that tells a cut answer from a finished one. It is short (a failure's type
 * and message are 64 and 512 bytes), and the frame, empty, holds over 4 KiB: it always fits. */
static void on_finish(struct relay *r, const struct relay_failure *f)
{
	struct stream *s = r->arg;
	const struct access_record *acc = &r->rq->acc;
	char id[24];
	snprintf(id, sizeof id, "%lu", ++s->next_id);
	if (s->fmt == RESP_TEXT) {
		if (f)
			BUF_MUST(buf_printf(relay_frame(r), "\n[error: %s: %s]\n", f->type, f->message));
		return;
	}
	struct json_object *o = json_object_new_object();
	struct json_object *sub = json_object_new_object();
	if (f) {
		json_object_object_add(sub, "type", json_object_new_string(f->type));
		json_object_object_add(sub, "message", json_object_new_string(f->message));
		json_object_object_add(o, "error", sub);
	} else {
		json_object_object_add(o, "stop_reason", json_object_new_string(s->stop_reason));
		json_object_object_add(sub, "input_tokens", json_object_new_int64(acc->input_tokens));
		json_object_object_add(sub, "output_tokens", json_object_new_int64(acc->output_tokens));
		json_object_object_add(o, "usage", sub);
	}
	BUF_MUST(encode_event(relay_frame(r), f ? "error" : "done", id, o));
}

static const struct relay_ops sse_ops = {
	.mode = RELAY_STREAM,
	.fmt = RESP_SSE,
	.commit_on_deadline = 1,
	.on_commit = on_commit,
	.on_event = on_event,
	.on_finish = on_finish,
};

static const struct relay_ops text_ops = {
	.mode = RELAY_STREAM,
	.fmt = RESP_TEXT,
	.commit_on_deadline = 1,
	.on_commit = on_commit,
	.on_event = on_event,
	.on_finish = on_finish,
};

static int wants_sse(struct request *rq)
{
	const char *accept = io_param(rq->io, "HTTP_ACCEPT");
	return accept && strstr(accept, "text/event-stream");
}

/* GET or POST /stream: the answer as it is generated, as plain text or as our SSE events. */
void handle_stream(struct request *rq)
{
	const struct config *cfg = rq->srv->cfg;
	/* EventSource reconnects by itself after the stream ends: that would buy a second answer. */
	if (io_param(rq->io, "HTTP_LAST_EVENT_ID")) {
		response_send(&rq->resp, 204, "text/plain", "", 0);
		return;
	}
	if (handlers_check_origin(rq) < 0)
		return;
	struct input in;
	const char *msg = NULL;
	enum err_kind e = input_parse(io_param(rq->io, "CONTENT_TYPE"), rq->body.data, rq->body.len,
				      io_param(rq->io, "QUERY_STRING"), INPUT_ALLOW_MESSAGES, &in, &msg);
	if (e != ERR_OK) {
		request_fail(rq, e, msg);
		return;
	}
	/* Over plain HTTP a browser marks neither an <img> nor a <script> GET with Origin or
	 * Sec-Fetch-Site, so the origin check passes them; they accept any type or image types,
	 * and EventSource always sends text/event-stream. (After the input checks: a malformed
	 * request is told what is wrong with it first.) */
	if (strcmp(rq->method, "POST") != 0 && !wants_sse(rq)) {
		input_release(&in);
		request_fail(rq, ERR_NOT_ACCEPTABLE,
			     "GET /stream answers only with Server-Sent Events: send Accept: text/event-stream");
		return;
	}
	struct anth_request ar = {
		.model = cfg->model,
		.max_tokens = request_max_tokens(rq, in.max_tokens),
		.text = in.text,
		.text_len = in.text_len,
		.messages = in.messages,
		.stream = 1,
		.info = config_model_info(cfg, cfg->model, strlen(cfg->model)),
		.thinking = cfg->stream_thinking,
	};
	size_t body_len;
	char *body = anthropic_request_body(&ar, &body_len);
	input_release(&in);

	struct stream s = {.fmt = wants_sse(rq) ? RESP_SSE : RESP_TEXT, .max_tokens = ar.max_tokens};
	struct upstream_request ur = {
		.path = "/v1/messages", .body = body, .body_len = body_len, .stream = 1};
	relay_run(rq, s.fmt == RESP_SSE ? &sse_ops : &text_ops, &s, &ur);
	free(body);
}
