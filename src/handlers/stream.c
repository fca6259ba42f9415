#include "handlers.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../anthropic.h"
#include "../input.h"
#include "../request.h"
#include "../sse.h"
#include "../upstream.h"

/* How long EventSource waits before it reconnects after a stream ends: a day. */
#define STREAM_RETRY_MS 86400000

/* Why a committed stream did not finish, as the client will see it. */
struct failure {
	int set;
	char type[64];
	char message[512];
};

struct stream {
	struct request *rq;
	enum resp_format fmt;
	struct sse_decoder dec;
	struct buf frame; /* one outgoing frame, reused per delta */
	unsigned long next_id;
	double last_write;
	int finished; /* message_stop arrived: the only proof the answer is whole */
	int gone;     /* a write or flush failed: the client left */
	char stop_reason[64];
	struct failure fail;
};

/* Copies src into dst after scrubbing the key from it: scrubbing after the cut would miss a key
 * that the cut leaves half in place. Both the upstream's error type and message are relayed. */
static void keep_scrubbed(char *dst, size_t cap, const char *src, const char *key)
{
	char *copy = xstrdup(src);
	anthropic_scrub(copy, key);
	snprintf(dst, cap, "%s", copy);
	free(copy);
}

static void fail(struct stream *s, const char *type, const char *message)
{
	if (s->fail.set)
		return;
	s->fail.set = 1;
	keep_scrubbed(s->fail.type, sizeof s->fail.type, type, s->rq->srv->cfg->api_key);
	keep_scrubbed(s->fail.message, sizeof s->fail.message, message, s->rq->srv->cfg->api_key);
}

/* One write and one flush per frame: never coalesce, never wait for more. */
static int send_frame(struct stream *s)
{
	struct response *r = &s->rq->resp;
	if (response_write(r, s->frame.data, s->frame.len) < 0 || response_flush(r) < 0) {
		s->gone = 1;
		return -1;
	}
	s->last_write = request_now();
	return 0;
}

/* EventSource reconnects by itself whenever a stream ends, and a reconnect without Last-Event-ID
 * is a new paid call. So every SSE stream gives it an id at once (and one on its last event),
 * and asks it to wait a day before trying: an answer with no text, or one that failed before its
 * first delta, is no exception. Fields without data dispatch no event. */
static int send_stream_start(struct stream *s)
{
	buf_reset(&s->frame);
	buf_printf(&s->frame, "retry: %d\nid: 0\n\n", STREAM_RETRY_MS);
	return send_frame(s);
}

static int commit(struct stream *s)
{
	if (s->rq->resp.committed)
		return 0;
	if (response_begin(&s->rq->resp, 200, s->fmt) < 0) {
		s->gone = 1;
		return -1;
	}
	s->last_write = request_now();
	return s->fmt == RESP_SSE ? send_stream_start(s) : 0;
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

static int send_delta(struct stream *s, const char *text, size_t len)
{
	struct request *rq = s->rq;
	if (rq->acc.ttft_ms < 0)
		rq->acc.ttft_ms = (request_now() - rq->started) * 1000.0;
	buf_reset(&s->frame);
	if (s->fmt == RESP_TEXT) {
		if (buf_append(&s->frame, text, len) < 0)
			return -1;
	} else {
		char id[24];
		snprintf(id, sizeof id, "%lu", ++s->next_id);
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "text", json_object_new_string_len(text, (int)len));
		if (encode_event(&s->frame, "delta", id, o) < 0)
			return -1;
	}
	if (send_frame(s) < 0)
		return -1;
	rq->acc.delta_flushes++;
	return 0;
}

static int on_event(void *arg, const struct sse_event *e)
{
	struct stream *s = arg;
	struct anth_event ev;
	int rc = 0;
	anthropic_parse_event(e->event, e->data, e->data_len, &ev);
	switch (ev.kind) {
	case ANTH_EV_MESSAGE_START:
		if (ev.input_tokens >= 0)
			s->rq->acc.input_tokens = ev.input_tokens;
		break;
	case ANTH_EV_TEXT:
		rc = send_delta(s, ev.text, ev.text_len);
		break;
	case ANTH_EV_MESSAGE_DELTA:
		if (ev.stop_reason)
			snprintf(s->stop_reason, sizeof s->stop_reason, "%s", ev.stop_reason);
		if (ev.input_tokens >= 0)
			s->rq->acc.input_tokens = ev.input_tokens;
		if (ev.output_tokens >= 0)
			s->rq->acc.output_tokens = ev.output_tokens;
		break;
	case ANTH_EV_MESSAGE_STOP:
		s->finished = 1;
		break;
	case ANTH_EV_ERROR:
		fail(s, ev.error_type, ev.error_message);
		rc = -1;
		break;
	case ANTH_EV_INVALID:
		fail(s, "api_error", "The upstream API sent an invalid stream event");
		rc = -1;
		break;
	case ANTH_EV_IGNORE:
		break;
	}
	anthropic_event_release(&ev);
	return rc;
}

static int on_headers(void *arg, const struct upstream_headers *h)
{
	struct stream *s = arg;
	if (h->request_id[0]) {
		snprintf(s->rq->upstream_request_id, sizeof s->rq->upstream_request_id, "%s", h->request_id);
		response_add_header(&s->rq->resp, "x-request-id", s->rq->upstream_request_id);
	}
	return commit(s);
}

