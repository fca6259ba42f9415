/* What the API-compatible handlers (messages.c, chat.c) share: the checks every /v1/ body goes
 * through, and one upstream call relayed to the client, whole or event by event. */
#include "handlers.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../anthropic.h"
#include "../openai.h"
#include "../request.h"
#include "../sse.h"
#include "../upstream.h"

int api_check_json(struct request *rq)
{
	/* Also what keeps other sites' pages out: a browser sends a cross-site request without a
	 * preflight only with a form or text/plain content type. */
	static const char json[] = "application/json";
	const char *ct = io_param(rq->io, "CONTENT_TYPE");
	size_t n = sizeof json - 1;
	if (!ct || !*ct ||
	    (strncasecmp(ct, json, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ')))
		return 0;
	request_fail(rq, ERR_MEDIA_TYPE, "Content-Type must be application/json");
	return -1;
}

static void note_request_id(struct request *rq, const char *id)
{
	if (!id[0])
		return;
	snprintf(rq->upstream_request_id, sizeof rq->upstream_request_id, "%s", id);
	/* The OpenAI SDK reads x-request-id, the Anthropic SDKs request-id. */
	response_add_header(&rq->resp, "x-request-id", rq->upstream_request_id);
	response_add_header(&rq->resp, "request-id", rq->upstream_request_id);
}

void api_note_upstream(struct request *rq, const struct upstream_result *res)
{
	rq->acc.attempts = res->attempts;
	note_request_id(rq, res->h.request_id);
}

int api_relay_send(struct api_relay *r)
{
	struct response *resp = &r->rq->resp;
	if (response_write(resp, r->frame.data, r->frame.len) < 0 || response_flush(resp) < 0) {
		r->gone = 1;
		return -1;
	}
	r->last_write = request_now();
	return 0;
}

/* The upstream said 2xx to a stream: the status is known, so the response commits now and
 * no retry can follow. */
static int on_headers(void *arg, const struct upstream_headers *h)
{
	struct api_relay *r = arg;
	if (!r->stream) {
		buf_reset(&r->body); /* a retry after a cut body starts it over */
		return 0;
	}
	note_request_id(r->rq, h->request_id);
	if (response_begin(&r->rq->resp, 200, RESP_SSE) < 0) {
		r->gone = 1;
		return -1;
	}
	r->last_write = request_now();
	return 0;
}

static int on_body(void *arg, const char *p, size_t n)
{
	struct api_relay *r = arg;
	if (!r->stream) {
		if (buf_append(&r->body, p, n) < 0) {
			r->too_large = 1;
			return -1;
		}
		return 0;
	}
	enum sse_result res = sse_decoder_feed(&r->dec, p, n);
	if (res == SSE_TOO_LARGE)
		r->too_large = 1;
	return res == SSE_OK ? 0 : -1;
}

/* While the upstream is silent: notice a client that left, and once committed keep
 * intermediaries from timing the stream out. Before commit nothing is written, so that a
 * failure still gets its own status (the SDK clients wait that long anyway). */
static int on_tick(void *arg)
{
	struct api_relay *r = arg;
	struct request *rq = r->rq;
	if (rq->io->ops->client_gone(rq->io->ctx)) {
		r->gone = 1;
		return -1;
	}
	if (rq->resp.committed && request_now() - r->last_write >= rq->srv->cfg->keepalive_interval) {
		buf_reset(&r->frame);
		sse_encode_comment(&r->frame, "keep-alive");
		return api_relay_send(r);
	}
	return 0;
}

static double next_tick(void *arg)
{
	struct api_relay *r = arg;
	if (!r->rq->resp.committed)
		return -1;
	return r->last_write + r->rq->srv->cfg->keepalive_interval;
}

static int committed(void *arg)
{
	struct api_relay *r = arg;
	return r->rq->resp.committed;
}

void api_relay_run(struct api_relay *r, struct request *rq, const struct upstream_request *ur,
		   sse_event_fn on_event, void *arg, struct upstream_result *res)
{
	const struct config *cfg = rq->srv->cfg;
	memset(r, 0, sizeof *r);
	r->rq = rq;
	r->stream = ur->stream;
	sse_decoder_init(&r->dec, cfg->max_response_bytes, on_event, arg);
	buf_init(&r->body, cfg->max_response_bytes);
	/* One upstream event becomes at most a few frames of about its size. */
	buf_init(&r->frame, 2 * cfg->max_response_bytes + 4096);
	struct upstream_sink sink = {
		.on_headers = on_headers,
		.on_body = on_body,
		.on_tick = on_tick,
		.next_tick = next_tick,
		.committed = committed,
		.watch_fd = rq->io->ops->watch_fd(rq->io->ctx),
		.arg = r,
	};
	upstream_call(rq->srv->up, ur, &sink, res);
	rq->acc.attempts = res->attempts;
	if (r->gone || rq->resp.client_gone) {
		rq->acc.cancelled = 1;
		rq->acc.error = "cancelled";
		log_info("client left: upstream call cancelled after %u deltas, %ld output tokens",
			 rq->acc.delta_flushes, rq->acc.output_tokens);
	}
}

void api_relay_release(struct api_relay *r)
{
	sse_decoder_release(&r->dec);
	buf_release(&r->body);
	buf_release(&r->frame);
}

const char *api_failure(const struct api_relay *r, const struct upstream_result *res,
			const char **message)
{
	if (r->too_large) {
		*message = "The upstream API sent an event larger than this server accepts";
		return "api_error";
	}
	switch (res->outcome) {
	case UP_FIRST_BYTE_TIMEOUT:
	case UP_IDLE_TIMEOUT:
	case UP_TOTAL_TIMEOUT:
		*message = "The upstream API timed out during the stream";
		return "timeout_error";
	default:
		*message = "The upstream API ended the stream before it finished";
		return "api_error";
	}
}

/* An upstream error before commit: the status and the API's own error body go to the client as
 * they came, since this client speaks the same API. Not the upstream's 401/403, which are about
 * the server's key, not the client's: those become 502. */
void api_relay_error(struct request *rq, const struct upstream_result *res, int openai)
{
	long st = res->h.status;
	char *type = NULL, *msg = NULL;
	const char *body = res->error_body.data ? res->error_body.data : "";
	if (res->outcome != UP_DONE || st < 400 || st > 599 || st == 401 || st == 403 ||
	    anthropic_parse_error(body, res->error_body.len, &type, &msg) < 0) {
		request_fail_upstream(rq, res);
		return;
	}
	/* Logged and relayed (as the OpenAI code): an upstream may quote the key in it. */
	anthropic_scrub(type, rq->srv->cfg->api_key);
	log_warn("upstream answered %ld %s after %d attempt(s)", st, type, res->attempts);
	if (res->h.retry_after > 0) {
		char v[32];
		snprintf(v, sizeof v, "%ld", (long)(res->h.retry_after + 0.999));
		response_add_header(&rq->resp, "Retry-After", v);
	}
	/* The retries were ours: an SDK retrying on top would multiply upstream calls. */
	response_add_header(&rq->resp, "x-should-retry", "false");
	rq->acc.error = "upstream_status";
	const char *key = rq->srv->cfg->api_key;
	int rc;
	if (openai) {
		anthropic_scrub(msg, key);
		struct json_object *o = openai_error_body(msg, openai_error_type(type), NULL, type);
		rc = response_json(&rq->resp, (int)st, o);
		json_object_put(o);
	} else {
		char *copy = xstrndup(body, res->error_body.len);
		anthropic_scrub_len(copy, res->error_body.len, key);
		rc = response_send(&rq->resp, (int)st, "application/json", copy, res->error_body.len);
		free(copy);
	}
	if (rc < 0 && rq->resp.client_gone)
		rq->acc.cancelled = 1;
	free(type);
	free(msg);
}
