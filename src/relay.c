#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memmem */
#endif

#include "relay.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "spend.h"
#include "upstream.h"

/* ---- writing: every byte the relay sends goes through here, scrubbed ---- */

static int send_frame(struct relay *r)
{
	struct response *resp = &r->rq->resp;
	if (r->frame.len == 0)
		return 0;
	anthropic_scrub_len(r->frame.data, r->frame.len, r->key);
	/* One write and one flush per frame: never coalesce, never wait for more. */
	if (response_write(resp, r->frame.data, r->frame.len) < 0 || response_flush(resp) < 0) {
		r->gone = 1;
		return -1;
	}
	r->last_write = request_now();
	return 0;
}

void relay_usage(struct relay *r, long input_tokens, long output_tokens)
{
	r->rq->acc.input_tokens = input_tokens;
	r->rq->acc.output_tokens = output_tokens;
}

int relay_answer(struct relay *r, const char *content_type, char *body, size_t len)
{
	anthropic_scrub_len(body, len, r->key);
	return response_send(&r->rq->resp, 200, content_type, body, len);
}

int relay_answer_json(struct relay *r, struct json_object *obj)
{
	size_t n;
	const char *js = json_object_to_json_string_length(
		obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	/* Scanning is cheap and a key in an answer is rare: copy only to scrub. */
	if (!r->key || !*r->key || !memmem(js, n, r->key, strlen(r->key)))
		return response_send(&r->rq->resp, 200, "application/json", js, n);
	char *copy = xstrndup(js, n);
	int rc = relay_answer(r, "application/json", copy, n);
	free(copy);
	return rc;
}

/* Copies src into dst after scrubbing the key from it: scrubbing after the cut would miss a key
 * that the cut leaves half in place. */
static void keep_scrubbed(char *dst, size_t cap, const char *src, const char *key)
{
	char *copy = xstrdup(src);
	anthropic_scrub(copy, key);
	snprintf(dst, cap, "%s", copy);
	free(copy);
}

void relay_stop_reason(struct relay *r, const char *reason)
{
	if (!reason || anthropic_stop_reason_known(reason))
		return;
	/* A stop_reason newer than this gateway is still an answer: relayed as it is, and logged so
	 * that an operator learns of it. Scrubbed: it is upstream text. */
	char v[64];
	keep_scrubbed(v, sizeof v, reason, r->key);
	log_info("upstream stop_reason '%s' is new to this gateway: relayed as it is", v);
}

void relay_fail(struct relay *r, const char *type, const char *message)
{
	if (r->failed)
		return;
	r->failed = 1;
	keep_scrubbed(r->fail.type, sizeof r->fail.type, type, r->key);
	keep_scrubbed(r->fail.message, sizeof r->fail.message, message, r->key);
}

/* One policy for every route: the OpenAI SDK reads x-request-id, the Anthropic SDKs request-id;
 * the access log records it either way. */
static void note_request_id(struct relay *r, const char *id)
{
	struct request *rq = r->rq;
	if (!id[0])
		return;
	size_t n = strnlen(id, sizeof rq->upstream_request_id - 1);
	memcpy(rq->upstream_request_id, id, n);
	rq->upstream_request_id[n] = '\0';
	anthropic_scrub(rq->upstream_request_id, r->key);
	if (rq->resp.committed)
		return;
	response_add_header(&rq->resp, "x-request-id", rq->upstream_request_id);
	response_add_header(&rq->resp, "request-id", rq->upstream_request_id);
}

/* ---- the commit rule and keep-alive ---- */

static int commit(struct relay *r)
{
	struct request *rq = r->rq;
	if (rq->resp.committed)
		return 0;
	if (response_begin(&rq->resp, 200, r->ops->fmt) < 0) {
		r->gone = 1;
		return -1;
	}
	r->last_write = request_now();
	if (!r->ops->on_commit)
		return 0;
	buf_reset(&r->frame);
	if (r->ops->on_commit(r) < 0)
		return -1;
	return send_frame(r);
}

/* Before commit, a route that asks for it commits at the deadline (so proxies see headers);
 * after it, an SSE stream gets a comment whenever it has been quiet for an interval, whether
 * the upstream is silent or sends events that produce no output (thinking, pings). */
static int keepalive(struct relay *r, double now)
{
	struct request *rq = r->rq;
	double interval = rq->srv->cfg->keepalive_interval;
	if (!rq->resp.committed) {
		if (r->ops->commit_on_deadline && now - rq->started >= interval)
			return commit(r);
		return 0;
	}
	if (r->ops->fmt != RESP_SSE || now - r->last_write < interval)
		return 0;
	buf_reset(&r->frame);
	sse_encode_comment(&r->frame, "keep-alive");
	return send_frame(r);
}

/* ---- events: the bookkeeping every stream shares, then the handler's frames ---- */

static void account(struct relay *r, const struct anth_event *ev)
{
	struct access_record *acc = &r->rq->acc;
	switch (ev->kind) {
	case ANTH_EV_TEXT:
		if (acc->ttft_ms < 0)
			acc->ttft_ms = (request_now() - r->rq->started) * 1000.0;
		r->text_bytes += ev->text_len;
		break;
	case ANTH_EV_MESSAGE_START:
	case ANTH_EV_MESSAGE_DELTA:
		/* message_delta's usage is cumulative: it replaces what came before. */
		if (ev->input_tokens >= 0)
			acc->input_tokens = ev->input_tokens;
		if (ev->output_tokens >= 0 && ev->kind == ANTH_EV_MESSAGE_DELTA) {
			acc->output_tokens = ev->output_tokens;
			r->final_usage = 1;
		}
		spend_usage_event(acc, ev);
		relay_stop_reason(r, ev->stop_reason);
		break;
	case ANTH_EV_MESSAGE_STOP:
		r->finished = 1;
		break;
	case ANTH_EV_ERROR:
		relay_fail(r, ev->error_type, ev->error_message);
		/* Scrubbed: an upstream may quote the key even in the type. */
		log_warn("upstream error event: %s", r->fail.type);
		break;
	case ANTH_EV_INVALID:
		relay_fail(r, "api_error", "The upstream API sent an invalid stream event");
		break;
	case ANTH_EV_IGNORE:
		break;
	}
}

static int on_sse_event(void *arg, const struct sse_event *e)
{
	struct relay *r = arg;
	struct anth_event ev;
	anthropic_parse_event(e->event, e->data, e->data_len, &ev);
	account(r, &ev);
	int rc = -1;
	if (ev.kind != ANTH_EV_INVALID) {
		buf_reset(&r->frame);
		rc = r->ops->on_event(r, e, &ev);
	}
	if (rc == 0 && r->frame.len) {
		rc = send_frame(r);
		if (rc == 0 && ev.kind == ANTH_EV_TEXT) {
			r->rq->acc.delta_flushes++;
			metrics_delta();
		}
	} else if (rc == 0) {
		rc = keepalive(r, request_now());
	}
	anthropic_event_release(&ev);
	return rc;
}

/* ---- the upstream sink ---- */

static int on_headers(void *arg, const struct upstream_headers *h)
{
	struct relay *r = arg;
	if (r->ops->mode == RELAY_WHOLE) {
		buf_reset(&r->body); /* a retry after a cut body starts it over */
		return 0;
	}
	/* A 2xx to a stream: the status is known, so the response commits now and no retry can
	 * follow. */
	note_request_id(r, h->request_id);
	metrics_upstream_answered();
	int rc = commit(r);
	metrics_first_byte();
	return rc;
}

static int on_body(void *arg, const char *p, size_t n)
{
	struct relay *r = arg;
	if (r->ops->mode == RELAY_WHOLE) {
		if (buf_append(&r->body, p, n) < 0) {
			r->too_large = 1;
			return -1;
		}
		return 0;
	}
	metrics_body();
	enum sse_result res = sse_decoder_feed(&r->dec, p, n);
	if (res == SSE_TOO_LARGE) {
		r->too_large = 1;
		relay_fail(r, "api_error", "The upstream API sent an event larger than this server "
					   "accepts");
	}
	return res == SSE_OK ? 0 : -1;
}

/* While the upstream is silent: notice a client that left, and keep the stream alive. */
static int on_tick(void *arg)
{
	struct relay *r = arg;
	struct io *io = r->rq->io;
	if (io->ops->client_gone(io->ctx)) {
		r->gone = 1;
		return -1;
	}
	return keepalive(r, request_now());
}

static double next_tick(void *arg)
{
	struct relay *r = arg;
	struct request *rq = r->rq;
	double interval = rq->srv->cfg->keepalive_interval;
	if (!rq->resp.committed)
		return r->ops->commit_on_deadline ? rq->started + interval : -1;
	return r->ops->fmt == RESP_SSE ? r->last_write + interval : -1;
}

static int committed(void *arg)
{
	struct relay *r = arg;
	return r->rq->resp.committed;
}

/* ---- failures before commit ---- */

/* m is empty and holds 2048 bytes: a message of our own always fits. */
static enum err_kind say(struct buf *m, enum err_kind kind, const char *text)
{
	BUF_MUST(buf_appends(m, text));
	return kind;
}

/* The status the upstream answered with, when it is one of the failures the table maps. */
static enum err_kind status_error(long st, int parsed, const char *type, const char *msg,
				  struct buf *m)
{
	switch (st) {
	case 401:
	case 403:
		/* The upstream's text may quote the key: never relay it. */
		return say(m, ERR_UPSTREAM, "The upstream API rejected this server's credentials");
	case 413:
		return say(m, ERR_TOO_LARGE, "The request is too large for the upstream API");
	case 429:
		return say(m, ERR_RATE_LIMIT, "The upstream API is rate limiting this server; retry later");
	case 529:
		return say(m, ERR_OVERLOADED, "The upstream API is overloaded; retry later");
	case 504:
		return say(m, ERR_TIMEOUT, "The upstream API timed out");
	case 404:
		/* On the Messages API, a model it does not serve (retired, or not for this key): the
		 * server's setting, not the client's doing. */
		if (parsed && buf_printf(m, "The upstream API does not serve this server's model (%s: %s)",
					 type, msg) == 0)
			return ERR_UPSTREAM;
		break;
	}
	/* The upstream's own message is relayed when it fits (its body may be longer than m). */
	if (st == 400 && parsed)
		return buf_appends(m, msg) == 0 ? ERR_BAD_REQUEST
						: say(m, ERR_BAD_REQUEST, "The upstream API refused the request");
	if (parsed && buf_printf(m, "The upstream API answered %ld: %s: %s", st, type, msg) == 0)
		return ERR_UPSTREAM;
	BUF_MUST(buf_printf(m, "The upstream API answered %ld with %s", st,
			    parsed ? "an error too long to relay" : "an invalid body"));
	return ERR_UPSTREAM;
}

/* The error kind and client-facing message (in m) an upstream result maps to. */
static enum err_kind upstream_error(const struct relay *r, const struct upstream_result *res,
				    struct buf *m)
{
	switch (res->outcome) {
	case UP_CONNECT_FAILED:
		return say(m, ERR_UPSTREAM, "The upstream API could not be reached");
	case UP_BROKEN:
		return say(m, ERR_UPSTREAM,
			   "The upstream API closed the connection or sent an invalid answer");
	case UP_TOO_LARGE:
		return say(m, ERR_UPSTREAM,
			   "The upstream API sent an answer larger than this server accepts");
	case UP_FIRST_BYTE_TIMEOUT:
	case UP_IDLE_TIMEOUT:
	case UP_TOTAL_TIMEOUT:
		/* An outcome's name is a short word: it fits as any message of our own. */
		BUF_MUST(buf_printf(m, "The upstream API timed out (%s)",
				    upstream_outcome_name(res->outcome)));
		return ERR_TIMEOUT;
	case UP_ABORTED:
		return ERR_CANCELLED;
	case UP_DONE:
		break;
	}
	char *type = NULL, *msg = NULL;
	int parsed = anthropic_parse_error(res->error_body.data ? res->error_body.data : "",
					   res->error_body.len, &type, &msg) == 0;
	if (parsed) {
		/* Both are relayed, and an upstream may quote the key in either. */
		anthropic_scrub(type, r->key);
		anthropic_scrub(msg, r->key);
	}
	enum err_kind kind = status_error(res->h.status, parsed, type, msg, m);
	free(type);
	free(msg);
	return kind;
}

/* The retries were ours: an SDK client retrying on top would multiply upstream calls. */
static void no_retry(struct request *rq)
{
	response_add_header(&rq->resp, "x-should-retry", "false");
}

static void retry_after(struct request *rq, double seconds)
{
	char v[32];
	snprintf(v, sizeof v, "%ld", (long)(seconds + 0.999));
	response_add_header(&rq->resp, "Retry-After", v);
}

static void fail_upstream(struct relay *r, const struct upstream_result *res)
{
	struct request *rq = r->rq;
	struct buf m;
	buf_init(&m, 2048);
	enum err_kind kind = upstream_error(r, res, &m);
	if (res->outcome == UP_DONE && res->h.status == 404)
		log_warn("model not found upstream (404): %s; llm-fcgi --check tells whether it "
			 "is retired", buf_cstr(&m));
	else
		log_warn("upstream failed after %d attempt(s): %s (status %ld)%s%s", res->attempts,
			 upstream_outcome_name(res->outcome), res->h.status,
			 res->detail[0] ? ": " : "", res->detail);
	if (kind == ERR_RATE_LIMIT || kind == ERR_OVERLOADED)
		retry_after(rq, res->h.retry_after > 0 ? res->h.retry_after : 1);
	no_retry(rq);
	request_fail(rq, kind, buf_cstr(&m));
	buf_release(&m);
}

/* An upstream error status with the API's own error body, for a handler that answers it in its
 * dialect with the same status (a 529 stays a 529). Returns -1 when the result is not one. */
static int relay_upstream_error(struct relay *r, const struct upstream_result *res)
{
	struct request *rq = r->rq;
	long st = res->h.status;
	char *type = NULL, *msg = NULL;
	const char *body = res->error_body.data ? res->error_body.data : "";
	/* Not the upstream's 401/403: they are about the server's key, not the client's. */
	if (res->outcome != UP_DONE || st < 400 || st > 599 || st == 401 || st == 403 ||
	    anthropic_parse_error(body, res->error_body.len, &type, &msg) < 0)
		return -1;
	anthropic_scrub(type, r->key);
	anthropic_scrub(msg, r->key);
	if (st == 404)
		log_warn("model not found upstream (404 %s: %s); llm-fcgi --check tells whether it "
			 "is retired", type, msg);
	else
		log_warn("upstream answered %ld %s after %d attempt(s)", st, type, res->attempts);
	if (res->h.retry_after > 0)
		retry_after(rq, res->h.retry_after);
	no_retry(rq);
	rq->acc.error = "upstream_status";
	char *copy = xstrndup(body, res->error_body.len);
	anthropic_scrub_len(copy, res->error_body.len, r->key);
	r->ops->on_upstream_error(r, (int)st, type, msg, copy, res->error_body.len);
	free(copy);
	free(type);
	free(msg);
	return 0;
}

static void before_commit(struct relay *r, const struct upstream_result *res)
{
	struct request *rq = r->rq;
	note_request_id(r, res->h.request_id);
	if (r->ops->mode == RELAY_WHOLE && res->outcome == UP_DONE && res->h.status >= 200 &&
	    res->h.status <= 299) {
		static char empty[1];
		spend_usage_json(&rq->acc, r->body.data ? r->body.data : empty, r->body.len);
		if (r->ops->on_whole(r, r->body.data ? r->body.data : empty, r->body.len) == 0)
			return;
		log_warn("upstream answered %ld with a body that is not what was asked for",
			 res->h.status);
		no_retry(rq);
		request_fail(rq, ERR_UPSTREAM, "The upstream API sent an invalid answer");
	} else if (r->too_large) {
		log_warn("upstream answer over max_response_bytes (%zu)",
			 rq->srv->cfg->max_response_bytes);
		no_retry(rq);
		request_fail(rq, ERR_UPSTREAM, "The upstream API sent an answer larger than this "
					       "server accepts");
	} else if (!r->ops->on_upstream_error || relay_upstream_error(r, res) < 0) {
		fail_upstream(r, res);
	}
}

/* ---- after commit ---- */

static void after_commit(struct relay *r, const struct upstream_result *res)
{
	const struct relay_failure *f = NULL;
	/* A whole answer fails too when a hook said so (an answer with no text at all). */
	if (!r->finished || r->failed) {
		if (!r->failed) {
			int timeout = res->outcome == UP_FIRST_BYTE_TIMEOUT ||
				      res->outcome == UP_IDLE_TIMEOUT || res->outcome == UP_TOTAL_TIMEOUT;
			relay_fail(r, timeout ? "timeout_error" : "api_error",
				   timeout ? "The upstream API timed out during the stream"
					   : "The upstream API ended the stream before it finished");
		}
		f = &r->fail;
		r->rq->acc.error = "stream_failed";
		metrics_stream_cut();
		log_warn("stream failed after commit: %s: %s (%s)", f->type, f->message,
			 res->detail[0] ? res->detail : upstream_outcome_name(res->outcome));
	}
	if (!r->ops->on_finish)
		return;
	buf_reset(&r->frame);
	r->ops->on_finish(r, f);
	send_frame(r);
}

static void init(struct relay *r, struct request *rq, const struct relay_ops *ops, void *arg)
{
	const struct config *cfg = rq->srv->cfg;
	memset(r, 0, sizeof *r);
	r->rq = rq;
	r->ops = ops;
	r->arg = arg;
	r->key = cfg->api_key;
	sse_decoder_init(&r->dec, cfg->max_response_bytes, on_sse_event, r);
	buf_init(&r->body, cfg->max_response_bytes);
	/* One upstream event becomes at most a few frames of about its size. */
	buf_init(&r->frame, 2 * cfg->max_response_bytes + 4096);
}

void relay_run(struct request *rq, const struct relay_ops *ops, void *arg,
	       const struct upstream_request *ur)
{
	struct relay r;
	init(&r, rq, ops, arg);
	struct upstream_sink sink = {
		.on_headers = on_headers,
		.on_body = on_body,
		.on_tick = on_tick,
		.next_tick = next_tick,
		.committed = committed,
		.watch_fd = rq->io->ops->watch_fd(rq->io->ctx),
		.arg = &r,
	};
	struct upstream_result res;
	upstream_call(rq->srv->up, ur, &sink, &res);
	rq->acc.attempts = res.attempts;
	metrics_upstream(&res);
	/* A stream cut short (client gone, upstream cut, timeout) was still generated and is paid
	 * for: without the upstream's final count, the text sent gives an estimate, never 0. */
	if (r.text_bytes && !r.final_usage)
		spend_estimate_output(&rq->acc, r.text_bytes, rq->acc.delta_flushes);
	if (r.gone || rq->resp.client_gone) {
		if (!rq->resp.committed)
			note_request_id(&r, res.h.request_id);
		rq->acc.cancelled = 1;
		rq->acc.error = "cancelled";
		log_info("client left: upstream call cancelled after %u deltas, %ld output tokens",
			 rq->acc.delta_flushes, rq->acc.output_tokens);
	} else if (!rq->resp.committed) {
		before_commit(&r, &res);
		metrics_first_byte();
	} else {
		after_commit(&r, &res);
	}
	upstream_result_release(&res);
	sse_decoder_release(&r.dec);
	buf_release(&r.body);
	buf_release(&r.frame);
}