static int on_body(void *arg, const char *p, size_t n)
{
	struct stream *s = arg;
	enum sse_result r = sse_decoder_feed(&s->dec, p, n);
	if (r == SSE_TOO_LARGE)
		fail(s, "api_error", "The upstream API sent an event larger than this server accepts");
	return r == SSE_OK ? 0 : -1;
}

/* While the upstream is silent: notice a client that left, commit once the keep-alive interval
 * has run out (so proxies see headers), and keep intermediaries from timing out. */
static int on_tick(void *arg)
{
	struct stream *s = arg;
	struct request *rq = s->rq;
	if (rq->io->ops->client_gone(rq->io->ctx)) {
		s->gone = 1;
		return -1;
	}
	double now = request_now();
	double interval = rq->srv->cfg->keepalive_interval;
	if (!rq->resp.committed) {
		if (now - rq->started >= interval)
			return commit(s);
		return 0;
	}
	if (s->fmt == RESP_SSE && now - s->last_write >= interval) {
		buf_reset(&s->frame);
		sse_encode_comment(&s->frame, "keep-alive");
		return send_frame(s);
	}
	return 0;
}

static double next_tick(void *arg)
{
	struct stream *s = arg;
	double interval = s->rq->srv->cfg->keepalive_interval;
	if (!s->rq->resp.committed)
		return s->rq->started + interval;
	return s->fmt == RESP_SSE ? s->last_write + interval : -1;
}

static int committed(void *arg)
{
	struct stream *s = arg;
	return s->rq->resp.committed;
}

static void finish(struct stream *s)
{
	struct request *rq = s->rq;
	char id[24];
	snprintf(id, sizeof id, "%lu", ++s->next_id);
	buf_reset(&s->frame);
	if (s->finished) {
		if (s->fmt != RESP_SSE)
			return;
		struct json_object *o = json_object_new_object();
		struct json_object *u = json_object_new_object();
		json_object_object_add(o, "stop_reason", json_object_new_string(s->stop_reason));
		json_object_object_add(u, "input_tokens", json_object_new_int64(rq->acc.input_tokens));
		json_object_object_add(u, "output_tokens", json_object_new_int64(rq->acc.output_tokens));
		json_object_object_add(o, "usage", u);
		encode_event(&s->frame, "done", id, o);
	} else if (s->fmt == RESP_SSE) {
		struct json_object *o = json_object_new_object();
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "type", json_object_new_string(s->fail.type));
		json_object_object_add(e, "message", json_object_new_string(s->fail.message));
		json_object_object_add(o, "error", e);
		encode_event(&s->frame, "error", id, o);
	} else {
		/* The documented last line that tells a cut answer from a finished one. */
		buf_printf(&s->frame, "\n[error: %s: %s]\n", s->fail.type, s->fail.message);
	}
	send_frame(s);
}

/* Why a committed stream ended without message_stop, from the transfer's outcome. */
static void explain(struct stream *s, const struct upstream_result *res)
{
	switch (res->outcome) {
	case UP_FIRST_BYTE_TIMEOUT:
	case UP_IDLE_TIMEOUT:
	case UP_TOTAL_TIMEOUT:
		fail(s, "timeout_error", "The upstream API timed out during the stream");
		break;
	default:
		fail(s, "api_error", "The upstream API ended the stream before it finished");
		break;
	}
}

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

	struct stream s;
	memset(&s, 0, sizeof s);
	s.rq = rq;
	s.fmt = wants_sse(rq) ? RESP_SSE : RESP_TEXT;
	sse_decoder_init(&s.dec, cfg->max_response_bytes, on_event, &s);
	buf_init(&s.frame, cfg->max_response_bytes + 1024);
	struct upstream_sink sink = {
		.on_headers = on_headers,
		.on_body = on_body,
		.on_tick = on_tick,
		.next_tick = next_tick,
		.committed = committed,
		.watch_fd = rq->io->ops->watch_fd(rq->io->ctx),
		.arg = &s,
	};
	struct upstream_request ur = {
		.path = "/v1/messages", .body = body, .body_len = body_len, .stream = 1};
	struct upstream_result res;
	upstream_call(rq->srv->up, &ur, &sink, &res);
	rq->acc.attempts = res.attempts;

	if (s.gone || rq->resp.client_gone) {
		rq->acc.cancelled = 1;
		rq->acc.error = "cancelled";
		log_info("client left: upstream stream cancelled after %lu deltas, %ld output tokens",
			 (unsigned long)rq->acc.delta_flushes, rq->acc.output_tokens);
	} else if (!rq->resp.committed) {
		request_fail_upstream(rq, &res);
	} else {
		if (!s.finished) {
			explain(&s, &res);
			rq->acc.error = "stream_failed";
			log_warn("stream failed after commit: %s: %s (%s)", s.fail.type, s.fail.message,
				 res.detail[0] ? res.detail : upstream_outcome_name(res.outcome));
		}
		finish(&s);
		if (s.gone)
			rq->acc.cancelled = 1;
	}
	upstream_result_release(&res);
	sse_decoder_release(&s.dec);
	buf_release(&s.frame);
	free(body);
}
